//! The HTTP sinks (webhook, Slack, PagerDuty) against a real HTTP/1.1 server on 127.0.0.1 that records
//! every request and answers what the test tells it to.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_events::webhook::{PagerDutySink, SlackSink, WebhookSink};
use rampart_events::{Action, Alert, Event, EventKind, EventSink, Finding, Record, SinkError, Timestamp};
use rampart_policy::events::{PagerDutySpec, Secret, SlackSpec, WebhookSpec};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

const TIMEOUT: Duration = Duration::from_secs(2);

fn event() -> Event {
    let mut e = Event::new(EventKind::Request, Action::Block);
    e.id = "0193a1b2-0000-7000-8000-000000000001".into();
    e.ts = Timestamp(1_764_583_200_123_456);
    e.node = "node-1".into();
    e.request_id = "req-1".into();
    e.client_ip = "203.0.113.9".into();
    e.method = "GET".into();
    e.host = "shop.example.com".into();
    e.path = "/search".into();
    e.route = "api".into();
    e.status = 403;
    e.score = 12;
    e.findings.push(Finding {
        class: "sqli".into(),
        rule_id: "SQLI-001".into(),
        score: 7,
        point: "query.q".into(),
        evidence: "1' or '1'='1 <b>&".into(),
        decode_chain: vec![],
    });
    e
}

fn event2() -> Event {
    let mut e = event();
    e.id = "0193a1b2-0000-7000-8000-000000000002".into();
    e.action = Action::Monitor;
    e.path = "/login".into();
    e
}

fn alert() -> Alert {
    Alert {
        id: "0193a1b2-0000-7000-8000-0000000000a1".into(),
        ts: Timestamp(1_764_583_260_000_000),
        node: "node-1".into(),
        trigger: "sqli-burst".into(),
        severity: "critical".into(),
        group_by: "client_ip".into(),
        key: "203.0.113.9 <!channel> & co".into(),
        count: 25,
        threshold: 20,
        window_s: 60,
        first_seen: Timestamp(1_764_583_201_000_000),
        last_seen: Timestamp(1_764_583_259_500_000),
        classes: vec!["sqli".into(), "xss".into()],
        routes: vec!["api".into(), "login".into()],
        sample_event_ids: vec!["e1".into(), "e2".into()],
        actions: vec!["ban 203.0.113.9 for 15m".into(), "notify slack".into()],
        summary: "25 sqli events from <203.0.113.9> in 1m".into(),
    }
}

fn ev(e: Event) -> Record {
    Record::Event(Arc::new(e))
}

fn al(a: Alert) -> Record {
    Record::Alert(Arc::new(a))
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

#[derive(Default)]
struct State {
    got: Vec<Received>,
    /// Answers to give, in order; then 200 "ok".
    answers: VecDeque<(u16, String)>,
}

/// An HTTP/1.1 server recording POSTs.
struct HttpReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl HttpReceiver {
    async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        Err(_) => break,
                    },
                    _ = &mut stopped => break,
                };
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            assert_eq!(parts.method, http::Method::POST);
                            let mut s = st.lock().unwrap();
                            s.got.push(Received {
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let (status, text) = s.answers.pop_front().unwrap_or((200, "ok".to_string()));
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            drop(listener);
            conns.shutdown().await;
        });
        HttpReceiver {
            addr,
            state,
            stop,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn answer(&self, status: u16, body: &str) {
        self.state.lock().unwrap().answers.push_back((status, body.to_string()));
    }

    fn got(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn webhook_spec(url: String) -> WebhookSpec {
    WebhookSpec {
        url,
        secret: None,
        headers: Vec::new(),
        batch: false,
    }
}

/// The receiver's side of the signature check, written from the module documentation: HMAC-SHA256 over
/// `<timestamp>.<raw body>`, compared in constant time, with a fresh timestamp.
fn signature_ok(secret: &str, r: &Received) -> bool {
    let ts = r.header("x-rampart-timestamp");
    let Some(hex) = r.header("x-rampart-signature").strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let expected: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let fresh = ts.parse::<u64>().is_ok_and(|ts| now.abs_diff(ts) < 300);
    mac.verify_slice(&expected).is_ok() && fresh
}

#[tokio::test]
async fn webhook_posts_each_record_signed() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let mut spec = webhook_spec(rx.url("/hooks/rampart?x=1"));
    spec.secret = Some(Secret::new("s3cret-key"));
    spec.headers = vec![
        ("Authorization".into(), "Bearer t0ken".into()),
        ("X-Env".into(), "prod".into()),
    ];
    let mut sink = WebhookSink::new("hook", &spec, TIMEOUT).unwrap();
    assert_eq!(sink.name(), "hook");
    assert!(!format!("{sink:?}").contains("s3cret"));
    let batch = [ev(event()), al(alert())];
    sink.deliver(&batch).await.unwrap();

    let got = rx.got();
    assert_eq!(got.len(), 2);
    for (r, record) in got.iter().zip(&batch) {
        assert_eq!(r.path, "/hooks/rampart");
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("authorization"), "Bearer t0ken");
        assert_eq!(r.header("x-env"), "prod");
        assert!(r.header("user-agent").starts_with("rampart/"));
        assert_eq!(r.json(), record.to_json());
        assert!(signature_ok("s3cret-key", r));
        assert!(!signature_ok("another-key", r));
    }
    // A tampered body fails verification.
    let mut bad = got[0].clone();
    let mut body = bad.body.to_vec();
    body.push(b' ');
    bad.body = Bytes::from(body);
    assert!(!signature_ok("s3cret-key", &bad));
    rx.stop().await;
}

#[tokio::test]
async fn webhook_batches_into_one_document() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let mut spec = webhook_spec(rx.url("/batch"));
    spec.batch = true;
    let mut sink = WebhookSink::new("hook", &spec, TIMEOUT).unwrap();
    let batch = [ev(event()), al(alert()), ev(event2())];
    sink.deliver(&batch).await.unwrap();
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json(),
        json!({"records": [batch[0].to_json(), batch[1].to_json(), batch[2].to_json()]})
    );
    assert!(got[0].headers.get("x-rampart-signature").is_none());
    rx.stop().await;
}

#[tokio::test]
async fn webhook_500_is_transient_and_the_retry_sends_only_the_rest() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let mut sink = WebhookSink::new("hook", &webhook_spec(rx.url("/")), TIMEOUT).unwrap();
    let batch = [ev(event()), ev(event2()), al(alert())];
    rx.answer(200, "ok");
    rx.answer(500, "upstream down");
    let err = sink.deliver(&batch).await.unwrap_err();
    assert!(matches!(err, SinkError::Transient(_)), "{err}");
    assert!(err.to_string().contains("HTTP 500: upstream down"), "{err}");

    // The pipeline retries the same batch: the first record is not sent again.
    sink.deliver(&batch).await.unwrap();
    let ids: Vec<String> = rx
        .got()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [batch[0].id(), batch[1].id(), batch[1].id(), batch[2].id()]);

    // A new batch starts afresh.
    sink.deliver(&batch[..1]).await.unwrap();
    assert_eq!(rx.got().len(), 5);

    rx.answer(429, "slow down");
    let err = sink.deliver(&batch[..1]).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    rx.answer(503, "");
    let err = sink.deliver(&batch[..1]).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    rx.stop().await;
}

#[tokio::test]
async fn webhook_400_is_permanent_and_names_no_secret() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let mut spec = webhook_spec(rx.url("/"));
    spec.secret = Some(Secret::new("s3cret-key"));
    let mut sink = WebhookSink::new("hook", &spec, TIMEOUT).unwrap();
    rx.answer(400, "bad payload; your key s3cret-key is wrong\nline two");
    let err = sink.deliver(&[ev(event())]).await.unwrap_err();
    assert!(matches!(err, SinkError::Permanent(_)), "{err}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "POST http://{}: HTTP 400: bad payload; your key *** is wrong line two",
            rx.addr
        )
    );

    // One refused record does not hold up the others; the batch is reported refused.
    rx.answer(200, "ok");
    rx.answer(422, "nope");
    let err = sink
        .deliver(&[ev(event()), ev(event2()), al(alert())])
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().starts_with("1 of 3 records refused; first: "), "{err}");
    assert!(err.to_string().contains("HTTP 422: nope"), "{err}");
    assert_eq!(rx.got().len(), 4);
    rx.stop().await;
}

#[tokio::test]
async fn receiver_down_is_transient_then_delivery_resumes() {
    let addr = free_port().await;
    let mut spec = webhook_spec(format!("http://{addr}/hook?token=abc"));
    spec.secret = Some(Secret::new("s3cret-key"));
    let mut sink = WebhookSink::new("hook", &spec, TIMEOUT).unwrap();
    let batch = [ev(event())];
    let err = sink.deliver(&batch).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("POST http://{addr}: ")), "{msg}");
    assert!(!msg.contains("token"), "{msg}");

    let rx = HttpReceiver::start(addr).await;
    sink.deliver(&batch).await.unwrap();
    assert_eq!(rx.got().len(), 1);
    assert!(signature_ok("s3cret-key", &rx.got()[0]));
    rx.stop().await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and reads, never answers.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut sink = WebhookSink::new(
        "hook",
        &webhook_spec(format!("http://{addr}/")),
        Duration::from_millis(300),
    )
    .unwrap();
    let started = Instant::now();
    let err = sink.deliver(&[ev(event())]).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.to_string().contains("no answer within 300ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    hold.abort();
}

#[tokio::test]
async fn slack_alert_blocks_and_event_lines() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let spec = SlackSpec {
        url: Secret::new(rx.url("/services/T000/B000/XXXXSECRET")),
    };
    let mut sink = SlackSink::new("slack", &spec, TIMEOUT).unwrap();
    assert!(!format!("{sink:?}").contains("XXXXSECRET"));
    sink.deliver(&[al(alert()), ev(event())]).await.unwrap();
    let got = rx.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].path, "/services/T000/B000/XXXXSECRET");
    assert_eq!(got[0].header("content-type"), "application/json");
    assert_eq!(
        got[0].json(),
        json!({
            "text": "[CRITICAL] rampart alert: 25 sqli events from &lt;203.0.113.9&gt; in 1m",
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": ":rotating_light: critical alert: sqli-burst", "emoji": true}
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": "25 sqli events from &lt;203.0.113.9&gt; in 1m"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Trigger*\nsqli-burst"},
                    {"type": "mrkdwn", "text": "*Key (client_ip)*\n203.0.113.9 &lt;!channel&gt; &amp; co"},
                    {"type": "mrkdwn", "text": "*Count*\n25 (threshold 20) in 1m"},
                    {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                    {"type": "mrkdwn", "text": "*Classes*\nsqli, xss"},
                    {"type": "mrkdwn", "text": "*Routes*\napi, login"},
                    {"type": "mrkdwn", "text": "*Actions*\nban 203.0.113.9 for 15m\nnotify slack"},
                    {"type": "mrkdwn", "text": "*Node*\nnode-1"}
                ]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text":
                    "alert 0193a1b2-0000-7000-8000-0000000000a1 · first seen 2025-12-01T10:00:01.000000Z · last seen 2025-12-01T10:00:59.500000Z"}]}
            ]
        })
    );
    assert_eq!(
        got[1].json(),
        json!({"text": "rampart node-1: block sqli GET /search from 203.0.113.9 (route api, score 12)"})
    );
    rx.stop().await;
}

#[tokio::test]
async fn slack_errors_never_show_the_url() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let spec = SlackSpec {
        url: Secret::new(rx.url("/services/T000/B000/XXXXSECRET")),
    };
    let mut sink = SlackSink::new("slack", &spec, TIMEOUT).unwrap();
    rx.answer(404, "no_service for /services/T000/B000/XXXXSECRET");
    let err = sink.deliver(&[al(alert())]).await.unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        format!("POST http://{}: HTTP 404: no_service for ***", rx.addr)
    );
    rx.stop().await;

    // Down: the connection error does not show the path either.
    let err = sink.deliver(&[al(alert())]).await.unwrap_err();
    assert!(!err.is_permanent());
    assert!(!err.to_string().contains("XXXXSECRET"), "{err}");
    assert!(!err.to_string().contains("/services"), "{err}");

    let bad = SlackSpec {
        url: Secret::new("hooks.slack.com/services/XXXXSECRET"),
    };
    let err = SlackSink::new("slack", &bad, TIMEOUT).unwrap_err();
    assert!(err.is_permanent());
    assert!(!err.to_string().contains("XXXXSECRET"), "{err}");
}

#[tokio::test]
async fn pagerduty_trigger_events() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let spec = PagerDutySpec {
        url: rx.url("/v2/enqueue"),
        routing_key: Secret::new("R0UT1NGKEY0123456789abcdef012345"),
    };
    let mut sink = PagerDutySink::new("pd", &spec, TIMEOUT).unwrap();
    assert!(!format!("{sink:?}").contains("R0UT1NG"));
    rx.answer(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
    );
    rx.answer(202, r#"{"status":"success"}"#);
    let a = al(alert());
    let e = ev(event2());
    sink.deliver(&[a.clone(), e.clone()]).await.unwrap();
    let got = rx.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].path, "/v2/enqueue");
    assert_eq!(
        got[0].json(),
        json!({
            "routing_key": "R0UT1NGKEY0123456789abcdef012345",
            "event_action": "trigger",
            "dedup_key": "rampart:sqli-burst:203.0.113.9 <!channel> & co",
            "client": "rampart",
            "payload": {
                "summary": "25 sqli events from <203.0.113.9> in 1m",
                "source": "node-1",
                "severity": "critical",
                "timestamp": "2025-12-01T10:01:00.000000Z",
                "component": "api,login",
                "group": "client_ip",
                "class": "sqli,xss",
                "custom_details": a.to_json()
            }
        })
    );
    assert_eq!(
        got[1].json(),
        json!({
            "routing_key": "R0UT1NGKEY0123456789abcdef012345",
            "event_action": "trigger",
            "dedup_key": "rampart:event:0193a1b2-0000-7000-8000-000000000002",
            "client": "rampart",
            "payload": {
                "summary": "monitor sqli GET /login from 203.0.113.9 (route api, score 12)",
                "source": "node-1",
                "severity": "info",
                "timestamp": "2025-12-01T10:00:00.123456Z",
                "component": "api",
                "group": "shop.example.com",
                "class": "sqli",
                "custom_details": e.to_json()
            }
        })
    );

    // Long summaries are cut to PagerDuty's 1024 characters.
    let mut long = alert();
    long.summary = "x".repeat(3000);
    sink.deliver(&[al(long)]).await.unwrap();
    let summary = rx.got()[2].json()["payload"]["summary"].as_str().unwrap().to_string();
    assert_eq!(summary.chars().count(), 1024);
    rx.stop().await;
}

#[tokio::test]
async fn pagerduty_errors_never_show_the_routing_key() {
    let rx = HttpReceiver::start("127.0.0.1:0".parse().unwrap()).await;
    let key = "R0UT1NGKEY0123456789abcdef012345";
    let spec = PagerDutySpec {
        url: rx.url("/v2/enqueue"),
        routing_key: Secret::new(key),
    };
    let mut sink = PagerDutySink::new("pd", &spec, TIMEOUT).unwrap();
    rx.answer(
        400,
        &format!(r#"{{"status":"invalid event","errors":["routing_key {key} is not valid"]}}"#),
    );
    let err = sink.deliver(&[al(alert())]).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(!err.to_string().contains(key), "{err}");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    assert!(err.to_string().contains("routing_key *** is not valid"), "{err}");

    rx.answer(429, "");
    let err = sink.deliver(&[al(alert())]).await.unwrap_err();
    assert!(!err.is_permanent());
    assert_eq!(err.to_string(), format!("POST http://{}: HTTP 429", rx.addr));
    rx.answer(500, "");
    assert!(!sink.deliver(&[al(alert())]).await.unwrap_err().is_permanent());
    rx.stop().await;
}
