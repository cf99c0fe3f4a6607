//! `x86_64-avx2`: AVX2 + FMA + F16C kernels (Haswell and later, Zen and later). The VNNI
//! sets ([`vnni`]) are this set with another integer product for Q8_0.
//!
//! Every entry point is a safe `fn` stored in [`AVX2`]; that table is only handed out by
//! `arch::simd_sets` when [`crate::CpuFeatures`] reports AVX2, FMA and F16C, which is the
//! invariant every `// SAFETY:` comment on an entry point relies on.

use core::arch::x86_64::*;

use half::{bf16, f16};

use super::vector::{self, F32s};
use super::{FloatTile, PREFETCH_BYTES, QuantTile, QuantizeActs, float_matmul, quant_matmul_deq, quant_matmul_int};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK};
use crate::{KernelSet, MatmulJob, QuantMatmul, QuantPath, math};

/// The AVX2 kernel set.
pub(crate) const AVX2: KernelSet = KernelSet {
    name: "x86_64-avx2",
    f32: matmul_f32,
    f16: matmul_f16,
    bf16: matmul_bf16,
    // Measured (KERNELS.md): the integer path wins for both block types.
    q8_0: QuantMatmul { integer: matmul_q8_0_int, dequantize: matmul_q8_0_deq, path: QuantPath::Integer },
    q4_0: QuantMatmul { integer: matmul_q4_0_int, dequantize: matmul_q4_0_deq, path: QuantPath::Integer },
    kq: super::x86_64_kquant::KQ,
    quantize_acts,
    wkv7_head,
    layer_norm,
    group_norm,
    exp,
    sigmoid,
    tanh,
    relu_squared,
    lerp,
    bias_sigmoid,
    time_decay,
    value_residual,
    key_prep,
};

/// Marker type for the AVX2 micro-kernels.
struct Avx2;

/// A safe entry point `$name` for the `AVX2` table and its `#[target_feature]` body.
macro_rules! entry {
    ($name:ident, $body:ident, $w:ty, $driver:ident) => {
        fn $name(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
            // SAFETY: only reachable through `AVX2`, which is handed out only when the CPU
            // has AVX2, FMA and F16C (module docs).
            unsafe { $body(job, out) }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $body(job: &MatmulJob<'_, $w>, out: &mut [f32]) {
            // SAFETY: the features `Avx2`'s tiles need are enabled on this function.
            unsafe { $driver::<$w, Avx2>(job, out) }
        }
    };
}

entry!(matmul_f32, matmul_f32_avx2, f32, float_matmul);
entry!(matmul_f16, matmul_f16_avx2, f16, float_matmul);
entry!(matmul_bf16, matmul_bf16_avx2, bf16, float_matmul);
entry!(matmul_q8_0_int, matmul_q8_0_int_avx2, BlockQ8_0, quant_matmul_int);
entry!(matmul_q8_0_deq, matmul_q8_0_deq_avx2, BlockQ8_0, quant_matmul_deq);
entry!(matmul_q4_0_int, matmul_q4_0_int_avx2, BlockQ4_0, quant_matmul_int);
entry!(matmul_q4_0_deq, matmul_q4_0_deq_avx2, BlockQ4_0, quant_matmul_deq);

fn quantize_acts(block: usize, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    assert!(block.is_multiple_of(QK) && x.len() == qs.len() && x.len() == d.len() * block, "quantize_acts: shapes");
    // SAFETY: shapes asserted above; the CPU has AVX2 (module docs).
    unsafe { quantize_acts_avx2(block, x, qs, d) }
}

/// The AVX2 activation quantizer for other drivers (the K-quant tiles).
///
/// # Safety
/// As [`QuantizeActs::quantize`] for AVX2.
#[inline(always)]
pub(super) unsafe fn quantize_blocks(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
    // SAFETY: forwarded contract.
    unsafe { Avx2::quantize(x, qs, d, block, nb) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_acts_avx2(block: usize, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    // SAFETY: `x`/`qs` hold `block·d.len()` elements (checked by the caller); AVX2 is enabled.
    unsafe { Avx2::quantize(x.as_ptr(), qs.as_mut_ptr(), d.as_mut_ptr(), block, d.len()) }
}

/// `Σ` of the 8 lanes in a fixed order: `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))`.
///
/// # Safety
/// AVX must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: AVX is enabled in the (inlining) caller.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// [`hsum`] of 8 vectors at once, bit for bit: `out[r] == hsum(v[r])`. The same adds in
/// the same order per vector, done for all 8 with 256-bit operations (about 20
/// instructions instead of 8 × 6, and no chain of dependent adds per vector):
/// 1. `l_i + l_{i+4}`: the 128-bit halves of two vectors side by side, added;
/// 2. `(l0+l4) + (l2+l6)` and `(l1+l5) + (l3+l7)`: `shufps` pairs them up, added;
/// 3. the two sums added by `hadd_ps`, in lanes `[0, 2, 4, 6 | 1, 3, 5, 7]`.
///
/// # Safety
/// AVX must be enabled in the caller.
#[inline(always)]
unsafe fn hsum8(v: &[__m256; 8]) -> [f32; 8] {
    // SAFETY: AVX is enabled in the (inlining) caller; the store is to a local array.
    unsafe {
        // Macros, not closures: a closure left out of line lacks the caller's target
        // features, and every intrinsic in it becomes a call (KERNELS.md).
        macro_rules! halves {
            ($a:expr, $b:expr) => {
                _mm256_add_ps(_mm256_permute2f128_ps::<0x20>($a, $b), _mm256_permute2f128_ps::<0x31>($a, $b))
            };
        }
        let (s01, s23, s45, s67) = (halves!(v[0], v[1]), halves!(v[2], v[3]), halves!(v[4], v[5]), halves!(v[6], v[7]));
        // _MM_SHUFFLE(1, 0, 1, 0) and (3, 2, 3, 2): lanes 0, 1 (resp. 2, 3) of both inputs.
        macro_rules! pairs {
            ($a:expr, $b:expr) => {
                _mm256_add_ps(_mm256_shuffle_ps::<0b01_00_01_00>($a, $b), _mm256_shuffle_ps::<0b11_10_11_10>($a, $b))
            };
        }
        let sums = _mm256_hadd_ps(pairs!(s01, s23), pairs!(s45, s67));
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sums);
        [lanes[0], lanes[4], lanes[1], lanes[5], lanes[2], lanes[6], lanes[3], lanes[7]]
    }
}

/// Turns the 8-lane accumulators of rows `0..n`, pushed in order, into outputs. For one
/// token (decode) eight rows at a time by [`hsum8`], the rows after the last full eight
/// by [`hsum`] (the same bits either way, so outputs do not depend on the row range): a
/// row then ends with a register copy instead of a chain of dependent adds, and the next
/// row starts at once (criterion, decode, q4_k 4096×1024 152 → 135 µs, KERNELS.md). With
/// several tokens every row is reduced by [`hsum`] at once: batching there was 2–5 %
/// slower (the rows' `T` accumulators already give the core independent work).
pub(super) struct RowSums<const T: usize> {
    /// The accumulators of the current run of eight rows (one token only).
    pending: [__m256; 8],
    /// Rows `0..batched` are reduced eight at a time: the full eights for one token,
    /// none for several.
    batched: usize,
}

impl<const T: usize> RowSums<T> {
    /// For a call of `n` rows.
    ///
    /// # Safety
    /// AVX must be enabled in the caller.
    #[inline(always)]
    pub(super) unsafe fn new(n: usize) -> Self {
        // SAFETY: register-only; AVX is the caller's promise.
        Self { pending: [unsafe { _mm256_setzero_ps() }; 8], batched: if T == 1 { n / 8 * 8 } else { 0 } }
    }

    /// Row `i`'s accumulators (one per token); calls `store(row, token, sum)` for every
    /// row whose sum is ready.
    ///
    /// # Safety
    /// AVX must be enabled in the caller.
    #[inline(always)]
    pub(super) unsafe fn push(&mut self, i: usize, acc: &[__m256; T], store: &mut impl FnMut(usize, usize, f32)) {
        // SAFETY: register-only; AVX is the caller's promise.
        unsafe {
            if i >= self.batched {
                for t in 0..T {
                    store(i, t, hsum(acc[t]));
                }
                return;
            }
            // Only reached for `T == 1` (`batched` is 0 otherwise).
            self.pending[i % 8] = acc[0];
            if i % 8 == 7 {
                for (r, v) in hsum8(&self.pending).into_iter().enumerate() {
                    store(i - 7 + r, 0, v);
                }
            }
        }
    }
}

/// An f16 (little-endian bytes) widened to f32 with F16C (exact).
///
/// # Safety
/// F16C must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn f16_bytes_to_f32(d: [u8; 2]) -> f32 {
    // SAFETY: F16C/SSE2 are enabled in the (inlining) caller.
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes(d) as i32))) }
}

/// Float weight types that load 8 elements as 8 f32 lanes.
trait Load8: Copy {
    /// # Safety
    /// `p` valid for 8 elements; AVX2+F16C enabled in the caller.
    unsafe fn load8(p: *const Self) -> __m256;
    fn widen(self) -> f32;
}

impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats and AVX.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Load8 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: the caller guarantees 8 readable halves (16 bytes) and F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Load8 for bf16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: the caller guarantees 8 readable bf16 (16 bytes) and AVX2.
        // bf16 → f32 is a 16-bit left shift of the bits (exact).
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))) }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl<W: Load8> FloatTile<W> for Avx2 {
    /// Per output: one 8-lane FMA accumulator over `c` in steps of 8, reduced by [`hsum`],
    /// then the `cols % 8` tail added left to right (`s += w·x`).
    #[inline(always)]
    unsafe fn tile<const R: usize, const T: usize>(w: [*const W; R], x: [*const f32; T], cols: usize) -> [[f32; T]; R] {
        // SAFETY: the caller guarantees `cols` readable elements behind every pointer and
        // the ISA; all loads below are at offsets `< cols`.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); T]; R];
            let mut c = 0;
            while c + 8 <= cols {
                let mut xv = [_mm256_setzero_ps(); T];
                for t in 0..T {
                    xv[t] = _mm256_loadu_ps(x[t].add(c));
                }
                for r in 0..R {
                    let wv = W::load8(w[r].add(c));
                    for t in 0..T {
                        acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
                    }
                }
                c += 8;
            }
            let mut res = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    let mut s = hsum(acc[r][t]);
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

/// Block types as seen by the AVX2 quant tiles.
trait QBlock {
    /// The 32 signed codes in element order (Q8_0: `qs`; Q4_0: `nibble − 8`).
    ///
    /// # Safety
    /// `p` valid for one block; AVX2 enabled in the caller.
    unsafe fn codes(p: *const Self) -> __m256i;
    /// Codes `8k..8k + 8` widened to i32.
    ///
    /// # Safety
    /// As [`QBlock::codes`], `k < 4`.
    unsafe fn codes8(p: *const Self, k: usize) -> __m256i;
    /// The scale as f32.
    ///
    /// # Safety
    /// `p` valid for one block; F16C enabled in the caller.
    unsafe fn scale(p: *const Self) -> f32;
    /// The scale's f16 bits.
    ///
    /// # Safety
    /// `p` valid for one block.
    unsafe fn scale_bits(p: *const Self) -> u16;
}

impl QBlock for BlockQ8_0 {
    #[inline(always)]
    unsafe fn codes(p: *const Self) -> __m256i {
        // SAFETY: `qs` is 32 readable bytes inside the block; unaligned load.
        unsafe { _mm256_loadu_si256(core::ptr::addr_of!((*p).qs).cast()) }
    }
    #[inline(always)]
    unsafe fn codes8(p: *const Self, k: usize) -> __m256i {
        // SAFETY: bytes `8k..8k + 8` of `qs` are inside the block for `k < 4`.
        unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(core::ptr::addr_of!((*p).qs).cast::<i8>().add(8 * k).cast())) }
    }
    #[inline(always)]
    unsafe fn scale(p: *const Self) -> f32 {
        // SAFETY: `p` points at a readable block; F16C is enabled in the caller.
        unsafe { f16_bytes_to_f32((*p).d) }
    }
    #[inline(always)]
    unsafe fn scale_bits(p: *const Self) -> u16 {
        // SAFETY: `p` points at a readable block (caller).
        unsafe { u16::from_le_bytes((*p).d) }
    }
}

impl QBlock for BlockQ4_0 {
    #[inline(always)]
    unsafe fn codes(p: *const Self) -> __m256i {
        // SAFETY: `qs` is 16 readable bytes inside the block; unaligned load.
        unsafe {
            let q = _mm_loadu_si128(core::ptr::addr_of!((*p).qs).cast());
            let m = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(q, m); // elements 0..16
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), m); // elements 16..32
            _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8))
        }
    }
    #[inline(always)]
    unsafe fn codes8(p: *const Self, k: usize) -> __m256i {
        // SAFETY: bytes `8(k%2)..8(k%2) + 8` of `qs` are inside the block.
        unsafe {
            let q = _mm_loadl_epi64(core::ptr::addr_of!((*p).qs).cast::<u8>().add(8 * (k % 2)).cast());
            let q = if k < 2 { q } else { _mm_srli_epi16::<4>(q) };
            let q = _mm_sub_epi8(_mm_and_si128(q, _mm_set1_epi8(0x0F)), _mm_set1_epi8(8));
            _mm256_cvtepi8_epi32(q)
        }
    }
    #[inline(always)]
    unsafe fn scale(p: *const Self) -> f32 {
        // SAFETY: `p` points at a readable block; F16C is enabled in the caller.
        unsafe { f16_bytes_to_f32((*p).d) }
    }
    #[inline(always)]
    unsafe fn scale_bits(p: *const Self) -> u16 {
        // SAFETY: `p` points at a readable block (caller).
        unsafe { u16::from_le_bytes((*p).d) }
    }
}

/// Blocks whose f16 scales are widened together into one 8-lane f32 vector.
const GROUP: usize = 8;

/// Asks for the cache line [`PREFETCH_BYTES`] past `p` (a hint: it never faults, so
/// the address may lie past the matrix).
///
/// # Safety
/// SSE enabled in the caller.
#[inline(always)]
unsafe fn prefetch<W>(p: *const W) {
    // SAFETY: a prefetch reads nothing architecturally and cannot fault; `wrapping_add`
    // keeps the pointer arithmetic defined even past the allocation.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(PREFETCH_BYTES)) }
}

/// The integer path, one block at a time (blocks after the last whole [`GROUP`]): the
/// codes' `|w|` (unsigned) × `x·sign(w)` with `maddubs` (pairs, no saturation because
/// `|x| ≤ 127`: `2·128·127 < 2¹⁵`), `madd` with ones → 8 i32 lanes, converted to f32 and
/// accumulated with one FMA by `d_w·d_x`.
///
/// # Safety
/// As [`QuantTile::int_tile`], for blocks `b0..nb`.
#[inline(always)]
unsafe fn int_blocks_single<W: QBlock, const R: usize, const T: usize>(
    w: [*const W; R],
    xq: [*const i8; T],
    xd: [*const f32; T],
    b0: usize,
    nb: usize,
    acc: &mut [[__m256; T]; R],
) {
    // SAFETY: the caller guarantees `nb` blocks behind every weight pointer, `32·nb`
    // quants and `nb` scales behind every activation pointer, and the ISA.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        for b in b0..nb {
            let mut xv = [_mm256_setzero_si256(); T];
            for t in 0..T {
                xv[t] = _mm256_loadu_si256(xq[t].add(b * QK).cast());
            }
            for r in 0..R {
                let blk = w[r].add(b);
                let wv = W::codes(blk);
                let wabs = _mm256_sign_epi8(wv, wv);
                let dw = W::scale(blk);
                for t in 0..T {
                    let xs = _mm256_sign_epi8(xv[t], wv);
                    let isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, xs), ones);
                    let scale = _mm256_set1_ps(dw * *xd[t].add(b));
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r][t]);
                }
            }
        }
    }
}

/// `hsum` of every accumulator.
///
/// # Safety
/// AVX enabled in the caller.
#[inline(always)]
pub(super) unsafe fn hsum_all<const R: usize, const T: usize>(acc: &[[__m256; T]; R]) -> [[f32; T]; R] {
    let mut res = [[0.0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            // SAFETY: AVX is enabled in the (inlining) caller.
            res[r][t] = unsafe { hsum(acc[r][t]) };
        }
    }
    res
}

/// A block type whose integer path multiplies two blocks `b`, `b + 1` at once: the
/// 128-bit halves of both blocks share one vector (`[half of b | half of b + 1]`), so
/// `madd` leaves block `b`'s sums in lanes 0–3 and block `b + 1`'s in lanes 4–7. The four
/// pairs of a group of 8 blocks are then reduced to one vector of 8 exact block sums
/// ([`reduce_group`]), which gets a single `cvt`, multiply by `d_w·d_x` and FMA.
///
/// `E` is the engine whose instructions form the sums: [`Avx2`] (`maddubs`/`madd`) or
/// the VNNI engines of [`vnni`] (`vpdpbusd`). Every engine computes the same exact
/// integer sums in the same lanes, so their outputs agree bit for bit.
trait PairBlock<E>: QBlock + Sized {
    /// One row's group of 8 blocks, prepared once and reused by every token.
    type G: Copy;
    /// The engine multiplies `code + CODE_OFFSET` where the block holds `code` (Q4_0
    /// stores `w + 8`; the VNNI Q8_0 tile biases `w` by 128 to make it unsigned; 0: no
    /// offset), so the exact sum is `Σ (code + CODE_OFFSET)·x − CODE_OFFSET·Σx`.
    const CODE_OFFSET: i32;

    /// A row's blocks `b0..b0 + 8` (prefetching further along it).
    ///
    /// # Safety
    /// `w` valid for blocks `b0..b0 + 8`; the engine's ISA enabled.
    unsafe fn prep_group_w(w: *const Self, b0: usize) -> Self::G;

    /// One token's 4 pairs of a group as [`PairBlock::group_isum`] takes them, arranged
    /// once for every row (by default as loaded).
    ///
    /// # Safety
    /// The engine's ISA enabled.
    #[inline(always)]
    unsafe fn arrange_x(pairs: [PairX; GROUP / 2]) -> [PairX; GROUP / 2] {
        pairs
    }

    /// A group's 8 exact sums of `(code + CODE_OFFSET)·x`, in [`GROUP_ORDER`].
    ///
    /// # Safety
    /// The engine's ISA enabled.
    unsafe fn group_isum(w: &Self::G, x: &[PairX; GROUP / 2]) -> __m256i;

    /// [`prepared_run`] for two rows at once (by default one after the other): an engine
    /// with wider vectors runs both rows' lanes side by side, with every lane's operations
    /// unchanged.
    ///
    /// # Safety
    /// As [`prepared_run`], for both rows.
    #[inline(always)]
    unsafe fn prepared_run_pair<const T: usize>(
        rows: [*const Self; 2],
        xq: [*const i8; T],
        xd: [*const f32; T],
        prepared: *const core::mem::MaybeUninit<GroupX>,
        b0: usize,
        b1: usize,
    ) -> [[__m256; T]; 2] {
        // SAFETY: forwarded contract.
        unsafe {
            [
                prepared_run::<E, Self, T>(rows[0], xq, xd, prepared, b0, b1),
                prepared_run::<E, Self, T>(rows[1], xq, xd, prepared, b0, b1),
            ]
        }
    }
}

/// The order in which [`reduce_group`] leaves a group's 8 block sums: the reduction works
/// within 128-bit lanes, so the low lane collects the even blocks and the high lane the
/// odd ones. Scales are arranged to match.
const GROUP_ORDER: [usize; GROUP] = [0, 2, 4, 6, 1, 3, 5, 7];

/// The 8 exact block sums of a group from its 4 pairs' lanes, in [`GROUP_ORDER`]: pair `p`
/// holds 4 partial sums of block `2p` in lanes 0–3 and of `2p + 1` in lanes 4–7;
/// [`zip32_add32`] and then [`zip64_add32`] leave `[p0 p1 p2 p3]` per 128-bit lane.
/// Integer adds, so exact (each block sum is at most `32·128·127 < 2³¹`).
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn reduce_group(p: [__m256i; 4]) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe { zip64_add32(zip32_add32(p[0], p[1]), zip32_add32(p[2], p[3])) }
}

/// Steps of a horizontal-sum tree: `unpacklo(a, b) + unpackhi(a, b)`. Within each 128-bit
/// lane, interleaving by 32-bit units turns `[a0 a1 a2 a3] [b0 b1 b2 b3]` into
/// `[a0+a2, b0+b2, a1+a3, b1+b3]`; by 64-bit units, `[a0 a1] [b0 b1]` into `[a0+a1, b0+b1]`.
/// Each unit is added lane-wise as i32 (`*_add32`) or as i16 (`*_add16`, for i16 sums kept
/// in neighbouring pairs). A 32-bit step, then a 64-bit step, turn 4 vectors into one with
/// each vector's sum in its own unit (per 128-bit lane), like two rounds of `vphaddd`.
/// Shuffles and adds instead of `vphadd*`: on Zen 3 (llvm-mca `-mcpu=znver3`) a `vphadd*`
/// takes a multiply port for two cycles, and the integer tiles wait on those ports
/// (KERNELS.md: Q8_0 768×768×64 tile 926 → 878 µs).
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn zip32_add32(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe { _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)) }
}

/// See [`zip32_add32`].
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn zip64_add32(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe { _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b)) }
}

/// See [`zip32_add32`].
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn zip32_add16(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe { _mm256_add_epi16(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)) }
}

/// See [`zip32_add32`].
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn zip64_add16(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe { _mm256_add_epi16(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b)) }
}

/// The 8 f16 scales of blocks `p[0..8]` widened to f32 in [`GROUP_ORDER`].
///
/// # Safety
/// `p` valid for 8 blocks; AVX2 and F16C enabled.
#[inline(always)]
unsafe fn group_scales<W: QBlock>(p: *const W) -> __m256 {
    // SAFETY: blocks `p[0..8]` are readable (caller); F16C is enabled.
    unsafe {
        let o = GROUP_ORDER;
        scales([p.add(o[0]), p.add(o[1]), p.add(o[2]), p.add(o[3]), p.add(o[4]), p.add(o[5]), p.add(o[6]), p.add(o[7])])
    }
}

/// The f16 scales of the blocks `p[j]` widened to f32, lane `j` from `p[j]`.
///
/// # Safety
/// Every `p[j]` valid for one block; AVX2 and F16C enabled.
#[inline(always)]
unsafe fn scales<W: QBlock>(p: [*const W; 8]) -> __m256 {
    // SAFETY: the blocks are readable (caller); F16C is enabled.
    unsafe {
        // Packed four at a time in general-purpose registers, then moved over in two
        // 64-bit halves (inserting 8 halfwords one by one costs 8 shuffle µops).
        let d = |j: usize| u64::from(W::scale_bits(p[j]));
        let lo = d(0) | d(1) << 16 | d(2) << 32 | d(3) << 48;
        let hi = d(4) | d(5) << 16 | d(6) << 32 | d(7) << 48;
        _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64))
    }
}

/// A 4×4 transposition of 32-bit units within each 128-bit lane, for 4 vectors laid out
/// as [`PairX`]'s halves: `v[p]` holds units `m = 0..4` of block `2p` in its low lane and
/// of block `2p + 1` in its high lane. Column `m` of the result holds unit `m` of blocks
/// `0, 2, 4, 6` (low lane) and `1, 3, 5, 7` (high lane), which is [`GROUP_ORDER`]. Two
/// rounds of interleaves, 8 shuffles: `unpack*_epi32` of `v[0], v[1]` gives
/// `[a0 b0 a1 b1]` and `[a2 b2 a3 b3]` per lane, and `unpack*_epi64` of two such gives
/// `[a0 b0 c0 d0]`, `[a1 b1 c1 d1]`, ….
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn transpose_pairs(v: [__m256i; 4]) -> [__m256i; 4] {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe {
        let (ab_lo, ab_hi) = (_mm256_unpacklo_epi32(v[0], v[1]), _mm256_unpackhi_epi32(v[0], v[1]));
        let (cd_lo, cd_hi) = (_mm256_unpacklo_epi32(v[2], v[3]), _mm256_unpackhi_epi32(v[2], v[3]));
        [
            _mm256_unpacklo_epi64(ab_lo, cd_lo),
            _mm256_unpackhi_epi64(ab_lo, cd_lo),
            _mm256_unpacklo_epi64(ab_hi, cd_hi),
            _mm256_unpackhi_epi64(ab_hi, cd_hi),
        ]
    }
}

/// `[lo 128 bits of a | lo of b]` and `[hi of a | hi of b]`.
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn halves(a: __m256i, b: __m256i) -> (__m256i, __m256i) {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe { (_mm256_permute2x128_si256::<0x20>(a, b), _mm256_permute2x128_si256::<0x31>(a, b)) }
}

/// Q8_0 blocks `b` and `b + 1` of a row as the pair tiles take them: `wlo` holds both
/// blocks' codes 0..16, `whi` their codes 16..32 (as [`PairX`] lays out a token).
/// Prefetches ahead of them.
///
/// # Safety
/// `w` valid for blocks `b`, `b + 1`; AVX2 enabled.
#[inline(always)]
unsafe fn q8_pair_codes(w: *const BlockQ8_0, b: usize) -> (__m256i, __m256i) {
    // SAFETY: the caller's contract.
    unsafe {
        prefetch(w.add(b));
        halves(BlockQ8_0::codes(w.add(b)), BlockQ8_0::codes(w.add(b + 1)))
    }
}

/// A token's pair of blocks: `xlo = [x_b[0..16] | x_b+1[0..16]]`, `xhi` the elements 16..32.
#[derive(Clone, Copy)]
struct PairX {
    xlo: __m256i,
    xhi: __m256i,
}

/// One token's quants of blocks `b`, `b + 1` as a [`PairX`] (see [`halves`]).
///
/// # Safety
/// `xq` valid for `32·(b + 2)` quants; AVX2 enabled.
#[inline(always)]
unsafe fn act_pair(xq: *const i8, b: usize) -> PairX {
    // SAFETY: the caller's contract.
    let (xlo, xhi) =
        unsafe { halves(_mm256_loadu_si256(xq.add(b * QK).cast()), _mm256_loadu_si256(xq.add((b + 1) * QK).cast())) };
    PairX { xlo, xhi }
}

/// A row's Q8_0 pair, arranged as [`PairX`]: the signed codes (for their signs) and
/// their magnitudes.
#[derive(Clone, Copy)]
struct Q8PairW {
    wlo: __m256i,
    whi: __m256i,
    alo: __m256i,
    ahi: __m256i,
}

impl Q8PairW {
    /// Blocks `b`, `b + 1` of a row.
    ///
    /// # Safety
    /// `w` valid for blocks `b`, `b + 1`; AVX2 enabled.
    #[inline(always)]
    unsafe fn load(w: *const BlockQ8_0, b: usize) -> Self {
        // SAFETY: the caller's contract.
        unsafe {
            let (wlo, whi) = q8_pair_codes(w, b);
            let (alo, ahi) = (_mm256_sign_epi8(wlo, wlo), _mm256_sign_epi8(whi, whi));
            Q8PairW { wlo, whi, alo, ahi }
        }
    }

    /// `|w|` (unsigned) × `x·sign(w)` with `maddubs`: pairs of products, no saturation
    /// because `|x| ≤ 127` (`2·128·127 < 2¹⁵`); `madd` with ones widens each half to
    /// i32 (adding the i16 halves first could overflow), and the halves are added. The
    /// sums lie in `madd`'s lanes: block `b`'s partial sums in lanes 0–3, `b + 1`'s in 4–7.
    ///
    /// # Safety
    /// AVX2 enabled.
    #[inline(always)]
    unsafe fn isum(&self, x: &PairX) -> __m256i {
        // SAFETY: register-only intrinsics; the ISA is the caller's promise.
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let lo = _mm256_maddubs_epi16(self.alo, _mm256_sign_epi8(x.xlo, self.wlo));
            let hi = _mm256_maddubs_epi16(self.ahi, _mm256_sign_epi8(x.xhi, self.whi));
            _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones))
        }
    }
}

impl PairBlock<Avx2> for BlockQ8_0 {
    type G = [Q8PairW; GROUP / 2];
    const CODE_OFFSET: i32 = 0;

    #[inline(always)]
    unsafe fn prep_group_w(w: *const Self, b0: usize) -> Self::G {
        // SAFETY: the caller's contract.
        unsafe { [Q8PairW::load(w, b0), Q8PairW::load(w, b0 + 2), Q8PairW::load(w, b0 + 4), Q8PairW::load(w, b0 + 6)] }
    }

    /// [`reduce_group`] of the 4 pairs' sums.
    #[inline(always)]
    unsafe fn group_isum(w: &Self::G, x: &[PairX; GROUP / 2]) -> __m256i {
        // SAFETY: register-only intrinsics; the ISA is the caller's promise.
        unsafe { reduce_group([w[0].isum(&x[0]), w[1].isum(&x[1]), w[2].isum(&x[2]), w[3].isum(&x[3])]) }
    }
}

/// A row's Q4_0 pair: the nibbles of `[qs_b | qs_b+1]` masked (low nibbles: elements 0..16
/// of each block) and shifted (high nibbles: 16..32), both *unsigned* codes 0..15.
#[derive(Clone, Copy)]
struct Q4PairW {
    lo: __m256i,
    hi: __m256i,
}

/// The low and the high nibbles of each byte of `q`, as bytes.
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn nibbles(q: __m256i) -> (__m256i, __m256i) {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0F);
        (_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4))
    }
}

/// The packed nibbles of Q4_0 blocks `b` and `b + 1` of a row, `[qs_b | qs_b+1]`
/// (prefetching further along it).
///
/// # Safety
/// `w` valid for blocks `b`, `b + 1`; AVX2 enabled.
#[inline(always)]
unsafe fn q4_pair_bytes(w: *const BlockQ4_0, b: usize) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe {
        prefetch(w.add(b));
        _mm256_loadu2_m128i(core::ptr::addr_of!((*w.add(b + 1)).qs).cast(), core::ptr::addr_of!((*w.add(b)).qs).cast())
    }
}

impl Q4PairW {
    /// Blocks `b`, `b + 1` of a row.
    ///
    /// # Safety
    /// `w` valid for blocks `b`, `b + 1`; AVX2 enabled.
    #[inline(always)]
    unsafe fn load(w: *const BlockQ4_0, b: usize) -> Self {
        // SAFETY: the caller's contract.
        let (lo, hi) = unsafe { nibbles(q4_pair_bytes(w, b)) };
        Q4PairW { lo, hi }
    }

    /// `maddubs` takes the unsigned nibbles against the activations directly; the two
    /// products are added as i16 (at most `4·15·127 = 7620` per lane).
    ///
    /// # Safety
    /// AVX2 enabled.
    #[inline(always)]
    unsafe fn products16(&self, x: &PairX) -> __m256i {
        // SAFETY: register-only intrinsics; the ISA is the caller's promise.
        unsafe { _mm256_add_epi16(_mm256_maddubs_epi16(self.lo, x.xlo), _mm256_maddubs_epi16(self.hi, x.xhi)) }
    }
}

impl PairBlock<Avx2> for BlockQ4_0 {
    type G = [Q4PairW; GROUP / 2];
    const CODE_OFFSET: i32 = 8;

    #[inline(always)]
    unsafe fn prep_group_w(w: *const Self, b0: usize) -> Self::G {
        // SAFETY: the caller's contract.
        unsafe { [Q4PairW::load(w, b0), Q4PairW::load(w, b0 + 2), Q4PairW::load(w, b0 + 4), Q4PairW::load(w, b0 + 6)] }
    }

    /// The 4 pairs' i16 products ([`Q4PairW::products16`]) are reduced in i16 by
    /// [`zip32_add16`] and [`zip64_add16`] (32-bit units keep each pair's i16 neighbours
    /// together: `[p0 p0 p1 p1 ..]`, then `[p0 p0 p1 p1 p2 p2 p3 p3]` per 128-bit lane,
    /// each i16 a sum of 4 lanes, at most `4·7620 = 30480 < 2¹⁵`: exact) and widened by
    /// one `madd` with ones, which also adds the neighbours: the lanes come out as
    /// [`reduce_group`]'s, with one widening multiply per group instead of four (Q8_0's
    /// products, up to `2·128·127`, leave no such room). The multiply ports are what the
    /// integer tiles wait on.
    #[inline(always)]
    unsafe fn group_isum(w: &Self::G, x: &[PairX; GROUP / 2]) -> __m256i {
        // SAFETY: register-only intrinsics; the ISA is the caller's promise.
        unsafe {
            let h = zip64_add16(
                zip32_add16(w[0].products16(&x[0]), w[1].products16(&x[1])),
                zip32_add16(w[2].products16(&x[2]), w[3].products16(&x[3])),
            );
            _mm256_madd_epi16(h, _mm256_set1_epi16(1))
        }
    }
}

/// A pair's `Σx` per lane as `madd` arranges a pair's sums (block `b` in lanes 0–3,
/// `b + 1` in 4–7): `maddubs` against ones (pairs, at most `2·127`) and `madd` with ones.
///
/// # Safety
/// AVX2 enabled.
#[inline(always)]
unsafe fn pair_xsum(x: &PairX) -> __m256i {
    // SAFETY: register-only intrinsics; the ISA is the caller's promise.
    unsafe {
        let one = _mm256_set1_epi8(1);
        let s16 = _mm256_add_epi16(_mm256_maddubs_epi16(one, x.xlo), _mm256_maddubs_epi16(one, x.xhi));
        _mm256_madd_epi16(s16, _mm256_set1_epi16(1))
    }
}

/// One token's activations for a group of 8 blocks, prepared once for every row: the 4
/// pairs (as [`PairBlock::arrange_x`] leaves them), the offset `CODE_OFFSET·Σx` per block
/// (zero without an offset) and the block scales, both in [`GROUP_ORDER`].
#[derive(Clone, Copy)]
struct GroupX {
    pairs: [PairX; GROUP / 2],
    offset: __m256i,
    dx: __m256,
}

/// The [`GroupX`] of blocks `b0..b0 + 8` of one token.
///
/// # Safety
/// `xq` valid for `32·(b0 + 8)` quants and `xd` for `b0 + 8` scales; AVX2 enabled.
#[inline(always)]
unsafe fn prep_group<E, W: PairBlock<E>>(xq: *const i8, xd: *const f32, b0: usize) -> GroupX {
    // SAFETY: the caller's contract.
    unsafe {
        // No closures (`map`, `from_fn`) in these helpers: a closure is compiled without
        // the entry point's target features, and every intrinsic in it becomes a call.
        let pairs = [act_pair(xq, b0), act_pair(xq, b0 + 2), act_pair(xq, b0 + 4), act_pair(xq, b0 + 6)];
        let offset = if W::CODE_OFFSET != 0 {
            let sums =
                reduce_group([pair_xsum(&pairs[0]), pair_xsum(&pairs[1]), pair_xsum(&pairs[2]), pair_xsum(&pairs[3])]);
            _mm256_mullo_epi32(sums, _mm256_set1_epi32(W::CODE_OFFSET))
        } else {
            _mm256_setzero_si256()
        };
        let pairs = W::arrange_x(pairs);
        let order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        let dx = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xd.add(b0)), order);
        GroupX { pairs, offset, dx }
    }
}

/// `acc + cvt(exact block sums) · (d_w·d_x)` over one group, for one row (its 4 prepared
/// pairs `w` and widened scales `dw`) and one token.
///
/// # Safety
/// AVX2 and FMA enabled.
#[inline(always)]
unsafe fn group_fma<E, W: PairBlock<E>>(w: &W::G, dw: __m256, x: &GroupX, acc: __m256) -> __m256 {
    // SAFETY: register-only intrinsics; the ISA is the caller's promise.
    unsafe {
        let sums = W::group_isum(w, &x.pairs);
        let exact = if W::CODE_OFFSET != 0 { _mm256_sub_epi32(sums, x.offset) } else { sums };
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), _mm256_mul_ps(dw, x.dx), acc)
    }
}

/// [`QuantTile::int_tile`] for a [`PairBlock`]: whole groups of 8 blocks through
/// [`group_fma`]; the blocks after the last whole group go through
/// [`int_blocks_single`]. Every output gets the same operations whatever `R` and `T`
/// are, and so does [`pair_int_rows`].
///
/// # Safety
/// As [`QuantTile::int_tile`].
#[inline(always)]
unsafe fn pair_int_tile<E, W: NarrowBlock<E>, const R: usize, const T: usize>(
    w: [*const W; R],
    xq: [*const i8; T],
    xd: [*const f32; T],
    nb: usize,
) -> [[f32; T]; R] {
    if nb < GROUP {
        // SAFETY: forwarded contract; the tiles hold at most 8 rows.
        return unsafe { narrow::narrow_int_tile::<E, W, R, T>(w, xq, xd, nb) };
    }
    // SAFETY: the caller guarantees `nb` blocks behind every weight pointer, `32·nb`
    // quants and `nb` scales behind every activation pointer, and the ISA.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let groups = nb / GROUP;
        for g in 0..groups {
            let b0 = g * GROUP;
            let mut x = [prep_group::<E, W>(xq[0], xd[0], b0); T];
            for t in 1..T {
                x[t] = prep_group::<E, W>(xq[t], xd[t], b0);
            }
            for r in 0..R {
                let (wg, dw) = (W::prep_group_w(w[r], b0), group_scales(w[r].add(b0)));
                for t in 0..T {
                    acc[r][t] = group_fma::<E, W>(&wg, dw, &x[t], acc[r][t]);
                }
            }
        }
        int_blocks_single(w, xq, xd, groups * GROUP, nb, &mut acc);
        hsum_all(&acc)
    }
}

/// [`QuantTile::int_rows`] for a [`PairBlock`]: the tokens' groups are prepared once, on
/// the stack (a panel's 16 groups for up to 8 tokens, or one token's whole row of up to 8
/// panels), stored group-major so that the `T` tokens of a group sit together in L1
/// (token-major, they would lie a multiple of 4 KiB apart, in the same L1 set); then each
/// row runs, run of `panel` blocks by run, exactly [`pair_int_tile`]'s operations (with
/// several tokens, rows two at a time: [`PairBlock::prepared_run_pair`]).
///
/// # Safety
/// As [`QuantTile::int_rows`].
#[inline(always)]
unsafe fn pair_int_rows<E: QuantTile<W>, W: NarrowBlock<E>, const T: usize>(
    w: *const W,
    stride: usize,
    n: usize,
    xq: [*const i8; T],
    xd: [*const f32; T],
    nb: usize,
    panel: usize,
    store: &mut impl FnMut(usize, usize, f32),
) {
    const MAX_PREPARED: usize = super::SUPER_T * super::PANEL / QK / GROUP;
    if nb < GROUP {
        // SAFETY: forwarded contract.
        unsafe { narrow::narrow_rows::<E, W, T>(w, stride, n, xq, xd, nb, store) };
        return;
    }
    let groups = nb / GROUP;
    if groups * T > MAX_PREPARED || !panel.is_multiple_of(GROUP) {
        // Not reached through the driver (see above; its panels are whole groups).
        // SAFETY: forwarded contract.
        unsafe { super::int_rows_by_tile::<W, E, T>(w, stride, n, xq, xd, nb, panel, store) };
        return;
    }
    // SAFETY: the caller guarantees `nb` blocks per row, `32·nb` quants and `nb` scales
    // per token, and the ISA; `prepared` holds `groups·T ≤ MAX_PREPARED` entries.
    unsafe {
        // Uninitialised on purpose (zeroing up to 40 KiB per call is measurable): only
        // the first `groups·T` entries are written, and only those are read.
        let mut prepared = [const { core::mem::MaybeUninit::<GroupX>::uninit() }; MAX_PREPARED];
        for g in 0..groups {
            for t in 0..T {
                prepared[g * T + t].write(prep_group::<E, W>(xq[t], xd[t], g * GROUP));
            }
        }
        let prepared = prepared.as_ptr();
        if nb > panel {
            // A wide decode row: each run reduced alone, the runs added in order.
            for i in 0..n {
                let row = w.add(i * stride);
                let mut sums = [0.0; T];
                for (b0, b1) in super::runs(nb, panel) {
                    let run = if b1 - b0 < GROUP {
                        // A last run shorter than a group, as `int_tile` takes it (and
                        // `int_rows` with the panel's tokens).
                        let (xq, xd) = (xq.map(|p| p.add(b0 * QK)), xd.map(|p| p.add(b0)));
                        narrow::narrow_int_tile::<E, W, 1, T>([row.add(b0)], xq, xd, b1 - b0)[0]
                    } else {
                        hsum_all(&[prepared_run::<E, W, T>(row, xq, xd, prepared, b0, b1)])[0]
                    };
                    super::add_run(&mut sums, b0, run);
                }
                super::store_row(i, sums, store);
            }
            return;
        }
        let mut sums = RowSums::<T>::new(n);
        let mut i = 0;
        if T > 1 {
            // Several tokens: rows two at a time, for engines that run them side by side.
            while i + 2 <= n {
                let rows = [w.add(i * stride), w.add((i + 1) * stride)];
                let [a, b] = W::prepared_run_pair::<T>(rows, xq, xd, prepared, 0, nb);
                sums.push(i, &a, store);
                sums.push(i + 1, &b, store);
                i += 2;
            }
        }
        for i in i..n {
            sums.push(i, &prepared_run::<E, W, T>(w.add(i * stride), xq, xd, prepared, 0, nb), store);
        }
    }
}

/// Blocks `b0..b1` of `row` (`b0` a multiple of [`GROUP`]) into a fresh accumulator per
/// token: whole groups through [`group_fma`] with the groups `prepared` by
/// [`pair_int_rows`] (entry `g·T + t`), then the blocks after the last whole group.
///
/// # Safety
/// `row` valid for `b1` blocks, `xq[t]` for `32·b1` quants, `xd[t]` for `b1` scales,
/// `prepared` initialised for the groups up to `b1 / GROUP`; AVX2, FMA and F16C enabled.
#[inline(always)]
unsafe fn prepared_run<E, W: PairBlock<E>, const T: usize>(
    row: *const W,
    xq: [*const i8; T],
    xd: [*const f32; T],
    prepared: *const core::mem::MaybeUninit<GroupX>,
    b0: usize,
    b1: usize,
) -> [__m256; T] {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; 1];
        for g in b0 / GROUP..b1 / GROUP {
            let (wg, dw) = (W::prep_group_w(row, g * GROUP), group_scales(row.add(g * GROUP)));
            for t in 0..T {
                acc[0][t] = group_fma::<E, W>(&wg, dw, (*prepared.add(g * T + t)).assume_init_ref(), acc[0][t]);
            }
        }
        int_blocks_single([row], xq, xd, b1 / GROUP * GROUP, b1, &mut acc);
        acc[0]
    }
}

/// The integer tiles of both legacy block types, for every engine `$engine`, are the pair
/// tiles; they differ only in how a group is prepared and multiplied ([`PairBlock`]). The
/// dequantize tile is AVX2's for every engine. With a second engine `$one_token`, rows
/// against a single token (decode) run on that engine's tiles instead: every engine forms
/// the same exact sums and the same float steps, so the outputs do not change, only the
/// work (see `vnni`).
macro_rules! pair_quant_tile {
    ([$($generics:tt)*] $engine:ty, $block:ty) => {
        pair_quant_tile!([$($generics)*] $engine, $block, $engine);
    };
    ([$($generics:tt)*] $engine:ty, $block:ty, $one_token:ty) => {
        impl<$($generics)*> QuantTile<$block> for $engine {
            #[inline(always)]
            unsafe fn int_tile<const R: usize, const T: usize>(
                w: [*const $block; R],
                xq: [*const i8; T],
                xd: [*const f32; T],
                nb: usize,
            ) -> [[f32; T]; R] {
                // SAFETY: forwarded contract.
                unsafe { pair_int_tile::<Self, $block, R, T>(w, xq, xd, nb) }
            }

            #[inline(always)]
            unsafe fn int_rows<const T: usize>(
                w: *const $block,
                stride: usize,
                n: usize,
                xq: [*const i8; T],
                xd: [*const f32; T],
                nb: usize,
                panel: usize,
                store: &mut impl FnMut(usize, usize, f32),
            ) {
                // SAFETY: forwarded contract; `$one_token` needs no more than `$engine`'s ISA.
                unsafe {
                    if T == 1 {
                        pair_int_rows::<$one_token, $block, 1>(w, stride, n, [xq[0]], [xd[0]], nb, panel, store)
                    } else {
                        pair_int_rows::<Self, $block, T>(w, stride, n, xq, xd, nb, panel, store)
                    }
                }
            }

            #[inline(always)]
            unsafe fn deq_tile<const R: usize, const T: usize>(
                w: [*const $block; R],
                x: [*const f32; T],
                nb: usize,
            ) -> [[f32; T]; R] {
                // SAFETY: forwarded contract.
                unsafe { deq_tile(w, x, nb) }
            }
        }
    };
}

pair_quant_tile!([] Avx2, BlockQ8_0);
pair_quant_tile!([] Avx2, BlockQ4_0);

// After the macro above, which it uses.
mod narrow;
pub(super) mod vnni;

use narrow::NarrowBlock;

/// Per block, 4 chunks of 8: `w = f32(code)·d` (the dequantized value, rounded as in
/// the scalar spec), then one FMA per chunk into the output's 8-lane accumulator.
///
/// # Safety
/// As [`QuantTile::deq_tile`].
#[inline(always)]
unsafe fn deq_tile<W: QBlock, const R: usize, const T: usize>(
    w: [*const W; R],
    x: [*const f32; T],
    nb: usize,
) -> [[f32; T]; R] {
    // SAFETY: the caller guarantees `nb` blocks behind every weight pointer, `32·nb`
    // floats behind every activation pointer, and the ISA.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        for b in 0..nb {
            let mut dw = [_mm256_setzero_ps(); R];
            for r in 0..R {
                dw[r] = _mm256_set1_ps(W::scale(w[r].add(b)));
            }
            for k in 0..4 {
                for r in 0..R {
                    let wf = _mm256_mul_ps(_mm256_cvtepi32_ps(W::codes8(w[r].add(b), k)), dw[r]);
                    for t in 0..T {
                        let xv = _mm256_loadu_ps(x[t].add(b * QK + 8 * k));
                        acc[r][t] = _mm256_fmadd_ps(wf, xv, acc[r][t]);
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

/// `round(v)` with ties away from zero, exactly (`roundf`): `t = trunc(v)`, and `t ± 1`
/// when `|v − t| ≥ 0.5` (`v − t` is exact).
///
/// # Safety
/// AVX must be enabled in the caller.
#[inline(always)]
unsafe fn round_half_away(v: __m256) -> __m256 {
    // SAFETY: AVX is enabled in the (inlining) caller.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
        let away = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
        let step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0));
        _mm256_add_ps(t, _mm256_and_ps(away, step))
    }
}

impl QuantizeActs for Avx2 {
    /// Two passes per block: the lane-wise `|x|` maximum of every 32 values, then the
    /// quants 32 at a time (the second pass reloads from L1). Blocks go eight at a time
    /// ([`block_maxima`]): their maxima land in one vector, and one vector division each
    /// gives the eight scales `amax/127` and their inverses. Block by block, the two scalar
    /// divisions and the horizontal maximum formed a chain of about 50 cycles per block
    /// that the core could not hide (criterion `quantize_activations_32`, KERNELS.md).
    /// Maxima of non-NaN values and IEEE divisions are exact in any order, so the bits
    /// are the specification's either way.
    #[inline(always)]
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize) {
        // SAFETY: the caller guarantees `block·nb` floats/quants and `nb` scales, and AVX2.
        unsafe {
            let mut b = 0;
            while b + 8 <= nb {
                let p = x.add(b * block);
                let amax = block_maxima(p, block);
                let scale = _mm256_div_ps(amax, _mm256_set1_ps(127.0));
                // `1/scale`, and 0 where that is not finite (`quant::inverse_scale`).
                let inv = _mm256_div_ps(_mm256_set1_ps(1.0), scale);
                let finite = _mm256_cmp_ps::<_CMP_LT_OQ>(inv, _mm256_set1_ps(f32::INFINITY));
                let inv = _mm256_and_ps(inv, finite);
                _mm256_storeu_ps(d.add(b), scale);
                let mut ids = [0.0f32; 8];
                _mm256_storeu_ps(ids.as_mut_ptr(), inv);
                for (j, &id) in ids.iter().enumerate() {
                    quantize_block(p.add(j * block), qs.add((b + j) * block), block, id);
                }
                b += 8;
            }
            for b in b..nb {
                let p = x.add(b * block);
                let m = lane_max(p, block);
                let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
                let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
                let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
                let scale = amax / 127.0;
                let id = crate::quant::inverse_scale(scale);
                *d.add(b) = scale;
                quantize_block(p, qs.add(b * block), block, id);
            }
        }
    }
}

/// Four consecutive 8-float vectors from `p` (32 values).
///
/// # Safety
/// `p` valid for 32 floats; AVX enabled.
#[inline(always)]
unsafe fn load32(p: *const f32) -> [__m256; 4] {
    // SAFETY: the caller's contract.
    unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))] }
}

/// The lane-wise maximum of `|x|` over the `block` values at `p` (a multiple of 32).
///
/// # Safety
/// `p` valid for `block` floats; AVX enabled.
#[inline(always)]
unsafe fn lane_max(p: *const f32, block: usize) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        for c in 0..block / QK {
            let v = load32(p.add(QK * c));
            let m01 = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1]));
            let m23 = _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3]));
            m = _mm256_max_ps(_mm256_max_ps(m01, m23), m);
        }
        m
    }
}

/// `amax` of each of the 8 blocks of `block` values at `p`, in lane order: the 8 blocks'
/// [`lane_max`] vectors reduced together, as [`hsum8`] does with sums: 128-bit halves of
/// two blocks side by side, then `shufps` pairs (the result comes out in lanes
/// `[0, 2, 4, 6 | 1, 3, 5, 7]` and is permuted back).
///
/// # Safety
/// `p` valid for `8·block` floats; AVX2 enabled.
#[inline(always)]
unsafe fn block_maxima(p: *const f32, block: usize) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        // Macros, not closures (see `hsum8`).
        macro_rules! halves {
            ($j:expr) => {{
                let (a, b) = (lane_max(p.add($j * block), block), lane_max(p.add(($j + 1) * block), block));
                _mm256_max_ps(_mm256_permute2f128_ps::<0x20>(a, b), _mm256_permute2f128_ps::<0x31>(a, b))
            }};
        }
        macro_rules! pairs {
            ($a:expr, $b:expr) => {{
                let (a, b) = ($a, $b);
                _mm256_max_ps(_mm256_shuffle_ps::<0b10_00_10_00>(a, b), _mm256_shuffle_ps::<0b11_01_11_01>(a, b))
            }};
        }
        let (m01, m23, m45, m67) = (halves!(0), halves!(2), halves!(4), halves!(6));
        let maxima = pairs!(pairs!(m01, m23), pairs!(m45, m67));
        _mm256_permutevar8x32_ps(maxima, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }
}

/// The quants of one block: `round_half_away(x·id)`, 32 at a time, packed to bytes.
///
/// # Safety
/// `x` valid for `block` floats, `qs` for `block` quants; AVX2 enabled.
#[inline(always)]
unsafe fn quantize_block(x: *const f32, qs: *mut i8, block: usize, id: f32) {
    // SAFETY: the caller's contract.
    unsafe {
        let idv = _mm256_set1_ps(id);
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for c in 0..block / QK {
            let v = load32(x.add(QK * c));
            let mut q = [_mm256_setzero_si256(); 4];
            for k in 0..4 {
                q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], idv)));
            }
            let q01 = _mm256_packs_epi32(q[0], q[1]);
            let q23 = _mm256_packs_epi32(q[2], q[3]);
            let packed = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q01, q23), order);
            _mm256_storeu_si256(qs.add(QK * c).cast(), packed);
        }
    }
}

/// The WKV-7 head step of [`math::wkv7_head`] with 8-lane vectors. The state update
/// `S·decay + sa·(kk·a) + v·k` uses the specification's operations (mul, mul, add, add; no
/// FMA contraction), so it differs from scalar only through `sa`; the two dot products
/// (`sa` and `y`) are 8-lane FMA sums reduced by [`hsum`]. Falls back to the scalar
/// specification unless `N` is a multiple of 8 and at most 256.
#[allow(clippy::too_many_arguments)]
fn wkv7_head(state: &mut [f32], r: &[f32], decay: &[f32], k: &[f32], v: &[f32], kk: &[f32], a: &[f32], y: &mut [f32]) {
    let n = r.len();
    if !n.is_multiple_of(8) || n > 256 {
        return math::wkv7_head(state, r, decay, k, v, kk, a, y);
    }
    assert!(state.len() == n * n && [decay, k, v, kk, a].iter().all(|s| s.len() == n) && y.len() == n, "wkv7: shapes");
    // SAFETY: shapes asserted above; the CPU has AVX2 and FMA (module docs).
    unsafe { wkv7_head_avx2(state, r, decay, k, v, kk, a, y) }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn wkv7_head_avx2(
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
    let mut kka = [0.0f32; 256];
    for j in 0..n {
        kka[j] = kk[j] * a[j];
    }
    // Rows are independent: 4 at a time, so that their dependent chains (an 8-step FMA
    // sum, `hsum`, then the update and a second FMA sum) overlap; each row still gets
    // exactly the operations of a row on its own.
    const ROWS: usize = 4;
    // SAFETY: every vector holds `n` floats and the state `n·n` (asserted by the caller,
    // `n` a multiple of 8, so of `ROWS`); all offsets below are `< n` within a row; AVX2
    // and FMA are enabled.
    unsafe {
        for i0 in (0..n).step_by(ROWS) {
            let mut rows = [state.as_mut_ptr(); ROWS];
            for q in 0..ROWS {
                rows[q] = state.as_mut_ptr().add((i0 + q) * n);
            }
            let mut sacc = [_mm256_setzero_ps(); ROWS];
            for j in (0..n).step_by(8) {
                let kkj = _mm256_loadu_ps(kk.as_ptr().add(j));
                for q in 0..ROWS {
                    sacc[q] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[q].add(j)), kkj, sacc[q]);
                }
            }
            let mut sa = [_mm256_setzero_ps(); ROWS];
            let mut vi = [_mm256_setzero_ps(); ROWS];
            for q in 0..ROWS {
                sa[q] = _mm256_set1_ps(-hsum(sacc[q]));
                vi[q] = _mm256_set1_ps(v[i0 + q]);
            }
            let mut yacc = [_mm256_setzero_ps(); ROWS];
            for j in (0..n).step_by(8) {
                let (dj, kkaj, kj, rj) = (
                    _mm256_loadu_ps(decay.as_ptr().add(j)),
                    _mm256_loadu_ps(kka.as_ptr().add(j)),
                    _mm256_loadu_ps(k.as_ptr().add(j)),
                    _mm256_loadu_ps(r.as_ptr().add(j)),
                );
                for q in 0..ROWS {
                    let decayed = _mm256_mul_ps(_mm256_loadu_ps(rows[q].add(j)), dj);
                    let removed = _mm256_mul_ps(sa[q], kkaj);
                    let added = _mm256_mul_ps(vi[q], kj);
                    let s = _mm256_add_ps(_mm256_add_ps(decayed, removed), added);
                    _mm256_storeu_ps(rows[q].add(j), s);
                    yacc[q] = _mm256_fmadd_ps(s, rj, yacc[q]);
                }
            }
            for q in 0..ROWS {
                y[i0 + q] = hsum(yacc[q]);
            }
        }
    }
}

/// A safe entry point `$name` for the `AVX2` table that runs the generic
/// `vector::$op` with [`F32x8`] lanes inside a `#[target_feature]` body.
macro_rules! vector_entry {
    ($name:ident, $body:ident, $op:ident ($($arg:ident: $ty:ty),*)) => {
        fn $name($($arg: $ty),*) {
            // SAFETY: only reachable through `AVX2`, which is handed out only when the CPU
            // has AVX2, FMA and F16C (module docs).
            unsafe { $body($($arg),*) }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $body($($arg: $ty),*) {
            // SAFETY: AVX2 and FMA, which `F32x8` needs, are enabled on this function.
            unsafe { vector::$op::<F32x8>($($arg),*) }
        }
    };
}

vector_entry!(layer_norm, layer_norm_avx2, layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]));
vector_entry!(group_norm, group_norm_avx2, group_norm(x: &mut [f32], w: &[f32], b: &[f32], group: usize, eps: f32));
vector_entry!(exp, exp_avx2, exp_slice(x: &mut [f32]));
vector_entry!(sigmoid, sigmoid_avx2, sigmoid_slice(x: &mut [f32]));
vector_entry!(tanh, tanh_avx2, tanh_slice(x: &mut [f32]));
vector_entry!(relu_squared, relu_squared_avx2, relu_squared(x: &mut [f32]));
vector_entry!(lerp, lerp_avx2, lerp(x: &[f32], sx: &[f32], mix: &[f32], out: &mut [f32]));
vector_entry!(bias_sigmoid, bias_sigmoid_avx2, bias_sigmoid(bias: &[f32], x: &mut [f32]));
vector_entry!(time_decay, time_decay_avx2, time_decay(w0: &[f32], scale: f32, w: &mut [f32]));
vector_entry!(value_residual, value_residual_avx2, value_residual(v: &mut [f32], v_first: &[f32], v0: &[f32], gate: &[f32]));
vector_entry!(key_prep, key_prep_avx2, key_prep(k: &mut [f32], kk: &mut [f32], a: &[f32], k_k: &[f32], k_a: &[f32], head: usize, eps: f32));

/// 8 f32 lanes in an AVX register. A value exists only on a CPU with AVX2 and FMA: the
/// constructors are `unsafe` with that contract ([`F32s`]), which is what every
/// `// SAFETY:` in [`avx`] relies on.
#[derive(Clone, Copy)]
struct F32x8(__m256);

/// Evaluates an intrinsic expression on proven-AVX2 values.
macro_rules! avx {
    ($e:expr) => {
        // SAFETY: an `F32x8` operand exists only on a CPU with AVX2 and FMA (see `F32x8`).
        unsafe { $e }
    };
}

impl F32s for F32x8 {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        // SAFETY: the caller guarantees AVX.
        unsafe { F32x8(_mm256_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable floats and AVX.
        unsafe { F32x8(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable floats; `self` proves AVX.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    fn lit(self, v: f32) -> Self {
        avx!(F32x8(_mm256_set1_ps(v)))
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        avx!(F32x8(_mm256_add_ps(self.0, b.0)))
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        avx!(F32x8(_mm256_sub_ps(self.0, b.0)))
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        avx!(F32x8(_mm256_mul_ps(self.0, b.0)))
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        avx!(F32x8(_mm256_div_ps(self.0, b.0)))
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        avx!(F32x8(_mm256_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn neg(self) -> Self {
        avx!(F32x8(_mm256_xor_ps(self.0, _mm256_set1_ps(-0.0))))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        avx!(F32x8(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        avx!(F32x8(_mm256_sqrt_ps(self.0)))
    }
    /// `maxps` returns its second operand when either is NaN.
    #[inline(always)]
    fn max_num(self, b: Self) -> Self {
        avx!(F32x8(_mm256_max_ps(self.0, b.0)))
    }
    /// `x` is the second operand of both `maxps` and `minps`, which return the second
    /// operand when either is NaN: NaN passes through.
    #[inline(always)]
    fn clamp(self, lo: f32, hi: f32) -> Self {
        avx!(F32x8(_mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), self.0))))
    }
    #[inline(always)]
    fn round(self) -> Self {
        avx!(F32x8(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)))
    }
    /// `n = n1 + n2` with `n1 = ⌊n/2⌋`, both in `[−75, 64]`: `2^n1` and `2^n2` are normal
    /// and `self·2^n1` is exact for `self` near 1.
    #[inline(always)]
    fn mul_pow2(self, n: Self) -> Self {
        avx!({
            let ni = _mm256_cvtps_epi32(n.0);
            let n1 = _mm256_srai_epi32::<1>(ni);
            let n2 = _mm256_sub_epi32(ni, n1);
            let bias = _mm256_set1_epi32(127);
            let p1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
            let p2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
            F32x8(_mm256_mul_ps(_mm256_mul_ps(self.0, p1), p2))
        })
    }
    #[inline(always)]
    fn or_sign(self, s: Self) -> Self {
        avx!(F32x8(_mm256_or_ps(self.0, _mm256_and_ps(s.0, _mm256_set1_ps(-0.0)))))
    }
    #[inline(always)]
    fn select_lt(self, lim: Self, a: Self, b: Self) -> Self {
        avx!(F32x8(_mm256_blendv_ps(b.0, a.0, _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, lim.0))))
    }
    /// [`hsum`]'s order.
    #[inline(always)]
    fn sum(self) -> f32 {
        avx!(hsum(self.0))
    }
}
