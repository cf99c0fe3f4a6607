//! The VNNI kernel sets: the AVX2 set with its Q8_0 integer products formed by
//! `vpdpbusd` (`acc + Σ` of four `u8 × i8` byte products in each i32 lane, one
//! instruction, no intermediate saturation) instead of `vpsignb` + `maddubs` + `madd`:
//!
//! - `x86_64-avx512vnni`: the EVEX form on 256-bit vectors (AVX512-VNNI + AVX512-VL:
//!   Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4 and later);
//! - `x86_64-avxvnni`: the VEX form (AVX-VNNI: Alder Lake and later, Zen 5);
//! - `x86_64-vnni-emulated`: the same tiles with `vpdpbusd` computed exactly by AVX2
//!   instructions ([`Emulated`]). Slower than `x86_64-avx2` and listed after it, so never
//!   the best set: it exists so that the VNNI tiles run and are tested on every AVX2 CPU.
//!   This project's CI hosts have no VNNI, and qemu (7.2, and 10.0 with `-cpu max`)
//!   cannot execute it; Bochs can, for the EVEX form only, and CI runs the VNNI tests
//!   there (`tools/bochs/run.sh`). The VEX form (`x86_64-avxvnni`) runs nowhere here.
//!
//! Everything else (Q4_0, whose AVX2 tile already needs no sign step and which llvm-mca
//! puts at the same speed either way; float products; K-quants; the activation
//! quantizer; the element-wise kernels) is the AVX2 set's. The Q8_0 tile is AVX2's pair
//! tile ([`PairBlock`]) with engine [`Vnni`]: the same groups, lanes, reduction and float
//! operations, so every output equals AVX2's bit for bit (tested) while the activation
//! quants lie in `[-127, 127]`, as the quantizers guarantee for finite input (the AVX2
//! sign trick would get −128 wrong). Per group of 8 blocks, one token and one row it
//! takes 8 `vpdpbusd` where AVX2 takes 8 `vpsignb`, 8 `maddubs`, 8 `madd` and 4 adds
//! (KERNELS.md, "VNNI sets"); the correction costs 8 more per row and group, shared by
//! the tokens (so decode, one token, gains no multiplies).
//!
//! Each set is handed out by `arch::simd_sets` only when [`crate::CpuFeatures`] reports
//! its features (with AVX2, FMA and F16C), which every `// SAFETY:` comment on an entry
//! point relies on.

use core::arch::x86_64::*;
use core::marker::PhantomData;

use super::{
    AVX2, Avx2, BlockQ8_0, PairBlock, PairX, QuantTile, QuantizeActs, deq_tile, pair_int_rows, pair_int_tile,
    q8_pair_codes,
};
use crate::arch::quant_matmul_int;
use crate::{KernelSet, MatmulJob, QuantMatmul};

/// `vpdpbusd` on 256-bit vectors: for each i32 lane `j`,
/// `acc[j] + Σ_{k<4} u8(a[4j+k]) · i8(b[4j+k])`, wrapping (the kernels' sums never wrap).
pub(super) trait Dot4 {
    /// # Safety
    /// The CPU must support the engine's instructions (and AVX2).
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

/// The EVEX `vpdpbusd` (AVX512-VNNI with AVX512-VL).
pub(super) struct Avx512Vl;

impl Dot4 for Avx512Vl {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX512-VNNI and AVX512-VL are the caller's promise.
        unsafe { _mm256_dpbusd_epi32(acc, a, b) }
    }
}

/// The VEX `vpdpbusd` (AVX-VNNI).
pub(super) struct AvxVex;

impl Dot4 for AvxVex {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX-VNNI is the caller's promise.
        unsafe { _mm256_dpbusd_avx_epi32(acc, a, b) }
    }
}

/// `vpdpbusd` from AVX2 instructions, exactly: the bytes widened to i16 (`a` with zeros,
/// `b` with its sign: `(b << 8 | b) >> 8` arithmetic), `madd` sums neighbouring products
/// into i32 (bytes `2i, 2i+1`; each product at most `255·128`, so no overflow), and
/// `hadd` adds neighbouring i32 within each 128-bit lane: `[lo0+lo1, lo2+lo3, hi0+hi1,
/// hi2+hi3]`, which are bytes `0..4, 4..8, 8..12, 12..16`, as the instruction groups them.
pub(super) struct Emulated;

impl Dot4 for Emulated {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX2 is the caller's promise.
        unsafe {
            let zero = _mm256_setzero_si256();
            let (a_lo, a_hi) = (_mm256_unpacklo_epi8(a, zero), _mm256_unpackhi_epi8(a, zero));
            let b_lo = _mm256_srai_epi16::<8>(_mm256_unpacklo_epi8(b, b));
            let b_hi = _mm256_srai_epi16::<8>(_mm256_unpackhi_epi8(b, b));
            let sums = _mm256_hadd_epi32(_mm256_madd_epi16(a_lo, b_lo), _mm256_madd_epi16(a_hi, b_hi));
            _mm256_add_epi32(acc, sums)
        }
    }
}

/// The engine marker of the VNNI pair tiles, for dot-product instruction `D`.
pub(super) struct Vnni<D>(PhantomData<D>);

impl<D> QuantizeActs for Vnni<D> {
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: forwarded contract (the VNNI sets include AVX2).
        unsafe { Avx2::quantize(x, qs, d, block, nb) }
    }
}

/// The byte `0x80`: 128 as `vpdpbusd`'s unsigned operand, and the bit that turns a signed
/// activation `x` into `x + 128` as an unsigned byte (`x ^ 0x80`).
const BIAS: i8 = i8::MIN;

/// A row's Q8_0 pair for `vpdpbusd`: the signed codes, arranged as [`PairX`], and
/// `corr = −128·Σw` per lane, the correction for activations offset by 128.
#[derive(Clone, Copy)]
pub(super) struct Q8VnniW {
    wlo: __m256i,
    whi: __m256i,
    corr: __m256i,
}

impl<D: Dot4> PairBlock<Vnni<D>> for BlockQ8_0 {
    type W = Q8VnniW;
    const OFFSET8: bool = false;

    /// The codes as loaded, and the correction by two `vpdpbusd` against 128 (at most
    /// `128·8·128` in magnitude per lane), negated. Once per row and pair, for every token.
    #[inline(always)]
    unsafe fn prep_w(w: *const Self, b: usize) -> Q8VnniW {
        // SAFETY: the caller's contract.
        unsafe {
            let (wlo, whi) = q8_pair_codes(w, b);
            let bias = _mm256_set1_epi8(BIAS);
            let biased = D::dpbusd(D::dpbusd(_mm256_setzero_si256(), bias, wlo), bias, whi);
            Q8VnniW { wlo, whi, corr: _mm256_sub_epi32(_mm256_setzero_si256(), biased) }
        }
    }

    /// `x + 128` as unsigned bytes: `x ∈ [−127, 127]` becomes `[1, 255]`.
    #[inline(always)]
    unsafe fn prep_x(x: PairX) -> PairX {
        // SAFETY: register-only; AVX2 is the caller's promise.
        unsafe {
            let bias = _mm256_set1_epi8(BIAS);
            PairX { xlo: _mm256_xor_si256(x.xlo, bias), xhi: _mm256_xor_si256(x.xhi, bias) }
        }
    }

    /// `Σ(x + 128)·w − 128·Σw = Σx·w`: two `vpdpbusd` from the correction, no sign step.
    /// Exact: every lane stays within `±(128·8·128 + 255·8·128) < 2³¹`.
    #[inline(always)]
    unsafe fn pair_isum(w: &Q8VnniW, x: &PairX) -> __m256i {
        // SAFETY: register-only; the ISA is the caller's promise.
        unsafe { D::dpbusd(D::dpbusd(w.corr, x.xlo, w.wlo), x.xhi, w.whi) }
    }

    #[inline(always)]
    unsafe fn pair_xsum(_: &PairX) -> __m256i {
        // SAFETY: no memory access; AVX is the caller's promise.
        unsafe { _mm256_setzero_si256() }
    }
}

pair_quant_tile!([D: Dot4] Vnni<D>, BlockQ8_0);

/// A safe entry point `$name` for block type `$block`, engine `$dot`, whose body is
/// compiled with `$features`.
macro_rules! vnni_entry {
    ($name:ident, $block:ty, $dot:ty, $features:literal) => {
        fn $name(job: &MatmulJob<'_, $block>, out: &mut [f32]) {
            #[target_feature(enable = $features)]
            unsafe fn body(job: &MatmulJob<'_, $block>, out: &mut [f32]) {
                // SAFETY: the features `Vnni<$dot>`'s tiles need are enabled on this function.
                unsafe { quant_matmul_int::<$block, Vnni<$dot>>(job, out) }
            }
            // SAFETY: only reachable through the set built with it (below), which
            // `arch::simd_sets` hands out only when the CPU has `$features` (module docs).
            unsafe { body(job, out) }
        }
    };
}

/// The kernel set `$set` named `$name`: AVX2's with the VNNI Q8_0 integer path of engine `$dot`.
macro_rules! vnni_set {
    ($set:ident, $name:literal, $dot:ty, $features:literal, $q8_0:ident) => {
        vnni_entry!($q8_0, BlockQ8_0, $dot, $features);

        pub(in crate::arch) const $set: KernelSet =
            KernelSet { name: $name, q8_0: QuantMatmul { integer: $q8_0, ..AVX2.q8_0 }, ..AVX2 };
    };
}

vnni_set!(AVX512_VNNI, "x86_64-avx512vnni", Avx512Vl, "avx2,fma,f16c,avx512vnni,avx512vl", q8_0_512);
vnni_set!(AVX_VNNI, "x86_64-avxvnni", AvxVex, "avx2,fma,f16c,avxvnni", q8_0_vex);
vnni_set!(VNNI_EMULATED, "x86_64-vnni-emulated", Emulated, "avx2,fma,f16c", q8_0_emulated);

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// The instruction's definition, one lane at a time.
    fn dpbusd_reference(acc: [i32; 8], a: [u8; 32], b: [i8; 32]) -> [i32; 8] {
        let mut out = acc;
        for (j, lane) in out.iter_mut().enumerate() {
            for k in 0..4 {
                *lane = lane.wrapping_add(i32::from(a[4 * j + k]) * i32::from(b[4 * j + k]));
            }
        }
        out
    }

    /// `D::dpbusd` on byte arrays, compiled with the engine's features (`$features`).
    macro_rules! runner {
        ($name:ident, $dot:ty, $features:literal) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(acc: [i32; 8], a: [u8; 32], b: [i8; 32]) -> [i32; 8] {
                // SAFETY: unaligned loads and stores of 32-byte arrays; the caller checks
                // that the CPU has `$features`.
                unsafe {
                    let r = <$dot>::dpbusd(
                        _mm256_loadu_si256(acc.as_ptr().cast()),
                        _mm256_loadu_si256(a.as_ptr().cast()),
                        _mm256_loadu_si256(b.as_ptr().cast()),
                    );
                    let mut out = [0i32; 8];
                    _mm256_storeu_si256(out.as_mut_ptr().cast(), r);
                    out
                }
            }
        };
    }
    runner!(run_emulated, Emulated, "avx2");
    runner!(run_avx512, Avx512Vl, "avx2,avx512vnni,avx512vl");
    runner!(run_vex, AvxVex, "avx2,avxvnni");

    /// Inputs that reach every byte value, the extremes (`255 · −128`) in every lane, and
    /// accumulators near the i32 limits (the instruction wraps).
    fn cases() -> Vec<([i32; 8], [u8; 32], [i8; 32])> {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cases = vec![
            ([0; 8], [255; 32], [-128; 32]),
            ([0; 8], [255; 32], [127; 32]),
            ([i32::MAX; 8], [255; 32], [127; 32]),
            ([i32::MIN; 8], [255; 32], [-128; 32]),
        ];
        for _ in 0..2000 {
            let acc: [i32; 8] = core::array::from_fn(|_| next() as i32);
            let a: [u8; 32] = core::array::from_fn(|_| next() as u8);
            let b: [i8; 32] = core::array::from_fn(|_| next() as i8);
            cases.push((acc, a, b));
        }
        cases
    }

    /// # Safety
    /// The CPU must have the features `run` was compiled with.
    unsafe fn check(engine: &str, run: unsafe fn([i32; 8], [u8; 32], [i8; 32]) -> [i32; 8]) {
        for (acc, a, b) in cases() {
            // SAFETY: the caller's promise.
            let got = unsafe { run(acc, a, b) };
            assert_eq!(got, dpbusd_reference(acc, a, b), "{engine}: acc {acc:?} a {a:?} b {b:?}");
        }
    }

    /// Says visibly that a check did not run: straight to the stderr handle, which the
    /// test harness does not capture.
    fn skipped(what: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
    }

    #[test]
    fn emulated_dpbusd_is_the_instruction_definition() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            skipped("emulated vpdpbusd needs AVX2, which this CPU lacks");
            return;
        }
        // SAFETY: AVX2 detected above.
        unsafe { check("emulated", run_emulated) };
    }

    /// Runs only where the instruction exists; says so visibly otherwise.
    #[test]
    fn hardware_dpbusd_is_the_instruction_definition() {
        if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the features were detected just above.
            unsafe { check("avx512vnni", run_avx512) };
        } else {
            skipped("no AVX512-VNNI/VL on this CPU; the EVEX vpdpbusd was not run");
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            // SAFETY: the feature was detected just above.
            unsafe { check("avxvnni", run_vex) };
        } else {
            skipped("no AVX-VNNI on this CPU; the VEX vpdpbusd was not run");
        }
    }
}
