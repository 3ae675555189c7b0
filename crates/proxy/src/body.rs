//! Request and response bodies as they cross the proxy.
//!
//! Bodies stream: the proxy holds at most the route's inspection limit (plus one frame) of a request body,
//! and nothing of a response body. [`ProxyBody`] is what goes upstream: nothing, a fully buffered body
//! (replayable for retries), or the inspected prefix followed by the rest of the client's stream.
//! [`RespBody`] is what goes back to the client: the upstream's stream or a small body of our own.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body sent to the upstream.
pub enum ProxyBody {
    Empty,
    /// A body held entirely in memory; cloning it for a retry is cheap.
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// The inspected prefix, then the rest of the client's body as it arrives. `max` enforces the route's
    /// hard `max_size` on what follows.
    Stream {
        prefix: Option<Bytes>,
        rest: Incoming,
        sent: u64,
        max: Option<u64>,
        /// A streaming gRPC call: each later message is held until complete and inspected.
        grpc: Option<Box<crate::grpc_stream::StreamGuard>>,
    },
}

impl ProxyBody {
    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        ProxyBody::Buffered {
            data: (!data.is_empty()).then_some(data),
            trailers,
        }
    }

    /// Whether [`ProxyBody::try_clone`] would succeed, without cloning.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, ProxyBody::Stream { .. })
    }

    /// A copy for a retry, when the body is fully in memory.
    pub fn try_clone(&self) -> Option<ProxyBody> {
        match self {
            ProxyBody::Empty => Some(ProxyBody::Empty),
            ProxyBody::Buffered { data, trailers } => Some(ProxyBody::Buffered {
                data: data.clone(),
                trailers: trailers.clone(),
            }),
            ProxyBody::Stream { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the route's max_size of {0} bytes")]
pub struct BodyTooLarge(pub u64);

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            ProxyBody::Stream {
                prefix,
                rest,
                sent,
                max,
                grpc,
            } => {
                if let Some(p) = prefix.take() {
                    *sent += p.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                loop {
                    let frame = match Pin::new(&mut *rest).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => frame,
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                        Poll::Ready(None) => {
                            let Some(g) = grpc.as_mut() else {
                                return Poll::Ready(None);
                            };
                            if let Some(left) = g.finish() {
                                return Poll::Ready(Some(Ok(Frame::data(left))));
                            }
                            return Poll::Ready(g.trailers.take().map(|t| Ok(Frame::trailers(t))));
                        }
                        Poll::Pending => return Poll::Pending,
                    };
                    if let Some(d) = frame.data_ref() {
                        *sent += d.len() as u64;
                        if let Some(m) = *max {
                            if *sent > m {
                                return Poll::Ready(Some(Err(Box::new(BodyTooLarge(m)))));
                            }
                        }
                    }
                    let Some(g) = grpc.as_mut() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match frame.into_data() {
                        Ok(d) => match g.feed(d) {
                            // Only part of a message so far: read on.
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Err(denied) => return Poll::Ready(Some(Err(Box::new(denied)))),
                        },
                        Err(trailers) => {
                            // Whatever the client left unfinished goes before its trailers.
                            if let Some(left) = g.finish() {
                                g.trailers = trailers.into_trailers().ok();
                                return Poll::Ready(Some(Ok(Frame::data(left))));
                            }
                            return Poll::Ready(Some(Ok(trailers)));
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            ProxyBody::Stream { prefix, rest, grpc, .. } => {
                prefix.is_none() && rest.is_end_stream() && grpc.as_ref().is_none_or(|g| g.is_drained())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            // No exact size with trailers: an HTTP/1.1 hop can only carry them in a chunked body.
            ProxyBody::Buffered { data, trailers: None } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Buffered {
                data,
                trailers: Some(_),
            } => {
                let mut h = SizeHint::new();
                h.set_lower(data.as_ref().map_or(0, |d| d.len() as u64));
                h
            }
            ProxyBody::Stream { prefix, rest, .. } => prefixed_hint(prefix.as_ref(), rest),
        }
    }
}

/// The size of a body made of bytes already read and the rest of a stream.
fn prefixed_hint(prefix: Option<&Bytes>, rest: &impl Body) -> SizeHint {
    let p = prefix.map_or(0, |p| p.len() as u64);
    let h = rest.size_hint();
    let mut out = SizeHint::new();
    out.set_lower(h.lower() + p);
    if let Some(u) = h.upper() {
        out.set_upper(u + p);
    }
    out
}

/// The upstream's answer as it streams: from hyper's client (HTTP/2, TLS, upgrades) or from the
/// gateway's own HTTP/1.1 connection ([`crate::h1_upstream`]).
pub enum UpstreamBody {
    Hyper(Incoming),
    H1(crate::h1_upstream::ResponseBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Hyper(b) => b.is_end_stream(),
            UpstreamBody::H1(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Hyper(b) => b.size_hint(),
            UpstreamBody::H1(b) => b.size_hint(),
        }
    }
}

/// The body sent back to the client.
pub enum RespBody {
    Upstream(UpstreamBody),
    /// The upstream's stream, its start searched for a marker on the way through.
    Watched(UpstreamBody, Box<MarkerWatch>),
    /// The upstream's stream, its start kept on the way through for those that read it once it ends.
    Tapped(UpstreamBody, Box<AnswerTap>),
    /// The start of the upstream's answer, read already (held to look into it), then the rest.
    Prefixed {
        prefix: Option<Bytes>,
        rest: UpstreamBody,
    },
    /// The upstream's answer to a streaming gRPC call whose later messages are inspected: once the
    /// gateway refuses the call mid-stream, the answer ends with the refusal's trailers (`done` once they
    /// are sent).
    GrpcGuarded {
        body: UpstreamBody,
        denial: std::sync::Arc<crate::grpc_stream::Denial>,
        done: bool,
    },
    Full(Option<Bytes>),
}

/// Reads an answer once it has ended: its first bytes, and whether they are the whole answer.
pub type AnswerReader = Box<dyn FnOnce(&[u8], bool) + Send>;

/// Keeps the start of the upstream's answer (up to `limit`) as it streams to the client, without
/// holding it back, for readers that look at it once it has ended or was dropped: API discovery
/// (sensitive data) and the OpenAPI check of answers.
pub struct AnswerTap {
    buf: BytesMut,
    limit: usize,
    seen: usize,
    ended: bool,
    readers: Vec<AnswerReader>,
}

impl AnswerTap {
    pub fn new(limit: usize, readers: Vec<AnswerReader>) -> Box<Self> {
        Box::new(AnswerTap {
            buf: BytesMut::new(),
            limit,
            seen: 0,
            ended: false,
            readers,
        })
    }

    fn feed(&mut self, data: &[u8]) {
        self.seen += data.len();
        let room = self.limit.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }
}

impl Drop for AnswerTap {
    fn drop(&mut self) {
        let complete = self.ended && self.seen <= self.limit;
        for read in self.readers.drain(..) {
            read(&self.buf, complete);
        }
    }
}

/// Searches the first `limit` bytes of a body for a marker as it streams past (a login API that answers a
/// wrong password with 200 and `{"error": "invalid_credentials"}`), and reports once whether it was
/// seen: when found, when the limit or the end is reached, or when the body is dropped. The body is not
/// held back: only a tail as long as the marker is kept, to find it across frame boundaries.
pub struct MarkerWatch {
    needle: Box<[u8]>,
    carry: Vec<u8>,
    scanned: usize,
    limit: usize,
    report: Option<tokio::sync::oneshot::Sender<bool>>,
}

impl MarkerWatch {
    pub fn new(needle: &str, limit: usize) -> (Box<Self>, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let w = MarkerWatch {
            needle: needle.as_bytes().into(),
            carry: Vec::new(),
            scanned: 0,
            limit,
            report: Some(tx),
        };
        (Box::new(w), rx)
    }

    fn feed(&mut self, data: &[u8]) {
        if self.report.is_none() || self.needle.is_empty() {
            return;
        }
        let take = data.len().min(self.limit - self.scanned);
        self.carry.extend_from_slice(&data[..take]);
        self.scanned += take;
        if memchr::memmem::find(&self.carry, &self.needle).is_some() {
            return self.finish(true);
        }
        if self.scanned >= self.limit {
            return self.finish(false);
        }
        let keep = self.needle.len() - 1;
        if self.carry.len() > keep {
            self.carry.drain(..self.carry.len() - keep);
        }
    }

    pub fn finish(&mut self, found: bool) {
        if let Some(tx) = self.report.take() {
            let _ = tx.send(found);
        }
    }
}

impl Drop for MarkerWatch {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl RespBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        RespBody::Full(Some(b.into()))
    }

    pub fn empty() -> Self {
        RespBody::Full(None)
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            RespBody::Watched(b, watch) => {
                let polled = Pin::new(b).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(d) = frame.data_ref() {
                            watch.feed(d);
                        }
                    }
                    Poll::Ready(_) => watch.finish(false),
                    Poll::Pending => {}
                }
                polled
            }
            RespBody::GrpcGuarded { body, denial, done } => {
                if *done {
                    return Poll::Ready(None);
                }
                if !denial.is_denied() {
                    denial.register(cx);
                    match Pin::new(body).poll_frame(cx) {
                        // The upstream's own end, or its reset after ours, when the call was refused.
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) if denial.is_denied() => {}
                        Poll::Ready(Some(Ok(f))) if f.is_trailers() && denial.is_denied() => {}
                        polled => return polled,
                    }
                }
                *done = true;
                Poll::Ready(Some(Ok(Frame::trailers(denial.trailers()))))
            }
            RespBody::Tapped(b, tap) => {
                let polled = Pin::new(&mut *b).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(d) = frame.data_ref() {
                            tap.feed(d);
                        }
                        // hyper stops polling a body that says it has ended: know it from here.
                        tap.ended |= b.is_end_stream();
                    }
                    Poll::Ready(None) => tap.ended = true,
                    _ => {}
                }
                polled
            }
            RespBody::Prefixed { prefix, rest } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => Pin::new(rest).poll_frame(cx),
            },
            RespBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream(b) | RespBody::Watched(b, _) | RespBody::Tapped(b, _) => b.is_end_stream(),
            RespBody::GrpcGuarded { done, .. } => *done,
            RespBody::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            RespBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream(b) | RespBody::Watched(b, _) | RespBody::Tapped(b, _) => b.size_hint(),
            RespBody::GrpcGuarded { .. } => SizeHint::new(),
            RespBody::Prefixed { prefix, rest } => prefixed_hint(prefix.as_ref(), rest),
            RespBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

/// What reading the inspected part of a request body produced.
pub enum Collected {
    /// The whole body fit under the limit.
    Complete { data: Bytes, trailers: Option<HeaderMap> },
    /// The limit was reached: `prefix` holds at least `limit` bytes, `rest` the unread remainder.
    Overflow { prefix: Bytes, rest: Incoming },
    /// A gRPC stream: `prefix` holds its first complete message(s) and the stream goes on in `rest`.
    /// Waiting for the end would deadlock a client that waits for an answer before it sends more.
    Streaming { prefix: Bytes, rest: Incoming },
}

/// Whether `b` starts with at least one complete gRPC length-prefixed message.
fn holds_grpc_message(b: &[u8]) -> bool {
    b.len() >= 5 && b.len() - 5 >= u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize
}

/// Reads up to `limit` bytes of `body` (the last frame may carry it past the limit by one frame).
///
/// With `grpc`, reading stops at the first complete message when the stream goes on (see
/// [`Collected::Streaming`]); a unary call's single message and end of stream come back `Complete`.
pub async fn collect_prefix(
    mut body: Incoming,
    limit: usize,
    expected: Option<u64>,
    grpc: bool,
) -> Result<Collected, hyper::Error> {
    use http_body_util::BodyExt;
    let cap = expected.map_or(8 * 1024, |n| n.min(limit as u64) as usize);
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut len = 0usize;
    loop {
        let Some(frame) = body.frame().await else {
            return Ok(Collected::Complete {
                data: join(first, buf),
                trailers: None,
            });
        };
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                len += data.len();
                // The common single-frame body is kept as is, without a copy.
                match (&mut first, &mut buf) {
                    (None, None) => first = Some(data),
                    (Some(f), None) => {
                        let mut b = BytesMut::with_capacity(cap.max(f.len() + data.len()));
                        b.extend_from_slice(f);
                        b.extend_from_slice(&data);
                        first = None;
                        buf = Some(b);
                    }
                    (_, Some(b)) => b.extend_from_slice(&data),
                }
                if len > limit {
                    return Ok(Collected::Overflow {
                        prefix: join(first, buf),
                        rest: body,
                    });
                }
                if grpc && !body.is_end_stream() {
                    let held = first.as_deref().or(buf.as_deref()).unwrap_or_default();
                    if holds_grpc_message(held) {
                        return Ok(Collected::Streaming {
                            prefix: join(first, buf),
                            rest: body,
                        });
                    }
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return Ok(Collected::Complete {
                        data: join(first, buf),
                        trailers: Some(trailers),
                    });
                }
            }
        }
    }
}

fn join(first: Option<Bytes>, buf: Option<BytesMut>) -> Bytes {
    match (first, buf) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(frames: &[&[u8]], needle: &str, limit: usize) -> bool {
        let (mut w, mut rx) = MarkerWatch::new(needle, limit);
        for f in frames {
            w.feed(f);
        }
        drop(w);
        rx.try_recv().unwrap()
    }

    #[test]
    fn the_marker_is_found_across_frames_and_only_within_the_limit() {
        let marker = "invalid_credentials";
        assert!(verdict(&[br#"{"error":"invalid_credentials"}"#], marker, 1024));
        assert!(verdict(&[br#"{"error":"invalid_cre"#, br#"dentials"}"#], marker, 1024));
        assert!(verdict(
            &[b"{\"e", b"rror\":\"inv", b"alid_", b"credentials\"}"],
            marker,
            1024
        ));
        assert!(!verdict(&[br#"{"token":"eyJhbGciOi..."}"#], marker, 1024));
        let late = format!("{}invalid_credentials", " ".repeat(2000));
        assert!(!verdict(&[late.as_bytes()], marker, 1024), "past the scan limit");
        assert!(verdict(&[late.as_bytes()], marker, 4096));
    }

    #[test]
    fn a_dropped_watch_reports_not_found_once() {
        let (w, mut rx) = MarkerWatch::new("x", 10);
        drop(w);
        assert_eq!(rx.try_recv(), Ok(false));
    }
}
