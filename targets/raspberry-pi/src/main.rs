//! `rwkv7-pi`: `chat` in the terminal, or `serve` an OpenAI-compatible HTTP API.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rwkv7_cli::common::{RunArgs, model_or_default, open_model};
use rwkv7_pi::request::RequestLimits;
use rwkv7_pi::server::{self, ServerConfig};
use rwkv7_pi::setup;
use rwkv7_pi::worker::WorkerConfig;
use tokio::signal::unix::{SignalKind, signal};

/// The offline assistant for Raspberry Pi boards.
#[derive(Parser)]
#[command(name = "rwkv7-pi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat in the terminal (the rwkv7 CLI's chat, with threads chosen for this board).
    Chat(rwkv7_cli::chat::Args),
    /// Serve the OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions,
    /// /v1/models, /health) until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Model file (GGUF with a tokenizer) [default: $RWKV7_MODEL, else the bundled models/demo/demo-q8_0.gguf].
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model's id in the API [default: the file name without .gguf].
    #[arg(long, value_name = "NAME")]
    alias: Option<String>,
    /// The most tokens one request may generate.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens_limit: u32,
    /// Tokens generated when a request gives no max_tokens (at most the limit).
    #[arg(long, value_name = "N", default_value_t = 256)]
    default_max_tokens: u32,
    /// The largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    body_limit: usize,
    /// Requests that may wait while one runs; more get 503.
    #[arg(long, value_name = "N", default_value_t = 16)]
    queue: usize,
    /// Prompt states kept in the prefix cache.
    #[arg(long, value_name = "N", default_value_t = 8)]
    cache_entries: usize,
    /// Memory the prefix cache may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    cache_mib: usize,
    #[command(flatten)]
    run: RunArgs,
}

fn chat(mut args: rwkv7_cli::chat::Args) -> Result<()> {
    let choice = setup::choose(args.run.threads, args.run.kernels.as_deref())?;
    args.run.threads = Some(choice.threads);
    rwkv7_cli::chat::run(&args)
}

/// Completes on SIGTERM or SIGINT.
fn termination() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("rwkv7-pi: stopping: finishing the requests in flight");
    })
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut choice = setup::choose(args.run.threads, args.run.kernels.as_deref())?;
    choice.options.chunk = args.run.chunk;
    let path = model_or_default(args.model.as_deref())?;
    let model = Arc::new(open_model(&path)?);
    let model_id = args.alias.clone().unwrap_or_else(|| {
        path.file_name().map_or("model".into(), |n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
    });
    let config = ServerConfig {
        model_id,
        body_limit: args.body_limit,
        limits: RequestLimits {
            max_tokens: args.max_tokens_limit as usize,
            default_max_tokens: args.default_max_tokens as usize,
        },
        worker: WorkerConfig {
            queue: args.queue,
            cache_entries: args.cache_entries,
            cache_bytes: args.cache_mib.saturating_mul(1 << 20),
            session: choice.options,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        eprintln!("rwkv7-pi: serving {} on http://{}", config.model_id, listener.local_addr()?);
        server::serve(listener, model, config, termination()?).await?;
        eprintln!("rwkv7-pi: stopped");
        Ok(())
    })
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Chat(args) => chat(args),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
