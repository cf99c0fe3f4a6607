//! Matmul conformance: every kernel set this CPU can run against the scalar
//! specification, for every weight type and both block-quant paths.
//!
//! Contracts checked (bounds are defined in `common`, with the reasons):
//! - float results within `dot_bound` of scalar;
//! - integer paths bit-exact on data whose float arithmetic is exact (so any wrong
//!   integer block sum would show), including the `maddubs` worst case;
//! - each output independent of the token count and of the row range (bit for bit
//!   within a set): decode and prefill agree exactly.

mod common;

use std::io::Write;

use common::*;
use half::f16;
use rwkv7_kernels::quant::{BlockQ4_0, BlockQ8_0, QK};
use rwkv7_kernels::{KernelSet, Matrix, MatrixData, QuantPath};

/// The storage types under test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
}

impl Ty {
    fn matrix<'a>(self, w: &'a Weights, rows: usize, cols: usize) -> Matrix<'a> {
        let data = match self {
            Ty::F32 => MatrixData::F32(&w.f32),
            Ty::F16 => MatrixData::F16(&w.f16),
            Ty::BF16 => MatrixData::BF16(&w.bf16),
            Ty::Q8_0 => MatrixData::Q8_0(&w.q8),
            Ty::Q4_0 => MatrixData::Q4_0(&w.q4),
        };
        Matrix::new(data, rows, cols).expect("test shape")
    }

    /// The exact f32 value of every weight (what the kernels multiply by).
    fn values(self, w: &Weights) -> Vec<f32> {
        match self {
            Ty::F32 => w.f32.clone(),
            Ty::F16 => w.f16.iter().map(|v| v.to_f32()).collect(),
            Ty::BF16 => w.bf16.iter().map(|v| v.to_f32()).collect(),
            Ty::Q8_0 => dequant_q8(&w.q8),
            Ty::Q4_0 => dequant_q4(&w.q4),
        }
    }

    fn is_quant(self) -> bool {
        matches!(self, Ty::Q8_0 | Ty::Q4_0)
    }
}

fn run(k: &KernelSet, m: &Matrix<'_>, x: &[f32], tokens: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; tokens * m.rows()];
    k.matmul(m, x, &mut out, tokens);
    out
}

/// Shapes `(rows, cols, tokens)`: every boundary of the tiles (rows 1..9 around the
/// 2/4/8-row tiles, tokens around the 4-token groups), of SIMD widths (cols around 8 and
/// 32), of the 4096-column activation panel, the real RWKV-7 widths 768, 1024, 2048,
/// 2560 and ×4, a wide decode call over three panels, and the 65536-row
/// head (kept cheap at 64 columns).
fn shapes(quant: bool) -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    let small: &[usize] = if quant { &[0, 32, 64, 96, 128] } else { &[0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127] };
    for &cols in small {
        for rows in [1, 2, 3, 5, 8, 9, 17] {
            for tokens in [1, 2, 3, 4, 5, 9] {
                v.push((rows, cols, tokens));
            }
        }
    }
    let big: &[usize] = if quant {
        &[31 * QK, 33 * QK, 768, 1024, 2048, 2560, 3072, 4096, 4096 + QK, 8192, 10240]
    } else {
        &[767, 768, 769, 1024, 2048, 2560, 3072, 4096, 8192, 10240]
    };
    for &cols in big {
        v.push((3, cols, 1));
        v.push((9, cols, 5));
    }
    // Several cache row blocks (prefill sweeps row blocks × token groups).
    v.push((97, 4096, 5));
    // Decode across three panels (the last one partial): one wide decode call, each row
    // in one pass (`wide_decode`); the 5-token shapes above compare it with panel by panel.
    v.push((125, 8192 + 32, 1));
    v.push((45, 768, 9));
    v.push((0, 64, 3));
    v.push((4, 64, 0));
    v.push((65536, 64, 1));
    v.push((65536, 64, 2));
    v
}

/// The bound for comparing `k` to scalar: `dot_bound` over the weights' exact values and
/// the activations the path multiplies them with (quantized ones on the integer path).
fn bounds(ty: Ty, path: QuantPath, w: &[f32], x: &[f32], rows: usize, cols: usize, tokens: usize) -> Vec<f64> {
    let xs = if ty.is_quant() && path == QuantPath::Integer { quantized_activations(x, cols) } else { x.to_vec() };
    abs_dot(w, &xs, rows, cols, tokens).into_iter().map(|s| dot_bound(cols, s)).collect()
}

fn check_type(ty: Ty) {
    let sets = kernel_sets(&format!("matmul {ty:?}"));
    let paths: &[QuantPath] = if ty.is_quant() { &PATHS } else { &[QuantPath::Integer] };
    let mut rng = Rng::new(0x5EED ^ ty as u64);
    for (rows, cols, tokens) in shapes(ty.is_quant()) {
        let w = Weights::random(&mut rng, rows, cols);
        let x = rng.activations(tokens * cols);
        let m = ty.matrix(&w, rows, cols);
        let values = ty.values(&w);
        for &path in paths {
            let want = run(&on_path(KernelSet::SCALAR, path), &m, &x, tokens);
            let bound = bounds(ty, path, &values, &x, rows, cols, tokens);
            let xs =
                if ty.is_quant() && path == QuantPath::Integer { quantized_activations(&x, cols) } else { x.clone() };
            let exact = exact_dot(&values, &xs, rows, cols, tokens);
            assert_close(&format!("{ty:?}/scalar/{path:?} {rows}x{cols}x{tokens} vs exact"), &want, &exact, &bound);
            for k in &sets {
                let k = on_path(*k, path);
                let what = format!("{ty:?}/{}/{path:?} {rows}x{cols}x{tokens}", k.name());
                let got = run(&k, &m, &x, tokens);
                assert_close(&what, &got, &want, &bound);
                if rows <= 4096 {
                    check_independence(&what, &k, &m, &x, tokens, &got);
                }
            }
        }
    }
}

/// Token-by-token calls and split row ranges reproduce the full call bit for bit.
fn check_independence(what: &str, k: &KernelSet, m: &Matrix<'_>, x: &[f32], tokens: usize, full: &[f32]) {
    let (rows, cols) = (m.rows(), m.cols());
    for t in 0..tokens {
        let mut one = vec![f32::NAN; rows];
        k.matmul(m, &x[t * cols..(t + 1) * cols], &mut one, 1);
        assert_bits(&format!("{what}: token {t} alone"), &one, &full[t * rows..(t + 1) * rows]);
    }
    // An odd split that cuts through every row tile size.
    let split = rows / 2 + usize::from(rows > 2);
    for (first, count) in [(0, split), (split, rows - split)] {
        let mut part = vec![f32::NAN; tokens * count];
        k.matmul_rows(m, x, &mut part, tokens, first, count);
        for t in 0..tokens {
            let want = &full[t * rows + first..t * rows + first + count];
            assert_bits(&format!("{what}: rows {first}+{count}, token {t}"), &part[t * count..(t + 1) * count], want);
        }
    }
}

#[test]
fn matmul_f32() {
    check_type(Ty::F32);
}

#[test]
fn matmul_f16() {
    check_type(Ty::F16);
}

#[test]
fn matmul_bf16() {
    check_type(Ty::BF16);
}

#[test]
fn matmul_q8_0() {
    check_type(Ty::Q8_0);
}

#[test]
fn matmul_q4_0() {
    check_type(Ty::Q4_0);
}

/// The VNNI sets' Q8_0 and Q4_0 tiles form the same exact integer block sums as
/// `x86_64-avx2`'s, in the same lanes, and do the same float operations on them, so their
/// outputs must be AVX2's bit for bit (a tighter check than the bound against scalar).
/// Where the CPU has no VNNI, `x86_64-vnni-emulated` runs the tiles with an exact AVX2
/// emulation of `vpdpbusd` (itself checked against the instruction's definition).
#[test]
fn vnni_equals_avx2_bit_for_bit() {
    let sets = kernel_sets("vnni vs avx2");
    let Some(avx2) = sets.iter().find(|k| k.name() == "x86_64-avx2") else {
        // Straight to the stderr handle, which the harness does not capture.
        let _ = writeln!(std::io::stderr(), "SKIPPED: no x86_64-avx2 set on this CPU, so no VNNI set to compare");
        return;
    };
    let vnni: Vec<&KernelSet> = sets.iter().filter(|k| k.name().contains("vnni")).collect();
    assert!(!vnni.is_empty(), "every AVX2 CPU has at least the emulated VNNI set");
    let mut rng = Rng::new(0x7EE1);
    for (rows, cols, tokens) in shapes(true) {
        let w = Weights::random(&mut rng, rows, cols);
        let x = rng.activations(tokens * cols);
        for ty in [Ty::Q8_0, Ty::Q4_0] {
            let m = ty.matrix(&w, rows, cols);
            let want = run(&on_path(*avx2, QuantPath::Integer), &m, &x, tokens);
            for k in &vnni {
                let got = run(&on_path(**k, QuantPath::Integer), &m, &x, tokens);
                assert_bits(&format!("{ty:?}/{} {rows}x{cols}x{tokens} vs x86_64-avx2", k.name()), &got, &want);
            }
        }
    }
}

/// Integer-path error against the dequantize path: the activation quantization moves
/// each `x` by at most `d_x/2` (round to nearest), so `|int − deq| ≤ Σ_c |w_c|·d_x/2`
/// plus both paths' rounding (`dot_bound` each). Checks that the integer path computes
/// what it claims, not just the same as scalar.
#[test]
fn matmul_integer_path_error_is_bounded_by_activation_rounding() {
    let sets = kernel_sets("matmul integer vs dequantize");
    let mut rng = Rng::new(7);
    for (rows, cols, tokens) in [(5, 64, 3), (9, 768, 5), (3, 2560, 2), (2, 10240, 1)] {
        let w = Weights::random(&mut rng, rows, cols);
        let x = rng.activations(tokens * cols);
        let xq = quantized_activations(&x, cols);
        for ty in [Ty::Q8_0, Ty::Q4_0] {
            let m = ty.matrix(&w, rows, cols);
            let wv = ty.values(&w);
            let mut bound = vec![0.0f64; rows * tokens];
            for t in 0..tokens {
                for r in 0..rows {
                    let mut b = 0.0;
                    for c in 0..cols {
                        let dx = (x[t * cols + c] as f64 - xq[t * cols + c] as f64).abs();
                        b += (wv[r * cols + c] as f64).abs() * dx;
                    }
                    let s_int: f64 = (0..cols).map(|c| (wv[r * cols + c] * xq[t * cols + c]).abs() as f64).sum();
                    let s_deq: f64 = (0..cols).map(|c| (wv[r * cols + c] * x[t * cols + c]).abs() as f64).sum();
                    bound[t * rows + r] = b + dot_bound(cols, s_int) + dot_bound(cols, s_deq);
                }
            }
            for k in &sets {
                let int = run(&on_path(*k, QuantPath::Integer), &m, &x, tokens);
                let deq = run(&on_path(*k, QuantPath::Dequantize), &m, &x, tokens);
                assert_close(&format!("{ty:?}/{} int vs deq {rows}x{cols}x{tokens}", k.name()), &int, &deq, &bound);
            }
        }
    }
}

/// Exact-arithmetic data: integer activations in [-127, 127] with a 127 in every block
/// (so `d_x = 1` and quantization is the identity), weight scales 1 or 2, and totals
/// below 2²⁴. Every product and partial sum is then an integer that f32 holds exactly,
/// in any order and with or without FMA, so every set and path must return the exact
/// i64 result bit for bit. A wrong integer block sum anywhere (lane mix-up, nibble order,
/// `maddubs` saturation, the −128 code) would show.
#[test]
fn matmul_block_quant_exact_on_integer_data() {
    let sets = kernel_sets("matmul exact integer data");
    let mut rng = Rng::new(11);
    // 130 blocks cross the 128-block activation panel.
    for (rows, cols, tokens) in [(1, 32, 1), (9, 96, 5), (5, 1024, 3), (3, 130 * QK, 2)] {
        let nb = rows * cols / QK;
        let mut x: Vec<f32> = (0..tokens * cols).map(|_| (rng.below(255) as i32 - 127) as f32).collect();
        for b in 0..tokens * cols / QK {
            x[b * QK + rng.below(QK as u64) as usize] = if rng.below(2) == 0 { 127.0 } else { -127.0 };
        }
        let scale = |rng: &mut Rng| f16::from_f32(if rng.below(2) == 0 { 1.0 } else { 2.0 });
        // Q8_0 with full-range codes only where the total stays below 2²⁴.
        let q8_range = if cols <= 1024 { 256 } else { 16 };
        let q8: Vec<BlockQ8_0> = (0..nb)
            .map(|_| {
                let mut qs = [0i8; QK];
                qs.iter_mut().for_each(|q| *q = (rng.below(q8_range) as i32 - q8_range as i32 / 2) as i8);
                BlockQ8_0::new(scale(&mut rng), qs)
            })
            .collect();
        let q4: Vec<BlockQ4_0> = (0..nb)
            .map(|_| {
                let mut codes = [0u8; QK];
                codes.iter_mut().for_each(|c| *c = rng.below(16) as u8);
                BlockQ4_0::new(scale(&mut rng), codes)
            })
            .collect();
        let cases = [
            (Matrix::new(MatrixData::Q8_0(&q8), rows, cols).unwrap(), dequant_q8(&q8)),
            (Matrix::new(MatrixData::Q4_0(&q4), rows, cols).unwrap(), dequant_q4(&q4)),
        ];
        for (m, wv) in &cases {
            let mut exact = vec![0.0f32; tokens * rows];
            for t in 0..tokens {
                for r in 0..rows {
                    let term = |c: usize| wv[r * cols + c] as i64 * x[t * cols + c] as i64;
                    // Σ|terms| < 2²⁴ bounds every partial sum, in any order.
                    let abs: i64 = (0..cols).map(|c| term(c).abs()).sum();
                    assert!(abs < 1 << 24, "test data must stay exact in f32");
                    let s: i64 = (0..cols).map(term).sum();
                    exact[t * rows + r] = s as f32;
                }
            }
            for k in &sets {
                for path in PATHS {
                    let got = run(&on_path(*k, path), m, &x, tokens);
                    assert_bits(&format!("{}/{path:?} {rows}x{cols}x{tokens}", k.name()), &got, &exact);
                }
            }
        }
    }
}

/// The `maddubs` worst case: every weight −128 (or 127) against every activation ±127.
#[test]
fn matmul_q8_0_extreme_codes() {
    let sets = kernel_sets("matmul q8_0 extreme codes");
    // 9 blocks: one whole group of 8 (the pair tiles' path) and one after it; the sum,
    // at most 9·32·128·127 < 2²⁴, is exact in f32.
    const NB: usize = 9;
    for (wq, xv) in [(-128i8, 127.0f32), (-128, -127.0), (127, 127.0), (127, -127.0)] {
        let w = vec![BlockQ8_0::new(f16::ONE, [wq; QK]); NB];
        let x = vec![xv; NB * QK];
        let m = Matrix::new(MatrixData::Q8_0(&w), 1, NB * QK).unwrap();
        let want = [(NB * QK) as f32 * wq as f32 * xv];
        for k in &sets {
            for path in PATHS {
                assert_bits(
                    &format!("{}/{path:?} w={wq} x={xv}", k.name()),
                    &run(&on_path(*k, path), &m, &x, 1),
                    &want,
                );
            }
        }
    }
}

/// Hand-built blocks from raw bytes at an odd offset (blocks have alignment 1), checking
/// the ggml nibble order and the scale exactly through `get`, the dequantizers and
/// one-hot matmuls on every set and path (`x = 127·e_j` makes `d_x = 1`, so exact).
#[test]
fn matmul_hand_built_blocks() {
    let sets = kernel_sets("matmul hand-built blocks");
    // Q4_0: d = 0.5 (f16 0x3800, little-endian), byte j = (j) | (15 − j) << 4.
    let mut bytes = [0xAAu8; 1 + 18];
    bytes[1..3].copy_from_slice(&[0x00, 0x38]);
    for j in 0..16 {
        bytes[3 + j] = j as u8 | ((15 - j as u8) << 4);
    }
    let q4: &[BlockQ4_0] = bytemuck::cast_slice(&bytes[1..]);
    let want4: Vec<f32> =
        (0..QK).map(|j| if j < 16 { (j as f32 - 8.0) * 0.5 } else { ((31 - j) as f32 - 8.0) * 0.5 }).collect();
    assert_eq!(q4[0].scale(), 0.5);
    assert_eq!((0..QK).map(|j| q4[0].get(j)).collect::<Vec<_>>(), want4);
    assert_eq!(dequant_q4(q4), want4);

    // Q8_0: d = −0.25 (f16 0xB400), qs[j] = j − 16 (and −128 at 31).
    let mut bytes = [0x55u8; 1 + 34];
    bytes[1..3].copy_from_slice(&[0x00, 0xB4]);
    for j in 0..QK {
        bytes[3 + j] = if j == 31 { 0x80 } else { (j as i8 - 16) as u8 };
    }
    let q8: &[BlockQ8_0] = bytemuck::cast_slice(&bytes[1..]);
    let want8: Vec<f32> = (0..QK).map(|j| if j == 31 { 32.0 } else { (j as f32 - 16.0) * -0.25 }).collect();
    assert_eq!(q8[0].scale(), -0.25);
    assert_eq!(dequant_q8(q8), want8);

    let m4 = Matrix::new(MatrixData::Q4_0(q4), 1, QK).unwrap();
    let m8 = Matrix::new(MatrixData::Q8_0(q8), 1, QK).unwrap();
    for k in &sets {
        for path in PATHS {
            let k = on_path(*k, path);
            for j in 0..QK {
                let mut x = vec![0.0f32; QK];
                x[j] = 127.0;
                assert_eq!(run(&k, &m4, &x, 1), [127.0 * want4[j]], "{}/{path:?}: q4 element {j}", k.name());
                assert_eq!(run(&k, &m8, &x, 1), [127.0 * want8[j]], "{}/{path:?}: q8 element {j}", k.name());
            }
        }
    }
}

/// A matrix with block-misaligned columns is rejected at construction.
#[test]
fn block_matrix_needs_whole_blocks() {
    let w = vec![BlockQ8_0::new(f16::ONE, [1; QK]); 2];
    assert!(Matrix::new(MatrixData::Q8_0(&w), 2, QK).is_some());
    assert!(Matrix::new(MatrixData::Q8_0(&w), 1, 2 * QK).is_some());
    assert!(Matrix::new(MatrixData::Q8_0(&w), 4, QK / 2).is_none());
}
