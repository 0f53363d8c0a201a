//! The precision the frozen base is stored in ([`BasePrecision`]), as the
//! command line names it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::FloatDType;

/// The precision of the frozen base (`--base-dtype`): `f32` (the default,
/// and the one to keep on a CPU), or `f16` / `bf16` to halve the base's
/// memory on a GPU ([`CausalLm::with_base_dtype`](super::CausalLm::with_base_dtype)).
///
/// Whether a backend holds the precision is its own answer
/// (`Backend::supports_dtype`); the cast returns
/// [`RLoraError::UnsupportedDtype`](burn_rlora::RLoraError::UnsupportedDtype) where it does not.
///
/// ```
/// use burn::tensor::FloatDType;
/// use burn_rlora_llm::BasePrecision;
///
/// let bf16: BasePrecision = "bf16".parse().unwrap();
/// assert_eq!(bf16.dtype(), Some(FloatDType::BF16));
/// assert_eq!(BasePrecision::default().dtype(), None);
/// assert_eq!(bf16.to_string(), "bf16");
/// assert!("f8".parse::<BasePrecision>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BasePrecision {
    /// 32-bit floats, as read from the file.
    #[default]
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl BasePrecision {
    /// The dtype to cast the base to; `None` for `F32` (the base is left as loaded).
    pub fn dtype(self) -> Option<FloatDType> {
        match self {
            Self::F32 => None,
            Self::F16 => Some(FloatDType::F16),
            Self::Bf16 => Some(FloatDType::BF16),
        }
    }
}

impl FromStr for BasePrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!("unknown precision {other:?} (f32, f16, bf16)")),
        }
    }
}

impl fmt::Display for BasePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}
