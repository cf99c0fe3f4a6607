//! The sampler against the official `PIPELINE.sample_logits` / `PIPELINE.generate` (fixtures from
//! `tests/fixtures/make_tokenizer_sampler_fixtures.py`, see `tests/fixtures/README.md`).
//!
//! Two comparisons per case:
//!
//! - **From the official softmax output** (`filter_probs` on the recorded torch softmax): every
//!   later step is the same f32/f64 arithmetic in the same order, so the final probabilities
//!   must be bit-identical and every draw must pick the same token. With temperature ≠ 1 the
//!   only difference is `powf` (libm vs the C library numpy calls), ≤ 1 ulp before
//!   normalisation, so there the bound is `REL_POW` and draws within `MARGIN` of a cdf step
//!   are not compared.
//! - **From the logits** (our softmax): torch's `exp` and summation order differ from ours in
//!   the last bits (measured: ≤ 2.5e-7 relative on these cases), so probabilities are compared
//!   with `REL_SOFTMAX` relative error, the set of kept tokens must be identical, and draws
//!   are compared when `u` is at least `MARGIN` away from a cdf step (the fixture records that
//!   distance; a 1e-6 relative error cannot move a cdf step by 1e-5).

use std::path::PathBuf;

use rwkv7_core::sampler::{
    OccEntry, Pcg64, Sampler, SamplerParams, Step, choose, filter_probs, sample_logits, softmax_in_place,
};
use serde_json::Value;

/// Relative bound for probabilities computed from the logits with our softmax: softmax
/// (≤ 2.5e-7 measured) times the temperature exponent (≤ 2 here), plus normalisation.
const REL_SOFTMAX: f64 = 1e-6;
/// Relative bound with the official softmax and temperature ≠ 1 (one `powf` ulp, amplified by
/// normalisation: a few 1e-7).
const REL_POW: f64 = 5e-7;
/// Draws closer than this to a cdf step are only compared where probabilities are bit-identical.
const MARGIN: f64 = 1e-5;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sampler").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// f32 values; `null` is -inf (JSON has no infinities).
fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().map_or(f32::NEG_INFINITY, |f| f as f32)).collect()
}

fn rel_err(got: f32, want: f32) -> f64 {
    if got == want { 0.0 } else { (f64::from(got) - f64::from(want)).abs() / f64::from(want).abs() }
}

/// Max relative error, after checking that exactly the same entries are zero.
fn compare_probs(got: &[f32], want: &[f32], what: &str) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g == 0.0, w == 0.0, "{what}: token {i} kept differently ({g} vs {w})");
        worst = worst.max(rel_err(g, w));
    }
    worst
}

#[test]
fn sample_logits_cases() {
    let f = fixture("cases.json");
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    let (mut worst_softmax, mut worst_full, mut worst_pow) = (0.0f64, 0.0f64, 0.0f64);
    let (mut draws_exact, mut draws_full, mut skipped) = (0, 0, 0);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let (t, top_p, top_k) =
            (c["temperature"].as_f64().unwrap(), c["top_p"].as_f64().unwrap(), c["top_k"].as_u64().unwrap() as usize);
        let logits = f32s(&c["logits"]);
        let official_softmax = f32s(&c["softmax"]);
        let official = f32s(&c["probs"]);
        let n = logits.len();
        let mut scratch = vec![0u32; n];
        let exact_path = t == 0.0 || t == 1.0;

        // 1. Our softmax.
        let mut ours = logits.clone();
        softmax_in_place(&mut ours).unwrap();
        worst_softmax = worst_softmax.max(compare_probs(&ours, &official_softmax, name));

        // 2. Filters on the official softmax output.
        let mut p = official_softmax.clone();
        filter_probs(&mut p, t, top_p, top_k, &mut scratch).unwrap();
        if exact_path {
            for (i, (&g, &w)) in p.iter().zip(&official).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{name}: token {i}: {g} vs official {w}");
            }
        } else {
            let e = compare_probs(&p, &official, name);
            assert!(e <= REL_POW, "{name}: relative error {e:e} after powf");
            worst_pow = worst_pow.max(e);
        }
        for d in c["draws"].as_array().unwrap() {
            let (u, want, margin) =
                (d["u"].as_f64().unwrap(), d["token"].as_u64().unwrap() as usize, d["margin"].as_f64().unwrap());
            if exact_path || margin > MARGIN {
                assert_eq!(choose(&p, u), want, "{name}: u = {u}");
                draws_exact += 1;
            }
        }

        // 3. The whole pipeline from the logits.
        for d in c["draws"].as_array().unwrap() {
            let (u, want, margin) =
                (d["u"].as_f64().unwrap(), d["token"].as_u64().unwrap() as u32, d["margin"].as_f64().unwrap());
            let mut l = logits.clone();
            let tok = sample_logits(&mut l, t, top_p, top_k, u, &mut scratch).unwrap();
            let e = compare_probs(&l, &official, name);
            assert!(e <= REL_SOFTMAX, "{name}: relative error {e:e} from the logits");
            worst_full = worst_full.max(e);
            if margin > MARGIN {
                assert_eq!(tok, want, "{name}: u = {u} (margin {margin:e})");
                draws_full += 1;
            } else {
                skipped += 1;
            }
        }
        let kept = official.iter().filter(|&&v| v != 0.0).count();
        assert_eq!(kept as u64, c["kept"].as_u64().unwrap());
        if name == "top_p_1_quirk_greedy" {
            assert_eq!(kept, 1, "top_p = 1.0 turned greedy");
        }
    }
    println!(
        "{} cases; max rel err: softmax {worst_softmax:.2e}, from logits {worst_full:.2e}, powf path {worst_pow:.2e}; \
         draws compared: {draws_exact} from official softmax, {draws_full} from logits ({skipped} near a cdf step skipped)",
        cases.len()
    );
}

#[test]
fn generate_runs_with_penalties() {
    let f = fixture("generate.json");
    let runs = f["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        let name = r["name"].as_str().unwrap();
        let params = SamplerParams {
            temperature: r["temperature"].as_f64().unwrap(),
            top_p: r["top_p"].as_f64().unwrap(),
            top_k: r["top_k"].as_u64().unwrap() as usize,
            alpha_frequency: r["alpha_frequency"].as_f64().unwrap(),
            alpha_presence: r["alpha_presence"].as_f64().unwrap(),
            alpha_decay: r["alpha_decay"].as_f64().unwrap(),
        };
        let to_u32 =
            |v: &Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
        let bans = to_u32(&r["token_ban"]);
        let stops = to_u32(&r["token_stop"]);
        let candidates = to_u32(&r["candidates"]);
        let weights: Vec<f64> =
            r["candidate_weights"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
        let vocab = r["vocab_size"].as_u64().unwrap() as usize;
        let background = r["background"].as_f64().unwrap() as f32;
        let table: Vec<Vec<f32>> = r["logits_table"].as_array().unwrap().iter().map(f32s).collect();
        let steps = r["steps"].as_array().unwrap();

        let mut occ = vec![OccEntry::default(); steps.len()];
        let mut s = Sampler::new(params, &mut occ, Pcg64::seed_from_u64(0)).with_bans(&bans).with_stops(&stops);
        let mut scratch = vec![0u32; vocab];
        let mut worst = 0.0f64;
        let mut generated = Vec::new();
        for (i, st) in steps.iter().enumerate() {
            // The occurrence table before this step, exactly (same f64 operations as Python).
            let want_occ: Vec<(u32, f64)> = st["occurrence_before"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e[0].as_u64().unwrap() as u32, e[1].as_f64().unwrap()))
                .collect();
            let mut got_occ: Vec<(u32, f64)> = s.occurrence.entries().iter().map(|e| (e.token, e.count)).collect();
            got_occ.sort_by_key(|e| e.0);
            assert_eq!(got_occ, want_occ, "{name}: occurrences before step {i}");

            let mut logits = vec![background; vocab];
            for (&c, &v) in candidates.iter().zip(&table[i]) {
                logits[c as usize] = v;
            }
            let u = st["u"].as_f64().unwrap();
            let weight = |t: u32| weights[candidates.iter().position(|&c| c == t).expect("a candidate")];
            let step = s.step_with_draw(&mut logits, &mut scratch, u, weight).unwrap();
            let want = st["token"].as_u64().unwrap() as u32;
            assert!(st["margin"].as_f64().unwrap() > MARGIN);
            match step {
                Step::Token(t) => {
                    assert_eq!(t, want, "{name}: step {i}");
                    assert!(!st["stop"].as_bool().unwrap());
                    generated.push(t);
                }
                Step::Stop(t) => {
                    assert_eq!(t, want, "{name}: step {i}");
                    assert!(st["stop"].as_bool().unwrap(), "{name}: unexpected stop at step {i}");
                }
            }
            // The final probabilities: the official ones are recorded sparsely.
            let mut want_p = vec![0.0f32; vocab];
            for e in st["kept"].as_array().unwrap() {
                want_p[e[0].as_u64().unwrap() as usize] = e[1].as_f64().unwrap() as f32;
            }
            worst = worst.max(compare_probs(&logits, &want_p, name));
        }
        assert!(worst <= REL_SOFTMAX, "{name}: relative error {worst:e}");
        println!("{name}: {} steps, {} tokens identical, max rel err {worst:.2e}", steps.len(), generated.len());
    }
}

#[test]
fn pcg64_matches_numpy() {
    let f = fixture("rng.json");
    let hex128 = |v: &Value| u128::from_str_radix(v.as_str().unwrap(), 16).unwrap();
    let hex64 = |v: &Value| u64::from_str_radix(v.as_str().unwrap(), 16).unwrap();
    for r in f["raw"].as_array().unwrap() {
        let g = Pcg64::from_raw(hex128(&r["state"]), hex128(&r["inc"]));
        let mut a = g;
        for w in r["u64"].as_array().unwrap() {
            assert_eq!(a.next_u64(), hex64(w));
        }
        let mut b = g;
        for x in r["f64"].as_array().unwrap() {
            assert_eq!(b.next_f64(), x.as_f64().unwrap());
        }
    }
    for r in f["seeded"].as_array().unwrap() {
        let w: Vec<u64> = r["words"].as_array().unwrap().iter().map(hex64).collect();
        let mut g = Pcg64::new(((w[0] as u128) << 64) | w[1] as u128, ((w[2] as u128) << 64) | w[3] as u128);
        assert_eq!(g.raw(), (hex128(&r["state"]), hex128(&r["inc"])), "numpy.random.PCG64({})", r["seed"]);
        for x in r["f64"].as_array().unwrap() {
            assert_eq!(g.next_f64(), x.as_f64().unwrap());
        }
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let logits: Vec<f32> = (0..4096).map(|i| ((i * 7919) % 1000) as f32 / 150.0).collect();
    let run = |seed| {
        let mut occ = [OccEntry::default(); 64];
        let mut s = Sampler::new(SamplerParams::default(), &mut occ, Pcg64::seed_from_u64(seed));
        let mut scratch = vec![0u32; logits.len()];
        (0..32)
            .map(|_| {
                let mut l = logits.clone();
                match s.step(&mut l, &mut scratch, |_| 1.0).unwrap() {
                    Step::Token(t) | Step::Stop(t) => t,
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
