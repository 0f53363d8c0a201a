//! Data-parallel training across processes (feature `distributed`): every
//! process (a *rank*) trains
//! the same model on its own shard of the data, and after every backward pass
//! the ranks average their gradients with one all-reduce of one flat buffer.
//!
//! * [`Exchange`]: the collective operations the training needs (sum
//!   all-reduce, broadcast from rank 0, abort). [`SingleProcess`] is the
//!   one-rank exchange; `MpiExchange` (feature `mpi`) is MPI's.
//! * [`flat`]: the model's trainable parameters and their gradients as one
//!   flat `f32` buffer, in module order. Parameter ids differ between
//!   processes, so the order of the module's fields is what lines the ranks'
//!   buffers up.
//! * [`shard`]: deterministic shards of a dataset (seed and rank, no example
//!   twice in an epoch), and the grouped dataset that replays the ranks'
//!   combined batches in one process.
//! * [`DataParallel`]: a burn-train training strategy
//!   (`TrainingStrategy::Custom`) that runs the Learner's steps with the
//!   gradient exchange between `train_step` and `optimizer_step`.
//!
//! Any model whose training step's output tells its batch size and loss
//! ([`StepStats`], implemented for [`MultiTaskOutput`](crate::multitask::MultiTaskOutput))
//! trains this way: the example trainer `multitask-mpi` is one user of it.
//!
//! Only trainable parameters are exchanged: the frozen base of an adapted
//! layer has no gradient, so with R-LoRA only the adapters (A, heads, router)
//! and the task heads move.
//!
//! A rank's part, in order: build the model, take rank 0's weights with
//! [`flat::broadcast_from_root`], train on its shard
//! ([`shard::shard_indices`], [`shard::ShardDataset`]) through burn-train
//! with `TrainingStrategy::Custom(Arc::new(DataParallel::new(device,
//! exchange, losses)))`, and let rank 0 alone validate, checkpoint and save.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::nn::LinearConfig;
//! use burn_rlora::distributed::{flat, SingleProcess};
//! use burn_rlora::{RLoraConfig, RLoraLinear};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let layer = RLoraLinear::from_linear(
//!     LinearConfig::new(64, 32).init::<B>(&device),
//!     &RLoraConfig::r_lora(2, 16.0, 3),
//! )?;
//! // Every rank starts from rank 0's weights (one process: its own).
//! let layer = flat::broadcast_from_root::<B, _, _>(layer, &SingleProcess)?;
//! // What one step exchanges: the adapter's trainable values only (A,
//! // three heads and the router), not the frozen 32x64 base and its bias.
//! let layout = flat::GradLayout::of::<B, _>(&layer);
//! assert!(layout.num_values() > 0 && layout.num_values() < 32 * 64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod exchange;
pub mod flat;
#[cfg(feature = "mpi")]
mod mpi;
mod renderer;
pub mod shard;
mod strategy;

pub use exchange::{Exchange, SingleProcess};
pub use flat::FlatError;
#[cfg(feature = "mpi")]
pub use mpi::MpiExchange;
pub use renderer::SilentRenderer;
pub use strategy::{DataParallel, LossLog, StepStats};
