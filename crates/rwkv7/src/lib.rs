//! The std runtime on top of `rwkv7-core`: opens GGUF models by mmap, resolves the
//! tensor table once, picks the kernel set for this CPU, turns core errors into
//! messages that name the file, and runs [`Session`]s: prefill, streaming generation
//! with cancellation, and state files that save, restore and fork a conversation
//! (docs/STATE_FORMAT.md).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod chat;
mod error;
mod fingerprint;
mod kernels;
mod loaded;
mod pool;
mod runner;
mod session;
mod state_file;

pub use error::{Error, LoadError};
pub use fingerprint::{Fnv64, model_fingerprint};
pub use kernels::{KERNELS_ENV, select_kernels};
pub use loaded::{LoadedModel, ModelBytes, map_readonly};
pub use pool::{MAX_THREADS, THREADS_ENV, ThreadPool, available_cores};
pub use runner::{DEFAULT_CHUNK, MAX_CHUNK, Runner};
pub use rwkv7_core as core;
pub use rwkv7_core::SamplerParams;
pub use session::{
    CancelHandle, EndOfText, GenerateOutcome, GenerateParams, MAX_STOP_STRING, Session, SessionOptions, StateTensor,
    StopReason,
};
pub use state_file::{STATE_MAGIC, STATE_VERSION, StateDims, atomic_target, write_atomic};
