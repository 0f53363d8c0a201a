//! A file's metadata and its typed getters.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{GgufError, GgufErrorKind};
use crate::value::{Array, Value, ValueType};

/// A GGUF file's metadata: its key/value entries in file order, with
/// lookup by key. Keys are unique (a file with a repeated key is refused).
///
/// The typed getters fail with [`GgufErrorKind::MissingKey`] or
/// [`GgufErrorKind::WrongType`] (naming the key, the type asked for and the
/// type found); no getter converts between types.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    file: Option<PathBuf>,
}

macro_rules! scalar_getters {
    ($($(#[$doc:meta])* $fn:ident -> $t:ty, $variant:ident;)*) => {
        $(
            $(#[$doc])*
            ///
            /// # Errors
            ///
            /// [`GgufErrorKind::MissingKey`], or [`GgufErrorKind::WrongType`]
            /// for a value of another type.
            pub fn $fn(&self, key: &str) -> Result<$t, GgufError> {
                match self.require(key)? {
                    Value::$variant(v) => Ok(*v),
                    other => Err(self.wrong(key, ValueType::$variant, None, other)),
                }
            }
        )*
    };
}

macro_rules! array_getters {
    ($($(#[$doc:meta])* $fn:ident -> $t:ty, $variant:ident;)*) => {
        $(
            $(#[$doc])*
            ///
            /// # Errors
            ///
            /// [`GgufErrorKind::MissingKey`], or [`GgufErrorKind::WrongType`]
            /// for a value that is not an array of this element type.
            pub fn $fn(&self, key: &str) -> Result<&[$t], GgufError> {
                match self.require(key)? {
                    Value::Array(Array::$variant(v)) => Ok(v),
                    other => Err(self.wrong(
                        key,
                        ValueType::Array,
                        Some(ValueType::$variant),
                        other,
                    )),
                }
            }
        )*
    };
}

impl Metadata {
    /// Metadata from entries whose keys have been checked to be unique.
    pub(crate) fn new(entries: Vec<(String, Value)>, index: HashMap<String, usize>) -> Self {
        Self {
            entries,
            index,
            file: None,
        }
    }

    pub(crate) fn set_file(&mut self, file: Option<PathBuf>) {
        self.file = file;
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Whether an entry has this key.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| {
            self.error(GgufErrorKind::MissingKey {
                key: key.to_string(),
            })
        })
    }

    fn error(&self, kind: GgufErrorKind) -> GgufError {
        GgufError::in_file(self.file.as_deref(), kind)
    }

    fn wrong(
        &self,
        key: &str,
        expected: ValueType,
        expected_element: Option<ValueType>,
        found: &Value,
    ) -> GgufError {
        self.error(GgufErrorKind::WrongType {
            key: key.to_string(),
            expected,
            expected_element,
            found: found.value_type(),
            found_element: match found {
                Value::Array(a) => Some(a.element_type()),
                _ => None,
            },
        })
    }

    scalar_getters! {
        /// The `u8` value of `key`.
        get_u8 -> u8, U8;
        /// The `i8` value of `key`.
        get_i8 -> i8, I8;
        /// The `u16` value of `key`.
        get_u16 -> u16, U16;
        /// The `i16` value of `key`.
        get_i16 -> i16, I16;
        /// The `u32` value of `key`.
        get_u32 -> u32, U32;
        /// The `i32` value of `key`.
        get_i32 -> i32, I32;
        /// The `u64` value of `key`.
        get_u64 -> u64, U64;
        /// The `i64` value of `key`.
        get_i64 -> i64, I64;
        /// The `f32` value of `key`.
        get_f32 -> f32, F32;
        /// The `f64` value of `key`.
        get_f64 -> f64, F64;
        /// The `bool` value of `key`.
        get_bool -> bool, Bool;
    }

    array_getters! {
        /// The elements of `key`, an array of `u8`.
        get_u8_array -> u8, U8;
        /// The elements of `key`, an array of `i8`.
        get_i8_array -> i8, I8;
        /// The elements of `key`, an array of `u16`.
        get_u16_array -> u16, U16;
        /// The elements of `key`, an array of `i16`.
        get_i16_array -> i16, I16;
        /// The elements of `key`, an array of `u32`.
        get_u32_array -> u32, U32;
        /// The elements of `key`, an array of `i32` (e.g. `tokenizer.ggml.token_type`).
        get_i32_array -> i32, I32;
        /// The elements of `key`, an array of `u64`.
        get_u64_array -> u64, U64;
        /// The elements of `key`, an array of `i64`.
        get_i64_array -> i64, I64;
        /// The elements of `key`, an array of `f32` (e.g. `tokenizer.ggml.scores`).
        get_f32_array -> f32, F32;
        /// The elements of `key`, an array of `f64`.
        get_f64_array -> f64, F64;
        /// The elements of `key`, an array of `bool`.
        get_bool_array -> bool, Bool;
        /// The elements of `key`, an array of strings (e.g. `tokenizer.ggml.tokens`).
        get_str_array -> String, String;
        /// The elements of `key`, an array of arrays.
        get_array_array -> Array, Array;
    }

    /// The string value of `key`.
    ///
    /// # Errors
    ///
    /// [`GgufErrorKind::MissingKey`], or [`GgufErrorKind::WrongType`] for a
    /// value of another type.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong(key, ValueType::String, None, other)),
        }
    }

    /// The array value of `key`, of any element type.
    ///
    /// # Errors
    ///
    /// [`GgufErrorKind::MissingKey`], or [`GgufErrorKind::WrongType`] for a
    /// value that is not an array.
    pub fn get_array(&self, key: &str) -> Result<&Array, GgufError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            other => Err(self.wrong(key, ValueType::Array, None, other)),
        }
    }
}
