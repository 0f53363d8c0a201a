//! Backend aliases, one per Cargo feature (`ndarray`, `flex`, `wgpu`, `cuda`).
//!
//! The layer itself is generic over any `B: Backend` and needs none of these;
//! they only save users and the examples a dependency line. Each alias comes
//! with its autodiff counterpart for training.
//!
//! | feature | inference backend | training backend | device |
//! |---|---|---|---|
//! | `ndarray` | `burn::backend::NdArray` | `Autodiff<NdArray>` | `NdArrayDevice::Cpu` |
//! | `flex` | `burn::backend::Flex` | `Autodiff<Flex>` | `FlexDevice` (default) |
//! | `wgpu` | `burn::backend::Wgpu` | `Autodiff<Wgpu>` | `WgpuDevice::default()` |
//! | `cuda` | `burn::backend::Cuda` | `Autodiff<Cuda>` | `CudaDevice::new(0)` |

#[cfg(feature = "ndarray")]
/// CPU backend on `ndarray` (multi-threaded).
pub type NdArray = burn::backend::NdArray<f32>;
#[cfg(feature = "ndarray")]
/// [`NdArray`] with autodiff, for training.
pub type NdArrayTrain = burn::backend::Autodiff<NdArray>;

#[cfg(feature = "flex")]
/// Burn's fastest CPU backend here (multi-threaded, SIMD).
pub type Flex = burn::backend::Flex;
#[cfg(feature = "flex")]
/// [`Flex`] with autodiff, for training.
pub type FlexTrain = burn::backend::Autodiff<Flex>;

#[cfg(feature = "wgpu")]
/// The wgpu backend (Vulkan, Metal, DX12; lavapipe on a CPU-only Linux machine).
pub type Wgpu = burn::backend::Wgpu;
#[cfg(feature = "wgpu")]
/// [`Wgpu`] with autodiff, for training.
pub type WgpuTrain = burn::backend::Autodiff<Wgpu>;

#[cfg(feature = "cuda")]
/// The CUDA backend.
pub type Cuda = burn::backend::Cuda;
#[cfg(feature = "cuda")]
/// [`Cuda`] with autodiff, for training.
pub type CudaTrain = burn::backend::Autodiff<Cuda>;
