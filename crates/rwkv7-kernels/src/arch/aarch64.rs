//! `aarch64-neon` (baseline Armv8 Advanced SIMD: Cortex-A53/A72, Raspberry Pi 3/4) and
//! `aarch64-neon-dotprod` (Armv8.2 SDOT: Cortex-A55/A76, Raspberry Pi 5, most phones).
//!
//! NEON is part of the aarch64 baseline, so the `NEON` set is sound on every aarch64
//! CPU. [`NEON_DOTPROD`] is only handed out by `arch::simd_sets` when
//! [`crate::CpuFeatures`] reports `dotprod`, which is the invariant every `// SAFETY:`
//! comment on a dotprod entry point relies on.
//!
//! SDOT is emitted through `asm!` ([`sdot`]) because `vdotq_s32` is unstable on Rust
//! 1.95 (rust-lang/rust#117224); when it stabilises, [`sdot`] becomes one intrinsic call.

use core::arch::aarch64::*;
use core::arch::asm;

use half::{bf16, f16};

use super::vector::{self, F32s};
use super::{FloatTile, QuantTile, QuantizeActs, float_matmul, quant_matmul_deq, quant_matmul_int};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK, f16_bits_to_f32};
use crate::{KernelSet, MatmulJob, QuantMatmul, QuantPath, math};

/// The plain NEON kernel set.
pub(crate) const NEON: KernelSet = KernelSet {
    name: "aarch64-neon",
    f32: neon::matmul_f32,
    f16: neon::matmul_f16,
    bf16: neon::matmul_bf16,
    // Not measured on hardware (qemu timings are meaningless); the integer path needs
    // ~3 instructions per 16 MACs against ~14 for widening to f32 (KERNELS.md).
    q8_0: QuantMatmul { integer: neon::matmul_q8_0_int, dequantize: neon::matmul_q8_0_deq, path: QuantPath::Integer },
    q4_0: QuantMatmul { integer: neon::matmul_q4_0_int, dequantize: neon::matmul_q4_0_deq, path: QuantPath::Integer },
    kq: super::aarch64_kquant::KQ_NEON,
    quantize_acts: neon::quantize_acts,
    wkv7_head,
    layer_norm: neon::layer_norm,
    group_norm: neon::group_norm,
    exp: neon::exp,
    sigmoid: neon::sigmoid,
    tanh: neon::tanh,
    relu_squared: neon::relu_squared,
    lerp: neon::lerp,
    bias_sigmoid: neon::bias_sigmoid,
    time_decay: neon::time_decay,
    value_residual: neon::value_residual,
    key_prep: neon::key_prep,
};

/// The NEON + SDOT kernel set (float kernels are the plain NEON ones).
pub(crate) const NEON_DOTPROD: KernelSet = KernelSet {
    name: "aarch64-neon-dotprod",
    q8_0: QuantMatmul { integer: dot::matmul_q8_0_int, dequantize: neon::matmul_q8_0_deq, path: QuantPath::Integer },
    q4_0: QuantMatmul { integer: dot::matmul_q4_0_int, dequantize: neon::matmul_q4_0_deq, path: QuantPath::Integer },
    kq: super::aarch64_kquant::KQ_DOT,
    ..NEON
};

/// Safe entry points of the plain NEON set.
mod neon {
    use super::*;

    macro_rules! entry {
        ($name:ident, $w:ty, $driver:ident) => {
            pub(super) fn $name(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
                // SAFETY: NEON is part of the aarch64 baseline.
                unsafe { $driver::<$w, Neon>(job, out) }
            }
        };
    }

    entry!(matmul_f32, f32, float_matmul);
    entry!(matmul_f16, f16, float_matmul);
    entry!(matmul_bf16, bf16, float_matmul);
    entry!(matmul_q8_0_int, BlockQ8_0, quant_matmul_int);
    entry!(matmul_q8_0_deq, BlockQ8_0, quant_matmul_deq);
    entry!(matmul_q4_0_int, BlockQ4_0, quant_matmul_int);
    entry!(matmul_q4_0_deq, BlockQ4_0, quant_matmul_deq);

    pub(super) fn quantize_acts(block: usize, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
        assert!(block.is_multiple_of(QK) && x.len() == qs.len() && x.len() == d.len() * block, "quantize_acts: shapes");
        // SAFETY: shapes asserted above; NEON is baseline.
        unsafe { <Neon as QuantizeActs>::quantize(x.as_ptr(), qs.as_mut_ptr(), d.as_mut_ptr(), block, d.len()) }
    }

    /// A safe entry point `$name` running the generic `vector::$op` with [`F32x4`] lanes.
    macro_rules! vector_entry {
        ($name:ident, $op:ident ($($arg:ident: $ty:ty),*)) => {
            pub(super) fn $name($($arg: $ty),*) {
                // SAFETY: NEON is part of the aarch64 baseline.
                unsafe { vector::$op::<F32x4>($($arg),*) }
            }
        };
    }

    vector_entry!(layer_norm, layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]));
    vector_entry!(group_norm, group_norm(x: &mut [f32], w: &[f32], b: &[f32], group: usize, eps: f32));
    vector_entry!(exp, exp_slice(x: &mut [f32]));
    vector_entry!(sigmoid, sigmoid_slice(x: &mut [f32]));
    vector_entry!(tanh, tanh_slice(x: &mut [f32]));
    vector_entry!(relu_squared, relu_squared(x: &mut [f32]));
    vector_entry!(lerp, lerp(x: &[f32], sx: &[f32], mix: &[f32], out: &mut [f32]));
    vector_entry!(bias_sigmoid, bias_sigmoid(bias: &[f32], x: &mut [f32]));
    vector_entry!(time_decay, time_decay(w0: &[f32], scale: f32, w: &mut [f32]));
    vector_entry!(value_residual, value_residual(v: &mut [f32], v_first: &[f32], v0: &[f32], gate: &[f32]));
    vector_entry!(
        key_prep,
        key_prep(k: &mut [f32], kk: &mut [f32], a: &[f32], k_k: &[f32], k_a: &[f32], head: usize, eps: f32)
    );
}

/// Safe entry points of the dotprod set.
mod dot {
    use super::*;

    macro_rules! entry {
        ($name:ident, $body:ident, $w:ty) => {
            pub(super) fn $name(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
                // SAFETY: only reachable through `NEON_DOTPROD`, which is handed out only
                // when the CPU has dotprod (module docs).
                unsafe { $body(job, out) }
            }

            #[target_feature(enable = "neon,dotprod")]
            unsafe fn $body(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
                // SAFETY: dotprod is enabled on this function, as `NeonDot` needs.
                unsafe { quant_matmul_int::<$w, NeonDot>(job, out) }
            }
        };
    }

    entry!(matmul_q8_0_int, matmul_q8_0_int_dot, BlockQ8_0);
    entry!(matmul_q4_0_int, matmul_q4_0_int_dot, BlockQ4_0);
}

/// The NEON activation quantizer for other drivers (the K-quant tiles).
///
/// # Safety
/// As [`QuantizeActs::quantize`] (baseline NEON).
#[inline(always)]
pub(super) unsafe fn quantize_blocks(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
    // SAFETY: forwarded contract.
    unsafe { <Neon as QuantizeActs>::quantize(x, qs, d, block, nb) }
}

/// Marker for plain NEON micro-kernels.
struct Neon;
/// Marker for NEON + SDOT micro-kernels.
struct NeonDot;

/// `acc + Σ` of 4-byte groups: `acc[i] += Σ_{j<4} a[4i+j]·b[4i+j]` (SDOT).
///
/// # Safety
/// The CPU must support dotprod.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: SDOT only reads and writes the named vector registers; dotprod is enabled.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// The integer block dot of one ISA variant: `Σ` over 32 `i8×i8` products, as 4 i32
/// lanes whose total is the exact block sum (the split across lanes differs per variant).
trait IntDot {
    /// # Safety
    /// The CPU must support the variant's instructions; `|x| ≤ 127`.
    unsafe fn dot32(w: [int8x16_t; 2], x: [int8x16_t; 2]) -> int32x4_t;
}

impl IntDot for Neon {
    /// `smull` + `smlal2` pair products in i16 (`|2·128·127| < 2¹⁵`), then pairwise widen.
    #[inline(always)]
    unsafe fn dot32(w: [int8x16_t; 2], x: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: baseline NEON.
        unsafe {
            let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w[0]), vget_low_s8(x[0])), w[0], x[0]);
            let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w[1]), vget_low_s8(x[1])), w[1], x[1]);
            vpadalq_s16(vpaddlq_s16(p0), p1)
        }
    }
}

impl IntDot for NeonDot {
    #[inline(always)]
    unsafe fn dot32(w: [int8x16_t; 2], x: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: the caller guarantees dotprod.
        unsafe { sdot(sdot(vdupq_n_s32(0), w[0], x[0]), w[1], x[1]) }
    }
}

/// Float weight types that load 4 elements as 4 f32 lanes.
trait Load4: Copy {
    /// # Safety
    /// `p` valid for 4 elements.
    unsafe fn load4(p: *const Self) -> float32x4_t;
    fn widen(self) -> f32;
}

impl Load4 for f32 {
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> float32x4_t {
        // SAFETY: 4 readable floats (caller).
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Load4 for f16 {
    /// The exact integer rebias of [`f16_bits_to_f32`], 4 lanes at a time (no FP16
    /// hardware needed).
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> float32x4_t {
        // SAFETY: 4 readable halves (caller); baseline NEON.
        unsafe {
            let h = vmovl_u16(vld1_u16(p.cast()));
            let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
            let em = vandq_u32(h, vdupq_n_u32(0x7fff));
            let shifted = vshlq_n_u32::<13>(em);
            let finite = vmulq_f32(vreinterpretq_f32_u32(shifted), vdupq_n_f32(f32::from_bits(0x7780_0000)));
            let quiet = vandq_u32(vcgtq_u32(em, vdupq_n_u32(0x7c00)), vdupq_n_u32(0x0040_0000));
            let special = vorrq_u32(vorrq_u32(shifted, vdupq_n_u32(0x7f80_0000)), quiet);
            let is_special = vcgeq_u32(em, vdupq_n_u32(0x7c00));
            let bits = vbslq_u32(is_special, special, vreinterpretq_u32_f32(finite));
            vreinterpretq_f32_u32(vorrq_u32(bits, sign))
        }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Load4 for bf16 {
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> float32x4_t {
        // SAFETY: 4 readable bf16 (caller); bf16 → f32 is a 16-bit left shift (exact).
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p.cast()))) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl<D: IntDot, W: Load4> FloatTile<W> for D {
    /// Per output: one 4-lane FMA accumulator over `c` in steps of 4, reduced with
    /// `faddp` (`vaddvq_f32`), then the `cols % 4` tail added left to right.
    #[inline(always)]
    unsafe fn tile<const R: usize, const T: usize>(w: [*const W; R], x: [*const f32; T], cols: usize) -> [[f32; T]; R] {
        // SAFETY: `cols` readable elements behind every pointer (caller); loads stay below `cols`.
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); T]; R];
            let mut c = 0;
            while c + 4 <= cols {
                let mut xv = [vdupq_n_f32(0.0); T];
                for t in 0..T {
                    xv[t] = vld1q_f32(x[t].add(c));
                }
                for r in 0..R {
                    let wv = W::load4(w[r].add(c));
                    for t in 0..T {
                        acc[r][t] = vfmaq_f32(acc[r][t], wv, xv[t]);
                    }
                }
                c += 4;
            }
            let mut res = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    let mut s = vaddvq_f32(acc[r][t]);
                    for cc in c..cols {
                        s += (*w[r].add(cc)).widen() * *x[t].add(cc);
                    }
                    res[r][t] = s;
                }
            }
            res
        }
    }
}

/// Block types as seen by the NEON quant tiles.
trait QBlock {
    /// The 32 signed codes in element order, as two 16-byte vectors.
    ///
    /// # Safety
    /// `p` valid for one block.
    unsafe fn codes(p: *const Self) -> [int8x16_t; 2];
    /// The scale as f32.
    ///
    /// # Safety
    /// `p` valid for one block.
    unsafe fn scale(p: *const Self) -> f32;
}

impl QBlock for BlockQ8_0 {
    #[inline(always)]
    unsafe fn codes(p: *const Self) -> [int8x16_t; 2] {
        // SAFETY: `qs` is 32 readable bytes inside the block.
        unsafe {
            let q = core::ptr::addr_of!((*p).qs).cast::<i8>();
            [vld1q_s8(q), vld1q_s8(q.add(16))]
        }
    }
    #[inline(always)]
    unsafe fn scale(p: *const Self) -> f32 {
        // SAFETY: `p` points at a readable block.
        f16_bits_to_f32(u16::from_le_bytes(unsafe { (*p).d }))
    }
}

impl QBlock for BlockQ4_0 {
    #[inline(always)]
    unsafe fn codes(p: *const Self) -> [int8x16_t; 2] {
        // SAFETY: `qs` is 16 readable bytes inside the block.
        unsafe {
            let q = vld1q_u8(core::ptr::addr_of!((*p).qs).cast());
            let eight = vdupq_n_s8(8);
            let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
            [lo, hi]
        }
    }
    #[inline(always)]
    unsafe fn scale(p: *const Self) -> f32 {
        // SAFETY: `p` points at a readable block.
        f16_bits_to_f32(u16::from_le_bytes(unsafe { (*p).d }))
    }
}

/// Codes `4k..4k + 4` of a block (given as its two 16-byte halves) widened to f32.
///
/// # Safety
/// Baseline NEON; `k < 8`.
#[inline(always)]
unsafe fn codes4_f32(c: &[int8x16_t; 2], k: usize) -> float32x4_t {
    // SAFETY: register-only NEON operations.
    unsafe {
        let half = c[k / 4];
        let i16s = if (k % 4) < 2 { vmovl_s8(vget_low_s8(half)) } else { vmovl_high_s8(half) };
        let i32s = if k.is_multiple_of(2) { vmovl_s16(vget_low_s16(i16s)) } else { vmovl_high_s16(i16s) };
        vcvtq_f32_s32(i32s)
    }
}

impl<D: IntDot, W: QBlock> QuantTile<W> for D {
    /// Per block and output: [`IntDot::dot32`] → 4 i32 lanes, converted to f32 and
    /// accumulated with one FMA by `d_w·d_x`; `vaddvq_f32` at the end.
    #[inline(always)]
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: `nb` blocks behind every weight pointer, `32·nb` quants and `nb` scales
        // behind every activation pointer (caller); the variant's ISA is the caller's promise.
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); T]; R];
            for b in 0..nb {
                let mut xv = [[vdupq_n_s8(0); 2]; T];
                for t in 0..T {
                    let p = xq[t].add(b * QK);
                    xv[t] = [vld1q_s8(p), vld1q_s8(p.add(16))];
                }
                for r in 0..R {
                    let blk = w[r].add(b);
                    let wv = W::codes(blk);
                    let dw = W::scale(blk);
                    for t in 0..T {
                        let isum = D::dot32(wv, xv[t]);
                        let scale = vdupq_n_f32(dw * *xd[t].add(b));
                        acc[r][t] = vfmaq_f32(acc[r][t], vcvtq_f32_s32(isum), scale);
                    }
                }
            }
            let mut res = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    res[r][t] = vaddvq_f32(acc[r][t]);
                }
            }
            res
        }
    }

    /// Per block, 8 chunks of 4: `w = f32(code)·d` (the dequantized value), one FMA per
    /// chunk into the output's 4-lane accumulator.
    #[inline(always)]
    unsafe fn deq_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        x: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: `nb` blocks behind every weight pointer and `32·nb` floats behind every
        // activation pointer (caller); baseline NEON.
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); T]; R];
            for b in 0..nb {
                let mut codes = [[vdupq_n_s8(0); 2]; R];
                let mut dw = [vdupq_n_f32(0.0); R];
                for r in 0..R {
                    codes[r] = W::codes(w[r].add(b));
                    dw[r] = vdupq_n_f32(W::scale(w[r].add(b)));
                }
                for k in 0..8 {
                    for r in 0..R {
                        let wf = vmulq_f32(codes4_f32(&codes[r], k), dw[r]);
                        for t in 0..T {
                            acc[r][t] = vfmaq_f32(acc[r][t], wf, vld1q_f32(x[t].add(b * QK + 4 * k)));
                        }
                    }
                }
            }
            let mut res = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    res[r][t] = vaddvq_f32(acc[r][t]);
                }
            }
            res
        }
    }
}

impl<D: IntDot> QuantizeActs for D {
    /// `fcvtas` rounds to nearest with ties away from zero, exactly `roundf`. Two passes
    /// per block: the `|x|` maximum, then the quants 32 at a time.
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: `block·nb` floats/quants and `nb` scales (caller); baseline NEON.
        unsafe {
            for b in 0..nb {
                let p = x.add(b * block);
                let mut m = vdupq_n_f32(0.0);
                for k in 0..block / 4 {
                    m = vmaxq_f32(m, vabsq_f32(vld1q_f32(p.add(4 * k))));
                }
                let amax = vmaxvq_f32(m);
                let scale = amax / 127.0;
                let id = crate::quant::inverse_scale(scale);
                *d.add(b) = scale;
                for c in 0..block / QK {
                    let pc = p.add(QK * c);
                    let mut q16 = [vdupq_n_s16(0); 4];
                    for h in 0..4 {
                        let lo = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(pc.add(8 * h)), id));
                        let hi = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(pc.add(8 * h + 4)), id));
                        q16[h] = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
                    }
                    let out = qs.add(b * block + QK * c);
                    vst1q_s8(out, vcombine_s8(vqmovn_s16(q16[0]), vqmovn_s16(q16[1])));
                    vst1q_s8(out.add(16), vcombine_s8(vqmovn_s16(q16[2]), vqmovn_s16(q16[3])));
                }
            }
        }
    }
}

/// The WKV-7 head step of [`math::wkv7_head`] with 4-lane vectors. The state update
/// `S·decay + sa·(kk·a) + v·k` uses the specification's operations (mul, mul, add, add; no
/// FMA contraction), so it differs from scalar only through `sa`; the two dot products
/// (`sa` and `y`) are 4-lane FMA sums reduced by `vaddvq_f32`. Falls back to the scalar
/// specification unless `N` is a multiple of 4 and at most 256.
#[allow(clippy::too_many_arguments)]
fn wkv7_head(state: &mut [f32], r: &[f32], decay: &[f32], k: &[f32], v: &[f32], kk: &[f32], a: &[f32], y: &mut [f32]) {
    let n = r.len();
    if !n.is_multiple_of(4) || n > 256 {
        return math::wkv7_head(state, r, decay, k, v, kk, a, y);
    }
    assert!(state.len() == n * n && [decay, k, v, kk, a].iter().all(|s| s.len() == n) && y.len() == n, "wkv7: shapes");
    let mut kka = [0.0f32; 256];
    for j in 0..n {
        kka[j] = kk[j] * a[j];
    }
    // SAFETY: every vector holds `n` floats and the state `n·n` (asserted above); all
    // offsets below are `< n` within a row; NEON is baseline on aarch64.
    unsafe {
        for i in 0..n {
            let row = state.as_mut_ptr().add(i * n);
            let mut sacc = vdupq_n_f32(0.0);
            for j in (0..n).step_by(4) {
                sacc = vfmaq_f32(sacc, vld1q_f32(row.add(j)), vld1q_f32(kk.as_ptr().add(j)));
            }
            let sa = vdupq_n_f32(-vaddvq_f32(sacc));
            let vi = vdupq_n_f32(v[i]);
            let mut yacc = vdupq_n_f32(0.0);
            for j in (0..n).step_by(4) {
                let decayed = vmulq_f32(vld1q_f32(row.add(j)), vld1q_f32(decay.as_ptr().add(j)));
                let removed = vmulq_f32(sa, vld1q_f32(kka.as_ptr().add(j)));
                let added = vmulq_f32(vi, vld1q_f32(k.as_ptr().add(j)));
                let s = vaddq_f32(vaddq_f32(decayed, removed), added);
                vst1q_f32(row.add(j), s);
                yacc = vfmaq_f32(yacc, s, vld1q_f32(r.as_ptr().add(j)));
            }
            y[i] = vaddvq_f32(yacc);
        }
    }
}

/// 4 f32 lanes in a NEON register (NEON is the aarch64 baseline, so a value is always
/// sound to make; the `unsafe` constructors keep [`F32s`]'s contract uniform).
#[derive(Clone, Copy)]
struct F32x4(float32x4_t);

/// Evaluates a NEON intrinsic expression.
macro_rules! neon {
    ($e:expr) => {
        // SAFETY: register-only NEON operations; NEON is the aarch64 baseline.
        unsafe { $e }
    };
}

impl F32s for F32x4 {
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        neon!(F32x4(vdupq_n_f32(v)))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats.
        unsafe { F32x4(vld1q_f32(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable floats.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    fn lit(self, v: f32) -> Self {
        neon!(F32x4(vdupq_n_f32(v)))
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        neon!(F32x4(vaddq_f32(self.0, b.0)))
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        neon!(F32x4(vsubq_f32(self.0, b.0)))
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        neon!(F32x4(vmulq_f32(self.0, b.0)))
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        neon!(F32x4(vdivq_f32(self.0, b.0)))
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        neon!(F32x4(vfmaq_f32(c.0, self.0, b.0)))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        neon!(F32x4(vnegq_f32(self.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        neon!(F32x4(vabsq_f32(self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        neon!(F32x4(vsqrtq_f32(self.0)))
    }
    /// `fmaxnm`: a quiet NaN operand yields the other operand.
    #[inline(always)]
    fn max_num(self, b: Self) -> Self {
        neon!(F32x4(vmaxnmq_f32(self.0, b.0)))
    }
    /// `fmax`/`fmin` return NaN when an operand is NaN.
    #[inline(always)]
    fn clamp(self, lo: f32, hi: f32) -> Self {
        neon!(F32x4(vminq_f32(vmaxq_f32(self.0, vdupq_n_f32(lo)), vdupq_n_f32(hi))))
    }
    #[inline(always)]
    fn round(self) -> Self {
        neon!(F32x4(vrndnq_f32(self.0)))
    }
    /// As the AVX2 version: `n = ⌊n/2⌋ + ⌈n/2⌉`, both factors normal.
    #[inline(always)]
    fn mul_pow2(self, n: Self) -> Self {
        neon!({
            let ni = vcvtq_s32_f32(n.0);
            let n1 = vshrq_n_s32::<1>(ni);
            let n2 = vsubq_s32(ni, n1);
            let bias = vdupq_n_s32(127);
            let p1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias)));
            let p2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias)));
            F32x4(vmulq_f32(vmulq_f32(self.0, p1), p2))
        })
    }
    #[inline(always)]
    fn or_sign(self, s: Self) -> Self {
        neon!({
            let sign = vandq_u32(vreinterpretq_u32_f32(s.0), vdupq_n_u32(0x8000_0000));
            F32x4(vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(self.0), sign)))
        })
    }
    #[inline(always)]
    fn select_lt(self, lim: Self, a: Self, b: Self) -> Self {
        neon!(F32x4(vbslq_f32(vcltq_f32(self.0, lim.0), a.0, b.0)))
    }
    /// `faddp` twice: `(l0 + l1) + (l2 + l3)`.
    #[inline(always)]
    fn sum(self) -> f32 {
        neon!(vaddvq_f32(self.0))
    }
}
