//! `rwkv7 logits`: raw logits for a token sequence, the interface external checks use.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use rwkv7::{DEFAULT_CHUNK, LoadedModel, Runner, select_kernels};

use crate::output::f32_le_bytes;

/// How tokens are fed.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Mode {
    /// One token at a time (decode path).
    Rnn,
    /// All tokens through the batched prefill path.
    Seq,
}

/// Arguments of `rwkv7 logits`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF).
    #[arg(short, long)]
    model: PathBuf,
    /// Comma-separated token ids, e.g. 1,2,3.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    tokens: Vec<u32>,
    /// rnn feeds one token at a time; seq runs the prefill path.
    #[arg(long, value_enum, default_value = "seq")]
    mode: Mode,
    /// Output file: T rows of vocabulary-size little-endian f32.
    #[arg(short, long)]
    output: PathBuf,
    /// Tokens per prefill chunk in seq mode (at most 1024).
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_parser = crate::common::count_in(1, rwkv7::MAX_CHUNK, "tokens"))]
    chunk: usize,
    /// Kernel set (default: the best for this CPU; also RWKV7_KERNELS).
    #[arg(long)]
    kernels: Option<String>,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let kernels = select_kernels(args.kernels.as_deref()).map_err(anyhow::Error::msg)?;
    let model = LoadedModel::open(&args.model)?;
    let mut runner = Runner::new(&model, kernels, args.chunk);
    let logits = match args.mode {
        Mode::Rnn => runner.logits_rnn(&args.tokens),
        Mode::Seq => runner.logits_seq(&args.tokens),
    }
    .with_context(|| args.model.display().to_string())?;
    Ok(rwkv7::write_atomic(&args.output, &f32_le_bytes(&logits))?)
}
