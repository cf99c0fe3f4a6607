//! The native side of the JNI layer without a JVM: handles, the busy and poisoned states,
//! cancellation and close from other threads, and the text a handle-driven generation gives
//! against the `Session` API itself. (`test-host.sh` runs the same paths through Java.)

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rwkv7::{LoadedModel, Session};
use rwkv7_android::error::Kind;
use rwkv7_android::objects::{self, JavaParams, stop_code};
use rwkv7_quant::{ConvertOptions, OutType, convert};

/// The golden fixture h1_l3_bf16 (V = 301) with the demo trainer's byte vocabulary, as f32.
fn model(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = dir.join("tiny.gguf");
    let mut opts = ConvertOptions::new(OutType::F32);
    opts.vocab = Some(repo.join("tools/train-demo/vocab_bytes.txt"));
    convert(&repo.join("tests/fixtures/h1_l3_bf16/model.pth"), &out, &opts).expect("fixture converts");
    out
}

fn params(max_tokens: i32) -> JavaParams {
    JavaParams {
        temperature: 1.0,
        top_p: 0.85,
        top_k: 0,
        presence_penalty: 0.2,
        frequency_penalty: 0.2,
        penalty_decay: 0.996,
        max_tokens,
        seed: Some(7),
        stop_strings: Vec::new(),
        end_of_text: 1, // ban: these tests need generation to run on
    }
}

#[test]
fn handle_generation_equals_the_session_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = model(dir.path());
    let p = params(32);

    let loaded = LoadedModel::open(&path).unwrap();
    let mut reference = Session::new(&loaded);
    reference.prefill_text("Hello").unwrap();
    let mut want = String::new();
    let want_outcome = reference
        .generate(&p.to_generate_params().unwrap(), |s| {
            want.push_str(s);
            ControlFlow::Continue(())
        })
        .unwrap();

    let m = objects::model_open(path.to_str().unwrap()).unwrap();
    let s = objects::session_new(m).unwrap();
    objects::with_session(s, |s| Ok(s.prefill_text("Hello")?)).unwrap();
    let mut got = String::new();
    let outcome = objects::session_generate(s, &p, |piece| {
        got.push_str(piece);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(outcome, want_outcome);
    assert_eq!(got, want);
    assert_eq!(objects::encode_outcome(&outcome), [stop_code::MAX_TOKENS, 32, -1]);
    objects::session_close(s).unwrap();
    objects::model_close(m).unwrap();
    assert_eq!(objects::model_close(m).unwrap_err().exception().0, Kind::IllegalState);
}

/// Runs a generation on a second thread that pauses inside its callback after `pause_at`
/// pieces, runs `during` on this thread, then lets it go on; returns its outcome.
fn interrupt(session: i64, pause_at: usize, during: impl FnOnce()) -> Result<[i32; 3], Kind> {
    let (reached_tx, reached_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let mut n = 0;
        objects::session_generate(session, &params(100_000), |_| {
            n += 1;
            if n == pause_at {
                reached_tx.send(()).unwrap();
                go_rx.recv_timeout(Duration::from_secs(60)).unwrap();
            }
            ControlFlow::Continue(())
        })
        .map(|o| objects::encode_outcome(&o))
        .map_err(|e| e.exception().0)
    });
    reached_rx.recv_timeout(Duration::from_secs(60)).expect("generation reached the pause");
    during();
    go_tx.send(()).unwrap();
    worker.join().unwrap()
}

#[test]
fn cancel_from_another_thread_and_busy_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let m = objects::model_open(model(dir.path()).to_str().unwrap()).unwrap();
    let s = objects::session_new(m).unwrap();
    objects::with_session(s, |s| Ok(s.prefill_text("Hello")?)).unwrap();

    let r = interrupt(s, 3, || {
        // While generate holds the session, other calls are refused, not blocked...
        let busy = objects::with_session(s, |_| Ok(())).unwrap_err();
        assert_eq!(busy.exception().0, Kind::IllegalState);
        assert!(busy.to_string().contains("busy"), "{busy}");
        assert_eq!(objects::session_fork(s).unwrap_err().exception().0, Kind::IllegalState);
        // ...but cancel goes through the atomic flag.
        objects::session_cancel(s).unwrap();
    })
    .unwrap();
    assert_eq!(r[0], stop_code::CANCELLED);
    assert!(r[1] >= 3 && r[1] < 100_000, "{r:?}");

    // The request was consumed; the session runs normally again.
    let o = objects::session_generate(s, &params(4), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(objects::encode_outcome(&o), [stop_code::MAX_TOKENS, 4, -1]);
    objects::session_close(s).unwrap();
    objects::model_close(m).unwrap();
}

#[test]
fn close_during_generate_cancels_and_frees_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let m = objects::model_open(model(dir.path()).to_str().unwrap()).unwrap();
    let s = objects::session_new(m).unwrap();
    // The model handle can go first: the session keeps the mapping.
    objects::model_close(m).unwrap();
    objects::with_session(s, |s| Ok(s.prefill_text("Hello")?)).unwrap();
    let r = interrupt(s, 2, || objects::session_close(s).unwrap()).unwrap();
    assert_eq!(r[0], stop_code::CANCELLED);
    assert_eq!(objects::session_cancel(s).unwrap_err().exception().0, Kind::IllegalState);
    assert_eq!(objects::session_close(s).unwrap_err().exception().0, Kind::IllegalState);
}

#[test]
fn a_panic_inside_a_call_leaves_the_session_refusing_further_calls() {
    let dir = tempfile::tempdir().unwrap();
    let m = objects::model_open(model(dir.path()).to_str().unwrap()).unwrap();
    let s = objects::session_new(m).unwrap();
    let caught = std::panic::catch_unwind(|| {
        let _ = objects::with_session(s, |_| -> Result<(), _> { panic!("inside the session lock") });
    });
    assert!(caught.is_err());
    let e = objects::with_session(s, |_| Ok(())).unwrap_err();
    assert_eq!(e.exception().0, Kind::Rwkv);
    assert!(e.to_string().contains("close it"), "{e}");
    // Close still works, exactly once.
    objects::session_close(s).unwrap();
    assert!(objects::session_close(s).is_err());
    objects::model_close(m).unwrap();
}

#[test]
fn fork_and_state_files_through_handles() {
    let dir = tempfile::tempdir().unwrap();
    let m = objects::model_open(model(dir.path()).to_str().unwrap()).unwrap();
    let a = objects::session_new(m).unwrap();
    objects::with_session(a, |s| Ok(s.prefill_text("Hello")?)).unwrap();
    let file = dir.path().join("a.state");
    objects::with_session(a, |s| Ok(s.save_state(&file)?)).unwrap();
    let b = objects::session_fork(a).unwrap();
    let c = objects::session_new(m).unwrap();
    objects::with_session(c, |s| Ok(s.load_state(&file)?)).unwrap();
    let text = |h| {
        let mut t = String::new();
        objects::session_generate(h, &JavaParams { seed: None, ..params(20) }, |p| {
            t.push_str(p);
            ControlFlow::Continue(())
        })
        .unwrap();
        t
    };
    let (ta, tb, tc) = (text(a), text(b), text(c));
    assert!(!ta.is_empty());
    assert_eq!(ta, tb, "fork");
    assert_eq!(ta, tc, "state file");
    let missing = objects::with_session(c, |s| Ok(s.load_state(dir.path().join("missing.state"))?)).unwrap_err();
    assert_eq!(missing.exception().0, Kind::FileNotFound);
    for h in [a, b, c] {
        objects::session_close(h).unwrap();
    }
    objects::model_close(m).unwrap();
}
