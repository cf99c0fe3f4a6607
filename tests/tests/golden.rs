//! The f32 engine against the official implementation (`rwkv` 0.8.32, "cpu fp32"),
//! on every golden fixture, in both modes, for every kernel set this machine runs.

mod common;

use common::*;
use rwkv7::ThreadPool;
use rwkv7_quant::OutType;

#[test]
fn logits_and_state_match_the_official_implementation() {
    let sets = kernel_sets();
    for name in FIXTURES {
        let fx = Fixture::load(name);
        let tmp = tempfile::tempdir().unwrap();
        let (_, model) = convert_and_open(&fx.dir.join("model.pth"), tmp.path(), OutType::F32);
        let g = &fx.golden;
        let (ref_rnn, ref_seq) = (fx.f32s("logits_rnn.f32"), fx.f32s("logits_seq.f32"));
        let (state_rnn, state_seq) = (fx.f32s("state_rnn.f32"), fx.f32s("state_seq.f32"));
        for &k in &sets {
            let rnn = run_rnn(&model, k, &g.tokens);
            let seq = run_seq(&model, k, &g.tokens, 64);
            let w_rnn = check_logits(&format!("{name}/{}/rnn", k.name()), &rnn.logits, &ref_rnn, g.vocab);
            let w_seq = check_logits(&format!("{name}/{}/seq", k.name()), &seq.logits, &ref_seq, g.vocab);
            let s_rnn = max_abs_diff(&rnn.state, &state_rnn);
            let s_seq = max_abs_diff(&seq.state, &state_seq);
            assert!(s_rnn <= STATE_TOL, "{name}/{}: rnn state max|Δ| = {s_rnn:e}", k.name());
            assert!(s_seq <= STATE_TOL, "{name}/{}: seq state max|Δ| = {s_seq:e}", k.name());
            eprintln!(
                "{name} [{}]: logits max|Δ|/max(1,std) rnn {w_rnn:.2e} seq {w_seq:.2e}; state max|Δ| rnn {s_rnn:.2e} seq {s_seq:.2e}",
                k.name()
            );
        }
    }
}

/// Our decode path and prefill path agree with each other within 1e-5 (absolute, on
/// logits of std ≈ 1) for every chunk size, including chunks that split the sequence
/// unevenly. 1e-5 is ten times below the golden tolerance: the two paths do the same
/// math and may differ only by summation order inside the kernels.
#[test]
fn rnn_and_seq_modes_agree() {
    const MODE_TOL: f32 = 1e-5;
    for name in FIXTURES {
        let fx = Fixture::load(name);
        let tmp = tempfile::tempdir().unwrap();
        let (_, model) = convert_and_open(&fx.dir.join("model.pth"), tmp.path(), OutType::F32);
        let tokens = &fx.golden.tokens;
        for k in kernel_sets() {
            let rnn = run_rnn(&model, k, tokens);
            for chunk in [1, 5, 16, tokens.len()] {
                let seq = run_seq(&model, k, tokens, chunk);
                let d = max_abs_diff(&rnn.logits, &seq.logits);
                assert!(d <= MODE_TOL, "{name}/{}: chunk {chunk}: rnn vs seq max|Δ| = {d:e}", k.name());
                let s = max_abs_diff(&rnn.state, &seq.state);
                assert!(s <= MODE_TOL, "{name}/{}: chunk {chunk}: rnn vs seq state max|Δ| = {s:e}", k.name());
            }
        }
    }
}

/// Splitting the work across threads changes nothing: with 2 and 3 threads and every
/// matrix split (however small), decode and prefill logits and states are bit-identical
/// to one thread's, for every kernel set. The kernels compute each output with the same
/// operations whatever rows and tokens a call covers, so equality is exact. Chunks of 7
/// tokens split each matrix product by tokens; chunks of 13 and more are cut into token
/// regions (`forward/regions.rs`): 13 tokens, one region per thread, of unequal length;
/// 48 tokens (the fixture's, repeated) in one chunk of 64, 6 regions of 8 tokens, which 2
/// or 3 threads claim as they finish one.
#[test]
fn thread_counts_give_bit_identical_results() {
    for name in FIXTURES {
        let fx = Fixture::load(name);
        let tmp = tempfile::tempdir().unwrap();
        let tokens = &fx.golden.tokens;
        assert!(tokens.len() >= 13, "{name}: too few tokens to cut a chunk into regions");
        let long: &[u32] = &tokens.iter().copied().cycle().take(48).collect::<Vec<u32>>();
        for out_type in [OutType::F32, OutType::Q8_0, OutType::Q4_0] {
            let (_, model) = convert_and_open(&fx.dir.join("model.pth"), tmp.path(), out_type);
            for k in kernel_sets() {
                let one_rnn = run_rnn_on(&model, k, tokens, ThreadPool::single());
                let one_seq = run_seq_on(&model, k, tokens, 7, ThreadPool::single());
                let one_long = run_seq_on(&model, k, long, 7, ThreadPool::single());
                for threads in [2, 3] {
                    let pool = ThreadPool::new(threads).unwrap().with_min_split_bytes(0);
                    let what = format!("{name}/{}/{}/{threads} threads", out_type.name(), k.name());
                    let rnn = run_rnn_on(&model, k, tokens, pool.clone());
                    assert!(rnn.logits == one_rnn.logits && rnn.state == one_rnn.state, "{what}: rnn differs");
                    for (chunk, tokens, one) in
                        [(7, &tokens[..], &one_seq), (13, tokens, &one_seq), (64, long, &one_long)]
                    {
                        let seq = run_seq_on(&model, k, tokens, chunk, pool.clone());
                        let same = seq.logits == one.logits && seq.state == one.state;
                        assert!(same, "{what}: seq of {} tokens with chunks of {chunk} differs", tokens.len());
                        // The last token's logits alone (a prompt fed before sampling).
                        let mut runner = rwkv7::Runner::with_pool(&model, k, chunk, pool.clone());
                        let mut last = vec![0.0; model.hparams().vocab];
                        runner.feed(tokens, rwkv7_core::Logits::Last(&mut last)).unwrap();
                        let one_last = &one.logits[one.logits.len() - last.len()..];
                        assert!(last == one_last, "{what}: last logits with chunks of {chunk} differ");
                    }
                }
            }
        }
    }
}

/// The same checkpoint read as an official `.pth`, as Hugging Face safetensors, and as
/// a GGUF written and read back gives bit-identical logits: every route must produce
/// the same f32 weights (bf16 → f32 is exact).
#[test]
fn every_input_route_gives_identical_logits() {
    let fx = Fixture::load("h1_l3_bf16");
    let tmp = tempfile::tempdir().unwrap();
    let k = rwkv7_kernels::KernelSet::SCALAR;
    let tokens = &fx.golden.tokens;
    let (pth_gguf, from_pth) = convert_and_open(&fx.dir.join("model.pth"), tmp.path(), OutType::F32);
    let (_, from_hf) = convert_and_open(&fx.dir.join("hf"), tmp.path(), OutType::F32);
    let (_, from_hf_file) = convert_and_open(&fx.dir.join("hf/model.safetensors"), tmp.path(), OutType::F32);
    let again = tmp.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let (_, from_gguf) = convert_and_open(&pth_gguf, &again, OutType::F32);
    let (_, as_bf16) = convert_and_open(&fx.dir.join("model.pth"), tmp.path(), OutType::BF16);
    let reference = run_seq(&from_pth, k, tokens, 64).logits;
    for (route, model) in
        [("hf dir", &from_hf), ("hf file", &from_hf_file), ("gguf", &from_gguf), ("bf16 gguf", &as_bf16)]
    {
        let logits = run_seq(model, k, tokens, 64).logits;
        assert!(
            logits == reference,
            "{route}: logits differ from the .pth route (max|Δ| {:e})",
            max_abs_diff(&logits, &reference)
        );
    }
}

/// An fp16 checkpoint converted to an f16 GGUF is lossless, so it must still match the
/// official logits within the golden tolerance (this exercises the F16 weight path).
#[test]
fn f16_gguf_of_an_fp16_checkpoint_matches_the_reference() {
    let fx = Fixture::load("h3_l3_fp16");
    let tmp = tempfile::tempdir().unwrap();
    let (_, model) = convert_and_open(&fx.dir.join("model.pth"), tmp.path(), OutType::F16);
    let reference = fx.f32s("logits_seq.f32");
    for k in kernel_sets() {
        let seq = run_seq(&model, k, &fx.golden.tokens, 64);
        check_logits(&format!("h3_l3_fp16/f16/{}", k.name()), &seq.logits, &reference, fx.golden.vocab);
    }
}
