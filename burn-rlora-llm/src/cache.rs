//! The keys and values of past positions, kept between generation steps,
//! and the RoPE tables of a generation.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::rope::{rotate_half_matrix, RopeTables};

/// Positions a cache grows by when it runs out of room (unless told more).
const CHUNK: usize = 256;

/// One block's keys and values, `[batch, kv_heads, capacity, head_dim]`,
/// of which the first `len` positions are written.
#[derive(Debug, Clone)]
pub(crate) struct LayerCache<B: Backend> {
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
}

/// The keys and values each block computed for the positions seen so far,
/// written in place into buffers that grow in chunks, and the RoPE tables
/// of those positions, computed once.
///
/// Prefill a prompt once through [`CausalLm::forward`] with a cache, then
/// feed one token at a time: each step computes only the new position,
/// writes its keys and values into the buffers (in place where the backend
/// holds the only reference, as flex and ndarray do between steps) and
/// attends to the cached ones.
///
/// [`CausalLm::forward`]: super::CausalLm::forward
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    pub(crate) layers: Vec<Option<LayerCache<B>>>,
    pub(crate) len: usize,
    reserve: usize,
    /// The RoPE tables of every position the buffers hold, by base.
    tables: Vec<(f64, RopeTables)>,
    /// RoPE's rotate-half matrix of the head width, on the device.
    rotate: Option<(usize, Tensor<B, 2>)>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a decoder of `num_layers` blocks.
    pub fn new(num_layers: usize) -> Self {
        Self::with_capacity(num_layers, 0)
    }

    /// An empty cache for a decoder of `num_layers` blocks whose buffers
    /// start with room for `positions` (a prompt and the tokens to
    /// generate): they grow only past it, by 256 positions at a time.
    pub fn with_capacity(num_layers: usize, positions: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
            reserve: positions,
            tables: Vec::new(),
            rotate: None,
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

    /// Positions the buffers hold room for before they grow again.
    pub fn capacity(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|l| l.keys.dims()[2])
            .min()
            .unwrap_or(0)
    }

    /// Forget every cached position (the buffers are dropped too).
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
        self.tables.clear();
    }

    /// RoPE's rotate-half matrix for heads of `head_dim` on `device`, made
    /// once.
    pub(crate) fn rotate(&mut self, head_dim: usize, device: &B::Device) -> Tensor<B, 2> {
        match &self.rotate {
            Some((d, r)) if *d == head_dim => r.clone(),
            _ => {
                let r = rotate_half_matrix::<B>(head_dim, device);
                self.rotate = Some((head_dim, r.clone()));
                r
            }
        }
    }

    /// The RoPE tables of positions `start..start + len` for heads of
    /// `head_dim` and base `theta`: from the tables this cache keeps
    /// (computed once for the room it has, and again only when it grows).
    pub(crate) fn rope(
        &mut self,
        theta: f64,
        head_dim: usize,
        start: usize,
        len: usize,
    ) -> RopeTables {
        let room = (start + len).max(self.reserve).next_multiple_of(CHUNK);
        let fits = |t: &RopeTables| t.head_dim() == head_dim && t.len() >= start + len;
        match self
            .tables
            .iter()
            .position(|(base, t)| *base == theta && fits(t))
        {
            Some(i) => self.tables[i].1.rows(start, len),
            None => {
                let tables = RopeTables::new(0, room, head_dim, theta);
                let rows = tables.rows(start, len);
                self.tables.retain(|(base, _)| *base != theta);
                self.tables.push((theta, tables));
                rows
            }
        }
    }

    /// Writes `keys` and `values` (`[batch, kv_heads, len, head_dim]`) of
    /// the positions after the cached `past` into block `layer`'s buffers,
    /// growing them when full, and returns the keys and values of every
    /// position so far (`[batch, kv_heads, past + len, head_dim]`).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        past: usize,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, kv, len, hd] = keys.dims();
        let end = past + len;
        let reserve = self.reserve;
        let slot = &mut self.layers[layer];
        let room = slot.as_ref().map_or(0, |l| l.keys.dims()[2]);
        let mut cache = match slot.take() {
            Some(c) if room >= end => c,
            old => {
                // Room for `end` positions and a chunk more, at least the reserve.
                let capacity = end.max(reserve).next_multiple_of(CHUNK);
                let device = keys.device();
                let buffer =
                    || Tensor::<B, 4>::zeros([b, kv, capacity, hd], &device).cast(keys.dtype());
                let (mut k, mut v) = (buffer(), buffer());
                if let (Some(old), true) = (old, past > 0) {
                    let written = [0..b, 0..kv, 0..past, 0..hd];
                    k = k.slice_assign(written.clone(), old.keys.slice(written.clone()));
                    v = v.slice_assign(written.clone(), old.values.slice(written));
                }
                LayerCache { keys: k, values: v }
            }
        };
        let new = [0..b, 0..kv, past..end, 0..hd];
        cache.keys = cache.keys.slice_assign(new.clone(), keys);
        cache.values = cache.values.slice_assign(new, values);
        let so_far = [0..b, 0..kv, 0..end, 0..hd];
        let out = (
            cache.keys.clone().slice(so_far.clone()),
            cache.values.clone().slice(so_far),
        );
        *slot = Some(cache);
        out
    }
}
