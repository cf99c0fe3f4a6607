//! End-to-end tests of `rwkv7 generate`, `chat`, `tokenize` and `detokenize`, running the
//! binary. Models with a tokenizer are made here by converting a golden fixture with the
//! 256-token byte vocabulary of tools/train-demo (the converter pads it to the model's V).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwkv7_quant::{ConvertOptions, OutType, convert};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// Converts fixture `name` to `out` with (or without) the byte vocabulary.
fn make_model(name: &str, out: &Path, ty: OutType, vocab: bool) -> PathBuf {
    let mut opts = ConvertOptions::new(ty);
    if vocab {
        opts.vocab = Some(repo().join("tools/train-demo/vocab_bytes.txt"));
    }
    convert(&fixture(name).join("model.pth"), out, &opts).expect("fixture converts");
    out.to_path_buf()
}

struct Models {
    dir: tempfile::TempDir,
    /// h1_l3_bf16 (V = 301) with the byte vocabulary, f32.
    tok: PathBuf,
    /// The same weights without a tokenizer.
    no_tok: PathBuf,
}

fn models() -> Models {
    let dir = tempfile::tempdir().unwrap();
    let tok = make_model("h1_l3_bf16", &dir.path().join("tok.gguf"), OutType::F32, true);
    let no_tok = make_model("h1_l3_bf16", &dir.path().join("no-tok.gguf"), OutType::F32, false);
    Models { dir, tok, no_tok }
}

fn rwkv7(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rwkv7")).args(args).output().expect("rwkv7 runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts success and returns stdout.
fn ok(args: &[&str]) -> Vec<u8> {
    let out = rwkv7(args);
    assert!(out.status.success(), "{args:?}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Asserts a clean failure with exit status `code`; returns stderr. Status 1 must come with
/// exactly one line `error: …`.
fn fails(args: &[&str], code: i32) -> String {
    let out = rwkv7(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: stderr {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    if code == 1 {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("note:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
    }
    stderr
}

#[test]
fn saving_and_restoring_in_a_new_process_continues_like_one_run() {
    let m = models();
    let st = m.dir.path().join("s.state");
    for sampling in [&["--temp", "0"][..], &["--seed", "5", "--top-p", "0.9"][..]] {
        let common = |n: &'static str| {
            let mut a = vec!["generate", "-m", s(&m.tok), "-n", n, "--eot", "ban"];
            a.extend_from_slice(sampling);
            a
        };
        let whole = ok(&[common("16"), vec!["-p", "User: hi"]].concat());
        let first = ok(&[common("8"), vec!["-p", "User: hi", "--save-state", s(&st)]].concat());
        // The second process gets no seed: the saved random stream continues.
        let rest: Vec<&str> = common("8").into_iter().filter(|a| *a != "5" && *a != "--seed").collect();
        let second = ok(&[rest, vec!["--state", s(&st), "-p", ""]].concat());
        assert!(!whole.is_empty());
        assert_eq!([first.clone(), second].concat(), whole, "{sampling:?}: first part {first:?}");
    }
    // Prompt-only runs (-n 0) save a reusable prefix; continuing it with more text works.
    ok(&["generate", "-m", s(&m.tok), "-p", "User: ", "-n", "0", "--save-state", s(&st)]);
    let a = ok(&["generate", "-m", s(&m.tok), "--state", s(&st), "-p", "hi", "-n", "6", "--temp", "0"]);
    let b = ok(&["generate", "-m", s(&m.tok), "-p", "User: hi", "-n", "6", "--temp", "0"]);
    assert_eq!(a, b);
}

#[test]
fn states_from_other_models_are_refused() {
    let m = models();
    let st = m.dir.path().join("a.state");
    ok(&["generate", "-m", s(&m.tok), "-p", "x", "-n", "2", "--save-state", s(&st)]);
    // Same dimensions, other weights (bf16 instead of f32): the fingerprint differs.
    let same_dims = make_model("h1_l3_bf16", &m.dir.path().join("bf16.gguf"), OutType::BF16, true);
    let e = fails(&["generate", "-m", s(&same_dims), "--state", s(&st), "-p", "x"], 1);
    assert!(e.contains("a.state") && e.contains("another model") && e.contains("fingerprint"), "{e}");
    // Other dimensions.
    let other = make_model("h2_l3_fp32", &m.dir.path().join("h2.gguf"), OutType::F32, true);
    let e = fails(&["generate", "-m", s(&other), "--state", s(&st), "-p", "x"], 1);
    assert!(e.contains("another model") && e.contains("C = 64") && e.contains("C = 128"), "{e}");
    let e = fails(&["chat", "-m", s(&other), "--state", s(&st)], 1);
    assert!(e.contains("another model"), "{e}");
}

#[test]
fn state_tuning_files_are_imported() {
    let m = models();
    let tuning = fixture("h2_l3_fp32").join("state_tuning/time_state.pth");
    let h2 = make_model("h2_l3_fp32", &m.dir.path().join("h2.gguf"), OutType::F32, true);
    let args = ["generate", "-m", s(&h2), "-p", "User: hi", "-n", "12", "--temp", "0", "--eot", "ban"];
    let plain = ok(&args);
    let tuned = ok(&[&args[..], &["--state", s(&tuning)]].concat());
    assert_ne!(plain, tuned, "the tuned initial state changes the continuation");
    let e = fails(&["generate", "-m", s(&h2), "--state", s(&tuning), "-p", ""], 1);
    assert!(e.contains("state-tuning") && e.contains("no last token"), "{e}");
    // -n 0 turns a state-tuning file into a state file; fed the same text, it continues alike.
    let st = m.dir.path().join("tuned.state");
    ok(&["generate", "-m", s(&h2), "--state", s(&tuning), "-p", "", "-n", "0", "--save-state", s(&st)]);
    assert_eq!(ok(&[&args[..], &["--state", s(&st)]].concat()), tuned);
    // A tuning file for other dimensions: H = 2 vs the h1 model's H = 1.
    let e = fails(&["generate", "-m", s(&m.tok), "--state", s(&tuning), "-p", "x"], 1);
    assert!(e.contains("time_state.pth") && e.contains("[2, 64, 64]") && e.contains("[1, 64, 64]"), "{e}");
    // A checkpoint is not a state-tuning file.
    let e = fails(&["generate", "-m", s(&m.tok), "--state", s(&fixture("h1_l3_bf16").join("model.pth")), "-p", "x"], 1);
    assert!(e.contains("model.pth") && e.contains("unexpected tensor"), "{e}");
}

#[test]
fn tokenize_and_detokenize_round_trip() {
    let m = models();
    let ids = ok(&["tokenize", "-m", s(&m.tok), "--text", "Hi, 你好\n"]);
    assert_eq!(String::from_utf8(ids.clone()).unwrap(), "73 106 45 33 229 190 161 230 166 190 11\n");
    let list = String::from_utf8(ids).unwrap().trim().replace(' ', ",");
    assert_eq!(ok(&["detokenize", "-m", s(&m.tok), "--tokens", &list]), "Hi, 你好\n".as_bytes());
    // Any bytes, from a file, round-trip exactly (end of text and padding ids have no bytes).
    let f = m.dir.path().join("bytes.bin");
    let bytes: Vec<u8> = (0..=255u8).rev().chain([0xf0, 0x9f]).collect();
    std::fs::write(&f, &bytes).unwrap();
    let ids = String::from_utf8(ok(&["tokenize", "-m", s(&m.tok), "--file", s(&f)])).unwrap();
    assert_eq!(ids.split(' ').count(), bytes.len());
    let list = format!("0,{},300", ids.trim().replace(' ', ","));
    assert_eq!(ok(&["detokenize", "-m", s(&m.tok), "--tokens", &list]), bytes);
    assert_eq!(ok(&["tokenize", "-m", s(&m.tok), "--text", ""]), b"\n");
}

#[test]
fn bad_input_gives_one_clear_line_and_never_a_panic() {
    let m = models();
    let d = m.dir.path();
    let garbage = d.join("garbage.state");
    std::fs::write(&garbage, b"not a state at all").unwrap();
    let truncated = d.join("truncated.state");
    ok(&["generate", "-m", s(&m.tok), "-p", "x", "-n", "1", "--save-state", s(&truncated)]);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let latin1 = d.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9").unwrap();
    let tok = s(&m.tok);
    let no_tok = s(&m.no_tok);
    let pth_model = fixture("h1_l3_bf16").join("model.pth");
    let long_stop = "y".repeat(100);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["generate", "-m", no_tok, "-p", "x"], 1, "no tokenizer"),
        (vec!["chat", "-m", no_tok], 1, "no tokenizer"),
        (vec!["tokenize", "-m", no_tok, "--text", "x"], 1, "no tokenizer"),
        (vec!["detokenize", "-m", no_tok, "--tokens", "1"], 1, "no tokenizer"),
        (vec!["generate", "-m", "missing.gguf", "-p", "x"], 1, "missing.gguf"),
        (vec!["generate", "-m", s(&pth_model), "-p", "x"], 1, "model.pth"),
        (vec!["generate", "-m", tok, "--state", "missing.state", "-p", "x"], 1, "missing.state"),
        (vec!["generate", "-m", tok, "-f", "missing.txt"], 1, "missing.txt"),
        (vec!["generate", "-m", tok, "-f", s(&latin1)], 1, "not UTF-8"),
        (vec!["generate", "-m", tok], 1, "-p/--prompt"),
        (vec!["generate", "-m", tok, "--state", s(&garbage), "-p", "x"], 1, "not an rwkv7 state file"),
        (vec!["generate", "-m", tok, "--state", s(&truncated), "-p", "x"], 1, "truncated"),
        (vec!["generate", "-m", tok, "-p", "x", "--save-state", "/nonexistent/dir/out.state"], 1, "out.state"),
        (vec!["generate", "-m", tok, "-p", "x", "--kernels", "nope"], 1, "nope"),
        (vec!["generate", "-m", tok, "-p", "x", "--stop", ""], 1, "stop string"),
        (vec!["generate", "-m", tok, "-p", "x", "--stop", &long_stop], 1, "stop string"),
        (vec!["detokenize", "-m", tok, "--tokens", "9999"], 1, "9999"),
        (vec!["tokenize", "-m", tok, "--file", "missing.txt"], 1, "missing.txt"),
        (vec!["generate", "-m", tok, "-p", "x", "--top-p", "2"], 2, "--top-p"),
        (vec!["generate", "-m", tok, "-p", "x", "--temp", "-1"], 2, "--temperature"),
        (vec!["generate", "-m", tok, "-p", "x", "-n", "many"], 2, "--max-tokens"),
        (vec!["generate", "-m", tok, "-p", "x", "-t", "0"], 2, "--threads"),
        (vec!["generate", "-m", tok, "-p", "x", "--bogus"], 2, "--bogus"),
        (vec!["detokenize", "-m", tok, "--tokens", "a"], 2, "--tokens"),
        (vec!["tokenize", "-m", tok], 2, "--text"),
        (vec!["tokenize", "--text", "x"], 2, "--model"),
    ];
    for (args, code, want) in cases {
        let e = fails(&args, code);
        assert!(e.contains(want), "{args:?}: expected {want:?} in {e}");
    }
    assert!(!Path::new("/nonexistent/dir/out.state").exists());
}

#[test]
fn chat_keeps_history_in_the_state_and_handles_commands() {
    let m = models();
    let saved = m.dir.path().join("chat.state");
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rwkv7"))
            .args(["chat", "-m", s(&m.tok), "-n", "6", "--seed", "1", "--system", "Be\n\n brief.\r\n"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let input =
        format!("hello\n\n/save {0}\nmore\n/reset\nhello\n/load {0}\nmore\n/load missing.state\n/what\n", s(&saved));
    let (out, err) = run(&input);
    assert_eq!(out.matches("Assistant:").count(), 4, "{out}");
    assert!(err.contains("(saved to") && err.contains("(conversation reset)") && err.contains("(loaded"), "{err}");
    assert!(err.contains("error: missing.state"), "{err}");
    // Replies are deterministic with a seed; after /reset the first reply repeats, and after
    // /load the second one does: the history is in the state.
    let replies: Vec<&str> = out.split("Assistant:").skip(1).map(|r| r.split("User:").next().unwrap()).collect();
    assert_eq!(replies[0], replies[2], "{out}");
    assert_eq!(replies[1], replies[3], "{out}");
    // The saved chat state continues with generate.
    ok(&["generate", "-m", s(&m.tok), "--state", s(&saved), "-p", "User: hi\n\nAssistant:", "-n", "3"]);
}

/// Ctrl-C during a reply stops the reply, not the program; at the prompt it quits.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_reply_then_quits_at_the_prompt() {
    let m = models();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rwkv7"))
        .args(["chat", "-m", s(&m.tok), "-n", "100000000", "--temp", "0", "--eot", "ban"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = {
        let stdout = Arc::clone(&stdout);
        let mut pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                stdout.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let wait_for = |what: &str, min_count: usize| {
        let start = Instant::now();
        loop {
            let text = String::from_utf8_lossy(&stdout.lock().unwrap()).into_owned();
            if text.matches(what).count() >= min_count {
                return text;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "waiting for {what:?} in {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let interrupt = |pid: u32| {
        let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    };
    wait_for("User: ", 1);
    stdin.write_all(b"hello\n").unwrap();
    stdin.flush().unwrap();
    wait_for("Assistant:", 1);
    std::thread::sleep(Duration::from_millis(300));
    interrupt(child.id());
    let text = wait_for("User: ", 2);
    assert!(text.contains(" [stopped]"), "{text:?}");
    assert!(child.try_wait().unwrap().is_none(), "still running after the first Ctrl-C");
    interrupt(child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    reader.join().unwrap();
}
