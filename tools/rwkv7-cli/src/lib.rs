//! The commands of the `rwkv7` command line, as a library so that other front ends (e.g.
//! `rwkv7-pi chat`) run the same code.

pub mod bench;
pub mod chat;
pub mod common;
pub mod eval;
pub mod generate;
pub mod inspect;
pub mod logits;
mod output;
pub mod tokenize;
