//! Sessions: prefill, generation, save/restore, fork, cancellation, state-tuning import,
//! and the refusal of states from other models.

mod common;

use std::ops::ControlFlow;
use std::sync::Arc;

use common::{SMALL, model, same_bits};
use rwkv7::core::SamplerParams;
use rwkv7::{
    DEFAULT_CHUNK, EndOfText, Error, GenerateParams, LoadedModel, Runner, Session, SessionOptions, StateTensor,
    StopReason, select_kernels,
};

/// A prompt of token ids (the small vocabulary has 300 ids).
const PROMPT: [u32; 11] = [85, 115, 101, 114, 58, 33, 104, 105, 0, 299, 258];

fn greedy_tokens(session: &mut Session<&LoadedModel>, n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let params = GenerateParams { end_of_text: EndOfText::Allow, ..GenerateParams::greedy(n) };
    let r = session
        .generate_tokens(&params, |t| {
            out.push(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(r.tokens, n);
    assert_eq!(r.stop, StopReason::MaxTokens);
    out
}

/// Sampling with penalties, so that the penalty table and the random stream matter.
fn sampled(max_tokens: usize, seed: Option<u64>) -> GenerateParams {
    GenerateParams {
        sampler: SamplerParams { temperature: 1.2, top_p: 0.95, ..SamplerParams::default() },
        max_tokens,
        seed,
        end_of_text: EndOfText::Ban,
        ..Default::default()
    }
}

fn text_of(session: &mut Session<&LoadedModel>, params: &GenerateParams) -> (String, rwkv7::GenerateOutcome) {
    let mut s = String::new();
    let r = session
        .generate(params, |p| {
            assert!(!p.is_empty());
            s.push_str(p);
            ControlFlow::Continue(())
        })
        .unwrap();
    (s, r)
}

#[test]
fn prefill_matches_the_runner_for_every_chunk_size() {
    let m = model(SMALL, 1, false);
    let kernels = select_kernels(None).unwrap();
    let mut runner = Runner::new(&m, kernels, 1);
    let reference = runner.logits_rnn(&PROMPT).unwrap();
    let last = &reference[(PROMPT.len() - 1) * 300..];
    for chunk in [1, 3, 64] {
        let mut s = Session::with_options(&m, SessionOptions { chunk, kernels: Some(kernels), ..Default::default() });
        assert!(s.last_logits().is_none());
        s.prefill_tokens(&PROMPT).unwrap();
        let got = s.last_logits().unwrap();
        let diff = got.iter().zip(last).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "chunk {chunk}: {diff}");
        assert_eq!(s.position(), PROMPT.len() as u64);
        let st_diff = s.state().iter().zip(runner.state()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(st_diff < 1e-5, "chunk {chunk}: state {st_diff}");
    }
}

#[test]
fn save_restore_continues_exactly_like_never_saving() {
    let m = model(SMALL, 2, true);
    let dir = tempfile::tempdir().unwrap();
    for params in [GenerateParams { end_of_text: EndOfText::Allow, ..GenerateParams::greedy(0) }, sampled(0, Some(7))] {
        // One run of 24 tokens.
        let mut whole = Session::new(&m);
        whole.prefill_tokens(&PROMPT).unwrap();
        let (text24, r) = text_of(&mut whole, &GenerateParams { max_tokens: 24, ..params.clone() });
        assert_eq!(r.tokens, 24);
        // 10 tokens, save, restore into a fresh session, 14 more (no seed: the stream continues).
        let mut first = Session::new(&m);
        first.prefill_tokens(&PROMPT).unwrap();
        let (text10, _) = text_of(&mut first, &GenerateParams { max_tokens: 10, ..params.clone() });
        let path = dir.path().join("s.state");
        first.save_state(&path).unwrap();
        let mut second = Session::new(&m);
        second.load_state(&path).unwrap();
        assert_eq!(second.position(), first.position());
        assert!(same_bits(second.state(), first.state()));
        assert!(same_bits(second.last_logits().unwrap(), first.last_logits().unwrap()));
        assert_eq!(second.occurrences(), first.occurrences());
        let (text14, _) = text_of(&mut second, &GenerateParams { max_tokens: 14, seed: None, ..params.clone() });
        assert_eq!(format!("{text10}{text14}"), text24);
        assert!(same_bits(second.state(), whole.state()));
        assert!(same_bits(second.last_logits().unwrap(), whole.last_logits().unwrap()));
        assert_eq!(second.occurrences(), whole.occurrences());
        assert_eq!(second.position(), whole.position());
    }
    // The saved bytes round-trip exactly.
    let mut s = Session::new(&m);
    s.prefill_tokens(&PROMPT).unwrap();
    text_of(&mut s, &sampled(5, Some(1)));
    let bytes = s.state_bytes();
    let mut t = Session::new(&m);
    t.load_state_bytes(&bytes, "memory").unwrap();
    assert_eq!(t.state_bytes(), bytes);
}

#[test]
fn forks_continue_identically_and_diverge_when_fed_differently() {
    let m = model(SMALL, 3, false);
    let mut base = Session::new(&m);
    base.prefill_tokens(&PROMPT).unwrap();
    let snapshot = base.state().to_vec();
    let mut a = base.fork();
    let mut b = base.fork();
    assert_eq!(greedy_tokens(&mut a, 12), greedy_tokens(&mut b, 12));
    assert!(same_bits(a.state(), b.state()));
    // Sampling forks share the random stream too.
    let (mut c, mut d) = (base.fork(), base.fork());
    let mut tc = Vec::new();
    let mut td = Vec::new();
    c.generate_tokens(&sampled(12, None), |t| {
        tc.push(t);
        ControlFlow::Continue(())
    })
    .unwrap();
    d.generate_tokens(&sampled(12, None), |t| {
        td.push(t);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(tc, td);
    // Fed differently, they diverge.
    a.prefill_tokens(&[5]).unwrap();
    b.prefill_tokens(&[6]).unwrap();
    assert!(!same_bits(a.last_logits().unwrap(), b.last_logits().unwrap()));
    assert!(!same_bits(a.state(), b.state()));
    // The original is untouched.
    assert!(same_bits(base.state(), &snapshot));
    assert_eq!(base.position(), PROMPT.len() as u64);
}

#[test]
fn forks_work_with_a_shared_model_handle() {
    let m = Arc::new(model(SMALL, 3, false));
    let mut s: Session<Arc<LoadedModel>> = Session::new(Arc::clone(&m));
    s.prefill_tokens(&PROMPT).unwrap();
    let f = s.fork();
    let handle = std::thread::spawn(move || {
        let mut f = f;
        f.prefill_tokens(&[7]).unwrap();
        f.last_logits().unwrap().to_vec()
    });
    s.prefill_tokens(&[7]).unwrap();
    assert!(same_bits(&handle.join().unwrap(), s.last_logits().unwrap()));
}

#[test]
fn states_of_other_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(SMALL, 4, false);
    let same_shape = model(SMALL, 5, false);
    let other_shape = model(common::Dims { layers: 3, ..SMALL }, 4, false);
    assert_ne!(a.fingerprint(), same_shape.fingerprint());
    let mut s = Session::new(&a);
    s.prefill_tokens(&PROMPT).unwrap();
    let path = dir.path().join("a.state");
    s.save_state(&path).unwrap();

    let mut t = Session::new(&same_shape);
    let err = t.load_state(&path).unwrap_err();
    assert!(matches!(err, Error::StateMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("a.state") && msg.contains("another model") && msg.contains("fingerprint"), "{msg}");
    assert!(t.last_logits().is_none(), "a refused state leaves the session unchanged");

    let mut u = Session::new(&other_shape);
    let msg = u.load_state(&path).unwrap_err().to_string();
    assert!(msg.contains("another model") && msg.contains("2 layers") && msg.contains("3 layers"), "{msg}");
}

#[test]
fn damaged_state_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(SMALL, 6, false);
    let mut s = Session::new(&m);
    s.prefill_tokens(&PROMPT).unwrap();
    let good = s.state_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "flipped",
            {
                let mut b = good.clone();
                b[200] ^= 1;
                b
            },
            "checksum",
        ),
        ("truncated", good[..good.len() - 100].to_vec(), "truncated"),
        ("empty", Vec::new(), "not an rwkv7 state file"),
        ("zip", b"PK\x03\x04rest".to_vec(), ".pth"),
        (
            "version",
            {
                let mut b = good.clone();
                b[8] = 9;
                b
            },
            "version 9",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let msg = s.fork().load_state(&path).unwrap_err().to_string();
        assert!(msg.contains(want) && msg.contains(name), "{name}: {msg}");
    }
    // An intact file (checksum recomputed) whose last occurrence count is negative: the
    // count would turn the penalty into a bonus, and generating from it failed later with
    // an error that did not name the file (found by mutation fuzzing).
    let mut g = s.fork();
    g.generate_tokens(&sampled(5, Some(1)), |_| ControlFlow::Continue(())).unwrap();
    let mut b = g.state_bytes();
    assert!(!g.occurrences().is_empty());
    let (count_at, sum_at) = (b.len() - 16, b.len() - 8);
    b[count_at..sum_at].copy_from_slice(&(-1e300f64).to_le_bytes());
    let sum = rwkv7::Fnv64::hash(&b[..sum_at]);
    b[sum_at..].copy_from_slice(&sum.to_le_bytes());
    let path = dir.path().join("negative-count");
    std::fs::write(&path, &b).unwrap();
    let msg = s.fork().load_state(&path).unwrap_err().to_string();
    assert!(msg.contains("occurrence entry") && msg.contains("negative-count"), "{msg}");

    let missing = s.fork().load_state(dir.path().join("missing")).unwrap_err().to_string();
    assert!(missing.contains("missing"), "{missing}");
    // Saving into a folder that does not exist fails cleanly and leaves nothing behind.
    let err = s.save_state(dir.path().join("no/such/dir/x.state")).unwrap_err().to_string();
    assert!(err.contains("x.state"), "{err}");
}

/// A state file whose position is the largest u64 (intact checksum, so it loads: the
/// position is only a counter) keeps working: feeding and generating saturate the
/// position instead of overflowing (found by mutation fuzzing of state files).
#[test]
fn a_state_at_the_last_position_keeps_working() {
    let m = model(SMALL, 6, false);
    let mut s = Session::new(&m);
    s.prefill_tokens(&PROMPT).unwrap();
    let mut bytes = s.state_bytes();
    // The position is the u64 after magic (8), version, header length (4 + 4), the
    // fingerprint (8) and the four u32 dimensions (16): docs/STATE_FORMAT.md.
    bytes[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
    let body = bytes.len() - 8;
    let sum = rwkv7::Fnv64::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&sum.to_le_bytes());
    let mut t = Session::new(&m);
    t.load_state_bytes(&bytes, "last-position").unwrap();
    assert_eq!(t.position(), u64::MAX);
    t.prefill_tokens(&PROMPT[..2]).unwrap();
    assert_eq!(greedy_tokens(&mut t, 2).len(), 2);
    assert_eq!(t.position(), u64::MAX);
}

#[test]
fn text_needs_a_tokenizer() {
    let m = model(SMALL, 7, false);
    let mut s = Session::new(&m);
    let msg = s.prefill_text("hi").unwrap_err().to_string();
    assert!(msg.contains("no tokenizer") && msg.contains("test-7.gguf"), "{msg}");
    s.prefill_tokens(&PROMPT).unwrap();
    let err = s.generate(&GenerateParams::greedy(3), |_| ControlFlow::Continue(())).unwrap_err();
    assert!(matches!(err, Error::NoTokenizer { .. }));
    // Stop strings need it too; plain token generation does not.
    let p = GenerateParams { stop_strings: vec!["x".into()], ..GenerateParams::greedy(3) };
    assert!(matches!(s.generate_tokens(&p, |_| ControlFlow::Continue(())), Err(Error::NoTokenizer { .. })));
    assert_eq!(s.generate_tokens(&GenerateParams::greedy(3), |_| ControlFlow::Continue(())).unwrap().tokens, 3);
    assert!(matches!(m.tokenize("x"), Err(Error::NoTokenizer { .. })));
}

#[test]
fn tokenizer_round_trip_through_the_model() {
    let m = model(SMALL, 8, true);
    let ids = m.tokenize("User: abc 你\n\n").unwrap();
    assert_eq!(ids, [258, 259, 263, 33, 264, 257]);
    assert_eq!(m.detokenize(&ids).unwrap(), "User: abc 你\n\n");
    assert!(matches!(m.detokenize(&[300]), Err(Error::TokenOutOfRange { token: 300, vocab: 300 })));
    let s = Session::new(&m);
    assert_eq!(s.tokenize("ab").unwrap(), [262]);
}

#[test]
fn generate_needs_logits_and_checks_tokens() {
    let m = model(SMALL, 9, true);
    let mut s = Session::new(&m);
    assert!(matches!(s.generate(&GenerateParams::greedy(1), |_| ControlFlow::Continue(())), Err(Error::NoLogits)));
    assert!(matches!(s.prefill_tokens(&[1, 300]), Err(Error::TokenOutOfRange { token: 300, .. })));
    assert_eq!(s.position(), 0, "nothing is fed when an id is bad");
    s.prefill_tokens(&[]).unwrap();
    assert!(s.last_logits().is_none());
    let bad = GenerateParams { stop_strings: vec![String::new()], ..GenerateParams::greedy(1) };
    s.prefill_tokens(&[1]).unwrap();
    assert!(matches!(s.generate(&bad, |_| ControlFlow::Continue(())), Err(Error::StopString { index: 0, .. })));
    let long = GenerateParams { stop_strings: vec!["ok".into(), "x".repeat(66)], ..GenerateParams::greedy(1) };
    assert!(matches!(s.generate(&long, |_| ControlFlow::Continue(())), Err(Error::StopString { index: 1, .. })));
}

#[test]
fn stop_tokens_stop_strings_bans_and_end_of_text() {
    let m = model(SMALL, 10, true);
    let mut base = Session::new(&m);
    base.prefill_tokens(&PROMPT).unwrap();
    let tokens = greedy_tokens(&mut base.fork(), 20);

    // A stop token: generation ends where it is first sampled; it is not fed.
    let stop = tokens[5];
    let first = tokens.iter().position(|&t| t == stop).unwrap();
    let mut s = base.fork();
    let p = GenerateParams { stop_tokens: vec![stop], end_of_text: EndOfText::Allow, ..GenerateParams::greedy(20) };
    let r = s.generate_tokens(&p, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((r.tokens, r.stop), (first, StopReason::StopToken(stop)));
    assert_eq!(s.position(), (PROMPT.len() + first) as u64);

    // Banning the first greedy token changes the first token.
    let mut s = base.fork();
    let p =
        GenerateParams { banned_tokens: vec![tokens[0]], end_of_text: EndOfText::Allow, ..GenerateParams::greedy(1) };
    let mut got = Vec::new();
    s.generate_tokens(&p, |t| {
        got.push(t);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_ne!(got[0], tokens[0]);

    // End of text: banned, it never comes; stopping on it ends with EndOfText.
    let mut s = base.fork();
    let p = GenerateParams { end_of_text: EndOfText::Ban, ..sampled(40, Some(3)) };
    s.generate_tokens(&p, |t| {
        assert_ne!(t, 0);
        ControlFlow::Continue(())
    })
    .unwrap();

    // A stop string: the text ends just before its first occurrence.
    let full = m.detokenize(&tokens).unwrap();
    let mut chars = full.char_indices().skip(6);
    let (start, _) = chars.next().unwrap();
    let end = chars.nth(1).map_or(full.len(), |(i, _)| i);
    let needle = full[start..end].to_string();
    let cut = full.find(&needle).unwrap();
    let mut s = base.fork();
    let p = GenerateParams {
        stop_strings: vec!["\u{1}\u{2}never".into(), needle.clone()],
        end_of_text: EndOfText::Allow,
        ..GenerateParams::greedy(20)
    };
    let (text, r) = text_of(&mut s, &p);
    assert_eq!(r.stop, StopReason::StopString(1), "{needle:?} in {full:?}");
    assert_eq!(text, full[..cut], "{needle:?} in {full:?}");
}

#[test]
fn cancellation_by_callback_and_by_handle() {
    let m = model(SMALL, 11, false);
    let mut s = Session::new(&m);
    s.prefill_tokens(&PROMPT).unwrap();
    let mut n = 0;
    let p = GenerateParams { end_of_text: EndOfText::Allow, ..GenerateParams::greedy(50) };
    let r = s
        .generate_tokens(&p, |_| {
            n += 1;
            if n == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!((r.tokens, r.stop), (3, StopReason::Cancelled));
    assert_eq!(s.position(), (PROMPT.len() + 3) as u64, "every emitted token is fed");

    let handle = s.cancel_handle();
    handle.cancel();
    let r = s.generate_tokens(&p, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((r.tokens, r.stop), (0, StopReason::Cancelled));
    assert!(!handle.is_cancelled(), "the request is consumed");
    // Cancelling from another thread while generating.
    let h = s.cancel_handle();
    let r = s
        .generate_tokens(&GenerateParams { max_tokens: usize::MAX, ..p.clone() }, |_| {
            let h = h.clone();
            std::thread::spawn(move || h.cancel()).join().unwrap();
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((r.tokens, r.stop), (1, StopReason::Cancelled));
    // Prefill is cancelled between chunks.
    let mut t = Session::with_options(&m, SessionOptions { chunk: 2, kernels: None, ..Default::default() });
    t.cancel_handle().cancel();
    assert!(matches!(t.prefill_tokens(&PROMPT), Err(Error::Cancelled)));
    assert!(t.last_logits().is_none());
    t.prefill_tokens(&PROMPT).unwrap();
    assert_eq!(t.position(), PROMPT.len() as u64);
}

#[test]
fn reset_returns_to_the_zero_state() {
    let m = model(SMALL, 12, false);
    let mut s = Session::new(&m);
    s.prefill_tokens(&PROMPT).unwrap();
    let first = s.last_logits().unwrap().to_vec();
    s.generate_tokens(&sampled(5, Some(1)), |_| ControlFlow::Continue(())).unwrap();
    assert!(!s.occurrences().is_empty());
    s.reset();
    assert!(s.state().iter().all(|&v| v == 0.0) && s.last_logits().is_none() && s.occurrences().is_empty());
    assert_eq!(s.position(), 0);
    s.prefill_tokens(&PROMPT).unwrap();
    assert!(same_bits(s.last_logits().unwrap(), &first));
}

#[test]
fn state_tuning_import() {
    let m = model(SMALL, 13, false);
    let (h, n, c) = (1usize, 64usize, 64usize);
    let values: Vec<Vec<f32>> =
        (0..2).map(|l| (0..h * n * n).map(|i| ((i * 7 + l * 3) % 11) as f32 * 0.01 - 0.05).collect()).collect();
    let names = ["blocks.0.att.time_state", "blocks.1.att.time_state"];
    let shape = [h, n, n];
    let tensors: Vec<StateTensor<'_>> =
        (0..2).map(|l| StateTensor { name: names[l], shape: &shape, data: &values[l] }).collect();
    let mut s = Session::new(&m);
    s.prefill_tokens(&PROMPT).unwrap();
    s.import_state_tuning(&tensors).unwrap();
    assert!(s.last_logits().is_none());
    assert_eq!(s.position(), 0);
    let per = 2 * c + h * n * n;
    for l in 0..2 {
        let layer = &s.state()[l * per..(l + 1) * per];
        assert!(layer[..c].iter().all(|&v| v == 0.0) && layer[c + h * n * n..].iter().all(|&v| v == 0.0));
        assert!(same_bits(&layer[c..c + h * n * n], &values[l]), "no transpose");
    }
    s.prefill_tokens(&PROMPT).unwrap();
    let mut zero = Session::new(&m);
    zero.prefill_tokens(&PROMPT).unwrap();
    assert!(!same_bits(s.last_logits().unwrap(), zero.last_logits().unwrap()));

    let check = |tensors: &[StateTensor<'_>], want: &str| {
        let mut t = Session::new(&m);
        let msg = t.import_state_tuning(tensors).unwrap_err().to_string();
        assert!(msg.contains(want), "{msg}");
    };
    check(&tensors[..1], "no blocks.1.att.time_state");
    check(&[tensors[0], tensors[0], tensors[1]], "twice");
    let bad_shape = [h, n * n];
    check(&[tensors[0], StateTensor { shape: &bad_shape, ..tensors[1] }], "[1, 64, 64]");
    check(&[tensors[0], tensors[1], StateTensor { name: "blocks.2.att.time_state", ..tensors[1] }], "only 2 layers");
    check(
        &[tensors[0], tensors[1], StateTensor { name: "emb.weight", ..tensors[1] }],
        "unexpected tensor `emb.weight`",
    );
}

#[test]
fn incomplete_characters_carry_over_between_calls() {
    // A model whose greedy output is random bytes: splitting the generation anywhere, with
    // or without a save in between, must give the same text as one call.
    let m = model(SMALL, 14, true);
    let mut whole = Session::new(&m);
    whole.prefill_tokens(&PROMPT).unwrap();
    let p = GenerateParams { end_of_text: EndOfText::Allow, ..GenerateParams::greedy(40) };
    let (all, _) = text_of(&mut whole, &p);
    let mut tail = String::new();
    whole.flush_text(|s| tail.push_str(s));
    eprintln!("{all:?} + {tail:?}");
    assert!(!all.is_ascii(), "the test needs multi-byte or invalid output: {all:?}");
    for split in [1, 7, 13, 29] {
        let mut s = Session::new(&m);
        s.prefill_tokens(&PROMPT).unwrap();
        let (a, _) = text_of(&mut s, &GenerateParams { max_tokens: split, ..p.clone() });
        let mut t = Session::new(&m);
        t.load_state_bytes(&s.state_bytes(), "mem").unwrap();
        let (b, _) = text_of(&mut t, &GenerateParams { max_tokens: 40 - split, ..p.clone() });
        let mut end = String::new();
        t.flush_text(|s| end.push_str(s));
        assert_eq!(format!("{a}{b}{end}"), format!("{all}{tail}"), "split at {split}");
    }
}

#[test]
fn sessions_are_send() {
    fn send<T: Send>() {}
    send::<Session<Arc<LoadedModel>>>();
    send::<Session<&LoadedModel>>();
    let _ = DEFAULT_CHUNK;
}

#[test]
fn sessions_without_a_pool_share_the_process_pool() {
    let m = model(SMALL, 2, true);
    let (a, b) = (Session::new(&m), Session::new(&m));
    assert!(a.pool().shares_threads_with(b.pool()));
    assert!(a.pool().shares_threads_with(&rwkv7::ThreadPool::shared()));
    let own = rwkv7::ThreadPool::new(2).unwrap();
    let c = Session::with_options(&m, rwkv7::SessionOptions { pool: Some(own.clone()), ..Default::default() });
    assert!(c.pool().shares_threads_with(&own));
    assert!(!c.pool().shares_threads_with(a.pool()), "a pool of its own is not the process pool");
}
