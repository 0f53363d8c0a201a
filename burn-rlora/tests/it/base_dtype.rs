//! A frozen base in half precision (`with_base_dtype`), on flex: what is
//! stored in which type, the output against the f32 layer's, gradients,
//! merge, and the model-wide cast.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, FloatDType, Tensor};
use burn_rlora::adapt::with_base_dtype;
use burn_rlora::{Adapt, RLoraConfig, RLoraError, RLoraLinear};

type B = Flex;
type AB = Autodiff<Flex>;

/// The largest `|a - b|` and the largest `|b|`.
fn diff_and_scale<Bk: Backend>(a: Tensor<Bk, 2>, b: Tensor<Bk, 2>) -> (f32, f32) {
    let a: Vec<f32> = a.into_data().convert::<f32>().into_vec().unwrap();
    let b: Vec<f32> = b.into_data().convert::<f32>().into_vec().unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f32::max);
    (diff, scale)
}

/// An R-LoRA layer whose heads moved away from their start (so that the
/// adapter contributes), in f32, without dropout (so that two layers built
/// alike compute alike on an autodiff backend too).
fn trained_layer<Bk: Backend>(d_in: usize, d_out: usize) -> RLoraLinear<Bk> {
    layer_of(
        &RLoraConfig::r_lora(4, 8.0, 3).with_dropout(0.0),
        d_in,
        d_out,
    )
}

/// A layer of `config` (rank 4, 3 heads) whose heads moved from their start.
/// (Tests run in parallel and share the backend's RNG: compare clones of
/// one layer, never two layers drawn from one seed.)
fn layer_of<Bk: Backend>(config: &RLoraConfig, d_in: usize, d_out: usize) -> RLoraLinear<Bk> {
    let device = Default::default();
    let base = LinearConfig::new(d_in, d_out).init::<Bk>(&device);
    let mut layer = RLoraLinear::from_linear(base, config).unwrap();
    let adapter = layer.adapter.as_mut().unwrap();
    let moved =
        adapter.lora_b.val() + Tensor::random([12, d_out], Distribution::Normal(0.0, 0.5), &device);
    adapter.lora_b = adapter.lora_b.clone().map(|_| moved);
    layer
}

#[test]
fn the_base_is_stored_in_half_precision_and_the_adapter_and_output_are_not() {
    for dtype in [FloatDType::F16, FloatDType::BF16] {
        let layer = trained_layer::<B>(32, 24).with_base_dtype(dtype).unwrap();
        assert_eq!(layer.weight.val().dtype(), DType::from(dtype));
        assert_eq!(
            layer.bias.as_ref().unwrap().val().dtype(),
            DType::from(dtype)
        );
        let adapter = layer.adapter().unwrap();
        assert_eq!(adapter.lora_a.val().dtype(), DType::F32);
        assert_eq!(adapter.lora_b.val().dtype(), DType::F32);
        let x = Tensor::<B, 3>::random(
            [2, 5, 32],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let y = layer.forward(x);
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.dims(), [2, 5, 24]);
    }
}

#[test]
fn a_half_precision_base_computes_the_f32_layer_to_its_rounding() {
    let device = Default::default();
    let x = Tensor::<B, 2>::random([16, 64], Distribution::Normal(0.0, 1.0), &device);
    let full = trained_layer::<B>(64, 48);
    let expected = full.forward(x.clone());
    // Unit roundoff of each type; the base product sums 64 terms of
    // inputs and weights each rounded once, the result rounded again.
    for (dtype, unit) in [
        (FloatDType::F16, 2f32.powi(-11)),
        (FloatDType::BF16, 2f32.powi(-8)),
    ] {
        let half = full.clone().with_base_dtype(dtype).unwrap();
        let (diff, scale) = diff_and_scale(half.forward(x.clone()), expected.clone());
        assert!(
            diff > 0.0,
            "{dtype:?}: no rounding at all: the base did not run in half precision"
        );
        assert!(
            diff <= 16.0 * unit * scale,
            "{dtype:?}: {diff} against scale {scale}"
        );
    }
}

#[test]
fn the_adapter_trains_through_a_half_precision_base_and_the_base_does_not() {
    let device = Default::default();
    let x =
        Tensor::<AB, 2>::random([8, 32], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let grads_of = |layer: &RLoraLinear<AB>| {
        let grads = layer.forward(x.clone()).powi_scalar(2).mean().backward();
        let a = layer
            .adapter()
            .unwrap()
            .lora_a
            .grad(&grads)
            .expect("A has a gradient");
        let base = layer.weight.grad(&grads);
        let input = x.grad(&grads).expect("the input has a gradient");
        (a, base, input)
    };
    let full = trained_layer::<AB>(32, 24);
    let (a32, base32, x32) = grads_of(&full);
    assert!(base32.is_none());
    let (a16, base16, x16) = grads_of(&full.clone().with_base_dtype(FloatDType::BF16).unwrap());
    assert!(base16.is_none(), "the frozen base got a gradient");
    assert_eq!(a16.dtype(), DType::F32);
    assert_eq!(x16.dtype(), DType::F32);
    for (half, full) in [(a16, a32), (x16, x32)] {
        let (diff, scale) = diff_and_scale(half, full);
        assert!(
            scale > 0.0 && diff <= 0.05 * scale,
            "{diff} against {scale}"
        );
    }
}

#[test]
fn merge_keeps_a_half_precision_base_in_its_type() {
    let device = Default::default();
    let x = Tensor::<B, 2>::random([6, 32], Distribution::Normal(0.0, 1.0), &device);
    // Only a uniform router merges exactly.
    let config = RLoraConfig::r_lora_no_router(4, 8.0, 3);
    let adapted = layer_of::<B>(&config, 32, 24)
        .with_base_dtype(FloatDType::F16)
        .unwrap();
    let merged = adapted.merge().unwrap();
    assert_eq!(merged.weight.val().dtype(), DType::F16);
    let (diff, scale) = diff_and_scale(
        RLoraLinear::from(merged).forward(x.clone()),
        adapted.forward(x),
    );
    assert!(
        scale > 0.0 && diff <= 16.0 * 2f32.powi(-11) * scale,
        "{diff} against {scale}"
    );
}

#[derive(Module, Adapt, Debug)]
// The derives name the backend parameter `B`, as Burn's own do.
struct Stack<B: Backend> {
    blocks: Vec<RLoraLinear<B>>,
    head: Option<RLoraLinear<B>>,
}

#[test]
fn the_model_wide_cast_reaches_every_layer_plain_or_adapted() {
    let device = Default::default();
    let plain = || RLoraLinear::from(LinearConfig::new(8, 8).init::<B>(&device));
    let model = Stack {
        blocks: vec![plain(), plain().adapt(&RLoraConfig::lora(2, 4.0)).unwrap()],
        head: Some(plain()),
    };
    let model = with_base_dtype(model, FloatDType::BF16).unwrap();
    for layer in model.blocks.iter().chain(&model.head) {
        assert_eq!(layer.weight.val().dtype(), DType::BF16);
    }
    let adapter = model.blocks[1].adapter().unwrap();
    assert_eq!(adapter.lora_a.val().dtype(), DType::F32);
}

#[test]
fn a_backend_without_the_precision_is_a_typed_error_before_any_cast() {
    let device = Default::default();
    let layer = RLoraLinear::from(LinearConfig::new(8, 8).init::<NdArray>(&device));
    // Drawn once (a clone of a lazy `Param` draws its values again).
    let _drawn = layer.weight.val();
    for dtype in [FloatDType::F16, FloatDType::BF16] {
        let err = layer.clone().with_base_dtype(dtype).unwrap_err();
        assert!(
            matches!(err, RLoraError::UnsupportedDtype { dtype: d } if d == dtype),
            "{err}"
        );
        assert!(err.to_string().contains("does not support"), "{err}");
    }
    let model = Stack::<NdArray> {
        blocks: vec![layer.clone()],
        head: None,
    };
    let err = with_base_dtype(model, FloatDType::F16).unwrap_err();
    assert!(matches!(err, RLoraError::UnsupportedDtype { .. }), "{err}");
    // f32 is every backend's, and a no-op.
    let same = layer.clone().with_base_dtype(FloatDType::F32).unwrap();
    assert_eq!(
        same.weight.val().into_data(),
        layer.weight.val().into_data()
    );
}
