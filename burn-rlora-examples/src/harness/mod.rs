//! The research harness of the example trainers: what the `multitask`,
//! `minilm-multitask` and `smollm-multitask` binaries (the last two in
//! `burn-rlora-pretrained`) share to compare methods fairly, and nothing a
//! model needs.
//!
//! * [`compare`]: the comparison runner: seeded splits, one guarded,
//!   resumable training path for any multi-task model, the runs of every
//!   method and seed, and their results.
//! * [`report`]: the report of a comparison (tables, JSON, SVG plots), written
//!   atomically.
//! * [`stats`]: paired differences with t intervals over seeds.
//! * [`trace`]: head similarity traced over training.
//!
//! A model of your own needs none of it: the library's
//! `burn_rlora::multitask` is the training integration; this module is how
//! the examples measure it.

pub mod compare;
pub mod report;
pub mod stats;
pub mod trace;
