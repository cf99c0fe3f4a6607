//! Errors of the std runtime.

use std::path::PathBuf;

/// Why a model could not be opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or mapped.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (part of the message, so not also reported as the `source()`,
        /// which would print it twice in a cause chain).
        error: std::io::Error,
    },
    /// The file is not a valid GGUF file.
    #[error("{}: invalid GGUF: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file is valid GGUF but not a usable RWKV-7 model.
    #[error("{}: not a usable RWKV-7 model: {message}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Why a session, tokenizer or state operation failed. Messages are one line and name the
/// file at fault where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Text was used with a model file that has no vocabulary.
    #[error(
        "{}: this model file has no tokenizer (no vocabulary); convert the checkpoint again with `rwkv7-quant quantize … --vocab rwkv_vocab_v20230424.txt`, or use token ids",
        path.display()
    )]
    NoTokenizer {
        /// The model file.
        path: PathBuf,
    },
    /// The model file has a vocabulary, but it cannot be used.
    #[error("{}: the tokenizer in this model file cannot be used: {message}", path.display())]
    Tokenizer {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A token id is not below the vocabulary size.
    #[error("token id {token} is out of range (vocabulary size {vocab})")]
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// `generate` was called before anything was fed.
    #[error(
        "nothing to generate from: the session has no logits yet (feed a prompt first; a state-tuning file or a state saved before any token holds none)"
    )]
    NoLogits,
    /// The operation was stopped through the session's cancel handle.
    #[error("cancelled")]
    Cancelled,
    /// The forward pass refused its inputs.
    #[error("forward pass: {0}")]
    Forward(rwkv7_core::ForwardError),
    /// Sampling failed (NaN logits, or every token banned).
    #[error("sampling: {0}")]
    Sampler(rwkv7_core::SamplerError),
    /// A stop string cannot be used.
    #[error("stop string {index} ({text:?}): {message}")]
    StopString {
        /// Its index in the list.
        index: usize,
        /// The stop string.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (part of the message, so not also reported as the `source()`,
        /// which would print it twice in a cause chain).
        error: std::io::Error,
    },
    /// A state file is malformed, damaged or of an unsupported version.
    #[error("{}: {message}", path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A valid state file saved from a different model.
    #[error("{}: {message}", path.display())]
    StateMismatch {
        /// The state file.
        path: PathBuf,
        /// Which model it belongs to, and which model is loaded.
        message: String,
    },
    /// A state-tuning tensor set does not fit the model.
    #[error("state-tuning file: {0}")]
    StateTuning(String),
}

impl From<rwkv7_core::ForwardError> for Error {
    fn from(e: rwkv7_core::ForwardError) -> Self {
        match e {
            rwkv7_core::ForwardError::TokenOutOfRange { token, vocab } => Error::TokenOutOfRange { token, vocab },
            other => Error::Forward(other),
        }
    }
}

impl From<rwkv7_core::SamplerError> for Error {
    fn from(e: rwkv7_core::SamplerError) -> Self {
        Error::Sampler(e)
    }
}
