//! A state-tuning file changes the logits exactly as the official implementation does when
//! it starts from that state (tests/fixtures/make_state_fixtures.py): the time_state is used
//! without transpose and the token-shift rows start at zero. Also checks that a session saved
//! after the tuned prefix and restored continues with the same logits.

mod common;

use common::{Fixture, LOGIT_TOL, STATE_TOL, check_logits, convert_and_open, kernel_sets, max_abs_diff};
use rwkv7::{LoadedModel, Session, SessionOptions, StateTensor};
use rwkv7_kernels::KernelSet;
use rwkv7_quant::OutType;

const FIXTURE: &str = "h2_l3_fp32";

fn tuned_session<'m>(
    model: &'m LoadedModel,
    kernels: KernelSet,
    chunk: usize,
    fx: &Fixture,
) -> Session<&'m LoadedModel> {
    let tensors =
        rwkv7_quant::pth::read_pth(&fx.dir.join("state_tuning/time_state.pth")).expect("time_state.pth reads");
    let values: Vec<Vec<f32>> = tensors.iter().map(|t| t.to_f32()).collect();
    let views: Vec<StateTensor<'_>> =
        tensors.iter().zip(&values).map(|(t, v)| StateTensor { name: &t.name, shape: &t.shape, data: v }).collect();
    let mut s = Session::with_options(model, SessionOptions { chunk, kernels: Some(kernels), ..Default::default() });
    s.import_state_tuning(&views).expect("the state-tuning file fits the model");
    s
}

#[test]
fn state_tuning_matches_the_official_implementation() {
    let fx = Fixture::load(FIXTURE);
    let vocab = fx.golden.vocab;
    let tokens = &fx.golden.tokens;
    let rnn_ref = fx.f32s("state_tuning/logits_rnn.f32");
    let seq_ref = fx.f32s("state_tuning/logits_seq.f32");
    let state_ref = fx.f32s("state_tuning/state_rnn.f32");
    let zero_ref = fx.f32s("logits_seq.f32");
    // The fixture is meaningful: the tuned state moves the logits far beyond the tolerance.
    assert!(max_abs_diff(&seq_ref, &zero_ref) > 100.0 * LOGIT_TOL);

    let dir = tempfile::tempdir().unwrap();
    let (_, model) = convert_and_open(&fx.dir.join("model.pth"), dir.path(), OutType::F32);
    for kernels in kernel_sets() {
        // RNN mode: one token at a time, logits after each.
        let mut s = tuned_session(&model, kernels, 1, &fx);
        let mut rows = Vec::with_capacity(tokens.len() * vocab);
        for &t in tokens {
            s.prefill_tokens(&[t]).unwrap();
            rows.extend_from_slice(s.last_logits().unwrap());
        }
        let worst = check_logits(&format!("{} rnn", kernels.name()), &rows, &rnn_ref, vocab);
        let state_diff = max_abs_diff(s.state(), &state_ref);
        assert!(state_diff <= STATE_TOL, "{}: final state max|Δ| = {state_diff:e}", kernels.name());
        eprintln!("{}: state-tuned rnn worst {worst:.2e}, state {state_diff:.2e}", kernels.name());

        // Prefill: prefixes through the batched path, compared with the official sequence rows.
        for chunk in [4, 64] {
            let base = tuned_session(&model, kernels, chunk, &fx);
            for cut in [1, 7, tokens.len()] {
                let mut p = base.fork();
                p.prefill_tokens(&tokens[..cut]).unwrap();
                let row = &seq_ref[(cut - 1) * vocab..cut * vocab];
                check_logits(
                    &format!("{} seq chunk {chunk} cut {cut}", kernels.name()),
                    p.last_logits().unwrap(),
                    row,
                    vocab,
                );
            }
        }

        // Save after the first half, restore into a fresh session, continue.
        let half = tokens.len() / 2;
        let mut first = tuned_session(&model, kernels, 64, &fx);
        first.prefill_tokens(&tokens[..half]).unwrap();
        let path = dir.path().join("tuned.state");
        first.save_state(&path).unwrap();
        let mut second =
            Session::with_options(&model, SessionOptions { chunk: 64, kernels: Some(kernels), ..Default::default() });
        second.load_state(&path).unwrap();
        second.prefill_tokens(&tokens[half..]).unwrap();
        let row = &seq_ref[(tokens.len() - 1) * vocab..];
        check_logits(&format!("{} restored", kernels.name()), second.last_logits().unwrap(), row, vocab);
    }
}
