//! Reads a Hugging Face / fla RWKV-7 model (spec §5) into the canonical checkpoint.
//!
//! Accepted inputs: a directory with `config.json` and `model.safetensors` (or shards,
//! listed by `model.safetensors.index.json` or found as `*.safetensors`), or one
//! `.safetensors` file with `config.json` beside it. Tensor names are mapped back to the
//! official ones with the inverse transforms of the fla converter: LoRA `lora.0/lora.2`
//! weights are transposed back to `[in, out]`, squeezed vectors get their `[1, 1, C]`
//! shape back. The `config.json` fields are checked against the tensor shapes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::checkpoint::{Bytes, Checkpoint, DType, Dims, Tensor, map_file};

/// A problem with one file of a Hugging Face model.
#[derive(Debug)]
pub struct HfError {
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for HfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.msg)
    }
}

impl std::error::Error for HfError {}

fn herr<T>(path: &Path, msg: impl Into<String>) -> Result<T, HfError> {
    Err(HfError { path: path.to_path_buf(), msg: msg.into() })
}

/// How an fla tensor becomes an official one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Transform {
    None,
    /// `[C]` → `[1, 1, C]`.
    Unsqueeze,
    /// 2-D transpose (fla LoRA `[out, in]` → official `[in, out]`).
    Transpose,
    /// Legacy `attn.x_x` `[6, C]` → `att.x_r … att.x_g`.
    SplitLerp,
}

/// The official name and transform for an fla tensor name, if it is one.
fn map_name(name: &str) -> Option<(String, Transform)> {
    use Transform::*;
    match name {
        "model.embeddings.weight" => return Some(("emb.weight".into(), None)),
        "model.norm.weight" => return Some(("ln_out.weight".into(), None)),
        "model.norm.bias" => return Some(("ln_out.bias".into(), None)),
        "lm_head.weight" => return Some(("head.weight".into(), None)),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (num, rest) = rest.split_once('.')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || (num.len() > 1 && num.starts_with('0')) {
        return Option::None;
    }
    let l: usize = num.parse().ok()?;
    let p = format!("blocks.{l}.");
    let lora = |rest: &str| -> Option<(String, Transform)> {
        let (which, part) = rest.strip_prefix("attn.")?.split_once("_lora.lora.")?;
        if !matches!(which, "w" | "a" | "v" | "g") {
            return Option::None;
        }
        match part {
            "0.weight" => Some((format!("{p}att.{which}1"), Transpose)),
            "2.weight" => Some((format!("{p}att.{which}2"), Transpose)),
            "2.bias" if which != "g" => Some((format!("{p}att.{which}0"), Unsqueeze)),
            _ => Option::None,
        }
    };
    if let Some(m) = lora(rest) {
        return Some(m);
    }
    let (official, t) = match rest {
        "pre_norm.weight" if l == 0 => ("ln0.weight", None),
        "pre_norm.bias" if l == 0 => ("ln0.bias", None),
        "attn_norm.weight" => ("ln1.weight", None),
        "attn_norm.bias" => ("ln1.bias", None),
        "ffn_norm.weight" => ("ln2.weight", None),
        "ffn_norm.bias" => ("ln2.bias", None),
        "attn.x_r" => ("att.x_r", Unsqueeze),
        "attn.x_w" => ("att.x_w", Unsqueeze),
        "attn.x_k" => ("att.x_k", Unsqueeze),
        "attn.x_v" => ("att.x_v", Unsqueeze),
        "attn.x_a" => ("att.x_a", Unsqueeze),
        "attn.x_g" => ("att.x_g", Unsqueeze),
        "attn.x_x" => ("att.x_x", SplitLerp),
        "attn.k_k" => ("att.k_k", Unsqueeze),
        "attn.k_a" => ("att.k_a", Unsqueeze),
        "attn.r_k" => ("att.r_k", None),
        "attn.r_proj.weight" => ("att.receptance.weight", None),
        "attn.k_proj.weight" => ("att.key.weight", None),
        "attn.v_proj.weight" => ("att.value.weight", None),
        "attn.o_proj.weight" => ("att.output.weight", None),
        "attn.g_norm.weight" => ("att.ln_x.weight", None),
        "attn.g_norm.bias" => ("att.ln_x.bias", None),
        "ffn.x_k" => ("ffn.x_k", Unsqueeze),
        "ffn.key.weight" => ("ffn.key.weight", None),
        "ffn.value.weight" => ("ffn.value.weight", None),
        _ => return Option::None,
    };
    Some((format!("{p}{official}"), t))
}

/// Transposes a row-major `rows × cols` matrix of `es`-byte elements.
fn transpose(data: &[u8], rows: usize, cols: usize, es: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    if rows == 0 || cols == 0 || es == 0 {
        return out;
    }
    for (r, row) in data.chunks_exact(cols * es).enumerate() {
        for (c, elem) in row.chunks_exact(es).enumerate() {
            let at = (c * rows + r) * es;
            if let Some(dst) = out.get_mut(at..at + es) {
                dst.copy_from_slice(elem);
            }
        }
    }
    out
}

/// The safetensors files of a model directory.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, HfError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).or_else(|e| herr(&index, e.to_string()))?;
        let json: Json = serde_json::from_str(&text).or_else(|e| herr(&index, format!("invalid JSON: {e}")))?;
        let Some(map) = json.get("weight_map").and_then(Json::as_object) else {
            return herr(&index, "no `weight_map` object");
        };
        let mut files = BTreeSet::new();
        for (tensor, file) in map {
            let Some(file) = file.as_str().filter(|f| !f.contains('/') && !f.contains('\\') && *f != "..") else {
                return herr(&index, format!("tensor `{tensor}` maps to an invalid file name"));
            };
            files.insert(dir.join(file));
        }
        return Ok(files.into_iter().collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .or_else(|e| herr(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return herr(dir, "no model.safetensors (or *.safetensors shards) in this directory");
    }
    Ok(files)
}

/// Reads the safetensors tensors of one file, zero-copy, with their fla names.
fn read_safetensors(path: &Path, out: &mut Vec<Tensor>) -> Result<(), HfError> {
    let file = map_file(path).or_else(|e| herr(path, e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(file.as_slice())
        .or_else(|e| herr(path, format!("invalid safetensors file: {e}")))?;
    // safetensors sorts its header by offset; keep that (file) order.
    let base = file.as_slice().as_ptr() as usize;
    for (name, view) in st.iter() {
        let dtype = match view.dtype() {
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::F32 => DType::F32,
            other => {
                return herr(path, format!("tensor `{name}` has dtype {other:?} (only BF16, F16, F32 are supported)"));
            }
        };
        let data = view.data();
        let start = (data.as_ptr() as usize).wrapping_sub(base);
        let Some(bytes) = file.slice(start, data.len()) else {
            return herr(path, format!("tensor `{name}` lies outside the file"));
        };
        let t = Tensor::new(name, dtype, view.shape().to_vec(), bytes).or_else(|e| herr(path, e.to_string()))?;
        out.push(t);
    }
    Ok(())
}

/// Reads a Hugging Face / fla RWKV-7 model: a directory, or a `.safetensors` file with
/// `config.json` beside it. Returns the validated canonical checkpoint.
pub fn read_hf(input: &Path) -> Result<Checkpoint, HfError> {
    let (dir, files) = if input.is_dir() {
        (input.to_path_buf(), shard_files(input)?)
    } else {
        let dir = match input.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, vec![input.to_path_buf()])
    };
    let config_path = dir.join("config.json");
    let config = read_config(&config_path)?;

    let mut fla = Vec::new();
    let mut origin: HashMap<String, PathBuf> = HashMap::new();
    for file in &files {
        let before = fla.len();
        read_safetensors(file, &mut fla)?;
        for t in fla.get(before..).unwrap_or_default() {
            if origin.insert(t.name.clone(), file.clone()).is_some() {
                return herr(file, format!("tensor `{}` appears in more than one file", t.name));
            }
        }
    }

    let mut tensors = Vec::with_capacity(fla.len());
    for t in fla {
        let file = origin.get(&t.name).cloned().unwrap_or_else(|| dir.clone());
        let Some((official, transform)) = map_name(&t.name) else {
            return herr(&file, format!("unknown tensor `{}` for an fla RWKV-7 model", t.name));
        };
        let bad_shape =
            |what: &str| herr(&file, format!("tensor `{}` has shape {:?}, expected {what}", t.name, t.shape));
        match transform {
            Transform::None => tensors.push(Tensor { name: official, ..t }),
            Transform::Unsqueeze => {
                let shape = match *t.shape.as_slice() {
                    [c] | [1, c] | [1, 1, c] => vec![1, 1, c],
                    _ => return bad_shape("a vector"),
                };
                tensors.push(Tensor { name: official, shape, ..t });
            }
            Transform::Transpose => {
                let [rows, cols] = *t.shape.as_slice() else { return bad_shape("a 2-D matrix") };
                let data = transpose(t.data.as_slice(), rows, cols, t.dtype.size());
                tensors.push(Tensor {
                    name: official,
                    dtype: t.dtype,
                    shape: vec![cols, rows],
                    data: Bytes::from_vec(data),
                });
            }
            Transform::SplitLerp => {
                let (six, c) = match *t.shape.as_slice() {
                    [6, c] | [6, 1, 1, c] | [6, 1, c] => (6, c),
                    _ => return bad_shape("[6, C]"),
                };
                let es = t.dtype.size();
                let prefix = official.trim_end_matches("x_x");
                for (i, s) in ["r", "w", "k", "v", "a", "g"].iter().enumerate().take(six) {
                    let Some(part) = t.data.slice(i * c * es, c * es) else { return bad_shape("[6, C]") };
                    tensors.push(Tensor {
                        name: format!("{prefix}x_{s}"),
                        dtype: t.dtype,
                        shape: vec![1, 1, c],
                        data: part,
                    });
                }
            }
        }
    }

    // A tied head (not used by RWKV-7 releases, but allowed by the config).
    if config.tie_word_embeddings
        && !tensors.iter().any(|t| t.name == "head.weight")
        && let Some(emb) = tensors.iter().find(|t| t.name == "emb.weight")
    {
        let head = Tensor { name: "head.weight".into(), ..emb.clone() };
        tensors.push(head);
    }

    let ckpt = Checkpoint::new(tensors).or_else(|e| herr(input, e.to_string()))?;
    config.check(ckpt.dims()).or_else(|msg| herr(&config_path, msg))?;
    match config.norm_eps {
        Some(eps) => ckpt.with_layer_norm_eps(eps).or_else(|e| herr(&config_path, e.to_string())),
        None => Ok(ckpt),
    }
}

/// The `config.json` fields we check.
#[derive(Debug, Default)]
struct Config {
    fields: Vec<(&'static str, usize)>,
    head_dim: Option<usize>,
    num_heads: Option<usize>,
    value_dim: Option<Vec<usize>>,
    norm_eps: Option<f32>,
    tie_word_embeddings: bool,
}

fn read_config(path: &Path) -> Result<Config, HfError> {
    if !path.is_file() {
        return herr(path, "config.json is missing (a Hugging Face model needs it beside the weights)");
    }
    let text = std::fs::read_to_string(path).or_else(|e| herr(path, e.to_string()))?;
    let json: Json = serde_json::from_str(&text).or_else(|e| herr(path, format!("invalid JSON: {e}")))?;
    let Some(obj) = json.as_object() else { return herr(path, "not a JSON object") };
    let present = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let uint = |k: &str| -> Result<Option<usize>, HfError> {
        match present(k) {
            None => Ok(None),
            Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) => Ok(Some(n)),
                None => herr(path, format!("`{k}` is {v}, not a non-negative integer")),
            },
        }
    };
    let string = |k: &str| present(k).and_then(Json::as_str);

    if let Some(t) = string("model_type")
        && t != "rwkv7"
    {
        return herr(path, format!("model_type is `{t}`, expected `rwkv7`"));
    }
    if let Some(act) = string("hidden_act")
        && act != "sqrelu"
    {
        return herr(path, format!("hidden_act is `{act}`; RWKV-7 uses `sqrelu`"));
    }
    if present("norm_bias").is_some_and(|v| v.as_bool() == Some(false)) {
        return herr(path, "norm_bias is false; RWKV-7 LayerNorms have biases");
    }
    let mut cfg = Config::default();
    for (key, alt) in [
        ("hidden_size", None),
        ("num_hidden_layers", None),
        ("intermediate_size", None),
        ("vocab_size", None),
        ("decay_low_rank_dim", Some("lora_rank_decay")),
        ("a_low_rank_dim", Some("lora_rank_iclr")),
        ("v_low_rank_dim", Some("lora_rank_value_residual_mix")),
        ("gate_low_rank_dim", Some("lora_rank_gate")),
    ] {
        let v = match uint(key)? {
            Some(v) => Some((key, v)),
            None => match alt {
                Some(alt) => uint(alt)?.map(|v| (alt, v)),
                None => None,
            },
        };
        cfg.fields.extend(v);
    }
    cfg.head_dim = match uint("head_dim")? {
        Some(v) => Some(v),
        None => uint("head_size")?,
    };
    cfg.num_heads = uint("num_heads")?;
    if let Some(v) = present("value_dim") {
        let dims = v.as_array().and_then(|a| {
            a.iter().map(|x| x.as_u64().and_then(|n| usize::try_from(n).ok())).collect::<Option<Vec<_>>>()
        });
        match dims {
            Some(d) => cfg.value_dim = Some(d),
            None if v.is_u64() => cfg.value_dim = v.as_u64().and_then(|n| usize::try_from(n).ok()).map(|n| vec![n]),
            None => return herr(path, format!("`value_dim` is {v}, not a list of integers")),
        }
    }
    let eps = present("norm_eps").or_else(|| present("layer_norm_epsilon"));
    if let Some(v) = eps {
        match v.as_f64() {
            Some(e) if e.is_finite() && e > 0.0 => cfg.norm_eps = Some(e as f32),
            _ => return herr(path, format!("the layer norm epsilon {v} is not a positive number")),
        }
    }
    cfg.tie_word_embeddings = present("tie_word_embeddings").and_then(Json::as_bool).unwrap_or(false);
    Ok(cfg)
}

impl Config {
    /// Checks every field present against the dimensions read from the tensors.
    fn check(&self, d: &Dims) -> Result<(), String> {
        for &(key, v) in &self.fields {
            let (actual, from) = match key {
                "hidden_size" => (d.n_embd, "model.embeddings.weight columns"),
                "num_hidden_layers" => (d.n_layer, "the number of layers in the weights"),
                "intermediate_size" => (d.ffn, "ffn.key.weight rows"),
                "vocab_size" => (d.vocab, "model.embeddings.weight rows"),
                "decay_low_rank_dim" | "lora_rank_decay" => (d.decay_rank, "w_lora rank"),
                "a_low_rank_dim" | "lora_rank_iclr" => (d.iclr_rank, "a_lora rank"),
                "v_low_rank_dim" | "lora_rank_value_residual_mix" => (d.value_rank, "v_lora rank"),
                "gate_low_rank_dim" | "lora_rank_gate" => (d.gate_rank, "g_lora rank"),
                _ => continue,
            };
            if v != actual {
                return Err(format!("{key} is {v}, but the weights have {actual} ({from})"));
            }
        }
        if let Some(n) = self.head_dim
            && n != d.head_size
        {
            return Err(format!("head_dim is {n}, but attn.r_k has head size {}", d.head_size));
        }
        if let Some(h) = self.num_heads
            && h != d.n_head
        {
            return Err(format!("num_heads is {h}, but attn.r_k has {} heads", d.n_head));
        }
        if let Some(v) = &self.value_dim
            && v.iter().any(|&x| x != d.n_embd)
        {
            return Err(format!("value_dim {v:?} differs from hidden_size {}; not supported", d.n_embd));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_fla_names() {
        let cases = [
            ("model.embeddings.weight", "emb.weight", Transform::None),
            ("model.layers.0.pre_norm.bias", "blocks.0.ln0.bias", Transform::None),
            ("model.layers.3.attn_norm.weight", "blocks.3.ln1.weight", Transform::None),
            ("model.layers.3.ffn_norm.bias", "blocks.3.ln2.bias", Transform::None),
            ("model.layers.1.attn.x_g", "blocks.1.att.x_g", Transform::Unsqueeze),
            ("model.layers.1.attn.w_lora.lora.0.weight", "blocks.1.att.w1", Transform::Transpose),
            ("model.layers.1.attn.a_lora.lora.2.weight", "blocks.1.att.a2", Transform::Transpose),
            ("model.layers.1.attn.v_lora.lora.2.bias", "blocks.1.att.v0", Transform::Unsqueeze),
            ("model.layers.1.attn.g_lora.lora.2.weight", "blocks.1.att.g2", Transform::Transpose),
            ("model.layers.1.attn.r_proj.weight", "blocks.1.att.receptance.weight", Transform::None),
            ("model.layers.1.attn.o_proj.weight", "blocks.1.att.output.weight", Transform::None),
            ("model.layers.1.attn.g_norm.weight", "blocks.1.att.ln_x.weight", Transform::None),
            ("model.layers.12.ffn.value.weight", "blocks.12.ffn.value.weight", Transform::None),
            ("model.norm.weight", "ln_out.weight", Transform::None),
            ("lm_head.weight", "head.weight", Transform::None),
        ];
        for (fla, official, t) in cases {
            assert_eq!(map_name(fla), Some((official.to_string(), t)), "{fla}");
        }
        for bad in [
            "model.layers.1.pre_norm.weight",
            "model.layers.1.attn.g_lora.lora.2.bias",
            "model.layers.01.attn.x_r",
            "model.layers.x.attn.x_r",
            "model.layers.1.attn.q_lora.lora.0.weight",
            "blocks.0.att.x_r",
        ] {
            assert_eq!(map_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn transposes() {
        // [[1,2,3],[4,5,6]] → [[1,4],[2,5],[3,6]] with 2-byte elements.
        let data: Vec<u8> = [1u16, 2, 3, 4, 5, 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = transpose(&data, 2, 3, 2);
        let back: Vec<u16> = t.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(back, [1, 4, 2, 5, 3, 6]);
    }
}
