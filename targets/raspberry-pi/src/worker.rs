//! The inference worker: one thread owns the model's session and the prefix cache and runs
//! jobs from a bounded queue, one at a time, sending what it produces back over a channel.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rwkv7::{CancelHandle, GenerateParams, LoadedModel, Session, SessionOptions, StopReason};
use tokio::sync::mpsc::UnboundedSender;

use crate::cache::PrefixCache;

/// Why generation ended, in OpenAI's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A stop string, end of text or cancellation.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// What a job sends back, in order: `Started`, any number of `Text`, then `Finished`; or
/// `Failed` at any point.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The prompt was fed: its token count and how many of them came from the cache.
    Started {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Prompt tokens whose state came from the prefix cache.
        cached_tokens: usize,
    },
    /// Generated text.
    Text(String),
    /// Done.
    Finished {
        /// Tokens generated.
        completion_tokens: usize,
        /// Why it ended.
        finish: Finish,
    },
    /// The job failed; `client` when the request was at fault (e.g. tokens the model
    /// cannot take).
    Failed {
        /// Whether it is the client's fault.
        client: bool,
        /// What went wrong.
        message: String,
    },
}

/// One request for the worker.
pub struct Job {
    /// The prompt as pieces, each tokenized on its own.
    pub pieces: Vec<String>,
    /// How to generate.
    pub params: GenerateParams,
    /// Where the events go; the job is abandoned when nobody listens any more.
    pub events: UnboundedSender<Event>,
    /// Stops the job's prefill or generation.
    pub cancel: CancelHandle,
}

/// How the worker runs.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Jobs that may wait in the queue.
    pub queue: usize,
    /// Prefix-cache entries.
    pub cache_entries: usize,
    /// Prefix-cache bytes.
    pub cache_bytes: usize,
    /// Session options (kernels, prefill chunk, thread pool).
    pub session: SessionOptions,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full.
    Full,
    /// The worker has stopped.
    Closed,
}

/// The handle to submit jobs with; cloneable.
#[derive(Clone)]
pub struct Queue(SyncSender<Job>);

impl Queue {
    /// Queues `job`, or says why not.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.0.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Closed,
        })
    }
}

/// Starts the worker thread. It ends when every [`Queue`] clone is dropped and the queued
/// jobs are done; join the handle to wait for that.
pub fn spawn(model: Arc<LoadedModel>, config: WorkerConfig) -> std::io::Result<(Queue, JoinHandle<()>)> {
    let (sender, receiver) = sync_channel(config.queue);
    let handle = std::thread::Builder::new().name("rwkv7-worker".into()).spawn(move || run(model, config, receiver))?;
    Ok((Queue(sender), handle))
}

fn run(model: Arc<LoadedModel>, config: WorkerConfig, jobs: Receiver<Job>) {
    let mut session = Session::with_options(Arc::clone(&model), config.session.clone());
    let mut cache = PrefixCache::new(config.cache_entries, config.cache_bytes);
    for job in jobs {
        if job.events.is_closed() {
            continue;
        }
        let events = job.events.clone();
        // A bug must not take the server down: the request fails, the state is rebuilt.
        if catch_unwind(AssertUnwindSafe(|| run_job(&mut session, &mut cache, job))).is_err() {
            cache.clear();
            session = Session::with_options(Arc::clone(&model), config.session.clone());
            let _ = events.send(Event::Failed { client: false, message: "internal error while generating".into() });
        }
    }
}

fn run_job(session: &mut Session<Arc<LoadedModel>>, cache: &mut PrefixCache, job: Job) {
    let Job { pieces, params, events, cancel } = job;
    let fail = |client: bool, message: String| {
        let _ = events.send(Event::Failed { client, message });
    };
    let mut tokens = Vec::new();
    for piece in &pieces {
        match session.tokenize(piece) {
            Ok(t) => tokens.extend(t),
            Err(e) => return fail(true, e.to_string()),
        }
    }
    if tokens.is_empty() {
        return fail(true, "the prompt has no tokens".into());
    }
    let cached = match cache.longest_prefix(&tokens) {
        Some((len, state)) if session.load_state_bytes(state, "prefix cache").is_ok() => len,
        _ => {
            session.reset();
            0
        }
    };
    session.set_cancel_handle(cancel);
    match session.prefill_tokens(&tokens[cached..]) {
        Ok(()) => {}
        Err(rwkv7::Error::Cancelled) => return,
        Err(e) => return fail(true, e.to_string()),
    }
    cache.insert(tokens.clone(), session.state_bytes());
    if events.send(Event::Started { prompt_tokens: tokens.len(), cached_tokens: cached }).is_err() {
        return;
    }
    session.clear_penalties();
    let outcome = session.generate(&params, |piece| match events.send(Event::Text(piece.to_string())) {
        Ok(()) => ControlFlow::Continue(()),
        Err(_) => ControlFlow::Break(()),
    });
    match outcome {
        Ok(o) => {
            let finish = if o.stop == StopReason::MaxTokens { Finish::Length } else { Finish::Stop };
            let _ = events.send(Event::Finished { completion_tokens: o.tokens, finish });
        }
        Err(e) => fail(false, e.to_string()),
    }
}
