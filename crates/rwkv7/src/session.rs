//! Sessions: one conversation or document with a model — the recurrent state, the position,
//! the sampler's penalties and random generator, and the last logits — that can be fed,
//! asked to generate, saved, restored and forked.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use rwkv7::{GenerateParams, LoadedModel, Session};
//!
//! let model = LoadedModel::open("model.gguf")?;
//! let mut session = Session::new(&model);
//! session.prefill_text("User: hi\n\nAssistant:")?;
//! let params = GenerateParams { max_tokens: 64, stop_strings: vec!["\n\n".into()], ..Default::default() };
//! let outcome = session.generate(&params, |piece| {
//!     print!("{piece}");
//!     ControlFlow::Continue(())
//! })?;
//! session.save_state("chat.state")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `Session<M>` works with any handle to the model: `Session::new(&model)` borrows it,
//! `Session::new(Arc::clone(&model))` shares it (e.g. between a server's sessions or
//! across a JNI boundary, where no borrow can live).

use std::ops::{ControlFlow, Deref};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rwkv7_core::{
    END_OF_TEXT, KernelSet, Logits, OccEntry, OwnedTokenizer, Pcg64, Sampler, SamplerParams, State, Step, StopStrings,
    Utf8Stream, forward_parallel, scratch_len,
};

use crate::state_file::{self, Parts, StateDims};
use crate::{DEFAULT_CHUNK, Error, LoadedModel, ThreadPool};

/// Bytes a stop string may hold back while undecided; stop strings may be one byte longer.
const STOP_HOLD: usize = 64;
/// The longest stop string, in bytes.
pub const MAX_STOP_STRING: usize = STOP_HOLD + 1;

/// What happens with token 0 (end of text / document separator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndOfText {
    /// Sampling it ends generation ([`StopReason::EndOfText`]); it is not fed. The default, as
    /// in the official `API_DEMO_WORLD.py`.
    #[default]
    Stop,
    /// It is never sampled (its logit is -inf), as in the official chat demo.
    Ban,
    /// It is sampled and fed like any other token (it has no text).
    Allow,
}

/// Parameters of one [`Session::generate`] call.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Temperature, top-p, top-k and the presence/frequency penalties with their decay
    /// (the official `PIPELINE_ARGS`, defaults included).
    pub sampler: SamplerParams,
    /// Generate at most this many tokens (default 256).
    pub max_tokens: usize,
    /// Reseed the session's random generator before this call; `None` continues its stream
    /// (which is saved with the state, so a restored session continues identically).
    pub seed: Option<u64>,
    /// Generation stops when the text contains one of these (at most
    /// [`MAX_STOP_STRING`] bytes each). The stop string and anything after it are not
    /// passed to the callback; the tokens that produced them have been fed.
    pub stop_strings: Vec<String>,
    /// Generation stops when one of these is sampled; it is not fed.
    pub stop_tokens: Vec<u32>,
    /// These tokens are never sampled.
    pub banned_tokens: Vec<u32>,
    /// Token 0 stops generation (default), is banned, or is allowed.
    pub end_of_text: EndOfText,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            sampler: SamplerParams::default(),
            max_tokens: 256,
            seed: None,
            stop_strings: Vec::new(),
            stop_tokens: Vec::new(),
            banned_tokens: Vec::new(),
            end_of_text: EndOfText::Stop,
        }
    }
}

impl GenerateParams {
    /// Greedy decoding without penalties, up to `max_tokens`.
    pub fn greedy(max_tokens: usize) -> Self {
        GenerateParams { sampler: SamplerParams::GREEDY, max_tokens, ..Default::default() }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` tokens were generated.
    MaxTokens,
    /// Token 0 was sampled (with [`EndOfText::Stop`]).
    EndOfText,
    /// A stop token was sampled.
    StopToken(u32),
    /// The stop string with this index in [`GenerateParams::stop_strings`] appeared.
    StopString(usize),
    /// The callback returned `ControlFlow::Break`, or the [`CancelHandle`] was used.
    Cancelled,
}

/// What a [`Session::generate`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateOutcome {
    /// Tokens generated and fed (a stop token is not counted).
    pub tokens: usize,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Cancels a session's running (or next) prefill or generation from another thread or a
/// signal handler. The request is consumed by the operation it stops.
#[derive(Clone, Debug, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the running (or next) operation to stop at the next token or chunk.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a cancellation is pending.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Withdraws a pending cancellation.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Consumes a pending cancellation.
    fn take(&self) -> bool {
        self.is_cancelled() && self.0.swap(false, Ordering::AcqRel)
    }
}

/// How a session runs.
#[derive(Clone)]
pub struct SessionOptions {
    /// Tokens per prefill chunk (scratch memory grows with it), 1 to
    /// [`MAX_CHUNK`](crate::MAX_CHUNK) (other values are clamped). Default [`DEFAULT_CHUNK`].
    pub chunk: usize,
    /// Kernel set; `None`: `$RWKV7_KERNELS` if it names a usable set, else the best for
    /// this CPU.
    pub kernels: Option<KernelSet>,
    /// Threads the matrix products are split across (results are the same for any
    /// count); `None`: [`ThreadPool::shared`], the process-wide pool (`$RWKV7_THREADS`,
    /// else every core). Sessions given clones of one pool share its threads.
    pub pool: Option<ThreadPool>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { chunk: DEFAULT_CHUNK, kernels: None, pool: None }
    }
}

/// One tensor of a state-tuning file, as f32 in row-major order (see
/// [`Session::import_state_tuning`]).
#[derive(Clone, Copy, Debug)]
pub struct StateTensor<'a> {
    /// Its name, e.g. `blocks.0.att.time_state`.
    pub name: &'a str,
    /// Its shape, outermost first.
    pub shape: &'a [usize],
    /// Its values.
    pub data: &'a [f32],
}

/// A conversation or document in progress. See the [module docs](self).
///
/// All buffers (state, scratch, logits, sampling scratch, penalty table) are allocated
/// when the session is created; generating allocates nothing per token, on any number
/// of threads.
pub struct Session<M> {
    model: M,
    kernels: KernelSet,
    pool: ThreadPool,
    chunk: usize,
    state: Vec<f32>,
    scratch: Vec<f32>,
    /// The logits after the last token fed (valid when `has_logits`).
    logits: Vec<f32>,
    has_logits: bool,
    /// Sampling copy of the logits.
    probs: Vec<f32>,
    index_scratch: Vec<u32>,
    /// The penalty table (official `occurrence`), in insertion order.
    occurrence: Vec<OccEntry>,
    /// Working storage the sampler's table lives in during `generate` (vocabulary-sized, so
    /// the table is exact).
    occ_storage: Vec<OccEntry>,
    rng: Pcg64,
    /// Generated bytes of a character not yet complete.
    utf8: Utf8Stream,
    /// Tokens fed since the zero state. It comes from state files too, so it is only ever
    /// increased with `saturating_add`: a damaged file's 2⁶⁴ − 1 must not overflow.
    position: u64,
    cancel: CancelHandle,
}

/// Where generated output goes.
enum Sink<'f> {
    Text(&'f mut dyn FnMut(&str) -> ControlFlow<()>),
    Tokens(&'f mut dyn FnMut(u32) -> ControlFlow<()>),
}

fn parse_time_state_name(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blocks.")?.strip_suffix(".att.time_state")?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok()
}

impl<M: Deref<Target = LoadedModel>> Session<M> {
    /// A session at the zero state, with default options.
    pub fn new(model: M) -> Self {
        Self::with_options(model, SessionOptions::default())
    }

    /// A session at the zero state.
    pub fn with_options(model: M, options: SessionOptions) -> Self {
        let kernels = options.kernels.unwrap_or_else(|| {
            crate::select_kernels(None).unwrap_or_else(|_| KernelSet::best(rwkv7_core::CpuFeatures::detect()))
        });
        let chunk = options.chunk.clamp(1, crate::MAX_CHUNK);
        let pool = options.pool.unwrap_or_else(ThreadPool::shared);
        let (state_len, scratch, vocab) = {
            let m = model.model();
            (m.hparams().state_len(), scratch_len(&m, chunk), m.hparams().vocab)
        };
        Session {
            model,
            kernels,
            pool,
            chunk,
            state: vec![0.0; state_len],
            scratch: vec![0.0; scratch],
            logits: vec![0.0; vocab],
            has_logits: false,
            probs: vec![0.0; vocab],
            index_scratch: vec![0; vocab],
            occurrence: Vec::new(),
            occ_storage: vec![OccEntry::default(); vocab],
            rng: Pcg64::seed_from_u64(0),
            utf8: Utf8Stream::new(),
            position: 0,
            cancel: CancelHandle::default(),
        }
    }

    /// The model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// The kernel set in use.
    pub fn kernels(&self) -> &KernelSet {
        &self.kernels
    }

    /// The threads the forward pass runs on.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// Tokens fed since the session was created, reset, or its state imported (restored
    /// with a saved state).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The recurrent state (layout: [`rwkv7_core::State`]).
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// The logits after the last token fed, or `None` if nothing was fed yet.
    pub fn last_logits(&self) -> Option<&[f32]> {
        self.has_logits.then_some(&self.logits[..])
    }

    /// The penalty table: decayed occurrence counts of generated tokens, in insertion order.
    pub fn occurrences(&self) -> &[OccEntry] {
        &self.occurrence
    }

    /// A handle that cancels this session's prefill or generation (e.g. from a Ctrl-C
    /// handler or a server's disconnect path).
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Uses `handle` as this session's cancel handle (e.g. one created before the session,
    /// or kept across sessions that replace each other).
    pub fn set_cancel_handle(&mut self, handle: CancelHandle) {
        self.cancel = handle;
    }

    /// Reseeds the random generator (as [`GenerateParams::seed`] does for one call).
    pub fn set_seed(&mut self, seed: u64) {
        self.rng = Pcg64::seed_from_u64(seed);
    }

    /// Forgets the penalties (e.g. at the start of each chat reply).
    pub fn clear_penalties(&mut self) {
        self.occurrence.clear();
    }

    /// Back to the zero state: no logits, no penalties, position 0. The random generator
    /// keeps its stream.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.has_logits = false;
        self.occurrence.clear();
        self.utf8.reset();
        self.position = 0;
    }

    /// An independent copy sharing the model: same state, logits, penalties, random
    /// generator and position. Both continue identically when fed identically. The copy
    /// has its own cancel handle.
    pub fn fork(&self) -> Self
    where
        M: Clone,
    {
        Session {
            model: self.model.clone(),
            kernels: self.kernels,
            pool: self.pool.clone(),
            chunk: self.chunk,
            state: self.state.clone(),
            scratch: vec![0.0; self.scratch.len()],
            logits: self.logits.clone(),
            has_logits: self.has_logits,
            probs: vec![0.0; self.probs.len()],
            index_scratch: vec![0; self.index_scratch.len()],
            occurrence: self.occurrence.clone(),
            occ_storage: vec![OccEntry::default(); self.occ_storage.len()],
            rng: self.rng,
            utf8: self.utf8,
            position: self.position,
            cancel: CancelHandle::default(),
        }
    }

    /// Encodes `text` with the model's tokenizer.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, Error> {
        self.model.tokenize(text)
    }

    /// Decodes `tokens` with the model's tokenizer (U+FFFD for invalid UTF-8).
    pub fn detokenize(&self, tokens: &[u32]) -> Result<String, Error> {
        self.model.detokenize(tokens)
    }

    /// Feeds `text` (encoded with the model's tokenizer) through the batched prefill path.
    pub fn prefill_text(&mut self, text: &str) -> Result<(), Error> {
        let tokens = self.model.tokenize(text)?;
        self.prefill_tokens(&tokens)
    }

    /// Feeds `tokens` through the batched prefill path, in chunks; afterwards
    /// [`last_logits`](Self::last_logits) predicts the next token. All ids are checked
    /// before anything is fed. Empty input changes nothing.
    ///
    /// Cancellation (through the [`CancelHandle`]) is checked between chunks and returns
    /// [`Error::Cancelled`]; the chunks already fed stay in the state (fork first to be
    /// able to go back), and there are no logits until the next feed.
    pub fn prefill_tokens(&mut self, tokens: &[u32]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Ok(());
        }
        self.model.check_tokens(tokens)?;
        // Bytes of an unfinished generated character can no longer be completed.
        self.utf8.reset();
        self.has_logits = false;
        let m = self.model.model();
        let hp = *m.hparams();
        let found = self.state.len();
        let mut state = State::new(&hp, &mut self.state)
            .ok_or(rwkv7_core::ForwardError::StateSize { expected: hp.state_len(), found })?;
        let n_chunks = tokens.len().div_ceil(self.chunk);
        for (i, part) in tokens.chunks(self.chunk).enumerate() {
            if self.cancel.take() {
                return Err(Error::Cancelled);
            }
            let out = if i + 1 == n_chunks { Logits::Last(&mut self.logits) } else { Logits::None };
            let (kernels, scratch) = (&self.kernels, &mut self.scratch);
            self.pool.run(|par| forward_parallel(&m, kernels, par, &mut state, part, scratch, out))?;
            self.position = self.position.saturating_add(part.len() as u64);
        }
        self.has_logits = true;
        Ok(())
    }

    /// Generates text, passing it to `on_piece` as it is produced (pieces are whole UTF-8
    /// characters; text that may be the start of a stop string is held back until decided).
    /// Every generated token is fed, so afterwards the state and
    /// [`last_logits`](Self::last_logits) are ready for more input or another call.
    ///
    /// `on_piece` returning `ControlFlow::Break(())` stops generation
    /// ([`StopReason::Cancelled`]). Bytes of a character still incomplete when the call ends
    /// are kept in the session (and in saved states) and come out with the next generated
    /// token; [`flush_text`](Self::flush_text) emits them as U+FFFD instead.
    /// Needs the model's tokenizer.
    pub fn generate(
        &mut self,
        params: &GenerateParams,
        mut on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<GenerateOutcome, Error> {
        self.run(params, Sink::Text(&mut on_piece))
    }

    /// Generates tokens, passing each id to `on_token` as it is sampled (and fed). Works
    /// without a tokenizer unless stop strings are given; occurrence weights come from the
    /// tokenizer when the model has one, else every token weighs 1.
    pub fn generate_tokens(
        &mut self,
        params: &GenerateParams,
        mut on_token: impl FnMut(u32) -> ControlFlow<()>,
    ) -> Result<GenerateOutcome, Error> {
        self.run(params, Sink::Tokens(&mut on_token))
    }

    /// Emits the bytes of an unfinished generated character as U+FFFD and forgets them
    /// (e.g. at the end of a command-line run that does not save its state).
    pub fn flush_text(&mut self, mut on_piece: impl FnMut(&str)) {
        self.utf8.finish(&mut on_piece);
    }

    fn run(&mut self, params: &GenerateParams, mut sink: Sink<'_>) -> Result<GenerateOutcome, Error> {
        let Session {
            model,
            kernels,
            pool,
            state,
            scratch,
            logits,
            has_logits,
            probs,
            index_scratch,
            occurrence,
            occ_storage,
            rng,
            utf8,
            position,
            cancel,
            ..
        } = self;
        let model: &LoadedModel = model;
        let tok: Option<&OwnedTokenizer> = match sink {
            Sink::Text(_) => Some(model.tokenizer()?),
            Sink::Tokens(_) if params.stop_strings.is_empty() => model.tokenizer().ok(),
            Sink::Tokens(_) => Some(model.tokenizer()?),
        };
        let stop_strs: Vec<&str> = params.stop_strings.iter().map(String::as_str).collect();
        for (index, s) in stop_strs.iter().enumerate() {
            let message = if s.is_empty() {
                "is empty".to_string()
            } else if s.len() > MAX_STOP_STRING {
                format!("is {} bytes long; at most {MAX_STOP_STRING} are supported", s.len())
            } else {
                continue;
            };
            return Err(Error::StopString { index, text: s.to_string(), message });
        }
        let mut matcher = StopStrings::<STOP_HOLD>::new(&stop_strs).map_err(|e| Error::StopString {
            index: 0,
            text: String::new(),
            message: e.to_string(),
        })?;
        if !*has_logits {
            return Err(Error::NoLogits);
        }
        if let Some(seed) = params.seed {
            *rng = Pcg64::seed_from_u64(seed);
        }
        let mut bans = params.banned_tokens.clone();
        let mut stops = params.stop_tokens.clone();
        match params.end_of_text {
            EndOfText::Stop => stops.push(END_OF_TEXT),
            EndOfText::Ban => bans.push(END_OF_TEXT),
            EndOfText::Allow => {}
        }
        let eot_stops = params.end_of_text == EndOfText::Stop;
        let check_text = tok.is_some() && (matches!(sink, Sink::Text(_)) || !stop_strs.is_empty());

        let m = model.model();
        let hp = *m.hparams();
        let found = state.len();
        let mut st =
            State::new(&hp, state).ok_or(rwkv7_core::ForwardError::StateSize { expected: hp.state_len(), found })?;
        let mut sampler = Sampler::new(params.sampler, occ_storage, *rng).with_bans(&bans).with_stops(&stops);
        for e in occurrence.iter() {
            sampler.occurrence.add(e.token, e.count);
        }
        let weight = |t: u32| tok.map_or(1.0, |k| k.occurrence_weight(t));

        let mut n = 0usize;
        let mut flow = ControlFlow::Continue(());
        let result: Result<StopReason, Error> = 'steps: loop {
            if n >= params.max_tokens {
                break 'steps Ok(StopReason::MaxTokens);
            }
            if cancel.take() {
                break 'steps Ok(StopReason::Cancelled);
            }
            probs.copy_from_slice(logits);
            let t = match sampler.step(probs, index_scratch, weight) {
                Ok(Step::Token(t)) => t,
                Ok(Step::Stop(t)) if t == END_OF_TEXT && eot_stops => break 'steps Ok(StopReason::EndOfText),
                Ok(Step::Stop(t)) => break 'steps Ok(StopReason::StopToken(t)),
                Err(e) => break 'steps Err(e.into()),
            };
            let step = pool.run(|par| forward_parallel(&m, kernels, par, &mut st, &[t], scratch, Logits::Last(logits)));
            if let Err(e) = step {
                break 'steps Err(e.into());
            }
            *position = position.saturating_add(1);
            n += 1;
            let mut hit = None;
            if let Sink::Tokens(f) = &mut sink {
                flow = f(t);
            }
            if check_text && let Some(tok) = tok {
                let mut text_sink = match &mut sink {
                    Sink::Text(f) => Some(f),
                    Sink::Tokens(_) => None,
                };
                utf8.push(tok.token_bytes(t), |s| {
                    if hit.is_none() {
                        hit = matcher.push(s, |piece| {
                            if let Some(f) = text_sink.as_mut()
                                && flow.is_continue()
                            {
                                flow = f(piece);
                            }
                        });
                    }
                });
            }
            if let Some(k) = hit {
                // The rest of the text after the stop string is dropped with it.
                utf8.reset();
                break 'steps Ok(StopReason::StopString(k));
            }
            if flow.is_break() {
                break 'steps Ok(StopReason::Cancelled);
            }
        };
        // Text held back as a possible stop-string start is released unless a stop string
        // was found or the caller asked to stop.
        if let Sink::Text(f) = &mut sink
            && flow.is_continue()
        {
            matcher.finish(|piece| {
                if flow.is_continue() {
                    flow = f(piece);
                }
            });
        }
        *rng = sampler.rng;
        occurrence.clear();
        occurrence.extend_from_slice(sampler.occurrence.entries());
        result.map(|stop| GenerateOutcome { tokens: n, stop })
    }

    fn dims(&self) -> StateDims {
        StateDims::of(self.model.hparams())
    }

    /// The session as state-file bytes (docs/STATE_FORMAT.md).
    pub fn state_bytes(&self) -> Vec<u8> {
        let pending = self.utf8.pending();
        state_file::encode(&Parts {
            fingerprint: self.model.fingerprint(),
            dims: self.dims(),
            position: self.position,
            rng: self.rng.raw(),
            pending,
            state: &self.state,
            logits: self.last_logits(),
            occurrence: &self.occurrence,
        })
    }

    /// Saves the session (state, last logits, penalties, random generator, position) to
    /// `path`, atomically: a temporary file in the same folder, renamed when complete.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        state_file::write_atomic(path.as_ref(), &self.state_bytes())
    }

    /// Restores a session saved by [`save_state`](Self::save_state). A file from another
    /// model is refused with [`Error::StateMismatch`]; on any error the session is unchanged.
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| Error::Io { path: path.to_path_buf(), error })?;
        self.restore(&bytes, path)
    }

    /// [`load_state`](Self::load_state) from bytes made by
    /// [`state_bytes`](Self::state_bytes); `name` stands for the file in messages.
    pub fn load_state_bytes(&mut self, bytes: &[u8], name: &str) -> Result<(), Error> {
        self.restore(bytes, Path::new(name))
    }

    fn restore(&mut self, bytes: &[u8], path: &Path) -> Result<(), Error> {
        let d = state_file::decode(bytes, path, self.model.path(), self.model.fingerprint(), self.dims())?;
        self.state.copy_from_slice(&d.state);
        match d.logits {
            Some(l) => {
                self.logits.copy_from_slice(&l);
                self.has_logits = true;
            }
            None => self.has_logits = false,
        }
        self.occurrence = d.occurrence;
        self.rng = Pcg64::from_raw(d.rng.0, d.rng.1);
        self.utf8 = d.pending;
        self.position = d.position;
        Ok(())
    }

    /// Starts from a state-tuning initial state (spec §7): `tensors` must be exactly
    /// `blocks.{l}.att.time_state` of shape `[H, N, N]` for every layer `l`. They are used
    /// **without transpose** (for RWKV-7 the trained layout is the official `[h][value][key]`);
    /// the token-shift rows start at zero. The session is reset first (no logits, no
    /// penalties, position 0); on error it is unchanged.
    pub fn import_state_tuning(&mut self, tensors: &[StateTensor<'_>]) -> Result<(), Error> {
        let hp = *self.model.hparams();
        let (layers, c, h, n) = (hp.n_layer, hp.n_embd, hp.n_head, hp.head_size);
        let per_layer = hp.state_len_per_layer();
        let mut state = vec![0.0f32; hp.state_len()];
        let mut seen = vec![false; layers];
        let err = |m: String| Error::StateTuning(m);
        for t in tensors {
            let l = parse_time_state_name(t.name).ok_or_else(|| {
                err(format!(
                    "unexpected tensor `{}` (an RWKV-7 state-tuning file holds only blocks.N.att.time_state)",
                    t.name
                ))
            })?;
            if l >= layers {
                return Err(err(format!("`{}`: the model has only {layers} layers", t.name)));
            }
            if seen[l] {
                return Err(err(format!("`{}` appears twice", t.name)));
            }
            if t.shape != [h, n, n] {
                return Err(err(format!(
                    "`{}` has shape {:?}; this model needs [{h}, {n}, {n}] (heads, head size, head size)",
                    t.name, t.shape
                )));
            }
            if t.data.len() != h * n * n {
                return Err(err(format!("`{}` holds {} values, its shape needs {}", t.name, t.data.len(), h * n * n)));
            }
            if t.data.iter().any(|v| !v.is_finite()) {
                return Err(err(format!("`{}` holds NaN or infinity", t.name)));
            }
            let start = l * per_layer + c;
            state[start..start + h * n * n].copy_from_slice(t.data);
            seen[l] = true;
        }
        if let Some(l) = seen.iter().position(|s| !s) {
            return Err(err(format!(
                "no blocks.{l}.att.time_state (the file has {} of the model's {layers} layers)",
                seen.iter().filter(|s| **s).count()
            )));
        }
        self.reset();
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time_state_name;

    #[test]
    fn time_state_names() {
        assert_eq!(parse_time_state_name("blocks.0.att.time_state"), Some(0));
        assert_eq!(parse_time_state_name("blocks.23.att.time_state"), Some(23));
        for bad in [
            "blocks..att.time_state",
            "blocks.01.att.time_state",
            "blocks.x.att.time_state",
            "blocks.0.att.time_statex",
            "emb.weight",
        ] {
            assert_eq!(parse_time_state_name(bad), None, "{bad}");
        }
    }
}
