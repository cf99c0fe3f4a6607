//! Random RWKV-7 checkpoints of the released shapes (`rwkv7-quant synth`), so that
//! benchmarks and device checks need no download.
//!
//! The shapes are those of the released World / G1 models (spec §4: L, C, F and the four
//! LoRA ranks; vocabulary 65536, head size 64). The values follow the recipe of the spec's
//! random-init test model, not the training init (whose zero matrices make the logits
//! nearly input-independent):
//! - Linear weights and LoRA-down matrices `≈ N(0, 1/√fan_in)`, LoRA-up `≈ N(0, 0.3/√D)`
//!   (the gate's up matrix `1/√D`), the FFN value `0.5/√(4C)`, the embedding `0.5`;
//! - token-shift mixes `U(0, 1)`, `w0 ~ U(−6, 1)`, `k_k ~ U(0.5, 1)`, `k_a ~ U(0.8, 1.2)`;
//! - LayerNorm weights `1 + N(0, 0.1)`, biases `N(0, 0.1)`.
//!
//! "Normal" here is the Irwin–Hall sum of four uniforms, rescaled to unit variance: it
//! has the right mean and variance, no tails beyond ±2√3σ, and is cheap enough to draw
//! 1.5 billion values in seconds. Every value is finite, so no NaN can appear downstream.
//! The tensors are stored as bf16, like released checkpoints.

use std::fmt;

use half::bf16;

use crate::checkpoint::{Bytes, Checkpoint, CheckpointError, DType, Tensor};

/// A released model size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// World / G1 0.1B: L 12, C 768.
    B0_1,
    /// World / G1 0.4B: L 24, C 1024.
    B0_4,
    /// World / G1 1.5B: L 24, C 2048.
    B1_5,
    /// G1 2.9B: L 32, C 2560.
    B2_9,
}

/// The dimensions of a released model (spec §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeDims {
    /// Layers `L`.
    pub n_layer: usize,
    /// Embedding width `C` (`H = C / 64` heads of 64).
    pub n_embd: usize,
    /// Decay LoRA rank `Dw`.
    pub decay_rank: usize,
    /// In-context learning rate LoRA rank `Da`.
    pub iclr_rank: usize,
    /// Value-residual LoRA rank `Dv`.
    pub value_rank: usize,
    /// Gate LoRA rank `Dg`.
    pub gate_rank: usize,
}

/// Vocabulary size of every released RWKV-7 model (the World tokenizer).
pub const VOCAB: usize = 65536;
/// Head size of every released RWKV-7 model.
pub const HEAD_SIZE: usize = 64;

impl Shape {
    /// Every shape, smallest first.
    pub const ALL: [Shape; 4] = [Shape::B0_1, Shape::B0_4, Shape::B1_5, Shape::B2_9];

    /// The spec §4 row of this size.
    pub fn dims(self) -> ShapeDims {
        let (n_layer, n_embd, decay_rank, iclr_rank, value_rank, gate_rank) = match self {
            Shape::B0_1 => (12, 768, 64, 64, 32, 128),
            Shape::B0_4 => (24, 1024, 64, 64, 32, 128),
            Shape::B1_5 => (24, 2048, 96, 96, 64, 256),
            Shape::B2_9 => (32, 2560, 96, 96, 64, 320),
        };
        ShapeDims { n_layer, n_embd, decay_rank, iclr_rank, value_rank, gate_rank }
    }

    /// The name on the command line (`0.1b`, `0.4b`, `1.5b`, `2.9b`).
    pub fn name(self) -> &'static str {
        match self {
            Shape::B0_1 => "0.1b",
            Shape::B0_4 => "0.4b",
            Shape::B1_5 => "1.5b",
            Shape::B2_9 => "2.9b",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Shape::ALL
            .into_iter()
            .find(|sh| sh.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown shape `{s}` (expected 0.1b, 0.4b, 1.5b or 2.9b)"))
    }
}

/// A small, fast generator (SplitMix64): good enough statistics for random weights, and
/// the same stream for the same seed on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// How the values of one tensor are drawn.
#[derive(Clone, Copy)]
enum Dist {
    /// `mean + σ · n`, `n` approximately standard normal.
    Normal { mean: f32, sigma: f32 },
    /// Uniform on `[lo, hi)`.
    Uniform { lo: f32, hi: f32 },
}

/// `√3`: the Irwin–Hall sum of four U(0,1) has variance 4/12 = 1/3.
const SQRT_3: f32 = 1.732_050_8;

/// Fills a bf16 tensor of `n` values drawn from `dist`.
fn draw(rng: &mut SplitMix64, n: usize, dist: Dist) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 2);
    for _ in 0..n {
        let r = rng.next_u64();
        let v = match dist {
            Dist::Normal { mean, sigma } => {
                // Four 16-bit uniforms in [0, 1): their sum has mean 2 and variance 1/3.
                let sum: f32 = (0..4).map(|i| ((r >> (16 * i)) & 0xffff) as f32 / 65536.0).sum();
                mean + sigma * (sum - 2.0) * SQRT_3
            }
            Dist::Uniform { lo, hi } => lo + (hi - lo) * ((r >> 40) as f32 / (1u64 << 24) as f32),
        };
        out.extend_from_slice(&bf16::from_f32(v).to_le_bytes());
    }
    out
}

/// A random checkpoint of `shape`'s dimensions (official names, bf16), the same for the
/// same `seed`.
pub fn synth_checkpoint(shape: Shape, seed: u64) -> Result<Checkpoint, CheckpointError> {
    synth_dims(shape.dims(), VOCAB, seed)
}

/// A random checkpoint of any dimensions (`n_embd` a multiple of [`HEAD_SIZE`]).
pub fn synth_dims(d: ShapeDims, vocab: usize, seed: u64) -> Result<Checkpoint, CheckpointError> {
    let (c, h) = (d.n_embd, d.n_embd / HEAD_SIZE);
    let mut rng = SplitMix64(seed);
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, dist: Dist| -> Result<(), CheckpointError> {
        let data = draw(&mut rng, shape.iter().product(), dist);
        tensors.push(Tensor::new(name, DType::BF16, shape, Bytes::from_vec(data))?);
        Ok(())
    };
    let normal = |sigma: f32| Dist::Normal { mean: 0.0, sigma };
    let around = |mean: f32, sigma: f32| Dist::Normal { mean, sigma };
    let uniform = |lo: f32, hi: f32| Dist::Uniform { lo, hi };
    let inv_sqrt = |n: usize| 1.0 / (n as f32).sqrt();
    let vec = vec![1, 1, c];

    add("emb.weight".into(), vec![vocab, c], normal(0.5))?;
    for l in 0..d.n_layer {
        let b = format!("blocks.{l}.");
        let lns: &[&str] = if l == 0 { &["ln0", "ln1", "ln2"] } else { &["ln1", "ln2"] };
        for ln in lns {
            add(format!("{b}{ln}.weight"), vec![c], around(1.0, 0.1))?;
            add(format!("{b}{ln}.bias"), vec![c], normal(0.1))?;
        }
        let a = format!("{b}att.");
        for x in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] {
            add(format!("{a}{x}"), vec.clone(), uniform(0.0, 1.0))?;
        }
        add(format!("{a}w0"), vec.clone(), uniform(-6.0, 1.0))?;
        add(format!("{a}r_k"), vec![h, HEAD_SIZE], normal(0.1))?;
        let loras =
            [("w", d.decay_rank, 0.3), ("a", d.iclr_rank, 0.3), ("g", d.gate_rank, 1.0), ("v", d.value_rank, 0.3)];
        for (name, rank, up_gain) in loras {
            add(format!("{a}{name}1"), vec![c, rank], normal(inv_sqrt(c)))?;
            add(format!("{a}{name}2"), vec![rank, c], normal(up_gain * inv_sqrt(rank)))?;
        }
        add(format!("{a}a0"), vec.clone(), normal(0.3))?;
        add(format!("{a}v0"), vec.clone(), around(0.5, 0.3))?;
        add(format!("{a}k_k"), vec.clone(), uniform(0.5, 1.0))?;
        add(format!("{a}k_a"), vec.clone(), uniform(0.8, 1.2))?;
        for m in ["receptance", "key", "value", "output"] {
            add(format!("{a}{m}.weight"), vec![c, c], normal(inv_sqrt(c)))?;
        }
        add(format!("{a}ln_x.weight"), vec![c], around(1.0, 0.1))?;
        add(format!("{a}ln_x.bias"), vec![c], normal(0.1))?;
        let f = format!("{b}ffn.");
        add(format!("{f}x_k"), vec.clone(), uniform(0.0, 1.0))?;
        add(format!("{f}key.weight"), vec![4 * c, c], normal(inv_sqrt(c)))?;
        add(format!("{f}value.weight"), vec![c, 4 * c], normal(0.5 * inv_sqrt(4 * c)))?;
    }
    add("ln_out.weight".into(), vec![c], around(1.0, 0.1))?;
    add("ln_out.bias".into(), vec![c], normal(0.1))?;
    add("head.weight".into(), vec![vocab, c], normal(inv_sqrt(c)))?;
    Checkpoint::new(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_released_models() {
        let ck = synth_dims(
            ShapeDims { n_layer: 2, n_embd: 128, decay_rank: 32, iclr_rank: 64, value_rank: 32, gate_rank: 96 },
            300,
            7,
        )
        .unwrap();
        let d = ck.dims();
        assert_eq!((d.n_layer, d.n_embd, d.n_head, d.head_size, d.vocab, d.ffn), (2, 128, 2, 64, 300, 512));
        assert_eq!((d.decay_rank, d.iclr_rank, d.value_rank, d.gate_rank), (32, 64, 32, 96));
        assert_eq!("1.5B".parse::<Shape>().unwrap().dims().n_embd, 2048);
        assert!("7b".parse::<Shape>().is_err());
    }

    #[test]
    fn values_have_the_asked_moments_and_are_reproducible() {
        let mut rng = SplitMix64(1);
        let n = 200_000;
        let vals: Vec<f32> = draw(&mut rng, n, Dist::Normal { mean: 1.0, sigma: 0.5 })
            .chunks(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        let mean = vals.iter().sum::<f32>() / n as f32;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
        // Standard errors at n = 200k are ~1e-3 for the mean and ~2e-3 for σ: 1 % bounds.
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "sigma {}", var.sqrt());
        assert!(vals.iter().all(|v| (v - 1.0).abs() <= 0.5 * 2.0 * SQRT_3 + 0.01));
        let u = draw(&mut SplitMix64(3), 1000, Dist::Uniform { lo: -6.0, hi: 1.0 });
        assert_eq!(u, draw(&mut SplitMix64(3), 1000, Dist::Uniform { lo: -6.0, hi: 1.0 }));
        assert!(u.chunks(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).all(|v| (-6.0..=1.0).contains(&v)));
    }
}
