//! A server on loopback for the tests, a real HTTP client, and an SSE reader.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rwkv7::{LoadedModel, SessionOptions};
use rwkv7_pi::request::RequestLimits;
use rwkv7_pi::server::{ServerConfig, serve};
use rwkv7_pi::worker::WorkerConfig;
use serde_json::Value;

/// The bundled demo model.
pub fn demo_model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/demo/demo-q8_0.gguf")
}

pub fn demo_model() -> Arc<LoadedModel> {
    Arc::new(LoadedModel::open(demo_model_path()).expect("the demo model opens"))
}

pub fn config() -> ServerConfig {
    ServerConfig {
        model_id: "demo".into(),
        body_limit: 16 * 1024,
        limits: RequestLimits { max_tokens: 256, default_max_tokens: 16 },
        worker: WorkerConfig { queue: 16, cache_entries: 4, cache_bytes: 64 << 20, session: SessionOptions::default() },
    }
}

/// A server running in this process on 127.0.0.1 (any free port).
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub fn start(config: ServerConfig) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let model = demo_model();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve(listener, model, config, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and waits for it; fails the test if it did not end cleanly.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread").expect("the server ends cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        }
    }
}

/// An HTTP client that returns 4xx/5xx answers instead of failing on them.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// A response: status, the cached-tokens header, the body.
pub struct Answer {
    pub status: u16,
    pub cached_header: Option<usize>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn post_raw(url: &str, body: &str) -> Answer {
    let mut res = client().post(url).header("content-type", "application/json").send(body).expect("the request");
    let status = res.status().as_u16();
    let cached_header = res.headers().get("x-cached-tokens").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = res.body_mut().read_to_string().expect("the body");
    Answer { status, cached_header, body }
}

pub fn post(url: &str, body: &Value) -> Answer {
    post_raw(url, &body.to_string())
}

pub fn get(url: &str) -> Answer {
    let mut res = client().get(url).call().expect("the request");
    let status = res.status().as_u16();
    Answer { status, cached_header: None, body: res.body_mut().read_to_string().expect("the body") }
}

/// Reads server-sent events: the `data:` payloads, up to and including `[DONE]`.
pub struct Events<R> {
    lines: BufReader<R>,
}

impl<R: Read> Events<R> {
    pub fn new(reader: R) -> Self {
        Events { lines: BufReader::new(reader) }
    }

    /// The next `data:` payload, or `None` at the end of the stream.
    pub fn next_data(&mut self) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                return Some(data.trim_start().to_string());
            }
        }
    }
}

/// What a stream carried.
pub struct Streamed {
    pub status: u16,
    pub cached_header: Option<usize>,
    pub chunks: Vec<Value>,
    pub done: bool,
}

impl Streamed {
    /// The text of the chunks (`text`, or the chat `delta.content`).
    pub fn text(&self) -> String {
        self.chunks.iter().filter_map(|c| chunk_text(c)).collect()
    }

    pub fn finish_reason(&self) -> Option<&str> {
        self.chunks.iter().rev().find_map(|c| c["choices"][0]["finish_reason"].as_str())
    }
}

pub fn chunk_text(chunk: &Value) -> Option<&str> {
    let choice = &chunk["choices"][0];
    choice["text"].as_str().or_else(|| choice["delta"]["content"].as_str())
}

pub fn post_stream(url: &str, body: &Value) -> Streamed {
    let res = client().post(url).header("content-type", "application/json").send(body.to_string()).unwrap();
    let status = res.status().as_u16();
    let cached_header = res.headers().get("x-cached-tokens").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let mut events = Events::new(res.into_body().into_reader());
    let mut chunks = Vec::new();
    let mut done = false;
    while let Some(data) = events.next_data() {
        if data == "[DONE]" {
            done = true;
            break;
        }
        chunks.push(serde_json::from_str(&data).unwrap_or_else(|e| panic!("chunk not JSON ({e}): {data}")));
    }
    Streamed { status, cached_header, chunks, done }
}

/// The `{"error":{"message","type"}}` body of a 4xx answer.
pub fn assert_json_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = answer.json();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
}
