//! `rwkv7 tokenize` and `rwkv7 detokenize`: the model's World tokenizer on its own.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rwkv7::LoadedModel;

/// Arguments of `rwkv7 tokenize`.
#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    /// Model file (GGUF with a tokenizer).
    #[arg(short, long)]
    model: PathBuf,
    /// The text to encode.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    text: Option<String>,
    /// Encode the bytes of this file (any bytes, not only UTF-8).
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
}

/// Arguments of `rwkv7 detokenize`.
#[derive(clap::Args, Debug)]
pub struct DetokenizeArgs {
    /// Model file (GGUF with a tokenizer).
    #[arg(short, long)]
    model: PathBuf,
    /// Comma-separated token ids, e.g. 1,2,3.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    tokens: Vec<u32>,
}

/// Prints the ids of the text on one line, separated by single spaces.
pub fn run_tokenize(args: &TokenizeArgs) -> Result<()> {
    let bytes = match (&args.text, &args.file) {
        (Some(t), _) => t.clone().into_bytes(),
        (None, Some(f)) => std::fs::read(f).with_context(|| f.display().to_string())?,
        (None, None) => unreachable!("clap requires --text or --file"),
    };
    let model = LoadedModel::open(&args.model)?;
    let tok = model.tokenizer()?;
    let mut line = String::with_capacity(bytes.len() * 2 + 1);
    for (i, id) in tok.encode_iter(&bytes).enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&id.to_string());
    }
    line.push('\n');
    write_stdout(line.as_bytes())
}

/// Prints the bytes of the tokens, exactly (no newline is added).
pub fn run_detokenize(args: &DetokenizeArgs) -> Result<()> {
    let model = LoadedModel::open(&args.model)?;
    let bytes = model.detokenize_bytes(&args.tokens).context("--tokens")?;
    write_stdout(&bytes)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!("stdout: {e}")),
        _ => Ok(()),
    }
}
