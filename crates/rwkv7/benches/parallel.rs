//! The forward pass's split matrix products on the thread pool: decode (one token, split
//! by rows) and prefill (64 tokens, split by tokens), for 1 and 2 threads and for each
//! thread count this machine has, on Q8_0 and Q4_0 weights of the released models' shapes.
//!
//! Group ids are `{type}/{threads}t/{rows}x{cols}x{T}`; throughput is in bytes of weights
//! per call, so a decode figure reads directly as the memory bandwidth it reaches.
//!
//! ```text
//! cargo bench -p rwkv7 --bench parallel
//! cargo bench -p rwkv7 --bench parallel -- 'q4_0/2t/2048x2048x1$'
//! ```
//! Matrices larger than the last-level cache (the 65536×768 head, a 4096×4096 layer) show
//! memory-bound decode; the 768- and 2048-wide ones show what fits in cache.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use rwkv7::ThreadPool;
use rwkv7_core::parallel;
use rwkv7_kernels::quant::{self, BlockQ4_0, BlockQ8_0, QK};
use rwkv7_kernels::{CpuFeatures, KernelSet, Matrix, MatrixData};

/// `(rows, cols, tokens)`: 0.1B/0.4B-wide and 1.5B-wide layers, a 0.4B LoRA up
/// projection (rows of 64 columns), a layer too big for the cache, the 1.5B FFN value
/// projection (rows over two activation panels), the vocabulary head; decode `T = 1` and
/// a 64-token prefill chunk.
const SHAPES: &[(usize, usize, usize)] = &[
    (768, 768, 1),
    (1024, 64, 1),
    (2048, 2048, 1),
    (4096, 4096, 1),
    (2048, 8192, 1),
    (65536, 768, 1),
    (768, 768, 64),
    (2048, 2048, 64),
];

/// Uniform values in [-1, 1) from a seeded xorshift64* (benchmarks need non-zero data).
fn random(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let kernels = KernelSet::best(CpuFeatures::detect());
    let mut counts = vec![1, 2];
    let cores = rwkv7::available_cores();
    if !counts.contains(&cores) {
        counts.push(cores);
    }
    let pools: Vec<ThreadPool> = counts.iter().map(|&n| ThreadPool::new(n).expect("thread pool")).collect();
    println!("kernel set {}, thread counts {counts:?}", kernels.name());
    for &(rows, cols, tokens) in SHAPES {
        let w = random(rows as u64, rows * cols);
        let x = random(7, tokens * cols);
        let mut q8 = vec![BlockQ8_0::new(f16::ZERO, [0; QK]); rows * cols / QK];
        quant::quantize_row_q8_0(&w, &mut q8);
        let mut q4 = vec![BlockQ4_0::new(f16::ZERO, [0; QK]); rows * cols / QK];
        quant::quantize_row_q4_0(&w, &mut q4);
        let mut out = vec![0.0f32; rows * tokens];
        for (name, data) in [("q8_0", MatrixData::Q8_0(&q8)), ("q4_0", MatrixData::Q4_0(&q4))] {
            let m = Matrix::new(data, rows, cols).expect("bench shape");
            let mut group = c.benchmark_group(name);
            group.throughput(Throughput::Bytes(data.n_bytes() as u64));
            for pool in &pools {
                let id = BenchmarkId::new(format!("{}t", pool.threads()), format!("{rows}x{cols}x{tokens}"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        pool.run(|par| parallel::matmul(par, &kernels, black_box(&m), black_box(&x), &mut out, tokens))
                    })
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

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
