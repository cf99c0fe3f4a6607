//! Work splitting for the forward pass. The core itself never starts a thread: it cuts
//! each large matrix product into independent parts and hands them to a [`Parallel`],
//! which the caller implements (the std crate runs the parts on a persistent pool;
//! [`Sequential`] runs them one after another).
//!
//! Results do not depend on the split: every kernel computes an output `(token, row)`
//! with the same operations whatever the row range and token count of its call (the
//! kernels' determinism contract), so 1 and N threads give bit-identical logits.

use rwkv7_kernels::{KernelSet, Matrix};

/// The work on one pair of parts of [`Parallel::for_each_part_pair`].
pub type PairTask<'a> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'a;

/// Runs the parts of one split operation, possibly concurrently.
pub trait Parallel: Sync {
    /// How many parts to cut work into (at least 1; normally the number of threads).
    fn threads(&self) -> usize;

    /// Calls `task(i, part)` for every `part` of `out.chunks_mut(part_len)`, `i` being
    /// the part's index, and returns once every call has returned. Calls may run
    /// concurrently, in any order.
    fn for_each_part(&self, out: &mut [f32], part_len: usize, task: &(dyn Fn(usize, &mut [f32]) + Sync));

    /// Calls `task(i, a_part, b_part)` for every pair of parts of
    /// `a.chunks_mut(a_len)` and `b.chunks_mut(b_len)` (equal in number), `i` being the
    /// parts' index; otherwise as [`Parallel::for_each_part`].
    fn for_each_part_pair(&self, a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, task: &PairTask<'_>);

    /// Matrices of fewer bytes run unsplit (default [`MIN_SPLIT_BYTES`]; tests lower it
    /// to split every matrix).
    fn min_split_bytes(&self) -> usize {
        MIN_SPLIT_BYTES
    }
}

/// Runs every part on the calling thread, in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl Parallel for Sequential {
    fn threads(&self) -> usize {
        1
    }

    fn for_each_part(&self, out: &mut [f32], part_len: usize, task: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        for (i, part) in out.chunks_mut(part_len.max(1)).enumerate() {
            task(i, part);
        }
    }

    fn for_each_part_pair(&self, a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, task: &PairTask<'_>) {
        for (i, (pa, pb)) in a.chunks_mut(a_len.max(1)).zip(b.chunks_mut(b_len.max(1))).enumerate() {
            task(i, pa, pb);
        }
    }
}

/// Products that read fewer weight bytes than this, summed over their tokens, run on one
/// thread: a fork-join costs about 0.3 µs on a warm pool (`rwkv7 bench` reports it),
/// reading 48 KiB about 3 µs on one core. In decode the smallest LoRAs of the released
/// models (26 KiB at 0.1B) stay whole and the others (50–200 KiB) split; in a prefill
/// chunk every product splits. Lowered from 128 KiB after timing a decode step's parts
/// (0.1B q4_0, 2 threads): the unsplit LoRAs took 7 % of it with the second thread idle;
/// at 48 KiB they take 1 % and the step is 5–8 % shorter (16 KiB was no better).
pub const MIN_SPLIT_BYTES: usize = 48 * 1024;

/// Output rows per part are a multiple of this, so no part splits a kernel's row tile
/// (tiles are at most 8 rows) and parts start on a cache line of the output.
const ROW_ALIGN: usize = 16;

/// `out = x · wᵀ` for `tokens` rows of `x` (shapes as [`KernelSet::matmul`]), split
/// across `par`:
/// - one token (decode): by output rows, so each thread reads its share of the weights;
/// - several tokens (prefill): by tokens, so each thread's outputs are contiguous and
///   the weights, swept by both threads at about the same time, come from the shared cache.
pub fn matmul(par: &dyn Parallel, kernels: &KernelSet, w: &Matrix<'_>, x: &[f32], out: &mut [f32], tokens: usize) {
    let parts = par.threads();
    let (rows, cols) = (w.rows(), w.cols());
    let work = w.data().n_bytes().saturating_mul(tokens);
    if parts <= 1 || work < par.min_split_bytes() || tokens == 0 || rows == 0 {
        kernels.matmul(w, x, out, tokens);
    } else if tokens == 1 {
        let per = rows.div_ceil(parts).next_multiple_of(ROW_ALIGN);
        par.for_each_part(out, per, &|i, part| {
            kernels.matmul_rows(w, x, part, 1, i * per, part.len());
        });
    } else {
        let per = tokens.div_ceil(parts);
        par.for_each_part(out, per * rows, &|i, part| {
            let (t0, n) = (i * per, part.len() / rows);
            kernels.matmul_rows(w, &x[t0 * cols..(t0 + n) * cols], part, n, 0, rows);
        });
    }
}
