//! Worker threads: one single-threaded event loop per core, each with its own listening socket
//! (SO_REUSEPORT) and its own upstream connection pools.
//!
//! Why not tokio's work-stealing runtime: a proxy's work is many small, independent exchanges. Keeping a
//! client connection, its requests and the upstream connections they use on one thread avoids cross-thread
//! wake-ups and cache traffic, which on a busy box cost more than the load imbalance stealing would fix.
//! This is the nginx / Pingora model.

use std::cell::Cell;

thread_local! {
    /// The index of the worker this thread is, if it is one.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The worker index of the calling thread; `None` outside worker threads (the control runtime: health
/// checks, console, reload).
pub fn current() -> Option<usize> {
    WORKER.with(|w| w.get())
}

pub(crate) fn set_current(index: usize) {
    WORKER.with(|w| w.set(Some(index)));
}

/// The number of workers for a configured value (0 = one per available core).
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
