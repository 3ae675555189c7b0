//! HTTP sinks: a generic JSON webhook (optionally HMAC-signed), Slack incoming webhooks and PagerDuty
//! Events API v2. All three POST with one small HTTP/1.1 client (http and https; https trusts the built-in
//! web roots), each request bounded by the sink's `timeout`.
//!
//! # Outcomes
//!
//! A 2xx answer delivers. 429, 408, 5xx, connection errors and timeouts are transient (the pipeline
//! retries); any other answer (other 4xx, and redirects, which are not followed) is permanent, with the
//! status and a short excerpt of the answer in the error. Error messages and logs never hold the webhook
//! secret, the Slack URL (only `https://hooks.slack.com` shows) or the PagerDuty routing key, even when the
//! receiver echoes them back.
//!
//! Sinks that POST once per record remember, across a failed attempt, which records of the batch were
//! already delivered, so that the retry does not send them again. A record the receiver refuses does not
//! hold up the rest of the batch: the others are still sent, then the batch is reported refused.
//!
//! # Webhook
//!
//! `Content-Type: application/json`, the configured headers, and either one POST per record with
//! [`Record::to_json`] as the body, or (with `batch = true`) one POST per batch with `{"records": [...]}`.
//!
//! With a `secret`, every request carries
//!
//! ```text
//! X-Rampart-Timestamp: <unix seconds>
//! X-Rampart-Signature: sha256=<lowercase hex of HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! A receiver verifies a request by reading the raw body bytes (before any JSON parsing), computing
//! `HMAC-SHA256(secret, timestamp + "." + body)` over the `X-Rampart-Timestamp` value as sent, comparing the
//! hex digest with the signature header in constant time, and refusing timestamps more than a few minutes
//! from its own clock (which stops replays). A retried delivery is signed again with a new timestamp.
//!
//! # Slack
//!
//! Alerts become a message with a header (severity and trigger), the summary, and fields: trigger, key,
//! count / threshold in the window, severity, classes, routes, actions, node; a context line holds the alert
//! id and the first and last times seen. Events (when a Slack sink is given events) become one line:
//! `rampart <node>: <Event::summary>`. `text` is always set (notifications and clients without blocks show
//! it). `&`, `<` and `>` from records are escaped, so a record cannot mention `@channel` or forge links.
//!
//! # PagerDuty
//!
//! One `trigger` event per record:
//!
//! | field | alert | event |
//! |---|---|---|
//! | `dedup_key` | `rampart:<trigger>:<key>` | `rampart:event:<id>` |
//! | `payload.summary` (at most 1024 chars) | the alert summary | [`Event::summary`] |
//! | `payload.source` | node | node |
//! | `payload.severity` | the trigger's severity | `warning` (block, ban, limit, challenge) or `info` |
//! | `payload.timestamp` | time fired (RFC 3339) | event time |
//! | `payload.component` | routes, comma-separated | route |
//! | `payload.group` | what the trigger groups by (`client_ip`, ...) | host |
//! | `payload.class` | classes, comma-separated (else the trigger) | classes (else the action) |
//! | `payload.custom_details` | the whole alert record | the whole event record (evidence masked) |
//!
//! Empty optional fields are left out.

use crate::event::{Action, Alert, Event, Record};
use crate::sink::{EventSink, SinkError};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rampart_policy::events::{PagerDutySpec, Secret, SlackSpec, WebhookSpec};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The timestamp header of signed webhook requests.
pub const TIMESTAMP_HEADER: &str = "x-rampart-timestamp";
/// The signature header of signed webhook requests: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-rampart-signature";

/// How much of an answer body is read (the rest is dropped).
const MAX_ANSWER: usize = 64 * 1024;
/// How much of an answer body goes into an error message.
const EXCERPT_CHARS: usize = 200;
/// Idle pooled connections are closed before common server keep-alive limits (5 s in several servers).
const POOL_IDLE: Duration = Duration::from_secs(4);

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// POSTs to one URL: the client, the target, and the strings that must never show in a message.
struct HttpPoster {
    client: HttpClient,
    uri: Uri,
    /// `scheme://host[:port]`: what messages show of the URL.
    target: String,
    timeout: Duration,
    secrets: Vec<String>,
}

impl HttpPoster {
    /// `url_is_secret`: the URL itself must not appear in errors (Slack).
    fn new(url: &str, url_is_secret: bool, timeout: Duration, mut secrets: Vec<String>) -> Result<Self, SinkError> {
        // The URL is not repeated in errors: a Slack URL is a secret, and other URLs may carry tokens.
        let uri: Uri = url
            .parse()
            .map_err(|_| SinkError::Permanent("the URL is not valid".to_string()))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if !matches!(scheme, "http" | "https") || uri.host().is_none() {
            return Err(SinkError::Permanent(
                "the URL must be http:// or https:// with a host".into(),
            ));
        }
        let target = match uri.port_u16() {
            Some(p) => format!("{scheme}://{}:{p}", uri.host().unwrap_or_default()),
            None => format!("{scheme}://{}", uri.host().unwrap_or_default()),
        };
        if url_is_secret {
            secrets.push(url.to_string());
            if let Some(pq) = uri.path_and_query().map(|pq| pq.as_str()).filter(|pq| pq.len() > 1) {
                secrets.push(pq.to_string());
            }
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));

        let timeout = if timeout.is_zero() {
            Duration::from_secs(5)
        } else {
            timeout
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let tls = crate::syslog::tls_client_config(None)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(HttpPoster {
            client,
            uri,
            target,
            timeout,
            secrets,
        })
    }

    fn redact(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    async fn post(&self, headers: HeaderMap, body: Bytes) -> Result<(), SinkError> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = headers;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| error_chain(&e))?;
            let status = resp.status();
            let answer = read_prefix(resp.into_body(), MAX_ANSWER).await;
            Ok::<_, String>((status, answer))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(SinkError::Transient(format!(
                "POST {}: no answer within {}",
                self.target,
                humantime::format_duration(self.timeout)
            ))),
            Ok(Err(e)) => Err(SinkError::Transient(self.redact(&format!("POST {}: {e}", self.target)))),
            Ok(Ok((status, answer))) => self.outcome(status, &answer),
        }
    }

    fn outcome(&self, status: StatusCode, answer: &[u8]) -> Result<(), SinkError> {
        if status.is_success() {
            return Ok(());
        }
        let excerpt = excerpt(answer);
        let mut msg = format!("POST {}: HTTP {}", self.target, status.as_u16());
        if !excerpt.is_empty() {
            msg.push_str(": ");
            msg.push_str(&excerpt);
        }
        let msg = self.redact(&msg);
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
        {
            Err(SinkError::Transient(msg))
        } else {
            Err(SinkError::Permanent(msg))
        }
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let part = src.to_string();
        if !s.ends_with(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = src.source();
    }
    s
}

/// At most `max` bytes of a body; read errors end it.
async fn read_prefix(mut body: hyper::body::Incoming, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            let room = max - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

/// The start of an answer body, on one line, printable.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .trim()
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

fn base_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("rampart/", env!("CARGO_PKG_VERSION"))),
    );
    h
}

/// Which records of the batch being delivered one by one are done (delivered or refused), kept across a
/// failed attempt so that the retry of the same batch skips them.
#[derive(Default)]
struct Resume {
    done: HashSet<String>,
}

impl Resume {
    fn start(&mut self, batch: &[Record]) {
        if !self.done.is_empty() {
            let ids: HashSet<&str> = batch.iter().map(|r| r.id()).collect();
            self.done.retain(|id| ids.contains(id.as_str()));
        }
    }
}

/// POSTs each record of `batch` (skipping those done in an earlier attempt), stopping at the first transient
/// error; records the receiver refuses are reported together at the end.
async fn post_each(
    http: &HttpPoster,
    resume: &mut Resume,
    batch: &[Record],
    mut request: impl FnMut(&Record) -> Result<(HeaderMap, Bytes), SinkError>,
) -> Result<(), SinkError> {
    resume.start(batch);
    let mut refused = 0usize;
    let mut first_refusal = String::new();
    for r in batch {
        if resume.done.contains(r.id()) {
            continue;
        }
        let (headers, body) = request(r)?;
        match http.post(headers, body).await {
            Ok(()) => {}
            Err(SinkError::Permanent(m)) => {
                if refused == 0 {
                    first_refusal = m;
                }
                refused += 1;
            }
            Err(e) => return Err(e),
        }
        resume.done.insert(r.id().to_string());
    }
    resume.done.clear();
    match refused {
        0 => Ok(()),
        _ if batch.len() == 1 => Err(SinkError::Permanent(first_refusal)),
        n => Err(SinkError::Permanent(format!(
            "{n} of {} records refused; first: {first_refusal}",
            batch.len()
        ))),
    }
}

fn to_body(v: &Value) -> Result<Bytes, SinkError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| SinkError::Permanent(format!("cannot serialize the record: {e}")))
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The generic JSON webhook.
pub struct WebhookSink {
    name: String,
    http: HttpPoster,
    headers: HeaderMap,
    secret: Option<Secret>,
    batch: bool,
    resume: Resume,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("target", &self.http.target)
            .field("signed", &self.secret.is_some())
            .field("batch", &self.batch)
            .finish()
    }
}

impl WebhookSink {
    /// Checks the URL and headers; does no network I/O. `timeout` bounds each request (zero means 5 s).
    pub fn new(name: &str, spec: &WebhookSpec, timeout: Duration) -> Result<Self, SinkError> {
        let mut headers = base_headers();
        for (k, v) in &spec.headers {
            let key = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| SinkError::Permanent(format!("`{k}` is not a valid header name")))?;
            // Framing is the client's business; a configured value would corrupt the request.
            if matches!(
                key.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "te" | "upgrade"
            ) {
                return Err(SinkError::Permanent(format!("header `{k}` cannot be configured")));
            }
            // The value may be a credential (Authorization): never in a message, and marked sensitive.
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| SinkError::Permanent(format!("the value of header `{k}` is not valid")))?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        let secrets = spec.secret.iter().map(|s| s.expose().to_string()).collect();
        Ok(WebhookSink {
            name: name.to_string(),
            http: HttpPoster::new(&spec.url, false, timeout, secrets)?,
            headers,
            secret: spec.secret.clone(),
            batch: spec.batch,
            resume: Resume::default(),
        })
    }
}

/// The headers and body of one webhook request: the configured headers and, with a secret, the signature.
fn signed_request(headers: &HeaderMap, secret: Option<&Secret>, body: Bytes) -> Result<(HeaderMap, Bytes), SinkError> {
    let mut headers = headers.clone();
    if let Some(secret) = secret {
        let ts = unix_now();
        let sig = signature(secret.expose().as_bytes(), ts, &body);
        headers.insert(HeaderName::from_static(TIMESTAMP_HEADER), HeaderValue::from(ts));
        let mut value = HeaderValue::from_str(&sig)
            .map_err(|_| SinkError::Permanent("signature is not a valid header value".into()))?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value);
    }
    Ok((headers, body))
}

impl EventSink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (headers, secret) = (&self.headers, self.secret.as_ref());
        if self.batch {
            let records: Vec<Value> = batch.iter().map(Record::to_json).collect();
            let (headers, body) = signed_request(headers, secret, to_body(&json!({ "records": records }))?)?;
            return self.http.post(headers, body).await;
        }
        post_each(&self.http, &mut self.resume, batch, |r| {
            signed_request(headers, secret, to_body(&r.to_json())?)
        })
        .await
    }
}

/// Slack incoming webhooks.
pub struct SlackSink {
    name: String,
    http: HttpPoster,
    headers: HeaderMap,
    resume: Resume,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSink")
            .field("name", &self.name)
            .field("target", &self.http.target)
            .finish()
    }
}

impl SlackSink {
    /// Checks the URL; does no network I/O. The URL never shows in errors. `timeout` bounds each request
    /// (zero means 5 s).
    pub fn new(name: &str, spec: &SlackSpec, timeout: Duration) -> Result<Self, SinkError> {
        Ok(SlackSink {
            name: name.to_string(),
            http: HttpPoster::new(spec.url.expose(), true, timeout, Vec::new())?,
            headers: base_headers(),
            resume: Resume::default(),
        })
    }
}

impl EventSink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let headers = &self.headers;
        post_each(&self.http, &mut self.resume, batch, |r| {
            Ok((headers.clone(), to_body(&slack_payload(r))?))
        })
        .await
    }
}

/// PagerDuty Events API v2.
pub struct PagerDutySink {
    name: String,
    http: HttpPoster,
    headers: HeaderMap,
    routing_key: Secret,
    resume: Resume,
}

impl std::fmt::Debug for PagerDutySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutySink")
            .field("name", &self.name)
            .field("target", &self.http.target)
            .finish()
    }
}

impl PagerDutySink {
    /// Checks the URL; does no network I/O. The routing key never shows in errors. `timeout` bounds each
    /// request (zero means 5 s).
    pub fn new(name: &str, spec: &PagerDutySpec, timeout: Duration) -> Result<Self, SinkError> {
        Ok(PagerDutySink {
            name: name.to_string(),
            http: HttpPoster::new(&spec.url, false, timeout, vec![spec.routing_key.expose().to_string()])?,
            headers: base_headers(),
            routing_key: spec.routing_key.clone(),
            resume: Resume::default(),
        })
    }
}

impl EventSink for PagerDutySink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let headers = &self.headers;
        let key = self.routing_key.expose();
        post_each(&self.http, &mut self.resume, batch, |r| {
            Ok((headers.clone(), to_body(&pagerduty_payload(r, key))?))
        })
        .await
    }
}

/// Escapes Slack mrkdwn control characters: `&`, `<`, `>`.
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` escaped for Slack mrkdwn, at most `max` characters after escaping (with `…` when cut, never inside
/// an entity).
fn slack_text(s: &str, max: usize) -> String {
    let escaped = slack_escape(s);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut out = String::new();
    let mut len = 0;
    for c in s.chars() {
        let piece = slack_escape(c.encode_utf8(&mut [0u8; 4]));
        let n = piece.chars().count();
        if len + n > max.saturating_sub(1) {
            break;
        }
        out.push_str(&piece);
        len += n;
    }
    out.push('…');
    out
}

/// At most `max` characters, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

/// Slack limits: header text 150 characters, field text 2000, section text 3000.
fn slack_field(title: &str, value: &str) -> Value {
    let head = format!("*{}*\n", slack_escape(title));
    let room = 2000usize.saturating_sub(head.chars().count());
    json!({"type": "mrkdwn", "text": format!("{head}{}", slack_text(value, room))})
}

fn alert_title(a: &Alert) -> String {
    if a.summary.is_empty() {
        format!(
            "trigger {} fired for {} {} ({} events in {})",
            a.trigger,
            a.group_by,
            a.key,
            a.count,
            humantime::format_duration(Duration::from_secs(a.window_s))
        )
    } else {
        a.summary.clone()
    }
}

/// The Slack message for a record.
pub fn slack_payload(record: &Record) -> Value {
    match record {
        Record::Event(e) => json!({ "text": slack_text(&event_line(e), 3000) }),
        Record::Alert(a) => slack_alert(a),
    }
}

fn event_line(e: &Event) -> String {
    format!("rampart {}: {}", e.node, e.summary())
}

fn slack_alert(a: &Alert) -> Value {
    let emoji = match a.severity.as_str() {
        "critical" => ":rotating_light:",
        "error" => ":red_circle:",
        "info" => ":information_source:",
        _ => ":warning:",
    };
    let summary = alert_title(a);
    let window = humantime::format_duration(Duration::from_secs(a.window_s));
    let fields = vec![
        slack_field("Trigger", &a.trigger),
        slack_field(&format!("Key ({})", a.group_by), &a.key),
        slack_field("Count", &format!("{} (threshold {}) in {window}", a.count, a.threshold)),
        slack_field("Severity", &a.severity),
        slack_field("Classes", &or_dash(a.classes.join(", "))),
        slack_field("Routes", &or_dash(a.routes.join(", "))),
        slack_field("Actions", &or_dash(a.actions.join("\n"))),
        slack_field("Node", &a.node),
    ];
    let context = format!(
        "alert {} · first seen {} · last seen {}",
        a.id,
        a.first_seen.rfc3339(),
        a.last_seen.rfc3339()
    );
    json!({
        "text": slack_text(&format!("[{}] rampart alert: {summary}", a.severity.to_uppercase()), 3000),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": cut(&format!("{emoji} {} alert: {}", a.severity, a.trigger), 150),
                    "emoji": true
                }
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_text(&summary, 3000)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_text(&context, 2000)}]}
        ]
    })
}

fn pd_severity(s: &str) -> &'static str {
    match s {
        "critical" => "critical",
        "error" => "error",
        "info" => "info",
        _ => "warning",
    }
}

fn event_pd_severity(action: Action) -> &'static str {
    match action {
        Action::Block | Action::Ban | Action::Limit | Action::Challenge => "warning",
        Action::Monitor | Action::Reject | Action::Mask => "info",
    }
}

fn put_nonempty(m: &mut Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        m.insert(key.to_string(), Value::String(value));
    }
}

/// The PagerDuty Events API v2 `trigger` event for a record.
pub fn pagerduty_payload(record: &Record, routing_key: &str) -> Value {
    let mut p = Map::new();
    let dedup_key;
    match record {
        Record::Alert(a) => {
            dedup_key = format!("rampart:{}:{}", a.trigger, a.key);
            p.insert("summary".into(), cut(&alert_title(a), 1024).into());
            p.insert("source".into(), or_default_node(&a.node).into());
            p.insert("severity".into(), pd_severity(&a.severity).into());
            p.insert("timestamp".into(), a.ts.rfc3339().into());
            put_nonempty(&mut p, "component", a.routes.join(","));
            put_nonempty(&mut p, "group", a.group_by.clone());
            let class = if a.classes.is_empty() {
                a.trigger.clone()
            } else {
                a.classes.join(",")
            };
            put_nonempty(&mut p, "class", class);
        }
        Record::Event(e) => {
            dedup_key = format!("rampart:event:{}", e.id);
            p.insert("summary".into(), cut(&e.summary(), 1024).into());
            p.insert("source".into(), or_default_node(&e.node).into());
            p.insert("severity".into(), event_pd_severity(e.action).into());
            p.insert("timestamp".into(), e.ts.rfc3339().into());
            put_nonempty(&mut p, "component", e.route.clone());
            put_nonempty(&mut p, "group", e.host.clone());
            let classes = e.classes().join(",");
            let class = if classes.is_empty() {
                e.action.as_str().to_string()
            } else {
                classes
            };
            put_nonempty(&mut p, "class", class);
        }
    }
    p.insert("custom_details".into(), record.to_json());
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": cut(&dedup_key, 255),
        "client": "rampart",
        "payload": p,
    })
}

fn or_default_node(node: &str) -> String {
    if node.is_empty() {
        "rampart".to_string()
    } else {
        node.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escaping() {
        assert_eq!(
            slack_escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
        assert_eq!(slack_escape("plain *bold*"), "plain *bold*");
    }

    #[test]
    fn slack_text_is_cut_between_entities() {
        assert_eq!(slack_text("a<b", 10), "a&lt;b");
        assert_eq!(slack_text("a<b&c", 6), "a&lt;…");
        assert_eq!(slack_text("a<b&c", 5), "a…");
        assert_eq!(slack_text("abcdef", 4), "abc…");
    }

    #[test]
    fn framing_headers_cannot_be_configured() {
        let spec = WebhookSpec {
            url: "http://127.0.0.1:9/".into(),
            secret: None,
            headers: vec![("Content-Length".into(), "1".into())],
            batch: false,
        };
        assert!(WebhookSink::new("w", &spec, Duration::from_secs(1))
            .unwrap_err()
            .is_permanent());
    }

    #[test]
    fn cutting_counts_characters() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut("ééééé", 4), "ééé…");
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        assert_eq!(excerpt(b"  bad\nrequest \r\n"), "bad request");
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn secrets_are_redacted_and_the_slack_url_is_hidden() {
        let p = HttpPoster::new(
            "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
            true,
            Duration::from_secs(1),
            vec!["rk-123".into()],
        )
        .unwrap();
        assert_eq!(p.target, "https://hooks.slack.com");
        assert_eq!(
            p.redact(
                "saw https://hooks.slack.com/services/T000/B000/XXXXSECRET and /services/T000/B000/XXXXSECRET rk-123"
            ),
            "saw *** and *** ***"
        );
        let err = HttpPoster::new("not a url with SECRET", true, Duration::from_secs(1), Vec::new())
            .err()
            .unwrap();
        assert!(!err.to_string().contains("SECRET"));
        assert!(err.is_permanent());
        assert!(HttpPoster::new("ftp://x/", false, Duration::from_secs(1), Vec::new()).is_err());
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let p = HttpPoster::new(
            "http://127.0.0.1:9/",
            false,
            Duration::from_secs(1),
            vec!["k".repeat(8)],
        )
        .unwrap();
        assert!(p.outcome(StatusCode::OK, b"").is_ok());
        assert!(p.outcome(StatusCode::ACCEPTED, b"").is_ok());
        for s in [429, 408, 500, 502, 503] {
            let e = p.outcome(StatusCode::from_u16(s).unwrap(), b"busy").unwrap_err();
            assert!(!e.is_permanent(), "{s}");
            assert!(e.to_string().contains(&s.to_string()));
        }
        for s in [400, 401, 403, 404, 410, 301] {
            let e = p.outcome(StatusCode::from_u16(s).unwrap(), b"no kkkkkkkk").unwrap_err();
            assert!(e.is_permanent(), "{s}");
            assert_eq!(e.to_string(), format!("POST http://127.0.0.1:9: HTTP {s}: no ***"));
        }
    }
}
