//! The native objects behind Java handles, and every operation on them, in plain Rust
//! (the `jni` module only converts arguments and results). Everything returns
//! `Result<_, BridgeError>`, so it can be tested without a JVM.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, TryLockError};

use rwkv7::core::SamplerParams;
use rwkv7::{CancelHandle, EndOfText, GenerateOutcome, GenerateParams, LoadedModel, Session, StopReason};

use crate::error::{BridgeError, Kind};
use crate::registry::Registry;

/// A session on a shared model (the `Arc` keeps the mapping alive after the model's own
/// handle is closed, until its last session is closed too).
pub type ModelSession = Session<Arc<LoadedModel>>;

/// What a model handle refers to.
pub struct NativeModel {
    model: Arc<LoadedModel>,
}

/// What a session handle refers to.
pub struct NativeSession {
    /// Held for the whole of one operation; `try_lock` turns a second concurrent operation
    /// (another thread, or the token callback calling back into its own session) into
    /// `IllegalStateException` instead of a deadlock.
    session: Mutex<ModelSession>,
    /// The session's cancel flag, reachable without the lock: `cancel` from another thread
    /// works while `generate` holds it.
    cancel: CancelHandle,
}

impl NativeSession {
    fn new(session: ModelSession) -> Self {
        let cancel = session.cancel_handle();
        NativeSession { session: Mutex::new(session), cancel }
    }
}

/// Open models (Java `NativeModel` / Kotlin `RwkvModel`).
pub static MODELS: Registry<NativeModel> = Registry::new("RwkvModel");
/// Open sessions (Java `NativeSession` / Kotlin `RwkvSession`).
pub static SESSIONS: Registry<NativeSession> = Registry::new("RwkvSession");

/// Maps the model file at `path` (no copy) and validates it.
pub fn model_open(path: &str) -> Result<i64, BridgeError> {
    if path.is_empty() {
        return Err(BridgeError::new(Kind::IllegalArgument, "model path is empty"));
    }
    let model = LoadedModel::open(path)?;
    Ok(MODELS.insert(NativeModel { model: Arc::new(model) }))
}

/// Closes a model handle. Its sessions stay usable; the file is unmapped when the last of
/// them is closed.
pub fn model_close(handle: i64) -> Result<(), BridgeError> {
    drop(MODELS.remove(handle)?);
    Ok(())
}

/// `[layers, embedding, heads, head size, vocabulary]`.
pub fn model_dims(handle: i64) -> Result<[i32; 5], BridgeError> {
    let m = MODELS.get(handle)?;
    let hp = m.model.hparams();
    let c = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    Ok([c(hp.n_layer), c(hp.n_embd), c(hp.n_head), c(hp.head_size), c(hp.vocab)])
}

/// A one-line description: dimensions, kernel set, tokenizer, file.
pub fn model_describe(handle: i64) -> Result<String, BridgeError> {
    let m = MODELS.get(handle)?;
    let hp = m.model.hparams();
    let kernels = rwkv7::select_kernels(None).map(|k| k.name()).unwrap_or("default");
    Ok(format!(
        "RWKV-7: {} layers, embedding {}, {} heads x {}, vocabulary {}; kernels {}; tokenizer {}; {}",
        hp.n_layer,
        hp.n_embd,
        hp.n_head,
        hp.head_size,
        hp.vocab,
        kernels,
        if m.model.has_tokenizer() { "yes" } else { "no" },
        m.model.path().display()
    ))
}

/// Encodes `text` with the model's tokenizer.
pub fn model_tokenize(handle: i64, text: &str) -> Result<Vec<u32>, BridgeError> {
    Ok(MODELS.get(handle)?.model.tokenize(text)?)
}

/// Token ids from Java `int`s (negative ids are an argument error, not a wrap-around).
pub fn token_ids(tokens: &[i32]) -> Result<Vec<u32>, BridgeError> {
    tokens
        .iter()
        .map(|&t| {
            u32::try_from(t).map_err(|_| BridgeError::new(Kind::IllegalArgument, format!("token id {t} is negative")))
        })
        .collect()
}

/// Decodes `tokens` (U+FFFD for invalid UTF-8).
pub fn model_detokenize(handle: i64, tokens: &[i32]) -> Result<String, BridgeError> {
    let ids = token_ids(tokens)?;
    Ok(MODELS.get(handle)?.model.detokenize(&ids)?)
}

/// A new session at the zero state.
pub fn session_new(model: i64) -> Result<i64, BridgeError> {
    let m = MODELS.get(model)?;
    Ok(SESSIONS.insert(NativeSession::new(Session::new(Arc::clone(&m.model)))))
}

/// Closes a session handle. A call still running on it (on another thread) is cancelled
/// and finishes first; the memory is freed when it returns.
pub fn session_close(handle: i64) -> Result<(), BridgeError> {
    let s = SESSIONS.remove(handle)?;
    s.cancel.cancel();
    drop(s);
    Ok(())
}

/// Asks the running (or, if none is running, the next) prefill or generation of the session
/// to stop. Never blocks: it only sets the session's atomic flag.
pub fn session_cancel(handle: i64) -> Result<(), BridgeError> {
    SESSIONS.get(handle)?.cancel.cancel();
    Ok(())
}

/// Withdraws a cancellation that no operation has consumed yet.
pub fn session_clear_cancel(handle: i64) -> Result<(), BridgeError> {
    SESSIONS.get(handle)?.cancel.reset();
    Ok(())
}

/// Runs `f` on the session, which must be open and not in use by another call.
pub fn with_session<R>(
    handle: i64,
    f: impl FnOnce(&mut ModelSession) -> Result<R, BridgeError>,
) -> Result<R, BridgeError> {
    let entry = SESSIONS.get(handle)?;
    let mut session = match entry.session.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::WouldBlock) => {
            return Err(BridgeError::new(
                Kind::IllegalState,
                "RwkvSession is busy: another call (prefill, generate, state or fork) is running on it",
            ));
        }
        Err(TryLockError::Poisoned(_)) => {
            return Err(BridgeError::new(
                Kind::Rwkv,
                "RwkvSession is unusable after an internal error in an earlier call; close it",
            ));
        }
    };
    f(&mut session)
}

/// An independent copy of the session (state, logits, penalties, random stream), with its
/// own handle and cancel flag.
pub fn session_fork(handle: i64) -> Result<i64, BridgeError> {
    let copy = with_session(handle, |s| Ok(s.fork()))?;
    Ok(SESSIONS.insert(NativeSession::new(copy)))
}

/// Generation parameters as the Java side passes them (primitives, so no reflection).
#[derive(Clone, Debug, PartialEq)]
pub struct JavaParams {
    /// Temperature; 0 is greedy.
    pub temperature: f64,
    /// Nucleus mass in [0, 1]; 0 is greedy.
    pub top_p: f64,
    /// Keep the `top_k` most probable tokens; 0 disables.
    pub top_k: i32,
    /// Presence penalty.
    pub presence_penalty: f64,
    /// Frequency penalty per (decayed) occurrence.
    pub frequency_penalty: f64,
    /// Occurrence decay per generated token, in [0, 1].
    pub penalty_decay: f64,
    /// Generate at most this many tokens.
    pub max_tokens: i32,
    /// Reseed before generating; `None` continues the session's random stream.
    pub seed: Option<i64>,
    /// Stop when the text contains one of these.
    pub stop_strings: Vec<String>,
    /// What token 0 does: the ordinal of `org.rwkv7.EndOfText` (0 stop, 1 ban, 2 allow).
    pub end_of_text: i32,
}

fn bad(message: String) -> BridgeError {
    BridgeError::new(Kind::IllegalArgument, message)
}

impl JavaParams {
    /// The runtime's parameters, after checking every range (an out-of-range value is
    /// `IllegalArgumentException` naming the field).
    pub fn to_generate_params(&self) -> Result<GenerateParams, BridgeError> {
        let p = self;
        if !(p.temperature.is_finite() && p.temperature >= 0.0) {
            return Err(bad(format!("temperature must be a finite number >= 0, not {}", p.temperature)));
        }
        if !(0.0..=1.0).contains(&p.top_p) {
            return Err(bad(format!("topP must be between 0 and 1, not {}", p.top_p)));
        }
        let top_k = usize::try_from(p.top_k).map_err(|_| bad(format!("topK must be >= 0, not {}", p.top_k)))?;
        for (name, v) in [("presencePenalty", p.presence_penalty), ("frequencyPenalty", p.frequency_penalty)] {
            if !v.is_finite() {
                return Err(bad(format!("{name} must be a finite number, not {v}")));
            }
        }
        if !(0.0..=1.0).contains(&p.penalty_decay) {
            return Err(bad(format!("penaltyDecay must be between 0 and 1, not {}", p.penalty_decay)));
        }
        let max_tokens =
            usize::try_from(p.max_tokens).map_err(|_| bad(format!("maxTokens must be >= 0, not {}", p.max_tokens)))?;
        let end_of_text = match p.end_of_text {
            0 => EndOfText::Stop,
            1 => EndOfText::Ban,
            2 => EndOfText::Allow,
            other => return Err(bad(format!("endOfText ordinal {other} is not 0 (STOP), 1 (BAN) or 2 (ALLOW)"))),
        };
        Ok(GenerateParams {
            sampler: SamplerParams {
                temperature: p.temperature,
                top_p: p.top_p,
                top_k,
                alpha_frequency: p.frequency_penalty,
                alpha_presence: p.presence_penalty,
                alpha_decay: p.penalty_decay,
            },
            max_tokens,
            // Java has no unsigned long: the bits are the seed.
            seed: p.seed.map(|s| s as u64),
            stop_strings: p.stop_strings.clone(),
            end_of_text,
            ..GenerateParams::default()
        })
    }
}

/// Stop-reason codes shared with `org.rwkv7.GenerateResult` (keep them in sync).
pub mod stop_code {
    /// `maxTokens` tokens were generated.
    pub const MAX_TOKENS: i32 = 0;
    /// Token 0 (end of text) was sampled.
    pub const END_OF_TEXT: i32 = 1;
    /// A stop token was sampled (detail: the token).
    pub const STOP_TOKEN: i32 = 2;
    /// A stop string appeared (detail: its index).
    pub const STOP_STRING: i32 = 3;
    /// `cancel()`, `close()`, or the callback returning `false`.
    pub const CANCELLED: i32 = 4;
}

/// `[stop code, tokens generated, detail]` for `org.rwkv7.GenerateResult`.
pub fn encode_outcome(o: &GenerateOutcome) -> [i32; 3] {
    let (code, detail) = match o.stop {
        StopReason::MaxTokens => (stop_code::MAX_TOKENS, -1),
        StopReason::EndOfText => (stop_code::END_OF_TEXT, -1),
        StopReason::StopToken(t) => (stop_code::STOP_TOKEN, i32::try_from(t).unwrap_or(i32::MAX)),
        StopReason::StopString(i) => (stop_code::STOP_STRING, i32::try_from(i).unwrap_or(i32::MAX)),
        StopReason::Cancelled => (stop_code::CANCELLED, -1),
    };
    [code, i32::try_from(o.tokens).unwrap_or(i32::MAX), detail]
}

/// Generates on the calling thread, passing each piece of text to `on_piece`.
pub fn session_generate(
    handle: i64,
    params: &JavaParams,
    on_piece: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerateOutcome, BridgeError> {
    let params = params.to_generate_params()?;
    with_session(handle, |s| Ok(s.generate(&params, on_piece)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> JavaParams {
        JavaParams {
            temperature: 1.0,
            top_p: 0.85,
            top_k: 0,
            presence_penalty: 0.2,
            frequency_penalty: 0.2,
            penalty_decay: 0.996,
            max_tokens: 16,
            seed: Some(-1),
            stop_strings: vec!["\n\n".into()],
            end_of_text: 0,
        }
    }

    #[test]
    fn params_convert() {
        let g = params().to_generate_params().unwrap();
        assert_eq!(g.max_tokens, 16);
        assert_eq!(g.seed, Some(u64::MAX));
        assert_eq!(g.sampler, SamplerParams::default());
        assert_eq!(g.stop_strings, vec!["\n\n".to_string()]);
        assert_eq!(g.end_of_text, EndOfText::Stop);
        let ban = JavaParams { end_of_text: 1, ..params() }.to_generate_params().unwrap();
        assert_eq!(ban.end_of_text, EndOfText::Ban);
    }

    #[test]
    fn params_out_of_range_name_the_field() {
        type Edit = fn(&mut JavaParams);
        let cases: [(Edit, &str); 8] = [
            (|p| p.temperature = -1.0, "temperature"),
            (|p| p.temperature = f64::NAN, "temperature"),
            (|p| p.top_p = 1.5, "topP"),
            (|p| p.top_k = -2, "topK"),
            (|p| p.presence_penalty = f64::INFINITY, "presencePenalty"),
            (|p| p.penalty_decay = 2.0, "penaltyDecay"),
            (|p| p.max_tokens = -1, "maxTokens"),
            (|p| p.end_of_text = 3, "endOfText"),
        ];
        for (set, field) in cases {
            let mut p = params();
            set(&mut p);
            let e = p.to_generate_params().expect_err("rejected");
            assert_eq!(e.exception().0, Kind::IllegalArgument);
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn negative_token_ids_are_rejected() {
        assert_eq!(token_ids(&[0, 5]).unwrap(), vec![0, 5]);
        assert_eq!(token_ids(&[1, -3]).err().unwrap().exception().0, Kind::IllegalArgument);
    }

    #[test]
    fn outcomes_encode() {
        let o = |stop| encode_outcome(&GenerateOutcome { tokens: 7, stop });
        assert_eq!(o(StopReason::MaxTokens), [stop_code::MAX_TOKENS, 7, -1]);
        assert_eq!(o(StopReason::StopString(2)), [stop_code::STOP_STRING, 7, 2]);
        assert_eq!(o(StopReason::StopToken(9)), [stop_code::STOP_TOKEN, 7, 9]);
        assert_eq!(o(StopReason::Cancelled), [stop_code::CANCELLED, 7, -1]);
        assert_eq!(o(StopReason::EndOfText), [stop_code::END_OF_TEXT, 7, -1]);
    }

    #[test]
    fn closed_and_invalid_handles_are_illegal_state() {
        for e in [model_close(0).err(), session_cancel(12345678).err(), session_new(-5).err()] {
            assert_eq!(e.expect("fails").exception().0, Kind::IllegalState);
        }
    }

    #[test]
    fn missing_and_corrupt_model_files() {
        let e = model_open("/nonexistent/dir/model.gguf").err().unwrap();
        assert_eq!(e.exception().0, Kind::FileNotFound);
        let dir = std::env::temp_dir().join(format!("rwkv7-android-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("corrupt.gguf");
        std::fs::write(&bad, b"GGUF\x03\x00\x00\x00 this is not a model").unwrap();
        let e = model_open(bad.to_str().unwrap()).err().unwrap();
        assert_eq!(e.exception().0, Kind::Rwkv);
        assert!(e.to_string().contains("corrupt.gguf"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
