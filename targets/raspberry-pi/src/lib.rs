//! `rwkv7-pi`: the offline assistant for Raspberry Pi boards. `chat` is the `rwkv7` CLI's
//! chat with the board's defaults; `serve` is an OpenAI-compatible HTTP server (axum) over
//! one memory-mapped model, a bounded request queue and a prefix-state cache.
#![forbid(unsafe_code)]

pub mod board;
pub mod cache;
pub mod error;
pub mod request;
pub mod response;
pub mod server;
pub mod setup;
pub mod worker;
