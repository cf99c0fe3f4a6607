//! Q8_0 and Q4_0 rows of fewer blocks than a [`GROUP`] (the LoRAs' up-projections: 32 to
//! 224 columns), eight rows at a time, one row per lane.
//!
//! The group tiles sum a row's blocks across lanes and reduce them at the end: a full
//! horizontal sum per row and token, which for one to seven blocks costs more than the
//! products. Here the lanes are rows: block `b` of rows `r0..r0 + 8` is transposed into
//! 8 *columns* (column `m`, lane `j`: the 4 codes of row `r0 + j` that meet the token's
//! quants `4m..4m + 4`), once for every token; a token's 4 quants per column are
//! broadcast, and the engine's products leave row `r0 + j`'s exact block sum in lane `j`
//! ([`NarrowBlock::narrow_isum`]). Per block and token every lane then takes
//!
//! ```text
//! acc = fma(f32(isum − CODE_OFFSET·Σx), d_w·d_x, acc)
//! ```
//!
//! in block order, and the lanes are the outputs, with no reduction. The block sums are
//! exact integers and the float steps are the same for every engine, so the AVX2 and
//! VNNI sets give the same bits; a row's result does not depend on the other rows of its
//! eight, the tokens of the call, or whether it came through `int_rows` or `int_tile`.
//!
//! Shapes: `rows[j]` points at a row of `nb < GROUP` blocks; `xq[t]` at a token's
//! `32·nb` quants, `xd[t]` at its `nb` scales.

use core::arch::x86_64::*;

use super::vnni::{RowPairs, Vnni, VnniOps};
use super::{Avx2, GROUP, PairBlock, nibbles, scales, transpose_pairs};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK};

/// A block type's columns for engine `E`.
pub(super) trait NarrowBlock<E>: PairBlock<E> {
    /// Block `b` of the 8 rows, as the engine multiplies it.
    type N: Copy;

    /// Block `b` of rows `rows[0..8]` as columns (module docs).
    ///
    /// # Safety
    /// Every row valid for block `b`; the engine's ISA enabled.
    unsafe fn narrow_columns(rows: &[*const Self; 8], b: usize) -> Self::N;

    /// Lane `j`: the exact `Σ (code + CODE_OFFSET)·x` of row `j`'s block against the 32
    /// quants at `xq`.
    ///
    /// # Safety
    /// `xq` valid for 32 quants; the engine's ISA enabled.
    unsafe fn narrow_isum(w: &Self::N, xq: *const i8) -> __m256i;
}

/// The token's quants `4m..4m + 4` in every lane (one load).
///
/// # Safety
/// `xq` valid for 32 quants, `m < 8`; AVX2 enabled.
#[inline(always)]
unsafe fn quad(xq: *const i8, m: usize) -> __m256i {
    // SAFETY: bytes `4m..4m + 4` are inside the 32 quants (caller); unaligned read.
    unsafe { _mm256_set1_epi32(xq.add(4 * m).cast::<i32>().read_unaligned()) }
}

/// 16 bytes from each of 8 rows' `p[j]`, as two halves of 4 vectors (`[row j | row j +
/// 4]`), transposed: unit `m` of all 8 rows in column `m`, lane `j` from row `j`.
///
/// # Safety
/// Every `p[j]` valid for 16 bytes; AVX2 enabled.
#[inline(always)]
unsafe fn row_units(p: [*const u8; 8]) -> [__m256i; 4] {
    // SAFETY: the caller's contract.
    unsafe {
        let at = |j: usize| p[j].cast::<__m128i>();
        transpose_pairs([
            _mm256_loadu2_m128i(at(4), at(0)),
            _mm256_loadu2_m128i(at(5), at(1)),
            _mm256_loadu2_m128i(at(6), at(2)),
            _mm256_loadu2_m128i(at(7), at(3)),
        ])
    }
}

/// Byte `offset` of the codes `qs` of each row's block `b`.
///
/// # Safety
/// Every row valid for block `b`.
#[inline(always)]
unsafe fn q8_codes_at(rows: &[*const BlockQ8_0; 8], b: usize, offset: usize) -> [*const u8; 8] {
    // SAFETY: the caller's contract; `offset` is 0 or 16 inside the 32 codes.
    let at = |j: usize| unsafe { core::ptr::addr_of!((*rows[j].add(b)).qs).cast::<u8>().add(offset) };
    [at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)]
}

/// Q8_0's codes as columns: codes `4m..4m + 4` of every row in column `m`.
///
/// # Safety
/// Every row valid for block `b`; AVX2 enabled.
#[inline(always)]
unsafe fn q8_columns(rows: &[*const BlockQ8_0; 8], b: usize) -> [__m256i; 8] {
    // SAFETY: the caller's contract.
    unsafe {
        let (lo, hi) = (row_units(q8_codes_at(rows, b, 0)), row_units(q8_codes_at(rows, b, 16)));
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    }
}

/// Q4_0's nibbles as columns: the low nibbles of bytes `4m..4m + 4` are elements
/// `4m..` (column `m`), the high ones elements `16 + 4m..` (column `4 + m`); unsigned,
/// `code + 8`.
///
/// # Safety
/// Every row valid for block `b`; AVX2 enabled.
#[inline(always)]
unsafe fn q4_columns(rows: &[*const BlockQ4_0; 8], b: usize) -> [__m256i; 8] {
    // SAFETY: the caller's contract; `qs` is 16 bytes.
    unsafe {
        let at = |j: usize| core::ptr::addr_of!((*rows[j].add(b)).qs).cast::<u8>();
        let packed = row_units([at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)]);
        let (l0, h0) = nibbles(packed[0]);
        let (l1, h1) = nibbles(packed[1]);
        let (l2, h2) = nibbles(packed[2]);
        let (l3, h3) = nibbles(packed[3]);
        [l0, l1, l2, l3, h0, h1, h2, h3]
    }
}

/// AVX2, Q8_0: the signed codes (for their signs) and their magnitudes, and per column
/// `|w|` (unsigned) × `x·sign(w)` with `maddubs` (no saturation: `2·128·127 < 2¹⁵`),
/// widened by `madd` with ones before the columns are added.
impl NarrowBlock<Avx2> for BlockQ8_0 {
    type N = ([__m256i; 8], [__m256i; 8]);

    #[inline(always)]
    unsafe fn narrow_columns(rows: &[*const Self; 8], b: usize) -> Self::N {
        // SAFETY: forwarded contract.
        unsafe {
            let w = q8_columns(rows, b);
            let mut abs = w;
            for a in abs.iter_mut() {
                *a = _mm256_sign_epi8(*a, *a);
            }
            (w, abs)
        }
    }

    #[inline(always)]
    unsafe fn narrow_isum((w, abs): &Self::N, xq: *const i8) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let mut sum = _mm256_setzero_si256();
            for m in 0..8 {
                let p = _mm256_maddubs_epi16(abs[m], _mm256_sign_epi8(quad(xq, m), w[m]));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, ones));
            }
            sum
        }
    }
}

/// AVX2, Q4_0: `maddubs` of the unsigned nibbles against the quants; the 8 columns' i16
/// pairs add up without overflow (`8·2·15·127 = 30480 < 2¹⁵`) before one `madd`.
impl NarrowBlock<Avx2> for BlockQ4_0 {
    type N = [__m256i; 8];

    #[inline(always)]
    unsafe fn narrow_columns(rows: &[*const Self; 8], b: usize) -> Self::N {
        // SAFETY: forwarded contract.
        unsafe { q4_columns(rows, b) }
    }

    #[inline(always)]
    unsafe fn narrow_isum(w: &Self::N, xq: *const i8) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe {
            let mut sum16 = _mm256_setzero_si256();
            for (m, col) in w.iter().enumerate() {
                sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(*col, quad(xq, m)));
            }
            _mm256_madd_epi16(sum16, _mm256_set1_epi16(1))
        }
    }
}

/// One `vpdpbusd` per column, unsigned weights against the broadcast quants.
///
/// # Safety
/// The engine's ISA enabled; `xq` valid for 32 quants.
#[inline(always)]
unsafe fn vnni_isum<D: VnniOps>(w: &[__m256i; 8], xq: *const i8) -> __m256i {
    // SAFETY: forwarded contract.
    unsafe {
        let mut sum = _mm256_setzero_si256();
        for (m, col) in w.iter().enumerate() {
            sum = D::dpbusd(sum, *col, quad(xq, m));
        }
        sum
    }
}

/// VNNI, Q8_0: the codes biased to unsigned (`w ^ 0x80`), as the group tiles take them.
impl<D: RowPairs> NarrowBlock<Vnni<D>> for BlockQ8_0 {
    type N = [__m256i; 8];

    #[inline(always)]
    unsafe fn narrow_columns(rows: &[*const Self; 8], b: usize) -> Self::N {
        // SAFETY: forwarded contract.
        unsafe {
            let mut w = q8_columns(rows, b);
            for col in w.iter_mut() {
                *col = _mm256_xor_si256(*col, _mm256_set1_epi8(i8::MIN));
            }
            w
        }
    }

    #[inline(always)]
    unsafe fn narrow_isum(w: &Self::N, xq: *const i8) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe { vnni_isum::<D>(w, xq) }
    }
}

/// VNNI, Q4_0: the stored nibbles.
impl<D: RowPairs> NarrowBlock<Vnni<D>> for BlockQ4_0 {
    type N = [__m256i; 8];

    #[inline(always)]
    unsafe fn narrow_columns(rows: &[*const Self; 8], b: usize) -> Self::N {
        // SAFETY: forwarded contract.
        unsafe { q4_columns(rows, b) }
    }

    #[inline(always)]
    unsafe fn narrow_isum(w: &Self::N, xq: *const i8) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe { vnni_isum::<D>(w, xq) }
    }
}

/// `CODE_OFFSET·Σx` of a token's block of 32 quants at `xq` (0 without an offset).
///
/// # Safety
/// `xq` valid for 32 quants; AVX2 enabled.
#[inline(always)]
unsafe fn block_offset<E, W: PairBlock<E>>(xq: *const i8) -> i32 {
    if W::CODE_OFFSET == 0 {
        return 0;
    }
    // SAFETY: the caller's contract.
    unsafe {
        // `Σ (x + 128)` by `sad` against zero (4 partial sums), less `32·128`.
        let biased = _mm256_xor_si256(_mm256_loadu_si256(xq.cast()), _mm256_set1_epi8(i8::MIN));
        let sad = _mm256_sad_epu8(biased, _mm256_setzero_si256());
        let s = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256::<1>(sad));
        let total = _mm_cvtsi128_si32(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s))) - (QK as i32) * 128;
        W::CODE_OFFSET * total
    }
}

/// The outputs of `rows[0..8]` (lane `j`: row `j`) against `T` tokens, over `nb < GROUP`
/// blocks (module docs); `offsets[t][b]` is [`block_offset`] of token `t`'s block `b`.
///
/// # Safety
/// Every row valid for `nb` blocks, `xq[t]` for `32·nb` quants, `xd[t]` for `nb` scales;
/// AVX2, FMA, F16C and the engine's ISA enabled.
#[inline(always)]
unsafe fn narrow_tile<E, W: NarrowBlock<E>, const T: usize>(
    rows: &[*const W; 8],
    xq: [*const i8; T],
    xd: [*const f32; T],
    offsets: &[[i32; GROUP]; T],
    nb: usize,
) -> [__m256; T] {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..nb {
            let w = W::narrow_columns(rows, b);
            let dw = scales([
                rows[0].add(b),
                rows[1].add(b),
                rows[2].add(b),
                rows[3].add(b),
                rows[4].add(b),
                rows[5].add(b),
                rows[6].add(b),
                rows[7].add(b),
            ]);
            for t in 0..T {
                let isum = W::narrow_isum(&w, xq[t].add(b * QK));
                let exact = _mm256_sub_epi32(isum, _mm256_set1_epi32(offsets[t][b]));
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*xd[t].add(b)));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), scale, acc[t]);
            }
        }
        acc
    }
}

/// Every token's [`block_offset`]s.
///
/// # Safety
/// `xq[t]` valid for `32·nb` quants, `nb ≤ GROUP`; AVX2 enabled.
#[inline(always)]
unsafe fn offsets<E, W: PairBlock<E>, const T: usize>(xq: [*const i8; T], nb: usize) -> [[i32; GROUP]; T] {
    let mut offsets = [[0; GROUP]; T];
    for (t, row) in offsets.iter_mut().enumerate() {
        for (b, o) in row.iter_mut().enumerate().take(nb) {
            // SAFETY: block `b < nb` of token `t` (caller).
            *o = unsafe { block_offset::<E, W>(xq[t].add(b * QK)) };
        }
    }
    offsets
}

/// Lane `j` of `v`.
///
/// # Safety
/// AVX enabled.
#[inline(always)]
unsafe fn lanes(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    // SAFETY: an unaligned store of 8 floats into `out`.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// [`QuantTile::int_rows`](crate::arch::QuantTile::int_rows) for rows of `nb < GROUP`
/// blocks: eight rows at a time through [`narrow_tile`] (the last eight padded with
/// copies of the last row, whose lanes are dropped).
///
/// # Safety
/// As `int_rows`, with `nb < GROUP`.
#[inline(always)]
pub(super) unsafe fn narrow_rows<E, W: NarrowBlock<E>, const T: usize>(
    w: *const W,
    stride: usize,
    n: usize,
    xq: [*const i8; T],
    xd: [*const f32; T],
    nb: usize,
    store: &mut impl FnMut(usize, usize, f32),
) {
    // SAFETY: the caller's contract: rows `0..n` hold `nb` blocks each.
    unsafe {
        let offsets = offsets::<E, W, T>(xq, nb);
        for i0 in (0..n).step_by(8) {
            let row = |j: usize| w.add((i0 + j).min(n - 1) * stride);
            let rows = [row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7)];
            let acc = narrow_tile::<E, W, T>(&rows, xq, xd, &offsets, nb);
            for (t, v) in acc.iter().enumerate() {
                for (j, s) in lanes(*v).into_iter().enumerate().take(n - i0) {
                    store(i0 + j, t, s);
                }
            }
        }
    }
}

/// [`QuantTile::int_tile`](crate::arch::QuantTile::int_tile) for rows of `nb < GROUP`
/// blocks: the `R ≤ 8` rows through [`narrow_tile`], lane `r` for row `r`.
///
/// # Safety
/// As `int_tile`, with `nb < GROUP` and `R ≤ 8`.
#[inline(always)]
pub(super) unsafe fn narrow_int_tile<E, W: NarrowBlock<E>, const R: usize, const T: usize>(
    w: [*const W; R],
    xq: [*const i8; T],
    xd: [*const f32; T],
    nb: usize,
) -> [[f32; T]; R] {
    const { assert!(R >= 1 && R <= 8, "the narrow tile holds 8 rows") };
    // SAFETY: the caller's contract.
    unsafe {
        let row = |j: usize| w[j.min(R - 1)];
        let rows = [row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7)];
        let acc = narrow_tile::<E, W, T>(&rows, xq, xd, &offsets::<E, W, T>(xq, nb), nb);
        let mut out = [[0.0; T]; R];
        for (t, v) in acc.iter().enumerate() {
            for (r, s) in lanes(*v).into_iter().enumerate().take(R) {
                out[r][t] = s;
            }
        }
        out
    }
}
