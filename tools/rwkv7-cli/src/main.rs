//! `rwkv7`: the command line of the RWKV-7 runtime.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rwkv7_cli::{bench, chat, eval, generate, inspect, logits, tokenize};

/// RWKV-7 inference on the CPU.
#[derive(Parser)]
#[command(name = "rwkv7", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Continue a prompt, streaming the text to stdout.
    Generate(generate::Args),
    /// Chat interactively (World/G1 template); /save, /load, /reset; Ctrl-C stops a reply.
    Chat(chat::Args),
    /// Print the token ids of a text, separated by spaces.
    Tokenize(tokenize::TokenizeArgs),
    /// Print the text of token ids.
    Detokenize(tokenize::DetokenizeArgs),
    /// Write raw little-endian f32 logits, one row of vocabulary size per input token.
    Logits(logits::Args),
    /// Show a model's metadata, tensor table and the kernel set this CPU would use.
    Inspect(inspect::Args),
    /// Perplexity on a text, and KL divergence / top-1 agreement against a reference model (one JSON line).
    Eval(eval::Args),
    /// Prompt and decode speed, memory, load time and the bandwidth ceiling (one JSON line).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(&args),
        Command::Chat(args) => chat::run(&args),
        Command::Tokenize(args) => tokenize::run_tokenize(&args),
        Command::Detokenize(args) => tokenize::run_detokenize(&args),
        Command::Logits(args) => logits::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined by ": ".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
