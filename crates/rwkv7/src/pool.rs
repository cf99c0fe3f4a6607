//! The thread pool the forward pass splits its matrix products across.
//!
//! The core cuts work into parts ([`rwkv7_core::parallel`]); this runs them on a
//! persistent [`micropool`] pool. The calling thread takes part in every split (it runs
//! the first half of each `join` itself), and idle workers spin for a while before they
//! sleep, so a split costs no hand-off to another thread. Decode makes a split every
//! 30–70 µs with short single-threaded steps in between: with rayon (a forward call
//! handed to the pool, workers yielding to the OS between splits) the thread that took
//! the second half started late enough to cost 5–8 % of decode speed (measured in
//! `rwkv7 bench`, `crates/rwkv7-kernels/KERNELS.md`).
//!
//! micropool aborts the process if a task panics; every task here runs under
//! `catch_unwind`, and the panic is raised again on the calling thread once the split
//! has finished, as with rayon.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rwkv7_core::parallel::{MAX_GROUP_PARTS, MIN_SPLIT_BYTES, PairTask, RangeTask};
use rwkv7_core::{Parallel, Sequential};

/// Environment variable that sets the default thread count (`0` or unset: all cores).
pub const THREADS_ENV: &str = "RWKV7_THREADS";

/// The most threads a pool starts. More than the cores only adds hand-offs, and this is
/// above the core count of any phone, Pi or desktop we target; a mistyped `-t 20000` made
/// the operating system refuse the threads' guard pages part-way (thousands of threads,
/// each a few memory maps, reach Linux's `vm.max_map_count`), and the process aborted.
pub const MAX_THREADS: usize = 256;

/// Cycles an idle worker spins, watching for work, before it sleeps: about 30 µs at
/// 3 GHz, longer than the single-threaded steps between a decode step's splits (a few
/// µs) and the greedy pick between two tokens (about 12 µs at a 65536-entry
/// vocabulary), so decode never wakes a sleeping thread; an idle session costs nothing
/// after that. (micropool's default, 3000 cycles, let workers fall asleep between
/// tokens.)
const IDLE_SPIN_CYCLES: usize = 100_000;

/// A shareable handle to a pool of worker threads (cloning shares the pool).
#[derive(Clone)]
pub struct ThreadPool {
    /// `None` for one thread: work runs on the caller's thread, no pool is started.
    /// Otherwise `threads - 1` workers: the caller is the last thread.
    pool: Option<Arc<micropool::ThreadPool>>,
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
    /// Fails when `threads` exceeds [`MAX_THREADS`] or the operating system refuses to
    /// start threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = if threads == 0 { available_cores().min(MAX_THREADS) } else { threads };
        if threads > MAX_THREADS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{threads} threads requested; a pool runs at most {MAX_THREADS}"),
            ));
        }
        if threads == 1 {
            return Ok(Self::single());
        }
        let builder = micropool::ThreadPoolBuilder::default()
            .num_threads(threads - 1)
            .idle_spin_cycles(IDLE_SPIN_CYCLES)
            .spawn_handler(|i, work| {
                std::thread::Builder::new()
                    .name(format!("rwkv7-worker-{i}"))
                    .spawn(work)
                    .expect("the operating system refused to start a worker thread")
            });
        // micropool's builder panics when a thread cannot be started.
        let pool = catch_unwind(AssertUnwindSafe(|| builder.build()))
            .map_err(|_| std::io::Error::other("the operating system refused to start a worker thread"))?;
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

    /// The default pool: `$RWKV7_THREADS` threads if set to a number (at most
    /// [`MAX_THREADS`]), else one per core. Falls back to [`ThreadPool::single`] if threads
    /// cannot be started.
    pub fn from_env() -> Self {
        let threads: usize = std::env::var(THREADS_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        Self::new(threads.min(MAX_THREADS)).unwrap_or_else(|_| Self::single())
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

    /// The same pool, splitting every matrix of at least `bytes` bytes (tests use 0 to
    /// exercise the split on small models).
    pub fn with_min_split_bytes(mut self, bytes: usize) -> Self {
        self.min_split_bytes = bytes;
        self
    }

    /// Runs `f` on the calling thread, handing it the splitter to pass to
    /// [`rwkv7_core::forward_parallel`] (the caller takes part in every split).
    pub fn run<R: Send>(&self, f: impl FnOnce(&dyn Parallel) -> R + Send) -> R {
        match &self.pool {
            Some(_) => f(self),
            None => f(&Sequential),
        }
    }

    /// The worker pool, counting one split; `None` without workers.
    fn split(&self) -> Option<&micropool::ThreadPool> {
        let pool = self.pool.as_deref()?;
        self.fork_joins.fetch_add(1, Ordering::Relaxed);
        Some(pool)
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
        match self.split() {
            Some(pool) => {
                let parts = out.len().div_ceil(part_len);
                run_split(pool, parts, out, &|out, k| out.split_at_mut(k * part_len), task);
            }
            None => Sequential.for_each_part(out, part_len, task),
        }
    }

    fn for_each_part_pair(&self, a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, task: &PairTask<'_>) {
        let (a_len, b_len) = (a_len.max(1), b_len.max(1));
        match self.split() {
            Some(pool) => {
                // As many parts as the shorter side has (the sides are zipped).
                let parts = a.len().div_ceil(a_len).min(b.len().div_ceil(b_len));
                run_split(
                    pool,
                    parts,
                    (a, b),
                    &|(a, b), k| {
                        let ((a_left, a_right), (b_left, b_right)) =
                            (a.split_at_mut(k * a_len), b.split_at_mut(k * b_len));
                        ((a_left, b_left), (a_right, b_right))
                    },
                    &|i, (a, b)| {
                        let (a_end, b_end) = (a_len.min(a.len()), b_len.min(b.len()));
                        task(i, &mut a[..a_end], &mut b[..b_end])
                    },
                );
            }
            None => Sequential.for_each_part_pair(a, a_len, b, b_len, task),
        }
    }

    fn for_each_range(&self, out: &mut [f32], ends: &[usize], task: &RangeTask<'_>) {
        assert!(ends.last() == Some(&out.len()), "for_each_range: the last part must end at the output's end");
        match self.split() {
            // Claimed: its slots live on the stack, as many as the core cuts at most (more
            // run as the static split below).
            Some(pool) if (self.threads + 1..=MAX_GROUP_PARTS).contains(&ends.len()) => {
                claim_ranges(pool, self.threads, out, ends, task)
            }
            Some(pool) => {
                // A range's data: its output, the part ends within it, and its first row.
                run_split(
                    pool,
                    ends.len(),
                    (out, ends, 0),
                    &|(out, ends, start), k| {
                        let split = ends[k - 1];
                        let (left, right) = out.split_at_mut(split - start);
                        ((left, &ends[..k], start), (right, &ends[k..], split))
                    },
                    &|i, (out, _, start)| task(i, start, out),
                );
            }
            None => Sequential.for_each_range(out, ends, task),
        }
    }

    fn run_tasks(&self, tasks: &mut [&mut (dyn FnMut() + Send)]) {
        match self.split() {
            // Claimed: its slots live on the stack, as many as the core cuts at most.
            Some(pool) if (self.threads + 1..=MAX_GROUP_PARTS).contains(&tasks.len()) => {
                claim_tasks(pool, self.threads, tasks)
            }
            Some(pool) => run_split(pool, tasks.len(), tasks, &|tasks, k| tasks.split_at_mut(k), &|_, tasks| {
                if let Some(task) = tasks.first_mut() {
                    task()
                }
            }),
            None => Sequential.run_tasks(tasks),
        }
    }
}

/// [`Parallel::for_each_range`] with more parts than threads, through [`claim_each`].
/// The core cuts the parts large first and smaller towards the end, so the threads finish
/// close together.
fn claim_ranges(pool: &micropool::ThreadPool, threads: usize, out: &mut [f32], ends: &[usize], task: &RangeTask<'_>) {
    let (mut rest, mut start) = (out, 0);
    let parts = ends.iter().map(|&end| {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
        let claimed = (start, part);
        (rest, start) = (tail, end);
        claimed
    });
    claim_each(pool, threads, parts, &|i, (start, part)| task(i, start, part));
}

/// [`Parallel::run_tasks`] with more tasks than threads, through [`claim_each`].
fn claim_tasks(pool: &micropool::ThreadPool, threads: usize, tasks: &mut [&mut (dyn FnMut() + Send)]) {
    claim_each(pool, threads, tasks.iter_mut(), &|_, task| task());
}

/// Runs `run(i, item)` for the first [`MAX_GROUP_PARTS`] items (the callers pass no more):
/// every thread, the caller included, claims the next unclaimed item (in order) until none
/// is left, so a thread that runs slower (a busy core, a late start) takes fewer items
/// instead of holding the others up at the join.
fn claim_each<T: Send>(
    pool: &micropool::ThreadPool,
    threads: usize,
    items: impl IntoIterator<Item = T>,
    run: &(dyn Fn(usize, T) + Sync),
) {
    let mut slots: [Mutex<Option<T>>; MAX_GROUP_PARTS] = std::array::from_fn(|_| Mutex::new(None));
    let mut count = 0;
    for (slot, item) in slots.iter_mut().zip(items) {
        *slot.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(item);
        count += 1;
    }
    let next = AtomicUsize::new(0);
    let claim = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            let claimed = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(item) = claimed {
                run(i, item);
            }
        }
    };
    run_split(pool, threads, (), &|(), _| ((), ()), &|_, ()| claim());
}

/// Where a task's panic waits until its split has finished.
type PanicSlot = Mutex<Option<Box<dyn Any + Send>>>;

/// Runs `parts` parts of a split on `pool` ([`halves`]), then raises the first panic a
/// task raised, once every task has finished.
fn run_split<D: Send>(
    pool: &micropool::ThreadPool,
    parts: usize,
    data: D,
    cut: &(dyn Fn(D, usize) -> (D, D) + Sync),
    leaf: &(dyn Fn(usize, D) + Sync),
) {
    let panic = Mutex::new(None);
    halves(pool, &panic, (0, parts), data, cut, leaf);
    if let Some(payload) = panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        resume_unwind(payload);
    }
}

/// Runs one task, keeping its panic out of micropool (which would abort the process):
/// the first payload is kept for [`run_split`].
fn guarded(panic: &PanicSlot, task: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(task)) {
        panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(payload);
    }
}

/// Runs the parts `first..first + parts` of a split on `pool`: halves them, one half on
/// each side of a `join` (the calling thread takes the first), until a single part is
/// left for `leaf`. `cut(data, k)` cuts a half's data after its first `k` parts.
fn halves<D: Send>(
    pool: &micropool::ThreadPool,
    panic: &PanicSlot,
    (first, parts): (usize, usize),
    data: D,
    cut: &(dyn Fn(D, usize) -> (D, D) + Sync),
    leaf: &(dyn Fn(usize, D) + Sync),
) {
    match parts {
        0 => {}
        1 => guarded(panic, || leaf(first, data)),
        _ => {
            let mid = parts / 2;
            let (left, right) = cut(data, mid);
            pool.join(
                || halves(pool, panic, (first, mid), left, cut, leaf),
                || halves(pool, panic, (first + mid, parts - mid), right, cut, leaf),
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
    fn claimed_ranges_cover_the_output_once() {
        for threads in [2, 3] {
            let pool = ThreadPool::new(threads).unwrap();
            let ends: Vec<usize> = (1..=20).map(|i| i * i).collect();
            let mut out = vec![0.0f32; 400];
            let seen = Mutex::new(Vec::new());
            pool.for_each_range(&mut out, &ends, &|i, start, part| {
                let from = if i == 0 { 0 } else { ends[i - 1] };
                assert_eq!((start, part.len()), (from, ends[i] - from));
                part.iter_mut().enumerate().for_each(|(j, v)| *v += (start + j) as f32);
                seen.lock().unwrap().push(i);
            });
            assert!(out.iter().enumerate().all(|(j, &v)| v == j as f32), "{threads} threads");
            let mut seen = seen.into_inner().unwrap();
            seen.sort_unstable();
            assert_eq!(seen, (0..20).collect::<Vec<_>>(), "{threads} threads: every part once");
        }
    }

    /// Up to 3 threads: 5 tasks are claimed (more tasks than threads), except on 1 thread.
    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads).unwrap();
            let mut runs = [0u32; 5];
            let mut jobs: Vec<_> = runs.iter_mut().map(|n| move || *n += 1).collect();
            let mut tasks: Vec<&mut (dyn FnMut() + Send)> = jobs.iter_mut().map(|j| j as _).collect();
            pool.run_tasks(&mut tasks);
            drop(tasks);
            drop(jobs);
            assert_eq!(runs, [1; 5], "{threads} threads");
        }
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_pool_carries_on() {
        let pool = ThreadPool::new(2).unwrap();
        let mut out = vec![0.0f32; 8];
        for part in [0, 1] {
            let result = catch_unwind(AssertUnwindSafe(|| {
                pool.for_each_range(&mut out, &[4, 8], &|i, _, _| assert_ne!(i, part, "part {part} fails"));
            }));
            let message = result.expect_err("the panic must reach the caller");
            assert!(message.downcast_ref::<String>().is_some_and(|m| m.contains(&format!("part {part} fails"))));
        }
        // The same when threads claim parts (more parts than threads).
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.for_each_range(&mut out, &[2, 4, 6, 8], &|i, _, _| assert_ne!(i, 2, "claimed part fails"));
        }));
        let message = result.expect_err("the panic must reach the caller");
        assert!(message.downcast_ref::<String>().is_some_and(|m| m.contains("claimed part fails")));
        // And when threads claim tasks.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut jobs: Vec<_> = (0..4).map(|i| move || assert_ne!(i, 1, "claimed task fails")).collect();
            let mut tasks: Vec<&mut (dyn FnMut() + Send)> = jobs.iter_mut().map(|j| j as _).collect();
            pool.run_tasks(&mut tasks);
        }));
        let message = result.expect_err("the panic must reach the caller");
        assert!(message.downcast_ref::<String>().is_some_and(|m| m.contains("claimed task fails")));
        let mut pairs = vec![0.0f32; 8];
        pool.for_each_part_pair(&mut out, 4, &mut pairs, 4, &|i, a, b| {
            a.fill(i as f32);
            b.fill(10.0 + i as f32);
        });
        assert_eq!(out, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(pairs, [10.0, 10.0, 10.0, 10.0, 11.0, 11.0, 11.0, 11.0]);
        pool.for_each_part(&mut out, 3, &|i, p| p.fill(i as f32));
        assert_eq!(out, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0]);
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
