//! Shared pieces of the benchmarks: the shapes, the variants, and a
//! deliberately naive per-head-loop layer to show what fusing buys.
//!
//! Every variant is timed as one training step of `mean(y^2)`: forward, then
//! backward with the input requiring a gradient (as inside a network).

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use burn_rlora::{RLoraConfig, RLoraLinear};

/// One benchmark shape: a layer `d_in -> d_out` with rank `r`, `n` heads and `t` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Name in the tables (S1..S4).
    pub name: &'static str,
    /// Input features.
    pub d_in: usize,
    /// Output features.
    pub d_out: usize,
    /// Rank per head.
    pub r: usize,
    /// Heads.
    pub n: usize,
    /// Tokens per step.
    pub t: usize,
}

/// The shapes of the issue (and of `shared/method.md`'s PyTorch measurements).
pub const SHAPES: [Shape; 4] = [
    Shape {
        name: "S1",
        d_in: 896,
        d_out: 4864,
        r: 8,
        n: 5,
        t: 1024,
    },
    Shape {
        name: "S2",
        d_in: 4864,
        d_out: 896,
        r: 8,
        n: 5,
        t: 1024,
    },
    Shape {
        name: "S3",
        d_in: 512,
        d_out: 512,
        r: 8,
        n: 4,
        t: 4096,
    },
    Shape {
        name: "S4",
        d_in: 2048,
        d_out: 2048,
        r: 16,
        n: 8,
        t: 512,
    },
];

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The frozen `Linear` alone.
    Frozen,
    /// `RLoraConfig::lora` with rank `r`.
    Lora,
    /// `RLoraConfig::hydra_lora`.
    HydraLora,
    /// `RLoraConfig::r_lora`.
    RLora,
    /// [`NaiveMultiHead`]: a loop over heads, reference style.
    NaiveLoop,
}

impl Variant {
    /// All variants, the baseline first.
    pub const ALL: [Variant; 5] = [
        Self::Frozen,
        Self::Lora,
        Self::HydraLora,
        Self::RLora,
        Self::NaiveLoop,
    ];

    /// Name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Lora => "lora",
            Self::HydraLora => "hydralora",
            Self::RLora => "rlora",
            Self::NaiveLoop => "naive-loop",
        }
    }
}

/// The reference code's structure, written naively on purpose: `A x` is
/// recomputed for every head, each head has its own dropout and its own
/// `[T, d_out]` product, and the gated outputs are summed.
#[derive(Module, Debug)]
pub struct NaiveMultiHead<B: Backend> {
    /// Frozen base.
    pub base: Linear<B>,
    /// `A`, `[d_in, r]`.
    pub a: Param<Tensor<B, 2>>,
    /// The heads, each `[r, d_out]`.
    pub heads: Vec<Param<Tensor<B, 2>>>,
    /// Router `[d_in, n]`.
    pub route: Param<Tensor<B, 2>>,
}

impl<B: Backend> NaiveMultiHead<B> {
    /// Random adapter over a frozen base.
    pub fn new(base: Linear<B>, s: Shape, device: &B::Device) -> Self {
        let rand = |rows, cols| {
            Param::from_tensor(Tensor::random(
                [rows, cols],
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        Self {
            base: base.no_grad(),
            a: rand(s.d_in, s.r),
            heads: (0..s.n).map(|_| rand(s.r, s.d_out)).collect(),
            route: rand(s.d_in, s.n),
        }
    }

    /// The forward, one head at a time.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let training = B::ad_enabled(&x.device());
        let gates = softmax(x.clone().matmul(self.route.val()), 1);
        let mut y = self.base.forward(x.clone());
        for (i, head) in self.heads.iter().enumerate() {
            let mut z = x.clone().matmul(self.a.val());
            if training {
                z = z.clone() * z.random_like(Distribution::Bernoulli(0.9)) / 0.9;
            }
            let out = z.matmul(head.val()) * gates.clone().narrow(1, i, 1);
            y = y + out.mul_scalar(2.0);
        }
        y
    }
}

/// A prepared variant: the layer and an input.
pub enum Prepared<B: Backend> {
    /// The frozen base.
    Frozen(Box<Linear<B>>),
    /// An adapted layer.
    Adapted(Box<RLoraLinear<B>>),
    /// The naive loop.
    Naive(Box<NaiveMultiHead<B>>),
}

/// Build `variant` at shape `s` on `device`.
pub fn prepare<B: Backend>(variant: Variant, s: Shape, device: &B::Device) -> Prepared<B> {
    let base = LinearConfig::new(s.d_in, s.d_out)
        .init::<B>(device)
        .no_grad();
    let _ = base.weight.val(); // materialize the lazy init outside the timing
    let adapted = |c: RLoraConfig| {
        Prepared::Adapted(Box::new(
            RLoraLinear::from_linear(base.clone(), &c).expect("valid shape"),
        ))
    };
    match variant {
        Variant::Frozen => Prepared::Frozen(Box::new(base)),
        Variant::Lora => adapted(RLoraConfig::lora(s.r, 16.0)),
        Variant::HydraLora => adapted(RLoraConfig::hydra_lora(s.r, 16.0, s.n)),
        Variant::RLora => adapted(RLoraConfig::r_lora(s.r, 16.0, s.n)),
        Variant::NaiveLoop => Prepared::Naive(Box::new(NaiveMultiHead::new(base, s, device))),
    }
}

impl<B: Backend> Prepared<B> {
    /// The layer's forward.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Prepared::Frozen(l) => l.forward(x),
            Prepared::Adapted(l) => l.forward(x),
            Prepared::Naive(l) => l.forward(x),
        }
    }
}

/// A random input `[t, d_in]`.
pub fn input<B: Backend>(s: Shape, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random([s.t, s.d_in], Distribution::Normal(0.0, 1.0), device)
}

/// One training step: forward, `mean(y^2)`, backward with `x` requiring a
/// gradient; waits for the device so that the time is the work's.
pub fn step<B: AutodiffBackend>(layer: &Prepared<B>, x: &Tensor<B, 2>) {
    let x = x.clone().detach().require_grad();
    let loss = layer.forward(x).powi_scalar(2).mean();
    let grads = loss.backward();
    drop(grads);
    let _ = B::sync(&loss_device::<B>());
}

fn loss_device<B: Backend>() -> B::Device {
    Default::default()
}
