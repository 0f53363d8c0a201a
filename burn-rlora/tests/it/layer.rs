//! Layer behaviour checked on ndarray: dropout masks, init statistics, errors,
//! merge, base loading, display and shapes.

use crate::{common, suite};

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Param};
use burn::nn::{Linear, LinearConfig, LinearLayout};
use burn::tensor::{backend::Backend, Distribution, Tensor};
use burn_rlora::method::Method;
use burn_rlora::{
    load_balance_loss, stable_factor, DropoutMode, InitScheme, ParamCount, RLoraConfig, RLoraError,
    RLoraLinear, RouterKind, RouterStats,
};
use suite::{max_abs, max_abs_diff, values};

type B = NdArray<f32>;
type AB = Autodiff<B>;

fn base<Bk: Backend>(d_in: usize, d_out: usize) -> Linear<Bk> {
    LinearConfig::new(d_in, d_out).init::<Bk>(&Default::default())
}

fn eye<Bk: Backend>(n: usize) -> Tensor<Bk, 2> {
    Tensor::eye(n, &Default::default())
}

/// A layer whose output shows the dropout masks: x = ones(r), A = I, the heads
/// stacked as I_{N*r} (head i writes columns i*r..(i+1)*r), base zero, no
/// router and no compensation. Then y[:, i*r + k] = s/(N*keep) * mask_i[k]
/// for per-head dropout, or s/(N*keep) * mask[k] for the input mask.
fn mask_probe(mode: DropoutMode, r: usize, n: usize, p: f64) -> (RLoraLinear<AB>, f64) {
    let config = RLoraConfig::r_lora_no_router(r, r as f64, n)
        .with_dropout(p)
        .with_dropout_mode(mode)
        .with_rank_stabilized(false);
    let mut layer = RLoraLinear::from_linear(base::<AB>(r, n * r), &config).unwrap();
    layer.weight =
        Param::from_tensor(Tensor::zeros([r, n * r], &Default::default())).set_require_grad(false);
    layer.bias = None;
    layer.adapter.as_mut().unwrap().lora_a = Param::from_tensor(eye(r));
    layer.adapter.as_mut().unwrap().lora_b = Param::from_tensor(eye(n * r));
    layer.adapter.as_mut().unwrap().lora_a0 = None;
    layer.adapter.as_mut().unwrap().lora_b0 = None;
    let unit = config.scaling() / n as f64 / (1.0 - p);
    (layer, unit)
}

#[test]
fn per_head_masks_are_independent_with_keep_fraction_one_minus_p() {
    let _rng = common::rng_lock();
    AB::seed(&Default::default(), 21);
    let (r, n, p, tokens) = (8, 4, 0.3, 4000);
    let (layer, unit) = mask_probe(DropoutMode::PerHead, r, n, p);
    let y = values(layer.forward(Tensor::<AB, 2>::ones([tokens, r], &Default::default())));
    let masks: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..tokens)
                .flat_map(|t| (0..r).map(move |k| (t, k)))
                .map(|(t, k)| y[t * n * r + i * r + k] / unit)
                .collect()
        })
        .collect();
    for m in &masks {
        assert!(
            m.iter().all(|v| v.abs() < 1e-4 || (v - 1.0).abs() < 1e-4),
            "mask values not 0/1"
        );
        let kept = m.iter().sum::<f64>() / m.len() as f64;
        assert!(
            (kept - (1.0 - p)).abs() < 0.015,
            "keep fraction {kept}, want {}",
            1.0 - p
        );
    }
    // Independence: P(both kept) = keep^2 for every pair of heads (they differ).
    for i in 0..n {
        for j in i + 1..n {
            let both = masks[i]
                .iter()
                .zip(&masks[j])
                .filter(|(a, b)| **a > 0.5 && **b > 0.5)
                .count();
            let frac = both as f64 / masks[i].len() as f64;
            let want = (1.0 - p) * (1.0 - p);
            assert!(
                (frac - want).abs() < 0.015,
                "heads {i},{j}: P(both kept) {frac}, want {want}"
            );
        }
    }
}

#[test]
fn input_dropout_shares_one_mask_across_heads() {
    let _rng = common::rng_lock();
    AB::seed(&Default::default(), 22);
    let (r, n, p, tokens) = (8, 3, 0.25, 3000);
    let (layer, unit) = mask_probe(DropoutMode::Input, r, n, p);
    let y = values(layer.forward(Tensor::<AB, 2>::ones([tokens, r], &Default::default())));
    let mut kept = 0.0;
    for t in 0..tokens {
        for k in 0..r {
            let first = y[t * n * r + k];
            for i in 1..n {
                assert_eq!(
                    y[t * n * r + i * r + k],
                    first,
                    "heads saw different masks on x"
                );
            }
            kept += first / unit;
        }
    }
    let kept = kept / (tokens * r) as f64;
    assert!((kept - (1.0 - p)).abs() < 0.02, "keep fraction {kept}");
}

#[test]
fn dropout_is_applied_only_in_training() {
    let _rng = common::rng_lock();
    AB::seed(&Default::default(), 23);
    let (layer, unit) = mask_probe(DropoutMode::PerHead, 4, 3, 0.5);
    let x = Tensor::<B, 2>::ones([50, 4], &Default::default());
    let eval = layer.valid();
    let y1 = values(eval.forward(x.clone()));
    assert!(
        y1.iter().all(|v| (v - unit * 0.5).abs() < 1e-5),
        "eval output is not the mean path"
    );
    // Training (autodiff) drops: some outputs are zero.
    let y_train = values(layer.forward(Tensor::from_inner(x)));
    assert!(y_train.contains(&0.0), "no dropout in training");
}

fn std_of(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

fn within(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want,
        "{what}: std {got}, want {want}"
    );
}

#[test]
fn init_statistics_match_each_scheme() {
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 24);
    let (d_in, d_out, r, n) = (400, 900, 8, 4);
    let layer_with = |a: InitScheme, b: InitScheme, gamma: Option<f64>| {
        let config = RLoraConfig::r_lora(r, 16.0, n)
            .with_init_a(a)
            .with_init_b(b)
            .with_stable_gamma(gamma)
            .with_router(RouterKind::Uniform);
        RLoraLinear::from_linear(base::<B>(d_in, d_out), &config).unwrap()
    };
    // Unit with the stable factor: c * N(0, 1/in) for A, c * N(0, 1/out) for heads,
    // with c = out^(1/4)/sqrt(gamma), computed from d_output, not the rank.
    let c = (d_out as f64).powf(0.25) / 8.0;
    let l = layer_with(InitScheme::Unit, InitScheme::Unit, Some(64.0));
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_a.val())),
        c / (d_in as f64).sqrt(),
        0.05,
        "unit A",
    );
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_b.val())),
        c / (d_out as f64).sqrt(),
        0.05,
        "unit B",
    );

    let l = layer_with(
        InitScheme::Gaussian { std: 0.02 },
        InitScheme::Gaussian { std: 0.5 },
        None,
    );
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_a.val())),
        0.02,
        0.05,
        "gaussian A",
    );
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_b.val())),
        0.5,
        0.05,
        "gaussian B",
    );

    let l = layer_with(
        InitScheme::KaimingUniform,
        InitScheme::KaimingNormal { fan_out: true },
        None,
    );
    let a = values(l.adapter.as_ref().unwrap().lora_a.val());
    let bound = 1.0 / (d_in as f64).sqrt();
    assert!(max_abs(&a) <= bound, "kaiming-uniform A exceeds 1/sqrt(in)");
    within(std_of(&a), bound / 3f64.sqrt(), 0.05, "kaiming-uniform A");
    // Heads are [out, r] in PyTorch layout: fan-out = d_out.
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_b.val())),
        1.0 / (d_out as f64).sqrt(),
        0.05,
        "kaiming-normal fan-out B",
    );

    let l = layer_with(
        InitScheme::KaimingNormal { fan_out: false },
        InitScheme::XavierNormal,
        None,
    );
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_a.val())),
        1.0 / (d_in as f64).sqrt(),
        0.05,
        "kaiming-normal A",
    );
    within(
        std_of(&values(l.adapter.as_ref().unwrap().lora_b.val())),
        (2.0 / (d_out + r) as f64).sqrt(),
        0.05,
        "xavier B",
    );

    // Orthogonal: A's rows (PyTorch [r, in]) are orthonormal, and the heads are
    // mutually orthogonal: the stacked [N*r, out] rows are orthonormal.
    let l = layer_with(InitScheme::Orthogonal, InitScheme::Orthogonal, None);
    let a = l.adapter.as_ref().unwrap().lora_a.val();
    let gram = values(a.clone().transpose().matmul(a));
    assert!(
        max_abs_diff(&gram, &values(eye::<B>(r))) < 1e-4,
        "A is not orthonormal"
    );
    let b = l.adapter.as_ref().unwrap().lora_b.val();
    let gram = values(b.clone().matmul(b.transpose()));
    assert!(
        max_abs_diff(&gram, &values(eye::<B>(n * r))) < 1e-4,
        "heads are not orthonormal"
    );
}

#[test]
fn heads_differ_under_r_lora_and_are_identical_zeros_under_hydra_lora() {
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 25);
    let r_lora =
        RLoraLinear::from_linear(base::<B>(64, 48), &RLoraConfig::r_lora(4, 32.0, 5)).unwrap();
    let sim = r_lora.adapter().unwrap().head_similarity();
    let mean = sim.mean_pairwise.unwrap();
    assert!(
        mean.abs() < 0.2,
        "random heads should be nearly orthogonal, mean cos {mean}"
    );
    for i in 0..5 {
        assert!((sim.get(i, i) - 1.0).abs() < 1e-6);
        for j in i + 1..5 {
            let d = max_abs_diff(
                &values(r_lora.adapter().unwrap().head(i).unwrap()),
                &values(r_lora.adapter().unwrap().head(j).unwrap()),
            );
            assert!(d > 1e-3, "heads {i} and {j} are equal");
        }
    }
    let hydra =
        RLoraLinear::from_linear(base::<B>(64, 48), &RLoraConfig::hydra_lora(4, 32.0, 5)).unwrap();
    assert_eq!(
        max_abs(&values(hydra.adapter.as_ref().unwrap().lora_b.val())),
        0.0,
        "HydraLoRA heads must start at zero"
    );
    assert!(
        !hydra.adapter().unwrap().has_compensation(),
        "zero heads need no compensation"
    );
    assert!(r_lora.adapter().unwrap().has_compensation());
    assert!(r_lora.adapter().unwrap().head(5).is_none());
}

#[test]
fn stable_factor_uses_d_output() {
    // 4864^(1/4) / sqrt(64), by hand: sqrt(4864) = 69.7424, sqrt(69.7424) = 8.35119, / 8 = 1.043899
    assert!((stable_factor(4864, 64.0) - 1.043_899).abs() < 1e-5);
    // The reference's defect would use the rank: 4^(1/4)/8 = 0.1768.
    assert!((stable_factor(4864, 64.0) - 4f64.powf(0.25) / 8.0).abs() > 0.5);
    assert!((stable_factor(16, 4.0) - 1.0).abs() < 1e-12);
}

#[test]
fn presets_have_the_paper_structure() {
    let r = RLoraConfig::new();
    assert_eq!((r.rank, r.alpha, r.num_heads, r.dropout), (4, 32.0, 5, 0.1));
    assert_eq!(r.stable_gamma, Some(64.0));
    assert!(r.rank_stabilized);
    assert_eq!(
        (r.init_a.clone(), r.init_b.clone()),
        (InitScheme::Unit, InitScheme::Unit)
    );
    assert_eq!(r.dropout_mode, DropoutMode::PerHead);
    assert_eq!(RLoraConfig::r_lora(4, 32.0, 5), r);
    assert_eq!(r.scaling(), 16.0);

    let lora = RLoraConfig::lora(8, 16.0);
    assert_eq!((lora.num_heads, lora.router), (1, RouterKind::Uniform));
    assert_eq!(
        (lora.init_b.clone(), lora.dropout_mode),
        (InitScheme::Zeros, DropoutMode::Input)
    );
    assert_eq!(lora.scaling(), 2.0);

    let hydra = RLoraConfig::hydra_lora(4, 32.0, 5);
    assert_eq!(
        (hydra.router, hydra.dropout_mode),
        (RouterKind::Softmax, DropoutMode::Input)
    );
    assert_eq!(hydra.init_b, InitScheme::Zeros);
    assert_eq!(hydra.resolved_router_init(), InitScheme::KaimingUniform);
    let mt = RLoraConfig::hydra_lora_mt(4, 32.0, 5);
    assert_eq!(mt.clone().with_dropout_mode(DropoutMode::Input), hydra);
    let init = RLoraConfig::hydra_lora_init(4, 32.0, 5);
    assert_eq!(
        (init.init_b.clone(), init.dropout_mode),
        (InitScheme::Unit, DropoutMode::Input)
    );
    assert_eq!(init.resolved_router_init(), InitScheme::Zeros);
    assert_eq!(
        RLoraConfig::r_lora_no_router(4, 32.0, 5).router,
        RouterKind::Uniform
    );

    // Serde round-trip of a preset.
    let json = serde_json::to_string(&mt).unwrap();
    assert_eq!(serde_json::from_str::<RLoraConfig>(&json).unwrap(), mt);
    for m in Method::ALL {
        assert_eq!(m.name().parse::<Method>().unwrap(), m);
    }
    let err = "rlora2".parse::<Method>().unwrap_err().to_string();
    assert!(
        err.contains("rlora2") && err.contains("hydralora-mt"),
        "{err}"
    );
}

fn build_err(config: RLoraConfig, d_in: usize, d_out: usize) -> RLoraError {
    RLoraLinear::from_linear(base::<B>(d_in, d_out), &config).unwrap_err()
}

#[test]
fn every_bad_config_is_a_typed_error_naming_the_value() {
    let ok = RLoraConfig::r_lora(4, 32.0, 3);
    let cases: Vec<(RLoraConfig, usize, usize, RLoraError, &str)> = vec![
        (ok.clone().with_rank(0), 8, 8, RLoraError::ZeroRank, "got 0"),
        (
            ok.clone().with_rank(9),
            16,
            8,
            RLoraError::RankTooLarge {
                rank: 9,
                max: 8,
                d_input: 16,
                d_output: 8,
            },
            "rank 9",
        ),
        (
            ok.clone()
                .with_num_heads(0)
                .with_router(RouterKind::Uniform),
            8,
            8,
            RLoraError::ZeroHeads,
            "num_heads",
        ),
        (
            ok.clone().with_dropout(1.0),
            8,
            8,
            RLoraError::InvalidDropout(1.0),
            "got 1",
        ),
        (
            ok.clone().with_dropout(-0.1),
            8,
            8,
            RLoraError::InvalidDropout(-0.1),
            "-0.1",
        ),
        (
            ok.clone().with_stable_gamma(Some(0.0)),
            8,
            8,
            RLoraError::InvalidGamma(0.0),
            "got 0",
        ),
        (
            ok.clone().with_stable_gamma(Some(-2.0)),
            8,
            8,
            RLoraError::InvalidGamma(-2.0),
            "-2",
        ),
        (
            ok.clone().with_alpha(f64::INFINITY),
            8,
            8,
            RLoraError::NonFiniteAlpha(f64::INFINITY),
            "inf",
        ),
        (
            ok.clone().with_num_heads(1),
            8,
            8,
            RLoraError::RouterWithOneHead { num_heads: 1 },
            "1",
        ),
    ];
    for (config, d_in, d_out, want, needle) in cases {
        let got = build_err(config, d_in, d_out);
        assert_eq!(got, want);
        assert!(
            got.to_string().contains(needle),
            "message '{got}' lacks '{needle}'"
        );
    }
    // NaN alpha and NaN dropout.
    assert!(
        matches!(build_err(ok.clone().with_alpha(f64::NAN), 8, 8), RLoraError::NonFiniteAlpha(a) if a.is_nan())
    );
    assert!(matches!(
        build_err(ok.clone().with_dropout(f64::NAN), 8, 8),
        RLoraError::InvalidDropout(_)
    ));
    // Non-finite or negative std.
    let err = build_err(
        ok.clone()
            .with_init_a(InitScheme::Gaussian { std: f64::NAN }),
        8,
        8,
    );
    assert!(
        matches!(err, RLoraError::InvalidStd { matrix: "A", .. }),
        "{err}"
    );
    let err = build_err(
        ok.clone().with_init_b(InitScheme::Gaussian { std: -1.0 }),
        8,
        8,
    );
    assert!(
        matches!(err, RLoraError::InvalidStd { matrix: "B", std } if std == -1.0),
        "{err}"
    );
    // Init schemes that cannot apply.
    let err = build_err(ok.clone().with_init_b(InitScheme::Orthogonal), 16, 8);
    assert!(
        matches!(err, RLoraError::InitNotApplicable { matrix: "B", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("12 <= d_output = 8"), "{err}");
    let err = build_err(
        ok.clone()
            .with_init_a(InitScheme::Zeros)
            .with_init_b(InitScheme::Zeros),
        8,
        8,
    );
    assert!(matches!(err, RLoraError::InitNotApplicable { .. }), "{err}");
    let err = build_err(
        ok.clone()
            .with_router_init(Some(InitScheme::KaimingUniform)),
        8,
        8,
    );
    assert!(
        matches!(
            err,
            RLoraError::InitNotApplicable {
                matrix: "router",
                ..
            }
        ),
        "{err}"
    );
    // A layer with an empty side.
    let err = build_err(RLoraConfig::lora(1, 1.0), 0, 4);
    assert!(
        matches!(err, RLoraError::RankTooLarge { max: 0, .. }),
        "{err}"
    );
}

#[test]
fn wrong_input_width_is_an_error_from_try_forward() {
    let layer = RLoraLinear::from_linear(base::<B>(8, 4), &RLoraConfig::r_lora(2, 4.0, 2)).unwrap();
    let err = layer
        .try_forward(Tensor::<B, 2>::ones([3, 7], &Default::default()))
        .unwrap_err();
    assert!(matches!(err, RLoraError::ShapeMismatch { .. }));
    assert!(
        err.to_string().contains("[..., 8]") && err.to_string().contains("[3, 7]"),
        "{err}"
    );
    assert!(layer
        .try_forward(Tensor::<B, 2>::ones([3, 8], &Default::default()))
        .is_ok());
    let mut changed = layer.clone();
    let err = changed.set_dropout(1.5).unwrap_err();
    assert_eq!(err, RLoraError::InvalidDropout(1.5));
    assert_eq!(
        changed.config().unwrap().dropout,
        layer.config().unwrap().dropout
    );
    changed.set_dropout(0.25).unwrap();
    assert_eq!(changed.config().unwrap().dropout, 0.25);
    assert_eq!(RLoraConfig::check_dropout(1.5), Err(err));
    assert_eq!(RLoraConfig::check_dropout(0.0), Ok(()));
    assert!(RLoraConfig::check_dropout(f64::NAN).is_err());
}

#[test]
fn forward_works_for_ranks_one_to_four_like_linear() {
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 26);
    let layer = suite::perturb(
        RLoraLinear::from_linear(base::<B>(6, 5), &RLoraConfig::r_lora(2, 4.0, 3)).unwrap(),
        0.3,
    );
    let x4 = Tensor::<B, 4>::random(
        [2, 3, 4, 6],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    );
    let y4 = layer.forward(x4.clone());
    assert_eq!(y4.dims(), [2, 3, 4, 5]);
    let y2 = layer.forward(x4.clone().reshape([24, 6]));
    assert!(max_abs_diff(&values(y4), &values(y2.clone())) < 1e-6);
    let x1 = x4.reshape([24, 6]).narrow(0, 0, 1).reshape([6]);
    let y1 = layer.forward(x1);
    assert_eq!(y1.dims(), [5]);
    assert!(max_abs_diff(&values(y1), &values(y2.narrow(0, 0, 1))) < 1e-6);
    let routed = layer.forward_with_routing(Tensor::<B, 3>::ones([2, 3, 6], &Default::default()));
    let gates = routed.gates.unwrap();
    assert_eq!(gates.dims(), [2, 3, 3]);
    let sums = values(gates.sum_dim(2));
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
}

#[test]
fn merge_is_exact_for_lora_and_the_uniform_router() {
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 27);
    let x = Tensor::<B, 2>::random([9, 12], Distribution::Normal(0.0, 1.0), &Default::default());
    for config in [
        RLoraConfig::lora(3, 6.0),
        RLoraConfig::r_lora_no_router(3, 6.0, 4),
    ] {
        let layer = suite::perturb(
            RLoraLinear::from_linear(base::<B>(12, 10), &config).unwrap(),
            0.3,
        );
        let want = values(layer.forward(x.clone()));
        let merged: Linear<B> = layer.merge().unwrap();
        let got = values(merged.forward(x.clone()));
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5 * max_abs(&want), "merge off by {diff}");
        assert!(
            max_abs_diff(&values(layer.forward(x.clone())), &want) == 0.0,
            "merge changed the layer"
        );
    }
}

#[test]
fn merge_with_a_softmax_router_says_why_not() {
    let layer = RLoraLinear::from_linear(base::<B>(8, 8), &RLoraConfig::r_lora(2, 4.0, 3)).unwrap();
    let err = layer.merge().unwrap_err();
    assert!(matches!(err, RLoraError::NotMergeable { .. }));
    assert!(err.to_string().contains("depend on the input"), "{err}");
}

#[test]
fn folding_the_compensation_keeps_the_function_and_the_layout() {
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 28);
    let col = LinearConfig::new(12, 10)
        .with_layout(LinearLayout::Col)
        .init::<B>(&Default::default());
    let layer = suite::perturb(
        RLoraLinear::from_linear(col, &RLoraConfig::r_lora(3, 6.0, 4)).unwrap(),
        0.3,
    );
    let x = Tensor::<B, 2>::random([5, 12], Distribution::Normal(0.0, 1.0), &Default::default());
    let want = values(layer.forward(x.clone()));
    let folded = layer.fold_compensation();
    assert!(!folded.adapter().unwrap().has_compensation());
    assert!(max_abs_diff(&values(folded.forward(x)), &want) < 1e-5 * max_abs(&want));
    assert!(
        !folded.weight.is_require_grad(),
        "folded base must stay frozen"
    );
}

#[test]
fn col_layout_base_is_accepted_and_identity_holds() {
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 29);
    let col = LinearConfig::new(12, 10)
        .with_layout(LinearLayout::Col)
        .init::<B>(&Default::default());
    let x = Tensor::<B, 2>::random([5, 12], Distribution::Normal(0.0, 1.0), &Default::default());
    let want = values(col.forward(x.clone()));
    let layer = RLoraLinear::from_linear(col, &RLoraConfig::r_lora(3, 6.0, 4)).unwrap();
    assert!(max_abs_diff(&values(layer.forward(x)), &want) < 1e-5);
}

#[test]
fn a_plain_linear_checkpoint_loads_into_the_adapted_layer() {
    use burn_store::{ModuleSnapshot, SafetensorsStore};
    let _rng = common::rng_lock();
    B::seed(&Default::default(), 30);
    let dir = std::env::temp_dir().join(format!("burn-rlora-base-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plain.safetensors");
    let trained = base::<B>(12, 10);
    let mut store = SafetensorsStore::from_file(&path).overwrite(true);
    trained.save_into(&mut store).unwrap();

    let mut adapted =
        RLoraLinear::from_linear(base::<B>(12, 10), &RLoraConfig::r_lora(3, 6.0, 4)).unwrap();
    let mut store = SafetensorsStore::from_file(&path).allow_partial(true);
    let result = adapted.load_from(&mut store).unwrap();
    assert_eq!(
        result.applied.len(),
        2,
        "weight and bias applied: {result:?}"
    );
    assert_eq!(
        adapted.weight.val().to_data(),
        trained.weight.val().to_data()
    );
    assert_eq!(
        adapted.bias.as_ref().unwrap().val().to_data(),
        trained.bias.as_ref().unwrap().val().to_data()
    );
    assert!(
        !adapted.weight.is_require_grad(),
        "the loaded base must stay frozen"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn display_shows_the_shape_and_the_adapter() {
    let mut layer =
        RLoraLinear::from_linear(base::<B>(16, 8), &RLoraConfig::r_lora(4, 32.0, 3)).unwrap();
    layer.set_dropout(0.25).unwrap();
    assert_eq!(
        layer.to_string(),
        "RLoraLinear {d_input: 16, d_output: 8, rank: 4, heads: 3, router: softmax, \
         dropout: 0.25, trainable: 208, params: 440}"
    );
}

#[test]
fn diagnostics_count_params_and_summarize_the_router() {
    let trained =
        RLoraLinear::from_linear(base::<AB>(20, 10), &RLoraConfig::r_lora(2, 4.0, 3)).unwrap();
    let count = ParamCount::of(&trained);
    let layer = trained.valid();
    assert_eq!(layer.num_adapter_params(), 160);
    // A 20x2, heads 3*2x10, router 20x3 trainable; base 200+10, A0 20x2, Bbar0 2x10 frozen.
    assert_eq!(count.trainable, 40 + 60 + 60);
    assert_eq!(count.total, 160 + 210 + 40 + 20);
    assert!(count
        .to_string()
        .starts_with("trainable params: 160 || all params: 430"));
    let shown = layer.to_string();
    assert!(
        shown.contains("rank: 2") && shown.contains("heads: 3") && shown.contains("trainable: 160"),
        "{shown}"
    );

    let gates =
        Tensor::<B, 2>::from_floats([[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]], &Default::default());
    let stats = RouterStats::from_gates(gates.clone()).unwrap();
    assert!(max_abs_diff(&stats.mean_weight, &[0.3, 0.3, 0.4]) < 1e-6);
    let h1 = 2.0 * 0.5 * 2f64.ln();
    let h2 = -(2.0 * 0.1 * 0.1f64.ln() + 0.8 * 0.8f64.ln());
    assert!((stats.mean_entropy - (h1 + h2) / 2.0).abs() < 1e-6);
    let bad = Tensor::<B, 2>::from_floats([[0.5, 0.6, 0.0]], &Default::default());
    assert!(matches!(
        RouterStats::from_gates(bad),
        Err(RLoraError::ShapeMismatch { .. })
    ));
    let empty = Tensor::<B, 2>::zeros([0, 3], &Default::default());
    assert!(RouterStats::from_gates(empty).is_err());

    // CV^2 of per-head means [0.3, 0.3, 0.4]: var = 0.00222.., mean = 1/3.
    let lb = values(load_balance_loss(gates))[0];
    let want = ((0.3f64 - 1.0 / 3.0).powi(2) * 2.0 + (0.4f64 - 1.0 / 3.0).powi(2)) / 3.0 * 9.0;
    assert!((lb - want).abs() < 1e-6, "load balance {lb}, want {want}");
    let uniform = Tensor::<B, 2>::ones([4, 3], &Default::default()).div_scalar(3.0);
    assert!(values(load_balance_loss(uniform))[0].abs() < 1e-7);
}
