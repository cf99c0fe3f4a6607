//! Time-mix pieces exposed through `KernelSet`: every set against the scalar
//! specification in `math` (the WKV step, the norms, the token-shift lerp, relu², the
//! fused gate, decay, value-residual and key steps), and the position independence that
//! makes decode and prefill agree bit for bit. Tolerances are per op, with their reasons
//! next to each test and in `tests/common/mod.rs`; `tests/vecmath.rs` has the ULP sweeps.

mod common;

use common::*;
use rwkv7_kernels::{KernelSet, math};

/// One WKV-7 step per set, from the specification's state, checked against the
/// specification at every step of a 16-token run.
///
/// Bounds (SIMD sets reorder the two dot products, nothing else):
/// - `sa = −Σ_j S[i][j]·kk[j]`: `|Δsa| ≤ dot_bound(N, Σ|S·kk|)` (reordered sum);
/// - new state `s = S·decay + sa·kka + v·k` with the same operations as the spec, so
///   `|Δs| ≤ |kka|·|Δsa|·(1+2ε) + 4ε·(|S·decay| + |sa·kka| + |v·k|)` (each side rounds
///   three products and two sums, ≤ 3u·Σ|terms| each, of slightly different inputs);
/// - `y[i] = Σ_j s[j]·r[j]`: `dot_bound(N, Σ|s·r|) + Σ_j |Δs_j|·|r_j|`.
#[test]
fn wkv7_head_matches_spec() {
    let sets = kernel_sets("wkv7_head");
    let mut rng = Rng::new(9);
    let eps = f32::EPSILON as f64;
    for n in [1usize, 4, 7, 8, 16, 64, 128, 264] {
        let mut spec_state: Vec<f32> = rng.f32s(n * n);
        for step in 0..16 {
            let r = rng.f32s(n);
            let decay: Vec<f32> = (0..n).map(|_| 0.5 + 0.5 * rng.f32().abs()).collect();
            let k = rng.f32s(n);
            let v = rng.f32s(n);
            let mut kk = rng.f32s(n);
            let norm = kk.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            kk.iter_mut().for_each(|x| *x /= norm);
            let a: Vec<f32> = (0..n).map(|_| rng.f32().abs()).collect();

            let old = spec_state.clone();
            let mut y_spec = vec![0.0; n];
            math::wkv7_head(&mut spec_state, &r, &decay, &k, &v, &kk, &a, &mut y_spec);

            // The bounds, row by row, from the old state and the spec's outputs.
            let (mut s_bound, mut y_bound) = (vec![0.0f64; n * n], vec![0.0f64; n]);
            for i in 0..n {
                let row = &old[i * n..(i + 1) * n];
                let sa: f64 = -(0..n).map(|j| row[j] as f64 * kk[j] as f64).sum::<f64>();
                let e_sa = dot_bound(n, (0..n).map(|j| (row[j] as f64 * kk[j] as f64).abs()).sum());
                let mut spread = 0.0;
                for j in 0..n {
                    let kka = kk[j] as f64 * a[j] as f64;
                    let terms =
                        (row[j] as f64 * decay[j] as f64).abs() + (sa * kka).abs() + (v[i] as f64 * k[j] as f64).abs();
                    let b = kka.abs() * e_sa * (1.0 + 2.0 * eps) + 4.0 * eps * terms;
                    s_bound[i * n + j] = b;
                    spread += b * (r[j] as f64).abs();
                }
                let abs_y: f64 = (0..n).map(|j| (spec_state[i * n + j] as f64 * r[j] as f64).abs()).sum();
                y_bound[i] = dot_bound(n, abs_y) + spread;
            }
            for kset in &sets {
                let mut state = old.clone();
                let mut y = vec![f32::NAN; n];
                kset.wkv7_head(&mut state, &r, &decay, &k, &v, &kk, &a, &mut y);
                let what = format!("{}: N={n} step {step}", kset.name());
                assert_close(&format!("{what} state"), &state, &spec_state, &s_bound);
                assert_close(&format!("{what} y"), &y, &y_spec, &y_bound);
            }
        }
    }
}

/// `|SIMD − spec|` bound for one normalised row `out = (x − μ)·inv·w + b` whose two
/// sums (`Σx`, `Σ(x − μ)²`) are reordered, first order in `ε = 2⁻²³`:
/// - `|Δμ| ≤ dot_bound(n, Σ|x|)/n + ε|μ|` (reordered sum, then the division);
/// - `|ΔΣd²| ≤ 2|Δμ|·Σ|d| + n·Δμ² + dot_bound(n, Σd²)` with `d = x − μ`, and
///   `|Δvar| ≤ |ΔΣd²|/n + ε·var`;
/// - `|Δinv|/inv ≤ ½|Δvar|/(var + eps) + 3ε` (add, sqrt, divide on both sides);
/// - per element `|w|·(|Δμ|·inv + |d|·|Δinv|)` plus the four roundings of the
///   elementwise step on both sides, `3ε·|d·inv·w| + ε·|out|`.
fn norm_bound(x: &[f32], w: &[f32], eps: f32, want: &[f32]) -> Vec<f64> {
    let (n, e) = (x.len(), f32::EPSILON as f64);
    let nf = n as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / nf;
    let d_mean = dot_bound(n, x.iter().map(|&v| (v as f64).abs()).sum()) / nf + e * mean.abs();
    let d: Vec<f64> = x.iter().map(|&v| v as f64 - mean).collect();
    let (sum_d, sum_d2) = (d.iter().map(|v| v.abs()).sum::<f64>(), d.iter().map(|v| v * v).sum::<f64>());
    let var = sum_d2 / nf;
    let d_var = (2.0 * d_mean * sum_d + nf * d_mean * d_mean + dot_bound(n, sum_d2)) / nf + e * var;
    let inv = 1.0 / (var + eps as f64).sqrt();
    let rel_inv = 0.5 * d_var / (var + eps as f64) + 3.0 * e;
    (0..n)
        .map(|i| {
            let wi = (w[i] as f64).abs();
            wi * (d_mean * inv + d[i].abs() * inv * rel_inv)
                + 3.0 * e * d[i].abs() * inv * wi
                + e * (want[i] as f64).abs()
        })
        .collect()
}

/// Layer and group norm of every set within [`norm_bound`] of the specification (the
/// scalar set bit for bit), on widths around the vector lanes and the real `C`s, with
/// activations spanning six decades and with a large common offset (cancellation).
#[test]
fn norms_match_spec() {
    let sets = kernel_sets("layer_norm, group_norm");
    let mut rng = Rng::new(13);
    for n in [1usize, 3, 7, 8, 9, 17, 64, 65, 768, 2560, 4096] {
        for offset in [0.0f32, 100.0] {
            let x: Vec<f32> = rng.activations(n).iter().map(|v| v + offset).collect();
            let (w, b) = (rng.f32s(n), rng.f32s(n));
            let mut want = vec![0.0; n];
            math::layer_norm(&x, &w, &b, 1e-5, &mut want);
            let bound = norm_bound(&x, &w, 1e-5, &want);
            let group = if n % 64 == 0 { 64 } else { n };
            let mut want_g = x.clone();
            math::group_norm(&mut want_g, &w, &b, group, 64e-5);
            let bound_g: Vec<f64> = (0..n)
                .step_by(group)
                .flat_map(|g| norm_bound(&x[g..g + group], &w[g..g + group], 64e-5, &want_g[g..g + group]))
                .collect();
            for k in &sets {
                let what = format!("{} n={n} offset={offset}", k.name());
                let mut got = vec![f32::NAN; n];
                k.layer_norm(&x, &w, &b, 1e-5, &mut got);
                let mut got_g = x.clone();
                k.group_norm(&mut got_g, &w, &b, group, 64e-5);
                if k.name() == "scalar" {
                    assert_bits(&format!("{what} layer_norm"), &got, &want);
                    assert_bits(&format!("{what} group_norm"), &got_g, &want_g);
                }
                assert_close(&format!("{what} layer_norm"), &got, &want, &bound);
                assert_close(&format!("{what} group_norm"), &got_g, &want_g, &bound_g);
            }
        }
    }
}

/// Row widths `C` for the row-broadcast ops: around the 4 and 8 lanes, and real widths.
const WIDTHS: [usize; 8] = [1, 3, 4, 7, 8, 9, 64, 768];

/// The token-shift lerp and relu² use the specification's operations: bit-identical.
#[test]
fn lerp_and_relu_squared_are_exact() {
    let sets = kernel_sets("lerp, relu_squared");
    let mut rng = Rng::new(17);
    for c in WIDTHS {
        for t in [1usize, 3] {
            let (x, sx, mix) = (rng.activations(t * c), rng.activations(t * c), rng.f32s(c));
            let mut want = vec![0.0; t * c];
            math::lerp(&x, &sx, &mix, &mut want);
            let mut h = rng.activations(t * c);
            h[0] = f32::NAN;
            let mut want_h = h.clone();
            math::relu_squared(&mut want_h);
            for k in &sets {
                let mut got = vec![f32::NAN; t * c];
                k.lerp(&x, &sx, &mix, &mut got);
                assert_bits(&format!("{} lerp {t}x{c}", k.name()), &got, &want);
                let mut got_h = h.clone();
                k.relu_squared(&mut got_h);
                assert_bits(&format!("{} relu_squared {t}x{c}", k.name()), &got_h, &want_h);
            }
        }
    }
}

/// `bias_sigmoid` and `time_decay` over a dense sweep of their argument `z = bias + x`
/// (every 4093rd f32 in `[−110, 110]`, special values, and random biases), in ULPs:
/// `bias_sigmoid` within [`SIGMOID_ULPS`] (the sum is computed identically);
/// `time_decay = exp(−0.606531·σ(z))` within [`DECAY_ULPS`].
#[test]
fn gates_and_decay_within_ulp_bounds() {
    let sets = kernel_sets("bias_sigmoid, time_decay");
    let mut rng = Rng::new(19);
    let mut z = sweep(110.0, 4093);
    z.extend(special_values());
    let c = 64;
    z.truncate(z.len() / c * c);
    let bias: Vec<f32> = rng.f32s(c).iter().map(|v| v * 4.0).collect();
    let x: Vec<f32> = z.iter().enumerate().map(|(i, &z)| z - bias[i % c]).collect();
    let (mut want_s, mut want_d) = (x.clone(), x.clone());
    math::bias_sigmoid(&bias, &mut want_s);
    math::time_decay(&bias, DECAY_SCALE, &mut want_d);
    for k in &sets {
        let (mut got_s, mut got_d) = (x.clone(), x.clone());
        k.bias_sigmoid(&bias, &mut got_s);
        k.time_decay(&bias, DECAY_SCALE, &mut got_d);
        for (what, got, want, bound) in
            [("bias_sigmoid", &got_s, &want_s, SIGMOID_ULPS), ("time_decay", &got_d, &want_d, DECAY_ULPS)]
        {
            let (i, d) = (0..got.len()).map(|i| (i, ulps(got[i], want[i]))).max_by_key(|&(_, d)| d).unwrap();
            println!("{what} [{}]: max {d} ULP (x = {:e} + {:e})", k.name(), bias[i % c], x[i]);
            assert!(d <= bound, "{what} [{}]: {d} ULP > {bound} at {:e} + {:e}", k.name(), bias[i % c], x[i]);
        }
    }
}

/// The value residual `v + (v_first − v)·σ(v0 + g)`: the gate within [`SIGMOID_ULPS`],
/// then the specification's operations, so
/// `|Δ| ≤ |v_first − v|·SIGMOID_ULPS·ulp(σ)·(1 + ε) + ε·|(v_first − v)·σ| + ε·|out|`
/// (the product and the sum round on both sides).
#[test]
fn value_residual_matches_spec() {
    let sets = kernel_sets("value_residual");
    let mut rng = Rng::new(23);
    let e = f32::EPSILON as f64;
    for c in WIDTHS {
        let t = 3;
        let (v, vf, g) = (rng.activations(t * c), rng.activations(t * c), rng.f32s(t * c));
        let v0: Vec<f32> = rng.f32s(c).iter().map(|x| x * 3.0).collect();
        let mut want = v.clone();
        math::value_residual(&mut want, &vf, &v0, &g);
        let bound: Vec<f64> = (0..t * c)
            .map(|i| {
                let s = math::sigmoid(v0[i % c] + g[i]);
                let diff = (vf[i] as f64 - v[i] as f64).abs();
                diff * SIGMOID_ULPS as f64 * ulp_of(s) * (1.0 + e) + e * diff * s as f64 + e * (want[i] as f64).abs()
            })
            .collect();
        for k in &sets {
            let mut got = v.clone();
            k.value_residual(&mut got, &vf, &v0, &g);
            assert_close(&format!("{} value_residual {t}x{c}", k.name()), &got, &want, &bound);
        }
    }
}

/// Key preparation: `k`'s update uses the specification's operations (bit-identical);
/// `kk = v·inv` with `v = k·k_k` differs only through the reordered `Σv²`:
/// `|ΔΣ| ≤ dot_bound(head, Σv²)`, so `|Δinv|/inv ≤ ½|ΔΣ|/Σ + 3ε` (sqrt, max, divide) and
/// `|Δkk| ≤ |kk|·(|Δinv|/inv + ε)`.
#[test]
fn key_prep_matches_spec() {
    let sets = kernel_sets("key_prep");
    let mut rng = Rng::new(29);
    let e = f32::EPSILON as f64;
    for (c, head) in [(64usize, 64usize), (192, 64), (20, 5), (12, 3), (24, 8), (768, 64)] {
        let t = 2;
        let (k, a) = (rng.activations(t * c), rng.f32s(t * c).iter().map(|x| x.abs()).collect::<Vec<f32>>());
        let (k_k, k_a) = (rng.f32s(c), rng.f32s(c));
        let (mut want_k, mut want_kk) = (k.clone(), vec![0.0; t * c]);
        math::key_prep(&mut want_k, &mut want_kk, &a, &k_k, &k_a, head, 1e-12);
        let mut bound = vec![0.0f64; t * c];
        for h in (0..t * c).step_by(head) {
            let v: Vec<f64> = (h..h + head).map(|i| k[i] as f64 * k_k[i % c] as f64).collect();
            let s: f64 = v.iter().map(|x| x * x).sum();
            let rel = 0.5 * dot_bound(head, s) / s + 3.0 * e;
            for i in h..h + head {
                bound[i] = (want_kk[i] as f64).abs() * (rel + e);
            }
        }
        for kset in &sets {
            let (mut got_k, mut got_kk) = (k.clone(), vec![f32::NAN; t * c]);
            kset.key_prep(&mut got_k, &mut got_kk, &a, &k_k, &k_a, head, 1e-12);
            let what = format!("{} key_prep {t}x{c}/{head}", kset.name());
            assert_bits(&format!("{what} k"), &got_k, &want_k);
            assert_close(&format!("{what} kk"), &got_kk, &want_kk, &bound);
        }
    }
}

/// Decode and prefill compute each token identically: for every op, the result of a
/// `T`-row call equals, bit for bit, calls on each row alone (and, for the elementwise
/// maps, on every single element alone), whatever the width's remainder modulo the lanes.
#[test]
fn every_op_is_independent_of_position_and_length() {
    let sets = kernel_sets("all elementwise ops (position independence)");
    let mut rng = Rng::new(31);
    let (t, c, head) = (5usize, 45usize, 9usize);
    let row = |v: &[f32], i: usize| v[i * c..(i + 1) * c].to_vec();
    let x = rng.activations(t * c);
    let (y, z, u) = (rng.activations(t * c), rng.f32s(t * c), rng.f32s(t * c));
    let (p, q) = (rng.f32s(c), rng.f32s(c));
    for k in &sets {
        let name = k.name();
        let maps: [(&str, MapOp); 4] = [
            ("exp", KernelSet::exp),
            ("sigmoid", KernelSet::sigmoid),
            ("tanh", KernelSet::tanh),
            ("relu_squared", KernelSet::relu_squared),
        ];
        for (op, f) in maps {
            let mut all = x.clone();
            f(k, &mut all);
            for i in 0..t * c {
                let mut one = [x[i]];
                f(k, &mut one);
                assert_eq!(one[0].to_bits(), all[i].to_bits(), "{name} {op}: element {i} alone");
            }
        }
        // Every row op: all rows at once, then each row alone.
        let run = |rows: usize, r0: usize| -> Vec<Vec<f32>> {
            let sl = |v: &[f32]| v[r0 * c..(r0 + rows) * c].to_vec();
            let mut out = Vec::new();
            let mut o = vec![0.0; rows * c];
            k.lerp(&sl(&x), &sl(&y), &p, &mut o);
            out.push(o);
            let mut o = sl(&x);
            k.bias_sigmoid(&p, &mut o);
            out.push(o);
            let mut o = sl(&x);
            k.time_decay(&p, DECAY_SCALE, &mut o);
            out.push(o);
            let mut o = sl(&x);
            k.value_residual(&mut o, &sl(&y), &p, &sl(&z));
            out.push(o);
            let (mut kk, mut kx) = (vec![0.0; rows * c], sl(&x));
            k.key_prep(&mut kx, &mut kk, &sl(&u), &p, &q, head, 1e-12);
            out.push(kk);
            out.push(kx);
            let mut o = vec![0.0; rows * c];
            for r in 0..rows {
                k.layer_norm(&sl(&x)[r * c..(r + 1) * c], &p, &q, 1e-5, &mut o[r * c..(r + 1) * c]);
            }
            out.push(o);
            let mut o = sl(&x);
            let (pw, qw): (Vec<f32>, Vec<f32>) = (p.repeat(rows), q.repeat(rows));
            k.group_norm(&mut o, &pw, &qw, head, 64e-5);
            out.push(o);
            out
        };
        let all = run(t, 0);
        for i in 0..t {
            let alone = run(1, i);
            for (j, (a, b)) in all.iter().zip(&alone).enumerate() {
                assert_bits(&format!("{name} row op #{j}: row {i} alone"), &row(a, i), b);
            }
        }
    }
}
