//! Shared helpers: golden fixtures, conversion, and the tolerances of the comparison.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use rwkv7::{LoadedModel, Runner, ThreadPool};
use rwkv7_kernels::{CpuFeatures, KernelSet};
use rwkv7_quant::{ConvertOptions, OutType, convert};

/// Logit tolerance relative to the reference row's spread: `max|Δ| ≤ 1e-4 · max(1, std)`.
/// The official package's own RNN and sequence paths differ by up to 4e-6 on these
/// fixtures (tests/fixtures/README.md), and an independent float64 reference by up to
/// 5e-6, so 1e-4 leaves 20× room for legitimate f32 reordering while catching any
/// real math error (those move logits by 1e-2 or more).
pub const LOGIT_TOL: f32 = 1e-4;
/// Absolute tolerance on every float of the final recurrent state, same reasoning.
pub const STATE_TOL: f32 = 1e-4;

/// The golden fixtures generated from the official implementation.
pub const FIXTURES: [&str; 4] = ["h1_l3_bf16", "h3_l3_fp16", "h2_l3_fp32", "h4_l2_fp16"];

/// The metadata of one fixture (`golden.json`).
#[derive(serde::Deserialize)]
pub struct Golden {
    pub name: String,
    pub vocab: usize,
    pub n_layer: usize,
    pub n_embd: usize,
    pub tokens: Vec<u32>,
}

/// A fixture: its folder and metadata.
pub struct Fixture {
    pub dir: PathBuf,
    pub golden: Golden,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let dir = fixtures_dir().join(name);
        let text = std::fs::read_to_string(dir.join("golden.json")).expect("golden.json");
        Fixture { dir, golden: serde_json::from_str(&text).expect("golden.json parses") }
    }

    /// A raw little-endian f32 file of the fixture.
    pub fn f32s(&self, file: &str) -> Vec<f32> {
        let bytes = std::fs::read(self.dir.join(file)).expect(file);
        assert_eq!(bytes.len() % 4, 0, "{file}: not whole f32s");
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

/// Converts `input` to a GGUF of `out_type` in `dir` and opens it.
pub fn convert_and_open(input: &Path, dir: &Path, out_type: OutType) -> (PathBuf, LoadedModel) {
    let out = dir.join(format!("{}.{out_type:?}.gguf", input.file_name().unwrap().to_string_lossy()));
    convert(input, &out, &ConvertOptions::new(out_type)).expect("conversion succeeds");
    let model = LoadedModel::open(&out).expect("converted model opens");
    (out, model)
}

/// Restricts the tests that iterate kernel sets to the named ones (comma-separated, e.g.
/// `aarch64-neon-dotprod`), for emulated CI runs where every set costs minutes. Each name
/// must be a set this CPU can run (anything else fails the test rather than skipping).
/// Unset or empty: every set this CPU can run.
pub const KERNELS_ENV: &str = "RWKV7_E2E_KERNELS";

/// Every kernel set this machine can run (or those [`KERNELS_ENV`] names), printed so
/// the log shows what was exercised. The line goes straight to the stderr handle, which
/// the test harness does not capture, so it shows without `--nocapture`.
pub fn kernel_sets() -> Vec<KernelSet> {
    let cpu = CpuFeatures::detect();
    let sets: Vec<KernelSet> = match std::env::var(KERNELS_ENV) {
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|name| {
                let name = name.trim();
                KernelSet::by_name(cpu, name)
                    .unwrap_or_else(|| panic!("{KERNELS_ENV}: kernel set `{name}` is not available on this CPU"))
            })
            .collect(),
        _ => KernelSet::available(cpu).collect(),
    };
    let names: Vec<&str> = sets.iter().map(|k| k.name()).collect();
    let _ = writeln!(std::io::stderr(), "kernel sets exercised: {}", names.join(", "));
    sets
}

/// Population standard deviation.
pub fn std_dev(x: &[f32]) -> f32 {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt() as f32
}

pub fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold(0, |best, (i, &v)| if v > x[best] { i } else { best })
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Checks every row of `ours` against the reference: `max|Δ| ≤ LOGIT_TOL · max(1, std)`
/// and the same argmax. Returns the worst `max|Δ| / max(1, std)` seen.
pub fn check_logits(what: &str, ours: &[f32], reference: &[f32], vocab: usize) -> f32 {
    assert_eq!(ours.len(), reference.len(), "{what}: logits length");
    let mut worst = 0.0f32;
    for (t, (o, r)) in ours.chunks(vocab).zip(reference.chunks(vocab)).enumerate() {
        let scale = std_dev(r).max(1.0);
        let diff = max_abs_diff(o, r);
        assert!(diff <= LOGIT_TOL * scale, "{what}: token {t}: max|Δ| = {diff:e} > {:e}", LOGIT_TOL * scale);
        assert_eq!(argmax(o), argmax(r), "{what}: token {t}: argmax differs");
        worst = worst.max(diff / scale);
    }
    worst
}

/// Logits and final state from one mode.
pub struct Run {
    pub logits: Vec<f32>,
    pub state: Vec<f32>,
}

pub fn run_rnn(model: &LoadedModel, kernels: KernelSet, tokens: &[u32]) -> Run {
    run_rnn_on(model, kernels, tokens, ThreadPool::from_env())
}

pub fn run_seq(model: &LoadedModel, kernels: KernelSet, tokens: &[u32], chunk: usize) -> Run {
    run_seq_on(model, kernels, tokens, chunk, ThreadPool::from_env())
}

pub fn run_rnn_on(model: &LoadedModel, kernels: KernelSet, tokens: &[u32], pool: ThreadPool) -> Run {
    let mut runner = Runner::with_pool(model, kernels, 1, pool);
    let logits = runner.logits_rnn(tokens).expect("rnn forward");
    Run { logits, state: runner.state().to_vec() }
}

pub fn run_seq_on(model: &LoadedModel, kernels: KernelSet, tokens: &[u32], chunk: usize, pool: ThreadPool) -> Run {
    let mut runner = Runner::with_pool(model, kernels, chunk, pool);
    let logits = runner.logits_seq(tokens).expect("seq forward");
    Run { logits, state: runner.state().to_vec() }
}
