//! A store with a deadline: every decision answers within the configured timeout (default 5 ms), whatever
//! the shared store does.
//!
//! When the shared store fails or is late, the decision falls back by `on_error` (decide on this node's
//! memory, allow, or deny). An error, or late answers with none in time for a while, open a breaker that keeps the next
//! decisions off the shared store for a short while, so an outage costs a few timeouts, not one per
//! request. After the pause one decision probes the store again;
//! when it answers, decisions go back to it.

use crate::store::{Count, Decision, Gcra, MemoryStore, StateStore, StoreError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rampart_policy::guard::OnStoreError;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long decisions stay off the shared store after it failed.
const BREAKER_PAUSE: Duration = Duration::from_millis(500);

/// How long the store may go without an answer in time before late answers open the breaker, in
/// decision timeouts (and at least `MIN_SILENCE`). A late answer while others arrive in time is a
/// scheduling hiccup on a loaded host, not an outage: pausing the store for each moved a third of the
/// decisions to the fallback (docs/benchmarks.md). An error (refused, reset) opens the breaker at once.
const SILENCE_TIMEOUTS: u32 = 4;
const MIN_SILENCE: Duration = Duration::from_millis(20);

#[derive(Default)]
pub struct GuardMetrics {
    /// Decisions by store answer: `store` (the shared store answered), `fallback` (it did not).
    pub decisions: Family<[(&'static str, &'static str); 1], Counter>,
    pub store_errors: Counter,
    /// Failed publishes and pulls of the fleet's bans.
    pub ban_sync_errors: Counter,
}

impl GuardMetrics {
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Arc::new(GuardMetrics::default());
        registry.register(
            "rampart_state_decisions",
            "Limit decisions by where they were decided (store, fallback)",
            m.decisions.clone(),
        );
        registry.register(
            "rampart_state_store_errors",
            "Shared state store failures and timeouts",
            m.store_errors.clone(),
        );
        registry.register(
            "rampart_bans_sync_errors",
            "Failed publishes and pulls of the fleet's bans through the shared store",
            m.ban_sync_errors.clone(),
        );
        m
    }
}

/// Counts waiting for the flusher; past this, counts are kept on this node (the fallback's store).
const COUNT_QUEUE: usize = 65_536;
/// The most counts sent to the store in one round trip.
const COUNT_BATCH: usize = 1024;

pub struct Guarded {
    shared: Option<Arc<dyn StateStore>>,
    local: Arc<MemoryStore>,
    /// Counts that need no answer, on their way to the flusher (see [`Guarded::count`]).
    counts: Option<tokio::sync::mpsc::Sender<Count>>,
    timeout: Duration,
    on_error: OnStoreError,
    /// Microseconds since `epoch` until which the shared store is skipped.
    paused_until: AtomicI64,
    /// When the store last answered in time (microseconds since `epoch`).
    last_answer_us: AtomicI64,
    epoch: Instant,
    metrics: Arc<GuardMetrics>,
}

/// A decision and where it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<T> {
    pub value: T,
    /// The shared store did not answer; the fallback decided.
    pub fallback: bool,
}

impl Guarded {
    /// `shared`: None for the memory backend (the local store is then the store).
    pub fn new(
        shared: Option<Arc<dyn StateStore>>,
        max_keys: usize,
        timeout: Duration,
        on_error: OnStoreError,
        metrics: Arc<GuardMetrics>,
    ) -> Self {
        let local = Arc::new(MemoryStore::new(max_keys));
        let counts = match (&shared, tokio::runtime::Handle::try_current()) {
            (Some(store), Ok(rt)) => {
                let (tx, rx) = tokio::sync::mpsc::channel(COUNT_QUEUE);
                rt.spawn(flush_counts(store.clone(), rx, local.clone(), metrics.clone()));
                Some(tx)
            }
            _ => None,
        };
        Guarded {
            shared,
            local,
            counts,
            timeout,
            on_error,
            paused_until: AtomicI64::new(0),
            // Never: a store that has not answered yet gets no grace.
            last_answer_us: AtomicI64::new(i64::MIN / 2),
            epoch: Instant::now(),
            metrics,
        }
    }

    pub fn memory(max_keys: usize) -> Self {
        Self::new(
            None,
            max_keys,
            Duration::from_millis(5),
            OnStoreError::Local,
            Arc::new(GuardMetrics::default()),
        )
    }

    pub fn on_error(&self) -> OnStoreError {
        self.on_error
    }

    pub fn kind(&self) -> &'static str {
        self.shared.as_ref().map_or("memory", |s| s.kind())
    }

    fn now_us(&self) -> i64 {
        self.epoch.elapsed().as_micros() as i64
    }

    /// The shared store, unless there is none or the breaker holds it off.
    fn usable(&self) -> Option<&Arc<dyn StateStore>> {
        let s = self.shared.as_ref()?;
        (self.now_us() >= self.paused_until.load(Ordering::Relaxed)).then_some(s)
    }

    fn failed(&self, e: &StoreError) {
        self.metrics.store_errors.inc();
        if matches!(e, StoreError::Timeout(_)) {
            let silence = (self.timeout * SILENCE_TIMEOUTS).max(MIN_SILENCE).as_micros() as i64;
            if self.now_us() - self.last_answer_us.load(Ordering::Relaxed) < silence {
                return;
            }
        }
        let until = self.now_us() + BREAKER_PAUSE.as_micros() as i64;
        let before = self.paused_until.swap(until, Ordering::Relaxed);
        if before <= self.now_us() - BREAKER_PAUSE.as_micros() as i64 {
            tracing::warn!(error = %e, fallback = ?self.on_error, "state store failed; deciding without it for now");
        }
    }

    fn answered(&self) {
        // At most one write per millisecond to the shared cache line, whatever the decision rate.
        let now = self.now_us();
        if now - self.last_answer_us.load(Ordering::Relaxed) > 1000 {
            self.last_answer_us.store(now, Ordering::Relaxed);
        }
    }

    /// Adds to a window counter without waiting for the store (responses counted after the fact: failed
    /// logins, 404 runs, codes sent). Counts queue for a flusher that sends whatever accumulated in one
    /// pipeline while the previous one was in flight: one round trip for many counts under load, none
    /// per count. When the store is away or the queue is full they are counted on this node instead.
    pub fn count(&self, key: &str, window: Duration, add: u64) {
        if let (Some(tx), Some(_)) = (&self.counts, self.usable()) {
            let c = Count {
                key: key.to_string(),
                window,
                add,
            };
            if tx.try_send(c).is_ok() {
                return;
            }
            self.tally("fallback");
        } else if self.shared.is_some() {
            self.tally("fallback");
        }
        self.local.window_now(key, window, add);
    }

    fn tally(&self, where_: &'static str) {
        self.metrics.decisions.get_or_create(&[("decided_by", where_)]).inc();
    }

    pub async fn gcra(&self, key: &str, limit: Gcra, cost: u32) -> Answer<Decision> {
        if let Some(s) = self.usable() {
            let r = tokio::time::timeout(self.timeout, s.gcra(key, limit, cost)).await;
            match r.unwrap_or(Err(StoreError::Timeout(self.timeout))) {
                Ok(d) => {
                    self.answered();
                    self.tally("store");
                    return Answer {
                        value: d,
                        fallback: false,
                    };
                }
                Err(e) => self.failed(&e),
            }
        } else if self.shared.is_none() {
            self.tally("memory");
            return Answer {
                value: self.local.gcra_now(key, limit, cost),
                fallback: false,
            };
        }
        self.tally("fallback");
        let value = match self.on_error {
            OnStoreError::Local => self.local.gcra_now(key, limit, cost),
            OnStoreError::Open => Decision::ALLOW,
            OnStoreError::Closed => Decision {
                allowed: false,
                retry_after: BREAKER_PAUSE,
            },
        };
        Answer { value, fallback: true }
    }

    /// Window counter; `None` count in the answer means "denied by a closed store".
    pub async fn window(&self, key: &str, window: Duration, add: u64) -> Answer<Option<(u64, Duration)>> {
        if let Some(s) = self.usable() {
            let r = tokio::time::timeout(self.timeout, s.window(key, window, add)).await;
            match r.unwrap_or(Err(StoreError::Timeout(self.timeout))) {
                Ok(v) => {
                    self.answered();
                    self.tally("store");
                    return Answer {
                        value: Some(v),
                        fallback: false,
                    };
                }
                Err(e) => self.failed(&e),
            }
        } else if self.shared.is_none() {
            self.tally("memory");
            return Answer {
                value: Some(self.local.window_now(key, window, add)),
                fallback: false,
            };
        }
        self.tally("fallback");
        let value = match self.on_error {
            OnStoreError::Local => Some(self.local.window_now(key, window, add)),
            OnStoreError::Open => Some((0, window)),
            OnStoreError::Closed => None,
        };
        Answer { value, fallback: true }
    }
}

impl Guarded {
    /// Distinct members in the window; `None` means "denied by a closed store".
    pub async fn distinct(&self, key: &str, window: Duration, member: &str) -> Answer<Option<u64>> {
        if let Some(s) = self.usable() {
            let r = tokio::time::timeout(self.timeout, s.distinct(key, window, member)).await;
            match r.unwrap_or(Err(StoreError::Timeout(self.timeout))) {
                Ok(v) => {
                    self.answered();
                    self.tally("store");
                    return Answer {
                        value: Some(v),
                        fallback: false,
                    };
                }
                Err(e) => self.failed(&e),
            }
        } else if self.shared.is_none() {
            self.tally("memory");
            return Answer {
                value: Some(self.local.distinct_now(key, window, member)),
                fallback: false,
            };
        }
        self.tally("fallback");
        let value = match self.on_error {
            OnStoreError::Local => Some(self.local.distinct_now(key, window, member)),
            OnStoreError::Open => Some(0),
            OnStoreError::Closed => None,
        };
        Answer { value, fallback: true }
    }
}

/// Sends queued counts to the store, as many as accumulated (up to [`COUNT_BATCH`]) in one call, same
/// keys merged. A batch the store refuses or does not take within a second is counted on this node.
async fn flush_counts(
    store: Arc<dyn StateStore>,
    mut rx: tokio::sync::mpsc::Receiver<Count>,
    local: Arc<MemoryStore>,
    metrics: Arc<GuardMetrics>,
) {
    let mut merged: std::collections::HashMap<(String, Duration), u64> = std::collections::HashMap::new();
    while let Some(first) = rx.recv().await {
        merged.insert((first.key, first.window), first.add);
        while merged.len() < COUNT_BATCH {
            match rx.try_recv() {
                Ok(c) => *merged.entry((c.key, c.window)).or_default() += c.add,
                Err(_) => break,
            }
        }
        let batch: Vec<Count> = merged
            .drain()
            .map(|((key, window), add)| Count { key, window, add })
            .collect();
        let sent = tokio::time::timeout(Duration::from_secs(1), store.add_many(&batch)).await;
        if !matches!(sent, Ok(Ok(()))) {
            metrics.store_errors.inc();
            for c in &batch {
                local.window_now(&c.key, c.window, c.add);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreFuture;

    /// A store that never answers.
    struct Hung;
    impl StateStore for Hung {
        fn gcra<'a>(&'a self, _: &'a str, _: Gcra, _: u32) -> StoreFuture<'a, Decision> {
            Box::pin(std::future::pending())
        }
        fn window<'a>(&'a self, _: &'a str, _: Duration, _: u64) -> StoreFuture<'a, (u64, Duration)> {
            Box::pin(std::future::pending())
        }
        fn distinct<'a>(&'a self, _: &'a str, _: Duration, _: &'a str) -> StoreFuture<'a, u64> {
            Box::pin(std::future::pending())
        }
        fn kind(&self) -> &'static str {
            "hung"
        }
    }

    #[tokio::test]
    async fn a_hung_store_costs_one_timeout_then_the_fallback_decides() {
        let g = Gcra::new(2, Duration::from_secs(60), 2);
        for (mode, allowed_of_5) in [
            (OnStoreError::Local, 2),
            (OnStoreError::Open, 5),
            (OnStoreError::Closed, 0),
        ] {
            let store = Guarded::new(
                Some(Arc::new(Hung)),
                100,
                Duration::from_millis(5),
                mode,
                Arc::new(GuardMetrics::default()),
            );
            let t = Instant::now();
            let mut allowed = 0;
            for _ in 0..5 {
                let a = store.gcra("k", g, 1).await;
                assert!(a.fallback);
                allowed += usize::from(a.value.allowed);
            }
            assert_eq!(allowed, allowed_of_5, "{mode:?}");
            assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
            assert_eq!(
                store.metrics.store_errors.get(),
                1,
                "a store that never answered: the first timeout opens the breaker"
            );
        }
    }

    /// A store that answers late every other time.
    struct Flaky(std::sync::atomic::AtomicU32);
    impl StateStore for Flaky {
        fn gcra<'a>(&'a self, _: &'a str, _: Gcra, _: u32) -> StoreFuture<'a, Decision> {
            let late = self.0.fetch_add(1, Ordering::Relaxed) % 2 == 1;
            Box::pin(async move {
                if late {
                    std::future::pending::<()>().await;
                }
                Ok(Decision::ALLOW)
            })
        }
        fn window<'a>(&'a self, _: &'a str, _: Duration, _: u64) -> StoreFuture<'a, (u64, Duration)> {
            Box::pin(std::future::pending())
        }
        fn distinct<'a>(&'a self, _: &'a str, _: Duration, _: &'a str) -> StoreFuture<'a, u64> {
            Box::pin(std::future::pending())
        }
        fn kind(&self) -> &'static str {
            "flaky"
        }
    }

    #[tokio::test]
    async fn an_occasional_late_answer_does_not_open_the_breaker() {
        let store = Guarded::new(
            Some(Arc::new(Flaky(std::sync::atomic::AtomicU32::new(0)))),
            100,
            Duration::from_millis(2),
            OnStoreError::Local,
            Arc::new(GuardMetrics::default()),
        );
        let g = Gcra::new(1000, Duration::from_secs(1), 1000);
        let mut from_store = 0;
        for _ in 0..20 {
            from_store += usize::from(!store.gcra("k", g, 1).await.fallback);
        }
        assert_eq!(from_store, 10, "every answer in time was used");
        assert_eq!(store.metrics.store_errors.get(), 10);
    }

    #[tokio::test]
    async fn counts_reach_the_store_in_batches_and_stay_local_when_it_is_away() {
        // A memory store standing in for Redis as the shared store.
        let shared = Arc::new(MemoryStore::new(1000));
        let g = Guarded::new(
            Some(shared.clone()),
            1000,
            Duration::from_millis(50),
            OnStoreError::Local,
            Arc::new(GuardMetrics::default()),
        );
        let w = Duration::from_secs(60);
        for _ in 0..500 {
            g.count("failed:{ada}", w, 1);
            g.count("failed:{bob}", w, 2);
        }
        for _ in 0..100 {
            if shared.window_now("failed:{bob}", w, 0).0 == 1000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(shared.window_now("failed:{ada}", w, 0).0, 500);
        assert_eq!(shared.window_now("failed:{bob}", w, 0).0, 1000);
        assert_eq!(g.local.window_now("failed:{ada}", w, 0).0, 0, "nothing stayed local");

        // A store that never answers: after its timeout the batch is counted on this node.
        let g = Guarded::new(
            Some(Arc::new(Hung)),
            1000,
            Duration::from_millis(5),
            OnStoreError::Local,
            Arc::new(GuardMetrics::default()),
        );
        g.count("k", w, 3);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(g.local.window_now("k", w, 0).0, 3);
        assert_eq!(g.metrics.store_errors.get(), 1);
    }
}
