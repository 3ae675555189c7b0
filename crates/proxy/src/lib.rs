//! rampart's data plane: a reverse proxy that runs every request through the inspection pipeline.
//!
//! Module map:
//! - [`server`]: listeners and connections (limits, PROXY protocol, TLS, HTTP/1.1, HTTP/2, h2c, timeouts,
//!   graceful drain);
//! - [`tls`]: rustls server config with SNI certificate selection;
//! - [`proxy_protocol`]: PROXY v1/v2 header parsing;
//! - [`handler`]: the request stage, from framing checks to the upstream response;
//! - [`headers`]: smuggling checks, hop-by-hop removal, forwarding headers, client IP;
//! - [`body`]: streaming bodies with a bounded inspected prefix;
//! - [`upstream`]: pools, balancing, health checks, passive ejection;
//! - [`runtime`]: the policy + pools + inspector snapshot that reloads swap atomically;
//! - [`reload`]: file watching and SIGHUP;
//! - [`inspect`]: the seam to the detection engine;
//! - [`metrics`]: Prometheus families.

pub mod body;
pub mod handler;
pub mod headers;
pub mod inspect;
pub mod metrics;
pub mod proxy_protocol;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod upstream;

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
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Binds every listener of the current policy and starts serving. Fails if any address cannot be bound.
    pub async fn start(shared: Arc<Shared>) -> anyhow::Result<Gateway> {
        let policy = shared.load().policy.clone();
        let (drain, drain_rx) = DrainController::new();
        let mut addrs = Vec::new();
        let mut bound = Vec::new();
        for spec in &policy.listeners {
            let l = server::bind(spec.addr).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", spec.addr))?;
            addrs.push(l.local_addr()?);
            bound.push((spec.clone(), l));
        }
        let tasks = bound
            .into_iter()
            .map(|(spec, l)| tokio::spawn(server::serve_listener(spec, l, shared.clone(), drain_rx.clone())))
            .collect();
        Ok(Gateway {
            shared,
            addrs,
            drain: Some(drain),
            tasks,
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to the policy's shutdown grace) and returns the
    /// number of connections that were still open when the grace ran out.
    pub async fn shutdown(mut self) -> usize {
        let grace = self.shared.load().policy.limits.shutdown_grace;
        let left = match self.drain.take() {
            Some(d) => d.drain(grace).await,
            None => 0,
        };
        for t in self.tasks.drain(..) {
            t.abort();
        }
        left
    }
}
