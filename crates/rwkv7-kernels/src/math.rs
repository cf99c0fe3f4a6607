//! Scalar elementwise math and normalisations used by the RWKV-7 forward pass.
//!
//! `exp` and `tanh` come from `libm` (correctly rounded to within 1 ULP for f32),
//! so the no_std build computes the same values as the std build.

/// `e^x`.
#[inline]
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
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
