//! Older ggml 32-element block types, read only: Q4_1, Q5_0, Q5_1.
//!
//! Layout facts are ggml's (`block_q4_1`, `block_q5_0`, `block_q5_1` and their
//! `dequantize_row_*`); `docs/FORMAT.md` §1.4 describes them. They run through the scalar
//! integer kernel of [`crate::kquant::KBlock`] in every kernel set: they only appear in
//! older files and, in llama.cpp's K-quant files of small models, for the few tensors
//! whose rows are not a multiple of 256.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::kquant::KBlock;
use crate::quant::QK;

fn f16_le(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Q4_1: 32 weights `q·d + m`, `q` four bits, nibble order as Q4_0 (20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale (f16 bytes).
    pub d: [u8; 2],
    /// Offset (f16 bytes).
    pub m: [u8; 2],
    /// Byte `j` holds element `j` (low nibble) and `j + 16` (high nibble).
    pub qs: [u8; QK / 2],
}

/// Q5_0: 32 weights `(q − 16)·d`, `q` five bits (22 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_0 {
    /// Scale (f16 bytes).
    pub d: [u8; 2],
    /// Fifth bits: bit `j` of this little-endian u32 belongs to element `j`.
    pub qh: [u8; 4],
    /// Low four bits, nibble order as Q4_0.
    pub qs: [u8; QK / 2],
}

/// Q5_1: 32 weights `q·d + m`, `q` five bits (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_1 {
    /// Scale (f16 bytes).
    pub d: [u8; 2],
    /// Offset (f16 bytes).
    pub m: [u8; 2],
    /// Fifth bits, as in [`BlockQ5_0`].
    pub qh: [u8; 4],
    /// Low four bits, nibble order as Q4_0.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20 && core::mem::align_of::<BlockQ4_1>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ5_0>() == 22 && core::mem::align_of::<BlockQ5_0>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ5_1>() == 24 && core::mem::align_of::<BlockQ5_1>() == 1);

/// Element `j`'s nibble in Q4_0 order.
#[inline]
fn nibble(qs: &[u8; QK / 2], j: usize) -> u8 {
    let byte = qs[j % (QK / 2)];
    if j < QK / 2 { byte & 0x0F } else { byte >> 4 }
}

/// Element `j`'s five-bit code.
#[inline]
fn code5(qs: &[u8; QK / 2], qh: [u8; 4], j: usize) -> u8 {
    nibble(qs, j) | ((((u32::from_le_bytes(qh) >> j) & 1) as u8) << 4)
}

/// `(Σ c_j·xq_j, Σ xq_j)` for codes `c` (`|·| ≤ 31·127·32 < 2¹⁷`).
#[inline]
fn sums(code: impl Fn(usize) -> i32, xq: &[i8]) -> (i32, i32) {
    let (mut qx, mut xs) = (0i32, 0i32);
    for (j, &x) in xq.iter().enumerate().take(QK) {
        qx += code(j) * x as i32;
        xs += x as i32;
    }
    (qx, xs)
}

impl KBlock for BlockQ4_1 {
    const ELEMS: usize = QK;
    const HAS_MIN: bool = true;
    fn block_sums(&self, xq: &[i8]) -> (i32, i32) {
        sums(|j| nibble(&self.qs, j) as i32, xq)
    }
    fn multipliers(&self) -> (f32, f32) {
        (f16_le(self.d), f16_le(self.m))
    }
    /// ggml: `q·d + m`.
    fn get(&self, e: usize) -> f32 {
        nibble(&self.qs, e) as f32 * f16_le(self.d) + f16_le(self.m)
    }
}

impl KBlock for BlockQ5_0 {
    const ELEMS: usize = QK;
    const HAS_MIN: bool = false;
    fn block_sums(&self, xq: &[i8]) -> (i32, i32) {
        (sums(|j| code5(&self.qs, self.qh, j) as i32 - 16, xq).0, 0)
    }
    fn multipliers(&self) -> (f32, f32) {
        (f16_le(self.d), 0.0)
    }
    /// ggml: `(q − 16)·d`.
    fn get(&self, e: usize) -> f32 {
        (code5(&self.qs, self.qh, e) as i32 - 16) as f32 * f16_le(self.d)
    }
}

impl KBlock for BlockQ5_1 {
    const ELEMS: usize = QK;
    const HAS_MIN: bool = true;
    fn block_sums(&self, xq: &[i8]) -> (i32, i32) {
        sums(|j| code5(&self.qs, self.qh, j) as i32, xq)
    }
    fn multipliers(&self) -> (f32, f32) {
        (f16_le(self.d), f16_le(self.m))
    }
    /// ggml: `q·d + m`.
    fn get(&self, e: usize) -> f32 {
        code5(&self.qs, self.qh, e) as f32 * f16_le(self.d) + f16_le(self.m)
    }
}
