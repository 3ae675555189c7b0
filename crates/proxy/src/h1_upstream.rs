//! HTTP/1.1 to plain-HTTP upstream targets, spoken by the request's own task.
//!
//! Why not hyper's pooled client for these: it hands every request over a channel to a connection task
//! of its own and the answer back over another, so each exchange costs two task hops, a pool checkout
//! and a boxed future; on small GETs that was about a sixth of the gateway's CPU (perf, issue 3). Here
//! the task that serves the client writes the upstream request, reads the answer's head and gives the
//! connection to the answer's body, which streams the rest and puts the connection back in its worker's
//! idle list when the answer ends. TLS and HTTP/2 upstreams, and protocol upgrades, still go through
//! hyper.
//!
//! Wire rules (RFC 9112): an answer's length comes from Transfer-Encoding (chunked last) before
//! Content-Length, then from the connection closing; HEAD, 1xx, 204 and 304 answers carry no body;
//! differing Content-Length values, a malformed chunk or an oversized head are refused (the client gets
//! 502). A connection is kept only when the answer ended exactly where its framing said, the request was
//! fully sent and neither side asked to close.
//!
//! Every input has a bound: the answer head ([`MAX_HEAD`], [`MAX_HEADERS`]), chunk-size lines, trailer
//! sections; reads are at most [`READ_CHUNK`] at a time and nothing of a body is held.

use crate::body::{BoxError, ProxyBody};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::WriteHalf;
use tokio::net::TcpStream;

/// Largest answer head (status line and header fields) taken from an upstream.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in an answer head or trailer section.
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section of a chunked answer.
const MAX_TRAILERS: usize = 16 * 1024;
/// How much room a read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// Request data up to this much is copied behind the head, so that both leave in one write.
const COALESCE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connect failed")]
    Connect(#[source] io::Error),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The connection ended before any byte of an answer: for a reused connection, the upstream
    /// closed it while it sat idle (the request may be sent again on a fresh one).
    #[error("connection closed before the answer began")]
    ClosedEarly,
    #[error("connection failed")]
    Io(#[from] io::Error),
    #[error("invalid answer: {0}")]
    InvalidAnswer(&'static str),
    #[error("request body: {0}")]
    RequestBody(BoxError),
}

impl Error {
    /// Whether the request surely never reached the upstream.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::ConnectTimeout(_))
    }
}

/// Idle keep-alive connections to one target, for one worker.
///
/// Only that worker's tasks take from and give back to it (a connection is registered with the event
/// loop of the thread that opened it), so the lock is never contended: a `Mutex` rather than a
/// `RefCell` only because the pool that holds the lists is shared by all workers.
pub struct IdleConns {
    conns: Mutex<Vec<Idle>>,
    max: usize,
    idle_timeout: Duration,
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

impl IdleConns {
    pub fn new(max: usize, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(IdleConns {
            conns: Mutex::new(Vec::new()),
            max,
            idle_timeout,
        })
    }

    /// The most recently used connection that is still open and fresh enough.
    fn take(&self) -> Option<TcpStream> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(idle) = conns.pop() {
            if idle.since.elapsed() > self.idle_timeout {
                continue;
            }
            // An idle connection has nothing to read: readable means the upstream closed it (or sent
            // something nobody asked for), and either way it cannot carry a request.
            match idle.stream.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(idle.stream),
                _ => continue,
            }
        }
        None
    }

    fn put(&self, stream: TcpStream) {
        let now = Instant::now();
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        // Oldest first: those past the idle timeout are closed as new ones come back.
        while conns
            .first()
            .is_some_and(|c| now.duration_since(c.since) > self.idle_timeout)
        {
            conns.remove(0);
        }
        if conns.len() < self.max {
            conns.push(Idle { stream, since: now });
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

/// Sends `req` to `target` on an idle connection from `idle` or a new one, and returns the answer once
/// its head has arrived; its body streams from the connection.
///
/// A reused connection that ends before any byte of an answer was most likely closed by the upstream
/// while idle, as the request went out: an `idempotent` request is sent once more on a fresh connection
/// when its body is in memory. Others get the error (retries are for idempotent requests only).
pub async fn send(
    idle: &Arc<IdleConns>,
    target: &Authority,
    connect_timeout: Duration,
    req: Request<ProxyBody>,
    idempotent: bool,
) -> Result<Response<ResponseBody>, Error> {
    let (mut parts, body) = req.into_parts();
    let framing = request_framing(&mut parts.headers, &body);
    let mut head = Vec::with_capacity(128 + 64 * parts.headers.len());
    encode_head(&parts, target, framing, &mut head);
    if let Some(stream) = idle.take() {
        let again = if idempotent { body.try_clone() } else { None };
        match exchange(stream, &head, body, framing, &parts.method, idle).await {
            Err(Error::ClosedEarly) => match again {
                Some(body) => {
                    let stream = connect(target, connect_timeout).await?;
                    exchange(stream, &head, body, framing, &parts.method, idle).await
                }
                None => Err(Error::ClosedEarly),
            },
            answered => answered,
        }
    } else {
        let stream = connect(target, connect_timeout).await?;
        exchange(stream, &head, body, framing, &parts.method, idle).await
    }
}

async fn connect(target: &Authority, timeout: Duration) -> Result<TcpStream, Error> {
    let host = target.host();
    // An IPv6 literal comes bracketed in an authority.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = target.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Error::Connect(e)),
        Err(_) => return Err(Error::ConnectTimeout(timeout)),
    };
    stream.set_nodelay(true).map_err(Error::Connect)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    socket2::SockRef::from(&stream)
        .set_tcp_keepalive(&keepalive)
        .map_err(Error::Connect)?;
    Ok(stream)
}

/// How the request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqFraming {
    Empty,
    Length(u64),
    Chunked,
}

/// Decides the request's framing and sets the headers that announce it: the Content-Length the client
/// sent (the server side has already refused conflicting ones), else the body's exact size, else
/// chunked. A Transfer-Encoding from the client never goes through as it came.
fn request_framing(headers: &mut HeaderMap, body: &ProxyBody) -> ReqFraming {
    headers.remove(header::TRANSFER_ENCODING);
    if body.is_end_stream() {
        if headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
        {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        return ReqFraming::Empty;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared {
        return ReqFraming::Length(n);
    }
    headers.remove(header::CONTENT_LENGTH);
    match body.size_hint().exact() {
        Some(n) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            ReqFraming::Length(n)
        }
        None => {
            headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            ReqFraming::Chunked
        }
    }
}

fn encode_head(parts: &http::request::Parts, target: &Authority, framing: ReqFraming, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if path.is_empty() { b"/" } else { path.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(header::HOST) {
        // The handler names the client's host (from :authority for HTTP/2 clients); a request with
        // neither gets the target's authority, as hyper's client gave it.
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(target.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    debug_assert!(framing != ReqFraming::Chunked || parts.headers.contains_key(header::TRANSFER_ENCODING));
    out.extend_from_slice(b"\r\n");
}

/// One request and the head of its answer on `stream`; the answer's body keeps the connection.
async fn exchange(
    mut stream: TcpStream,
    head: &[u8],
    body: ProxyBody,
    framing: ReqFraming,
    method: &Method,
    idle: &Arc<IdleConns>,
) -> Result<Response<ResponseBody>, Error> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let (parsed, request_sent) = {
        let (mut rd, mut wr) = stream.split();
        // The body is written while the answer is awaited: an upstream may answer (413, 401) before it
        // has read the whole request, and one that writes a large answer without reading would
        // otherwise deadlock against us.
        let write = write_request(&mut wr, head, body, framing);
        let read = read_head(&mut rd, &mut buf);
        tokio::pin!(write, read);
        let mut write_result: Option<Result<(), Error>> = None;
        let parsed = loop {
            tokio::select! {
                biased;
                w = &mut write, if write_result.is_none() => match w {
                    // The client's body failed (it went away, or passed the route's max_size): the
                    // upstream would wait for the rest forever.
                    Err(e @ Error::RequestBody(_)) => return Err(e),
                    w => write_result = Some(w),
                },
                r = &mut read => break r?,
            }
        };
        (parsed, matches!(write_result, Some(Ok(()))))
    };
    let (status, version, mut headers) = parsed;
    let (framing, keep_alive) = answer_framing(method, status, version, &mut headers)?;
    let mut body = ResponseBody {
        stream: Some(stream),
        buf,
        framing,
        // An answer that came before the whole request went out leaves the rest of the request on
        // the connection: it cannot carry another.
        home: (keep_alive && request_sent).then(|| idle.clone()),
    };
    if matches!(body.framing, Framing::Length(0)) {
        body.finish();
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    Ok(resp)
}

async fn write_request(
    wr: &mut WriteHalf<'_>,
    head: &[u8],
    mut body: ProxyBody,
    framing: ReqFraming,
) -> Result<(), Error> {
    if framing == ReqFraming::Empty {
        wr.write_all(head).await?;
        return Ok(());
    }
    let mut out = Vec::with_capacity(head.len() + 256);
    out.extend_from_slice(head);
    let mut sent = 0u64;
    let mut trailers = None;
    loop {
        // Frames already at hand are gathered behind the head; the bytes gathered so far leave before
        // waiting on a client that is slow to send the rest.
        let frame = match body.frame().now_or_never() {
            Some(f) => f,
            None => {
                flush(wr, &mut out).await?;
                body.frame().await
            }
        };
        let frame = match frame {
            None => break,
            Some(Err(e)) => return Err(Error::RequestBody(e)),
            Some(Ok(f)) => f,
        };
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(f) => {
                trailers = f.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            ReqFraming::Length(n) if sent > n => {
                return Err(Error::RequestBody("request body longer than its Content-Length".into()))
            }
            ReqFraming::Chunked => out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes()),
            _ => {}
        }
        if out.len() + data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            write_both(wr, &out, &data).await?;
            out.clear();
        }
        if framing == ReqFraming::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    match framing {
        ReqFraming::Length(n) if sent != n => {
            return Err(Error::RequestBody(
                "request body shorter than its Content-Length".into(),
            ))
        }
        ReqFraming::Chunked => {
            out.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    flush(wr, &mut out).await
}

async fn flush(wr: &mut WriteHalf<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Writes `a` then `b`, in one system call when the socket takes both.
async fn write_both(wr: &mut WriteHalf<'_>, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() {
        let n = wr.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    wr.write_all(b).await
}

type Head = (StatusCode, Version, HeaderMap);

/// Reads until a final (non-1xx) answer head is complete; interim answers (100 Continue) are skipped.
async fn read_head(rd: &mut tokio::net::tcp::ReadHalf<'_>, buf: &mut BytesMut) -> Result<Head, Error> {
    let mut received = false;
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(buf)? {
                if head.0.is_informational() {
                    if head.0 == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(Error::InvalidAnswer("101 to a request that did not ask to upgrade"));
                    }
                    continue;
                }
                return Ok(head);
            }
            if buf.len() >= MAX_HEAD {
                return Err(Error::InvalidAnswer("answer head too large"));
            }
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(buf).await {
            Ok(0) if !received => return Err(Error::ClosedEarly),
            Ok(0) => return Err(Error::InvalidAnswer("connection closed inside the answer head")),
            Ok(_) => received = true,
            Err(e) if !received && matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
                return Err(Error::ClosedEarly)
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Parses one answer head at the start of `buf` and removes it from there; `None` while incomplete.
///
/// A complete head is parsed twice: once in `buf` to learn its length, then again in the bytes split
/// off for it, so that header values can be slices of those bytes (no copy each) without noting their
/// places while httparse still borrows `buf`. A second pass over a small head costs less than the
/// bookkeeping; the header arrays are left uninitialised (initialising them cost more than parsing).
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Error> {
    let config = httparse::ParserConfig::default();
    let len = {
        let mut raw = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut answer = httparse::Response::new(&mut []);
        match config.parse_response_with_uninit_headers(&mut answer, buf, &mut raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Error::InvalidAnswer("too many header fields")),
            Err(_) => return Err(Error::InvalidAnswer("malformed answer head")),
        }
    };
    let bytes = buf.split_to(len).freeze();
    let mut raw = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    if !matches!(
        config.parse_response_with_uninit_headers(&mut answer, &bytes, &mut raw),
        Ok(httparse::Status::Complete(n)) if n == len
    ) {
        return Err(Error::InvalidAnswer("malformed answer head"));
    }
    let status = answer
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Error::InvalidAnswer("invalid status code"))?;
    let version = if answer.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(answer.headers.len());
    for h in answer.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Error::InvalidAnswer("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value))
            .map_err(|_| Error::InvalidAnswer("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(Some((status, version, headers)))
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// How the answer's body is delimited, and whether the connection may carry another request after it.
fn answer_framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), Error> {
    let mut keep_alive = version == Version::HTTP_11 && !has_token(headers, header::CONNECTION, "close");
    if method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Length(0), keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Both framings at once is how responses get smuggled: the coding wins, the length goes, and
        // the connection is not trusted with another request.
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if chunked_last {
            return Ok((Framing::Chunked(Chunk::Size), keep_alive));
        }
        return Ok((Framing::UntilClose, false));
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(Error::InvalidAnswer("invalid Content-Length"));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Error::InvalidAnswer("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::InvalidAnswer("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), keep_alive),
        None => (Framing::UntilClose, false),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// The body ends when the upstream closes the connection.
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of the current chunk are still to come.
    Data(u64),
    /// The CRLF after a chunk's data is next.
    DataEnd,
    /// The trailer section (perhaps empty) after the last chunk is next.
    Trailers,
}

/// The upstream's answer body, read from its connection as the client takes it.
pub struct ResponseBody {
    stream: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    /// Where the connection goes back once the body has ended cleanly; `None` when it must be closed.
    home: Option<Arc<IdleConns>>,
}

impl ResponseBody {
    /// The body has ended where its framing said: the connection goes back to its idle list, unless
    /// bytes beyond the answer arrived with it.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let stream = self.stream.take();
        if let (Some(home), Some(stream), true) = (self.home.take(), stream, self.buf.is_empty()) {
            home.put(stream);
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.framing = Framing::Done;
        self.stream = None;
        self.home = None;
        Poll::Ready(Some(Err(e)))
    }

    /// The next frame that the bytes already read make up; `None` when more must be read first (or the
    /// body has ended: see `framing`).
    fn decode(&mut self) -> Result<Option<Frame<Bytes>>, Error> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::UntilClose => {
                    return Ok((!self.buf.is_empty()).then(|| Frame::data(self.buf.split().freeze())));
                }
                Framing::Length(left) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(self.buf.len() as u64);
                    let data = self.buf.split_to(n as usize).freeze();
                    self.framing = Framing::Length(left - n);
                    if left == n {
                        self.finish();
                    }
                    return Ok(Some(Frame::data(data)));
                }
                Framing::Chunked(Chunk::Size) => {
                    let window = &self.buf[..self.buf.len().min(MAX_CHUNK_LINE)];
                    let Some(lf) = memchr::memchr(b'\n', window) else {
                        if window.len() == MAX_CHUNK_LINE {
                            return Err(Error::InvalidAnswer("chunk-size line too long"));
                        }
                        return Ok(None);
                    };
                    let size = parse_chunk_size(&window[..lf])?;
                    self.buf.advance(lf + 1);
                    self.framing = Framing::Chunked(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(self.buf.len() as u64);
                    let data = self.buf.split_to(n as usize).freeze();
                    self.framing = Framing::Chunked(if left == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    });
                    return Ok(Some(Frame::data(data)));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(Error::InvalidAnswer("chunk data not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let (len, fields) = match httparse::parse_headers(&self.buf, &mut raw) {
                        Ok(httparse::Status::Complete(done)) => done,
                        Ok(httparse::Status::Partial) if self.buf.len() < MAX_TRAILERS => return Ok(None),
                        Ok(httparse::Status::Partial) => return Err(Error::InvalidAnswer("trailer section too large")),
                        Err(_) => return Err(Error::InvalidAnswer("malformed trailer section")),
                    };
                    let mut trailers = HeaderMap::with_capacity(fields.len());
                    for f in fields {
                        let name = HeaderName::from_bytes(f.name.as_bytes())
                            .map_err(|_| Error::InvalidAnswer("invalid trailer name"))?;
                        let value = HeaderValue::from_bytes(f.value)
                            .map_err(|_| Error::InvalidAnswer("invalid trailer value"))?;
                        trailers.append(name, value);
                    }
                    self.buf.advance(len);
                    self.finish();
                    return Ok((!trailers.is_empty()).then(|| Frame::trailers(trailers)));
                }
            }
        }
    }
}

/// The size in a chunk-size line (without its LF): hex digits, optional extensions, then CR.
fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
    const BAD: Error = Error::InvalidAnswer("malformed chunk-size line");
    let line = line.strip_suffix(b"\r").ok_or(BAD)?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(BAD);
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') || rest.iter().any(|&b| b < 0x20 && b != b'\t') {
        return Err(BAD);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| BAD)?;
    u64::from_str_radix(hex, 16).map_err(|_| BAD)
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if this.framing == Framing::Done => return Poll::Ready(None),
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            let Some(stream) = this.stream.as_ref() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < READ_CHUNK / 4 {
                this.buf.reserve(READ_CHUNK);
            }
            let read = match stream.try_read_buf(&mut this.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(stream.poll_read_ready(cx)) {
                        return this.fail(e.into());
                    }
                    continue;
                }
                other => other,
            };
            match read {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.framing = Framing::Done;
                    this.stream = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(Error::InvalidAnswer("connection closed before the end of the body")),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body_from(framing: Framing, wire: &[u8]) -> ResponseBody {
        ResponseBody {
            stream: None,
            buf: BytesMut::from(wire),
            framing,
            home: None,
        }
    }

    /// Decodes what `wire` holds, fed in pieces of the given sizes: data, trailers, end reached.
    fn decode_in_pieces(
        framing: Framing,
        wire: &[u8],
        pieces: &[usize],
    ) -> Result<(Vec<u8>, Option<HeaderMap>, bool), Error> {
        let mut body = body_from(framing, b"");
        let (mut data, mut trailers) = (Vec::new(), None);
        let mut fed = 0;
        let mut sizes = pieces.iter().copied().cycle();
        loop {
            while let Some(frame) = body.decode()? {
                match frame.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(f) => trailers = f.into_trailers().ok(),
                }
            }
            if body.framing == Framing::Done || fed == wire.len() {
                return Ok((data, trailers, body.framing == Framing::Done));
            }
            let n = sizes.next().unwrap_or(1).max(1).min(wire.len() - fed);
            body.buf.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
        }
    }

    fn chunked(data: &[u8], sizes: &[usize], ext: bool, trailer: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut rest = data;
        let mut sizes = sizes.iter().copied().cycle();
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(1).max(1).min(rest.len());
            wire.extend_from_slice(format!("{n:X}").as_bytes());
            if ext {
                wire.extend_from_slice(b" ; name=\"v\"");
            }
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        wire.extend_from_slice(b"0\r\n");
        if trailer {
            wire.extend_from_slice(b"grpc-status: 0\r\nx-checksum: abc\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        wire
    }

    proptest! {
        #[test]
        fn chunked_bodies_decode_whatever_the_read_sizes(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            chunk_sizes in proptest::collection::vec(1usize..700, 1..6),
            read_sizes in proptest::collection::vec(1usize..300, 1..6),
            ext in any::<bool>(),
            trailer in any::<bool>(),
        ) {
            let wire = chunked(&data, &chunk_sizes, ext, trailer);
            let (got, trailers, done) = decode_in_pieces(Framing::Chunked(Chunk::Size), &wire, &read_sizes).unwrap();
            prop_assert!(done);
            prop_assert_eq!(got, data);
            prop_assert_eq!(trailers.is_some(), trailer);
            if let Some(t) = trailers {
                prop_assert_eq!(t.get("grpc-status").unwrap(), "0");
                prop_assert_eq!(t.get("x-checksum").unwrap(), "abc");
            }
        }

        #[test]
        fn length_bodies_stop_at_their_length(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            extra in proptest::collection::vec(any::<u8>(), 0..50),
            read_sizes in proptest::collection::vec(1usize..300, 1..6),
        ) {
            let mut wire = data.clone();
            wire.extend_from_slice(&extra);
            let (got, _, done) = decode_in_pieces(Framing::Length(data.len() as u64), &wire, &read_sizes).unwrap();
            prop_assert!(done || data.is_empty());
            prop_assert_eq!(got, data);
        }
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for wire in [
            &b"zz\r\nab\r\n0\r\n\r\n"[..],
            b"2\nab\r\n0\r\n\r\n",
            b"2\r\nabX\r\n0\r\n\r\n",
            b"-2\r\nab\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"2 x\r\nab\r\n0\r\n\r\n",
        ] {
            let got = decode_in_pieces(Framing::Chunked(Chunk::Size), wire, &[wire.len()]);
            assert!(
                matches!(got, Err(Error::InvalidAnswer(_))),
                "{:?} gave {got:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let endless = vec![b'1'; MAX_CHUNK_LINE + 10];
        assert!(decode_in_pieces(Framing::Chunked(Chunk::Size), &endless, &[100]).is_err());
    }

    fn head(wire: &str) -> Result<Option<Head>, Error> {
        parse_head(&mut BytesMut::from(wire.as_bytes()))
    }

    fn framing_of(method: Method, wire: &str) -> Result<(Framing, bool), Error> {
        let (status, version, mut headers) = head(wire).unwrap().unwrap();
        answer_framing(&method, status, version, &mut headers)
    }

    #[test]
    fn answer_framing_follows_rfc_9112() {
        let get = || Method::GET;
        assert_eq!(
            framing_of(get(), "HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n").unwrap(),
            (Framing::Length(12), true)
        );
        assert_eq!(
            framing_of(get(), "HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n").unwrap(),
            (Framing::Length(12), true)
        );
        assert!(framing_of(
            get(),
            "HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-length: 13\r\n\r\n"
        )
        .is_err());
        assert!(framing_of(get(), "HTTP/1.1 200 OK\r\ncontent-length: +12\r\n\r\n").is_err());
        assert_eq!(
            framing_of(get(), "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n").unwrap(),
            (Framing::Chunked(Chunk::Size), true)
        );
        // Both framings: chunked wins and the connection is not reused.
        assert_eq!(
            framing_of(
                get(),
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            .unwrap(),
            (Framing::Chunked(Chunk::Size), false)
        );
        assert_eq!(
            framing_of(get(), "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing_of(get(), "HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing_of(
                get(),
                "HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 1\r\n\r\n"
            )
            .unwrap(),
            (Framing::Length(1), false)
        );
        assert_eq!(
            framing_of(get(), "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").unwrap(),
            (Framing::Length(1), false)
        );
        assert_eq!(
            framing_of(Method::HEAD, "HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n").unwrap(),
            (Framing::Length(0), true)
        );
        assert_eq!(
            framing_of(get(), "HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n").unwrap(),
            (Framing::Length(0), true)
        );
    }

    #[test]
    fn heads_are_parsed_and_bounded() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 201 Created\r\nX-A: one\r\nx-a: two\r\n\r\nbody"[..]);
        let (status, version, headers) = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!((status, version), (StatusCode::CREATED, Version::HTTP_11));
        let all: Vec<_> = headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(all, ["one", "two"]);
        assert_eq!(&buf[..], b"body", "only the head is taken from the buffer");
        assert!(head("HTTP/1.1 200 OK\r\nx: 1\r\n").unwrap().is_none(), "incomplete");
        assert!(matches!(head("HTTP/1.1 2000 OK\r\n\r\n"), Err(Error::InvalidAnswer(_))));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nbad name: 1\r\n\r\n"),
            Err(Error::InvalidAnswer(_))
        ));
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(matches!(
            head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")),
            Err(Error::InvalidAnswer("too many header fields"))
        ));
    }

    #[test]
    fn request_framing_announces_the_body() {
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert_eq!(request_framing(&mut h, &ProxyBody::Empty), ReqFraming::Empty);
        assert!(!h.contains_key(header::TRANSFER_ENCODING));
        let held = || ProxyBody::buffered(Bytes::from_static(b"hello"), None);
        let mut h = HeaderMap::new();
        assert_eq!(request_framing(&mut h, &held()), ReqFraming::Length(5));
        assert_eq!(h.get(header::CONTENT_LENGTH).unwrap(), "5");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("1"));
        let mut h = HeaderMap::new();
        let with_trailers = ProxyBody::buffered(Bytes::from_static(b"hello"), Some(trailers));
        assert_eq!(request_framing(&mut h, &with_trailers), ReqFraming::Chunked);
        assert_eq!(h.get(header::TRANSFER_ENCODING).unwrap(), "chunked");
    }

    /// A one-connection upstream on loopback that answers each request with `answer` and reports what
    /// it read.
    async fn upstream_once(answer: &'static [u8]) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).await.unwrap();
            // Hold the connection open a moment so the client sees the answer's framing, not a close.
            tokio::time::sleep(Duration::from_millis(50)).await;
            got
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_complete_answer_returns_its_connection() {
        let (addr, upstream) = upstream_once(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-up: 1\r\n\r\nhello").await;
        let idle = IdleConns::new(8, Duration::from_secs(30));
        let target: Authority = addr.to_string().parse().unwrap();
        let req = Request::get("/items?q=1")
            .header("x-req", "a")
            .body(ProxyBody::Empty)
            .unwrap();
        let resp = send(&idle, &target, Duration::from_secs(1), req, true).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-up"], "1");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        assert_eq!(idle.len(), 1, "the connection went back to the idle list");
        let seen = String::from_utf8(upstream.await.unwrap()).unwrap();
        assert!(seen.starts_with("GET /items?q=1 HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains(&format!("host: {addr}\r\n")), "{seen}");
        assert!(seen.contains("x-req: a\r\n"), "{seen}");
    }

    #[tokio::test]
    async fn an_answer_that_overruns_its_framing_closes_the_connection() {
        let (addr, _upstream) = upstream_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA").await;
        let idle = IdleConns::new(8, Duration::from_secs(30));
        let target: Authority = addr.to_string().parse().unwrap();
        let req = Request::get("/").body(ProxyBody::Empty).unwrap();
        let resp = send(&idle, &target, Duration::from_secs(1), req, true).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        assert_eq!(idle.len(), 0, "bytes beyond the answer: the connection is not reused");
    }
}
