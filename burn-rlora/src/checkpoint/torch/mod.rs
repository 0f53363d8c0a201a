//! A strict, bounded reader of exactly what `torch.save` writes for a flat
//! state dict: the reference's `adapter_model.bin`.
//!
//! # Why a reader of our own
//!
//! Adapter files come from other people, so reading one must be as safe as
//! reading safetensors: no code execution, no panic, no abort, memory and time
//! linear in the file. A general pickle reader (burn-store's, for example)
//! builds whatever object graph the file describes: deep nesting overflows
//! the stack, a length field allocates before anything is read, memo
//! references duplicate objects, a shape larger than its storage allocates
//! from the shape, and a missing storage is filled with zeros. Validating the
//! file first and then handing it to such a reader would mean writing the
//! same parser twice. A state dict needs very little of pickle, so this
//! module reads that little and refuses everything else:
//!
//! * The container is a zip archive (read with the `zip` crate) holding one
//!   `<name>/data.pkl`, the storages `<name>/data/<key>` and optionally
//!   `<name>/byteorder` (`little` or `big`). Entries must be stored
//!   uncompressed (torch never compresses them), so no entry can expand
//!   beyond the file's size; the zip crate checks their CRC.
//! * The pickle runs on a small stack machine that knows only the opcodes
//!   torch emits for a state dict: `PROTO`, `FRAME`, `EMPTY_DICT`, `MARK`,
//!   `BINUNICODE`, `SHORT_BINUNICODE`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`,
//!   `BINGET`, `LONG_BINGET`, `GLOBAL`, `STACK_GLOBAL`, `BINPERSID`,
//!   `TUPLE`, `TUPLE1..3`, `EMPTY_TUPLE`, `BININT`, `BININT1`, `BININT2`,
//!   `LONG1`, `NEWTRUE`, `NEWFALSE`, `NONE`, `REDUCE`, `SETITEM`, `SETITEMS`,
//!   `BUILD` and `STOP`. The only callables are
//!   `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
//!   `collections.OrderedDict` and the `torch.*Storage` types, and they are
//!   interpreted, never called. Lists, sets, floats and every other opcode
//!   are refused.
//! * Bounds: every opcode reads at least one byte and pushes at most one
//!   value, so the number of objects is at most the pickle's length; string
//!   lengths are checked against the bytes that remain before anything is
//!   allocated; values share memo entries instead of copying them; nesting is
//!   at most [`MAX_DEPTH`] levels (so dropping a value cannot overflow the
//!   stack); dictionary keys are looked up in a map, so `SETITEMS` is linear.
//!   A dictionary, once placed inside another value, can no longer be
//!   changed, so no reference cycle can be built.
//! * Tensors: offset, shape and strides are checked against the storage's
//!   element count (`offset + sum((size - 1) * stride) < numel`), the
//!   storage's entry must hold exactly `numel * element size` bytes, a tensor
//!   may not have more elements than its storage, and all tensors together
//!   may not decode to more elements than the file has bytes. A missing,
//!   truncated or too short storage is an error, never filled in.
//!
//! Legacy (pre-zip, torch < 1.6) files are refused with a message saying so.

mod pickle;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::rc::Rc;

use burn::tensor::{bf16, f16};
use zip::{CompressionMethod, ZipArchive};

use super::error::CheckpointError;
pub use super::format::RawTensors;
use pickle::state_dict;
pub use pickle::MAX_DEPTH;
use value::{Kind, TensorRef};

/// A reason for refusing a file, before it is wrapped in a [`CheckpointError`].
type Fail = String;

fn decode(bytes: &[u8], kind: Kind, big_endian: bool) -> Vec<f64> {
    let size = kind.size();
    bytes
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            if big_endian {
                b[..size].reverse();
            }
            match kind {
                Kind::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Kind::F64 => f64::from_le_bytes(b),
                Kind::F16 => f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
                Kind::BF16 => bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
                Kind::Other(..) => f64::NAN,
            }
        })
        .collect()
}

/// Element size, bounds and budget checks for one tensor, then its values.
fn tensor_values(
    t: &TensorRef,
    storage: &[u8],
    big_endian: bool,
    budget: &mut u64,
) -> Result<Result<Vec<f64>, String>, Fail> {
    let size = t.storage.kind.size() as u64;
    let numel: u64 = t
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or("the size overflows")?;
    // The elements actually present (the fetch checked they match the declared size).
    let stored = t.storage.numel.min(storage.len() as u64 / size);
    if numel > stored {
        return Err(format!(
            "size {:?} has {numel} elements, its storage only {stored}",
            t.shape
        ));
    }
    if numel > 0 {
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| x.checked_add(acc))
            })
            .ok_or("offset and strides overflow")?;
        if last >= stored {
            return Err(format!(
                "offset {} with size {:?} and stride {:?} reaches element {last}, past the \
                 storage's {stored} elements",
                t.offset, t.shape, t.stride
            ));
        }
    }
    *budget = budget.checked_sub(numel).ok_or(
        "the tensors hold more elements in total than the file has bytes (storages \
         shared beyond reason)",
    )?;
    if let Kind::Other(name, _) = t.storage.kind {
        return Ok(Err(name.to_string()));
    }
    // Gather the elements in row-major order (the storage length was checked).
    let size = size as usize;
    let mut bytes = Vec::with_capacity(numel as usize * size);
    let mut index = vec![0u64; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        let at = at as usize * size;
        bytes.extend_from_slice(&storage[at..at + size]);
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < t.shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(Ok(decode(&bytes, t.storage.kind, big_endian)))
}

/// Read one stored (uncompressed) entry, exactly `want` bytes long.
fn read_entry(
    zip: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    want: Option<u64>,
    max: u64,
) -> Result<Vec<u8>, Fail> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| format!("entry '{name}': {e}"))?;
    if entry.compression() != CompressionMethod::Stored || entry.encrypted() {
        return Err(format!(
            "entry '{name}' is compressed or encrypted (torch stores entries uncompressed)"
        ));
    }
    let size = entry.size();
    if size > max {
        return Err(format!(
            "entry '{name}' claims {size} bytes, more than the file"
        ));
    }
    if let Some(want) = want.filter(|&w| w != size) {
        return Err(format!(
            "storage '{name}' holds {size} bytes, its tensors need exactly {want}"
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    entry
        .by_ref()
        .take(size + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("entry '{name}': {e}"))?;
    if out.len() as u64 != size {
        return Err(format!(
            "entry '{name}' is truncated: {} of {size} bytes",
            out.len()
        ));
    }
    Ok(out)
}

/// Read a `torch.save` zip of a flat state dict from `bytes` (see the
/// [module docs](self)): every tensor's shape and, for float storages, its
/// values as f64 (other dtypes give their name as the error); `what` names
/// the file in errors.
///
/// # Errors
///
/// [`CheckpointError::CorruptTensors`] saying what is wrong, and where.
pub fn read_torch(bytes: &[u8], what: &str) -> Result<RawTensors, CheckpointError> {
    read(bytes).map_err(|reason| CheckpointError::CorruptTensors {
        what: what.to_string(),
        reason,
    })
}

/// Run a state dict's pickle against storages given by key (no zip), with
/// `max` as the file size for the budgets; returns the tensors and the
/// machine's work (opcodes run plus items moved), for tests and fuzzing
/// (feature `testing`).
///
/// # Errors
///
/// As [`read_torch`].
#[cfg(feature = "testing")]
pub fn read_pickle(
    pickle: &[u8],
    storages: &HashMap<String, Vec<u8>>,
    max: u64,
) -> Result<(RawTensors, u64), CheckpointError> {
    let fetch = |key: &str, want: u64| match storages.get(key) {
        Some(data) if data.len() as u64 == want => Ok(data.clone()),
        Some(data) => Err(format!(
            "storage '{key}' holds {} bytes, its tensors need exactly {want}",
            data.len()
        )),
        None => Err(format!("storage '{key}' is missing")),
    };
    tensors(pickle, fetch, max, false).map_err(|reason| CheckpointError::CorruptTensors {
        what: "pickle".into(),
        reason,
    })
}

fn read(bytes: &[u8]) -> Result<RawTensors, Fail> {
    if !bytes.starts_with(b"PK") {
        return Err(
            "not a zip-based torch file (the legacy format of torch < 1.6 and \
                    other pickles are not read)"
                .into(),
        );
    }
    let max = bytes.len() as u64;
    let mut zip =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a valid zip: {e}"))?;
    let pickles: Vec<String> = zip
        .file_names()
        .filter(|n| {
            n.strip_suffix("/data.pkl")
                .is_some_and(|p| !p.contains('/'))
        })
        .take(2)
        .map(str::to_string)
        .collect();
    let pkl = match &pickles[..] {
        [one] => one.clone(),
        [] => return Err("no '<name>/data.pkl' in the zip".into()),
        _ => return Err("more than one '<name>/data.pkl' in the zip".into()),
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let order = format!("{prefix}byteorder");
    let big_endian = match zip.index_for_name(&order) {
        None => false,
        Some(_) => match &read_entry(&mut zip, &order, None, 16)?[..] {
            b"little" => false,
            b"big" => true,
            other => return Err(format!("byteorder is '{}'", String::from_utf8_lossy(other))),
        },
    };
    let pickle = read_entry(&mut zip, &pkl, None, max)?;
    let fetch = |key: &str, want: u64| {
        read_entry(&mut zip, &format!("{prefix}data/{key}"), Some(want), max)
    };
    Ok(tensors(&pickle, fetch, max, big_endian)?.0)
}

/// Run the pickle, then check and decode every tensor, fetching each
/// storage once (by key, with the exact byte length its type and size need).
fn tensors(
    pickle: &[u8],
    mut fetch: impl FnMut(&str, u64) -> Result<Vec<u8>, Fail>,
    max: u64,
    big_endian: bool,
) -> Result<(RawTensors, u64), Fail> {
    let (tensors, work) = state_dict(pickle)?;
    let mut storages: HashMap<Rc<str>, Vec<u8>> = HashMap::new();
    let mut declared: HashMap<Rc<str>, (Kind, u64)> = HashMap::new();
    let mut budget = max;
    let mut out = BTreeMap::new();
    for (key, t) in tensors {
        let s = &t.storage;
        let first = *declared.entry(s.key.clone()).or_insert((s.kind, s.numel));
        if first != (s.kind, s.numel) {
            return Err(format!(
                "'{key}': storage '{}' is declared as {:?} x {} and as {:?} x {}",
                s.key, first.0, first.1, s.kind, s.numel
            ));
        }
        if !storages.contains_key(&s.key) {
            let want = s
                .numel
                .checked_mul(s.kind.size() as u64)
                .filter(|&w| w <= max)
                .ok_or_else(|| {
                    format!(
                        "'{key}': storage '{}' of {} elements is larger than the file",
                        s.key, s.numel
                    )
                })?;
            let data = fetch(&s.key, want).map_err(|e| format!("'{key}': {e}"))?;
            storages.insert(s.key.clone(), data);
        }
        let values = tensor_values(&t, &storages[&s.key], big_endian, &mut budget)
            .map_err(|e| format!("'{key}': {e}"))?;
        let shape = t.shape.iter().map(|&d| d as usize).collect();
        out.insert(key, (shape, values));
    }
    Ok((out, work))
}
