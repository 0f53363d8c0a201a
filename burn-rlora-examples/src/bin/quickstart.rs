//! Quickstart: adapt one layer of a small "pretrained" MLP with R-LoRA and
//! train only the adapter for a few steps on built-in data.
//!
//! ```text
//! cargo run -p burn-rlora-examples --bin quickstart
//! ```
//!
//! It runs on `Autodiff<Flex>`, Burn's CPU backend; the layer itself is
//! generic over any `B: Backend`, so another backend is a change of `B`.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn_rlora::{ParamCount, RLoraConfig, RLoraLinear};

/// The user's model, before adaptation.
#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    hidden: Linear<B>,
    out: Linear<B>,
}

/// The same model with its hidden layer adapted: only the field type changed.
#[derive(Module, Debug)]
struct AdaptedMlp<B: Backend> {
    hidden: RLoraLinear<B>,
    out: Linear<B>,
}

impl<B: Backend> AdaptedMlp<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.out
            .forward(Relu::new().forward(self.hidden.forward(x)))
    }
}

/// The backend: Burn's CPU backend `Flex`, with autodiff for training.
type B = Autodiff<Flex>;

fn main() -> Result<(), burn_rlora::RLoraError> {
    let device = &Default::default();
    B::seed(device, 42);
    // A "pretrained" model (seeded random weights stand in for training).
    let pretrained = Mlp {
        hidden: LinearConfig::new(16, 64).init::<B>(device),
        out: LinearConfig::new(64, 4).init::<B>(device),
    };
    // The new task: targets from a fixed random function of the input.
    let x = Tensor::<B, 2>::random([256, 16], Distribution::Normal(0.0, 1.0), device);
    let teacher = Tensor::<B, 2>::random([16, 4], Distribution::Normal(0.0, 0.5), device);
    let y = x.clone().matmul(teacher).tanh();

    // Adapt: wrap the trained hidden layer, freeze everything else.
    let mut model = AdaptedMlp {
        hidden: RLoraLinear::from_linear(pretrained.hidden, &RLoraConfig::r_lora(4, 32.0, 4))?,
        out: pretrained.out.no_grad(),
    };
    println!("{model}");
    println!("{}", ParamCount::of(&model));

    let mut optim = AdamConfig::new().init();
    for step in 0..=60 {
        let loss = (model.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
        if step % 10 == 0 {
            let eval = (model.valid().forward(x.clone().inner()) - y.clone().inner())
                .powi_scalar(2)
                .mean();
            println!(
                "step {step:3}  train loss {:.5}  eval loss {:.5}",
                loss.clone().into_scalar(),
                eval.into_scalar()
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    let sim = model
        .hidden
        .adapter()
        .expect("the hidden layer is adapted")
        .head_similarity();
    println!(
        "mean pairwise head cosine similarity: {:.4}",
        sim.mean_pairwise.unwrap_or(f64::NAN)
    );
    Ok(())
}
