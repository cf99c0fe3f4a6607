//! Numeric kernels for RWKV-7 inference.
//!
//! The scalar kernels in [`scalar`] are the specification: every SIMD kernel set is
//! tested against them. A [`KernelSet`] is a table of function pointers chosen once
//! (per model) from the CPU's features, so the hot loops pay one indirect call per
//! weight matrix, never per row or block.
//!
//! Kernel sets: `scalar` (everywhere), `x86_64-avx2` (AVX2+FMA+F16C, detected at run
//! time), `x86_64-avx512vnni` and `x86_64-avxvnni` (AVX2's with the Q8_0 integer
//! products done by `vpdpbusd`, detected at run time), `x86_64-vnni-emulated` (those
//! tiles with `vpdpbusd` emulated by AVX2, for testing them on CPUs without VNNI; never
//! the best set), `aarch64-neon` (baseline on aarch64) and `aarch64-neon-dotprod` (SDOT,
//! detected at run time). `KERNELS.md` next to this crate's manifest has the op × ISA
//! table, the measurements and the numeric contracts.
//!
//! Architecture invariant: `unsafe` appears only under `arch/`, and every SIMD kernel
//! set is reachable only through [`KernelSet::available`], which checks [`CpuFeatures`].
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[allow(unsafe_code)]
mod arch;
pub mod cpu;
pub mod kquant;
pub mod kquant_encode;
pub mod legacy;
pub mod math;
pub mod matrix;
pub mod quant;
pub mod scalar;

use half::{bf16, f16};

pub use cpu::CpuFeatures;
pub use kquant::{BlockQ4K, BlockQ5K, BlockQ6K, QK_K};
pub use legacy::{BlockQ4_1, BlockQ5_0, BlockQ5_1};
pub use matrix::{Matrix, MatrixData};
pub use quant::{BlockQ4_0, BlockQ8_0, QK};

/// One matmul call over a row range, with the weights already typed.
///
/// `w` is the whole row-major matrix (`rows · cols` elements, or `rows · cols / 32`
/// blocks), `x` holds `tokens` rows of `cols` activations, and the call computes output
/// rows `first..first + count`.
#[derive(Clone, Copy, Debug)]
pub struct MatmulJob<'a, W> {
    /// The whole weight matrix.
    pub w: &'a [W],
    /// Elements per weight row (= activations per token).
    pub cols: usize,
    /// Activations `[tokens, cols]`.
    pub x: &'a [f32],
    /// Number of tokens.
    pub tokens: usize,
    /// First output row.
    pub first: usize,
    /// Number of output rows.
    pub count: usize,
}

impl<W> MatmulJob<'_, W> {
    /// Asserts the shape contract (cheap; kernels call it before touching memory).
    ///
    /// `per_unit` is the number of elements per `W` (1, or 32 for blocks).
    #[inline]
    pub(crate) fn check(&self, per_unit: usize, out_len: usize) {
        assert!(self.cols.is_multiple_of(per_unit), "cols must hold whole blocks");
        let units_per_row = self.cols / per_unit;
        let end = self.first.checked_add(self.count).expect("row range overflows");
        assert!(end.checked_mul(units_per_row).is_some_and(|n| n <= self.w.len()), "row range outside the matrix");
        assert_eq!(self.x.len(), self.tokens * self.cols, "activation shape");
        assert_eq!(out_len, self.tokens * self.count, "output shape");
    }
}

/// A matmul kernel for weights of element (or block) type `W`:
/// `out[t][i] = Σ_c w[first + i][c] · x[t][c]`, `out` is `[tokens, count]`.
pub type MatmulFn<W> = fn(&MatmulJob<'_, W>, &mut [f32]);

/// How a kernel set multiplies block-quantized weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantPath {
    /// Quantize the activations to 8 bits (per 32-block scale) once per call, then
    /// integer block dot products (i8×i8→i32), scaled in f32.
    Integer,
    /// Widen each weight block to f32 and use f32 dot products (activations stay f32).
    Dequantize,
}

/// Both paths for one block type plus the default (chosen by measurement, KERNELS.md).
#[derive(Clone, Copy)]
pub(crate) struct QuantMatmul<W: 'static> {
    pub(crate) integer: MatmulFn<W>,
    pub(crate) dequantize: MatmulFn<W>,
    pub(crate) path: QuantPath,
}

impl<W> QuantMatmul<W> {
    fn get(&self) -> MatmulFn<W> {
        match self.path {
            QuantPath::Integer => self.integer,
            QuantPath::Dequantize => self.dequantize,
        }
    }
}

/// [`math::wkv7_head`]'s signature.
pub type Wkv7Fn = fn(&mut [f32], &[f32], &[f32], &[f32], &[f32], &[f32], &[f32], &mut [f32]);
/// [`math::layer_norm`]'s signature.
pub type LayerNormFn = fn(&[f32], &[f32], &[f32], f32, &mut [f32]);
/// [`math::group_norm`]'s signature.
pub type GroupNormFn = fn(&mut [f32], &[f32], &[f32], usize, f32);
/// [`quant::quantize_activations_per`]'s signature.
pub type QuantizeActsFn = fn(usize, &[f32], &mut [i8], &mut [f32]);
/// An elementwise map in place ([`math::exp_slice`], [`math::sigmoid_slice`],
/// [`math::tanh_slice`], [`math::relu_squared`]).
pub type MapFn = fn(&mut [f32]);
/// [`math::lerp`]'s signature.
pub type LerpFn = fn(&[f32], &[f32], &[f32], &mut [f32]);
/// [`math::bias_sigmoid`]'s signature.
pub type BiasSigmoidFn = fn(&[f32], &mut [f32]);
/// [`math::time_decay`]'s signature.
pub type TimeDecayFn = fn(&[f32], f32, &mut [f32]);
/// [`math::value_residual`]'s signature.
pub type ValueResidualFn = fn(&mut [f32], &[f32], &[f32], &[f32]);
/// [`math::key_prep`]'s signature.
pub type KeyPrepFn = fn(&mut [f32], &mut [f32], &[f32], &[f32], &[f32], usize, f32);

/// One coherent set of kernels, chosen once and passed by value.
#[derive(Clone, Copy)]
pub struct KernelSet {
    pub(crate) name: &'static str,
    pub(crate) f32: MatmulFn<f32>,
    pub(crate) f16: MatmulFn<f16>,
    pub(crate) bf16: MatmulFn<bf16>,
    pub(crate) q8_0: QuantMatmul<BlockQ8_0>,
    pub(crate) q4_0: QuantMatmul<BlockQ4_0>,
    pub(crate) kq: kquant::KQuantKernels,
    pub(crate) quantize_acts: QuantizeActsFn,
    pub(crate) wkv7_head: Wkv7Fn,
    pub(crate) layer_norm: LayerNormFn,
    pub(crate) group_norm: GroupNormFn,
    pub(crate) exp: MapFn,
    pub(crate) sigmoid: MapFn,
    pub(crate) tanh: MapFn,
    pub(crate) relu_squared: MapFn,
    pub(crate) lerp: LerpFn,
    pub(crate) bias_sigmoid: BiasSigmoidFn,
    pub(crate) time_decay: TimeDecayFn,
    pub(crate) value_residual: ValueResidualFn,
    pub(crate) key_prep: KeyPrepFn,
}

impl core::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

impl KernelSet {
    /// The portable scalar kernels: the reference every other set is tested against.
    pub const SCALAR: KernelSet = scalar::KERNELS;

    /// Every set this CPU can run, best first. Tests and benchmarks iterate this.
    pub fn available(cpu: CpuFeatures) -> impl Iterator<Item = KernelSet> {
        arch::simd_sets(cpu).into_iter().flatten().chain(core::iter::once(Self::SCALAR))
    }

    /// The fastest set this CPU can run.
    pub fn best(cpu: CpuFeatures) -> KernelSet {
        Self::available(cpu).next().unwrap_or(Self::SCALAR)
    }

    /// Looks a set up by its name among those this CPU can run (for overrides).
    pub fn by_name(cpu: CpuFeatures, name: &str) -> Option<KernelSet> {
        Self::available(cpu).find(|k| k.name == name)
    }

    /// The set's name: `scalar`, `x86_64-avx512vnni`, `x86_64-avxvnni`, `x86_64-avx2`,
    /// `x86_64-vnni-emulated`, `aarch64-neon` or `aarch64-neon-dotprod`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The paths used for Q8_0 and Q4_0 weights.
    pub fn quant_paths(&self) -> (QuantPath, QuantPath) {
        (self.q8_0.path, self.q4_0.path)
    }

    /// The same set with other Q8_0 / Q4_0 paths (for A/B measurements and tests; the
    /// defaults were chosen by measurement).
    pub fn with_quant_paths(mut self, q8_0: QuantPath, q4_0: QuantPath) -> KernelSet {
        self.q8_0.path = q8_0;
        self.q4_0.path = q4_0;
        self
    }

    /// Matrix × matrix: `out[t][r] = Σ_c w[r][c]·x[t][c]` for all rows of `w`.
    ///
    /// `x` holds `tokens` rows of `w.cols()` floats and `out` holds `tokens` rows of
    /// `w.rows()` floats. Shapes are checked here, once, in safe code.
    ///
    /// Every kernel computes a given `(token, row)` output with the same operations
    /// whatever `tokens` and the row range are, so decode (`tokens = 1`) and prefill agree
    /// bit for bit within one kernel set.
    pub fn matmul(&self, w: &Matrix<'_>, x: &[f32], out: &mut [f32], tokens: usize) {
        self.matmul_rows(w, x, out, tokens, 0, w.rows());
    }

    /// Like [`KernelSet::matmul`] but for rows `first..first + count` only, so callers
    /// can split a matrix across threads. `out` holds `tokens × count` floats.
    pub fn matmul_rows(&self, w: &Matrix<'_>, x: &[f32], out: &mut [f32], tokens: usize, first: usize, count: usize) {
        assert!(first.checked_add(count).is_some_and(|end| end <= w.rows()), "row range outside the matrix");
        assert_eq!(x.len(), tokens * w.cols(), "activation shape");
        assert_eq!(out.len(), tokens * count, "output shape");
        let cols = w.cols();
        match w.data() {
            MatrixData::F32(d) => (self.f32)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::F16(d) => (self.f16)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::BF16(d) => (self.bf16)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q8_0(d) => (self.q8_0.get())(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q4_0(d) => (self.q4_0.get())(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q4K(d) => (self.kq.q4_k)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q5K(d) => (self.kq.q5_k)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q6K(d) => (self.kq.q6_k)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q4_1(d) => (self.kq.q4_1)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q5_0(d) => (self.kq.q5_0)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
            MatrixData::Q5_1(d) => (self.kq.q5_1)(&MatmulJob { w: d, cols, x, tokens, first, count }, out),
        }
    }

    /// This set's activation quantizer (bit-identical to [`quant::quantize_activations`]).
    pub fn quantize_activations(&self, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
        self.quantize_activations_per(QK, x, qs, d)
    }

    /// This set's activation quantizer with one scale per `block` values, a multiple of 32
    /// (bit-identical to [`quant::quantize_activations_per`]).
    pub fn quantize_activations_per(&self, block: usize, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
        assert!(block > 0 && block.is_multiple_of(QK), "quantize_activations: block must be a multiple of 32");
        assert_eq!(x.len(), qs.len(), "quantize_activations: qs must have x's length");
        assert_eq!(x.len(), d.len() * block, "quantize_activations: one scale per block");
        (self.quantize_acts)(block, x, qs, d)
    }

    /// One WKV-7 step for one head; see [`math::wkv7_head`] (the specification).
    pub fn wkv7_head(
        &self,
        state: &mut [f32],
        r: &[f32],
        decay: &[f32],
        k: &[f32],
        v: &[f32],
        kk: &[f32],
        a: &[f32],
        y: &mut [f32],
    ) {
        let n = r.len();
        assert_eq!(state.len(), n * n, "wkv7_head: state must be N×N");
        for s in [decay, k, v, kk, a] {
            assert_eq!(s.len(), n, "wkv7_head: vectors must have length N");
        }
        assert_eq!(y.len(), n, "wkv7_head: y must have length N");
        (self.wkv7_head)(state, r, decay, k, v, kk, a, y)
    }

    /// Layer norm; see [`math::layer_norm`] (the specification).
    pub fn layer_norm(&self, x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
        let n = x.len();
        assert!(w.len() == n && b.len() == n && out.len() == n, "layer_norm: lengths differ");
        (self.layer_norm)(x, w, b, eps, out)
    }

    /// Group norm in place; see [`math::group_norm`] (the specification).
    pub fn group_norm(&self, x: &mut [f32], w: &[f32], b: &[f32], group: usize, eps: f32) {
        assert!(group > 0 && x.len().is_multiple_of(group), "group_norm: x must hold whole groups");
        assert!(w.len() == x.len() && b.len() == x.len(), "group_norm: lengths differ");
        (self.group_norm)(x, w, b, group, eps)
    }

    /// `x ← e^x` elementwise; see [`math::exp_slice`] (the specification).
    pub fn exp(&self, x: &mut [f32]) {
        (self.exp)(x)
    }

    /// `x ← σ(x)` elementwise; see [`math::sigmoid_slice`] (the specification).
    pub fn sigmoid(&self, x: &mut [f32]) {
        (self.sigmoid)(x)
    }

    /// `x ← tanh(x)` elementwise; see [`math::tanh_slice`] (the specification).
    pub fn tanh(&self, x: &mut [f32]) {
        (self.tanh)(x)
    }

    /// `x ← max(x, 0)²` elementwise; see [`math::relu_squared`] (the specification).
    pub fn relu_squared(&self, x: &mut [f32]) {
        (self.relu_squared)(x)
    }

    /// The token-shift lerp `out = x + sx·mix`, `mix` repeated for every row; see
    /// [`math::lerp`] (the specification).
    pub fn lerp(&self, x: &[f32], sx: &[f32], mix: &[f32], out: &mut [f32]) {
        assert!(sx.len() == x.len() && out.len() == x.len(), "lerp: lengths differ");
        check_rows("lerp", x.len(), mix.len());
        (self.lerp)(x, sx, mix, out)
    }

    /// `x ← σ(bias + x)`, `bias` repeated for every row; see [`math::bias_sigmoid`].
    pub fn bias_sigmoid(&self, bias: &[f32], x: &mut [f32]) {
        check_rows("bias_sigmoid", x.len(), bias.len());
        (self.bias_sigmoid)(bias, x)
    }

    /// The decay `w ← exp(−scale·σ(w0 + w))`, `w0` repeated for every row; see
    /// [`math::time_decay`] (the specification).
    pub fn time_decay(&self, w0: &[f32], scale: f32, w: &mut [f32]) {
        check_rows("time_decay", w.len(), w0.len());
        (self.time_decay)(w0, scale, w)
    }

    /// The value residual `v ← v + (v_first − v)·σ(v0 + gate)`, `v0` repeated for every
    /// row; see [`math::value_residual`] (the specification).
    pub fn value_residual(&self, v: &mut [f32], v_first: &[f32], v0: &[f32], gate: &[f32]) {
        assert!(v_first.len() == v.len() && gate.len() == v.len(), "value_residual: lengths differ");
        check_rows("value_residual", v.len(), v0.len());
        (self.value_residual)(v, v_first, v0, gate)
    }

    /// The key preparation of the time mix: `kk = k·k_k` L2-normalised per head of `head`
    /// elements (denominator clamped to `eps`), then `k ← k·(1 + (a − 1)·k_a)`; `k_k` and
    /// `k_a` repeated for every row. See [`math::key_prep`] (the specification).
    pub fn key_prep(&self, k: &mut [f32], kk: &mut [f32], a: &[f32], k_k: &[f32], k_a: &[f32], head: usize, eps: f32) {
        assert!(kk.len() == k.len() && a.len() == k.len() && k_a.len() == k_k.len(), "key_prep: lengths differ");
        check_rows("key_prep", k.len(), k_k.len());
        assert!(head > 0 && k_k.len().is_multiple_of(head), "key_prep: rows must hold whole heads");
        (self.key_prep)(k, kk, a, k_k, k_a, head, eps)
    }
}

/// Asserts that `len` floats are whole rows of `row` floats (any `len` is 0 rows of 0).
fn check_rows(op: &str, len: usize, row: usize) {
    assert!(if row == 0 { len == 0 } else { len.is_multiple_of(row) }, "{op}: not whole rows of {row}");
}
