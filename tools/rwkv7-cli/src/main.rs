//! `rwkv7`: the command line of the RWKV-7 runtime.

mod inspect;
mod logits;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RWKV-7 inference on the CPU.
#[derive(Parser)]
#[command(name = "rwkv7", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write raw little-endian f32 logits, one row of vocabulary size per input token.
    Logits(logits::Args),
    /// Show a model's metadata, tensor table and the kernel set this CPU would use.
    Inspect(inspect::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Logits(args) => logits::run(&args),
        Command::Inspect(args) => inspect::run(&args),
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
