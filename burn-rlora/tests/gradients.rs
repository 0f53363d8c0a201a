//! Gradients of A, the heads and the router against central finite differences, in f64,
//! with and without dropout (the masks are redrawn from the same seed for every evaluation).
//!
//! A test binary of its own, apart from `tests/it/`: `NdArray<f64>` and
//! `NdArray<f32>` share one CPU device, whose default float dtype is global
//! to the process, so next to the f32 tests these f64 checks would run in
//! f32 and fail on precision alone.

use burn::backend::{Autodiff, NdArray};
use burn::module::Param;
use burn::nn::LinearConfig;
use burn::tensor::{Distribution, Tensor, TensorData};
use burn_rlora::{RLoraConfig, RLoraLinear};

#[path = "it/common/mod.rs"]
mod common;

type B = Autodiff<NdArray<f64>>;

fn values<Bk: burn::tensor::backend::Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// Which trainable matrix to check.
#[derive(Clone, Copy, Debug)]
enum Which {
    A,
    Heads,
    Router,
}

fn param(layer: &mut RLoraLinear<B>, which: Which) -> &mut Param<Tensor<B, 2>> {
    match which {
        Which::A => &mut layer.adapter.as_mut().unwrap().lora_a,
        Which::Heads => &mut layer.adapter.as_mut().unwrap().lora_b,
        Which::Router => layer.adapter.as_mut().unwrap().lora_route.as_mut().unwrap(),
    }
}

/// loss = sum(y * w) for a fixed random `w`, so every output matters differently.
/// The RNG is reseeded first, so every evaluation draws the same dropout masks.
fn loss(layer: &RLoraLinear<B>, x: &Tensor<B, 3>, w: &Tensor<B, 3>) -> Tensor<B, 1> {
    <B as burn::tensor::backend::Backend>::seed(&x.device(), 11);
    (layer.forward(x.clone()) * w.clone()).sum()
}

fn check(config: RLoraConfig, whiches: &[Which]) {
    check_with_dropout(config, 0.0, whiches);
}

/// Returns the analytic gradients, in the order of `whiches`.
fn check_with_dropout(config: RLoraConfig, dropout: f64, whiches: &[Which]) -> Vec<Vec<f64>> {
    let _rng = common::rng_lock();
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 3);
    let base = LinearConfig::new(6, 5).init::<B>(&device);
    let mut layer = RLoraLinear::from_linear(base, &config.with_dropout(dropout)).unwrap();
    // Move away from init so the router is not uniform and every path is live.
    for &which in whiches {
        let p = param(&mut layer, which);
        *p = Param::from_tensor(p.val().random_like(Distribution::Normal(0.0, 0.5)));
    }
    let x = Tensor::<B, 3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<B, 3>::random([2, 3, 5], Distribution::Normal(0.0, 1.0), &device);

    let grads = loss(&layer, &x, &w).backward();
    let mut all = Vec::new();
    for &which in whiches {
        let analytic = values(param(&mut layer, which).grad(&grads).unwrap());
        let p = param(&mut layer, which).val();
        let shape = p.shape();
        let base_values = values(p);
        let eps = 1e-6;
        let mut worst = 0.0f64;
        for k in 0..base_values.len() {
            let at = |delta: f64| {
                let mut v = base_values.clone();
                v[k] += delta;
                let mut probe = layer.clone();
                *param(&mut probe, which) = Param::from_tensor(Tensor::from_data(
                    TensorData::new(v, shape.clone()),
                    &device,
                ));
                values(loss(&probe, &x, &w))[0]
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let err = (numeric - analytic[k]).abs() / (1e-6 + numeric.abs().max(analytic[k].abs()));
            worst = worst.max(err);
        }
        assert!(worst < 1e-5, "{which:?}: worst relative error {worst}");
        assert!(
            analytic.iter().any(|g| g.abs() > 1e-6),
            "{which:?}: gradient is all zero"
        );
        all.push(analytic);
    }
    all
}

#[test]
fn r_lora_gradients_match_finite_differences() {
    check(
        RLoraConfig::r_lora(3, 8.0, 4),
        &[Which::A, Which::Heads, Which::Router],
    );
}

#[test]
fn hydra_lora_gradients_match_finite_differences() {
    check(
        RLoraConfig::hydra_lora(2, 4.0, 3),
        &[Which::A, Which::Heads, Which::Router],
    );
}

#[test]
fn no_router_and_lora_gradients_match_finite_differences() {
    check(
        RLoraConfig::r_lora_no_router(2, 4.0, 3),
        &[Which::A, Which::Heads],
    );
    check(RLoraConfig::lora(2, 4.0), &[Which::A, Which::Heads]);
}

#[test]
fn gradients_through_both_dropout_modes_match_finite_differences() {
    let whiches = [Which::A, Which::Heads, Which::Router];
    for config in [
        RLoraConfig::r_lora(3, 8.0, 4),     // one mask per head on A x
        RLoraConfig::hydra_lora(2, 4.0, 3), // one mask on x
    ] {
        let dropped = check_with_dropout(config.clone(), 0.4, &whiches);
        // The masks must have changed the gradients, or the check above
        // would not have tested the dropout path.
        let clean = check_with_dropout(config, 0.0, &whiches);
        let differs = dropped
            .iter()
            .flatten()
            .zip(clean.iter().flatten())
            .any(|(a, b)| (a - b).abs() > 1e-6);
        assert!(differs, "dropout 0.4 left every gradient unchanged");
    }
}
