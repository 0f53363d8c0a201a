//! The shared behavioural suite, once per backend compiled in.
//!
//! `ndarray` and `flex` always run. `wgpu` runs with `--features wgpu` when a
//! Vulkan driver is present (lavapipe on CPU machines); `cuda` runs with
//! `--features cuda` when a CUDA device is present. Otherwise they skip with
//! a printed reason, or fail when `BURN_RLORA_REQUIRE_WGPU` /
//! `BURN_RLORA_REQUIRE_CUDA` is set (CI sets the first after installing lavapipe).

use crate::{backend_suite, suite};

backend_suite!(ndarray, burn::backend::NdArray<f32>, Default::default());
backend_suite!(flex, burn::backend::Flex, Default::default());

#[cfg(feature = "wgpu")]
backend_suite!(
    wgpu,
    burn::backend::Wgpu,
    burn::backend::wgpu::WgpuDevice::default(),
    gate = "wgpu",
    "BURN_RLORA_REQUIRE_WGPU"
);

#[cfg(feature = "cuda")]
backend_suite!(
    cuda,
    burn::backend::Cuda,
    burn::backend::cuda::CudaDevice::new(0),
    gate = "cuda",
    "BURN_RLORA_REQUIRE_CUDA"
);
