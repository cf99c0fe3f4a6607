//! Time-mix pieces: every kernel set this CPU can run, the scalar set in the same group.
//! Ids are `{op}/{kernelset}/{shape}`. `wkv7_head`: `{heads}x{N}`, throughput in bytes of
//! WKV state. Elementwise ops and norms: `{T}x{C}` (one decode token and a 16-token
//! prefill chunk at C = 768), throughput in elements; `quantize_activations_{32,256}` is
//! the integer paths' activation quantizer with one scale per 32 or 256 values.
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

/// Widths and token counts of the elementwise benches: C = 768, T = 1 and 16.
const SHAPES: [(usize, usize); 2] = [(1, 768), (16, 768)];

/// One benchmark group per in-place map (`exp`, `sigmoid`, `tanh`, `relu_squared`).
fn maps(c: &mut Criterion) {
    type MapOp = fn(&KernelSet, &mut [f32]);
    let ops: [(&str, MapOp); 4] = [
        ("exp", KernelSet::exp),
        ("sigmoid", KernelSet::sigmoid),
        ("tanh", KernelSet::tanh),
        ("relu_squared", KernelSet::relu_squared),
    ];
    for (name, op) in ops {
        let mut group = c.benchmark_group(name);
        for (t, cols) in SHAPES {
            // Arguments in [−4, 4): both branches of tanh, no saturation.
            let src: Vec<f32> = data(t * cols, 7).iter().map(|v| v * 8.0).collect();
            let mut x = src.clone();
            group.throughput(Throughput::Elements((t * cols) as u64));
            for k in KernelSet::available(cpu()) {
                group.bench_function(BenchmarkId::new(k.name(), format!("{t}x{cols}")), |b| {
                    b.iter(|| {
                        x.copy_from_slice(&src);
                        op(&k, black_box(&mut x));
                    })
                });
            }
        }
        group.finish();
    }
}

/// The fused time-mix steps and the token-shift lerp, with realistic magnitudes.
fn fused(c: &mut Criterion) {
    for (t, cols) in SHAPES {
        let n = t * cols;
        let (x, sx, mix) = (data(n, 11), data(n, 12), data(cols, 13));
        let w0: Vec<f32> = data(cols, 14).iter().map(|v| v * 7.0 - 2.5).collect();
        let bias: Vec<f32> = data(cols, 15).iter().map(|v| v * 4.0).collect();
        let (vf, gate, a) = (data(n, 16), data(n, 17), data(n, 18));
        let (k_k, k_a) = (data(cols, 19), data(cols, 20));
        let id = format!("{t}x{cols}");
        let mut out = vec![0.0f32; n];
        let mut kk = vec![0.0f32; n];
        /// One call of a fused op: the set, its output row(s) and the `kk` scratch.
        type Call<'a> = dyn FnMut(&KernelSet, &mut [f32], &mut [f32]) + 'a;
        let mut bench = |op: &str, f: &mut Call<'_>| {
            let mut group = c.benchmark_group(op);
            group.throughput(Throughput::Elements(n as u64));
            for k in KernelSet::available(cpu()) {
                group.bench_function(BenchmarkId::new(k.name(), &id), |b| b.iter(|| f(&k, &mut out, &mut kk)));
            }
            group.finish();
        };
        bench("lerp", &mut |k, out, _| k.lerp(black_box(&x), &sx, &mix, out));
        bench("bias_sigmoid", &mut |k, out, _| {
            out.copy_from_slice(&x);
            k.bias_sigmoid(black_box(&bias), out)
        });
        bench("time_decay", &mut |k, out, _| {
            out.copy_from_slice(&x);
            k.time_decay(black_box(&w0), 0.606531, out)
        });
        bench("value_residual", &mut |k, out, _| {
            out.copy_from_slice(&x);
            k.value_residual(out, black_box(&vf), &bias, &gate)
        });
        bench("key_prep", &mut |k, out, kk| {
            out.copy_from_slice(&x);
            k.key_prep(out, kk, black_box(&a), &k_k, &k_a, 64, 1e-12)
        });
        bench("layer_norm", &mut |k, out, _| {
            for r in 0..t {
                k.layer_norm(
                    black_box(&x[r * cols..(r + 1) * cols]),
                    &mix,
                    &bias,
                    1e-5,
                    &mut out[r * cols..(r + 1) * cols],
                )
            }
        });
        // The integer paths' activation quantizer: per 32 values (Q8_0/Q4_0 weights) and per
        // 256 (K-quant weights). Every integer matmul call runs it once per token and panel.
        let (mut qs, mut d) = (vec![0i8; n], vec![0.0f32; n / 32]);
        for block in [32, 256] {
            bench(&format!("quantize_activations_{block}"), &mut |k, _, _| {
                k.quantize_activations_per(block, black_box(&x), &mut qs, &mut d[..n / block])
            });
        }
        let (gw, gb) = (mix.repeat(t), bias.repeat(t));
        bench("group_norm", &mut |k, out, _| {
            out.copy_from_slice(&x);
            for r in 0..t {
                let row = r * cols..(r + 1) * cols;
                k.group_norm(black_box(&mut out[row.clone()]), &gw[row.clone()], &gb[row], 64, 64e-5)
            }
        });
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = wkv7, maps, fused }
criterion_main!(benches);
