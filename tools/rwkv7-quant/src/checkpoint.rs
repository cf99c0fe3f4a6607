//! The canonical in-memory checkpoint: official `.pth` tensor names and shapes
//! (spec §3.1), whatever format the weights came from.
//!
//! [`Checkpoint::new`] validates the tensor set once: it rejects the RWKV-7 variants and
//! older RWKV versions by name, discovers the dimensions (C, V, H, N, L, F and the four
//! LoRA ranks) and checks every required tensor's presence and shape. Everything after
//! that (the GGUF conversion) can rely on the shapes.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Element type of a checkpoint tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// bfloat16 (the upper half of an f32).
    BF16,
    /// IEEE binary16.
    F16,
    /// IEEE binary32.
    F32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::BF16 | DType::F16 => 2,
            DType::F32 => 4,
        }
    }

    /// Lower-case name (`bf16`, `f16`, `f32`).
    pub fn name(self) -> &'static str {
        match self {
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::F32 => "f32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cheaply clonable byte range: a slice of a memory-mapped file or of an owned buffer.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl Bytes {
    /// Owns `data`.
    pub fn from_vec(data: Vec<u8>) -> Self {
        let len = data.len();
        Bytes { owner: Arc::new(data), start: 0, len }
    }

    /// Shares any byte container (e.g. a `memmap2::Mmap`).
    pub fn from_owner(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let len = (*owner).as_ref().len();
        Bytes { owner, start: 0, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // The range was checked when this value was made; `get` keeps this panic-free.
        (*self.owner).as_ref().get(self.start..self.start + self.len).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sub-range `start..start + len`, sharing the same owner; `None` if out of range.
    pub fn slice(&self, start: usize, len: usize) -> Option<Bytes> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Bytes { owner: self.owner.clone(), start: self.start + start, len })
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len)
    }
}

/// Maps a file read-only (an empty file gives empty bytes).
pub fn map_file(path: &Path) -> std::io::Result<Bytes> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::from_vec(Vec::new()));
    }
    let map = rwkv7::map_readonly(&file)?;
    Ok(Bytes::from_owner(Arc::new(map)))
}

/// One named tensor: little-endian elements in row-major order.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Name (official `.pth` naming once in a [`Checkpoint`]).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first (torch order).
    pub shape: Vec<usize>,
    /// Exactly `numel · dtype.size()` bytes.
    pub data: Bytes,
}

impl Tensor {
    /// Makes a tensor, checking that `data` holds exactly the elements of `shape`.
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<usize>, data: Bytes) -> Result<Self, CheckpointError> {
        let name = name.into();
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| CheckpointError::Invalid(format!("tensor `{name}` has too many elements")))?;
        if data.len() != expected {
            return Err(CheckpointError::Invalid(format!(
                "tensor `{name}` {} {shape:?} needs {expected} bytes but has {}",
                dtype.name(),
                data.len()
            )));
        }
        Ok(Tensor { name, dtype, shape, data })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// All elements as f32 (exact for every supported type).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.numel());
        decode_f32(self.dtype, self.data.as_slice(), &mut out);
        out
    }
}

/// Appends the elements of `src` (little-endian `dtype`) to `out` as f32.
pub(crate) fn decode_f32(dtype: DType, src: &[u8], out: &mut Vec<f32>) {
    match dtype {
        DType::F32 => {
            let (chunks, _) = src.as_chunks::<4>();
            out.extend(chunks.iter().map(|c| f32::from_le_bytes(*c)));
        }
        DType::F16 => {
            let (chunks, _) = src.as_chunks::<2>();
            out.extend(chunks.iter().map(|c| half::f16::from_le_bytes(*c).to_f32()));
        }
        DType::BF16 => {
            let (chunks, _) = src.as_chunks::<2>();
            out.extend(chunks.iter().map(|c| half::bf16::from_le_bytes(*c).to_f32()));
        }
    }
}

/// Why a tensor set is not a convertible RWKV-7 (x070) checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A recognised RWKV variant or older version that this tool does not convert.
    #[error("this is {variant}, not a plain RWKV-7 (x070) checkpoint (found tensor `{found}`)")]
    Variant {
        /// What was recognised.
        variant: &'static str,
        /// The tensor that gave it away.
        found: String,
    },
    /// A required tensor is absent.
    #[error("tensor `{0}` is missing")]
    Missing(String),
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected}")]
    WrongShape {
        /// Tensor name.
        name: String,
        /// Shape found.
        found: Vec<usize>,
        /// Shape expected, with symbols, e.g. `[C=128, Dw=32]`.
        expected: String,
    },
    /// A tensor that is not part of an x070 checkpoint.
    #[error("unexpected tensor `{0}` (not part of an RWKV-7 x070 checkpoint)")]
    Unexpected(String),
    /// Two tensors with one name.
    #[error("tensor `{0}` appears twice")]
    Duplicate(String),
    /// Inconsistent dimensions or otherwise unusable data.
    #[error("{0}")]
    Invalid(String),
}

/// The dimensions of an RWKV-7 checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Layers `L`.
    pub n_layer: usize,
    /// Embedding width `C`.
    pub n_embd: usize,
    /// Heads `H`.
    pub n_head: usize,
    /// Head size `N`.
    pub head_size: usize,
    /// Vocabulary rows `V`.
    pub vocab: usize,
    /// FFN width `F`.
    pub ffn: usize,
    /// Decay LoRA rank `Dw`.
    pub decay_rank: usize,
    /// In-context learning rate ("a") LoRA rank `Da`.
    pub iclr_rank: usize,
    /// Value-residual LoRA rank `Dv`.
    pub value_rank: usize,
    /// Gate LoRA rank `Dg`.
    pub gate_rank: usize,
}

/// No released model comes near this; it keeps every product of two dimensions far
/// from overflow (the same bound as the runtime's loader).
const MAX_DIM: usize = 1 << 20;

/// LayerNorm epsilon of the official models (torch's default).
pub const DEFAULT_LAYER_NORM_EPS: f32 = 1e-5;

/// A validated RWKV-7 checkpoint with official names, in the order the input had them.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
    dims: Dims,
    layer_norm_eps: f32,
}

/// What the expected shape of a tensor is.
#[derive(Clone, Copy)]
enum Want {
    /// A length-`C` vector: `[C]`, `[1, C]` or `[1, 1, C]`.
    Vector,
    /// Exactly these two dimensions (values and their symbols).
    Matrix((usize, &'static str), (usize, &'static str)),
}

impl Checkpoint {
    /// Validates `tensors` (official names) as an RWKV-7 x070 checkpoint with the default
    /// LayerNorm epsilon.
    pub fn new(tensors: Vec<Tensor>) -> Result<Self, CheckpointError> {
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if index.insert(t.name.clone(), i).is_some() {
                return Err(CheckpointError::Duplicate(t.name.clone()));
            }
        }
        reject_variants(&tensors)?;
        let mut ckpt = Checkpoint {
            tensors,
            index,
            dims: Dims {
                n_layer: 0,
                n_embd: 0,
                n_head: 0,
                head_size: 0,
                vocab: 0,
                ffn: 0,
                decay_rank: 0,
                iclr_rank: 0,
                value_rank: 0,
                gate_rank: 0,
            },
            layer_norm_eps: DEFAULT_LAYER_NORM_EPS,
        };
        ckpt.dims = ckpt.discover_dims()?;
        ckpt.check_all()?;
        Ok(ckpt)
    }

    /// Sets the LayerNorm epsilon (from a Hugging Face config); must be finite and positive.
    pub fn with_layer_norm_eps(mut self, eps: f32) -> Result<Self, CheckpointError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(CheckpointError::Invalid(format!("layer norm epsilon {eps} is not a positive number")));
        }
        self.layer_norm_eps = eps;
        Ok(self)
    }

    /// All tensors in input order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The dimensions.
    pub fn dims(&self) -> &Dims {
        &self.dims
    }

    /// LayerNorm epsilon of ln0/ln1/ln2/ln_out.
    pub fn layer_norm_eps(&self) -> f32 {
        self.layer_norm_eps
    }

    fn need(&self, name: &str) -> Result<&Tensor, CheckpointError> {
        self.get(name).ok_or_else(|| CheckpointError::Missing(name.to_string()))
    }

    /// The shape of `name`, which must be 2-D.
    fn shape2(&self, name: &str) -> Result<(usize, usize), CheckpointError> {
        let t = self.need(name)?;
        match *t.shape.as_slice() {
            [a, b] => Ok((a, b)),
            _ => Err(CheckpointError::WrongShape {
                name: name.to_string(),
                found: t.shape.clone(),
                expected: "a 2-D matrix".to_string(),
            }),
        }
    }

    fn discover_dims(&self) -> Result<Dims, CheckpointError> {
        let (vocab, n_embd) = self.shape2("emb.weight")?;
        let (n_head, head_size) = self.shape2("blocks.0.att.r_k")?;
        if n_head.checked_mul(head_size) != Some(n_embd) {
            return Err(CheckpointError::Invalid(format!(
                "blocks.0.att.r_k is [{n_head}, {head_size}] (H, N) but emb.weight has C = {n_embd} columns; H·N must equal C"
            )));
        }
        let mut n_layer = 0usize;
        for t in &self.tensors {
            if let Some(l) = block_index(&t.name) {
                let l = l.ok_or_else(|| CheckpointError::Unexpected(t.name.clone()))?;
                if l >= MAX_DIM {
                    return Err(CheckpointError::Invalid(format!(
                        "tensor `{}` has an implausible block index",
                        t.name
                    )));
                }
                n_layer = n_layer.max(l + 1);
            }
        }
        let (ffn, _) = self.shape2("blocks.0.ffn.key.weight")?;
        let (_, decay_rank) = self.shape2("blocks.0.att.w1")?;
        let (_, iclr_rank) = self.shape2("blocks.0.att.a1")?;
        let (_, gate_rank) = self.shape2("blocks.0.att.g1")?;
        // Layer 0's value LoRA is unused (and absent in HF files), so read Dv from layer 1.
        let value_rank = if n_layer > 1 {
            self.shape2("blocks.1.att.v1")?.1
        } else if self.get("blocks.0.att.v1").is_some() {
            self.shape2("blocks.0.att.v1")?.1
        } else {
            iclr_rank
        };
        let dims =
            Dims { n_layer, n_embd, n_head, head_size, vocab, ffn, decay_rank, iclr_rank, value_rank, gate_rank };
        for (what, v) in [
            ("vocabulary size V (emb.weight rows)", vocab),
            ("embedding width C", n_embd),
            ("head count H", n_head),
            ("head size N", head_size),
            ("FFN width F", ffn),
            ("decay LoRA rank", decay_rank),
            ("a (iclr) LoRA rank", iclr_rank),
            ("value LoRA rank", value_rank),
            ("gate LoRA rank", gate_rank),
        ] {
            if v == 0 || v > MAX_DIM {
                return Err(CheckpointError::Invalid(format!("{what} is {v}, outside 1..=2^20")));
            }
        }
        Ok(dims)
    }

    fn check(&self, name: &str, want: Want) -> Result<(), CheckpointError> {
        let t = self.need(name)?;
        let c = self.dims.n_embd;
        let ok = match want {
            Want::Vector => matches!(*t.shape.as_slice(), [n] | [1, n] | [1, 1, n] if n == c),
            Want::Matrix((r, _), (k, _)) => t.shape == [r, k],
        };
        if ok {
            return Ok(());
        }
        let expected = match want {
            Want::Vector => format!("[C={c}] (or [1, 1, C])"),
            Want::Matrix((r, rs), (k, ks)) => format!("[{rs}={r}, {ks}={k}]"),
        };
        Err(CheckpointError::WrongShape { name: name.to_string(), found: t.shape.clone(), expected })
    }

    /// Checks the presence and shape of every tensor, and that there are no others.
    fn check_all(&self) -> Result<(), CheckpointError> {
        let d = self.dims;
        let c = (d.n_embd, "C");
        let mut known = 0usize;
        let mut expect = |name: &str, want: Want| -> Result<(), CheckpointError> {
            known += 1;
            self.check(name, want)
        };
        expect("emb.weight", Want::Matrix((d.vocab, "V"), c))?;
        expect("blocks.0.ln0.weight", Want::Vector)?;
        expect("blocks.0.ln0.bias", Want::Vector)?;
        for l in 0..d.n_layer {
            let p = format!("blocks.{l}.");
            for s in ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"] {
                expect(&format!("{p}{s}"), Want::Vector)?;
            }
            for s in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "k_k", "k_a", "ln_x.weight", "ln_x.bias"] {
                expect(&format!("{p}att.{s}"), Want::Vector)?;
            }
            expect(&format!("{p}att.r_k"), Want::Matrix((d.n_head, "H"), (d.head_size, "N")))?;
            for (lora, rank, sym) in [("w", d.decay_rank, "Dw"), ("a", d.iclr_rank, "Da"), ("g", d.gate_rank, "Dg")] {
                expect(&format!("{p}att.{lora}1"), Want::Matrix(c, (rank, sym)))?;
                expect(&format!("{p}att.{lora}2"), Want::Matrix((rank, sym), c))?;
            }
            if l > 0 {
                expect(&format!("{p}att.v0"), Want::Vector)?;
                expect(&format!("{p}att.v1"), Want::Matrix(c, (d.value_rank, "Dv")))?;
                expect(&format!("{p}att.v2"), Want::Matrix((d.value_rank, "Dv"), c))?;
            } else {
                // Layer 0's value LoRA is unused; official files carry it, HF files do not.
                // When present it must be a well-formed LoRA of some rank.
                let present = ["v0", "v1", "v2"].map(|s| self.get(&format!("{p}att.{s}")).is_some());
                if present.iter().any(|&p| p) {
                    let r = self.shape2(&format!("{p}att.v1"))?.1;
                    expect(&format!("{p}att.v0"), Want::Vector)?;
                    expect(&format!("{p}att.v1"), Want::Matrix(c, (r, "Dv")))?;
                    expect(&format!("{p}att.v2"), Want::Matrix((r, "Dv"), c))?;
                }
            }
            for s in ["receptance", "key", "value", "output"] {
                expect(&format!("{p}att.{s}.weight"), Want::Matrix(c, c))?;
            }
            expect(&format!("{p}ffn.x_k"), Want::Vector)?;
            expect(&format!("{p}ffn.key.weight"), Want::Matrix((d.ffn, "F"), c))?;
            expect(&format!("{p}ffn.value.weight"), Want::Matrix(c, (d.ffn, "F")))?;
        }
        expect("ln_out.weight", Want::Vector)?;
        expect("ln_out.bias", Want::Vector)?;
        expect("head.weight", Want::Matrix((d.vocab, "V"), c))?;
        if known != self.tensors.len() {
            // Name the first tensor that is not part of the set checked above.
            for t in &self.tensors {
                if !is_expected_name(&t.name, d.n_layer) {
                    return Err(CheckpointError::Unexpected(t.name.clone()));
                }
            }
        }
        Ok(())
    }
}

/// `Some(Some(l))` for `blocks.{l}.…`, `Some(None)` for a malformed block index, `None`
/// for names outside `blocks.`.
fn block_index(name: &str) -> Option<Option<usize>> {
    let rest = name.strip_prefix("blocks.")?;
    let num = rest.split('.').next().unwrap_or_default();
    let valid = !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && (num == "0" || !num.starts_with('0'));
    Some(if valid { num.parse().ok() } else { None })
}

/// Whether `name` belongs to an x070 checkpoint with `n_layer` layers.
fn is_expected_name(name: &str, n_layer: usize) -> bool {
    const GLOBAL: [&str; 4] = ["emb.weight", "ln_out.weight", "ln_out.bias", "head.weight"];
    const LAYER: [&str; 33] = [
        "ln1.weight",
        "ln1.bias",
        "ln2.weight",
        "ln2.bias",
        "att.x_r",
        "att.x_w",
        "att.x_k",
        "att.x_v",
        "att.x_a",
        "att.x_g",
        "att.w0",
        "att.w1",
        "att.w2",
        "att.a0",
        "att.a1",
        "att.a2",
        "att.v0",
        "att.v1",
        "att.v2",
        "att.g1",
        "att.g2",
        "att.k_k",
        "att.k_a",
        "att.r_k",
        "att.receptance.weight",
        "att.key.weight",
        "att.value.weight",
        "att.output.weight",
        "att.ln_x.weight",
        "att.ln_x.bias",
        "ffn.x_k",
        "ffn.key.weight",
        "ffn.value.weight",
    ];
    if GLOBAL.contains(&name) {
        return true;
    }
    let Some(Some(l)) = block_index(name) else { return false };
    let suffix = name.split_once('.').and_then(|(_, r)| r.split_once('.')).map_or("", |(_, s)| s);
    l < n_layer && (LAYER.contains(&suffix) || (l == 0 && (suffix == "ln0.weight" || suffix == "ln0.bias")))
}

/// Recognises checkpoints of other RWKV generations and RWKV-7 variants by their tensor
/// names, so the error says what the file is rather than which tensor is missing.
fn reject_variants(tensors: &[Tensor]) -> Result<(), CheckpointError> {
    for t in tensors {
        let n = t.name.as_str();
        let last = n.rsplit('.').next().unwrap_or_default();
        let variant = if n.contains(".qkv.") {
            Some("an RWKV-7b (DEA) checkpoint")
        } else if n.contains("s_emb") || (n.starts_with("blocks.") && matches!(last, "s0" | "s1" | "s2")) {
            Some("an RWKV-7a (DeepEmbed) checkpoint")
        } else if n.contains("att.time_state") {
            Some("a state-merged checkpoint (att.time_state); convert the base model and load the state separately")
        } else if n.contains("att.time_maa") || n.contains("ffn.time_maa") {
            Some("an RWKV v6 checkpoint")
        } else if n.contains("att.time_faaaa") {
            Some("an RWKV v5 checkpoint")
        } else if ["att.time_mix_", "att.time_decay", "att.time_first", "ffn.time_mix_", "ffn.receptance"]
            .iter()
            .any(|m| n.contains(m))
        {
            Some("an RWKV v4/v5/v6 checkpoint")
        } else if n.starts_with("model.layers.") || n == "model.embeddings.weight" {
            Some("a Hugging Face (fla) tensor set; pass the model directory or its .safetensors file")
        } else {
            None
        };
        if let Some(variant) = variant {
            return Err(CheckpointError::Variant { variant, found: t.name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny official-layout f32 tensor set; see [`tiny_official_as`].
    pub(crate) fn tiny_official(n_layer: usize, c: usize, v: usize, ranks: [usize; 4]) -> Vec<Tensor> {
        tiny_official_as(n_layer, c, v, ranks, DType::F32)
    }

    /// Pseudo-random values that differ per tensor name and element.
    pub(crate) fn values_for(name: &str, numel: usize) -> Vec<f32> {
        let mut state =
            name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        (0..numel)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Encodes f32 values as `dtype` bytes.
    pub(crate) fn encode_as(vals: &[f32], dtype: DType) -> Vec<u8> {
        match dtype {
            DType::F32 => vals.iter().flat_map(|x| x.to_le_bytes()).collect(),
            DType::F16 => vals.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
            DType::BF16 => vals.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        }
    }

    /// A tiny official-layout tensor set in the order and shapes of spec §3.1, with
    /// distinct pseudo-random values per tensor, head size min(64, C).
    pub(crate) fn tiny_official_as(n_layer: usize, c: usize, v: usize, ranks: [usize; 4], dtype: DType) -> Vec<Tensor> {
        let [dw, da, dv, dg] = ranks;
        let f = 4 * c;
        let n = 64.min(c);
        let h = c / n;
        let mut out = Vec::new();
        let mut add = |name: String, shape: Vec<usize>| {
            let numel: usize = shape.iter().product();
            let data = encode_as(&values_for(&name, numel), dtype);
            out.push(Tensor::new(name, dtype, shape, Bytes::from_vec(data)).unwrap());
        };
        add("emb.weight".into(), vec![v, c]);
        for l in 0..n_layer {
            let p = format!("blocks.{l}.");
            if l == 0 {
                add(format!("{p}ln0.weight"), vec![c]);
                add(format!("{p}ln0.bias"), vec![c]);
            }
            for s in ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"] {
                add(format!("{p}{s}"), vec![c]);
            }
            for s in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0"] {
                add(format!("{p}att.{s}"), vec![1, 1, c]);
            }
            add(format!("{p}att.r_k"), vec![h, n]);
            add(format!("{p}att.w1"), vec![c, dw]);
            add(format!("{p}att.w2"), vec![dw, c]);
            add(format!("{p}att.a1"), vec![c, da]);
            add(format!("{p}att.a2"), vec![da, c]);
            add(format!("{p}att.a0"), vec![1, 1, c]);
            add(format!("{p}att.g1"), vec![c, dg]);
            add(format!("{p}att.g2"), vec![dg, c]);
            add(format!("{p}att.v2"), vec![dv, c]);
            add(format!("{p}att.v1"), vec![c, dv]);
            add(format!("{p}att.v0"), vec![1, 1, c]);
            add(format!("{p}att.k_k"), vec![1, 1, c]);
            add(format!("{p}att.k_a"), vec![1, 1, c]);
            for s in ["receptance", "key", "value", "output"] {
                add(format!("{p}att.{s}.weight"), vec![c, c]);
            }
            add(format!("{p}att.ln_x.weight"), vec![c]);
            add(format!("{p}att.ln_x.bias"), vec![c]);
            add(format!("{p}ffn.x_k"), vec![1, 1, c]);
            add(format!("{p}ffn.key.weight"), vec![f, c]);
            add(format!("{p}ffn.value.weight"), vec![c, f]);
        }
        add("ln_out.weight".into(), vec![c]);
        add("ln_out.bias".into(), vec![c]);
        add("head.weight".into(), vec![v, c]);
        out
    }

    #[test]
    fn discovers_dimensions() {
        let ckpt = Checkpoint::new(tiny_official(2, 128, 50, [32, 16, 8, 24])).unwrap();
        let d = ckpt.dims();
        assert_eq!((d.n_layer, d.n_embd, d.n_head, d.head_size, d.vocab, d.ffn), (2, 128, 2, 64, 50, 512));
        assert_eq!((d.decay_rank, d.iclr_rank, d.value_rank, d.gate_rank), (32, 16, 8, 24));
    }

    fn err_of(tensors: Vec<Tensor>) -> String {
        Checkpoint::new(tensors).unwrap_err().to_string()
    }

    fn extra(name: &str) -> Tensor {
        Tensor::new(name, DType::F32, vec![1], Bytes::from_vec(vec![0; 4])).unwrap()
    }

    #[test]
    fn rejects_variants_by_name() {
        let cases = [
            ("blocks.0.ffn.s_emb.weight", "DeepEmbed"),
            ("blocks.1.ffn.s1", "DeepEmbed"),
            ("blocks.0.qkv.weight", "DEA"),
            ("blocks.0.att.time_state", "state-merged"),
            ("blocks.0.att.time_mix_k", "v4/v5/v6"),
            ("blocks.0.att.time_decay", "v4/v5/v6"),
            ("blocks.0.att.time_first", "v4/v5/v6"),
            ("blocks.0.ffn.receptance.weight", "v4/v5/v6"),
            ("blocks.0.att.time_maa_x", "v6"),
        ];
        for (name, what) in cases {
            let mut t = tiny_official(1, 64, 10, [32, 32, 32, 32]);
            t.push(extra(name));
            let msg = err_of(t);
            assert!(msg.contains(what) && msg.contains(name), "{name}: {msg}");
        }
    }

    #[test]
    fn rejects_missing_wrong_shape_and_unexpected() {
        let mut t = tiny_official(2, 64, 10, [32, 32, 32, 32]);
        t.retain(|t| t.name != "blocks.1.att.k_a");
        assert_eq!(err_of(t), "tensor `blocks.1.att.k_a` is missing");

        let mut t = tiny_official(2, 64, 10, [32, 32, 32, 32]);
        let i = t.iter().position(|t| t.name == "blocks.1.att.w2").unwrap();
        t[i] = Tensor::new("blocks.1.att.w2", DType::F32, vec![64, 32], Bytes::from_vec(vec![0; 64 * 32 * 4])).unwrap();
        assert_eq!(err_of(t), "tensor `blocks.1.att.w2` has shape [64, 32], expected [Dw=32, C=64]");

        let mut t = tiny_official(1, 64, 10, [32, 32, 32, 32]);
        t.push(extra("blocks.0.att.bonus"));
        assert!(err_of(t).contains("unexpected tensor `blocks.0.att.bonus`"));

        let mut t = tiny_official(1, 64, 10, [32, 32, 32, 32]);
        t.push(extra("emb.weight"));
        assert_eq!(err_of(t), "tensor `emb.weight` appears twice");

        let mut t = tiny_official(1, 64, 10, [32, 32, 32, 32]);
        t.push(extra("blocks.01.att.x_r"));
        assert!(err_of(t).contains("unexpected tensor `blocks.01.att.x_r`"));
    }

    #[test]
    fn layer0_value_lora_is_optional() {
        let mut t = tiny_official(2, 64, 10, [32, 32, 16, 32]);
        t.retain(|t| !["blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"].contains(&t.name.as_str()));
        let ckpt = Checkpoint::new(t).unwrap();
        assert_eq!(ckpt.dims().value_rank, 16);
    }
}
