//! Time-mix pieces: every kernel set this CPU can run, the scalar set in the same group.
//! Group ids are `{op}/{kernelset}/{heads}x{N}`; throughput in bytes of WKV state.
//!
//! ```text
//! cargo bench -p rwkv7-kernels --features std --bench elementwise
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rwkv7_kernels::{CpuFeatures, KernelSet};

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

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// One token's WKV recurrence over all heads: 12×64 (C = 768) and 32×64 (C = 2048).
fn wkv7(c: &mut Criterion) {
    let mut group = c.benchmark_group("wkv7_head");
    for heads in [12usize, 32] {
        let n = 64;
        let mut state = data(heads * n * n, 1);
        let vecs: Vec<Vec<f32>> = (0..6).map(|i| data(heads * n, 2 + i)).collect();
        let decay: Vec<f32> = vecs[1].iter().map(|d| 0.75 + d * 0.4).collect();
        let mut y = vec![0.0f32; heads * n];
        group.throughput(Throughput::Bytes((state.len() * 4) as u64));
        for k in KernelSet::available(cpu()) {
            group.bench_function(BenchmarkId::new(k.name(), format!("{heads}x{n}")), |b| {
                b.iter(|| {
                    for h in 0..heads {
                        let v = |i: usize| &vecs[i][h * n..(h + 1) * n];
                        k.wkv7_head(
                            &mut state[h * n * n..(h + 1) * n * n],
                            black_box(v(0)),
                            &decay[h * n..(h + 1) * n],
                            v(2),
                            v(3),
                            v(4),
                            v(5),
                            &mut y[h * n..(h + 1) * n],
                        );
                    }
                })
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = wkv7 }
criterion_main!(benches);
