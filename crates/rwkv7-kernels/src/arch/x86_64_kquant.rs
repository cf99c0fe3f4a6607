//! AVX2 micro-kernels for Q4_K, Q5_K and Q6_K (integer path), and the VNNI sets' variant.
//!
//! Entry points are safe `fn`s stored in [`KQ`], which is only reachable through the
//! `x86_64-avx2` kernel set and the VNNI sets (which include AVX2), and in the VNNI sets'
//! own tables ([`VnniK`]); a set is handed out only when the CPU has its features (see
//! `arch/x86_64.rs` and `x86_64/vnni.rs`), the invariant every entry point's `// SAFETY:`
//! relies on.
//!
//! # One super-block of one row against one token ([`KRow::block_fma`])
//!
//! The activations carry one scale per super-block (`kquant` module docs), so the whole
//! super-block is one integer sum. The codes are unpacked to unsigned bytes (Q4_K
//! `0..16`, Q5_K `0..32`, Q6_K `0..64`) and multiplied with the activation quants by
//! `maddubs`: 16 i16 sums of two products per group of 32, at most `2·63·127 < 2¹⁵` (no
//! saturation). `madd` by the group's sub-scales (i16 in every lane; Q6_K: one scale per
//! 128-bit half, the half being one 16-element sub-block) turns them into i32 and applies
//! the scale in one step, and the 8 groups add up lane by lane: 8 exact i32 partial sums
//! of `isum`. (The VNNI sets fold each `madd` and its add into one `vpdpwssd`,
//! [`VnniK`].) One conversion and one FMA by `d·xd` add the super-block to the output's
//! accumulator. The terms that do not depend on the codes — Q4_K/Q5_K's
//! `−dmin·Σ_g m_g·Σxq_g` and Q6_K's `−32·Σ_s sc_s·Σxq_s` — come from per-token sums
//! prepared once per call ([`KRow::prep_x`]).
//!
//! llvm-mca (`-mcpu=znver3`) puts `maddubs`/`madd` on two multiply ports and byte
//! shuffles and shifts on two others; per super-block and token this is 16 multiplies,
//! where the previous per-32 activation scales needed a cross-lane `hadd` tree (2 cycles
//! each on one port) to reach per-group float scales.
//!
//! # Rows and tokens ([`int_rows`])
//!
//! A row's super-block is unpacked once ([`KRow::prep_w`]: codes, scale vectors, mins)
//! and used by every token; the tokens' per-super-block terms are prepared once for all
//! the rows of the call and kept on the stack, super-block-major. Rows run one at a time
//! (one linear stream through the weights, prefetched [`PREFETCH_BYTES`] ahead). Every
//! output gets the same operations whatever the number of rows and tokens of the call.

use core::arch::x86_64::*;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use super::kquant::{KTile, kquant_matmul_int};
use super::x86_64::vnni::VnniOps;
use super::x86_64::{RowSums, hsum_all};
use super::{PANEL, PREFETCH_BYTES, QuantizeActs, SUPER_T, add_run, runs, store_row};
use crate::MatmulJob;
use crate::kquant::{self, BlockQ4K, BlockQ5K, BlockQ6K, KQuantKernels, QK_K};

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
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: same contract; the Q8_0/Q4_0 AVX2 quantizer is bit-identical to the spec.
        unsafe { super::x86_64::quantize_blocks(x, qs, d, block, nb) }
    }
}

/// Super-blocks per activation panel: the most a token's prepared terms need in a
/// prefill panel (a wide decode row needs up to [`MAX_PREPARED`]).
const PANEL_BLOCKS: usize = PANEL / QK_K;

/// A K-quant block type as the AVX2 row kernel sees it.
trait KRow: Sized {
    /// One token's terms for one super-block, prepared once per call.
    type X: Copy;
    /// One row's super-block unpacked, used by every token.
    type W: Copy;

    /// The terms of the super-block whose 256 quants are at `xq`, with scale `xd`.
    ///
    /// # Safety
    /// `xq` valid for 256 quants; AVX2 and FMA enabled.
    unsafe fn prep_x(xq: *const i8, xd: f32) -> Self::X;

    /// The super-block at `p` unpacked (and the weights [`PREFETCH_BYTES`] further
    /// along the row requested).
    ///
    /// # Safety
    /// `p` valid for one block; AVX2, FMA and F16C enabled.
    unsafe fn prep_w(p: *const Self) -> Self::W;

    /// `acc` plus the super-block's contribution for one token, whose 256 quants are at
    /// `xq` and terms are `x`, the products formed by engine `E`.
    ///
    /// # Safety
    /// `xq` valid for 256 quants; AVX2, FMA and `E`'s ISA enabled.
    unsafe fn block_fma<E: KEngine>(w: &Self::W, xq: *const i8, x: &Self::X, acc: __m256) -> __m256;
}

/// Requests the cache lines [`PREFETCH_BYTES`] past the block at `p`: one per 64 bytes
/// of the block, so that consecutive blocks of a row leave no line out (the gap between
/// the last request of one block and the first of the next is at most 64 bytes). A
/// prefetch never faults, so the address may lie past the matrix.
///
/// # Safety
/// SSE enabled in the caller.
#[inline(always)]
unsafe fn prefetch_block<W>(p: *const W) {
    let ahead = p.cast::<i8>().wrapping_add(PREFETCH_BYTES);
    for k in 0..core::mem::size_of::<W>().div_ceil(64) {
        // SAFETY: a prefetch reads nothing architecturally and cannot fault; `wrapping_add`
        // keeps the pointer arithmetic defined past the allocation.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * k)) }
    }
}

/// The 8 `maddubs` results of one super-block: group `g`'s pair sums against `xq`.
///
/// # Safety
/// `xq` valid for 256 quants; AVX2 enabled.
#[inline(always)]
unsafe fn products(codes: &[__m256i; 8], xq: *const i8) -> [__m256i; 8] {
    // SAFETY: group `g`'s 32 quants are inside the 256 (caller).
    unsafe {
        let mut pairs = [_mm256_setzero_si256(); 8];
        for g in 0..8 {
            pairs[g] = group_pairs(codes, xq, g);
        }
        pairs
    }
}

/// Lane `g` of the result is the sum of all 16 i16 lanes of `p[g]` (exact), for pair
/// sums `|p| ≤ 7874` (Q5_K's `2·31·127`; the two i16 levels stay below `4·7874 < 2¹⁵`).
///
/// Two rounds of `hadd_epi16` leave, in each 128-bit half, two adjacent i16 per group
/// (`q0`: groups 0..4, `q1`: 4..8); `madd` by ones adds those pairs into i32, and the
/// halves are swapped into place and added: lane `g` = group `g`.
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn group_tree(p: [__m256i; 8]) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let h01 = _mm256_hadd_epi16(p[0], p[1]);
        let h23 = _mm256_hadd_epi16(p[2], p[3]);
        let h45 = _mm256_hadd_epi16(p[4], p[5]);
        let h67 = _mm256_hadd_epi16(p[6], p[7]);
        let q0 = _mm256_madd_epi16(_mm256_hadd_epi16(h01, h23), ones);
        let q1 = _mm256_madd_epi16(_mm256_hadd_epi16(h45, h67), ones);
        let lo = _mm256_permute2x128_si256::<0x20>(q0, q1);
        let hi = _mm256_permute2x128_si256::<0x31>(q0, q1);
        _mm256_add_epi32(lo, hi)
    }
}

/// The 16-element sub-block sums of `p` (pair sums `|p| ≤ 16002`, Q6_K's `2·63·127`;
/// one i16 round stays below 2¹⁵): `a` holds groups 0..4 (lanes 0..4: first halves,
/// lanes 4..8: second halves), `b` groups 4..8 likewise. One `hadd_epi16`, `madd` by
/// ones, then `hadd_epi32` (each 128-bit half of `p[g]` is one sub-block).
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn half_group_tree(p: [__m256i; 8]) -> (__m256i, __m256i) {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut m = [_mm256_setzero_si256(); 4];
        for i in 0..4 {
            m[i] = _mm256_madd_epi16(_mm256_hadd_epi16(p[2 * i], p[2 * i + 1]), ones);
        }
        (_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3]))
    }
}

/// `maddubs` of ones against a super-block's quants: pair sums of the activations.
///
/// # Safety
/// `xq` valid for 256 quants; AVX2 enabled.
#[inline(always)]
unsafe fn activation_pairs(xq: *const i8) -> [__m256i; 8] {
    // SAFETY: forwarded contract.
    unsafe { products(&[_mm256_set1_epi8(1); 8], xq) }
}

/// A token's Q4_K/Q5_K super-block terms: `xd` in every lane and `xsd = xd·f32(Σ xq_g)`
/// (lane `g`; the group sums are exact integers).
#[derive(Clone, Copy)]
struct SmX {
    xd: __m256,
    xsd: __m256,
}

/// A row's Q4_K/Q5_K super-block: the 8 groups' unsigned codes, group `g`'s sub-scale in
/// every i16 lane of `scales[g]`, `d` in every lane, and `dmin·m_g` (lane `g`).
#[derive(Clone, Copy)]
struct SmW {
    codes: [__m256i; 8],
    scales: [__m256i; 8],
    d: __m256,
    dmin_m: __m256,
}

/// The 8 scale vectors `madd` needs: vector `g` holds i16 lane `g` of each 128-bit half
/// of `v` in every lane of that half. Each lane is first doubled into a 32-bit pair
/// (`unpack`), then `pshufd` copies pair `g mod 4` across the half: ten in-lane shuffles.
/// (A `pshufb` per vector would be eight, but LLVM rewrites a splat `pshufb` into a
/// shift or `pshufd` plus a cross-lane `vpbroadcastw`: sixteen. Criterion could not tell
/// the two apart; the loop has other limits, see KERNELS.md.)
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn spread_lanes(v: __m256i) -> [__m256i; 8] {
    // SAFETY: register-only; AVX2 is the caller's promise.
    unsafe {
        let lo = _mm256_unpacklo_epi16(v, v);
        let hi = _mm256_unpackhi_epi16(v, v);
        [
            _mm256_shuffle_epi32::<0x00>(lo),
            _mm256_shuffle_epi32::<0x55>(lo),
            _mm256_shuffle_epi32::<0xAA>(lo),
            _mm256_shuffle_epi32::<0xFF>(lo),
            _mm256_shuffle_epi32::<0x00>(hi),
            _mm256_shuffle_epi32::<0x55>(hi),
            _mm256_shuffle_epi32::<0xAA>(hi),
            _mm256_shuffle_epi32::<0xFF>(hi),
        ]
    }
}

/// Group `g`'s `maddubs` of its codes against its 32 quants: 16 i16 sums of two products.
///
/// # Safety
/// `xq` valid for 256 quants, `g < 8`; AVX2 enabled.
#[inline(always)]
unsafe fn group_pairs(codes: &[__m256i; 8], xq: *const i8, g: usize) -> __m256i {
    // SAFETY: group `g`'s 32 quants are inside the 256 (caller).
    unsafe { _mm256_maddubs_epi16(codes[g], _mm256_loadu_si256(xq.add(32 * g).cast())) }
}

/// The engine of the K-quant tiles: how a super-block's scaled group products are formed
/// ([`Avx2K`]: `madd` and adds; the VNNI sets' engine: `vpdpwssd`). Every engine gives the
/// same exact sums in the same lanes, so the outputs agree bit for bit.
pub(in crate::arch) trait KEngine {
    /// `Σ_g madd(maddubs(codes_g, xq_g), scales_g)`: 8 exact i32 partial sums of
    /// `Σ_g s_g·Σ code·xq` (each `|·| ≤ 8·2·(2·63·127)·128 < 2²⁵`, Q6_K's bound).
    ///
    /// # Safety
    /// `xq` valid for 256 quants; the engine's ISA (with AVX2) enabled.
    unsafe fn scaled_products(codes: &[__m256i; 8], scales: &[__m256i; 8], xq: *const i8) -> __m256i;
}

impl KEngine for Avx2K {
    #[inline(always)]
    unsafe fn scaled_products(codes: &[__m256i; 8], scales: &[__m256i; 8], xq: *const i8) -> __m256i {
        // SAFETY: group `g`'s 32 quants are inside the 256 (caller); the rest is register-only.
        unsafe {
            // Each group's `maddubs` right before its `madd`, not all 8 first through
            // [`products`]: that order measured about 3 % slower in decode (criterion q4_k
            // and q6_k 4096×1024×1, 3 alternated runs).
            let mut s = [_mm256_setzero_si256(); 8];
            for g in 0..8 {
                s[g] = _mm256_madd_epi16(group_pairs(codes, xq, g), scales[g]);
            }
            // A pairwise tree, not a chain: three adds deep instead of eight.
            let s01 = _mm256_add_epi32(s[0], s[1]);
            let s23 = _mm256_add_epi32(s[2], s[3]);
            let s45 = _mm256_add_epi32(s[4], s[5]);
            let s67 = _mm256_add_epi32(s[6], s[7]);
            _mm256_add_epi32(_mm256_add_epi32(s01, s23), _mm256_add_epi32(s45, s67))
        }
    }
}

/// Q4_K and Q5_K: the header is shared, the codes differ.
trait ScaleMin: Sized {
    /// The 8 groups' codes as unsigned bytes.
    ///
    /// # Safety
    /// `p` valid for one block; AVX2 enabled.
    unsafe fn codes(p: *const Self) -> [__m256i; 8];
}

/// The 4 header bytes `d`, `dmin` (f16) and the 12 packed scale bytes at `p` unpacked:
/// `(d, dmin)` each in every lane, the 8 scales as i16 (lanes 0..8, in both 128-bit
/// halves) and the 8 mins as f32 (lane `g`).
///
/// The 6-bit fields are unpacked with 32-bit word operations as
/// [`kquant::unpack_scales_mins`] describes (`w0, w1, w2` the three words): dwords
/// `[w0, w2, w1, w2 >> 4]` masked with `[0x3f…, 0x0f…, 0x3f…, 0x0f…]`, or'ed with
/// `[0, w0 >> 2, 0, w1 >> 2]` masked with `0x30…` (the top two bits of each byte moved
/// to bits 4, 5), give the bytes `sc0..4, sc4..8, m0..4, m4..8`.
///
/// # Safety
/// `p` valid for 20 bytes (Q4_K/Q5_K blocks are longer); AVX2 and F16C enabled.
#[inline(always)]
unsafe fn scale_min_header(p: *const u8) -> (__m256, __m256, __m256i, __m256) {
    // SAFETY: bytes `p..p + 20` are readable (caller); the rest is register-only.
    unsafe {
        let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(p.cast::<i32>().read_unaligned()));
        let v = _mm_loadu_si128(p.add(4).cast());
        // _MM_SHUFFLE(2, 1, 2, 0): dwords [w0, w2, w1, w2]; then w2 >> 4 in the last.
        let lo = _mm_srlv_epi32(_mm_shuffle_epi32::<0b10_01_10_00>(v), _mm_setr_epi32(0, 0, 0, 4));
        let lo = _mm_and_si128(lo, _mm_setr_epi32(0x3f3f_3f3f, 0x0f0f_0f0f, 0x3f3f_3f3f, 0x0f0f_0f0f));
        // _MM_SHUFFLE(1, 1, 0, 0): dwords [w0, w0, w1, w1].
        let hi = _mm_srli_epi32::<2>(_mm_shuffle_epi32::<0b01_01_00_00>(v));
        let hi = _mm_and_si128(hi, _mm_setr_epi32(0, 0x3030_3030, 0, 0x3030_3030));
        let sm = _mm_or_si128(lo, hi);
        let sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        let m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(sm)));
        (_mm256_broadcastss_ps(dd), _mm256_broadcastss_ps(_mm_movehdup_ps(dd)), sc, m)
    }
}

/// The nibbles of the 128 bytes at `qs`: byte `32i + l` holds group `2i` element `l` in
/// its low nibble and group `2i + 1` in its high nibble.
///
/// # Safety
/// `qs` valid for 128 bytes; AVX2 enabled.
#[inline(always)]
unsafe fn nibbles(qs: *const u8) -> [__m256i; 8] {
    // SAFETY: bytes `32i..32i + 32` for `i < 4` are inside the 128 (caller).
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        let mut out = [_mm256_setzero_si256(); 8];
        for i in 0..4 {
            let q = _mm256_loadu_si256(qs.add(32 * i).cast());
            out[2 * i] = _mm256_and_si256(q, low4);
            out[2 * i + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
        }
        out
    }
}

impl ScaleMin for BlockQ4K {
    #[inline(always)]
    unsafe fn codes(p: *const Self) -> [__m256i; 8] {
        // SAFETY: `qs` is 128 readable bytes inside the block.
        unsafe { nibbles(core::ptr::addr_of!((*p).qs).cast()) }
    }
}

impl ScaleMin for BlockQ5K {
    /// Nibble plus 16 where bit `g` of `qh[l]` is set: a 16-bit shift moves bit `g` of
    /// each byte to bit 4 (left by `4 − g`, right by `g − 4`; the bits that cross from
    /// the neighbouring byte land below bit 4 or above it, and the mask drops them).
    #[inline(always)]
    unsafe fn codes(p: *const Self) -> [__m256i; 8] {
        // SAFETY: `qs` (128 bytes) and `qh` (32 bytes) are inside the block.
        unsafe {
            let mut c = nibbles(core::ptr::addr_of!((*p).qs).cast());
            let qh = _mm256_loadu_si256(core::ptr::addr_of!((*p).qh).cast());
            let bit4 = _mm256_set1_epi8(16);
            let at4 = [
                _mm256_slli_epi16::<4>(qh),
                _mm256_slli_epi16::<3>(qh),
                _mm256_slli_epi16::<2>(qh),
                _mm256_slli_epi16::<1>(qh),
                qh,
                _mm256_srli_epi16::<1>(qh),
                _mm256_srli_epi16::<2>(qh),
                _mm256_srli_epi16::<3>(qh),
            ];
            for g in 0..8 {
                c[g] = _mm256_or_si256(c[g], _mm256_and_si256(at4[g], bit4));
            }
            c
        }
    }
}

impl<B: ScaleMin> KRow for B {
    type X = SmX;
    type W = SmW;

    #[inline(always)]
    unsafe fn prep_x(xq: *const i8, xd: f32) -> SmX {
        // SAFETY: forwarded contract.
        unsafe {
            let xd = _mm256_set1_ps(xd);
            let sums = group_tree(activation_pairs(xq));
            SmX { xd, xsd: _mm256_mul_ps(_mm256_cvtepi32_ps(sums), xd) }
        }
    }

    #[inline(always)]
    unsafe fn prep_w(p: *const Self) -> SmW {
        // SAFETY: forwarded contract; the header reads bytes 0..20 of the block (144 or 176).
        unsafe {
            prefetch_block(p);
            let (d, dmin, sc, m) = scale_min_header(p.cast());
            SmW { codes: B::codes(p), scales: spread_lanes(sc), d, dmin_m: _mm256_mul_ps(dmin, m) }
        }
    }

    /// `acc + f32(isum)·(d·xd)` over the 8 lanes of partial sums, then
    /// `− (dmin·m_g)·(xd·Σxq_g)` for the min term.
    #[inline(always)]
    unsafe fn block_fma<E: KEngine>(w: &SmW, xq: *const i8, x: &SmX, acc: __m256) -> __m256 {
        // SAFETY: forwarded contract.
        unsafe {
            let isum = _mm256_cvtepi32_ps(E::scaled_products(&w.codes, &w.scales, xq));
            // The super-block's term first, then one add: the accumulator's dependency
            // chain is one add per super-block, not two FMAs.
            let term = _mm256_fmsub_ps(isum, _mm256_mul_ps(w.d, x.xd), _mm256_mul_ps(w.dmin_m, x.xsd));
            _mm256_add_ps(acc, term)
        }
    }
}

/// A token's Q6_K super-block terms: `xd` in every lane and the 16 sub-block sums `Σxq_s`
/// as i16 in the order `[0, 2, …, 14 | 1, 3, …, 15]` (even sub-blocks in the low 128-bit
/// half; `|·| ≤ 16·127`), the order [`Q6W::sc16`] uses.
#[derive(Clone, Copy)]
struct Q6X {
    xd: __m256,
    sub_sums: __m256i,
}

/// A row's Q6_K super-block: the 8 groups' unsigned codes `q`, the 16 sub-scales as i16
/// in [`Q6X::sub_sums`]' order, group `g`'s scale vector (`sc_2g` in the low half,
/// `sc_2g+1` in the high half: the halves of a group are its two sub-blocks), and `d` in
/// every lane.
#[derive(Clone, Copy)]
struct Q6W {
    codes: [__m256i; 8],
    scales: [__m256i; 8],
    sc16: __m256i,
    d: __m256,
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

impl KRow for BlockQ6K {
    type X = Q6X;
    type W = Q6W;

    /// [`half_group_tree`] gives the sub-block sums as i32 in the lanes
    /// `[0, 2, 4, 6, 1, 3, 5, 7]` and `[8, 10, 12, 14, 9, 11, 13, 15]`; `packs` interleaves
    /// the two per 128-bit half into the even/odd order.
    #[inline(always)]
    unsafe fn prep_x(xq: *const i8, xd: f32) -> Q6X {
        // SAFETY: forwarded contract.
        unsafe {
            let (sa, sb) = half_group_tree(activation_pairs(xq));
            Q6X { xd: _mm256_set1_ps(xd), sub_sums: _mm256_packs_epi32(sa, sb) }
        }
    }

    #[inline(always)]
    unsafe fn prep_w(p: *const Self) -> Q6W {
        // SAFETY: forwarded contract; `scales` is 16 bytes inside the block.
        unsafe {
            prefetch_block(p);
            let sc = _mm_loadu_si128(core::ptr::addr_of!((*p).scales).cast());
            // Even sub-blocks to bytes 0..8, odd ones to 8..16.
            let sc = _mm_shuffle_epi8(sc, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
            let sc16 = _mm256_cvtepi8_epi16(sc);
            let d = _mm256_set1_ps(super::x86_64::f16_bytes_to_f32((*p).d));
            let mut codes = [_mm256_setzero_si256(); 8];
            for (g, c) in codes.iter_mut().enumerate() {
                *c = q6_codes(p, g);
            }
            Q6W { codes, scales: spread_lanes(sc16), sc16, d }
        }
    }

    /// `Σ_s sc_s·(Σ q·xq − 32·Σxq_s) = Σ_s sc_s·Σ (q − 32)·xq` as 8 exact i32 partial
    /// sums (the offset part `32·madd(sc, Σxq)` is at most `32·2·128·2032 < 2²⁵`), one
    /// conversion and one FMA by `d·xd`.
    #[inline(always)]
    unsafe fn block_fma<E: KEngine>(w: &Q6W, xq: *const i8, x: &Q6X, acc: __m256) -> __m256 {
        // SAFETY: forwarded contract.
        unsafe {
            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(w.sc16, x.sub_sums));
            let isum = _mm256_sub_epi32(E::scaled_products(&w.codes, &w.scales, xq), offset);
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(w.d, x.xd), acc)
        }
    }
}

/// Where [`rows_with`] finds token `t`'s terms for super-block `b`. A trait with
/// `#[inline(always)]` methods, not a closure: a closure that LLVM leaves out of line
/// (it did with one codegen unit) lacks the caller's AVX2 target feature, and every
/// intrinsic inside it becomes a call (see KERNELS.md).
trait Terms<W: KRow> {
    /// # Safety
    /// `b` and `t` within the super-blocks and tokens the terms were made for.
    unsafe fn at(&self, b: usize, t: usize) -> W::X;
}

/// Terms prepared on the stack, super-block-major: token `t` of super-block `b` at
/// entry `b·tokens + t` of the borrowed array, of which the first `nb·tokens` are
/// written (`nb`: the super-blocks of the call).
struct Prepared<'a, X> {
    terms: &'a [MaybeUninit<X>],
    tokens: usize,
}

impl<W: KRow> Terms<W> for Prepared<'_, W::X> {
    #[inline(always)]
    unsafe fn at(&self, b: usize, t: usize) -> W::X {
        // SAFETY: `b < nb` and `t < tokens` (caller), so the entry is inside the array
        // and was written before the terms were handed out.
        unsafe { self.terms.get_unchecked(b * self.tokens + t).assume_init() }
    }
}

/// Terms computed where they are used, from the tokens' quants and scales.
struct OnTheFly<const T: usize> {
    xq: [*const i8; T],
    xd: [*const f32; T],
}

impl<W: KRow, const T: usize> Terms<W> for OnTheFly<T> {
    #[inline(always)]
    unsafe fn at(&self, b: usize, t: usize) -> W::X {
        // SAFETY: super-block `b` of token `t` is inside its quants and scales (caller).
        unsafe { W::prep_x(self.xq[t].add(b * QK_K), *self.xd[t].add(b)) }
    }
}

/// `n` rows (row `i` at `row(i)`, `nb` super-blocks each) against `T` tokens, token `t`'s
/// terms for super-block `b` given by `x.at(b, t)`: each row's super-blocks are unpacked
/// once, and every output accumulates its super-blocks in order into one 8-lane
/// accumulator. Rows of one run (`nb ≤ panel`) are reduced by [`RowSums`]; the rows of a
/// wide decode call by runs of `panel` super-blocks, each reduced alone and added in
/// order ([`add_run`]).
///
/// # Safety
/// Every row valid for `nb` blocks, `xq[t]` for `256·nb` quants, `x` valid for `nb`
/// super-blocks and `T` tokens; AVX2, FMA and F16C enabled.
#[inline(always)]
unsafe fn rows_with<E: KEngine, W: KRow, const T: usize>(
    row: impl Fn(usize) -> *const W,
    n: usize,
    xq: [*const i8; T],
    nb: usize,
    panel: usize,
    x: &impl Terms<W>,
    mut store: impl FnMut(usize, usize, f32),
) {
    // SAFETY: forwarded contract.
    unsafe {
        if nb > panel {
            for i in 0..n {
                let w = row(i);
                let mut sums = [0.0; T];
                for (b0, b1) in runs(nb, panel) {
                    add_run(&mut sums, b0, hsum_all(&[run::<E, W, T>(w, xq, x, b0, b1)])[0]);
                }
                store_row(i, sums, &mut store);
            }
            return;
        }
        let mut sums = RowSums::<T>::new(n);
        for i in 0..n {
            sums.push(i, &run::<E, W, T>(row(i), xq, x, 0, nb), &mut store);
        }
    }
}

/// Super-blocks `b0..b1` of the row at `w` into a fresh accumulator per token (terms as
/// in [`rows_with`]).
///
/// # Safety
/// As [`rows_with`], for super-blocks `b0..b1`.
#[inline(always)]
unsafe fn run<E: KEngine, W: KRow, const T: usize>(
    w: *const W,
    xq: [*const i8; T],
    x: &impl Terms<W>,
    b0: usize,
    b1: usize,
) -> [__m256; T] {
    // SAFETY: forwarded contract.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in b0..b1 {
            let wb = W::prep_w(w.add(b));
            for t in 0..T {
                acc[t] = W::block_fma::<E>(&wb, xq[t].add(b * QK_K), &x.at(b, t), acc[t]);
            }
        }
        acc
    }
}

/// Most prepared super-block terms [`int_rows`] keeps on the stack: a panel's 16
/// super-blocks for each of 8 tokens, or one token's whole row of up to 8 panels.
const MAX_PREPARED: usize = SUPER_T * PANEL_BLOCKS;

/// [`KTile::int_rows`]: the tokens' terms prepared once on the stack (super-block-major,
/// so that the `T` tokens of a super-block sit together), then [`rows_with`].
///
/// # Safety
/// As [`KTile::int_rows`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn int_rows<E: KEngine, W: KRow, const T: usize>(
    w: *const W,
    stride: usize,
    n: usize,
    xq: [*const i8; T],
    xd: [*const f32; T],
    nb: usize,
    panel: usize,
    store: &mut impl FnMut(usize, usize, f32),
) {
    let row = |i: usize| w.wrapping_add(i * stride);
    // SAFETY: the caller guarantees `nb` blocks per row, `256·nb` quants and `nb`
    // scales per token, and the ISA.
    unsafe {
        if nb <= PANEL_BLOCKS && nb <= panel {
            // Uninitialised on purpose (it is up to 8 KiB): only the first `nb` blocks
            // are written, and only those are read.
            let mut xs = [[const { MaybeUninit::<W::X>::uninit() }; T]; PANEL_BLOCKS];
            for (b, per_token) in xs.iter_mut().enumerate().take(nb) {
                for t in 0..T {
                    per_token[t].write(W::prep_x(xq[t].add(b * QK_K), *xd[t].add(b)));
                }
            }
            let x = Prepared { terms: xs.as_flattened(), tokens: T };
            return rows_with::<E, W, T>(row, n, xq, nb, panel, &x, store);
        }
        if T == 1 && nb <= MAX_PREPARED {
            // A wide decode call: one token's whole row.
            let mut xs = [const { MaybeUninit::<W::X>::uninit() }; MAX_PREPARED];
            for (b, x) in xs.iter_mut().enumerate().take(nb) {
                x.write(W::prep_x(xq[0].add(b * QK_K), *xd[0].add(b)));
            }
            let x = Prepared { terms: &xs, tokens: T };
            return rows_with::<E, W, T>(row, n, xq, nb, panel, &x, store);
        }
        // Not reached through the driver (see MAX_PREPARED).
        let x = OnTheFly { xq, xd };
        rows_with::<E, W, T>(row, n, xq, nb, panel, &x, store)
    }
}

/// The K-quant tiles of engine `$engine` (generic parameters `$generics`).
macro_rules! k_tile {
    ([$($generics:tt)*] $engine:ty) => {
        impl<W: KRow, $($generics)*> KTile<W> for $engine {
            /// The rows of [`int_rows`] with every term prepared on the fly (the same values,
            /// so the same results bit for bit).
            #[inline(always)]
            unsafe fn int_tile<const R: usize, const T: usize>(
                w: [*const W; R],
                xq: [*const i8; T],
                xd: [*const f32; T],
                nb: usize,
            ) -> [[f32; T]; R] {
                let mut res = [[0.0f32; T]; R];
                // SAFETY: forwarded contract.
                unsafe {
                    let x = OnTheFly { xq, xd };
                    rows_with::<Self, W, T>(|i| w[i], R, xq, nb, nb, &x, |i, t, v| res[i][t] = v);
                }
                res
            }

            #[inline(always)]
            unsafe fn int_rows<const T: usize>(
                w: *const W,
                stride: usize,
                n: usize,
                xq: [*const i8; T],
                xd: [*const f32; T],
                nb: usize,
                panel: usize,
                store: &mut impl FnMut(usize, usize, f32),
            ) {
                // SAFETY: forwarded contract.
                unsafe { int_rows::<Self, W, T>(w, stride, n, xq, xd, nb, panel, store) }
            }
        }
    };
}

k_tile!([] Avx2K);

/// The VNNI sets' K-quant engine for instruction forms `D`: each group's `maddubs` pair
/// sums go into the accumulator by one `vpdpwssd` against the group's scales, where
/// AVX2 takes a `madd` and an add. The same i32 sums in the same lanes as [`Avx2K`]'s
/// (integer adds in another order), so the outputs are AVX2's bit for bit.
pub(in crate::arch) struct VnniK<D>(PhantomData<D>);

impl<D: VnniOps> KEngine for VnniK<D> {
    #[inline(always)]
    unsafe fn scaled_products(codes: &[__m256i; 8], scales: &[__m256i; 8], xq: *const i8) -> __m256i {
        // SAFETY: group `g`'s 32 quants are inside the 256 (caller); the rest is register-only.
        unsafe {
            // Two chains (even and odd groups), so that the accumulator's latency is
            // paid four times per super-block instead of eight.
            let mut acc = [_mm256_setzero_si256(); 2];
            for g in 0..8 {
                acc[g % 2] = D::dpwssd(acc[g % 2], group_pairs(codes, xq, g), scales[g]);
            }
            _mm256_add_epi32(acc[0], acc[1])
        }
    }
}

impl<D> QuantizeActs for VnniK<D> {
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: forwarded contract (the VNNI sets include AVX2).
        unsafe { Avx2K::quantize(x, qs, d, block, nb) }
    }
}

k_tile!([D: VnniOps] VnniK<D>);
