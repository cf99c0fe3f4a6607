//! The scalar reference kernels: plain index loops, written to be read.
//! Every SIMD kernel is tested against these, and they are the fallback on CPUs
//! without SIMD support (and on microcontrollers).
//!
//! Loop order: weight rows outside, tokens inside, so each weight row is read from
//! memory once per call and reused from cache for every token.

use half::{bf16, f16};

use crate::matrix::Matrix;
use crate::quant::{self, BlockQ4_0, BlockQ8_0, QK};
use crate::{KernelSet, MatmulJob, QuantMatmul, QuantPath, math};

/// The scalar kernel set.
pub(crate) const KERNELS: KernelSet = KernelSet {
    name: "scalar",
    f32: matmul_f32,
    f16: matmul_f16,
    bf16: matmul_bf16,
    // Measured (KERNELS.md): the integer path is faster for both block types.
    q8_0: QuantMatmul { integer: matmul_q8_0_int, dequantize: matmul_q8_0_deq, path: QuantPath::Integer },
    q4_0: QuantMatmul { integer: matmul_q4_0_int, dequantize: matmul_q4_0_deq, path: QuantPath::Integer },
    kq: crate::kquant::SCALAR,
    quantize_acts: quant::quantize_activations_per,
    wkv7_head: math::wkv7_head,
    layer_norm: math::layer_norm,
    group_norm: math::group_norm,
    exp: math::exp_slice,
    sigmoid: math::sigmoid_slice,
    tanh: math::tanh_slice,
    relu_squared: math::relu_squared,
    lerp: math::lerp,
    bias_sigmoid: math::bias_sigmoid,
    time_decay: math::time_decay,
    value_residual: math::value_residual,
    key_prep: math::key_prep,
};

/// `out[t][r - first] = Σ_c w[r][c] · x[t][c]` for `r` in `first..first + count`, any
/// weight type, with each type's default path of the scalar set.
///
/// Shapes: `w` is `rows × cols`, `x` is `tokens × cols`, `out` is `tokens × count`.
pub fn matmul(w: &Matrix<'_>, x: &[f32], out: &mut [f32], tokens: usize, first: usize, count: usize) {
    KERNELS.matmul_rows(w, x, out, tokens, first, count)
}

/// `Σ_i a[i]·b[i]`, summed left to right in f32.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Shared loop for the float types: `out[t][i] = Σ_c f32(w[first+i][c]) · x[t][c]`,
/// summed left to right in f32 (each product rounded, then added).
fn matmul_float<W: Copy>(job: &MatmulJob<'_, W>, out: &mut [f32], widen: fn(W) -> f32) {
    job.check(1, out.len());
    let MatmulJob { w, cols, x, tokens, first, count } = *job;
    for i in 0..count {
        let row = &w[(first + i) * cols..(first + i + 1) * cols];
        for t in 0..tokens {
            let xt = &x[t * cols..(t + 1) * cols];
            let mut acc = 0.0f32;
            for c in 0..cols {
                acc += widen(row[c]) * xt[c];
            }
            out[t * count + i] = acc;
        }
    }
}

/// F32 weights: `out[t][i] = Σ_c w[first+i][c] · x[t][c]`, left to right.
pub fn matmul_f32(job: &MatmulJob<'_, f32>, out: &mut [f32]) {
    matmul_float(job, out, |v| v)
}

/// F16 weights, widened exactly to f32; otherwise as [`matmul_f32`].
pub fn matmul_f16(job: &MatmulJob<'_, f16>, out: &mut [f32]) {
    matmul_float(job, out, f16::to_f32)
}

/// BF16 weights, widened exactly to f32; otherwise as [`matmul_f32`].
pub fn matmul_bf16(job: &MatmulJob<'_, bf16>, out: &mut [f32]) {
    matmul_float(job, out, bf16::to_f32)
}

/// Q8_0 weights, dequantize path: `out[t][i] = Σ_c (q[c]·d[c/32]) · x[t][c]`, each
/// element `q·d` rounded to f32 (exactly what `dequantize_row_q8_0` yields), then summed
/// left to right like [`matmul_f32`] over the dequantized matrix.
pub fn matmul_q8_0_deq(job: &MatmulJob<'_, BlockQ8_0>, out: &mut [f32]) {
    matmul_blocks_deq(job, out, |b, j| b.get(j))
}

/// Q4_0 weights, dequantize path: as [`matmul_q8_0_deq`] with element
/// `(nibble − 8) · d` (nibble order in [`BlockQ4_0`]).
pub fn matmul_q4_0_deq(job: &MatmulJob<'_, BlockQ4_0>, out: &mut [f32]) {
    matmul_blocks_deq(job, out, |b, j| b.get(j))
}

fn matmul_blocks_deq<W: Copy>(job: &MatmulJob<'_, W>, out: &mut [f32], elem: fn(&W, usize) -> f32) {
    job.check(QK, out.len());
    let MatmulJob { w, cols, x, tokens, first, count } = *job;
    let nb = cols / QK;
    for i in 0..count {
        let row = &w[(first + i) * nb..(first + i + 1) * nb];
        for t in 0..tokens {
            let xt = &x[t * cols..(t + 1) * cols];
            let mut acc = 0.0f32;
            for b in 0..nb {
                for j in 0..QK {
                    acc += elem(&row[b], j) * xt[b * QK + j];
                }
            }
            out[t * count + i] = acc;
        }
    }
}

/// Columns of activations the scalar integer path quantizes at a time (a small stack
/// buffer, so it also fits microcontroller stacks). The result does not depend on it:
/// the accumulation continues from `out` across panels, so the sum stays one left-to-right
/// sum over blocks.
const SCALAR_PANEL: usize = 256;
/// Tokens quantized per panel, and so per pass over a weight row.
const SCALAR_TOKENS: usize = 4;

/// Q8_0 weights, integer path. With `(xq, xd) = quantize_activations(x[t])`:
///
/// ```text
/// out[t][i] = Σ_b  f32(Σ_j q_w[i][b][j] · xq[b][j]) · (d_w[i][b] · xd[b])
/// ```
///
/// where the inner sum is exact in i32 ([`quant::dot_block_q8_0`]), `d_w·xd` is an f32
/// product, and the outer sum runs over blocks left to right in f32.
pub fn matmul_q8_0_int(job: &MatmulJob<'_, BlockQ8_0>, out: &mut [f32]) {
    matmul_blocks_int(job, out, quant::dot_block_q8_0, BlockQ8_0::scale)
}

/// Q4_0 weights, integer path: as [`matmul_q8_0_int`] with the block sum
/// `Σ_j (nibble_j − 8) · xq[j]` ([`quant::dot_block_q4_0`]).
pub fn matmul_q4_0_int(job: &MatmulJob<'_, BlockQ4_0>, out: &mut [f32]) {
    matmul_blocks_int(job, out, quant::dot_block_q4_0, BlockQ4_0::scale)
}

fn matmul_blocks_int<W: Copy>(
    job: &MatmulJob<'_, W>,
    out: &mut [f32],
    block_dot: fn(&W, &[i8]) -> i32,
    scale: fn(&W) -> f32,
) {
    job.check(QK, out.len());
    let MatmulJob { w, cols, x, tokens, first, count } = *job;
    let nb = cols / QK;
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let mut xq = [[0i8; SCALAR_PANEL]; SCALAR_TOKENS];
    let mut xd = [[0f32; SCALAR_PANEL / QK]; SCALAR_TOKENS];
    let mut t0 = 0;
    while t0 < tokens {
        let tn = (tokens - t0).min(SCALAR_TOKENS);
        let mut b0 = 0;
        while b0 < nb {
            let pb = (nb - b0).min(SCALAR_PANEL / QK);
            for t in 0..tn {
                let xs = &x[(t0 + t) * cols + b0 * QK..(t0 + t) * cols + (b0 + pb) * QK];
                quant::quantize_activations(xs, &mut xq[t][..pb * QK], &mut xd[t][..pb]);
            }
            for i in 0..count {
                let row = &w[(first + i) * nb + b0..(first + i) * nb + b0 + pb];
                for t in 0..tn {
                    let o = &mut out[(t0 + t) * count + i];
                    let mut acc = if b0 == 0 { 0.0 } else { *o };
                    for b in 0..pb {
                        let isum = block_dot(&row[b], &xq[t][b * QK..(b + 1) * QK]);
                        acc += isum as f32 * (scale(&row[b]) * xd[t][b]);
                    }
                    *o = acc;
                }
            }
            b0 += pb;
        }
        t0 += tn;
    }
}
