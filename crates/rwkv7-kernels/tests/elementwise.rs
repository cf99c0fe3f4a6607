//! Time-mix pieces exposed through `KernelSet`: every set against the scalar
//! specification in `math`.

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

/// The scalar set's norms are the specification itself.
#[test]
fn norms_match_spec() {
    let sets = kernel_sets("layer_norm, group_norm");
    let mut rng = Rng::new(13);
    for n in [1usize, 64, 768, 2560] {
        let x = rng.activations(n);
        let (w, b) = (rng.f32s(n), rng.f32s(n));
        let mut want = vec![0.0; n];
        math::layer_norm(&x, &w, &b, 1e-5, &mut want);
        let mut want_g = x.clone();
        let group = if n % 64 == 0 { 64 } else { n };
        math::group_norm(&mut want_g, &w, &b, group, 64e-5);
        for k in sets.iter().chain([&KernelSet::SCALAR]) {
            let mut got = vec![f32::NAN; n];
            k.layer_norm(&x, &w, &b, 1e-5, &mut got);
            assert_bits(&format!("{} layer_norm {n}", k.name()), &got, &want);
            let mut got_g = x.clone();
            k.group_norm(&mut got_g, &w, &b, group, 64e-5);
            assert_bits(&format!("{} group_norm {n}", k.name()), &got_g, &want_g);
        }
    }
}
