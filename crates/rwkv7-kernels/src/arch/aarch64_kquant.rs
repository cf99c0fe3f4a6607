//! NEON and NEON+SDOT micro-kernels for Q4_K, Q5_K and Q6_K (integer path).
//!
//! [`KQ_NEON`] is sound on every aarch64 CPU (NEON is baseline); [`KQ_DOT`] is only
//! reachable through the `aarch64-neon-dotprod` set, handed out only when the CPU has
//! dotprod (see `arch/aarch64.rs`), which every dotprod entry point's `// SAFETY:`
//! relies on.
//!
//! The activations carry one scale per super-block (`kquant` module docs). Per group of
//! 32 columns and output: two 16-element dots ([`Dot16`]: `smull`+`smlal2` pairs then
//! `saddlp`, or one SDOT) give 4 exact i32 lanes each, multiplied by the sub-block
//! scale(s) and added in i32 over the super-block; one conversion and one FMA by `d·xd`
//! per super-block. The Q4_K/Q5_K min term `Σ m_g·Σxq_g` adds up likewise from the
//! activations' lane sums (once per token and group), one FMA by `−dmin·xd`.

use core::arch::aarch64::*;

use super::QuantizeActs;
use super::kquant::{KTile, kquant_matmul_int};
use crate::MatmulJob;
use crate::kquant::{self, BlockQ4K, BlockQ5K, BlockQ6K, KQuantKernels, QK_K, unpack_scales_mins};
use crate::quant::f16_bits_to_f32;

/// The plain NEON K-quant kernels (legacy types use the scalar ones).
pub(crate) const KQ_NEON: KQuantKernels =
    KQuantKernels { q4_k: neon::matmul_q4_k, q5_k: neon::matmul_q5_k, q6_k: neon::matmul_q6_k, ..kquant::SCALAR };

/// The NEON + SDOT K-quant kernels.
pub(crate) const KQ_DOT: KQuantKernels =
    KQuantKernels { q4_k: dot::matmul_q4_k, q5_k: dot::matmul_q5_k, q6_k: dot::matmul_q6_k, ..kquant::SCALAR };

/// Marker for plain NEON tiles.
struct NeonK;
/// Marker for NEON + SDOT tiles.
struct NeonDotK;

mod neon {
    use super::*;

    macro_rules! entry {
        ($name:ident, $w:ty) => {
            pub(super) fn $name(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
                // SAFETY: NEON is part of the aarch64 baseline.
                unsafe { kquant_matmul_int::<$w, NeonK>(job, out) }
            }
        };
    }

    entry!(matmul_q4_k, BlockQ4K);
    entry!(matmul_q5_k, BlockQ5K);
    entry!(matmul_q6_k, BlockQ6K);
}

mod dot {
    use super::*;

    macro_rules! entry {
        ($name:ident, $body:ident, $w:ty) => {
            pub(super) fn $name(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
                // SAFETY: only reachable through the dotprod set, handed out only when the
                // CPU has dotprod (module docs).
                unsafe { $body(job, out) }
            }

            #[target_feature(enable = "neon,dotprod")]
            unsafe fn $body(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
                // SAFETY: dotprod is enabled on this function, as `NeonDotK` needs.
                unsafe { kquant_matmul_int::<$w, NeonDotK>(job, out) }
            }
        };
    }

    entry!(matmul_q4_k, matmul_q4_k_dot, BlockQ4K);
    entry!(matmul_q5_k, matmul_q5_k_dot, BlockQ5K);
    entry!(matmul_q6_k, matmul_q6_k_dot, BlockQ6K);
}

impl QuantizeActs for NeonK {
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: same contract; the NEON quantizer is bit-identical to the spec.
        unsafe { super::aarch64::quantize_blocks(x, qs, d, block, nb) }
    }
}

impl QuantizeActs for NeonDotK {
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: as above.
        unsafe { super::aarch64::quantize_blocks(x, qs, d, block, nb) }
    }
}

/// A 16-element integer dot as 4 i32 lanes whose total is exact.
trait Dot16 {
    /// # Safety
    /// The CPU must support the variant; `|w·x|` pair sums must fit i16 (`|w| ≤ 32`,
    /// `|x| ≤ 127`: `2·32·127 < 2¹⁵`).
    unsafe fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t;
}

impl Dot16 for NeonK {
    #[inline(always)]
    unsafe fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: baseline NEON.
        unsafe { vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x)) }
    }
}

impl Dot16 for NeonDotK {
    #[inline(always)]
    unsafe fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: the caller guarantees dotprod.
        unsafe { super::aarch64::sdot(vdupq_n_s32(0), w, x) }
    }
}

/// Q4_K and Q5_K as seen by the tile.
trait ScaleMin {
    /// `(d, dmin, scales, mins)`.
    ///
    /// # Safety
    /// `p` valid for one block.
    unsafe fn header(p: *const Self) -> (f32, f32, [u8; 8], [u8; 8]);
    /// Group `g`'s 32 codes (`0..32`) as two 16-byte vectors.
    ///
    /// # Safety
    /// `p` valid for one block, `g < 8`.
    unsafe fn codes(p: *const Self, g: usize) -> [int8x16_t; 2];
}

fn header_of(d: [u8; 2], dmin: [u8; 2], packed: &[u8; 12]) -> (f32, f32, [u8; 8], [u8; 8]) {
    let (sc, m) = unpack_scales_mins(packed);
    (f16_bits_to_f32(u16::from_le_bytes(d)), f16_bits_to_f32(u16::from_le_bytes(dmin)), sc, m)
}

/// Group `g`'s nibbles from the 128 bytes at `qs` (low for even `g`, high for odd).
///
/// # Safety
/// `qs` valid for 128 bytes, `g < 8`.
#[inline(always)]
unsafe fn nibbles(qs: *const u8, g: usize) -> [uint8x16_t; 2] {
    // SAFETY: bytes `32(g/2)..+32` are inside the 128 (caller).
    unsafe {
        let p = qs.add(32 * (g / 2));
        let (a, b) = (vld1q_u8(p), vld1q_u8(p.add(16)));
        if g.is_multiple_of(2) {
            let m = vdupq_n_u8(0x0F);
            [vandq_u8(a, m), vandq_u8(b, m)]
        } else {
            [vshrq_n_u8::<4>(a), vshrq_n_u8::<4>(b)]
        }
    }
}

impl ScaleMin for BlockQ4K {
    #[inline(always)]
    unsafe fn header(p: *const Self) -> (f32, f32, [u8; 8], [u8; 8]) {
        // SAFETY: `p` is a readable block.
        unsafe { header_of((*p).d, (*p).dmin, &(*p).scales) }
    }
    #[inline(always)]
    unsafe fn codes(p: *const Self, g: usize) -> [int8x16_t; 2] {
        // SAFETY: `qs` is 128 readable bytes inside the block.
        unsafe {
            let [a, b] = nibbles(core::ptr::addr_of!((*p).qs).cast(), g);
            [vreinterpretq_s8_u8(a), vreinterpretq_s8_u8(b)]
        }
    }
}

impl ScaleMin for BlockQ5K {
    #[inline(always)]
    unsafe fn header(p: *const Self) -> (f32, f32, [u8; 8], [u8; 8]) {
        // SAFETY: `p` is a readable block.
        unsafe { header_of((*p).d, (*p).dmin, &(*p).scales) }
    }
    /// Nibble plus 16 where bit `g` of `qh[l]` is set (`cmtst` makes the bit a byte mask).
    #[inline(always)]
    unsafe fn codes(p: *const Self, g: usize) -> [int8x16_t; 2] {
        // SAFETY: `qs` (128 bytes) and `qh` (32 bytes) are inside the block.
        unsafe {
            let [a, b] = nibbles(core::ptr::addr_of!((*p).qs).cast(), g);
            let qh = core::ptr::addr_of!((*p).qh).cast::<u8>();
            let bit = vdupq_n_u8(1 << g);
            let sixteen = vdupq_n_u8(16);
            let ha = vandq_u8(vtstq_u8(vld1q_u8(qh), bit), sixteen);
            let hb = vandq_u8(vtstq_u8(vld1q_u8(qh.add(16)), bit), sixteen);
            [vreinterpretq_s8_u8(vorrq_u8(a, ha)), vreinterpretq_s8_u8(vorrq_u8(b, hb))]
        }
    }
}

/// The 32 activation quants of a group as two vectors.
///
/// # Safety
/// `p` valid for 32 bytes.
#[inline(always)]
unsafe fn load32(p: *const i8) -> [int8x16_t; 2] {
    // SAFETY: 32 readable bytes (caller).
    unsafe { [vld1q_s8(p), vld1q_s8(p.add(16))] }
}

impl<D: Dot16, W: ScaleMin> KTile<W> for D {
    #[inline(always)]
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: `nb` blocks behind every weight pointer, `256·nb` quants and `nb` scales
        // behind every activation pointer, and the ISA (caller).
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); T]; R];
            for b in 0..nb {
                let mut head = [(0f32, 0f32, [0u8; 8], [0u8; 8]); R];
                for r in 0..R {
                    head[r] = W::header(w[r].add(b));
                }
                let mut isum = [[vdupq_n_s32(0); T]; R];
                let mut msum = [[vdupq_n_s32(0); T]; R];
                for g in 0..QK_K / 32 {
                    let mut xv = [[vdupq_n_s8(0); 2]; T];
                    let mut xsum = [vdupq_n_s32(0); T];
                    for t in 0..T {
                        xv[t] = load32(xq[t].add(b * QK_K + 32 * g));
                        let pairs = vaddq_s16(vpaddlq_s8(xv[t][0]), vpaddlq_s8(xv[t][1]));
                        xsum[t] = vpaddlq_s16(pairs);
                    }
                    for r in 0..R {
                        let (_, _, sc, m) = head[r];
                        let c = W::codes(w[r].add(b), g);
                        for t in 0..T {
                            let dot = vaddq_s32(D::dot16(c[0], xv[t][0]), D::dot16(c[1], xv[t][1]));
                            isum[r][t] = vmlaq_n_s32(isum[r][t], dot, sc[g] as i32);
                            msum[r][t] = vmlaq_n_s32(msum[r][t], xsum[t], m[g] as i32);
                        }
                    }
                }
                for r in 0..R {
                    let (d, dmin, _, _) = head[r];
                    for t in 0..T {
                        let dx = *xd[t].add(b);
                        acc[r][t] = vfmaq_f32(acc[r][t], vcvtq_f32_s32(isum[r][t]), vdupq_n_f32(d * dx));
                        acc[r][t] = vfmaq_f32(acc[r][t], vcvtq_f32_s32(msum[r][t]), vdupq_n_f32(-dmin * dx));
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

/// Q6_K group `g`'s 32 signed codes `q − 32`.
///
/// # Safety
/// `p` valid for one block, `g < 8`.
#[inline(always)]
unsafe fn q6_codes(p: *const BlockQ6K, g: usize) -> [int8x16_t; 2] {
    let (n, k) = (g / 4, g % 4);
    // SAFETY: `ql` bytes `64n + 32(k&1)..+32` and `qh` bytes `32n..+32` are in the block.
    unsafe {
        let ql = core::ptr::addr_of!((*p).ql).cast::<u8>().add(64 * n + 32 * (k & 1));
        let qh = core::ptr::addr_of!((*p).qh).cast::<u8>().add(32 * n);
        let shift = vdupq_n_s8(-2 * k as i8);
        let mut out = [vdupq_n_s8(0); 2];
        for (h, o) in out.iter_mut().enumerate() {
            let l = vld1q_u8(ql.add(16 * h));
            let lo = if k < 2 { vandq_u8(l, vdupq_n_u8(0x0F)) } else { vshrq_n_u8::<4>(l) };
            let hi = vandq_u8(vshlq_u8(vld1q_u8(qh.add(16 * h)), shift), vdupq_n_u8(3));
            let q = vorrq_u8(lo, vshlq_n_u8::<4>(hi));
            *o = vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8(32));
        }
        out
    }
}

impl<D: Dot16> Q6Tile for D {}

/// The Q6_K tile body shared by both variants.
trait Q6Tile: Dot16 {
    /// # Safety
    /// As [`KTile::int_tile`].
    #[inline(always)]
    unsafe fn q6_tile<const R: usize, const T: usize>(
        w: [*const BlockQ6K; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: as for the Q4_K tile.
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); T]; R];
            for b in 0..nb {
                let mut isum = [[vdupq_n_s32(0); T]; R];
                for g in 0..QK_K / 32 {
                    let mut xv = [[vdupq_n_s8(0); 2]; T];
                    for t in 0..T {
                        xv[t] = load32(xq[t].add(b * QK_K + 32 * g));
                    }
                    for r in 0..R {
                        let blk = w[r].add(b);
                        let sc = (*blk).scales;
                        let c = q6_codes(blk, g);
                        for t in 0..T {
                            let lo = vmlaq_n_s32(isum[r][t], Self::dot16(c[0], xv[t][0]), sc[2 * g] as i32);
                            isum[r][t] = vmlaq_n_s32(lo, Self::dot16(c[1], xv[t][1]), sc[2 * g + 1] as i32);
                        }
                    }
                }
                for r in 0..R {
                    let d = f16_bits_to_f32(u16::from_le_bytes((*w[r].add(b)).d));
                    for t in 0..T {
                        let dx = *xd[t].add(b);
                        acc[r][t] = vfmaq_f32(acc[r][t], vcvtq_f32_s32(isum[r][t]), vdupq_n_f32(d * dx));
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

impl KTile<BlockQ6K> for NeonK {
    #[inline(always)]
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const BlockQ6K; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: forwarded contract.
        unsafe { Self::q6_tile::<R, T>(w, xq, xd, nb) }
    }
}

impl KTile<BlockQ6K> for NeonDotK {
    #[inline(always)]
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const BlockQ6K; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: forwarded contract.
        unsafe { Self::q6_tile::<R, T>(w, xq, xd, nb) }
    }
}
