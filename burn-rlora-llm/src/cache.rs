//! The keys and values of past positions, kept between generation steps.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The keys and values each block computed for the positions seen so far,
/// `[batch, kv_heads, positions, head_dim]` per block.
///
/// Prefill a prompt once through [`CausalLm::forward`] with a cache,
/// then feed one token at a time: each step computes only the new position
/// and attends to the cached ones.
///
/// [`CausalLm::forward`]: super::CausalLm::forward
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    pub(crate) layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    pub(crate) len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a decoder of `num_layers` blocks.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
        }
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Blocks the cache is for.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Forget every cached position.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }
}
