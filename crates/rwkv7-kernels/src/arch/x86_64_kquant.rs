//! AVX2 micro-kernels for Q4_K, Q5_K and Q6_K (integer path).
//!
//! Entry points are safe `fn`s stored in [`KQ`], which is only reachable through the
//! `x86_64-avx2` kernel set; that set is handed out only when the CPU has AVX2, FMA and
//! F16C (see `arch/x86_64.rs`), the invariant every entry point's `// SAFETY:` relies on.
//!
//! Per group of 32 columns and output: `maddubs` of the unsigned codes (Q4_K/Q5_K
//! `0..32`, Q6_K `0..64`) against the activations gives 16 i16 pair sums (at most
//! `2·63·127 < 2¹⁵`, no saturation), `madd` with the sub-block scales
//! gives 8 exact i32 lanes of `isum`, converted and added with one FMA by `d·xd`. The
//! Q4_K/Q5_K min term is one FMA per super-block: the 8 exact group sums `Σxq` (computed
//! once per token, shared by the rows) scaled by `xd`, times `−dmin·m` for the 8 groups.
//! Q6_K's `−32` code offset is the same kind of term: `−32·d·sc` times the 16-element sums.

use core::arch::x86_64::*;

use super::kquant::{KTile, kquant_matmul_int};
use super::x86_64::{f16_bytes_to_f32, hsum};
use super::{PREFETCH_BYTES, QuantizeActs};
use crate::MatmulJob;
use crate::kquant::{self, BlockQ4K, BlockQ5K, BlockQ6K, KQuantKernels, QK_K, unpack_scales_mins};

/// The AVX2 K-quant kernels (legacy types use the scalar ones).
pub(crate) const KQ: KQuantKernels =
    KQuantKernels { q4_k: matmul_q4_k, q5_k: matmul_q5_k, q6_k: matmul_q6_k, ..kquant::SCALAR };

/// Marker for the AVX2 K-quant tiles.
struct Avx2K;

macro_rules! entry {
    ($name:ident, $body:ident, $w:ty) => {
        fn $name(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
            // SAFETY: only reachable through the AVX2 set, handed out only when the CPU has
            // AVX2, FMA and F16C (module docs).
            unsafe { $body(job, out) }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $body(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
            // SAFETY: the features `Avx2K` needs are enabled on this function.
            unsafe { kquant_matmul_int::<$w, Avx2K>(job, out) }
        }
    };
}

entry!(matmul_q4_k, matmul_q4_k_avx2, BlockQ4K);
entry!(matmul_q5_k, matmul_q5_k_avx2, BlockQ5K);
entry!(matmul_q6_k, matmul_q6_k_avx2, BlockQ6K);

impl QuantizeActs for Avx2K {
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, nb: usize) {
        // SAFETY: same contract; the Q8_0/Q4_0 AVX2 quantizer is bit-identical to the spec.
        unsafe { super::x86_64::quantize_blocks(x, qs, d, nb) }
    }
}

/// Q4_K and Q5_K as seen by the tile: scales, mins and the codes of one group.
trait ScaleMin {
    /// `(d, dmin, scales, mins)`.
    ///
    /// # Safety
    /// `p` valid for one block; F16C enabled in the caller.
    unsafe fn header(p: *const Self) -> (f32, f32, [u8; 8], [u8; 8]);
    /// Group `g`'s 32 codes as unsigned bytes (`0..32`).
    ///
    /// # Safety
    /// `p` valid for one block, `g < 8`; AVX2 enabled in the caller.
    unsafe fn codes(p: *const Self, g: usize) -> __m256i;
}

/// The nibbles of group `g` from the 128 bytes at `qs`: low for even `g`, high for odd.
///
/// # Safety
/// `qs` valid for 128 bytes, `g < 8`; AVX2 enabled in the caller.
#[inline(always)]
unsafe fn nibbles(qs: *const u8, g: usize) -> __m256i {
    // SAFETY: bytes `32(g/2)..32(g/2) + 32` are inside the 128 (caller).
    unsafe {
        let q = _mm256_loadu_si256(qs.add(32 * (g / 2)).cast());
        let q = if g.is_multiple_of(2) { q } else { _mm256_srli_epi16::<4>(q) };
        _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
    }
}

impl ScaleMin for BlockQ4K {
    #[inline(always)]
    unsafe fn header(p: *const Self) -> (f32, f32, [u8; 8], [u8; 8]) {
        // SAFETY: `p` is a readable block; F16C enabled (caller).
        unsafe {
            let (sc, m) = unpack_scales_mins(&(*p).scales);
            (f16_bytes_to_f32((*p).d), f16_bytes_to_f32((*p).dmin), sc, m)
        }
    }
    #[inline(always)]
    unsafe fn codes(p: *const Self, g: usize) -> __m256i {
        // SAFETY: `qs` is 128 readable bytes inside the block.
        unsafe { nibbles(core::ptr::addr_of!((*p).qs).cast(), g) }
    }
}

impl ScaleMin for BlockQ5K {
    #[inline(always)]
    unsafe fn header(p: *const Self) -> (f32, f32, [u8; 8], [u8; 8]) {
        // SAFETY: `p` is a readable block; F16C enabled (caller).
        unsafe {
            let (sc, m) = unpack_scales_mins(&(*p).scales);
            (f16_bytes_to_f32((*p).d), f16_bytes_to_f32((*p).dmin), sc, m)
        }
    }
    /// Nibble plus 16 where bit `g` of `qh[l]` is set (`cmpeq` makes the bit a byte mask).
    #[inline(always)]
    unsafe fn codes(p: *const Self, g: usize) -> __m256i {
        // SAFETY: `qs` (128 bytes) and `qh` (32 bytes) are inside the block.
        unsafe {
            let low = nibbles(core::ptr::addr_of!((*p).qs).cast(), g);
            let bit = _mm256_set1_epi8((1u8 << g) as i8);
            let qh = _mm256_loadu_si256(core::ptr::addr_of!((*p).qh).cast());
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
            _mm256_or_si256(low, _mm256_and_si256(set, _mm256_set1_epi8(16)))
        }
    }
}

/// Per token, the 8 group sums of one super-block's activation quants, scaled:
/// lane `g` = `xd[g] · f32(Σ_l xq[32g + l])` (the sum is exact in i32).
///
/// # Safety
/// `xq` valid for 256 quants, `xd` for 8 scales; AVX2 enabled in the caller.
#[inline(always)]
unsafe fn scaled_group_sums(xq: *const i8, xd: *const f32) -> __m256 {
    // SAFETY: loads stay inside the 256 quants and 8 scales (caller).
    unsafe {
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        let mut s = [_mm256_setzero_si256(); 8];
        for (g, sg) in s.iter_mut().enumerate() {
            let x = _mm256_loadu_si256(xq.add(32 * g).cast());
            *sg = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, x), ones16);
        }
        // Pairwise adds: after two rounds lane k of 128-bit half h holds group k (or
        // k + 4 in the second vector)'s sum over half h; the halves are then added.
        let h01 = _mm256_hadd_epi32(s[0], s[1]);
        let h23 = _mm256_hadd_epi32(s[2], s[3]);
        let h45 = _mm256_hadd_epi32(s[4], s[5]);
        let h67 = _mm256_hadd_epi32(s[6], s[7]);
        let q0 = _mm256_hadd_epi32(h01, h23);
        let q1 = _mm256_hadd_epi32(h45, h67);
        let lo = _mm256_permute2x128_si256::<0x20>(q0, q1);
        let hi = _mm256_permute2x128_si256::<0x31>(q0, q1);
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi)), _mm256_loadu_ps(xd))
    }
}

/// Asks for the cache line [`PREFETCH_BYTES`] past group `g`'s share (32 bytes) of the
/// super-block at `p`, so a row's whole stream is requested ahead (as the Q8_0/Q4_0 tiles
/// do; decode is memory-bound). A prefetch never faults, so the address may lie past the
/// matrix.
///
/// # Safety
/// SSE enabled in the caller.
#[inline(always)]
unsafe fn prefetch_ahead<W>(p: *const W, g: usize) {
    // SAFETY: a prefetch reads nothing architecturally and cannot fault; `wrapping_add`
    // keeps the pointer arithmetic defined past the allocation.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(PREFETCH_BYTES + 32 * g)) }
}

impl<W: ScaleMin> KTile<W> for Avx2K {
    /// Scale term per group as in the module docs. The min term is taken once per
    /// super-block: `(−dmin · m_g)` for the 8 groups as one vector times
    /// [`scaled_group_sums`], one FMA (the integer sums are the same as the
    /// specification's, the float products are associated differently).
    #[inline(always)]
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: `nb` blocks behind every weight pointer, `256·nb` quants and `8·nb` scales
        // behind every activation pointer, and the ISA (caller).
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); T]; R];
            for b in 0..nb {
                let mut xs = [_mm256_setzero_ps(); T];
                for t in 0..T {
                    xs[t] = scaled_group_sums(xq[t].add(b * QK_K), xd[t].add(b * 8));
                }
                let mut head = [(0f32, [0u8; 8]); R];
                for r in 0..R {
                    let (d, dmin, sc, m) = W::header(w[r].add(b));
                    let mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(m.as_ptr().cast())));
                    let mins = _mm256_mul_ps(mins, _mm256_set1_ps(-dmin));
                    for t in 0..T {
                        acc[r][t] = _mm256_fmadd_ps(mins, xs[t], acc[r][t]);
                    }
                    head[r] = (d, sc);
                }
                for g in 0..QK_K / 32 {
                    let mut xv = [_mm256_setzero_si256(); T];
                    let mut dx = [0f32; T];
                    for t in 0..T {
                        xv[t] = _mm256_loadu_si256(xq[t].add(b * QK_K + 32 * g).cast());
                        dx[t] = *xd[t].add(b * 8 + g);
                    }
                    for r in 0..R {
                        let (d, sc) = head[r];
                        prefetch_ahead(w[r].add(b), g);
                        let codes = W::codes(w[r].add(b), g);
                        let scv = _mm256_set1_epi16(sc[g] as i16);
                        for t in 0..T {
                            let isum = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xv[t]), scv);
                            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * dx[t]), acc[r][t]);
                        }
                    }
                }
            }
            let mut res = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    res[r][t] = hsum(acc[r][t]);
                }
            }
            res
        }
    }
}

/// Q6_K group `g`'s 32 unsigned 6-bit codes `q` (the value is `q − 32`).
///
/// # Safety
/// `p` valid for one block, `g < 8`; AVX2 enabled in the caller.
#[inline(always)]
unsafe fn q6_codes(p: *const BlockQ6K, g: usize) -> __m256i {
    let (n, k) = (g / 4, g % 4);
    // SAFETY: `ql` bytes `64n + 32(k&1) ..+32` and `qh` bytes `32n..+32` are in the block.
    unsafe {
        let ql = _mm256_loadu_si256(core::ptr::addr_of!((*p).ql).cast::<u8>().add(64 * n + 32 * (k & 1)).cast());
        let lo = if k < 2 { ql } else { _mm256_srli_epi16::<4>(ql) };
        let lo = _mm256_and_si256(lo, _mm256_set1_epi8(0x0F));
        let qh = _mm256_loadu_si256(core::ptr::addr_of!((*p).qh).cast::<u8>().add(32 * n).cast());
        // Bits 2k, 2k+1 of each byte moved to bits 4, 5 (16-bit shifts; the mask drops
        // what crossed from the neighbouring byte).
        let hi = match k {
            0 => _mm256_slli_epi16::<4>(qh),
            1 => _mm256_slli_epi16::<2>(qh),
            2 => qh,
            _ => _mm256_srli_epi16::<2>(qh),
        };
        _mm256_or_si256(lo, _mm256_and_si256(hi, _mm256_set1_epi8(0x30)))
    }
}

/// `d·xd·Σ_h sc_h·(32·Σ_{16} xq)` for one super-block: the part of `Σ sc·(q − 32)·xq`
/// that the unsigned codes leave out, as 8 lanes (group `g` in lane `g`). The 16-element
/// sums and their products with the scales are exact integers.
///
/// # Safety
/// `xq` valid for 256 quants, `xd` for 8 scales; AVX2 enabled in the caller.
#[inline(always)]
unsafe fn q6_offset_sums(xq: *const i8, xd: *const f32) -> (__m256, __m256) {
    // SAFETY: loads stay inside the 256 quants and 8 scales (caller).
    unsafe {
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        let mut s = [_mm256_setzero_si256(); 8];
        for (g, sg) in s.iter_mut().enumerate() {
            let x = _mm256_loadu_si256(xq.add(32 * g).cast());
            *sg = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, x), ones16);
        }
        let q0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        let q1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
        // First halves (elements 0..16 of each group) and second halves, group g in lane g.
        let first = _mm256_permute2x128_si256::<0x20>(q0, q1);
        let second = _mm256_permute2x128_si256::<0x31>(q0, q1);
        let xdv = _mm256_loadu_ps(xd);
        (_mm256_mul_ps(_mm256_cvtepi32_ps(first), xdv), _mm256_mul_ps(_mm256_cvtepi32_ps(second), xdv))
    }
}

impl KTile<BlockQ6K> for Avx2K {
    /// Unsigned codes `q` × activations (`maddubs`, pairs ≤ `2·63·127 < 2¹⁵`), `madd` by
    /// the two 16-element sub-block scales (low 128 bits: first half of the group), FMA by
    /// `d·xd`; the `−32·sc·Σxq` part once per super-block from [`q6_offset_sums`].
    #[inline(always)]
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const BlockQ6K; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: as for the Q4_K tile.
        unsafe {
            // pshufb mask: low 128 bits repeat i16 0 (`sc[2g]`), high 128 bits i16 1.
            let pick = _mm256_setr_epi8(
                0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
            );
            let mut acc = [[_mm256_setzero_ps(); T]; R];
            for b in 0..nb {
                let mut xs = [(_mm256_setzero_ps(), _mm256_setzero_ps()); T];
                for t in 0..T {
                    xs[t] = q6_offset_sums(xq[t].add(b * QK_K), xd[t].add(b * 8));
                }
                let mut d = [0f32; R];
                let mut sc16 = [_mm256_setzero_si256(); R];
                for r in 0..R {
                    let blk = w[r].add(b);
                    d[r] = f16_bytes_to_f32((*blk).d);
                    let sc = _mm_loadu_si128(core::ptr::addr_of!((*blk).scales).cast());
                    sc16[r] = _mm256_cvtepi8_epi16(sc);
                    // −32·d·sc for the even (first-half) and odd (second-half) sub-blocks.
                    let even =
                        _mm_shuffle_epi8(sc, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1));
                    let odd =
                        _mm_shuffle_epi8(sc, _mm_setr_epi8(1, 3, 5, 7, 9, 11, 13, 15, -1, -1, -1, -1, -1, -1, -1, -1));
                    let m32 = _mm256_set1_ps(-32.0 * d[r]);
                    let even = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(even)), m32);
                    let odd = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(odd)), m32);
                    for t in 0..T {
                        acc[r][t] = _mm256_fmadd_ps(even, xs[t].0, acc[r][t]);
                        acc[r][t] = _mm256_fmadd_ps(odd, xs[t].1, acc[r][t]);
                    }
                }
                for g in 0..QK_K / 32 {
                    let mut xv = [_mm256_setzero_si256(); T];
                    let mut dx = [0f32; T];
                    for t in 0..T {
                        xv[t] = _mm256_loadu_si256(xq[t].add(b * QK_K + 32 * g).cast());
                        dx[t] = *xd[t].add(b * 8 + g);
                    }
                    for r in 0..R {
                        prefetch_ahead(w[r].add(b), g);
                        let codes = q6_codes(w[r].add(b), g);
                        // Dword g of the i16 scales is the pair (sc[2g], sc[2g+1]).
                        let pair = _mm256_permutevar8x32_epi32(sc16[r], _mm256_set1_epi32(g as i32));
                        let scv = _mm256_shuffle_epi8(pair, pick);
                        for t in 0..T {
                            let isum = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xv[t]), scv);
                            acc[r][t] =
                                _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d[r] * dx[t]), acc[r][t]);
                        }
                    }
                }
            }
            let mut res = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    res[r][t] = hsum(acc[r][t]);
                }
            }
            res
        }
    }
}
