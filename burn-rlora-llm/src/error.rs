//! What can go wrong building, loading or running the decoder.

use thiserror::Error;

/// An error of the decoder: its configuration, its weights or its input.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecoderError {
    /// The configuration cannot describe a decoder.
    #[error("invalid decoder configuration: {0}")]
    InvalidConfig(String),
    /// The file's `general.architecture` is not one this crate builds.
    #[error(
        "{file}: architecture {architecture:?} is not supported (supported: llama, qwen2, qwen3, gemma3)"
    )]
    UnsupportedArchitecture {
        /// The model file.
        file: String,
        /// The architecture it names.
        architecture: String,
    },
    /// A tensor the decoder needs is not in the weights.
    #[error("{file}: no tensor {name:?}")]
    MissingTensor {
        /// The weights' file.
        file: String,
        /// The tensor's name in that file.
        name: String,
    },
    /// A tensor of the weights has another shape than the configuration says.
    #[error("{file}: tensor {name:?} has shape {found:?}, the configuration needs {expected:?}")]
    TensorShape {
        /// The weights' file.
        file: String,
        /// The tensor's name in that file.
        name: String,
        /// The shape the configuration needs (row-major, outermost first).
        expected: Vec<usize>,
        /// The shape in the file (row-major, outermost first).
        found: Vec<usize>,
    },
    /// A tensor of the weights holds a NaN or an infinity.
    #[error("{file}: tensor {name:?} holds a value that is not finite")]
    NonFinite {
        /// The weights' file.
        file: String,
        /// The tensor's name in that file.
        name: String,
    },
    /// A token id is not below the vocabulary's size.
    #[error("token id {id} is out of the vocabulary ({vocab_size} tokens)")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// The vocabulary's size.
        vocab_size: usize,
    },
    /// The input is longer than the positions the model was built for.
    #[error("{needed} positions needed, the model has {max}")]
    TooLong {
        /// Positions the call would reach.
        needed: usize,
        /// The model's `max_position_embeddings`.
        max: usize,
    },
    /// The input or the cache has a shape the call cannot use.
    #[error("{0}")]
    Shape(String),
    /// The GGUF file could not be read.
    #[error(transparent)]
    Gguf(#[from] burn_rlora_gguf::GgufError),
    /// A metadata value of the GGUF file cannot describe this model.
    #[error("{file}: metadata {key:?}: {reason}")]
    Metadata {
        /// The GGUF file.
        file: String,
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokenizer could not be built or used.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
}
