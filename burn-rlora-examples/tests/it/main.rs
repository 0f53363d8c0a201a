//! The integration tests of the examples, in one test binary: each former
//! test file is a module here, so Burn is linked once, not once per file.
//! Run one group with a filter, e.g. `cargo test -p burn-rlora-examples
//! --test it multitask_cli::`; the `mpi` tests need the feature `mpi`.

#[cfg(feature = "mpi")]
mod mpi;
mod multitask_cli;
