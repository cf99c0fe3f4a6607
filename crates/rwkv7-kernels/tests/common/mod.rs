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

/// `Σ_c w[r][c]·x[t][c]` per output, accumulated in f64 and rounded once: the reference
/// the scalar set itself is held to, so that code every set shares (the drivers that cut
/// rows, panels and token groups) is checked against something independent of it.
pub fn exact_dot(w: &[f32], x: &[f32], rows: usize, cols: usize, tokens: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * tokens];
    for t in 0..tokens {
        for r in 0..rows {
            out[t * rows + r] = (0..cols).map(|c| w[r * cols + c] as f64 * x[t * cols + c] as f64).sum::<f64>() as f32;
        }
    }
    out
}

/// The activations as the integer path of Q8_0/Q4_0 sees them: quantized (one scale per
/// 32) and dequantized per token.
pub fn quantized_activations(x: &[f32], cols: usize) -> Vec<f32> {
    quantized_activations_per(QK, x, cols)
}

/// The activations quantized with one scale per `block` values and dequantized, per
/// token (the K-quant integer path uses `block = 256`).
pub fn quantized_activations_per(block: usize, x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    if cols == 0 {
        return out;
    }
    for (xt, ot) in x.chunks(cols).zip(out.chunks_mut(cols)) {
        let mut qs = vec![0i8; cols];
        let mut d = vec![0f32; cols / block];
        quant::quantize_activations_per(block, xt, &mut qs, &mut d);
        for c in 0..cols {
            ot[c] = qs[c] as f32 * d[c / block];
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

/// ULP bounds of the SIMD sets against the scalar specification. Each is the maximum
/// measured over **every** f32 input by the `#[ignore]`d exhaustive tests in
/// `tests/vecmath.rs` (`x86_64-avx2`; the NEON sets run the same IEEE operation sequence,
/// and the dense sweeps of the normal suite check the bounds on them under qemu), with the
/// reason it is that size. `KERNELS.md` lists them next to the error against the
/// correctly rounded result.
///
/// `exp`: the vector `e^x` is within about 0.6 ULP of the true value (degree-5 fit error
/// 0.004 ULP, the `1 + t` rounding 0.5 ULP, reduction and `t` roundings ≈ 0.1 ULP) and
/// `expf` within about 0.5 ULP, so the two differ by at most 1 ULP. Measured: 1.
pub const EXP_ULPS: u64 = 1;
/// `sigmoid = 1/(1 + e)`: the `exp` difference (1 ULP of `e`, passed on in full where
/// `e ≫ 1`) plus the sum and the division, each rounded on both sides (0.5 ULP each):
/// 3 ULP of relative size `2⁻²³`; where `e` sits low in its binade and `σ` high in its
/// own, that is up to 4 ULP of `σ`. Measured: 4 (at `x ≈ −16.6`).
pub const SIGMOID_ULPS: u64 = 4;
/// `tanh`: the polynomial branch (`|x| < 0.5625`) is within about 0.6 ULP of the true
/// value, the `1 − 2/(e^{2|x|} + 1)` branch adds the `exp` error and two roundings to a
/// result ≥ 0.5 (no cancellation); musl's `tanhf` (via `expm1f`) is itself up to about
/// 1.5 ULP off for small `x`. Measured: 2 (at `x ≈ 0.0154`, where ours is correctly
/// rounded).
pub const TANH_ULPS: u64 = 2;
/// `time_decay = exp(−0.606531·σ(z))`: the `σ` error is damped by `|y| < 0.61` in
/// `exp(y)` (an error `δ` in `y` moves the result by `δ` relative), and the result lies in
/// `[0.545, 1)`, one binade; plus the `exp` difference. Measured: 2.
pub const DECAY_ULPS: u64 = 2;

/// RWKV-7's decay scale (`exp(−0.5)` as the official package writes it).
pub const DECAY_SCALE: f32 = 0.606531;

/// An in-place elementwise op of a kernel set (`KernelSet::exp`, …).
pub type MapOp = fn(&KernelSet, &mut [f32]);

/// The distance in units in the last place between two floats: how many representable
/// f32 lie between them (+0 and −0 are the same point; NaN is 0 from NaN and `u64::MAX`
/// from anything else). Subnormals count in their own (fixed) spacing, as every ULP
/// measure does.
pub fn ulps(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
    }
    let key = |x: f32| {
        let bits = x.to_bits();
        let mag = (bits & 0x7fff_ffff) as i64;
        if bits >> 31 == 1 { -mag } else { mag }
    };
    key(a).abs_diff(key(b))
}

/// The spacing of f32 at `x` (`2^(e−23)` for `|x|` in `[2^e, 2^(e+1))`, `2⁻¹⁴⁹` for
/// subnormals), as f64.
pub fn ulp_of(x: f32) -> f64 {
    let e = ((x.to_bits() >> 23) & 0xff) as i32;
    2f64.powi(e.max(1) - 127 - 23)
}

/// Every `stride`-th f32 bit pattern with magnitude up to `max` (both signs), plus the
/// endpoints: a dense, deterministic sweep over `[−max, max]` that visits every binade
/// in proportion to its share of the representable floats.
pub fn sweep(max: f32, stride: u32) -> Vec<f32> {
    let top = max.to_bits();
    let mut v = Vec::new();
    let mut b = 0u32;
    while b <= top {
        v.push(f32::from_bits(b));
        v.push(-f32::from_bits(b));
        b = b.saturating_add(stride);
    }
    v.push(max);
    v.push(-max);
    v
}

/// Values where elementwise approximations tend to break: zeros, subnormals, infinities,
/// NaN, the overflow and underflow thresholds of `expf`, and their neighbours.
pub fn special_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        1e-30,
        1e-7,
        0.5,
        0.5625,
        1.0,
        2.0,
        9.0,
        9.01,
        17.0,
        44.0,
        87.336_55,
        88.0,
        88.376_26,
        88.722_83,
        88.722_84,
        89.0,
        103.972_08,
        104.0,
        150.0,
        1e30,
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
    ];
    let around: Vec<f32> =
        v.iter().filter(|x| x.is_finite() && **x > 0.0).flat_map(|&x| [x.next_up(), x.next_down()]).collect();
    v.extend(around);
    let neg: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(neg);
    v
}
