//! Architecture-specific kernel sets. The only place in the crate with `unsafe`.
//!
//! Every set shares the loop structure in this file (token groups, activation panels,
//! row tiles); the ISA modules supply the micro-kernels ("tiles") that compute an
//! `R rows × T tokens` block of outputs in registers. The drivers are `#[inline(always)]`
//! so that they compile inside each ISA's `#[target_feature]` entry point.
//!
//! Determinism contract: a tile computes each `(row, token)` output with exactly the
//! same sequence of operations whatever `R` and `T` are (each output has its own
//! accumulator, reduced in a fixed order), and panels are split at fixed column offsets.
//! So an output does not depend on the token count or on the row range of the call.

// The drivers below are only instantiated by the x86_64 and aarch64 sets.
#![cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code, unused_macros))]

use core::mem::MaybeUninit;
use core::ops::Range;

use crate::{CpuFeatures, KernelSet, MatmulJob, QK};

/// Calls `$body` with `T = $tn` (1..=8) const-bound (defined before the ISA and K-quant
/// modules, which use it too): the integer drivers multiply one weight row at a time
/// against up to a whole panel of [`SUPER_T`] tokens. One row at a time keeps a single
/// linear stream through the weights (what the memory prefetchers follow best, and
/// decode is memory-bound), and 8 tokens per row leave the 16 AVX2 registers enough
/// room: 8 accumulators, the row's codes, scales and temporaries, without spills.
macro_rules! with_token_count {
    ($tn:expr, $f:ident::<$($g:ty),*>($($arg:expr),*)) => {
        match $tn {
            1 => $f::<$($g,)* 1>($($arg),*),
            2 => $f::<$($g,)* 2>($($arg),*),
            3 => $f::<$($g,)* 3>($($arg),*),
            4 => $f::<$($g,)* 4>($($arg),*),
            5 => $f::<$($g,)* 5>($($arg),*),
            6 => $f::<$($g,)* 6>($($arg),*),
            7 => $f::<$($g,)* 7>($($arg),*),
            _ => $f::<$($g,)* 8>($($arg),*),
        }
    };
}

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
mod aarch64_kquant;
mod kquant;
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
mod x86_64_kquant;

/// The SIMD sets this CPU can run, best first (`None` entries are skipped).
pub(crate) fn simd_sets(cpu: CpuFeatures) -> [Option<KernelSet>; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        use x86_64::vnni;
        // The emulated VNNI set is last: slower than AVX2, it is there to be tested.
        let avx2 = cpu.avx2_fma_f16c;
        [
            (avx2 && cpu.avx512_vnni).then_some(vnni::AVX512_VNNI),
            (avx2 && cpu.avx_vnni).then_some(vnni::AVX_VNNI),
            avx2.then_some(x86_64::AVX2),
            avx2.then_some(vnni::VNNI_EMULATED),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the aarch64 baseline, so the plain NEON set is always there.
        [cpu.dotprod.then_some(aarch64::NEON_DOTPROD), Some(aarch64::NEON), None, None]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = cpu;
        [None, None, None, None]
    }
}

/// Tokens per row tile (each tile keeps `R × T ≈ 8` accumulators in registers).
const MAX_T: usize = 4;
/// How far ahead of the block being multiplied the integer tiles prefetch weights, in
/// bytes. A decode step streams every weight from memory once, so a row tile waits on
/// DRAM unless the next bytes are already requested: about bandwidth × latency per core
/// (≈ 15 GB/s × 100 ns ≈ 1.5 KB) must be in flight. `rwkv7 bench` on the 0.1B q8_0
/// model, one thread: 28 tok/s with 4-row tiles and no prefetch, 44 with one-row tiles
/// (one linear stream per thread), 50–70 with one-row tiles and 1–4 KiB prefetch.
/// (The NEON tiles do not prefetch yet: without the hardware, qemu cannot tell whether it helps.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const PREFETCH_BYTES: usize = 2048;
/// Tokens whose activations the integer path quantizes before sweeping the weights, so
/// a prefill chunk reads the weights from memory once per 8 tokens.
const SUPER_T: usize = 8;
/// Activation columns quantized per panel by the integer paths (a multiple of 32). The
/// quantized panel for `SUPER_T` tokens lives on the stack: 32 KiB of quants + 4 KiB of
/// scales (plus padding, below). Rows up to 4096 columns (every RWKV-7 `C` up to 4096) are a single panel.
const PANEL: usize = 4096;
/// Distance in bytes between consecutive tokens' quants in an activation panel: a
/// panel's width plus one cache line. With a stride of exactly 4 KiB, the 8 tokens' block
/// `b` would all fall in the same L1 set (32 KiB, 8 ways, 4 KiB per way) together with
/// the weights streaming through it; the extra line puts each token in its own set.
/// Prefill tiles read all 8 tokens' block `b` back to back (0.1B q8_0, one thread,
/// `rwkv7 bench -p 512 -n 0`: 300 → 319 tok/s; KERNELS.md, "Prefill, whole model").
const XQ_STRIDE: usize = PANEL + 64;
/// Distance in floats between consecutive tokens' block scales in a panel: the panel's
/// scales plus 16 floats (one cache line), for the same reason as [`XQ_STRIDE`].
const XD_STRIDE: usize = PANEL / QK + 16;

/// The quantized activations of up to [`SUPER_T`] tokens over one panel, or of one
/// token over up to [`SUPER_T`] panels ([`ActPanel::quantize_wide`]), on the stack.
/// Uninitialised on purpose (zeroing 37 KiB per matrix call is measurable on small
/// matrices): only the parts [`ActPanel::quantize`] or [`ActPanel::quantize_wide`] wrote
/// are read, through raw pointers.
struct ActPanel {
    xq: MaybeUninit<[i8; XQ_STRIDE * SUPER_T]>,
    xd: MaybeUninit<[f32; XD_STRIDE * SUPER_T]>,
}

impl ActPanel {
    #[inline(always)]
    fn new() -> Self {
        Self { xq: MaybeUninit::uninit(), xd: MaybeUninit::uninit() }
    }

    /// Quantizes `src` (`block·n ≤ PANEL` floats, one scale per `block`, a multiple of 32)
    /// as token `t < SUPER_T`.
    ///
    /// # Safety
    /// The CPU must support `K`'s ISA.
    #[inline(always)]
    unsafe fn quantize<K: QuantizeActs>(&mut self, t: usize, block: usize, src: &[f32]) {
        let blocks = src.len() / block;
        assert!(t < SUPER_T && block.is_multiple_of(QK) && blocks * block <= PANEL);
        let (xq, xd) = (self.xq.as_mut_ptr().cast::<i8>(), self.xd.as_mut_ptr().cast::<f32>());
        // SAFETY: `src` holds `block·blocks` floats; token `t` owns `XQ_STRIDE ≥ PANEL`
        // quants and `XD_STRIDE ≥ PANEL/32 ≥ blocks` scales of the buffers.
        unsafe { K::quantize(src.as_ptr(), xq.add(t * XQ_STRIDE), xd.add(t * XD_STRIDE), block, blocks) };
    }

    /// Quantizes one token's whole row `x` (at most [`SUPER_T`] panels: the buffers hold
    /// that many panels' quants and scales) as one run from the buffers' start, for
    /// [`wide_decode`]: the quants and scales of every panel then follow each other.
    ///
    /// # Safety
    /// The CPU must support `K`'s ISA.
    #[inline(always)]
    unsafe fn quantize_wide<K: QuantizeActs>(&mut self, block: usize, x: &[f32]) {
        let blocks = x.len() / block;
        assert!(block.is_multiple_of(QK) && blocks * block <= PANEL * SUPER_T);
        let (xq, xd) = (self.xq.as_mut_ptr().cast::<i8>(), self.xd.as_mut_ptr().cast::<f32>());
        // SAFETY: `x` holds `block·blocks` floats; the buffers hold `XQ_STRIDE·SUPER_T ≥
        // PANEL·SUPER_T` quants and `XD_STRIDE·SUPER_T ≥ PANEL·SUPER_T/32 ≥ blocks` scales.
        unsafe { K::quantize(x.as_ptr(), xq, xd, block, blocks) };
    }

    /// Pointers to the quants and scales of tokens `t0..t0 + T`.
    #[inline(always)]
    fn tokens<const T: usize>(&self, t0: usize) -> ([*const i8; T], [*const f32; T]) {
        let (xq, xd) = (self.xq.as_ptr().cast::<i8>(), self.xd.as_ptr().cast::<f32>());
        let mut out = ([core::ptr::null(); T], [core::ptr::null(); T]);
        for t in 0..T {
            // `wrapping_add` keeps this safe; the callers only read tokens they quantized.
            out.0[t] = xq.wrapping_add((t0 + t) * XQ_STRIDE);
            out.1[t] = xd.wrapping_add((t0 + t) * XD_STRIDE);
        }
        out
    }
}

/// Bytes of weight rows swept for every token group before moving on (cache blocking for
/// prefill: the block stays in L2 while all token groups pass over it).
const ROW_BLOCK_BYTES: usize = 128 * 1024;

/// Rows per cache block: all rows when there is a single token group, else as many rows
/// as fit [`ROW_BLOCK_BYTES`] (a multiple of 8, so blocks split no row tile). Changes only
/// the order in which tiles run, never a result.
fn row_block(count: usize, row_bytes: usize, tokens: usize) -> usize {
    if tokens <= MAX_T {
        return count.max(1);
    }
    rows_fitting(ROW_BLOCK_BYTES, row_bytes)
}

/// As many rows of `row_bytes` as fit in `bytes`, as a multiple of 8 (so that blocks split
/// no row tile), at least 8.
fn rows_fitting(bytes: usize, row_bytes: usize) -> usize {
    (bytes / row_bytes.max(1) / 8 * 8).max(8)
}

/// The blocks of `rb ≥ 1` rows that cover rows `0..count`, the last one shorter.
fn row_blocks(count: usize, rb: usize) -> impl Iterator<Item = Range<usize>> {
    (0..count).step_by(rb).map(move |i0| i0..(i0 + rb).min(count))
}

/// Whether a call is one token (decode) whose rows span 2 to [`SUPER_T`] panels of
/// `per_panel` units (`nb` units per row). Such a call quantizes the whole row once
/// ([`ActPanel::quantize_wide`]) and runs every row once, from its first unit to its
/// last, in one `int_rows` call that reduces each panel's run of units on its own and
/// adds the runs in order: the same operations, so the same bits, as panel by panel.
///
/// Panel by panel, each row was read in separate strided passes (the first 4096 columns
/// of every row, then the next), and a row's prefetch ran past its panel into lines
/// that the next pass found gone; row blocks of 256 KiB, every panel of a block before
/// the next, still started every strided piece cold. One pass per row is one linear
/// stream through the matrix: 1.2–2× faster on one thread (`tools/kernel-ab`, the table
/// in KERNELS.md, "Decode of rows wider than one panel").
fn wide_decode(tokens: usize, nb: usize, per_panel: usize) -> bool {
    let panels = nb.div_ceil(per_panel.max(1));
    tokens == 1 && (2..=SUPER_T).contains(&panels)
}

/// A micro-kernel for float-typed weights (f32, f16, bf16).
pub(crate) trait FloatTile<W> {
    /// `out[r][t] = Σ_c w_r[c] · x_t[c]` for `c < cols`.
    ///
    /// # Safety
    /// Each `w[r]` and `x[t]` must be valid for reads of `cols` elements, and the CPU
    /// must support the ISA of the implementation.
    unsafe fn tile<const R: usize, const T: usize>(w: [*const W; R], x: [*const f32; T], cols: usize) -> [[f32; T]; R];
}

/// Micro-kernels for a block type (Q8_0, Q4_0).
pub(crate) trait QuantTile<W> {
    /// Integer path over `nb` blocks:
    /// `out[r][t] = Σ_b f32(isum(w_r[b], xq_t[b])) · (d_w · xd_t[b])`.
    ///
    /// # Safety
    /// Each `w[r]` must be valid for `nb` blocks, `xq[t]` for `32·nb` quants, `xd[t]`
    /// for `nb` scales; the CPU must support the ISA; activation quants must lie in
    /// `[-127, 127]`.
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R];

    /// Dequantize path over `nb` blocks: `out[r][t] = Σ_c (q·d)_r[c] · x_t[c]`.
    ///
    /// # Safety
    /// Each `w[r]` must be valid for `nb` blocks and `x[t]` for `32·nb` floats; the CPU
    /// must support the ISA.
    unsafe fn deq_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        x: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R];

    /// `n` rows against `T` tokens: `store(i, t, s)` for `i < n`, `t < T`, where `s` is
    /// the sum of row `w + i·stride` taken in runs of `panel` blocks (the last one
    /// shorter), each run through `int_tile::<1, T>`, the runs added by [`add_run`], bit
    /// for bit. A set may override it to prepare the tokens' activations once for all
    /// the rows (the default runs the tile row by row, run by run).
    ///
    /// # Safety
    /// Rows `w + i·stride` for `i < n` valid for `nb` blocks, `panel ≥ 1`; otherwise as
    /// [`QuantTile::int_tile`].
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
    ) where
        Self: Sized,
    {
        // SAFETY: forwarded contract.
        unsafe { int_rows_by_tile::<W, Self, T>(w, stride, n, xq, xd, nb, panel, store) }
    }
}

/// [`QuantTile::int_rows`] one row and one run of `panel` blocks at a time through
/// `K::int_tile::<1, T>`.
///
/// # Safety
/// As [`QuantTile::int_rows`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn int_rows_by_tile<W, K: QuantTile<W>, const T: usize>(
    w: *const W,
    stride: usize,
    n: usize,
    xq: [*const i8; T],
    xd: [*const f32; T],
    nb: usize,
    panel: usize,
    store: &mut impl FnMut(usize, usize, f32),
) {
    for i in 0..n {
        let row = w.wrapping_add(i * stride);
        let mut sums = [0.0; T];
        for (b0, b1) in runs(nb, panel) {
            let (xq, xd) = (xq.map(|p| p.wrapping_add(b0 * QK)), xd.map(|p| p.wrapping_add(b0)));
            // SAFETY: forwarded contract, row `i`, blocks `b0..b1`.
            add_run(&mut sums, b0, unsafe { K::int_tile::<1, T>([row.wrapping_add(b0)], xq, xd, b1 - b0)[0] });
        }
        store_row(i, sums, store);
    }
}

/// The runs `(b0, b1)` of `panel` units that a row of `nb` units is summed in: `0..panel`,
/// `panel..2·panel`, …, the last one shorter. `panel ≥ 1`.
#[inline(always)]
pub(crate) fn runs(nb: usize, panel: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..nb).step_by(panel).map(move |b0| (b0, (b0 + panel).min(nb)))
}

/// Hands row `i`'s finished sums to `store`, token by token.
#[inline(always)]
pub(crate) fn store_row<const T: usize>(i: usize, sums: [f32; T], store: &mut impl FnMut(usize, usize, f32)) {
    for (t, v) in sums.into_iter().enumerate() {
        store(i, t, v);
    }
}

/// Adds the sums of a row's run of units that starts at unit `b0` to the row's `total`:
/// the first run (`b0 = 0`) sets it, later ones add, `((s₀ + s₁) + s₂) …`, which is what
/// a call per panel gives when the first panel writes each output and later ones add
/// to it. (The ISA files write their run loops out rather than pass a closure of
/// intrinsics to a helper: such a closure, when not inlined, loses the caller's target
/// features and makes a call per intrinsic, 15–50× slower here.)
#[inline(always)]
pub(crate) fn add_run<const T: usize>(total: &mut [f32; T], b0: usize, run: [f32; T]) {
    for t in 0..T {
        total[t] = if b0 == 0 { run[t] } else { total[t] + run[t] };
    }
}

/// The activation quantizer of an ISA.
pub(crate) trait QuantizeActs {
    /// [`crate::quant::quantize_activations_per`] over `nb` blocks of `block` values (a
    /// multiple of 32), bit for bit.
    ///
    /// # Safety
    /// `x` and `qs` must be valid for `block·nb` elements, `d` for `nb`; the CPU must
    /// support the ISA.
    unsafe fn quantize(x: *const f32, qs: *mut i8, d: *mut f32, block: usize, nb: usize);
}

/// Calls `$body` with `R` and `T` const-bound for a group of `$tn` tokens. Row tiles
/// `($r1, $r2, $r3, $r4)` are used for 1, 2, 3 and 4 tokens (about 8 accumulators each).
macro_rules! with_tile_shape {
    ($tn:expr, [$r1:literal, $r2:literal, $r3:literal, $r4:literal], $f:ident::<$($g:ty),*>($($arg:expr),*)) => {
        match $tn {
            1 => $f::<$($g,)* $r1, 1>($($arg),*),
            2 => $f::<$($g,)* $r2, 2>($($arg),*),
            3 => $f::<$($g,)* $r3, 3>($($arg),*),
            _ => $f::<$($g,)* $r4, 4>($($arg),*),
        }
    };
}

/// The float-weight driver: row blocks, then token groups of up to [`MAX_T`], then row
/// tiles within the block.
///
/// # Safety
/// The CPU must support `K`'s ISA. Shapes are checked here.
#[inline(always)]
pub(crate) unsafe fn float_matmul<W, K: FloatTile<W>>(job: &MatmulJob<'_, W>, out: &mut [f32]) {
    job.check(1, out.len());
    let rb = row_block(job.count, job.cols * core::mem::size_of::<W>(), job.tokens);
    for rows in row_blocks(job.count, rb) {
        let mut t0 = 0;
        while t0 < job.tokens {
            let tn = (job.tokens - t0).min(MAX_T);
            // SAFETY: shapes were checked above; the ISA is the caller's promise.
            unsafe { with_tile_shape!(tn, [8, 4, 2, 2], float_rows::<W, K>(job, out, t0, rows.clone())) };
            t0 += tn;
        }
    }
}

/// Row tiles of `R` rows (then single rows) over output rows `rows`, for tokens
/// `t0..t0 + T`.
///
/// # Safety
/// `job` satisfies [`MatmulJob::check`] for `out`, `t0 + T <= tokens`,
/// `rows.end <= count`, and the CPU supports `K`'s ISA.
#[inline(always)]
unsafe fn float_rows<W, K: FloatTile<W>, const R: usize, const T: usize>(
    job: &MatmulJob<'_, W>,
    out: &mut [f32],
    t0: usize,
    rows: Range<usize>,
) {
    let MatmulJob { w, cols, x, first, count, .. } = *job;
    let mut xs = [core::ptr::null::<f32>(); T];
    for t in 0..T {
        xs[t] = x[(t0 + t) * cols..].as_ptr();
    }
    let mut i = rows.start;
    while i < rows.end {
        if i + R <= rows.end {
            let mut ws = [core::ptr::null::<W>(); R];
            for r in 0..R {
                ws[r] = w[(first + i + r) * cols..].as_ptr();
            }
            // SAFETY: rows `first + i .. first + i + R` and tokens `t0 .. t0 + T` are inside
            // the checked shapes, so every pointer is valid for `cols` elements.
            let res = unsafe { K::tile::<R, T>(ws, xs, cols) };
            for r in 0..R {
                for t in 0..T {
                    out[(t0 + t) * count + i + r] = res[r][t];
                }
            }
            i += R;
        } else {
            // SAFETY: as above, for the single row `first + i`.
            let res = unsafe { K::tile::<1, T>([w[(first + i) * cols..].as_ptr()], xs, cols) };
            for t in 0..T {
                out[(t0 + t) * count + i] = res[0][t];
            }
            i += 1;
        }
    }
}

/// The integer-path driver for block weights. Per group of up to [`SUPER_T`] tokens
/// and per activation panel of [`PANEL`] columns, the activations are quantized once;
/// then row blocks × token groups of up to [`MAX_T`] × row tiles sweep the panel. The
/// first panel writes `out`, later ones add to it. One token over 2 to [`SUPER_T`]
/// panels is one pass per row instead ([`wide_decode`]), with the same results.
///
/// # Safety
/// The CPU must support `K`'s ISA. Shapes are checked here.
#[inline(always)]
pub(crate) unsafe fn quant_matmul_int<W, K: QuantTile<W> + QuantizeActs>(job: &MatmulJob<'_, W>, out: &mut [f32]) {
    job.check(QK, out.len());
    let nb = job.cols / QK;
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let mut acts = ActPanel::new();
    if wide_decode(job.tokens, nb, PANEL / QK) {
        // SAFETY: the ISA is the caller's promise; the row spans at most `SUPER_T` panels.
        unsafe { acts.quantize_wide::<K>(QK, &job.x[..job.cols]) };
        let whole = Panel { acts: &acts, t0: 0, b0: 0, pb: nb, nb };
        // SAFETY: shapes were checked above, the whole row was just quantized, and the ISA
        // is the caller's promise.
        unsafe { quant_rows_int::<W, K, 1>(job, out, &whole, 0..job.count) };
        return;
    }
    let mut s0 = 0;
    while s0 < job.tokens {
        let sn = (job.tokens - s0).min(SUPER_T);
        let mut b0 = 0;
        while b0 < nb {
            let pb = (nb - b0).min(PANEL / QK);
            for t in 0..sn {
                let src = &job.x[(s0 + t) * job.cols + b0 * QK..][..pb * QK];
                // SAFETY: the ISA is the caller's promise.
                unsafe { acts.quantize::<K>(t, QK, src) };
            }
            let rb = row_block(job.count, pb * core::mem::size_of::<W>(), sn);
            for rows in row_blocks(job.count, rb) {
                let panel = Panel { acts: &acts, t0: s0, b0, pb, nb };
                // SAFETY: shapes were checked above, the panel's `sn` tokens were just
                // written, and the ISA is the caller's promise.
                unsafe { with_token_count!(sn, quant_rows_int::<W, K>(job, out, &panel, rows)) };
            }
            b0 += pb;
        }
        s0 += sn;
    }
}

/// One quantized activation panel: tokens `t0..` (buffer tokens `0..`), weight units
/// (blocks or super-blocks) `b0..b0 + pb` of `nb` per row; for [`wide_decode`], one
/// token's whole row (`pb = nb`, several panels). Shared with the K-quant driver.
struct Panel<'a> {
    acts: &'a ActPanel,
    t0: usize,
    b0: usize,
    pb: usize,
    nb: usize,
}

impl Panel<'_> {
    /// The store for output `(row i0 + i, token t)` of a call with `count` rows: the first
    /// panel of a row writes it, later panels add their partial sums.
    #[inline(always)]
    fn writer<'o>(&self, out: &'o mut [f32], count: usize, i0: usize) -> impl FnMut(usize, usize, f32) + 'o {
        let (t0, first_panel) = (self.t0, self.b0 == 0);
        move |i, t, v| {
            let o = &mut out[(t0 + t) * count + i0 + i];
            *o = if first_panel { v } else { *o + v };
        }
    }
}

/// Rows `rows` of the call against the panel's `T` tokens, through [`QuantTile::int_rows`].
///
/// # Safety
/// As [`quant_matmul_int`]; `p` describes a quantized panel of `T` initialised tokens;
/// `rows.end <= count`.
#[inline(always)]
unsafe fn quant_rows_int<W, K: QuantTile<W>, const T: usize>(
    job: &MatmulJob<'_, W>,
    out: &mut [f32],
    p: &Panel<'_>,
    rows: Range<usize>,
) {
    let (xq, xd) = p.acts.tokens::<T>(0);
    let mut store = p.writer(out, job.count, rows.start);
    let w0 = job.w[(job.first + rows.start) * p.nb + p.b0..].as_ptr();
    // SAFETY: rows `first + rows` are inside the checked matrix, each with `pb` blocks
    // left from block `b0`; the panel holds `T` tokens' `pb` blocks.
    unsafe { K::int_rows::<T>(w0, p.nb, rows.len(), xq, xd, p.pb, PANEL / QK, &mut store) };
}

/// The dequantize-path driver for block weights: row blocks, token groups of up to
/// [`MAX_T`], row tiles over whole rows.
///
/// # Safety
/// The CPU must support `K`'s ISA. Shapes are checked here.
#[inline(always)]
pub(crate) unsafe fn quant_matmul_deq<W, K: QuantTile<W>>(job: &MatmulJob<'_, W>, out: &mut [f32]) {
    job.check(QK, out.len());
    let rb = row_block(job.count, job.cols / QK * core::mem::size_of::<W>(), job.tokens);
    for rows in row_blocks(job.count, rb) {
        let mut t0 = 0;
        while t0 < job.tokens {
            let tn = (job.tokens - t0).min(MAX_T);
            // SAFETY: shapes were checked above; the ISA is the caller's promise.
            unsafe { with_tile_shape!(tn, [4, 4, 2, 2], quant_rows_deq::<W, K>(job, out, t0, rows.clone())) };
            t0 += tn;
        }
    }
}

/// # Safety
/// As [`quant_matmul_deq`], with `t0 + T <= tokens` and `rows.end <= count`.
#[inline(always)]
unsafe fn quant_rows_deq<W, K: QuantTile<W>, const R: usize, const T: usize>(
    job: &MatmulJob<'_, W>,
    out: &mut [f32],
    t0: usize,
    rows: Range<usize>,
) {
    let MatmulJob { w, cols, x, first, count, .. } = *job;
    let nb = cols / QK;
    let mut xs = [core::ptr::null::<f32>(); T];
    for t in 0..T {
        xs[t] = x[(t0 + t) * cols..].as_ptr();
    }
    let mut i = rows.start;
    while i < rows.end {
        if i + R <= rows.end {
            let mut ws = [core::ptr::null::<W>(); R];
            for r in 0..R {
                ws[r] = w[(first + i + r) * nb..].as_ptr();
            }
            // SAFETY: every row pointer has `nb` blocks and every token pointer `cols` floats.
            let res = unsafe { K::deq_tile::<R, T>(ws, xs, nb) };
            for r in 0..R {
                for t in 0..T {
                    out[(t0 + t) * count + i + r] = res[r][t];
                }
            }
            i += R;
        } else {
            // SAFETY: as above, for the single row `first + i`.
            let res = unsafe { K::deq_tile::<1, T>([w[(first + i) * nb..].as_ptr()], xs, nb) };
            for t in 0..T {
                out[(t0 + t) * count + i] = res[0][t];
            }
            i += 1;
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn names(cpu: CpuFeatures) -> Vec<&'static str> {
        simd_sets(cpu).into_iter().flatten().map(|k| k.name).collect()
    }

    /// Each x86 set is handed out only with its features, the VNNI ones only with AVX2
    /// too, and the emulated set never before AVX2 (so it is never the best).
    #[test]
    fn each_x86_set_needs_its_features() {
        let none = CpuFeatures::baseline();
        assert!(names(none).is_empty());
        assert!(names(CpuFeatures { avx512_vnni: true, avx_vnni: true, ..none }).is_empty());
        let avx2 = CpuFeatures { avx2_fma_f16c: true, ..none };
        assert_eq!(names(avx2), ["x86_64-avx2", "x86_64-vnni-emulated"]);
        assert_eq!(
            names(CpuFeatures { avx_vnni: true, ..avx2 }),
            ["x86_64-avxvnni", "x86_64-avx2", "x86_64-vnni-emulated"]
        );
        assert_eq!(
            names(CpuFeatures { avx512_vnni: true, ..avx2 }),
            ["x86_64-avx512vnni", "x86_64-avx2", "x86_64-vnni-emulated"]
        );
    }
}
