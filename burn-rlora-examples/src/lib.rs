//! Shared pieces of the example binaries: backend selection by name.

#![warn(missing_docs)]

pub mod backend;
