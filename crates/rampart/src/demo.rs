//! `rampart demo`: a small sample JSON API (users, products, login) on an ephemeral loopback port, with the
//! gateway in front of it on embedded defaults.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

pub fn run(listen: String, console: String) -> ExitCode {
    // The control runtime (console, reload, health checks) is small; the traffic runs on the gateway's workers.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let api = match start_sample_api().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("rampart demo: cannot start the sample API: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<Vec<SocketAddr>>();
        let gateway_addr = listen.clone();
        let console_addr = console.clone();
        tokio::spawn(async move {
            if let Ok(addrs) = rx.await {
                let gw = addrs.first().map(|a| a.to_string()).unwrap_or(gateway_addr);
                eprintln!(
                    "\nrampart demo is running.\n\n  gateway     http://{gw}   (block mode, in front of the sample API)\n  sample API  http://{api}   (direct, unprotected)\n  console     http://{console_addr}/metrics   http://{console_addr}/healthz\n\nTry:\n  curl -s http://{gw}/api/users\n  curl -s http://{gw}/api/users/2\n  curl -s -X POST http://{gw}/api/login -H 'content-type: application/json' -d '{{\"username\":\"ada\",\"password\":\"hunter2\"}}'\n  curl -s \"http://{gw}/api/products?q=lamp\"\n  curl -s \"http://{gw}/api/products?q=1%27%20or%201=1--\"      (blocked: SQL injection)\n  curl -s http://{console_addr}/metrics | grep rampart_requests\n  rampart events tail -f      (or: cargo run --release -- events tail -f; events are in ./rampart-data/events.db)\n\nJSON access logs follow on stdout. Ctrl-C stops.\n"
                );
            }
        });
        let args = crate::serve::RunArgs {
            config: None,
            upstream: format!("http://{api}"),
            listen: Some(listen),
            console: Some(console),
        };
        match crate::serve::run(args, Some(tx)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rampart demo: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Starts the sample API on 127.0.0.1 with an ephemeral port.
pub async fn start_sample_api() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(sample_api(req).await) });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("valid response")
}

const USERS: [(&str, &str, &str); 3] = [
    ("1", "Ada Lovelace", "ada@example.com"),
    ("2", "Grace Hopper", "grace@example.com"),
    ("3", "Siobhán O'Brien", "siobhan@example.com"),
];

const PRODUCTS: [(&str, &str, u32); 4] = [
    ("p-100", "Desk lamp", 3900),
    ("p-101", "Standing desk", 48900),
    ("p-102", "Lamp shade", 1500),
    ("p-103", "Monitor arm", 8900),
];

async fn sample_api(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "body too large"}),
            )
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        (&Method::GET, ["api", "users"]) => json(
            StatusCode::OK,
            serde_json::json!(USERS
                .iter()
                .map(|(id, name, email)| serde_json::json!({"id": id, "name": name, "email": email}))
                .collect::<Vec<_>>()),
        ),
        (&Method::GET, ["api", "users", id]) => match USERS.iter().find(|u| u.0 == *id) {
            Some((id, name, email)) => json(
                StatusCode::OK,
                serde_json::json!({"id": id, "name": name, "email": email}),
            ),
            None => json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no such user"})),
        },
        (&Method::POST, ["api", "users"]) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => json(StatusCode::CREATED, serde_json::json!({"id": "4", "user": v})),
            Err(e) => json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("invalid JSON: {e}")}),
            ),
        },
        (&Method::POST, ["api", "login"]) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if v["username"] == "ada" && v["password"] == "hunter2" {
                json(StatusCode::OK, serde_json::json!({"token": "demo-session-token"}))
            } else {
                json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "invalid credentials"}),
                )
            }
        }
        (&Method::GET, ["api", "products"]) => {
            let q = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("q="))
                .unwrap_or("")
                .to_ascii_lowercase();
            let hits: Vec<_> = PRODUCTS
                .iter()
                .filter(|p| p.1.to_ascii_lowercase().contains(&q))
                .map(|(id, name, cents)| serde_json::json!({"id": id, "name": name, "price_cents": cents}))
                .collect();
            json(StatusCode::OK, serde_json::json!({"query": q, "results": hits}))
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found", "path": path}),
        ),
    }
}
