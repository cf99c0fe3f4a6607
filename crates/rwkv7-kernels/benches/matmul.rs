//! Matmul benchmarks: every kernel set this CPU can run, the scalar set in the same group.
//!
//! Group ids are `{op}/{kernelset}/{rows}x{cols}x{T}`; throughput is in bytes of weights
//! per call (decode is memory-bound, so GB/s compares the storage types directly).
//! `matmul_q8_0_int` / `matmul_q8_0_deq` (and the same for Q4_0) force one path each;
//! that is the measurement behind each set's default path (KERNELS.md). `matmul_q4_k`,
//! `matmul_q5_k` and `matmul_q6_k` have the integer path only.
//!
//! ```text
//! cargo bench -p rwkv7-kernels --features std --bench matmul                 # everything (~15 min)
//! cargo bench -p rwkv7-kernels --features std --bench matmul -- 'q4_0_int/.*/768x768x1$'
//! ```
//! Measurement times are short by default (0.3 s warm-up, 1 s, 10 samples); criterion's
//! `--warm-up-time` / `--measurement-time` / `--sample-size` override them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::{bf16, f16};
use rwkv7_kernels::kquant_encode::{quantize_row_q4_k, quantize_row_q5_k, quantize_row_q6_k};
use rwkv7_kernels::quant::{self, BlockQ4_0, BlockQ8_0, QK};
use rwkv7_kernels::{BlockQ4K, BlockQ5K, BlockQ6K, QK_K};
use rwkv7_kernels::{CpuFeatures, KernelSet, Matrix, MatrixData, QuantPath};

/// Runtime detection when built with `std` (`--features std`), else the target's baseline.
fn cpu() -> CpuFeatures {
    #[cfg(feature = "std")]
    {
        CpuFeatures::detect()
    }
    #[cfg(not(feature = "std"))]
    {
        CpuFeatures::compile_time()
    }
}

/// xorshift64*, seeded: realistic non-zero data (anti-pattern: benchmarking zeros).
struct Rng(u64);

impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// `(rows, cols, tokens)`: a 768-wide layer (0.1B/0.4B models), a 2048-wide layer (1.5B),
/// the 65536×768 vocabulary head and a 4096×1024 layer (0.4B FFN; decode only), with decode
/// `T = 1` and prefill chunks `T = 16, 64`.
const SHAPES: &[(usize, usize, usize)] = &[
    (768, 768, 1),
    (768, 768, 16),
    (768, 768, 64),
    (2048, 2048, 1),
    (2048, 2048, 16),
    (2048, 2048, 64),
    (65536, 768, 1),
    (4096, 1024, 1),
];

fn matmul(c: &mut Criterion) {
    let sets: Vec<KernelSet> = KernelSet::available(cpu()).collect();
    let names: Vec<&str> = sets.iter().map(|k| k.name()).collect();
    println!("kernel sets: {}", names.join(", "));
    let ops: [(&str, QuantPath); 10] = [
        ("matmul_f32", QuantPath::Integer),
        ("matmul_f16", QuantPath::Integer),
        ("matmul_bf16", QuantPath::Integer),
        ("matmul_q8_0_int", QuantPath::Integer),
        ("matmul_q8_0_deq", QuantPath::Dequantize),
        ("matmul_q4_0_int", QuantPath::Integer),
        ("matmul_q4_0_deq", QuantPath::Dequantize),
        ("matmul_q4_k", QuantPath::Integer),
        ("matmul_q5_k", QuantPath::Integer),
        ("matmul_q6_k", QuantPath::Integer),
    ];
    let mut rng = Rng(0x1234_5678);
    for &(rows, cols, tokens) in SHAPES {
        let wf = rng.vec(rows * cols);
        let x = rng.vec(tokens * cols);
        let w16: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
        let wb16: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
        let mut q8 = vec![BlockQ8_0::new(f16::ZERO, [0; QK]); rows * cols / QK];
        quant::quantize_row_q8_0(&wf, &mut q8);
        let mut q4 = vec![BlockQ4_0::new(f16::ZERO, [0; QK]); rows * cols / QK];
        quant::quantize_row_q4_0(&wf, &mut q4);
        let mut q4k = vec![bytemuck::Zeroable::zeroed(); rows * cols / QK_K];
        quantize_row_q4_k(&wf, &mut q4k);
        let mut q5k = vec![bytemuck::Zeroable::zeroed(); rows * cols / QK_K];
        quantize_row_q5_k(&wf, &mut q5k);
        let mut q6k = vec![bytemuck::Zeroable::zeroed(); rows * cols / QK_K];
        quantize_row_q6_k(&wf, &mut q6k);
        let (q4k, q5k, q6k): (Vec<BlockQ4K>, Vec<BlockQ5K>, Vec<BlockQ6K>) = (q4k, q5k, q6k);
        let mut out = vec![0.0f32; rows * tokens];
        for (op, path) in ops {
            let data = match op {
                "matmul_f32" => MatrixData::F32(&wf),
                "matmul_f16" => MatrixData::F16(&w16),
                "matmul_bf16" => MatrixData::BF16(&wb16),
                o if o.starts_with("matmul_q8_0") => MatrixData::Q8_0(&q8),
                "matmul_q4_k" => MatrixData::Q4K(&q4k),
                "matmul_q5_k" => MatrixData::Q5K(&q5k),
                "matmul_q6_k" => MatrixData::Q6K(&q6k),
                _ => MatrixData::Q4_0(&q4),
            };
            let m = Matrix::new(data, rows, cols).expect("bench shape");
            let mut group = c.benchmark_group(op);
            group.throughput(Throughput::Bytes(data.n_bytes() as u64));
            for k in &sets {
                let k = k.with_quant_paths(path, path);
                group.bench_function(BenchmarkId::new(k.name(), format!("{rows}x{cols}x{tokens}")), |b| {
                    b.iter(|| k.matmul(black_box(&m), black_box(&x), &mut out, tokens))
                });
            }
            group.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = matmul }
criterion_main!(benches);
