//! Which type each tensor is written as: the RWKV-aware quantization policy, the
//! GGUF ↔ official name map, and the `--keep PATTERN=TYPE` overrides.
//!
//! The policy is the table [`POLICY`] plus the outlier guard ([`OUTLIER_GUARD`]);
//! `docs/QUANTIZATION.md` has the measurements that chose them. In short: only the large
//! matrices (the four attention projections, the two FFN matrices, embedding and head)
//! take the file's type, except that the head, the embedding and layer 0's six matrices
//! get one step more (q4_0 → q8_0, q8_0 → f16); the a/v/g LoRA are q8_0; a matrix whose
//! block quantization loses too much to channel outliers is written one step finer; the
//! vectors (`k_k`, `k_a`, `r_k`, norms, mixes) and the decay LoRA stay F32, as llama.cpp
//! writes them.

use std::str::FromStr;

use anyhow::{Result, anyhow, bail, ensure};

use crate::convert::OutType;
use crate::gguf_write::GgmlType;

/// What a tensor is, as far as the type policy is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `token_embd.weight` (`emb.weight`): one row is read per token.
    Embedding,
    /// `output.weight` (`head.weight`).
    Head,
    /// `time_mix_{receptance,key,value,output}` (`att.{receptance,key,value,output}`) of
    /// layers 1 and up.
    AttProjection,
    /// Layer 0's six large matrices (the four projections and the FFN): its value is every
    /// later layer's `v_first` (value residual), and its errors pass through every layer.
    FirstLayer,
    /// `channel_mix_key` (`ffn.key`), `[4C, C]`, of layers 1 and up.
    FfnKey,
    /// `channel_mix_value` (`ffn.value`), `[C, 4C]`, of layers 1 and up.
    FfnValue,
    /// `time_mix_{a,v,g}{1,2}`: the in-context-rate, value-residual and gate LoRA.
    Lora,
    /// `time_mix_w{1,2}`: the decay LoRA (llama.cpp always writes F32).
    DecayLora,
    /// 1-D tensors and the fused token-shift mixes: always F32.
    Vector,
}

/// One row of the policy table.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRow {
    /// The tensors it covers.
    pub role: Role,
    /// Their GGUF names (`N` = layer).
    pub gguf: &'static str,
    /// Their official names.
    pub official: &'static str,
    /// Type in an f32 / f16 / bf16 file (`None` = the file's type).
    pub float_file: Option<GgmlType>,
    /// Type in a q8_0 file.
    pub q8_0_file: GgmlType,
    /// Type in a q4_0 file.
    pub q4_0_file: GgmlType,
    /// Types `--keep` may choose (what our loader and llama.cpp accept for it).
    pub allowed: &'static [GgmlType],
}

const FLOATS: &[GgmlType] = &[GgmlType::F32, GgmlType::F16, GgmlType::BF16];
const ANY: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// The policy (docs/QUANTIZATION.md §2 has the measurements behind each choice).
pub const POLICY: [PolicyRow; 9] = [
    PolicyRow {
        role: Role::Embedding,
        gguf: "token_embd.weight",
        official: "emb.weight",
        float_file: None,
        q8_0_file: GgmlType::Q8_0,
        q4_0_file: GgmlType::Q8_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::Head,
        gguf: "output.weight",
        official: "head.weight",
        float_file: None,
        q8_0_file: GgmlType::Q8_0,
        q4_0_file: GgmlType::Q8_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::AttProjection,
        gguf: "blk.N.time_mix_{receptance,key,value,output}.weight",
        official: "blocks.N.att.{receptance,key,value,output}.weight",
        float_file: None,
        q8_0_file: GgmlType::Q8_0,
        q4_0_file: GgmlType::Q4_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::FirstLayer,
        gguf: "blk.0.time_mix_{receptance,key,value,output}.weight, blk.0.channel_mix_{key,value}.weight",
        official: "blocks.0.att.{receptance,key,value,output}.weight, blocks.0.ffn.{key,value}.weight",
        float_file: None,
        q8_0_file: GgmlType::F16,
        q4_0_file: GgmlType::Q8_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::FfnKey,
        gguf: "blk.N.channel_mix_key.weight",
        official: "blocks.N.ffn.key.weight",
        float_file: None,
        q8_0_file: GgmlType::Q8_0,
        q4_0_file: GgmlType::Q4_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::FfnValue,
        gguf: "blk.N.channel_mix_value.weight",
        official: "blocks.N.ffn.value.weight",
        float_file: None,
        q8_0_file: GgmlType::Q8_0,
        q4_0_file: GgmlType::Q4_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::Lora,
        gguf: "blk.N.time_mix_{a,v,g}{1,2}.weight",
        official: "blocks.N.att.{a,v,g}{1,2}",
        float_file: None,
        q8_0_file: GgmlType::Q8_0,
        q4_0_file: GgmlType::Q8_0,
        allowed: ANY,
    },
    PolicyRow {
        role: Role::DecayLora,
        gguf: "blk.N.time_mix_w{1,2}.weight",
        official: "blocks.N.att.w{1,2}",
        float_file: Some(GgmlType::F32),
        q8_0_file: GgmlType::F32,
        q4_0_file: GgmlType::F32,
        allowed: FLOATS,
    },
    PolicyRow {
        role: Role::Vector,
        gguf: "1-D tensors, blk.N.time_mix_lerp_fused.weight",
        official: "norms, x_*, w0/a0/v0, k_k, k_a, r_k, ffn.x_k",
        float_file: Some(GgmlType::F32),
        q8_0_file: GgmlType::F32,
        q4_0_file: GgmlType::F32,
        allowed: &[GgmlType::F32],
    },
];

/// The policy row of a role.
pub fn policy_row(role: Role) -> &'static PolicyRow {
    POLICY.iter().find(|r| r.role == role).unwrap_or_else(|| unreachable!("every role has a row"))
}

/// The role of a tensor from its GGUF name and shape.
pub fn role_of(gguf_name: &str, ne: &[u64]) -> Role {
    let is_matrix = ne.iter().filter(|&&d| d > 1).count() >= 2;
    let suffix = gguf_name.strip_prefix("blk.").and_then(|r| r.split_once('.')).map_or(gguf_name, |(_, s)| s);
    if !is_matrix || suffix == "time_mix_lerp_fused.weight" {
        return Role::Vector;
    }
    let large_in_layer_0 = gguf_name.starts_with("blk.0.")
        && matches!(
            suffix,
            "time_mix_receptance.weight"
                | "time_mix_key.weight"
                | "time_mix_value.weight"
                | "time_mix_output.weight"
                | "channel_mix_key.weight"
                | "channel_mix_value.weight"
        );
    if large_in_layer_0 {
        return Role::FirstLayer;
    }
    match suffix {
        "token_embd.weight" => Role::Embedding,
        "output.weight" => Role::Head,
        "time_mix_receptance.weight" | "time_mix_key.weight" | "time_mix_value.weight" | "time_mix_output.weight" => {
            Role::AttProjection
        }
        "channel_mix_key.weight" => Role::FfnKey,
        "channel_mix_value.weight" => Role::FfnValue,
        "time_mix_w1.weight" | "time_mix_w2.weight" => Role::DecayLora,
        // a/v/g LoRA, and any other matrix a file may carry: treated like the small LoRA.
        _ => Role::Lora,
    }
}

/// The type the policy gives a role in a file of type `out`.
pub fn default_type(role: Role, out: OutType) -> GgmlType {
    let row = policy_row(role);
    match out {
        OutType::Q8_0 => row.q8_0_file,
        OutType::Q4_0 => row.q4_0_file,
        // K-quant files: the q4_0 column with its 4-bit choice replaced by the file's
        // K-quant (embedding, head, layer 0 and the a/v/g LoRA stay q8_0).
        OutType::Q4KM | OutType::Q5KM | OutType::Q6K if row.q4_0_file == GgmlType::Q4_0 => out.ggml_type(),
        OutType::Q4KM | OutType::Q5KM | OutType::Q6K => row.q4_0_file,
        float => row.float_file.unwrap_or(float.ggml_type()),
    }
}

/// The type a K-quant choice is written as when the rows are not a multiple of 256:
/// Q4_K → Q4_0 (the same 4.5 bits per weight, so a q4_k_m file is never larger than the
/// q4_0 one), Q5_K and Q6_K → Q8_0 (we do not write Q5_0/Q5_1; Q8_0 is the next finer
/// type we do). Every other type is returned unchanged.
pub fn kquant_fallback(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::Q4_K => GgmlType::Q4_0,
        GgmlType::Q5_K | GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    }
}

/// The official name of a GGUF tensor (FORMAT.md §3.1), if it has exactly one.
pub fn official_name(gguf_name: &str) -> Option<String> {
    let global = match gguf_name {
        "token_embd.weight" => Some("emb.weight"),
        "token_embd_norm.weight" => Some("blocks.0.ln0.weight"),
        "token_embd_norm.bias" => Some("blocks.0.ln0.bias"),
        "output_norm.weight" => Some("ln_out.weight"),
        "output_norm.bias" => Some("ln_out.bias"),
        "output.weight" => Some("head.weight"),
        _ => None,
    };
    if let Some(g) = global {
        return Some(g.to_string());
    }
    let (layer, suffix) = gguf_name.strip_prefix("blk.")?.split_once('.')?;
    let part = match suffix {
        "attn_norm.weight" => "ln1.weight".to_string(),
        "attn_norm.bias" => "ln1.bias".to_string(),
        "attn_norm_2.weight" => "ln2.weight".to_string(),
        "attn_norm_2.bias" => "ln2.bias".to_string(),
        "time_mix_ln.weight" => "att.ln_x.weight".to_string(),
        "time_mix_ln.bias" => "att.ln_x.bias".to_string(),
        "channel_mix_lerp_k.weight" => "ffn.x_k".to_string(),
        "channel_mix_key.weight" => "ffn.key.weight".to_string(),
        "channel_mix_value.weight" => "ffn.value.weight".to_string(),
        s => {
            let s = s.strip_prefix("time_mix_")?.strip_suffix(".weight")?;
            match s {
                "receptance" | "key" | "value" | "output" => format!("att.{s}.weight"),
                "k_k" | "k_a" | "r_k" => format!("att.{s}"),
                _ if s.len() == 2
                    && matches!(s.as_bytes()[0], b'w' | b'a' | b'v' | b'g')
                    && matches!(s.as_bytes()[1], b'0'..=b'2') =>
                {
                    format!("att.{s}")
                }
                _ => return None,
            }
        }
    };
    Some(format!("blocks.{layer}.{part}"))
}

/// `*` matches any run of characters (dots included), `?` any one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A `--keep PATTERN=TYPE` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keep {
    /// Glob over tensor names (`*`, `?`).
    pub pattern: String,
    /// The type to write the matched matrices as.
    pub ty: GgmlType,
}

/// Parses a type name as `--type` and `--keep` spell it.
pub fn parse_type(name: &str) -> Option<GgmlType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "f32" => GgmlType::F32,
        "f16" => GgmlType::F16,
        "bf16" => GgmlType::BF16,
        "q8_0" => GgmlType::Q8_0,
        "q4_0" => GgmlType::Q4_0,
        "q4_k" => GgmlType::Q4_K,
        "q5_k" => GgmlType::Q5_K,
        "q6_k" => GgmlType::Q6_K,
        _ => return None,
    })
}

impl FromStr for Keep {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (pattern, ty) =
            s.rsplit_once('=').ok_or_else(|| anyhow!("--keep `{s}`: expected PATTERN=TYPE, e.g. head=q8_0"))?;
        ensure!(!pattern.is_empty(), "--keep `{s}`: the pattern is empty");
        let ty = parse_type(ty).ok_or_else(|| {
            anyhow!("--keep `{s}`: unknown type `{ty}` (choices: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)")
        })?;
        Ok(Keep { pattern: pattern.to_string(), ty })
    }
}

impl Keep {
    /// Whether the pattern has a `*` or `?`.
    pub fn is_wildcard(&self) -> bool {
        self.pattern.contains(['*', '?'])
    }

    /// Whether the pattern matches the tensor: the whole GGUF name or the whole official
    /// name, either with or without its `.weight` suffix. So `head`, `emb`,
    /// `output.weight`, `blk.0.*`, `blocks.*.ffn.value` and `*time_mix_output*` all work.
    pub fn matches(&self, gguf_name: &str) -> bool {
        let official = official_name(gguf_name);
        let names = std::iter::once(gguf_name).chain(official.as_deref());
        names
            .flat_map(|n| [Some(n), n.strip_suffix(".weight")])
            .flatten()
            .any(|n| glob(self.pattern.as_bytes(), n.as_bytes()))
    }
}

/// The outlier guard: a matrix whose policy type is a block type is written one step finer
/// (q4_0 → q8_0 → f16) while its **column-normalized** relative RMS error at that type
/// exceeds the bound here. The bounds are twice what the type gives on outlier-free
/// weights (Gaussian: 0.084–0.091 for q4_0, 0.0052–0.0056 for q8_0; the trained demo
/// model's large matrices: at most 0.118 and 0.0074). See [`column_normalized_error`]
/// in `convert.rs` and docs/QUANTIZATION.md §3. `--keep` choices are never changed.
///
/// K-quant bounds, by the same rule: twice the relative RMS error of our encoders on
/// Gaussian-like data (`encoders_beat_absmax` in `crates/rwkv7-kernels/tests/kquant.rs`
/// prints 0.070 for Q4_K, 0.035 for Q5_K, 0.017 for Q6_K).
pub const OUTLIER_GUARD: [(GgmlType, f64); 5] = [
    (GgmlType::Q4_0, 0.18),
    (GgmlType::Q8_0, 0.011),
    (GgmlType::Q4_K, 0.14),
    (GgmlType::Q5_K, 0.07),
    (GgmlType::Q6_K, 0.034),
];

/// The guard bound of a block type, if it has one.
pub fn guard_bound(ty: GgmlType) -> Option<f64> {
    OUTLIER_GUARD.iter().find(|(t, _)| *t == ty).map(|&(_, b)| b)
}

/// The next finer type the guard moves to (every 4- to 6-bit type goes to Q8_0).
pub fn finer(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    }
}

/// The decided type of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The type to write.
    pub ty: GgmlType,
    /// The role the policy saw.
    pub role: Role,
    /// A block type was asked for but the rows are not whole blocks, so F16 is written.
    pub fell_back: bool,
    /// The type came from a `--keep` rule (the outlier guard leaves it alone).
    pub from_keep: bool,
    /// The outlier guard moved the tensor off this policy type, whose column-normalized
    /// error was the second value.
    pub guarded: Option<(GgmlType, f64)>,
}

/// The type of tensor `gguf_name` (shape `ne`, innermost first) in a file of type `out`:
/// the policy, then the last matching `--keep` (matrices only; vectors are always F32),
/// then [`kquant_fallback`] for a K-quant when `ne[0]` is not a multiple of 256,
/// then F16 instead of a block type when `ne[0]` is not a multiple of 32 (as llama.cpp's
/// converter does). A wildcard pattern skips the matrices that cannot take its type
/// (the decay LoRA cannot be quantized); an exact name that cannot is an error.
/// `used[i]` is set when `keep[i]` applied to a matrix.
pub fn choose_type(gguf_name: &str, ne: &[u64], out: OutType, keep: &[Keep], used: &mut [bool]) -> Result<Choice> {
    let role = role_of(gguf_name, ne);
    let mut ty = default_type(role, out);
    let mut from_keep = false;
    if role != Role::Vector {
        let allowed = policy_row(role).allowed;
        let mut last = None;
        for (i, k) in keep.iter().enumerate() {
            if !k.matches(gguf_name) {
                continue;
            }
            if !allowed.contains(&k.ty) {
                // A wildcard pattern applies to the matrices that can take the type; an
                // exact name that cannot is a mistake worth reporting.
                if k.is_wildcard() {
                    continue;
                }
                let names: Vec<&str> = allowed.iter().map(|t| t.name()).collect();
                bail!(
                    "--keep `{}={}`: tensor `{gguf_name}` cannot be {} (allowed: {})",
                    k.pattern,
                    k.ty.name(),
                    k.ty.name(),
                    names.join(", ")
                );
            }
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            last = Some(k);
        }
        if let Some(k) = last {
            ty = k.ty;
        }
        from_keep = last.is_some();
    }
    let ne0 = ne.first().copied().unwrap_or(1);
    if ne0 % ty.block_len() != 0 {
        ty = kquant_fallback(ty);
    }
    let fell_back = ty.block_len() > 1 && ne0 % ty.block_len() != 0;
    if fell_back {
        ty = GgmlType::F16;
    }
    Ok(Choice { ty, role, fell_back, from_keep, guarded: None })
}

/// Fails if a `--keep` pattern matched no matrix (a typo would otherwise go unnoticed).
pub fn check_all_used(keep: &[Keep], used: &[bool]) -> Result<()> {
    for (k, &u) in keep.iter().zip(used) {
        ensure!(
            u,
            "--keep `{}={}`: the pattern matches no weight matrix that can take this type (patterns match whole GGUF or official names, e.g. head, blk.0.*, *.ffn.value)",
            k.pattern,
            k.ty.name()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_whole_names() {
        assert!(glob(b"head", b"head"));
        assert!(!glob(b"head", b"head.weight"));
        assert!(glob(b"blk.*.time_mix_key", b"blk.12.time_mix_key"));
        assert!(glob(b"*ffn*", b"blocks.3.ffn.key.weight"));
        assert!(glob(b"blk.?.x", b"blk.3.x"));
        assert!(!glob(b"blk.?.x", b"blk.13.x"));
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXXbYYbc"));
        assert!(!glob(b"a*b*c", b"aXXbYYb"));
    }

    #[test]
    fn official_names() {
        for (g, o) in [
            ("token_embd.weight", "emb.weight"),
            ("output.weight", "head.weight"),
            ("blk.3.time_mix_key.weight", "blocks.3.att.key.weight"),
            ("blk.0.time_mix_a1.weight", "blocks.0.att.a1"),
            ("blk.1.time_mix_r_k.weight", "blocks.1.att.r_k"),
            ("blk.2.channel_mix_value.weight", "blocks.2.ffn.value.weight"),
            ("blk.2.attn_norm_2.bias", "blocks.2.ln2.bias"),
            ("token_embd_norm.weight", "blocks.0.ln0.weight"),
        ] {
            assert_eq!(official_name(g).as_deref(), Some(o), "{g}");
        }
        assert_eq!(official_name("blk.0.time_mix_lerp_fused.weight"), None);
        assert_eq!(official_name("blk.0.time_mix_x9.weight"), None);
    }

    #[test]
    fn keep_patterns() {
        let k: Keep = "head=q8_0".parse().unwrap();
        assert_eq!(k.ty, GgmlType::Q8_0);
        assert!(k.matches("output.weight"));
        assert!(!k.matches("blk.0.time_mix_output.weight"));
        let k: Keep = "output=f16".parse().unwrap();
        assert!(k.matches("output.weight") && !k.matches("blk.0.time_mix_output.weight"));
        let k: Keep = "*.att.output=f16".parse().unwrap();
        assert!(!k.matches("output.weight") && k.matches("blk.0.time_mix_output.weight"));
        let k: Keep = "blk.0.*=q8_0".parse().unwrap();
        assert!(k.matches("blk.0.channel_mix_key.weight") && !k.matches("blk.1.channel_mix_key.weight"));
        assert!("head".parse::<Keep>().is_err());
        assert!("head=q5_1".parse::<Keep>().is_err());
        assert!("=q8_0".parse::<Keep>().is_err());
        let e = "head=q4_1".parse::<Keep>().unwrap_err().to_string();
        assert_eq!(
            e,
            "--keep `head=q4_1`: unknown type `q4_1` (choices: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)"
        );
    }

    #[test]
    fn choices_follow_the_table_then_keep() {
        let mut used = [false; 3];
        let keep: Vec<Keep> =
            ["blocks.*.ffn.value=q8_0", "head=f16", "blk.1.*=q4_0"].iter().map(|s| s.parse().unwrap()).collect();
        let c = |name: &str, ne: &[u64], used: &mut [bool]| choose_type(name, ne, OutType::Q4_0, &keep, used).unwrap();
        assert_eq!(c("blk.1.time_mix_key.weight", &[64, 64], &mut used).ty, GgmlType::Q4_0);
        assert_eq!(c("blk.0.time_mix_key.weight", &[64, 64], &mut used).ty, GgmlType::Q8_0);
        assert_eq!(c("blk.0.channel_mix_value.weight", &[256, 64], &mut used).ty, GgmlType::Q8_0);
        assert_eq!(c("blk.2.channel_mix_key.weight", &[64, 256], &mut used).ty, GgmlType::Q4_0);
        // The last matching --keep wins.
        assert_eq!(c("blk.1.channel_mix_value.weight", &[256, 64], &mut used).ty, GgmlType::Q4_0);
        assert_eq!(c("output.weight", &[64, 300], &mut used).ty, GgmlType::F16);
        assert_eq!(c("token_embd.weight", &[64, 300], &mut used).ty, GgmlType::Q8_0);
        // Vectors are never touched by --keep.
        assert_eq!(c("blk.1.time_mix_k_k.weight", &[64], &mut used).ty, GgmlType::F32);
        assert_eq!(c("blk.1.time_mix_lerp_fused.weight", &[64, 1, 1, 6], &mut used).ty, GgmlType::F32);
        assert_eq!(used, [true, true, true]);
        // Rows that are not whole blocks fall back to F16.
        let keep = vec!["blk.0.time_mix_a2=q8_0".parse().unwrap()];
        let fb = choose_type("blk.0.time_mix_a2.weight", &[16, 64], OutType::Q8_0, &keep, &mut [false]).unwrap();
        assert_eq!((fb.ty, fb.fell_back), (GgmlType::F16, true));
        // The decay LoRA stays float: wildcards skip it, an exact name is an error.
        let keep = vec!["*=q8_0".parse().unwrap()];
        let mut used = [false];
        let c = choose_type("blk.0.time_mix_w1.weight", &[64, 32], OutType::Q4_0, &keep, &mut used).unwrap();
        assert_eq!((c.ty, used), (GgmlType::F32, [false]));
        let keep = vec!["blk.0.time_mix_w1=q8_0".parse().unwrap()];
        let e = choose_type("blk.0.time_mix_w1.weight", &[64, 32], OutType::Q8_0, &keep, &mut [false]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--keep `blk.0.time_mix_w1=q8_0`: tensor `blk.0.time_mix_w1.weight` cannot be q8_0 (allowed: f32, f16, bf16)"
        );
        // Unused patterns are reported.
        let keep = vec!["haed=q8_0".parse().unwrap()];
        assert!(
            check_all_used(&keep, &[false]).unwrap_err().to_string().starts_with("--keep `haed=q8_0`: the pattern")
        );
    }

    /// K-quant files: the q4_0 column with the K-quant where rows are multiples of 256,
    /// the documented fallback elsewhere; `--keep` can ask for K-quants too.
    #[test]
    fn kquant_files() {
        let c = |name: &str, ne: &[u64], out: OutType| choose_type(name, ne, out, &[], &mut []).unwrap().ty;
        for (out, k, fallback) in [
            (OutType::Q4KM, GgmlType::Q4_K, GgmlType::Q4_0),
            (OutType::Q5KM, GgmlType::Q5_K, GgmlType::Q8_0),
            (OutType::Q6K, GgmlType::Q6_K, GgmlType::Q8_0),
        ] {
            assert_eq!(c("blk.1.time_mix_key.weight", &[256, 256], out), k);
            assert_eq!(c("blk.1.channel_mix_value.weight", &[512, 128], out), k);
            assert_eq!(c("blk.1.time_mix_key.weight", &[128, 128], out), fallback);
            assert_eq!(c("blk.0.time_mix_key.weight", &[256, 256], out), GgmlType::Q8_0);
            assert_eq!(c("output.weight", &[256, 300], out), GgmlType::Q8_0);
            assert_eq!(c("blk.1.time_mix_a1.weight", &[256, 64], out), GgmlType::Q8_0);
            assert_eq!(c("blk.1.time_mix_w1.weight", &[256, 64], out), GgmlType::F32);
            assert_eq!(c("blk.1.time_mix_k_k.weight", &[256], out), GgmlType::F32);
        }
        let keep = vec!["head=q6_k".parse().unwrap()];
        let head = |ne: &[u64]| choose_type("output.weight", ne, OutType::Q4_0, &keep, &mut [false]).unwrap().ty;
        assert_eq!(head(&[256, 300]), GgmlType::Q6_K);
        assert_eq!(head(&[64, 300]), GgmlType::Q8_0);
    }

    #[test]
    fn float_files_keep_their_rules() {
        assert_eq!(default_type(Role::Lora, OutType::BF16), GgmlType::BF16);
        assert_eq!(default_type(Role::DecayLora, OutType::F16), GgmlType::F32);
        assert_eq!(default_type(Role::Vector, OutType::F16), GgmlType::F32);
        assert_eq!(default_type(Role::Head, OutType::F16), GgmlType::F16);
        assert_eq!(default_type(Role::Head, OutType::Q4_0), GgmlType::Q8_0);
        assert_eq!(role_of("blk.0.time_mix_value.weight", &[64, 64]), Role::FirstLayer);
        assert_eq!(role_of("blk.10.time_mix_value.weight", &[64, 64]), Role::AttProjection);
        assert_eq!(default_type(Role::FirstLayer, OutType::Q4_0), GgmlType::Q8_0);
        assert_eq!(default_type(Role::FirstLayer, OutType::Q8_0), GgmlType::F16);
    }
}
