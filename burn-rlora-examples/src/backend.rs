//! Choosing a Burn backend at run time, among those compiled in by Cargo features.

use core::fmt;
use core::str::FromStr;

use burn::tensor::backend::AutodiffBackend;

/// A backend the examples can run on. Each is available only when its Cargo
/// feature (`flex`, `ndarray`, `wgpu`, `cuda`) is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendName {
    /// Burn's fastest CPU backend here (default).
    Flex,
    /// The `ndarray` CPU backend.
    Ndarray,
    /// wgpu: Vulkan/Metal/DX12 GPUs, or lavapipe on a CPU-only machine.
    Wgpu,
    /// CUDA.
    Cuda,
}

impl BackendName {
    /// Every backend name, compiled in or not.
    pub const ALL: [BackendName; 4] = [Self::Flex, Self::Ndarray, Self::Wgpu, Self::Cuda];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// True when this binary was built with the backend's feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// True for the CPU backends, whose tensors live in host memory (flex
    /// and ndarray): the ones the host kernels (`burn_rlora_llm::host_ops`)
    /// are for.
    pub fn keeps_tensors_on_host(self) -> bool {
        matches!(self, Self::Flex | Self::Ndarray)
    }

    /// The backend named on a command line, or [`default_compiled`](Self::default_compiled)
    /// when none is named.
    ///
    /// # Errors
    ///
    /// An unknown name, a backend not compiled in, or no backend compiled at all.
    pub fn resolve(name: Option<&str>) -> Result<Self, BackendError> {
        match name {
            Some(name) => name.parse(),
            None => Self::default_compiled()
                .ok_or_else(|| BackendError("no backend feature was compiled in".into())),
        }
    }

    /// The default: the first compiled-in of flex, ndarray, wgpu, cuda.
    pub fn default_compiled() -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.is_compiled())
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is unknown or not compiled into this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError(String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

impl FromStr for BackendName {
    type Err = BackendError;

    /// Parses a name and checks that its feature was compiled in.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compiled: Vec<&str> = Self::ALL
            .iter()
            .filter(|b| b.is_compiled())
            .map(|b| b.as_str())
            .collect();
        let name = Self::ALL
            .into_iter()
            .find(|b| b.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                BackendError(format!(
                    "unknown backend '{s}'; expected one of flex, ndarray, wgpu, cuda (compiled in: {})",
                    compiled.join(", ")
                ))
            })?;
        if !name.is_compiled() {
            return Err(BackendError(format!(
                "backend '{name}' was not compiled into this binary; rebuild with `--features {name}` \
                 (compiled in: {})",
                compiled.join(", ")
            )));
        }
        Ok(name)
    }
}

/// A job generic over the training backend; [`run_on`] picks the backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;

    /// Run on autodiff backend `B` with `devices` (at least one).
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output;
}

/// Run `job` on the named backend with `num_devices` devices.
///
/// CPU backends have one device; asking for more repeats it, so that the
/// Learner's multi-device strategy runs one worker per copy (data parallel
/// over threads on the same CPU). wgpu and cuda use devices `0..num_devices`.
pub fn run_on<J: BackendJob>(
    name: BackendName,
    num_devices: usize,
    job: J,
) -> Result<J::Output, BackendError> {
    if !name.is_compiled() {
        return Err(BackendError(format!(
            "backend '{name}' was not compiled in"
        )));
    }
    let n = num_devices.max(1);
    #[allow(unreachable_patterns)]
    let out = match name {
        #[cfg(feature = "flex")]
        BackendName::Flex => job.run::<burn_rlora::backend::FlexTrain>(vec![Default::default(); n]),
        #[cfg(feature = "ndarray")]
        BackendName::Ndarray => {
            job.run::<burn_rlora::backend::NdArrayTrain>(vec![Default::default(); n])
        }
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => job.run::<burn_rlora::backend::WgpuTrain>(
            (0..n)
                .map(|i| {
                    if n == 1 {
                        burn::backend::wgpu::WgpuDevice::default()
                    } else {
                        burn::backend::wgpu::WgpuDevice::DiscreteGpu(i)
                    }
                })
                .collect(),
        ),
        #[cfg(feature = "cuda")]
        BackendName::Cuda => job.run::<burn_rlora::backend::CudaTrain>(
            (0..n).map(burn::backend::cuda::CudaDevice::new).collect(),
        ),
        _ => unreachable!("checked is_compiled above"),
    };
    Ok(out)
}
