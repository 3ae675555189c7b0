//! Helpers for the data-plane integration tests: an in-process gateway, small hyper backends, raw-socket
//! and hyper clients, self-signed certificates.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use rampart_proxy::inspect::RequestContext;
use rampart_proxy::{Gateway, Inspection, Inspector, InspectorFactory, Shared};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

// ---------------------------------------------------------------------------------------------------------
// Gateway

/// Flags a request as an attack when it carries `x-test-attack: 1` or its inspected body holds
/// `test-attack`; records the client IP the gateway established for each inspected request.
#[derive(Clone, Default)]
pub struct TestInspector {
    pub client_ips: Arc<Mutex<Vec<IpAddr>>>,
}

impl Inspector for TestInspector {
    fn inspect(&self, ctx: &RequestContext<'_>) -> Inspection {
        self.client_ips.lock().unwrap().push(ctx.client_ip);
        let attack = ctx.parts.headers.get("x-test-attack").is_some_and(|v| v == "1")
            || ctx.body.windows(11).any(|w| w == b"test-attack");
        if !attack {
            return Inspection::default();
        }
        Inspection {
            attack: true,
            score: 10,
            ..Inspection::default()
        }
    }
}

impl InspectorFactory for TestInspector {
    fn build(&self, _: &rampart_policy::Policy) -> Result<Arc<dyn Inspector>, rampart_policy::ConfigErrors> {
        Ok(Arc::new(self.clone()))
    }
}

pub fn compile(toml: &str) -> rampart_policy::Policy {
    match rampart_policy::compile_str(Path::new("test.toml"), toml) {
        Ok(p) => p,
        Err(e) => panic!("test config does not compile:\n{e}\n---\n{toml}"),
    }
}

pub struct Gw {
    pub gateway: Option<Gateway>,
    pub inspector: TestInspector,
    pub shared: Arc<Shared>,
    pub addrs: Vec<SocketAddr>,
}

impl Gw {
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    pub async fn shutdown(&mut self) -> usize {
        self.gateway.take().expect("running").shutdown().await
    }
}

/// Starts a gateway on `toml` (listeners on port 0) with the test inspector.
pub async fn gateway(toml: &str) -> Gw {
    let policy = compile(toml);
    let metrics = rampart_proxy::metrics::Metrics::new(&mut Registry::default());
    let inspector = TestInspector::default();
    let shared = Shared::new(policy, metrics, Arc::new(inspector.clone())).expect("runtime builds");
    let gateway = Gateway::start(shared.clone()).await.expect("gateway starts");
    let addrs = gateway.addrs.clone();
    Gw {
        gateway: Some(gateway),
        inspector,
        shared,
        addrs,
    }
}

/// Top-level keys (`top`), short test timeouts plus `limits_extra` in `[limits]`, no access log.
pub fn preamble(top: &str, limits_extra: &str) -> String {
    format!(
        r#"{top}
[limits]
header_read_timeout = "2s"
idle_timeout = "5s"
shutdown_grace = "5s"
workers = 2
{limits_extra}

[log]
access = false
"#
    )
}

/// An `[upstreams.NAME]` table over `targets` with short timeouts; `extra` lines are added to the table.
pub fn upstream(name: &str, targets: &[String], extra: &str) -> String {
    let targets = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\n[upstreams.{name}]\ntargets = [{targets}]\nconnect_timeout = \"500ms\"\nread_timeout = \"5s\"\n{extra}\n"
    )
}

/// A `[[routes]]` entry; `extra` lines are added to it.
pub fn route(name: &str, path: &str, upstream: &str, extra: &str) -> String {
    format!("\n[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

/// One plain listener on 127.0.0.1:0 (`listener_extra` lines added to it) after [`preamble`], then `rest`.
pub fn config_full(top: &str, limits_extra: &str, listener_extra: &str, rest: &str) -> String {
    let pre = preamble(top, limits_extra);
    format!("{pre}\n[[listeners]]\naddr = \"127.0.0.1:0\"\n{listener_extra}\n{rest}")
}

pub fn config(listener_extra: &str, rest: &str) -> String {
    config_full("", "", listener_extra, rest)
}

/// The common case: one listener, upstream `app` over `targets`, one catch-all route in block mode.
pub fn simple(targets: &[String]) -> String {
    config("", &(upstream("app", targets, "") + &route("main", "/", "app", "")))
}

// ---------------------------------------------------------------------------------------------------------
// Backends

pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    pub in_flight: Arc<AtomicUsize>,
    pub healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
pub struct BackendCtx {
    pub name: Arc<str>,
    pub hits: Arc<AtomicUsize>,
    pub in_flight: Arc<AtomicUsize>,
    pub healthy: Arc<AtomicBool>,
}

/// Serves `f` with hyper (HTTP/1.1 and HTTP/2 prior knowledge) on 127.0.0.1:0.
pub async fn backend_with<F, Fut>(name: &str, f: F) -> Backend
where
    F: Fn(Request<Incoming>, BackendCtx) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx = BackendCtx {
        name: Arc::from(name),
        hits: Arc::default(),
        in_flight: Arc::default(),
        healthy: Arc::new(AtomicBool::new(true)),
    };
    let c = ctx.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let f = f.clone();
            let ctx = c.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let f = f.clone();
                    let ctx = ctx.clone();
                    async move {
                        if req.uri().path() == "/health" {
                            let ok = ctx.healthy.load(Ordering::SeqCst);
                            let mut r = Response::new(full("health"));
                            *r.status_mut() = if ok {
                                StatusCode::OK
                            } else {
                                StatusCode::SERVICE_UNAVAILABLE
                            };
                            return Ok::<_, Infallible>(r);
                        }
                        ctx.hits.fetch_add(1, Ordering::SeqCst);
                        ctx.in_flight.fetch_add(1, Ordering::SeqCst);
                        let mut resp = f(req, ctx.clone()).await;
                        ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
                        resp.headers_mut()
                            .insert("x-backend", http::HeaderValue::from_str(&ctx.name).unwrap());
                        Ok(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend {
        addr,
        name: name.to_string(),
        hits: ctx.hits,
        in_flight: ctx.in_flight,
        healthy: ctx.healthy,
        task,
    }
}

/// The echo backend: answers JSON describing the request it received (method, uri, version, headers,
/// body length, a checksum of the body, the body itself when short, trailers), after `?sleep=MS` if given.
/// `/trailers` answers a chunked body with a trailer.
pub async fn echo(name: &str) -> Backend {
    backend_with(name, |req, ctx| async move { echo_response(req, &ctx).await }).await
}

pub async fn echo_response(req: Request<Incoming>, ctx: &BackendCtx) -> Response<BoxBody> {
    if let Some(ms) = query_param(req.uri(), "sleep") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    let (parts, mut body) = req.into_parts();
    let mut len = 0u64;
    let mut sum = 0u64;
    let mut first = Vec::new();
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let mut r = Response::new(full(format!("body error: {e}")));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
        };
        match frame.into_data() {
            Ok(d) => {
                len += d.len() as u64;
                sum = d.iter().fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(b as u64));
                if first.len() < 4096 {
                    first.extend_from_slice(&d[..d.len().min(4096 - first.len())]);
                }
            }
            Err(f) => {
                if let Ok(t) = f.into_trailers() {
                    trailers.extend(t);
                }
            }
        }
    }
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .keys()
        .map(|k| {
            let vals: Vec<serde_json::Value> = parts
                .headers
                .get_all(k)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
                .collect();
            (k.as_str().to_string(), vals.into())
        })
        .collect();
    let trailer_json: serde_json::Map<String, serde_json::Value> = trailers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let json = serde_json::json!({
        "backend": &*ctx.name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": len,
        "body_sum": sum,
        "body": String::from_utf8_lossy(&first),
        "trailers": trailer_json,
    });
    if parts.uri.path() == "/trailers" {
        // A streamed (chunked) body followed by trailers.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            let _ = tx.send(Ok(http_body::Frame::data(Bytes::from(json.to_string())))).await;
            let mut t = HeaderMap::new();
            t.insert("x-checksum", http::HeaderValue::from_static("abc123"));
            let _ = tx.send(Ok(http_body::Frame::trailers(t))).await;
        });
        let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
        let mut r = Response::new(body.map_err(|e: Infallible| match e {}).boxed());
        r.headers_mut()
            .insert(http::header::TRAILER, http::HeaderValue::from_static("x-checksum"));
        return r;
    }
    let mut r = Response::new(full(json.to_string()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// An mpsc receiver as a `Stream` (no tokio-stream dependency).
pub fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub fn query_param(uri: &http::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// An address nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A backend that reads a request head and then resets the connection (RST, SO_LINGER 0).
pub async fn resetting_backend() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                drop(s);
            });
        }
    });
    (addr, hits, task)
}

// ---------------------------------------------------------------------------------------------------------
// Clients

pub type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, BoxBody>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http()
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    pub version: http::Version,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What the echo backend saw of request header `name` (first value).
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name][0].as_str().map(str::to_string)
    }
}

pub async fn collect(resp: Response<Incoming>) -> Resp {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
        version: parts.version,
    }
}

pub async fn send(client: &Client, req: Request<BoxBody>) -> Resp {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response within 10s")
        .expect("request succeeds");
    collect(resp).await
}

pub async fn get(client: &Client, url: &str) -> Resp {
    send(client, Request::get(url).body(full("")).unwrap()).await
}

/// Writes `bytes` on a fresh connection and reads until the peer closes (or `wait` passes).
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s, wait).await
}

pub async fn read_until_close(s: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One HTTP/1.1 response parsed from raw bytes.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses consecutive HTTP/1.1 responses (Content-Length or chunked bodies; none for 1xx/204/304).
pub fn parse_responses(mut data: &[u8]) -> Vec<RawResp> {
    let mut out = Vec::new();
    while let Some(end) = find(data, b"\r\n\r\n") {
        let head = std::str::from_utf8(&data[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        data = &data[end + 4..];
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        let mut trailers = Vec::new();
        if (100..200).contains(&status) || status == 204 || status == 304 {
        } else if get("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            loop {
                let line_end = find(data, b"\r\n").expect("chunk size line");
                let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
                data = &data[line_end + 2..];
                if size == 0 {
                    loop {
                        let le = find(data, b"\r\n").expect("trailer line");
                        let line = std::str::from_utf8(&data[..le]).unwrap().to_string();
                        data = &data[le + 2..];
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    break;
                }
                body.extend_from_slice(&data[..size]);
                data = &data[size + 2..];
            }
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().unwrap();
            body.extend_from_slice(&data[..len]);
            data = &data[len..];
        } else {
            body.extend_from_slice(data);
            data = &[];
        }
        out.push(RawResp {
            status,
            headers,
            body,
            trailers,
        });
    }
    out
}

/// Sends one raw request on a fresh connection and parses the answers.
pub async fn raw_responses(addr: SocketAddr, bytes: &[u8]) -> Vec<RawResp> {
    parse_responses(&raw(addr, bytes, Duration::from_secs(5)).await)
}

// ---------------------------------------------------------------------------------------------------------
// TLS

pub struct TestCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
    /// Where the files are, kept while the certificate is.
    _dir: TempDir,
}

/// A self-signed certificate for `names`, written to a fresh temp directory.
pub fn self_signed(names: &[&str]) -> TestCert {
    let ck = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let dir = temp_dir("cert");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.key_pair.serialize_pem()).unwrap();
    TestCert {
        cert_path,
        key_path,
        der: ck.cert.der().clone(),
        _dir: dir,
    }
}

/// A directory of a test's own under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-proxy-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

pub fn tls_client_config(
    roots: &[&TestCert],
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for c in roots {
        store.add(c.der.clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await
}

/// One request over an established connection with HTTP/1.1.
pub async fn h1_over<S>(io: S, req: Request<BoxBody>) -> Resp
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    collect(sender.send_request(req).await.unwrap()).await
}

/// Requests over one established connection with HTTP/2 (prior knowledge or ALPN).
pub async fn h2_over<S>(io: S, reqs: Vec<Request<BoxBody>>) -> Vec<Resp>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    for req in reqs {
        out.push(collect(sender.send_request(req).await.unwrap()).await);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Protocol-specific backends (upstream TLS and HTTP/2)

/// The HTTP server a [`proto_backend`] runs: hyper's HTTP/1.1-only or HTTP/2-only server, so a request in
/// the other protocol fails instead of being served.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    Http1,
    Http2,
}

/// An echo backend ([`echo_response`]) with one protocol, over TLS when a certificate is given.
pub struct ProtoBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// One entry per completed TLS handshake: the ALPN protocol it negotiated.
    pub handshakes: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    /// TLS handshakes that failed (the client refused the certificate, say).
    pub failed_handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ProtoBackend {
    /// `https://127.0.0.1:PORT` (or `http://` for a plain backend; the caller knows which it started).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn handshakes(&self) -> Vec<Option<Vec<u8>>> {
        self.handshakes.lock().unwrap().clone()
    }
}

impl Drop for ProtoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_server_config(cert: &TestCert, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let key_pem = std::fs::read(&cert.key_path).unwrap();
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .unwrap()
        .expect("a private key in the PEM");
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

async fn serve_proto<S>(io: S, proto: Proto, ctx: BackendCtx)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move {
            ctx.hits.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(echo_response(req, &ctx).await)
        }
    });
    let io = TokioIo::new(io);
    let _ = match proto {
        Proto::Http1 => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
        }
        Proto::Http2 => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, svc)
                .await
        }
    };
}

/// Starts an echo backend on 127.0.0.1:0 speaking only `proto`; with `tls`, only over TLS with that
/// certificate, offering the ALPN protocols given.
pub async fn proto_backend(name: &str, proto: Proto, tls: Option<(&TestCert, &[&[u8]])>) -> ProtoBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(|(cert, alpn)| tokio_rustls::TlsAcceptor::from(tls_server_config(cert, alpn)));
    let ctx = BackendCtx {
        name: Arc::from(name),
        hits: Arc::default(),
        in_flight: Arc::default(),
        healthy: Arc::new(AtomicBool::new(true)),
    };
    let handshakes: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::default();
    let failed_handshakes = Arc::new(AtomicUsize::new(0));
    let (hits, hs, failed) = (ctx.hits.clone(), handshakes.clone(), failed_handshakes.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (ctx, acceptor, hs, failed) = (ctx.clone(), acceptor.clone(), hs.clone(), failed.clone());
            conns.spawn(async move {
                match acceptor {
                    None => serve_proto(stream, proto, ctx).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => {
                            hs.lock()
                                .unwrap()
                                .push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                            serve_proto(tls, proto, ctx).await
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    },
                }
            });
        }
    });
    ProtoBackend {
        addr,
        hits,
        handshakes,
        failed_handshakes,
        task,
    }
}
