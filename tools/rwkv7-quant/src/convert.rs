//! Canonical checkpoint (or GGUF) → GGUF in llama.cpp's `rwkv7` conventions
//! (docs/FORMAT.md §2–§4).
//!
//! - Metadata: the `general.*` keys, the `rwkv7.*` hyperparameters with the exact GGUF
//!   types llama.cpp asks for, and, when a World vocabulary is available, the tokenizer.
//! - Tensors: names and `ne` of FORMAT.md §3.1. ln0 is stored as `token_embd_norm` (not
//!   folded), Linear weights stay `[out, in]` row-major, LoRA matrices are transposed to
//!   `[out, in]`, the six token-shift mixes are stacked into `time_mix_lerp_fused`
//!   (`ne [C, 1, 1, 6]`), `r_k` is flattened, and layer 0 gets copies of `a0/a1/a2` as its
//!   unused `v0/v1/v2`, as llama.cpp requires.
//! - Types: vectors, `time_mix_lerp_fused`, `time_mix_w1` and `time_mix_w2` are always
//!   F32; in an f32/f16/bf16 file every other matrix gets the requested type (FORMAT.md
//!   §3.2); in a q8_0/q4_0 file the types come from the policy table in [`crate::policy`]
//!   (docs/QUANTIZATION.md), with `--keep` overrides. Block types use ggml's Q8_0/Q4_0
//!   layouts and reference rounding (`rwkv7_kernels::quant`).
//!
//! A GGUF input is re-encoded by the same type rule, with all other metadata copied.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rwkv7_core::Gguf;
use rwkv7_core::gguf::Value;

use crate::checkpoint::{Checkpoint, DType, Dims, Tensor, decode_f32, map_file};
use crate::gguf_write::{GgmlType, GgufWriter, MetaValue};
use crate::policy::{Choice, Keep, Role, check_all_used, choose_type, finer, guard_bound};
use crate::vocab::{WORLD_VOCAB_FILE, llama_token_text, read_vocab};
use crate::{hf, pth};

/// `rwkv7.context_length` as llama.cpp's converter writes it ("RWKV isn't context limited").
pub const CONTEXT_LENGTH: u32 = 1_048_576;
/// `general.quantization_version` as llama.cpp's converter writes it.
pub const QUANTIZATION_VERSION: u32 = 2;
/// The chat template name llama.cpp recognises for RWKV World models.
pub const CHAT_TEMPLATE: &str = "rwkv-world";

/// The element type of the converted matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutType {
    /// 32-bit float (lossless for every input).
    F32,
    /// IEEE half (lossless for f16 inputs).
    F16,
    /// bfloat16 (lossless for bf16 inputs, as released checkpoints are).
    BF16,
    /// ggml Q8_0 for the large matrices, per the policy table (`crate::policy`).
    Q8_0,
    /// ggml Q4_0 for the large matrices, per the policy table (`crate::policy`).
    Q4_0,
    /// The q4_0 policy with Q4_K wherever a row is a multiple of 256 (llama.cpp's
    /// `Q4_K_M` file type number; the mix is ours, `crate::policy`).
    Q4KM,
    /// The q4_0 policy with Q5_K wherever a row is a multiple of 256 (`Q5_K_M`).
    Q5KM,
    /// The q4_0 policy with Q6_K wherever a row is a multiple of 256 (`Q6_K`).
    Q6K,
}

impl OutType {
    /// The ggml type of the large matrices.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
            OutType::Q4_0 => GgmlType::Q4_0,
            OutType::Q4KM => GgmlType::Q4_K,
            OutType::Q5KM => GgmlType::Q5_K,
            OutType::Q6K => GgmlType::Q6_K,
        }
    }

    /// llama.cpp's `general.file_type` (llama_ftype) for a file of this type
    /// (`LLAMA_FTYPE_MOSTLY_Q8_0` = 7, `_Q4_0` = 2, `_Q4_K_M` = 15, `_Q5_K_M` = 17,
    /// `_Q6_K` = 18; FORMAT.md §2).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::Q8_0 => 7,
            OutType::Q4_0 => 2,
            OutType::Q4KM => 15,
            OutType::Q5KM => 17,
            OutType::Q6K => 18,
        }
    }

    /// Lower-case name (`f32`, `f16`, `bf16`, `q8_0`, `q4_0`, `q4_k_m`, `q5_k_m`, `q6_k`).
    pub fn name(self) -> &'static str {
        match self {
            OutType::Q4KM => "q4_k_m",
            OutType::Q5KM => "q5_k_m",
            OutType::Q6K => "q6_k",
            other => other.ggml_type().name(),
        }
    }
}

/// What to convert to.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Type of the 2-D weight matrices.
    pub out_type: OutType,
    /// A World vocabulary file; if `None`, `rwkv_vocab_v20230424.txt` beside the input
    /// is used when present, and otherwise no tokenizer is written.
    pub vocab: Option<PathBuf>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Per-tensor type overrides (`--keep PATTERN=TYPE`), the last match wins.
    pub keep: Vec<Keep>,
}

impl ConvertOptions {
    /// Options for a file of type `out_type`: no vocabulary override, no progress bar,
    /// no `--keep` overrides.
    pub fn new(out_type: OutType) -> Self {
        ConvertOptions { out_type, vocab: None, progress: false, keep: Vec::new() }
    }
}

/// How one tensor's values changed when written (all zeros when copied exactly).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorStat {
    /// GGUF name.
    pub name: String,
    /// The policy role.
    pub role: Role,
    /// Element type in the input.
    pub source: GgmlType,
    /// Element type written.
    pub ty: GgmlType,
    /// A block type was asked for, but the rows are not whole blocks: F16 was written.
    pub fell_back: bool,
    /// The outlier guard moved the tensor off this policy type, whose column-normalized
    /// relative RMS error was the second value (`crate::policy::OUTLIER_GUARD`).
    pub guarded: Option<(GgmlType, f64)>,
    /// Number of elements.
    pub elements: u64,
    /// Bytes of data written.
    pub bytes: u64,
    /// `Σ (x − x̂)²` over the elements, `x` the input value and `x̂` the stored one.
    pub sum_sq_err: f64,
    /// `Σ x²`.
    pub sum_sq: f64,
}

impl TensorStat {
    /// Relative RMS error `sqrt(Σ(x − x̂)² / Σx²)` (0 for an all-zero tensor stored exactly).
    pub fn rel_rms(&self) -> f64 {
        rel_rms(self.sum_sq_err, self.sum_sq)
    }

    /// Whether the stored values may differ from the input: the type changed, and not
    /// merely widened to f32 (which is exact).
    pub fn lossy(&self) -> bool {
        self.ty != self.source && self.ty != GgmlType::F32
    }
}

fn rel_rms(err: f64, sq: f64) -> f64 {
    if sq > 0.0 {
        (err / sq).sqrt()
    } else if err == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The kind of input file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// Official `torch.save` zip.
    Pth,
    /// Hugging Face / fla safetensors with `config.json`.
    HuggingFace,
    /// GGUF.
    Gguf,
    /// Random weights made in memory (`rwkv7-quant synth`).
    Synthetic,
}

/// What a conversion produced.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    /// The input's format.
    pub input_format: InputFormat,
    /// Type of the matrices written.
    pub out_type: OutType,
    /// Tensors written.
    pub tensors: usize,
    /// Size of the output file in bytes.
    pub output_bytes: u64,
    /// Model dimensions (for checkpoint inputs).
    pub dims: Option<Dims>,
    /// Tokens in the stored vocabulary (V), if the output has one.
    pub vocab_tokens: Option<usize>,
    /// The vocabulary file used, if one was read.
    pub vocab_file: Option<PathBuf>,
    /// Every tensor written, in file order, with its conversion error.
    pub tensor_stats: Vec<TensorStat>,
}

impl ConvertReport {
    /// Relative RMS error over all lossily converted tensors together
    /// (`sqrt(ΣΣ(x − x̂)² / ΣΣx²)`), or `None` if there are none.
    pub fn overall_rel_rms(&self) -> Option<f64> {
        let converted = self.tensor_stats.iter().filter(|t| t.lossy());
        let (err, sq, n) = converted.fold((0.0, 0.0, 0), |(e, s, n), t| (e + t.sum_sq_err, s + t.sum_sq, n + 1));
        (n > 0).then(|| rel_rms(err, sq))
    }

    /// The lossily converted tensor with the largest relative RMS error.
    pub fn worst(&self) -> Option<&TensorStat> {
        self.tensor_stats.iter().filter(|t| t.lossy()).max_by(|a, b| a.rel_rms().total_cmp(&b.rel_rms()))
    }
}

/// Converts `input` (official `.pth`, Hugging Face directory or `.safetensors` file, or
/// GGUF) to an RWKV-7 GGUF file at `output`. Errors start with the path of the file at
/// fault. An existing `output` is only replaced once the new file is complete.
pub fn convert(input: &Path, output: &Path, opts: &ConvertOptions) -> Result<ConvertReport> {
    let at = |p: &Path| p.display().to_string();
    let format = detect_format(input).with_context(|| at(input))?;
    if format == InputFormat::Gguf {
        return convert_gguf(input, output, opts);
    }
    let ckpt = match format {
        InputFormat::Pth => {
            let tensors = pth::read_pth(input).with_context(|| at(input))?;
            Checkpoint::new(tensors).with_context(|| at(input))?
        }
        _ => hf::read_hf(input)?,
    };
    let vocab_path = opts.vocab.clone().or_else(|| {
        let beside = model_dir(input).join(WORLD_VOCAB_FILE);
        beside.is_file().then_some(beside)
    });
    convert_checkpoint(&ckpt, format, input, vocab_path.as_deref(), output, opts)
}

/// Writes a validated checkpoint to `output` as GGUF, with the World vocabulary at
/// `vocab_path` as its tokenizer if given (else no tokenizer). `input` names the source
/// in errors and, by its stem, `general.name`; `format` goes into the report.
pub fn convert_checkpoint(
    ckpt: &Checkpoint,
    format: InputFormat,
    input: &Path,
    vocab_path: Option<&Path>,
    output: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let at = |p: &Path| p.display().to_string();
    let vocab = match vocab_path {
        Some(p) => Some(read_vocab(p).with_context(|| at(p))?),
        None => None,
    };
    let mut w = GgufWriter::new();
    let name = model_name(input);
    add_model_metadata(&mut w, ckpt, &name, opts.out_type).with_context(|| at(output))?;
    let vocab_tokens = match (&vocab, vocab_path) {
        (Some(v), Some(p)) => Some(add_tokenizer(&mut w, v, ckpt.dims().vocab).with_context(|| at(p))?),
        _ => {
            add_no_tokenizer(&mut w, ckpt.dims().vocab).with_context(|| at(output))?;
            None
        }
    };
    let plan = plan_tensors(ckpt, opts.out_type, &opts.keep).with_context(|| at(input))?;
    let n = plan.len();
    let pb = progress_bar(n as u64, opts.progress);
    let stats = Rc::new(RefCell::new(Vec::with_capacity(n)));
    for t in plan {
        let pb = pb.clone();
        let Planned { name, ne, choice, recipe } = t;
        let ty = choice.ty;
        let label = name.clone();
        let stats = Rc::clone(&stats);
        let dims = ne.clone();
        w.add_tensor_with(
            name.clone(),
            &dims,
            ty,
            Box::new(move |out: &mut dyn Write| {
                pb.set_message(label);
                let mut acc = ErrAcc::default();
                write_recipe(&recipe, ty, out, &mut acc).with_context(|| format!("tensor `{name}`"))?;
                let elements = ne.iter().product();
                let source = recipe.source_type();
                stats.borrow_mut().push(acc.stat(name, choice, source, elements, &ne));
                pb.inc(1);
                Ok(())
            }),
        )
        .with_context(|| at(output))?;
    }
    let size = w.write_file_checked(output, |tmp| check_output(tmp, n)).with_context(|| at(output))?;
    pb.finish_and_clear();
    Ok(ConvertReport {
        input_format: format,
        out_type: opts.out_type,
        tensors: n,
        output_bytes: size,
        dims: Some(*ckpt.dims()),
        vocab_tokens,
        vocab_file: vocab_path.map(Path::to_path_buf),
        tensor_stats: stats.take(),
    })
}

/// Tells the input format from the path and the first bytes.
pub fn detect_format(input: &Path) -> Result<InputFormat> {
    if input.is_dir() {
        return Ok(InputFormat::HuggingFace);
    }
    let mut head = [0u8; 9];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(input)?;
        let mut n = 0;
        while n < head.len() {
            let got = f.read(head.get_mut(n..).unwrap_or_default())?;
            if got == 0 {
                break;
            }
            n += got;
        }
        n
    };
    let head = head.get(..n).unwrap_or_default();
    if head.starts_with(b"GGUF") {
        return Ok(InputFormat::Gguf);
    }
    if head.starts_with(b"PK") || head.starts_with(&[0x80, 0x02]) {
        return Ok(InputFormat::Pth);
    }
    // safetensors: u64 header length, then the JSON header.
    if input.extension().is_some_and(|e| e == "safetensors") || head.get(8) == Some(&b'{') {
        return Ok(InputFormat::HuggingFace);
    }
    bail!(
        "not a recognised model file (expected an official .pth, a Hugging Face directory or .safetensors file, or GGUF)"
    )
}

/// The directory a model's companion files (vocab, config) sit in.
fn model_dir(input: &Path) -> PathBuf {
    if input.is_dir() {
        return input.to_path_buf();
    }
    match input.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `general.name`: the file stem, or the directory name for directories and for
/// generic file names such as `model.pth`.
fn model_name(input: &Path) -> String {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let generic = input.is_dir() || stem.is_empty() || stem == "model" || stem == "pytorch_model";
    if generic {
        let dir = std::fs::canonicalize(model_dir(input)).unwrap_or_else(|_| model_dir(input));
        if let Some(name) = dir.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    stem
}

fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| anyhow!("{what} {v} does not fit in a UINT32"))
}

/// The `general.*` and `rwkv7.*` keys (FORMAT.md §2), in the converter's order.
fn add_model_metadata(w: &mut GgufWriter<'_>, ckpt: &Checkpoint, name: &str, out: OutType) -> Result<()> {
    let d = ckpt.dims();
    w.add_metadata("general.architecture", "rwkv7")?;
    w.add_metadata("general.type", "model")?;
    w.add_metadata("general.name", name)?;
    w.add_metadata("general.file_type", out.file_type())?;
    w.add_metadata("general.quantization_version", QUANTIZATION_VERSION)?;
    w.add_metadata("rwkv7.context_length", CONTEXT_LENGTH)?;
    w.add_metadata("rwkv7.embedding_length", to_u32("embedding length", d.n_embd)?)?;
    w.add_metadata("rwkv7.block_count", to_u32("block count", d.n_layer)?)?;
    w.add_metadata("rwkv7.attention.layer_norm_epsilon", ckpt.layer_norm_eps())?;
    w.add_metadata("rwkv7.wkv.head_size", to_u32("head size", d.head_size)?)?;
    w.add_metadata("rwkv7.attention.decay_lora_rank", to_u32("rank", d.decay_rank)?)?;
    w.add_metadata("rwkv7.attention.iclr_lora_rank", to_u32("rank", d.iclr_rank)?)?;
    // With one layer, the file's only value LoRA is layer 0's copy of the a LoRA (rank Da),
    // and no layer uses Dv; recording Da keeps the metadata consistent with the tensors.
    let value_rank = if d.n_layer == 1 { d.iclr_rank } else { d.value_rank };
    w.add_metadata("rwkv7.attention.value_residual_mix_lora_rank", to_u32("rank", value_rank)?)?;
    w.add_metadata("rwkv7.attention.gate_lora_rank", to_u32("rank", d.gate_rank)?)?;
    w.add_metadata("rwkv7.feed_forward_length", to_u32("FFN width", d.ffn)?)?;
    // "required by llama.cpp, unused".
    w.add_metadata("rwkv7.attention.head_count", 0u32)?;
    Ok(())
}

/// What a file without a vocabulary says instead (FORMAT.md §4): llama.cpp refuses a file
/// with no `tokenizer.ggml.model` at all, and accepts `"none"` when `rwkv7.vocab_size`
/// gives the embedding rows (checked with llama.cpp's loader; its converter does the same).
fn add_no_tokenizer(w: &mut GgufWriter<'_>, v: usize) -> Result<()> {
    w.add_metadata("tokenizer.ggml.model", "none")?;
    // An input GGUF may already state it (its value was copied).
    if !w.has_metadata("rwkv7.vocab_size") {
        w.add_metadata("rwkv7.vocab_size", u32::try_from(v).context("vocabulary size does not fit in u32")?)?;
    }
    Ok(())
}

/// The tokenizer keys (FORMAT.md §4) for `vocab` (id → bytes, id 0 unlisted) padded to
/// `v` tokens. Returns the number of tokens stored.
fn add_tokenizer(w: &mut GgufWriter<'_>, vocab: &[Vec<u8>], v: usize) -> Result<usize> {
    ensure!(
        vocab.len() <= v,
        "the vocabulary has ids up to {}, but the model has only {v} embedding rows",
        vocab.len().saturating_sub(1)
    );
    let mut texts = Vec::with_capacity(v);
    let mut types = Vec::with_capacity(v);
    texts.push("<s>".to_string());
    types.push(3i32); // CONTROL
    for bytes in vocab.iter().skip(1) {
        texts.push(llama_token_text(bytes));
        types.push(1); // NORMAL
    }
    for id in vocab.len()..v {
        texts.push(format!("[PAD{id}]"));
        types.push(5); // UNUSED
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(v);
    for (id, t) in texts.iter().enumerate() {
        if let Some(first) = seen.insert(t.as_str(), id) {
            bail!("token ids {first} and {id} have the same text `{t}`; llama.cpp needs unique tokens");
        }
    }
    w.add_metadata("tokenizer.ggml.model", "rwkv")?;
    w.add_metadata("tokenizer.ggml.tokens", MetaValue::string_array(&texts))?;
    w.add_metadata("tokenizer.ggml.token_type", MetaValue::i32_array(types))?;
    w.add_metadata("tokenizer.ggml.bos_token_id", 0u32)?;
    w.add_metadata("tokenizer.ggml.eos_token_id", 0u32)?;
    // llama.cpp's converter hard-codes 261, the World vocabulary's "\n\n"; look it up so
    // that another vocabulary gets the right id (or none).
    if let Some(eot) = vocab.iter().position(|t| t == b"\n\n") {
        w.add_metadata("tokenizer.ggml.eot_token_id", to_u32("token id", eot)?)?;
    }
    w.add_metadata("tokenizer.chat_template", CHAT_TEMPLATE)?;
    Ok(v)
}

/// How an output tensor's elements are produced from checkpoint tensors.
enum Recipe<'c> {
    /// The elements in order (reshape or flatten).
    Copy(&'c Tensor),
    /// The transpose of a 2-D tensor.
    Transpose(&'c Tensor),
    /// The elements of several tensors, one after the other.
    Concat(Vec<&'c Tensor>),
}

impl Recipe<'_> {
    /// The element type of the input (of the first part, for a concatenation).
    fn source_type(&self) -> GgmlType {
        let t = match self {
            Recipe::Copy(t) | Recipe::Transpose(t) => Some(*t),
            Recipe::Concat(ts) => ts.first().copied(),
        };
        t.map_or(GgmlType::F32, |t| ggml_of(t.dtype))
    }
}

struct Planned<'c> {
    name: String,
    ne: Vec<u64>,
    choice: Choice,
    recipe: Recipe<'c>,
}

/// The output tensor list of FORMAT.md §3.1, in the order it is written, with each
/// tensor's type from the policy and `keep`. Errors name no file (the caller adds it).
fn plan_tensors<'c>(ckpt: &'c Checkpoint, out: OutType, keep: &[Keep]) -> Result<Vec<Planned<'c>>> {
    let mut used = vec![false; keep.len()];
    let mut plan = plan_layout(ckpt)?
        .into_iter()
        .map(|(name, ne, recipe)| {
            let mut choice = choose_type(&name, &ne, out, keep, &mut used)?;
            apply_guard(&mut choice, &Values::Recipe(&recipe), &ne).with_context(|| format!("tensor `{name}`"))?;
            Ok(Planned { name, ne, choice, recipe })
        })
        .collect::<Result<Vec<_>>>()?;
    check_all_used(keep, &used)?;
    plan.shrink_to_fit();
    Ok(plan)
}

/// The output tensor list of FORMAT.md §3.1: names, shapes and recipes.
fn plan_layout<'c>(ckpt: &'c Checkpoint) -> Result<Vec<(String, Vec<u64>, Recipe<'c>)>> {
    let d = *ckpt.dims();
    let (c, v, f) = (d.n_embd as u64, d.vocab as u64, d.ffn as u64);
    let get = |name: &str| ckpt.get(name).ok_or_else(|| anyhow!("tensor `{name}` is missing"));
    let mut plan = Vec::new();
    let mut add = |name: String, ne: Vec<u64>, recipe: Recipe<'c>| {
        plan.push((name, ne, recipe));
    };
    add("token_embd.weight".into(), vec![c, v], Recipe::Copy(get("emb.weight")?));
    add("token_embd_norm.weight".into(), vec![c], Recipe::Copy(get("blocks.0.ln0.weight")?));
    add("token_embd_norm.bias".into(), vec![c], Recipe::Copy(get("blocks.0.ln0.bias")?));
    for l in 0..d.n_layer {
        let p = |s: &str| get(&format!("blocks.{l}.{s}"));
        let b = |s: &str| format!("blk.{l}.{s}");
        add(b("attn_norm.weight"), vec![c], Recipe::Copy(p("ln1.weight")?));
        add(b("attn_norm.bias"), vec![c], Recipe::Copy(p("ln1.bias")?));
        add(b("attn_norm_2.weight"), vec![c], Recipe::Copy(p("ln2.weight")?));
        add(b("attn_norm_2.bias"), vec![c], Recipe::Copy(p("ln2.bias")?));
        let mixes = ["att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"]
            .iter()
            .map(|s| p(s))
            .collect::<Result<Vec<_>>>()?;
        add(b("time_mix_lerp_fused.weight"), vec![c, 1, 1, 6], Recipe::Concat(mixes));
        // LoRA: official `x @ M1` with M1 [C, D] becomes the [D, C] matrix M1ᵀ (ne [C, D]),
        // and M2 [D, C] becomes [C, D] (ne [D, C]).
        let mut lora = |which: &str, from: &str, rank: u64, bias: bool| -> Result<()> {
            if bias {
                add(b(&format!("time_mix_{which}0.weight")), vec![c], Recipe::Copy(p(&format!("att.{from}0"))?));
            }
            add(b(&format!("time_mix_{which}1.weight")), vec![c, rank], Recipe::Transpose(p(&format!("att.{from}1"))?));
            add(b(&format!("time_mix_{which}2.weight")), vec![rank, c], Recipe::Transpose(p(&format!("att.{from}2"))?));
            Ok(())
        };
        lora("w", "w", d.decay_rank as u64, true)?;
        lora("a", "a", d.iclr_rank as u64, true)?;
        // Layer 0's value LoRA is unused, but llama.cpp requires it shaped with the iclr
        // rank: its converter writes copies of a0/a1/a2 (FORMAT.md §3.1, §5.2 item 4).
        if l == 0 {
            lora("v", "a", d.iclr_rank as u64, true)?;
        } else {
            lora("v", "v", d.value_rank as u64, true)?;
        }
        lora("g", "g", d.gate_rank as u64, false)?;
        add(b("time_mix_k_k.weight"), vec![c], Recipe::Copy(p("att.k_k")?));
        add(b("time_mix_k_a.weight"), vec![c], Recipe::Copy(p("att.k_a")?));
        add(b("time_mix_r_k.weight"), vec![c], Recipe::Copy(p("att.r_k")?));
        for (gguf, official) in [
            ("time_mix_receptance.weight", "att.receptance.weight"),
            ("time_mix_key.weight", "att.key.weight"),
            ("time_mix_value.weight", "att.value.weight"),
            ("time_mix_output.weight", "att.output.weight"),
        ] {
            add(b(gguf), vec![c, c], Recipe::Copy(p(official)?));
        }
        add(b("time_mix_ln.weight"), vec![c], Recipe::Copy(p("att.ln_x.weight")?));
        add(b("time_mix_ln.bias"), vec![c], Recipe::Copy(p("att.ln_x.bias")?));
        add(b("channel_mix_lerp_k.weight"), vec![c], Recipe::Copy(p("ffn.x_k")?));
        add(b("channel_mix_key.weight"), vec![c, f], Recipe::Copy(p("ffn.key.weight")?));
        add(b("channel_mix_value.weight"), vec![f, c], Recipe::Copy(p("ffn.value.weight")?));
    }
    add("output_norm.weight".into(), vec![c], Recipe::Copy(get("ln_out.weight")?));
    add("output_norm.bias".into(), vec![c], Recipe::Copy(get("ln_out.bias")?));
    add("output.weight".into(), vec![c, v], Recipe::Copy(get("head.weight")?));
    Ok(plan)
}

fn ggml_of(dtype: DType) -> GgmlType {
    match dtype {
        DType::F32 => GgmlType::F32,
        DType::F16 => GgmlType::F16,
        DType::BF16 => GgmlType::BF16,
    }
}

fn dtype_of(ty: GgmlType) -> Option<DType> {
    match ty {
        GgmlType::F32 => Some(DType::F32),
        GgmlType::F16 => Some(DType::F16),
        GgmlType::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// Elements per conversion chunk.
const CHUNK: usize = 1 << 16;

/// Accumulates `Σ(x − x̂)²` and `Σx²` while a tensor is written.
#[derive(Clone, Copy, Debug, Default)]
struct ErrAcc {
    sum_sq_err: f64,
    sum_sq: f64,
}

impl ErrAcc {
    fn add(&mut self, x: &[f32], stored: impl Iterator<Item = f32>) {
        for (&a, b) in x.iter().zip(stored) {
            let (a, b) = (a as f64, b as f64);
            self.sum_sq_err += (a - b) * (a - b);
            self.sum_sq += a * a;
        }
    }

    fn stat(self, name: String, choice: Choice, source: GgmlType, elements: u64, ne: &[u64]) -> TensorStat {
        let bytes = crate::gguf_write::tensor_bytes(ne, choice.ty).unwrap_or(0);
        TensorStat {
            name,
            role: choice.role,
            source,
            ty: choice.ty,
            fell_back: choice.fell_back,
            guarded: choice.guarded,
            elements,
            bytes,
            sum_sq_err: self.sum_sq_err,
            sum_sq: self.sum_sq,
        }
    }
}

/// Block-quantizes `values` (whole blocks of 32, or 256 for the K-quants; rows being
/// whole blocks) with ggml's reference rounding (Q8_0, Q4_0) or the error-minimising
/// K-quant encoders (`rwkv7_kernels::kquant_encode`), appending the blocks to `buf` and writing the stored values
/// to `deq`. Non-finite inputs and block scales beyond the f16 range are errors: llama.cpp
/// would store an infinite scale and compute NaNs. All-zero blocks get scale 0 and zero
/// quants (so they decode to zeros, never NaN).
fn quantize_blocks(values: &[f32], ty: GgmlType, buf: &mut Vec<u8>, deq: &mut [f32]) -> Result<()> {
    use rwkv7_kernels::kquant_encode::{quantize_row_q4_k, quantize_row_q5_k, quantize_row_q6_k};
    use rwkv7_kernels::quant::{self, BlockQ4_0, BlockQ8_0, QK};
    use rwkv7_kernels::{BlockQ4K, BlockQ5K, BlockQ6K, kquant};
    let block = ty.block_len() as usize;
    ensure!(values.len().is_multiple_of(block), "{} values do not fill whole blocks of {block}", values.len());
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        bail!("value {v} cannot be quantized to {}", ty.name());
    }
    let too_large = || {
        let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        anyhow!("max |value| {amax} is too large for a {} block scale (f16)", ty.name())
    };
    match ty {
        GgmlType::Q8_0 => {
            let mut blocks = vec![BlockQ8_0::new(half::f16::ZERO, [0; QK]); values.len() / QK];
            par_quantize(values, &mut blocks, quant::quantize_row_q8_0);
            if !blocks.iter().all(|b| b.d().is_finite()) {
                return Err(too_large());
            }
            quant::dequantize_row_q8_0(&blocks, deq);
            buf.extend_from_slice(bytemuck::cast_slice(&blocks));
        }
        GgmlType::Q4_0 => {
            let mut blocks = vec![BlockQ4_0::new(half::f16::ZERO, [8; QK]); values.len() / QK];
            par_quantize(values, &mut blocks, quant::quantize_row_q4_0);
            if !blocks.iter().all(|b| b.d().is_finite()) {
                return Err(too_large());
            }
            quant::dequantize_row_q4_0(&blocks, deq);
            buf.extend_from_slice(bytemuck::cast_slice(&blocks));
        }
        GgmlType::Q4_K => {
            let mut blocks = vec![bytemuck::Zeroable::zeroed(); values.len() / block];
            par_quantize(values, &mut blocks, quantize_row_q4_k);
            let ok = blocks.iter().all(|b: &BlockQ4K| b.d_dmin().0.is_finite() && b.d_dmin().1.is_finite());
            ensure!(ok, too_large());
            kquant::dequantize_row(&blocks, deq);
            buf.extend_from_slice(bytemuck::cast_slice(&blocks));
        }
        GgmlType::Q5_K => {
            let mut blocks = vec![bytemuck::Zeroable::zeroed(); values.len() / block];
            par_quantize(values, &mut blocks, quantize_row_q5_k);
            let ok = blocks.iter().all(|b: &BlockQ5K| b.d_dmin().0.is_finite() && b.d_dmin().1.is_finite());
            ensure!(ok, too_large());
            kquant::dequantize_row(&blocks, deq);
            buf.extend_from_slice(bytemuck::cast_slice(&blocks));
        }
        GgmlType::Q6_K => {
            let mut blocks = vec![bytemuck::Zeroable::zeroed(); values.len() / block];
            par_quantize(values, &mut blocks, quantize_row_q6_k);
            ensure!(blocks.iter().all(|b: &BlockQ6K| b.scale().is_finite()), too_large());
            kquant::dequantize_row(&blocks, deq);
            buf.extend_from_slice(bytemuck::cast_slice(&blocks));
        }
        other => bail!("cannot block-quantize to {}", other.name()),
    }
    Ok(())
}

/// Blocks per parallel task of [`par_quantize`]: 16 K-quant super-blocks (4096 values)
/// take tens of microseconds to encode, enough to outweigh handing out the task.
const BLOCKS_PER_TASK: usize = 16;

/// `quantize(values, blocks)` with the blocks split across rayon's threads. Every block
/// is encoded from its own values alone, so the result is the same as one call.
fn par_quantize<B: Send>(values: &[f32], blocks: &mut [B], quantize: fn(&[f32], &mut [B])) {
    use rayon::prelude::*;
    let per_block = values.len() / blocks.len().max(1);
    blocks
        .par_chunks_mut(BLOCKS_PER_TASK)
        .zip(values.par_chunks(BLOCKS_PER_TASK * per_block.max(1)))
        .for_each(|(b, v)| quantize(v, b));
}

/// [`quantize_blocks`] into `buf`, with the rounding error added to `acc`.
fn encode_blocks(values: &[f32], ty: GgmlType, buf: &mut Vec<u8>, acc: &mut ErrAcc) -> Result<()> {
    let mut deq = vec![0f32; values.len()];
    quantize_blocks(values, ty, buf, &mut deq)?;
    acc.add(values, deq.into_iter());
    Ok(())
}

/// Where a tensor's input values come from; readable as f32 chunks, more than once.
enum Values<'a> {
    /// A planned checkpoint tensor.
    Recipe(&'a Recipe<'a>),
    /// Raw little-endian elements of a GGUF tensor.
    Raw(&'a [u8], DType),
}

impl Values<'_> {
    /// Calls `f` on consecutive chunks of the values in storage order (each chunk a
    /// multiple of 32 values, except possibly the last).
    fn for_each_chunk(&self, f: &mut dyn FnMut(&[f32]) -> Result<()>) -> Result<()> {
        fn raw(src: &[u8], dtype: DType, f: &mut dyn FnMut(&[f32]) -> Result<()>) -> Result<()> {
            let mut vals = Vec::with_capacity(CHUNK);
            for chunk in src.chunks(CHUNK * dtype.size()) {
                vals.clear();
                decode_f32(dtype, chunk, &mut vals);
                f(&vals)?;
            }
            Ok(())
        }
        match self {
            Values::Raw(src, dtype) => raw(src, *dtype, f),
            Values::Recipe(Recipe::Copy(t)) => raw(t.data.as_slice(), t.dtype, f),
            Values::Recipe(Recipe::Concat(ts)) => ts.iter().try_for_each(|t| raw(t.data.as_slice(), t.dtype, f)),
            Values::Recipe(Recipe::Transpose(t)) => f(&transposed(t)?),
        }
    }
}

/// Relative RMS error of storing `values` (rows of `cols`) as the block type `ty`, with
/// every column first divided by its RMS: `sqrt(Σ((x − x̂)/c_j)² / Σ(x/c_j)²)`.
///
/// For weights without outliers this equals the plain relative error. When a column is
/// much larger than the others (a channel outlier), its blocks' scale is set by it and the
/// other 31 weights of those blocks lose their precision; the plain error hides that (the
/// outlier dominates `Σx²`), this one does not. Treating every input channel as equally
/// important is exact when the outlier column meets a correspondingly small activation,
/// which is how such outliers arise (a LayerNorm weight or gate folded into the matrix).
/// All-zero columns are skipped; an all-zero tensor has error 0.
fn column_normalized_error(values: &Values<'_>, cols: usize, ty: GgmlType) -> Result<f64> {
    let mut col_sq = vec![0f64; cols];
    let mut pos = 0usize;
    values.for_each_chunk(&mut |v| {
        for (i, &x) in v.iter().enumerate() {
            col_sq[(pos + i) % cols] += x as f64 * x as f64;
        }
        pos += v.len();
        Ok(())
    })?;
    let rows = (pos / cols.max(1)) as f64;
    let inv_rms: Vec<f64> = col_sq.iter().map(|&s| if s > 0.0 { (rows / s).sqrt() } else { 0.0 }).collect();
    let (mut err, mut total, mut pos) = (0f64, 0f64, 0usize);
    let (mut buf, mut deq) = (Vec::new(), Vec::new());
    values.for_each_chunk(&mut |v| {
        buf.clear();
        deq.resize(v.len(), 0.0);
        quantize_blocks(v, ty, &mut buf, &mut deq)?;
        for (i, (&x, &q)) in v.iter().zip(&deq).enumerate() {
            let w = inv_rms[(pos + i) % cols];
            err += ((x as f64 - q as f64) * w).powi(2);
            total += (x as f64 * w).powi(2);
        }
        pos += v.len();
        Ok(())
    })?;
    Ok(rel_rms(err, total))
}

/// The outlier guard ([`crate::policy::OUTLIER_GUARD`]): moves a policy choice of a block
/// type one step finer while its column-normalized error is above the type's bound.
/// Choices made by `--keep`, and F16 fallbacks, are left alone.
fn apply_guard(choice: &mut Choice, values: &Values<'_>, ne: &[u64]) -> Result<()> {
    if choice.from_keep || choice.fell_back {
        return Ok(());
    }
    let cols = ne.first().copied().unwrap_or(1) as usize;
    let policy_type = choice.ty;
    while let Some(bound) = guard_bound(choice.ty) {
        let err = column_normalized_error(values, cols, choice.ty)?;
        if err <= bound {
            break;
        }
        if choice.guarded.is_none() {
            choice.guarded = Some((policy_type, err));
        }
        choice.ty = finer(choice.ty);
    }
    Ok(())
}

/// A 2-D checkpoint tensor transposed, as f32.
fn transposed(t: &Tensor) -> Result<Vec<f32>> {
    let [rows, cols] = *t.shape.as_slice() else { bail!("`{}` is not a matrix", t.name) };
    let vals = t.to_f32();
    let mut tr = vec![0f32; vals.len()];
    for (r, row) in vals.chunks_exact(cols.max(1)).enumerate() {
        for (col, &x) in row.iter().enumerate() {
            if let Some(dst) = tr.get_mut(col * rows + r) {
                *dst = x;
            }
        }
    }
    Ok(tr)
}

/// Encodes f32 values as `ty` into `buf`, refusing values that become infinite, and
/// accumulates the rounding error into `acc`.
fn encode(values: &[f32], ty: GgmlType, buf: &mut Vec<u8>, acc: &mut ErrAcc) -> Result<()> {
    buf.clear();
    match ty {
        GgmlType::F32 => {
            buf.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            acc.add(values, values.iter().copied());
        }
        GgmlType::F16 => {
            for &v in values {
                let h = half::f16::from_f32(v);
                ensure!(h.is_finite() || !v.is_finite(), "value {v} is outside the f16 range");
                buf.extend(h.to_le_bytes());
            }
            acc.add(values, values.iter().map(|&v| half::f16::from_f32(v).to_f32()));
        }
        GgmlType::BF16 => {
            for &v in values {
                let h = half::bf16::from_f32(v);
                ensure!(h.is_finite() || !v.is_finite(), "value {v} is outside the bf16 range");
                buf.extend(h.to_le_bytes());
            }
            acc.add(values, values.iter().map(|&v| half::bf16::from_f32(v).to_f32()));
        }
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
            encode_blocks(values, ty, buf, acc)?
        }
        other => bail!("cannot encode {}", other.name()),
    }
    Ok(())
}

/// Writes `src` (elements of `dtype`) as `ty`: a plain copy when the types match, else
/// chunk by chunk through f32.
///
/// `CHUNK` is a multiple of 256, so for a block type every chunk is whole blocks.
fn write_converted(src: &[u8], dtype: DType, ty: GgmlType, out: &mut dyn Write, acc: &mut ErrAcc) -> Result<()> {
    if dtype_of(ty) == Some(dtype) {
        out.write_all(src)?; // Exact: no error to accumulate.
        return Ok(());
    }
    let mut vals = Vec::with_capacity(CHUNK);
    let mut buf = Vec::new();
    for chunk in src.chunks(CHUNK * dtype.size()) {
        vals.clear();
        decode_f32(dtype, chunk, &mut vals);
        encode(&vals, ty, &mut buf, acc)?;
        out.write_all(&buf)?;
    }
    Ok(())
}

fn write_recipe(recipe: &Recipe<'_>, ty: GgmlType, out: &mut dyn Write, acc: &mut ErrAcc) -> Result<()> {
    match recipe {
        Recipe::Copy(t) => write_converted(t.data.as_slice(), t.dtype, ty, out, acc),
        Recipe::Concat(ts) => ts.iter().try_for_each(|t| write_converted(t.data.as_slice(), t.dtype, ty, out, acc)),
        Recipe::Transpose(t) => {
            let tr = transposed(t)?;
            let mut buf = Vec::new();
            encode(&tr, ty, &mut buf, acc)?;
            out.write_all(&buf)?;
            Ok(())
        }
    }
}

fn progress_bar(len: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} tensors {wide_msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Re-reads the finished temporary file with the runtime's GGUF reader.
fn check_output(path: &Path, n_tensors: usize) -> Result<()> {
    let bytes = map_file(path)?;
    let g = Gguf::parse(bytes.as_slice()).map_err(|e| anyhow!("the written file does not parse back: {e}"))?;
    ensure!(
        g.tensor_count() == n_tensors as u64,
        "the written file has {} tensors, expected {n_tensors}",
        g.tensor_count()
    );
    Ok(())
}

/// The longest metadata array copied from an input GGUF: a copied element takes 32 bytes,
/// so a 64 MiB array of bytes grew to 2 GB (found by fuzzing). The longest real ones are
/// the tokenizer's (65 536 tokens and types).
const MAX_COPIED_ARRAY: u64 = 1 << 20;

/// Copies one metadata value of a GGUF file.
fn meta_of(v: &Value<'_>) -> MetaValue {
    match *v {
        Value::U8(x) => MetaValue::U8(x),
        Value::I8(x) => MetaValue::I8(x),
        Value::U16(x) => MetaValue::U16(x),
        Value::I16(x) => MetaValue::I16(x),
        Value::U32(x) => MetaValue::U32(x),
        Value::I32(x) => MetaValue::I32(x),
        Value::F32(x) => MetaValue::F32(x),
        Value::Bool(x) => MetaValue::Bool(x),
        Value::String(s) => MetaValue::String(s.to_vec()),
        Value::Array(a) => MetaValue::Array(a.elem_type(), a.iter().map(|e| meta_of(&e)).collect()),
        Value::U64(x) => MetaValue::U64(x),
        Value::I64(x) => MetaValue::I64(x),
        Value::F64(x) => MetaValue::F64(x),
    }
}

/// GGUF → GGUF: tensors re-encoded by the type policy ([`choose_type`]), metadata copied.
/// Q8_0/Q4_0 inputs can be written as float types (dequantized) or copied as they are,
/// but not re-quantized to another block type.
fn convert_gguf(input: &Path, output: &Path, opts: &ConvertOptions) -> Result<ConvertReport> {
    let at = |p: &Path| p.display().to_string();
    let bytes = map_file(input).with_context(|| at(input))?;
    let g = Gguf::parse(bytes.as_slice()).map_err(|e| anyhow!("{}: invalid GGUF: {e}", at(input)))?;
    let arch = g.get("general.architecture").and_then(|v| v.as_str());
    if arch != Some("rwkv7") {
        bail!(
            "{}: general.architecture is {}, expected `rwkv7`",
            at(input),
            arch.map_or("missing".into(), |a| format!("`{a}`"))
        );
    }
    let has_tokenizer = g.get("tokenizer.ggml.model").is_some_and(|m| !matches!(m.as_str(), Some("none" | "no_vocab")));
    let vocab_path = opts.vocab.clone().or_else(|| {
        let beside = model_dir(input).join(WORLD_VOCAB_FILE);
        (!has_tokenizer && beside.is_file()).then_some(beside)
    });
    let vocab = match &vocab_path {
        Some(p) => Some(read_vocab(p).with_context(|| at(p))?),
        None => None,
    };

    let mut w = GgufWriter::new();
    let mut wrote_file_type = false;
    for (key, value) in g.metadata() {
        if vocab.is_some() && key.starts_with("tokenizer.") {
            continue;
        }
        let value = if key == "general.file_type" {
            wrote_file_type = true;
            MetaValue::U32(opts.out_type.file_type())
        } else {
            let long = value.as_array().map(|a| a.len()).filter(|&n| n > MAX_COPIED_ARRAY);
            if let Some(n) = long {
                bail!(
                    "{}: metadata `{key}` is an array of {n} elements (at most {MAX_COPIED_ARRAY} are copied)",
                    at(input)
                );
            }
            meta_of(&value)
        };
        w.add_metadata(key, value).with_context(|| at(input))?;
    }
    if !wrote_file_type {
        w.add_metadata("general.file_type", opts.out_type.file_type()).with_context(|| at(output))?;
    }
    let mut vocab_tokens = g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len() as usize);
    if vocab.is_none() && g.get("tokenizer.ggml.model").is_none() {
        let rows = g.tensor("token_embd.weight").and_then(|t| t.dims().get(1).copied()).unwrap_or(0);
        add_no_tokenizer(&mut w, usize::try_from(rows).with_context(|| at(input))?).with_context(|| at(output))?;
    }
    if let Some(v) = &vocab {
        let rows = g
            .tensor("token_embd.weight")
            .and_then(|t| t.dims().get(1).copied())
            .ok_or_else(|| anyhow!("{}: no 2-D token_embd.weight to size the vocabulary by", at(input)))?;
        let rows = usize::try_from(rows).with_context(|| at(input))?;
        let p = vocab_path.as_deref().unwrap_or(input);
        vocab_tokens = Some(add_tokenizer(&mut w, v, rows).with_context(|| at(p))?);
    }

    let tensors: Vec<_> = g.tensors().collect();
    let n = tensors.len();
    let pb = progress_bar(n as u64, opts.progress);
    let stats = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let mut used = vec![false; opts.keep.len()];
    for t in tensors {
        let mut choice =
            choose_type(t.name, t.dims(), opts.out_type, &opts.keep, &mut used).with_context(|| at(input))?;
        let dtype = dtype_of(t.ggml_type);
        if let Some(dtype) = dtype {
            apply_guard(&mut choice, &Values::Raw(t.data, dtype), t.dims())
                .with_context(|| format!("{}: tensor `{}`", at(input), t.name))?;
        }
        let block_source = is_readable_block_type(t.ggml_type);
        if dtype.is_none() {
            let is_vector = !t.dims().iter().any(|&d| d > 1);
            if t.ggml_type == choice.ty || (is_vector && !block_source) {
                choice.ty = t.ggml_type; // Quantized or integer data that needs no change: copy.
            } else if !(block_source && dtype_of(choice.ty).is_some()) {
                bail!(
                    "{}: tensor `{}` is {}; re-quantizing to {} is not supported (convert from the float model)",
                    at(input),
                    t.name,
                    t.ggml_type.name(),
                    choice.ty.name()
                );
            }
        }
        let pb = pb.clone();
        let label = t.name.to_string();
        let stats = Rc::clone(&stats);
        let ty = choice.ty;
        let ne = t.dims().to_vec();
        let source: crate::gguf_write::TensorSource<'_> = Box::new(move |out: &mut dyn Write| {
            pb.set_message(label.clone());
            let mut acc = ErrAcc::default();
            match dtype {
                Some(dtype) => write_converted(t.data, dtype, ty, out, &mut acc),
                None if t.ggml_type != ty => write_dequantized(t.data, t.ggml_type, ty, out, &mut acc),
                None => Ok(out.write_all(t.data)?),
            }
            .with_context(|| format!("tensor `{label}`"))?;
            stats.borrow_mut().push(acc.stat(label, choice, t.ggml_type, t.n_elements(), &ne));
            pb.inc(1);
            Ok(())
        });
        w.add_tensor_with(t.name, t.dims(), ty, source).with_context(|| at(output))?;
    }
    check_all_used(&opts.keep, &used).with_context(|| at(input))?;
    let size = w.write_file_checked(output, |tmp| check_output(tmp, n)).with_context(|| at(output))?;
    pb.finish_and_clear();
    Ok(ConvertReport {
        input_format: InputFormat::Gguf,
        out_type: opts.out_type,
        tensors: n,
        output_bytes: size,
        dims: None,
        vocab_tokens,
        vocab_file: vocab_path,
        tensor_stats: stats.take(),
    })
}

/// The block types a GGUF input may hold that [`write_dequantized`] can decode: ours
/// (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) and the older ones llama.cpp writes (Q4_1, Q5_0, Q5_1).
fn is_readable_block_type(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q8_0 | Q4_0 | Q4_K | Q5_K | Q6_K | Q4_1 | Q5_0 | Q5_1)
}

/// Writes blocks of a [`is_readable_block_type`] as the float type `ty` (dequantized;
/// exact for f32).
fn write_dequantized(src: &[u8], from: GgmlType, ty: GgmlType, out: &mut dyn Write, acc: &mut ErrAcc) -> Result<()> {
    use rwkv7_kernels::kquant::dequantize_row as deq;
    use rwkv7_kernels::quant::{self, BlockQ4_0, BlockQ8_0};
    use rwkv7_kernels::{BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K};
    let block_bytes = from.block_bytes() as usize;
    let block_len = from.block_len() as usize;
    ensure!(src.len().is_multiple_of(block_bytes), "{} bytes are not whole {} blocks", src.len(), from.name());
    let mut vals = vec![0f32; CHUNK];
    let mut buf = Vec::new();
    for chunk in src.chunks(CHUNK / block_len * block_bytes) {
        let n = chunk.len() / block_bytes * block_len;
        let vals = &mut vals[..n];
        match from {
            GgmlType::Q8_0 => quant::dequantize_row_q8_0(bytemuck::cast_slice::<u8, BlockQ8_0>(chunk), vals),
            GgmlType::Q4_0 => quant::dequantize_row_q4_0(bytemuck::cast_slice::<u8, BlockQ4_0>(chunk), vals),
            GgmlType::Q4_K => deq(bytemuck::cast_slice::<u8, BlockQ4K>(chunk), vals),
            GgmlType::Q5_K => deq(bytemuck::cast_slice::<u8, BlockQ5K>(chunk), vals),
            GgmlType::Q6_K => deq(bytemuck::cast_slice::<u8, BlockQ6K>(chunk), vals),
            GgmlType::Q4_1 => deq(bytemuck::cast_slice::<u8, BlockQ4_1>(chunk), vals),
            GgmlType::Q5_0 => deq(bytemuck::cast_slice::<u8, BlockQ5_0>(chunk), vals),
            GgmlType::Q5_1 => deq(bytemuck::cast_slice::<u8, BlockQ5_1>(chunk), vals),
            other => bail!("cannot decode {}", other.name()),
        }
        encode(vals, ty, &mut buf, acc)?;
        out.write_all(&buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Bytes;
    use crate::checkpoint::tests::{encode_as, tiny_official_as, values_for};
    use rwkv7_core::gguf::TensorInfo;

    const C: usize = 128;
    const V: usize = 50;
    const L: usize = 3;
    const RANKS: [usize; 4] = [32, 16, 8, 24];

    fn opts(out_type: OutType) -> ConvertOptions {
        ConvertOptions::new(out_type)
    }

    /// Writes `tensors` as a torch-style `.pth` file.
    fn write_pth(path: &Path, tensors: &[Tensor]) {
        std::fs::write(path, crate::pth_write::to_pth_bytes(tensors)).unwrap();
    }

    /// The fla layout of an official tensor set (the forward map of spec §5).
    fn to_fla(tensors: &[Tensor]) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
        let mut out = Vec::new();
        for t in tensors {
            let n = t.name.as_str();
            let st_dtype = match t.dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::F16 => safetensors::Dtype::F16,
                DType::BF16 => safetensors::Dtype::BF16,
            };
            let raw = t.data.as_slice().to_vec();
            let (name, shape, data) = if n == "emb.weight" {
                ("model.embeddings.weight".to_string(), t.shape.clone(), raw)
            } else if n == "head.weight" {
                ("lm_head.weight".into(), t.shape.clone(), raw)
            } else if let Some(s) = n.strip_prefix("ln_out.") {
                (format!("model.norm.{s}"), t.shape.clone(), raw)
            } else {
                let rest = n.strip_prefix("blocks.").unwrap();
                let (l, s) = rest.split_once('.').unwrap();
                let p = format!("model.layers.{l}.");
                let squeeze = vec![C];
                let lora = |which: char, part: &str| format!("{p}attn.{which}_lora.lora.{part}");
                let transposed = || {
                    let (r, k) = (t.shape[0], t.shape[1]);
                    let es = t.dtype.size();
                    let mut d = vec![0u8; raw.len()];
                    for i in 0..r {
                        for j in 0..k {
                            d[(j * r + i) * es..(j * r + i + 1) * es]
                                .copy_from_slice(&raw[(i * k + j) * es..(i * k + j + 1) * es]);
                        }
                    }
                    (vec![k, r], d)
                };
                match s {
                    "att.v0" | "att.v1" | "att.v2" if l == "0" => continue,
                    _ => {}
                }
                match s {
                    "ln0.weight" | "ln0.bias" => (format!("{p}pre_norm.{}", &s[4..]), t.shape.clone(), raw),
                    s if s.starts_with("ln1.") => (format!("{p}attn_norm.{}", &s[4..]), t.shape.clone(), raw),
                    s if s.starts_with("ln2.") => (format!("{p}ffn_norm.{}", &s[4..]), t.shape.clone(), raw),
                    s if s.starts_with("att.x_") => (format!("{p}attn.{}", &s[4..]), t.shape.clone(), raw),
                    "att.k_k" | "att.k_a" => (format!("{p}attn.{}", &s[4..]), squeeze, raw),
                    "att.r_k" => (format!("{p}attn.r_k"), t.shape.clone(), raw),
                    "att.receptance.weight" => (format!("{p}attn.r_proj.weight"), t.shape.clone(), raw),
                    "att.key.weight" => (format!("{p}attn.k_proj.weight"), t.shape.clone(), raw),
                    "att.value.weight" => (format!("{p}attn.v_proj.weight"), t.shape.clone(), raw),
                    "att.output.weight" => (format!("{p}attn.o_proj.weight"), t.shape.clone(), raw),
                    s if s.starts_with("att.ln_x.") => (format!("{p}attn.g_norm.{}", &s[9..]), t.shape.clone(), raw),
                    "ffn.x_k" => (format!("{p}ffn.x_k"), squeeze, raw),
                    "ffn.key.weight" | "ffn.value.weight" => (format!("{p}{s}"), t.shape.clone(), raw),
                    s => {
                        let which = s.chars().nth(4).unwrap();
                        match s.chars().nth(5).unwrap() {
                            '0' => (lora(which, "2.bias"), squeeze, raw),
                            '1' => {
                                let (shape, d) = transposed();
                                (lora(which, "0.weight"), shape, d)
                            }
                            _ => {
                                let (shape, d) = transposed();
                                (lora(which, "2.weight"), shape, d)
                            }
                        }
                    }
                }
            };
            out.push((name, st_dtype, shape, data));
        }
        out
    }

    fn write_hf(dir: &Path, tensors: &[Tensor]) {
        std::fs::create_dir_all(dir).unwrap();
        let fla = to_fla(tensors);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = fla
            .iter()
            .map(|(n, d, s, data)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), data).unwrap()))
            .collect();
        std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
        let [dw, da, dv, dg] = RANKS;
        let config = format!(
            r#"{{"model_type": "rwkv7", "hidden_size": {C}, "num_hidden_layers": {L}, "head_dim": 64, "num_heads": null,
            "decay_low_rank_dim": {dw}, "a_low_rank_dim": {da}, "v_low_rank_dim": {dv}, "gate_low_rank_dim": {dg},
            "hidden_ratio": 4.0, "intermediate_size": {}, "hidden_act": "sqrelu", "vocab_size": {V}, "norm_eps": 1e-05,
            "norm_bias": true, "tie_word_embeddings": false, "value_dim": [{C}, {C}, {C}]}}"#,
            4 * C
        );
        std::fs::write(dir.join("config.json"), config).unwrap();
    }

    fn tensors_of<'a>(g: &Gguf<'a>) -> HashMap<&'a str, TensorInfo<'a>> {
        g.tensors().map(|t| (t.name, t)).collect()
    }

    fn f32s_of(t: &TensorInfo<'_>) -> Vec<f32> {
        let dtype = dtype_of(t.ggml_type).unwrap();
        let mut out = Vec::new();
        decode_f32(dtype, t.data, &mut out);
        out
    }

    fn official(tensors: &[Tensor], name: &str) -> Vec<f32> {
        tensors.iter().find(|t| t.name == name).unwrap().to_f32()
    }

    fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![0.0; v.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = v[r * cols + c];
            }
        }
        out
    }

    #[test]
    fn pth_to_gguf_follows_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(L, C, V, RANKS, DType::BF16);
        let pth = dir.path().join("tiny-x070.pth");
        write_pth(&pth, &tensors);
        let out = dir.path().join("out.gguf");
        let report = convert(&pth, &out, &opts(OutType::F16)).unwrap();
        assert_eq!(report.input_format, InputFormat::Pth);
        assert_eq!(report.tensors, 6 + 28 * L);
        assert_eq!(report.vocab_tokens, None);

        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(report.output_bytes, bytes.len() as u64);
        let g = Gguf::parse(&bytes).unwrap();
        let meta = |k: &str| g.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(meta("general.architecture"), Value::String(b"rwkv7"));
        assert_eq!(meta("general.name"), Value::String(b"tiny-x070"));
        assert_eq!(meta("general.file_type"), Value::U32(1));
        assert_eq!(meta("rwkv7.context_length"), Value::U32(1_048_576));
        assert_eq!(meta("rwkv7.embedding_length"), Value::U32(C as u32));
        assert_eq!(meta("rwkv7.block_count"), Value::U32(L as u32));
        assert_eq!(meta("rwkv7.feed_forward_length"), Value::U32(4 * C as u32));
        assert_eq!(meta("rwkv7.wkv.head_size"), Value::U32(64));
        assert_eq!(meta("rwkv7.attention.layer_norm_epsilon"), Value::F32(1e-5));
        assert_eq!(meta("rwkv7.attention.head_count"), Value::U32(0));
        assert_eq!(meta("rwkv7.attention.decay_lora_rank"), Value::U32(32));
        assert_eq!(meta("rwkv7.attention.iclr_lora_rank"), Value::U32(16));
        assert_eq!(meta("rwkv7.attention.value_residual_mix_lora_rank"), Value::U32(8));
        assert_eq!(meta("rwkv7.attention.gate_lora_rank"), Value::U32(24));
        assert_eq!(g.get("tokenizer.ggml.model").and_then(|m| m.as_str()), Some("none"));
        assert!(g.get("rwkv7.vocab_size").and_then(|v| v.as_u64()).is_some());
        assert!(g.get("rwkv7.token_shift_count").is_none());

        let t = tensors_of(&g);
        assert_eq!(t.len(), 6 + 28 * L);
        let c = C as u64;
        let check = |name: &str, ne: &[u64], ty: GgmlType| {
            let info = t.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!((info.dims(), info.ggml_type), (ne, ty), "{name}");
        };
        check("token_embd.weight", &[c, V as u64], GgmlType::F16);
        check("token_embd_norm.weight", &[c], GgmlType::F32);
        check("output.weight", &[c, V as u64], GgmlType::F16);
        for l in 0..L {
            let b = |s: &str| format!("blk.{l}.{s}");
            check(&b("time_mix_lerp_fused.weight"), &[c, 1, 1, 6], GgmlType::F32);
            check(&b("time_mix_w0.weight"), &[c], GgmlType::F32);
            check(&b("time_mix_w1.weight"), &[c, 32], GgmlType::F32);
            check(&b("time_mix_w2.weight"), &[32, c], GgmlType::F32);
            check(&b("time_mix_a1.weight"), &[c, 16], GgmlType::F16);
            check(&b("time_mix_a2.weight"), &[16, c], GgmlType::F16);
            let dv = if l == 0 { 16 } else { 8 };
            check(&b("time_mix_v1.weight"), &[c, dv], GgmlType::F16);
            check(&b("time_mix_v2.weight"), &[dv, c], GgmlType::F16);
            check(&b("time_mix_g1.weight"), &[c, 24], GgmlType::F16);
            check(&b("time_mix_g2.weight"), &[24, c], GgmlType::F16);
            check(&b("time_mix_r_k.weight"), &[c], GgmlType::F32);
            check(&b("time_mix_receptance.weight"), &[c, c], GgmlType::F16);
            check(&b("time_mix_ln.bias"), &[c], GgmlType::F32);
            check(&b("channel_mix_lerp_k.weight"), &[c], GgmlType::F32);
            check(&b("channel_mix_key.weight"), &[c, 4 * c], GgmlType::F16);
            check(&b("channel_mix_value.weight"), &[4 * c, c], GgmlType::F16);
        }

        // Values: bf16 → f32 vectors are exact; bf16 → f16 matrices round.
        let o = |n: &str| official(&tensors, n);
        assert_eq!(f32s_of(&t["token_embd_norm.bias"]), o("blocks.0.ln0.bias"));
        assert_eq!(f32s_of(&t["blk.1.time_mix_r_k.weight"]), o("blocks.1.att.r_k"));
        assert_eq!(f32s_of(&t["blk.2.time_mix_w0.weight"]), o("blocks.2.att.w0"));
        let fused: Vec<f32> =
            ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"].iter().flat_map(|s| o(&format!("blocks.1.att.{s}"))).collect();
        assert_eq!(f32s_of(&t["blk.1.time_mix_lerp_fused.weight"]), fused);
        assert_eq!(f32s_of(&t["blk.1.time_mix_w1.weight"]), transpose(&o("blocks.1.att.w1"), C, 32));
        assert_eq!(f32s_of(&t["blk.1.time_mix_w2.weight"]), transpose(&o("blocks.1.att.w2"), 32, C));
        let f16_round = |v: Vec<f32>| v.into_iter().map(|x| half::f16::from_f32(x).to_f32()).collect::<Vec<_>>();
        assert_eq!(f32s_of(&t["blk.2.time_mix_g1.weight"]), f16_round(transpose(&o("blocks.2.att.g1"), C, 24)));
        assert_eq!(f32s_of(&t["blk.2.time_mix_key.weight"]), f16_round(o("blocks.2.att.key.weight")));
        assert_eq!(f32s_of(&t["token_embd.weight"]), f16_round(o("emb.weight")));
        // Layer 0's value LoRA is a copy of its a LoRA.
        for (v, a) in [("v0", "a0"), ("v1", "a1"), ("v2", "a2")] {
            assert_eq!(
                t[format!("blk.0.time_mix_{v}.weight").as_str()].data,
                t[format!("blk.0.time_mix_{a}.weight").as_str()].data
            );
        }
        assert_eq!(f32s_of(&t["blk.1.time_mix_v0.weight"]), o("blocks.1.att.v0"));
    }

    /// Converts the same weights from `.pth`, from an HF directory and file, and from the
    /// resulting GGUF; all must give the same tensors.
    #[test]
    fn every_route_gives_the_same_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(L, C, V, RANKS, DType::F32);
        let pth = dir.path().join("m.pth");
        write_pth(&pth, &tensors);
        let hf_dir = dir.path().join("hf");
        write_hf(&hf_dir, &tensors);

        let run = |input: &Path, name: &str, t: OutType| {
            let out = dir.path().join(name);
            convert(input, &out, &opts(t)).unwrap();
            std::fs::read(out).unwrap()
        };
        let from_pth = run(&pth, "pth.gguf", OutType::F32);
        let from_hf = run(&hf_dir, "hf.gguf", OutType::F32);
        let from_hf_file = run(&hf_dir.join("model.safetensors"), "hf-file.gguf", OutType::F32);
        let from_gguf = run(&dir.path().join("pth.gguf"), "gguf.gguf", OutType::F32);
        let bf16_direct = run(&pth, "direct-bf16.gguf", OutType::BF16);
        let bf16_from_gguf = run(&dir.path().join("pth.gguf"), "via-gguf-bf16.gguf", OutType::BF16);

        let list = |bytes: &[u8]| -> Vec<(String, Vec<u64>, GgmlType, Vec<u8>)> {
            let g = Gguf::parse(bytes).unwrap();
            g.tensors().map(|t| (t.name.to_string(), t.dims().to_vec(), t.ggml_type, t.data.to_vec())).collect()
        };
        let reference = list(&from_pth);
        assert_eq!(list(&from_hf), reference, "hf dir");
        assert_eq!(list(&from_hf_file), reference, "hf file");
        assert_eq!(list(&from_gguf), reference, "gguf");
        // GGUF → GGUF at F32 copies everything, metadata included.
        assert_eq!(from_gguf, from_pth);
        assert_eq!(list(&bf16_from_gguf), list(&bf16_direct), "bf16 via gguf");
        let g = Gguf::parse(&bf16_from_gguf).unwrap();
        assert_eq!(g.get("general.file_type"), Some(Value::U32(32)));
        assert_eq!(g.tensor("blk.0.time_mix_w1.weight").unwrap().ggml_type, GgmlType::F32);
        assert_eq!(g.tensor("blk.0.time_mix_a1.weight").unwrap().ggml_type, GgmlType::BF16);
    }

    /// Shards listed by an index, and the legacy fused `attn.x_x`, read like one file.
    #[test]
    fn hf_shards_and_legacy_fused_mixes() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(L, C, V, RANKS, DType::F32);
        let pth = dir.path().join("m.pth");
        write_pth(&pth, &tensors);
        let hf_dir = dir.path().join("hf");
        write_hf(&hf_dir, &tensors);
        std::fs::remove_file(hf_dir.join("model.safetensors")).unwrap();
        let mut fla = to_fla(&tensors);
        // Fuse layer 1's six mixes into x_x [6, C].
        let mut fused = Vec::new();
        for s in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] {
            let i = fla.iter().position(|t| t.0 == format!("model.layers.1.attn.{s}")).unwrap();
            fused.extend(fla.remove(i).3);
        }
        fla.push(("model.layers.1.attn.x_x".into(), safetensors::Dtype::F32, vec![6, C], fused));
        let (a, b) = fla.split_at(fla.len() / 2);
        let mut map = serde_json::Map::new();
        for (file, part) in [("model-00001-of-00002.safetensors", a), ("model-00002-of-00002.safetensors", b)] {
            let views: Vec<_> = part
                .iter()
                .map(|(n, d, s, data)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), data).unwrap()))
                .collect();
            std::fs::write(hf_dir.join(file), safetensors::serialize(views, None).unwrap()).unwrap();
            for (n, ..) in part {
                map.insert(n.clone(), file.into());
            }
        }
        let index = serde_json::json!({ "metadata": {}, "weight_map": map });
        std::fs::write(hf_dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

        let list = |input: &Path, name: &str| {
            let out = dir.path().join(name);
            convert(input, &out, &opts(OutType::BF16)).unwrap();
            let bytes = std::fs::read(out).unwrap();
            let g = Gguf::parse(&bytes).unwrap();
            g.tensors().map(|t| (t.name.to_string(), t.ne, t.ggml_type, t.data.to_vec())).collect::<Vec<_>>()
        };
        assert!(list(&hf_dir, "hf.gguf") == list(&pth, "pth.gguf"));
    }

    #[test]
    fn hf_config_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(L, C, V, RANKS, DType::F32);
        let hf_dir = dir.path().join("hf");
        write_hf(&hf_dir, &tensors);
        let cfg = hf_dir.join("config.json");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, text.replace("\"a_low_rank_dim\": 16", "\"a_low_rank_dim\": 32")).unwrap();
        let err = format!("{:#}", convert(&hf_dir, &dir.path().join("x.gguf"), &opts(OutType::F32)).unwrap_err());
        assert_eq!(err, format!("{}: a_low_rank_dim is 32, but the weights have 16 (a_lora rank)", cfg.display()));
        std::fs::remove_file(&cfg).unwrap();
        let err = format!("{:#}", convert(&hf_dir, &dir.path().join("x.gguf"), &opts(OutType::F32)).unwrap_err());
        assert!(err.starts_with(&format!("{}: config.json is missing", cfg.display())), "{err}");
    }

    #[test]
    fn writes_the_world_tokenizer_found_beside_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(1, 64, 300, [32, 32, 32, 32], DType::F32);
        let pth = dir.path().join("m.pth");
        write_pth(&pth, &tensors);
        // ids 1..256 are the bytes, 257 is "\n\n", 258 is "你".
        let mut vocab = String::new();
        for b in 0..=255u8 {
            let lit = match b {
                b'\'' => "\"'\"".to_string(),
                b'\\' => "'\\\\'".to_string(),
                0x20..=0x7e => format!("'{}'", b as char),
                0x80.. => format!("b'\\x{b:02x}'"),
                _ => format!("'\\x{b:02x}'"),
            };
            vocab.push_str(&format!("{} {lit} 1\n", u32::from(b) + 1));
        }
        vocab.push_str("257 '\\n\\n' 2\n258 '你' 3\n");
        std::fs::write(dir.path().join(WORLD_VOCAB_FILE), &vocab).unwrap();
        let out = dir.path().join("m.gguf");
        let report = convert(&pth, &out, &opts(OutType::F32)).unwrap();
        assert_eq!(report.vocab_tokens, Some(300));
        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.get("tokenizer.ggml.model").unwrap().as_str(), Some("rwkv"));
        let tokens: Vec<&str> =
            g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(tokens.len(), 300);
        assert_eq!(tokens[0], "<s>");
        assert_eq!(tokens[1], "\\x00");
        assert_eq!(tokens[11], "\\n");
        assert_eq!(tokens[40], "'");
        assert_eq!(tokens[93], "\\\\");
        assert_eq!(tokens[129], "\\x80");
        assert_eq!(tokens[257], "\\n\\n");
        assert_eq!(tokens[258], "\\xe4\\xbd\\xa0");
        assert_eq!(tokens[259], "[PAD259]");
        let types: Vec<Value<'_>> = g.get("tokenizer.ggml.token_type").unwrap().as_array().unwrap().iter().collect();
        assert_eq!(
            (types[0], types[1], types[258], types[299]),
            (Value::I32(3), Value::I32(1), Value::I32(1), Value::I32(5))
        );
        assert_eq!(g.get("tokenizer.ggml.bos_token_id"), Some(Value::U32(0)));
        assert_eq!(g.get("tokenizer.ggml.eos_token_id"), Some(Value::U32(0)));
        assert_eq!(g.get("tokenizer.ggml.eot_token_id"), Some(Value::U32(257)));
        assert_eq!(g.get("tokenizer.chat_template").unwrap().as_str(), Some("rwkv-world"));

        // Re-encoding the GGUF keeps its tokenizer; an explicit --vocab replaces it.
        let again = dir.path().join("again.gguf");
        std::fs::remove_file(dir.path().join(WORLD_VOCAB_FILE)).unwrap();
        let r = convert(&out, &again, &opts(OutType::BF16)).unwrap();
        assert_eq!((r.vocab_tokens, r.vocab_file), (Some(300), None));
        let small = dir.path().join("small.txt");
        std::fs::write(&small, "1 'a' 1\n2 'b' 1\n").unwrap();
        let r = convert(&out, &again, &ConvertOptions { vocab: Some(small.clone()), ..opts(OutType::F32) }).unwrap();
        assert_eq!(r.vocab_tokens, Some(300));
        let bytes = std::fs::read(&again).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let tokens: Vec<&str> =
            g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&tokens[..4], ["<s>", "a", "b", "[PAD3]"]);
        assert!(g.get("tokenizer.ggml.eot_token_id").is_none());
        assert_eq!(g.metadata().filter(|(k, _)| *k == "tokenizer.ggml.model").count(), 1);

        // A vocabulary larger than the model is refused, naming the vocab file.
        let big: String = (1..=300).map(|i| format!("{i} 'x{i}' {}\n", 1 + i.to_string().len())).collect();
        std::fs::write(&small, big).unwrap();
        let err = format!(
            "{:#}",
            convert(&pth, &again, &ConvertOptions { vocab: Some(small.clone()), ..opts(OutType::F32) }).unwrap_err()
        );
        assert_eq!(
            err,
            format!("{}: the vocabulary has ids up to 300, but the model has only 300 embedding rows", small.display())
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.gguf");
        let mut tensors = tiny_official_as(1, 64, 10, [32, 32, 32, 32], DType::F32);
        tensors.push(Tensor::new("blocks.0.att.time_first", DType::F32, vec![1], Bytes::from_vec(vec![0; 4])).unwrap());
        let pth = dir.path().join("v6.pth");
        write_pth(&pth, &tensors);
        let err = format!("{:#}", convert(&pth, &out, &opts(OutType::F32)).unwrap_err());
        assert_eq!(
            err,
            format!(
                "{}: this is an RWKV v4/v5/v6 checkpoint, not a plain RWKV-7 (x070) checkpoint (found tensor `blocks.0.att.time_first`)",
                pth.display()
            )
        );
        assert!(!out.exists());

        let missing = dir.path().join("nope.pth");
        let err = format!("{:#}", convert(&missing, &out, &opts(OutType::F32)).unwrap_err());
        assert!(err.starts_with(&format!("{}: ", missing.display())), "{err}");

        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"hello world, not a model").unwrap();
        let err = format!("{:#}", convert(&junk, &out, &opts(OutType::F32)).unwrap_err());
        assert!(err.starts_with(&format!("{}: not a recognised model file", junk.display())), "{err}");

        // A truncated .pth.
        let good = tiny_official_as(1, 64, 10, [32, 32, 32, 32], DType::F32);
        write_pth(&pth, &good);
        let bytes = std::fs::read(&pth).unwrap();
        std::fs::write(&pth, &bytes[..bytes.len() / 2]).unwrap();
        let err = format!("{:#}", convert(&pth, &out, &opts(OutType::F32)).unwrap_err());
        assert!(err.starts_with(&format!("{}: not a readable torch zip archive", pth.display())), "{err}");

        // An output in a missing directory names the output.
        write_pth(&pth, &good);
        let bad_out = dir.path().join("no/such/dir/out.gguf");
        let err = format!("{:#}", convert(&pth, &bad_out, &opts(OutType::F32)).unwrap_err());
        assert!(err.starts_with(&format!("{}: cannot create a temporary file", bad_out.display())), "{err}");

        // A GGUF of another architecture.
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", "llama").unwrap();
        let llama = dir.path().join("llama.gguf");
        w.write_file(&llama).unwrap();
        let err = format!("{:#}", convert(&llama, &out, &opts(OutType::F32)).unwrap_err());
        assert_eq!(err, format!("{}: general.architecture is `llama`, expected `rwkv7`", llama.display()));
    }

    /// Every output type loads in our runtime, for several layer counts (including one
    /// layer, where the only value LoRA in the file is layer 0's copy of the a LoRA).
    #[test]
    fn output_loads_in_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        for n_layer in [1, 2] {
            let tensors = tiny_official_as(n_layer, 64, 20, [32, 16, 8, 24], DType::BF16);
            let pth = dir.path().join(format!("l{n_layer}.pth"));
            write_pth(&pth, &tensors);
            for t in [OutType::F32, OutType::F16, OutType::BF16] {
                let out = dir.path().join(format!("l{n_layer}-{}.gguf", t.name()));
                convert(&pth, &out, &opts(t)).unwrap();
                let model = rwkv7::LoadedModel::open(&out).unwrap_or_else(|e| panic!("L={n_layer} {t:?}: {e}"));
                let hp = model.hparams();
                assert_eq!((hp.n_layer, hp.n_embd, hp.vocab, hp.ffn), (n_layer, 64, 20, 256));
                assert_eq!((hp.decay_rank, hp.iclr_rank, hp.gate_rank), (32, 16, 24));
                if n_layer > 1 {
                    assert_eq!(hp.value_rank, 8);
                }
            }
        }
    }

    /// With the real World vocabulary (`$RWKV7_VOCAB`, default `<repo>/../shared/vocab/…`;
    /// skipped when absent): our parser agrees with the runtime's, the stored strings
    /// are those of FORMAT.md §4.2, and the runtime tokenizer built from the GGUF keys
    /// reproduces the spec §6 test vectors.
    #[test]
    fn world_vocabulary_loads_in_the_runtime_tokenizer() {
        let path = std::env::var_os("RWKV7_VOCAB").map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vocab").join(WORLD_VOCAB_FILE)
        });
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: no World vocabulary at {}", path.display());
            return;
        };
        let vocab = read_vocab(&path).unwrap();
        assert_eq!(vocab.len(), 65530);
        assert_eq!(rwkv7_core::tokenizer::parse_vocab_file(&text).unwrap(), vocab);

        let mut w = GgufWriter::new();
        assert_eq!(add_tokenizer(&mut w, &vocab, 65536).unwrap(), 65536);
        let bytes = w.to_bytes().unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let tokens: Vec<&str> =
            g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for (id, text) in [
            (0, "<s>"),
            (1, "\\x00"),
            (11, "\\n"),
            (33, " "),
            (35, "\""),
            (40, "'"),
            (93, "\\\\"),
            (128, "\\x7f"),
            (261, "\\n\\n"),
            (2423, "\\xc2\\x80"),
            (10464, "\\xe4\\xbd\\xa0"),
            (65529, tokens[65529]),
            (65530, "[PAD65530]"),
            (65535, "[PAD65535]"),
        ] {
            assert_eq!(tokens[id], text, "token {id}");
        }
        assert_eq!(g.get("tokenizer.ggml.eot_token_id"), Some(Value::U32(261)));
        let tok = rwkv7_core::Tokenizer::from_gguf(&g).unwrap();
        assert_eq!(tok.encode("Hello world"), [33155, 40213]);
        assert_eq!(tok.encode("User: hi\n\nAssistant:"), [24281, 59, 4571, 261, 5585, 41693, 59]);
        assert_eq!(tok.encode("你好世界"), [10464, 11685, 10267, 14610]);
        assert_eq!(tok.encode("🙂"), [3319, 2417]);
        assert_eq!(tok.encode(&"a".repeat(200)), [53739; 25]);
    }

    fn types_of(path: &Path) -> HashMap<String, GgmlType> {
        let bytes = std::fs::read(path).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        g.tensors().map(|t| (t.name.to_string(), t.ggml_type)).collect()
    }

    /// q8_0 / q4_0 files follow the policy table, carry llama.cpp's file type, load in the
    /// runtime as Q8_0/Q4_0 matrices, and an embedding row of a quantized file is the
    /// dequantized blocks.
    #[test]
    fn quantized_outputs_follow_the_policy_and_load() {
        use rwkv7_kernels::{MatrixData, quant};
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(2, 64, 20, [32, 16, 8, 24], DType::BF16);
        let pth = dir.path().join("m.pth");
        write_pth(&pth, &tensors);
        let (f16, q8) = (GgmlType::F16, GgmlType::Q8_0);
        for (out_type, file_type, big, first) in
            [(OutType::Q8_0, 7u32, GgmlType::Q8_0, GgmlType::F16), (OutType::Q4_0, 2u32, GgmlType::Q4_0, q8)]
        {
            let out = dir.path().join(format!("m.{}.gguf", out_type.name()));
            let report = convert(&pth, &out, &opts(out_type)).unwrap();
            let bytes = std::fs::read(&out).unwrap();
            let g = Gguf::parse(&bytes).unwrap();
            assert_eq!(g.get("general.file_type"), Some(Value::U32(file_type)));
            let ty = types_of(&out);
            for (name, want) in [
                ("token_embd.weight", q8),
                ("output.weight", q8),
                ("blk.0.time_mix_key.weight", first),
                ("blk.0.time_mix_output.weight", first),
                ("blk.1.time_mix_key.weight", big),
                ("blk.1.time_mix_output.weight", big),
                ("blk.0.channel_mix_key.weight", first),
                ("blk.1.channel_mix_key.weight", big),
                ("blk.1.channel_mix_value.weight", big),
                ("blk.1.time_mix_g1.weight", q8),
                ("blk.1.time_mix_a2.weight", f16), // rank 16: rows are not whole blocks
                ("blk.1.time_mix_w1.weight", GgmlType::F32),
                ("blk.1.time_mix_k_k.weight", GgmlType::F32),
                ("blk.1.time_mix_lerp_fused.weight", GgmlType::F32),
            ] {
                assert_eq!(ty[name], want, "{out_type:?}: {name}");
            }
            // Every lossy tensor has a finite, plausible error; bf16 → f32 vectors are exact.
            let stat = |n: &str| report.tensor_stats.iter().find(|t| t.name == n).unwrap();
            let big_err = stat("blk.1.time_mix_key.weight").rel_rms();
            let bound = if out_type == OutType::Q8_0 { 0.01 } else { 0.12 };
            assert!(big_err > 0.0 && big_err < bound, "{out_type:?}: {big_err}");
            assert_eq!(stat("blk.1.time_mix_k_k.weight").rel_rms(), 0.0);
            assert!(!stat("blk.1.time_mix_k_k.weight").lossy());
            assert!(stat("blk.1.time_mix_a2.weight").fell_back);
            let worst = report.worst().unwrap();
            assert!(report.overall_rel_rms().unwrap() <= worst.rel_rms());

            let model = rwkv7::LoadedModel::open(&out).unwrap();
            let m = model.model();
            let emb = m.matrix(m.globals().emb);
            let MatrixData::Q8_0(blocks) = emb.data() else { panic!("embedding is not Q8_0") };
            let mut want = vec![0f32; 64];
            quant::dequantize_row_q8_0(&blocks[2 * 7..2 * 8], &mut want);
            let mut got = vec![0f32; 64];
            emb.row_to_f32(7, &mut got);
            assert_eq!(got, want);
            let key = m.matrix(m.layers()[1].key);
            assert!(matches!(key.data(), MatrixData::Q8_0(_) | MatrixData::Q4_0(_)));
            let mut runner = rwkv7::Runner::new(&model, rwkv7_core::KernelSet::SCALAR, 4);
            let logits = runner.logits_seq(&[1, 2, 3, 19, 0]).unwrap();
            assert!(logits.iter().all(|x| x.is_finite()));
        }
    }

    /// ggml block layout bytes: Q8_0 = f16 scale + 32 i8, Q4_0 = f16 scale + 16 bytes with
    /// element j in the low nibble and j+16 in the high nibble of byte j.
    #[test]
    fn block_bytes_are_ggml_layout() {
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = -1.0;
        x[16] = 3.0;
        let (mut buf, mut deq) = (Vec::new(), vec![0f32; 32]);
        quantize_blocks(&x, GgmlType::Q8_0, &mut buf, &mut deq).unwrap();
        assert_eq!(buf.len(), 34);
        assert_eq!(&buf[..2], &half::f16::from_f32(1.0).to_le_bytes());
        assert_eq!((buf[2] as i8, buf[3] as i8, buf[18] as i8), (127, -1, 3));
        assert_eq!(deq, x);
        let mut x = [0f32; 32];
        x[0] = -8.0; // the largest magnitude, negative: d = -8 / -8 = 1
        x[1] = 7.0;
        x[16] = 2.0;
        x[17] = -3.0;
        buf.clear();
        quantize_blocks(&x, GgmlType::Q4_0, &mut buf, &mut deq).unwrap();
        assert_eq!(buf.len(), 18);
        assert_eq!(&buf[..2], &half::f16::from_f32(1.0).to_le_bytes());
        // codes = value + 8: x[0] → 0, x[16] → 10 (high nibble of byte 0); x[1] → 15, x[17] → 5.
        assert_eq!(buf[2], 10 << 4);
        assert_eq!(buf[3], 15 | (5 << 4));
        assert_eq!(deq, x);
    }

    /// All-zero and tiny blocks give zero scales and zeros, never NaN; non-finite values
    /// and scales beyond f16 are errors.
    #[test]
    fn zero_blocks_and_bad_values() {
        let mut acc = ErrAcc::default();
        let mut buf = Vec::new();
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
            let mut vals = vec![0f32; 64];
            vals[40] = 1e-40; // subnormal: the f32 scale's reciprocal overflows, the f16 scale is 0
            let mut deq = vec![f32::NAN; 64];
            buf.clear();
            quantize_blocks(&vals, ty, &mut buf, &mut deq).unwrap();
            assert!(deq.iter().all(|&x| x == 0.0), "{ty:?}");
            encode(&vals, ty, &mut buf, &mut acc).unwrap();
            let e = encode(&[f32::NAN; 32], ty, &mut buf, &mut acc).unwrap_err().to_string();
            assert_eq!(e, format!("value NaN cannot be quantized to {}", ty.name()));
            let mut big = vec![0f32; 32];
            big[3] = 1e7;
            let e = encode(&big, ty, &mut buf, &mut acc).unwrap_err().to_string();
            assert_eq!(e, format!("max |value| 10000000 is too large for a {} block scale (f16)", ty.name()));
        }
        assert!(acc.sum_sq_err.is_finite() && acc.sum_sq.is_finite());
        let stat = TensorStat {
            name: "z".into(),
            role: Role::FfnKey,
            source: GgmlType::F32,
            ty: GgmlType::Q4_0,
            fell_back: false,
            guarded: None,
            elements: 32,
            bytes: 18,
            sum_sq_err: 0.0,
            sum_sq: 0.0,
        };
        assert_eq!(stat.rel_rms(), 0.0);
    }

    /// A matrix with a 64× outlier column is moved q4_0 → q8_0 → f16 by the guard; one
    /// without is left alone; `--keep` is never overridden.
    #[test]
    fn outlier_guard() {
        let (rows, cols) = (64usize, 128usize);
        let mut vals = values_for("w", rows * cols);
        let t = Tensor::new("w", DType::F32, vec![rows, cols], Bytes::from_vec(encode_as(&vals, DType::F32))).unwrap();
        let recipe = Recipe::Copy(&t);
        let plain = column_normalized_error(&Values::Recipe(&recipe), cols, GgmlType::Q4_0).unwrap();
        assert!((0.05..0.12).contains(&plain), "{plain}");
        let base = choose_type("blk.1.time_mix_key.weight", &[128, 64], OutType::Q4_0, &[], &mut []).unwrap();
        let mut c = base;
        apply_guard(&mut c, &Values::Recipe(&recipe), &[128, 64]).unwrap();
        assert_eq!((c.ty, c.guarded), (GgmlType::Q4_0, None));
        for r in 0..rows {
            vals[r * cols + 5] *= 64.0;
        }
        let t = Tensor::new("w", DType::F32, vec![rows, cols], Bytes::from_vec(encode_as(&vals, DType::F32))).unwrap();
        let recipe = Recipe::Copy(&t);
        let mut c = base;
        apply_guard(&mut c, &Values::Recipe(&recipe), &[128, 64]).unwrap();
        assert_eq!(c.ty, GgmlType::F16);
        let (from, err) = c.guarded.unwrap();
        assert_eq!(from, GgmlType::Q4_0);
        assert!(err > 0.3, "{err}");
        let keep = vec!["blk.1.time_mix_key=q4_0".parse().unwrap()];
        let mut c = choose_type("blk.1.time_mix_key.weight", &[128, 64], OutType::Q4_0, &keep, &mut [false]).unwrap();
        apply_guard(&mut c, &Values::Recipe(&recipe), &[128, 64]).unwrap();
        assert_eq!((c.ty, c.guarded), (GgmlType::Q4_0, None));
    }

    /// The runtime refuses block types where llama.cpp never writes them (the decay LoRA,
    /// vectors), naming the tensor.
    #[test]
    fn runtime_refuses_quantized_decay_lora_and_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(1, 64, 20, [32, 32, 32, 32], DType::F32);
        let pth = dir.path().join("m.pth");
        write_pth(&pth, &tensors);
        let f32_file = dir.path().join("m.gguf");
        convert(&pth, &f32_file, &opts(OutType::F32)).unwrap();
        let bytes = std::fs::read(&f32_file).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        for (victim, ty) in
            [("blk.0.time_mix_w1.weight", GgmlType::Q8_0), ("blk.0.time_mix_k_k.weight", GgmlType::Q4_0)]
        {
            let mut w = GgufWriter::new();
            for (k, v) in g.metadata() {
                w.add_metadata(k, meta_of(&v)).unwrap();
            }
            for t in g.tensors() {
                if t.name == victim {
                    let vals: Vec<f32> =
                        t.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                    let mut buf = Vec::new();
                    encode(&vals, ty, &mut buf, &mut ErrAcc::default()).unwrap();
                    w.add_tensor(t.name, t.dims(), ty, buf).unwrap();
                } else {
                    w.add_tensor(t.name, t.dims(), t.ggml_type, t.data.to_vec()).unwrap();
                }
            }
            let bad = dir.path().join("bad.gguf");
            w.write_file(&bad).unwrap();
            let err = rwkv7::LoadedModel::open(&bad).err().unwrap().to_string();
            assert!(
                err.ends_with(&format!("tensor `{victim}` has type {}, which is not supported for it", ty.name())),
                "{err}"
            );
        }
    }

    /// GGUF → GGUF: a q4_0 file converts to f32 (exact dequantization) and copies to q4_0,
    /// but is not re-quantized to q8_0; `--keep` mistakes name the input.
    #[test]
    fn quantized_gguf_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny_official_as(2, 64, 20, [32, 32, 32, 32], DType::F32);
        let pth = dir.path().join("m.pth");
        write_pth(&pth, &tensors);
        let q4 = dir.path().join("m.q4.gguf");
        convert(&pth, &q4, &opts(OutType::Q4_0)).unwrap();
        let f32_out = dir.path().join("m.f32.gguf");
        convert(&q4, &f32_out, &opts(OutType::F32)).unwrap();
        let (a, b) = (std::fs::read(&q4).unwrap(), std::fs::read(&f32_out).unwrap());
        let (ga, gb) = (Gguf::parse(&a).unwrap(), Gguf::parse(&b).unwrap());
        let blocks: &[rwkv7_kernels::BlockQ4_0] =
            bytemuck::cast_slice(ga.tensor("blk.1.channel_mix_key.weight").unwrap().data);
        let mut want = vec![0f32; blocks.len() * 32];
        rwkv7_kernels::quant::dequantize_row_q4_0(blocks, &mut want);
        let got: Vec<f32> = gb
            .tensor("blk.1.channel_mix_key.weight")
            .unwrap()
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, want);
        let again = dir.path().join("again.gguf");
        let r = convert(&q4, &again, &opts(OutType::Q4_0)).unwrap();
        assert_eq!(std::fs::read(&again).unwrap().len(), a.len());
        assert!(r.tensor_stats.iter().all(|t| !t.lossy()));
        let err = format!("{:#}", convert(&q4, &again, &opts(OutType::Q8_0)).unwrap_err());
        assert_eq!(
            err,
            format!(
                "{}: tensor `blk.1.time_mix_receptance.weight` is q4_0; re-quantizing to q8_0 is not supported (convert from the float model)",
                q4.display()
            )
        );
        let keep = vec!["haed=q8_0".parse().unwrap()];
        let err = format!("{:#}", convert(&pth, &again, &ConvertOptions { keep, ..opts(OutType::Q4_0) }).unwrap_err());
        assert!(
            err.starts_with(&format!("{}: --keep `haed=q8_0`: the pattern matches no weight matrix", pth.display())),
            "{err}"
        );
    }

    #[test]
    fn f16_overflow_is_an_error() {
        let mut buf = Vec::new();
        let acc = &mut ErrAcc::default();
        assert!(encode(&[1.0, 65504.0], GgmlType::F16, &mut buf, acc).is_ok());
        let err = encode(&[1e6], GgmlType::F16, &mut buf, acc).unwrap_err().to_string();
        assert_eq!(err, "value 1000000 is outside the f16 range");
        assert!(encode(&[f32::INFINITY, f32::NAN], GgmlType::F16, &mut buf, acc).is_ok());
        assert!(encode(&[f32::MAX], GgmlType::BF16, &mut buf, acc).is_err());
    }

    #[test]
    fn values_differ_per_tensor() {
        assert_ne!(values_for("a", 4), values_for("b", 4));
    }

    /// The golden fixtures (official `.pth` files, some with an HF copy in `hf/`), if any.
    fn fixtures() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).filter(|d| d.join("model.pth").is_file()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs
    }

    #[test]
    fn golden_fixtures_convert_and_hf_matches_pth() {
        let tmp = tempfile::tempdir().unwrap();
        for dir in fixtures() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            eprintln!("fixture {name}");
            let tensors = pth::read_pth(&dir.join("model.pth")).unwrap();
            let ckpt = Checkpoint::new(tensors).unwrap();
            let native = ckpt.tensors()[0].dtype;
            let out_type = match native {
                DType::F32 => OutType::F32,
                DType::F16 => OutType::F16,
                DType::BF16 => OutType::BF16,
            };
            let out = tmp.path().join(format!("{name}.gguf"));
            let report = convert(&dir.join("model.pth"), &out, &opts(out_type)).unwrap();
            assert_eq!(report.tensors, 6 + 28 * ckpt.dims().n_layer, "{name}");
            // At the checkpoint's own type, the big matrices are copied bit for bit.
            let bytes = std::fs::read(&out).unwrap();
            let g = Gguf::parse(&bytes).unwrap();
            assert_eq!(g.tensor("token_embd.weight").unwrap().data, ckpt.get("emb.weight").unwrap().data.as_slice());
            assert_eq!(
                g.tensor("blk.1.channel_mix_value.weight").unwrap().data,
                ckpt.get("blocks.1.ffn.value.weight").unwrap().data.as_slice()
            );
            if dir.join("hf").is_dir() {
                let from_hf = tmp.path().join(format!("{name}-hf.gguf"));
                convert(&dir.join("hf"), &from_hf, &opts(out_type)).unwrap();
                let hf_bytes = std::fs::read(&from_hf).unwrap();
                let h = Gguf::parse(&hf_bytes).unwrap();
                let a: Vec<_> = g.tensors().map(|t| (t.name, t.ne, t.ggml_type, t.data)).collect();
                let b: Vec<_> = h.tensors().map(|t| (t.name, t.ne, t.ggml_type, t.data)).collect();
                assert!(a == b, "{name}: the HF copy gives different tensors");
            }
        }
    }
}
