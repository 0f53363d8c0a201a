//! Which linear layers of the encoder get an adapter, by their place in a
//! block, and the [`AdaptConfig`] that puts it there.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use serde::{Deserialize, Serialize};

use super::error::MiniLmError;

/// The linear layers of a BERT block that can be adapted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TargetModule {
    /// `attention.self.query`.
    Query,
    /// `attention.self.key`.
    Key,
    /// `attention.self.value`.
    Value,
    /// `attention.output.dense`.
    AttentionOutput,
    /// `intermediate.dense` (feed-forward up-projection).
    Intermediate,
    /// `output.dense` (feed-forward down-projection).
    Output,
}

impl TargetModule {
    /// All six, in block order.
    pub const ALL: [TargetModule; 6] = [
        Self::Query,
        Self::Key,
        Self::Value,
        Self::AttentionOutput,
        Self::Intermediate,
        Self::Output,
    ];

    /// The default targets: the feed-forward projections, as in the reference.
    pub const FEED_FORWARD: [TargetModule; 2] = [Self::Intermediate, Self::Output];

    /// The short name used on command lines: `query`, `key`, `value`,
    /// `attention_output`, `intermediate`, `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Key => "key",
            Self::Value => "value",
            Self::AttentionOutput => "attention_output",
            Self::Intermediate => "intermediate",
            Self::Output => "output",
        }
    }

    /// The module's path inside a block, in this encoder's field names
    /// (what [`AdaptConfig`](burn_rlora::AdaptConfig) and adapter files see).
    pub fn burn_path(self) -> &'static str {
        match self {
            Self::Query => "attention.self_attention.query",
            Self::Key => "attention.self_attention.key",
            Self::Value => "attention.self_attention.value",
            Self::AttentionOutput => "attention.output.dense",
            Self::Intermediate => "intermediate.dense",
            Self::Output => "output.dense",
        }
    }

    /// The module's path inside a block, in Hugging Face's naming.
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::Query => "attention.self.query",
            Self::Key => "attention.self.key",
            Self::Value => "attention.self.value",
            Self::AttentionOutput => "attention.output.dense",
            Self::Intermediate => "intermediate.dense",
            Self::Output => "output.dense",
        }
    }
}

impl fmt::Display for TargetModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetModule {
    type Err = MiniLmError;

    /// Accepts the short names of [`as_str`](Self::as_str) and the Hugging Face
    /// paths of [`hf_path`](Self::hf_path).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s || t.hf_path() == s)
            .ok_or_else(|| {
                MiniLmError::InvalidArgument(format!(
                    "unknown target module {s:?}; expected one of query, key, value, \
                     attention_output, intermediate, output"
                ))
            })
    }
}

/// Which linears of the encoder get an adapter, and which adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderAdapterConfig {
    /// The adapter put on every targeted linear.
    pub adapter: RLoraConfig,
    /// The targeted modules, in every block.
    pub targets: BTreeSet<TargetModule>,
}

impl EncoderAdapterConfig {
    /// `adapter` on the default targets ([`TargetModule::FEED_FORWARD`]).
    pub fn new(adapter: RLoraConfig) -> Self {
        Self {
            adapter,
            targets: TargetModule::FEED_FORWARD.into_iter().collect(),
        }
    }

    /// Replace the targets.
    pub fn with_targets(mut self, targets: impl IntoIterator<Item = TargetModule>) -> Self {
        self.targets = targets.into_iter().collect();
        self
    }

    /// The same choice as an [`AdaptConfig`]: the targets as one regular
    /// expression over the encoder's paths (`output.dense` alone would also
    /// match `attention.output.dense`).
    pub fn adapt_config(&self) -> AdaptConfig {
        let alternatives: Vec<String> = self
            .targets
            .iter()
            .map(|t| t.burn_path().replace('.', r"\."))
            .collect();
        let pattern = format!(r"encoder\.layer\.\d+\.(?:{})", alternatives.join("|"));
        AdaptConfig::new(self.adapter.clone(), TargetModules::regex(pattern))
    }
}
