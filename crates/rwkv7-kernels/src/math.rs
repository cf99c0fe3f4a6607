//! Scalar elementwise math and normalisations used by the RWKV-7 forward pass.
//!
//! `exp` and `tanh` come from `libm` (correctly rounded to within 1 ULP for f32),
//! so the no_std build computes the same values as the std build.

/// `e^x`.
#[inline]
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}

/// Round half away from zero, exactly `libm::roundf` (the rounding every ggml quantizer
/// uses), written so that it inlines and vectorises inside the quantizers' loops
/// (`roundf` stays an out-of-line call there, a fifth of K-quant encoding time).
///
/// Below 2²³ in magnitude, `v as i32` truncates exactly and `v − t` is the exact
/// fraction; from 2²³ on (and for NaN and infinities) every value is already integral.
/// `t` takes `v`'s sign so that `−0.3` gives `−0.0`, as `roundf` does.
#[inline]
pub fn round_half_away(v: f32) -> f32 {
    /// 2²³: from here on f32 has no fraction bits.
    const INTEGRAL: f32 = 8_388_608.0;
    let sign = v.to_bits() & 0x8000_0000;
    let t = f32::from_bits((v as i32 as f32).to_bits() | sign);
    // Selects, not branches: on real data the fraction is a coin toss. The step carries
    // `v`'s sign even when zero, so that `−0.0 + step` stays `−0.0`.
    let step = if (v - t).abs() >= 0.5 { 1.0f32 } else { 0.0 }.copysign(v);
    if v.abs() < INTEGRAL { t + step } else { v }
}

/// Hyperbolic tangent.
#[inline]
pub fn tanh(x: f32) -> f32 {
    libm::tanhf(x)
}

/// Logistic sigmoid `1 / (1 + e^-x)`, as torch computes it.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Square root.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// Mean and biased variance (`Σ(x-μ)²/n`) of `x`, in f32. Two passes, like torch.
fn mean_var(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, var)
}

/// Layer norm over the whole of `x`: `out = (x - μ) / sqrt(σ² + eps) · w + b`.
///
/// Shapes: `x`, `w`, `b`, `out` all have the same length `C`.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let (mean, var) = mean_var(x);
    let inv = 1.0 / sqrt(var + eps);
    for i in 0..x.len() {
        out[i] = (x[i] - mean) * inv * w[i] + b[i];
    }
}

/// Group norm in place: `x` is split into groups of `group` elements, and each group
/// is normalised by its own mean and biased variance, then scaled by `w` and shifted
/// by `b` (both of `x`'s full length). RWKV-7 uses one group per head (`group = 64`).
pub fn group_norm(x: &mut [f32], w: &[f32], b: &[f32], group: usize, eps: f32) {
    for (g, chunk) in x.chunks_mut(group).enumerate() {
        let (mean, var) = mean_var(chunk);
        let inv = 1.0 / sqrt(var + eps);
        for (j, v) in chunk.iter_mut().enumerate() {
            let i = g * group + j;
            *v = (*v - mean) * inv * w[i] + b[i];
        }
    }
}

/// `x ← e^x` for every element ([`exp`]).
pub fn exp_slice(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = exp(*v));
}

/// `x ← σ(x)` for every element ([`sigmoid`]).
pub fn sigmoid_slice(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// `x ← tanh(x)` for every element ([`tanh`]).
pub fn tanh_slice(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = tanh(*v));
}

/// `x ← max(x, 0)²` for every element (the FFN's activation; a NaN becomes 0, as
/// `f32::max` does).
pub fn relu_squared(x: &mut [f32]) {
    x.iter_mut().for_each(|h| {
        let r = h.max(0.0);
        *h = r * r;
    });
}

/// The token-shift lerp: `out[t][j] = x[t][j] + sx[t][j]·mix[j]` (a product, then a sum).
///
/// Shapes: `x`, `sx`, `out` are `[T, C]`, `mix` is `[C]`.
pub fn lerp(x: &[f32], sx: &[f32], mix: &[f32], out: &mut [f32]) {
    let c = mix.len();
    for i in 0..out.len() {
        out[i] = x[i] + sx[i] * mix[i % c];
    }
}

/// `x[t][j] ← σ(bias[j] + x[t][j])`. Shapes: `x` is `[T, C]`, `bias` is `[C]`.
pub fn bias_sigmoid(bias: &[f32], x: &mut [f32]) {
    let c = bias.len();
    for (i, v) in x.iter_mut().enumerate() {
        *v = sigmoid(bias[i % c] + *v);
    }
}

/// The time-mix decay: `w[t][j] ← exp(−scale · σ(w0[j] + w[t][j]))`.
///
/// Shapes: `w` is `[T, C]`, `w0` is `[C]`. RWKV-7 uses `scale = 0.606531`.
pub fn time_decay(w0: &[f32], scale: f32, w: &mut [f32]) {
    let c = w0.len();
    for (i, d) in w.iter_mut().enumerate() {
        *d = exp(-scale * sigmoid(w0[i % c] + *d));
    }
}

/// The value residual of layers after the first:
/// `v[t][j] ← v[t][j] + (v_first[t][j] − v[t][j]) · σ(v0[j] + gate[t][j])`.
///
/// Shapes: `v`, `v_first`, `gate` are `[T, C]`, `v0` is `[C]`.
pub fn value_residual(v: &mut [f32], v_first: &[f32], v0: &[f32], gate: &[f32]) {
    let c = v0.len();
    for i in 0..v.len() {
        let g = sigmoid(v0[i % c] + gate[i]);
        v[i] += (v_first[i] - v[i]) * g;
    }
}

/// The key preparation of the time mix, per row `t`:
///
/// ```text
/// kk[t] = normalise_per_head(k[t] · k_k)     each head of `head` elements divided by
///                                            max(sqrt(Σ kk²), eps), summed left to right
/// k[t]  ← k[t] · (1 + (a[t] − 1) · k_a)
/// ```
///
/// Shapes: `k`, `kk`, `a` are `[T, C]`, `k_k` and `k_a` are `[C]`, `head` divides `C`.
pub fn key_prep(k: &mut [f32], kk: &mut [f32], a: &[f32], k_k: &[f32], k_a: &[f32], head: usize, eps: f32) {
    let c = k_k.len();
    for i in 0..k.len() {
        kk[i] = k[i] * k_k[i % c];
    }
    for h in kk.chunks_mut(head) {
        let norm = sqrt(h.iter().map(|v| v * v).sum::<f32>());
        let inv = 1.0 / norm.max(eps);
        h.iter_mut().for_each(|v| *v *= inv);
    }
    for i in 0..k.len() {
        k[i] *= 1.0 + (a[i] - 1.0) * k_a[i % c];
    }
}

/// One WKV-7 step for one head, updating the `N × N` state in place and writing `y`.
///
/// `state[i·N + j]` is `S[i][j]`, with `i` the value index and `j` the key index.
/// With `sa[i] = Σ_j S[i][j]·(-kk[j])` taken from the old state:
///
/// ```text
/// S[i][j] ← S[i][j]·decay[j] + sa[i]·(kk[j]·a[j]) + v[i]·k[j]
/// y[i]    = Σ_j S[i][j]·r[j]          (new state)
/// ```
///
/// All vectors have length `N`; `k` is the key after the `k_a` update and `kk` the
/// L2-normalised `k·k_k`.
pub fn wkv7_head(
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
    for i in 0..n {
        let row = &mut state[i * n..(i + 1) * n];
        let mut sa = 0.0f32;
        for j in 0..n {
            sa -= row[j] * kk[j];
        }
        let mut acc = 0.0f32;
        for j in 0..n {
            let s = row[j] * decay[j] + sa * (kk[j] * a[j]) + v[i] * k[j];
            row[j] = s;
            acc += s * r[j];
        }
        y[i] = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn round_half_away_is_roundf() {
        let edges = [
            0.0,
            -0.0,
            0.3,
            -0.3,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            16_777_217.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ];
        // The edges, then every 251st bit pattern (both signs, every exponent).
        let sweep = (0..=u32::MAX).step_by(251).map(f32::from_bits);
        for v in edges.into_iter().chain(sweep) {
            let (got, want) = (round_half_away(v), libm::roundf(v));
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{v:e}: {got:e} != {want:e}");
        }
    }
}
