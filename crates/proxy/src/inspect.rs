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
    /// `body` is a message of a connection or stream this request opened (WebSocket, gRPC streaming),
    /// not the request's own body: the request-level checks and the API contract were applied to the
    /// request already.
    pub message: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Inspection {
    /// The anomaly score reached the route's threshold.
    pub attack: bool,
    pub score: u32,
    pub findings: Vec<FindingSummary>,
    /// The request is a GraphQL operation whose answer's field suggestions are to be masked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask_graphql_suggestions: bool,
    /// Not an attack, yet to be recorded (an OpenAPI violation on a route whose contract only monitors).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub report: bool,
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

/// An inspected message of a connection or stream that outlived its request (a WebSocket message, a
/// later gRPC stream message): what its event says.
pub struct MessageEvent<'a> {
    pub request_id: &'a str,
    pub client_ip: IpAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub inspection: &'a Inspection,
    pub block: bool,
    pub reason: String,
    /// Put before each finding's point ("ws." for WebSocket messages).
    pub point_prefix: &'a str,
}

pub fn message_event(m: MessageEvent<'_>) -> rampart_events::Event {
    use rampart_events::{Action, Event, EventKind};
    let mut e = Event::new(
        EventKind::Request,
        if m.block { Action::Block } else { Action::Monitor },
    );
    e.request_id = m.request_id.to_string();
    e.client_ip = m.client_ip.to_string();
    e.method = m.method.to_string();
    e.host = m.host.to_string();
    e.path = m.path.to_string();
    e.route = m.route.to_string();
    e.score = m.inspection.score;
    e.reason = Some(m.reason);
    e.findings = m
        .inspection
        .findings
        .iter()
        .map(|f| f.to_event(m.point_prefix))
        .collect();
    e
}

impl FindingSummary {
    /// The finding as events carry it, its point under `point_prefix` (`ws.` for WebSocket messages).
    pub fn to_event(&self, point_prefix: &str) -> rampart_events::Finding {
        rampart_events::Finding {
            class: self.class.clone(),
            rule_id: self.rule_id.clone(),
            score: self.score,
            point: format!("{point_prefix}{}", self.point),
            evidence: self.evidence.clone(),
            decode_chain: self.decode_chain.iter().map(|d| d.to_string()).collect(),
        }
    }
}

pub trait Inspector: Send + Sync {
    fn inspect(&self, ctx: &RequestContext<'_>) -> Inspection;

    /// A check of the upstream's answer to this request, for routes that check answers (an OpenAPI
    /// contract with `responses = true`). It runs once the answer has gone to the client.
    fn answer_check(&self, _ctx: &RequestContext<'_>) -> Option<Box<dyn AnswerCheck>> {
        None
    }
}

/// Findings about an answer: its status, content type, and body (the whole body when `complete`, else its
/// start).
pub trait AnswerCheck: Send + 'static {
    fn check(&self, status: u16, content_type: Option<&str>, body: &[u8], complete: bool) -> Vec<FindingSummary>;
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
