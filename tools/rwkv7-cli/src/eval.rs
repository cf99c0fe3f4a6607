//! `rwkv7 eval`: perplexity of a model on a text, and how far its next-token
//! distributions are from a reference model's (KL divergence, top-1 agreement).
//!
//! Output is one JSON line: `{"tokens":T,"ppl":…}` plus, with `--reference`,
//! `"kl_mean"` (KL(reference ‖ model) in nats, averaged over all T positions) and
//! `"top1_agree"` (fraction of the T positions where both argmaxes agree).
//! `ppl = exp(mean NLL)` over the T − 1 next-token predictions. Everything is computed
//! in f64 from the softmax of the f32 logits, chunk by chunk, so memory stays at
//! `chunk × vocabulary` floats per model whatever the text length.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rwkv7::{DEFAULT_CHUNK, LoadedModel, Runner, select_kernels};
use rwkv7_core::Logits;
use rwkv7_core::sampler::argmax;

/// Arguments of `rwkv7 eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF).
    #[arg(short, long)]
    model: PathBuf,
    /// Text file, tokenized with the model's vocabulary (the GGUF must have one).
    #[arg(long, required_unless_present = "tokens_file", conflicts_with = "tokens_file")]
    file: Option<PathBuf>,
    /// File of token ids separated by whitespace or commas (for models without a vocabulary).
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// Reference model (e.g. the f32 file) for kl_mean and top1_agree; same vocabulary size.
    #[arg(long, value_name = "MODEL")]
    reference: Option<PathBuf>,
    /// Evaluate only the first N tokens.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Tokens per prefill chunk (at most 1024).
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_parser = crate::common::count_in(1, rwkv7::MAX_CHUNK, "tokens"))]
    chunk: usize,
    /// Kernel set (default: the best for this CPU; also RWKV7_KERNELS).
    #[arg(long)]
    kernels: Option<String>,
}

/// Token ids from text: numbers separated by whitespace and/or commas.
pub fn parse_token_ids(text: &str) -> Result<Vec<u32>> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().map_err(|_| anyhow!("`{s}` is not a token id")))
        .collect()
}

fn read_tokens(args: &Args, model: &LoadedModel) -> Result<Vec<u32>> {
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        return parse_token_ids(&text).with_context(|| path.display().to_string());
    }
    let path = args.file.as_deref().ok_or_else(|| anyhow!("give --file or --tokens-file"))?;
    let text = std::fs::read(path).with_context(|| path.display().to_string())?;
    // The model's cached tokenizer; its error names the file and suggests --vocab or ids.
    Ok(model.tokenizer()?.encode_iter(&text).collect())
}

/// `log softmax(logits)` in f64.
pub fn log_softmax(logits: &[f32], out: &mut Vec<f64>) {
    out.clear();
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    out.extend(logits.iter().map(|&x| x as f64 - log_z));
}

/// `KL(p ‖ q) = Σ p·(log p − log q)` from log-probabilities.
pub fn kl(log_p: &[f64], log_q: &[f64]) -> f64 {
    log_p.iter().zip(log_q).map(|(&lp, &lq)| if lp == f64::NEG_INFINITY { 0.0 } else { lp.exp() * (lp - lq) }).sum()
}

/// Running totals of an evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Positions seen.
    pub positions: usize,
    /// Sum of the next-token NLLs (over positions that have a next token).
    pub nll_sum: f64,
    /// Number of next-token predictions.
    pub predictions: usize,
    /// Sum of KL(reference ‖ model) over positions.
    pub kl_sum: f64,
    /// Positions where the argmaxes agree.
    pub top1_same: usize,
}

impl Totals {
    /// Adds one position: the model's logits, the reference's (if any) and the next token.
    pub fn add(&mut self, logits: &[f32], reference: Option<&[f32]>, next: Option<u32>, scratch: &mut [Vec<f64>; 2]) {
        let [lp_model, lp_ref] = scratch;
        log_softmax(logits, lp_model);
        self.positions += 1;
        if let Some(next) = next {
            self.nll_sum -= lp_model[next as usize];
            self.predictions += 1;
        }
        if let Some(r) = reference {
            log_softmax(r, lp_ref);
            self.kl_sum += kl(lp_ref, lp_model);
            self.top1_same += usize::from(argmax(r) == argmax(logits));
        }
    }

    /// The JSON line.
    pub fn json(&self, with_reference: bool) -> String {
        let num = |x: f64| match x.abs() {
            a if !a.is_finite() => "null".to_string(),
            a if a == 0.0 || (1e-3..1e15).contains(&a) => format!("{x}"),
            _ => format!("{x:e}"),
        };
        let ppl = (self.nll_sum / self.predictions as f64).exp();
        let mut s = format!("{{\"tokens\":{},\"ppl\":{}", self.positions, num(ppl));
        if with_reference {
            let n = self.positions as f64;
            s += &format!(",\"kl_mean\":{},\"top1_agree\":{}", num(self.kl_sum / n), num(self.top1_same as f64 / n));
        }
        s.push('}');
        s
    }
}

fn open(path: &Path) -> Result<LoadedModel> {
    Ok(LoadedModel::open(path)?)
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let kernels = select_kernels(args.kernels.as_deref()).map_err(anyhow::Error::msg)?;
    let model = open(&args.model)?;
    let reference = args.reference.as_deref().map(open).transpose()?;
    let mut tokens = read_tokens(args, &model)?;
    if let Some(n) = args.max_tokens {
        tokens.truncate(n);
    }
    if tokens.len() < 2 {
        let what = args.tokens_file.as_ref().or(args.file.as_ref()).map_or(String::new(), |p| p.display().to_string());
        bail!("{what}: {} token(s); perplexity needs at least 2", tokens.len());
    }
    let vocab = model.hparams().vocab;
    if let Some(r) = &reference
        && r.hparams().vocab != vocab
    {
        bail!(
            "{}: vocabulary size {} differs from the model's {vocab} ({})",
            r.path().display(),
            r.hparams().vocab,
            args.model.display()
        );
    }
    let chunk = args.chunk;
    let mut runner = Runner::new(&model, kernels, chunk);
    let mut ref_runner = reference.as_ref().map(|r| Runner::new(r, kernels, chunk));
    let mut logits = vec![0f32; chunk * vocab];
    let mut ref_logits = vec![0f32; if ref_runner.is_some() { chunk * vocab } else { 0 }];
    let mut totals = Totals::default();
    let mut scratch = [Vec::with_capacity(vocab), Vec::with_capacity(vocab)];
    for (c, part) in tokens.chunks(chunk).enumerate() {
        let rows = part.len() * vocab;
        runner.feed(part, Logits::All(&mut logits[..rows])).with_context(|| args.model.display().to_string())?;
        if let (Some(r), Some(path)) = (&mut ref_runner, &args.reference) {
            r.feed(part, Logits::All(&mut ref_logits[..rows])).with_context(|| path.display().to_string())?;
        }
        for i in 0..part.len() {
            let row = i * vocab..(i + 1) * vocab;
            let next = tokens.get(c * chunk + i + 1).copied();
            let r = ref_runner.is_some().then(|| &ref_logits[row.clone()]);
            totals.add(&logits[row], r, next, &mut scratch);
        }
    }
    println!("{}", totals.json(reference.is_some()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_parse() {
        assert_eq!(parse_token_ids("1, 2,3\n 4\t5,,\n").unwrap(), [1, 2, 3, 4, 5]);
        assert_eq!(parse_token_ids("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_token_ids("1 x").unwrap_err().to_string(), "`x` is not a token id");
        assert!(parse_token_ids("-1").is_err());
    }

    #[test]
    fn kl_and_ppl() {
        let mut s = [Vec::new(), Vec::new()];
        // Identical distributions: KL 0, top-1 agrees.
        let mut t = Totals::default();
        t.add(&[1.0, 2.0, 3.0], Some(&[1.0, 2.0, 3.0]), Some(2), &mut s);
        assert!(t.kl_sum.abs() < 1e-15);
        assert_eq!(t.top1_same, 1);
        // Uniform model over 4 tokens: ppl 4 exactly.
        let mut t = Totals::default();
        for next in [Some(0), Some(3), None] {
            t.add(&[0.5; 4], None, next, &mut s);
        }
        assert_eq!((t.positions, t.predictions), (3, 2));
        assert!(((t.nll_sum / 2.0).exp() - 4.0).abs() < 1e-12);
        assert!(t.json(false).starts_with("{\"tokens\":3,\"ppl\":"), "{}", t.json(false));
        // KL([.5,.5] ‖ [.9,.1]) = .5 ln(.5/.9) + .5 ln(.5/.1).
        let mut t = Totals::default();
        let q = [0.9f32.ln(), 0.1f32.ln()];
        t.add(&q, Some(&[0.0, 0.0]), None, &mut s);
        let want = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * (0.5f64 / 0.1).ln();
        assert!((t.kl_sum - want).abs() < 1e-6, "{} vs {want}", t.kl_sum);
        assert_eq!(t.top1_same, 1); // ties: both pick index 0
        let line = t.json(true);
        assert!(line.starts_with("{\"tokens\":1,\"ppl\":null,\"kl_mean\":0.5"), "{line}");
        assert!(line.ends_with(",\"top1_agree\":1}"), "{line}");
    }

    #[test]
    fn log_softmax_is_stable() {
        let mut out = Vec::new();
        log_softmax(&[1000.0, 1000.0], &mut out);
        assert!((out[0] - 0.5f64.ln()).abs() < 1e-12);
        log_softmax(&[-1e30, 0.0], &mut out);
        assert_eq!(out[1], 0.0);
    }
}
