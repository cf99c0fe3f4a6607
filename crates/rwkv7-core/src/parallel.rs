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

/// The work on one part of [`Parallel::for_each_range`]: `(index, start, part)`.
pub type RangeTask<'a> = dyn Fn(usize, usize, &mut [f32]) + Sync + 'a;

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

    /// Calls `task(i, start, part)` for every part `out[start..ends[i]]`, where `start`
    /// is the previous part's end (0 for the first); `ends` ascends and its last entry is
    /// `out.len()`. Parts may be empty. Otherwise as [`Parallel::for_each_part`].
    fn for_each_range(&self, out: &mut [f32], ends: &[usize], task: &RangeTask<'_>);

    /// Runs every task once and returns when all have returned; tasks may run
    /// concurrently, in any order. The default runs them one after another. (Prefill cuts a
    /// chunk's tokens into regions this way, up to four per thread, each task owning its
    /// region's rows; the std pool lets threads claim tasks as they finish one when there
    /// are more tasks than threads.)
    fn run_tasks(&self, tasks: &mut [&mut (dyn FnMut() + Send)]) {
        for task in tasks {
            task();
        }
    }

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

    fn for_each_range(&self, out: &mut [f32], ends: &[usize], task: &RangeTask<'_>) {
        assert!(ends.last() == Some(&out.len()), "for_each_range: the last part must end at the output's end");
        let mut rest = out;
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let (part, tail) = rest.split_at_mut(end - start);
            task(i, start, part);
            (rest, start) = (tail, end);
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
        matvec_group(par, kernels, &[(*w, x)], out);
    } else {
        let per = tokens.div_ceil(parts);
        par.for_each_part(out, per * rows, &|i, part| {
            let (t0, n) = (i * per, part.len() / rows);
            kernels.matmul_rows(w, &x[t0 * cols..(t0 + n) * cols], part, n, 0, rows);
        });
    }
}

/// The most parts [`matvec_group`] cuts its rows into (its part ends live in an array on
/// the stack; a [`Parallel`] that claims parts can keep that many slots on its stack).
pub const MAX_GROUP_PARTS: usize = 64;

/// The smallest part [`matvec_group`] cuts, in weight bytes: about 4 µs of one core's
/// stream, so that claiming a part (an atomic add and a lock, well under a microsecond)
/// stays small beside the work.
const MIN_PART_BYTES: usize = 64 * 1024;

/// Independent one-token products `out_i = w_i · x_i` as one split: their outputs lie back
/// to back in `out` (`w_0`'s rows, then `w_1`'s, ...), and each part takes one contiguous
/// range of those rows. Decode runs the projections that read the same token this way, so
/// that a layer costs a few fork-joins rather than one per matrix.
///
/// The parts are cut by weight bytes ([`part_sizes`]): one large part per thread, then
/// small ones, and threads that implement [`Parallel::for_each_range`] by claiming parts
/// in order (the std pool does) take the next one as they finish: a thread slowed by a
/// busy core or a late start takes fewer small parts, and both finish within about one
/// small part of each other. With a fixed half each, the faster thread waited at every
/// join: in `perf` of a 0.4B q4_k_m decode, spinning took 10.1 % of both threads' samples
/// (6.9 % with the claimed parts; `crates/rwkv7-kernels/KERNELS.md`, "Claimed parts").
///
/// Results are the ones [`KernelSet::matmul`] gives each product alone, whatever the
/// split (the kernels' determinism contract).
pub fn matvec_group(par: &dyn Parallel, kernels: &KernelSet, products: &[(Matrix<'_>, &[f32])], out: &mut [f32]) {
    let rows: usize = products.iter().map(|(w, _)| w.rows()).sum();
    assert_eq!(out.len(), rows, "matvec_group: the output holds every product's rows");
    let bytes: usize = products.iter().map(|(w, _)| w.data().n_bytes()).sum();
    let threads = par.threads();
    if threads <= 1 || bytes < par.min_split_bytes() || rows == 0 {
        group_rows(kernels, products, 0, out);
        return;
    }
    let mut ends = [rows; MAX_GROUP_PARTS];
    let mut parts = 0;
    let (mut product, mut first_row, mut bytes_before) = (0, 0, 0);
    let (first, tail) = part_sizes(bytes, threads);
    let mut target = 0;
    while parts + 1 < MAX_GROUP_PARTS {
        let left = bytes - target;
        let size = if parts < threads { first } else { tail };
        if size >= left {
            break;
        }
        target += size;
        while bytes_before + products[product].0.data().n_bytes() <= target {
            first_row += products[product].0.rows();
            bytes_before += products[product].0.data().n_bytes();
            product += 1;
        }
        // The cut falls inside `product` (the last product's bytes exceed any target):
        // at the row holding the target byte, rounded to a multiple of ROW_ALIGN.
        let w = &products[product].0;
        let row = (target - bytes_before) * w.rows() / w.data().n_bytes();
        let end = first_row + (row + ROW_ALIGN / 2) / ROW_ALIGN * ROW_ALIGN;
        ends[parts] = end.min(first_row + w.rows()).max(if parts == 0 { 0 } else { ends[parts - 1] });
        parts += 1;
    }
    // The last part ends at the last row (`ends` was filled with `rows`).
    parts += 1;
    par.for_each_range(out, &ends[..parts], &|_, start, part| group_rows(kernels, products, start, part));
}

/// The bytes of [`matvec_group`]'s parts: one large part per thread first (together
/// three quarters of the group), then parts of an eighth of a thread's share, at least
/// [`MIN_PART_BYTES`] (or the first parts' size, if smaller), that the threads claim as
/// they finish. Every part costs a kernel call per product it touches (about 0.5 µs:
/// quantizing the token, the call's setup) and a claim; parts that shrank geometrically
/// down to the minimum (10–20 per split) made the 768×768 products 16–19 % slower
/// (criterion `parallel`, `2t/768x768x1`), with two phases about 4 parts are extra.
fn part_sizes(bytes: usize, threads: usize) -> (usize, usize) {
    let first = (bytes * 3 / (4 * threads)).max(1);
    (first, (bytes / (8 * threads)).max(MIN_PART_BYTES.min(first)))
}

/// Rows `start..start + out.len()` of [`matvec_group`]'s concatenated products.
fn group_rows(kernels: &KernelSet, products: &[(Matrix<'_>, &[f32])], start: usize, out: &mut [f32]) {
    let end = start + out.len();
    let mut first_row = 0;
    for (w, x) in products {
        let (lo, hi) = (start.max(first_row), end.min(first_row + w.rows()));
        if lo < hi {
            kernels.matmul_rows(w, x, &mut out[lo - start..hi - start], 1, lo - first_row, hi - lo);
        }
        first_row += w.rows();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::sync::Mutex;
    use std::vec::Vec;

    use rwkv7_kernels::MatrixData;

    use super::*;

    /// Runs parts in order, like [`Sequential`], but claims `threads` threads, splits every
    /// product, and records the parts [`Parallel::for_each_range`] was given.
    struct Recorder {
        threads: usize,
        ranges: Mutex<Vec<(usize, usize)>>,
    }

    impl Parallel for Recorder {
        fn threads(&self) -> usize {
            self.threads
        }
        fn min_split_bytes(&self) -> usize {
            0
        }
        fn for_each_part(&self, out: &mut [f32], part_len: usize, task: &(dyn Fn(usize, &mut [f32]) + Sync)) {
            Sequential.for_each_part(out, part_len, task)
        }
        fn for_each_part_pair(&self, a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, task: &PairTask<'_>) {
            Sequential.for_each_part_pair(a, a_len, b, b_len, task)
        }
        fn for_each_range(&self, out: &mut [f32], ends: &[usize], task: &RangeTask<'_>) {
            Sequential.for_each_range(out, ends, &|i, start, part| {
                self.ranges.lock().unwrap().push((start, part.len()));
                task(i, start, part)
            })
        }
    }

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104729) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn a_group_splits_by_weight_bytes_and_matches_each_product_alone() {
        // Rows of 32, 256 and 32 columns: 128, 1024 and 128 bytes per row (44 KB: the
        // tail parts are as large as the first ones).
        check_group(&[(100, 32), (30, 256), (7, 32)]);
        // 1.5 MB: tail parts of MIN_PART_BYTES.
        check_group(&[(300, 256), (600, 512)]);
    }

    /// [`matvec_group`] over f32 products of `shapes` (rows, columns), recorded for 2, 3
    /// and 5 threads: equal to each product alone, and cut as its docs say.
    fn check_group(shapes: &[(usize, usize)]) {
        let weights: Vec<Vec<f32>> = shapes.iter().enumerate().map(|(i, &(r, c))| values(r * c, i)).collect();
        let inputs: Vec<Vec<f32>> = shapes.iter().enumerate().map(|(i, &(_, c))| values(c, 10 + i)).collect();
        let products: Vec<(Matrix<'_>, &[f32])> = shapes
            .iter()
            .zip(&weights)
            .zip(&inputs)
            .map(|((&(r, c), w), x)| (Matrix::new(MatrixData::F32(w), r, c).unwrap(), x.as_slice()))
            .collect();
        let kernels = KernelSet::SCALAR;
        let mut alone = Vec::new();
        for (w, x) in &products {
            let mut out = std::vec![0.0; w.rows()];
            kernels.matmul(w, x, &mut out, 1);
            alone.extend(out);
        }
        let rows: usize = shapes.iter().map(|s| s.0).sum();
        let bytes_of_row = |row: usize| {
            let mut first = 0;
            for &(r, c) in shapes {
                if row < first + r {
                    return 4 * c;
                }
                first += r;
            }
            0
        };
        let bytes_before = |row: usize| (0..row).map(bytes_of_row).sum::<usize>();
        let total = bytes_before(rows);
        for threads in [2, 3, 5] {
            let par = Recorder { threads, ranges: Mutex::new(Vec::new()) };
            let mut out = std::vec![f32::NAN; rows];
            matvec_group(&par, &kernels, &products, &mut out);
            assert!(out == alone, "{threads} threads: results differ from each product alone");
            let ranges = par.ranges.into_inner().unwrap();
            // The parts follow each other and cover every row.
            let mut next = 0;
            for &(start, len) in &ranges {
                assert_eq!(start, next, "{threads} threads: parts {ranges:?} leave a gap or overlap");
                next = start + len;
            }
            assert_eq!(next, rows, "{threads} threads: the parts end at the last row");
            assert!(ranges.len() > threads, "{threads} threads: {} parts, more than one per thread", ranges.len());
            // Part i ends where the bytes before it reach target_i, each target adding
            // the first parts' size (`threads` of them), then the tail parts' size, moved
            // by the rounding to a multiple of ROW_ALIGN rows: at most half of ROW_ALIGN
            // rows (plus the row the target falls in) of the product the cut lies in.
            let first = total * 3 / (4 * threads);
            let tail = (total / (8 * threads)).max(MIN_PART_BYTES.min(first));
            let mut target = 0;
            for (i, &(start, len)) in ranges[..ranges.len() - 1].iter().enumerate() {
                target += if i < threads { first } else { tail };
                let end = start + len;
                let row_bytes = bytes_of_row(end.saturating_sub(1)).max(bytes_of_row(end));
                let slack = (ROW_ALIGN / 2 + 1) * row_bytes;
                assert!(
                    bytes_before(end).abs_diff(target) <= slack,
                    "{threads} threads: part {i} ends at row {end}, {} bytes in, aiming at {target}",
                    bytes_before(end)
                );
            }
        }
    }
}
