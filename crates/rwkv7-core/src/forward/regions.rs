//! Prefill by token regions: a chunk's tokens are cut into contiguous regions (one to
//! four per thread, `region_count`), and the threads take regions as they finish one,
//! running everything that is per token (norms, token shifts, mixes, every matrix
//! product, the LoRAs' activations and the other elementwise steps) for it. Only the WKV
//! recurrence, sequential over tokens, is split by heads (as many parts as regions)
//! across all regions. A layer then costs four splits ([`Parallel::run_tasks`]) and no
//! single-threaded step larger than a few C-wide rows, where the chunk-wide path makes a
//! split per matrix product (fifteen a layer) with the elementwise steps between them on
//! one thread while the others wait.
//!
//! Results are bit-identical to the chunk-wide path: every step is per token, the matrix
//! kernels give each `(token, row)` the same operations whatever the token count of the
//! call, and the token shift at a region's first token reads the previous region's last
//! normalised row, computed by the same LayerNorm kernel on the same input (a *boundary*
//! row, made before the split).

use rwkv7_kernels::KernelSet;

use super::{
    Buffers, MAX_REGIONS, WkvInputs, embed_token, heads_to_tokens, scratch_per_token, time_mix_inputs, time_mix_output,
    wkv_head_tokens,
};
use crate::model::{Model, TensorRef};
use crate::parallel::{self, Parallel, Sequential};
use crate::state::State;

/// The work of one region in a split: its index, its buffers and its C-wide boundary row
/// (or the slice of the caller's output that belongs to it).
type RegionTask<'a> = dyn Fn(usize, &mut Buffers<'_>, &mut [f32]) + Sync + 'a;

/// [`super::forward_chunk`] for `regions ≥ 2` regions of at least `DECODE_MIXES` tokens.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    state: &mut State<'_>,
    tokens: &[u32],
    scratch: &mut [f32],
    logits: Option<&mut [f32]>,
    all_rows: bool,
    regions: usize,
) {
    let hp = *model.hparams();
    let (t, c) = (tokens.len(), hp.n_embd);
    // Region r holds tokens `starts[r]..starts[r + 1]`, the first `t % regions` one more.
    let mut starts = [0usize; MAX_REGIONS + 1];
    for r in 0..regions {
        starts[r + 1] = starts[r] + t / regions + usize::from(r < t % regions);
    }
    let (mut area, extra) = scratch.split_at_mut(t * scratch_per_token(&hp));
    let bounds = &mut extra[..regions * c];
    let mut bufs: [Option<Buffers<'_>>; MAX_REGIONS] = core::array::from_fn(|_| None);
    for (r, slot) in bufs.iter_mut().enumerate().take(regions) {
        let n = starts[r + 1] - starts[r];
        let (own, rest) = core::mem::take(&mut area).split_at_mut(n * scratch_per_token(&hp));
        area = rest;
        *slot = Some(Buffers::new(own, n, &hp));
    }
    let bufs = &mut bufs[..regions];

    // x = LN0(emb[token]), each region its own tokens.
    for_each_region(par, bufs, bounds, c, &|r, b, _| {
        for (i, &tok) in tokens[starts[r]..starts[r + 1]].iter().enumerate() {
            embed_token(model, kernels, tok, &mut b.xn[i * c..(i + 1) * c], &mut b.x[i * c..(i + 1) * c]);
        }
    });

    for (l, layer) in model.layers().iter().enumerate() {
        let ls = state.layer(l);
        let n = |b: &Buffers<'_>| b.x.len() / c;
        boundaries(model, kernels, bufs, bounds, ls.att_x_prev, (layer.ln1_w, layer.ln1_b));
        for_each_region(par, bufs, bounds, c, &|_, b, x_prev| {
            time_mix_inputs(model, kernels, &Sequential, l, layer, x_prev, b, n(b), c);
        });
        ls.att_x_prev.copy_from_slice(&bounds[(regions - 1) * c..]);
        wkv(kernels, par, ls.wkv, bufs, hp.n_head, hp.head_size);
        for_each_region(par, bufs, bounds, c, &|_, b, _| {
            heads_to_tokens(b.mixed, b.out, n(b), hp.n_head, hp.head_size);
            time_mix_output(model, kernels, &Sequential, layer, b, n(b), c);
        });
        boundaries(model, kernels, bufs, bounds, ls.ffn_x_prev, (layer.ln2_w, layer.ln2_b));
        for_each_region(par, bufs, bounds, c, &|_, b, x_prev| {
            super::channel_mix(model, kernels, &Sequential, layer, x_prev, b, n(b));
        });
        ls.ffn_x_prev.copy_from_slice(&bounds[(regions - 1) * c..]);
    }

    let Some(logits) = logits else { return };
    let g = model.globals();
    let (w, bias, head) = (model.vector(g.ln_out_w), model.vector(g.ln_out_b), model.matrix(g.head));
    if all_rows {
        // Each region its own rows of logits.
        let ends: [usize; MAX_REGIONS] = core::array::from_fn(|r| starts[(r + 1).min(regions)] * hp.vocab);
        for_each_region_ranges(par, bufs, logits, &ends[..regions], &|_, b, out| {
            let rows = b.x.len() / c;
            for i in 0..rows {
                kernels.layer_norm(&b.x[i * c..(i + 1) * c], w, bias, hp.ln_eps, &mut b.xn[i * c..(i + 1) * c]);
            }
            kernels.matmul(&head, &b.xn[..rows * c], out, rows);
        });
    } else {
        let last = bufs[regions - 1].as_mut().expect("every region has buffers");
        let i = last.x.len() / c - 1;
        kernels.layer_norm(&last.x[i * c..(i + 1) * c], w, bias, hp.ln_eps, &mut last.xn[..c]);
        parallel::matmul(par, kernels, &head, &last.xn[..c], logits, 1);
    }
}

/// The boundary rows before a token-shift step: row 0 is the state's previous token
/// (`x_prev`), row `r` the normalised last token of region `r - 1` (LayerNorm `ln` of its
/// residual stream), what that region computes for the same row during the step.
fn boundaries(
    model: &Model<'_>,
    kernels: &KernelSet,
    bufs: &[Option<Buffers<'_>>],
    bounds: &mut [f32],
    x_prev: &[f32],
    (ln_w, ln_b): (TensorRef, TensorRef),
) {
    let c = x_prev.len();
    let (w, b) = (model.vector(ln_w), model.vector(ln_b));
    bounds[..c].copy_from_slice(x_prev);
    for (prev, row) in bufs.iter().zip(bounds.chunks_exact_mut(c).skip(1)) {
        let x = &prev.as_ref().expect("every region has buffers").x;
        kernels.layer_norm(&x[x.len() - c..], w, b, model.hparams().ln_eps, row);
    }
}

/// Runs `task(r, buffers, row)` for every region `r`, concurrently, `row` being the
/// region's C-wide row of `rows`.
fn for_each_region(
    par: &dyn Parallel,
    bufs: &mut [Option<Buffers<'_>>],
    rows: &mut [f32],
    c: usize,
    task: &RegionTask<'_>,
) {
    let ends: [usize; MAX_REGIONS] = core::array::from_fn(|r| (r + 1) * c);
    for_each_region_ranges(par, bufs, rows, &ends[..bufs.len()], task);
}

/// Runs `task(r, buffers, part)` for every region `r`, concurrently, `part` being
/// `out[ends[r - 1]..ends[r]]` (from 0 for the first region).
fn for_each_region_ranges(
    par: &dyn Parallel,
    bufs: &mut [Option<Buffers<'_>>],
    out: &mut [f32],
    ends: &[usize],
    task: &RegionTask<'_>,
) {
    let count = bufs.len();
    let mut regions = bufs.iter_mut();
    let (mut rest, mut start) = (out, 0);
    let mut jobs: [_; MAX_REGIONS] = core::array::from_fn(|r| {
        let b = regions.next();
        let end = ends.get(r).copied().unwrap_or(start);
        let (part, tail) = core::mem::take(&mut rest).split_at_mut(end - start);
        (rest, start) = (tail, end);
        move || {
            if let Some(Some(b)) = b {
                task(r, b, part);
            }
        }
    });
    let mut tasks = jobs.each_mut().map(|job| job as &mut (dyn FnMut() + Send));
    par.run_tasks(&mut tasks[..count]);
}

/// The WKV recurrence of one layer over every region's tokens, in order, split by heads:
/// each part runs its heads through region 0's tokens, then region 1's, and so on, and
/// writes `y` head-major (`[head][t_r][n]`) into each region's `mixed` rows.
fn wkv(
    kernels: &KernelSet,
    par: &dyn Parallel,
    state: &mut [f32],
    bufs: &mut [Option<Buffers<'_>>],
    n_head: usize,
    n: usize,
) {
    let c = n_head * n;
    let count = bufs.len();
    // As many parts as regions (at most one head each), for threads to claim as regions.
    let heads_per_part = n_head.div_ceil(count.clamp(1, MAX_REGIONS));
    let parts = n_head.div_ceil(heads_per_part);
    let mut inputs: [Option<WkvInputs<'_>>; MAX_REGIONS] = core::array::from_fn(|_| None);
    // ys[p][r]: part p's heads in region r's `mixed`.
    let mut ys: [[Option<&mut [f32]>; MAX_REGIONS]; MAX_REGIONS] =
        core::array::from_fn(|_| core::array::from_fn(|_| None));
    for (r, b) in bufs.iter_mut().enumerate() {
        let b = b.as_mut().expect("every region has buffers");
        let t = b.x.len() / c;
        let (x, mixed) = b.wkv_inputs(t, c);
        inputs[r] = Some(x);
        for (p, y) in mixed[..t * c].chunks_mut(heads_per_part * t * n).enumerate() {
            ys[p][r] = Some(y);
        }
    }
    let inputs = &inputs[..count];
    let mut states = state.chunks_mut(heads_per_part * n * n);
    let mut ys = ys.into_iter();
    let mut jobs: [_; MAX_REGIONS] = core::array::from_fn(|p| {
        let (mut state, mut ys) = (states.next(), ys.next().unwrap_or_else(|| core::array::from_fn(|_| None)));
        move || {
            let Some(state) = state.as_deref_mut() else { return };
            for (j, head_state) in state.chunks_mut(n * n).enumerate() {
                for (x, y) in inputs.iter().flatten().zip(ys.iter_mut()) {
                    let Some(y) = y.as_deref_mut() else { continue };
                    let t = x.r.len() / c;
                    wkv_head_tokens(
                        kernels,
                        head_state,
                        x,
                        p * heads_per_part + j,
                        c,
                        n,
                        &mut y[j * t * n..(j + 1) * t * n],
                    );
                }
            }
        }
    });
    let mut tasks = jobs.each_mut().map(|job| job as &mut (dyn FnMut() + Send));
    par.run_tasks(&mut tasks[..parts]);
}
