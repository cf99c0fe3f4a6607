//! Borrowed weight matrices in the element types a model file can hold.

use half::{bf16, f16};

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
        }
    }

    /// Elements per storage unit: 1 for the float types, 32 for the block types.
    pub fn block_len(&self) -> usize {
        match self {
            MatrixData::F32(_) | MatrixData::F16(_) | MatrixData::BF16(_) => 1,
            MatrixData::Q8_0(_) | MatrixData::Q4_0(_) => QK,
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
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to f32 (exact for the float types; `q · d` for the block types).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            MatrixData::F32(d) => d[i],
            MatrixData::F16(d) => d[i].to_f32(),
            MatrixData::BF16(d) => d[i].to_f32(),
            MatrixData::Q8_0(d) => d[i / QK].get(i % QK),
            MatrixData::Q4_0(d) => d[i / QK].get(i % QK),
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
    /// when a block type's rows do not hold whole blocks (`cols % 32 != 0`).
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
