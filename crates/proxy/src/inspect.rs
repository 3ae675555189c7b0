//! The seam between the data plane and the detection engine.
//!
//! The proxy calls an [`Inspector`] once per request, with the route and the inspected part of the body,
//! and acts on the [`Inspection`] by the route's mode. Inspectors are built per policy by an
//! [`InspectorFactory`], so a reload compiles detection settings together with the rest of the config and
//! a bad detection table refuses the whole reload.

use rampart_policy::{ConfigErrors, Policy, Route};
use std::net::IpAddr;
use std::sync::Arc;

pub struct RequestContext<'a> {
    pub route: &'a Route,
    pub parts: &'a http::request::Parts,
    /// The inspected part of the body (the whole body unless `body_truncated`).
    pub body: &'a [u8],
    pub body_truncated: bool,
    pub client_ip: IpAddr,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Inspection {
    /// The anomaly score reached the route's threshold.
    pub attack: bool,
    pub score: u32,
    pub findings: Vec<FindingSummary>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FindingSummary {
    pub class: String,
    pub rule_id: String,
    pub score: u32,
    pub point: String,
    /// The decoders applied to reach the value, outermost first (e.g. percent > base64 > json).
    pub decode_chain: Vec<&'static str>,
    pub evidence: String,
}

pub trait Inspector: Send + Sync {
    fn inspect(&self, ctx: &RequestContext<'_>) -> Inspection;
}

pub trait InspectorFactory: Send + Sync {
    fn build(&self, policy: &Policy) -> Result<Arc<dyn Inspector>, ConfigErrors>;
}

/// Inspects nothing: every request passes. Used where detection is not wired (benchmarks of the bare data
/// plane, tests of the proxy alone).
pub struct NoInspection;

impl Inspector for NoInspection {
    fn inspect(&self, _: &RequestContext<'_>) -> Inspection {
        Inspection::default()
    }
}

impl InspectorFactory for NoInspection {
    fn build(&self, _: &Policy) -> Result<Arc<dyn Inspector>, ConfigErrors> {
        Ok(Arc::new(NoInspection))
    }
}
