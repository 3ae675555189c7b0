//! The WebSocket relay after an upgrade: frames are parsed in both directions (RFC 6455), client messages
//! are reassembled from their fragments (inflated when permessage-deflate is on), inspected by the
//! route's detectors before they are forwarded, and an attack closes the connection with 1008 (policy
//! violation). Frames go on as they came (still masked, still compressed): the relay holds a message
//! until it is complete and decided, never rewrites it.
//!
//! A WebSocket opened over HTTP/2 (RFC 8441, an extended CONNECT with `:protocol = websocket`) is
//! carried to the upstream as an HTTP/1.1 upgrade (RFC 6455): the frames are the same on both sides, only
//! the opening handshake differs, so the relay is the same.
//!
//! Per connection the relay keeps one message being assembled (bounded by `[routes.websocket]
//! max_message`, 1009 past it), a token bucket for the message rate (1008 past it), the inflate window
//! when the client keeps context, and a few buffers.

use crate::inspect::RequestContext;
use crate::runtime::{Runtime, Shared};
use bytes::BytesMut;
use rampart_policy::Mode;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// What the relay needs to inspect a connection's messages like the request that opened it.
pub struct WsGuard {
    pub rt: Arc<Runtime>,
    pub shared: Arc<Shared>,
    pub host: String,
    pub path: String,
    pub mode: Mode,
    pub client_ip: IpAddr,
    pub request_id: String,
    /// What the inspector sees of the request for each message, JSON or text: built once per
    /// connection (see [`message_parts`]).
    pub message_parts: Option<[http::request::Parts; 2]>,
}

/// The request a message is inspected as: a POST to the upgrade's path with the message as its body,
/// as JSON and as text.
pub fn message_parts(path: &str, host: &str) -> Option<[http::request::Parts; 2]> {
    let parts = |ctype: &'static str| {
        http::Request::post(path)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::HOST, host)
            .body(())
            .ok()
            .map(|r| r.into_parts().0)
    };
    Some([parts("application/json")?, parts("text/plain")?])
}

/// Whether `req` opens a WebSocket over HTTP/2 (RFC 8441 section 4: CONNECT with `:protocol`).
pub fn is_h2_websocket<B>(req: &http::Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        && req.method() == http::Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// Turns an RFC 8441 CONNECT into the HTTP/1.1 upgrade request an upstream expects (RFC 6455 section
/// 4.1), keeping the client's subprotocols and extensions. Returns the `Sec-WebSocket-Accept` value the
/// upstream must answer with.
pub fn h2_connect_to_h1_upgrade(parts: &mut http::request::Parts) -> String {
    use base64::Engine;
    use http::header::{HeaderValue, CONNECTION, UPGRADE};
    parts.method = http::Method::GET;
    parts.version = http::Version::HTTP_11;
    parts.extensions.remove::<hyper::ext::Protocol>();
    let mut nonce = [0u8; 16];
    // A random nonce (RFC 6455 4.1); should the OS source fail, a fixed one still opens the connection.
    let _ = getrandom::fill(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let h = &mut parts.headers;
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(
        "sec-websocket-key",
        HeaderValue::from_str(&key).expect("base64 is a valid header value"),
    );
    h.entry("sec-websocket-version")
        .or_insert(HeaderValue::from_static("13"));
    accept_value(&key)
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 section 4.2.2).
fn accept_value(key: &str) -> String {
    use base64::Engine;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// Close codes (RFC 6455 section 7.4.1).
const PROTOCOL_ERROR: u16 = 1002;
const POLICY_VIOLATION: u16 = 1008;
const TOO_BIG: u16 = 1009;

/// A frame's header, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Header length in bytes.
    head: usize,
    payload: u64,
}

/// Parses a frame header at the start of `b`; Ok(None) when more bytes are needed.
fn header(b: &[u8]) -> Result<Option<Header>, u16> {
    if b.len() < 2 {
        return Ok(None);
    }
    let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0f);
    let masked = b[1] & 0x80 != 0;
    let (mut head, payload) = match b[1] & 0x7f {
        126 if b.len() < 4 => return Ok(None),
        126 => (4, u64::from(u16::from_be_bytes([b[2], b[3]]))),
        127 if b.len() < 10 => return Ok(None),
        127 => (10, u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"))),
        n => (2, u64::from(n)),
    };
    let mask = if masked {
        if b.len() < head + 4 {
            return Ok(None);
        }
        let m = [b[head], b[head + 1], b[head + 2], b[head + 3]];
        head += 4;
        Some(m)
    } else {
        None
    };
    let control = opcode >= 8;
    if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) || (control && (!fin || payload > 125)) || rsv & 0x30 != 0 {
        return Err(PROTOCOL_ERROR);
    }
    Ok(Some(Header {
        fin,
        rsv1: rsv & 0x40 != 0,
        opcode,
        mask,
        head,
        payload,
    }))
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(120)]);
    let mut f = vec![0x88, payload.len() as u8];
    f.extend_from_slice(&payload);
    f
}

/// A close frame as a client sends it, masked (RFC 6455 5.3), for the upstream when the gateway ends a
/// connection the client did not close.
fn masked_close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut f = close_frame(code, reason);
    let mut key = [0u8; 4];
    // The key only has to be unpredictable to the page (5.3); should the OS source fail, a fixed key
    // still makes a valid frame.
    let _ = getrandom::fill(&mut key);
    let payload: Vec<u8> = mask(&f[2..], key).collect();
    f[1] |= 0x80;
    f.truncate(2);
    f.extend_from_slice(&key);
    f.extend_from_slice(&payload);
    f
}

/// `payload` masked (or unmasked: the same XOR) with `key` (RFC 6455 5.3).
fn mask(payload: &[u8], key: [u8; 4]) -> impl Iterator<Item = u8> + '_ {
    payload.iter().enumerate().map(move |(i, b)| b ^ key[i % 4])
}

/// How long the upstream is given to answer our close before its connection is dropped.
const UPSTREAM_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The client's write half, shared by both directions. `closed` is set, under the lock, by whichever
/// direction sends the client our close frame: nothing may follow it (RFC 6455 5.5.1), so the other
/// direction stops writing when it next takes the lock.
struct ClientWriter<W> {
    io: W,
    closed: bool,
}

impl<W: AsyncWrite + Unpin> ClientWriter<W> {
    /// Sends the client our close frame and ends the connection's write side.
    async fn close(&mut self, code: u16, reason: &str) {
        self.closed = true;
        let _ = self.io.write_all(&close_frame(code, reason)).await;
        let _ = self.io.shutdown().await;
    }
}

/// permessage-deflate as the upgrade answer negotiated it (RFC 7692 section 7.1): whether each side
/// starts every message with a fresh compression context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deflate {
    pub client_reset: bool,
    pub server_reset: bool,
}

/// The permessage-deflate parameters of an upgrade answer; None when it did not negotiate compression.
pub fn deflate_params(resp_headers: &http::HeaderMap) -> Option<Deflate> {
    let ext = resp_headers
        .get_all("sec-websocket-extensions")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    ext.contains("permessage-deflate").then(|| Deflate {
        client_reset: ext.contains("client_no_context_takeover"),
        server_reset: ext.contains("server_no_context_takeover"),
    })
}

struct Inflater {
    z: flate2::Decompress,
    reset_each: bool,
}

impl Inflater {
    fn inflate(&mut self, data: &[u8], max: usize) -> Option<Vec<u8>> {
        if self.reset_each {
            self.z.reset(false);
        }
        let mut input = data.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(data.len() * 3);
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if consumed >= input.len() {
                return Some(out);
            }
            if out.len() > max {
                return None;
            }
            out.reserve(16 * 1024);
            let before = (self.z.total_in(), self.z.total_out());
            self.z
                .decompress_vec(&input[consumed..], &mut out, flate2::FlushDecompress::Sync)
                .ok()?;
            if (self.z.total_in(), self.z.total_out()) == before {
                return Some(out);
            }
        }
    }
}

/// One direction's message in the making (RFC 6455 section 5.4): its frames as received (forwarded
/// unchanged once the message is decided), its payload unmasked, and the inflate context when
/// permessage-deflate is on.
struct Assembler {
    held: Vec<u8>,
    message: Vec<u8>,
    /// A message is in progress, compressed or not.
    compressed: Option<bool>,
    inflater: Option<Inflater>,
    max: usize,
}

impl Assembler {
    /// `reset_each`: None without compression, else whether the sender resets its context per message.
    fn new(reset_each: Option<bool>, max: usize) -> Self {
        Assembler {
            held: Vec::new(),
            message: Vec::new(),
            compressed: None,
            inflater: reset_each.map(|reset_each| Inflater {
                z: flate2::Decompress::new(false),
                reset_each,
            }),
            max,
        }
    }

    /// Whether a data frame with this header would take the message past the limit; asked before the
    /// frame is read, so that a huge frame is never buffered.
    fn too_big(&self, h: &Header) -> bool {
        h.payload > self.max as u64 || self.message.len() as u64 + h.payload > self.max as u64
    }

    /// Adds one data frame (header `h`, whole `frame`); returns the message's payload, inflated, once
    /// its last frame is in. Errors are close codes.
    fn push(&mut self, h: &Header, frame: &[u8]) -> Result<Option<Vec<u8>>, u16> {
        match (h.opcode, self.compressed) {
            (1 | 2, None) => self.compressed = Some(h.rsv1),
            (0, Some(_)) => {}
            _ => return Err(PROTOCOL_ERROR),
        }
        self.held.extend_from_slice(frame);
        let payload = &frame[h.head..];
        match h.mask {
            Some(m) => self.message.extend(mask(payload, m)),
            None => self.message.extend_from_slice(payload),
        }
        if !h.fin {
            return Ok(None);
        }
        let compressed = self.compressed.take().expect("a message in progress");
        let payload = match (compressed, self.inflater.as_mut()) {
            (true, Some(z)) => z.inflate(&self.message, self.max).ok_or(TOO_BIG)?,
            _ => std::mem::take(&mut self.message),
        };
        self.message.clear();
        Ok(Some(payload))
    }
}

/// Relays an upgraded connection. Without a guard (route mode off) bytes are copied as they come.
pub async fn relay<C, U>(client: C, upstream: U, guard: Option<WsGuard>, deflate: Option<Deflate>)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(guard) = guard else {
        let (mut client, mut upstream) = (client, upstream);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    };
    let guard = Arc::new(guard);
    // The route the upgrade request matched, looked up once for the connection's life (the runtime it
    // belongs to is held by the guard).
    let route = guard.rt.policy.routes.find(&guard.host, &guard.path);
    let ws = route.map(|r| r.websocket);
    let max_message = ws.map_or(1 << 20, |w| w.max_message);
    let (mut cr, cw) = tokio::io::split(client);
    let (ur, mut uw) = tokio::io::split(upstream);
    let cw = Arc::new(Mutex::new(ClientWriter { io: cw, closed: false }));
    // Set when the server's direction closed the connection on a message of its own.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_side = ws
        .is_some_and(|w| w.inspect_server)
        .then(|| Assembler::new(deflate.map(|d| d.server_reset), max_message));
    let to_client = tokio::spawn(server_to_client(ur, cw.clone(), guard.clone(), server_side, stop_tx));
    // Message rate: a token bucket per connection (messages per second, burst at once).
    let (rate, burst) = ws.map_or((100.0, 200.0), |w| {
        (f64::from(w.messages_per_second), f64::from(w.burst))
    });
    let mut tokens = burst;
    let mut refilled = std::time::Instant::now();
    let mut client_side = Assembler::new(deflate.map(|d| d.client_reset), max_message);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Frames decided during one read, written upstream together: a burst of messages costs one write.
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    // Set when the gateway, not the client, ends the connection: the upstream gets a close frame too.
    let mut ended_by_us: Option<u16> = None;
    let mut server_done = false;
    loop {
        // Every complete frame of what was read is decided first; what passes goes upstream in one write,
        // before a close of ours (a burst of messages costs one write, and the frames let through before
        // an attack still arrive).
        let closing = loop {
            let h = match header(&buf) {
                Ok(Some(h)) => h,
                Ok(None) => break None,
                Err(code) => break Some((code, "protocol error")),
            };
            if h.mask.is_none() {
                // A client must mask every frame (RFC 6455 5.1).
                break Some((PROTOCOL_ERROR, "unmasked client frame"));
            }
            if h.opcode < 8 && client_side.too_big(&h) {
                break Some((TOO_BIG, "message too big"));
            }
            let total = h.head + h.payload as usize;
            if buf.len() < total {
                break None;
            }
            let frame = buf.split_to(total);
            if h.opcode >= 8 {
                // Control frames go on at once, between the fragments of a message if need be.
                out.extend_from_slice(&frame);
                continue;
            }
            let payload = match client_side.push(&h, &frame) {
                Ok(None) => continue,
                Ok(Some(p)) => p,
                Err(TOO_BIG) => break Some((TOO_BIG, "message too big")),
                Err(code) => break Some((code, "bad fragmentation")),
            };
            let now = std::time::Instant::now();
            tokens = (tokens + now.duration_since(refilled).as_secs_f64() * rate).min(burst);
            refilled = now;
            if tokens < 1.0 && guard.mode == Mode::Block {
                break Some((POLICY_VIOLATION, "message rate"));
            }
            tokens -= 1.0;
            if route.is_some_and(|r| inspect_message(&guard, r, Direction::FromClient, &payload)) {
                break Some((POLICY_VIOLATION, "blocked by policy"));
            }
            out.extend_from_slice(&client_side.held);
            client_side.held.clear();
        };
        if !out.is_empty() {
            if uw.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if let Some((code, reason)) = closing {
            // The writer is taken first (a server frame being written finishes), and marked closed so
            // that the server's direction writes nothing after our close frame.
            cw.lock().await.close(code, reason).await;
            ended_by_us = Some(code);
            break;
        }
        tokio::select! {
            r = cr.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            stopped = &mut stop_rx, if !server_done => match stopped {
                // The server's direction closed the connection: nothing more goes upstream.
                Ok(()) => {
                    ended_by_us = Some(POLICY_VIOLATION);
                    break;
                }
                // It ended on its own: the client may still answer the close.
                Err(_) => server_done = true,
            },
        }
    }
    if let Some(code) = ended_by_us {
        // The server learns why its client went away, and reads what was forwarded before: dropping the
        // socket while it still writes would answer it with a reset that discards its unread input.
        let _ = uw
            .write_all(&masked_close_frame(code, "closed by gateway policy"))
            .await;
    }
    let _ = uw.shutdown().await;
    // The server's remaining frames still reach the client unless we closed it; after our close, its
    // direction reads the upstream to its end and drops what comes, for UPSTREAM_CLOSE_WAIT at most.
    if ended_by_us.is_some() {
        let abort = to_client.abort_handle();
        if tokio::time::timeout(UPSTREAM_CLOSE_WAIT, to_client).await.is_err() {
            abort.abort();
        }
    } else {
        let _ = to_client.await;
    }
}

/// The server's direction: whole frames, so that a close frame of ours never lands inside one of
/// theirs; with `inspect` (the route's `inspect_server`), each message is held until it is complete and
/// inspected, and an attack closes the connection (1008) and tells the client's direction through `stop`.
async fn server_to_client<R, W>(
    mut ur: R,
    cw: Arc<Mutex<ClientWriter<W>>>,
    guard: Arc<WsGuard>,
    mut inspect: Option<Assembler>,
    stop: tokio::sync::oneshot::Sender<()>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Looked up once for this direction's life, like the client's (the guard holds the runtime).
    let route = guard.rt.policy.routes.find(&guard.host, &guard.path);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Frames decided during one read, written to the client together (one lock, one write).
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        // (close code and reason, or None; whether the bytes left are not WebSocket framing)
        let (closing, unframed) = loop {
            let h = match header(&buf) {
                Ok(Some(h)) => h,
                Ok(None) => break (None, false),
                Err(_) if inspect.is_some() => break (Some((PROTOCOL_ERROR, "server protocol error")), false),
                Err(_) => break (None, true),
            };
            if let Some(a) = inspect.as_ref() {
                if h.opcode < 8 && a.too_big(&h) {
                    break (Some((TOO_BIG, "server message too big")), false);
                }
            }
            let total = h.head as u64 + h.payload;
            if (buf.len() as u64) < total {
                break (None, false);
            }
            let frame = buf.split_to(total as usize);
            match inspect.as_mut() {
                Some(a) if h.opcode < 8 => match a.push(&h, &frame) {
                    Ok(None) => {}
                    Ok(Some(payload)) => {
                        if route.is_some_and(|r| inspect_message(&guard, r, Direction::FromServer, &payload)) {
                            break (Some((POLICY_VIOLATION, "blocked by policy")), false);
                        }
                        out.extend_from_slice(&a.held);
                        a.held.clear();
                    }
                    Err(code) => break (Some((code, "server protocol error")), false),
                },
                _ => out.extend_from_slice(&frame),
            }
        };
        if !out.is_empty() || closing.is_some() {
            let mut w = cw.lock().await;
            if w.closed {
                drop(w);
                return drain(ur).await;
            }
            if w.io.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            if let Some((code, reason)) = closing {
                w.close(code, reason).await;
                drop(w);
                let _ = stop.send(());
                return drain(ur).await;
            }
        }
        if unframed {
            // Not WebSocket framing from the server: pass the rest through unparsed, a chunk at a time so
            // that a close of ours waits for one chunk at most.
            let mut chunk = vec![0u8; 16 * 1024];
            let mut pending = buf.split().to_vec();
            loop {
                let mut w = cw.lock().await;
                if w.closed {
                    drop(w);
                    return drain(ur).await;
                }
                if w.io.write_all(&pending).await.is_err() {
                    return;
                }
                drop(w);
                match ur.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending = chunk[..n].to_vec(),
                }
            }
        }
        match ur.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let mut w = cw.lock().await;
                if !w.closed {
                    let _ = w.io.shutdown().await;
                }
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Reads the upstream to its end after the client was closed, dropping what comes, for at most
/// [`UPSTREAM_CLOSE_WAIT`].
async fn drain<R: AsyncRead + Unpin>(mut ur: R) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(UPSTREAM_CLOSE_WAIT, async {
        while let Ok(n) = ur.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    FromClient,
    FromServer,
}

/// Inspects one message; true when the connection must be closed (an attack on a block route).
fn inspect_message(g: &WsGuard, route: &rampart_policy::Route, direction: Direction, payload: &[u8]) -> bool {
    let Some([json, text]) = &g.message_parts else {
        return false;
    };
    let parts = match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => json,
        _ => text,
    };
    let inspection = g.rt.inspector.inspect(&RequestContext {
        route,
        parts,
        body: payload,
        body_truncated: false,
        client_ip: g.client_ip,
        message: true,
    });
    if !inspection.attack {
        return false;
    }
    let block = g.mode == Mode::Block;
    if let Some(bus) = g.shared.events() {
        let (from, point_prefix) = match direction {
            Direction::FromClient => ("websocket message", "ws."),
            Direction::FromServer => ("websocket server message", "ws.server."),
        };
        bus.emit(crate::inspect::message_event(crate::inspect::MessageEvent {
            request_id: &g.request_id,
            client_ip: g.client_ip,
            method: "WEBSOCKET",
            host: &g.host,
            path: &g.path,
            route: &route.name,
            inspection: &inspection,
            block,
            reason: if block {
                format!("{from}: connection closed with 1008")
            } else {
                format!("{from} (monitor)")
            },
            point_prefix,
        }));
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_bad_frames_are_refused() {
        assert_eq!(header(&[0x81]), Ok(None));
        let h = header(&[0x81, 0x85, 1, 2, 3, 4]).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.head, h.payload, h.mask),
            (true, 1, 6, 5, Some([1, 2, 3, 4]))
        );
        let h = header(&[0x02, 126, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.fin, h.payload, h.head), (false, 256, 4));
        assert_eq!(header(&[0x83, 0x00]), Err(PROTOCOL_ERROR), "reserved opcode");
        assert_eq!(header(&[0x09, 0x00]), Err(PROTOCOL_ERROR), "fragmented ping");
        assert_eq!(header(&[0x89, 126, 0, 200]), Err(PROTOCOL_ERROR), "long ping");
        assert_eq!(header(&[0xA1, 0x00]), Err(PROTOCOL_ERROR), "RSV2");
        assert_eq!(close_frame(1008, "x"), vec![0x88, 3, 0x03, 0xF0, b'x']);
    }

    #[test]
    fn an_extended_connect_becomes_an_http1_upgrade() {
        // The example handshake of RFC 6455 section 1.3.
        assert_eq!(accept_value("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let mut req = http::Request::connect("https://chat.example/ws/room")
            .version(http::Version::HTTP_2)
            .header("sec-websocket-protocol", "graphql-transport-ws")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert!(is_h2_websocket(&req));
        let (mut parts, ()) = req.into_parts();
        let accept = h2_connect_to_h1_upgrade(&mut parts);
        assert_eq!((parts.method.as_str(), parts.version), ("GET", http::Version::HTTP_11));
        let key = parts.headers["sec-websocket-key"].to_str().unwrap();
        assert_eq!(accept, accept_value(key));
        assert_eq!(parts.headers["upgrade"], "websocket");
        assert_eq!(parts.headers["sec-websocket-version"], "13");
        assert_eq!(parts.headers["sec-websocket-protocol"], "graphql-transport-ws");
        let plain = http::Request::connect("x:443")
            .version(http::Version::HTTP_2)
            .body(())
            .unwrap();
        assert!(!is_h2_websocket(&plain), "a plain CONNECT is not a WebSocket");
    }

    #[test]
    fn deflate_is_read_from_the_upgrade_answer() {
        let mut h = http::HeaderMap::new();
        assert_eq!(deflate_params(&h), None);
        h.insert(
            "sec-websocket-extensions",
            "permessage-deflate; client_no_context_takeover".parse().unwrap(),
        );
        assert_eq!(
            deflate_params(&h),
            Some(Deflate {
                client_reset: true,
                server_reset: false
            })
        );
    }

    #[test]
    fn compressed_messages_inflate_with_context_kept() {
        let mut z = flate2::Compress::new(flate2::Compression::default(), false);
        let mut compress = |s: &[u8]| {
            let mut out = Vec::with_capacity(s.len() + 64);
            z.compress_vec(s, &mut out, flate2::FlushCompress::Sync).unwrap();
            assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
            out.truncate(out.len() - 4);
            out
        };
        let a = compress(b"hello hello hello");
        let b = compress(b"hello hello hello again");
        let mut inf = Inflater {
            z: flate2::Decompress::new(false),
            reset_each: false,
        };
        assert_eq!(inf.inflate(&a, 1 << 20).unwrap(), b"hello hello hello");
        assert_eq!(inf.inflate(&b, 1 << 20).unwrap(), b"hello hello hello again");
    }
}
