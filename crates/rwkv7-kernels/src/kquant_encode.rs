//! Encoders for Q4_K, Q5_K and Q6_K: per sub-block scale (and min) chosen by weighted
//! least-squares error minimisation, then the sub-scales quantized against the
//! super-block scale, then the codes recomputed with the scales actually stored.
//!
//! Error weights: element `i` of a super-block counts with `w_i = σ² + x_i²`
//! (`σ² = mean x²` of the super-block), so large weights, which dominate dot products, are
//! fitted more closely without ignoring the rest. `docs/QUANTIZATION.md` §K-quants
//! describes the search and the measured gain over absmax scaling.

use half::f16;

use crate::kquant::{BlockQ4K, BlockQ5K, BlockQ6K, K_SCALE_SIZE, QK_K, pack_scale_min};
use crate::quant::QK;

/// Candidate scales tried around the range-based one: `(nmax + k/10)/range` for
/// `k ∈ −STEPS..=STEPS`, i.e. the code count moved by up to ±1.
const STEPS: i32 = 10;

use crate::math::round_half_away as round;

/// Weights `σ² + x²` for one super-block.
fn weights(x: &[f32]) -> [f32; QK_K] {
    let sigma2 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let mut w = [0f32; QK_K];
    for (wi, &xi) in w.iter_mut().zip(x) {
        *wi = sigma2 + xi * xi;
    }
    w
}

/// Best `(scale, min)` with `x ≈ scale·q − min`, `q ∈ 0..=nmax`, `scale ≥ 0`, `min ≥ 0`
/// (the format stores non-negative mins, so the offset `−min` is at most 0: ranges that
/// do not include 0 are widened to it).
///
/// For each candidate inverse scale the codes are rounded, then `scale` and the offset
/// are refitted by weighted least squares for those codes (clamping the offset to ≤ 0,
/// refitting the scale alone then); the pair with the least weighted squared error wins.
fn fit_scale_min(x: &[f32], w: &[f32], nmax: u8) -> (f32, f32) {
    let lo = x.iter().fold(0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(f32::MIN, |a, &v| a.max(v));
    // A constant block (`hi == lo ≤ 0`) is represented by its min alone; non-finite
    // input (which a checked converter never passes) encodes as zeros.
    if !(hi - lo).is_finite() {
        return (0.0, 0.0);
    }
    if hi <= lo {
        return (0.0, -lo);
    }
    let range = hi - lo;
    let n = nmax as f32;
    let err = |scale: f32, off: f32| -> f32 {
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        x.iter()
            .zip(w)
            .map(|(&v, &wi)| {
                let q = round((v - off) * inv).clamp(0.0, n);
                let e = scale * q + off - v;
                wi * e * e
            })
            .sum()
    };
    let mut best = (range / n, lo);
    let mut best_err = err(best.0, best.1);
    for k in -STEPS..=STEPS {
        let inv = (n + k as f32 / 10.0) / range;
        // Weighted sums for the 2×2 normal equations of x ≈ scale·q + off.
        let (mut sw, mut sq, mut sqq, mut sx, mut sqx) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for (&v, &wi) in x.iter().zip(w) {
            let q = round((v - lo) * inv).clamp(0.0, n);
            sw += wi;
            sq += wi * q;
            sqq += wi * q * q;
            sx += wi * v;
            sqx += wi * q * v;
        }
        let det = sw * sqq - sq * sq;
        if det <= 0.0 {
            continue;
        }
        let mut scale = (sw * sqx - sq * sx) / det;
        let mut off = (sqq * sx - sq * sqx) / det;
        if off > 0.0 {
            off = 0.0;
            scale = if sqq > 0.0 { sqx / sqq } else { 0.0 };
        }
        if scale <= 0.0 {
            continue;
        }
        let e = err(scale, off);
        if e < best_err {
            best = (scale, off);
            best_err = e;
        }
    }
    (best.0, -best.1)
}

/// Best signed scale with `x ≈ scale·q`, `q ∈ −32..=31` (Q6_K sub-blocks of 16): the
/// value of largest magnitude maps near −32, candidates around it refitted by weighted
/// least squares.
fn fit_scale_symmetric(x: &[f32], w: &[f32]) -> f32 {
    let mut max = 0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    if max == 0.0 || !max.is_finite() {
        return 0.0;
    }
    let err = |scale: f32| -> f32 {
        let inv = 1.0 / scale;
        x.iter()
            .zip(w)
            .map(|(&v, &wi)| {
                let e = scale * round(v * inv).clamp(-32.0, 31.0) - v;
                wi * e * e
            })
            .sum()
    };
    let mut best = max / -32.0;
    let mut best_err = err(best);
    for k in -STEPS..=STEPS {
        let inv = -(32.0 + k as f32 / 10.0) / max;
        let (mut sqq, mut sqx) = (0f32, 0f32);
        for (&v, &wi) in x.iter().zip(w) {
            let q = round(v * inv).clamp(-32.0, 31.0);
            sqq += wi * q * q;
            sqx += wi * q * v;
        }
        if sqq <= 0.0 || sqx == 0.0 {
            continue;
        }
        let scale = sqx / sqq;
        let e = err(scale);
        if e < best_err {
            best = scale;
            best_err = e;
        }
    }
    best
}

/// 6-bit quantization of non-negative sub-scales: `(f16 super-scale, codes in 0..64)`.
/// The super-scale is `max/63` rounded to f16, and codes are `round(s / d)` against that
/// stored value.
fn quantize_scales6(s: &[f32; 8]) -> (f16, [u8; 8]) {
    let max = s.iter().fold(0f32, |a, &v| a.max(v));
    let d = f16::from_f32(max / 63.0);
    let df = d.to_f32();
    let inv = if df > 0.0 { 1.0 / df } else { 0.0 };
    (d, core::array::from_fn(|j| round(s[j] * inv).clamp(0.0, 63.0) as u8))
}

/// Codes `round((x + m)/s)` clamped to `0..=nmax` with the stored scale and min.
fn codes_with(x: &[f32], scale: f32, min: f32, nmax: u8, out: &mut [u8]) {
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (o, &v) in out.iter_mut().zip(x) {
        *o = round((v + min) * inv).clamp(0.0, nmax as f32) as u8;
    }
}

/// The shared Q4_K/Q5_K part: `(d, dmin, packed scales, 256 codes in 0..=nmax)`.
fn encode_scale_min(x: &[f32], nmax: u8) -> (f16, f16, [u8; K_SCALE_SIZE], [u8; QK_K]) {
    let w = weights(x);
    let mut s = [0f32; 8];
    let mut m = [0f32; 8];
    for j in 0..8 {
        (s[j], m[j]) = fit_scale_min(&x[QK * j..QK * (j + 1)], &w[QK * j..QK * (j + 1)], nmax);
    }
    let (d, sc) = quantize_scales6(&s);
    let (dmin, mq) = quantize_scales6(&m);
    let mut codes = [0u8; QK_K];
    for j in 0..8 {
        let scale = d.to_f32() * sc[j] as f32;
        let min = dmin.to_f32() * mq[j] as f32;
        codes_with(&x[QK * j..QK * (j + 1)], scale, min, nmax, &mut codes[QK * j..QK * (j + 1)]);
    }
    (d, dmin, pack_scale_min(&sc, &mq), codes)
}

/// Packs 256 codes' low nibbles in the Q4_K/Q5_K order (sub-block `2i` low, `2i+1` high).
fn pack_nibbles(codes: &[u8; QK_K]) -> [u8; QK_K / 2] {
    core::array::from_fn(|b| {
        let (i, l) = (b / 32, b % 32);
        (codes[64 * i + l] & 0x0F) | ((codes[64 * i + 32 + l] & 0x0F) << 4)
    })
}

/// Encodes `x` (a multiple of 256 values) as Q4_K super-blocks.
pub fn quantize_row_q4_k(x: &[f32], out: &mut [BlockQ4K]) {
    assert_eq!(x.len(), out.len() * QK_K, "quantize_row_q4_k: x must hold 256 values per block");
    for (xb, block) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (d, dmin, scales, codes) = encode_scale_min(xb, 15);
        *block = BlockQ4K {
            d: d.to_bits().to_le_bytes(),
            dmin: dmin.to_bits().to_le_bytes(),
            scales,
            qs: pack_nibbles(&codes),
        };
    }
}

/// Encodes `x` (a multiple of 256 values) as Q5_K super-blocks.
pub fn quantize_row_q5_k(x: &[f32], out: &mut [BlockQ5K]) {
    assert_eq!(x.len(), out.len() * QK_K, "quantize_row_q5_k: x must hold 256 values per block");
    for (xb, block) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (d, dmin, scales, codes) = encode_scale_min(xb, 31);
        let qh = core::array::from_fn(|l| (0..8).fold(0u8, |h, j| h | (((codes[32 * j + l] >> 4) & 1) << j)));
        *block = BlockQ5K {
            d: d.to_bits().to_le_bytes(),
            dmin: dmin.to_bits().to_le_bytes(),
            scales,
            qh,
            qs: pack_nibbles(&codes),
        };
    }
}

/// Encodes `x` (a multiple of 256 values) as Q6_K super-blocks. Sub-scales are signed
/// 8-bit: the one of largest magnitude maps to −128 (`d = max/−128`), the rest are
/// rounded against the stored `d` and clamped to 127.
pub fn quantize_row_q6_k(x: &[f32], out: &mut [BlockQ6K]) {
    assert_eq!(x.len(), out.len() * QK_K, "quantize_row_q6_k: x must hold 256 values per block");
    for (xb, block) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let w = weights(xb);
        let s: [f32; 16] =
            core::array::from_fn(|h| fit_scale_symmetric(&xb[16 * h..16 * h + 16], &w[16 * h..16 * h + 16]));
        let mut max = 0f32;
        for &v in &s {
            if v.abs() > max.abs() {
                max = v;
            }
        }
        let d = f16::from_f32(max / -128.0);
        let df = d.to_f32();
        let inv = if df != 0.0 { 1.0 / df } else { 0.0 };
        let scales: [i8; 16] = core::array::from_fn(|h| round(s[h] * inv).clamp(-128.0, 127.0) as i8);
        let mut codes = [0u8; QK_K];
        for h in 0..16 {
            let scale = df * scales[h] as f32;
            let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
            for l in 0..16 {
                codes[16 * h + l] = (round(xb[16 * h + l] * inv).clamp(-32.0, 31.0) + 32.0) as u8;
            }
        }
        let mut ql = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 4];
        for (e, &c) in codes.iter().enumerate() {
            let (n, k, l) = (e / 128, (e % 128) / 32, e % 32);
            ql[64 * n + 32 * (k & 1) + l] |= (c & 0x0F) << (4 * (k >> 1));
            qh[32 * n + l] |= (c >> 4) << (2 * k);
        }
        *block = BlockQ6K { ql, qh, scales, d: d.to_bits().to_le_bytes() };
    }
}
