//! The integer-path driver for the K-quant super-block types (Q4_K, Q5_K, Q6_K).
//!
//! Same loop structure and determinism contract as `quant_matmul_int` in `arch/mod.rs`
//! (token groups of [`SUPER_T`] quantized once per [`PANEL`] of columns, row blocks,
//! token groups of up to [`MAX_T`], row tiles), but a weight unit holds
//! [`KBlock::ELEMS`] = 256 columns instead of 32, so a panel is `PANEL / 256` = 16
//! super-blocks. Kept separate from the Q8_0/Q4_0 driver so both can be tuned
//! independently; the ISA files supply [`KTile`] micro-kernels.

use core::ops::Range;

use super::{ActPanel, MAX_T, PANEL, QuantizeActs, SUPER_T, row_block};
use crate::MatmulJob;
use crate::kquant::KBlock;

/// A K-quant micro-kernel: `R` rows × `T` tokens over `nb` super-blocks.
pub(crate) trait KTile<W> {
    /// `out[r][t] = Σ_g f32(isum_g)·(a·xd_t[g]) + f32(msum_g)·(b·xd_t[g])` over the `8·nb`
    /// groups of 32 columns, with `isum`/`msum` exactly [`KBlock::group_sums`] (the float
    /// sum may be reordered).
    ///
    /// # Safety
    /// Each `w[r]` must be valid for `nb` blocks, `xq[t]` for `256·nb` quants, `xd[t]` for
    /// `8·nb` scales; the CPU must support the ISA; quants must lie in `[-127, 127]`.
    unsafe fn int_tile<const R: usize, const T: usize>(
        w: [*const W; R],
        xq: [*const i8; T],
        xd: [*const f32; T],
        nb: usize,
    ) -> [[f32; T]; R];
}

/// The driver. The first panel writes `out`, later ones add to it.
///
/// # Safety
/// The CPU must support `K`'s ISA. Shapes are checked here.
#[inline(always)]
pub(crate) unsafe fn kquant_matmul_int<W: KBlock, K: KTile<W> + QuantizeActs>(job: &MatmulJob<'_, W>, out: &mut [f32]) {
    job.check(W::ELEMS, out.len());
    let nb = job.cols / W::ELEMS;
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let mut acts = ActPanel::new();
    let per_panel = PANEL / W::ELEMS;
    let mut s0 = 0;
    while s0 < job.tokens {
        let sn = (job.tokens - s0).min(SUPER_T);
        let mut b0 = 0;
        while b0 < nb {
            let pb = (nb - b0).min(per_panel);
            for t in 0..sn {
                let src = &job.x[(s0 + t) * job.cols + b0 * W::ELEMS..][..pb * W::ELEMS];
                // SAFETY: the ISA is the caller's promise.
                unsafe { acts.quantize::<K>(t, src) };
            }
            let rb = row_block(job.count, pb * core::mem::size_of::<W>(), sn);
            let mut i0 = 0;
            while i0 < job.count {
                let rows = i0..(i0 + rb).min(job.count);
                let mut t = 0;
                while t < sn {
                    let tn = (sn - t).min(MAX_T);
                    let p = KPanel { acts: &acts, t, t0: s0 + t, b0, pb, nb };
                    // SAFETY: shapes checked above, the panel's tokens were just written,
                    // and the ISA is the caller's promise.
                    unsafe {
                        match tn {
                            1 => rows_int::<W, K, 4, 1>(job, out, &p, rows.clone()),
                            2 => rows_int::<W, K, 4, 2>(job, out, &p, rows.clone()),
                            3 => rows_int::<W, K, 2, 3>(job, out, &p, rows.clone()),
                            _ => rows_int::<W, K, 2, 4>(job, out, &p, rows.clone()),
                        }
                    }
                    t += tn;
                }
                i0 = rows.end;
            }
            b0 += pb;
        }
        s0 += sn;
    }
}

/// A quantized panel: tokens `t0..` (buffer tokens `t..`), super-blocks `b0..b0 + pb`
/// of `nb` per row.
struct KPanel<'a> {
    acts: &'a ActPanel,
    t: usize,
    t0: usize,
    b0: usize,
    pb: usize,
    nb: usize,
}

/// # Safety
/// As [`kquant_matmul_int`]; `p` holds `T` initialised tokens; `rows.end <= count`.
#[inline(always)]
unsafe fn rows_int<W: KBlock, K: KTile<W>, const R: usize, const T: usize>(
    job: &MatmulJob<'_, W>,
    out: &mut [f32],
    p: &KPanel<'_>,
    rows: Range<usize>,
) {
    let (first, count) = (job.first, job.count);
    let (xq, xd) = p.acts.tokens::<T>(p.t);
    let mut store = |i: usize, t: usize, v: f32| {
        let o = &mut out[(p.t0 + t) * count + i];
        *o = if p.b0 == 0 { v } else { *o + v };
    };
    let mut i = rows.start;
    while i < rows.end {
        if i + R <= rows.end {
            let mut ws = [core::ptr::null::<W>(); R];
            for r in 0..R {
                ws[r] = job.w[(first + i + r) * p.nb + p.b0..].as_ptr();
            }
            // SAFETY: each row pointer starts at block `b0` of a checked row with `pb`
            // blocks left; the panel holds `pb` blocks per token.
            let res = unsafe { K::int_tile::<R, T>(ws, xq, xd, p.pb) };
            for r in 0..R {
                for t in 0..T {
                    store(i + r, t, res[r][t]);
                }
            }
            i += R;
        } else {
            let ws = [job.w[(first + i) * p.nb + p.b0..].as_ptr()];
            // SAFETY: as above, for the single row `first + i`.
            let res = unsafe { K::int_tile::<1, T>(ws, xq, xd, p.pb) };
            for t in 0..T {
                store(i, t, res[0][t]);
            }
            i += 1;
        }
    }
}
