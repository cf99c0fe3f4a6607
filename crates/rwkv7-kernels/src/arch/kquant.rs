//! The integer-path driver for the K-quant super-block types (Q4_K, Q5_K, Q6_K).
//!
//! Same activation panels and determinism contract as `quant_matmul_int` in
//! `arch/mod.rs`: per group of up to [`SUPER_T`] tokens and per [`PANEL`] of columns the
//! activations are quantized once, with one scale per super-block ([`KBlock::ELEMS`]
//! values); then every weight row of the call is multiplied
//! against all the group's tokens, one row at a time ([`KTile::int_rows`]; one token
//! over several panels: every row in one pass, `wide_decode` in `arch/mod.rs`). A weight
//! unit holds [`KBlock::ELEMS`] = 256 columns instead of 32, so a panel is
//! `PANEL / 256` = 16 super-blocks. One row at a time keeps a single linear stream
//! through the weights (decode is memory-bound, see [`super::PREFETCH_BYTES`]), and the
//! ISA can prepare the tokens' per-super-block activation terms once per call instead of
//! once per row tile. Kept separate from the Q8_0/Q4_0 driver so both can be tuned
//! independently; the ISA files supply [`KTile`] micro-kernels.

use super::{ActPanel, PANEL, Panel, QuantizeActs, SUPER_T, add_run, runs, store_row, wide_decode};
use crate::MatmulJob;
use crate::kquant::KBlock;

/// A K-quant micro-kernel: `R` rows × `T` tokens over `nb` super-blocks.
pub(crate) trait KTile<W> {
    /// `out[r][t] = Σ_b f32(isum_b)·(a·xd_t[b]) + f32(msum_b)·(m·xd_t[b])` over the `nb`
    /// super-blocks, with `isum`/`msum` exactly [`KBlock::block_sums`] (the float sum may
    /// be reordered, and split into exact integer partial sums).
    ///
    /// # Safety
    /// Each `w[r]` must be valid for `nb` blocks, `xq[t]` for `256·nb` quants, `xd[t]` for
    /// `nb` scales (one per super-block); the CPU must support the ISA; quants must lie
    /// in `[-127, 127]`.
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R];

    /// `n` rows against `T` tokens: `store(i, t, s)` for `i < n`, `t < T`, where `s` is
    /// the sum of row `w + i·stride` taken in runs of `panel` super-blocks (the last one
    /// shorter), each run through `int_tile::<1, T>`, the runs added by [`add_run`], bit
    /// for bit. An ISA may override it to prepare the tokens' activation terms once for
    /// all rows (the default runs the tile row by row, run by run).
    ///
    /// # Safety
    /// Rows `w + i·stride` for `i < n` valid for `nb` blocks, `panel ≥ 1`; otherwise as
    /// [`KTile::int_tile`].
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
        W: KBlock,
    {
        for i in 0..n {
            let row = w.wrapping_add(i * stride);
            let mut sums = [0.0; T];
            for (b0, b1) in runs(nb, panel) {
                let (xq, xd) = (xq.map(|p| p.wrapping_add(b0 * W::ELEMS)), xd.map(|p| p.wrapping_add(b0)));
                // SAFETY: forwarded contract, row `i`, super-blocks `b0..b1`.
                add_run(&mut sums, b0, unsafe { Self::int_tile::<1, T>([row.wrapping_add(b0)], xq, xd, b1 - b0)[0] });
            }
            store_row(i, sums, store);
        }
    }
}

/// The driver. The first panel writes `out`, later ones add to it; one token over 2 to
/// [`SUPER_T`] panels is one pass per row instead (`wide_decode`), with the same results.
///
/// # Safety
/// The CPU must support `K`'s ISA. Shapes are checked here.
#[inline(always)]
pub(crate) unsafe fn kquant_matmul_int<W: KBlock, K: KTile<W> + QuantizeActs>(job: &MatmulJob<'_, W>, out: &mut [f32]) {
    job.check(W::ELEMS, out.len());
    let nb = job.cols / W::ELEMS;
    if nb == 0 || job.count == 0 {
        out.fill(0.0);
        return;
    }
    let mut acts = ActPanel::new();
    let per_panel = PANEL / W::ELEMS;
    if wide_decode(job.tokens, nb, per_panel) {
        // SAFETY: the ISA is the caller's promise; the row spans at most `SUPER_T` panels.
        unsafe { acts.quantize_wide::<K>(W::ELEMS, &job.x[..job.cols]) };
        let whole = Panel { acts: &acts, t0: 0, b0: 0, pb: nb, nb };
        // SAFETY: shapes checked above, the whole row was just quantized, and the ISA is
        // the caller's promise.
        unsafe { rows_int::<W, K, 1>(job, out, &whole, 0..job.count) };
        return;
    }
    let mut s0 = 0;
    while s0 < job.tokens {
        let sn = (job.tokens - s0).min(SUPER_T);
        let mut b0 = 0;
        while b0 < nb {
            let pb = (nb - b0).min(per_panel);
            for t in 0..sn {
                let src = &job.x[(s0 + t) * job.cols + b0 * W::ELEMS..][..pb * W::ELEMS];
                // SAFETY: the ISA is the caller's promise.
                unsafe { acts.quantize::<K>(t, W::ELEMS, src) };
            }
            let p = Panel { acts: &acts, t0: s0, b0, pb, nb };
            // SAFETY: shapes checked above, the panel's `sn` tokens were just written, and
            // the ISA is the caller's promise.
            unsafe { with_token_count!(sn, rows_int::<W, K>(job, out, &p, 0..job.count)) };
            b0 += pb;
        }
        s0 += sn;
    }
}

/// Rows `rows` of the call against the panel's `T` tokens.
///
/// # Safety
/// As [`kquant_matmul_int`]; `p` holds `T` initialised tokens; `rows.end <= count`.
#[inline(always)]
unsafe fn rows_int<W: KBlock, K: KTile<W>, const T: usize>(
    job: &MatmulJob<'_, W>,
    out: &mut [f32],
    p: &Panel<'_>,
    rows: core::ops::Range<usize>,
) {
    let (xq, xd) = p.acts.tokens::<T>(0);
    let mut store = p.writer(out, job.count, rows.start);
    let w0 = job.w[(job.first + rows.start) * p.nb + p.b0..].as_ptr();
    // SAFETY: rows `first + rows` are inside the checked matrix, each with `pb` blocks
    // left from block `b0`; the panel holds `T` tokens' `pb` blocks.
    unsafe { K::int_rows::<T>(w0, p.nb, rows.len(), xq, xd, p.pb, PANEL / W::ELEMS, &mut store) };
}
