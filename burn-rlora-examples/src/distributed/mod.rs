//! Data-parallel training across processes: every process (a *rank*) trains
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
//! Only trainable parameters are exchanged: the frozen base of an adapted
//! layer has no gradient, so with R-LoRA only the adapters (A, heads, router)
//! and the task heads move.

mod exchange;
pub mod flat;
#[cfg(feature = "mpi")]
mod mpi;
mod renderer;
pub mod shard;
mod strategy;

pub use exchange::{Exchange, SingleProcess};
#[cfg(feature = "mpi")]
pub use mpi::MpiExchange;
pub use renderer::SilentRenderer;
pub use strategy::{DataParallel, LossLog, StepStats};
