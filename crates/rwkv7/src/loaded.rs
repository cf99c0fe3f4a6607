//! A model opened from a file: the bytes (mapped or read) plus the resolved tensor table.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rwkv7_core::model::{GlobalTensors, HyperParams, LayerTensors, Model, read_globals, read_layer};
use rwkv7_core::tokenizer::{KEY_MODEL, OwnedTokenizer, Tokenizer};
use rwkv7_core::{Gguf, TokenizerError};

use crate::fingerprint::model_fingerprint;
use crate::{Error, LoadError};

/// The bytes of a model file.
pub enum ModelBytes {
    /// Memory-mapped from disk (the normal case).
    Mapped(memmap2::Mmap),
    /// Owned bytes in a buffer aligned for any tensor type (tests, embedded files).
    Owned(Vec<u64>, usize),
}

impl ModelBytes {
    /// Copies `bytes` into an 8-byte-aligned buffer.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        ModelBytes::Owned(words, bytes.len())
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ModelBytes::Mapped(m) => m,
            ModelBytes::Owned(words, len) => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
        }
    }
}

/// An RWKV-7 model opened from a file.
///
/// The tokenizer (from the GGUF vocabulary) and the fingerprint that state files carry are
/// computed on first use and cached, so commands that need neither (e.g. `logits`) do not
/// pay for them. `LoadedModel` is `Send + Sync`: share one between threads behind an `Arc`.
pub struct LoadedModel {
    path: PathBuf,
    bytes: ModelBytes,
    hp: HyperParams,
    globals: GlobalTensors,
    layers: Vec<LayerTensors>,
    tokenizer: OnceLock<Result<OwnedTokenizer, TokenizerProblem>>,
    fingerprint: OnceLock<u64>,
}

/// Why the model's tokenizer is unavailable (kept to build the error on every use).
#[derive(Clone, Debug)]
enum TokenizerProblem {
    Missing,
    Unusable(String),
}

/// Maps `file` read-only. This is the runtime's one `mmap` call; the converter uses it too.
pub fn map_readonly(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process. Another process
    // truncating or rewriting the file while it is mapped is outside what we can
    // guard against (as for every mmap-based model loader); the tools never do it,
    // since they write to a temporary file and rename.
    #[allow(unsafe_code)]
    unsafe {
        memmap2::Mmap::map(file)
    }
}

impl LoadedModel {
    /// Maps `path` and validates it as an RWKV-7 GGUF model.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let io = |error| LoadError::Io { path: path.clone(), error };
        let file = File::open(&path).map_err(io)?;
        let map = map_readonly(&file).map_err(io)?;
        Self::from_bytes(path, ModelBytes::Mapped(map))
    }

    /// Validates `bytes` (read from `path`, which is used in messages only).
    pub fn from_bytes(path: PathBuf, bytes: ModelBytes) -> Result<Self, LoadError> {
        let (hp, globals, layers) = {
            let gguf = Gguf::parse(bytes.as_slice())
                .map_err(|e| LoadError::Format { path: path.clone(), message: e.to_string() })?;
            let model_err =
                |e: rwkv7_core::ModelError<'_>| LoadError::Model { path: path.clone(), message: e.to_string() };
            let (hp, globals) = read_globals(&gguf).map_err(model_err)?;
            let layers =
                (0..hp.n_layer).map(|l| read_layer(&gguf, &hp, l)).collect::<Result<Vec<_>, _>>().map_err(model_err)?;
            (hp, globals, layers)
        };
        Ok(LoadedModel { path, bytes, hp, globals, layers, tokenizer: OnceLock::new(), fingerprint: OnceLock::new() })
    }

    /// The file this model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dimensions.
    pub fn hparams(&self) -> &HyperParams {
        &self.hp
    }

    /// The validated GGUF view (metadata, tensor table).
    pub fn gguf(&self) -> Gguf<'_> {
        // Parsed successfully in `from_bytes`; the bytes have not changed since.
        Gguf::parse(self.bytes.as_slice()).unwrap_or_else(|_| unreachable!("validated at load"))
    }

    /// The model view the core's forward pass runs on.
    pub fn model(&self) -> Model<'_> {
        Model::new(self.bytes.as_slice(), self.hp, self.globals, &self.layers)
            .unwrap_or_else(|_| unreachable!("tensor table validated at load"))
    }

    /// The fingerprint identifying this model in state files: FNV-1a 64 over the GGUF
    /// header, metadata and tensor table plus 4 KiB samples of every tensor
    /// ([`model_fingerprint`](crate::model_fingerprint), docs/STATE_FORMAT.md). Computed
    /// once, on first use.
    pub fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| model_fingerprint(&self.gguf()))
    }

    /// The tokenizer built from the file's vocabulary (on first use), or
    /// [`Error::NoTokenizer`] when the file has none.
    pub fn tokenizer(&self) -> Result<&OwnedTokenizer, Error> {
        let built = self.tokenizer.get_or_init(|| {
            let gguf = self.gguf();
            // llama.cpp marks files without a vocabulary with `none` (or `no_vocab`).
            let model = gguf.get(KEY_MODEL);
            if model.is_none_or(|m| matches!(m.as_str(), Some("none" | "no_vocab"))) {
                return Err(TokenizerProblem::Missing);
            }
            let tok =
                Tokenizer::from_gguf(&gguf).map_err(|e: TokenizerError| TokenizerProblem::Unusable(e.to_string()))?;
            if tok.vocab_size() > self.hp.vocab {
                return Err(TokenizerProblem::Unusable(format!(
                    "it has {} tokens, but the model has only {} embedding rows",
                    tok.vocab_size(),
                    self.hp.vocab
                )));
            }
            Ok(tok)
        });
        built.as_ref().map_err(|p| match p {
            TokenizerProblem::Missing => Error::NoTokenizer { path: self.path.clone() },
            TokenizerProblem::Unusable(message) => {
                Error::Tokenizer { path: self.path.clone(), message: message.clone() }
            }
        })
    }

    /// Whether the file has a usable tokenizer.
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer().is_ok()
    }

    /// Encodes `text` with the model's tokenizer.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, Error> {
        Ok(self.tokenizer()?.encode(text))
    }

    /// The bytes of `tokens`, concatenated (exactly, not re-encoded). Ids at or above the
    /// vocabulary size are an error; end-of-text (0) and padding ids have no bytes.
    pub fn detokenize_bytes(&self, tokens: &[u32]) -> Result<Vec<u8>, Error> {
        let tok = self.tokenizer()?;
        self.check_tokens(tokens)?;
        Ok(tok.decode_bytes(tokens))
    }

    /// The text of `tokens`, with U+FFFD for invalid UTF-8 (as `String::from_utf8_lossy`).
    pub fn detokenize(&self, tokens: &[u32]) -> Result<String, Error> {
        let tok = self.tokenizer()?;
        self.check_tokens(tokens)?;
        Ok(tok.decode(tokens))
    }

    /// An error for the first id that is not below the vocabulary size.
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<(), Error> {
        let vocab = self.hp.vocab;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(&token) => Err(Error::TokenOutOfRange { token, vocab }),
            None => Ok(()),
        }
    }
}
