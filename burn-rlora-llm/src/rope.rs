//! Rotary position embeddings in Llama's "rotate half" convention.
//!
//! Dimension `i` of a head and dimension `i + head_dim / 2` form one pair,
//! rotated by the angle `position * theta^(-2i / head_dim)`. That is the
//! layout of the Hugging Face checkpoints; GGUF files store the query and
//! key projections with their rows reordered for pairs of neighbours, which
//! the loader undoes ([`unpermute_rows`]).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The cosines and sines of a run of positions, `len x head_dim` row-major,
/// in host memory (uploaded by [`for_tokens`](Self::for_tokens) and
/// [`apply`](Self::apply) as a forward pass needs them; a
/// [`KvCache`](crate::KvCache) keeps those of a generation).
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTables {
    head_dim: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// RoPE for projections in their own layout, `[batch, len, heads * head_dim]`
/// (token-major, as a linear layer returns them), built by
/// [`RopeTables::for_tokens`].
///
/// Rotating in that layout keeps every operation on contiguous tensors: the
/// tables are rows `[1, len * heads * head_dim]` shared by the batch, and
/// "rotate half" is one product with a fixed signed permutation
/// (`[head_dim, head_dim]`, entries 0 and ±1, so exact), whose backward is a
/// product too. The head-major layout (`[batch, heads, len, head_dim]`, a
/// strided view of the projection) made every RoPE operation and its
/// backward copy elements one at a time.
#[derive(Debug, Clone)]
pub struct TokenRope<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    rotate: Tensor<B, 2>,
    head_dim: usize,
}

/// The signed permutation `R` with `x R = rotate_half(x)` for heads of
/// `head_dim`: column `j < half` is `-x[j + half]`, column `j >= half` is
/// `x[j - half]`.
pub fn rotate_half_matrix<B: Backend>(head_dim: usize, device: &B::Device) -> Tensor<B, 2> {
    let half = head_dim / 2;
    let mut rotate = vec![0.0f32; head_dim * head_dim];
    for j in 0..half {
        rotate[(j + half) * head_dim + j] = -1.0;
        rotate[j * head_dim + j + half] = 1.0;
    }
    Tensor::from_data(TensorData::new(rotate, [head_dim, head_dim]), device)
}

impl RopeTables {
    /// The tables of positions `start..start + len` for heads of `head_dim`
    /// (even) and RoPE base `theta`, computed as the reference does in f32.
    pub fn new(start: usize, len: usize, head_dim: usize, theta: f64) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for p in start..start + len {
            let angles: Vec<f32> = inv_freq.iter().map(|f| p as f32 * f).collect();
            for _ in 0..2 {
                cos.extend(angles.iter().map(|&a| f64::from(a).cos() as f32));
                sin.extend(angles.iter().map(|&a| f64::from(a).sin() as f32));
            }
        }
        Self { head_dim, cos, sin }
    }

    /// The width of a head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The positions the tables hold.
    pub fn len(&self) -> usize {
        self.cos.len() / self.head_dim.max(1)
    }

    /// Whether the tables hold no position.
    pub fn is_empty(&self) -> bool {
        self.cos.is_empty()
    }

    /// The tables of the `len` positions from the `start`-th these tables
    /// hold (clamped to them).
    pub fn rows(&self, start: usize, len: usize) -> Self {
        let d = self.head_dim;
        let (from, to) = (
            (start * d).min(self.cos.len()),
            ((start + len) * d).min(self.cos.len()),
        );
        Self {
            head_dim: d,
            cos: self.cos[from..to].to_vec(),
            sin: self.sin[from..to].to_vec(),
        }
    }

    /// The tables for `heads` heads in the token-major layout, with every
    /// value multiplied by `scale` (for queries, attention's query scaling,
    /// folded in here instead of a pass over the scores), on `rotate`'s
    /// device; `rotate` is [`rotate_half_matrix`] of the head width.
    pub fn for_tokens<B: Backend>(
        &self,
        heads: usize,
        scale: f64,
        rotate: Tensor<B, 2>,
    ) -> TokenRope<B> {
        let device = rotate.device();
        let (head_dim, len) = (self.head_dim, self.len());
        let scale = scale as f32;
        let row = |v: &[f32]| {
            let mut out = Vec::with_capacity(len * heads * head_dim);
            for p in v.chunks(head_dim) {
                for _ in 0..heads {
                    out.extend(p.iter().map(|&c| c * scale));
                }
            }
            Tensor::<B, 2>::from_data(TensorData::new(out, [1, len * heads * head_dim]), &device)
        };
        TokenRope {
            cos: row(&self.cos),
            sin: row(&self.sin),
            rotate,
            head_dim,
        }
    }

    /// `x` (`[batch, heads, len, head_dim]`) with every position rotated.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, s, d] = x.dims();
        let device = x.device();
        let table = |v: &[f32]| {
            Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), [1, 1, s, d]), &device)
        };
        let half = d / 2;
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
        let x2 = x.clone().slice([0..b, 0..h, 0..s, half..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * table(&self.cos) + rotated * table(&self.sin)
    }
}

impl<B: Backend> TokenRope<B> {
    /// `x` (`[batch, len, heads * head_dim]`, the heads and positions of
    /// these tables) with every position rotated and scaled.
    pub fn apply(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, w] = x.dims();
        let rotated = x
            .clone()
            .reshape([b * s * w / self.head_dim, self.head_dim])
            .matmul(self.rotate.clone())
            .reshape([b, s * w]);
        let x = x.reshape([b, s * w]);
        (x * self.cos.clone() + rotated * self.sin.clone()).reshape([b, s, w])
    }
}

/// The rows of a query or key projection stored for rotating neighbouring
/// pairs (GGUF's layout), put back in the "rotate half" order.
///
/// `rows` is row-major `[heads * head_dim, cols]`. Within each head, stored
/// row `2i + j` (`j` in {0, 1}) becomes row `j * head_dim / 2 + i`.
pub fn unpermute_rows(rows: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0.0; rows.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let from = (h * head_dim + 2 * i + j) * cols;
                let to = (h * head_dim + j * half + i) * cols;
                out[to..to + cols].copy_from_slice(&rows[from..from + cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn rotates_each_pair_by_its_angle() {
        let device = Default::default();
        // One head of 4: pairs (0, 2) and (1, 3); theta 100: frequencies 1 and 0.1.
        let tables = RopeTables::new(3, 1, 4, 100.0);
        let x = Tensor::<NdArray, 4>::from_data([[[[1.0f32, 2.0, 3.0, 4.0]]]], &device);
        let got = tables.apply(x).into_data().to_vec::<f32>().unwrap();
        let (a0, a1) = (3.0f64, 0.3f64);
        let want = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + 1.0 * a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn position_zero_is_the_identity() {
        let device = Default::default();
        let tables = RopeTables::new(0, 1, 4, 1e4);
        let x = Tensor::<NdArray, 4>::from_data([[[[1.0f32, -2.0, 3.0, 0.5]]]], &device);
        let got = tables.apply(x).into_data().to_vec::<f32>().unwrap();
        assert_eq!(got, [1.0, -2.0, 3.0, 0.5]);
    }

    #[test]
    fn the_token_layout_rotates_as_the_head_layout() {
        let device = Default::default();
        let (b, h, s, d) = (2, 3, 5, 8);
        let tables = RopeTables::new(4, s, d, 1e4);
        let values: Vec<f32> = (0..b * s * h * d)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let x = Tensor::<NdArray, 3>::from_data(TensorData::new(values, [b, s, h * d]), &device);
        let heads = x.clone().reshape([b, s, h, d]).swap_dims(1, 2);
        let want = tables.apply(heads).swap_dims(1, 2).reshape([b, s, h * d]);
        let got = tables
            .for_tokens(h, 0.5, rotate_half_matrix::<NdArray>(d, &device))
            .apply(x);
        got.into_data()
            .assert_approx_eq::<f32>(&want.mul_scalar(0.5).into_data(), Default::default());
    }

    #[test]
    fn unpermute_undoes_the_neighbour_layout() {
        // Two heads of 4, one column: stored rows per head are (a0 b0 a1 b1).
        let stored = [0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0];
        let rows = unpermute_rows(&stored, 2, 4, 1);
        assert_eq!(rows, [0.0, 1.0, 10.0, 11.0, 2.0, 3.0, 12.0, 13.0]);
    }
}
