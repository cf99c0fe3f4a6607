//! The HTTP server (axum): OpenAI-compatible `/v1/completions` and `/v1/chat/completions`
//! (whole or streamed as server-sent events), `/v1/models` and `/health`. Requests go to
//! the inference worker through its bounded queue; a full queue is answered with 503.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use futures_util::stream;
use rwkv7::{CancelHandle, LoadedModel};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::error::ApiError;
use crate::request::{self, Endpoint, Plan, RequestLimits};
use crate::response::{Envelope, TrimStart, Usage};
use crate::worker::{self, Event, Job, Queue, SubmitError, WorkerConfig};

/// The response header that tells how many prompt tokens came from the prefix cache
/// (also in `usage.prompt_tokens_details.cached_tokens`).
pub const CACHED_TOKENS_HEADER: &str = "x-cached-tokens";

/// How the server runs.
#[derive(Clone)]
pub struct ServerConfig {
    /// The model's id in `/v1/models` and in answers; requests naming another get 404.
    pub model_id: String,
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// Limits on generation.
    pub limits: RequestLimits,
    /// The worker's queue, cache and session options.
    pub worker: WorkerConfig,
}

#[derive(Clone)]
struct App {
    queue: Queue,
    model_id: Arc<str>,
    body_limit: usize,
    limits: RequestLimits,
    next_id: Arc<AtomicU64>,
}

/// Serves on `listener` until `shutdown` completes, then lets the requests in flight
/// finish and the worker drain its queue.
pub async fn serve(
    listener: TcpListener,
    model: Arc<LoadedModel>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (queue, worker) = worker::spawn(model, config.worker)?;
    let app = App {
        queue,
        model_id: config.model_id.into(),
        body_limit: config.body_limit,
        limits: config.limits,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await?;
    // Every queue handle went with the router: the worker ends after its last job.
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(std::io::Error::other)?
        .map_err(|_| std::io::Error::other("the inference worker panicked"))
}

fn router(app: App) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(not_found)
        .with_state(app)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(app): State<App>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": &*app.model_id, "object": "model", "created": unix_time(), "owned_by": "rwkv7-pi"}],
    }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint", "not_found")
}

async fn completions(State(app): State<App>, body: Body) -> Response {
    answer(app, Endpoint::Completions, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn chat_completions(State(app): State<App>, body: Body) -> Response {
    answer(app, Endpoint::Chat, body).await.unwrap_or_else(IntoResponse::into_response)
}

fn unix_time() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Cancels the job when the request goes away (answered, or the client disconnected).
struct CancelOnDrop(CancelHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn answer(app: App, endpoint: Endpoint, body: Body) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, app.body_limit).await.map_err(|_| ApiError::too_large(app.body_limit))?;
    let body: request::Body = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON for this endpoint: {e}")))?;
    if let Some(model) = body.model.as_deref().filter(|m| *m != &*app.model_id) {
        return Err(ApiError::not_found(
            format!("model `{model}` is not served here (this server serves `{}`)", app.model_id),
            "model_not_found",
        ));
    }
    let mut plan = Plan::new(endpoint, &body, &app.limits)?;
    plan.params.seed.get_or_insert_with(rwkv7_cli::common::clock_seed);

    let (events, mut rx) = unbounded_channel();
    let cancel = CancelHandle::default();
    let job = Job { pieces: plan.pieces, params: plan.params, events, cancel: cancel.clone() };
    app.queue.submit(job).map_err(|e| match e {
        SubmitError::Full => ApiError::unavailable("the server is busy (its request queue is full); try again later"),
        SubmitError::Closed => ApiError::unavailable("the server is shutting down"),
    })?;
    let guard = CancelOnDrop(cancel);
    let usage = match rx.recv().await {
        Some(Event::Started { prompt_tokens, cached_tokens }) => {
            Usage { prompt: prompt_tokens, cached: cached_tokens, completion: 0 }
        }
        other => return Err(failure(other)),
    };
    let prefix = if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" };
    let envelope = Envelope {
        id: format!("{prefix}-{}-{}", unix_time(), app.next_id.fetch_add(1, Ordering::Relaxed)),
        created: unix_time(),
        model: app.model_id.to_string(),
        endpoint,
    };
    let trim = (endpoint == Endpoint::Chat).then(TrimStart::default);
    let mut response = if plan.stream {
        let stream =
            Streamed { rx, envelope, usage, include_usage: plan.include_usage, trim, first: true, done: false };
        streamed(stream, guard).into_response()
    } else {
        whole(rx, envelope, usage, trim).await?.into_response()
    };
    response.headers_mut().insert(CACHED_TOKENS_HEADER, HeaderValue::from(usage.cached));
    Ok(response)
}

/// The error for an event that should not have come (or the channel's end).
fn failure(event: Option<Event>) -> ApiError {
    match event {
        Some(Event::Failed { client: true, message }) => ApiError::invalid(message),
        Some(Event::Failed { client: false, message }) => ApiError::internal(message),
        _ => ApiError::internal("the inference worker stopped"),
    }
}

async fn whole(
    mut rx: UnboundedReceiver<Event>,
    envelope: Envelope,
    mut usage: Usage,
    mut trim: Option<TrimStart>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut text = String::new();
    loop {
        match rx.recv().await {
            Some(Event::Text(piece)) => text.push_str(trim.as_mut().map_or(&piece, |t| t.apply(&piece))),
            Some(Event::Finished { completion_tokens, finish }) => {
                usage.completion = completion_tokens;
                return Ok(Json(envelope.complete(&text, finish, usage)));
            }
            other => return Err(failure(other)),
        }
    }
}

struct Streamed {
    rx: UnboundedReceiver<Event>,
    envelope: Envelope,
    usage: Usage,
    include_usage: bool,
    trim: Option<TrimStart>,
    first: bool,
    done: bool,
}

impl Streamed {
    /// The server-sent events for the next worker event (none for text that trims away).
    async fn next_events(&mut self) -> Vec<SseEvent> {
        let data = |value: serde_json::Value| SseEvent::default().data(value.to_string());
        match self.rx.recv().await {
            Some(Event::Text(piece)) => {
                let piece = self.trim.as_mut().map_or(piece.as_str(), |t| t.apply(&piece));
                if piece.is_empty() {
                    return Vec::new();
                }
                let chunk = self.envelope.chunk(piece, self.first, None);
                self.first = false;
                vec![data(chunk)]
            }
            Some(Event::Finished { completion_tokens, finish }) => {
                self.done = true;
                self.usage.completion = completion_tokens;
                let mut out = vec![data(self.envelope.chunk("", self.first, Some(finish)))];
                if self.include_usage {
                    out.push(data(self.envelope.usage_chunk(self.usage)));
                }
                out.push(SseEvent::default().data("[DONE]"));
                out
            }
            other => {
                self.done = true;
                vec![data(failure(other).body()), SseEvent::default().data("[DONE]")]
            }
        }
    }
}

fn streamed(
    state: Streamed,
    guard: CancelOnDrop,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let events = stream::unfold((state, guard), |(mut state, guard)| async move {
        if state.done {
            return None;
        }
        let batch = state.next_events().await;
        Some((stream::iter(batch.into_iter().map(Ok)), (state, guard)))
    });
    Sse::new(events.flatten())
}
