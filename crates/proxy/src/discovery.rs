//! API discovery, off the hot path: the request stage offers a sample of what it forwarded (method,
//! path, query, content type, which credentials were present, the inspected body, the answer's status)
//! to a bounded channel with `try_send`, and one task, reading the channel in batches under load, feeds
//! them to an inventory per API host and writes the inventory to SQLite (`data_dir`/inventory.db) every
//! `flush_interval`, on a blocking thread. A full channel drops the sample and counts it; traffic never
//! waits for discovery.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use rampart_apispec::discovery::{merge_endpoints, Endpoint, Inventory, Observation};
use rampart_apispec::store::InventoryStore;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store, used from blocking threads one save at a time.
type SharedStore = Arc<Mutex<InventoryStore>>;
/// Endpoints per API host.
type Inventories = BTreeMap<String, Vec<Endpoint>>;

/// Samples waiting for the discovery task: room for what a busy gateway forwards between two reads
/// (327,000 requests/s at a read every 25 ms); past it samples are dropped and counted.
const QUEUE: usize = 8192;
/// Under load, how long the discovery task lets its queue fill between two reads.
const DRAIN_EVERY: Duration = Duration::from_millis(25);
/// API hosts with an inventory of their own; past it samples of new hosts are dropped.
const MAX_HOSTS: usize = 64;
/// The most of a request body a sample keeps.
pub const MAX_BODY: usize = 16 * 1024;

/// One forwarded request as discovery sees it.
pub struct Sample {
    pub host: String,
    pub method: http::Method,
    pub path: String,
    pub query: Option<String>,
    /// Content type, and placeholders for the credentials present (never their values).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
    /// The start of the answer's body (text answers only), for sensitive data.
    pub response: Bytes,
    /// The request was found to be an attack: it only counts against a known endpoint.
    pub attack: bool,
}

/// What the discovery task is sent.
enum Msg {
    Sample(Box<Sample>),
    /// Write the inventory now, and say when it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The request stage's end of discovery.
pub struct DiscoveryTap {
    tx: tokio::sync::mpsc::Sender<Msg>,
    /// Requests observed per 1,000.
    per_mille: u64,
    seen: AtomicU64,
    pub dropped: prometheus_client::metrics::counter::Counter,
}

impl DiscoveryTap {
    /// Whether this request is one of the sampled ones.
    pub fn wants(&self) -> bool {
        self.per_mille >= 1000 || self.seen.fetch_add(1, Ordering::Relaxed) % 1000 < self.per_mille
    }

    pub fn offer(&self, s: Sample) {
        if self.tx.try_send(Msg::Sample(Box::new(s))).is_err() {
            self.dropped.inc();
        }
    }

    /// Writes the inventory now (at shutdown); false when it was not written within `within`.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, written) = tokio::sync::oneshot::channel();
        let asked = async { self.tx.send(Msg::Flush(done)).await.is_ok() && written.await.is_ok() };
        tokio::time::timeout(within, asked).await.unwrap_or(false)
    }

    /// A reader of the answer (see [`crate::body::AnswerTap`]) that offers the sample with the
    /// answer's start once the answer has ended.
    pub fn answer_reader(&self, mut sample: Sample) -> crate::body::AnswerReader {
        let (tx, dropped) = (self.tx.clone(), self.dropped.clone());
        Box::new(move |body: &[u8], _complete: bool| {
            sample.response = Bytes::copy_from_slice(&body[..body.len().min(MAX_BODY)]);
            if tx.try_send(Msg::Sample(Box::new(sample))).is_err() {
                dropped.inc();
            }
        })
    }
}

/// What of the request headers discovery keeps: the content type, and which credentials were sent
/// (the scheme of `Authorization`, the names of API-key headers, whether there were cookies).
pub fn redacted_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(ct) = h.get(http::header::CONTENT_TYPE) {
        out.insert(http::header::CONTENT_TYPE, ct.clone());
    }
    if let Some(a) = h.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let scheme = a.split_whitespace().next().unwrap_or("-");
        if let Ok(v) = HeaderValue::from_str(&format!("{scheme} -")) {
            out.insert(http::header::AUTHORIZATION, v);
        }
    }
    for name in ["x-api-key", "api-key", "x-auth-token", "x-access-token", "cookie"] {
        if h.contains_key(name) {
            out.insert(name, HeaderValue::from_static("-"));
        }
    }
    out
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts the discovery task; the tap goes to the request stage. The store is opened (and what it holds
/// loaded) on a blocking thread; when it cannot be opened, discovery runs in memory and says so.
pub fn start(
    store: PathBuf,
    sample: f64,
    flush_interval: Duration,
    dropped: prometheus_client::metrics::counter::Counter,
) -> DiscoveryTap {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    tokio::spawn(run(rx, store, flush_interval));
    DiscoveryTap {
        tx,
        per_mille: (sample * 1000.0).round() as u64,
        seen: AtomicU64::new(0),
        dropped,
    }
}

async fn run(mut rx: tokio::sync::mpsc::Receiver<Msg>, path: PathBuf, flush_interval: Duration) {
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let store = InventoryStore::open(&path)?;
            let before = store.load()?;
            Ok::<_, rampart_apispec::store::StoreError>((store, before))
        })
        .await
    };
    let (store, before): (Option<SharedStore>, Inventories) = match opened {
        Ok(Ok((s, b))) => (Some(Arc::new(Mutex::new(s))), b),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "API inventory is not persisted");
            (None, BTreeMap::new())
        }
        Err(e) => {
            tracing::warn!(error = %e, "API inventory is not persisted");
            (None, BTreeMap::new())
        }
    };
    let mut state = State {
        store,
        before,
        live: HashMap::new(),
        changed: false,
        flushed: tokio::time::Instant::now(),
    };
    loop {
        // Idle: wait for a sample, or for the time to save what is not saved yet.
        let first = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            _ = tokio::time::sleep_until(state.flushed + flush_interval), if state.changed => {
                state.save().await;
                continue;
            }
        };
        state.take(first).await;
        // Busy: let the queue fill for a moment, then take all of it. A task waiting in `recv` is woken
        // by every send, a thread switch per request on a busy gateway (about a tenth of the small-GET
        // throughput on two cores); reading in batches makes it one per DRAIN_EVERY.
        // At most a queue's worth per round, so that senders as fast as the task cannot keep it from
        // saving or from yielding its thread.
        tokio::time::sleep(DRAIN_EVERY).await;
        for _ in 0..QUEUE {
            let Ok(msg) = rx.try_recv() else { break };
            state.take(msg).await;
        }
        if state.changed && state.flushed.elapsed() >= flush_interval {
            state.save().await;
        }
    }
    if state.changed {
        state.save().await;
    }
}

/// The discovery task's inventories, and what of them is saved.
struct State {
    store: Option<SharedStore>,
    /// What the store held at start, merged into every save.
    before: Inventories,
    live: HashMap<String, Inventory>,
    /// Observed since the last save.
    changed: bool,
    flushed: tokio::time::Instant,
}

impl State {
    async fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Flush(done) => {
                if self.changed {
                    self.save().await;
                }
                let _ = done.send(());
            }
            Msg::Sample(s) if s.attack => {
                if let Some(inv) = self.live.get_mut(&s.host) {
                    inv.observe_attack(s.method.as_str(), &s.path);
                    self.changed = true;
                }
            }
            Msg::Sample(s) => {
                if !self.live.contains_key(&s.host) && self.live.len() >= MAX_HOSTS {
                    return;
                }
                self.live.entry(s.host.clone()).or_default().observe(&Observation {
                    method: s.method.as_str(),
                    path: &s.path,
                    query: s.query.as_deref(),
                    headers: &s.headers,
                    body: &s.body,
                    status: s.status,
                    response: &s.response,
                    at: now(),
                });
                self.changed = true;
            }
        }
    }

    /// Writes the inventories, merged with what the store held at start, on a blocking thread; in
    /// memory only when the store could not be opened.
    async fn save(&mut self) {
        self.changed = false;
        self.flushed = tokio::time::Instant::now();
        let Some(store) = self.store.clone() else { return };
        let snapshot: Vec<(String, Vec<Endpoint>)> = self
            .live
            .iter()
            .map(|(host, inv)| {
                let old = self.before.get(host).map(Vec::as_slice).unwrap_or_default();
                (host.clone(), merge_endpoints(old, inv.endpoints()))
            })
            .collect();
        let saved = tokio::task::spawn_blocking(move || {
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            for (host, endpoints) in &snapshot {
                s.save(host, endpoints)?;
            }
            Ok::<_, rampart_apispec::store::StoreError>(())
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "API inventory not saved");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_kept_as_their_kind_only() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer eyJhbGciOi.secret.sig"),
        );
        h.insert("x-api-key", HeaderValue::from_static("sk_live_123"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-other", HeaderValue::from_static("kept out"));
        let r = redacted_headers(&h);
        assert_eq!(r["authorization"], "Bearer -");
        assert_eq!(r["x-api-key"], "-");
        assert_eq!(r["content-type"], "application/json");
        assert_eq!(r.len(), 3);
    }
}
