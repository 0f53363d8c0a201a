//! Shared pieces of the example binaries: backend selection by name, the
//! embedded multi-task benchmark, and the comparison runner.

#![warn(missing_docs)]

pub mod backend;
pub mod compare;
pub mod report;
pub mod synthetic;
