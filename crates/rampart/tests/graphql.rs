//! GraphQL through the real binary, against a GraphQL-speaking backend: realistic operations pass
//! (variables with prose, fragments, a GET with ?query=); deep, alias-batched, array-batched and
//! introspection queries and an injected argument are blocked before the backend sees them; and the
//! backend's field suggestions ("Did you mean ...?"), which leak the schema even with introspection off,
//! are masked in its answers on a block route (an event with action `mask`) and only reported on a
//! monitor route.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

type Chunks = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Answers like graphql-js behind express: a field it does not know gets a 400 with a suggestion, sent
/// chunked (in two frames); anything else gets data. Records the queries it received.
async fn graphql_backend() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        let query = req.uri().query().unwrap_or_default().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let text = format!("{query}{}", String::from_utf8_lossy(&body));
                        s.lock().unwrap().push(text.clone());
                        let (status, answer) = if text.contains("usr") {
                            (
                                400,
                                r#"{"errors":[{"message":"Cannot query field \"usr\" on type \"Query\". Did you mean \"user\" or \"users\"?","locations":[{"line":1,"column":3}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}"#,
                            )
                        } else {
                            (200, r#"{"data":{"user":{"id":"42","name":"Siobhán O'Brien"}}}"#)
                        };
                        let (a, b) = answer.split_at(answer.len() / 2);
                        let frames = vec![
                            Ok(Frame::data(Bytes::from(a.to_string()))),
                            Ok(Frame::data(Bytes::from(b.to_string()))),
                        ];
                        let resp: Response<Chunks> = Response::builder()
                            .status(status)
                            .header("content-type", "application/json; charset=utf-8")
                            .body(StreamBody::new(futures_util::stream::iter(frames)))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_operations_limits_and_masked_suggestions() {
    let (backend, seen) = graphql_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.api]
targets = ["http://{backend}"]

[[routes]]
name = "graphql"
path = "/graphql"
match = "exact"
upstream = "api"
mode = "block"
[routes.detection.graphql]
max_depth = 8
max_aliases = 10
max_batch = 5

[[routes]]
name = "graphql-monitor"
path = "/monitor/graphql"
match = "exact"
upstream = "api"
mode = "monitor"

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    let post = |path: &'static str, body: serde_json::Value| {
        let (c, url) = (c.clone(), format!("{base}{path}"));
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    wait_listening(port, &proc).await;

    // Benign: variables with prose and apostrophes, a fragment, a directive; and a GET.
    let benign = serde_json::json!({
        "operationName": "AddReview",
        "query": "mutation AddReview($id: ID!, $text: String!) { addReview(productId: $id, text: $text) { ...ReviewParts @include(if: true) } } fragment ReviewParts on Review { id author { name } }",
        "variables": {"id": "42", "text": "It's grand -- I'd select the blue one again; O'Brien agrees."}
    });
    let (status, body) = post("/graphql", benign).await;
    assert_eq!(status, 200, "{body} {}", proc.dump());
    let get = c
        .get(format!(
            "{base}/graphql?query=%7B%20user(id%3A%20%2242%22)%20%7B%20name%20%7D%20%7D"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);

    // Blocked before the backend: depth, aliases, batch, introspection, an injected argument.
    let deep = format!("{{ {}id{} }}", "a { ".repeat(12), " }".repeat(12));
    let aliases: String = (0..40)
        .map(|i| format!("l{i}: login(user: \"u{i}\", pass: \"p\") {{ token }} "))
        .collect();
    let cases = [
        ("deep", serde_json::json!({ "query": deep })),
        (
            "aliases",
            serde_json::json!({ "query": format!("mutation {{ {aliases}}}") }),
        ),
        (
            "batch",
            serde_json::Value::Array((0..8).map(|_| serde_json::json!({"query": "{ me { id } }"})).collect()),
        ),
        (
            "introspection",
            serde_json::json!({ "query": "{ __schema { types { name fields { name } } } }" }),
        ),
        (
            "injection",
            serde_json::json!({ "query": "{ user(name: \"x' OR '1'='1' --\") { id } }" }),
        ),
    ];
    let before = seen.lock().unwrap().len();
    for (name, body) in cases {
        let (status, answer) = post("/graphql", body).await;
        assert_eq!(status, 403, "{name}: {answer}");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "nothing blocked reached the backend"
    );

    // A suggestion in a (chunked) error answer: masked on the block route, the rest kept.
    let (status, answer) = post("/graphql", serde_json::json!({ "query": "{ usr { id } }" })).await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        v["errors"][0]["message"],
        r#"Cannot query field "usr" on type "Query"."#
    );
    assert_eq!(v["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    // On the monitor route it goes through as the backend wrote it, and is reported.
    let (_, answer) = post("/monitor/graphql", serde_json::json!({ "query": "{ usr { id } }" })).await;
    assert!(answer.contains(r#"Did you mean \"user\" or \"users\"?"#), "{answer}");

    let events = events_until(dir.path(), |events| events.matches("GQL-011").count() >= 2).await;
    let leaks: Vec<serde_json::Value> = events
        .lines()
        .filter(|l| l.contains("GQL-011"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(leaks.len(), 2, "{events}");
    assert_eq!(
        (leaks[0]["route"].as_str(), leaks[0]["action"].as_str()),
        (Some("graphql"), Some("mask"))
    );
    assert_eq!(leaks[1]["action"], "monitor");
    assert_eq!(
        leaks[0]["findings"][0]["evidence"],
        r#"Did you mean "user" or "users"?"#
    );
    for rule in ["GQL-002", "GQL-003", "GQL-005", "GQL-001"] {
        assert!(events.contains(rule), "no {rule} event: {events}");
    }
    drop(proc);
}
