//! The real binary: `rwkv7-pi serve` ends cleanly on SIGTERM, after finishing the request
//! in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Events, client, demo_model_path};
use serde_json::json;

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let spawned = Command::new(env!("CARGO_BIN_EXE_rwkv7-pi"))
        .args(["serve", "--port", "0", "--alias", "demo", "-m"])
        .arg(demo_model_path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn();
    let mut child = spawned.expect("rwkv7-pi starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            // Under qemu-user (cross tests) the emulated test cannot exec another foreign
            // binary: it fails without a word. rwkv7-pi itself always logs its board first.
            if log.is_empty() && !status.success() && !cfg!(target_arch = "x86_64") {
                eprintln!("skipped: the rwkv7-pi binary cannot be executed here ({status})");
                return;
            }
            panic!("rwkv7-pi ended before serving ({status}):\n{log}");
        }
        log.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("rwkv7-pi: serving demo on http://") {
            break addr.to_string();
        }
    };
    assert!(log.contains("kernels: "), "the kernel set is logged:\n{log}");
    assert!(log.contains("threads: "), "the thread count is logged:\n{log}");

    let body = json!({"prompt": "It is a truth", "max_tokens": 1000, "temperature": 0, "stream": true});
    let res = client().post(format!("http://{addr}/v1/completions")).send(body.to_string()).unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut events = Events::new(res.into_body().into_reader());
    assert!(events.next_data().is_some());

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());

    // The request in flight runs to its end.
    let mut chunks = 1;
    let mut last_finish = None;
    let mut done = false;
    while let Some(data) = events.next_data() {
        if data == "[DONE]" {
            done = true;
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        chunks += 1;
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            last_finish = Some(f.to_string());
        }
    }
    assert!(done, "the stream ends with [DONE]");
    assert!(last_finish.is_some(), "the stream ends with a finish reason");
    assert!(chunks > 1);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "rwkv7-pi did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(status.success(), "exit status {status:?}\n{log}{rest}");
    assert!(rest.contains("stopped"), "{rest}");
}
