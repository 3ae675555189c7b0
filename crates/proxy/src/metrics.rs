//! Prometheus metrics of the data plane.
//!
//! Label sets are small structs with hand-written encoders so that recording a request clones an `Arc<str>`
//! and copies two integers: no allocation on the hot path.

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RequestLabels {
    pub route: Arc<str>,
    pub status: u16,
    pub action: &'static str,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("route", &*self.route).encode(encoder.encode_label())?;
        ("status", self.status as u64).encode(encoder.encode_label())?;
        ("action", self.action).encode(encoder.encode_label())
    }
}

/// One label, `name="value"`, for the families keyed by a single name.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub &'static str, pub Arc<str>);

impl EncodeLabelSet for Label {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        (self.0, &*self.1).encode(encoder.encode_label())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TargetLabels {
    pub upstream: Arc<str>,
    pub target: Arc<str>,
}

impl EncodeLabelSet for TargetLabels {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("upstream", &*self.upstream).encode(encoder.encode_label())?;
        ("target", &*self.target).encode(encoder.encode_label())
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~100 s
    Histogram::new(exponential_buckets(0.000_05, 2.5, 16))
}

pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<Label, Histogram, fn() -> Histogram>,
    pub upstream_healthy: Family<TargetLabels, Gauge>,
    pub upstream_errors: Family<TargetLabels, Counter>,
    pub connections_active: Family<Label, Gauge>,
    pub connections_total: Family<Label, Counter>,
    pub connections_rejected: Family<Label, Counter>,
    pub protocol_rejects: Family<Label, Counter>,
    pub uninspected_bodies: Family<Label, Counter>,
    pub reloads: Family<Label, Counter>,
    pub access_log_dropped: Counter,
    /// Discovery samples dropped because the discovery task could not keep up.
    pub discovery_dropped: Counter,
    /// Rate-limit decisions and state store failures.
    pub guard: Arc<rampart_guard::GuardMetrics>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            upstream_healthy: Family::default(),
            upstream_errors: Family::default(),
            connections_active: Family::default(),
            connections_total: Family::default(),
            connections_rejected: Family::default(),
            protocol_rejects: Family::default(),
            uninspected_bodies: Family::default(),
            reloads: Family::default(),
            access_log_dropped: Counter::default(),
            discovery_dropped: Counter::default(),
            guard: rampart_guard::GuardMetrics::new(registry),
        };
        registry.register(
            "rampart_requests",
            "Requests by route, status and action",
            m.requests.clone(),
        );
        registry.register(
            "rampart_request_duration_seconds",
            "Time from request head to response head, by route",
            m.request_duration.clone(),
        );
        registry.register(
            "rampart_upstream_healthy",
            "1 when the target is in rotation, 0 when ejected or failing health checks",
            m.upstream_healthy.clone(),
        );
        registry.register(
            "rampart_upstream_errors",
            "Failed exchanges with an upstream target (connect, timeout, reset)",
            m.upstream_errors.clone(),
        );
        registry.register(
            "rampart_connections_active",
            "Open client connections by listener",
            m.connections_active.clone(),
        );
        registry.register(
            "rampart_connections",
            "Accepted client connections by listener",
            m.connections_total.clone(),
        );
        registry.register(
            "rampart_connections_rejected",
            "Connections refused by reason (listener_limit, ip_limit, proxy_protocol, tls)",
            m.connections_rejected.clone(),
        );
        registry.register(
            "rampart_protocol_rejects",
            "Requests refused by the HTTP layer, by reason (smuggling, uri_too_long, ...)",
            m.protocol_rejects.clone(),
        );
        registry.register(
            "rampart_uninspected_bodies",
            "Request bodies forwarded past the inspection limit (oversize = pass), by route",
            m.uninspected_bodies.clone(),
        );
        registry.register(
            "rampart_reloads",
            "Config reloads by result (ok, error)",
            m.reloads.clone(),
        );
        registry.register(
            "rampart_access_log_dropped_lines",
            "Access log lines dropped because the log writer could not keep up",
            m.access_log_dropped.clone(),
        );
        registry.register(
            "rampart_discovery_dropped_samples",
            "API discovery samples dropped because the discovery task could not keep up",
            m.discovery_dropped.clone(),
        );
        Arc::new(m)
    }

    pub fn reject(&self, reason: &'static str) {
        self.protocol_rejects
            .get_or_create(&Label("reason", Arc::from(reason)))
            .inc();
    }
}
