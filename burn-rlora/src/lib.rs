//! # burn-rlora
//!
//! R-LoRA (Liu, Chang, Wu, 2025: multi-head LoRA with multi-head random
//! initialization and multi-head dropout) as Burn modules, generic over any
//! `B: Backend`.
//!
//! [`RLoraLinear`] replaces [`burn::nn::Linear`] in a model with no other
//! change: it keeps the base's `weight` and `bias` (same names and layout)
//! and, once adapted, freezes them and carries an [`RLoraAdapter`]: a shared
//! down-projection `A`, `N` stacked heads and a router. The paper's baselines are presets of [`RLoraConfig`]: LoRA,
//! HydraLoRA, the two ablations, and R-LoRA with or without a router.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::{AdamConfig, GradientsParams, Optimizer};
//! use burn::tensor::{backend::Backend, Tensor};
//! use burn_rlora::{RLoraConfig, RLoraLinear};
//!
//! // A user's model: the field type changes from Linear<B> to RLoraLinear<B>.
//! #[derive(Module, Debug)]
//! struct Mlp<B: Backend> {
//!     up: RLoraLinear<B>,
//!     down: Linear<B>,
//! }
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! // A trained `Linear` (here freshly initialized) is converted with `from_linear`.
//! let trained_up: Linear<B> = LinearConfig::new(8, 16).init(&device);
//! let model = Mlp {
//!     up: RLoraLinear::from_linear(trained_up, &RLoraConfig::r_lora(4, 32.0, 3))?,
//!     down: LinearConfig::new(16, 2).init::<B>(&device).no_grad(), // freeze the rest
//! };
//!
//! // Only the adapter's parameters receive gradients; any Burn optimizer works.
//! let mut optim = AdamConfig::new().init();
//! let x = Tensor::<B, 2>::ones([4, 8], &device);
//! let loss = model.down.forward(model.up.forward(x)).powi_scalar(2).mean();
//! let grads = GradientsParams::from_grads(loss.backward(), &model);
//! let model = optim.step(1e-3, model, grads);
//! # let _ = model;
//! # Ok::<(), burn_rlora::RLoraError>(())
//! ```
//!
//! ## Adapting a whole model by target names
//!
//! Declare the layers that may carry an adapter as [`RLoraLinear`] (a
//! plain `Linear` until adapted, so pretrained weights load unchanged), derive
//! [`Adapt`] next to `Module`, and name the targets as PEFT's
//! `target_modules` does:
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::module::Module;
//! use burn::nn::LinearConfig;
//! use burn::tensor::backend::Backend;
//! use burn_rlora::{Adapt, AdaptConfig, RLoraConfig, RLoraLinear, TargetModules};
//!
//! #[derive(Module, Adapt, Debug)]
//! struct Mlp<B: Backend> {
//!     up: RLoraLinear<B>,
//!     down: RLoraLinear<B>,
//! }
//!
//! let device = Default::default();
//! let model = Mlp::<NdArray> {
//!     up: LinearConfig::new(8, 16).init(&device).into(),
//!     down: LinearConfig::new(16, 2).init(&device).into(),
//! };
//! let config = AdaptConfig::new(RLoraConfig::r_lora(4, 32.0, 3), TargetModules::names(["up"]));
//! let model = config.adapt(model)?; // everything frozen, `up` adapted
//! assert!(model.up.is_adapted() && !model.down.is_adapted());
//! # Ok::<(), burn_rlora::RLoraError>(())
//! ```
//!
//! The [`adapt`](mod@adapt) module says what this can and cannot reach.
//!
//! ## What this crate does differently from the reference code
//!
//! * The "stable" init factor is `d_output^(1/4) / sqrt(gamma)`, applied once
//!   per matrix (the reference uses the rank and scales `A` `N` times).
//! * The output at step 0 equals the base's exactly: the router starts at zero
//!   and a frozen low-rank pair `(A0, Bbar0)` is subtracted, instead of an
//!   approximate offset written into the base weight and never saved.
//! * All heads are one matrix product; `A x` is computed once.

#![warn(missing_docs)]

// `#[derive(Adapt)]` names this crate `::burn_rlora`, inside it too.
extern crate self as burn_rlora;

pub mod adapt;
mod adapter;
mod atomic;
pub mod backend;
#[cfg(feature = "store")]
pub mod checkpoint;
mod config;
mod diagnostics;
#[cfg(feature = "distributed")]
pub mod distributed;
mod error;
mod init;
mod layer;
mod merge;
pub mod method;
#[cfg(feature = "train")]
pub mod multitask;

pub use adapt::{Adapt, AdaptConfig, TargetModules};
pub use adapter::RLoraAdapter;
pub use atomic::write_atomically;
pub use config::{DropoutMode, RLoraConfig, RouterKind};
pub use diagnostics::{
    cosine_similarity_matrix, head_similarities, load_balance_loss, HeadSimilarity, ParamCount,
    RouterStats,
};
pub use error::RLoraError;
pub use init::{stable_factor, InitScheme};
pub use layer::{RLoraLinear, RoutedOutput};
