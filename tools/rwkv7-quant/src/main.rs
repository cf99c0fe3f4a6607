//! `rwkv7-quant`: converts RWKV-7 checkpoints to GGUF.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rwkv7_quant::synth::{Shape, synth_checkpoint};
use rwkv7_quant::{ConvertOptions, ConvertReport, InputFormat, Keep, OutType, convert, convert_checkpoint};

/// Converts RWKV-7 checkpoints (official .pth, Hugging Face safetensors, GGUF) to GGUF.
#[derive(Parser, Debug)]
#[command(name = "rwkv7-quant", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a GGUF file with the weight matrices in the requested type.
    Quantize(QuantizeArgs),
    /// Write a GGUF file of random weights in a released model's shape (for benchmarks and
    /// device checks without a download; the output is noise, not language).
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// Released model shape: 0.1b (L12 C768), 0.4b (L24 C1024), 1.5b (L24 C2048) or 2.9b (L32 C2560).
    #[arg(long)]
    shape: Shape,
    /// File type, as for `quantize` (the same policy applies).
    #[arg(short = 't', long = "type", value_enum)]
    out_type: TypeArg,
    /// The GGUF file to write (replaced only once the new file is complete).
    #[arg(short, long)]
    output: PathBuf,
    /// Seed of the random weights (the same seed gives the same file).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// World vocabulary file to store as the tokenizer (default: none).
    #[arg(long, value_name = "VOCAB.txt")]
    vocab: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct QuantizeArgs {
    /// Official .pth, Hugging Face directory or .safetensors file (config.json beside it), or GGUF.
    input: PathBuf,
    /// The GGUF file to write (replaced only once the new file is complete).
    #[arg(short, long)]
    output: PathBuf,
    /// File type. f32/f16/bf16: every weight matrix in that type. q8_0/q4_0: the large
    /// matrices block-quantized per the policy in docs/QUANTIZATION.md (q4_0 keeps the
    /// embedding and head at q8_0). q4_k_m/q5_k_m/q6_k: the q4_0 policy with Q4_K/Q5_K/Q6_K
    /// for matrices whose rows are multiples of 256 (others: q4_0, q8_0, q8_0). Vectors
    /// and the decay LoRA always stay f32.
    #[arg(short = 't', long = "type", value_enum)]
    out_type: TypeArg,
    /// Override the type of the matrices whose GGUF or official name (with or without
    /// `.weight`) matches PATTERN (`*` and `?` wildcards), e.g. `head=q8_0`,
    /// `blk.0.*=f16`, `*.ffn.value=q8_0`. Repeatable; the last match wins. TYPE is
    /// f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k.
    #[arg(long, value_name = "PATTERN=TYPE")]
    keep: Vec<String>,
    /// World vocabulary file (default: rwkv_vocab_v20230424.txt beside the input, if present).
    #[arg(long, value_name = "VOCAB.txt")]
    vocab: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(short, long)]
    quiet: bool,
    /// List only the N converted tensors with the largest relative RMS error (default: all).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TypeArg {
    F32,
    F16,
    Bf16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_k_m")]
    Q4KM,
    #[value(name = "q5_k_m")]
    Q5KM,
    #[value(name = "q6_k")]
    Q6K,
}

impl From<TypeArg> for OutType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::F32 => OutType::F32,
            TypeArg::F16 => OutType::F16,
            TypeArg::Bf16 => OutType::BF16,
            TypeArg::Q8_0 => OutType::Q8_0,
            TypeArg::Q4_0 => OutType::Q4_0,
            TypeArg::Q4KM => OutType::Q4KM,
            TypeArg::Q5KM => OutType::Q5KM,
            TypeArg::Q6K => OutType::Q6K,
        }
    }
}

/// Prints each lossily converted tensor's relative RMS error, the overall error and the
/// worst tensor (nothing when every tensor was stored exactly).
fn print_errors(report: &ConvertReport, top: Option<usize>) {
    let mut converted: Vec<_> = report.tensor_stats.iter().filter(|t| t.lossy()).collect();
    if converted.is_empty() {
        return;
    }
    if let Some(n) = top {
        converted.sort_by(|a, b| b.rel_rms().total_cmp(&a.rel_rms()));
        converted.truncate(n);
    }
    println!("{:<40} {:>5} -> {:<5} {:>12} {:>11}", "tensor", "from", "type", "bytes", "rel. RMS");
    for t in &converted {
        let note = match (t.fell_back, t.guarded) {
            (true, _) => "  (rows not whole blocks: f16)".to_string(),
            (_, Some((from, err))) => {
                format!("  (outlier guard: {} column-normalized error {err:.3} too large)", from.name())
            }
            _ => String::new(),
        };
        println!(
            "{:<40} {:>5} -> {:<5} {:>12} {:>11.3e}{note}",
            t.name,
            t.source.name(),
            t.ty.name(),
            t.bytes,
            t.rel_rms()
        );
    }
    if let (Some(all), Some(worst)) = (report.overall_rel_rms(), report.worst()) {
        let n = report.tensor_stats.iter().filter(|t| t.lossy()).count();
        println!(
            "overall rel. RMS error over the {n} converted tensors: {all:.3e}; worst: {} ({}) {:.3e}",
            worst.name,
            worst.ty.name(),
            worst.rel_rms()
        );
    }
}

fn quantize(args: &QuantizeArgs) -> anyhow::Result<()> {
    let keep = args.keep.iter().map(|k| k.parse::<Keep>()).collect::<anyhow::Result<Vec<_>>>()?;
    let opts =
        ConvertOptions { out_type: args.out_type.into(), vocab: args.vocab.clone(), progress: !args.quiet, keep };
    let report = convert(&args.input, &args.output, &opts)?;
    if !args.quiet {
        print_errors(&report, args.top);
        print_summary(&args.output, &report);
    }
    Ok(())
}

fn synth(args: &SynthArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let ckpt = synth_checkpoint(args.shape, args.seed).context("synthetic checkpoint")?;
    let opts = ConvertOptions { out_type: args.out_type.into(), vocab: None, progress: !args.quiet, keep: Vec::new() };
    let report =
        convert_checkpoint(&ckpt, InputFormat::Synthetic, &args.output, args.vocab.as_deref(), &args.output, &opts)?;
    if !args.quiet {
        print_summary(&args.output, &report);
    }
    Ok(())
}

/// One line: what was written, its size and whether it has a tokenizer.
fn print_summary(output: &std::path::Path, report: &ConvertReport) {
    let vocab = match report.vocab_tokens {
        Some(n) => format!(", {n} vocabulary tokens"),
        None => ", no tokenizer".to_string(),
    };
    println!(
        "wrote {}: {} tensors ({}), {:.2} MB{vocab}",
        output.display(),
        report.tensors,
        report.out_type.name(),
        report.output_bytes as f64 / 1e6,
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Quantize(args) => quantize(args),
        Command::Synth(args) => synth(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: `error: <path>: <what is wrong>` (the context chain starts with the path).
            let msg = format!("{e:#}").replace(['\n', '\r'], " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_quantize() {
        let cli = Cli::try_parse_from([
            "rwkv7-quant",
            "quantize",
            "m.pth",
            "-o",
            "m.gguf",
            "--type",
            "bf16",
            "--vocab",
            "v.txt",
        ])
        .unwrap();
        let Command::Quantize(q) = cli.command else { panic!("expected quantize") };
        assert!(matches!(q.out_type, TypeArg::Bf16));
        assert_eq!(q.vocab, Some(PathBuf::from("v.txt")));
        assert!(Cli::try_parse_from(["rwkv7-quant", "quantize", "m.pth", "-o", "m.gguf", "--type", "q4"]).is_err());
        let cli = Cli::try_parse_from([
            "rwkv7-quant",
            "quantize",
            "m.pth",
            "-o",
            "m.gguf",
            "--type",
            "q4_0",
            "--keep",
            "head=q8_0",
            "--keep",
            "blk.0.*=f16",
        ])
        .unwrap();
        let Command::Quantize(q) = cli.command else { panic!("expected quantize") };
        assert!(matches!(q.out_type, TypeArg::Q4_0));
        assert_eq!(q.keep, ["head=q8_0", "blk.0.*=f16"]);
    }

    #[test]
    fn parses_synth() {
        let cli =
            Cli::try_parse_from(["rwkv7-quant", "synth", "--shape", "0.4b", "-t", "q4_0", "-o", "s.gguf"]).unwrap();
        let Command::Synth(s) = cli.command else { panic!("expected synth") };
        assert_eq!((s.shape, s.seed), (Shape::B0_4, 0));
        assert!(matches!(s.out_type, TypeArg::Q4_0));
        assert!(Cli::try_parse_from(["rwkv7-quant", "synth", "--shape", "7b", "-t", "q4_0", "-o", "s.gguf"]).is_err());
    }
}
