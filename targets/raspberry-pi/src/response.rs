//! Response bodies in OpenAI's shapes: whole completions, stream chunks, usage.

use serde_json::{Value, json};

use crate::request::Endpoint;
use crate::worker::Finish;

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: usize,
    /// Prompt tokens whose state came from the prefix cache.
    pub cached: usize,
    /// Generated tokens.
    pub completion: usize,
}

impl Usage {
    /// The `usage` object.
    pub fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        })
    }
}

fn finish_name(finish: Option<Finish>) -> Value {
    match finish {
        None => Value::Null,
        Some(Finish::Stop) => "stop".into(),
        Some(Finish::Length) => "length".into(),
    }
}

/// What every body of one request shares.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// `cmpl-…` or `chatcmpl-…`.
    pub id: String,
    /// Unix time of the request.
    pub created: u64,
    /// The model id.
    pub model: String,
    /// The endpoint.
    pub endpoint: Endpoint,
}

impl Envelope {
    fn with(&self, object: &str, choices: Value) -> Value {
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices})
    }

    /// The whole answer of a non-streamed request.
    pub fn complete(&self, text: &str, finish: Finish, usage: Usage) -> Value {
        let mut body = match self.endpoint {
            Endpoint::Completions => self.with(
                "text_completion",
                json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_name(Some(finish))}]),
            ),
            Endpoint::Chat => self.with(
                "chat.completion",
                json!([{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": null,
                    "finish_reason": finish_name(Some(finish)),
                }]),
            ),
        };
        body["usage"] = usage.json();
        body
    }

    /// A stream chunk carrying `text` (the first chat chunk also names the role) or, with
    /// `finish`, the last chunk of the choice.
    pub fn chunk(&self, text: &str, first: bool, finish: Option<Finish>) -> Value {
        match self.endpoint {
            Endpoint::Completions => self.with(
                "text_completion",
                json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_name(finish)}]),
            ),
            Endpoint::Chat => {
                let delta = match (first, finish) {
                    (true, _) => json!({"role": "assistant", "content": text}),
                    (false, None) => json!({"content": text}),
                    (false, Some(_)) => json!({}),
                };
                self.with(
                    "chat.completion.chunk",
                    json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_name(finish)}]),
                )
            }
        }
    }

    /// The usage chunk a stream ends with when `stream_options.include_usage` is set.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let object = match self.endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion.chunk",
        };
        let mut body = self.with(object, json!([]));
        body["usage"] = usage.json();
        body
    }
}

/// Drops the space the model writes after `Assistant:` (and any other leading
/// whitespace) from a chat reply, piece by piece.
#[derive(Debug, Default)]
pub struct TrimStart {
    started: bool,
}

impl TrimStart {
    /// `piece` without the reply's leading whitespace.
    pub fn apply<'a>(&mut self, piece: &'a str) -> &'a str {
        if self.started {
            return piece;
        }
        let rest = piece.trim_start();
        self.started = !rest.is_empty();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::TrimStart;

    #[test]
    fn only_the_leading_whitespace_of_the_reply_goes() {
        let mut t = TrimStart::default();
        let pieces: Vec<&str> = [" ", " Hi", " there ", "\n"].iter().map(|p| t.apply(p)).collect();
        assert_eq!(pieces, ["", "Hi", " there ", "\n"]);
    }
}
