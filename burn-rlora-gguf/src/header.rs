//! Parsing the start of a GGUF file: header, metadata, tensor infos, and
//! where the data section begins.

use std::collections::HashMap;
use std::io::Read;

use crate::error::GgufErrorKind as Kind;
use crate::ggml_type::GgmlType;
use crate::kv::read_value;
use crate::metadata::Metadata;
use crate::reader::Bounded;
use crate::tensor::{check_placement, sized, TensorInfo, MAX_DIMS};
use crate::value::{Value, ValueType};

/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The smallest metadata entry: an empty key (8-byte length), a 4-byte type
/// and a 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// The smallest tensor info: an empty name, `n_dims`, the type and the offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Everything before the tensor data, checked.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub index: HashMap<String, usize>,
    pub alignment: u64,
    /// Where the data section starts in the input.
    pub data_start: u64,
    /// The data section's length (to the end of the input).
    pub data_len: u64,
}

/// Parses a whole GGUF input from its start, in time linear in its size;
/// every allocation is bounded by the bytes it consumes.
pub(crate) fn parse<R: Read>(r: &mut Bounded<R>) -> Result<Parsed, Kind> {
    let version = read_magic_and_version(r)?;
    let n_tensors = r.u64(&|| "the number of tensors".into())?;
    let n_kv = r.u64(&|| "the number of metadata entries".into())?;
    r.fits(n_kv, MIN_KV_BYTES, &|| {
        "the number of metadata entries".into()
    })?;
    let kv_floor = n_kv * MIN_KV_BYTES;
    if n_tensors.saturating_mul(MIN_TENSOR_INFO_BYTES) > r.remaining() - kv_floor {
        return Err(Kind::CountTooLarge {
            what: "the number of tensors".into(),
            count: n_tensors,
            min_bytes_each: MIN_TENSOR_INFO_BYTES,
            available: r.remaining() - kv_floor,
        });
    }
    let metadata = read_metadata(r, n_kv)?;
    let alignment = alignment(&metadata)?;
    let (tensors, index) = read_tensor_infos(r, n_tensors)?;
    // alignment is a u32, so this does not overflow for any real input.
    let pad = (alignment - r.pos() % alignment) % alignment;
    let data_start = r.pos().saturating_add(pad);
    let data_len = if data_start <= r.len() {
        r.len() - data_start
    } else if tensors.is_empty() {
        0
    } else {
        let what = format!("the padding before the tensor data (alignment {alignment})");
        return Err(Kind::truncated(what, r.pos(), pad, r.len()));
    };
    check_placement(&tensors, alignment, data_len)?;
    Ok(Parsed {
        version,
        metadata,
        tensors,
        index,
        alignment,
        data_start,
        data_len,
    })
}

fn read_magic_and_version<R: Read>(r: &mut Bounded<R>) -> Result<u32, Kind> {
    let n = r.remaining().min(4) as usize;
    let mut magic = vec![0u8; n];
    r.fill(&mut magic, &|| "the magic".into())?;
    if magic != b"GGUF" {
        return Err(Kind::BadMagic { found: magic });
    }
    let version = r.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(Kind::UnsupportedVersion { version });
    }
    Ok(version)
}

fn read_metadata<R: Read>(r: &mut Bounded<R>, n_kv: u64) -> Result<Metadata, Kind> {
    let mut entries = Vec::new();
    let mut index = HashMap::new();
    for i in 0..n_kv {
        let key = r.string(&|| format!("the key of metadata entry #{i}"))?;
        let id = r.u32(&|| format!("the value type of key `{key}`"))?;
        let ty = ValueType::from_id(id).ok_or_else(|| Kind::UnknownValueType {
            key: key.clone(),
            id,
        })?;
        let value = read_value(r, ty, &key)?;
        if index.contains_key(&key) {
            return Err(Kind::DuplicateKey { key });
        }
        index.insert(key.clone(), entries.len());
        entries.push((key, value));
    }
    Ok(Metadata::new(entries, index))
}

/// `general.alignment`: a `u32` power of two, [`DEFAULT_ALIGNMENT`] if absent.
fn alignment(metadata: &Metadata) -> Result<u64, Kind> {
    match metadata.get("general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(Value::U32(a)) if a.is_power_of_two() => Ok(u64::from(*a)),
        Some(Value::U32(a)) => Err(Kind::InvalidAlignment {
            found: a.to_string(),
        }),
        Some(other) => Err(Kind::InvalidAlignment {
            found: format!("a value of type {}", other.value_type()),
        }),
    }
}

type Infos = (Vec<TensorInfo>, HashMap<String, usize>);

fn read_tensor_infos<R: Read>(r: &mut Bounded<R>, n: u64) -> Result<Infos, Kind> {
    let mut tensors = Vec::new();
    let mut index = HashMap::new();
    for i in 0..n {
        let name = r.string(&|| format!("the name of tensor #{i}"))?;
        let what = || format!("the info of tensor #{i} `{name}`");
        let n_dims = r.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(Kind::TooManyDims {
                tensor: name,
                n_dims,
                max: MAX_DIMS,
            });
        }
        let mut dims = [0u64; MAX_DIMS as usize];
        for d in &mut dims[..n_dims as usize] {
            *d = r.u64(&what)?;
        }
        let id = r.u32(&what)?;
        let offset = r.u64(&what)?;
        let Some(ty) = GgmlType::from_id(id) else {
            return Err(Kind::UnknownTensorType { tensor: name, id });
        };
        if index.contains_key(&name) {
            return Err(Kind::DuplicateTensor { tensor: name });
        }
        let info = sized(name.clone(), &dims[..n_dims as usize], ty, offset)?;
        index.insert(name, tensors.len());
        tensors.push(info);
    }
    Ok((tensors, index))
}
