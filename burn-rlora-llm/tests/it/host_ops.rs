//! The decoder computes the same logits and adapter gradients with its host
//! SiLU kernel as with Burn's `silu`, and the kernel is opt-in.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, Tolerance};
use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use burn_rlora_llm::{CausalLm, DecoderConfig};

type AD = Autodiff<Flex>;

/// A tiny decoder with R-LoRA (no dropout) on the feed-forward projections.
fn adapted(device: &burn::tensor::Device<AD>) -> CausalLm<AD> {
    let base = DecoderConfig::new(50, 16, 24, 2, 4, 2, 32)
        .init::<AD>(device)
        .unwrap();
    assert!(!base.host_ops(), "the host kernels are opt-in");
    AdaptConfig::new(
        RLoraConfig::r_lora(2, 8.0, 3).with_dropout(0.0),
        TargetModules::names(["gate_proj", "up_proj", "down_proj"]),
    )
    .adapt(base)
    .unwrap()
}

/// Every adapted projection's `A` and stacked `B`, in module order.
fn adapter_weights(m: &CausalLm<AD>) -> Vec<Tensor<AD, 2>> {
    m.model
        .layers
        .iter()
        .flat_map(|l| [&l.mlp.gate_proj, &l.mlp.up_proj, &l.mlp.down_proj])
        .flat_map(|p| {
            let a = p.adapter.as_ref().expect("adapted");
            [a.lora_a.val(), a.lora_b.val()]
        })
        .collect()
}

#[test]
fn host_silu_matches_burns_logits_and_adapter_gradients() {
    let device = Default::default();
    AD::seed(&device, 5);
    let burn_ops = adapted(&device);
    let host = burn_ops.clone().with_host_ops(true);
    assert!(host.host_ops() && !burn_ops.host_ops());
    let ids = [vec![3u32, 17, 42, 8, 0, 49, 21, 5]];
    let tokens = || host.tokens(&ids, &device).unwrap();
    let tol = Tolerance::<f32>::absolute(1e-5);

    // Evaluation (no autodiff).
    let eval = host.valid().forward(tokens().inner(), None).unwrap();
    let eval_ref = burn_ops.valid().forward(tokens().inner(), None).unwrap();
    eval.into_data()
        .assert_approx_eq::<f32>(&eval_ref.into_data(), tol);

    // Training: the same loss and the same gradient of every adapter weight.
    let loss = |m: &CausalLm<AD>| m.forward(tokens(), None).unwrap().powi_scalar(2).mean();
    let (l, l_ref) = (loss(&host), loss(&burn_ops));
    l.clone()
        .into_data()
        .assert_approx_eq::<f32>(&l_ref.clone().into_data(), tol);
    let (g, g_ref) = (l.backward(), l_ref.backward());
    let (ws, ws_ref) = (adapter_weights(&host), adapter_weights(&burn_ops));
    assert_eq!(ws.len(), 12);
    for (w, w_ref) in ws.iter().zip(&ws_ref) {
        let (gw, gw_ref) = (w.grad(&g).unwrap(), w_ref.grad(&g_ref).unwrap());
        assert!(
            gw_ref.clone().abs().max().into_scalar() > 0.0,
            "a zero gradient compares nothing"
        );
        gw.into_data()
            .assert_approx_eq::<f32>(&gw_ref.into_data(), tol);
    }
    // Turned off again, the model is Burn's.
    assert!(!host.with_host_ops(false).host_ops());
}
