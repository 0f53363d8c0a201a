//! Adapting a model by target names: `#[derive(Adapt)]`, `RLoraLinear`,
//! `TargetModules` and `AdaptConfig`.

use burn::backend::NdArray;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor};
use burn_rlora::adapt::{LayerMapper, LayerVisitor, Walk};
use burn_rlora::{Adapt, AdaptConfig, RLoraConfig, RLoraError, RLoraLinear, TargetModules};

type NB = NdArray<f32>;

fn dev() -> burn::tensor::Device<NB> {
    Default::default()
}

fn linear<B: Backend>(i: usize, o: usize, device: &B::Device) -> RLoraLinear<B> {
    LinearConfig::new(i, o).init(device).into()
}

#[derive(Module, Adapt, Debug)]
struct Attention<B: Backend> {
    query: RLoraLinear<B>,
    value: RLoraLinear<B>,
    /// Burn's own type: never adaptable.
    out: Linear<B>,
}

#[derive(Module, Adapt, Debug)]
struct Block<B: Backend> {
    attention: Attention<B>,
    ffn: [RLoraLinear<B>; 2],
    gate: Option<RLoraLinear<B>>,
    norm: LayerNorm<B>,
    #[adapt(skip)]
    frozen_probe: RLoraLinear<B>,
    #[module(skip)]
    steps: usize,
}

#[derive(Module, Adapt, Debug)]
struct Model<B: Backend> {
    blocks: Vec<Block<B>>,
    head: RLoraLinear<B>,
}

fn block<B: Backend>(gate: bool) -> Block<B> {
    let d = Default::default();
    Block {
        attention: Attention {
            query: linear(8, 8, &d),
            value: linear(8, 8, &d),
            out: LinearConfig::new(8, 8).init(&d),
        },
        ffn: [linear(8, 16, &d), linear(16, 8, &d)],
        gate: gate.then(|| linear(8, 8, &d)),
        norm: LayerNormConfig::new(8).init(&d),
        frozen_probe: linear(8, 8, &d),
        steps: 7,
    }
}

fn model() -> Model<NB> {
    model_on()
}

fn model_on<B: Backend>() -> Model<B> {
    Model {
        blocks: vec![block(true), block(false)],
        head: linear(8, 2, &Default::default()),
    }
}

fn adapt(targets: TargetModules) -> Result<(Model<NB>, Vec<String>), RLoraError> {
    AdaptConfig::new(RLoraConfig::r_lora(2, 16.0, 3), targets).adapt_listed(model())
}

/// The paths of the trainable parameters, found with Burn's own visitor.
#[derive(Default)]
struct Trainable {
    path: Vec<String>,
    found: Vec<String>,
}

impl<B: Backend> ModuleVisitor<B> for Trainable {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if param.is_require_grad() {
            self.found.push(self.path.join("."));
        }
    }
}

fn trainable<B: Backend>(model: &Model<B>) -> Vec<String> {
    let mut visitor = Trainable::default();
    model.visit(&mut visitor);
    visitor.found
}

#[test]
fn names_match_path_suffixes_on_dot_boundaries() {
    let (model, adapted) = adapt(TargetModules::names(["query", "ffn.1"])).unwrap();
    assert_eq!(
        adapted,
        [
            "blocks.0.attention.query",
            "blocks.0.ffn.1",
            "blocks.1.attention.query",
            "blocks.1.ffn.1",
        ]
    );
    for b in &model.blocks {
        assert!(b.attention.query.is_adapted());
        assert!(!b.attention.value.is_adapted());
        assert!(!b.ffn[0].is_adapted());
        assert!(b.ffn[1].is_adapted());
        assert_eq!(b.steps, 7, "a #[module(skip)] field is kept");
    }
    assert!(!model.head.is_adapted());
}

#[test]
fn only_the_adapters_of_targeted_layers_train() {
    // `require_grad` is tracked on an autodiff backend.
    let model = model_on::<burn::backend::Autodiff<NB>>();
    let before = trainable(&model);
    assert!(before.len() > 20, "{before:?}");
    let config = AdaptConfig::new(
        RLoraConfig::r_lora(2, 16.0, 3),
        TargetModules::names(["value", "head"]),
    );
    let model = config.adapt(model).unwrap();
    let mut found = trainable(&model);
    found.sort();
    let mut expected = Vec::new();
    for layer in [
        "blocks.0.attention.value",
        "blocks.1.attention.value",
        "head",
    ] {
        // R-LoRA: A, the heads and the router; the compensation pair is frozen.
        for field in ["lora_a", "lora_b", "lora_route"] {
            expected.push(format!("{layer}.adapter.{field}"));
        }
    }
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn adapting_keeps_the_output_of_the_plain_model() {
    let plain = model();
    let x = Tensor::<NB, 2>::random([3, 8], burn::tensor::Distribution::Default, &dev());
    let run = |m: &Model<NB>| {
        let b = &m.blocks[0];
        let h = b.attention.query.forward(x.clone()) + b.attention.value.forward(x.clone());
        let h = b.ffn[1].forward(b.ffn[0].forward(h));
        m.head.forward(h)
    };
    let before = run(&plain);
    let config = AdaptConfig::new(
        RLoraConfig::r_lora(2, 16.0, 3),
        TargetModules::regex(r"blocks\.\d+\.(attention\.(query|value)|ffn\.\d)|head"),
    );
    let (adapted_model, adapted) = config.adapt_listed(plain).unwrap();
    assert_eq!(adapted.len(), 9);
    run(&adapted_model)
        .into_data()
        .assert_approx_eq::<f32>(&before.into_data(), Default::default());
}

#[test]
fn a_regex_must_match_the_whole_path() {
    let (_, adapted) = adapt(TargetModules::regex(r"blocks\.1\.ffn\.0")).unwrap();
    assert_eq!(adapted, ["blocks.1.ffn.0"]);
    // A prefix of a path is not a match.
    let err = adapt(TargetModules::regex(r"blocks\.1")).unwrap_err();
    assert!(matches!(err, RLoraError::TargetNotFound { .. }), "{err}");
}

#[test]
fn option_content_keeps_the_path_of_the_option() {
    let (_, adapted) = adapt(TargetModules::names(["gate"])).unwrap();
    assert_eq!(adapted, ["blocks.0.gate"]);
}

#[test]
fn a_target_that_matches_nothing_names_the_adaptable_layers() {
    // `attention.out` is Burn's `Linear`, `frozen_probe` is marked #[adapt(skip)].
    for target in ["out", "frozen_probe", "quer", "attention"] {
        let err = adapt(TargetModules::names(["query", target])).unwrap_err();
        let RLoraError::TargetNotFound {
            target: t,
            adaptable,
        } = &err
        else {
            panic!("{target}: {err}");
        };
        assert_eq!(t, target);
        assert_eq!(adaptable.len(), 10, "{adaptable:?}");
        assert!(adaptable.contains(&"blocks.0.gate".to_string()));
        assert!(!adaptable.iter().any(|p| p.contains("frozen_probe")));
        assert!(
            err.to_string().contains("blocks.1.attention.value"),
            "{err}"
        );
    }
}

#[test]
fn malformed_targets_are_refused() {
    let cases = [
        TargetModules::Names(vec![]),
        TargetModules::names([""]),
        TargetModules::names(["query", ".query"]),
        TargetModules::names(["ffn..0"]),
        TargetModules::names(["ffn."]),
        TargetModules::names(["a b"]),
        TargetModules::regex(""),
        TargetModules::regex("blocks.(0"),
    ];
    for targets in cases {
        let err = adapt(targets.clone()).unwrap_err();
        assert!(
            matches!(err, RLoraError::InvalidTarget { .. }),
            "{targets:?}: {err}"
        );
        assert!(targets.is_match("blocks.0.gate").is_err());
    }
}

#[test]
fn a_layer_is_adapted_once() {
    let (model, _) = adapt(TargetModules::names(["head"])).unwrap();
    let config = AdaptConfig::new(RLoraConfig::lora(2, 4.0), TargetModules::names(["head"]));
    assert_eq!(
        config.adapt(model).unwrap_err(),
        RLoraError::AlreadyAdapted {
            path: "head".to_string()
        }
    );
    let layer = linear::<NB>(4, 4, &dev())
        .adapt(&RLoraConfig::lora(2, 4.0))
        .unwrap();
    assert!(matches!(
        layer.adapt(&RLoraConfig::lora(2, 4.0)),
        Err(RLoraError::AlreadyAdapted { .. })
    ));
}

#[test]
fn a_layer_error_names_the_layer() {
    // Rank 4 fits the 8-wide layers but not the 2-wide head.
    let config = AdaptConfig::new(RLoraConfig::lora(4, 8.0), TargetModules::names(["head"]));
    let err = config.adapt(model()).unwrap_err();
    let RLoraError::AdaptLayer { path, source } = &err else {
        panic!("{err}");
    };
    assert_eq!(path, "head");
    assert!(matches!(**source, RLoraError::RankTooLarge { max: 2, .. }));
    assert!(err.to_string().starts_with("layer head: rank 4"), "{err}");
}

/// A generic field is adapted through the bound the derive adds.
#[derive(Module, Adapt, Debug)]
struct Wrapper<B: Backend, Inner> {
    inner: Inner,
    extra: RLoraLinear<B>,
}

#[test]
fn a_generic_field_is_walked() {
    let d = dev();
    let wrapper = Wrapper::<NB, Attention<NB>> {
        inner: Attention {
            query: linear(8, 8, &d),
            value: linear(8, 8, &d),
            out: LinearConfig::new(8, 8).init(&d),
        },
        extra: linear(8, 8, &d),
    };
    let config = AdaptConfig::new(RLoraConfig::lora(2, 4.0), TargetModules::names(["value"]));
    let (wrapper, adapted) = config.adapt_listed(wrapper).unwrap();
    assert_eq!(adapted, ["inner.value"]);
    assert!(wrapper.inner.value.is_adapted());
}

/// A hand-written impl for an enum module, as the trait's docs show.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
enum Projection<B: Backend> {
    Shared(RLoraLinear<B>),
    PerTask(Vec<RLoraLinear<B>>),
}

impl<B: Backend> Adapt for Projection<B> {
    fn map_layers<M: LayerMapper>(self, walk: &mut Walk<'_, M>) -> Result<Self, M::Error> {
        Ok(match self {
            Self::Shared(l) => Self::Shared(walk.field("shared", l)?),
            Self::PerTask(layers) => Self::PerTask(walk.field("per_task", layers)?),
        })
    }

    fn visit_layers<V: LayerVisitor>(&self, walk: &mut Walk<'_, V>) {
        match self {
            Self::Shared(l) => walk.visit_field("shared", l),
            Self::PerTask(layers) => walk.visit_field("per_task", layers),
        }
    }
}

#[derive(Module, Adapt, Debug)]
struct WithProjections<B: Backend> {
    projections: Vec<Projection<B>>,
}

#[test]
fn a_hand_written_impl_joins_the_walk() {
    let d = dev();
    let model = WithProjections::<NB> {
        projections: vec![
            Projection::Shared(linear(4, 4, &d)),
            Projection::PerTask(vec![linear(4, 4, &d), linear(4, 4, &d)]),
        ],
    };
    let config = AdaptConfig::new(
        RLoraConfig::lora(2, 4.0),
        TargetModules::names(["per_task.1", "shared"]),
    );
    let (_, adapted) = config.adapt_listed(model).unwrap();
    assert_eq!(
        adapted,
        ["projections.0.shared", "projections.1.per_task.1"]
    );
}

#[test]
fn the_config_round_trips_through_json_in_both_target_forms() {
    for targets in [
        TargetModules::names(["query", "value"]),
        TargetModules::regex(r".*\.dense"),
    ] {
        let config = AdaptConfig::new(RLoraConfig::hydra_lora(4, 8.0, 3), targets);
        let json = burn::config::config_to_json(&config);
        let back: AdaptConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }
    let json = burn::config::config_to_json(&AdaptConfig::new(
        RLoraConfig::lora(4, 8.0),
        TargetModules::regex("x"),
    ));
    assert!(json.contains(r#""target_modules": "x""#), "{json}");
}

/// A plain model's file loads into the adaptable model unchanged.
#[cfg(feature = "store")]
#[test]
fn a_plain_checkpoint_loads_into_adaptable_layers() {
    use burn_store::{ModuleSnapshot, SafetensorsStore};

    #[derive(Module, Debug)]
    struct PlainAttention<B: Backend> {
        query: Linear<B>,
        value: Linear<B>,
        out: Linear<B>,
    }

    let d = dev();
    let plain = PlainAttention::<NB> {
        query: LinearConfig::new(8, 8).init(&d),
        value: LinearConfig::new(8, 8).init(&d),
        out: LinearConfig::new(8, 8).init(&d),
    };
    let mut store = SafetensorsStore::from_bytes(None);
    plain.save_into(&mut store).unwrap();
    let bytes = store.get_bytes().unwrap();

    let mut fresh = Attention::<NB> {
        query: linear(8, 8, &d),
        value: linear(8, 8, &d),
        out: LinearConfig::new(8, 8).init(&d),
    };
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = fresh.load_from(&mut store).unwrap();
    assert!(result.is_success(), "{result:?}");
    let weight = |l: &RLoraLinear<NB>| l.weight.val().into_data();
    assert_eq!(weight(&fresh.query), plain.query.weight.val().into_data());
    assert_eq!(weight(&fresh.value), plain.value.weight.val().into_data());
}

/// Adapter files name a layer by its module path, without the variant.
#[cfg(feature = "store")]
#[test]
fn adapter_files_name_layers_without_the_variant() {
    use burn_rlora::checkpoint::{
        load_adapter, read_config, save_adapter, LoadOptions, ModuleNaming, SaveOptions,
    };

    let config = RLoraConfig::r_lora(2, 16.0, 3);
    let targets = TargetModules::names(["query", "ffn.0"]);
    let adapt = |m| {
        AdaptConfig::new(config.clone(), targets.clone())
            .adapt(m)
            .unwrap()
    };
    let trained = adapt(model());
    let dir = std::env::temp_dir().join(format!("rlora-adapt-{}", std::process::id()));
    save_adapter(&trained, &dir, &SaveOptions::new(config.clone())).unwrap();
    let saved = read_config(&dir).unwrap();
    assert_eq!(
        saved.target_module_paths,
        [
            "blocks.0.attention.query",
            "blocks.0.ffn.0",
            "blocks.1.attention.query",
            "blocks.1.ffn.0",
        ]
    );
    assert_eq!(saved.target_modules, ["0", "query"]);

    // A fresh adaptation of the same base draws other heads; loading restores them.
    let base = Model {
        blocks: trained.blocks.iter().map(plain_copy).collect(),
        head: linear(8, 2, &dev()),
    };
    let fresh = adapt(base);
    let (loaded, report) = load_adapter(fresh, &dir, &LoadOptions::new()).unwrap();
    assert_eq!(report.modules.len(), 4);
    let heads = |m: &Model<NB>| {
        m.blocks[1].ffn[0]
            .adapter()
            .unwrap()
            .lora_b
            .val()
            .into_data()
    };
    assert_eq!(heads(&loaded), heads(&trained));

    // A file that names the layers with the variant (`....query.Adapted`, as
    // files of earlier versions do) loads with a rule that appends it.
    let with_variant = ModuleNaming::new().with_rule("^(.*)$", "$1.Adapted");
    let old_dir = dir.with_extension("variant");
    save_adapter(
        &trained,
        &old_dir,
        &SaveOptions::new(config.clone()).with_naming(with_variant.clone()),
    )
    .unwrap();
    assert_eq!(
        read_config(&old_dir).unwrap().target_module_paths[0],
        "blocks.0.attention.query.Adapted"
    );
    let fresh = adapt(Model {
        blocks: trained.blocks.iter().map(plain_copy).collect(),
        head: linear(8, 2, &dev()),
    });
    assert!(load_adapter(fresh.clone(), &old_dir, &LoadOptions::new()).is_err());
    let (loaded, _) = load_adapter(
        fresh,
        &old_dir,
        &LoadOptions::new().with_naming(with_variant),
    )
    .unwrap();
    assert_eq!(heads(&loaded), heads(&trained));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&old_dir).ok();
}

/// The block with every layer back to its plain base (same weights).
#[cfg(feature = "store")]
fn plain_copy(b: &Block<NB>) -> Block<NB> {
    let plain = |l: &RLoraLinear<NB>| RLoraLinear::from(l.base());
    let mut copy = b.clone();
    copy.attention.query = plain(&b.attention.query);
    copy.ffn[0] = plain(&b.ffn[0]);
    copy
}

/// A model adapted by name merges back into the same type with plain layers.
#[cfg(feature = "store")]
#[test]
fn an_adapted_model_merges_into_its_plain_form() {
    use burn_rlora::checkpoint::merge_into;

    // LoRA merges exactly; train it a little so that the merge matters.
    let config = RLoraConfig::lora(2, 4.0);
    let targets = TargetModules::names(["query", "ffn.1", "head"]);
    let mut adapted = AdaptConfig::new(config.clone(), targets)
        .adapt(model())
        .unwrap();
    for layer in [&mut adapted.blocks[0].ffn[1], &mut adapted.head] {
        let adapter = layer.adapter.as_mut().unwrap();
        let b = adapter.lora_b.val();
        adapter.lora_b = Param::from_tensor(b.ones_like().mul_scalar(0.1));
    }
    let x = Tensor::<NB, 2>::random([3, 8], burn::tensor::Distribution::Default, &dev());
    let run = |m: &Model<NB>| {
        let b = &m.blocks[0];
        let h = b.attention.query.forward(x.clone());
        m.head.forward(b.ffn[1].forward(b.ffn[0].forward(h)))
    };
    let expected = run(&adapted);
    let merged = merge_into(adapted, &config, model()).unwrap();
    assert!(!merged.head.is_adapted());
    run(&merged)
        .into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
}

/// A field that only mentions a type parameter is kept unchanged in generic
/// code, as the `adapt` module's docs say: a target under it is not found.
#[derive(Module, Adapt, Debug)]
struct MaybeInner<B: Backend, Inner> {
    inner: Option<Inner>,
    extra: RLoraLinear<B>,
}

#[test]
fn a_field_that_only_mentions_a_type_parameter_is_kept() {
    let d = dev();
    let make = || MaybeInner::<NB, Attention<NB>> {
        inner: Some(Attention {
            query: linear(8, 8, &d),
            value: linear(8, 8, &d),
            out: LinearConfig::new(8, 8).init(&d),
        }),
        extra: linear(8, 8, &d),
    };
    let config = AdaptConfig::new(RLoraConfig::lora(2, 4.0), TargetModules::names(["value"]));
    let err = config.adapt(make()).unwrap_err();
    assert_eq!(
        err,
        RLoraError::TargetNotFound {
            target: "value".to_string(),
            adaptable: vec!["extra".to_string()],
        }
    );
    let config = AdaptConfig::new(RLoraConfig::lora(2, 4.0), TargetModules::names(["extra"]));
    let adapted = config.adapt(make()).unwrap();
    assert!(adapted.extra.is_adapted());
    assert!(!adapted.inner.unwrap().value.is_adapted());
}

/// The whole-model diagnostics find the adapted layers by type, and are an
/// error on a model with none.
#[test]
fn whole_model_diagnostics_find_the_adapted_layers_by_type() {
    let plain = model();
    assert_eq!(
        burn_rlora::adapt::adapted_paths(&plain),
        Vec::<String>::new()
    );
    let none = RLoraError::NoAdaptedLayer { operation: "count" };
    assert_eq!(burn_rlora::ParamCount::adapters_of(&plain), Err(none));
    assert!(matches!(
        burn_rlora::head_similarities(&plain),
        Err(RLoraError::NoAdaptedLayer { .. })
    ));

    let (adapted, paths) = adapt(TargetModules::names(["value", "head"])).unwrap();
    assert_eq!(burn_rlora::adapt::adapted_paths(&adapted), paths);
    // R-LoRA r=2, N=3 on 8->8 (`value`) and 8->2 (`head`): A, heads, router.
    let per_layer = |i: usize, o: usize| i * 2 + 3 * 2 * o + i * 3;
    assert_eq!(
        burn_rlora::ParamCount::adapters_of(&adapted),
        Ok(2 * per_layer(8, 8) + per_layer(8, 2))
    );
    let similarities = burn_rlora::head_similarities(&adapted).unwrap();
    let names: Vec<&str> = similarities.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, paths);
    let own = adapted.head.adapter().unwrap().head_similarity();
    assert_eq!(similarities.last().unwrap().1, own);
}

/// A mapper sees every `RLoraLinear`, plain or adapted, with its path, and
/// what it returns takes the layer's place.
#[test]
fn a_mapper_replaces_layers_by_path() {
    struct AdaptHead;
    impl LayerMapper for AdaptHead {
        type Error = RLoraError;
        fn map<B: Backend>(
            &mut self,
            path: &str,
            layer: RLoraLinear<B>,
        ) -> Result<RLoraLinear<B>, RLoraError> {
            if path == "head" {
                layer.adapt(&RLoraConfig::lora(1, 2.0))
            } else {
                Ok(layer)
            }
        }
    }
    struct Paths(Vec<String>);
    impl LayerVisitor for Paths {
        fn visit<B: Backend>(&mut self, path: &str, _: &RLoraLinear<B>) {
            self.0.push(path.to_string());
        }
    }
    let model = burn_rlora::adapt::map_layers(model(), &mut AdaptHead).unwrap();
    assert_eq!(burn_rlora::adapt::adapted_paths(&model), ["head"]);
    let mut all = Paths(Vec::new());
    burn_rlora::adapt::visit_layers(&model, &mut all);
    assert_eq!(
        all.0,
        [
            "blocks.0.attention.query",
            "blocks.0.attention.value",
            "blocks.0.ffn.0",
            "blocks.0.ffn.1",
            "blocks.0.gate",
            "blocks.1.attention.query",
            "blocks.1.attention.value",
            "blocks.1.ffn.0",
            "blocks.1.ffn.1",
            "head"
        ]
    );
}
