//! WebSocket messages through the real binary, with a real server and client (tokio-tungstenite): chat
//! traffic (JSON with prose, fragmented messages, pings) passes both ways; an attack inside a message
//! closes the connection with 1008 before it reaches the server, and is an event; so does a flood of
//! messages past the route's rate.
//!
//! Compressed (permessage-deflate, context kept) and fragmented messages are inflated and inspected, over
//! an HTTP/1.1 upgrade and over HTTP/2 (RFC 8441 extended CONNECT, relayed to an HTTP/1.1 upstream).

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// An echo server that records the text messages it received.
async fn echo_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    match m {
                        Message::Text(t) => {
                            s.lock().unwrap().push(t.to_string());
                            if ws.send(Message::Text(format!("echo: {t}"))).await.is_err() {
                                return;
                            }
                        }
                        Message::Close(_) => return,
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_passes_and_an_attack_in_a_message_closes_with_1008() {
    let (backend, seen) = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let routes = format!(
        r#"{CHAT_ROUTE}[routes.websocket]
messages_per_second = 5
burst = 10

[[routes]]
name = "rest"
path = "/"
upstream = "chat"
mode = "block"
{EVENTS_TO_FILE}"#
    );
    let config = gateway_config(port, backend, &routes);
    let proc = run_with_config(dir.path(), &config);
    let url = format!("ws://127.0.0.1:{port}/ws/room/42");
    let mut ws = None;
    for _ in 0..100 {
        if let Ok((c, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            ws = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ws = ws.unwrap_or_else(|| panic!("no WebSocket through the gateway: {}", proc.dump()));

    // Chat: JSON with prose, apostrophes and a code span; a ping in between.
    let chat = [
        r#"{"type":"message","text":"Hi Seán, it's O'Brien -- I'll select the blue one from the list; `git pull` first?"}"#,
        r#"{"type":"typing","user":"zoë"}"#,
        "plain text: see you at 5 <3",
    ];
    for m in chat {
        ws.send(Message::Text(m.to_string())).await.unwrap();
        ws.send(Message::Ping(b"p".to_vec())).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
                Some(Ok(Message::Text(t))) => {
                    assert_eq!(t, format!("echo: {m}"));
                    break;
                }
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    // A message in three fragments is reassembled, inspected and delivered whole.
    ws.send(Message::Frame(Frame::message(
        b"{\"text\":\"part one, ".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        b"part two, ".to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        b"part three\"}".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let echoed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(_))) => {}
            other => break other,
        }
    };
    assert!(
        matches!(&echoed, Some(Ok(Message::Text(t))) if t == r#"echo: {"text":"part one, part two, part three"}"#),
        "{echoed:?}"
    );

    // An attack split over two fragments: closed with 1008, never delivered.
    ws.send(Message::Frame(Frame::message(
        b"{\"q\":\"x' UNION SEL".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        b"ECT password FROM users--\"}".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(Message::Close(c))) => break c,
            Some(Ok(Message::Pong(_))) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|c| c.code), Some(CloseCode::Policy));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got.iter().all(|m| !m.contains("UNION")),
        "the attack reached the server: {got:?}"
    );

    // A flood of messages on a new connection is closed once the burst is spent.
    let (mut flood, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    for i in 0..30 {
        if flood.send(Message::Text(format!("{{\"n\":{i}}}"))).await.is_err() {
            break;
        }
    }
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), flood.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(_))) => {}
            Some(Ok(Message::Close(c))) => break c.map(|c| c.code),
            other => panic!("expected echoes then a close, got {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Policy));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // At most the burst (and the one in flight) reached the server; how many it read before the
    // connection closed under it depends on timing.
    let flooded = seen.lock().unwrap().iter().filter(|m| m.starts_with("{\"n\"")).count();
    assert!(flooded <= 11, "{flooded} messages passed a burst of 10");

    // The event names the route and the finding.
    let events = events_until(dir.path(), |events| events.contains("WEBSOCKET")).await;
    let e: serde_json::Value = serde_json::from_str(
        events
            .lines()
            .find(|l| l.contains("WEBSOCKET"))
            .unwrap_or_else(|| panic!("no websocket event: {events}")),
    )
    .unwrap();
    assert_eq!(e["route"], "chat");
    assert_eq!(e["action"], "block");
    assert!(
        e["findings"].as_array().unwrap().iter().any(|f| f["class"] == "sqli"),
        "{e}"
    );
    drop(proc);
}

// ---------------------------------------------------------------------------------------------------------
// Compressed messages and WebSocket over HTTP/2 (RFC 8441), with frames written by hand: tungstenite
// speaks neither permessage-deflate nor HTTP/2.

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2).
fn accept_value(key: &str) -> String {
    use base64::Engine;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// One frame: (fin, rsv1, opcode, payload unmasked).
type RawFrame = (bool, bool, u8, Vec<u8>);

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<RawFrame> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await.ok()?;
    let len = match h[1] & 0x7f {
        126 => u64::from(r.read_u16().await.ok()?),
        127 => r.read_u64().await.ok()?,
        n => u64::from(n),
    };
    let mask = if h[1] & 0x80 != 0 {
        let mut m = [0u8; 4];
        r.read_exact(&mut m).await.ok()?;
        Some(m)
    } else {
        None
    };
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await.ok()?;
    if let Some(m) = mask {
        payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= m[i % 4]);
    }
    Some((h[0] & 0x80 != 0, h[0] & 0x40 != 0, h[0] & 0x0f, payload))
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, (fin, rsv1, opcode, payload): RawFrame, masked: bool) {
    let mut f = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n if n < 65536 => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(mask_bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(&payload);
    }
    w.write_all(&f).await.unwrap();
}

/// permessage-deflate with the context kept across messages (RFC 7692 section 7.2.1).
struct Deflater(flate2::Compress);

impl Deflater {
    fn new() -> Self {
        Deflater(flate2::Compress::new(flate2::Compression::default(), false))
    }
    fn compress(&mut self, s: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() + 64);
        self.0.compress_vec(s, &mut out, flate2::FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }
}

fn inflate(z: &mut flate2::Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(4096);
    z.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    out
}

/// A WebSocket server that accepts permessage-deflate (context kept), records each message it receives
/// (inflated) and answers "got N bytes" uncompressed.
async fn deflate_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = stream.read_u8().await else { return };
                    head.push(b);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let Some(key) = header("sec-websocket-key") else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                let offered = header("sec-websocket-extensions").is_some_and(|e| e.contains("permessage-deflate"));
                let mut resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {}\r\n",
                    accept_value(&key)
                );
                if offered {
                    resp.push_str("sec-websocket-extensions: permessage-deflate\r\n");
                }
                resp.push_str("\r\n");
                stream.write_all(resp.as_bytes()).await.unwrap();
                let mut z = flate2::Decompress::new(false);
                while let Some((_, rsv1, opcode, payload)) = read_frame(&mut stream).await {
                    match opcode {
                        1 | 2 => {
                            let m = if rsv1 { inflate(&mut z, &payload) } else { payload };
                            let answer = format!("got {} bytes", m.len());
                            s.lock().unwrap().push(String::from_utf8_lossy(&m).into_owned());
                            write_frame(&mut stream, (true, false, 1, answer.into_bytes()), false).await;
                        }
                        8 => return,
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Sends a benign compressed message (context kept from the one before), then a compressed attack, and
/// checks that the first arrives whole and the second closes the connection with 1008 unseen.
async fn compressed_chat<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, seen: &Arc<Mutex<Vec<String>>>, tag: &str) {
    let mut z = Deflater::new();
    for text in [
        format!(r#"{{"type":"message","text":"{tag}: hi Seán -- it's O'Brien; I'll select the blue one"}}"#),
        format!(r#"{{"type":"message","text":"{tag}: hi Seán -- it's O'Brien; I'll select the red one"}}"#),
    ] {
        write_frame(io, (true, true, 1, z.compress(text.as_bytes())), true).await;
        let (_, _, opcode, answer) = read_frame(io).await.expect("an answer");
        assert_eq!((opcode, answer), (1, format!("got {} bytes", text.len()).into_bytes()));
        assert_eq!(seen.lock().unwrap().last(), Some(&text), "delivered whole");
    }
    // Fragmented too: the first fragment carries RSV1 for the whole compressed message.
    let attack = z.compress(br#"{"q":"1' UNION SELECT password FROM users--"}"#);
    let (a, b) = attack.split_at(attack.len() / 2);
    write_frame(io, (false, true, 1, a.to_vec()), true).await;
    write_frame(io, (true, false, 0, b.to_vec()), true).await;
    let (_, _, opcode, payload) = read_frame(io).await.expect("a close frame");
    assert_eq!(opcode, 8, "{payload:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !seen.lock().unwrap().iter().any(|m| m.contains("UNION")),
        "the attack reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_messages_over_http1_and_http2_are_inflated_and_inspected() {
    let (backend, seen) = deflate_server().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proc = run_with_config(dir.path(), &gateway_config(port, backend, CHAT_ROUTE));
    // HTTP/1.1 upgrade offering permessage-deflate.
    let (mut tcp, head) = upgrade(
        port,
        "/ws/room/7",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        &proc,
    )
    .await;
    assert!(head.contains("permessage-deflate"), "{head}");
    compressed_chat(&mut tcp, &seen, "h1").await;

    // HTTP/2 (h2c), RFC 8441: an extended CONNECT with :protocol websocket.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    // One ordinary exchange first: the server's SETTINGS, which allow extended CONNECT, come before it.
    let plain = http::Request::get(format!("http://127.0.0.1:{port}/nothing-here"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let _ = send.send_request(plain).await.unwrap();
    let mut connect = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://127.0.0.1:{port}/ws/room/8"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-extensions", "permessage-deflate")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    connect
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut resp = send.send_request(connect).await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    assert_eq!(resp.headers()["sec-websocket-extensions"], "permessage-deflate");
    let mut stream = TokioIo::new(hyper::upgrade::on(&mut resp).await.unwrap());
    compressed_chat(&mut stream, &seen, "h2").await;
    drop(proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_messages_are_inspected_when_the_route_asks() {
    async fn next<S: futures_util::Stream + Unpin>(ws: &mut S) -> Option<S::Item> {
        tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap()
    }
    // A chat server that replays stored messages: the stored one is a script someone posted earlier.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(Message::Text(t))) = ws.next().await {
                    let reply = match t.as_str() {
                        "latest" => r#"{"from":"Zoë","text":"it's fine -- I'll select the blue one"}"#,
                        _ => r#"{"from":"x","text":"<img src=x onerror=alert(document.cookie)>"}"#,
                    };
                    if ws.send(Message::Text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let routes = format!(
        r#"[[routes]]
name = "inspected"
path = "/inspected"
upstream = "chat"
mode = "block"
[routes.websocket]
inspect_server = true

[[routes]]
name = "default"
path = "/"
upstream = "chat"
mode = "block"
{EVENTS_TO_FILE}"#
    );
    let config = gateway_config(port, backend, &routes);
    let proc = run_with_config(dir.path(), &config);
    let connect = |path: &'static str| {
        let url = format!("ws://127.0.0.1:{port}{path}");
        async move {
            for _ in 0..100 {
                if let Ok((c, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
                    return Some(c);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    };
    // Not asked: the server's messages are the server's business.
    let mut plain = connect("/")
        .await
        .unwrap_or_else(|| panic!("no gateway: {}", proc.dump()));
    plain.send(Message::Text("history".into())).await.unwrap();
    assert!(matches!(next(&mut plain).await, Some(Ok(Message::Text(t))) if t.contains("onerror")));

    // Asked: a benign message passes, the stored script closes the connection with 1008.
    let mut ws = connect("/inspected").await.unwrap();
    ws.send(Message::Text("latest".into())).await.unwrap();
    assert!(matches!(next(&mut ws).await, Some(Ok(Message::Text(t))) if t.contains("Zoë")));
    ws.send(Message::Text("history".into())).await.unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Close(c))) => assert_eq!(c.map(|c| c.code), Some(CloseCode::Policy)),
        other => panic!("expected a close, got {other:?}"),
    }
    let events = events_until(dir.path(), |events| events.contains("server message")).await;
    let line = events
        .lines()
        .find(|l| l.contains("server message"))
        .unwrap_or_else(|| panic!("no event: {events}"));
    let e: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(e["route"], "inspected");
    assert!(
        e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["class"] == "xss" && f["point"].as_str().unwrap().starts_with("ws.server.")),
        "{e}"
    );
    drop(proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_one_write_passes_in_order_and_an_attack_inside_it_stops_it_there() {
    let (backend, seen) = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proc = run_with_config(dir.path(), &gateway_config(port, backend, CHAT_ROUTE));

    // Ten chat messages (and ten pings) in one write: every message reaches the server, in order.
    let (mut tcp, _) = upgrade(port, "/ws/burst", "", &proc).await;
    let chat: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"seq":{i},"text":"it's O'Brien's turn -- message {i}"}}"#))
        .collect();
    tcp.write_all(&burst(&chat).await).await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < chat.len() {
        let frame = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut tcp))
            .await
            .unwrap()
            .expect("a frame");
        if frame.2 == 1 {
            echoed.push(String::from_utf8(frame.3).unwrap());
        }
    }
    let expected: Vec<String> = chat.iter().map(|m| format!("echo: {m}")).collect();
    assert_eq!(echoed, expected);

    // An attack third in a burst: the two before it reach the server, it and what follows do not, and the
    // connection is closed with 1008.
    seen.lock().unwrap().clear();
    let (mut tcp, _) = upgrade(port, "/ws/burst", "", &proc).await;
    let messages = [
        r#"{"text":"first"}"#.to_string(),
        r#"{"text":"second"}"#.to_string(),
        r#"{"q":"x' UNION SELECT password FROM users--"}"#.to_string(),
        r#"{"text":"fourth"}"#.to_string(),
    ];
    tcp.write_all(&burst(&messages).await).await.unwrap();
    let code = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut tcp))
            .await
            .unwrap()
            .expect("frames, then a close");
        if frame.2 == 8 {
            break u16::from_be_bytes([frame.3[0], frame.3[1]]);
        }
    };
    assert_eq!(code, 1008);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*seen.lock().unwrap(), messages[..2].to_vec());
    drop(proc);
}

/// Messages, each followed by a ping, as masked frames in one buffer: sent with one write, the relay sees
/// them in one read.
async fn burst(messages: &[String]) -> Vec<u8> {
    let mut buf = Vec::new();
    for m in messages {
        write_frame(&mut buf, (true, false, 1, m.as_bytes().to_vec()), true).await;
        write_frame(&mut buf, (true, false, 9, b"p".to_vec()), true).await;
    }
    buf
}

/// A gateway on `port` with the upstream `chat` (`backend`) and `routes`.
fn gateway_config(port: u16, backend: std::net::SocketAddr, routes: &str) -> String {
    format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.chat]
targets = ["http://{backend}"]

{routes}"#
    )
}

/// The route `chat` on `/ws` in block mode.
const CHAT_ROUTE: &str = r#"[[routes]]
name = "chat"
path = "/ws"
upstream = "chat"
mode = "block"
"#;

/// Events written to the data directory's JSONL file, flushed quickly for the tests to read.
const EVENTS_TO_FILE: &str = r#"
[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#;

/// Opens a WebSocket to `path` through the gateway by hand (HTTP/1.1 upgrade, `extra` header lines
/// added), waiting for the gateway to listen; returns the stream after the 101 and the answer's head,
/// lowercased.
async fn upgrade(port: u16, path: &str, extra: &str, proc: &Proc) -> (tokio::net::TcpStream, String) {
    let mut tcp = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            tcp = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tcp = tcp.unwrap_or_else(|| panic!("gateway never listened: {}", proc.dump()));
    tcp.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    (tcp, head)
}
