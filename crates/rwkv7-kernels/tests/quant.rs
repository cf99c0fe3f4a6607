//! Block quantizers (ggml reference semantics) and the activation quantizer of every
//! kernel set.

mod common;

use common::*;
use half::f16;
use rwkv7_kernels::quant::{self, BlockQ4_0, BlockQ8_0, QK};

/// ggml `quantize_row_q8_0_ref` on a block built so every step is exact: `amax = 127/4`
/// gives `d = 0.25`, `1/d = 4`, and `x = k/4` quantizes to `k`; `x = (2k+1)/8` lands on
/// `k + 0.5` and rounds half away from zero.
#[test]
fn quantize_q8_0_reference_rounding() {
    let mut x = [0.0f32; QK];
    for (j, v) in x.iter_mut().enumerate().take(16) {
        *v = (j as f32 - 8.0) / 4.0;
    }
    let ties = [0.5f32, -0.5, 2.5, -2.5, 126.5, -126.5];
    for (j, t) in ties.iter().enumerate() {
        x[16 + j] = t / 4.0;
    }
    x[31] = 127.0 / 4.0;
    let mut b = [BlockQ8_0::new(f16::ZERO, [0; QK])];
    quant::quantize_row_q8_0(&x, &mut b);
    assert_eq!(b[0].d, f16::from_f32(0.25).to_bits().to_le_bytes());
    for j in 0..16 {
        assert_eq!(b[0].qs[j], j as i8 - 8, "element {j}");
    }
    assert_eq!(&b[0].qs[16..22], &[1, -1, 3, -3, 127, -127], "ties round away from zero");
    assert_eq!(b[0].qs[31], 127);

    // All-zero block: d = 0 and zero quants (ggml's `id = d ? 1/d : 0`).
    quant::quantize_row_q8_0(&[0.0; QK], &mut b);
    assert_eq!(b[0], BlockQ8_0::new(f16::ZERO, [0; QK]));
}

/// ggml `quantize_row_q4_0_ref`: `max` is the first value of largest magnitude with its
/// sign, `d = max/−8`, code `min(15, trunc(x/d + 8.5))`.
#[test]
fn quantize_q4_0_reference_rounding() {
    let mut x = [0.0f32; QK];
    x[3] = 4.0; // max → d = −0.5, 1/d = −2
    x[5] = -4.0; // same magnitude, later: not the max; 8 + 8.5 → 16 → clamped to 15
    x[6] = 0.25; // −0.5 + 8.5 = 8
    x[7] = 0.75; // −1.5 + 8.5 = 7
    x[20] = -1.25; // 2.5 + 8.5 = 11
    x[21] = 1.0; // −2 + 8.5 = 6.5 → 6 (truncation)
    let mut b = [BlockQ4_0::new(f16::ZERO, [0; QK])];
    quant::quantize_row_q4_0(&x, &mut b);
    assert_eq!(b[0].d(), f16::from_f32(-0.5));
    let mut want = [8u8; QK]; // x = 0 → 8.5 → 8
    want[3] = 0;
    want[5] = 15;
    want[6] = 8;
    want[7] = 7;
    want[20] = 11;
    want[21] = 6;
    assert_eq!(b[0], BlockQ4_0::new(f16::from_f32(-0.5), want));
    // Nibble placement: element 3 low nibble of byte 3, element 20 high nibble of byte 4.
    assert_eq!(b[0].qs[3] & 0x0F, 0);
    assert_eq!(b[0].qs[4] >> 4, 11);

    // First of equal magnitudes wins: −4 before 4 gives d = +0.5.
    let mut y = [0.0f32; QK];
    y[0] = -4.0;
    y[1] = 4.0;
    quant::quantize_row_q4_0(&y, &mut b);
    assert_eq!(b[0].scale(), 0.5);
    assert_eq!((b[0].code(0), b[0].code(1)), (-8, 7));
}

/// Exact round trip for representable values: codes times a power-of-two scale whose
/// extreme code is present come back unchanged (tract's `loop_q4f32` idea).
#[test]
fn quantize_round_trip_is_exact_for_representable_values() {
    let mut rng = Rng::new(3);
    for _ in 0..200 {
        let d = 2f32.powi(rng.below(20) as i32 - 10);
        let mut qs = [0i8; QK];
        qs.iter_mut().for_each(|q| *q = (rng.below(255) as i32 - 127) as i8);
        qs[rng.below(QK as u64) as usize] = if rng.below(2) == 0 { 127 } else { -127 };
        let b8 = [BlockQ8_0::new(f16::from_f32(d), qs)];
        let mut again = [BlockQ8_0::new(f16::ZERO, [0; QK])];
        quant::quantize_row_q8_0(&dequant_q8(&b8), &mut again);
        assert_eq!(again, b8);

        let mut codes = [0u8; QK];
        codes.iter_mut().for_each(|c| *c = rng.below(16) as u8);
        // Code 0 (−8·d) is the unique largest magnitude, so it becomes `max` and d comes back.
        codes[rng.below(QK as u64) as usize] = 0;
        let b4 = [BlockQ4_0::new(f16::from_f32(d), codes)];
        let mut again = [BlockQ4_0::new(f16::ZERO, [0; QK])];
        quant::quantize_row_q4_0(&dequant_q4(&b4), &mut again);
        assert_eq!(again, b4);
    }
}

/// Quantization error on ggml's test data `0.1 + 2·cos(i + offset)`, with ggml's metric
/// `sqrt(Σd²)/n` and its budget `MAX_QUANTIZATION_TOTAL_ERROR = 0.002`
/// (tests/test-quantize-fns.cpp).
#[test]
fn quantization_error_within_ggml_budget() {
    const MAX_QUANTIZATION_TOTAL_ERROR: f64 = 0.002;
    let n = 32 * 128;
    let x: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32 + 1.0).cos()).collect();
    let err = |y: &[f32]| (x.iter().zip(y).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>()).sqrt() / n as f64;
    let mut b8 = vec![BlockQ8_0::new(f16::ZERO, [0; QK]); n / QK];
    quant::quantize_row_q8_0(&x, &mut b8);
    let mut b4 = vec![BlockQ4_0::new(f16::ZERO, [0; QK]); n / QK];
    quant::quantize_row_q4_0(&x, &mut b4);
    let (e8, e4) = (err(&dequant_q8(&b8)), err(&dequant_q4(&b4)));
    println!("quantization error: q8_0 {e8:e}, q4_0 {e4:e}");
    assert!(e8 < MAX_QUANTIZATION_TOTAL_ERROR && e4 < MAX_QUANTIZATION_TOTAL_ERROR);
    assert!(e8 < e4 / 8.0, "8-bit must be much closer than 4-bit");
}

/// Every set's activation quantizer produces the specification's bits, with one scale
/// per 32 values (Q8_0/Q4_0) and per 256 (K-quants): random data over six decades, exact
/// ties (`amax = 127` makes `1/d = 1`, so `k + 0.5` is a tie), zero blocks, and −0.0.
#[test]
fn quantize_activations_bit_exact() {
    let sets = kernel_sets("quantize_activations");
    let mut rng = Rng::new(5);
    for block in [QK, 256] {
        for nb in [0usize, 1, 2, 3, 11, 24, 80, 320] {
            let n = nb * block;
            let mut inputs = vec![rng.activations(n)];
            let mut ties: Vec<f32> = (0..n).map(|i| (i % 255) as f32 - 127.0 + 0.5).collect();
            for b in 0..nb {
                ties[b * block] = 127.0;
            }
            inputs.push(ties);
            let mut zeros = vec![0.0f32; n];
            if nb > 0 {
                zeros[0] = -0.0;
            }
            inputs.push(zeros);
            // Blocks so small that `1/scale` overflows to +∞ (amax = 1.27·10⁻³⁷, scale
            // 10⁻³⁹): every set must give the specification's zero quants (an infinite
            // `id` turned 0 into NaN and ±amax into ±∞, which AVX2 converted to −128).
            let tiny: Vec<f32> = (0..n).map(|i| ((i % 255) as f32 - 127.0) * 1e-39).collect();
            inputs.push(tiny);
            for x in &inputs {
                let (mut q0, mut d0) = (vec![0i8; x.len()], vec![0f32; nb]);
                quant::quantize_activations_per(block, x, &mut q0, &mut d0);
                assert!(q0.iter().all(|&q| q != i8::MIN), "activation quants stay in [-127, 127]");
                for k in &sets {
                    let (mut q, mut d) = (vec![0x11i8; x.len()], vec![f32::NAN; nb]);
                    k.quantize_activations_per(block, x, &mut q, &mut d);
                    assert_eq!(q, q0, "{}: quants, {nb} blocks of {block}", k.name());
                    assert_bits(&format!("{}: scales, {nb} blocks of {block}", k.name()), &d, &d0);
                }
            }
        }
    }
}
