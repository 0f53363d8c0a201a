//! The encoder computes the same outputs and gradients with its host GELU
//! and dropout kernels as with Burn's `gelu` and `Dropout`, and its dropout is
//! active in training only.

#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, Tolerance};
use burn_rlora::RLoraConfig;
use burn_rlora_pretrained::minilm::{BertConfig, BertInput, BertModel, EncoderAdapterConfig};

type AD = Autodiff<Flex>;

fn batch<Bk: Backend>(device: &Bk::Device) -> BertInput<Bk> {
    let ids = [[2, 11, 12, 13, 14, 15, 3], [2, 21, 22, 3, 0, 0, 0]];
    let mask = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]];
    let t = |v: [[i64; 7]; 2]| Tensor::<Bk, 2, Int>::from_data(TensorData::from(v), device);
    BertInput {
        input_ids: t(ids),
        token_type_ids: t([[0; 7]; 2]),
        attention_mask: t(mask),
    }
}

fn adapted(dropout: f64, device: &burn::backend::flex::FlexDevice) -> BertModel<AD> {
    let mut config = BertConfig::tiny(40);
    config.hidden_dropout_prob = dropout;
    config.attention_probs_dropout_prob = dropout;
    let model = config.init::<AD>(device).unwrap();
    assert!(!model.host_ops(), "the host kernels are opt-in");
    let model = model.with_host_ops(true);
    let _ = model.forward(&batch(device));
    model
        .adapt(&EncoderAdapterConfig::new(
            RLoraConfig::r_lora(2, 8.0, 3).with_dropout(0.0),
        ))
        .unwrap()
}

#[test]
fn host_kernels_match_burns_values_and_gradients() {
    let device = Default::default();
    AD::seed(&device, 3);
    let model = adapted(0.0, &device);
    let burn_ops = model.clone().with_host_ops(false);
    let tol = Tolerance::<f32>::absolute(1e-5);

    // Evaluation (no autodiff): GELU only.
    let eval = model.valid().forward(&batch(&device));
    let eval_ref = burn_ops.valid().forward(&batch(&device));
    eval.into_data()
        .assert_approx_eq::<f32>(&eval_ref.into_data(), tol);

    // Training without dropout: same loss and same gradient of every adapter.
    let loss = |m: &BertModel<AD>| m.sentence_embedding(&batch(&device)).powi_scalar(2).mean();
    let (l, l_ref) = (loss(&model), loss(&burn_ops));
    l.clone()
        .into_data()
        .assert_approx_eq::<f32>(&l_ref.clone().into_data(), tol);
    let g = GradientsParams::from_grads(l.backward(), &model);
    let g_ref = GradientsParams::from_grads(l_ref.backward(), &burn_ops);
    let mut compared = 0;
    for ((_, _, a), (_, _, b)) in model.adapted_layers().iter().zip(burn_ops.adapted_layers()) {
        let ga = g
            .get::<Flex, 2>(a.adapter.as_ref().unwrap().lora_a.id)
            .unwrap();
        let gb = g_ref
            .get::<Flex, 2>(b.adapter.as_ref().unwrap().lora_a.id)
            .unwrap();
        ga.into_data().assert_approx_eq::<f32>(&gb.into_data(), tol);
        compared += 1;
    }
    assert_eq!(compared, 4);
}

#[test]
fn host_dropout_is_active_in_training_only() {
    let device = Default::default();
    AD::seed(&device, 5);
    let model = adapted(0.3, &device);
    let train = |m: &BertModel<AD>| m.forward(&batch(&device)).into_data();
    // Two training passes draw different masks.
    let (a, b) = (train(&model), train(&model));
    assert_ne!(a, b);
    // Evaluation is deterministic and differs from training.
    let eval = model.valid();
    let (e1, e2) = (
        eval.forward(&batch(&device)).into_data(),
        eval.forward(&batch(&device)).into_data(),
    );
    assert_eq!(e1, e2);
    assert_ne!(e1.convert::<f32>(), a.convert::<f32>());
}
