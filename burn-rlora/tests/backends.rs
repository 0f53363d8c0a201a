//! The shared behavioural suite, once per backend compiled in.
//!
//! `ndarray` and `flex` always run. `wgpu` runs with `--features wgpu` when a
//! Vulkan driver is present (lavapipe on CPU machines); `cuda` runs with
//! `--features cuda` when a CUDA device is present. Otherwise they skip with
//! a printed reason.

mod suite;

backend_suite!(ndarray, burn::backend::NdArray<f32>, Default::default());
backend_suite!(flex, burn::backend::Flex, Default::default());
