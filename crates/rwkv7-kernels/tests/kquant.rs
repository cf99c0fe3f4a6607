//! K-quant (Q4_K, Q5_K, Q6_K) and legacy (Q4_1, Q5_0, Q5_1) conformance:
//! - hand-built blocks from raw bytes dequantize to the values `docs/FORMAT.md` §1.4–1.5
//!   describes (every scale/min packing position, nibble and high bit);
//! - every kernel set against the scalar specification: float results within the
//!   reordered-sum bound, integer sums bit-exact on exact-arithmetic data, outputs
//!   independent of token count and row range;
//! - the error-minimising encoders beat absmax scaling.

mod common;

use common::*;
use half::f16;
use rwkv7_kernels::kquant::{self, BlockQ4K, BlockQ5K, BlockQ6K, KBlock, QK_K, pack_scale_min};
use rwkv7_kernels::kquant_encode::{quantize_row_q4_k, quantize_row_q5_k, quantize_row_q6_k};
use rwkv7_kernels::legacy::{BlockQ4_1, BlockQ5_0, BlockQ5_1};
use rwkv7_kernels::quant::QK;
use rwkv7_kernels::{KernelSet, Matrix, MatrixData};

/// A code in `0..n` for element `e` with no period (Knuth's multiplicative hash), so a
/// nibble, high bit or scale taken from the wrong sub-block or half changes the value.
fn hcode(e: usize, n: u64) -> u8 {
    (((e as u64 + 1).wrapping_mul(2_654_435_761) >> 13) % n) as u8
}

fn h(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

/// Sub-block scales and mins that use every bit of the 6-bit fields (values ≥ 16 put
/// bits in the packed top-2-bit positions).
const SC: [u8; 8] = [1, 17, 33, 63, 2, 48, 31, 60];
const MN: [u8; 8] = [62, 3, 47, 16, 63, 5, 32, 50];

/// The 12 scale bytes written out from the layout description (FORMAT.md §1.5), not via
/// the library's packer: bytes 0..4 = scale j (6 bits) | top 2 bits of scale j+4;
/// bytes 4..8 = min j | top 2 bits of min j+4; bytes 8..12 = low nibble of scale j+4 |
/// low nibble of min j+4 << 4.
fn scale_bytes() -> [u8; 12] {
    let mut b = [0u8; 12];
    for j in 0..4 {
        b[j] = SC[j] | ((SC[j + 4] >> 4) << 6);
        b[j + 4] = MN[j] | ((MN[j + 4] >> 4) << 6);
        b[j + 8] = (SC[j + 4] & 15) | ((MN[j + 4] & 15) << 4);
    }
    b
}

/// Casts `bytes` at an odd offset (blocks have alignment 1).
fn at_odd_offset<W: bytemuck::Pod>(bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![0xA5u8; bytes.len() + 1];
    v[1..].copy_from_slice(bytes);
    let _: &[W] = bytemuck::cast_slice(&v[1..]);
    v
}

fn values<W: KBlock>(blocks: &[W]) -> Vec<f32> {
    let mut out = vec![0.0; blocks.len() * W::ELEMS];
    kquant::dequantize_row(blocks, &mut out);
    out
}

#[test]
fn q4_k_hand_built() {
    let code = |e: usize| hcode(e, 16);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&h(0.5));
    bytes.extend_from_slice(&h(0.25));
    bytes.extend_from_slice(&scale_bytes());
    // qs byte 32i + l: sub-block 2i element l (low nibble), sub-block 2i+1 (high nibble).
    for i in 0..4 {
        for l in 0..32 {
            bytes.push(code(64 * i + l) | (code(64 * i + 32 + l) << 4));
        }
    }
    assert_eq!(bytes.len(), 144);
    let v = at_odd_offset::<BlockQ4K>(&bytes);
    let blocks: &[BlockQ4K] = bytemuck::cast_slice(&v[1..]);
    let want: Vec<f32> =
        (0..QK_K).map(|e| 0.5 * SC[e / 32] as f32 * code(e) as f32 - 0.25 * MN[e / 32] as f32).collect();
    assert_eq!(values(blocks), want);
    assert_eq!(pack_scale_min(&SC, &MN), scale_bytes());
    check_one_hot(MatrixData::Q4K(blocks), &want);
}

#[test]
fn q5_k_hand_built() {
    let code = |e: usize| hcode(e, 32);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&h(-0.5));
    bytes.extend_from_slice(&h(2.0));
    bytes.extend_from_slice(&scale_bytes());
    // qh byte l: bit j = fifth bit of sub-block j's element l.
    for l in 0..32 {
        bytes.push((0..8).fold(0u8, |acc, j| acc | ((code(32 * j + l) >> 4) << j)));
    }
    for i in 0..4 {
        for l in 0..32 {
            bytes.push((code(64 * i + l) & 15) | ((code(64 * i + 32 + l) & 15) << 4));
        }
    }
    assert_eq!(bytes.len(), 176);
    let v = at_odd_offset::<BlockQ5K>(&bytes);
    let blocks: &[BlockQ5K] = bytemuck::cast_slice(&v[1..]);
    let want: Vec<f32> =
        (0..QK_K).map(|e| -0.5 * SC[e / 32] as f32 * code(e) as f32 - 2.0 * MN[e / 32] as f32).collect();
    assert_eq!(values(blocks), want);
    check_one_hot(MatrixData::Q5K(blocks), &want);
}

#[test]
fn q6_k_hand_built() {
    let code = |e: usize| hcode(e, 64);
    let scales: [i8; 16] = [-128, 127, 1, -1, 64, -37, 5, 0, 99, -64, 2, 3, -5, 17, -100, 33];
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    // e = 128n + 32k + l: low nibble of ql[64n + l] (k=0), ql[64n + 32 + l] (k=1), high
    // nibbles of the same for k = 2, 3; top bits at bits 2k..2k+2 of qh[32n + l].
    for n in 0..2 {
        for l in 0..32 {
            let c = |k: usize| code(128 * n + 32 * k + l);
            ql[64 * n + l] = (c(0) & 15) | ((c(2) & 15) << 4);
            ql[64 * n + 32 + l] = (c(1) & 15) | ((c(3) & 15) << 4);
            qh[32 * n + l] = (c(0) >> 4) | ((c(1) >> 4) << 2) | ((c(2) >> 4) << 4) | ((c(3) >> 4) << 6);
        }
    }
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&ql);
    bytes.extend_from_slice(&qh);
    bytes.extend(scales.iter().map(|&s| s as u8));
    bytes.extend_from_slice(&h(0.125));
    assert_eq!(bytes.len(), 210);
    let v = at_odd_offset::<BlockQ6K>(&bytes);
    let blocks: &[BlockQ6K] = bytemuck::cast_slice(&v[1..]);
    let want: Vec<f32> = (0..QK_K).map(|e| 0.125 * scales[e / 16] as f32 * (code(e) as f32 - 32.0)).collect();
    assert_eq!(values(blocks), want);
    check_one_hot(MatrixData::Q6K(blocks), &want);
}

#[test]
fn legacy_hand_built() {
    let code = |j: usize| hcode(j, 32);
    let qs: Vec<u8> = (0..16).map(|j| (code(j) & 15) | ((code(j + 16) & 15) << 4)).collect();
    let qh = (0..32).fold(0u32, |acc, j| acc | (((code(j) >> 4) as u32) << j)).to_le_bytes();
    // Q4_1: d, m, nibbles (only the low 4 bits of the codes).
    let mut b41 = [h(0.5), h(-3.0)].concat();
    b41.extend_from_slice(&qs);
    let v = at_odd_offset::<BlockQ4_1>(&b41);
    let q41: &[BlockQ4_1] = bytemuck::cast_slice(&v[1..]);
    let want41: Vec<f32> = (0..QK).map(|j| (code(j) & 15) as f32 * 0.5 - 3.0).collect();
    assert_eq!(values(q41), want41);
    check_one_hot(MatrixData::Q4_1(q41), &want41);
    // Q5_0: d, qh (u32 LE, bit j = fifth bit of element j), nibbles; value (q − 16)·d.
    let mut b50 = h(0.25).to_vec();
    b50.extend_from_slice(&qh);
    b50.extend_from_slice(&qs);
    let v = at_odd_offset::<BlockQ5_0>(&b50);
    let q50: &[BlockQ5_0] = bytemuck::cast_slice(&v[1..]);
    let want50: Vec<f32> = (0..QK).map(|j| (code(j) as f32 - 16.0) * 0.25).collect();
    assert_eq!(values(q50), want50);
    check_one_hot(MatrixData::Q5_0(q50), &want50);
    // Q5_1: d, m, qh, nibbles; value q·d + m.
    let mut b51 = [h(2.0), h(0.5)].concat();
    b51.extend_from_slice(&qh);
    b51.extend_from_slice(&qs);
    let v = at_odd_offset::<BlockQ5_1>(&b51);
    let q51: &[BlockQ5_1] = bytemuck::cast_slice(&v[1..]);
    let want51: Vec<f32> = (0..QK).map(|j| code(j) as f32 * 2.0 + 0.5).collect();
    assert_eq!(values(q51), want51);
    check_one_hot(MatrixData::Q5_1(q51), &want51);
}

/// One-hot activations `127·e_j` (so `d_x = 1`, exact) through every set: the matmul
/// reads element `j` as the dequantizer does, and `get_f32` agrees.
fn check_one_hot(data: MatrixData<'_>, want: &[f32]) {
    let n = want.len();
    let m = Matrix::new(data, 1, n).unwrap();
    for (j, &wj) in want.iter().enumerate() {
        assert_eq!(data.get_f32(j), wj, "get_f32 {j}");
    }
    for k in &kernel_sets("one-hot") {
        for j in 0..n {
            let mut x = vec![0.0f32; n];
            x[j] = 127.0;
            let mut out = [f32::NAN];
            k.matmul(&m, &x, &mut out, 1);
            assert_eq!(out[0], 127.0 * want[j], "{}: element {j}", k.name());
        }
    }
}

/// The K-quant types under test, with random blocks (all codes, scales across decades).
#[derive(Clone, Copy, Debug)]
enum Ty {
    Q4K,
    Q5K,
    Q6K,
    Q4_1,
    Q5_0,
    Q5_1,
}

impl Ty {
    /// Elements per block, and so per activation scale on the integer path.
    fn elems(self) -> usize {
        match self {
            Ty::Q4K | Ty::Q5K | Ty::Q6K => QK_K,
            Ty::Q4_1 | Ty::Q5_0 | Ty::Q5_1 => QK,
        }
    }
}

struct Blocks {
    q4k: Vec<BlockQ4K>,
    q5k: Vec<BlockQ5K>,
    q6k: Vec<BlockQ6K>,
    q41: Vec<BlockQ4_1>,
    q50: Vec<BlockQ5_0>,
    q51: Vec<BlockQ5_1>,
}

fn random_bytes<W: bytemuck::Pod + bytemuck::Zeroable>(rng: &mut Rng, n: usize) -> Vec<W> {
    let mut v = vec![W::zeroed(); n];
    for b in bytemuck::cast_slice_mut::<W, u8>(&mut v) {
        *b = rng.next_u64() as u8;
    }
    v
}

impl Blocks {
    /// Random bytes everywhere, then sane f16 scales (`scale(rng)` in [2⁻¹², 2⁻²], or
    /// `fixed` when given: the exact-arithmetic test uses 1 and 2).
    fn random(rng: &mut Rng, elems: usize, fixed: Option<&dyn Fn(&mut Rng) -> f32>) -> Self {
        let scale = |rng: &mut Rng| match fixed {
            Some(f) => h(f(rng)),
            None => h((1.0 + rng.f32().abs()) * 2f32.powi(-(rng.below(11) as i32 + 2))),
        };
        let mut b = Blocks {
            q4k: random_bytes(rng, elems / QK_K),
            q5k: random_bytes(rng, elems / QK_K),
            q6k: random_bytes(rng, elems / QK_K),
            q41: random_bytes(rng, elems / QK),
            q50: random_bytes(rng, elems / QK),
            q51: random_bytes(rng, elems / QK),
        };
        b.q4k.iter_mut().for_each(|x| (x.d, x.dmin) = (scale(rng), scale(rng)));
        b.q5k.iter_mut().for_each(|x| (x.d, x.dmin) = (scale(rng), scale(rng)));
        b.q6k.iter_mut().for_each(|x| x.d = scale(rng));
        b.q41.iter_mut().for_each(|x| (x.d, x.m) = (scale(rng), scale(rng)));
        b.q50.iter_mut().for_each(|x| x.d = scale(rng));
        b.q51.iter_mut().for_each(|x| (x.d, x.m) = (scale(rng), scale(rng)));
        b
    }

    fn matrix(&self, ty: Ty, rows: usize, cols: usize) -> Matrix<'_> {
        let data = match ty {
            Ty::Q4K => MatrixData::Q4K(&self.q4k),
            Ty::Q5K => MatrixData::Q5K(&self.q5k),
            Ty::Q6K => MatrixData::Q6K(&self.q6k),
            Ty::Q4_1 => MatrixData::Q4_1(&self.q41),
            Ty::Q5_0 => MatrixData::Q5_0(&self.q50),
            Ty::Q5_1 => MatrixData::Q5_1(&self.q51),
        };
        Matrix::new(data, rows, cols).expect("test shape")
    }

    /// The dequantized weights of a K-quant type (`None` for the legacy types, whose
    /// bound here is 0: every set runs their scalar kernel).
    fn values(&self, ty: Ty) -> Option<Vec<f32>> {
        match ty {
            Ty::Q4K => Some(values(&self.q4k)),
            Ty::Q5K => Some(values(&self.q5k)),
            Ty::Q6K => Some(values(&self.q6k)),
            Ty::Q4_1 | Ty::Q5_0 | Ty::Q5_1 => None,
        }
    }

    /// Per element `|a·s·c| + |b·m|`: the magnitudes of the two terms the kernels sum
    /// (they can cancel, so `|w|` alone would understate the rounding).
    fn abs_terms(&self, ty: Ty) -> Vec<f32> {
        match ty {
            Ty::Q4K => self
                .q4k
                .iter()
                .flat_map(|b| (0..QK_K).map(move |e| sm_terms(b.d_dmin(), b.scale_min(e / 32), b.code(e))))
                .collect(),
            Ty::Q5K => self
                .q5k
                .iter()
                .flat_map(|b| (0..QK_K).map(move |e| sm_terms(b.d_dmin(), b.scale_min(e / 32), b.code(e))))
                .collect(),
            Ty::Q6K => values(&self.q6k).iter().map(|v| v.abs()).collect(),
            // Legacy types run the scalar kernel in every set: any bound is exact.
            Ty::Q4_1 | Ty::Q5_0 | Ty::Q5_1 => vec![0.0; self.q41.len() * QK],
        }
    }
}

fn sm_terms((d, dmin): (f32, f32), (sc, m): (u8, u8), code: u8) -> f32 {
    (d * sc as f32 * code as f32).abs() + (dmin * m as f32).abs()
}

const TYPES: [Ty; 6] = [Ty::Q4K, Ty::Q5K, Ty::Q6K, Ty::Q4_1, Ty::Q5_0, Ty::Q5_1];

/// Every set against scalar on random data (bound: `dot_bound` over the two terms'
/// magnitudes and the quantized activations), plus decode/prefill and row-split
/// independence. Shapes: odd row counts around the 2/4-row tiles, tokens 1..=9, one to
/// three super-blocks, the 4096-column panel edge (16 and 17 super-blocks), 2048 and 5120,
/// and a wide decode call over three panels.
#[test]
fn matmul_matches_scalar() {
    let sets = kernel_sets("kquant matmul");
    let mut rng = Rng::new(0x4B51);
    let mut shapes = Vec::new();
    for cols in [256, 512, 768] {
        for rows in [1, 2, 3, 5, 7, 9] {
            for tokens in 1..=9 {
                shapes.push((rows, cols, tokens));
            }
        }
    }
    for cols in [2048, 4096, 4352, 5120] {
        shapes.push((3, cols, 1));
        shapes.push((5, cols, 9));
    }
    // Decode across three panels (the last one partial): one wide decode call, each row
    // in one pass (`wide_decode`); the 3-token shape compares three runs' sum with panel
    // by panel bit for bit (the 9-token shapes above span two panels).
    shapes.push((77, 8448, 1));
    shapes.push((3, 8448, 3));
    shapes.push((0, 256, 2));
    shapes.push((3, 256, 0));
    for (rows, cols, tokens) in shapes {
        let b = Blocks::random(&mut rng, rows * cols, None);
        let x = rng.activations(tokens * cols);
        for ty in TYPES {
            let xq = quantized_activations_per(ty.elems(), &x, cols);
            let m = b.matrix(ty, rows, cols);
            let bound: Vec<f64> =
                abs_dot(&b.abs_terms(ty), &xq, rows, cols, tokens).into_iter().map(|s| dot_bound(cols, s)).collect();
            let mut want = vec![f32::NAN; rows * tokens];
            KernelSet::SCALAR.matmul(&m, &x, &mut want, tokens);
            if let Some(w) = b.values(ty) {
                let exact = exact_dot(&w, &xq, rows, cols, tokens);
                assert_close(&format!("{ty:?}/scalar {rows}x{cols}x{tokens} vs exact"), &want, &exact, &bound);
            }
            let mut results = Vec::with_capacity(sets.len());
            for k in &sets {
                let what = format!("{ty:?}/{} {rows}x{cols}x{tokens}", k.name());
                let mut got = vec![f32::NAN; rows * tokens];
                k.matmul(&m, &x, &mut got, tokens);
                assert_close(&what, &got, &want, &bound);
                check_independence(&what, k, &m, &x, tokens, &got);
                results.push((k.name(), got));
            }
            // The VNNI sets' K-quant engine forms AVX2's exact sums with `vpdpwssd`, so
            // their outputs are AVX2's bit for bit.
            if let Some((_, avx2)) = results.iter().find(|(name, _)| *name == "x86_64-avx2") {
                for (name, got) in results.iter().filter(|(name, _)| name.contains("vnni")) {
                    assert_bits(&format!("{ty:?}/{name} {rows}x{cols}x{tokens} vs x86_64-avx2"), got, avx2);
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

/// Exact-arithmetic data: integer activations with a ±127 in every 32 (so `d_x = 1`
/// for every activation block, 32 or 256 values),
/// super-block scales 1 or 2, totals below 2²⁴: every product and partial sum is an
/// integer f32 holds exactly in any order, so every set must return the exact i64 sum
/// bit for bit. Any wrong integer sum (nibble or high-bit placement, scale unpacking,
/// lane mix-up, `maddubs` saturation, Q6_K's −128 scale) would show.
#[test]
fn matmul_exact_on_integer_data() {
    let sets = kernel_sets("kquant exact integer data");
    let mut rng = Rng::new(99);
    let mut checked = [0; TYPES.len()];
    for (rows, cols, tokens) in [(1, 256, 1), (5, 512, 3), (9, 256, 9), (3, 4352, 2)] {
        let mut x: Vec<f32> = (0..tokens * cols).map(|_| (rng.below(255) as i32 - 127) as f32).collect();
        for b in 0..tokens * cols / QK {
            x[b * QK + rng.below(QK as u64) as usize] = if rng.below(2) == 0 { 127.0 } else { -127.0 };
        }
        let one_or_two = |rng: &mut Rng| if rng.below(2) == 0 { 1.0 } else { 2.0 };
        let mut b = Blocks::random(&mut rng, rows * cols, Some(&one_or_two));
        // Small sub-scales keep the totals exact (the hand-built tests cover the extremes).
        let small = |rng: &mut Rng| -> [u8; 8] { core::array::from_fn(|_| rng.below(4) as u8) };
        for blk in &mut b.q4k {
            blk.scales = pack_scale_min(&small(&mut rng), &small(&mut rng));
        }
        for blk in &mut b.q5k {
            blk.scales = pack_scale_min(&small(&mut rng), &small(&mut rng));
        }
        for blk in &mut b.q6k {
            blk.scales = core::array::from_fn(|_| rng.below(8) as i8 - 4);
        }
        for (i, ty) in TYPES.into_iter().enumerate() {
            let m = b.matrix(ty, rows, cols);
            let wv: Vec<f32> = (0..rows * cols).map(|i| m.data().get_f32(i)).collect();
            let mut exact = vec![0.0f32; tokens * rows];
            for t in 0..tokens {
                for r in 0..rows {
                    let term = |c: usize| wv[r * cols + c] as i64 * x[t * cols + c] as i64;
                    let s: i64 = (0..cols).map(term).sum();
                    exact[t * rows + r] = s as f32;
                }
            }
            let big = b.abs_terms(ty);
            let max_partial: f64 =
                (0..rows).map(|r| (0..cols).map(|c| big[r * cols + c] as f64 * 127.0).sum::<f64>()).fold(0.0, f64::max);
            if max_partial >= (1u64 << 24) as f64 {
                // Too large to be exact in f32: the data would not prove anything.
                continue;
            }
            for k in &sets {
                let mut got = vec![f32::NAN; tokens * rows];
                k.matmul(&m, &x, &mut got, tokens);
                assert_bits(&format!("{ty:?}/{} {rows}x{cols}x{tokens}", k.name()), &got, &exact);
            }
            checked[i] += 1;
        }
    }
    // Every type must have been checked on at least two shapes.
    assert!(checked.iter().all(|&n| n >= 2), "exact cases per type: {checked:?}");
}

/// Mean squared error of `deq` against `x`.
fn mse(x: &[f32], deq: &[f32]) -> f64 {
    x.iter().zip(deq).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>() / x.len() as f64
}

/// Absmax baselines: per 32 (Q4_K/Q5_K) `scale = (max − min)/nmax`, `min = −min(x, 0)`;
/// per 16 (Q6_K) `scale = max/−32`; the same 6/8-bit sub-scale quantization.
fn absmax_q4k_q5k(x: &[f32], nmax: u8) -> Vec<f32> {
    let mut out = Vec::new();
    for xb in x.chunks(QK_K) {
        let mut s = [0f32; 8];
        let mut m = [0f32; 8];
        for j in 0..8 {
            let sub = &xb[32 * j..32 * j + 32];
            let lo = sub.iter().fold(0f32, |a, &v| a.min(v));
            let hi = sub.iter().fold(f32::MIN, |a, &v| a.max(v));
            s[j] = (hi - lo) / nmax as f32;
            m[j] = -lo;
        }
        let q6 = |v: &[f32; 8]| {
            let d = f16::from_f32(v.iter().fold(0f32, |a, &b| a.max(b)) / 63.0).to_f32();
            let q: [f32; 8] = core::array::from_fn(|j| if d > 0.0 { (v[j] / d).round().min(63.0) * d } else { 0.0 });
            q
        };
        let (sq, mq) = (q6(&s), q6(&m));
        for (e, &v) in xb.iter().enumerate() {
            let (sc, mn) = (sq[e / 32], mq[e / 32]);
            let q = if sc > 0.0 { ((v + mn) / sc).round().clamp(0.0, nmax as f32) } else { 0.0 };
            out.push(sc * q - mn);
        }
    }
    out
}

fn absmax_q6k(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    for xb in x.chunks(QK_K) {
        let s: [f32; 16] = core::array::from_fn(|h| {
            let max = xb[16 * h..16 * h + 16].iter().fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
            max / -32.0
        });
        let max = s.iter().fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
        let d = f16::from_f32(max / -128.0).to_f32();
        for (e, &v) in xb.iter().enumerate() {
            let sc = if d != 0.0 { (s[e / 16] / d).round().clamp(-128.0, 127.0) * d } else { 0.0 };
            let q = if sc != 0.0 { (v / sc).round().clamp(-32.0, 31.0) } else { 0.0 };
            out.push(sc * q);
        }
    }
    out
}

/// The encoders' round trip beats absmax scaling on uniform, Gaussian-like and
/// outlier-heavy data (measured ratios are printed; the test asserts strictly lower MSE).
#[test]
fn encoders_beat_absmax() {
    let mut rng = Rng::new(5);
    let n = 64 * QK_K;
    let uniform = rng.f32s(n);
    let gaussian: Vec<f32> = (0..n).map(|_| (0..4).map(|_| rng.f32()).sum::<f32>() * 0.5).collect();
    let outliers: Vec<f32> = (0..n).map(|i| if i % 97 == 0 { 20.0 * rng.f32() } else { 0.1 * rng.f32() }).collect();
    for (name, x) in [("uniform", &uniform), ("gaussian", &gaussian), ("outliers", &outliers)] {
        let mut q4 = vec![BlockQ4K::zeroed(); n / QK_K];
        quantize_row_q4_k(x, &mut q4);
        let mut q5 = vec![BlockQ5K::zeroed(); n / QK_K];
        quantize_row_q5_k(x, &mut q5);
        let mut q6 = vec![BlockQ6K::zeroed(); n / QK_K];
        quantize_row_q6_k(x, &mut q6);
        for (ty, ours, base) in [
            ("q4_k", mse(x, &values(&q4)), mse(x, &absmax_q4k_q5k(x, 15))),
            ("q5_k", mse(x, &values(&q5)), mse(x, &absmax_q4k_q5k(x, 31))),
            ("q6_k", mse(x, &values(&q6)), mse(x, &absmax_q6k(x))),
        ] {
            let rel = (ours / mse(x, &vec![0.0; x.len()])).sqrt();
            println!("{name} {ty}: mse {ours:.3e} (relative RMS {rel:.4}) vs absmax {base:.3e} ({:.2}x)", base / ours);
            assert!(ours < base, "{name} {ty}: {ours:e} not below absmax {base:e}");
        }
        // More bits, less error.
        assert!(mse(x, &values(&q6)) < mse(x, &values(&q5)) && mse(x, &values(&q5)) < mse(x, &values(&q4)));
    }
}

/// Exactly representable values round-trip exactly, and zero blocks stay zero.
#[test]
fn encoders_handle_zero_and_constant_blocks() {
    let zeros = vec![0.0f32; QK_K];
    let mut q4 = [BlockQ4K::zeroed()];
    quantize_row_q4_k(&zeros, &mut q4);
    assert_eq!(values(&q4), zeros);
    let mut q6 = [BlockQ6K::zeroed()];
    quantize_row_q6_k(&zeros, &mut q6);
    assert_eq!(values(&q6), zeros);
    let mut q5 = [BlockQ5K::zeroed()];
    quantize_row_q5_k(&zeros, &mut q5);
    assert_eq!(values(&q5), zeros);
}

use bytemuck::Zeroable;
