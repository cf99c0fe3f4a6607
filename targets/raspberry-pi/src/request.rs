//! Request bodies of `/v1/completions` and `/v1/chat/completions`, checked and turned into
//! what the worker runs. Unknown fields are ignored, as OpenAI clients send many.

use rwkv7::chat::{self, Role, TURN_END};
use rwkv7::{GenerateParams, MAX_STOP_STRING, SamplerParams};
use rwkv7_cli::common::{CHAT_DEFAULTS, Defaults, GENERATE_DEFAULTS};
use serde::Deserialize;

use crate::error::ApiError;

/// A prompt: one text, or a list holding one text.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Prompt {
    /// One text.
    One(String),
    /// A batch (only batches of one are served).
    Many(Vec<String>),
}

/// `stop`: one string or a list.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Message content: text, or a list of parts of which the `text` ones count.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type":"text","text":…}`).
    Parts(Vec<Part>),
}

/// One content part.
#[derive(Deserialize, Debug)]
pub struct Part {
    /// The part type; only `text` is served.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its text.
    #[serde(default)]
    pub text: Option<String>,
}

/// One chat message.
#[derive(Deserialize, Debug)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: Option<Content>,
}

/// `stream_options`.
#[derive(Deserialize, Debug, Default)]
pub struct StreamOptions {
    /// Send a last chunk with the token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields both endpoints read.
#[derive(Deserialize, Debug)]
pub struct Body {
    /// The model asked for (must be the one served, when given).
    pub model: Option<String>,
    /// `/v1/completions`: the text to continue.
    pub prompt: Option<Prompt>,
    /// `/v1/chat/completions`: the conversation.
    pub messages: Option<Vec<Message>>,
    /// Longest reply, in tokens.
    pub max_tokens: Option<u64>,
    /// Newer name of `max_tokens` in the chat API.
    pub max_completion_tokens: Option<u64>,
    /// Temperature, 0 to 2; 0 is greedy.
    pub temperature: Option<f64>,
    /// Nucleus mass, 0 to 1.
    pub top_p: Option<f64>,
    /// Keep only the K most probable tokens; 0 keeps all.
    pub top_k: Option<u64>,
    /// Presence penalty, -2 to 2.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, -2 to 2.
    pub frequency_penalty: Option<f64>,
    /// Decay of the occurrence counts per token, 0 to 1 (an RWKV extension).
    pub penalty_decay: Option<f64>,
    /// Seed of the random generator.
    pub seed: Option<u64>,
    /// Stop strings (up to 4).
    pub stop: Option<Stop>,
    /// Number of choices (only 1).
    pub n: Option<u64>,
    /// Stream the reply as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// Which endpoint a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/completions`.
    Completions,
    /// `/v1/chat/completions`.
    Chat,
}

/// A checked request.
#[derive(Debug)]
pub struct Plan {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The prompt as pieces tokenized one by one (one piece for a completion).
    pub pieces: Vec<String>,
    /// How to generate.
    pub params: GenerateParams,
    /// Stream the answer.
    pub stream: bool,
    /// Send the token counts at the end of a stream.
    pub include_usage: bool,
}

/// Server-side limits a request is checked against.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// The most tokens one request may generate.
    pub max_tokens: usize,
    /// `max_tokens` when the request gives none.
    pub default_max_tokens: usize,
}

/// The most stop strings a request may give (as OpenAI).
pub const MAX_STOPS: usize = 4;

fn in_range(name: &str, value: Option<f64>, lo: f64, hi: f64, default: f64) -> Result<f64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::param(name, format_args!("is {v}; it must be between {lo} and {hi}"))),
    }
}

fn sampler(body: &Body, d: &Defaults) -> Result<SamplerParams, ApiError> {
    let top_k = match body.top_k {
        None => 0,
        Some(k) => usize::try_from(k)
            .ok()
            .filter(|&k| k <= 1 << 20)
            .ok_or_else(|| ApiError::param("top_k", format_args!("is {k}; it must be at most {}", 1 << 20)))?,
    };
    Ok(SamplerParams {
        temperature: in_range("temperature", body.temperature, 0.0, 2.0, d.temperature)?,
        top_p: in_range("top_p", body.top_p, 0.0, 1.0, d.top_p)?,
        top_k,
        alpha_presence: in_range("presence_penalty", body.presence_penalty, -2.0, 2.0, d.presence)?,
        alpha_frequency: in_range("frequency_penalty", body.frequency_penalty, -2.0, 2.0, d.frequency)?,
        alpha_decay: in_range("penalty_decay", body.penalty_decay, 0.0, 1.0, 0.996)?,
    })
}

fn stops(body: &Body) -> Result<Vec<String>, ApiError> {
    let stops = match &body.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stops.len() > MAX_STOPS {
        return Err(ApiError::param(
            "stop",
            format_args!("has {} strings; at most {MAX_STOPS} are allowed", stops.len()),
        ));
    }
    for s in &stops {
        if s.is_empty() || s.len() > MAX_STOP_STRING {
            return Err(ApiError::param("stop", format_args!("strings must be 1 to {MAX_STOP_STRING} bytes long")));
        }
    }
    Ok(stops)
}

fn max_tokens(body: &Body, limits: &RequestLimits) -> Result<usize, ApiError> {
    let (name, value) = match (body.max_completion_tokens, body.max_tokens) {
        (Some(v), _) => ("max_completion_tokens", v),
        (None, Some(v)) => ("max_tokens", v),
        (None, None) => return Ok(limits.default_max_tokens.min(limits.max_tokens)),
    };
    match usize::try_from(value) {
        Ok(v) if (1..=limits.max_tokens).contains(&v) => Ok(v),
        _ => Err(ApiError::param(name, format_args!("is {value}; this server allows 1 to {}", limits.max_tokens))),
    }
}

fn completion_prompt(prompt: Option<&Prompt>) -> Result<String, ApiError> {
    match prompt {
        Some(Prompt::One(p)) => Ok(p.clone()),
        Some(Prompt::Many(v)) if v.len() == 1 => Ok(v[0].clone()),
        Some(Prompt::Many(_)) => Err(ApiError::param("prompt", "must be one string (batches are not served)")),
        None => Err(ApiError::invalid("`prompt` is required")),
    }
}

fn message_text(content: Option<&Content>) -> Result<String, ApiError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::invalid(format!("content parts of type `{kind}` are not served")));
                    }
                }
            }
            Ok(text)
        }
    }
}

fn chat_pieces(messages: Option<&[Message]>) -> Result<Vec<String>, ApiError> {
    let messages = messages.ok_or_else(|| ApiError::invalid("`messages` is required"))?;
    if messages.is_empty() {
        return Err(ApiError::param("messages", "is empty"));
    }
    let mut turns = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = Role::parse(&m.role).ok_or_else(|| {
            ApiError::param(
                &format!("messages[{i}].role"),
                format_args!("`{}` is not system, user or assistant", m.role),
            )
        })?;
        turns.push((role, message_text(m.content.as_ref())?));
    }
    Ok(chat::conversation(turns.iter().map(|(r, t)| (*r, t.as_str()))))
}

impl Plan {
    /// Checks `body` for `endpoint`.
    pub fn new(endpoint: Endpoint, body: &Body, limits: &RequestLimits) -> Result<Plan, ApiError> {
        if let Some(n) = body.n.filter(|&n| n != 1) {
            return Err(ApiError::param("n", format_args!("is {n}; only 1 choice is served")));
        }
        let (pieces, defaults, mut stop_strings) = match endpoint {
            Endpoint::Completions => (vec![completion_prompt(body.prompt.as_ref())?], &GENERATE_DEFAULTS, Vec::new()),
            Endpoint::Chat => (chat_pieces(body.messages.as_deref())?, &CHAT_DEFAULTS, vec![TURN_END.to_string()]),
        };
        if pieces.iter().all(String::is_empty) {
            return Err(ApiError::param("prompt", "is empty"));
        }
        stop_strings.extend(stops(body)?);
        let params = GenerateParams {
            sampler: sampler(body, defaults)?,
            max_tokens: max_tokens(body, limits)?,
            seed: body.seed,
            stop_strings,
            ..Default::default()
        };
        Ok(Plan {
            endpoint,
            pieces,
            params,
            stream: body.stream,
            include_usage: body.stream_options.as_ref().is_some_and(|o| o.include_usage),
        })
    }
}
