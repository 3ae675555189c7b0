//! gRPC unary and WebSocket message throughput through the gateway vs direct (issue 5), in one run.
//!
//! Starts in this process a gRPC echo service (tonic, h2c) and a WebSocket echo server
//! (tokio-tungstenite), runs the rampart binary (`RAMPART_BIN`, default target/release/rampart) in front
//! of both with inspection on (mode block, a .proto for the service, the default WebSocket limits raised
//! so that the rate limit never closes a bench connection), and drives each path for `DURATION` seconds:
//!
//! - gRPC: `CONNS` channels (one HTTP/2 connection each), `STREAMS` calls in flight on each, unary calls
//!   with a realistic message (an author, prose text, a rating);
//! - WebSocket: `CONNS` connections, each sending a JSON chat message and waiting for its echo.
//!
//! Two gateways run side by side: one with the routes in mode off (the relays alone: what the extra hop
//! costs) and one in mode block (every message inspected). Direct and gateway runs alternate (`ROUNDS` times each) so that the noise of a shared machine falls on
//! both; the figures are the sums over rounds. Prints calls (messages) per second, p50 and p99 latency per
//! path, the gateway's CPU time per call (from /proc: steadier than throughput on a shared machine), and
//! the gateway/direct ratios. Every message is checked: a wrong echo or a failed call aborts.
//!
//! `cargo build --release -p rampart --example protocols && target/release/examples/protocols`; with
//! `GATEWAY_CPUS=0 taskset -c 1 target/release/examples/protocols` the gateways get core 0 to themselves
//! and the clients and servers core 1, so that what is measured is the gateway, not the contention.

#![allow(clippy::result_large_err)] // tonic::Status is large; the generated code allows it too

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tonic::codec::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Review {
    #[prost(string, tag = "1")]
    author: String,
    #[prost(string, tag = "2")]
    text: String,
    #[prost(int32, tag = "3")]
    stars: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Ack {
    #[prost(string, tag = "1")]
    echo: String,
}

type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

#[derive(Clone)]
struct Reviews;

impl tonic::server::NamedService for Reviews {
    const NAME: &'static str = "bench.Reviews";
}

struct Post;
impl tonic::server::UnaryService<Review> for Post {
    type Response = Ack;
    type Future = BoxFut<Result<tonic::Response<Ack>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Review>) -> Self::Future {
        let r = req.into_inner();
        Box::pin(async move { Ok(tonic::Response::new(Ack { echo: r.text })) })
    }
}

impl<B> tower::Service<http::Request<B>> for Reviews
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
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Ack, Review>::default());
            Ok(match req.uri().path() {
                "/bench.Reviews/Post" => grpc.unary(Post, req).await,
                _ => tonic::Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// The message text (`BENCH_TEXT` replaces it).
const DEFAULT_TEXT: &str = "Arrived two days early and the fit is true to size. I'd order the blue one again -- \
                    Seán O'Brien says the stitching on his came loose after a month, mine is fine so far.";

fn text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| std::env::var("BENCH_TEXT").unwrap_or_else(|_| DEFAULT_TEXT.into()))
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Calls (or messages) completed and their latencies in microseconds.
#[derive(Default)]
struct Tally {
    done: u64,
    micros: Vec<u64>,
    elapsed: Duration,
    /// CPU time the gateway spent on these calls (none for the direct path).
    gateway_cpu: Option<Duration>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.done += other.done;
        self.micros.extend(other.micros);
        self.elapsed += other.elapsed;
    }

    /// Adds a round, charging the gateway's CPU time over it.
    async fn add_round(&mut self, gateway: Option<&Gateway>, round: impl std::future::Future<Output = Tally>) {
        let before = gateway.map(Gateway::cpu);
        self.add(round.await);
        if let (Some(g), Some(before)) = (gateway, before) {
            *self.gateway_cpu.get_or_insert(Duration::ZERO) += g.cpu().saturating_sub(before);
        }
    }
    fn per_s(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&mut self, p: f64) -> u64 {
        self.micros.sort_unstable();
        self.micros
            .get(((self.micros.len() as f64 * p) as usize).min(self.micros.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    }
}

async fn grpc_round(url: &str, conns: u64, streams: u64, duration: Duration) -> Tally {
    let mut channels = Vec::new();
    for _ in 0..conns {
        let ch = tonic::transport::Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .expect("gRPC connects");
        channels.push(ch);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for ch in &channels {
        for s in 0..streams {
            let mut c = tonic::client::Grpc::new(ch.clone());
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                while Instant::now() < deadline {
                    let review = Review {
                        author: format!("reviewer-{s}"),
                        text: text().into(),
                        stars: 4,
                    };
                    let sent = Instant::now();
                    c.ready().await.expect("channel ready");
                    let ack: Ack = c
                        .unary(
                            tonic::Request::new(review),
                            http::uri::PathAndQuery::from_static("/bench.Reviews/Post"),
                            ProstCodec::<Review, Ack>::default(),
                        )
                        .await
                        .expect("a benign call passes")
                        .into_inner();
                    assert_eq!(ack.echo, text());
                    t.micros.push(sent.elapsed().as_micros() as u64);
                    t.done += 1;
                }
                t
            }));
        }
    }
    let mut total = Tally::default();
    for task in tasks {
        total.add(task.await.unwrap());
    }
    total.elapsed = start.elapsed();
    total
}

async fn ws_round(url: &str, conns: u64, duration: Duration) -> Tally {
    let mut sockets = Vec::new();
    for _ in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket connects");
        sockets.push(ws);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let msg = format!(r#"{{"type":"message","room":"r{i}","seq":{n},"text":"{}"}}"#, text());
                let sent = Instant::now();
                ws.send(Message::Text(msg.clone())).await.expect("send");
                match ws.next().await {
                    Some(Ok(Message::Text(echo))) => assert_eq!(echo, msg),
                    other => panic!("no echo: {other:?}"),
                }
                t.micros.push(sent.elapsed().as_micros() as u64);
                t.done += 1;
            }
            let _ = ws.close(None).await;
            t
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.add(task.await.unwrap());
    }
    total.elapsed = start.elapsed();
    total
}

async fn grpc_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Reviews)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

async fn ws_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    let echo = matches!(m, Message::Text(_) | Message::Binary(_));
                    if m.is_close() || (echo && ws.send(m).await.is_err()) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

struct Gateway(Child);

impl Gateway {
    /// CPU time the gateway has used so far (user + system, from /proc; Linux counts it in 1/100 s).
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces: utime and stime
        // are the 12th and 13th of them.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: u64 = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<u64>().ok())
            .sum();
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gateway(dir: &std::path::Path, grpc: SocketAddr, ws: SocketAddr, mode: &str) -> (Gateway, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir_all(dir.join("protos")).unwrap();
    std::fs::write(
        dir.join("protos/reviews.proto"),
        "syntax = \"proto3\";\npackage bench;\n\
         message Review { string author = 1; string text = 2; int32 stars = 3; }\n\
         message Ack { string echo = 1; }\n\
         service Reviews { rpc Post(Review) returns (Ack); }\n",
    )
    .unwrap();
    // DISCOVERY=off measures without API discovery (on by default, as in production).
    let discovery = std::env::var("DISCOVERY").map_or(true, |v| v != "off");
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.grpc]
targets = ["http://{grpc}"]
protocol = "http2"

[upstreams.ws]
targets = ["http://{ws}"]

[discovery]
enabled = {discovery}

[[routes]]
name = "grpc"
path = "/bench.Reviews/"
upstream = "grpc"
mode = "{mode}"
[routes.detection.grpc]
protos = ["protos/reviews.proto"]

[[routes]]
name = "ws"
path = "/ws"
upstream = "ws"
mode = "{mode}"
[routes.websocket]
messages_per_second = 1000000
burst = 1000000
"#
    );
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config).unwrap();
    let bin = std::env::var("RAMPART_BIN").unwrap_or_else(|_| "target/release/rampart".into());
    // Resolved here: the gateway runs in `dir`.
    let bin = std::fs::canonicalize(&bin).unwrap_or_else(|e| panic!("no gateway binary at {bin}: {e}"));
    // GATEWAY_CPUS="0": the gateways run on these cores (taskset), apart from the clients and servers.
    let mut cmd = match std::env::var("GATEWAY_CPUS") {
        Ok(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpus]).arg(&bin);
            c
        }
        Err(_) => Command::new(&bin),
    };
    let child = cmd
        .args(["run", "--config"])
        .arg(&path)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Gateway(child), port)
}

/// One row per path (direct, mode off, inspected) for a protocol.
fn rows(proto: &str, t: &mut [Tally; 3]) -> [(f64, u64, u64); 3] {
    let names = ["direct", "gateway, mode off", "gateway, inspected"];
    std::array::from_fn(|i| row(&format!("{proto}, {}", names[i]), &mut t[i]))
}

fn row(name: &str, t: &mut Tally) -> (f64, u64, u64) {
    let (rate, p50, p99) = (t.per_s(), t.pct(0.50), t.pct(0.99));
    let cpu = t.gateway_cpu.map_or("-".to_string(), |c| {
        format!("{:.1}", c.as_secs_f64() * 1e6 / t.done.max(1) as f64)
    });
    println!("| {name} | {rate:.0} | {p50} | {p99} | {cpu} |");
    (rate, p50, p99)
}

fn ratios(name: &str, direct: (f64, u64, u64), gw: (f64, u64, u64)) {
    println!(
        "| {name} | {:.2}x | {:.2}x | {:.2}x |",
        gw.0 / direct.0,
        gw.1 as f64 / direct.1.max(1) as f64,
        gw.2 as f64 / direct.2.max(1) as f64
    );
}

fn main() {
    let duration = Duration::from_secs(env("DURATION", 5));
    let (conns, streams, rounds) = (env("CONNS", 8), env("STREAMS", 4), env("ROUNDS", 2));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env("CLIENT_THREADS", 2) as usize)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (grpc, ws) = (grpc_backend().await, ws_backend().await);
        let (dir_off, dir_on) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Two gateways: mode off (the relays alone) and mode block (every message inspected).
        let (off, port_off) = gateway(dir_off.path(), grpc, ws, "off");
        let (on, port_on) = gateway(dir_on.path(), grpc, ws, "block");
        let gateways = [None, Some(&off), Some(&on)];
        let grpc_urls = [
            format!("http://{grpc}"),
            format!("http://127.0.0.1:{port_off}"),
            format!("http://127.0.0.1:{port_on}"),
        ];
        let ws_urls = [
            format!("ws://{ws}/ws/room"),
            format!("ws://127.0.0.1:{port_off}/ws/room"),
            format!("ws://127.0.0.1:{port_on}/ws/room"),
        ];
        // Warm-up: connections, the gateways' upstream pools, the allocator.
        // ONLY=grpc or ONLY=websocket runs one of the two (to profile a gateway on one protocol).
        let only = std::env::var("ONLY").unwrap_or_default();
        let (run_grpc, run_ws) = (only != "websocket", only != "grpc");
        for i in 1..3 {
            if run_grpc {
                grpc_round(&grpc_urls[i], conns, streams, Duration::from_secs(1)).await;
            }
            if run_ws {
                ws_round(&ws_urls[i], conns, Duration::from_secs(1)).await;
            }
        }
        let mut g: [Tally; 3] = Default::default();
        let mut w: [Tally; 3] = Default::default();
        for _ in 0..rounds {
            for i in 0..3 {
                if run_grpc {
                    g[i].add_round(gateways[i], grpc_round(&grpc_urls[i], conns, streams, duration))
                        .await;
                }
                if run_ws {
                    w[i].add_round(gateways[i], ws_round(&ws_urls[i], conns, duration))
                        .await;
                }
            }
        }
        println!(
            "# {rounds} rounds x {}s, {conns} connections ({streams} calls in flight per gRPC channel)",
            duration.as_secs()
        );
        println!("| path | per s | p50 µs | p99 µs | gateway CPU µs per call |");
        println!("|---|---|---|---|---|");
        // Rows first, then ratios, as in the tables of docs/benchmarks.md.
        let grpc = run_grpc.then(|| rows("gRPC unary", &mut g));
        let ws = run_ws.then(|| rows("WebSocket echo", &mut w));
        for (proto, r) in [("gRPC unary", grpc), ("WebSocket echo", ws)] {
            if let Some(r) = r {
                ratios(&format!("{proto}: inspected / direct"), r[0], r[2]);
                ratios(&format!("{proto}: mode off / direct"), r[0], r[1]);
                ratios(&format!("{proto}: inspected / mode off"), r[1], r[2]);
            }
        }
    });
}
