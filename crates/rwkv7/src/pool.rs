//! The thread pool the forward pass splits its matrix products across.
//!
//! The core cuts work into parts ([`rwkv7_core::parallel`]); this runs them on a
//! persistent rayon pool. A forward call runs *inside* the pool (`install`), so splitting
//! a matrix is a local fork-join between warm workers rather than a hand-off from an
//! outside thread: a few microseconds per matrix, measured by `rwkv7 bench`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use rwkv7_core::parallel::{MIN_SPLIT_BYTES, PairTask, RangeTask};
use rwkv7_core::{Parallel, Sequential};

/// Environment variable that sets the default thread count (`0` or unset: all cores).
pub const THREADS_ENV: &str = "RWKV7_THREADS";

/// A shareable handle to a pool of worker threads (cloning shares the pool).
#[derive(Clone)]
pub struct ThreadPool {
    /// `None` for one thread: work runs on the caller's thread, no pool is started.
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: usize,
    min_split_bytes: usize,
    /// Splits run on the worker threads so far, by this pool and its clones.
    fork_joins: Arc<AtomicUsize>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.threads)
    }
}

/// The number of CPUs this process may run on (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ThreadPool {
    /// A pool of `threads` workers; `0` means one per core this process may use.
    /// Fails only when the operating system refuses to start threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = if threads == 0 { available_cores() } else { threads };
        if threads == 1 {
            return Ok(Self::single());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("rwkv7-worker-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(ThreadPool {
            pool: Some(Arc::new(pool)),
            threads,
            min_split_bytes: MIN_SPLIT_BYTES,
            fork_joins: Arc::default(),
        })
    }

    /// No worker threads: everything runs on the calling thread.
    pub fn single() -> Self {
        ThreadPool { pool: None, threads: 1, min_split_bytes: MIN_SPLIT_BYTES, fork_joins: Arc::default() }
    }

    /// The default pool: `$RWKV7_THREADS` threads if set to a number, else one per core.
    /// Falls back to [`ThreadPool::single`] if threads cannot be started.
    pub fn from_env() -> Self {
        let threads = std::env::var(THREADS_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        Self::new(threads).unwrap_or_else(|_| Self::single())
    }

    /// The process-wide default pool: [`ThreadPool::from_env`], started on first use and
    /// shared by every caller after that (clones of one pool). Sessions and runners
    /// created without a pool use it, so an app that opens several sessions runs them on
    /// one set of worker threads instead of starting one per core for each.
    pub fn shared() -> Self {
        static SHARED: std::sync::OnceLock<ThreadPool> = std::sync::OnceLock::new();
        SHARED.get_or_init(Self::from_env).clone()
    }

    /// Whether `self` and `other` run work on the same worker threads (clones of one
    /// pool; two single-thread pools both run on their caller's thread).
    pub fn shares_threads_with(&self, other: &ThreadPool) -> bool {
        match (&self.pool, &other.pool) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The number of threads work is split across.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many splits (fork-joins) this pool and its clones have run on their worker
    /// threads so far: `rwkv7 bench` counts a decode step's this way.
    pub fn fork_joins(&self) -> usize {
        self.fork_joins.load(Ordering::Relaxed)
    }

    /// Runs `f` on the pool (inline when already on one of its workers), counting one
    /// fork-join; `None` without worker threads.
    fn split<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Option<R> {
        let pool = self.pool.as_ref()?;
        self.fork_joins.fetch_add(1, Ordering::Relaxed);
        Some(pool.install(f))
    }

    /// The same pool, splitting every matrix of at least `bytes` bytes (tests use 0 to
    /// exercise the split on small models).
    pub fn with_min_split_bytes(mut self, bytes: usize) -> Self {
        self.min_split_bytes = bytes;
        self
    }

    /// Runs `f` inside the pool, handing it the splitter to pass to
    /// [`rwkv7_core::forward_parallel`].
    pub fn run<R: Send>(&self, f: impl FnOnce(&dyn Parallel) -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(|| f(self)),
            None => f(&Sequential),
        }
    }
}

impl Parallel for ThreadPool {
    fn threads(&self) -> usize {
        self.threads
    }

    fn min_split_bytes(&self) -> usize {
        self.min_split_bytes
    }

    fn for_each_part(&self, out: &mut [f32], part_len: usize, task: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        let part_len = part_len.max(1);
        let run = || out.par_chunks_mut(part_len).enumerate().for_each(|(i, p)| task(i, p));
        if self.split(run).is_none() {
            Sequential.for_each_part(out, part_len, task);
        }
    }

    fn for_each_part_pair(&self, a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, task: &PairTask<'_>) {
        let (a_len, b_len) = (a_len.max(1), b_len.max(1));
        let run = || {
            a.par_chunks_mut(a_len).zip(b.par_chunks_mut(b_len)).enumerate().for_each(|(i, (pa, pb))| task(i, pa, pb))
        };
        if self.split(run).is_none() {
            Sequential.for_each_part_pair(a, a_len, b, b_len, task);
        }
    }

    fn for_each_range(&self, out: &mut [f32], ends: &[usize], task: &RangeTask<'_>) {
        assert!(ends.last() == Some(&out.len()), "for_each_range: the last part must end at the output's end");
        if self.split(|| join_ranges(out, ends, 0, 0, task)).is_none() {
            Sequential.for_each_range(out, ends, task);
        }
    }
}

/// Runs the parts `first..first + ends.len()` of [`Parallel::for_each_range`] by halving
/// them with `rayon::join`; `out` starts at row `start` of the whole output.
fn join_ranges(out: &mut [f32], ends: &[usize], first: usize, start: usize, task: &RangeTask<'_>) {
    match ends {
        [] => {}
        [_] => task(first, start, out),
        _ => {
            let mid = ends.len() / 2;
            let split = ends[mid - 1];
            let (left, right) = out.split_at_mut(split - start);
            rayon::join(
                || join_ranges(left, &ends[..mid], first, start, task),
                || join_ranges(right, &ends[mid..], first + mid, split, task),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_output_once() {
        let pool = ThreadPool::new(3).unwrap();
        let mut out = vec![0.0f32; 40];
        let ends = [0, 7, 7, 20, 33, 40];
        pool.for_each_range(&mut out, &ends, &|i, start, part| {
            let from = if i == 0 { 0 } else { ends[i - 1] };
            assert_eq!((start, part.len()), (from, ends[i] - from));
            part.iter_mut().enumerate().for_each(|(j, v)| *v += (start + j) as f32);
        });
        assert!(out.iter().enumerate().all(|(j, &v)| v == j as f32));
    }

    #[test]
    fn the_shared_pool_is_one_pool() {
        assert!(ThreadPool::shared().shares_threads_with(&ThreadPool::shared()));
        let two = ThreadPool::new(2).unwrap();
        assert!(two.shares_threads_with(&two.clone()));
        assert!(!two.shares_threads_with(&ThreadPool::new(2).unwrap()));
        assert!(!two.shares_threads_with(&ThreadPool::single()));
    }
}
