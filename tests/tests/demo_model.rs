//! The bundled demo model (`models/demo/`, trained by the project) against the official
//! implementation: the bf16 GGUF must give the official `rwkv` package's fp32 logits
//! (recorded by `tools/train-demo/make_golden.py`) within the golden tolerance.

mod common;

use std::path::PathBuf;

use common::*;
use rwkv7::LoadedModel;

fn demo_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo")
}

#[derive(serde::Deserialize)]
struct DemoGolden {
    tokens: Vec<u32>,
    vocab: usize,
}

#[test]
fn bf16_demo_model_matches_the_official_implementation() {
    let dir = demo_dir();
    let golden: DemoGolden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).expect("golden.json");
    let bytes = std::fs::read(dir.join("golden_logits.f32")).unwrap();
    let reference: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let model = LoadedModel::open(dir.join("demo-bf16.gguf")).expect("demo model opens");
    for k in kernel_sets() {
        let seq = run_seq(&model, k, &golden.tokens, 64);
        let worst = check_logits(&format!("demo/{}/seq", k.name()), &seq.logits, &reference, golden.vocab);
        let rnn = run_rnn(&model, k, &golden.tokens);
        check_logits(&format!("demo/{}/rnn", k.name()), &rnn.logits, &reference, golden.vocab);
        eprintln!("demo [{}]: logits max|Δ|/max(1,std) {worst:.2e}", k.name());
    }
}
