//! Upstream pools: targets, connection pools, balancing, active health checks and passive ejection.
//!
//! A pool outlives config reloads when its definition does not change, so health state and warm
//! connections survive a reload; a changed definition gets a fresh pool and the old one is dropped when the
//! last in-flight request that uses it finishes (its health task stops with it).

use crate::body::ProxyBody;
use crate::h1_upstream::IdleConns;
use crate::metrics::{Metrics, TargetLabels};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rampart_policy::{Balance, Upstream, UpstreamProtocol};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

pub struct TargetState {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub labels: TargetLabels,
    in_flight: AtomicUsize,
    /// Result of active health checks (true when none are configured).
    active_healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the target is ejected; 0 when not ejected.
    ejected_until_ms: AtomicU64,
}

pub struct UpstreamPool {
    pub spec: Arc<Upstream>,
    pub targets: Vec<Arc<TargetState>>,
    /// One client (and so one connection pool) per worker thread, so that an upstream connection is only
    /// ever driven by the thread that uses it; index 0 serves threads that are not workers.
    clients: Vec<HttpClient>,
    /// Idle connections of the gateway's own HTTP/1.1 path, per worker (the same slots as `clients`)
    /// and target: `slot * targets.len() + target`. Empty for an HTTP/2 upstream.
    h1_idle: Vec<Arc<IdleConns>>,
    rr: AtomicUsize,
    epoch: Instant,
    metrics: Arc<Metrics>,
    health_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for UpstreamPool {
    fn drop(&mut self) {
        if let Some(t) = &self.health_task {
            t.abort();
        }
    }
}

/// Decrements the target's in-flight count when the exchange ends, whatever way it ends.
pub struct InFlight(Arc<TargetState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamPool {
    pub fn new(spec: Arc<Upstream>, metrics: Arc<Metrics>, workers: usize) -> anyhow::Result<Arc<Self>> {
        let clients = (0..=workers)
            .map(|_| build_client(&spec))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let targets = spec
            .targets
            .iter()
            .map(|t| {
                let uri: http::Uri = t.url.parse()?;
                let labels = TargetLabels {
                    upstream: Arc::from(spec.name.as_str()),
                    target: Arc::from(t.url.as_str()),
                };
                metrics.upstream_healthy.get_or_create(&labels).set(1);
                Ok(Arc::new(TargetState {
                    scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
                    authority: uri
                        .authority()
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("target without authority"))?,
                    labels,
                    in_flight: AtomicUsize::new(0),
                    active_healthy: AtomicBool::new(true),
                    consecutive_failures: AtomicU32::new(0),
                    ejected_until_ms: AtomicU64::new(0),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let h1_idle = if spec.protocol == UpstreamProtocol::Http1 {
            (0..clients.len() * targets.len())
                .map(|_| IdleConns::new(spec.pool_max_idle, spec.pool_idle_timeout))
                .collect()
        } else {
            Vec::new()
        };
        let pool = Arc::new_cyclic(|weak: &std::sync::Weak<UpstreamPool>| {
            let health_task = spec.health.as_ref().map(|_| {
                let weak = weak.clone();
                tokio::spawn(async move { health_loop(weak).await })
            });
            UpstreamPool {
                spec,
                targets,
                clients,
                h1_idle,
                rr: AtomicUsize::new(0),
                epoch: Instant::now(),
                metrics,
                health_task,
            }
        });
        Ok(pool)
    }

    /// The calling worker's slot among `clients` (0 for threads that are not workers).
    fn slot(&self) -> usize {
        crate::worker::current().map_or(0, |w| w + 1) % self.clients.len()
    }

    /// The calling worker's client.
    pub fn client(&self) -> &HttpClient {
        &self.clients[self.slot()]
    }

    /// The calling worker's idle connections to target `i`, when requests to it go by the gateway's
    /// own HTTP/1.1 path (an HTTP/1.1 upstream over plain TCP); `None` when they go through hyper.
    pub fn h1_idle(&self, i: usize) -> Option<&Arc<IdleConns>> {
        if self.targets[i].scheme != http::uri::Scheme::HTTP {
            return None;
        }
        self.h1_idle.get(self.slot() * self.targets.len() + i)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn available(&self, t: &TargetState, now: u64) -> bool {
        t.active_healthy.load(Ordering::Relaxed) && t.ejected_until_ms.load(Ordering::Relaxed) <= now
    }

    /// Picks a target that is healthy, not ejected and not in `tried`; `None` when there is none.
    pub fn pick(&self, tried: &[usize]) -> Option<(usize, InFlight)> {
        let n = self.targets.len();
        let now = self.now_ms();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n).map(|i| (start + i) % n).filter(|i| !tried.contains(i));
        let chosen = match self.spec.balance {
            Balance::RoundRobin => candidates.into_iter().find(|&i| self.available(&self.targets[i], now)),
            Balance::LeastConnections => candidates
                .filter(|&i| self.available(&self.targets[i], now))
                .min_by_key(|&i| self.targets[i].in_flight.load(Ordering::Relaxed)),
        }?;
        let t = &self.targets[chosen];
        t.in_flight.fetch_add(1, Ordering::Relaxed);
        Some((chosen, InFlight(t.clone())))
    }

    pub fn record_success(&self, i: usize) {
        let t = &self.targets[i];
        if t.consecutive_failures.load(Ordering::Relaxed) != 0 {
            t.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connect error, timeout or reset: counts towards passive ejection.
    pub fn record_failure(&self, i: usize) {
        let t = &self.targets[i];
        self.metrics.upstream_errors.get_or_create(&t.labels).inc();
        let failures = t.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.spec.passive.max_failures {
            t.consecutive_failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + self.spec.passive.eject_for.as_millis() as u64;
            t.ejected_until_ms.store(until, Ordering::Relaxed);
            self.metrics.upstream_healthy.get_or_create(&t.labels).set(0);
            tracing::warn!(upstream = %self.spec.name, target = %t.labels.target, eject_for_ms = self.spec.passive.eject_for.as_millis() as u64, "target ejected after consecutive failures");
            let labels = t.labels.clone();
            let metrics = self.metrics.clone();
            let eject_for = self.spec.passive.eject_for;
            let target = t.clone();
            tokio::spawn(async move {
                tokio::time::sleep(eject_for).await;
                if target.active_healthy.load(Ordering::Relaxed) {
                    metrics.upstream_healthy.get_or_create(&labels).set(1);
                }
            });
        }
    }

    /// The absolute URI for `path_and_query` on target `i`.
    pub fn uri_for(&self, i: usize, path_and_query: Option<&http::uri::PathAndQuery>) -> http::Uri {
        let t = &self.targets[i];
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(t.scheme.clone());
        parts.authority = Some(t.authority.clone());
        parts.path_and_query = Some(
            path_and_query
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        http::Uri::from_parts(parts).expect("scheme, authority and path are all set")
    }
}

fn build_client(spec: &Upstream) -> anyhow::Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(spec.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &spec.ca_pem {
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    // ALPN offers exactly the protocol this upstream is configured for.
    let https = match spec.protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
    };

    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(spec.pool_idle_timeout)
        .pool_max_idle_per_host(spec.pool_max_idle);
    if spec.protocol == UpstreamProtocol::Http2 {
        builder.http2_only(true);
    }
    Ok(builder.build(https))
}

async fn health_loop(pool: std::sync::Weak<UpstreamPool>) {
    let Some(check) = pool.upgrade().and_then(|p| p.spec.health.clone()) else {
        return;
    };
    let mut successes = Vec::new();
    let mut failures = Vec::new();
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        successes.resize(pool.targets.len(), 0u32);
        failures.resize(pool.targets.len(), 0u32);
        let probes = (0..pool.targets.len()).map(|i| {
            let pool = pool.clone();
            let check = &check;
            async move {
                let uri = pool.uri_for(i, Some(&check.path.parse().ok()?));
                let req = http::Request::get(uri)
                    .header(http::header::USER_AGENT, "rampart-health-check")
                    .body(ProxyBody::Empty)
                    .ok()?;
                let resp = tokio::time::timeout(check.timeout, pool.client().request(req))
                    .await
                    .ok()?
                    .ok()?;
                let status = resp.status().as_u16();
                Some(if check.expect_status.is_empty() {
                    (200..400).contains(&status)
                } else {
                    check.expect_status.contains(&status)
                })
            }
        });
        let results = futures_util::future::join_all(probes).await;
        for (i, ok) in results.into_iter().enumerate() {
            let t = &pool.targets[i];
            let was = t.active_healthy.load(Ordering::Relaxed);
            if ok == Some(true) {
                successes[i] += 1;
                failures[i] = 0;
                if !was && successes[i] >= check.healthy_threshold {
                    t.active_healthy.store(true, Ordering::Relaxed);
                    tracing::info!(upstream = %pool.spec.name, target = %t.labels.target, "target healthy again");
                }
            } else {
                failures[i] += 1;
                successes[i] = 0;
                if was && failures[i] >= check.unhealthy_threshold {
                    t.active_healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(upstream = %pool.spec.name, target = %t.labels.target, "target failed health checks");
                }
            }
            let in_rotation = pool.available(t, pool.now_ms());
            pool.metrics
                .upstream_healthy
                .get_or_create(&t.labels)
                .set(in_rotation as i64);
        }
    }
}
