//! The RWKV-7 model as a typed view over a validated GGUF file.
//!
//! Tensor names, shapes and metadata keys follow llama.cpp's `rwkv7` conventions
//! (see `docs/FORMAT.md`). Loading resolves every tensor once into a [`TensorRef`]
//! (plain offsets and shapes, no borrow), so the layer table can live in any storage
//! the caller owns: a `Vec` on a host, a fixed array on a microcontroller.

use core::fmt;

use half::{bf16, f16};
use rwkv7_kernels::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, Matrix, MatrixData,
};

use crate::gguf::{GgmlType, Gguf, TensorCursor, TensorInfo};

/// `general.architecture` of an RWKV-7 file.
pub const ARCHITECTURE: &str = "rwkv7";
/// LayerNorm epsilon of ln0/ln1/ln2/ln_out when the file does not say (torch's default).
pub const DEFAULT_LAYER_NORM_EPS: f32 = 1e-5;
/// GroupNorm epsilon of `ln_x`: `1e-5 · head_size_divisor²` with divisor 8, i.e. 64e-5,
/// hard-coded by the official implementation ("!!! notice eps value !!!").
pub const GROUP_NORM_EPS: f32 = 64e-5;

/// Model dimensions, read from the metadata and cross-checked against tensor shapes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HyperParams {
    /// Number of blocks `L`.
    pub n_layer: usize,
    /// Embedding width `C`.
    pub n_embd: usize,
    /// Head size `N` (64 in every released model).
    pub head_size: usize,
    /// Heads `H = C / N`.
    pub n_head: usize,
    /// Vocabulary size `V` (rows of the embedding and the head).
    pub vocab: usize,
    /// FFN width `F` (4C in released models).
    pub ffn: usize,
    /// Decay LoRA rank `Dw`.
    pub decay_rank: usize,
    /// In-context learning rate ("a", "iclr") LoRA rank `Da`.
    pub iclr_rank: usize,
    /// Value-residual mix LoRA rank `Dv`.
    pub value_rank: usize,
    /// Gate LoRA rank `Dg`.
    pub gate_rank: usize,
    /// LayerNorm epsilon (`rwkv7.attention.layer_norm_epsilon`, default 1e-5).
    pub ln_eps: f32,
}

impl HyperParams {
    /// f32s of recurrent state per layer: att `x_prev` (C), WKV `S` (H·N·N), ffn `x_prev` (C).
    pub fn state_len_per_layer(&self) -> usize {
        2 * self.n_embd + self.n_embd * self.head_size
    }

    /// f32s of recurrent state for the whole model.
    pub fn state_len(&self) -> usize {
        self.n_layer * self.state_len_per_layer()
    }

    /// The largest LoRA rank.
    pub fn max_rank(&self) -> usize {
        self.decay_rank.max(self.iclr_rank).max(self.value_rank).max(self.gate_rank)
    }

    /// The four LoRA ranks together.
    pub fn rank_sum(&self) -> usize {
        self.decay_rank + self.iclr_rank + self.value_rank + self.gate_rank
    }
}

/// A tensor name, printable without an allocator: `blk.{layer}.{suffix}` or `{suffix}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorName {
    /// Block index, for per-layer tensors.
    pub layer: Option<usize>,
    /// The rest of the name, e.g. `time_mix_key.weight`.
    pub suffix: &'static str,
}

impl TensorName {
    fn matches(&self, name: &str) -> bool {
        match self.layer {
            None => name == self.suffix,
            Some(l) => Self::split_layer(name) == Some((l, self.suffix)),
        }
    }

    /// `blk.N.suffix` as `(N, suffix)`.
    fn split_layer(name: &str) -> Option<(usize, &str)> {
        let (num, suffix) = name.strip_prefix("blk.")?.split_once('.')?;
        if num.starts_with('+') {
            return None;
        }
        Some((num.parse().ok()?, suffix))
    }

    /// The block index of a per-layer tensor name.
    fn layer_of(name: &str) -> Option<usize> {
        Self::split_layer(name).map(|(l, _)| l)
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            None => f.write_str(self.suffix),
            Some(l) => write!(f, "blk.{l}.{}", self.suffix),
        }
    }
}

/// Why a valid GGUF file is not a usable RWKV-7 model.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ModelError<'a> {
    /// `general.architecture` is missing or not `rwkv7`.
    WrongArchitecture(Option<&'a str>),
    /// A required metadata key is missing or has the wrong type.
    MissingKey(&'static str),
    /// A metadata value is out of range or inconsistent with the tensors.
    BadValue {
        /// The key.
        key: &'static str,
        /// The value found.
        value: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A required tensor is absent.
    MissingTensor(TensorName),
    /// A tensor has the wrong shape.
    WrongShape {
        /// Which tensor.
        tensor: TensorName,
        /// Expected `ne` (innermost first), with 1s for unused dimensions.
        expected: [u64; 2],
        /// Found `ne`.
        found: [u64; 4],
    },
    /// A tensor has a type this runtime cannot use for it.
    WrongType {
        /// Which tensor.
        tensor: TensorName,
        /// Its type.
        found: GgmlType,
    },
    /// A tensor's data is not aligned in memory for its element type.
    Misaligned(TensorName),
    /// A block-quantized matrix whose rows do not hold whole blocks, or whose data is
    /// not the size its shape and type need.
    BadBlocks {
        /// Which tensor.
        tensor: TensorName,
        /// Its type.
        found: GgmlType,
        /// Elements per row.
        cols: u64,
    },
}

impl fmt::Display for ModelError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ModelError::WrongArchitecture(Some(a)) => {
                let a = crate::gguf::Name(a);
                write!(f, "general.architecture is `{a}`, expected `{ARCHITECTURE}` (only RWKV-7 models are supported)")
            }
            ModelError::WrongArchitecture(None) => write!(f, "general.architecture is missing"),
            ModelError::MissingKey(k) => write!(f, "metadata key `{k}` is missing or has the wrong type"),
            ModelError::BadValue { key, value, why } => write!(f, "metadata `{key}` = {value}: {why}"),
            ModelError::MissingTensor(t) => write!(f, "tensor `{t}` is missing"),
            ModelError::WrongShape { tensor, expected, found } => write!(
                f,
                "tensor `{tensor}` has shape {:?}, expected {:?}",
                trim_dims(&found),
                trim_dims(&[expected[0], expected[1], 1, 1])
            ),
            ModelError::WrongType { tensor, found } => {
                write!(f, "tensor `{tensor}` has type {}, which is not supported for it", found.name())
            }
            ModelError::Misaligned(t) => write!(f, "tensor `{t}` data is not aligned in memory"),
            ModelError::BadBlocks { tensor, found, cols } => write!(
                f,
                "tensor `{tensor}` is {} with {cols} elements per row: rows must hold whole blocks of {} and the data must be {} bytes per block",
                found.name(),
                found.block_len(),
                found.block_bytes()
            ),
        }
    }
}

impl core::error::Error for ModelError<'_> {}

/// Drops trailing 1s from a shape for printing.
fn trim_dims(ne: &[u64; 4]) -> &[u64] {
    let n = ne.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    &ne[..n]
}

/// Where a tensor lives in the file and how to read it. Plain data: no borrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorRef {
    offset: usize,
    ggml_type: GgmlType,
    rows: usize,
    cols: usize,
}

impl TensorRef {
    /// A placeholder for unused slots (e.g. layer-0 value-residual LoRA).
    pub const NONE: TensorRef = TensorRef { offset: 0, ggml_type: GgmlType::F32, rows: 0, cols: 0 };

    /// Element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Absolute byte offset in the file.
    pub fn offset(&self) -> usize {
        self.offset
    }

    fn n_bytes(&self) -> usize {
        let n = self.rows * self.cols;
        n / self.ggml_type.block_len() as usize * self.ggml_type.block_bytes() as usize
    }

    /// A sub-vector of `len` f32s starting at element `start` (for fused tensors).
    fn slice_f32(&self, start: usize, len: usize) -> TensorRef {
        TensorRef { offset: self.offset + 4 * start, ggml_type: GgmlType::F32, rows: 1, cols: len }
    }
}

/// The tensors shared by all layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalTensors {
    /// Token embedding `[V, C]` (`token_embd.weight`, ne `[C, V]`).
    pub emb: TensorRef,
    /// ln0, applied to the embedding (`token_embd_norm`).
    pub ln0_w: TensorRef,
    /// ln0 bias.
    pub ln0_b: TensorRef,
    /// Final norm (`output_norm`).
    pub ln_out_w: TensorRef,
    /// Final norm bias.
    pub ln_out_b: TensorRef,
    /// Output head `[V, C]` (`output.weight`).
    pub head: TensorRef,
}

/// The tensors of one block. Matrices are `rows × cols` = `[out, in]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerTensors {
    /// ln1 weight and bias.
    pub ln1_w: TensorRef,
    #[allow(missing_docs)]
    pub ln1_b: TensorRef,
    /// ln2 weight and bias.
    pub ln2_w: TensorRef,
    #[allow(missing_docs)]
    pub ln2_b: TensorRef,
    /// Token-shift mixes `x_r, x_w, x_k, x_v, x_a, x_g`, in that order.
    pub mix: [TensorRef; 6],
    /// Decay LoRA: `w = w0 + w2 · tanh(w1 · xw)`.
    pub w0: TensorRef,
    #[allow(missing_docs)]
    pub w1: TensorRef,
    #[allow(missing_docs)]
    pub w2: TensorRef,
    /// In-context learning rate LoRA: `a = σ(a0 + a2 · (a1 · xa))`.
    pub a0: TensorRef,
    #[allow(missing_docs)]
    pub a1: TensorRef,
    #[allow(missing_docs)]
    pub a2: TensorRef,
    /// Value-residual LoRA (absent at layer 0): `σ(v0 + v2 · (v1 · xv))`.
    pub v0: TensorRef,
    #[allow(missing_docs)]
    pub v1: TensorRef,
    #[allow(missing_docs)]
    pub v2: TensorRef,
    /// Gate LoRA: `g = g2 · σ(g1 · xg)`.
    pub g1: TensorRef,
    #[allow(missing_docs)]
    pub g2: TensorRef,
    /// `k_k`, `k_a` (`[C]`) and `r_k` (`[H, N]` flattened).
    pub k_k: TensorRef,
    #[allow(missing_docs)]
    pub k_a: TensorRef,
    #[allow(missing_docs)]
    pub r_k: TensorRef,
    /// Receptance, key, value, output projections `[C, C]`.
    pub receptance: TensorRef,
    #[allow(missing_docs)]
    pub key: TensorRef,
    #[allow(missing_docs)]
    pub value: TensorRef,
    #[allow(missing_docs)]
    pub output: TensorRef,
    /// GroupNorm `ln_x` weight and bias.
    pub ln_x_w: TensorRef,
    #[allow(missing_docs)]
    pub ln_x_b: TensorRef,
    /// FFN token-shift mix.
    pub ffn_x_k: TensorRef,
    /// FFN key `[F, C]` and value `[C, F]`.
    pub ffn_key: TensorRef,
    #[allow(missing_docs)]
    pub ffn_value: TensorRef,
}

impl LayerTensors {
    /// Every tensor reference of the layer (unused slots are [`TensorRef::NONE`]).
    pub fn all(&self) -> [TensorRef; 33] {
        let m = self.mix;
        [
            self.ln1_w,
            self.ln1_b,
            self.ln2_w,
            self.ln2_b,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            self.w0,
            self.w1,
            self.w2,
            self.a0,
            self.a1,
            self.a2,
            self.v0,
            self.v1,
            self.v2,
            self.g1,
            self.g2,
            self.k_k,
            self.k_a,
            self.r_k,
            self.receptance,
            self.key,
            self.value,
            self.output,
            self.ln_x_w,
            self.ln_x_b,
            self.ffn_x_k,
            self.ffn_key,
            self.ffn_value,
        ]
    }
}

fn global(suffix: &'static str) -> TensorName {
    TensorName { layer: None, suffix }
}

/// The tensor `name`, searched from record `near` on (see [`Gguf::find_tensor_near`]).
fn find<'a>(gguf: &Gguf<'a>, near: TensorCursor, name: TensorName) -> Option<TensorInfo<'a>> {
    gguf.find_tensor_near(near, |t| name.matches(t)).map(|(t, _)| t)
}

/// The record of block `l`'s first tensor in the table (the table's start if it has
/// none: every lookup then still finds what there is).
fn layer_start(gguf: &Gguf<'_>, l: usize) -> TensorCursor {
    let start = gguf.first_tensor();
    gguf.find_tensor_near(start, |t| TensorName::layer_of(t) == Some(l)).map_or(start, |(_, at)| at)
}

/// Tensors stored as ggml Q8_0 / Q4_0 blocks are accepted for the big projections, the
/// FFN, the embedding, the head and the a/v/g LoRA matrices: every matrix llama.cpp
/// writes in a quantized type (`llama-quantize`, or the converter's `--outtype q8_0`,
/// docs/FORMAT.md §3.2). The decay LoRA `w1`/`w2` is always float (llama.cpp forces it
/// to F32: the decay is exponentiated and compounds over the whole context), and the
/// vectors, including the fused token-shift mixes, are always F32.
fn may_be_quantized(name: TensorName) -> bool {
    !matches!(name.suffix, "time_mix_w1.weight" | "time_mix_w2.weight")
}

/// Checks type, shape and alignment of a tensor used as a `rows × cols` matrix
/// (ne `[cols, rows]`) or, with `rows == 1`, as an f32 vector of `cols` elements.
fn resolve(
    info: &TensorInfo<'_>,
    name: TensorName,
    rows: usize,
    cols: usize,
) -> Result<TensorRef, ModelError<'static>> {
    let ne = info.ne;
    let is_vector = rows == 1;
    // Vectors may be stored with extra unit dimensions (e.g. `[C, 1, 1]`), and the fused
    // token-shift mixes as `[C, 1, 1, 6]`: any shape with the right element count whose
    // dimensions past the first non-unit one multiply out is accepted as flat f32s.
    let shape_ok = if is_vector { info.n_elements() == cols as u64 } else { ne == [cols as u64, rows as u64, 1, 1] };
    if !shape_ok {
        return Err(ModelError::WrongShape { tensor: name, expected: [cols as u64, rows as u64], found: ne });
    }
    let ty = info.ggml_type;
    let allowed = if is_vector {
        matches!(ty, GgmlType::F32)
    } else {
        matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) || (is_block_type(ty) && may_be_quantized(name))
    };
    if !allowed {
        return Err(ModelError::WrongType { tensor: name, found: ty });
    }
    // Rows of a block type hold whole blocks, and the data is exactly the blocks
    // (the GGUF reader checks both too; a table is also checked on its own).
    let block = ty.block_len() as usize;
    let whole_rows = cols.is_multiple_of(block);
    let expected_bytes = (rows as u64 * cols as u64 / block as u64).saturating_mul(ty.block_bytes());
    if !whole_rows || info.data.len() as u64 != expected_bytes {
        return Err(ModelError::BadBlocks { tensor: name, found: ty, cols: cols as u64 });
    }
    if !(info.data.as_ptr() as usize).is_multiple_of(type_align(ty)) {
        return Err(ModelError::Misaligned(name));
    }
    let offset = usize::try_from(info.offset).map_err(|_| ModelError::Misaligned(name))?;
    Ok(TensorRef { offset, ggml_type: ty, rows, cols })
}

/// The memory alignment a tensor type's data needs: 4 for f32, 2 for the 16-bit floats,
/// 1 for the block types (their f16 scale is stored as bytes, see `rwkv7_kernels::quant`).
fn type_align(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F32 => 4,
        ty if is_block_type(ty) => 1,
        _ => 2,
    }
}

/// The block-quantized types the kernels multiply: Q8_0, Q4_0, the K-quants Q4_K, Q5_K,
/// Q6_K (llama.cpp's Q4_K_M/Q5_K_M/Q6_K files and the Q6_K head of its Q4_0 files) and
/// the older Q4_1, Q5_0, Q5_1 (llama.cpp's fallback for rows that are not a multiple
/// of 256).
fn is_block_type(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q8_0 | Q4_0 | Q4_K | Q5_K | Q6_K | Q4_1 | Q5_0 | Q5_1)
}

fn require<'a>(
    gguf: &Gguf<'a>,
    near: TensorCursor,
    name: TensorName,
    rows: usize,
    cols: usize,
) -> Result<TensorRef, ModelError<'a>> {
    let info = find(gguf, near, name).ok_or(ModelError::MissingTensor(name))?;
    resolve(&info, name, rows, cols)
}

/// The `ne` of a required tensor, for reading dimensions off the file.
fn shape_of<'a>(gguf: &Gguf<'a>, name: TensorName) -> Result<[u64; 4], ModelError<'a>> {
    Ok(find(gguf, gguf.first_tensor(), name).ok_or(ModelError::MissingTensor(name))?.ne)
}

fn meta_usize(gguf: &Gguf<'_>, key: &'static str) -> Result<Option<usize>, ModelError<'static>> {
    match gguf.get(key) {
        None => Ok(None),
        Some(v) => {
            let n = v.as_u64().ok_or(ModelError::MissingKey(key))?;
            usize::try_from(n).map(Some).map_err(|_| ModelError::BadValue { key, value: n, why: "too large" })
        }
    }
}

/// Dimension sanity limit: no released model comes near it, and it keeps every
/// product of two dimensions far from overflow even on 32-bit targets.
const MAX_DIM: usize = 1 << 20;

fn check_dim(key: &'static str, value: usize) -> Result<usize, ModelError<'static>> {
    if value == 0 || value > MAX_DIM {
        return Err(ModelError::BadValue { key, value: value as u64, why: "must be between 1 and 2^20" });
    }
    Ok(value)
}

fn layer_name(l: usize, suffix: &'static str) -> TensorName {
    TensorName { layer: Some(l), suffix }
}

/// A LoRA rank read off the first-layer matrix `suffix` (ne `[C, rank]`), checked
/// against the metadata key if the file has it.
fn lora_rank<'a>(
    gguf: &Gguf<'a>,
    layer: usize,
    suffix: &'static str,
    key: &'static str,
) -> Result<usize, ModelError<'a>> {
    let rank = shape_of(gguf, layer_name(layer, suffix))?[1] as usize;
    let rank = check_dim(key, rank)?;
    if let Some(meta) = meta_usize(gguf, key)?
        && meta != rank
    {
        return Err(ModelError::BadValue { key, value: meta as u64, why: "does not match the LoRA tensor shape" });
    }
    Ok(rank)
}

/// Reads the dimensions and global tensors of an RWKV-7 GGUF file.
pub fn read_globals<'a>(gguf: &Gguf<'a>) -> Result<(HyperParams, GlobalTensors), ModelError<'a>> {
    let arch = gguf.get("general.architecture").and_then(|v| v.as_str());
    if arch != Some(ARCHITECTURE) {
        return Err(ModelError::WrongArchitecture(arch));
    }
    let need = |key| meta_usize(gguf, key)?.ok_or(ModelError::MissingKey(key));
    let n_layer = check_dim("rwkv7.block_count", need("rwkv7.block_count")?)?;
    let n_embd = check_dim("rwkv7.embedding_length", need("rwkv7.embedding_length")?)?;
    let head_size = check_dim("rwkv7.wkv.head_size", need("rwkv7.wkv.head_size")?)?;
    if n_embd % head_size != 0 {
        return Err(ModelError::BadValue {
            key: "rwkv7.wkv.head_size",
            value: head_size as u64,
            why: "does not divide the embedding width",
        });
    }
    let emb_ne = shape_of(gguf, global("token_embd.weight"))?;
    let vocab = check_dim("vocabulary (token_embd rows)", emb_ne[1] as usize)?;
    let ffn_ne = shape_of(gguf, layer_name(0, "channel_mix_key.weight"))?;
    let ffn = check_dim("rwkv7.feed_forward_length", ffn_ne[1] as usize)?;
    if let Some(meta) = meta_usize(gguf, "rwkv7.feed_forward_length")?
        && meta != ffn
    {
        return Err(ModelError::BadValue {
            key: "rwkv7.feed_forward_length",
            value: meta as u64,
            why: "does not match channel_mix_key",
        });
    }
    // Layer 0 takes no value-residual mix (its `v1` in llama.cpp files is a copy of `a1`),
    // so the rank is read from layer 1. A one-layer model never uses it.
    let value_rank = if n_layer > 1 {
        lora_rank(gguf, 1, "time_mix_v1.weight", "rwkv7.attention.value_residual_mix_lora_rank")?
    } else {
        1
    };
    let ln_eps = match gguf.get("rwkv7.attention.layer_norm_epsilon") {
        None => DEFAULT_LAYER_NORM_EPS,
        Some(v) => v
            .as_f32()
            .filter(|e| e.is_finite() && *e > 0.0)
            .ok_or(ModelError::MissingKey("rwkv7.attention.layer_norm_epsilon"))?,
    };
    let hp = HyperParams {
        ln_eps,
        n_layer,
        n_embd,
        head_size,
        n_head: n_embd / head_size,
        vocab,
        ffn,
        decay_rank: lora_rank(gguf, 0, "time_mix_w1.weight", "rwkv7.attention.decay_lora_rank")?,
        iclr_rank: lora_rank(gguf, 0, "time_mix_a1.weight", "rwkv7.attention.iclr_lora_rank")?,
        value_rank,
        gate_rank: lora_rank(gguf, 0, "time_mix_g1.weight", "rwkv7.attention.gate_lora_rank")?,
    };
    let (c, start) = (n_embd, gguf.first_tensor());
    let globals = GlobalTensors {
        emb: require(gguf, start, global("token_embd.weight"), vocab, c)?,
        ln0_w: require(gguf, start, global("token_embd_norm.weight"), 1, c)?,
        ln0_b: require(gguf, start, global("token_embd_norm.bias"), 1, c)?,
        ln_out_w: require(gguf, start, global("output_norm.weight"), 1, c)?,
        ln_out_b: require(gguf, start, global("output_norm.bias"), 1, c)?,
        head: require(gguf, start, global("output.weight"), vocab, c)?,
    };
    Ok((hp, globals))
}

/// Reads the tensors of block `l`.
pub fn read_layer<'a>(gguf: &Gguf<'a>, hp: &HyperParams, l: usize) -> Result<LayerTensors, ModelError<'a>> {
    let (c, f) = (hp.n_embd, hp.ffn);
    // Every lookup starts at the block's first record: a few records each, in any order.
    let near = layer_start(gguf, l);
    let t = |suffix, rows, cols| require(gguf, near, layer_name(l, suffix), rows, cols);
    let mix = t("time_mix_lerp_fused.weight", 1, 6 * c)?;
    let mix = core::array::from_fn(|i| mix.slice_f32(i * c, c));
    // Layer 0 takes no value-residual mix. llama.cpp files still carry
    // `blk.0.time_mix_v{0,1,2}` (copies of a0/a1/a2); they are never read.
    let (v0, v1, v2) = if l == 0 {
        (TensorRef::NONE, TensorRef::NONE, TensorRef::NONE)
    } else {
        (
            t("time_mix_v0.weight", 1, c)?,
            t("time_mix_v1.weight", hp.value_rank, c)?,
            t("time_mix_v2.weight", c, hp.value_rank)?,
        )
    };
    Ok(LayerTensors {
        ln1_w: t("attn_norm.weight", 1, c)?,
        ln1_b: t("attn_norm.bias", 1, c)?,
        ln2_w: t("attn_norm_2.weight", 1, c)?,
        ln2_b: t("attn_norm_2.bias", 1, c)?,
        mix,
        w0: t("time_mix_w0.weight", 1, c)?,
        w1: t("time_mix_w1.weight", hp.decay_rank, c)?,
        w2: t("time_mix_w2.weight", c, hp.decay_rank)?,
        a0: t("time_mix_a0.weight", 1, c)?,
        a1: t("time_mix_a1.weight", hp.iclr_rank, c)?,
        a2: t("time_mix_a2.weight", c, hp.iclr_rank)?,
        v0,
        v1,
        v2,
        g1: t("time_mix_g1.weight", hp.gate_rank, c)?,
        g2: t("time_mix_g2.weight", c, hp.gate_rank)?,
        k_k: t("time_mix_k_k.weight", 1, c)?,
        k_a: t("time_mix_k_a.weight", 1, c)?,
        r_k: t("time_mix_r_k.weight", 1, c)?,
        receptance: t("time_mix_receptance.weight", c, c)?,
        key: t("time_mix_key.weight", c, c)?,
        value: t("time_mix_value.weight", c, c)?,
        output: t("time_mix_output.weight", c, c)?,
        ln_x_w: t("time_mix_ln.weight", 1, c)?,
        ln_x_b: t("time_mix_ln.bias", 1, c)?,
        ffn_x_k: t("channel_mix_lerp_k.weight", 1, c)?,
        ffn_key: t("channel_mix_key.weight", f, c)?,
        ffn_value: t("channel_mix_value.weight", c, f)?,
    })
}

/// An RWKV-7 model: the file's bytes plus the resolved tensor table.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    bytes: &'a [u8],
    hp: HyperParams,
    globals: GlobalTensors,
    layers: &'a [LayerTensors],
}

impl<'a> Model<'a> {
    /// Assembles a model from the parts [`read_globals`] and [`read_layer`] returned
    /// for the GGUF file in `bytes`. `layers` must hold exactly `hp.n_layer` entries,
    /// in order. Every tensor is checked to lie inside `bytes`, aligned, so a table
    /// paired with the wrong bytes is an error rather than a panic later.
    pub fn new(
        bytes: &'a [u8],
        hp: HyperParams,
        globals: GlobalTensors,
        layers: &'a [LayerTensors],
    ) -> Result<Self, ModelError<'a>> {
        if layers.len() != hp.n_layer {
            return Err(ModelError::BadValue {
                key: "rwkv7.block_count",
                value: hp.n_layer as u64,
                why: "does not match the number of layers given",
            });
        }
        let g = globals;
        let all_globals = [g.emb, g.ln0_w, g.ln0_b, g.ln_out_w, g.ln_out_b, g.head];
        let fits = |t: &TensorRef| {
            t.cols.is_multiple_of(t.ggml_type.block_len() as usize)
                && t.offset.checked_add(t.n_bytes()).is_some_and(|end| end <= bytes.len())
                && (bytes.as_ptr() as usize + t.offset).is_multiple_of(type_align(t.ggml_type))
        };
        let all_fit = all_globals.iter().all(fits) && layers.iter().all(|l| l.all().iter().all(fits));
        if !all_fit {
            return Err(ModelError::BadValue {
                key: "tensor table",
                value: bytes.len() as u64,
                why: "does not fit the bytes given",
            });
        }
        Ok(Model { bytes, hp, globals, layers })
    }

    /// The dimensions.
    pub fn hparams(&self) -> &HyperParams {
        &self.hp
    }

    /// The global tensors.
    pub fn globals(&self) -> &GlobalTensors {
        &self.globals
    }

    /// The per-layer tensors.
    pub fn layers(&self) -> &'a [LayerTensors] {
        self.layers
    }

    /// The bytes behind a tensor (validated at load).
    fn data(&self, t: TensorRef) -> &'a [u8] {
        &self.bytes[t.offset..t.offset + t.n_bytes()]
    }

    /// A tensor as a matrix.
    pub fn matrix(&self, t: TensorRef) -> Matrix<'a> {
        let bytes = self.data(t);
        // Type, length and alignment were all checked in `resolve`, so the casts succeed.
        let data = match t.ggml_type {
            GgmlType::F16 => MatrixData::F16(bytemuck::cast_slice::<u8, f16>(bytes)),
            GgmlType::BF16 => MatrixData::BF16(bytemuck::cast_slice::<u8, bf16>(bytes)),
            GgmlType::Q8_0 => MatrixData::Q8_0(bytemuck::cast_slice::<u8, BlockQ8_0>(bytes)),
            GgmlType::Q4_0 => MatrixData::Q4_0(bytemuck::cast_slice::<u8, BlockQ4_0>(bytes)),
            GgmlType::Q4_K => MatrixData::Q4K(bytemuck::cast_slice::<u8, BlockQ4K>(bytes)),
            GgmlType::Q5_K => MatrixData::Q5K(bytemuck::cast_slice::<u8, BlockQ5K>(bytes)),
            GgmlType::Q6_K => MatrixData::Q6K(bytemuck::cast_slice::<u8, BlockQ6K>(bytes)),
            GgmlType::Q4_1 => MatrixData::Q4_1(bytemuck::cast_slice::<u8, BlockQ4_1>(bytes)),
            GgmlType::Q5_0 => MatrixData::Q5_0(bytemuck::cast_slice::<u8, BlockQ5_0>(bytes)),
            GgmlType::Q5_1 => MatrixData::Q5_1(bytemuck::cast_slice::<u8, BlockQ5_1>(bytes)),
            _ => MatrixData::F32(bytemuck::cast_slice::<u8, f32>(bytes)),
        };
        Matrix::new(data, t.rows, t.cols).unwrap_or_else(|| unreachable!("shape checked at load"))
    }

    /// An f32 vector tensor.
    pub fn vector(&self, t: TensorRef) -> &'a [f32] {
        bytemuck::cast_slice(self.data(t))
    }

    /// Bytes of a tensor's data (0 for an unused slot).
    pub fn tensor_bytes(&self, t: TensorRef) -> usize {
        t.n_bytes()
    }

    /// Bytes of weights one decode step reads: every tensor of every layer, the norms and
    /// the head; of the embedding only one row, which is left out. Decode speed is bounded
    /// by memory bandwidth divided by this.
    pub fn weight_bytes_per_token(&self) -> usize {
        let g = &self.globals;
        let layers: usize = self.layers.iter().flat_map(|l| l.all()).map(|t| t.n_bytes()).sum();
        layers + [g.ln0_w, g.ln0_b, g.ln_out_w, g.ln_out_b, g.head].iter().map(|t| t.n_bytes()).sum::<usize>()
    }
}
