//! Behavioural tests written once, generic over the backend, and instantiated
//! per backend by `backend_suite!` (see `backends.rs`).
#![allow(dead_code)]

use burn::module::{AutodiffModule, Module, Param};
use burn::nn::LinearConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor, TensorData, Tolerance};
use burn_rlora::method::Method;
use burn_rlora::RLoraLinear;

/// Read a tensor out as f64 values at once (wgpu can reuse buffers later).
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// A layer for `method`, with a random base `d_in -> d_out`.
pub fn layer<B: Backend>(
    method: Method,
    (d_in, d_out): (usize, usize),
    device: &B::Device,
) -> RLoraLinear<B> {
    let base = LinearConfig::new(d_in, d_out).init::<B>(device);
    RLoraLinear::from_linear(base, &method.config(4, 16.0, 3)).unwrap()
}

/// Replace every trainable adapter matrix with a fresh random draw, as if
/// trained: heads, `A` and router all non-trivial, compensation pair kept.
pub fn perturb<B: Backend>(mut layer: RLoraLinear<B>, scale: f64) -> RLoraLinear<B> {
    let rand = |p: &Param<Tensor<B, 2>>| {
        let t = p.val();
        Param::from_tensor(t.random_like(Distribution::Normal(0.0, scale)))
    };
    layer.adapter.as_mut().unwrap().lora_a = rand(&layer.adapter.as_ref().unwrap().lora_a);
    layer.adapter.as_mut().unwrap().lora_b = rand(&layer.adapter.as_ref().unwrap().lora_b);
    layer.adapter.as_mut().unwrap().lora_route = layer
        .adapter
        .as_ref()
        .unwrap()
        .lora_route
        .as_ref()
        .map(rand);
    layer
}

/// A naive reference: a loop over heads, each with its own product, written
/// from the method's formula and not from the layer's code.
pub fn naive_forward<B: Backend>(layer: &RLoraLinear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let cfg = layer.config();
    let (r, n, s) = (
        cfg.unwrap().rank,
        cfg.unwrap().num_heads,
        cfg.unwrap().scaling(),
    );
    let mut y = x.clone().matmul(layer.weight.val());
    if let Some(b) = &layer.bias {
        y = y + b.val().unsqueeze_dim(0);
    }
    let z = x
        .clone()
        .matmul(layer.adapter.as_ref().unwrap().lora_a.val());
    let [t, _] = x.dims();
    let gates = match &layer.adapter.as_ref().unwrap().lora_route {
        Some(route) => burn::tensor::activation::softmax(x.clone().matmul(route.val()), 1),
        None => Tensor::ones([t, n], &x.device()).div_scalar(n as f64),
    };
    for i in 0..n {
        let b_i = layer
            .adapter
            .as_ref()
            .unwrap()
            .lora_b
            .val()
            .narrow(0, i * r, r);
        let g_i = gates.clone().narrow(1, i, 1);
        y = y + z.clone().matmul(b_i).mul(g_i).mul_scalar(s);
    }
    if let (Some(a0), Some(b0)) = (
        &layer.adapter.as_ref().unwrap().lora_a0,
        &layer.adapter.as_ref().unwrap().lora_b0,
    ) {
        y = y - x.matmul(a0.val()).matmul(b0.val()).mul_scalar(s);
    }
    y
}

/// At init, in eval mode, every preset computes exactly what the base computes.
pub fn identity_at_init<B: Backend>(device: &B::Device) {
    let _rng = crate::common::rng_lock();
    B::seed(device, 11);
    for method in Method::ALL {
        let base = LinearConfig::new(24, 20).init::<B>(device);
        let x = Tensor::<B, 3>::random([2, 5, 24], Distribution::Normal(0.0, 1.0), device);
        let expected = values(base.forward(x.clone()));
        let layer = RLoraLinear::from_linear(base, &method.config(4, 32.0, 4)).unwrap();
        let got = values(layer.forward(x));
        let diff = max_abs_diff(&got, &expected);
        assert!(
            diff < 1e-5 * max_abs(&expected).max(1.0),
            "{method}: identity off by {diff}"
        );
    }
}

/// The fused forward equals the naive per-head loop on a trained-looking layer.
pub fn fused_matches_naive<B: Backend>(device: &B::Device) {
    let _rng = crate::common::rng_lock();
    B::seed(device, 12);
    for method in Method::ALL {
        let layer = perturb(layer::<B>(method, (24, 20), device), 0.3);
        let x = Tensor::<B, 2>::random([7, 24], Distribution::Normal(0.0, 1.0), device);
        let fused = values(layer.forward(x.clone()));
        let naive = values(naive_forward(&layer, x));
        let diff = max_abs_diff(&fused, &naive);
        assert!(
            diff < 1e-4 * max_abs(&naive).max(1.0),
            "{method}: fused vs naive off by {diff}"
        );
    }
}

/// Gradients of A, heads and router on backend `B` agree with those on `R`
/// (the CPU reference), for the same weights and input.
pub fn gradients_match_reference<B: AutodiffBackend, R: AutodiffBackend>(
    device: &B::Device,
    ref_device: &R::Device,
) {
    let _rng = crate::common::rng_lock();
    R::seed(ref_device, 13);
    let reference = perturb(layer::<R>(Method::RLora, (12, 10), ref_device), 0.3);
    let mut reference = reference;
    reference.set_dropout(0.0).unwrap();
    let x_ref = Tensor::<R, 2>::random([6, 12], Distribution::Normal(0.0, 1.0), ref_device);

    // Copy the reference's weights to B through a record.
    let record = reference.clone().into_record();
    let bytes = burn::record::BinBytesRecorder::<burn::record::FullPrecisionSettings>::default();
    let encoded = burn::record::Recorder::<R>::record(&bytes, record, ()).unwrap();
    let mut template = layer::<B>(Method::RLora, (12, 10), device);
    template.set_dropout(0.0).unwrap();
    let decoded = burn::record::Recorder::<B>::load(&bytes, encoded, device).unwrap();
    let other = template.load_record(decoded);
    let x = Tensor::<B, 2>::from_data(x_ref.to_data().convert::<f32>(), device);

    fn grads_of(
        names: [&'static str; 3],
        a: Vec<f64>,
        b: Vec<f64>,
        r: Vec<f64>,
    ) -> Vec<(&'static str, Vec<f64>)> {
        names.into_iter().zip([a, b, r]).collect()
    }
    let g_ref = {
        let loss = reference.forward(x_ref).powi_scalar(2).mean();
        let g = loss.backward();
        grads_of(
            ["A", "B", "router"],
            values(reference.adapter.as_ref().unwrap().lora_a.grad(&g).unwrap()),
            values(reference.adapter.as_ref().unwrap().lora_b.grad(&g).unwrap()),
            values(
                reference
                    .adapter
                    .as_ref()
                    .unwrap()
                    .lora_route
                    .as_ref()
                    .unwrap()
                    .grad(&g)
                    .unwrap(),
            ),
        )
    };
    let g_other = {
        let loss = other.forward(x).powi_scalar(2).mean();
        let g = loss.backward();
        grads_of(
            ["A", "B", "router"],
            values(other.adapter.as_ref().unwrap().lora_a.grad(&g).unwrap()),
            values(other.adapter.as_ref().unwrap().lora_b.grad(&g).unwrap()),
            values(
                other
                    .adapter
                    .as_ref()
                    .unwrap()
                    .lora_route
                    .as_ref()
                    .unwrap()
                    .grad(&g)
                    .unwrap(),
            ),
        )
    };
    for ((name, want), (_, got)) in g_ref.iter().zip(&g_other) {
        let diff = max_abs_diff(got, want);
        let tol = 1e-4 * max_abs(want).max(1e-3);
        assert!(
            diff <= tol,
            "gradient of {name}: off by {diff} (tolerance {tol})"
        );
        assert!(
            max_abs(want) > 0.0,
            "gradient of {name} is zero: the check would be vacuous"
        );
    }
}

/// The base gets no gradient and an Adam step leaves it bit-identical,
/// while the adapter moves.
pub fn base_frozen_through_adam<B: AutodiffBackend>(device: &B::Device) {
    let _rng = crate::common::rng_lock();
    B::seed(device, 14);
    let layer = layer::<B>(Method::RLora, (16, 12), device);
    let w_before = layer.weight.val().to_data();
    let b_before = layer.bias.as_ref().unwrap().val().to_data();
    let a_before = values(layer.adapter.as_ref().unwrap().lora_a.val());
    let x = Tensor::<B, 2>::random([8, 16], Distribution::Normal(0.0, 1.0), device);
    let target = Tensor::<B, 2>::random([8, 12], Distribution::Normal(0.0, 1.0), device);
    let loss = (layer.forward(x) - target).powi_scalar(2).mean();
    let grads = loss.backward();
    assert!(
        layer.weight.grad(&grads).is_none(),
        "the base weight got a gradient"
    );
    assert!(
        layer.bias.as_ref().unwrap().grad(&grads).is_none(),
        "the base bias got a gradient"
    );
    assert!(
        layer
            .adapter
            .as_ref()
            .unwrap()
            .lora_a0
            .as_ref()
            .unwrap()
            .grad(&grads)
            .is_none(),
        "A0 got a gradient"
    );
    let grads = GradientsParams::from_grads(grads, &layer);
    let mut optim = AdamConfig::new().init::<B, RLoraLinear<B>>();
    let layer = optim.step(1e-2, layer, grads);
    assert_eq!(
        layer.weight.val().to_data(),
        w_before,
        "Adam changed the base weight"
    );
    assert_eq!(
        layer.bias.as_ref().unwrap().val().to_data(),
        b_before,
        "Adam changed the bias"
    );
    let moved = max_abs_diff(
        &values(layer.adapter.as_ref().unwrap().lora_a.val()),
        &a_before,
    );
    assert!(moved > 1e-4, "Adam did not move A ({moved})");
}

/// A few optimizer steps on a fixed regression target lower the loss.
pub fn training_lowers_loss<B: AutodiffBackend>(device: &B::Device) {
    let _rng = crate::common::rng_lock();
    B::seed(device, 15);
    let mut layer = layer::<B>(Method::RLora, (16, 8), device);
    let x = Tensor::<B, 2>::random([32, 16], Distribution::Normal(0.0, 1.0), device);
    let shift = Tensor::<B, 2>::random([16, 8], Distribution::Normal(0.0, 0.5), device);
    let target = layer.valid().forward(x.clone().inner()).detach();
    let target = Tensor::<B, 2>::from_inner(target) + x.clone().matmul(shift);
    let mut optim = AdamConfig::new().init::<B, RLoraLinear<B>>();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let loss = (layer.forward(x.clone()) - target.clone())
            .powi_scalar(2)
            .mean();
        losses.push(values(loss.clone())[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        layer = optim.step(2e-2, layer, grads);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.7 * first, "loss went from {first} to {last}");
}

/// Compare two tensors' data with a tolerance (helper for backend files).
pub fn assert_close(a: TensorData, b: TensorData) {
    a.assert_approx_eq::<f32>(&b, Tolerance::absolute(1e-5));
}

/// Whether a backend can run here: a tiny op inside `catch_unwind`, because
/// Burn's wgpu and cuda backends panic when no adapter or device exists.
pub fn backend_runs<B: Backend>(device: &B::Device) -> Result<(), String> {
    let device = device.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let t = Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
        values(t.sum())[0]
    }));
    match result {
        Ok(v) if (v - 3.0).abs() < 1e-6 => Ok(()),
        Ok(v) => Err(format!("a test sum gave {v}, not 3")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".into())),
    }
}

/// Skip (return `false`, printing why) when the backend cannot run, unless
/// `require_var` is set in the environment, in which case fail.
pub fn available<B: Backend>(name: &str, device: &B::Device, require_var: &str) -> bool {
    static CHECKED: std::sync::Mutex<Vec<(String, Result<(), String>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    let status = match checked.iter().find(|(n, _)| n == name) {
        Some((_, status)) => status.clone(),
        None => {
            let status = backend_runs::<B>(device);
            checked.push((name.to_string(), status.clone()));
            status
        }
    };
    match status {
        Ok(()) => true,
        Err(why) if std::env::var_os(require_var).is_some() => {
            panic!("{name} backend required by {require_var} but unavailable: {why}")
        }
        Err(why) => {
            // Written to the process's stderr directly, which the test harness
            // does not capture, so that the reason shows in CI logs.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {name}: no usable device ({why})"
            );
            false
        }
    }
}

/// Instantiate the shared suite for one backend. With `gate = "NAME", "VAR"`
/// every test first checks that the backend runs, skipping with a printed
/// reason otherwise (or failing when the environment variable `VAR` is set).
#[macro_export]
macro_rules! backend_suite {
    ($name:ident, $backend:ty, $device:expr) => {
        backend_suite!(@suite $name, $backend, $device, |_d| true);
    };
    ($name:ident, $backend:ty, $device:expr, gate = $label:literal, $var:literal) => {
        backend_suite!(@suite $name, $backend, $device, |d| suite::available::<$backend>($label, d, $var));
    };
    (@suite $name:ident, $backend:ty, $device:expr, $gate:expr) => {
        mod $name {
            use super::suite;
            type B = $backend;
            type AB = burn::backend::Autodiff<$backend>;
            fn device() -> burn::tensor::Device<B> {
                $device
            }
            fn gate() -> bool {
                let check: fn(&burn::tensor::Device<B>) -> bool = $gate;
                check(&device())
            }

            #[test]
            fn identity_at_init() {
                if gate() {
                    suite::identity_at_init::<B>(&device());
                }
            }

            #[test]
            fn fused_matches_naive() {
                if gate() {
                    suite::fused_matches_naive::<B>(&device());
                }
            }

            #[test]
            fn gradients_match_ndarray() {
                if gate() {
                    suite::gradients_match_reference::<AB, burn::backend::Autodiff<burn::backend::NdArray>>(
                        &device(),
                        &Default::default(),
                    );
                }
            }

            #[test]
            fn base_frozen_through_adam() {
                if gate() {
                    suite::base_frozen_through_adam::<AB>(&device());
                }
            }

            #[test]
            fn training_lowers_loss() {
                if gate() {
                    suite::training_lowers_loss::<AB>(&device());
                }
            }
        }
    };
}
