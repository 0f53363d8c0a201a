//! The methods the paper compares, by name: the vocabulary of the example
//! trainers' `--methods` and of reports. Each name maps to a preset of
//! [`RLoraConfig`].

use core::fmt;
use core::str::FromStr;

use crate::RLoraConfig;

/// The methods compared in the paper, by name. Each maps to a preset of [`RLoraConfig`].
///
/// ```
/// use burn_rlora::method::Method;
///
/// let m: Method = "hydralora-mt".parse().unwrap();
/// assert_eq!(m, Method::HydraLoraMt);
/// assert!("bogus".parse::<Method>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// [`RLoraConfig::lora`].
    Lora,
    /// [`RLoraConfig::hydra_lora`].
    HydraLora,
    /// [`RLoraConfig::hydra_lora_mt`].
    HydraLoraMt,
    /// [`RLoraConfig::hydra_lora_init`].
    HydraLoraInit,
    /// [`RLoraConfig::r_lora`].
    RLora,
    /// [`RLoraConfig::r_lora_no_router`].
    RLoraNoRouter,
}

impl Method {
    /// Every method, in the paper's order.
    pub const ALL: [Method; 6] = [
        Method::Lora,
        Method::HydraLora,
        Method::HydraLoraMt,
        Method::HydraLoraInit,
        Method::RLora,
        Method::RLoraNoRouter,
    ];

    /// The short name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::HydraLora => "hydralora",
            Method::HydraLoraMt => "hydralora-mt",
            Method::HydraLoraInit => "hydralora-init",
            Method::RLora => "rlora",
            Method::RLoraNoRouter => "rlora-norouter",
        }
    }

    /// The preset for this method. `num_heads` is ignored by [`Method::Lora`].
    pub fn config(self, rank: usize, alpha: f64, num_heads: usize) -> RLoraConfig {
        match self {
            Method::Lora => RLoraConfig::lora(rank, alpha),
            Method::HydraLora => RLoraConfig::hydra_lora(rank, alpha, num_heads),
            Method::HydraLoraMt => RLoraConfig::hydra_lora_mt(rank, alpha, num_heads),
            Method::HydraLoraInit => RLoraConfig::hydra_lora_init(rank, alpha, num_heads),
            Method::RLora => RLoraConfig::r_lora(rank, alpha, num_heads),
            Method::RLoraNoRouter => RLoraConfig::r_lora_no_router(rank, alpha, num_heads),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown method name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod(pub String);

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        write!(
            f,
            "unknown method '{}'; expected one of: {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownMethod {}

impl FromStr for Method {
    type Err = UnknownMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        Method::ALL
            .into_iter()
            .find(|m| m.name() == key)
            .ok_or_else(|| UnknownMethod(s.to_string()))
    }
}
