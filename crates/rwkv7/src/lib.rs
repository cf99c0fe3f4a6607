//! The std runtime on top of `rwkv7-core`: opens GGUF models by mmap, resolves the
//! tensor table once, picks the kernel set for this CPU, and turns core errors into
//! messages that name the file.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod kernels;
mod loaded;
mod runner;

pub use error::LoadError;
pub use kernels::{KERNELS_ENV, select_kernels};
pub use loaded::{LoadedModel, ModelBytes};
pub use runner::{DEFAULT_CHUNK, Runner};
pub use rwkv7_core as core;
