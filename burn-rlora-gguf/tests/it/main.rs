//! The integration tests of burn-rlora-gguf, in one test binary. Files are
//! built with the crate's `testing` writer (which the crate's dev-dependency
//! on itself turns on) and read from memory and from temporary files.

mod common;
mod dequant;
mod hostile;
mod real_file;
mod roundtrip;
mod seeds;
mod writer;
