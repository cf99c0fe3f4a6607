//! exp, sigmoid, tanh and the fused decay of every kernel set against the scalar
//! specification (`libm`'s `expf`/`tanhf`, `1/(1 + expf(−x))`, and
//! `expf(−0.606531·σ(x))`), in ULPs.
//!
//! The SIMD sets use polynomial approximations (`src/arch/vector.rs`). Their error,
//! measured over every f32 by the `#[ignore]`d exhaustive tests below on `x86_64-avx2`
//! (the bounds in `tests/common/mod.rs` are these maxima, with their reasons):
//!
//! | op | max ULP vs scalar spec | max ULP vs correctly rounded |
//! |---|---|---|
//! | `exp` | 1 | 1 |
//! | `sigmoid` | 4 (x ≈ −16.6) | 2 |
//! | `tanh` | 2 (x ≈ 0.0154; ours is correctly rounded there, `tanhf` is not) | 1 |
//! | `time_decay` | 2 | 1 |
//!
//! Both ISAs evaluate the same operation sequence (FMA, nearest-even rounding, IEEE
//! division), so the NEON sets compute the same per-input results; the dense sweep of the
//! normal suite checks the bounds on every set this machine (or qemu) runs: every 509th
//! bit pattern of each op's range (about 4.4 million inputs per op, every binade) plus
//! zeros, subnormals, infinities, NaN and the `expf` thresholds with their neighbours.

mod common;

use common::*;
use rwkv7_kernels::{KernelSet, math};

/// The op under test: the set's slice kernel, the scalar specification per element,
/// and an f64 reference (rounded to f32 it is the correctly rounded result, for the
/// information printed by the exhaustive test).
#[derive(Clone, Copy)]
struct Op {
    name: &'static str,
    simd: MapOp,
    spec: fn(f32) -> f32,
    exact: fn(f64) -> f64,
    bound: u64,
    /// Inputs beyond `±range` saturate (or overflow) in both; the dense sweep stops there.
    range: f32,
}

const EXP: Op =
    Op { name: "exp", simd: KernelSet::exp, spec: math::exp, exact: f64::exp, bound: EXP_ULPS, range: 110.0 };
const SIGMOID: Op = Op {
    name: "sigmoid",
    simd: KernelSet::sigmoid,
    spec: math::sigmoid,
    exact: exact_sigmoid,
    bound: SIGMOID_ULPS,
    range: 110.0,
};
const TANH: Op =
    Op { name: "tanh", simd: KernelSet::tanh, spec: math::tanh, exact: f64::tanh, bound: TANH_ULPS, range: 12.0 };
/// `time_decay` with a zero bias, so the argument is the input itself.
const DECAY: Op = Op {
    name: "time_decay",
    simd: |k, x| k.time_decay(&vec![0.0; x.len()], DECAY_SCALE, x),
    spec: |x| math::exp(-DECAY_SCALE * math::sigmoid(x)),
    exact: |x| (-(DECAY_SCALE as f64) * exact_sigmoid(x)).exp(),
    bound: DECAY_ULPS,
    range: 110.0,
};

/// The specification's formula `1/(1 + e^−x)` evaluated exactly, except that `e^−x`
/// overflows to +∞ beyond the f32 range as in the specification (so `σ` is 0 below
/// −88.72 in both instead of a subnormal).
fn exact_sigmoid(x: f64) -> f64 {
    let e = (-x).exp();
    if e > f32::MAX as f64 { 0.0 } else { 1.0 / (1.0 + e) }
}

const OPS: [Op; 4] = [EXP, SIGMOID, TANH, DECAY];

/// The worst input seen: `(ulps, x, got, want)`.
type Worst = (u64, f32, f32, f32);

/// Runs `op` of `k` over `xs` in slices of up to 4096 and returns the worst ULP error
/// against the specification and, if `exact`, against the correctly rounded result.
fn worst(op: &Op, k: &KernelSet, xs: &[f32], exact: bool) -> (Worst, Worst) {
    let (mut worst, mut worst_exact): (Worst, Worst) = Default::default();
    let mut buf = vec![0.0f32; 4096];
    for chunk in xs.chunks(4096) {
        let got = &mut buf[..chunk.len()];
        got.copy_from_slice(chunk);
        (op.simd)(k, got);
        for (&x, &g) in chunk.iter().zip(got.iter()) {
            let want = (op.spec)(x);
            let d = ulps(g, want);
            if d > worst.0 {
                worst = (d, x, g, want);
            }
            if exact {
                let e = (op.exact)(x as f64) as f32;
                let d = ulps(g, e);
                if d > worst_exact.0 {
                    worst_exact = (d, x, g, e);
                }
            }
        }
    }
    (worst, worst_exact)
}

fn report(op: &Op, k: &KernelSet, what: &str, (d, x, got, want): Worst) {
    println!("{} {what} [{}]: max {d} ULP (x = {x:e}: got {got:e}, want {want:e})", op.name, k.name());
}

/// Dense sweep over each op's relevant range plus special values, every SIMD set (the
/// scalar set is the specification; qemu makes `libm` slow, so it runs once per op).
#[test]
fn elementwise_math_within_ulp_bounds() {
    let sets = kernel_sets("exp, sigmoid, tanh, time_decay");
    for op in &OPS {
        let mut xs = sweep(op.range, 509);
        xs.extend(special_values());
        let want: Vec<f32> = xs.iter().map(|&x| (op.spec)(x)).collect();
        for k in &sets {
            let mut got = xs.clone();
            for chunk in got.chunks_mut(4096) {
                (op.simd)(k, chunk);
            }
            let (i, d) = (0..xs.len()).map(|i| (i, ulps(got[i], want[i]))).max_by_key(|&(_, d)| d).unwrap();
            let (x, g, w) = (xs[i], got[i], want[i]);
            println!("{} vs spec, dense sweep [{}]: max {d} ULP (x = {x:e}: got {g:e}, want {w:e})", op.name, k.name());
            assert!(
                d <= op.bound,
                "{} [{}]: {d} ULP > {} at x = {x:e} ({:#x}): got {g:e}, want {w:e}",
                op.name,
                k.name(),
                op.bound,
                x.to_bits()
            );
        }
    }
}

/// Every f32 bit pattern through `op`, every SIMD set (the scalar set is the
/// specification); asserts the bound and prints the error against the correctly rounded
/// result (f64 math rounded to f32) for `KERNELS.md`.
fn exhaustive(op: &Op) {
    let sets = kernel_sets(&format!("{} (exhaustive)", op.name));
    for k in sets.iter().filter(|k| k.name() != "scalar") {
        let (mut all, mut all_exact): (Worst, Worst) = Default::default();
        let mut xs = Vec::with_capacity(1 << 20);
        for hi in 0..(1u64 << 12) {
            xs.clear();
            xs.extend((0..1u64 << 20).map(|lo| f32::from_bits(((hi << 20) | lo) as u32)));
            let (w, we) = worst(op, k, &xs, true);
            if w.0 > all.0 {
                all = w;
            }
            if we.0 > all_exact.0 {
                all_exact = we;
            }
        }
        report(op, k, "vs spec, all f32", all);
        report(op, k, "vs correctly rounded, all f32", all_exact);
        assert!(all.0 <= op.bound, "{} [{}]: {} ULP > {} at x = {:e}", op.name, k.name(), all.0, op.bound, all.1);
    }
}

// The exhaustive sweeps take about a minute each on the host (libm dominates), so they
// are ignored by default. Run them with:
//
//     cargo test --release -p rwkv7-kernels --features std --test vecmath -- --ignored --nocapture

#[test]
#[ignore]
fn exp_exhaustive() {
    exhaustive(&EXP);
}

#[test]
#[ignore]
fn sigmoid_exhaustive() {
    exhaustive(&SIGMOID);
}

#[test]
#[ignore]
fn tanh_exhaustive() {
    exhaustive(&TANH);
}

#[test]
#[ignore]
fn time_decay_exhaustive() {
    exhaustive(&DECAY);
}
