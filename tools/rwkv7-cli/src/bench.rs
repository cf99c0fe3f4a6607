//! `rwkv7 bench`: prompt and decode speed of a model, its memory, and how close decode
//! comes to the memory-bandwidth limit, all measured in one run.
//!
//! - Load: `LoadedModel::open` (mmap, GGUF validation, tensor table) until the runner
//!   (state, scratch, thread pool) is ready: `load_ms`.
//! - First token: the first one-token forward from the zero state, greedy pick included
//!   (`first_token_ms`): what a user waits for after loading, before any prompt.
//! - Prompt (`pp`): `-p` fixed pseudo-random tokens through the batched prefill, from
//!   the zero state, last-token logits only. Decode (`tg`): `-n` steps of one token each,
//!   every step computing all logits and picking the greedy argmax (the sampling cost a
//!   real decode pays). Each is run `-r` times; the median time is reported (decode
//!   runs once more first, untimed).
//! - Memory, read from `/proc/self/status` after that first decode run, before the
//!   bandwidth probe's buffer exists: `VmHWM` (peak resident set,
//!   mapped weights included) and `RssAnon` (private memory: state, scratch, logits,
//!   heap).
//! - Bandwidth: every thread of the pool sums its share of a buffer far larger than
//!   any cache. One pass follows each timed decode run (seven passes with `-n 0`), so
//!   that decode and bandwidth are medians over the same stretch of time: on a shared
//!   machine the bandwidth left to us swings by a third within a minute, and a probe
//!   taken at another moment (or its best pass) measures a different machine. The
//!   median pass is `bandwidth_gbs`, the fastest `bandwidth_best_gbs`. The decode
//!   ceiling is `bandwidth_gbs` divided by the bytes of weights a decode step reads
//!   (every layer tensor and the head).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rwkv7::{DEFAULT_CHUNK, LoadedModel, Runner, ThreadPool, select_kernels};
use rwkv7_core::Logits;

use crate::common::count_in;

/// Arguments of `rwkv7 bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF; it needs no tokenizer).
    #[arg(short, long)]
    model: PathBuf,
    /// Prompt tokens per prefill run (0: skip; at most 1048576).
    #[arg(short = 'p', long, default_value_t = 128, value_parser = count_in(0, MAX_TOKENS, "tokens"))]
    prompt: usize,
    /// Decode steps per run (0: skip; at most 1048576).
    #[arg(short = 'n', long, default_value_t = 64, value_parser = count_in(0, MAX_TOKENS, "tokens"))]
    decode: usize,
    /// Threads (default: RWKV7_THREADS, else every core; at most 256).
    #[arg(short = 't', long, value_parser = count_in(1, rwkv7::MAX_THREADS, "threads"))]
    threads: Option<usize>,
    /// Repetitions of each measurement (the median is reported).
    #[arg(short = 'r', long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,
    /// Tokens per prefill chunk (at most 1024).
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_parser = count_in(1, rwkv7::MAX_CHUNK, "tokens"))]
    chunk: usize,
    /// Kernel set (default: the best for this CPU; also RWKV7_KERNELS).
    #[arg(long)]
    kernels: Option<String>,
    /// MiB of the bandwidth probe's buffer (0: skip the probe; at most 65536).
    #[arg(long, default_value_t = 1024, value_parser = count_in(0, MAX_PROBE_MIB, "MiB"))]
    probe_mib: usize,
}

/// The most prompt or decode tokens a run takes: a million, hours of decoding on the
/// devices we target (the prompt is made in memory, 4 bytes a token).
const MAX_TOKENS: usize = 1 << 20;

/// The largest bandwidth probe: 64 GiB, more than any device we target has (the buffer
/// must be far larger than the caches, not than memory).
const MAX_PROBE_MIB: usize = 64 << 10;

/// Runs the command: a human-readable summary on stderr, one JSON object as the last
/// line of stdout.
pub fn run(args: &Args) -> Result<()> {
    let kernels = select_kernels(args.kernels.as_deref()).map_err(anyhow::Error::msg).context("--kernels")?;
    let file_bytes = std::fs::metadata(&args.model).with_context(|| args.model.display().to_string())?.len();

    let start = Instant::now();
    let model = LoadedModel::open(&args.model)?;
    let pool = match args.threads {
        Some(n) => ThreadPool::new(n).context("starting worker threads")?,
        None => ThreadPool::from_env(),
    };
    let mut runner = Runner::with_pool(&model, kernels, args.chunk, pool.clone());
    let load = start.elapsed();

    let hp = *model.hparams();
    let at = || args.model.display().to_string();
    let mut logits = vec![0f32; hp.vocab];
    let (start, fork_joins) = (Instant::now(), pool.fork_joins());
    runner.feed(&[0], Logits::Last(&mut logits)).with_context(at)?;
    std::hint::black_box(argmax(&logits));
    let first_token = start.elapsed();
    // A decode step's splits, as the pool counted them.
    let splits = pool.fork_joins() - fork_joins;

    let prompt = prompt_tokens(args.prompt, hp.vocab);
    let pp = median_time(args.reps, args.prompt > 0, || {
        runner.reset();
        let start = Instant::now();
        runner.feed(&prompt, Logits::Last(&mut logits)).with_context(at)?;
        Ok(start.elapsed())
    })?;
    let mut decode_run = || -> Result<Duration> {
        runner.reset();
        runner.feed(&prompt[..prompt.len().min(1)], Logits::Last(&mut logits)).with_context(at)?;
        let start = Instant::now();
        let mut token = 0;
        for _ in 0..args.decode {
            runner.feed(&[token], Logits::Last(&mut logits)).with_context(at)?;
            token = argmax(&logits);
        }
        Ok(start.elapsed())
    };
    // One untimed decode run, so that the memory figures include decoding, read before
    // the probe's buffer exists.
    if args.decode > 0 {
        decode_run()?;
    }
    let mem = read_memory_status().context("/proc/self/status")?;

    // The timed decode runs, each followed by one probe pass: both statistics are medians
    // over the same stretch of time, so the ratio does not depend on whether the rest of
    // a shared machine was busy during one and quiet during the other.
    let mut probe = (args.probe_mib > 0).then(|| Probe::new(&pool, args.probe_mib << 20)).transpose()?;
    let mut decode_times = Vec::new();
    let mut rates = Vec::new();
    if let Some(p) = &mut probe {
        p.pass(); // untimed: brings the buffer's pages and the workers up to speed
    }
    let runs = if args.decode > 0 { args.reps as usize } else { PROBE_PASSES };
    for _ in 0..runs {
        if args.decode > 0 {
            decode_times.push(decode_run()?);
        }
        if let Some(p) = &mut probe {
            rates.push(p.pass());
        }
    }
    let best_bandwidth = rates.iter().copied().reduce(f64::max);
    let tg = median(&mut decode_times);
    let bandwidth = median(&mut rates);
    drop(probe);
    let overhead = measure_overhead(&pool, splits, &logits);

    let bytes_per_token = runner.model().weight_bytes_per_token();
    let rate = |n: usize, t: Option<Duration>| t.map(|t| n as f64 / t.as_secs_f64());
    let (pp_rate, tg_rate) = (rate(args.prompt, pp), rate(args.decode, tg));
    let ceiling = bandwidth.map(|bw| bw / bytes_per_token as f64);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = serde_json::json!({
        "model": args.model.display().to_string(),
        "pp_tokens": args.prompt,
        "tg_tokens": args.decode,
        "pp_tok_s": pp_rate,
        "tg_tok_s": tg_rate,
        "threads": pool.threads(),
        "kernels": kernels.name(),
        "chunk": args.chunk,
        "reps": args.reps,
        "file_bytes": file_bytes,
        "weight_bytes_per_token": bytes_per_token,
        "peak_rss_bytes": mem.peak_rss,
        "anon_rss_bytes": mem.anon_rss,
        "state_bytes": hp.state_len() * 4,
        "load_ms": ms(load),
        "first_token_ms": ms(first_token),
        "bandwidth_gbs": bandwidth.map(|b| b / 1e9),
        "bandwidth_best_gbs": best_bandwidth.map(|b| b / 1e9),
        "ceiling_tg_tok_s": ceiling,
        "tg_of_ceiling": tg_rate.zip(ceiling).map(|(t, c)| t / c),
        "fork_joins_per_token": overhead.splits,
        "fork_join_us_per_token": overhead.fork_join_us,
        "sampling_us_per_token": overhead.sampling_us,
    });
    eprintln!(
        "{}: {} threads, {}; pp{} {} tok/s, tg{} {} tok/s (ceiling {} tok/s at {} GB/s, median of the probe; best pass {} GB/s); peak RSS {:.1} MB, private {:.1} MB; load {:.1} ms + first token {:.1} ms; per token: {} fork-joins costing {:.1} µs, sampling {:.1} µs",
        args.model.display(),
        pool.threads(),
        kernels.name(),
        args.prompt,
        fmt_opt(pp_rate),
        args.decode,
        fmt_opt(tg_rate),
        fmt_opt(ceiling),
        fmt_opt(bandwidth.map(|b| b / 1e9)),
        fmt_opt(best_bandwidth.map(|b| b / 1e9)),
        mem.peak_rss as f64 / 1e6,
        mem.anon_rss as f64 / 1e6,
        ms(load),
        ms(first_token),
        overhead.splits,
        overhead.fork_join_us,
        overhead.sampling_us,
    );
    println!("{report}");
    Ok(())
}

/// What a decode step costs besides the arithmetic.
struct Overhead {
    /// Splits (fork-joins) of one decode step: matrix products, groups of them and the
    /// WKV heads.
    splits: usize,
    /// Their fork-join cost: `splits` empty splits in a row, timed.
    fork_join_us: f64,
    /// The greedy pick over the vocabulary.
    sampling_us: f64,
}

/// Times `splits` empty fork-joins on `pool` and the greedy pick over `logits` (medians
/// of many runs).
fn measure_overhead(pool: &ThreadPool, splits: usize, logits: &[f32]) -> Overhead {
    let median_us = |f: &mut dyn FnMut()| {
        let mut t: Vec<f64> = (0..201)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    // Inside one `run`, as in a forward pass: the first hand-off wakes the workers, the
    // following splits are fork-joins between running threads.
    let mut buf = vec![0f32; pool.threads()];
    let fork_join = median_us(&mut || {
        pool.run(|par| {
            for _ in 0..splits {
                par.for_each_part(&mut buf, 1, &|i, p| p[0] = i as f32);
            }
        })
    });
    let sampling = median_us(&mut || {
        std::hint::black_box(argmax(std::hint::black_box(logits)));
    });
    Overhead { splits, fork_join_us: fork_join, sampling_us: sampling }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// `n` token ids spread over the vocabulary by a fixed linear congruential walk (so every
/// run and every engine sees the same prompt).
fn prompt_tokens(n: usize, vocab: usize) -> Vec<u32> {
    let mut x = 12345u64;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// The greedy choice: the first index of the largest logit.
fn argmax(logits: &[f32]) -> u32 {
    rwkv7_core::sampler::argmax(logits) as u32
}

/// The median of `reps` timings of `f` (`None` if `enabled` is false).
fn median_time(reps: u32, enabled: bool, mut f: impl FnMut() -> Result<Duration>) -> Result<Option<Duration>> {
    if !enabled {
        return Ok(None);
    }
    let mut times = (0..reps).map(|_| f()).collect::<Result<Vec<_>>>()?;
    Ok(median(&mut times))
}

/// The median of `xs` (the upper one of an even count), sorting `xs`; `None` if empty.
fn median<T: PartialOrd + Copy>(xs: &mut [T]) -> Option<T> {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    xs.get(xs.len() / 2).copied()
}

/// Resident memory figures of this process.
struct MemoryStatus {
    /// `VmHWM`: the peak resident set size, in bytes.
    peak_rss: u64,
    /// `RssAnon`: resident private (anonymous) memory, in bytes.
    anon_rss: u64,
}

fn read_memory_status() -> Result<MemoryStatus> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_memory_status(&status)
}

/// Reads `VmHWM` and `RssAnon` (kB) from the text of `/proc/<pid>/status`.
fn parse_memory_status(status: &str) -> Result<MemoryStatus> {
    let field = |name: &str| -> Result<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name)).with_context(|| format!("no {name} line"))?;
        let kb = line.trim_start_matches(':').trim().trim_end_matches("kB").trim();
        match kb.parse::<u64>() {
            Ok(kb) => Ok(kb * 1024),
            Err(_) => bail!("{name}: unreadable value `{kb}`"),
        }
    };
    Ok(MemoryStatus { peak_rss: field("VmHWM")?, anon_rss: field("RssAnon")? })
}

/// Probe passes when no decode runs to interleave them with (`-n 0`): odd, so the
/// median is one pass.
const PROBE_PASSES: usize = 7;

/// The read-bandwidth probe: `pool`'s threads each sum their share of a buffer far
/// larger than any cache (written, so faulted in, when it is made).
struct Probe<'p> {
    pool: &'p ThreadPool,
    buf: Vec<f32>,
}

impl<'p> Probe<'p> {
    fn new(pool: &'p ThreadPool, bytes: usize) -> Result<Self> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(bytes / 4)
            .with_context(|| format!("cannot allocate the bandwidth probe's {} MiB (--probe-mib)", bytes >> 20))?;
        buf.resize(bytes / 4, 1.0f32);
        Ok(Probe { pool, buf })
    }

    /// One pass over the buffer; its read bandwidth in bytes/s.
    fn pass(&mut self) -> f64 {
        let part_len = self.buf.len().div_ceil(self.pool.threads());
        let start = Instant::now();
        self.pool.run(|par| par.for_each_part(&mut self.buf, part_len, &|_, part| part[0] = sum_lanes(part)));
        let rate = (self.buf.len() * 4) as f64 / start.elapsed().as_secs_f64();
        std::hint::black_box(&self.buf);
        rate
    }
}

/// Sum with 16 independent lanes, so the loop is bounded by loads, not by add latency.
fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_and_private_memory() {
        let status = "Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t 100 kB\nRssAnon:\t    2048 kB\n";
        let m = parse_memory_status(status).unwrap();
        assert_eq!((m.peak_rss, m.anon_rss), (123456 * 1024, 2048 * 1024));
        assert!(parse_memory_status("VmHWM: 1 kB\n").is_err());
        assert!(parse_memory_status("VmHWM: x kB\nRssAnon: 1 kB\n").is_err());
    }

    #[test]
    fn prompt_is_fixed_and_in_range() {
        let p = prompt_tokens(128, 65536);
        assert_eq!(p, prompt_tokens(128, 65536));
        assert!(p.iter().all(|&t| t < 65536));
        assert!(p.iter().collect::<std::collections::HashSet<_>>().len() > 100);
    }

    #[test]
    fn median_is_the_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4, 1]), Some(4));
        assert_eq!(median::<f64>(&mut []), None);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, -1.0, 3.0]), 1);
        assert_eq!(sum_lanes(&[1.0; 37]), 37.0);
    }
}
