//! Tensor infos: name, dimensions, type, and where the data lies.

use crate::error::GgufErrorKind as Kind;
use crate::ggml_type::GgmlType;

/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// One tensor's entry in the file: its name, dimensions, type and the place
/// of its data.
///
/// # Dimension order
///
/// [`dims`](Self::dims) are in GGUF (ggml) order: `dims[0]` (ggml's `ne[0]`)
/// is the fastest-varying dimension, the length of a row. Element
/// `(i0, i1, ...)` is at `i0 + dims[0] * (i1 + dims[1] * (...))`. So a
/// PyTorch weight of shape `[out, in]` appears as dims `[in, out]`, and the
/// values are laid out exactly as a row-major array of shape
/// [`row_major_shape`](Self::row_major_shape) (the dims reversed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub(crate) name: String,
    pub(crate) dims: Vec<usize>,
    pub(crate) ty: GgmlType,
    pub(crate) offset: u64,
    pub(crate) n_elements: usize,
    pub(crate) n_bytes: u64,
}

impl TensorInfo {
    /// The tensor's name (`"blk.0.attn_q.weight"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions in GGUF order, `ne[0]` (the row length) first; see
    /// the [type's documentation](Self#dimension-order).
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The row-major shape (the [`dims`](Self::dims) reversed): a PyTorch
    /// `[out, in]` weight has row-major shape `[out, in]`.
    pub fn row_major_shape(&self) -> Vec<usize> {
        row_major_shape(&self.dims)
    }

    /// The ggml type of the data.
    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// The offset of the data from the start of the data section (a
    /// multiple of the file's alignment).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The number of values (the product of the dims; 1 for no dims).
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// The size of the data in bytes, from the type and the dims.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }
}

/// The row-major shape of GGUF-order dims: the dims reversed.
///
/// ```
/// // token_embd.weight of a vocabulary of 49152 and width 576:
/// assert_eq!(burn_rlora_gguf::row_major_shape(&[576, 49152]), vec![49152, 576]);
/// ```
pub fn row_major_shape(dims: &[usize]) -> Vec<usize> {
    dims.iter().rev().copied().collect()
}

/// Checks a tensor's dims against its type and computes its element count
/// and byte size: every dim and the element count must fit in `usize` and
/// `i64` (as ggml stores them), the row length must be a whole number of
/// blocks, and the byte size must fit in `u64`.
pub(crate) fn sized(
    name: String,
    raw_dims: &[u64],
    ty: GgmlType,
    offset: u64,
) -> Result<TensorInfo, Kind> {
    let overflow = |name: &str| Kind::ShapeOverflow {
        tensor: name.to_string(),
        dims: raw_dims.to_vec(),
    };
    let mut n: u64 = 1;
    let mut dims = Vec::with_capacity(raw_dims.len());
    for &d in raw_dims {
        n = n.checked_mul(d).ok_or_else(|| overflow(&name))?;
        if d > i64::MAX as u64 || n > i64::MAX as u64 {
            return Err(overflow(&name));
        }
        dims.push(usize::try_from(d).map_err(|_| overflow(&name))?);
    }
    let n_elements = usize::try_from(n).map_err(|_| overflow(&name))?;
    let row_len = raw_dims.first().copied().unwrap_or(1);
    if !row_len.is_multiple_of(ty.block_size()) {
        return Err(Kind::PartialBlock {
            tensor: name,
            ty,
            row_len,
            block_size: ty.block_size(),
        });
    }
    let n_bytes = (n / ty.block_size())
        .checked_mul(ty.block_bytes())
        .ok_or_else(|| overflow(&name))?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        n_elements,
        n_bytes,
    })
}

/// Checks where each tensor's data lies in a data section of `data_len`
/// bytes: aligned, inside the section, and after the end of the previous
/// tensor's data (in order, not overlapping).
pub(crate) fn check_placement(
    tensors: &[TensorInfo],
    alignment: u64,
    data_len: u64,
) -> Result<(), Kind> {
    let mut previous: Option<(&str, u64)> = None;
    for t in tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(Kind::Misaligned {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = t.offset.checked_add(t.n_bytes).filter(|&e| e <= data_len);
        let Some(end) = end else {
            return Err(Kind::DataOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                size: t.n_bytes,
                data_len,
            });
        };
        if let Some((prev, prev_end)) = previous {
            if t.offset < prev_end {
                return Err(Kind::Overlap {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    previous: prev.to_string(),
                    previous_end: prev_end,
                });
            }
        }
        previous = Some((&t.name, end));
    }
    Ok(())
}
