//! `rwkv7 generate`: continue a prompt, streaming the text to stdout.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use rwkv7::{GenerateParams, StopReason};

use crate::common::{self, GENERATE_DEFAULTS, Loaded, RunArgs, SamplingArgs};

/// Arguments of `rwkv7 generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model file (GGUF with a tokenizer) [default: $RWKV7_MODEL, else the bundled models/demo/demo-q8_0.gguf].
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Prompt text. May be empty with --state, to continue a saved session.
    #[arg(short, long, conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from a file (UTF-8).
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(short = 'n', long, visible_alias = "n-predict", value_name = "N", default_value_t = 256)]
    max_tokens: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Stop when the text contains this (repeatable); it is not printed.
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Start from this state: a state file saved with --save-state (or chat's /save), or a
    /// state-tuning .pth (blocks.N.att.time_state).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Save the session (state, last logits, penalties, random stream) here afterwards, to
    /// continue with --state.
    #[arg(long, value_name = "FILE")]
    save_state: Option<PathBuf>,
    /// Print the token count, speed and stop reason on stderr.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => common::read_text(f)?,
        (None, None) if args.state.is_some() => String::new(),
        (None, None) => {
            bail!("give a prompt with -p/--prompt or -f/--file (or --state FILE to continue a saved session)")
        }
    };
    let model = common::open_model(&common::model_or_default(args.model.as_deref())?)?;
    let mut session = common::new_session(&model, &args.run)?;
    let loaded = match &args.state {
        Some(path) => Some(common::load_state(&mut session, path)?),
        None => None,
    };
    let t0 = Instant::now();
    session.prefill_text(&prompt)?;
    if args.max_tokens == 0 {
        // Feed only (e.g. to save a prompt's or a state-tuning file's state for later).
        if let Some(path) = &args.save_state {
            session.save_state(path)?;
        }
        return Ok(());
    }
    if session.last_logits().is_none() {
        match (&args.state, loaded) {
            (Some(path), Some(Loaded::StateTuning)) => bail!(
                "-p/--prompt is empty: a state-tuning file ({}) holds no last token to continue from",
                path.display()
            ),
            (Some(path), _) => {
                bail!("-p/--prompt is empty and {} holds no last token to continue from", path.display())
            }
            _ => bail!("-p/--prompt is empty: give some text to continue"),
        }
    }
    let prefill = t0.elapsed();
    let seed = match (args.sampling.seed, loaded) {
        (Some(s), _) => Some(s),
        (None, Some(Loaded::Session)) => None, // continue the saved random stream
        (None, _) => Some(common::clock_seed()),
    };
    let params = GenerateParams {
        sampler: args.sampling.sampler(&GENERATE_DEFAULTS),
        max_tokens: args.max_tokens,
        seed,
        stop_strings: args.stop.clone(),
        end_of_text: args.sampling.end_of_text(),
        ..Default::default()
    };

    // Ctrl-C stops generating; the state is still saved if asked.
    let cancel = session.cancel_handle();
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        cancel.cancel();
    });

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error = None;
    let t1 = Instant::now();
    let outcome =
        session.generate(&params, |piece| match out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        })?;
    let gen_time = t1.elapsed();
    if let Some(path) = &args.save_state {
        // Bytes of an unfinished character stay in the state, to come out when continued.
        session.save_state(path)?;
    } else {
        session.flush_text(|s| {
            if write_error.is_none()
                && let Err(e) = out.write_all(s.as_bytes())
            {
                write_error = Some(e);
            }
        });
    }
    if write_error.is_none() && std::io::stdout().is_terminal() {
        let _ = writeln!(out);
    }
    let _ = out.flush();
    if let Some(e) = write_error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        bail!("stdout: {e}");
    }
    if args.stats {
        let reason = match outcome.stop {
            StopReason::MaxTokens => "max tokens".to_string(),
            StopReason::EndOfText => "end of text".to_string(),
            StopReason::StopToken(t) => format!("stop token {t}"),
            StopReason::StopString(i) => format!("stop string {:?}", args.stop[i]),
            StopReason::Cancelled => "cancelled".to_string(),
        };
        let tps = outcome.tokens as f64 / gen_time.as_secs_f64().max(1e-9);
        eprintln!(
            "prefill {} ms; {} tokens in {} ms ({tps:.1} tokens/s); stop: {reason}",
            prefill.as_millis(),
            outcome.tokens,
            gen_time.as_millis()
        );
    }
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        std::process::exit(130);
    }
    Ok(())
}
