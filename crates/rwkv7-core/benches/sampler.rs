//! Per-token cost of the official sampler on 65536 logits.
//!
//! ```text
//! cargo bench -p rwkv7-core --bench sampler
//! ```
//!
//! Three fixed pseudo-random logit vectors:
//! - `peaked`: noise (std ≈ 1.7) plus 200 "head" tokens at `18 − 2·ln(rank + 1)`: the top token
//!   has p ≈ 0.55 and the 0.85 nucleus a handful of tokens, as with a real model;
//! - `broad`: the noise alone: the 0.85 nucleus holds about 40% of the vocabulary;
//! - `flat`: noise of std ≈ 0.17: almost uniform, the worst case for sorting.
//!
//! Each iteration first copies the logits into the working buffer (`copy_only` is that part).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rwkv7_core::sampler::{OccEntry, Pcg64, Sampler, SamplerParams, sample_logits, softmax_in_place};

const V: usize = 65536;

fn noise(scale: f32) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(7);
    (0..V)
        .map(|_| {
            let s: f64 = (0..4).map(|_| rng.next_f64()).sum();
            ((s - 2.0) * 3.0) as f32 * scale
        })
        .collect()
}

fn peaked() -> Vec<f32> {
    let mut l = noise(1.0);
    for rank in 0..200usize {
        l[(rank * 7919 + 13) % V] = 18.0 - 2.0 * ((rank + 1) as f32).ln();
    }
    l
}

fn bench(c: &mut Criterion) {
    let (peaked, broad, flat) = (peaked(), noise(1.0), noise(0.1));
    let mut buf = vec![0.0f32; V];
    let mut scratch = vec![0u32; V];
    let mut g = c.benchmark_group("sampler_65536");
    g.bench_function("copy_only", |b| b.iter(|| buf.copy_from_slice(black_box(&peaked))));
    g.bench_function("softmax_only", |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(&peaked));
            softmax_in_place(&mut buf).unwrap()
        })
    });
    let cases: [(&str, &[f32], f64, f64, usize); 9] = [
        ("peaked_T1_p0.85", &peaked, 1.0, 0.85, 0),
        ("peaked_greedy_T0", &peaked, 0.0, 0.85, 0),
        ("peaked_T0.7_p0.3_k40", &peaked, 0.7, 0.3, 40),
        ("peaked_T1_p1.0", &peaked, 1.0, 1.0, 0),
        ("broad_T1_p0.85", &broad, 1.0, 0.85, 0),
        ("broad_T1_p1.0", &broad, 1.0, 1.0, 0),
        ("flat_T1_p0.85", &flat, 1.0, 0.85, 0),
        ("flat_T1.3_p1.0", &flat, 1.3, 1.0, 0),
        ("flat_T1_p0.3_k20", &flat, 1.0, 0.3, 20),
    ];
    for (name, l, t, p, k) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(l));
                sample_logits(&mut buf, t, p, k, 0.5, &mut scratch).unwrap()
            })
        });
    }
    // A full generate step (bans, 256 tracked occurrences, RNG draw) with default parameters.
    let mut occ = vec![OccEntry::default(); 1024];
    let mut s = Sampler::new(SamplerParams::default(), &mut occ, Pcg64::seed_from_u64(1)).with_bans(&[0]);
    for t in 0..256u32 {
        s.accept(t * 97 % V as u32, 1.0);
    }
    g.bench_function("peaked_generate_step_256_occurrences", |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(&peaked));
            s.sample(&mut buf, &mut scratch).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
