//! The VNNI kernel sets: the AVX2 set with its Q8_0 and Q4_0 integer products formed
//! by `vpdpbusd` (`acc + Σ` of four `u8 × i8` byte products in each i32 lane, one
//! instruction, no intermediate saturation) instead of `maddubs` + `madd`:
//!
//! - `x86_64-avx512vnni`: the EVEX form on 256-bit vectors (AVX512-VNNI + AVX512-VL:
//!   Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4 and later);
//! - `x86_64-avxvnni`: the VEX form (AVX-VNNI: Alder Lake and later, Sapphire Rapids,
//!   Zen 5);
//! - `x86_64-vnni-emulated`: the same tiles with `vpdpbusd` computed exactly by AVX2
//!   instructions ([`Emulated`]). Slower than `x86_64-avx2` and listed after it, so never
//!   the best set: it exists so that the VNNI tiles run and are tested on every AVX2 CPU.
//!   qemu (7.2, and 10.0 with `-cpu max`) cannot execute VNNI; Bochs can, for the EVEX
//!   form only, and CI runs the VNNI tests there (`tools/bochs/run.sh`). Both forms run
//!   natively on CPUs that have them (the tests use every set the CPU offers).
//!
//! Everything else (float products; K-quants; the activation quantizer; the element-wise
//! kernels) is the AVX2 set's.
//!
//! **The tiles work on columns.** AVX2's pair tiles leave each block's sum spread over 4
//! lanes and reduce a group of 8 blocks with shuffles for every token. Here a row's group
//! is *transposed* once, for every token ([`transpose_pairs`]): column `l` holds, in lane
//! `j`, bytes `4l..4l + 4` of block [`GROUP_ORDER`]`[j]` (Q4_0: the nibbles of bytes
//! `4l..4l + 4`, low and high, which are elements `4l..` and `16 + 4l..`); each token's
//! activations are transposed the same way, once for every row ([`PairBlock::arrange_x`]).
//! Then 8 `vpdpbusd`, one per column, leave the group's 8 block sums in their lanes with
//! no reduction at all. The weights are the unsigned operand: Q4_0's nibbles as stored
//! (`w + 8`), Q8_0's codes biased by 128 (`w ^ 0x80`), and `CODE_OFFSET·Σx`, computed
//! once per token and block, takes the offset back off. The sums are the exact integers
//! AVX2 forms, in the same lanes, and the float steps are the same, so every output
//! equals AVX2's bit for bit (tested). Per group, one token and one row that is 8
//! `vpdpbusd` where AVX2 takes 8 `maddubs`, 4–8 `madd`, 6 shuffles and 7–11 adds (Q4_0,
//! Q8_0 also 8 `vpsignb`); the transposition, 16 shuffles (plus the nibble split or the
//! bias), is shared by the tokens of a call (KERNELS.md, "VNNI sets").
//!
//! **Two rows per 512-bit vector** (`x86_64-avx512vnni`, several tokens): a row pair's
//! columns side by side (`[row a | row b]`), each token's column broadcast to both halves
//! by a load, so one 512-bit `vpdpbusd` does two rows' work, and so do the offset, `cvt`,
//! scale and FMA. Each lane's operations are the 256-bit tile's ([`RowPairs`]).
//!
//! Each set is handed out by `arch::simd_sets` only when [`crate::CpuFeatures`] reports
//! its features (with AVX2, FMA and F16C), which every `// SAFETY:` comment on an entry
//! point relies on.

use core::arch::x86_64::*;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use super::{
    AVX2, Avx2, BlockQ4_0, BlockQ8_0, GROUP, GroupX, PairBlock, PairX, QuantTile, QuantizeActs, deq_tile, group_scales,
    int_blocks_single, nibbles, pair_int_rows, pair_int_tile, prepared_run, q4_pair_bytes, q8_pair_codes,
    transpose_pairs,
};
use crate::arch::kquant::kquant_matmul_int;
use crate::arch::quant_matmul_int;
use crate::arch::x86_64_kquant::VnniK;
use crate::kquant::{BlockQ4K, BlockQ5K, BlockQ6K, KQuantKernels};
use crate::{KernelSet, MatmulJob, QuantMatmul};

/// The two VNNI instructions the tiles use, on 256-bit vectors, wrapping (the kernels'
/// sums never wrap).
pub(in crate::arch) trait VnniOps {
    /// `vpdpbusd`: for each i32 lane `j`, `acc[j] + Σ_{k<4} u8(a[4j+k]) · i8(b[4j+k])`.
    ///
    /// # Safety
    /// The CPU must support the engine's instructions (and AVX2).
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;

    /// `vpdpwssd`: for each i32 lane `j`, `acc[j] + Σ_{k<2} i16(a[2j+k]) · i16(b[2j+k])`.
    ///
    /// # Safety
    /// The CPU must support the engine's instructions (and AVX2).
    unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

/// The EVEX forms (AVX512-VNNI with AVX512-VL).
pub(in crate::arch) struct Avx512Vl;

impl VnniOps for Avx512Vl {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX512-VNNI and AVX512-VL are the caller's promise.
        unsafe { _mm256_dpbusd_epi32(acc, a, b) }
    }

    #[inline(always)]
    unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX512-VNNI and AVX512-VL are the caller's promise.
        unsafe { _mm256_dpwssd_epi32(acc, a, b) }
    }
}

/// How an engine's column tiles run two rows against the same tokens
/// ([`PairBlock::prepared_run_pair`]).
pub(super) trait RowPairs: VnniOps + Sized {
    /// [`PairBlock::prepared_run_pair`] of the column tiles: by default the two rows one
    /// after the other.
    ///
    /// # Safety
    /// As [`prepared_run`]; the CPU must support the engine's instructions.
    #[inline(always)]
    unsafe fn run_pair<W: PairBlock<Vnni<Self>, G = Columns>, const T: usize>(
        rows: [*const W; 2],
        xq: [*const i8; T],
        xd: [*const f32; T],
        prepared: *const MaybeUninit<GroupX>,
        b0: usize,
        b1: usize,
    ) -> [[__m256; T]; 2] {
        // SAFETY: forwarded contract.
        unsafe {
            [
                prepared_run::<Vnni<Self>, W, T>(rows[0], xq, xd, prepared, b0, b1),
                prepared_run::<Vnni<Self>, W, T>(rows[1], xq, xd, prepared, b0, b1),
            ]
        }
    }
}

impl RowPairs for AvxVex {}
impl RowPairs for Emulated {}

impl RowPairs for Avx512Vl {
    /// Both rows in one 512-bit vector: lanes 0–7 row `rows[0]`, lanes 8–15 `rows[1]`;
    /// each token's columns, offsets and scales broadcast to both halves (loads, no
    /// shuffles). Every lane gets [`prepared_run`]'s operations in its order, so the
    /// outputs are the same bits.
    #[inline(always)]
    unsafe fn run_pair<W: PairBlock<Vnni<Self>, G = Columns>, const T: usize>(
        rows: [*const W; 2],
        xq: [*const i8; T],
        xd: [*const f32; T],
        prepared: *const MaybeUninit<GroupX>,
        b0: usize,
        b1: usize,
    ) -> [[__m256; T]; 2] {
        // SAFETY: the caller's contract; AVX512-F and AVX512-VNNI come with this engine.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); T];
            for g in b0 / GROUP..b1 / GROUP {
                let (wa, wb) = (W::prep_group_w(rows[0], g * GROUP), W::prep_group_w(rows[1], g * GROUP));
                let mut w = [_mm512_setzero_si512(); GROUP];
                for m in 0..GROUP / 2 {
                    w[2 * m] = join(wa[m].xlo, wb[m].xlo);
                    w[2 * m + 1] = join(wa[m].xhi, wb[m].xhi);
                }
                let dw = join_ps(group_scales(rows[0].add(g * GROUP)), group_scales(rows[1].add(g * GROUP)));
                for t in 0..T {
                    let x = (*prepared.add(g * T + t)).assume_init_ref();
                    let mut sums = _mm512_setzero_si512();
                    for m in 0..GROUP / 2 {
                        sums = _mm512_dpbusd_epi32(sums, w[2 * m], _mm512_broadcast_i64x4(x.pairs[m].xlo));
                        sums = _mm512_dpbusd_epi32(sums, w[2 * m + 1], _mm512_broadcast_i64x4(x.pairs[m].xhi));
                    }
                    let exact = if W::CODE_OFFSET != 0 {
                        _mm512_sub_epi32(sums, _mm512_broadcast_i64x4(x.offset))
                    } else {
                        sums
                    };
                    let scale = _mm512_mul_ps(dw, broadcast_ps(x.dx));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, acc[t]);
                }
            }
            let mut out = [[[_mm256_setzero_ps(); T]; 1]; 2];
            for t in 0..T {
                out[0][0][t] = _mm512_castps512_ps256(acc[t]);
                out[1][0][t] = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[t])));
            }
            for (row, acc) in rows.into_iter().zip(out.iter_mut()) {
                int_blocks_single([row], xq, xd, b1 / GROUP * GROUP, b1, acc);
            }
            [out[0][0], out[1][0]]
        }
    }
}

/// `[a | b]`.
///
/// # Safety
/// AVX512-F enabled.
#[inline(always)]
unsafe fn join(a: __m256i, b: __m256i) -> __m512i {
    // SAFETY: register-only; AVX512-F is the caller's promise.
    unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b) }
}

/// `[a | b]` of floats.
///
/// # Safety
/// AVX512-F enabled.
#[inline(always)]
unsafe fn join_ps(a: __m256, b: __m256) -> __m512 {
    // SAFETY: register-only; AVX512-F is the caller's promise.
    unsafe {
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(_mm256_castps_pd(a)), _mm256_castps_pd(b)))
    }
}

/// `[v | v]` of floats.
///
/// # Safety
/// AVX512-F enabled.
#[inline(always)]
unsafe fn broadcast_ps(v: __m256) -> __m512 {
    // SAFETY: register-only; AVX512-F is the caller's promise.
    unsafe { _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(v))) }
}

/// The VEX forms (AVX-VNNI).
pub(in crate::arch) struct AvxVex;

impl VnniOps for AvxVex {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX-VNNI is the caller's promise.
        unsafe { _mm256_dpbusd_avx_epi32(acc, a, b) }
    }

    #[inline(always)]
    unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX-VNNI is the caller's promise.
        unsafe { _mm256_dpwssd_avx_epi32(acc, a, b) }
    }
}

/// `vpdpbusd` from AVX2 instructions, exactly: the bytes widened to i16 (`a` with zeros,
/// `b` with its sign: `(b << 8 | b) >> 8` arithmetic), `madd` sums neighbouring products
/// into i32 (bytes `2i, 2i+1`; each product at most `255·128`, so no overflow), and
/// `hadd` adds neighbouring i32 within each 128-bit lane: `[lo0+lo1, lo2+lo3, hi0+hi1,
/// hi2+hi3]`, which are bytes `0..4, 4..8, 8..12, 12..16`, as the instruction groups them.
/// `vpdpwssd` is `madd` (which wraps as the instruction does) and an add.
pub(in crate::arch) struct Emulated;

impl VnniOps for Emulated {
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

    #[inline(always)]
    unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; AVX2 is the caller's promise.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
    }
}

/// The engine marker of the VNNI group tiles, for instruction forms `D`.
pub(super) struct Vnni<D>(PhantomData<D>);

impl<D> QuantizeActs for Vnni<D> {
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: forwarded contract (the VNNI sets include AVX2).
        unsafe { Avx2::quantize(x, qs, d, block, nb) }
    }
}

/// A group's 8 columns (see the module docs), stored as 4 [`PairX`]: entry `m` holds
/// column `m` in `xlo` and column `4 + m` in `xhi`, for weights and activations alike.
type Columns = [PairX; GROUP / 2];

/// Columns from a group's 4 pairs of halves: the `xlo` halves give columns 0–3 (bytes
/// 0..16 of each block) and the `xhi` halves columns 4–7 (bytes 16..32).
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn columns(pairs: [PairX; GROUP / 2]) -> Columns {
    // SAFETY: register-only; AVX2 is the caller's promise.
    unsafe {
        let lo = transpose_pairs([pairs[0].xlo, pairs[1].xlo, pairs[2].xlo, pairs[3].xlo]);
        let hi = transpose_pairs([pairs[0].xhi, pairs[1].xhi, pairs[2].xhi, pairs[3].xhi]);
        [
            PairX { xlo: lo[0], xhi: hi[0] },
            PairX { xlo: lo[1], xhi: hi[1] },
            PairX { xlo: lo[2], xhi: hi[2] },
            PairX { xlo: lo[3], xhi: hi[3] },
        ]
    }
}

/// A group's 8 block sums: one `vpdpbusd` per column, unsigned weights `w` against signed
/// activations `x`, each leaving its 4 products per block in the block's own lane. Exact:
/// a block's sum is at most `32·255·127 < 2³¹` in magnitude.
///
/// # Safety
/// The engine's ISA enabled.
#[inline(always)]
unsafe fn column_isum<D: VnniOps>(w: &Columns, x: &Columns) -> __m256i {
    // SAFETY: register-only; the ISA is the caller's promise.
    unsafe {
        let mut acc = _mm256_setzero_si256();
        for m in 0..GROUP / 2 {
            acc = D::dpbusd(D::dpbusd(acc, w[m].xlo, x[m].xlo), w[m].xhi, x[m].xhi);
        }
        acc
    }
}

/// Q8_0: the columns of the codes biased by 128 (`w ^ 0x80`, so `[−128, 127]` becomes
/// the unsigned `[0, 255]`), which [`PairBlock::CODE_OFFSET`] takes back off.
impl<D: RowPairs> PairBlock<Vnni<D>> for BlockQ8_0 {
    type G = Columns;
    const CODE_OFFSET: i32 = 128;

    #[inline(always)]
    unsafe fn prep_group_w(w: *const Self, b0: usize) -> Columns {
        // SAFETY: the caller's contract.
        unsafe {
            let bias = _mm256_set1_epi8(i8::MIN);
            let mut pairs = [PairX { xlo: bias, xhi: bias }; GROUP / 2];
            for (p, pair) in pairs.iter_mut().enumerate() {
                let (lo, hi) = q8_pair_codes(w, b0 + 2 * p);
                *pair = PairX { xlo: _mm256_xor_si256(lo, bias), xhi: _mm256_xor_si256(hi, bias) };
            }
            columns(pairs)
        }
    }

    #[inline(always)]
    unsafe fn arrange_x(pairs: [PairX; GROUP / 2]) -> Columns {
        // SAFETY: forwarded contract.
        unsafe { columns(pairs) }
    }

    #[inline(always)]
    unsafe fn group_isum(w: &Columns, x: &Columns) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe { column_isum::<D>(w, x) }
    }

    #[inline(always)]
    unsafe fn prepared_run_pair<const T: usize>(
        rows: [*const Self; 2],
        xq: [*const i8; T],
        xd: [*const f32; T],
        prepared: *const MaybeUninit<GroupX>,
        b0: usize,
        b1: usize,
    ) -> [[__m256; T]; 2] {
        // SAFETY: forwarded contract.
        unsafe { D::run_pair::<Self, T>(rows, xq, xd, prepared, b0, b1) }
    }
}

/// Q4_0: the packed bytes are transposed first, then split into nibbles: column `m`'s low
/// nibbles are elements `4m..4m + 4` (paired with activation column `m`) and its high
/// nibbles elements `16 + 4m..` (activation column `4 + m`).
impl<D: RowPairs> PairBlock<Vnni<D>> for BlockQ4_0 {
    type G = Columns;
    const CODE_OFFSET: i32 = 8;

    #[inline(always)]
    unsafe fn prep_group_w(w: *const Self, b0: usize) -> Columns {
        // SAFETY: the caller's contract.
        unsafe {
            let bytes = transpose_pairs([
                q4_pair_bytes(w, b0),
                q4_pair_bytes(w, b0 + 2),
                q4_pair_bytes(w, b0 + 4),
                q4_pair_bytes(w, b0 + 6),
            ]);
            let mut cols = [PairX { xlo: bytes[0], xhi: bytes[0] }; GROUP / 2];
            for (col, b) in cols.iter_mut().zip(bytes) {
                let (lo, hi) = nibbles(b);
                *col = PairX { xlo: lo, xhi: hi };
            }
            cols
        }
    }

    #[inline(always)]
    unsafe fn arrange_x(pairs: [PairX; GROUP / 2]) -> Columns {
        // SAFETY: forwarded contract.
        unsafe { columns(pairs) }
    }

    #[inline(always)]
    unsafe fn group_isum(w: &Columns, x: &Columns) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe { column_isum::<D>(w, x) }
    }

    #[inline(always)]
    unsafe fn prepared_run_pair<const T: usize>(
        rows: [*const Self; 2],
        xq: [*const i8; T],
        xd: [*const f32; T],
        prepared: *const MaybeUninit<GroupX>,
        b0: usize,
        b1: usize,
    ) -> [[__m256; T]; 2] {
        // SAFETY: forwarded contract.
        unsafe { D::run_pair::<Self, T>(rows, xq, xd, prepared, b0, b1) }
    }
}

// One token has no tokens to share a row's transposition with: decode runs AVX2's pair
// tiles, which form the same sums (KERNELS.md, "VNNI sets").
pair_quant_tile!([D: RowPairs] Vnni<D>, BlockQ8_0, Avx2);
pair_quant_tile!([D: RowPairs] Vnni<D>, BlockQ4_0, Avx2);

/// A safe entry point `$name` for block type `$block`: `$driver` with engine `$engine`,
/// its body compiled with `$features`.
macro_rules! vnni_entry {
    ($name:ident, $block:ty, $driver:ident, $engine:ty, $features:literal) => {
        fn $name(job: &MatmulJob<'_, $block>, out: &mut [f32]) {
            #[target_feature(enable = $features)]
            unsafe fn body(job: &MatmulJob<'_, $block>, out: &mut [f32]) {
                // SAFETY: the features `$engine`'s tiles need are enabled on this function.
                unsafe { $driver::<$block, $engine>(job, out) }
            }
            // SAFETY: only reachable through the set built with it (below), which
            // `arch::simd_sets` hands out only when the CPU has `$features` (module docs).
            unsafe { body(job, out) }
        }
    };
}

/// The kernel set `$set` named `$name`: AVX2's with the VNNI Q8_0 and Q4_0 integer paths
/// and K-quant tiles of instruction forms `$dot`, entry points `$fns`.
macro_rules! vnni_set {
    ($set:ident, $name:literal, $dot:ty, $features:literal, [$q8_0:ident, $q4_0:ident, $q4_k:ident, $q5_k:ident, $q6_k:ident]) => {
        vnni_entry!($q8_0, BlockQ8_0, quant_matmul_int, Vnni<$dot>, $features);
        vnni_entry!($q4_0, BlockQ4_0, quant_matmul_int, Vnni<$dot>, $features);
        vnni_entry!($q4_k, BlockQ4K, kquant_matmul_int, VnniK<$dot>, $features);
        vnni_entry!($q5_k, BlockQ5K, kquant_matmul_int, VnniK<$dot>, $features);
        vnni_entry!($q6_k, BlockQ6K, kquant_matmul_int, VnniK<$dot>, $features);

        pub(in crate::arch) const $set: KernelSet = KernelSet {
            name: $name,
            q8_0: QuantMatmul { integer: $q8_0, ..AVX2.q8_0 },
            q4_0: QuantMatmul { integer: $q4_0, ..AVX2.q4_0 },
            kq: KQuantKernels { q4_k: $q4_k, q5_k: $q5_k, q6_k: $q6_k, ..AVX2.kq },
            ..AVX2
        };
    };
}

vnni_set!(
    AVX512_VNNI,
    "x86_64-avx512vnni",
    Avx512Vl,
    "avx2,fma,f16c,avx512f,avx512vnni,avx512vl",
    [q8_0_512, q4_0_512, q4_k_512, q5_k_512, q6_k_512]
);
vnni_set!(
    AVX_VNNI,
    "x86_64-avxvnni",
    AvxVex,
    "avx2,fma,f16c,avxvnni",
    [q8_0_vex, q4_0_vex, q4_k_vex, q5_k_vex, q6_k_vex]
);
vnni_set!(
    VNNI_EMULATED,
    "x86_64-vnni-emulated",
    Emulated,
    "avx2,fma,f16c",
    [q8_0_emulated, q4_0_emulated, q4_k_emulated, q5_k_emulated, q6_k_emulated]
);

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// `vpdpbusd`'s definition, one lane at a time.
    fn dpbusd_reference(acc: [i32; 8], a: [u8; 32], b: [i8; 32]) -> [i32; 8] {
        let mut out = acc;
        for (j, lane) in out.iter_mut().enumerate() {
            for k in 0..4 {
                *lane = lane.wrapping_add(i32::from(a[4 * j + k]) * i32::from(b[4 * j + k]));
            }
        }
        out
    }

    /// `vpdpwssd`'s definition, one lane at a time, on the bytes read as little-endian i16.
    fn dpwssd_reference(acc: [i32; 8], a: [u8; 32], b: [i8; 32]) -> [i32; 8] {
        let word_a = |i: usize| i32::from(i16::from_le_bytes([a[2 * i], a[2 * i + 1]]));
        let word_b = |i: usize| i32::from(i16::from_le_bytes([b[2 * i] as u8, b[2 * i + 1] as u8]));
        let mut out = acc;
        for (j, lane) in out.iter_mut().enumerate() {
            for k in 0..2 {
                *lane = lane.wrapping_add(word_a(2 * j + k) * word_b(2 * j + k));
            }
        }
        out
    }

    /// `D::$op` on byte arrays, compiled with the engine's features (`$features`).
    macro_rules! runner {
        ($name:ident, $dot:ty, $op:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(acc: [i32; 8], a: [u8; 32], b: [i8; 32]) -> [i32; 8] {
                // SAFETY: unaligned loads and stores of 32-byte arrays; the caller checks
                // that the CPU has `$features`.
                unsafe {
                    let r = <$dot>::$op(
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
    runner!(run_emulated, Emulated, dpbusd, "avx2");
    runner!(run_avx512, Avx512Vl, dpbusd, "avx2,avx512vnni,avx512vl");
    runner!(run_vex, AvxVex, dpbusd, "avx2,avxvnni");
    runner!(run_emulated_w, Emulated, dpwssd, "avx2");
    runner!(run_avx512_w, Avx512Vl, dpwssd, "avx2,avx512vnni,avx512vl");
    runner!(run_vex_w, AvxVex, dpwssd, "avx2,avxvnni");

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

    /// One instruction form: its runner and its definition.
    type Form = (unsafe fn([i32; 8], [u8; 32], [i8; 32]) -> [i32; 8], fn([i32; 8], [u8; 32], [i8; 32]) -> [i32; 8]);

    /// Both instructions of an engine against their definitions.
    ///
    /// # Safety
    /// The CPU must have the features the runners were compiled with.
    unsafe fn check(engine: &str, forms: [Form; 2]) {
        for (op, (run, reference)) in ["vpdpbusd", "vpdpwssd"].into_iter().zip(forms) {
            for (acc, a, b) in cases() {
                // SAFETY: the caller's promise.
                let got = unsafe { run(acc, a, b) };
                assert_eq!(got, reference(acc, a, b), "{engine} {op}: acc {acc:?} a {a:?} b {b:?}");
            }
        }
    }

    /// Says visibly that a check did not run: straight to the stderr handle, which the
    /// test harness does not capture.
    fn skipped(what: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
    }

    #[test]
    fn emulated_vnni_is_the_instruction_definition() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            skipped("the emulated VNNI instructions need AVX2, which this CPU lacks");
            return;
        }
        // SAFETY: AVX2 detected above.
        unsafe { check("emulated", [(run_emulated, dpbusd_reference), (run_emulated_w, dpwssd_reference)]) };
    }

    /// Runs only where the instructions exist; says so visibly otherwise.
    #[test]
    fn hardware_vnni_is_the_instruction_definition() {
        if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the features were detected just above.
            unsafe { check("avx512vnni", [(run_avx512, dpbusd_reference), (run_avx512_w, dpwssd_reference)]) };
        } else {
            skipped("no AVX512-VNNI/VL on this CPU; the EVEX vpdpbusd and vpdpwssd were not run");
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            // SAFETY: the feature was detected just above.
            unsafe { check("avxvnni", [(run_vex, dpbusd_reference), (run_vex_w, dpwssd_reference)]) };
        } else {
            skipped("no AVX-VNNI on this CPU; the VEX vpdpbusd and vpdpwssd were not run");
        }
    }
}
