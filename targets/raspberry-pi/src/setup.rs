//! How this board runs the model: the thread count from its big cores and the kernel set
//! the runtime picked, logged once at start.

use rwkv7::{SessionOptions, ThreadPool, select_kernels};

use crate::board::{self, Board};

/// What was chosen for this board.
#[derive(Clone)]
pub struct Choice {
    /// The board.
    pub board: Board,
    /// Threads to run.
    pub threads: usize,
    /// Session options (kernel set, prefill chunk).
    pub options: SessionOptions,
}

/// Detects the board, picks the threads (`requested`, else one per big core) and the
/// kernel set (`kernels`, else `$RWKV7_KERNELS`, else the best for this CPU), and logs
/// them on stderr.
pub fn choose(requested_threads: Option<usize>, kernels: Option<&str>) -> anyhow::Result<Choice> {
    let board = board::detect();
    let threads = requested_threads.unwrap_or_else(|| board.threads(board::available_cpus())).max(1);
    let kernels = select_kernels(kernels).map_err(anyhow::Error::msg)?;
    let mut options = SessionOptions { kernels: Some(kernels), ..SessionOptions::default() };
    let expected = board.expected_kernels().map_or(String::new(), |e| format!(" (expected for these cores: {e})"));
    eprintln!("rwkv7-pi: board: {board}");
    eprintln!("rwkv7-pi: kernels: {}{expected}", kernels.name());
    apply_threads(&mut options, threads);
    Ok(Choice { board, threads, options })
}

/// The one place the thread count goes into the runtime's options: a pool of `threads`
/// workers that every session of this process shares (one thread if the system refuses
/// to start more).
pub fn apply_threads(options: &mut SessionOptions, threads: usize) {
    let pool = ThreadPool::new(threads).unwrap_or_else(|e| {
        eprintln!("rwkv7-pi: cannot start {threads} threads ({e}); running on one");
        ThreadPool::single()
    });
    eprintln!("rwkv7-pi: threads: {}", pool.threads());
    options.pool = Some(pool);
}
