//! ggml block-quantized formats (Q8_0, Q4_0): block layouts, the reference quantizers,
//! dequantizers, and the activation quantizer used by the integer matmul paths.
//!
//! The layouts and rounding follow ggml (`ggml/src/ggml-common.h`, `block_q8_0` and
//! `block_q4_0`; `ggml/src/ggml-quants.c`, `quantize_row_q8_0_ref`,
//! `quantize_row_q4_0_ref`, `dequantize_row_q8_0`, `dequantize_row_q4_0`, read at
//! ggml-org/ggml@5136ed06), restated here in our own code. See `docs/FORMAT.md` §1.4.
//!
//! # Alignment
//!
//! ggml declares the scale as `ggml_half` (alignment 2). Here it is stored as its two
//! little-endian bytes (`d: [u8; 2]`), so both block types have alignment 1 and
//! `bytemuck::cast_slice::<u8, BlockQ8_0>` succeeds at *any* byte offset. What GGUF
//! guarantees: every tensor's data starts at a multiple of `general.alignment` (32 by
//! default) from the start of the (itself aligned) data section, so tensor starts are
//! 32-aligned in an mmap; block `i` then starts at `34·i` (Q8_0) or `18·i` (Q4_0) bytes,
//! i.e. only 2-aligned. The kernels therefore use unaligned loads everywhere and never
//! rely on more than byte alignment of blocks.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements per Q8_0 / Q4_0 block (ggml `QK8_0`, `QK4_0`).
pub const QK: usize = 32;

/// 32 weights as `qs[j] · d` (ggml `block_q8_0`, 34 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// The scale: IEEE binary16, little-endian bytes.
    pub d: [u8; 2],
    /// The quants; element `j` is `qs[j] · d`.
    pub qs: [i8; QK],
}

/// 32 weights as 4-bit codes (ggml `block_q4_0`, 18 bytes).
///
/// Nibble order (ggml): byte `j` (0..16) holds element `j` in its **low** nibble and
/// element `j + 16` in its **high** nibble. Element value = `(nibble − 8) · d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_0 {
    /// The scale: IEEE binary16, little-endian bytes.
    pub d: [u8; 2],
    /// Packed nibbles, see the type docs for the order.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::align_of::<BlockQ8_0>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(core::mem::align_of::<BlockQ4_0>() == 1);

impl BlockQ8_0 {
    /// A block from its scale and quants.
    pub fn new(d: f16, qs: [i8; QK]) -> Self {
        BlockQ8_0 { d: d.to_bits().to_le_bytes(), qs }
    }

    /// The scale as f16.
    #[inline]
    pub fn d(&self) -> f16 {
        f16::from_bits(u16::from_le_bytes(self.d))
    }

    /// The scale widened to f32 (exact).
    #[inline]
    pub fn scale(&self) -> f32 {
        self.d().to_f32()
    }

    /// Element `j` as f32: `qs[j] · d`.
    #[inline]
    pub fn get(&self, j: usize) -> f32 {
        self.qs[j] as f32 * self.scale()
    }
}

impl BlockQ4_0 {
    /// A block from its scale and 32 codes in `0..16` (element order, not packed).
    pub fn new(d: f16, codes: [u8; QK]) -> Self {
        let mut qs = [0u8; QK / 2];
        for j in 0..QK / 2 {
            qs[j] = (codes[j] & 0x0F) | (codes[j + QK / 2] << 4);
        }
        BlockQ4_0 { d: d.to_bits().to_le_bytes(), qs }
    }

    /// The scale as f16.
    #[inline]
    pub fn d(&self) -> f16 {
        f16::from_bits(u16::from_le_bytes(self.d))
    }

    /// The scale widened to f32 (exact).
    #[inline]
    pub fn scale(&self) -> f32 {
        self.d().to_f32()
    }

    /// Element `j`'s signed code `nibble − 8`, in `-8..=7`.
    #[inline]
    pub fn code(&self, j: usize) -> i8 {
        let byte = self.qs[j % (QK / 2)];
        let nibble = if j < QK / 2 { byte & 0x0F } else { byte >> 4 };
        nibble as i8 - 8
    }

    /// Element `j` as f32: `(nibble − 8) · d`.
    #[inline]
    pub fn get(&self, j: usize) -> f32 {
        self.code(j) as f32 * self.scale()
    }
}

/// ggml `quantize_row_q8_0_ref`: per block `d = amax / 127`, `qs[j] = round(x[j] / d)`
/// computed as `x[j] · (1/d)` and rounded half away from zero; `d` is stored as f16
/// (round to nearest even). An all-zero block gets `d = 0` and zero quants.
///
/// `x.len()` must be `32 · out.len()`.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), out.len() * QK, "quantize_row_q8_0: x must hold 32 values per block");
    for (xb, block) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let mut amax = 0.0f32;
        for &v in xb {
            // ggml: `amax = MAX(amax, fabsf(v))` with `MAX(a, b) = a > b ? a : b`.
            let a = libm::fabsf(v);
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        for j in 0..QK {
            qs[j] = crate::math::round_half_away(xb[j] * id) as i8;
        }
        *block = BlockQ8_0::new(f16::from_f32(d), qs);
    }
}

/// ggml `quantize_row_q4_0_ref`: per block take `max`, the value of largest magnitude
/// (the first one on ties) *with its sign*, `d = max / −8`, and code
/// `min(15, trunc(x[j] · (1/d) + 8.5))`. So `max` itself maps to code 0 (value `−8·d`)
/// and the opposite extreme clamps to 15 (`7·d`). `d` is stored as f16.
///
/// `x.len()` must be `32 · out.len()`.
pub fn quantize_row_q4_0(x: &[f32], out: &mut [BlockQ4_0]) {
    assert_eq!(x.len(), out.len() * QK, "quantize_row_q4_0: x must hold 32 values per block");
    for (xb, block) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if amax < libm::fabsf(v) {
                amax = libm::fabsf(v);
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut codes = [0u8; QK];
        for j in 0..QK {
            // C's `(int8_t)` truncates toward zero; the argument is in [0, 16.5] for finite input.
            codes[j] = ((xb[j] * id + 8.5) as i8).min(15) as u8;
        }
        *block = BlockQ4_0::new(f16::from_f32(d), codes);
    }
}

/// ggml `dequantize_row_q8_0`: `out[32·b + j] = qs[j] · d`.
pub fn dequantize_row_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    assert_eq!(out.len(), blocks.len() * QK, "dequantize_row_q8_0: out must hold 32 values per block");
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        for j in 0..QK {
            ob[j] = block.get(j);
        }
    }
}

/// ggml `dequantize_row_q4_0`: `out[32·b + j] = (nibble_j − 8) · d`, nibble order as in
/// [`BlockQ4_0`].
pub fn dequantize_row_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) {
    assert_eq!(out.len(), blocks.len() * QK, "dequantize_row_q4_0: out must hold 32 values per block");
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        for j in 0..QK {
            ob[j] = block.get(j);
        }
    }
}

/// Activation quantization for the integer matmul paths: Q8_0 semantics with the scale
/// kept in f32, as separate arrays (quants `qs`, one scale per 32 values in `d`).
///
/// Per block: `d = amax / 127`, `id = 1/d` ([`inverse_scale`]: 0 when that is not
/// finite), `qs[j] = round(x[j]·id)` rounded half away from zero (ggml
/// `quantize_row_q8_0_ref` rounding). For finite input the quants lie in `[-127, 127]`
/// (`|x·id| ≤ 127·(1+2⁻²³)²`), never −128: that is what keeps AVX2 `maddubs` (sign moved
/// onto the activation) and the NEON `smull`+`smlal` pair sums from saturating.
///
/// Why f32 and not f16 scales (ggml's `vec_dot_type` stores f16): activations are
/// quantized at run time, so the scale never touches a file, and an f16 scale would
/// underflow to subnormals for blocks with `amax < 127·2⁻¹⁴ ≈ 0.0078` and lose precision.
///
/// This scalar function is the specification; every kernel set's SIMD quantizer must
/// produce identical bits (tested).
pub fn quantize_activations(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    quantize_activations_per(QK, x, qs, d)
}

/// [`quantize_activations`] with one scale per `block` values (a multiple of 32): the
/// K-quant kernels quantize per 256-element super-block, so that one scale covers all of
/// a weight super-block and its sub-block scales can multiply in integers (the layout
/// ggml's `Q8_K` has for the same reason).
pub fn quantize_activations_per(block: usize, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    assert!(block > 0 && block.is_multiple_of(QK), "quantize_activations: block must be a multiple of 32");
    assert_eq!(x.len(), qs.len(), "quantize_activations: qs must have x's length");
    assert_eq!(x.len(), d.len() * block, "quantize_activations: one scale per block");
    for ((xb, qb), db) in x.chunks_exact(block).zip(qs.chunks_exact_mut(block)).zip(d.iter_mut()) {
        let mut amax = 0.0f32;
        for &v in xb {
            amax = amax.max(libm::fabsf(v));
        }
        let scale = amax / 127.0;
        let id = inverse_scale(scale);
        for (q, &v) in qb.iter_mut().zip(xb) {
            *q = crate::math::round_half_away(v * id) as i8;
        }
        *db = scale;
    }
}

/// `1/scale` for the activation quantizers, or 0 where that is not finite: an all-zero
/// block (`scale = 0`), and a block so small that `1/scale` overflows (`amax < 127/f32::MAX
/// ≈ 3.7·10⁻³⁷`). That block's quants are then 0: with an infinite `id`, `x·id` would be
/// ±∞ (or NaN for `x = 0`), which the ISAs convert differently (x86 to −128, Arm and Rust
/// casts saturate), and a −128 breaks the sign trick of the AVX2 integer tiles.
#[inline(always)]
pub(crate) fn inverse_scale(scale: f32) -> f32 {
    let id = 1.0 / scale;
    if id.is_finite() { id } else { 0.0 }
}

/// f16 bits → f32 without branches on the common path and without FP16 hardware:
/// `(bits & 0x7fff) << 13` read as an f32 and multiplied by `2¹¹²` rebiases the exponent
/// exactly (f16 subnormals become f32 subnormals first, then exact normals); exponent 31
/// (Inf/NaN) is mapped to 255 with the mantissa kept and NaNs quieted, as F16C and
/// Arm `fcvt` do. Exact for every input (tested against `half` over all 65536 bit
/// patterns). Needs the default IEEE mode (no flush-to-zero), which is what Linux and
/// Android run with.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn f16_bits_to_f32(bits: u16) -> f32 {
    let em = (bits & 0x7fff) as u32;
    let sign = ((bits & 0x8000) as u32) << 16;
    let magnitude = if em >= 0x7c00 {
        let quiet = if em > 0x7c00 { 0x0040_0000 } else { 0 };
        (em << 13) | 0x7f80_0000 | quiet
    } else {
        (f32::from_bits(em << 13) * f32::from_bits(0x7780_0000)).to_bits()
    };
    f32::from_bits(magnitude | sign)
}

/// `Σ_j w.qs[j] · x[j]` over one Q8_0 block and 32 activation quants (exact in i32).
#[inline]
pub fn dot_block_q8_0(w: &BlockQ8_0, x: &[i8]) -> i32 {
    let mut sum = 0i32;
    for j in 0..QK {
        sum += w.qs[j] as i32 * x[j] as i32;
    }
    sum
}

/// `Σ_j (nibble_j − 8) · x[j]` over one Q4_0 block and 32 activation quants (exact in i32).
#[inline]
pub fn dot_block_q4_0(w: &BlockQ4_0, x: &[i8]) -> i32 {
    let mut sum = 0i32;
    for j in 0..QK / 2 {
        let lo = (w.qs[j] & 0x0F) as i32 - 8;
        let hi = (w.qs[j] >> 4) as i32 - 8;
        sum += lo * x[j] as i32 + hi * x[j + QK / 2] as i32;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free conversion the NEON kernels use agrees with `half` on all 65536
    /// bit patterns (NaNs compared by bits: payload and quiet bit are kept).
    #[test]
    fn f16_bits_to_f32_is_exact_for_every_pattern() {
        for bits in 0..=u16::MAX {
            let want = f16::from_bits(bits).to_f32();
            let got = f16_bits_to_f32(bits);
            assert_eq!(got.to_bits(), want.to_bits(), "f16 bits {bits:#06x}");
        }
    }
}
