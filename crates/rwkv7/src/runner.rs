//! A model plus the memory one stream of tokens needs: state and scratch.

use rwkv7_core::{ForwardError, KernelSet, Logits, Model, State, forward_parallel, scratch_len};

use crate::{LoadedModel, ThreadPool};

/// Default number of tokens per prefill chunk: large enough that the projections run as
/// real matrix products, small enough that scratch stays a few MB even at C = 2560.
pub const DEFAULT_CHUNK: usize = 64;

/// The largest prefill chunk a runner or session takes (larger requests are cut to it):
/// its scratch at the largest released shape (2.9B, C = 2560) is about 190 MB, and
/// prefill gains nothing from chunks beyond a few hundred tokens (the weights are read
/// once per chunk, and a chunk of 64 already makes prefill compute-bound). Unbounded, a
/// mistyped `--chunk` asked for terabytes and aborted the process.
pub const MAX_CHUNK: usize = 1024;

/// Runs tokens through a model, keeping the recurrent state between calls.
pub struct Runner<'m> {
    model: Model<'m>,
    kernels: KernelSet,
    pool: ThreadPool,
    state: Vec<f32>,
    scratch: Vec<f32>,
}

impl<'m> Runner<'m> {
    /// A runner at the zero state, processing up to `chunk` tokens per forward step
    /// (1 to [`MAX_CHUNK`]; other values are clamped to that range), on the process-wide
    /// pool ([`ThreadPool::shared`]).
    pub fn new(loaded: &'m LoadedModel, kernels: KernelSet, chunk: usize) -> Self {
        Self::with_pool(loaded, kernels, chunk, ThreadPool::shared())
    }

    /// As [`Runner::new`], on `pool`'s threads.
    pub fn with_pool(loaded: &'m LoadedModel, kernels: KernelSet, chunk: usize, pool: ThreadPool) -> Self {
        let model = loaded.model();
        let state = vec![0.0; model.hparams().state_len()];
        let scratch = vec![0.0; scratch_len(&model, chunk.clamp(1, MAX_CHUNK))];
        Runner { model, kernels, pool, state, scratch }
    }

    /// The threads the forward pass runs on.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// The model.
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Feeds `tokens`, writing the logits the caller asked for.
    pub fn feed(&mut self, tokens: &[u32], logits: Logits<'_>) -> Result<(), ForwardError> {
        let hp = *self.model.hparams();
        let found = self.state.len();
        let mut state =
            State::new(&hp, &mut self.state).ok_or(ForwardError::StateSize { expected: hp.state_len(), found })?;
        let (model, kernels, scratch) = (&self.model, &self.kernels, &mut self.scratch);
        self.pool.run(|par| forward_parallel(model, kernels, par, &mut state, tokens, scratch, logits))
    }

    /// Logits for every token, computed one token at a time (RNN mode): `T × V`.
    pub fn logits_rnn(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ForwardError> {
        let vocab = self.model.hparams().vocab;
        let mut out = vec![0.0; tokens.len() * vocab];
        for (row, &tok) in out.chunks_mut(vocab).zip(tokens) {
            self.feed(&[tok], Logits::Last(row))?;
        }
        Ok(out)
    }

    /// Logits for every token through the batched prefill path (sequence mode): `T × V`.
    pub fn logits_seq(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ForwardError> {
        let mut out = vec![0.0; tokens.len() * self.model.hparams().vocab];
        self.feed(tokens, Logits::All(&mut out))?;
        Ok(out)
    }

    /// The recurrent state (layout: see [`rwkv7_core::State`]).
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// Back to the zero state.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
    }
}
