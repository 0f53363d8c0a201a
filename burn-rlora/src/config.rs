//! The adapter's configuration, its validation, and the paper's presets.

use burn::config::Config;

use crate::error::RLoraError;
use crate::init::{stable_factor, InitScheme, Matrix};

/// Where dropout is applied inside the adapter (only while training).
#[derive(Config, Debug, PartialEq, Copy)]
pub enum DropoutMode {
    /// One mask on the input `x` (`d_input` wide), shared by every head, before `A`.
    /// This is what LoRA and HydraLoRA do.
    Input,
    /// Multi-head dropout: each head draws its own mask on the `r`-dimensional
    /// `z = A x`. This is R-LoRA's choice; the saved masks are `N x r` per token
    /// instead of `d_input`.
    PerHead,
}

/// How the heads are weighted.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum RouterKind {
    /// A learned router `g = softmax(W_r x)` per token (computed in f32).
    Softmax,
    /// Every head weighs `1/N`; no router parameters. With one head this is plain LoRA.
    Uniform,
}

/// Configuration of an [`RLoraLinear`](crate::RLoraLinear) adapter.
///
/// The defaults are R-LoRA as in the reference scripts: `r = 4`, `alpha = 32`,
/// `N = 5` heads, dropout 0.1 per head, "unit" initialization of `A` and of
/// every head with the stable factor `d_output^(1/4)/sqrt(64)`, a softmax
/// router and rank-stabilized scaling `alpha/sqrt(r)`.
///
/// The paper's baselines are presets of the same config: [`lora`](Self::lora),
/// [`hydra_lora`](Self::hydra_lora), [`hydra_lora_mt`](Self::hydra_lora_mt),
/// [`hydra_lora_init`](Self::hydra_lora_init), [`r_lora`](Self::r_lora) and
/// [`r_lora_no_router`](Self::r_lora_no_router).
///
/// ```
/// use burn_rlora::{RLoraConfig, DropoutMode};
///
/// let config = RLoraConfig::r_lora(8, 16.0, 4).with_dropout(0.05);
/// assert_eq!(config.dropout_mode, DropoutMode::PerHead);
/// assert!(config.validate(64, 32).is_ok());
/// assert!(config.validate(64, 4).is_err()); // rank 8 > min(64, 4)
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct RLoraConfig {
    /// The rank `r` of the shared down-projection and of every head.
    #[config(default = 4)]
    pub rank: usize,
    /// The scaling numerator: `s = alpha / r`, or `alpha / sqrt(r)` when rank-stabilized.
    #[config(default = 32.0)]
    pub alpha: f64,
    /// The number of heads `N`.
    #[config(default = 5)]
    pub num_heads: usize,
    /// Dropout probability, in `[0, 1)`.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Where dropout is applied.
    #[config(default = "DropoutMode::PerHead")]
    pub dropout_mode: DropoutMode,
    /// How the heads are weighted.
    #[config(default = "RouterKind::Softmax")]
    pub router: RouterKind,
    /// Init scheme of the shared down-projection `A`.
    #[config(default = "InitScheme::Unit")]
    pub init_a: InitScheme,
    /// Init scheme of every head `B_i`; each head gets its own draw.
    #[config(default = "InitScheme::Unit")]
    pub init_b: InitScheme,
    /// If set, multiply `A` and the heads once by `d_output^(1/4) / sqrt(gamma)` after drawing.
    /// Only non-zero draws are scaled.
    #[config(default = "Some(64.0)")]
    pub stable_gamma: Option<f64>,
    /// Rank-stabilized scaling (rsLoRA): `alpha / sqrt(r)` instead of `alpha / r`.
    #[config(default = true)]
    pub rank_stabilized: bool,
    /// Init scheme of the router. `None` picks zeros when the heads are random
    /// (required for exact identity at init) and Kaiming-uniform, as HydraLoRA
    /// does, when the heads start at zero.
    pub router_init: Option<InitScheme>,
}

impl RLoraConfig {
    /// Plain LoRA: one head, no router, `A` Kaiming-uniform, `B = 0`, dropout on `x`,
    /// scaling `alpha / r`.
    pub fn lora(rank: usize, alpha: f64) -> Self {
        Self::new()
            .with_rank(rank)
            .with_alpha(alpha)
            .with_num_heads(1)
            .with_router(RouterKind::Uniform)
            .with_dropout_mode(DropoutMode::Input)
            .with_init_a(InitScheme::KaimingUniform)
            .with_init_b(InitScheme::Zeros)
            .with_stable_gamma(None)
            .with_rank_stabilized(false)
    }

    /// HydraLoRA: `num_heads` zero-initialized heads, a softmax router, one shared
    /// dropout mask on `x`, scaling `alpha / r`.
    pub fn hydra_lora(rank: usize, alpha: f64, num_heads: usize) -> Self {
        Self::lora(rank, alpha)
            .with_num_heads(num_heads)
            .with_router(RouterKind::Softmax)
    }

    /// The paper's "HydraLoRA + MT" ablation: HydraLoRA with multi-head dropout on `A x`.
    pub fn hydra_lora_mt(rank: usize, alpha: f64, num_heads: usize) -> Self {
        Self::hydra_lora(rank, alpha, num_heads).with_dropout_mode(DropoutMode::PerHead)
    }

    /// The paper's "HydraLoRA + Init" ablation: HydraLoRA with multi-head random
    /// initialization (unit draws, stable factor with `gamma = 64`).
    pub fn hydra_lora_init(rank: usize, alpha: f64, num_heads: usize) -> Self {
        Self::hydra_lora(rank, alpha, num_heads)
            .with_init_a(InitScheme::Unit)
            .with_init_b(InitScheme::Unit)
            .with_stable_gamma(Some(64.0))
    }

    /// R-LoRA: multi-head random initialization and multi-head dropout, with a
    /// softmax router and rank-stabilized scaling (the reference's defaults).
    pub fn r_lora(rank: usize, alpha: f64, num_heads: usize) -> Self {
        Self::new()
            .with_rank(rank)
            .with_alpha(alpha)
            .with_num_heads(num_heads)
    }

    /// R-LoRA with no router: every head weighs `1/N`.
    pub fn r_lora_no_router(rank: usize, alpha: f64, num_heads: usize) -> Self {
        Self::r_lora(rank, alpha, num_heads).with_router(RouterKind::Uniform)
    }

    /// The scaling `s` applied to the adapter's output.
    pub fn scaling(&self) -> f64 {
        let r = self.rank as f64;
        if self.rank_stabilized {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        }
    }

    /// The stable factor for a layer with `d_output` outputs (1 when `stable_gamma` is `None`).
    pub fn init_factor(&self, d_output: usize) -> f64 {
        self.stable_gamma
            .map_or(1.0, |g| stable_factor(d_output, g))
    }

    /// True when the heads start from random (non-zero) values, so that a
    /// compensation pair is needed for exact identity at init.
    pub fn needs_compensation(&self) -> bool {
        !self.init_b.is_zero() && !self.init_a.is_zero()
    }

    /// The router's init scheme after resolving `router_init = None`.
    pub fn resolved_router_init(&self) -> InitScheme {
        match &self.router_init {
            Some(scheme) => scheme.clone(),
            None if self.needs_compensation() => InitScheme::Zeros,
            None => InitScheme::KaimingUniform,
        }
    }

    /// Check a dropout probability as [`validate`](Self::validate) and
    /// [`RLoraLinear::set_dropout`](crate::RLoraLinear::set_dropout) do:
    /// for a value that will become [`dropout`](Self::dropout), or any other
    /// dropout probability that follows the same rule.
    ///
    /// # Errors
    ///
    /// [`RLoraError::InvalidDropout`] unless `0 <= dropout < 1` (NaN is refused).
    pub fn check_dropout(dropout: f64) -> Result<(), RLoraError> {
        if (0.0..1.0).contains(&dropout) {
            Ok(())
        } else {
            Err(RLoraError::InvalidDropout(dropout))
        }
    }

    /// Check the config against a layer of shape `d_input -> d_output`.
    ///
    /// This is what [`RLoraLinear::from_linear`](crate::RLoraLinear::from_linear) calls first.
    pub fn validate(&self, d_input: usize, d_output: usize) -> Result<(), RLoraError> {
        if self.rank == 0 {
            return Err(RLoraError::ZeroRank);
        }
        let max = d_input.min(d_output);
        if self.rank > max {
            return Err(RLoraError::RankTooLarge {
                rank: self.rank,
                max,
                d_input,
                d_output,
            });
        }
        if self.num_heads == 0 {
            return Err(RLoraError::ZeroHeads);
        }
        if self.router == RouterKind::Softmax && self.num_heads == 1 {
            return Err(RLoraError::RouterWithOneHead {
                num_heads: self.num_heads,
            });
        }
        Self::check_dropout(self.dropout)?;
        if let Some(gamma) = self.stable_gamma {
            if !gamma.is_finite() || gamma <= 0.0 {
                return Err(RLoraError::InvalidGamma(gamma));
            }
        }
        if !self.alpha.is_finite() {
            return Err(RLoraError::NonFiniteAlpha(self.alpha));
        }
        self.init_a.validate(Matrix::A, self.rank, d_input)?;
        self.init_b.validate(Matrix::B, d_output, self.rank)?;
        if self.init_a.is_zero() && self.init_b.is_zero() {
            return Err(RLoraError::InitNotApplicable {
                scheme: format!("{:?}", self.init_b),
                matrix: Matrix::B.name(),
                reason: "A and the heads are both zero, so neither ever receives a gradient".into(),
            });
        }
        if self.init_b == InitScheme::Orthogonal && self.num_heads * self.rank > d_output {
            return Err(RLoraError::InitNotApplicable {
                scheme: "Orthogonal".into(),
                matrix: Matrix::B.name(),
                reason: format!(
                    "mutually orthogonal heads need num_heads * rank = {} <= d_output = {d_output}",
                    self.num_heads * self.rank
                ),
            });
        }
        if self.router == RouterKind::Softmax {
            let router_init = self.resolved_router_init();
            router_init.validate(Matrix::Router, self.num_heads, d_input)?;
            if self.needs_compensation() && !router_init.is_zero() {
                return Err(RLoraError::InitNotApplicable {
                    scheme: format!("{router_init:?}"),
                    matrix: Matrix::Router.name(),
                    reason: "random heads need a zero router at init, so that the initial \
                             weights are uniform and the compensation is exact"
                        .into(),
                });
            }
        }
        Ok(())
    }
}
