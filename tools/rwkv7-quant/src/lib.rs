//! Conversion of RWKV-7 checkpoints to GGUF in llama.cpp's `rwkv7` conventions.
//!
//! Each module has one job:
//! - [`pth`]: reads an official `.pth` (torch zip + a strict, non-executing pickle reader);
//! - [`pth_write`]: writes `torch.save`-compatible `.pth` files;
//! - [`hf`]: reads a Hugging Face / fla model and maps it back to official names;
//! - [`checkpoint`]: the canonical checkpoint, dimension discovery and validation;
//! - [`vocab`]: the World vocabulary file and llama.cpp's token strings;
//! - [`gguf_write`]: a GGUF v3 writer;
//! - [`policy`]: which type each tensor gets (the quantization policy, `--keep`);
//! - [`convert`]: checkpoint (or GGUF) → GGUF;
//! - [`synth`]: random checkpoints of the released shapes (benchmarks, device checks).
//!
//! The entry point is [`convert()`]. The file layout written is `docs/FORMAT.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod convert;
pub mod gguf_write;
pub mod hf;
pub mod policy;
pub mod pth;
pub mod pth_write;
pub mod synth;
pub mod vocab;

pub use checkpoint::{Checkpoint, CheckpointError, DType, Dims, Tensor};
pub use convert::{
    ConvertOptions, ConvertReport, InputFormat, OutType, TensorStat, convert, convert_checkpoint, detect_format,
};
pub use gguf_write::{GgmlType, GgufWriter, MetaValue, TensorSource, ValueType, tensor_bytes};
pub use policy::{Keep, POLICY, Role};
pub use vocab::{WORLD_VOCAB_FILE, llama_token_text, parse_vocab, read_vocab};
