//! Borrowed weight matrices in the element types a model file can hold.

use half::{bf16, f16};

use crate::kquant::{BlockQ4K, BlockQ5K, BlockQ6K, KBlock, QK_K};
use crate::legacy::{BlockQ4_1, BlockQ5_0, BlockQ5_1};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK};

/// The elements of a row-major matrix, borrowed from the model file.
#[derive(Clone, Copy, Debug)]
pub enum MatrixData<'a> {
    /// IEEE single precision.
    F32(&'a [f32]),
    /// IEEE half precision.
    F16(&'a [f16]),
    /// bfloat16 (the top 16 bits of an f32).
    BF16(&'a [bf16]),
    /// ggml Q8_0: each row is `cols / 32` consecutive blocks (`cols` a multiple of 32).
    Q8_0(&'a [BlockQ8_0]),
    /// ggml Q4_0: each row is `cols / 32` consecutive blocks (`cols` a multiple of 32).
    Q4_0(&'a [BlockQ4_0]),
    /// ggml Q4_K: each row is `cols / 256` consecutive super-blocks.
    Q4K(&'a [BlockQ4K]),
    /// ggml Q5_K: each row is `cols / 256` consecutive super-blocks.
    Q5K(&'a [BlockQ5K]),
    /// ggml Q6_K: each row is `cols / 256` consecutive super-blocks.
    Q6K(&'a [BlockQ6K]),
    /// ggml Q4_1 (read only): each row is `cols / 32` consecutive blocks.
    Q4_1(&'a [BlockQ4_1]),
    /// ggml Q5_0 (read only): each row is `cols / 32` consecutive blocks.
    Q5_0(&'a [BlockQ5_0]),
    /// ggml Q5_1 (read only): each row is `cols / 32` consecutive blocks.
    Q5_1(&'a [BlockQ5_1]),
}

impl MatrixData<'_> {
    /// Number of elements (32 per block for the block-quantized types).
    pub fn len(&self) -> usize {
        match self {
            MatrixData::F32(d) => d.len(),
            MatrixData::F16(d) => d.len(),
            MatrixData::BF16(d) => d.len(),
            MatrixData::Q8_0(d) => d.len() * QK,
            MatrixData::Q4_0(d) => d.len() * QK,
            MatrixData::Q4K(d) => d.len() * QK_K,
            MatrixData::Q5K(d) => d.len() * QK_K,
            MatrixData::Q6K(d) => d.len() * QK_K,
            MatrixData::Q4_1(d) => d.len() * QK,
            MatrixData::Q5_0(d) => d.len() * QK,
            MatrixData::Q5_1(d) => d.len() * QK,
        }
    }

    /// Elements per storage unit: 1 for the float types, 32 for the Q*_0/Q*_1 block
    /// types, 256 for the K-quants.
    pub fn block_len(&self) -> usize {
        match self {
            MatrixData::F32(_) | MatrixData::F16(_) | MatrixData::BF16(_) => 1,
            MatrixData::Q8_0(_)
            | MatrixData::Q4_0(_)
            | MatrixData::Q4_1(_)
            | MatrixData::Q5_0(_)
            | MatrixData::Q5_1(_) => QK,
            MatrixData::Q4K(_) | MatrixData::Q5K(_) | MatrixData::Q6K(_) => QK_K,
        }
    }

    /// Bytes of storage (what a matmul reads).
    pub fn n_bytes(&self) -> usize {
        match self {
            MatrixData::F32(d) => core::mem::size_of_val(*d),
            MatrixData::F16(d) => core::mem::size_of_val(*d),
            MatrixData::BF16(d) => core::mem::size_of_val(*d),
            MatrixData::Q8_0(d) => core::mem::size_of_val(*d),
            MatrixData::Q4_0(d) => core::mem::size_of_val(*d),
            MatrixData::Q4K(d) => core::mem::size_of_val(*d),
            MatrixData::Q5K(d) => core::mem::size_of_val(*d),
            MatrixData::Q6K(d) => core::mem::size_of_val(*d),
            MatrixData::Q4_1(d) => core::mem::size_of_val(*d),
            MatrixData::Q5_0(d) => core::mem::size_of_val(*d),
            MatrixData::Q5_1(d) => core::mem::size_of_val(*d),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to f32 (exact for the float types; each block type's dequantized value).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            MatrixData::F32(d) => d[i],
            MatrixData::F16(d) => d[i].to_f32(),
            MatrixData::BF16(d) => d[i].to_f32(),
            MatrixData::Q8_0(d) => d[i / QK].get(i % QK),
            MatrixData::Q4_0(d) => d[i / QK].get(i % QK),
            MatrixData::Q4K(d) => d[i / QK_K].get(i % QK_K),
            MatrixData::Q5K(d) => d[i / QK_K].get(i % QK_K),
            MatrixData::Q6K(d) => d[i / QK_K].get(i % QK_K),
            MatrixData::Q4_1(d) => d[i / QK].get(i % QK),
            MatrixData::Q5_0(d) => d[i / QK].get(i % QK),
            MatrixData::Q5_1(d) => d[i / QK].get(i % QK),
        }
    }
}

/// A row-major `rows × cols` matrix: row `r` is the `cols` elements starting at `r·cols`.
///
/// This is a `nn.Linear` weight `[out, in]` as torch stores it, and a GGUF tensor with
/// `ne = [cols, rows]`. Multiplying it by a vector gives `rows` outputs.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    data: MatrixData<'a>,
    rows: usize,
    cols: usize,
}

impl<'a> Matrix<'a> {
    /// Wraps `data` as `rows × cols`; `None` when the element count does not match, or
    /// when a block type's rows do not hold whole blocks (`cols` not a multiple of
    /// [`MatrixData::block_len`]).
    pub fn new(data: MatrixData<'a>, rows: usize, cols: usize) -> Option<Self> {
        let whole_blocks = cols.is_multiple_of(data.block_len());
        (whole_blocks && rows.checked_mul(cols)? == data.len()).then_some(Matrix { data, rows, cols })
    }

    /// Output size.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The elements.
    pub fn data(&self) -> MatrixData<'a> {
        self.data
    }

    /// Row `r` widened to f32, written into `out` (`cols` floats). Used for embedding lookups.
    pub fn row_to_f32(&self, r: usize, out: &mut [f32]) {
        let start = r * self.cols;
        for (c, o) in out.iter_mut().enumerate().take(self.cols) {
            *o = self.data.get_f32(start + c);
        }
    }
}
