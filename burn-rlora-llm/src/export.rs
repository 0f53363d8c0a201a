//! Adapters as llama.cpp LoRA files: a saved adapter written as the GGUF
//! adapter that `llama-server --lora`, `llama-cli --lora` and ollama's
//! `ADAPTER` load on top of the base model's GGUF file.
//!
//! llama.cpp applies a LoRA adapter as one fixed low-rank pair per base
//! weight: for a weight `W` (GGUF name `blk.3.ffn_gate.weight`) the file
//! holds `blk.3.ffn_gate.weight.lora_a` (`A`, PyTorch shape `[r, in]`) and
//! `.lora_b` (`B`, `[out, r]`), and llama.cpp adds `scale * B (A x)` to
//! `W x`, with `scale = adapter.lora.alpha / r` (times the per-request scale
//! the user gives, 1 by default). [`lora_gguf`] and [`export_lora_gguf`]
//! write exactly what an adapter of this crate computes in eval mode, where
//! that is one such pair:
//!
//! | adapter | exported pair | rank |
//! |---|---|---|
//! | one head (LoRA) | `A`, `B` | `r` |
//! | `N` heads, uniform router (`rlora-norouter`, `r_lora_no_router`) | `A`, `mean_i(B_i)` (the router weighs every head `1/N`) | `r` |
//! | with R-LoRA's frozen compensation pair `(A0, Bbar0)` | `[A; A0]`, `[B, -Bbar0]` (ranks concatenated) | `2r` |
//! | a softmax router (HydraLoRA, R-LoRA) | refused: the heads' weights depend on each token's input | |
//!
//! These are the cases [`merge_model`](burn_rlora::checkpoint::merge_model)
//! merges exactly, with the same formula, `W + s * mean_i(B_i) A - s *
//! Bbar0 A0`. The compensation pair (R-LoRA's random initial heads
//! cancelled at step 0) is folded in, not dropped: `[B, -Bbar0] [A; A0] = B
//! A - Bbar0 A0`, exact in real numbers, at twice the rank (the exported
//! adapter costs two rank-`r` products instead of one). Refusing it would
//! leave every R-LoRA adapter without a router unexported, and dropping it
//! would add the initial heads' output that training started from zero.
//!
//! **Scaling.** The adapter's scaling `s` (`alpha / r`, or `alpha /
//! sqrt(r)` with rsLoRA, which llama.cpp does not know) is written as
//! `adapter.lora.alpha = s * r'` for the exported rank `r'`, so that
//! llama.cpp's `alpha / r'` is `s` (the `f32` nearest to it that makes
//! llama.cpp's own `f32` division give `s` rounded to `f32`, where one
//! exists). In the rare case where `s * r'` is not a finite, non-zero
//! `f32` (a zero scaling), `alpha` is written as 0, which llama.cpp reads as
//! scale 1, and `B` is multiplied by `s` instead.
//!
//! **Names and rows.** Module paths are transformers' (with or without
//! PEFT's `base_model.model.` prefix): `model.layers.N.self_attn.q_proj`
//! is `blk.N.attn_q.weight`, `k_proj` `attn_k`, `v_proj` `attn_v`, `o_proj`
//! `attn_output`, `mlp.gate_proj` `blk.N.ffn_gate.weight`, `up_proj`
//! `ffn_up`, `down_proj` `ffn_down`, and `lm_head` is `output.weight` (an
//! untied head only: with tied embeddings llama.cpp has no output weight of
//! its own, and such an adapter is refused). For the `llama` architecture
//! llama.cpp's converter stored the query and key rows of each head
//! reordered for its RoPE layout, which the loader undoes
//! ([`unpermute_rows`](crate::rope::unpermute_rows)); the export reorders
//! the rows of `B` for `q_proj` (per query head) and `k_proj` (per key/value
//! head) the same way as the converter ([`permute_rows`]), so that the pair
//! acts on the file's rows. Other architectures keep the rows as they are.
//!
//! **Tensor types.** `lora_a` and `lora_b` are written as F32, F16 or Q8_0
//! ([`LORA_TENSOR_TYPES`]); as in llama.cpp's `convert_lora_to_gguf.py`, a
//! tensor whose rows are not a whole number of Q8_0 blocks (32 values:
//! usually `lora_b`, whose rows have `r'` values) is written as F16
//! instead. Q8_0 is quantized bit for bit as llama.cpp quantizes.
//!
//! **Metadata.** `general.architecture` (the base's), `general.type =
//! adapter`, `general.name`, `adapter.type = lora`, `adapter.lora.alpha`
//! (`f32`), `general.file_type`, `general.quantization_version`, and what
//! the file was made from under `burn_rlora.*` (heads, rank, scaling,
//! router, whether a compensation pair was folded in).
//!
//! ```no_run
//! use burn_rlora_llm::export::{export_lora_gguf, GgmlType, GgufExportOptions};
//!
//! let report = export_lora_gguf(
//!     "my-adapter",
//!     "data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
//!     "my-adapter.gguf",
//!     &GgufExportOptions::new().with_tensor_type(GgmlType::F16),
//! )?;
//! println!("{} modules, rank {}, alpha {}", report.modules.len(), report.rank, report.alpha);
//! // llama-server -m data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --lora my-adapter.gguf
//! # Ok::<(), burn_rlora_llm::export::ExportError>(())
//! ```

use std::path::{Path, PathBuf};

use burn_rlora::checkpoint::format::ModuleTensors;
use burn_rlora::checkpoint::{
    read_reference, AdapterFile, CheckpointError, LoadOptions, CONFIG_FILE,
};
use burn_rlora::RouterKind;
use burn_rlora_gguf::{GgufError, GgufFile, GgufWriter, Value, WriteError};

/// The tensor types, re-exported from `burn-rlora-gguf` for
/// [`GgufExportOptions::with_tensor_type`].
pub use burn_rlora_gguf::GgmlType;

use crate::adapter::PEFT_PREFIX;
use crate::config::{file_name, Architecture, DecoderConfig};
use crate::error::DecoderError;

/// The tensor types the exported `lora_a` and `lora_b` can have: F32, F16
/// and Q8_0 (as llama.cpp's `convert_lora_to_gguf.py --outtype`).
pub const LORA_TENSOR_TYPES: [GgmlType; 3] = [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0];

/// How [`lora_gguf`] writes the adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufExportOptions {
    /// The type of the `lora_a` and `lora_b` tensors, one of
    /// [`LORA_TENSOR_TYPES`] (F32 by default).
    pub tensor_type: GgmlType,
    /// `general.name`; [`export_lora_gguf`] uses the adapter directory's
    /// name when `None`, [`lora_gguf`] `"adapter"`.
    pub name: Option<String>,
}

impl Default for GgufExportOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufExportOptions {
    /// F32 tensors, the default name.
    pub fn new() -> Self {
        Self {
            tensor_type: GgmlType::F32,
            name: None,
        }
    }

    /// The tensors' type (one of [`LORA_TENSOR_TYPES`]).
    pub fn with_tensor_type(mut self, tensor_type: GgmlType) -> Self {
        self.tensor_type = tensor_type;
        self
    }

    /// `general.name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// One module of an exported adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedModule {
    /// The module's name in the adapter file.
    pub module: String,
    /// The base weight it applies to (`blk.3.ffn_gate.weight`); the file
    /// holds `<weight>.lora_a` and `<weight>.lora_b`.
    pub weight: String,
    /// The exported rank `r'` (the adapter's rank, doubled when the
    /// compensation pair is folded in).
    pub rank: usize,
    /// The heads averaged into `lora_b`.
    pub heads: usize,
    /// Whether the compensation pair was folded in.
    pub compensation: bool,
    /// Whether `lora_b`'s rows were reordered for llama.cpp's RoPE layout.
    pub permuted: bool,
    /// The type `lora_a` was written in.
    pub lora_a_type: GgmlType,
    /// The type `lora_b` was written in.
    pub lora_b_type: GgmlType,
}

/// What [`lora_gguf`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// The base's architecture (`general.architecture`).
    pub architecture: Architecture,
    /// `adapter.lora.alpha` as written.
    pub alpha: f32,
    /// The adapter's scaling `s`, which `alpha / rank` reproduces.
    pub scaling: f64,
    /// The exported rank of the modules (they share it).
    pub rank: usize,
    /// Every module, in the order of the file (by block, then projection).
    pub modules: Vec<ExportedModule>,
}

/// Why an adapter could not be exported.
///
/// Its message holds the whole reason; only the variants that wrap an error
/// of another crate whole ([`Base`](Self::Base), [`BaseConfig`](Self::BaseConfig),
/// [`Write`](Self::Write)) pass that error on as their message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The adapter directory could not be read.
    #[error("reading the adapter {}: {error}", dir.display())]
    Adapter {
        /// The adapter directory.
        dir: PathBuf,
        /// Why.
        error: CheckpointError,
    },
    /// An input path is not what it must be (the adapter a directory, a
    /// file a regular file).
    #[error("{option} {}: {reason}", path.display())]
    BadPath {
        /// The option or role of the path ("the adapter", "--base", ...).
        option: String,
        /// The path.
        path: PathBuf,
        /// What is wrong ("a FIFO, not a directory", ...).
        reason: String,
    },
    /// The output would overwrite one of the inputs.
    #[error("the output {} is {what} {}: writing it would destroy an input; choose another file", out.display(), input.display())]
    WouldOverwrite {
        /// The output path.
        out: PathBuf,
        /// What the input is ("the base model", ...).
        what: &'static str,
        /// The input.
        input: PathBuf,
    },
    /// The base model file could not be read.
    #[error(transparent)]
    Base(#[from] GgufError),
    /// The base model file does not describe a decoder of this crate.
    #[error(transparent)]
    BaseConfig(#[from] DecoderError),
    /// A module of the adapter computes something llama.cpp's fixed
    /// low-rank pair cannot.
    #[error("module '{module}' cannot be exported for llama.cpp: {reason}")]
    NotExpressible {
        /// The module.
        module: String,
        /// Why, in words.
        reason: String,
    },
    /// A module's name is not a projection of the decoder.
    #[error(
        "module '{module}' is not a projection of the decoder (expected \
         [base_model.model.]model.layers.N.self_attn.{{q,k,v,o}}_proj, \
         model.layers.N.mlp.{{gate,up,down}}_proj or lm_head)"
    )]
    UnknownModule {
        /// The module.
        module: String,
    },
    /// The base model has no weight for a module (wrong base model, or an
    /// output head tied to the embedding).
    #[error("{file}: no tensor '{weight}' for module '{module}'{hint}")]
    MissingWeight {
        /// The base model file.
        file: String,
        /// The module.
        module: String,
        /// The GGUF weight it maps to.
        weight: String,
        /// Why that may be.
        hint: &'static str,
    },
    /// A module's shape differs from the base weight's.
    #[error(
        "{file}: module '{module}' maps {d_in} -> {d_out}, but '{weight}' has GGUF dims {found:?} \
         (expected [{d_in}, {d_out}]): is this the adapter's base model?"
    )]
    ShapeMismatch {
        /// The base model file.
        file: String,
        /// The module.
        module: String,
        /// The GGUF weight.
        weight: String,
        /// The module's input width.
        d_in: usize,
        /// The module's output width.
        d_out: usize,
        /// The weight's dims (GGUF order).
        found: Vec<usize>,
    },
    /// A tensor type other than [`LORA_TENSOR_TYPES`] was asked for.
    #[error("tensor type {0} is not supported for LoRA tensors (supported: F32, F16, Q8_0)")]
    UnsupportedType(GgmlType),
    /// The file could not be built or written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The projections, as transformers and llama.cpp name them.
const PROJECTIONS: [(&str, &str); 7] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Where a module sits: its block (`usize::MAX` for the head) and
/// projection index, for the file's order.
type Slot = (usize, usize);

/// The GGUF weight of the decoder's module `module` (transformers' path,
/// with or without PEFT's prefix), and where it sorts; `None` for a path
/// that is not a projection.
///
/// ```
/// use burn_rlora_llm::export::gguf_weight_name;
///
/// let name = gguf_weight_name("base_model.model.model.layers.3.mlp.gate_proj");
/// assert_eq!(name.as_deref(), Some("blk.3.ffn_gate.weight"));
/// assert_eq!(gguf_weight_name("lm_head").as_deref(), Some("output.weight"));
/// assert_eq!(gguf_weight_name("model.layers.x.mlp.up_proj"), None);
/// ```
pub fn gguf_weight_name(module: &str) -> Option<String> {
    weight_slot(module).map(|(name, _)| name)
}

fn weight_slot(module: &str) -> Option<(String, Slot)> {
    let path = module.strip_prefix(PEFT_PREFIX).unwrap_or(module);
    if path == "lm_head" {
        return Some(("output.weight".to_string(), (usize::MAX, 0)));
    }
    let rest = path.strip_prefix("model.layers.")?;
    let (block, projection) = rest.split_once('.')?;
    if block.is_empty() || !block.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if block.len() > 1 && block.starts_with('0') {
        return None;
    }
    let n: usize = block.parse().ok()?;
    let (i, (_, short)) = PROJECTIONS
        .iter()
        .enumerate()
        .find(|(_, (hf, _))| *hf == projection)?;
    Some((format!("blk.{n}.{short}.weight"), (n, i)))
}

/// The rows of a `[heads * head_dim, cols]` row-major matrix reordered
/// from transformers' "rotate half" layout to llama.cpp's (what
/// `convert_hf_to_gguf.py` does to the query and key weights of `llama`
/// models): within each head, row `j * head_dim / 2 + i` moves to `2 i + j`.
/// The inverse of [`unpermute_rows`](crate::rope::unpermute_rows).
///
/// ```
/// use burn_rlora_llm::export::permute_rows;
/// use burn_rlora_llm::rope::unpermute_rows;
///
/// let rows: Vec<f32> = (0..16).map(|v| v as f32).collect(); // 2 heads of 4 rows, 2 columns
/// let permuted = permute_rows(&rows, 2, 4, 2);
/// assert_eq!(permuted[..8], [0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
/// assert_eq!(unpermute_rows(&permuted, 2, 4, 2), rows);
/// ```
pub fn permute_rows<T: Copy + Default>(
    rows: &[T],
    heads: usize,
    head_dim: usize,
    cols: usize,
) -> Vec<T> {
    let half = head_dim / 2;
    let mut out = vec![T::default(); rows.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let to = (h * head_dim + 2 * i + j) * cols;
                let from = (h * head_dim + j * half + i) * cols;
                out[to..to + cols].copy_from_slice(&rows[from..from + cols]);
            }
        }
    }
    out
}

/// The exported pair of one module: `A'` `[r', in]` and `B'` `[out, r']`,
/// row-major, before scaling.
fn pair(m: &ModuleTensors) -> (Vec<f64>, Vec<f64>, usize) {
    let (_, d_out) = m.dims();
    let r = m.a.shape[0];
    let n = m.heads.len() as f64;
    let mut mean = vec![0.0; d_out * r];
    for h in &m.heads {
        mean.iter_mut().zip(&h.data).for_each(|(a, b)| *a += b / n);
    }
    match &m.compensation {
        None => (m.a.data.clone(), mean, r),
        Some((a0, b0)) => {
            let r0 = a0.shape[0];
            let mut a = m.a.data.clone();
            a.extend_from_slice(&a0.data);
            let rank = r + r0;
            let mut b = Vec::with_capacity(d_out * rank);
            for o in 0..d_out {
                b.extend_from_slice(&mean[o * r..(o + 1) * r]);
                b.extend(b0.data[o * r0..(o + 1) * r0].iter().map(|v| -v));
            }
            (a, b, rank)
        }
    }
}

/// `alpha` such that llama.cpp's `f32` scale `alpha / rank` reproduces
/// `scaling`: `Some` of the best `f32`, `None` when no finite, non-zero
/// alpha does (then `alpha = 0` and `B` carries the scaling).
fn alpha_for(scaling: f64, rank: usize) -> Option<f32> {
    let nearest = (scaling * rank as f64) as f32;
    if !nearest.is_finite() || nearest == 0.0 {
        return None;
    }
    let target = scaling as f32;
    let r = rank as f32;
    let candidates = [
        nearest,
        f32::from_bits(nearest.to_bits() + 1),
        f32::from_bits(nearest.to_bits() - 1),
    ];
    Some(
        candidates
            .into_iter()
            .find(|a| a.is_finite() && a / r == target)
            .unwrap_or(nearest),
    )
}

/// The `general.file_type` llama.cpp gives a file of mostly `ty` tensors.
fn file_type(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F16 => 1,
        GgmlType::Q8_0 => 7,
        _ => 0,
    }
}

/// The type a tensor of row length `row_len` is written in: `ty`, or F16
/// where Q8_0 does not fit its rows (as llama.cpp's converter falls back).
fn tensor_type(ty: GgmlType, row_len: usize) -> GgmlType {
    if (row_len as u64).is_multiple_of(ty.block_size()) {
        ty
    } else {
        GgmlType::F16
    }
}

/// The reason a softmax router cannot be exported.
fn router_reason(heads: usize) -> String {
    format!(
        "it has a softmax router over {heads} heads, so the heads' weights depend on each \
         token's input, and llama.cpp applies one fixed low-rank pair B A per weight; only \
         adapters with one head or the uniform router export exactly (LoRA, `rlora-norouter`); \
         serve this one with burn-rlora-llm"
    )
}

/// The adapter `adapter` as a llama.cpp LoRA adapter for the base model
/// `base` (its metadata and tensor infos are read; no tensor data), ready
/// to be written, with a report of what it holds. See the [module
/// documentation](self) for what is exported and how.
///
/// # Errors
///
/// [`ExportError::BaseConfig`] when `base` is not a decoder of this crate;
/// [`ExportError::NotExpressible`] for a softmax router;
/// [`ExportError::UnknownModule`], [`ExportError::MissingWeight`] (an
/// adapted output head on a base whose head is the embedding, or another
/// base model) and [`ExportError::ShapeMismatch`] when the adapter does not
/// fit `base`; [`ExportError::UnsupportedType`]; [`ExportError::Write`]
/// should a tensor not encode.
pub fn lora_gguf(
    adapter: &AdapterFile,
    base: &GgufFile,
    options: &GgufExportOptions,
) -> Result<(GgufWriter, ExportReport), ExportError> {
    let ty = options.tensor_type;
    if !LORA_TENSOR_TYPES.contains(&ty) {
        return Err(ExportError::UnsupportedType(ty));
    }
    let config = DecoderConfig::from_gguf(base)?;
    let layer = adapter.config.rlora_config();
    let scaling = layer.scaling();
    let file = file_name(base);
    let architecture = config.architecture;

    // Check every module before writing anything.
    let mut slots = Vec::with_capacity(adapter.modules.len());
    for (module, m) in &adapter.modules {
        if m.route.is_some() || (layer.router == RouterKind::Softmax && m.heads.len() > 1) {
            return Err(ExportError::NotExpressible {
                module: module.clone(),
                reason: router_reason(m.heads.len()),
            });
        }
        let (weight, slot) = weight_slot(module).ok_or_else(|| ExportError::UnknownModule {
            module: module.clone(),
        })?;
        let Ok(info) = base.tensor_info(&weight) else {
            let hint = if weight == "output.weight" {
                " (the base model's output head is its token embedding, which llama.cpp does \
                 not adapt as a head)"
            } else {
                " (is this the adapter's base model?)"
            };
            return Err(ExportError::MissingWeight {
                file,
                module: module.clone(),
                weight,
                hint,
            });
        };
        let (d_in, d_out) = m.dims();
        if info.dims() != [d_in, d_out] {
            return Err(ExportError::ShapeMismatch {
                file,
                module: module.clone(),
                weight,
                d_in,
                d_out,
                found: info.dims().to_vec(),
            });
        }
        slots.push((slot, weight, module, m));
    }
    slots.sort_by_key(|(slot, ..)| *slot);

    let pairs: Vec<_> = slots.iter().map(|(.., m)| pair(m)).collect();
    // The rank most modules have; the others' B absorb the difference.
    let rank = most_common(pairs.iter().map(|(_, _, r)| *r)).unwrap_or(layer.rank);
    let alpha = alpha_for(scaling, rank);

    let mut writer = GgufWriter::new();
    writer.add_metadata(
        "general.architecture",
        Value::String(architecture.gguf_name().into()),
    )?;
    writer.add_metadata("general.type", Value::String("adapter".into()))?;
    let name = options.name.clone().unwrap_or_else(|| "adapter".into());
    writer.add_metadata("general.name", Value::String(name))?;
    writer.add_metadata("adapter.type", Value::String("lora".into()))?;
    writer.add_metadata("adapter.lora.alpha", Value::F32(alpha.unwrap_or(0.0)))?;
    writer.add_metadata("general.file_type", Value::U32(file_type(ty)))?;
    writer.add_metadata("general.quantization_version", Value::U32(2))?;
    writer.add_metadata("burn_rlora.heads", Value::U32(layer.num_heads as u32))?;
    writer.add_metadata("burn_rlora.rank", Value::U32(layer.rank as u32))?;
    writer.add_metadata("burn_rlora.scaling", Value::F64(scaling))?;
    let router = match (layer.num_heads, layer.router) {
        (1, _) => "none",
        (_, RouterKind::Uniform) => "uniform",
        (_, RouterKind::Softmax) => "softmax",
    };
    writer.add_metadata("burn_rlora.router", Value::String(router.into()))?;
    let folded = slots.iter().any(|(.., m)| m.compensation.is_some());
    writer.add_metadata("burn_rlora.compensation_folded", Value::Bool(folded))?;

    let mut modules = Vec::with_capacity(slots.len());
    for ((_, weight, module, m), (a, b, r)) in slots.iter().zip(pairs) {
        let (d_in, d_out) = m.dims();
        // llama.cpp multiplies by alpha / r; B carries what that misses.
        let factor = match alpha {
            Some(_) => r as f64 / rank as f64,
            None => scaling,
        };
        let mut b: Vec<f32> = b.iter().map(|v| (v * factor) as f32).collect();
        let a: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let heads = match (
            weight.ends_with("attn_q.weight"),
            weight.ends_with("attn_k.weight"),
        ) {
            (true, _) => Some(config.num_attention_heads),
            (_, true) => Some(config.num_key_value_heads),
            _ => None,
        };
        let permuted = architecture.permutes_query_key_rows() && heads.is_some();
        if let Some(heads) = heads.filter(|_| permuted) {
            if heads * config.head_dim() != d_out {
                return Err(ExportError::NotExpressible {
                    module: module.to_string(),
                    reason: format!(
                        "its {d_out} outputs are not {heads} heads of {} rows, so its rows \
                         cannot be put in llama.cpp's RoPE order",
                        config.head_dim()
                    ),
                });
            }
            b = permute_rows(&b, heads, config.head_dim(), r);
        }
        let a_type = tensor_type(ty, d_in);
        let b_type = tensor_type(ty, r);
        writer.add_tensor(format!("{weight}.lora_a"), &[d_in, r], a_type, &a)?;
        writer.add_tensor(format!("{weight}.lora_b"), &[r, d_out], b_type, &b)?;
        modules.push(ExportedModule {
            module: module.to_string(),
            weight: weight.clone(),
            rank: r,
            heads: m.heads.len(),
            compensation: m.compensation.is_some(),
            permuted,
            lora_a_type: a_type,
            lora_b_type: b_type,
        });
    }
    let report = ExportReport {
        architecture,
        alpha: alpha.unwrap_or(0.0),
        scaling,
        rank,
        modules,
    };
    Ok((writer, report))
}

fn most_common(values: impl Iterator<Item = usize>) -> Option<usize> {
    let mut counts: std::collections::BTreeMap<usize, usize> = Default::default();
    values.for_each(|v| *counts.entry(v).or_default() += 1);
    counts
        .into_iter()
        .max_by_key(|&(v, n)| (n, v))
        .map(|(v, _)| v)
}

/// `path` in absolute form without symlinks, also when it does not exist yet.
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(canonical(parent)?.join(path.file_name()?))
}

fn same_path(a: &Path, b: &Path) -> bool {
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

/// What a path is, in words, from its metadata.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn bad_path(option: &str, path: &Path, reason: impl Into<String>) -> ExportError {
    ExportError::BadPath {
        option: option.to_string(),
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the adapter directory `adapter_dir` (this crate's format, or the
/// reference's `adapter_model.bin`) and the header of the base model
/// `base`, and writes the llama.cpp LoRA adapter ([`lora_gguf`]) to `out`,
/// atomically.
///
/// Paths are checked before anything is read from them: the adapter must
/// be a directory, the base a regular file (a FIFO is refused without
/// being waited on), `out` a regular file or nothing, and `out` must not be
/// the base model or a file of the adapter.
///
/// # Errors
///
/// [`ExportError::BadPath`], [`ExportError::WouldOverwrite`],
/// [`ExportError::Adapter`], [`ExportError::Base`], then as [`lora_gguf`].
pub fn export_lora_gguf(
    adapter_dir: impl AsRef<Path>,
    base: impl AsRef<Path>,
    out: impl AsRef<Path>,
    options: &GgufExportOptions,
) -> Result<ExportReport, ExportError> {
    let (dir, base, out) = (adapter_dir.as_ref(), base.as_ref(), out.as_ref());
    match std::fs::metadata(out) {
        Ok(meta) if !meta.is_file() => {
            return Err(bad_path(
                "the output",
                out,
                format!("{}, not a regular file", kind(&meta)),
            ))
        }
        _ => {}
    }
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(meta) => {
            return Err(bad_path(
                "the adapter",
                dir,
                format!("{}, not an adapter directory", kind(&meta)),
            ))
        }
        Err(e) => return Err(bad_path("the adapter", dir, e.to_string())),
    }
    if same_path(out, base) {
        return Err(ExportError::WouldOverwrite {
            out: out.to_path_buf(),
            what: "the base model",
            input: base.to_path_buf(),
        });
    }
    let inputs = [
        dir.join(CONFIG_FILE),
        dir.join(burn_rlora::checkpoint::TENSORS_FILE),
        dir.join("adapter_model.bin"),
    ];
    if let Some(input) = inputs.iter().find(|f| same_path(out, f)) {
        return Err(ExportError::WouldOverwrite {
            out: out.to_path_buf(),
            what: "a file of the adapter",
            input: input.clone(),
        });
    }
    let adapter =
        read_reference(dir, &LoadOptions::new()).map_err(|error| ExportError::Adapter {
            dir: dir.to_path_buf(),
            error,
        })?;
    let base = GgufFile::open(base)?;
    let mut options = options.clone();
    if options.name.is_none() {
        let name = canonical(dir)
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "adapter".into());
        options.name = Some(name);
    }
    let (writer, report) = lora_gguf(&adapter, &base, &options)?;
    writer.write_file(out)?;
    Ok(report)
}
