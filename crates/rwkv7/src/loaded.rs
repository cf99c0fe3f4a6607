//! A model opened from a file: the bytes (mapped or read) plus the resolved tensor table.

use std::fs::File;
use std::path::{Path, PathBuf};

use rwkv7_core::Gguf;
use rwkv7_core::model::{GlobalTensors, HyperParams, LayerTensors, Model, read_globals, read_layer};

use crate::LoadError;

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
pub struct LoadedModel {
    path: PathBuf,
    bytes: ModelBytes,
    hp: HyperParams,
    globals: GlobalTensors,
    layers: Vec<LayerTensors>,
}

impl LoadedModel {
    /// Maps `path` and validates it as an RWKV-7 GGUF model.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| LoadError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Another process
        // truncating or rewriting the file while it is mapped is outside what we can
        // guard against (as for every mmap-based model loader); the tools never do it,
        // since they write to a temporary file and rename.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
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
        Ok(LoadedModel { path, bytes, hp, globals, layers })
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
}
