//! World tokenizer against the official `TRIE_TOKENIZER` (fixtures from
//! `tests/fixtures/make_tokenizer_sampler_fixtures.py`) with the real vocabulary.
//!
//! The vocabulary is third-party and not in the repository: it is read from `$RWKV7_VOCAB`,
//! default `<repo>/../shared/vocab/rwkv_vocab_v20230424.txt`. Without it the tests that need it
//! print `SKIPPED: …` and pass.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use rwkv7_core::gguf::Gguf;
use rwkv7_core::tokenizer::{
    END_OF_TEXT, OwnedTokenizer, Tokenizer, TokenizerError, Utf8Stream, escape_token, parse_vocab_file,
};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/tokenizer").join(name)
}

/// The parsed vocabulary (index = id, entry 0 empty), or `None` when the file is absent.
fn vocab() -> Option<&'static Vec<Vec<u8>>> {
    static V: OnceLock<Option<Vec<Vec<u8>>>> = OnceLock::new();
    V.get_or_init(|| {
        let path = std::env::var_os("RWKV7_VOCAB")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("../shared/vocab/rwkv_vocab_v20230424.txt"));
        let text = std::fs::read_to_string(&path).ok()?;
        Some(parse_vocab_file(&text).expect("the World vocabulary parses"))
    })
    .as_ref()
}

fn world() -> Option<&'static OwnedTokenizer> {
    static T: OnceLock<Option<OwnedTokenizer>> = OnceLock::new();
    T.get_or_init(|| vocab().map(|v| Tokenizer::from_tokens(v).expect("tokenizer builds"))).as_ref()
}

/// Prints a line that `cargo test` shows even for passing tests (the harness captures only the
/// `print!` family, not direct writes to the stderr handle).
fn skipped(test: &str) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: World vocabulary not found (set RWKV7_VOCAB or put it in ../shared/vocab/)"
    );
}

macro_rules! need_vocab {
    ($test:literal) => {
        match world() {
            Some(t) => t,
            None => {
                skipped($test);
                return;
            }
        }
    };
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// FNV-1a 64 over (id u32 LE, length u32 LE, bytes) for ids 1.. (as the fixture script computes).
fn fnv_digest(tokens: &[Vec<u8>]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for (id, t) in tokens.iter().enumerate().skip(1) {
        let head = [(id as u32).to_le_bytes(), (t.len() as u32).to_le_bytes()].concat();
        for &b in head.iter().chain(t) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

#[test]
fn vocab_file_parses_like_python() {
    let Some(v) = vocab() else {
        skipped("vocab_file_parses_like_python");
        return;
    };
    let meta = json(fixture("meta.json"));
    assert_eq!(v.len() - 1, meta["vocab_tokens"].as_u64().unwrap() as usize);
    assert_eq!(v.iter().map(Vec::len).sum::<usize>(), meta["vocab_total_bytes"].as_u64().unwrap() as usize);
    assert_eq!(fnv_digest(v), meta["vocab_fnv1a64"].as_str().unwrap());
    // Spec §6: ids 1..256 are the single bytes, the longest token has 128 bytes.
    for b in 0..=255u8 {
        assert_eq!(v[b as usize + 1], [b]);
    }
    assert_eq!(v.iter().map(Vec::len).max(), Some(128));
    assert_eq!(v[2423], b"\xc2\x80");
}

#[test]
fn spec_test_vectors() {
    let tok = need_vocab!("spec_test_vectors");
    let meta = json(fixture("meta.json"));
    let vectors = meta["spec_vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 11);
    for v in vectors {
        let s = v["s"].as_str().unwrap();
        assert_eq!(tok.encode(s), ids(&v["ids"]), "{s:?}");
        assert_eq!(tok.decode(&ids(&v["ids"])), s);
    }
    // Also written out, so the spec table itself is checked.
    assert_eq!(tok.encode("Hello world"), [33155, 40213]);
    assert_eq!(tok.encode("🙂"), [3319, 2417]);
    assert_eq!(tok.encode(&"a".repeat(200)), [53739; 25]);
    assert!(!tok.encode("<|endoftext|>").contains(&END_OF_TEXT));
}

#[test]
fn random_strings_match_trie_tokenizer() {
    let tok = need_vocab!("random_strings_match_trie_tokenizer");
    let text = std::fs::read_to_string(fixture("random.jsonl")).unwrap();
    let mut n = 0;
    let mut n_tokens = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let s = v["s"].as_str().unwrap();
        let want = ids(&v["ids"]);
        let got = tok.encode(s);
        assert_eq!(got, want, "string #{n}: {s:?}");
        assert_eq!(tok.decode(&got), s, "round trip #{n}");
        assert_eq!(tok.decode_bytes(&got), s.as_bytes());
        // Streaming, one token at a time, reassembles the text.
        let mut d = Utf8Stream::new();
        let mut out = String::new();
        for &id in &got {
            d.push(tok.token_bytes(id), |p| out.push_str(p));
        }
        d.finish(|p| out.push_str(p));
        assert_eq!(out, s);
        n += 1;
        n_tokens += got.len();
    }
    assert!(n >= 10_000, "only {n} strings");
    println!("{n} random strings, {n_tokens} tokens: identical to TRIE_TOKENIZER");
}

#[test]
fn multilingual_sample() {
    let tok = need_vocab!("multilingual_sample");
    let text = std::fs::read_to_string(fixture("multilingual.txt")).unwrap();
    let want = ids(&json(fixture("multilingual.json"))["ids"]);
    let got = tok.encode(&text);
    assert_eq!(got, want);
    assert_eq!(tok.decode(&got), text);
    let mut buf = vec![0u32; got.len()];
    assert_eq!(tok.encode_into(text.as_bytes(), &mut buf), Ok(got.len()));
    assert_eq!(buf, got);
}

#[test]
fn invalid_utf8_tokens_decode_without_panic() {
    let tok = need_vocab!("invalid_utf8_tokens_decode_without_panic");
    let v = vocab().unwrap();
    let mut invalid = 0;
    for (id, bytes) in v.iter().enumerate() {
        let id = id as u32;
        let got = tok.decode(&[id]);
        assert_eq!(got, String::from_utf8_lossy(bytes), "id {id}");
        if std::str::from_utf8(bytes).is_err() {
            invalid += 1;
            assert!(got.contains('\u{FFFD}'));
        }
    }
    assert_eq!(invalid, 486, "the bytes literals of the vocabulary");
    assert_eq!(tok.decode(&[129]), "\u{FFFD}"); // b'\x80'
    assert_eq!(tok.decode(&[3319]), "\u{FFFD}"); // b'\xf0\x9f', the first half of 🙂
    assert_eq!(tok.decode(&[END_OF_TEXT, 33155, u32::MAX]), "Hello");
    // Random sequences of byte tokens: identical to from_utf8_lossy of the bytes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..2000 {
        let mut seq = Vec::new();
        for _ in 0..(x % 12) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bias towards UTF-8 lead/continuation bytes and the multi-byte invalid tokens.
            seq.push(match x % 4 {
                0 => (x >> 8) as u32 % 256 + 1,
                1 => 0x80 + (x >> 8) as u32 % 0x40 + 1,
                2 => 0xE0 + (x >> 8) as u32 % 0x20 + 1,
                _ => [3319, 2417, 129, 33155, 10464][(x >> 8) as usize % 5],
            });
        }
        let bytes = tok.decode_bytes(&seq);
        assert_eq!(tok.decode(&seq), String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn streaming_decode_holds_back_split_characters() {
    let tok = need_vocab!("streaming_decode_holds_back_split_characters");
    let mut d = Utf8Stream::new();
    let mut out = String::new();
    d.push(tok.token_bytes(3319), |s| out.push_str(s));
    assert_eq!(out, "");
    assert_eq!(d.pending(), b"\xf0\x9f");
    d.push(tok.token_bytes(2417), |s| out.push_str(s));
    assert_eq!(out, "🙂");
    // Byte tokens of 你 (E4 BD A0) one at a time, then an invalid continuation.
    let mut out = String::new();
    for id in [0xE4 + 1, 0xBD + 1] {
        d.push(tok.token_bytes(id), |s| out.push_str(s));
    }
    assert_eq!(out, "");
    d.push(tok.token_bytes(0xA0 + 1), |s| out.push_str(s));
    assert_eq!(out, "你");
    d.push(tok.token_bytes(0xE4 + 1), |s| out.push_str(s));
    d.push(tok.token_bytes(b'a' as u32 + 1), |s| out.push_str(s));
    assert_eq!(out, "你\u{FFFD}a");
}

#[test]
fn occurrence_weights_follow_pipeline_generate() {
    let tok = need_vocab!("occurrence_weights_follow_pipeline_generate");
    for (s, w) in [(" ", 0.0), ("\t", 0.0), ("1", 0.0), ("12", 0.0), ("89", 0.0), ("  ", 1.0), ("\n", 1.0)] {
        let enc = tok.encode(s);
        assert_eq!(enc.len(), 1, "{s:?}");
        assert_eq!(tok.occurrence_weight(enc[0]), w, "{s:?}");
    }
    assert_eq!(tok.occurrence_weight(END_OF_TEXT), 1.0);
    assert_eq!(tok.occurrence_weight(129), 1.0);
    assert_eq!(tok.occurrence_weight(65535), 1.0);
}

// ---------------------------------------------------------------------------------------------
// GGUF vocabulary, in llama.cpp's layout (docs/FORMAT.md §4).

struct GgufWriter {
    kv: Vec<u8>,
    n: u64,
}

impl GgufWriter {
    fn new() -> Self {
        GgufWriter { kv: Vec::new(), n: 0 }
    }

    fn key(&mut self, k: &str, ty: u32) {
        self.kv.extend_from_slice(&(k.len() as u64).to_le_bytes());
        self.kv.extend_from_slice(k.as_bytes());
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.n += 1;
    }

    fn string(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        self.kv.extend_from_slice(&(v.len() as u64).to_le_bytes());
        self.kv.extend_from_slice(v.as_bytes());
    }

    fn strings(&mut self, k: &str, vs: &[String]) {
        self.key(k, 9);
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        self.kv.extend_from_slice(&(vs.len() as u64).to_le_bytes());
        for v in vs {
            self.kv.extend_from_slice(&(v.len() as u64).to_le_bytes());
            self.kv.extend_from_slice(v.as_bytes());
        }
    }

    fn i32s(&mut self, k: &str, vs: &[i32]) {
        self.key(k, 9);
        self.kv.extend_from_slice(&5u32.to_le_bytes());
        self.kv.extend_from_slice(&(vs.len() as u64).to_le_bytes());
        for v in vs {
            self.kv.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut f = b"GGUF".to_vec();
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // tensors
        f.extend_from_slice(&self.n.to_le_bytes());
        f.extend_from_slice(&self.kv);
        f.resize(f.len().div_ceil(32) * 32, 0);
        f
    }
}

/// The converter's token strings and types for `tokens` (id 0 empty): `<s>`, escaped tokens, pads.
fn llama_cpp_vocab(tokens: &[Vec<u8>], vocab_size: usize) -> (Vec<String>, Vec<i32>) {
    let mut strings = vec!["<s>".to_string()];
    let mut types = vec![3];
    for t in &tokens[1..] {
        let mut s = String::new();
        escape_token(t, &mut s).unwrap();
        assert!(s.is_ascii());
        strings.push(s);
        types.push(1);
    }
    for id in tokens.len()..vocab_size {
        strings.push(format!("[PAD{id}]"));
        types.push(5);
    }
    (strings, types)
}

#[test]
fn gguf_vocabulary_matches_the_vocab_file() {
    let tok = need_vocab!("gguf_vocabulary_matches_the_vocab_file");
    let v = vocab().unwrap();
    let (strings, types) = llama_cpp_vocab(v, 65536);
    let mut w = GgufWriter::new();
    w.string("general.architecture", "rwkv7");
    w.string("tokenizer.ggml.model", "rwkv");
    w.strings("tokenizer.ggml.tokens", &strings);
    w.i32s("tokenizer.ggml.token_type", &types);
    let file = w.finish();
    let gguf = Gguf::parse(&file).unwrap();

    // Built in caller storage: no allocator involved.
    let needed = Tokenizer::storage_words_for_gguf(&gguf).unwrap();
    let mut storage = vec![0u32; needed];
    let g = Tokenizer::from_gguf_in(&gguf, &mut storage).unwrap();
    assert_eq!(g.vocab_size(), 65536);
    assert_eq!(g.storage_words(), tok.storage_words() + 6, "same index plus six pad offsets");
    for id in 0..65536u32 {
        let want: &[u8] = v.get(id as usize).map_or(&[], |t| t);
        assert_eq!(g.token_bytes(id), want, "id {id}");
    }
    println!(
        "World vocab index: {} trie nodes, {} words ({:.2} MB) used, {} words to build ({} upper bound)",
        g.trie_nodes(),
        g.storage_words(),
        g.storage_words() as f64 * 4.0 / 1e6,
        g.build_words(),
        needed
    );
    // An exactly sized buffer suffices.
    let mut exact = vec![0u32; g.build_words()];
    let e = Tokenizer::from_gguf_in(&gguf, &mut exact).unwrap();
    assert_eq!(e.encode_iter(b"Hello world").collect::<Vec<_>>(), [33155, 40213]);
    // `<s>` and pads are never matched in raw text (unlike llama.cpp, like the official tokenizer).
    let text = "<s>[PAD65530]<|endoftext|> Hello world\n\n你好世界🙂";
    let got: Vec<u32> = g.encode_iter(text.as_bytes()).collect();
    assert_eq!(got, tok.encode(text));
    assert!(got.iter().all(|&t| (1..65530).contains(&t)));
    let random = std::fs::read_to_string(fixture("random.jsonl")).unwrap();
    for line in random.lines().take(2000) {
        let v: Value = serde_json::from_str(line).unwrap();
        let s = v["s"].as_str().unwrap();
        assert!(g.encode_iter(s.as_bytes()).eq(ids(&v["ids"])), "{s:?}");
    }

    // The owning constructor gives the same tokenizer.
    let owned = Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(owned.storage_words(), g.storage_words());
    assert_eq!(owned.encode(text), got);

    // Without token types every token is NORMAL, as in llama.cpp: then `<s>` matches id 0.
    let mut w = GgufWriter::new();
    w.string("tokenizer.ggml.model", "rwkv");
    w.strings("tokenizer.ggml.tokens", &strings);
    let file = w.finish();
    let untyped = Tokenizer::from_gguf(&Gguf::parse(&file).unwrap()).unwrap();
    assert_eq!(untyped.encode("<s>[PAD65535]"), [0, 65535]);
}

#[test]
fn gguf_errors() {
    let tiny: Vec<Vec<u8>> = std::iter::once(Vec::new()).chain((0..=255u8).map(|b| vec![b])).collect();
    let (strings, types) = llama_cpp_vocab(&tiny, 260);
    let build = |model: Option<&str>, tokens: bool, types: &[i32]| {
        let mut w = GgufWriter::new();
        if let Some(m) = model {
            w.string("tokenizer.ggml.model", m);
        }
        if tokens {
            w.strings("tokenizer.ggml.tokens", &strings);
        }
        if !types.is_empty() {
            w.i32s("tokenizer.ggml.token_type", types);
        }
        w.finish()
    };
    let err = |file: Vec<u8>| Tokenizer::from_gguf(&Gguf::parse(&file).unwrap()).unwrap_err();
    assert_eq!(err(build(None, true, &types)), TokenizerError::MissingKey("tokenizer.ggml.model"));
    assert_eq!(err(build(Some("gpt2"), true, &types)), TokenizerError::NotRwkv);
    assert_eq!(err(build(Some("rwkv"), false, &types)), TokenizerError::MissingKey("tokenizer.ggml.tokens"));
    assert_eq!(err(build(Some("rwkv"), true, &types[..10])), TokenizerError::LengthMismatch { tokens: 260, types: 10 });
    let mut no_byte_7 = types.clone();
    no_byte_7[8] = 5;
    assert_eq!(err(build(Some("rwkv"), true, &no_byte_7)), TokenizerError::MissingByte(7));
    let ok = build(Some("rwkv"), true, &types);
    let gguf = Gguf::parse(&ok).unwrap();
    let t = Tokenizer::from_gguf(&gguf).unwrap();
    let need = t.build_words();
    let mut small = vec![0u32; need - 1];
    assert_eq!(
        Tokenizer::from_gguf_in(&gguf, &mut small).unwrap_err(),
        TokenizerError::StorageTooSmall { needed: need, found: need - 1 }
    );
    let mut tiny_storage = vec![0u32; 10];
    assert_eq!(
        Tokenizer::from_gguf_in(&gguf, &mut tiny_storage).unwrap_err(),
        TokenizerError::StorageTooSmall { needed: Tokenizer::storage_words_for_gguf(&gguf).unwrap(), found: 10 }
    );
    assert_eq!(t.encode("ab\u{0}"), [b'a' as u32 + 1, b'b' as u32 + 1, 1]);
    let mut msg = String::new();
    write!(msg, "{}", TokenizerError::MissingByte(7)).unwrap();
    assert!(msg.contains("0x07"));
}
