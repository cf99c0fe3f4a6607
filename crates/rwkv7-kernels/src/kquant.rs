//! ggml K-quant formats (Q4_K, Q5_K, Q6_K): super-block layouts, exact dequantization and
//! the integer block sums the matmul kernels are specified by.
//!
//! Facts about the layouts (field order, scale packing, nibble and high-bit placement)
//! are ggml's (`ggml-common.h` `block_q4_K`/`block_q5_K`/`block_q6_K`, and
//! `dequantize_row_q4_K`/`_q5_K`/`_q6_K` in `ggml-quants.c`); the code is our own.
//! `docs/FORMAT.md` §1.5 describes them in prose and pictures.
//!
//! A super-block holds [`QK_K`] = 256 weights. Every field is stored as bytes (scales as
//! little-endian f16 byte pairs), so the blocks have alignment 1 and can be cast from
//! any byte offset of an mmap, like [`crate::BlockQ8_0`].
//!
//! # Integer sums (the matmul specification)
//!
//! The integer matmul path quantizes activations with one scale per weight block
//! ([`crate::quant::quantize_activations_per`] with `block = ELEMS`: 256 for the
//! K-quants, as ggml's `Q8_K`, and 32 for the legacy types): quants `xq`, scale `xd`.
//! Every block type here is viewed as groups of weights whose value is `a·s_g·c + b·m_g`
//! for integer sub-scale `s`, min `m` and code `c`; [`KBlock::block_sums`] returns the
//! exact integers `isum = Σ s·c·xq` and `msum = Σ m·xq` of one block, and the block adds
//! `f32(isum)·(a·xd) + f32(msum)·(b·xd)` to the output ([`KBlock::multipliers`] gives
//! `a` and `b`). With one activation scale per block, the sub-scales multiply in
//! integers and only one float step remains per block. SIMD kernels must reproduce
//! `isum` and `msum` exactly (tested on data whose float arithmetic is exact); their
//! float sums may be reordered.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::legacy::{BlockQ4_1, BlockQ5_0, BlockQ5_1};
use crate::quant::{QK, quantize_activations_per};
use crate::{MatmulFn, MatmulJob};

/// Elements per K-quant super-block (ggml `QK_K`).
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit sub-block scales and mins in Q4_K/Q5_K (ggml `K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;

/// A block type seen as integer sums for the integer matmul path (see the module
/// docs). Implemented by the K-quants and by the legacy `Q4_1`/`Q5_0`/`Q5_1`.
pub trait KBlock: Pod {
    /// Elements per block (and per activation scale): 256 for K-quants, 32 for the
    /// legacy types.
    const ELEMS: usize;
    /// Whether the block has a min term (`msum` and `b` non-zero).
    const HAS_MIN: bool;
    /// `(isum, msum)` of the block against its `ELEMS` activation quants. Exact in i32
    /// for quants in `[-127, 127]` (each type documents its bound).
    fn block_sums(&self, xq: &[i8]) -> (i32, i32);
    /// `(a, b)`: the block adds `f32(isum)·(a·xd) + f32(msum)·(b·xd)`.
    fn multipliers(&self) -> (f32, f32);
    /// Element `e` as f32, exactly as ggml's dequantizer computes it.
    fn get(&self, e: usize) -> f32;
}

fn f16_le(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Q4_K: 256 weights in 8 sub-blocks of 32, `w = d·sc_j·q − dmin·m_j` (144 bytes).
///
/// `qs` byte `32i + l` (i in 0..4, l in 0..32) holds sub-block `2i` element `l` in its
/// low nibble and sub-block `2i + 1` element `l` in its high nibble. The 6-bit `sc_j`,
/// `m_j` are packed in `scales` (see [`BlockQ4K::scale_min`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale for the sub-scales (f16, little-endian bytes).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16, little-endian bytes).
    pub dmin: [u8; 2],
    /// 8 six-bit scales and 8 six-bit mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// 256 four-bit codes.
    pub qs: [u8; QK_K / 2],
}

/// Q5_K: as [`BlockQ4K`] plus a fifth code bit per weight (176 bytes):
/// code = nibble + 16·(bit `j` of `qh[l]`) for sub-block `j`, element `l`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5K {
    /// Super-block scale for the sub-scales (f16 bytes).
    pub d: [u8; 2],
    /// Super-block scale for the mins (f16 bytes).
    pub dmin: [u8; 2],
    /// 8 six-bit scales and 8 six-bit mins, packed as in Q4_K.
    pub scales: [u8; K_SCALE_SIZE],
    /// High code bits: bit `j` of byte `l` belongs to sub-block `j`, element `l`.
    pub qh: [u8; QK_K / 8],
    /// Low four code bits, nibble order as in Q4_K.
    pub qs: [u8; QK_K / 2],
}

/// Q6_K: 256 weights in 16 sub-blocks of 16, `w = d·sc_s·(q − 32)`, `q` six bits
/// (210 bytes; note `d` comes last).
///
/// Element `e = 128n + 32k + l` (half `n` in 0..2, quarter `k` in 0..4, `l` in 0..32):
/// low four bits in `ql[64n + 32(k & 1) + l]`, low nibble for `k < 2`, high for `k ≥ 2`;
/// top two bits are bits `2k, 2k+1` of `qh[32n + l]`; scale `scales[e / 16]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ6K {
    /// Low four code bits.
    pub ql: [u8; QK_K / 2],
    /// High two code bits.
    pub qh: [u8; QK_K / 4],
    /// 16 signed 8-bit sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale (f16 bytes).
    pub d: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ4K>() == 144 && core::mem::align_of::<BlockQ4K>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ5K>() == 176 && core::mem::align_of::<BlockQ5K>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ6K>() == 210 && core::mem::align_of::<BlockQ6K>() == 1);

/// Unpacks sub-block `j`'s 6-bit scale and min from the 12 packed bytes.
///
/// Bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4 likewise. For
/// `j ≥ 4` the low 4 bits come from byte `j + 4` (scale: low nibble, min: high nibble)
/// and the top 2 bits from the top 2 bits of byte `j − 4` (scale) or byte `j` (min).
#[inline]
pub fn unpack_scale_min(scales: &[u8; K_SCALE_SIZE], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        let sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
        let m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
        (sc, m)
    }
}

/// All 8 `(scale, min)` pairs of [`unpack_scale_min`] at once, with 32-bit word
/// operations (what the SIMD kernels use; tested equal on random bytes). With
/// little-endian words `w0 = bytes 0..4`, `w1 = 4..8`, `w2 = 8..12`: scales 0..4 are
/// `w0 & 0x3f…`, scales 4..8 are `(w2 & 0x0f…) | ((w0 >> 2) & 0x30…)` (the top two bits of
/// each byte of `w0` moved to bits 4, 5), and the mins likewise from `w1` and `w2 >> 4`.
#[inline(always)]
pub fn unpack_scales_mins(scales: &[u8; K_SCALE_SIZE]) -> ([u8; 8], [u8; 8]) {
    let word = |i: usize| u32::from_le_bytes([scales[4 * i], scales[4 * i + 1], scales[4 * i + 2], scales[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let sc_lo = w0 & 0x3f3f_3f3f;
    let m_lo = w1 & 0x3f3f_3f3f;
    let sc_hi = (w2 & 0x0f0f_0f0f) | ((w0 >> 2) & 0x3030_3030);
    let m_hi = ((w2 >> 4) & 0x0f0f_0f0f) | ((w1 >> 2) & 0x3030_3030);
    let join = |lo: u32, hi: u32| (lo as u64 | ((hi as u64) << 32)).to_le_bytes();
    (join(sc_lo, sc_hi), join(m_lo, m_hi))
}

/// Inverse of [`unpack_scale_min`]: packs 8 scales and 8 mins (each `< 64`).
pub fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut out = [0u8; K_SCALE_SIZE];
    for j in 0..4 {
        out[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    out
}

/// Q4_K/Q5_K block sums from the codes `code(e)` and the sub-blocks' `(scale, min)`:
/// `(Σ_g sc_g·Σ code·xq, Σ_g m_g·Σ xq)` over the 8 sub-blocks of 32.
#[inline]
fn scale_min_sums(code: impl Fn(usize) -> u8, scale_min: impl Fn(usize) -> (u8, u8), xq: &[i8]) -> (i32, i32) {
    let xq = &xq[..QK_K];
    let (mut isum, mut msum) = (0i32, 0i32);
    for g in 0..QK_K / QK {
        let (sc, m) = scale_min(g);
        let (mut qx, mut sx) = (0i32, 0i32);
        for l in 0..QK {
            qx += code(QK * g + l) as i32 * xq[QK * g + l] as i32;
            sx += xq[QK * g + l] as i32;
        }
        isum += sc as i32 * qx;
        msum += m as i32 * sx;
    }
    (isum, msum)
}

impl BlockQ4K {
    /// The super-block scales `(d, dmin)` widened to f32 (exact).
    #[inline]
    pub fn d_dmin(&self) -> (f32, f32) {
        (f16_le(self.d), f16_le(self.dmin))
    }

    /// Sub-block `j`'s `(scale, min)`, each in `0..64`.
    #[inline]
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        unpack_scale_min(&self.scales, j)
    }

    /// Element `e`'s code in `0..16`.
    #[inline]
    pub fn code(&self, e: usize) -> u8 {
        let (j, l) = (e / 32, e % 32);
        let byte = self.qs[32 * (j / 2) + l];
        if j.is_multiple_of(2) { byte & 0x0F } else { byte >> 4 }
    }
}

impl KBlock for BlockQ4K {
    const ELEMS: usize = QK_K;
    const HAS_MIN: bool = true;

    /// `isum = Σ_g sc_g·Σ q·xq` (`|·| ≤ 63·15·127·256 < 2²⁵`), `msum = Σ_g m_g·Σ xq`
    /// (`≤ 63·127·256 < 2²¹`), over the 8 sub-blocks `g` of 32.
    #[inline]
    fn block_sums(&self, xq: &[i8]) -> (i32, i32) {
        scale_min_sums(|e| self.code(e), |g| self.scale_min(g), xq)
    }

    #[inline]
    fn multipliers(&self) -> (f32, f32) {
        let (d, dmin) = self.d_dmin();
        (d, -dmin)
    }

    /// ggml: `(d·sc)·q − (dmin·m)`, each product rounded to f32.
    #[inline]
    fn get(&self, e: usize) -> f32 {
        let (d, dmin) = self.d_dmin();
        let (sc, m) = self.scale_min(e / 32);
        (d * sc as f32) * self.code(e) as f32 - dmin * m as f32
    }
}

impl BlockQ5K {
    /// The super-block scales `(d, dmin)` widened to f32 (exact).
    #[inline]
    pub fn d_dmin(&self) -> (f32, f32) {
        (f16_le(self.d), f16_le(self.dmin))
    }

    /// Sub-block `j`'s `(scale, min)`, each in `0..64`.
    #[inline]
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        unpack_scale_min(&self.scales, j)
    }

    /// Element `e`'s code in `0..32`.
    #[inline]
    pub fn code(&self, e: usize) -> u8 {
        let (j, l) = (e / 32, e % 32);
        let byte = self.qs[32 * (j / 2) + l];
        let low = if j.is_multiple_of(2) { byte & 0x0F } else { byte >> 4 };
        low | (((self.qh[l] >> j) & 1) << 4)
    }
}

impl KBlock for BlockQ5K {
    const ELEMS: usize = QK_K;
    const HAS_MIN: bool = true;

    /// As Q4_K with codes `< 32`: `|isum| ≤ 63·31·127·256 < 2²⁶`.
    #[inline]
    fn block_sums(&self, xq: &[i8]) -> (i32, i32) {
        scale_min_sums(|e| self.code(e), |g| self.scale_min(g), xq)
    }

    #[inline]
    fn multipliers(&self) -> (f32, f32) {
        let (d, dmin) = self.d_dmin();
        (d, -dmin)
    }

    /// ggml: `(d·sc)·q − (dmin·m)`.
    #[inline]
    fn get(&self, e: usize) -> f32 {
        let (d, dmin) = self.d_dmin();
        let (sc, m) = self.scale_min(e / 32);
        (d * sc as f32) * self.code(e) as f32 - dmin * m as f32
    }
}

impl BlockQ6K {
    /// The super-block scale widened to f32 (exact).
    #[inline]
    pub fn scale(&self) -> f32 {
        f16_le(self.d)
    }

    /// Element `e`'s signed code `q − 32`, in `-32..32`.
    #[inline]
    pub fn code(&self, e: usize) -> i8 {
        let (n, k, l) = (e / 128, (e % 128) / 32, e % 32);
        let lo = self.ql[64 * n + 32 * (k & 1) + l];
        let lo = if k < 2 { lo & 0x0F } else { lo >> 4 };
        let hi = (self.qh[32 * n + l] >> (2 * k)) & 3;
        (lo | (hi << 4)) as i8 - 32
    }

    /// All 256 signed codes, `codes()[e] == code(e)`, unpacked in one pass (32 bytes of
    /// `qh` and 64 of `ql` per half `n` yield its four quarters).
    #[inline]
    pub fn codes(&self) -> [i8; QK_K] {
        let mut q = [0i8; QK_K];
        for n in 0..2 {
            for l in 0..32 {
                let (a, b, h) = (self.ql[64 * n + l], self.ql[64 * n + 32 + l], self.qh[32 * n + l]);
                let quarters = [a & 15, b & 15, a >> 4, b >> 4];
                for (k, low) in quarters.into_iter().enumerate() {
                    q[128 * n + 32 * k + l] = (low | (((h >> (2 * k)) & 3) << 4)) as i8 - 32;
                }
            }
        }
        q
    }
}

impl KBlock for BlockQ6K {
    const ELEMS: usize = QK_K;
    const HAS_MIN: bool = false;

    /// `isum = Σ_s sc_s·Σ (q − 32)·xq` over the 16 sub-blocks `s` of 16
    /// (`|·| ≤ 128·32·127·256 < 2²⁸`); no min.
    #[inline]
    fn block_sums(&self, xq: &[i8]) -> (i32, i32) {
        let q = self.codes();
        let mut isum = 0i32;
        for (s, (qs, xs)) in q.chunks_exact(16).zip(xq[..QK_K].chunks_exact(16)).enumerate() {
            let dot: i32 = qs.iter().zip(xs).map(|(&c, &x)| c as i32 * x as i32).sum();
            isum += self.scales[s] as i32 * dot;
        }
        (isum, 0)
    }

    #[inline]
    fn multipliers(&self) -> (f32, f32) {
        (self.scale(), 0.0)
    }

    /// ggml: `(d·sc)·(q − 32)`.
    #[inline]
    fn get(&self, e: usize) -> f32 {
        (self.scale() * self.scales[e / 16] as f32) * self.code(e) as f32
    }
}

/// Dequantizes whole blocks: `out[ELEMS·b + e] = blocks[b].get(e)`.
pub fn dequantize_row<W: KBlock>(blocks: &[W], out: &mut [f32]) {
    assert_eq!(out.len(), blocks.len() * W::ELEMS, "dequantize_row: out must hold whole blocks");
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(W::ELEMS)) {
        for (e, o) in ob.iter_mut().enumerate() {
            *o = block.get(e);
        }
    }
}

/// The matmul kernels of one kernel set for the K-quant and legacy block types (one
/// field of [`crate::KernelSet`], so the sets' tables change in one place).
#[derive(Clone, Copy)]
pub(crate) struct KQuantKernels {
    pub(crate) q4_k: MatmulFn<BlockQ4K>,
    pub(crate) q5_k: MatmulFn<BlockQ5K>,
    pub(crate) q6_k: MatmulFn<BlockQ6K>,
    pub(crate) q4_1: MatmulFn<BlockQ4_1>,
    pub(crate) q5_0: MatmulFn<BlockQ5_0>,
    pub(crate) q5_1: MatmulFn<BlockQ5_1>,
}

/// The scalar kernels (the specification), also used by every SIMD set for the legacy
/// types.
pub(crate) const SCALAR: KQuantKernels = KQuantKernels {
    q4_k: matmul_int::<BlockQ4K>,
    q5_k: matmul_int::<BlockQ5K>,
    q6_k: matmul_int::<BlockQ6K>,
    q4_1: matmul_int::<BlockQ4_1>,
    q5_0: matmul_int::<BlockQ5_0>,
    q5_1: matmul_int::<BlockQ5_1>,
};

/// Activation columns the scalar kernel quantizes per panel (one super-block; a small
/// stack buffer that also fits microcontrollers). Results do not depend on it.
const SCALAR_PANEL: usize = QK_K;

/// Integer-path matmul for any [`KBlock`] type: the specification. With
/// `(xq, xd) = quantize_activations_per(ELEMS, x[t])` (one scale `xd_b` per block `b`),
/// block by block, left to right:
///
/// ```text
/// out[t][i] = Σ_b ( f32(isum_b)·(a·xd_b) + f32(msum_b)·(m·xd_b) )
/// ```
///
/// where `(isum_b, msum_b)` are [`KBlock::block_sums`] of row `i`'s block `b` (exact
/// integers) and `(a, m)` its [`KBlock::multipliers`]; the `msum` term is skipped for
/// types without a min. Each token is handled on its own, so outputs do not depend on
/// the token count or the row range.
pub fn matmul_int<W: KBlock>(job: &MatmulJob<'_, W>, out: &mut [f32]) {
    job.check(W::ELEMS, out.len());
    let MatmulJob { w, cols, x, tokens, first, count } = *job;
    let nb = cols / W::ELEMS;
    let per_panel = SCALAR_PANEL / W::ELEMS;
    let mut xq = [0i8; SCALAR_PANEL];
    let mut xd = [0f32; SCALAR_PANEL / QK];
    out.fill(0.0);
    for t in 0..tokens {
        let mut b0 = 0;
        while b0 < nb {
            let pb = (nb - b0).min(per_panel);
            let n = pb * W::ELEMS;
            quantize_activations_per(W::ELEMS, &x[t * cols + b0 * W::ELEMS..][..n], &mut xq[..n], &mut xd[..pb]);
            for i in 0..count {
                let row = &w[(first + i) * nb + b0..][..pb];
                let o = &mut out[t * count + i];
                for (b, block) in row.iter().enumerate() {
                    let (a, m) = block.multipliers();
                    let (isum, msum) = block.block_sums(&xq[b * W::ELEMS..(b + 1) * W::ELEMS]);
                    *o += isum as f32 * (a * xd[b]);
                    if W::HAS_MIN {
                        *o += msum as f32 * (m * xd[b]);
                    }
                }
            }
            b0 += pb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wise unpacking equals the per-entry one on arbitrary bytes.
    #[test]
    fn word_unpacking_matches() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..10_000 {
            let mut b = [0u8; K_SCALE_SIZE];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            let (sc, m) = unpack_scales_mins(&b);
            for j in 0..8 {
                assert_eq!((sc[j], m[j]), unpack_scale_min(&b, j), "{b:?} j {j}");
            }
        }
    }

    /// Packing then unpacking every 6-bit scale/min position gives the values back.
    #[test]
    fn scale_min_packing_round_trips() {
        for seed in 0..64u8 {
            let sc: [u8; 8] = core::array::from_fn(|j| seed.wrapping_mul(7).wrapping_add(9 * j as u8) & 63);
            let m: [u8; 8] = core::array::from_fn(|j| seed.wrapping_mul(13).wrapping_add(5 * j as u8 + 1) & 63);
            let packed = pack_scale_min(&sc, &m);
            for j in 0..8 {
                assert_eq!(unpack_scale_min(&packed, j), (sc[j], m[j]), "seed {seed} j {j}");
            }
        }
    }
}
