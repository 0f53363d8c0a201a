//! The ggml tensor types: ids, names and block layouts.

use std::fmt;

macro_rules! ggml_types {
    ($($(#[$doc:meta])* $name:ident = $id:literal, $block:literal, $bytes:literal;)*) => {
        /// A ggml tensor type, as stored in a GGUF tensor info.
        ///
        /// Every type ggml defines is known here with its block layout (so
        /// that a file's sizes can be checked), but only
        /// [`GgmlType::is_supported`] ones can be dequantized.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        #[non_exhaustive]
        pub enum GgmlType {
            $($(#[$doc])* $name,)*
        }

        impl GgmlType {
            /// Every known type, in id order.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$name,)*];

            /// The type with this id, or `None` for an id ggml does not
            /// define (or no longer defines).
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(Self::$name),)*
                    _ => None,
                }
            }

            /// The type's id in GGUF files.
            pub fn id(self) -> u32 {
                match self {
                    $(Self::$name => $id,)*
                }
            }

            /// The type's name as ggml spells it (`"Q4_1"`, `"BF16"`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)*
                }
            }

            /// How many values one block holds (1 for the plain types).
            pub fn block_size(self) -> u64 {
                match self {
                    $(Self::$name => $block,)*
                }
            }

            /// How many bytes one block takes.
            pub fn block_bytes(self) -> u64 {
                match self {
                    $(Self::$name => $bytes,)*
                }
            }
        }
    };
}

ggml_types! {
    /// 32-bit float.
    F32 = 0, 1, 4;
    /// 16-bit IEEE half float.
    F16 = 1, 1, 2;
    /// Blocks of 32: an f16 scale `d` and 32 4-bit values, `(q - 8) * d`.
    Q4_0 = 2, 32, 18;
    /// Blocks of 32: f16 `d` and `m` and 32 4-bit values, `q * d + m`.
    Q4_1 = 3, 32, 20;
    /// Blocks of 32: an f16 scale `d` and 32 5-bit values, `(q - 16) * d`.
    Q5_0 = 6, 32, 22;
    /// Blocks of 32: f16 `d` and `m` and 32 5-bit values, `q * d + m`.
    Q5_1 = 7, 32, 24;
    /// Blocks of 32: an f16 scale `d` and 32 signed bytes, `q * d`.
    Q8_0 = 8, 32, 34;
    /// Blocks of 32 signed bytes with an f16 scale and sum (ggml's layout,
    /// 36 bytes; an intermediate of llama.cpp's, not dequantized here).
    Q8_1 = 9, 32, 36;
    /// K-quant, 2 bits: super-blocks of 256 values, 16 sub-blocks with
    /// 4-bit scales and minimums.
    Q2_K = 10, 256, 84;
    /// K-quant, 3 bits: super-blocks of 256 values, 16 sub-blocks with
    /// 6-bit scales.
    Q3_K = 11, 256, 110;
    /// K-quant, 4 bits: super-blocks of 256 values, 8 sub-blocks with 6-bit
    /// scales and minimums.
    Q4_K = 12, 256, 144;
    /// K-quant, 5 bits: super-blocks of 256 values, 8 sub-blocks with 6-bit
    /// scales and minimums.
    Q5_K = 13, 256, 176;
    /// K-quant, 6 bits: super-blocks of 256 values, 16 sub-blocks with
    /// 8-bit scales.
    Q6_K = 14, 256, 210;
    /// K-quant, 8 bits (an intermediate of llama.cpp's, not dequantized
    /// here).
    Q8_K = 15, 256, 292;
    /// I-quant.
    IQ2_XXS = 16, 256, 66;
    /// I-quant.
    IQ2_XS = 17, 256, 74;
    /// I-quant.
    IQ3_XXS = 18, 256, 98;
    /// I-quant.
    IQ1_S = 19, 256, 50;
    /// I-quant, non-linear 4 bits.
    IQ4_NL = 20, 32, 18;
    /// I-quant.
    IQ3_S = 21, 256, 110;
    /// I-quant.
    IQ2_S = 22, 256, 82;
    /// I-quant.
    IQ4_XS = 23, 256, 136;
    /// 8-bit integer.
    I8 = 24, 1, 1;
    /// 16-bit integer.
    I16 = 25, 1, 2;
    /// 32-bit integer.
    I32 = 26, 1, 4;
    /// 64-bit integer.
    I64 = 27, 1, 8;
    /// 64-bit float.
    F64 = 28, 1, 8;
    /// I-quant.
    IQ1_M = 29, 256, 56;
    /// bfloat16.
    BF16 = 30, 1, 2;
    /// Ternary quant.
    TQ1_0 = 34, 256, 54;
    /// Ternary quant.
    TQ2_0 = 35, 256, 66;
    /// Microscaling FP4.
    MXFP4 = 39, 32, 17;
    /// NVIDIA FP4.
    NVFP4 = 40, 64, 36;
    /// 1-bit quant.
    Q1_0 = 41, 128, 18;
}

impl GgmlType {
    /// Whether [`GgufFile::read_f32`](crate::GgufFile::read_f32) and
    /// [`dequantize`](crate::dequantize) can dequantize this type: F32,
    /// F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and
    /// Q6_K. The others (the I-quants, Q8_1, Q8_K, the ternary and FP4
    /// types, the integer types and F64) are known by name only.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::BF16
                | Self::Q8_0
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q5_1
                | Self::Q2_K
                | Self::Q3_K
                | Self::Q4_K
                | Self::Q5_K
                | Self::Q6_K
        )
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::GgmlType;

    #[test]
    fn ids_round_trip_and_layouts_are_sane() {
        for &ty in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
            assert!(ty.block_size() >= 1 && ty.block_bytes() >= 1, "{ty}");
        }
        assert_eq!(GgmlType::ALL.len(), 34);
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 42, u32::MAX] {
            assert_eq!(GgmlType::from_id(removed), None, "{removed}");
        }
        assert_eq!(GgmlType::Q4_K.name(), "Q4_K");
        assert_eq!(GgmlType::from_id(3), Some(GgmlType::Q4_1));
    }
}
