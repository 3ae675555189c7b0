//! rampart's data plane: a reverse proxy that runs every request through the inspection pipeline.
//!
//! Module map:
//! - [`server`]: listeners and connections (limits, PROXY protocol, TLS, HTTP/1.1, HTTP/2, h2c, timeouts,
//!   graceful drain);
//! - [`tls`]: rustls server config with SNI certificate selection;
//! - [`proxy_protocol`]: PROXY v1/v2 header parsing;
//! - [`framing`]: byte-level checks of HTTP/1 request heads (bare LF, hidden framing conflicts);
//! - [`handler`]: the request stage, from framing checks to the upstream response;
//! - [`headers`]: smuggling checks, hop-by-hop removal, forwarding headers, client IP;
//! - [`body`]: streaming bodies with a bounded inspected prefix;
//! - [`websocket`]: the WebSocket relay (frames parsed, messages inspected), RFC 8441 over HTTP/2;
//! - [`discovery`]: samples of forwarded requests to the API inventory, off the hot path;
//! - [`grpc_stream`]: inspection of a streaming gRPC call's later messages;
//! - [`graphql_answer`]: field suggestions masked in GraphQL answers;
//! - [`upstream`]: pools, balancing, health checks, passive ejection;
//! - [`h1_upstream`]: HTTP/1.1 to plain upstreams, spoken by the request's own task;
//! - [`overrides`]: temporary route changes made by triggers (mode, sensitivity);
//! - [`runtime`]: the policy + pools + inspector snapshot that reloads swap atomically;
//! - [`reload`]: file watching and SIGHUP;
//! - [`inspect`]: the seam to the detection engine;
//! - [`verdict`]: the same decision for a request already in memory (eval, explain);
//! - [`worker`]: one event loop per core, each with its own sockets and upstream pools;
//! - [`access_log`]: batched JSON access log lines, off the hot path;
//! - [`metrics`]: Prometheus families.

pub mod access_log;
pub mod body;
pub mod discovery;
pub mod framing;
pub mod graphql_answer;
pub mod grpc_stream;
pub mod h1_upstream;
pub mod handler;
pub mod headers;
pub mod inspect;
pub mod metrics;
pub mod overrides;
pub mod proxy_protocol;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod verdict;
pub mod websocket;
pub mod worker;

pub use inspect::{Inspection, Inspector, InspectorFactory, NoInspection};
pub use runtime::{Runtime, Shared};
pub use server::{Drain, DrainController};

use std::net::SocketAddr;
use std::sync::Arc;

/// A started gateway: its bound listener addresses and the handle to stop it.
pub struct Gateway {
    pub shared: Arc<Shared>,
    pub addrs: Vec<SocketAddr>,
    drain: Option<DrainController>,
    // Worker threads end by themselves after the drain; kept to document ownership, never joined (a
    // worker holding a connection past the grace is abandoned to process exit).
    _workers: Vec<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Binds every listener of the current policy once per worker (SO_REUSEPORT) and starts the worker
    /// threads. Fails if any address cannot be bound or a TLS listener cannot be set up.
    pub async fn start(shared: Arc<Shared>) -> anyhow::Result<Gateway> {
        let policy = shared.load().policy.clone();
        let workers = worker::count(policy.limits.workers);
        let (drain, drain_rx) = DrainController::new();
        let mut addrs = Vec::new();
        // sockets[w] holds worker w's socket for each listener.
        let mut sockets: Vec<Vec<(Arc<server::ListenerShared>, std::net::TcpListener)>> =
            (0..workers).map(|_| Vec::new()).collect();
        for spec in &policy.listeners {
            let ls = server::ListenerShared::new(spec.clone(), &policy.limits)
                .map_err(|e| anyhow::anyhow!("listener {}: {e}", spec.name))?;
            // SO_REUSEPORT would let a second rampart (or anything of the same user) share the port
            // silently; a plain bind first makes "address in use" an error again.
            if spec.addr.port() != 0 {
                drop(
                    std::net::TcpListener::bind(spec.addr)
                        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", spec.addr))?,
                );
            }
            let first =
                server::bind_std(spec.addr).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", spec.addr))?;
            // With port 0 the first bind picks the port; the other workers join it.
            let addr = first.local_addr()?;
            addrs.push(addr);
            sockets[0].push((ls.clone(), first));
            for w in sockets.iter_mut().skip(1) {
                let l = server::bind_std(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
                w.push((ls.clone(), l));
            }
        }
        let mut threads = Vec::new();
        for (index, listeners) in sockets.into_iter().enumerate() {
            let shared = shared.clone();
            let drain = drain_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("rampart-w{index}"))
                .spawn(move || {
                    worker::set_current(index);
                    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "cannot start worker runtime");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let mut tasks = Vec::new();
                        for (ls, std_listener) in listeners {
                            match tokio::net::TcpListener::from_std(std_listener) {
                                Ok(l) => tasks.push(tokio::spawn(server::serve_listener(
                                    ls,
                                    l,
                                    shared.clone(),
                                    drain.clone(),
                                ))),
                                Err(e) => tracing::error!(worker = index, error = %e, "cannot register listener"),
                            }
                        }
                        for t in tasks {
                            let _ = t.await;
                        }
                        // Let connections drain: the drain controller counts them; keep the loop running until
                        // they are gone or the process exits.
                        drain.wait_idle().await;
                        if let Some(log) = shared.access_log() {
                            log.flush_thread();
                        }
                    });
                })?;
            threads.push(thread);
        }
        Ok(Gateway {
            shared,
            addrs,
            drain: Some(drain),
            _workers: threads,
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to the policy's shutdown grace) and returns the
    /// number of connections that were still open when the grace ran out.
    pub async fn shutdown(mut self) -> usize {
        let grace = self.shared.load().policy.limits.shutdown_grace;
        match self.drain.take() {
            Some(d) => d.drain(grace).await,
            None => 0,
        }
        // Worker threads end on their own once their connections are gone; those still holding connections
        // past the grace are abandoned to process exit.
    }
}
