//! WebSocket messages through the real binary, with a real server and client (tokio-tungstenite): chat
//! traffic (JSON with prose, fragmented messages, pings) passes both ways; an attack inside a message
//! closes the connection with 1008 before it reaches the server, and is an event; so does a flood of
//! messages past the route's rate.

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
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.chat]
targets = ["http://{backend}"]

[[routes]]
name = "chat"
path = "/ws"
upstream = "chat"
mode = "block"
[routes.websocket]
messages_per_second = 5
burst = 10

[[routes]]
name = "rest"
path = "/"
upstream = "chat"
mode = "block"

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#
    );
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
    let mut events = String::new();
    for _ in 0..40 {
        events = std::fs::read_to_string(dir.path().join("data/events.jsonl")).unwrap_or_default();
        if events.contains("WEBSOCKET") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
