//! What `generate` and `chat` share: sampling flags, model/session setup, state files
//! (our own, or a state-tuning `.pth`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use rwkv7::core::SamplerParams;
use rwkv7::{
    DEFAULT_CHUNK, EndOfText, LoadedModel, MAX_CHUNK, MAX_THREADS, Session, SessionOptions, StateTensor, ThreadPool,
    select_kernels,
};

/// Environment variable naming the default model for `generate` and `chat`.
pub const MODEL_ENV: &str = "RWKV7_MODEL";
/// The bundled demo model, relative to the repository root.
pub const BUNDLED_MODEL: &str = "models/demo/demo-q8_0.gguf";

/// The model to use when `-m` is not given: `$RWKV7_MODEL`, else the bundled demo model,
/// looked up from the current directory and then from the executable's location
/// (`target/<profile>/rwkv7` sits two levels below the repository root).
pub fn model_or_default(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(MODEL_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(|root| root.join(BUNDLED_MODEL)));
    let candidates = [Some(PathBuf::from(BUNDLED_MODEL)), from_exe];
    match candidates.into_iter().flatten().find(|p| p.is_file()) {
        Some(path) => Ok(path),
        None => {
            bail!("no model given: pass -m MODEL.gguf or set {MODEL_ENV} (the bundled {BUNDLED_MODEL} was not found)")
        }
    }
}

/// Sampling defaults of one command (`None` in the flags means "use these").
pub struct Defaults {
    pub temperature: f64,
    pub top_p: f64,
    pub presence: f64,
    pub frequency: f64,
}

/// The official `PIPELINE_ARGS` defaults (spec §8.1).
pub const GENERATE_DEFAULTS: Defaults = Defaults { temperature: 1.0, top_p: 0.85, presence: 0.2, frequency: 0.2 };
/// The official chat demo's defaults (`API_DEMO_CHAT.py`, spec §8.1).
pub const CHAT_DEFAULTS: Defaults = Defaults { temperature: 1.0, top_p: 0.3, presence: 0.5, frequency: 0.5 };

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number ≥ 0")),
    }
}

fn unit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number between 0 and 1")),
    }
}

/// A parser for a count of `unit` from `min` to `max`: the flags whose value sizes a
/// buffer or the thread pool (`--chunk` 1 to [`MAX_CHUNK`], `-t` 1 to [`MAX_THREADS`]).
pub fn count_in(
    min: usize,
    max: usize,
    unit: &'static str,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a number of {unit} from {min} to {max}")),
    }
}

fn finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a finite number")),
    }
}

/// What token 0 (end of text) does.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Eot {
    /// Sampling it ends the text.
    Stop,
    /// It is never sampled.
    Ban,
    /// It is generated like any token (it has no text).
    Allow,
}

/// Sampling flags (llama.cpp's names where they overlap).
#[derive(clap::Args, Debug)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy [default: generate 1.0, chat 1.0].
    #[arg(long, visible_alias = "temp", value_name = "T", value_parser = non_negative, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Nucleus (top-p) mass; 0 is greedy [default: generate 0.85, chat 0.3].
    #[arg(long, value_name = "P", value_parser = unit, allow_negative_numbers = true)]
    pub top_p: Option<f64>,
    /// Keep only the K most probable tokens; 0 disables.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub top_k: usize,
    /// Presence penalty [default: generate 0.2, chat 0.5].
    #[arg(long, value_name = "X", value_parser = finite, allow_negative_numbers = true)]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty per (decayed) occurrence [default: generate 0.2, chat 0.5].
    #[arg(long, value_name = "X", value_parser = finite, allow_negative_numbers = true)]
    pub frequency_penalty: Option<f64>,
    /// Decay of the occurrence counts per generated token.
    #[arg(long, value_name = "X", default_value_t = 0.996, value_parser = unit)]
    pub penalty_decay: f64,
    /// Random seed [default: continue the stream of a state loaded with --state, else from the clock].
    #[arg(long, short = 's', value_name = "N")]
    pub seed: Option<u64>,
    /// What end of text (token 0) does.
    #[arg(long, value_enum, default_value = "stop")]
    pub eot: Eot,
}

impl SamplingArgs {
    pub fn sampler(&self, d: &Defaults) -> SamplerParams {
        SamplerParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.unwrap_or(d.top_p),
            top_k: self.top_k,
            alpha_frequency: self.frequency_penalty.unwrap_or(d.frequency),
            alpha_presence: self.presence_penalty.unwrap_or(d.presence),
            alpha_decay: self.penalty_decay,
        }
    }

    pub fn end_of_text(&self) -> EndOfText {
        match self.eot {
            Eot::Stop => EndOfText::Stop,
            Eot::Ban => EndOfText::Ban,
            Eot::Allow => EndOfText::Allow,
        }
    }
}

/// How the model runs.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Tokens per prefill chunk (at most 1024).
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_parser = count_in(1, MAX_CHUNK, "tokens"))]
    pub chunk: usize,
    /// Kernel set (default: the best for this CPU; also RWKV7_KERNELS).
    #[arg(long)]
    pub kernels: Option<String>,
    /// Threads the matrix products are split across (default: RWKV7_THREADS, else every
    /// core). Results are identical for any count.
    #[arg(short = 't', long, value_name = "N", value_parser = count_in(1, MAX_THREADS, "threads"))]
    pub threads: Option<usize>,
}

impl RunArgs {
    /// The thread pool `-t` asks for (else the default one).
    pub fn pool(&self) -> Result<ThreadPool> {
        match self.threads {
            Some(n) => ThreadPool::new(n).context("starting worker threads"),
            None => Ok(ThreadPool::from_env()),
        }
    }
}

/// Opens the model (it must have a tokenizer).
pub fn open_model(path: &Path) -> Result<LoadedModel> {
    let model = LoadedModel::open(path)?;
    model.tokenizer()?;
    Ok(model)
}

/// A session on `model` as `run` asks.
pub fn new_session<'m>(model: &'m LoadedModel, run: &RunArgs) -> Result<Session<&'m LoadedModel>> {
    let kernels = select_kernels(run.kernels.as_deref()).map_err(anyhow::Error::msg).context("--kernels")?;
    let options = SessionOptions { chunk: run.chunk, kernels: Some(kernels), pool: Some(run.pool()?) };
    Ok(Session::with_options(model, options))
}

/// What `--state` / `/load` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// A saved session (state file).
    Session,
    /// A state-tuning `.pth` (initial state; no logits yet).
    StateTuning,
}

/// Loads `path` into `session`: a state file saved by `rwkv7`, or a state-tuning `.pth`
/// (`blocks.N.att.time_state`, imported without transpose).
pub fn load_state(session: &mut Session<&LoadedModel>, path: &Path) -> Result<Loaded> {
    let mut magic = [0u8; 4];
    let n =
        std::fs::File::open(path).and_then(|mut f| f.read(&mut magic)).with_context(|| path.display().to_string())?;
    if n == 4 && magic == *b"PK\x03\x04" {
        let tensors = rwkv7_quant::pth::read_pth(path).with_context(|| path.display().to_string())?;
        let values: Vec<Vec<f32>> = tensors.iter().map(|t| t.to_f32()).collect();
        let views: Vec<StateTensor<'_>> =
            tensors.iter().zip(&values).map(|(t, v)| StateTensor { name: &t.name, shape: &t.shape, data: v }).collect();
        session.import_state_tuning(&views).with_context(|| path.display().to_string())?;
        Ok(Loaded::StateTuning)
    } else {
        session.load_state(path)?;
        Ok(Loaded::Session)
    }
}

/// A seed from the clock and the process id.
pub fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Text of a prompt file (UTF-8).
pub fn read_text(path: &PathBuf) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => bail!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to()),
    }
}
