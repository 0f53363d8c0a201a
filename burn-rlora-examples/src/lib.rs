//! Shared pieces of the example binaries, to read next to them:
//!
//! * [`backend`] and [`options`]: the backend chosen by name, and the
//!   command-line options the trainers share;
//! * [`synthetic`]: the embedded multi-task data and its small model (the
//!   main job);
//! * [`harness`]: how the trainers compare methods (splits, runs, paired
//!   statistics, reports), which no model needs.
//!
//! The trainers on real pretrained models (MiniLM, SmolLM2) are in the
//! package `burn-rlora-pretrained` (`burn-rlora-examples/pretrained/`), which
//! builds on this one: the built-in job needs no tokenizer.

#![warn(missing_docs)]

pub mod backend;
pub mod harness;
pub mod options;
pub mod synthetic;
