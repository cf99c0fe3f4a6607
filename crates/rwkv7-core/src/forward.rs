//! The RWKV-7 forward pass over a chunk of tokens, without allocation.
//!
//! Everything except the WKV recurrence is batched over the chunk: the projections are
//! `[T, C]` matrix products and the norms and mixes run row by row. Decoding one token
//! is the same code with `T = 1`. The math follows the official
//! `rwkv` package (`RWKV_x070`), step for step.

use core::fmt;

use rwkv7_kernels::KernelSet;

use crate::model::{GROUP_NORM_EPS, LayerTensors, Model};
use crate::parallel::{self, Parallel, Sequential};
use crate::state::State;

/// `exp(-0.5)` rounded as the official package writes it (`0.606531`, f32 bits
/// 0x3f1b459e): `decay = exp(-0.606531 · σ(w))`. fla's exact constant differs by 6 ULP;
/// we follow the official implementation.
const DECAY_SCALE: f32 = 0.606531;
/// `F.normalize`'s denominator clamp for the per-head L2 norm of `k·k_k`.
const L2_NORM_EPS: f32 = 1e-12;

/// Which logits the caller wants.
pub enum Logits<'o> {
    /// None (e.g. feeding a prompt whose continuation is sampled later).
    None,
    /// The last token's logits: `V` floats.
    Last(&'o mut [f32]),
    /// Every token's logits: `T × V` floats, row-major, in input order.
    All(&'o mut [f32]),
}

/// Why a forward call was refused. The state is untouched when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The state buffer has the wrong length for this model.
    StateSize {
        /// Expected f32 count.
        expected: usize,
        /// Given f32 count.
        found: usize,
    },
    /// The scratch buffer cannot hold even one token.
    ScratchTooSmall {
        /// f32s needed for one token.
        needed: usize,
        /// f32s given.
        found: usize,
    },
    /// The logits buffer has the wrong length.
    LogitsSize {
        /// Expected f32 count.
        expected: usize,
        /// Given f32 count.
        found: usize,
    },
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ForwardError::TokenOutOfRange { token, vocab } => {
                write!(f, "token id {token} is out of range (vocabulary size {vocab})")
            }
            ForwardError::StateSize { expected, found } => {
                write!(f, "state holds {found} floats, this model needs {expected}")
            }
            ForwardError::ScratchTooSmall { needed, found } => {
                write!(f, "scratch holds {found} floats, one token needs {needed}")
            }
            ForwardError::LogitsSize { expected, found } => {
                write!(f, "logits buffer holds {found} floats, expected {expected}")
            }
        }
    }
}

impl core::error::Error for ForwardError {}

/// f32s of scratch needed to process `tokens` tokens per chunk.
pub fn scratch_len(model: &Model<'_>, tokens: usize) -> usize {
    let hp = model.hparams();
    // 13 C-wide rows (see `Buffers`), one LoRA-hidden row and one FFN-hidden row per token.
    tokens * (13 * hp.n_embd + hp.max_rank() + hp.ffn)
}

/// The per-chunk working rows, carved out of the caller's scratch.
struct Buffers<'s> {
    /// Residual stream `[T, C]`.
    x: &'s mut [f32],
    /// Normalised input `[T, C]`.
    xn: &'s mut [f32],
    /// Token-shift difference `x_prev - x` `[T, C]`.
    sx: &'s mut [f32],
    /// Mixed input of the current projection `[T, C]`.
    mixed: &'s mut [f32],
    r: &'s mut [f32],
    k: &'s mut [f32],
    v: &'s mut [f32],
    /// Decay `w`, then `exp(-0.606531·σ(w))`.
    decay: &'s mut [f32],
    a: &'s mut [f32],
    g: &'s mut [f32],
    kk: &'s mut [f32],
    /// Layer 0's value `[T, C]`, mixed into later layers' values.
    v_first: &'s mut [f32],
    /// Attention output / FFN output before the residual add `[T, C]`.
    out: &'s mut [f32],
    /// LoRA hidden layer `[T, Dmax]` (used as `[T, D]` for each rank `D`).
    lora: &'s mut [f32],
    /// FFN hidden layer `[T, F]`.
    ffn: &'s mut [f32],
}

impl<'s> Buffers<'s> {
    fn new(scratch: &'s mut [f32], t: usize, c: usize, rank: usize, ffn: usize) -> Self {
        let (x, rest) = scratch.split_at_mut(t * c);
        let (xn, rest) = rest.split_at_mut(t * c);
        let (sx, rest) = rest.split_at_mut(t * c);
        let (mixed, rest) = rest.split_at_mut(t * c);
        let (r, rest) = rest.split_at_mut(t * c);
        let (k, rest) = rest.split_at_mut(t * c);
        let (v, rest) = rest.split_at_mut(t * c);
        let (decay, rest) = rest.split_at_mut(t * c);
        let (a, rest) = rest.split_at_mut(t * c);
        let (g, rest) = rest.split_at_mut(t * c);
        let (kk, rest) = rest.split_at_mut(t * c);
        let (v_first, rest) = rest.split_at_mut(t * c);
        let (out, rest) = rest.split_at_mut(t * c);
        let (lora, rest) = rest.split_at_mut(t * rank);
        let (ffn, _) = rest.split_at_mut(t * ffn);
        Buffers { x, xn, sx, mixed, r, k, v, decay, a, g, kk, v_first, out, lora, ffn }
    }
}

/// Runs `tokens` through the model, advancing `state`, in chunks as large as
/// `scratch` allows, and writes the logits the caller asked for. Single-threaded; see
/// [`forward_parallel`].
pub fn forward(
    model: &Model<'_>,
    kernels: &KernelSet,
    state: &mut State<'_>,
    tokens: &[u32],
    scratch: &mut [f32],
    logits: Logits<'_>,
) -> Result<(), ForwardError> {
    forward_parallel(model, kernels, &Sequential, state, tokens, scratch, logits)
}

/// [`forward`] with the large matrix products split across `par` (bit-identical results
/// for any `par`; see [`crate::parallel`]).
pub fn forward_parallel(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    state: &mut State<'_>,
    tokens: &[u32],
    scratch: &mut [f32],
    mut logits: Logits<'_>,
) -> Result<(), ForwardError> {
    let hp = *model.hparams();
    let vocab = hp.vocab;
    if let Some(&token) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(ForwardError::TokenOutOfRange { token, vocab });
    }
    if state.as_slice().len() != hp.state_len() {
        return Err(ForwardError::StateSize { expected: hp.state_len(), found: state.as_slice().len() });
    }
    let per_token = scratch_len(model, 1);
    let chunk = scratch.len() / per_token;
    if chunk == 0 {
        return Err(ForwardError::ScratchTooSmall { needed: per_token, found: scratch.len() });
    }
    let expected = match &logits {
        Logits::None => None,
        Logits::Last(l) => Some((vocab, l.len())),
        Logits::All(l) => Some((tokens.len() * vocab, l.len())),
    };
    if let Some((expected, found)) = expected
        && expected != found
    {
        return Err(ForwardError::LogitsSize { expected, found });
    }
    let n_chunks = tokens.len().div_ceil(chunk);
    let all_rows = matches!(logits, Logits::All(_));
    for (i, part) in tokens.chunks(chunk).enumerate() {
        let out = match &mut logits {
            Logits::None => None,
            Logits::Last(l) => (i + 1 == n_chunks).then_some(&mut **l),
            Logits::All(l) => Some(&mut l[i * chunk * vocab..(i * chunk + part.len()) * vocab]),
        };
        forward_chunk(model, kernels, par, state, part, scratch, out, all_rows);
    }
    Ok(())
}

/// One chunk of `T` tokens. Inputs are validated by [`forward`].
fn forward_chunk(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    state: &mut State<'_>,
    tokens: &[u32],
    scratch: &mut [f32],
    logits: Option<&mut [f32]>,
    all_rows: bool,
) {
    let hp = *model.hparams();
    let (t, c) = (tokens.len(), hp.n_embd);
    let b = &mut Buffers::new(scratch, t, c, hp.max_rank(), hp.ffn);
    let g = model.globals();

    // x = LN0(emb[token]).
    let emb = model.matrix(g.emb);
    let (ln0_w, ln0_b) = (model.vector(g.ln0_w), model.vector(g.ln0_b));
    for (i, &tok) in tokens.iter().enumerate() {
        emb.row_to_f32(tok as usize, &mut b.xn[i * c..(i + 1) * c]);
        kernels.layer_norm(&b.xn[i * c..(i + 1) * c], ln0_w, ln0_b, hp.ln_eps, &mut b.x[i * c..(i + 1) * c]);
    }

    for (l, layer) in model.layers().iter().enumerate() {
        let ls = state.layer(l);
        time_mix(model, kernels, par, l, layer, ls.att_x_prev, ls.wkv, b, t, c);
        channel_mix(model, kernels, par, layer, ls.ffn_x_prev, b, t);
    }

    let Some(logits) = logits else { return };
    // Only the rows the caller wants go through ln_out and the head.
    let first = if all_rows { 0 } else { t - 1 };
    let rows = t - first;
    let (w, bias) = (model.vector(g.ln_out_w), model.vector(g.ln_out_b));
    for i in first..t {
        let dst = (i - first) * c;
        kernels.layer_norm(&b.x[i * c..(i + 1) * c], w, bias, hp.ln_eps, &mut b.xn[dst..dst + c]);
    }
    parallel::matmul(par, kernels, &model.matrix(g.head), &b.xn[..rows * c], logits, rows);
}

/// Row-wise LayerNorm of `x` into `out`, then the token shift:
/// `sx[t] = out[t-1] - out[t]`, with `out[-1]` taken from (and the last row stored to) `x_prev`.
fn norm_and_shift(
    kernels: &KernelSet,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    eps: f32,
    out: &mut [f32],
    sx: &mut [f32],
    x_prev: &mut [f32],
) {
    let c = x_prev.len();
    let t = x.len() / c;
    for i in 0..t {
        kernels.layer_norm(&x[i * c..(i + 1) * c], w, bias, eps, &mut out[i * c..(i + 1) * c]);
    }
    for i in 0..t {
        for j in 0..c {
            let prev = if i == 0 { x_prev[j] } else { out[(i - 1) * c + j] };
            sx[i * c + j] = prev - out[i * c + j];
        }
    }
    x_prev.copy_from_slice(&out[(t - 1) * c..t * c]);
}

/// A LoRA: `out[t] = up · act(down · x[t])` (+ `bias` if given), with `hidden` as
/// `[T, D]` scratch. `down` is `[D, C]`, `up` is `[C, D]`. `act` is an in-place kernel
/// (`KernelSet::tanh`, `KernelSet::sigmoid`) or [`identity`].
fn lora(
    kernels: &KernelSet,
    par: &dyn Parallel,
    down: &rwkv7_kernels::Matrix<'_>,
    up: &rwkv7_kernels::Matrix<'_>,
    act: fn(&KernelSet, &mut [f32]),
    x: &[f32],
    hidden: &mut [f32],
    out: &mut [f32],
    t: usize,
) {
    let hidden = &mut hidden[..t * down.rows()];
    parallel::matmul(par, kernels, down, x, hidden, t);
    act(kernels, hidden);
    parallel::matmul(par, kernels, up, hidden, out, t);
}

fn identity(_: &KernelSet, _: &mut [f32]) {}

/// TimeMix (the attention replacement) of one layer; adds its output to `b.x`.
fn time_mix(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    l: usize,
    layer: &LayerTensors,
    x_prev: &mut [f32],
    wkv: &mut [f32],
    b: &mut Buffers<'_>,
    t: usize,
    c: usize,
) {
    let hp = model.hparams();
    let vec = |r| model.vector(r);
    let mat = |r| model.matrix(r);
    norm_and_shift(kernels, b.x, vec(layer.ln1_w), vec(layer.ln1_b), hp.ln_eps, b.xn, b.sx, x_prev);
    let [x_r, x_w, x_k, x_v, x_a, x_g] = layer.mix.map(vec);

    // r = W_r · xr
    kernels.lerp(b.xn, b.sx, x_r, b.mixed);
    parallel::matmul(par, kernels, &mat(layer.receptance), b.mixed, b.r, t);

    // decay = exp(-0.606531 · σ(w0 + w2 · tanh(w1 · xw)))
    kernels.lerp(b.xn, b.sx, x_w, b.mixed);
    lora(kernels, par, &mat(layer.w1), &mat(layer.w2), KernelSet::tanh, b.mixed, b.lora, b.decay, t);
    kernels.time_decay(vec(layer.w0), DECAY_SCALE, b.decay);

    // k = W_k · xk
    kernels.lerp(b.xn, b.sx, x_k, b.mixed);
    parallel::matmul(par, kernels, &mat(layer.key), b.mixed, b.k, t);

    // v = W_v · xv; layer 0 keeps it as v_first, later layers mix towards v_first by
    // σ(v0 + v2 · (v1 · xv)).
    kernels.lerp(b.xn, b.sx, x_v, b.mixed);
    parallel::matmul(par, kernels, &mat(layer.value), b.mixed, b.v, t);
    if l == 0 {
        b.v_first.copy_from_slice(b.v);
    } else {
        lora(kernels, par, &mat(layer.v1), &mat(layer.v2), identity, b.mixed, b.lora, b.out, t);
        kernels.value_residual(b.v, b.v_first, vec(layer.v0), b.out);
    }

    // a = σ(a0 + a2 · (a1 · xa))
    kernels.lerp(b.xn, b.sx, x_a, b.mixed);
    lora(kernels, par, &mat(layer.a1), &mat(layer.a2), identity, b.mixed, b.lora, b.a, t);
    kernels.bias_sigmoid(vec(layer.a0), b.a);

    // g = g2 · σ(g1 · xg)
    kernels.lerp(b.xn, b.sx, x_g, b.mixed);
    lora(kernels, par, &mat(layer.g1), &mat(layer.g2), KernelSet::sigmoid, b.mixed, b.lora, b.g, t);

    // kk = L2-normalise_per_head(k · k_k); then k ← k · (1 + (a - 1) · k_a).
    let n = hp.head_size;
    kernels.key_prep(b.k, b.kk, b.a, vec(layer.k_k), vec(layer.k_a), n, L2_NORM_EPS);

    wkv_heads(kernels, par, wkv, b, t, hp.n_head, n);

    // y = GroupNorm(y) + (Σ_j r·k·r_k) · v per head; then out = W_o · (y · g).
    let (ln_w, ln_b, r_k) = (vec(layer.ln_x_w), vec(layer.ln_x_b), vec(layer.r_k));
    for i in 0..t {
        let row = i * c;
        kernels.group_norm(&mut b.out[row..row + c], ln_w, ln_b, n, GROUP_NORM_EPS);
        for h in 0..hp.n_head {
            let s = row + h * n;
            let bonus: f32 = (0..n).map(|j| b.r[s + j] * b.k[s + j] * r_k[h * n + j]).sum();
            for j in 0..n {
                b.out[s + j] += bonus * b.v[s + j];
            }
        }
    }
    for i in 0..t * c {
        b.mixed[i] = b.out[i] * b.g[i];
    }
    parallel::matmul(par, kernels, &mat(layer.output), b.mixed, b.out, t);
    b.x.iter_mut().zip(b.out.iter()).for_each(|(x, o)| *x += o);
}

/// The WKV recurrence of one layer: sequential over the chunk's `t` tokens, independent
/// across heads, so the heads are split across `par` (each head's result is the same
/// whatever the split). Each part writes its heads' `y` head-major (`[head][t][n]`) into
/// `b.mixed` (free until the output gate); `y` is then copied token-major into `b.out`.
fn wkv_heads(
    kernels: &KernelSet,
    par: &dyn Parallel,
    state: &mut [f32],
    b: &mut Buffers<'_>,
    t: usize,
    n_head: usize,
    n: usize,
) {
    let c = n_head * n;
    let heads_per_part = n_head.div_ceil(par.threads());
    let y_heads = &mut b.mixed[..t * c];
    let (r, decay, k, v, kk, a) = (&*b.r, &*b.decay, &*b.k, &*b.v, &*b.kk, &*b.a);
    par.for_each_part_pair(state, heads_per_part * n * n, y_heads, heads_per_part * t * n, &|part, states, ys| {
        for (j, (head_state, y)) in states.chunks_mut(n * n).zip(ys.chunks_mut(t * n)).enumerate() {
            let h = part * heads_per_part + j;
            for i in 0..t {
                let s = i * c + h * n;
                let at = s..s + n;
                kernels.wkv7_head(
                    head_state,
                    &r[at.clone()],
                    &decay[at.clone()],
                    &k[at.clone()],
                    &v[at.clone()],
                    &kk[at.clone()],
                    &a[at],
                    &mut y[i * n..(i + 1) * n],
                );
            }
        }
    });
    for h in 0..n_head {
        for i in 0..t {
            let s = i * c + h * n;
            b.out[s..s + n].copy_from_slice(&b.mixed[(h * t + i) * n..][..n]);
        }
    }
}

/// ChannelMix (the FFN) of one layer: `x += W_v · relu(W_k · lerp(xf, x_prev, x_k))²`.
fn channel_mix(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    layer: &LayerTensors,
    x_prev: &mut [f32],
    b: &mut Buffers<'_>,
    t: usize,
) {
    let eps = model.hparams().ln_eps;
    norm_and_shift(kernels, b.x, model.vector(layer.ln2_w), model.vector(layer.ln2_b), eps, b.xn, b.sx, x_prev);
    kernels.lerp(b.xn, b.sx, model.vector(layer.ffn_x_k), b.mixed);
    parallel::matmul(par, kernels, &model.matrix(layer.ffn_key), b.mixed, b.ffn, t);
    kernels.relu_squared(b.ffn);
    parallel::matmul(par, kernels, &model.matrix(layer.ffn_value), b.ffn, b.out, t);
    b.x.iter_mut().zip(b.out.iter()).for_each(|(x, o)| *x += o);
}
