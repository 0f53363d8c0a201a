//! The error type returned by every fallible call of this crate.

use thiserror::Error;

/// Everything that can go wrong when building, merging or inspecting an adapter.
///
/// Every variant names the offending value, so that a message like
/// `rank 9 is larger than min(d_input, d_output) = 8` is enough to fix the call.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum RLoraError {
    /// The rank `r` was zero.
    #[error("rank must be at least 1, got 0")]
    ZeroRank,
    /// The rank is larger than the smaller side of the adapted layer.
    #[error(
        "rank {rank} is larger than min(d_input, d_output) = {max} (layer {d_input}->{d_output})"
    )]
    RankTooLarge {
        /// The rank asked for.
        rank: usize,
        /// `min(d_input, d_output)`.
        max: usize,
        /// Input features of the base layer.
        d_input: usize,
        /// Output features of the base layer.
        d_output: usize,
    },
    /// The number of heads was zero.
    #[error("num_heads must be at least 1, got 0")]
    ZeroHeads,
    /// A softmax router was asked for with a single head, where it is a constant 1.
    #[error("a softmax router needs at least 2 heads, got num_heads = {num_heads}; use RouterKind::Uniform for a single head")]
    RouterWithOneHead {
        /// The number of heads in the config.
        num_heads: usize,
    },
    /// The dropout probability is outside `[0, 1)`.
    #[error("dropout must be in [0, 1), got {0}")]
    InvalidDropout(f64),
    /// The stable-scaling `gamma` is not a positive finite number.
    #[error("stable_gamma must be a positive finite number, got {0}")]
    InvalidGamma(f64),
    /// `alpha` is not finite.
    #[error("alpha must be finite, got {0}")]
    NonFiniteAlpha(f64),
    /// A standard deviation in an init scheme is negative or not finite.
    #[error("init scheme for {matrix}: std must be a non-negative finite number, got {std}")]
    InvalidStd {
        /// Which matrix the scheme was meant for (`A`, `B` or `router`).
        matrix: &'static str,
        /// The value given.
        std: f64,
    },
    /// An init scheme cannot be applied to the matrix it was chosen for.
    #[error("init scheme {scheme} cannot initialize {matrix}: {reason}")]
    InitNotApplicable {
        /// The scheme, as written in the config.
        scheme: String,
        /// Which matrix (`A`, `B` or `router`).
        matrix: &'static str,
        /// Why not.
        reason: String,
    },
    /// The adapter cannot be merged into a plain `Linear` without changing its function.
    #[error("cannot merge: {reason}")]
    NotMergeable {
        /// Why not.
        reason: String,
    },
    /// A target name or pattern given to [`AdaptConfig`](crate::AdaptConfig)
    /// cannot be used.
    #[error("target module {target:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A target name or pattern matched no adaptable layer of the model.
    #[error("target module {target:?} matched no adaptable layer; the model's adaptable layers are {}", list_or_none(.adaptable))]
    TargetNotFound {
        /// The target as given.
        target: String,
        /// The paths of every [`RLoraLinear`](crate::RLoraLinear) of the model.
        adaptable: Vec<String>,
    },
    /// A targeted layer carries an adapter already.
    #[error("{} is adapted already; adapt a model once, from its plain layers", layer_at(.path))]
    AlreadyAdapted {
        /// The layer's path in the model; empty for a layer adapted on its
        /// own ([`RLoraLinear::adapt`](crate::RLoraLinear::adapt)).
        path: String,
    },
    /// A whole-model operation found no adapted layer in the model.
    #[error("the model has no adapted layer (no RLoraLinear field carries an adapter), so there is nothing to {operation}")]
    NoAdaptedLayer {
        /// What was asked for (`count`, `compare`, ...).
        operation: &'static str,
    },
    /// Building the adapter of one targeted layer failed.
    #[error("layer {path}: {source}")]
    AdaptLayer {
        /// The layer's path in the model.
        path: String,
        /// What went wrong.
        source: Box<RLoraError>,
    },
    /// The backend cannot compute in the precision asked for the base
    /// ([`RLoraLinear::with_base_dtype`](crate::RLoraLinear::with_base_dtype)).
    #[error("the backend does not support {dtype:?} on this device (ndarray holds only f32 and f64; flex, CUDA and wgpu with shader f16 hold F16)")]
    UnsupportedDtype {
        /// The precision asked for.
        dtype: burn::tensor::FloatDType,
    },
    /// A tensor given to a diagnostic or loss has the wrong shape.
    #[error("shape mismatch for {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What was being checked.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape found.
        found: String,
    },
}

fn layer_at(path: &str) -> String {
    if path.is_empty() {
        "the layer".to_string()
    } else {
        format!("layer {path}")
    }
}

fn list_or_none(paths: &[String]) -> String {
    if paths.is_empty() {
        "none (no field of type RLoraLinear was found)".to_string()
    } else {
        paths.join(", ")
    }
}
