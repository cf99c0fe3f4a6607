//! `rwkv7 chat`: an interactive chat in the World/G1 template (spec §8.2). The history
//! lives in the recurrent state: each turn feeds only the new text.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use rwkv7::chat::{TURN_END, clean, system_turn, user_turn};
use rwkv7::{CancelHandle, GenerateParams, LoadedModel, Session, StopReason};

use crate::common::{self, CHAT_DEFAULTS, RunArgs, SamplingArgs};

/// Arguments of `rwkv7 chat`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model file (GGUF with a tokenizer) [default: $RWKV7_MODEL, else the bundled models/demo/demo-q8_0.gguf].
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// A system prompt, fed first as "System: TEXT\n\n".
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Start from this state: a state file (from /save or generate --save-state) or a
    /// state-tuning .pth.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Longest reply, in tokens.
    #[arg(short = 'n', long, visible_alias = "n-predict", value_name = "N", default_value_t = 1024)]
    max_tokens: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// How the model runs (front ends such as rwkv7-pi fill in their defaults).
    #[command(flatten)]
    pub run: RunArgs,
}

/// True while a turn is being fed or generated: Ctrl-C then stops it instead of quitting.
static BUSY: AtomicBool = AtomicBool::new(false);

const HELP: &str = "commands: /save FILE, /load FILE, /reset, /quit; Ctrl-C stops a reply; Ctrl-C at the prompt or end of input (Ctrl-D) quits";

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let model = common::open_model(&common::model_or_default(args.model.as_deref())?)?;
    let mut session = common::new_session(&model, &args.run)?;
    let cancel = CancelHandle::default();
    session.set_cancel_handle(cancel.clone());
    if let Some(path) = &args.state {
        common::load_state(&mut session, path)?;
    }
    if let Some(system) = &args.system {
        let turn = system_turn(system);
        if !turn.is_empty() {
            session.prefill_text(&turn)?;
        }
    }
    if let Some(seed) = args.sampling.seed {
        session.set_seed(seed);
    } else if args.state.is_none() {
        session.set_seed(common::clock_seed());
    }
    // `/reset` returns here.
    let initial = session.fork();

    let handler_cancel = cancel.clone();
    ctrlc::set_handler(move || {
        if BUSY.load(Ordering::SeqCst) {
            handler_cancel.cancel();
        } else {
            println!();
            std::process::exit(130);
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;

    let params = GenerateParams {
        sampler: args.sampling.sampler(&CHAT_DEFAULTS),
        max_tokens: args.max_tokens,
        seed: None,
        stop_strings: vec![TURN_END.to_string()],
        end_of_text: args.sampling.end_of_text(),
        ..Default::default()
    };
    eprintln!("{HELP}");
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    loop {
        print!("User: ");
        std::io::stdout().flush()?;
        line.clear();
        if input.read_line(&mut line)? == 0 {
            println!();
            return Ok(());
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if let Some(command) = text.strip_prefix('/') {
            let (name, arg) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
            let arg = arg.trim();
            match (name, arg) {
                ("quit" | "exit", _) => return Ok(()),
                ("reset", _) => {
                    session = initial.fork();
                    session.set_cancel_handle(cancel.clone());
                    eprintln!("(conversation reset)");
                }
                ("save", file) if !file.is_empty() => match session.save_state(file) {
                    Ok(()) => eprintln!("(saved to {file})"),
                    Err(e) => eprintln!("error: {e}"),
                },
                ("load", file) if !file.is_empty() => match common::load_state(&mut session, Path::new(file)) {
                    Ok(_) => eprintln!("(loaded {file})"),
                    Err(e) => eprintln!("error: {e:#}"),
                },
                _ => eprintln!("{HELP}"),
            }
            continue;
        }
        let message = clean(text);
        if message.is_empty() {
            continue;
        }
        // Feed the turn; if Ctrl-C interrupts the feeding, go back to before it.
        let before = session.fork();
        cancel.reset();
        BUSY.store(true, Ordering::SeqCst);
        let fed = session.prefill_text(&user_turn(&message));
        if let Err(e) = fed {
            BUSY.store(false, Ordering::SeqCst);
            session = before;
            session.set_cancel_handle(cancel.clone());
            match e {
                rwkv7::Error::Cancelled => {
                    eprintln!("(stopped)");
                    continue;
                }
                e => return Err(e.into()),
            }
        }
        session.clear_penalties();
        let outcome = reply(&mut session, &params);
        BUSY.store(false, Ordering::SeqCst);
        let outcome = outcome?;
        if outcome.stop != StopReason::StopString(0) {
            // The model did not close its turn: close it, so the next one starts cleanly.
            session.flush_text(|_| {});
            session.prefill_text(TURN_END)?;
        }
        if outcome.stop == StopReason::Cancelled {
            print!(" [stopped]");
        }
        print!("{TURN_END}");
        std::io::stdout().flush()?;
    }
}

/// Streams one reply to stdout.
fn reply(session: &mut Session<&LoadedModel>, params: &GenerateParams) -> Result<rwkv7::GenerateOutcome> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(b"Assistant:")?;
    out.flush()?;
    let mut error = None;
    let outcome =
        session.generate(params, |piece| match out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                error = Some(e);
                ControlFlow::Break(())
            }
        })?;
    if let Some(e) = error {
        return Err(anyhow::anyhow!("stdout: {e}"));
    }
    Ok(outcome)
}
