//! The RWKV-7 forward pass over a chunk of tokens, without allocation.
//!
//! Everything except the WKV recurrence is batched over the chunk: the projections are
//! `[T, C]` matrix products and the norms and mixes run row by row. Decoding one token
//! is the same code with `T = 1`. With several threads, a chunk of at least two regions'
//! worth of tokens is cut into token regions (`regions`; one to four per thread), each
//! running the per-token work of its own tokens. The math follows the official
//! `rwkv` package (`RWKV_x070`), step for step.

use core::fmt;

use rwkv7_kernels::KernelSet;

use crate::model::{GROUP_NORM_EPS, HyperParams, LayerTensors, Model};
use crate::parallel::{self, Parallel, Sequential};
use crate::state::State;

mod regions;

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
/// Saturates at `usize::MAX` (no buffer of that size can be made) rather than wrapping.
pub fn scratch_len(model: &Model<'_>, tokens: usize) -> usize {
    tokens.saturating_mul(scratch_per_token(model.hparams())).saturating_add(EXTRA_ROWS * model.hparams().n_embd)
}

/// C-wide scratch rows beyond the per-token ones: a prefill chunk's region boundaries
/// (one per region), which also covers the rows decode's six mixes lack.
const EXTRA_ROWS: usize = MAX_REGIONS;
const _: () = assert!(EXTRA_ROWS >= DECODE_MIXES - 1);

/// Most regions a prefill chunk is cut into (more threads than this leave the rest idle
/// in the region steps).
const MAX_REGIONS: usize = 16;

/// Regions per thread a long enough chunk is cut into. The threads claim regions as they
/// finish one (the std pool does), so a thread slowed by a busy core takes fewer of them
/// instead of holding the others up at every join: with one region per thread, a
/// neighbour on one of two cores made every step wait for the slower half.
const REGIONS_PER_THREAD: usize = 4;

/// The fewest tokens a region gets when there are several per thread: one panel of the
/// integer kernels (they read each weight row once per 8 tokens), so smaller regions cost
/// no extra weight traffic.
const REGION_TOKENS: usize = 8;

/// Token regions for a chunk of `t` tokens on `threads` threads (1: no regions, the
/// chunk-wide path): a multiple of the thread count, up to [`REGIONS_PER_THREAD`] per thread
/// while each keeps [`REGION_TOKENS`] tokens, and never a region shorter than
/// `DECODE_MIXES` tokens (the buffers' layout needs that many).
fn region_count(threads: usize, t: usize) -> usize {
    let threads = threads.min(MAX_REGIONS);
    if threads <= 1 {
        return 1;
    }
    let per_thread = (t / (threads * REGION_TOKENS)).clamp(1, REGIONS_PER_THREAD.min(MAX_REGIONS / threads));
    (threads * per_thread).min(t / DECODE_MIXES)
}

/// f32s of scratch each token of a chunk takes: 14 C-wide rows (see `Buffers`), the four
/// LoRAs' hidden rows and the FFN's hidden row.
fn scratch_per_token(hp: &HyperParams) -> usize {
    14 * hp.n_embd + hp.rank_sum() + hp.ffn
}

/// The mixed inputs decode lerps at once (r, w, k, v, a, g); a chunk of more tokens mixes
/// one at a time, so [`scratch_len`] adds the rows a one-token chunk lacks.
const DECODE_MIXES: usize = 6;

/// The per-chunk working rows, carved out of the caller's scratch. The projections' outputs
/// lie back to back, so that decode can run those that read the same token as one split
/// ([`parallel::matvec_group`]): with `T = 1`, `proj` is `r|k|v|hw|ha|hg|hv` and
/// `lora_out` is `decay|a|g|v_gate`.
struct Buffers<'s> {
    /// Residual stream `[T, C]`.
    x: &'s mut [f32],
    /// Normalised input `[T, C]`.
    xn: &'s mut [f32],
    /// Token-shift difference `x_prev - x` `[T, C]`.
    sx: &'s mut [f32],
    /// Mixed input of the current projection `[T, C]`; decode's six mixes `[6, C]`.
    mixed: &'s mut [f32],
    /// `r`, `k`, `v` `[T, C]` each, then the LoRA hidden layers `[T, Dw]`, `[T, Da]`,
    /// `[T, Dg]`, `[T, Dv]`.
    proj: &'s mut [f32],
    /// The LoRAs' outputs `[T, C]` each: decay `w` (then `exp(-0.606531·σ(w))`), `a`, the
    /// gate `g` and the value-residual gate.
    lora_out: &'s mut [f32],
    kk: &'s mut [f32],
    /// Layer 0's value `[T, C]`, mixed into later layers' values.
    v_first: &'s mut [f32],
    /// Attention output / FFN output before the residual add `[T, C]`.
    out: &'s mut [f32],
    /// FFN hidden layer `[T, F]`.
    ffn: &'s mut [f32],
}

impl<'s> Buffers<'s> {
    fn new(scratch: &'s mut [f32], t: usize, hp: &HyperParams) -> Self {
        let c = hp.n_embd;
        let ([x, xn, sx], rest) = take_rows(scratch, t * c);
        let (mixed, rest) = rest.split_at_mut(t.max(DECODE_MIXES) * c);
        let (proj, rest) = rest.split_at_mut(t * (3 * c + hp.rank_sum()));
        let (lora_out, rest) = rest.split_at_mut(t * 4 * c);
        let ([kk, v_first, out], rest) = take_rows(rest, t * c);
        let (ffn, _) = rest.split_at_mut(t * hp.ffn);
        Buffers { x, xn, sx, mixed, proj, lora_out, kk, v_first, out, ffn }
    }
}

impl Buffers<'_> {
    /// The WKV recurrence's inputs for the buffers' first `t` tokens, and `mixed`, free
    /// by then, for its head-major output.
    fn wkv_inputs(&mut self, t: usize, c: usize) -> (WkvInputs<'_>, &mut [f32]) {
        let ([r, k, v], _) = take_rows(self.proj, t * c);
        let ([decay, a, _, _], _) = take_rows(self.lora_out, t * c);
        (WkvInputs { r, decay, k, v, kk: self.kk, a }, self.mixed)
    }
}

/// The first `N` rows of `len` floats of `buf`, and what follows them.
fn take_rows<const N: usize>(buf: &mut [f32], len: usize) -> ([&mut [f32]; N], &mut [f32]) {
    let mut rest = buf;
    let rows = core::array::from_fn(|_| {
        let (row, tail) = core::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        row
    });
    (rows, rest)
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
    let chunk = scratch.len().saturating_sub(scratch_len(model, 0)) / scratch_per_token(&hp);
    if chunk == 0 {
        return Err(ForwardError::ScratchTooSmall { needed: scratch_len(model, 1), found: scratch.len() });
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
    let regions = region_count(par.threads(), t);
    if regions > 1 {
        return regions::forward(model, kernels, par, state, tokens, scratch, logits, all_rows, regions);
    }
    let b = &mut Buffers::new(scratch, t, &hp);
    let g = model.globals();

    // x = LN0(emb[token]).
    for (i, &tok) in tokens.iter().enumerate() {
        embed_token(model, kernels, tok, &mut b.xn[i * c..(i + 1) * c], &mut b.x[i * c..(i + 1) * c]);
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

/// `x = LN0(emb[token])`, with `scratch` (C floats) for the embedding row.
fn embed_token(model: &Model<'_>, kernels: &KernelSet, token: u32, scratch: &mut [f32], x: &mut [f32]) {
    let g = model.globals();
    model.matrix(g.emb).row_to_f32(token as usize, scratch);
    kernels.layer_norm(scratch, model.vector(g.ln0_w), model.vector(g.ln0_b), model.hparams().ln_eps, x);
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
    time_mix_inputs(model, kernels, par, l, layer, x_prev, b, t, c);
    let (wkv_in, y_heads) = b.wkv_inputs(t, c);
    wkv_heads(kernels, par, wkv, &wkv_in, y_heads, t, hp.n_head, hp.head_size);
    heads_to_tokens(b.mixed, b.out, t, hp.n_head, hp.head_size);
    time_mix_output(model, kernels, par, layer, b, t, c);
}

/// TimeMix up to the WKV recurrence: the norm and token shift, the projections, then
/// `decay`, `a`, the value residual and the key preparation, in place in `b`.
fn time_mix_inputs(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    l: usize,
    layer: &LayerTensors,
    x_prev: &mut [f32],
    b: &mut Buffers<'_>,
    t: usize,
    c: usize,
) {
    let hp = model.hparams();
    let vec = |r| model.vector(r);
    norm_and_shift(kernels, b.x, vec(layer.ln1_w), vec(layer.ln1_b), hp.ln_eps, b.xn, b.sx, x_prev);
    projections(model, kernels, par, l, layer, b, t);
    let ([_, k, v], _) = take_rows(b.proj, t * c);
    let ([decay, a, _, v_gate], _) = take_rows(b.lora_out, t * c);

    // decay = exp(-0.606531 · σ(w0 + w)); a = σ(a0 + a); layer 0 keeps v as v_first,
    // later layers mix towards v_first by σ(v0 + v_gate).
    kernels.time_decay(vec(layer.w0), DECAY_SCALE, decay);
    kernels.bias_sigmoid(vec(layer.a0), a);
    if l == 0 {
        b.v_first.copy_from_slice(v);
    } else {
        kernels.value_residual(v, b.v_first, vec(layer.v0), v_gate);
    }

    // kk = L2-normalise_per_head(k · k_k); then k ← k · (1 + (a - 1) · k_a).
    kernels.key_prep(k, b.kk, a, vec(layer.k_k), vec(layer.k_a), hp.head_size, L2_NORM_EPS);
}

/// TimeMix after the WKV recurrence (whose output `y` is in `b.out`, token-major):
/// `y = GroupNorm(y) + (Σ_j r·k·r_k) · v` per head, then `x += W_o · (y · g)`.
fn time_mix_output(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    layer: &LayerTensors,
    b: &mut Buffers<'_>,
    t: usize,
    c: usize,
) {
    let hp = model.hparams();
    let n = hp.head_size;
    let vec = |r| model.vector(r);
    let ([r, k, v], _) = take_rows(b.proj, t * c);
    let ([_, _, g, _], _) = take_rows(b.lora_out, t * c);
    let (ln_w, ln_b, r_k) = (vec(layer.ln_x_w), vec(layer.ln_x_b), vec(layer.r_k));
    for i in 0..t {
        let row = i * c;
        kernels.group_norm(&mut b.out[row..row + c], ln_w, ln_b, n, GROUP_NORM_EPS);
        for h in 0..hp.n_head {
            let s = row + h * n;
            let bonus: f32 = (0..n).map(|j| r[s + j] * k[s + j] * r_k[h * n + j]).sum();
            for j in 0..n {
                b.out[s + j] += bonus * v[s + j];
            }
        }
    }
    for i in 0..t * c {
        b.mixed[i] = b.out[i] * g[i];
    }
    parallel::matmul(par, kernels, &model.matrix(layer.output), &b.mixed[..t * c], b.out, t);
    b.x.iter_mut().zip(b.out.iter()).for_each(|(x, o)| *x += o);
}

/// TimeMix's projections: `r`, `k`, `v` into `b.proj`, the four LoRAs (before their
/// biases) into `b.lora_out`:
/// - `r = W_r · xr`, `k = W_k · xk`, `v = W_v · xv`;
/// - decay `w = w2 · tanh(w1 · xw)`, `a = a2 · (a1 · xa)`, `g = g2 · σ(g1 · xg)`;
/// - from layer 1 on, the value-residual gate `v2 · (v1 · xv)`.
///
/// A chunk runs one matrix product at a time. One token (decode) runs in two splits
/// instead of up to eleven: the products that read the mixed token (`W_r`, `W_k`, `W_v`
/// and the LoRAs' down projections) as one [`parallel::matvec_group`] into
/// `r|k|v|hw|ha|hg|hv`, then the LoRAs' up projections as another into
/// `decay|a|g|v_gate`. Each output is the same kernel call's either way, so the results
/// are bit-identical.
fn projections(
    model: &Model<'_>,
    kernels: &KernelSet,
    par: &dyn Parallel,
    l: usize,
    layer: &LayerTensors,
    b: &mut Buffers<'_>,
    t: usize,
) {
    let hp = model.hparams();
    let c = hp.n_embd;
    let mat = |r| model.matrix(r);
    if t == 1 {
        for (mix, mixed) in layer.mix.iter().zip(b.mixed.chunks_exact_mut(c)) {
            kernels.lerp(b.xn, b.sx, model.vector(*mix), mixed);
        }
        let mixed = |i: usize| &b.mixed[i * c..(i + 1) * c];
        // In the order of `layer.mix`.
        let [x_r, x_w, x_k, x_v, x_a, x_g] = core::array::from_fn(mixed);
        // Layer 0 has no value-residual LoRA: its products are the first six.
        let with_v = usize::from(l > 0);

        // The seventh entry is read only from layer 1 on (a placeholder at layer 0).
        let v1 = if l > 0 { layer.v1 } else { layer.g1 };
        let down = [
            (mat(layer.receptance), x_r),
            (mat(layer.key), x_k),
            (mat(layer.value), x_v),
            (mat(layer.w1), x_w),
            (mat(layer.a1), x_a),
            (mat(layer.g1), x_g),
            (mat(v1), x_v),
        ];
        let hidden_len = hp.decay_rank + hp.iclr_rank + hp.gate_rank + with_v * hp.value_rank;
        let proj = &mut b.proj[..3 * c + hidden_len];
        parallel::matvec_group(par, kernels, &down[..6 + with_v], proj);

        let (hw, rest) = proj[3 * c..].split_at_mut(hp.decay_rank);
        let (ha, rest) = rest.split_at_mut(hp.iclr_rank);
        let (hg, hv) = rest.split_at_mut(hp.gate_rank);
        kernels.tanh(hw);
        kernels.sigmoid(hg);
        let (v2, hv) = if l > 0 { (layer.v2, &*hv) } else { (layer.g2, &*hg) };
        let up = [(mat(layer.w2), &*hw), (mat(layer.a2), &*ha), (mat(layer.g2), &*hg), (mat(v2), hv)];
        parallel::matvec_group(par, kernels, &up[..3 + with_v], &mut b.lora_out[..(3 + with_v) * c]);
        return;
    }
    let [x_r, x_w, x_k, x_v, x_a, x_g] = layer.mix.map(|r| model.vector(r));
    let ([r, k, v], hidden) = take_rows(b.proj, t * c);
    let ([decay, a, g, v_gate], _) = take_rows(b.lora_out, t * c);
    let mixed = &mut b.mixed[..t * c];

    kernels.lerp(b.xn, b.sx, x_r, mixed);
    parallel::matmul(par, kernels, &mat(layer.receptance), mixed, r, t);
    kernels.lerp(b.xn, b.sx, x_w, mixed);
    lora(kernels, par, &mat(layer.w1), &mat(layer.w2), KernelSet::tanh, mixed, hidden, decay, t);
    kernels.lerp(b.xn, b.sx, x_k, mixed);
    parallel::matmul(par, kernels, &mat(layer.key), mixed, k, t);
    kernels.lerp(b.xn, b.sx, x_v, mixed);
    parallel::matmul(par, kernels, &mat(layer.value), mixed, v, t);
    if l > 0 {
        lora(kernels, par, &mat(layer.v1), &mat(layer.v2), identity, mixed, hidden, v_gate, t);
    }
    kernels.lerp(b.xn, b.sx, x_a, mixed);
    lora(kernels, par, &mat(layer.a1), &mat(layer.a2), identity, mixed, hidden, a, t);
    kernels.lerp(b.xn, b.sx, x_g, mixed);
    lora(kernels, par, &mat(layer.g1), &mat(layer.g2), KernelSet::sigmoid, mixed, hidden, g, t);
}

/// The per-token inputs of the WKV recurrence, `[T, C]` each.
struct WkvInputs<'a> {
    r: &'a [f32],
    decay: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    kk: &'a [f32],
    a: &'a [f32],
}

/// The WKV recurrence of one layer: sequential over the chunk's `t` tokens, independent
/// across heads, so the heads are split across `par` (each head's result is the same
/// whatever the split). Each part writes its heads' `y` head-major (`[head][t][n]`) into
/// `y_heads` ([`heads_to_tokens`] makes it token-major).
fn wkv_heads(
    kernels: &KernelSet,
    par: &dyn Parallel,
    state: &mut [f32],
    x: &WkvInputs<'_>,
    y_heads: &mut [f32],
    t: usize,
    n_head: usize,
    n: usize,
) {
    let heads_per_part = n_head.div_ceil(par.threads());
    let y_heads = &mut y_heads[..t * n_head * n];
    par.for_each_part_pair(state, heads_per_part * n * n, y_heads, heads_per_part * t * n, &|part, states, ys| {
        for (j, (head_state, y)) in states.chunks_mut(n * n).zip(ys.chunks_mut(t * n)).enumerate() {
            wkv_head_tokens(kernels, head_state, x, part * heads_per_part + j, n_head * n, n, y);
        }
    });
}

/// One head `h` of the recurrence over the tokens of `x` (rows of `c`), in order; `y` is
/// `[t][n]`.
fn wkv_head_tokens(
    kernels: &KernelSet,
    head_state: &mut [f32],
    x: &WkvInputs<'_>,
    h: usize,
    c: usize,
    n: usize,
    y: &mut [f32],
) {
    for (i, y) in y.chunks_exact_mut(n).enumerate() {
        let at = i * c + h * n..i * c + (h + 1) * n;
        kernels.wkv7_head(
            head_state,
            &x.r[at.clone()],
            &x.decay[at.clone()],
            &x.k[at.clone()],
            &x.v[at.clone()],
            &x.kk[at.clone()],
            &x.a[at],
            y,
        );
    }
}

/// `y_heads` (`[head][t][n]`) token-major into `out` (`[t][head·n]`).
fn heads_to_tokens(y_heads: &[f32], out: &mut [f32], t: usize, n_head: usize, n: usize) {
    let c = n_head * n;
    for h in 0..n_head {
        for i in 0..t {
            let s = i * c + h * n;
            out[s..s + n].copy_from_slice(&y_heads[(h * t + i) * n..][..n]);
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
    let mixed = &mut b.mixed[..b.xn.len()];
    kernels.lerp(b.xn, b.sx, model.vector(layer.ffn_x_k), mixed);
    parallel::matmul(par, kernels, &model.matrix(layer.ffn_key), mixed, b.ffn, t);
    kernels.relu_squared(b.ffn);
    parallel::matmul(par, kernels, &model.matrix(layer.ffn_value), b.ffn, b.out, t);
    b.x.iter_mut().zip(b.out.iter()).for_each(|(x, o)| *x += o);
}

#[cfg(test)]
mod tests {
    use super::region_count;

    #[test]
    fn regions_are_whole_panels_and_a_multiple_of_the_threads() {
        // (threads, tokens) → regions.
        for (threads, t, want) in [
            (1, 64, 1),   // one thread: the chunk-wide path
            (2, 10, 1),   // too short for two regions of 6 tokens
            (2, 13, 2),   // one region per thread, of 7 and 6 tokens
            (2, 31, 2),   // not yet two panels of 8 per thread
            (2, 32, 4),   // two panels per thread
            (2, 64, 8),   // the default chunk: four regions of 8 per thread
            (2, 512, 8),  // at most four per thread
            (3, 48, 6),   // two panels per thread
            (8, 64, 8),   // one panel per thread
            (16, 64, 10), // regions of at least 6 tokens
            (64, 512, 16),
        ] {
            assert_eq!(region_count(threads, t), want, "{threads} threads, {t} tokens");
        }
    }
}
