//! Reading metadata values (scalars, strings, nested arrays) from a
//! [`Bounded`] reader.

use std::io::Read;

use crate::error::GgufErrorKind as Kind;
use crate::reader::Bounded;
use crate::value::{Array, Value, ValueType};

/// The deepest nesting of arrays accepted in a metadata value (an array of
/// arrays of ... : this many `array` levels). Deeper values are refused with
/// [`GgufErrorKind::NestingTooDeep`](crate::GgufErrorKind::NestingTooDeep),
/// so that reading never recurses without bound.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// How many elements of a string or array array are reserved before any is
/// read (the rest grow with the elements actually read).
const RESERVE: usize = 1024;

/// The value of type `ty` of the entry `key`.
pub(crate) fn read_value<R: Read>(
    r: &mut Bounded<R>,
    ty: ValueType,
    key: &str,
) -> Result<Value, Kind> {
    let what = || format!("value of key `{key}`");
    Ok(match ty {
        ValueType::U8 => Value::U8(u8::from_le_bytes(r.array(&what)?)),
        ValueType::I8 => Value::I8(i8::from_le_bytes(r.array(&what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(r.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(r.array(&what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(r.array(&what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(r.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(r.array(&what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(r.array(&what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(r.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(r.array(&what)?)),
        ValueType::Bool => {
            let [byte] = r.array(&what)?;
            Value::Bool(bool_of(byte, key)?)
        }
        ValueType::String => Value::String(r.string(&what)?),
        ValueType::Array => Value::Array(read_array(r, key, 1)?),
    })
}

fn bool_of(byte: u8, key: &str) -> Result<bool, Kind> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        byte => Err(Kind::InvalidBool {
            key: key.to_string(),
            byte,
        }),
    }
}

/// An array (its element type, its length, its elements) at nesting `depth`
/// (1 for a top-level array).
fn read_array<R: Read>(r: &mut Bounded<R>, key: &str, depth: usize) -> Result<Array, Kind> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(Kind::NestingTooDeep {
            key: key.to_string(),
            max: MAX_ARRAY_DEPTH,
        });
    }
    let id = r.u32(&|| format!("element type of an array in key `{key}`"))?;
    let ty = ValueType::from_id(id).ok_or_else(|| Kind::UnknownValueType {
        key: key.to_string(),
        id,
    })?;
    let len = r.u64(&|| format!("length of an array in key `{key}`"))?;
    r.fits(len, ty.min_bytes(), &|| {
        format!("length of an array of {ty} in key `{key}`")
    })?;
    let what = || format!("elements of an array of {ty} in key `{key}`");
    Ok(match ty {
        ValueType::U8 => Array::U8(r.bytes(len, &what)?),
        ValueType::I8 => Array::I8(fixed(r, len, &what, i8::from_le_bytes)?),
        ValueType::U16 => Array::U16(fixed(r, len, &what, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(fixed(r, len, &what, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(fixed(r, len, &what, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(fixed(r, len, &what, i32::from_le_bytes)?),
        ValueType::F32 => Array::F32(fixed(r, len, &what, f32::from_le_bytes)?),
        ValueType::U64 => Array::U64(fixed(r, len, &what, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(fixed(r, len, &what, i64::from_le_bytes)?),
        ValueType::F64 => Array::F64(fixed(r, len, &what, f64::from_le_bytes)?),
        ValueType::Bool => {
            let bytes = r.bytes(len, &what)?;
            let values = bytes.into_iter().map(|b| bool_of(b, key));
            Array::Bool(values.collect::<Result<_, _>>()?)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(reserve(len));
            for i in 0..len {
                out.push(r.string(&|| format!("string #{i} of the array in key `{key}`"))?);
            }
            Array::String(out)
        }
        ValueType::Array => {
            let mut out = Vec::with_capacity(reserve(len));
            for _ in 0..len {
                out.push(read_array(r, key, depth + 1)?);
            }
            Array::Array(out)
        }
    })
}

fn reserve(len: u64) -> usize {
    usize::try_from(len).map_or(RESERVE, |n| n.min(RESERVE))
}

/// `len` values of `N` bytes each (the total checked before it is read).
fn fixed<R: Read, T, const N: usize>(
    r: &mut Bounded<R>,
    len: u64,
    what: &dyn Fn() -> String,
    decode: fn([u8; N]) -> T,
) -> Result<Vec<T>, Kind> {
    // `fits` has checked len * N <= remaining, so this does not overflow.
    let bytes = r.bytes(len * N as u64, what)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| decode(c.try_into().expect("chunks_exact yields N bytes")))
        .collect())
}
