//! The console port: Prometheus `/metrics`, `/healthz`, and the admin API behind a bearer token.
//!
//! Module map: everything is in this file for now; the embedded dashboard and the events API will grow
//! into modules of their own.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the console needs from the running gateway.
pub trait ConsoleBackend: Send + Sync + 'static {
    /// A JSON summary for `/healthz` (config generation, listeners...).
    fn health(&self) -> serde_json::Value;
    /// Reload the config now; `Ok(generation)` or the rendered errors.
    fn reload(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send + '_>>;
    /// Active bans: `[{"target": "ip:203.0.113.9", "expires_in_s": 3599}]`.
    fn bans(&self) -> serde_json::Value;
    /// Bans `target` (`ip:`, `net:`, `session:`, `fingerprint:`) for `duration` ("1h"); the error
    /// explains what is wrong with the input.
    fn ban(&self, target: &str, duration: &str) -> Result<(), String>;
    /// Lifts a ban; Ok(false) when there was none.
    fn unban(&self, target: &str) -> Result<bool, String>;
}

/// The largest admin request body read.
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub struct Console {
    pub registry: Arc<Registry>,
    pub backend: Arc<dyn ConsoleBackend>,
    /// Bearer token for `/api/*`; without one the admin API is disabled.
    pub token: Option<String>,
}

/// Serves the console on `addr` until the task is aborted. Returns the bound address.
pub async fn serve(
    console: Arc<Console>,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the console: {e}"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let console = console.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let console = console.clone();
                    async move { Ok::<_, Infallible>(route(&console, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((local, task))
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("static response parts are valid")
}

fn authorized(console: &Console, req: &Request<Incoming>) -> bool {
    let Some(token) = &console.token else { return false };
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(console: &Console, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut out = String::new();
            if prometheus_client::encoding::text::encode(&mut out, &console.registry).is_err() {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": "metrics encoding failed"}),
                );
            }
            Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(out)))
                .expect("static response parts are valid")
        }
        (&Method::GET, "/healthz") => json(StatusCode::OK, console.backend.health()),
        (_, p) if p.starts_with("/api/") => {
            if console.token.is_none() {
                return json(
                    StatusCode::FORBIDDEN,
                    serde_json::json!({"error": "admin API disabled: set [console] token in the config"}),
                );
            }
            if !authorized(console, &req) {
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "missing or wrong bearer token"}),
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                return r;
            }
            match (req.method(), p) {
                (&Method::POST, "/api/reload") => match console.backend.reload().await {
                    Ok(generation) => json(
                        StatusCode::OK,
                        serde_json::json!({"reloaded": true, "generation": generation}),
                    ),
                    Err(e) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        serde_json::json!({"reloaded": false, "errors": e}),
                    ),
                },
                (&Method::GET, "/api/status") => json(StatusCode::OK, console.backend.health()),
                (&Method::GET, "/api/bans") => json(StatusCode::OK, console.backend.bans()),
                (&Method::POST, "/api/bans") => {
                    let body = match http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY)
                        .collect()
                        .await
                    {
                        Ok(b) => b.to_bytes(),
                        Err(_) => {
                            return json(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                serde_json::json!({"error": "request body too large or unreadable"}),
                            )
                        }
                    };
                    let v: serde_json::Value = match serde_json::from_slice(&body) {
                        Ok(v) => v,
                        Err(e) => {
                            return json(
                                StatusCode::BAD_REQUEST,
                                serde_json::json!({"error": format!("not JSON: {e}")}),
                            )
                        }
                    };
                    let (Some(target), duration) = (v["target"].as_str(), v["for"].as_str().unwrap_or("1h")) else {
                        return json(
                            StatusCode::BAD_REQUEST,
                            serde_json::json!({"error": "expected {\"target\": \"ip:203.0.113.9\", \"for\": \"1h\"}"}),
                        );
                    };
                    match console.backend.ban(target, duration) {
                        Ok(()) => json(StatusCode::OK, serde_json::json!({"banned": target, "for": duration})),
                        Err(e) => json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e})),
                    }
                }
                (&Method::DELETE, p) if p.starts_with("/api/bans/") => {
                    let raw = &p["/api/bans/".len()..];
                    // "net:10.0.0.0%2F8": a network's slash is escaped in the path.
                    let target = percent_encoding::percent_decode_str(raw)
                        .decode_utf8_lossy()
                        .into_owned();
                    match console.backend.unban(&target) {
                        Ok(true) => json(StatusCode::OK, serde_json::json!({"unbanned": target})),
                        Ok(false) => json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no such ban"})),
                        Err(e) => json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e})),
                    }
                }
                _ => json(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"error": "no such admin endpoint"}),
                ),
            }
        }
        _ => json(StatusCode::NOT_FOUND, serde_json::json!({"error": "not found"})),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }
}
