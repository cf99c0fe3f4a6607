//! Paired A/B timing of the matrix kernels (`run.sh` builds it; see there for why).
//!
//! For each storage type and shape, one set of weights is quantized by this tree's
//! encoders and handed to both builds (the block layouts are GGUF's, the same bytes in
//! both). The two `KernelSet::matmul`s then run alternately on the same activations,
//! `--calls` times each after a short warm-up, one thread. Each line gives both builds'
//! minimum and median time per call, new/base of each, and whether the outputs are the
//! same bits.

use std::process::ExitCode;
use std::time::Instant;

use half::f16;
use rwkv7_kernels as new;
use rwkv7_kernels_base as base;

/// Calls of each build before timing starts: the weights come into cache (where they
/// fit) and the CPU leaves its idle clock.
const WARM_UP_CALLS: usize = 5;

/// The storage types the harness can time.
#[derive(Clone, Copy, Debug)]
enum Type {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "f32" => Type::F32,
            "f16" => Type::F16,
            "q8_0" => Type::Q8_0,
            "q4_0" => Type::Q4_0,
            "q4_k" => Type::Q4K,
            "q5_k" => Type::Q5K,
            "q6_k" => Type::Q6K,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::F32 => "f32",
            Type::F16 => "f16",
            Type::Q8_0 => "q8_0",
            Type::Q4_0 => "q4_0",
            Type::Q4K => "q4_k",
            Type::Q5K => "q5_k",
            Type::Q6K => "q6_k",
        }
    }
}

/// One matrix's weights in a type, encoded by this tree's quantizers.
enum Weights {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Q8_0(Vec<new::BlockQ8_0>),
    Q4_0(Vec<new::BlockQ4_0>),
    Q4K(Vec<new::BlockQ4K>),
    Q5K(Vec<new::BlockQ5K>),
    Q6K(Vec<new::BlockQ6K>),
}

impl Weights {
    /// `values` (`rows × cols`, row-major) in `ty`, each row encoded on its own.
    fn encode(ty: Type, values: &[f32], cols: usize) -> Weights {
        fn rows<B: Copy + bytemuck::Zeroable>(
            values: &[f32],
            cols: usize,
            per_block: usize,
            f: fn(&[f32], &mut [B]),
        ) -> Vec<B> {
            let mut out = vec![B::zeroed(); values.len() / per_block];
            for (row, blocks) in values.chunks_exact(cols).zip(out.chunks_exact_mut(cols / per_block)) {
                f(row, blocks);
            }
            out
        }
        match ty {
            Type::F32 => Weights::F32(values.to_vec()),
            Type::F16 => Weights::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            Type::Q8_0 => Weights::Q8_0(rows(values, cols, new::QK, new::quant::quantize_row_q8_0)),
            Type::Q4_0 => Weights::Q4_0(rows(values, cols, new::QK, new::quant::quantize_row_q4_0)),
            Type::Q4K => Weights::Q4K(rows(values, cols, new::QK_K, new::kquant_encode::quantize_row_q4_k)),
            Type::Q5K => Weights::Q5K(rows(values, cols, new::QK_K, new::kquant_encode::quantize_row_q5_k)),
            Type::Q6K => Weights::Q6K(rows(values, cols, new::QK_K, new::kquant_encode::quantize_row_q6_k)),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Weights::F32(v) => size_of_val(v.as_slice()),
            Weights::F16(v) => size_of_val(v.as_slice()),
            Weights::Q8_0(v) => size_of_val(v.as_slice()),
            Weights::Q4_0(v) => size_of_val(v.as_slice()),
            Weights::Q4K(v) => size_of_val(v.as_slice()),
            Weights::Q5K(v) => size_of_val(v.as_slice()),
            Weights::Q6K(v) => size_of_val(v.as_slice()),
        }
    }
}

/// The weights as crate `$k`'s `Matrix` (the quantized blocks cast to its block types:
/// same size, alignment and bytes).
macro_rules! matrix {
    ($k:ident, $w:expr, $rows:expr, $cols:expr) => {
        $k::Matrix::new(
            match $w {
                Weights::F32(v) => $k::MatrixData::F32(v),
                Weights::F16(v) => $k::MatrixData::F16(v),
                Weights::Q8_0(v) => $k::MatrixData::Q8_0(bytemuck::cast_slice(v)),
                Weights::Q4_0(v) => $k::MatrixData::Q4_0(bytemuck::cast_slice(v)),
                Weights::Q4K(v) => $k::MatrixData::Q4K(bytemuck::cast_slice(v)),
                Weights::Q5K(v) => $k::MatrixData::Q5K(bytemuck::cast_slice(v)),
                Weights::Q6K(v) => $k::MatrixData::Q6K(bytemuck::cast_slice(v)),
            },
            $rows,
            $cols,
        )
    };
}

/// Crate `$k`'s kernel set named `$name`, or its best for this CPU.
macro_rules! kernel_set {
    ($k:ident, $name:expr) => {{
        let cpu = $k::CpuFeatures::detect();
        match $name {
            Some(name) => $k::KernelSet::by_name(cpu, name),
            None => Some($k::KernelSet::best(cpu)),
        }
    }};
}

struct Options {
    types: Vec<Type>,
    /// `(rows, cols, tokens)`.
    shapes: Vec<(usize, usize, usize)>,
    calls: usize,
    kernels: Option<String>,
    same_bits: bool,
}

const USAGE: &str = "kernel-ab [--types q8_0,q4_0,q4_k,q6_k] [--shapes 768x768x1,...] [--calls 200] \
                     [--kernels NAME] [--same-bits]\n\
                     types: f32 f16 q8_0 q4_0 q4_k q5_k q6_k; shapes: ROWSxCOLSxTOKENS; \
                     --same-bits: fail unless both builds give the same bits";

fn parse_options(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        types: [Type::Q8_0, Type::Q4_0, Type::Q4K, Type::Q6K].to_vec(),
        shapes: [(768, 768, 1), (1024, 1024, 1), (4096, 1024, 1), (768, 768, 64), (1024, 1024, 64)].to_vec(),
        calls: 200,
        kernels: None,
        same_bits: false,
    };
    let mut args = args;
    while let Some(flag) = args.next() {
        if flag == "--same-bits" {
            o.same_bits = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--types" => {
                o.types = value
                    .split(',')
                    .map(|t| Type::parse(t).ok_or(format!("unknown type {t:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--shapes" => o.shapes = value.split(',').map(parse_shape).collect::<Result<_, _>>()?,
            "--calls" => o.calls = value.parse().ok().filter(|&n| n > 0).ok_or(format!("bad --calls {value:?}"))?,
            "--kernels" => o.kernels = Some(value),
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    Ok(o)
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize), String> {
    let dims: Vec<usize> =
        s.split('x').map(|d| d.parse().map_err(|_| format!("bad shape {s:?}"))).collect::<Result<_, _>>()?;
    match dims[..] {
        [rows, cols, tokens] if rows > 0 && cols > 0 && tokens > 0 => Ok((rows, cols, tokens)),
        _ => Err(format!("shape {s:?} is not ROWSxCOLSxTOKENS")),
    }
}

/// xorshift64*: the same weights and activations on every run.
struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

/// Minimum and median of `times` (seconds), in µs.
fn min_median(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[0] * 1e6, times[times.len() / 2] * 1e6)
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kernel-ab: {e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let name = options.kernels.as_deref();
    let (Some(kn), Some(kb)) = (kernel_set!(new, name), kernel_set!(base, name)) else {
        eprintln!("kernel-ab: kernel set {name:?} is not available on this CPU in both builds");
        return ExitCode::from(2);
    };
    println!("kernels: new {}, base {}; {} alternated calls each, one thread", kn.name(), kb.name(), options.calls);
    println!(
        "{:<6} {:<16} {:>9} {:>20} {:>20} {:>16}  bits",
        "type", "rows×cols×T", "MB", "base min/med µs", "new min/med µs", "new/base min/med"
    );
    let mut differ = false;
    for &ty in &options.types {
        for &(rows, cols, tokens) in &options.shapes {
            let block = match ty {
                Type::F32 | Type::F16 => 1,
                Type::Q8_0 | Type::Q4_0 => new::QK,
                Type::Q4K | Type::Q5K | Type::Q6K => new::QK_K,
            };
            let shape = format!("{rows}x{cols}x{tokens}");
            if !cols.is_multiple_of(block) {
                println!("{:<6} {shape:<16} skipped: {cols} columns are not whole {block}-blocks", ty.name());
                continue;
            }
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (rows * 31 + cols) as u64);
            let weights = Weights::encode(ty, &rng.values(rows * cols), cols);
            let x = rng.values(tokens * cols);
            let (Some(wn), Some(wb)) = (matrix!(new, &weights, rows, cols), matrix!(base, &weights, rows, cols)) else {
                unreachable!("the weights have the shape's length")
            };
            let (mut out_n, mut out_b) = (vec![0f32; rows * tokens], vec![0f32; rows * tokens]);
            for _ in 0..WARM_UP_CALLS {
                kb.matmul(&wb, &x, &mut out_b, tokens);
                kn.matmul(&wn, &x, &mut out_n, tokens);
            }
            let (mut tb, mut tn) = (Vec::with_capacity(options.calls), Vec::with_capacity(options.calls));
            for _ in 0..options.calls {
                let start = Instant::now();
                kb.matmul(&wb, &x, &mut out_b, tokens);
                tb.push(start.elapsed().as_secs_f64());
                let start = Instant::now();
                kn.matmul(&wn, &x, &mut out_n, tokens);
                tn.push(start.elapsed().as_secs_f64());
            }
            let ((b_min, b_med), (n_min, n_med)) = (min_median(&mut tb), min_median(&mut tn));
            let same = out_n.iter().zip(&out_b).all(|(a, b)| a.to_bits() == b.to_bits());
            let bits = if same {
                "same".to_string()
            } else {
                let diff = out_n.iter().zip(&out_b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                format!("differ (max |new - base| {diff:.3e})")
            };
            differ |= !same;
            println!(
                "{:<6} {shape:<16} {:>9.2} {:>9.1} {:>10.1} {:>9.1} {:>10.1} {:>7.3} {:>8.3}  {bits}",
                ty.name(),
                weights.bytes() as f64 / 1e6,
                b_min,
                b_med,
                n_min,
                n_med,
                n_min / b_min,
                n_med / b_med,
            );
        }
    }
    if differ && options.same_bits {
        eprintln!("kernel-ab: --same-bits: the builds' outputs differ");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
