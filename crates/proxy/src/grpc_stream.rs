//! The later messages of a streaming gRPC call (client and bidirectional streaming).
//!
//! The request stage inspects a call's first message and lets the stream go on (waiting for its end would
//! deadlock a client that waits for an answer before it sends more). From then on a [`StreamGuard`] sits
//! in the request body on its way upstream: it cuts the stream into length-prefixed messages, holds each
//! until it is complete (bounded by the route's inspection limit), inspects it like a request body, and
//! only then forwards it. An attack on a block route stops the stream before the message reaches the
//! service: the request body ends in an error (the upstream stream is reset) and the shared [`Denial`]
//! makes the response end with `grpc-status` 7 PERMISSION_DENIED (8 RESOURCE_EXHAUSTED for a limit),
//! since the response head went out long before. Each message found hostile is an event.

use crate::inspect::{Inspection, RequestContext};
use crate::runtime::{Runtime, Shared};
use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::{HeaderMap, HeaderValue};
use rampart_policy::{Mode, Oversize};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Context;

/// Whether the gateway refused a call mid-stream, shared by the call's request and response bodies.
#[derive(Default)]
pub struct Denial {
    /// 0 while the call stands, else the grpc-status it ends with.
    status: AtomicU8,
    waker: AtomicWaker,
    request_id: String,
}

impl Denial {
    pub fn new(request_id: &str) -> Arc<Self> {
        Arc::new(Denial {
            request_id: request_id.to_string(),
            ..Default::default()
        })
    }

    fn deny(&self, status: u8) {
        let _ = self
            .status
            .compare_exchange(0, status, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    pub fn is_denied(&self) -> bool {
        self.status.load(Ordering::Acquire) != 0
    }

    /// How the request is recorded (and answered, when the service had not answered yet).
    pub fn refusal_action(&self) -> &'static str {
        match self.status.load(Ordering::Acquire) {
            8 => "limited",
            _ => "block",
        }
    }

    /// Registers the response body's task, so that a denial wakes it while it waits on the upstream.
    pub fn register(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// The trailers the response ends with once denied.
    pub fn trailers(&self) -> HeaderMap {
        let (status, message) = match self.status.load(Ordering::Acquire) {
            8 => ("8", "stream refused by the API gateway: over a limit"),
            _ => ("7", "stream blocked by the API gateway"),
        };
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static(status));
        // grpc-message is percent-encoded; these messages and request ids need only the spaces encoded.
        let msg = format!("{message} (request id {})", self.request_id).replace(' ', "%20");
        if let Ok(v) = HeaderValue::from_str(&msg) {
            h.insert("grpc-message", v);
        }
        h
    }
}

/// The stream was refused by the gateway (the request body's error, which resets the upstream stream).
#[derive(Debug, thiserror::Error)]
#[error("gRPC stream refused by policy")]
pub struct StreamDenied;

/// Cuts a request stream into messages and inspects each before it goes on.
pub struct StreamGuard {
    rt: Arc<Runtime>,
    shared: Arc<Shared>,
    route: usize,
    /// What the inspector sees of the request: method, path, host and content type.
    parts: http::request::Parts,
    client_ip: IpAddr,
    mode: Mode,
    denial: Arc<Denial>,
    /// The message being received.
    buf: BytesMut,
    /// Bytes still to pass uninspected of a message over the inspection limit (`oversize = "pass"`).
    skip: usize,
    messages: u64,
    /// The client's trailers, held while an unfinished message goes before them.
    pub trailers: Option<HeaderMap>,
}

/// Where a stream guard starts: the request as routed and the prefix the request stage inspected.
pub struct StreamStart<'a> {
    pub rt: Arc<Runtime>,
    pub shared: Arc<Shared>,
    pub parts: &'a http::request::Parts,
    pub host: &'a str,
    pub client_ip: IpAddr,
    pub mode: Mode,
    pub denial: Arc<Denial>,
}

/// The length of the complete messages at the start of `b`.
fn complete_len(b: &[u8]) -> usize {
    let mut i = 0;
    while b.len() - i >= 5 {
        let len = u32::from_be_bytes([b[i + 1], b[i + 2], b[i + 3], b[i + 4]]) as usize;
        if b.len() - i - 5 < len {
            break;
        }
        i += 5 + len;
    }
    i
}

impl StreamGuard {
    /// A guard for the rest of a stream whose `prefix` was inspected whole: the complete messages in the
    /// prefix come back to be forwarded at once, a message it holds only the start of stays in the guard
    /// until the rest arrives and it can be inspected.
    pub fn start(s: StreamStart<'_>, mut prefix: Bytes) -> (Bytes, Box<StreamGuard>) {
        let messages = {
            let mut n = 0;
            let mut i = 0;
            let done = complete_len(&prefix);
            while i < done {
                i += 5 + u32::from_be_bytes([prefix[i + 1], prefix[i + 2], prefix[i + 3], prefix[i + 4]]) as usize;
                n += 1;
            }
            n
        };
        let tail = prefix.split_off(complete_len(&prefix));
        let mut parts = http::Request::post(s.parts.uri.clone())
            .body(())
            .expect("a valid request")
            .into_parts()
            .0;
        for name in [http::header::CONTENT_TYPE, http::header::HOST] {
            if let Some(v) = s.parts.headers.get(&name) {
                parts.headers.insert(name, v.clone());
            }
        }
        let route =
            s.rt.policy
                .routes
                .find_index(s.host, s.parts.uri.path())
                .unwrap_or(usize::MAX);
        let guard = StreamGuard {
            rt: s.rt,
            shared: s.shared,
            route,
            parts,
            client_ip: s.client_ip,
            mode: s.mode,
            denial: s.denial,
            buf: BytesMut::from(&tail[..]),
            skip: 0,
            messages,
            trailers: None,
        };
        (prefix, Box::new(guard))
    }

    /// Takes the next bytes of the stream; returns what may be forwarded now (possibly nothing), or
    /// the refusal.
    pub fn feed(&mut self, data: Bytes) -> Result<Bytes, StreamDenied> {
        let Some(route) = self.rt.policy.routes.get(self.route) else {
            return Ok(data);
        };
        let mut out = BytesMut::new();
        let mut data = data;
        // A message over the limit passes uninspected as it comes.
        if self.skip > 0 && self.buf.is_empty() {
            let n = self.skip.min(data.len());
            out.extend_from_slice(&data.split_to(n));
            self.skip -= n;
        }
        self.buf.extend_from_slice(&data);
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                out.extend_from_slice(&self.buf.split_to(n));
                self.skip -= n;
                if self.skip > 0 {
                    break;
                }
            }
            if self.buf.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if len > route.body.inspect_limit {
                if self.mode == Mode::Block && route.body.oversize == Oversize::Block {
                    self.refuse(
                        route,
                        "GRPC-006",
                        format!("a stream message of {len} bytes, over the inspection limit"),
                    );
                    return Err(StreamDenied);
                }
                self.skip = 5 + len;
                self.shared
                    .metrics
                    .uninspected_bodies
                    .get_or_create(&crate::metrics::Label("route", route.name.clone()))
                    .inc();
                continue;
            }
            if self.buf.len() < 5 + len {
                break;
            }
            let message = self.buf.split_to(5 + len);
            self.messages += 1;
            let max = route.grpc_max_stream_messages;
            if max > 0 && self.messages > max {
                self.refuse(
                    route,
                    "GRPC-007",
                    format!("more than {max} messages in one request stream"),
                );
                if self.mode == Mode::Block {
                    return Err(StreamDenied);
                }
            }
            let inspection = self.rt.inspector.inspect(&RequestContext {
                route,
                parts: &self.parts,
                body: &message,
                body_truncated: false,
                client_ip: self.client_ip,
                message: true,
            });
            if inspection.attack {
                let block = self.mode == Mode::Block;
                self.emit(route, &inspection, block);
                if block {
                    self.denial.deny(7);
                    return Err(StreamDenied);
                }
            }
            out.extend_from_slice(&message);
        }
        Ok(out.freeze())
    }

    /// What is left when the client ends the stream: a message it never finished, passed on as it is
    /// (the service answers the broken framing).
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    /// Whether nothing is left to forward once the client's stream has ended.
    pub fn is_drained(&self) -> bool {
        self.buf.is_empty() && self.trailers.is_none()
    }

    /// A limit crossed: an event, and on a block route the call ends RESOURCE_EXHAUSTED.
    fn refuse(&self, route: &rampart_policy::Route, rule_id: &str, evidence: String) {
        let block = self.mode == Mode::Block;
        let inspection = Inspection {
            attack: true,
            mask_graphql_suggestions: false,
            report: false,
            score: 0,
            findings: vec![crate::inspect::FindingSummary {
                class: "limit".into(),
                rule_id: rule_id.into(),
                score: 0,
                point: "body.grpc".into(),
                decode_chain: Vec::new(),
                evidence,
            }],
        };
        self.emit(route, &inspection, block);
        if block {
            self.denial.deny(8);
        }
    }

    fn emit(&self, route: &rampart_policy::Route, inspection: &Inspection, block: bool) {
        let Some(bus) = self.shared.events() else {
            return;
        };
        let reason = if block {
            format!("gRPC stream message {}: call ended", self.messages)
        } else {
            format!("gRPC stream message {} (monitor)", self.messages)
        };
        let host = self
            .parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or(self.parts.uri.host())
            .unwrap_or_default();
        bus.emit(crate::inspect::message_event(crate::inspect::MessageEvent {
            request_id: &self.denial.request_id,
            client_ip: self.client_ip,
            method: "POST",
            host,
            path: self.parts.uri.path(),
            route: &route.name,
            inspection,
            block,
            reason,
            point_prefix: "",
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(messages: &[&[u8]]) -> Bytes {
        let mut b = BytesMut::new();
        for m in messages {
            b.extend_from_slice(&[0]);
            b.extend_from_slice(&(m.len() as u32).to_be_bytes());
            b.extend_from_slice(m);
        }
        b.freeze()
    }

    #[test]
    fn complete_messages_are_measured_and_a_started_one_is_not() {
        let two = frames(&[b"hello", b"world!"]);
        assert_eq!(complete_len(&two), two.len());
        assert_eq!(complete_len(&two[..two.len() - 1]), 10);
        assert_eq!(complete_len(&two[..3]), 0);
        assert_eq!(complete_len(&frames(&[b""])), 5, "an empty message is complete");
    }
}
