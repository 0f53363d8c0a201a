//! Initialization schemes for the adapter's matrices.
//!
//! Each scheme maps onto Burn's own [`Initializer`], so the distributions are
//! Burn's; this module only decides the fans and the optional "stable" factor
//! of R-LoRA (`c = d_output^(1/4) / sqrt(gamma)`, applied once per matrix).

use burn::config::Config;
use burn::module::Initializer;
use burn::tensor::{backend::Backend, Tensor};

use crate::error::RLoraError;

/// How to draw the initial values of one adapter matrix.
///
/// Fans follow PyTorch's layout of the matrix: for `A` (`r x d_input`) the
/// fan-in is `d_input`; for a head `B_i` (`d_output x r`) the fan-in is `r`
/// and the fan-out `d_output`.
#[derive(Config, Debug, PartialEq)]
pub enum InitScheme {
    /// All zeros (LoRA's and HydraLoRA's `B`).
    Zeros,
    /// `N(0, std^2)`.
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, PEFT's default for `A`
    /// (Kaiming-uniform with `a = sqrt(5)`), and Burn's `Linear` default.
    KaimingUniform,
    /// `N(0, 1/fan)` with `fan` the fan-in, or the fan-out when `fan_out` is set.
    KaimingNormal {
        /// Use the fan-out instead of the fan-in.
        fan_out: bool,
    },
    /// `N(0, 2/(fan_in + fan_out))`.
    XavierNormal,
    /// A random matrix with orthonormal rows or columns (whichever side is shorter).
    Orthogonal,
    /// R-LoRA's "unit" draw: `N(0, 1/d_input)` for `A` and `N(0, 1/d_output)` for the heads.
    Unit,
}

/// Which adapter matrix an init scheme is applied to; decides fans and names in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matrix {
    /// The shared down-projection, PyTorch shape `[r, d_input]`.
    A,
    /// One head, PyTorch shape `[d_output, r]`.
    B,
    /// The router, PyTorch shape `[N, d_input]`.
    Router,
}

impl Matrix {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Matrix::A => "A",
            Matrix::B => "B",
            Matrix::Router => "router",
        }
    }
}

impl InitScheme {
    /// True when the scheme always draws zeros.
    pub fn is_zero(&self) -> bool {
        match self {
            InitScheme::Zeros => true,
            InitScheme::Gaussian { std } => *std == 0.0,
            _ => false,
        }
    }

    /// Check that the scheme can initialize a matrix of PyTorch shape `[rows, cols]`.
    pub(crate) fn validate(
        &self,
        matrix: Matrix,
        rows: usize,
        cols: usize,
    ) -> Result<(), RLoraError> {
        if let InitScheme::Gaussian { std } = self {
            if !std.is_finite() || *std < 0.0 {
                return Err(RLoraError::InvalidStd {
                    matrix: matrix.name(),
                    std: *std,
                });
            }
        }
        if rows == 0 || cols == 0 {
            return Err(RLoraError::InitNotApplicable {
                scheme: format!("{self:?}"),
                matrix: matrix.name(),
                reason: format!("the matrix has an empty side ({rows} x {cols})"),
            });
        }
        Ok(())
    }

    /// Burn's initializer for a matrix of PyTorch shape `[rows, cols]` (fan-in = `cols`).
    fn initializer(&self, matrix: Matrix, d_input: usize, d_output: usize) -> Initializer {
        match self {
            InitScheme::Zeros => Initializer::Zeros,
            InitScheme::Gaussian { std } => Initializer::Normal {
                mean: 0.0,
                std: *std,
            },
            InitScheme::KaimingUniform => Initializer::KaimingUniform {
                gain: 1.0 / 3.0f64.sqrt(),
                fan_out_only: false,
            },
            InitScheme::KaimingNormal { fan_out } => Initializer::KaimingNormal {
                gain: 1.0,
                fan_out_only: *fan_out,
            },
            InitScheme::XavierNormal => Initializer::XavierNormal { gain: 1.0 },
            InitScheme::Orthogonal => Initializer::Orthogonal { gain: 1.0 },
            InitScheme::Unit => {
                let dim = match matrix {
                    Matrix::A | Matrix::Router => d_input,
                    Matrix::B => d_output,
                };
                Initializer::Normal {
                    mean: 0.0,
                    std: 1.0 / (dim as f64).sqrt(),
                }
            }
        }
    }

    /// Draw one matrix of PyTorch shape `[rows, cols]` and return it in Burn's
    /// layout, `[cols, rows]` (input features first), multiplied by `factor`.
    pub(crate) fn draw<B: Backend>(
        &self,
        matrix: Matrix,
        (rows, cols): (usize, usize),
        (d_input, d_output): (usize, usize),
        factor: f64,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let init = self.initializer(matrix, d_input, d_output);
        // PyTorch layout [rows, cols]: fan_in = cols, fan_out = rows. Orthogonality is
        // a property of the matrix, so draw it in PyTorch layout and transpose.
        let torch: Tensor<B, 2> = init
            .init_with([rows, cols], Some(cols), Some(rows), device)
            .set_require_grad(false)
            .val();
        let t = torch.transpose();
        if factor == 1.0 {
            t
        } else {
            t.mul_scalar(factor)
        }
    }
}

/// The "stable" factor of R-LoRA, `c = d_output^(1/4) / sqrt(gamma)`.
///
/// The reference code computes it from the rank instead of `d_output` and
/// applies it once per head inside a loop; both are defects this crate does
/// not copy (see the crate docs).
pub fn stable_factor(d_output: usize, gamma: f64) -> f64 {
    (d_output as f64).powf(0.25) / gamma.sqrt()
}
