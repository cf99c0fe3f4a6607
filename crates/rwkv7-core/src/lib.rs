//! The `no_std` core of the RWKV-7 runtime.
//!
//! - [`gguf`]: a zero-copy, fully validated GGUF v3 reader over `&[u8]` (an mmap or flash).
//! - [`model`]: the RWKV-7 tensor table in llama.cpp's `rwkv7` conventions.
//! - [`forward`]: the forward pass (decode and batched prefill), allocation-free:
//!   the caller lends the state and scratch memory.
//! - [`parallel`]: how the forward pass splits matrix products for a caller's threads.
//! - [`state`]: the recurrent state layout.
//! - [`tokenizer`]: the RWKV World tokenizer (greedy longest match, identical to the official
//!   `TRIE_TOKENIZER`), built from a GGUF vocabulary into caller storage; streaming decode.
//! - [`sampler`]: the official `PIPELINE` sampler (top-p/top-k/temperature, penalties with decay,
//!   bans, stop tokens and stop strings) with a seeded PCG64.
//!
//! Architecture invariants: no `unsafe`; nothing here performs I/O, and nothing allocates
//! except the conveniences behind the `alloc` feature; malformed files yield error values,
//! never panics.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod forward;
pub mod gguf;
pub mod model;
pub mod parallel;
pub mod sampler;
pub mod state;
pub mod tokenizer;

pub use forward::{ForwardError, Logits, forward, forward_parallel, scratch_len};
pub use gguf::{GgmlType, Gguf, GgufError};
pub use model::{HyperParams, Model, ModelError};
pub use parallel::{Parallel, Sequential};
pub use rwkv7_kernels::{CpuFeatures, KernelSet};
pub use sampler::{OccEntry, Occurrence, Pcg64, Sampler, SamplerError, SamplerParams, Step, StopStrings};
pub use state::State;
#[cfg(feature = "alloc")]
pub use tokenizer::OwnedTokenizer;
pub use tokenizer::{END_OF_TEXT, Tokenizer, TokenizerError, TokenizerRef, Utf8Stream};
