//! The HTTP server with a real client on loopback, on the bundled demo model.

mod common;

use std::ops::ControlFlow;

use common::*;
use rwkv7::chat::{self, Role, TURN_END};
use rwkv7::{GenerateParams, SamplerParams, Session};
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
struct Greedy {
    prompt: String,
    text: String,
}

fn golden() -> Greedy {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/demo/greedy.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Greedy sampling as the CLI's greedy tests ask for it: temperature 0, top-p 0, no penalties.
fn greedy(mut body: Value) -> Value {
    for (k, v) in [("temperature", 0.0), ("top_p", 0.0), ("presence_penalty", 0.0), ("frequency_penalty", 0.0)] {
        body[k] = json!(v);
    }
    body
}

/// What a session fed `pieces` (one by one) generates greedily.
fn session_greedy(pieces: &[String], max_tokens: usize, stop: &[&str]) -> String {
    let model = demo_model();
    let mut session = Session::new(&*model);
    for piece in pieces {
        session.prefill_text(piece).unwrap();
    }
    let params = GenerateParams {
        sampler: SamplerParams::GREEDY,
        max_tokens,
        stop_strings: stop.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let mut text = String::new();
    session
        .generate(&params, |piece| {
            text.push_str(piece);
            ControlFlow::Continue(())
        })
        .unwrap();
    text
}

const N: usize = 24;

#[test]
fn streamed_and_whole_completions_equal_the_greedy_output() {
    let golden = golden();
    let expected = session_greedy(std::slice::from_ref(&golden.prompt), N, &[]);
    assert!(!expected.is_empty());
    // The CLI's greedy output of this prompt is the official implementation's (tools/rwkv7-cli/tests/demo_model.rs).
    assert!(golden.text.starts_with(&expected), "{expected:?} is not a prefix of {:?}", golden.text);

    let server = Server::start(config());
    let body = greedy(json!({"model": "demo", "prompt": golden.prompt, "max_tokens": N}));
    let whole = post(&server.url("/v1/completions"), &body);
    assert_eq!(whole.status, 200, "{}", whole.body);
    let v = whole.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], "demo");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("cmpl-")));
    assert!(v["created"].is_u64());
    assert_eq!(v["choices"][0]["text"], expected.as_str());
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], N);
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(v["usage"]["total_tokens"].as_u64(), Some(prompt_tokens + N as u64));

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    stream_body["stream_options"] = json!({"include_usage": true});
    let streamed = post_stream(&server.url("/v1/completions"), &stream_body);
    assert_eq!(streamed.status, 200);
    assert!(streamed.done, "the stream ends with [DONE]");
    assert_eq!(streamed.text(), expected);
    assert_eq!(streamed.finish_reason(), Some("length"));
    let usage = &streamed.chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], N);
    // The same prompt again: its whole state came from the prefix cache.
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"].as_u64(), Some(prompt_tokens));
    server.stop();
}

#[test]
fn a_chat_that_extends_the_previous_one_hits_the_prefix_cache() {
    let server = Server::start(config());
    let url = server.url("/v1/chat/completions");
    let first =
        post(&url, &greedy(json!({"messages": [{"role": "user", "content": "Who is Mr. Darcy?"}], "max_tokens": 12})));
    assert_eq!(first.status, 200, "{}", first.body);
    let first_json = first.json();
    assert_eq!(first_json["object"], "chat.completion");
    assert_eq!(first_json["choices"][0]["message"]["role"], "assistant");
    assert_eq!(first_json["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(first.cached_header, Some(0));
    let reply = first_json["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let first_prompt_tokens = first_json["usage"]["prompt_tokens"].as_u64().unwrap();

    let turns = [(Role::User, "Who is Mr. Darcy?"), (Role::Assistant, reply.as_str()), (Role::User, "And Elizabeth?")];
    let messages: Vec<Value> = turns
        .iter()
        .map(|(role, text)| {
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::System => "system",
            };
            json!({"role": role, "content": text})
        })
        .collect();
    let second_body = greedy(json!({"messages": messages, "max_tokens": 12, "stream": true}));
    let second = post_stream(&url, &second_body);
    assert_eq!(second.status, 200);
    assert!(second.done);
    // The first conversation's prompt was not fed again.
    assert_eq!(second.cached_header, Some(first_prompt_tokens as usize));
    assert_eq!(second.chunks[0]["choices"][0]["delta"]["role"], "assistant");

    // And the reply is what a fresh session fed the whole conversation writes.
    let pieces = chat::conversation(turns);
    let expected = session_greedy(&pieces, 12, &[TURN_END]);
    assert_eq!(second.text(), expected.trim_start());

    let whole = post(&url, &{
        let mut b = second_body.clone();
        b["stream"] = json!(false);
        b
    });
    let whole_json = whole.json();
    assert_eq!(whole_json["choices"][0]["message"]["content"].as_str(), Some(expected.trim_start()));
    assert_eq!(whole_json["usage"]["prompt_tokens_details"]["cached_tokens"], whole_json["usage"]["prompt_tokens"]);
    server.stop();
}

#[test]
fn eight_concurrent_clients_all_complete() {
    let server = Server::start(config());
    let url = server.url("/v1/completions");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let body =
                    json!({"prompt": format!("Chapter {i}. "), "max_tokens": 6, "seed": i, "stream": i % 2 == 0});
                if i % 2 == 0 {
                    let s = post_stream(&url, &body);
                    assert_eq!(s.status, 200);
                    assert!(s.done);
                    s.finish_reason().map(str::to_string)
                } else {
                    let a = post(&url, &body);
                    assert_eq!(a.status, 200, "{}", a.body);
                    a.json()["choices"][0]["finish_reason"].as_str().map(str::to_string)
                }
            })
        })
        .collect();
    for h in handles {
        let finish = h.join().expect("a client");
        assert!(matches!(finish.as_deref(), Some("length" | "stop")), "{finish:?}");
    }
    server.stop();
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let server = Server::start(config());
    let url = server.url("/v1/completions");
    let chat_url = server.url("/v1/chat/completions");
    assert_json_error(&post_raw(&url, "{\"prompt\": \"x\""), 400);
    assert_json_error(&post_raw(&url, "not json at all"), 400);
    assert_json_error(&post_raw(&url, "[1, 2]"), 400);
    let big = format!("{{\"prompt\": \"{}\"}}", "a".repeat(64 * 1024));
    assert_json_error(&post_raw(&url, &big), 413);
    let unknown = post(&url, &json!({"model": "gpt-9", "prompt": "x"}));
    assert_json_error(&unknown, 404);
    assert_eq!(unknown.json()["error"]["code"], "model_not_found");
    for absurd in [
        json!({"prompt": "x", "max_tokens": 1_000_000_000u64}),
        json!({"prompt": "x", "max_tokens": 0}),
        json!({"prompt": "x", "max_tokens": -5}),
        json!({"prompt": "x", "max_tokens": 1e300}),
        json!({"prompt": "x", "temperature": 1e9}),
        json!({"prompt": "x", "temperature": -1}),
        json!({"prompt": "x", "top_p": 1.5}),
        json!({"prompt": "x", "top_k": 1u64 << 40}),
        json!({"prompt": "x", "presence_penalty": 100}),
        json!({"prompt": "x", "frequency_penalty": "high"}),
        json!({"prompt": "x", "n": 4}),
        json!({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
        json!({"prompt": "x", "stop": ""}),
        json!({"prompt": "x", "stop": "s".repeat(200)}),
        json!({"prompt": ["a", "b"]}),
        json!({"prompt": ""}),
        json!({"prompt": 42}),
        json!({}),
    ] {
        assert_json_error(&post(&url, &absurd), 400);
    }
    for absurd in [
        json!({"messages": []}),
        json!({"messages": [{"role": "wizard", "content": "x"}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        json!({"messages": "hi"}),
        json!({"prompt": "x"}),
    ] {
        assert_json_error(&post(&chat_url, &absurd), 400);
    }
    assert_json_error(&get(&server.url("/v2/nothing")), 404);

    // Still serving.
    let ok = post(&url, &json!({"prompt": "Emma", "max_tokens": 3}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["usage"]["completion_tokens"], 3);
    let health = get(&server.url("/health"));
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")));
    let models = get(&server.url("/v1/models")).json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "demo");
    server.stop();
}

#[test]
fn a_full_queue_answers_503_and_a_dropped_stream_is_cancelled() {
    let mut cfg = config();
    cfg.worker.queue = 1;
    cfg.limits.max_tokens = 1_000_000;
    let server = Server::start(cfg);
    let url = server.url("/v1/completions");
    // A long generation occupies the worker; its first chunk shows it is running.
    let long = greedy(json!({"prompt": golden().prompt, "max_tokens": 1_000_000, "stream": true}));
    let res = client().post(&url).send(long.to_string()).unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut events = Events::new(res.into_body().into_reader());
    assert!(events.next_data().is_some());
    // Two more: one waits in the one-place queue, the other is turned away.
    let others: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || post(&url, &json!({"prompt": "Anne", "max_tokens": 2})))
        })
        .collect();
    // Wait until one of them has been turned away, then hang up on the long stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while others.iter().all(|h| !h.is_finished()) {
        assert!(std::time::Instant::now() < deadline, "neither request was answered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(events);
    let mut statuses: Vec<u16> = others
        .into_iter()
        .map(|h| {
            let a = h.join().unwrap();
            if a.status == 503 {
                assert_json_error(&a, 503);
            }
            a.status
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 503]);
    server.stop();
}
