//! A tiny random RWKV-7 GGUF built in memory (optionally with a World-style byte
//! tokenizer), so the session tests need no fixtures and no converter.
#![allow(dead_code)]

use std::path::PathBuf;

use rwkv7::{LoadedModel, ModelBytes};

const ALIGN: usize = 32;

/// Dimensions of a test model.
#[derive(Clone, Copy)]
pub struct Dims {
    pub layers: u64,
    pub embd: u64,
    pub vocab: u64,
    pub rank: u64,
}

pub const SMALL: Dims = Dims { layers: 2, embd: 64, vocab: 300, rank: 16 };

/// Extra multi-byte tokens after the 256 single bytes (ids 257..).
pub const WORDS: [&str; 8] = ["\n\n", "User", ": ", "Assistant", " the", "ab", "abc", "你"];

struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(ALIGN) {
        out.push(0);
    }
}

/// llama.cpp's stored text for a token (`repr(bytes)[2:-1]`).
fn token_text(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &c in bytes {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if !(0x20..0x7f).contains(&c) => s.push_str(&format!("\\x{c:02x}")),
            c => s.push(c as char),
        }
    }
    s
}

/// The tokens of the test vocabulary: id 0 none, 1..=256 bytes, then [`WORDS`].
pub fn vocab_bytes() -> Vec<Vec<u8>> {
    let mut v = vec![Vec::new()];
    v.extend((0..=255u8).map(|b| vec![b]));
    v.extend(WORDS.iter().map(|w| w.as_bytes().to_vec()));
    v
}

/// GGUF bytes of a random model.
pub fn gguf_bytes(d: Dims, seed: u64, tokenizer: bool) -> Vec<u8> {
    let (c, v, r, f) = (d.embd, d.vocab, d.rank, 4 * d.embd);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut tensors: Vec<(String, Vec<u64>, Vec<f32>)> = Vec::new();
    let mut add = |name: String, ne: Vec<u64>| {
        let n: u64 = ne.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                let u = rng.next();
                if name.contains("lerp") {
                    0.5 + 0.5 * u
                } else if name.ends_with("norm.weight") || name.contains("_ln.weight") {
                    1.0 + 0.1 * u
                } else if name.ends_with(".bias") {
                    0.1 * u
                } else if name.contains("w0") {
                    -2.5 + 2.0 * u
                } else if name.contains("k_k") || name.contains("k_a") {
                    0.9 + 0.1 * u
                } else if ne.len() == 2 {
                    u * 1.7 / (ne[0] as f32).sqrt()
                } else {
                    0.3 * u
                }
            })
            .collect();
        tensors.push((name, ne, data));
    };
    add("token_embd.weight".into(), vec![c, v]);
    for n in ["token_embd_norm", "output_norm"] {
        add(format!("{n}.weight"), vec![c]);
        add(format!("{n}.bias"), vec![c]);
    }
    add("output.weight".into(), vec![c, v]);
    for l in 0..d.layers {
        let b = |s: &str| format!("blk.{l}.{s}");
        for n in ["attn_norm", "attn_norm_2", "time_mix_ln"] {
            add(b(&format!("{n}.weight")), vec![c]);
            add(b(&format!("{n}.bias")), vec![c]);
        }
        add(b("time_mix_lerp_fused.weight"), vec![c, 1, 1, 6]);
        for p in ["w", "a", "v", "g"] {
            if p != "g" {
                add(b(&format!("time_mix_{p}0.weight")), vec![c]);
            }
            add(b(&format!("time_mix_{p}1.weight")), vec![c, r]);
            add(b(&format!("time_mix_{p}2.weight")), vec![r, c]);
        }
        for n in ["k_k", "k_a", "r_k"] {
            add(b(&format!("time_mix_{n}.weight")), vec![c]);
        }
        for n in ["receptance", "key", "value", "output"] {
            add(b(&format!("time_mix_{n}.weight")), vec![c, c]);
        }
        add(b("channel_mix_lerp_k.weight"), vec![c]);
        add(b("channel_mix_key.weight"), vec![c, f]);
        add(b("channel_mix_value.weight"), vec![f, c]);
    }

    let mut kv: Vec<u8> = Vec::new();
    let mut n_kv = 0u64;
    let put_str = |kv: &mut Vec<u8>, key: &str, val: &str| {
        string(kv, key.as_bytes());
        kv.extend(8u32.to_le_bytes());
        string(kv, val.as_bytes());
    };
    let put_u32 = |kv: &mut Vec<u8>, key: &str, val: u32| {
        string(kv, key.as_bytes());
        kv.extend(4u32.to_le_bytes());
        kv.extend(val.to_le_bytes());
    };
    put_str(&mut kv, "general.architecture", "rwkv7");
    put_u32(&mut kv, "rwkv7.block_count", d.layers as u32);
    put_u32(&mut kv, "rwkv7.embedding_length", c as u32);
    put_u32(&mut kv, "rwkv7.wkv.head_size", 64);
    put_u32(&mut kv, "rwkv7.feed_forward_length", f as u32);
    string(&mut kv, b"rwkv7.attention.layer_norm_epsilon");
    kv.extend(6u32.to_le_bytes());
    kv.extend(1e-5f32.to_le_bytes());
    n_kv += 6;
    if tokenizer {
        let vocab = vocab_bytes();
        assert!(vocab.len() as u64 <= v);
        let mut texts = vec!["<s>".to_string()];
        let mut types = vec![3i32];
        for t in &vocab[1..] {
            texts.push(token_text(t));
            types.push(1);
        }
        for id in vocab.len()..v as usize {
            texts.push(format!("[PAD{id}]"));
            types.push(5);
        }
        put_str(&mut kv, "tokenizer.ggml.model", "rwkv");
        string(&mut kv, b"tokenizer.ggml.tokens");
        kv.extend(9u32.to_le_bytes());
        kv.extend(8u32.to_le_bytes());
        kv.extend((texts.len() as u64).to_le_bytes());
        for t in &texts {
            string(&mut kv, t.as_bytes());
        }
        string(&mut kv, b"tokenizer.ggml.token_type");
        kv.extend(9u32.to_le_bytes());
        kv.extend(5u32.to_le_bytes());
        kv.extend((types.len() as u64).to_le_bytes());
        for t in &types {
            kv.extend(t.to_le_bytes());
        }
        n_kv += 3;
    }

    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend(n_kv.to_le_bytes());
    out.extend(kv);
    let mut offset = 0u64;
    for (name, ne, data) in &tensors {
        string(&mut out, name.as_bytes());
        out.extend((ne.len() as u32).to_le_bytes());
        ne.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.extend(0u32.to_le_bytes()); // F32
        out.extend(offset.to_le_bytes());
        offset += ((data.len() * 4) as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
    }
    pad(&mut out);
    for (_, _, data) in &tensors {
        data.iter().for_each(|x| out.extend(x.to_le_bytes()));
        pad(&mut out);
    }
    out
}

/// A random model held in memory.
pub fn model(d: Dims, seed: u64, tokenizer: bool) -> LoadedModel {
    let bytes = gguf_bytes(d, seed, tokenizer);
    let name = format!("test-{seed}{}.gguf", if tokenizer { "-tok" } else { "" });
    LoadedModel::from_bytes(PathBuf::from(name), ModelBytes::from_slice(&bytes)).expect("test model is valid")
}

/// Bit-exact equality of float slices.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
