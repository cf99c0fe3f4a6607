//! `rwkv7-quant`: converts RWKV-7 checkpoints to GGUF.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rwkv7_quant::{ConvertOptions, OutType, convert};

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
}

#[derive(Args, Debug)]
struct QuantizeArgs {
    /// Official .pth, Hugging Face directory or .safetensors file (config.json beside it), or GGUF.
    input: PathBuf,
    /// The GGUF file to write (replaced only once the new file is complete).
    #[arg(short, long)]
    output: PathBuf,
    /// Type of the weight matrices (vectors and the decay LoRA always stay f32).
    #[arg(short = 't', long = "type", value_enum)]
    out_type: TypeArg,
    /// World vocabulary file (default: rwkv_vocab_v20230424.txt beside the input, if present).
    #[arg(long, value_name = "VOCAB.txt")]
    vocab: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TypeArg {
    F32,
    F16,
    Bf16,
}

impl From<TypeArg> for OutType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::F32 => OutType::F32,
            TypeArg::F16 => OutType::F16,
            TypeArg::Bf16 => OutType::BF16,
        }
    }
}

fn quantize(args: &QuantizeArgs) -> anyhow::Result<()> {
    let opts = ConvertOptions { out_type: args.out_type.into(), vocab: args.vocab.clone(), progress: !args.quiet };
    let report = convert(&args.input, &args.output, &opts)?;
    if !args.quiet {
        let vocab = match report.vocab_tokens {
            Some(n) => format!(", {n} vocabulary tokens"),
            None => ", no tokenizer".to_string(),
        };
        println!(
            "wrote {}: {} tensors ({}), {:.2} MB{vocab}",
            args.output.display(),
            report.tensors,
            report.out_type.name(),
            report.output_bytes as f64 / 1e6,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Quantize(args) => quantize(args),
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
        let Command::Quantize(q) = cli.command;
        assert!(matches!(q.out_type, TypeArg::Bf16));
        assert_eq!(q.vocab, Some(PathBuf::from("v.txt")));
        assert!(Cli::try_parse_from(["rwkv7-quant", "quantize", "m.pth", "-o", "m.gguf", "--type", "q4"]).is_err());
    }
}
