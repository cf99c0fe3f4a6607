//! Shared helpers for the conformance tests: seeded data, kernel-set enumeration, and
//! the float error bounds (each with the reason for its size).
#![allow(dead_code)]

use half::{bf16, f16};
use rwkv7_kernels::quant::{self, BlockQ4_0, BlockQ8_0, QK};
use rwkv7_kernels::{CpuFeatures, KernelSet, QuantPath};

/// xorshift64* — deterministic, seeded, no dependencies (rten's `XorShiftRng` idea).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `n` floats, uniform in [-1, 1) times a per-32-block magnitude `10^k`, `k ∈ [-3, 2]`,
    /// so blocks with very different scales meet in one row (as in real activations).
    pub fn activations(&mut self, n: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(n);
        let mut mag = 1.0f32;
        for i in 0..n {
            if i % QK == 0 {
                mag = 10f32.powi(self.below(6) as i32 - 3);
            }
            v.push(self.f32() * mag);
        }
        v
    }
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    /// Random Q8_0 blocks with every code in [-128, 127] possible (a foreign file may hold
    /// −128 even though ggml's quantizer never writes it) and scales in [2⁻¹², 2⁻²].
    pub fn q8_blocks(&mut self, n: usize) -> Vec<BlockQ8_0> {
        (0..n)
            .map(|_| {
                let mut qs = [0i8; QK];
                qs.iter_mut().for_each(|q| *q = self.next_u64() as i8);
                BlockQ8_0::new(self.scale(), qs)
            })
            .collect()
    }
    /// Random Q4_0 blocks (all 16 codes) with scales in [2⁻¹², 2⁻²].
    pub fn q4_blocks(&mut self, n: usize) -> Vec<BlockQ4_0> {
        (0..n)
            .map(|_| {
                let mut codes = [0u8; QK];
                codes.iter_mut().for_each(|c| *c = (self.next_u64() & 15) as u8);
                BlockQ4_0::new(self.scale(), codes)
            })
            .collect()
    }
    fn scale(&mut self) -> f16 {
        let e = self.below(11) as i32 + 2;
        f16::from_f32((1.0 + self.f32().abs()) * 2f32.powi(-e))
    }
}

/// Every kernel set this machine can run, printed so the log shows what was exercised.
pub fn kernel_sets(op: &str) -> Vec<KernelSet> {
    let sets: Vec<KernelSet> = KernelSet::available(cpu()).collect();
    let names: Vec<&str> = sets.iter().map(|k| k.name()).collect();
    println!("{op}: kernel sets exercised: {}", names.join(", "));
    sets
}

/// Runtime detection when the crate is built with `std`, else what the target guarantees.
pub fn cpu() -> CpuFeatures {
    #[cfg(feature = "std")]
    {
        CpuFeatures::detect()
    }
    #[cfg(not(feature = "std"))]
    {
        CpuFeatures::compile_time()
    }
}

pub const PATHS: [QuantPath; 2] = [QuantPath::Integer, QuantPath::Dequantize];

/// `k` with both block types on `path`.
pub fn on_path(k: KernelSet, path: QuantPath) -> KernelSet {
    k.with_quant_paths(path, path)
}

/// Reordered f32 summation bound. Any order of summing `n` rounded products (each
/// product or FMA rounding included) differs from the exact dot product by at most
/// `γ_{n+1}·Σ|w·x|` with `γ_k = k·u/(1−k·u)`, `u = 2⁻²⁴` (Higham, *Accuracy and
/// Stability of Numerical Algorithms*, §3.1). Two such computations (scalar and SIMD)
/// differ by at most twice that: `(n+2)·2u·Σ|w·x| = (n+2)·ε·Σ|w·x|` with `ε = 2⁻²³`.
/// `n` is the number of f32 terms: `cols` for the float paths, and at most `cols` for the
/// integer path too (a block contributes ≤ 8 lane partials, ≤ 32 elements). Rounding of
/// `Σ|w·x|` itself is covered by the slack of `γ` versus `k·u`.
pub fn dot_bound(n: usize, abs_sum: f64) -> f64 {
    (n as f64 + 2.0) * f32::EPSILON as f64 * abs_sum
}

/// Asserts `|got − want| ≤ bound[i]` elementwise, printing the first failures.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], bound: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = 0;
    for i in 0..got.len() {
        let d = (got[i] as f64 - want[i] as f64).abs();
        if d > bound[i] || got[i].is_nan() != want[i].is_nan() {
            if bad < 3 {
                eprintln!("{what}: [{i}] got {:e}, want {:e}, |Δ| {d:e} > {:e}", got[i], want[i], bound[i]);
            }
            bad += 1;
        }
    }
    assert_eq!(bad, 0, "{what}: {bad} of {} outside the bound", got.len());
}

/// Asserts bit equality.
pub fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        assert_eq!(got[i].to_bits(), want[i].to_bits(), "{what}: [{i}] got {:e}, want {:e}", got[i], want[i]);
    }
}

/// Weights of one test matrix in every storage type, plus their exact f32 values.
pub struct Weights {
    pub f32: Vec<f32>,
    pub f16: Vec<f16>,
    pub bf16: Vec<bf16>,
    pub q8: Vec<BlockQ8_0>,
    pub q4: Vec<BlockQ4_0>,
}

impl Weights {
    pub fn random(rng: &mut Rng, rows: usize, cols: usize) -> Self {
        let f32 = rng.f32s(rows * cols);
        let f16 = f32.iter().map(|&v| f16::from_f32(v)).collect();
        let bf16 = f32.iter().map(|&v| bf16::from_f32(v)).collect();
        let (q8, q4) = if cols.is_multiple_of(QK) {
            (rng.q8_blocks(rows * cols / QK), rng.q4_blocks(rows * cols / QK))
        } else {
            (Vec::new(), Vec::new())
        };
        Weights { f32, f16, bf16, q8, q4 }
    }
}

/// `Σ_c |w[r][c]|·|x[t][c]|` per output, in f64 (the scale of the rounding error).
pub fn abs_dot(w: &[f32], x: &[f32], rows: usize, cols: usize, tokens: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * tokens];
    for t in 0..tokens {
        for r in 0..rows {
            out[t * rows + r] =
                (0..cols).map(|c| (w[r * cols + c] as f64).abs() * (x[t * cols + c] as f64).abs()).sum::<f64>();
        }
    }
    out
}

/// The activations as the integer path sees them: quantized and dequantized per token.
pub fn quantized_activations(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    if cols == 0 {
        return out;
    }
    for (xt, ot) in x.chunks(cols).zip(out.chunks_mut(cols)) {
        let mut qs = vec![0i8; cols];
        let mut d = vec![0f32; cols / QK];
        quant::quantize_activations(xt, &mut qs, &mut d);
        for c in 0..cols {
            ot[c] = qs[c] as f32 * d[c / QK];
        }
    }
    out
}

pub fn dequant_q8(b: &[BlockQ8_0]) -> Vec<f32> {
    let mut out = vec![0.0; b.len() * QK];
    quant::dequantize_row_q8_0(b, &mut out);
    out
}

pub fn dequant_q4(b: &[BlockQ4_0]) -> Vec<f32> {
    let mut out = vec![0.0; b.len() * QK];
    quant::dequantize_row_q4_0(b, &mut out);
    out
}
