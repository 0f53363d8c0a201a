//! A GGUF writer for this crate's tests and fuzz seeds (feature `testing`).
//! Not part of the supported API: it writes whatever it is told, valid or
//! not, so that tests can build hostile files. Valid files are written with
//! the supported [`GgufWriter`](crate::GgufWriter), whose value encoding
//! this writer shares.

use crate::ggml_type::GgmlType;
use crate::value::Value;

/// A metadata entry as written: key, value type id, value bytes.
#[derive(Debug, Clone)]
pub struct RawKv {
    /// The key.
    pub key: String,
    /// The value type id written before the value.
    pub type_id: u32,
    /// The value's bytes.
    pub payload: Vec<u8>,
}

/// A tensor as written.
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// The name.
    pub name: String,
    /// The dims written (GGUF order).
    pub dims: Vec<u64>,
    /// The ggml type id written.
    pub type_id: u32,
    /// The data, placed in the data section.
    pub data: Vec<u8>,
    /// The offset written; `None` for the next aligned offset after the
    /// previous tensor's data (where the data is placed either way).
    pub offset: Option<u64>,
}

/// Builds GGUF bytes. Defaults: magic `GGUF`, version 3, counts from the
/// entries, data padded to 32 bytes (set [`Builder::pad_to`] to match a
/// `general.alignment` entry; none is added automatically).
#[derive(Debug, Clone)]
pub struct Builder {
    /// The first four bytes.
    pub magic: [u8; 4],
    /// The version.
    pub version: u32,
    /// The tensor count written, if not the number of tensors.
    pub tensor_count: Option<u64>,
    /// The metadata count written, if not the number of entries.
    pub kv_count: Option<u64>,
    /// The entries.
    pub kvs: Vec<RawKv>,
    /// The tensors.
    pub tensors: Vec<RawTensor>,
    /// The alignment used to place tensor data.
    pub pad_to: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            magic: *b"GGUF",
            version: 3,
            tensor_count: None,
            kv_count: None,
            kvs: Vec::new(),
            tensors: Vec::new(),
            pad_to: 32,
        }
    }
}

impl Builder {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the entry `key` = `value`.
    pub fn kv(mut self, key: &str, value: Value) -> Self {
        let mut payload = Vec::new();
        encode_value(&value, &mut payload);
        self.kvs.push(RawKv {
            key: key.to_string(),
            type_id: value.value_type().id(),
            payload,
        });
        self
    }

    /// Adds an entry with any type id and bytes.
    pub fn kv_raw(mut self, key: &str, type_id: u32, payload: Vec<u8>) -> Self {
        self.kvs.push(RawKv {
            key: key.to_string(),
            type_id,
            payload,
        });
        self
    }

    /// Adds a tensor at the next aligned offset.
    pub fn tensor(self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> Self {
        self.tensor_raw(RawTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id: ty.id(),
            data,
            offset: None,
        })
    }

    /// Adds a tensor as given.
    pub fn tensor_raw(mut self, tensor: RawTensor) -> Self {
        self.tensors.push(tensor);
        self
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        let n_tensors = self.tensor_count.unwrap_or(self.tensors.len() as u64);
        out.extend_from_slice(&n_tensors.to_le_bytes());
        let n_kv = self.kv_count.unwrap_or(self.kvs.len() as u64);
        out.extend_from_slice(&n_kv.to_le_bytes());
        for kv in &self.kvs {
            put_str(&kv.key, &mut out);
            out.extend_from_slice(&kv.type_id.to_le_bytes());
            out.extend_from_slice(&kv.payload);
        }
        let mut data = Vec::new();
        for t in &self.tensors {
            pad(&mut data, self.pad_to);
            put_str(&t.name, &mut out);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            t.dims
                .iter()
                .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.extend_from_slice(&t.type_id.to_le_bytes());
            let offset = t.offset.unwrap_or(data.len() as u64);
            out.extend_from_slice(&offset.to_le_bytes());
            data.extend_from_slice(&t.data);
        }
        if !self.tensors.is_empty() {
            pad(&mut out, self.pad_to);
        }
        out.extend_from_slice(&data);
        out
    }
}

fn pad(buf: &mut Vec<u8>, to: u64) {
    while !(buf.len() as u64).is_multiple_of(to.max(1)) {
        buf.push(0);
    }
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the bytes of `value` (without its type id) to `out`, as the
/// supported writer ([`GgufWriter`](crate::GgufWriter)) encodes them.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    crate::writer::encode_value(value, out);
}

/// `f32` values as F32 tensor data.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
