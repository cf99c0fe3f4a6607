//! `rwkv7 inspect`: what a model file holds and how this machine would run it.

use std::path::PathBuf;

use anyhow::Result;
use rwkv7::{LoadedModel, select_kernels};
use rwkv7_core::gguf::{Name, Value};

/// Arguments of `rwkv7 inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF).
    model: PathBuf,
    /// Also list every tensor.
    #[arg(long)]
    tensors: bool,
}

/// Longest string value printed in full; longer ones (e.g. chat templates) are cut.
const MAX_SHOWN: usize = 80;

fn show(value: &Value<'_>) -> String {
    match value {
        Value::String(s) => {
            let text = String::from_utf8_lossy(s);
            let cut: String = text.chars().take(MAX_SHOWN).collect();
            let dots = if cut.len() < text.len() { "…" } else { "" };
            format!("{cut:?}{dots}")
        }
        Value::Array(a) => format!("[{} × {:?}]", a.len(), a.elem_type()),
        Value::U8(v) => v.to_string(),
        Value::I8(v) => v.to_string(),
        Value::U16(v) => v.to_string(),
        Value::I16(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F32(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
    }
}

/// Appends one line to the report.
macro_rules! out {
    ($text:ident, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = writeln!($text, $($arg)*);
    }};
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let mut text = String::new();
    let model = LoadedModel::open(&args.model)?;
    let gguf = model.gguf();
    let hp = model.hparams();
    out!(text, "file: {} ({} bytes)", args.model.display(), gguf.bytes().len());
    out!(
        text,
        "model: RWKV-7, {} layers, C = {}, {} heads of {}, vocabulary {}, FFN {}",
        hp.n_layer,
        hp.n_embd,
        hp.n_head,
        hp.head_size,
        hp.vocab,
        hp.ffn
    );
    out!(
        text,
        "LoRA ranks: decay {}, iclr {}, value {}, gate {}; state {} floats ({} bytes)",
        hp.decay_rank,
        hp.iclr_rank,
        hp.value_rank,
        hp.gate_rank,
        hp.state_len(),
        4 * hp.state_len()
    );
    let kernels = select_kernels(None).map_err(anyhow::Error::msg)?;
    out!(text, "kernel set on this CPU: {}", kernels.name());
    out!(text, "metadata ({} keys):", gguf.kv_count());
    for (key, value) in gguf.metadata() {
        out!(text, "  {} = {}", Name(key), show(&value));
    }
    let mut by_type = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for t in gguf.tensors() {
        let e = by_type.entry(t.ggml_type.name()).or_default();
        e.0 += 1;
        e.1 += t.data.len();
    }
    out!(text, "tensors ({}):", gguf.tensor_count());
    for (ty, (n, bytes)) in &by_type {
        out!(text, "  {ty}: {n} tensors, {bytes} bytes");
    }
    if args.tensors {
        for t in gguf.tensors() {
            let name = Name(t.name).to_string();
            out!(text, "  {name:<40} {:<5} {:?} {} bytes", t.ggml_type.name(), t.dims(), t.data.len());
        }
    }
    crate::output::print_stdout(&text)
}
