//! Per-token cost of the official sampler on 65536 logits.
//!
//! ```text
//! cargo bench -p rwkv7-core --bench sampler
//! ```
//!
//! The logits are a fixed pseudo-random vector (sum of four uniforms, std ≈ 3, so a few hundred
//! tokens carry most of the mass, as in a real model). Each iteration copies the logits into the
//! working buffer first (`copy_only` measures that part alone).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rwkv7_core::sampler::{OccEntry, Pcg64, Sampler, SamplerParams, sample_logits, softmax_in_place};

const V: usize = 65536;

fn logits(scale: f32) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(7);
    (0..V)
        .map(|_| {
            let s: f64 = (0..4).map(|_| rng.next_f64()).sum();
            ((s - 2.0) * 3.0) as f32 * scale
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let base = logits(1.0);
    let flat = logits(0.1);
    let mut buf = vec![0.0f32; V];
    let mut scratch = vec![0u32; V];
    let mut g = c.benchmark_group("sampler_65536");
    g.bench_function("copy_only", |b| b.iter(|| buf.copy_from_slice(black_box(&base))));
    g.bench_function("softmax_only", |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(&base));
            softmax_in_place(&mut buf).unwrap()
        })
    });
    let cases: [(&str, &[f32], f64, f64, usize); 6] = [
        ("default_T1_p0.85", &base, 1.0, 0.85, 0),
        ("greedy_T0", &base, 0.0, 0.85, 0),
        ("T0.7_p0.3_k40", &base, 0.7, 0.3, 40),
        ("T1_p1.0_worst", &base, 1.0, 1.0, 0),
        ("flat_T1_p0.85", &flat, 1.0, 0.85, 0),
        ("flat_T1.3_p1.0", &flat, 1.3, 1.0, 0),
    ];
    for (name, l, t, p, k) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(l));
                sample_logits(&mut buf, t, p, k, 0.5, &mut scratch).unwrap()
            })
        });
    }
    // A generate step with 256 tracked occurrences, bans and stops.
    let mut occ = vec![OccEntry::default(); 1024];
    let mut s = Sampler::new(SamplerParams::default(), &mut occ, Pcg64::seed_from_u64(1)).with_bans(&[0]);
    for t in 0..256u32 {
        s.accept(t * 97 % V as u32, 1.0);
    }
    g.bench_function("generate_step_256_occurrences", |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(&base));
            s.sample(&mut buf, &mut scratch).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
