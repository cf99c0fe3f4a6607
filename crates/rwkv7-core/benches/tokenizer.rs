//! Encoding throughput of the World tokenizer on mixed multilingual text with the real vocabulary.
//!
//! ```text
//! cargo bench -p rwkv7-core --bench tokenizer
//! ```
//!
//! The vocabulary comes from `$RWKV7_VOCAB`, default `<repo>/../shared/vocab/rwkv_vocab_v20230424.txt`;
//! without it the bench prints `SKIPPED: …` and measures nothing. The text is
//! `tests/fixtures/tokenizer/multilingual.txt` (13 scripts, emoji, code, CRLF) repeated to 1 MiB.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rwkv7_core::tokenizer::{OwnedTokenizer, Tokenizer, parse_vocab_file};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load() -> Option<(OwnedTokenizer, Vec<u8>)> {
    let path = std::env::var_os("RWKV7_VOCAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/vocab/rwkv_vocab_v20230424.txt"));
    let Ok(vocab) = std::fs::read_to_string(&path) else {
        println!("SKIPPED: tokenizer bench: vocabulary not found at {} (set RWKV7_VOCAB)", path.display());
        return None;
    };
    let tokens = parse_vocab_file(&vocab).expect("vocabulary parses");
    let tok = Tokenizer::from_tokens(&tokens).expect("tokenizer builds");
    let sample = std::fs::read(repo().join("tests/fixtures/tokenizer/multilingual.txt")).expect("multilingual.txt");
    let mut text = Vec::with_capacity(1 << 20);
    while text.len() < 1 << 20 {
        text.extend_from_slice(&sample);
    }
    Some((tok, text))
}

fn bench(c: &mut Criterion) {
    let Some((tok, text)) = load() else { return };
    let n_tokens = tok.encode_iter(&text).count();
    println!(
        "tokenizer bench: {} bytes -> {} tokens ({:.2} bytes/token); index: {} trie nodes, {} storage words",
        text.len(),
        n_tokens,
        text.len() as f64 / n_tokens as f64,
        tok.trie_nodes(),
        tok.storage_words()
    );
    let mut g = c.benchmark_group("tokenizer");
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut out = vec![0u32; n_tokens];
    g.bench_function("encode_multilingual_1MiB", |b| {
        b.iter(|| tok.encode_into(black_box(&text), &mut out).unwrap());
    });
    g.bench_function("decode_multilingual_1MiB", |b| {
        b.iter(|| {
            let mut n = 0usize;
            tok.decode_with(black_box(&out), |s| n += s.len());
            n
        });
    });
    g.finish();
    let mut g = c.benchmark_group("tokenizer_build");
    g.sample_size(10);
    let vocab_tokens: Vec<Vec<u8>> = (0..tok.vocab_size() as u32).map(|i| tok.token_bytes(i).to_vec()).collect();
    g.bench_function("build_world_vocab", |b| b.iter(|| Tokenizer::from_tokens(black_box(&vocab_tokens)).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
