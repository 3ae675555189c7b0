//! The [`StateStore`]: counters that span requests, and nodes.
//!
//! Two operations cover the limits: a GCRA cell (rate with burst, one integer per key: the theoretical
//! arrival time) and a fixed-window counter. Both are atomic per key in each backend: a mutex-guarded map
//! shard in memory, one server-side Lua script (EVALSHA) in Redis, so that two nodes sharing one Redis
//! count exactly. `cost = 0` asks without counting (a limit that counts responses peeks before the
//! request and counts after the response).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store did not answer within {0:?}")]
    Timeout(Duration),
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A GCRA limit in the store's units: one request every `emission`, `tolerance` of slack (burst - 1
/// emissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub emission_us: u64,
    pub tolerance_us: u64,
}

impl Gcra {
    /// `count` requests per `period`, up to `burst` at once.
    pub fn new(count: u64, period: Duration, burst: u64) -> Self {
        let emission_us = (period.as_micros() as u64 / count.max(1)).max(1);
        Gcra {
            emission_us,
            tolerance_us: emission_us.saturating_mul(burst.max(1) - 1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// When denied: how long until one more request would be allowed.
    pub retry_after: Duration,
}

impl Decision {
    pub const ALLOW: Decision = Decision {
        allowed: true,
        retry_after: Duration::ZERO,
    };
}

/// One GCRA step. `tat` is the stored theoretical arrival time (None: never seen), `now` the current time,
/// both in microseconds. Returns the decision and the new TAT to store (None: leave it).
pub fn gcra_step(tat: Option<i64>, now: i64, g: Gcra, cost: u32) -> (Decision, Option<i64>) {
    let tat = tat.unwrap_or(now).max(now);
    let tol = g.tolerance_us as i64;
    if cost == 0 {
        let over = tat - now - tol;
        return if over <= 0 {
            (Decision::ALLOW, None)
        } else {
            (denied(over), None)
        };
    }
    let new_tat = tat + g.emission_us as i64 * i64::from(cost);
    let over = new_tat - now - tol - g.emission_us as i64;
    if over <= 0 {
        (Decision::ALLOW, Some(new_tat))
    } else {
        (denied(over), None)
    }
}

fn denied(over_us: i64) -> Decision {
    Decision {
        allowed: false,
        retry_after: Duration::from_micros(over_us.max(1) as u64),
    }
}

/// An addition to a window counter whose new value nobody waits for (a response counted after the fact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub key: String,
    pub window: Duration,
    pub add: u64,
}

/// Where counters live.
pub trait StateStore: Send + Sync + 'static {
    /// Adds several counts whose answers nobody needs; a store may send them in one round trip.
    fn add_many<'a>(&'a self, counts: &'a [Count]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            for c in counts {
                self.window(&c.key, c.window, c.add).await?;
            }
            Ok(())
        })
    }

    /// Counts `cost` requests (0: only asks) against the GCRA cell `key`.
    fn gcra<'a>(&'a self, key: &'a str, limit: Gcra, cost: u32) -> StoreFuture<'a, Decision>;

    /// Adds `add` (0: only reads) to the counter of the current fixed window of length `window` under
    /// `key`; returns the count after adding and the time left in the window.
    fn window<'a>(&'a self, key: &'a str, window: Duration, add: u64) -> StoreFuture<'a, (u64, Duration)>;

    /// Adds `member` to the set of the current fixed window under `key`; returns how many distinct
    /// members the window holds (exact in memory up to [`DISTINCT_CAP`], HyperLogLog in Redis: within
    /// about 1 %). Credential stuffing (usernames per address) and enumeration (ids per client) count this
    /// way.
    fn distinct<'a>(&'a self, key: &'a str, window: Duration, member: &'a str) -> StoreFuture<'a, u64>;

    /// "memory", "redis", ... for metrics and logs.
    fn kind(&self) -> &'static str;
}

/// Members remembered per distinct-count window in memory; past it the count stops growing (it is far
/// beyond any threshold worth configuring).
pub const DISTINCT_CAP: usize = 4096;

const SHARDS: usize = 32;

enum Cell {
    Tat(i64),
    Window {
        id: u64,
        count: u64,
    },
    Distinct {
        id: u64,
        members: std::collections::HashSet<u64>,
    },
}

struct Entry {
    cell: Cell,
    expires: Instant,
}

/// The in-memory store: sharded maps with expiry and a bound on keys (expired keys are dropped first,
/// then the entries closest to expiry).
pub struct MemoryStore {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    max_per_shard: usize,
    epoch: Instant,
}

impl MemoryStore {
    pub fn new(max_keys: usize) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_per_shard: (max_keys / SHARDS).max(16),
            epoch: Instant::now(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Entry>> {
        // FNV-1a: cheap, and the keys are ours (no hash flooding across shards matters here: each shard is
        // a std HashMap with its own random seed).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }

    fn now_us(&self) -> i64 {
        self.epoch.elapsed().as_micros() as i64
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(&self, map: &mut HashMap<String, Entry>, now: Instant) {
        if map.len() < self.max_per_shard {
            return;
        }
        map.retain(|_, e| e.expires > now);
        if map.len() >= self.max_per_shard {
            let mut by_expiry: Vec<(Instant, String)> = map.iter().map(|(k, e)| (e.expires, k.clone())).collect();
            by_expiry.sort_unstable_by_key(|(t, _)| *t);
            for (_, k) in by_expiry.into_iter().take(self.max_per_shard / 10 + 1) {
                map.remove(&k);
            }
        }
    }

    pub fn gcra_now(&self, key: &str, limit: Gcra, cost: u32) -> Decision {
        let now = Instant::now();
        let now_us = self.now_us();
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let stored = match map.get(key) {
            Some(Entry {
                cell: Cell::Tat(t),
                expires,
            }) if *expires > now => Some(*t),
            _ => None,
        };
        let (d, new_tat) = gcra_step(stored, now_us, limit, cost);
        if let Some(t) = new_tat {
            if !map.contains_key(key) {
                self.make_room(&mut map, now);
            }
            let ttl = Duration::from_micros((t - now_us).max(0) as u64 + 1);
            map.insert(
                key.to_string(),
                Entry {
                    cell: Cell::Tat(t),
                    expires: now + ttl,
                },
            );
        }
        d
    }

    pub fn window_now(&self, key: &str, window: Duration, add: u64) -> (u64, Duration) {
        let now = Instant::now();
        let w = window.as_micros().max(1) as u64;
        let now_us = self.now_us() as u64;
        let id = now_us / w;
        let left = Duration::from_micros(w - now_us % w);
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let current = match map.get(key) {
            Some(Entry {
                cell: Cell::Window { id: i, count },
                ..
            }) if *i == id => *count,
            _ => 0,
        };
        if add == 0 {
            return (current, left);
        }
        if !map.contains_key(key) {
            self.make_room(&mut map, now);
        }
        let count = current + add;
        map.insert(
            key.to_string(),
            Entry {
                cell: Cell::Window { id, count },
                expires: now + left,
            },
        );
        (count, left)
    }
}

impl MemoryStore {
    pub fn distinct_now(&self, key: &str, window: Duration, member: &str) -> u64 {
        let now = Instant::now();
        let w = window.as_micros().max(1) as u64;
        let now_us = self.now_us() as u64;
        let id = now_us / w;
        let left = Duration::from_micros(w - now_us % w);
        let h = {
            use std::hash::{BuildHasher, Hasher};
            // A fixed hasher: the member hashes must agree across calls, not across processes.
            let mut hasher =
                std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            hasher.write(member.as_bytes());
            hasher.finish()
        };
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) {
            self.make_room(&mut map, now);
        }
        let entry = map.entry(key.to_string()).or_insert_with(|| Entry {
            cell: Cell::Distinct {
                id,
                members: Default::default(),
            },
            expires: now + left,
        });
        match &mut entry.cell {
            Cell::Distinct { id: i, members } if *i == id => {
                if members.len() < DISTINCT_CAP {
                    members.insert(h);
                }
                members.len() as u64
            }
            cell => {
                *cell = Cell::Distinct {
                    id,
                    members: std::iter::once(h).collect(),
                };
                entry.expires = now + left;
                1
            }
        }
    }
}

impl StateStore for MemoryStore {
    fn distinct<'a>(&'a self, key: &'a str, window: Duration, member: &'a str) -> StoreFuture<'a, u64> {
        let n = self.distinct_now(key, window, member);
        Box::pin(std::future::ready(Ok(n)))
    }

    fn gcra<'a>(&'a self, key: &'a str, limit: Gcra, cost: u32) -> StoreFuture<'a, Decision> {
        let d = self.gcra_now(key, limit, cost);
        Box::pin(std::future::ready(Ok(d)))
    }

    fn window<'a>(&'a self, key: &'a str, window: Duration, add: u64) -> StoreFuture<'a, (u64, Duration)> {
        let r = self.window_now(key, window, add);
        Box::pin(std::future::ready(Ok(r)))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_burst_then_the_rate() {
        let g = Gcra::new(10, Duration::from_secs(1), 5); // one per 100 ms, 5 at once
        let mut tat = None;
        let now = 1_000_000;
        let mut allowed = 0;
        for _ in 0..20 {
            let (d, t) = gcra_step(tat, now, g, 1);
            if d.allowed {
                allowed += 1;
                tat = t;
            }
        }
        assert_eq!(allowed, 5, "the burst");
        let (d, _) = gcra_step(tat, now, g, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        // 100 ms later exactly one more.
        let later = now + 100_000;
        let (d, t) = gcra_step(tat, later, g, 1);
        assert!(d.allowed);
        assert!(!gcra_step(t, later, g, 1).0.allowed);
        // Peeking never counts.
        for _ in 0..10 {
            assert!(!gcra_step(t, later, g, 0).0.allowed);
        }
        assert!(gcra_step(t, later + 100_000, g, 0).0.allowed);
    }

    #[test]
    fn memory_store_counts_per_key_and_stays_bounded() {
        let s = MemoryStore::new(1000);
        let g = Gcra::new(3, Duration::from_secs(60), 3);
        let allowed = (0..10).filter(|_| s.gcra_now("a", g, 1).allowed).count();
        assert_eq!(allowed, 3);
        assert!(s.gcra_now("b", g, 1).allowed);
        for i in 0..20_000 {
            s.window_now(&format!("k{i}"), Duration::from_secs(60), 1);
        }
        assert!(s.len() <= 1000 + SHARDS, "{}", s.len());
    }

    #[test]
    fn distinct_counts_members_once() {
        let s = MemoryStore::new(100);
        let w = Duration::from_secs(60);
        for i in 0..10 {
            for _ in 0..3 {
                s.distinct_now("ip", w, &format!("user{i}"));
            }
        }
        assert_eq!(s.distinct_now("ip", w, "user0"), 10);
        assert_eq!(s.distinct_now("other", w, "user0"), 1);
    }

    #[test]
    fn windows_count_and_reset() {
        let s = MemoryStore::new(100);
        let w = Duration::from_millis(200);
        // Align to the start of a window so that the counts below fall in one.
        let (_, left) = s.window_now("x", w, 0);
        std::thread::sleep(left);
        assert_eq!(s.window_now("x", w, 1).0, 1);
        assert_eq!(s.window_now("x", w, 2).0, 3);
        assert_eq!(s.window_now("x", w, 0).0, 3);
        std::thread::sleep(w);
        assert_eq!(s.window_now("x", w, 0).0, 0);
    }
}
