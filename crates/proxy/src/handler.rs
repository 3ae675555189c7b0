//! The request stage: framing checks -> route -> body (held up to the inspection limit) -> inspection ->
//! verdict by mode -> upstream (with retries where safe) -> response.

use crate::body::{collect_prefix, Collected, ProxyBody, RespBody, UpstreamBody};
use crate::headers::{self, Forwarding, Reject};
use crate::inspect::{Inspection, RequestContext};
use crate::metrics::{Label, RequestLabels};
use crate::runtime::{Runtime, Shared};
use crate::upstream::UpstreamPool;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_policy::{Mode, Oversize, Route};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Facts about the client connection that every request on it shares.
pub struct ConnInfo {
    pub peer: IpAddr,
    /// The client address as the connection layer established it (PROXY protocol from a trusted peer).
    pub client: IpAddr,
    pub tls: bool,
    pub listener: Arc<str>,
    /// The verdicts of the raw HTTP/1 request heads read on this connection (none for HTTP/2 over TLS).
    pub heads: Option<Arc<crate::framing::HeadVerdicts>>,
}

/// What happened to a request, for the access log and metrics.
struct Outcome {
    action: &'static str,
    route: Option<Arc<str>>,
    inspection: Option<Inspection>,
    upstream_target: Option<Arc<str>>,
    body_uninspected: bool,
    /// The client as resolved through trusted proxies, once known.
    client_ip: Option<IpAddr>,
    /// Set where the request will be recorded as an event (block, monitor, reject): what the event needs
    /// from the request that the handler no longer has once the request has gone upstream.
    event: Option<EventFacts>,
    /// Rate limits that count responses, to count once the status is known.
    pending_counts: Vec<rampart_guard::limits::PendingCount>,
    /// Abuse detectors (logins, enumeration) that count responses.
    pending_abuse: Vec<rampart_guard::PendingAbuse>,
    /// The start of the inspected body, kept for API discovery when it is on.
    discovery_body: Option<Bytes>,
    /// The check of the upstream's answer, and the request's host for its events.
    answer_check: Option<(Box<dyn crate::inspect::AnswerCheck>, String)>,
}

struct EventFacts {
    host: String,
    user_agent: Option<HeaderValue>,
    /// For HTTP-layer refusals: the rule that refused it.
    refusal: Option<(&'static str, &'static str)>,
    /// For behaviour decisions (rate limits, bans): what was done and why.
    behaviour: Option<(rampart_events::Action, String)>,
}

impl EventFacts {
    fn of(parts: &http::request::Parts, refusal: Option<(&'static str, &'static str)>) -> Self {
        EventFacts {
            host: headers::request_host(parts).to_string(),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
            refusal,
            behaviour: None,
        }
    }

    fn behaviour(parts: &http::request::Parts, action: rampart_events::Action, reason: String) -> Self {
        EventFacts {
            behaviour: Some((action, reason)),
            ..Self::of(parts, None)
        }
    }
}

impl Outcome {
    fn new(action: &'static str) -> Self {
        Outcome {
            action,
            route: None,
            inspection: None,
            upstream_target: None,
            body_uninspected: false,
            client_ip: None,
            event: None,
            pending_counts: Vec::new(),
            pending_abuse: Vec::new(),
            discovery_body: None,
            answer_check: None,
        }
    }
}

pub async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
) -> Result<Response<RespBody>, Infallible> {
    let start = Instant::now();
    let rt = shared.load();
    let request_id = shared.ids.next();
    let method = req.method().clone();
    let path_for_log: Box<str> = req.uri().path().into();
    // An HTTP/1 protocol-switch attempt (hyper treats any Upgrade header, and CONNECT, as one).
    let switch_attempt = req.version() != http::Version::HTTP_2
        && (req.headers().contains_key(header::UPGRADE) || method == http::Method::CONNECT);
    let grpc = is_grpc(req.headers());
    // A request sampled for API discovery: what discovery keeps of it, taken before the pipeline owns it.
    let sample = shared.discovery().filter(|t| t.wants()).map(|_| {
        let host = req
            .uri()
            .host()
            .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
            .map(|h| {
                h.rsplit_once(':')
                    .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                    .map_or(h, |(h, _)| h)
            })
            .unwrap_or("-")
            .to_ascii_lowercase();
        crate::discovery::Sample {
            host,
            method: method.clone(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            headers: crate::discovery::redacted_headers(req.headers()),
            body: Bytes::new(),
            status: 0,
            response: Bytes::new(),
            attack: false,
        }
    });
    let (mut resp, mut outcome) = pipeline(req, &conn, &shared, &rt, &request_id).await;
    if grpc {
        // A gRPC client reads the status from grpc-status, not from HTTP: answer our own refusals the
        // gRPC way.
        if let Some(r) = grpc_refusal(outcome.action, &request_id) {
            resp = r;
        }
    }
    if switch_attempt && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The raw-head checks stopped at the switch attempt (see `framing`): when no switch happens, no
        // further request is read from this connection.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(headers::X_REQUEST_ID.clone(), v);
    }
    let status = resp.status().as_u16();
    if !outcome.pending_counts.is_empty() {
        // Limits that count responses (failed logins, 404 runs): counted off the response path.
        let (rt, shared, pending) = (rt.clone(), shared.clone(), std::mem::take(&mut outcome.pending_counts));
        tokio::spawn(async move { rt.limiter.count_response(&shared.state, &pending, status).await });
    }
    if !outcome.pending_abuse.is_empty() {
        let (rt, shared, pending) = (rt.clone(), shared.clone(), std::mem::take(&mut outcome.pending_abuse));
        let (client, route) = (
            outcome.client_ip.unwrap_or(conn.client),
            outcome.route.clone().unwrap_or_else(|| Arc::from("-")),
        );
        let request_id = request_id.clone();
        // A login route that recognises failures by the body: watch the body on its way to the client.
        let body_verdict = rt.abuse.failure_marker(&pending).map(|marker| {
            let (mut watch, verdict) = crate::body::MarkerWatch::new(marker, rampart_policy::guard::FAILURE_BODY_SCAN);
            let (parts, body) = std::mem::replace(&mut resp, Response::new(RespBody::empty())).into_parts();
            let body = match body {
                RespBody::Upstream(b) => RespBody::Watched(b, watch),
                other => {
                    // Our own answer (an error page): the upstream never said anything.
                    watch.finish(false);
                    other
                }
            };
            resp = Response::from_parts(parts, body);
            verdict
        });
        tokio::spawn(async move {
            let body_failed = match body_verdict {
                // A client that never reads the body leaves it undecided: a body not seen is not a failure.
                Some(v) => tokio::time::timeout(std::time::Duration::from_secs(60), v)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(false),
                None => false,
            };
            let Some(found) = rt
                .abuse
                .count_response_with(&shared.state, &pending, status, body_failed)
                .await
            else {
                return;
            };
            if let Some(bus) = shared.events() {
                let mut e =
                    rampart_events::Event::new(rampart_events::EventKind::Behaviour, rampart_events::Action::Monitor);
                e.request_id = request_id;
                e.client_ip = client.to_string();
                e.route = route.to_string();
                e.status = status;
                e.reason = Some(format!(
                    "{} ({}): {}",
                    found.detector,
                    found.key,
                    found.signals.join("; ")
                ));
                bus.emit(e);
            }
        });
    }
    // Readers of the upstream's answer once it has ended: discovery (sensitive data) and the OpenAPI
    // check of answers. The answer streams on; only its start is kept for them.
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let upstream_answer = matches!(resp.body(), RespBody::Upstream(_));
    let mut readers: Vec<crate::body::AnswerReader> = Vec::new();
    if let (Some(mut s), Some(tap)) = (sample, shared.discovery()) {
        // What the upstream answered as an endpoint; not what we refused, nor what it does not know.
        if outcome.action == "pass" && !matches!(status, 404 | 405 | 501) {
            s.status = status;
            s.body = outcome.discovery_body.take().unwrap_or_default();
            let text = content_type
                .as_deref()
                .is_some_and(|ct| ["json", "text", "xml", "form"].iter().any(|t| ct.contains(t)));
            if text && upstream_answer {
                readers.push(tap.answer_reader(s));
            } else {
                tap.offer(s);
            }
        } else if matches!(outcome.action, "block" | "monitor") && outcome.route.is_some() {
            // An attack counts against the endpoint it targeted, when that endpoint is known.
            s.attack = true;
            tap.offer(s);
        }
    }
    if let (Some((check, host)), true) = (outcome.answer_check.take(), upstream_answer) {
        let bus = shared.events().cloned();
        let route = outcome.route.clone().unwrap_or_else(|| Arc::from("-"));
        let (request_id, client) = (request_id.clone(), outcome.client_ip.unwrap_or(conn.client));
        let (method, path, ct) = (method.clone(), path_for_log.clone(), content_type.clone());
        readers.push(Box::new(move |body: &[u8], complete: bool| {
            let findings = check.check(status, ct.as_deref(), body, complete);
            let Some(bus) = bus.filter(|_| !findings.is_empty()) else {
                return;
            };
            let inspection = Inspection {
                findings,
                ..Default::default()
            };
            let mut e = crate::inspect::message_event(crate::inspect::MessageEvent {
                request_id: &request_id,
                client_ip: client,
                method: method.as_str(),
                host: &host,
                path: &path,
                route: &route,
                inspection: &inspection,
                block: false,
                reason: "answer outside the OpenAPI contract".into(),
                point_prefix: "",
            });
            e.status = status;
            bus.emit(e);
        }));
    }
    if !readers.is_empty() {
        let (parts, body) = std::mem::replace(&mut resp, Response::new(RespBody::empty())).into_parts();
        let RespBody::Upstream(b) = body else {
            unreachable!("readers are only added for the upstream's answer")
        };
        resp = Response::from_parts(
            parts,
            RespBody::Tapped(b, crate::body::AnswerTap::new(ANSWER_HELD, readers)),
        );
    }
    let route = outcome.route.clone().unwrap_or_else(|| Arc::from("-"));
    let elapsed = start.elapsed();
    shared
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            status,
            action: outcome.action,
        })
        .inc();
    shared
        .metrics
        .request_duration
        .get_or_create(&Label("route", route.clone()))
        .observe(elapsed.as_secs_f64());
    if let (Some(facts), Some(bus)) = (&outcome.event, shared.events()) {
        bus.emit(request_event(
            &outcome,
            facts,
            &conn,
            &request_id,
            method.as_str(),
            &path_for_log,
            status,
            elapsed,
        ));
    }
    if let (true, Some(log)) = (rt.policy.log.access, shared.access_log()) {
        use crate::access_log::json_str;
        use std::io::Write;
        log.record(|b| {
            let _ = write!(
                b,
                "{{\"ts\":\"{}\",\"request_id\":\"{request_id}\",\"client\":\"",
                humantime_rfc3339()
            );
            headers::write_ip(b, outcome.client_ip.unwrap_or(conn.client));
            b.extend_from_slice(b"\",\"listener\":");
            json_str(b, &conn.listener);
            b.extend_from_slice(b",\"method\":");
            json_str(b, method.as_str());
            b.extend_from_slice(b",\"path\":");
            json_str(b, &path_for_log);
            b.extend_from_slice(b",\"route\":");
            json_str(b, &route);
            let _ = write!(
                b,
                ",\"status\":{status},\"action\":\"{}\",\"upstream\":",
                outcome.action
            );
            json_str(b, outcome.upstream_target.as_deref().unwrap_or("-"));
            let score = outcome.inspection.as_ref().map_or(0, |i| i.score);
            let _ = write!(b, ",\"latency_us\":{},\"score\":{score}", elapsed.as_micros() as u64);
            if let Some(i) = outcome.inspection.as_ref().filter(|i| !i.findings.is_empty()) {
                b.extend_from_slice(b",\"findings\":");
                let _ = serde_json::to_writer(&mut *b, &i.findings);
            }
            if outcome.body_uninspected {
                b.extend_from_slice(b",\"body_uninspected\":true");
            }
            b.push(b'}');
        });
    }
    Ok(resp)
}

async fn pipeline(
    req: Request<Incoming>,
    conn: &ConnInfo,
    shared: &Arc<Shared>,
    rt: &Arc<Runtime>,
    request_id: &str,
) -> (Response<RespBody>, Outcome) {
    let policy = &rt.policy;
    let mut req = req;
    let upgrade = headers::is_upgrade(req.version(), req.headers());
    let h2_websocket = crate::websocket::is_h2_websocket(&req);
    let client_upgrade = (upgrade || h2_websocket).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    // The raw-head verdict first: it is counted once per HTTP/1 request, in order.
    let raw_head = match &conn.heads {
        Some(v) if parts.version != http::Version::HTTP_2 => v.next_request(),
        _ => None,
    };
    let checked = match raw_head {
        Some(reject) => Err(reject),
        None => headers::check_request(&parts, &policy.limits),
    };
    if let Err(reject) = checked {
        shared.metrics.reject(reject.reason());
        let close = reject != Reject::UriTooLong;
        let mut resp = error_response(reject.status(), reject.reason(), request_id);
        if close {
            // The framing of what follows on this connection cannot be trusted.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut outcome = Outcome::new("reject");
        outcome.client_ip = Some(headers::client_ip(conn.client, &parts.headers, &policy.trusted_proxies));
        outcome.event = Some(EventFacts::of(&parts, Some(("protocol", reject.rule_id()))));
        return (resp, outcome);
    }

    // RFC 8441: a WebSocket over HTTP/2 is inspected and forwarded as the HTTP/1.1 upgrade it stands for.
    let h2_accept = h2_websocket.then(|| crate::websocket::h2_connect_to_h1_upgrade(&mut parts));
    if headers::is_server_options(&parts) {
        let mut resp = Response::new(RespBody::empty());
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(headers::ALLOWED_METHODS));
        return (resp, Outcome::new("server_options"));
    }
    let host = headers::request_host(&parts).to_string();
    let Some(route) = policy.routes.find(&host, parts.uri.path()) else {
        return (
            error_response(StatusCode::NOT_FOUND, "no route for this host and path", request_id),
            Outcome::new("no_route"),
        );
    };
    let mut outcome = Outcome::new("pass");
    outcome.route = Some(route.name.clone());

    // The hop before us: the TCP peer, or the source a trusted balancer gave in a PROXY header (that
    // balancer is transparent; trusting it does not make whoever is behind it a trusted proxy).
    let hop = conn.client;
    let peer_trusted = policy.trusted_proxies.contains(hop);
    let client_ip = headers::client_ip(hop, &parts.headers, &policy.trusted_proxies);
    outcome.client_ip = Some(client_ip);

    // Banned clients are refused before their body is read. The ban itself was recorded as an event; the
    // requests refused while it holds are counted in metrics (action "banned"), not recorded one by one.
    let banned = if shared.bans.has_token_bans() {
        // Session and fingerprint bans: read those identifiers (hashed, as the bans hold them).
        let facts = rampart_guard::RequestFacts {
            parts: &parts,
            body: None,
            client_ip,
            route: &route.name,
        };
        let identity = &policy.identity;
        let read = |p: &Option<rampart_policy::guard::KeyPart>| {
            p.as_ref()
                .and_then(|p| rampart_guard::limits::part_value(p, &facts))
                .map(|v| rampart_guard::token_hash(&v))
        };
        let (session, fingerprint) = (read(&identity.session), read(&identity.fingerprint));
        shared.bans.banned_request(&rampart_guard::BanProbe {
            ip: Some(client_ip),
            session: session.as_deref(),
            fingerprint: fingerprint.as_deref(),
        })
    } else {
        shared.bans.banned(client_ip)
    };
    if banned.is_some() {
        outcome.action = "banned";
        return (block_response(rt, request_id), outcome);
    }
    // A trigger may have switched the route's mode or raised its sensitivity for a while.
    let overrides = shared.overrides.get(&route.name);
    let mode = match overrides.mode {
        Some(m) if route.mode != Mode::Off => m,
        _ => route.mode,
    };

    // Per-route concurrency cap (this node), held until the response head.
    let _in_flight = match (rt.in_flight.get(&route.name), route.max_concurrent) {
        (Some(counter), Some(max)) => match InFlight::enter(counter, max) {
            Some(g) => Some(g),
            None => {
                outcome.action = "overloaded";
                let mut resp = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "route at its concurrency limit",
                    request_id,
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return (resp, outcome);
            }
        },
        _ => None,
    };

    // Rate limits keyed on the request head, before its body is read. A solved challenge is checked
    // once, for both limit stages.
    let cleared = rt.limiter.has_challenge(&route.name) && {
        let facts = rampart_guard::RequestFacts {
            parts: &parts,
            body: None,
            client_ip,
            route: &route.name,
        };
        rampart_guard::limits::part_value(&clearance_cookie(), &facts)
            .is_some_and(|c| shared.challenger.cleared(&c, client_ip))
    };
    if !rt.limiter.is_empty() {
        let facts = rampart_guard::RequestFacts {
            parts: &parts,
            body: None,
            client_ip,
            route: &route.name,
        };
        let stage = rampart_guard::limits::Stage::Head;
        if let Some(hit) = rt
            .limiter
            .check_cleared(&shared.state, &facts, stage, &mut outcome.pending_counts, cleared)
            .await
        {
            if let Some(resp) = limited(shared, rt, &parts, client_ip, mode, hit, &mut outcome, request_id) {
                return (resp, outcome);
            }
        }
    }

    // Hard size cap, whatever the mode, when the length is declared up front.
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(max), Some(len)) = (route.body.max_size, declared_len) {
        if len > max {
            outcome.action = "too_large";
            outcome.event = Some(EventFacts::of(&parts, Some(("limit", "HTTP-BODY-MAX-SIZE"))));
            return (
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body exceeds the route's limit",
                    request_id,
                ),
                outcome,
            );
        }
    }

    // Body: hold up to the inspection limit, then decide.
    let mut grpc_denial = None;
    let has_body = declared_len.map_or(!body_is_empty(&body), |n| n > 0);
    let (upstream_body, inspected, truncated) = if !has_body {
        // Empty, not an empty stream: it can be replayed, so a GET may be retried on another target.
        (ProxyBody::Empty, Bytes::new(), false)
    } else if mode == Mode::Off && declared_len.is_none_or(|n| n > HOLD_SMALL_BODY) {
        (stream_body(None, body, route), Bytes::new(), false)
    } else {
        // Uninspected small bodies are held too: one write upstream instead of one per frame, and the
        // request can be retried on another target.
        let limit = if mode == Mode::Off {
            HOLD_SMALL_BODY as usize
        } else {
            route.body.inspect_limit
        };
        match collect_prefix(body, limit, declared_len, is_grpc(&parts.headers)).await {
            Ok(Collected::Complete { data, trailers }) => (ProxyBody::buffered(data.clone(), trailers), data, false),
            Ok(Collected::Streaming { prefix, rest }) if mode == Mode::Off => {
                (stream_body(Some(prefix.clone()), rest, route), prefix, true)
            }
            Ok(Collected::Streaming { prefix, rest }) => {
                // A streaming call: its complete first message(s) are inspected here, each later one by
                // the guard in its body, before it goes on.
                let denial = crate::grpc_stream::Denial::new(request_id);
                let start = crate::grpc_stream::StreamStart {
                    rt: rt.clone(),
                    shared: shared.clone(),
                    parts: &parts,
                    host: &host,
                    client_ip,
                    mode,
                    denial: denial.clone(),
                };
                let (complete, guard) = crate::grpc_stream::StreamGuard::start(start, prefix);
                grpc_denial = Some(denial);
                let body = ProxyBody::Stream {
                    prefix: Some(complete.clone()),
                    rest,
                    sent: 0,
                    max: route.body.max_size,
                    grpc: Some(guard),
                };
                (body, complete, false)
            }
            Ok(Collected::Overflow { prefix, rest }) => {
                if mode == Mode::Block && route.body.oversize == Oversize::Block {
                    outcome.action = "too_large";
                    outcome.event = Some(EventFacts::of(&parts, Some(("limit", "HTTP-BODY-INSPECT-LIMIT"))));
                    let mut resp = error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body exceeds the inspection limit",
                        request_id,
                    );
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    return (resp, outcome);
                }
                outcome.body_uninspected = true;
                shared
                    .metrics
                    .uninspected_bodies
                    .get_or_create(&Label("route", route.name.clone()))
                    .inc();
                let inspected = prefix.slice(..route.body.inspect_limit.min(prefix.len()));
                (stream_body(Some(prefix), rest, route), inspected, true)
            }
            Err(e) => {
                outcome.action = "client_error";
                tracing::debug!(request_id, error = %e, "client body read failed");
                return (
                    error_response(StatusCode::BAD_REQUEST, "could not read the request body", request_id),
                    outcome,
                );
            }
        }
    };
    if let (Some(max), false) = (route.body.max_size, truncated) {
        if inspected.len() as u64 > max {
            outcome.action = "too_large";
            outcome.event = Some(EventFacts::of(&parts, Some(("limit", "HTTP-BODY-MAX-SIZE"))));
            return (
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body exceeds the route's limit",
                    request_id,
                ),
                outcome,
            );
        }
    }

    // Rate limits keyed on the body (a JSON field).
    if rt.limiter.needs_body(&route.name) {
        let facts = rampart_guard::RequestFacts {
            parts: &parts,
            body: Some(&inspected),
            client_ip,
            route: &route.name,
        };
        let stage = rampart_guard::limits::Stage::Body;
        if let Some(hit) = rt
            .limiter
            .check_cleared(&shared.state, &facts, stage, &mut outcome.pending_counts, cleared)
            .await
        {
            if let Some(resp) = limited(shared, rt, &parts, client_ip, mode, hit, &mut outcome, request_id) {
                return (resp, outcome);
            }
        }
    }

    // Abuse detectors (credential stuffing, enumeration): they read user names and ids, often in the body.
    if rt.abuse.applies_to(&route.name) {
        let facts = rampart_guard::RequestFacts {
            parts: &parts,
            body: Some(&inspected),
            client_ip,
            route: &route.name,
        };
        if let Some(found) = rt.abuse.check(&shared.state, &facts, &mut outcome.pending_abuse).await {
            if let Some(resp) = abused(shared, rt, &parts, client_ip, mode, found, &mut outcome, request_id) {
                return (resp, outcome);
            }
        }
    }

    if mode != Mode::Off {
        let ctx = RequestContext {
            route,
            parts: &parts,
            body: &inspected,
            body_truncated: truncated,
            client_ip,
            message: false,
        };
        let inspection = rt.inspector.inspect(&ctx);
        outcome.answer_check = rt.inspector.answer_check(&ctx).map(|c| (c, host.clone()));
        let attack = inspection.attack || overrides.threshold.is_some_and(|t| inspection.score >= t);
        let report = inspection.report;
        outcome.inspection = Some(inspection);
        if report && !attack {
            outcome.event = Some(EventFacts::of(&parts, None));
            outcome.action = "monitor";
        }
        if attack {
            outcome.event = Some(EventFacts::of(&parts, None));
            if mode == Mode::Block {
                outcome.action = "block";
                return (block_response(rt, request_id), outcome);
            }
            outcome.action = "monitor";
        }
    }
    if shared.discovery().is_some() {
        outcome.discovery_body = Some(inspected.slice(..inspected.len().min(crate::discovery::MAX_BODY)));
    }
    drop(inspected);

    // Upstream.
    let Some(pool) = rt.pools.get(&route.upstream) else {
        return (
            error_response(StatusCode::BAD_GATEWAY, "route has no upstream", request_id),
            outcome,
        );
    };
    headers::strip_hop_by_hop(&mut parts.headers, upgrade || h2_websocket);
    headers::set_forwarding(
        &mut parts.headers,
        &Forwarding {
            peer: hop,
            peer_trusted,
            tls: conn.tls,
            host: &host,
            request_id,
            version: parts.version,
        },
    );
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(parts.uri.authority().map_or(host.as_str(), |a| a.as_str())) {
            parts.headers.insert(header::HOST, v);
        }
    }
    if h2_websocket && pool.spec.protocol != rampart_policy::UpstreamProtocol::Http1 {
        return (
            error_response(
                StatusCode::NOT_IMPLEMENTED,
                "WebSocket over HTTP/2 is relayed to HTTP/1.1 upstreams only",
                request_id,
            ),
            outcome,
        );
    }
    // A GraphQL operation whose answer is looked into for field suggestions.
    let graphql_answer = outcome
        .inspection
        .as_ref()
        .is_some_and(|i| i.mask_graphql_suggestions)
        .then(|| (parts.method.clone(), parts.uri.path().to_string()));
    // A WebSocket on an inspected route: its messages go through the detectors too.
    let ws_guard = (client_upgrade.is_some() && mode != Mode::Off).then(|| crate::websocket::WsGuard {
        rt: rt.clone(),
        shared: shared.clone(),
        host: host.clone(),
        path: parts.uri.path().to_string(),
        mode,
        client_ip,
        request_id: request_id.to_string(),
        message_parts: crate::websocket::message_parts(parts.uri.path(), &host),
    });
    let resp = forward(
        pool,
        route,
        parts,
        upstream_body,
        &mut outcome,
        request_id,
        client_upgrade.map(|on| ClientUpgrade {
            on,
            guard: ws_guard,
            h2_accept,
        }),
    )
    .await;
    if let Some((method, path)) = graphql_answer {
        let (resp, found) = crate::graphql_answer::hold_and_mask(resp, mode == Mode::Block).await;
        if let Some(found) = found {
            let at = (method.as_str(), host.as_str(), path.as_str());
            report_masked(shared, route, request_id, client_ip, at, mode, found);
        }
        return (resp, outcome);
    }
    let Some(denial) = grpc_denial else {
        return (resp, outcome);
    };
    if denial.is_denied() && outcome.action == "upstream_error" {
        // Refused mid-stream before the service answered: the reset upstream is our doing.
        outcome.action = denial.refusal_action();
        return (resp, outcome);
    }
    let resp = resp.map(|b| match b {
        RespBody::Upstream(body) => RespBody::GrpcGuarded {
            body,
            denial,
            done: false,
        },
        other => other,
    });
    (resp, outcome)
}

/// A GraphQL answer that leaked field suggestions: an event (action mask, or monitor where the route only
/// reports).
fn report_masked(
    shared: &Shared,
    route: &Route,
    request_id: &str,
    client_ip: IpAddr,
    (method, host, path): (&str, &str, &str),
    mode: Mode,
    found: crate::graphql_answer::Masked,
) {
    let Some(bus) = shared.events() else {
        return;
    };
    let inspection = Inspection {
        findings: vec![crate::inspect::FindingSummary {
            class: "graphql".into(),
            rule_id: "GQL-011".into(),
            score: 0,
            point: "response.errors.message".into(),
            decode_chain: Vec::new(),
            evidence: found.evidence,
        }],
        ..Default::default()
    };
    let mut e = crate::inspect::message_event(crate::inspect::MessageEvent {
        request_id,
        client_ip,
        method,
        host,
        path,
        route: &route.name,
        inspection: &inspection,
        block: false,
        reason: format!("GraphQL answer with {} field suggestion(s)", found.count),
        point_prefix: "",
    });
    if mode == Mode::Block {
        e.action = rampart_events::Action::Mask;
    }
    bus.emit(e);
}

/// The most of an answer kept for its readers (discovery, the OpenAPI check of answers).
const ANSWER_HELD: usize = 64 * 1024;

/// Bodies of declared length up to this size are read whole before they are forwarded, even on routes that
/// do not inspect.
const HOLD_SMALL_BODY: u64 = 256 * 1024;

fn body_is_empty(body: &Incoming) -> bool {
    use http_body::Body;
    body.is_end_stream()
}

fn stream_body(prefix: Option<Bytes>, rest: Incoming, route: &Route) -> ProxyBody {
    ProxyBody::Stream {
        prefix,
        rest,
        sent: 0,
        max: route.body.max_size,
        grpc: None,
    }
}

/// The client's side of a connection upgrade, waiting for the upstream's answer.
struct ClientUpgrade {
    on: hyper::upgrade::OnUpgrade,
    guard: Option<crate::websocket::WsGuard>,
    /// For a WebSocket opened over HTTP/2: the `Sec-WebSocket-Accept` the upstream must answer with.
    h2_accept: Option<String>,
}

async fn forward(
    pool: &UpstreamPool,
    route: &Route,
    parts: http::request::Parts,
    body: ProxyBody,
    outcome: &mut Outcome,
    request_id: &str,
    client_upgrade: Option<ClientUpgrade>,
) -> Response<RespBody> {
    let idempotent = matches!(
        parts.method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    );
    let timeout = route.timeout.min(pool.spec.read_timeout);
    let mut tried: Vec<usize> = Vec::with_capacity(pool.spec.retries as usize + 1);
    // A body held in memory can be sent again; a streaming one is gone after the first attempt.
    let replayable = body.is_replayable();
    let mut body = Some(body);
    // Parts are cloned only for an attempt that may be followed by another; the last one takes them.
    let mut parts = Some(parts);
    let mut last_error: Option<(StatusCode, &'static str)> = None;
    for attempt in 0..=pool.spec.retries {
        let Some((idx, _in_flight_guard)) = pool.pick(&tried) else {
            break;
        };
        tried.push(idx);
        let last_try = attempt == pool.spec.retries || !replayable;
        let this_body = match (&body, last_try) {
            (Some(b), false) => b.try_clone().expect("replayable body"),
            _ => match body.take() {
                Some(b) => b,
                None => break,
            },
        };
        let Some(these_parts) = (if last_try { parts.take() } else { parts.clone() }) else {
            break;
        };
        let uri = pool.uri_for(idx, these_parts.uri.path_and_query());
        let mut req = Request::from_parts(these_parts, this_body);
        *req.uri_mut() = uri;
        if pool.spec.protocol == rampart_policy::UpstreamProtocol::Http1 {
            *req.version_mut() = http::Version::HTTP_11;
        } else {
            *req.version_mut() = http::Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        }
        outcome.upstream_target = Some(pool.targets[idx].labels.target.clone());
        // Plain HTTP/1.1 targets are spoken to by this task itself; upgrades (whose connection becomes
        // a tunnel), TLS and HTTP/2 targets go through hyper's client.
        let own_h1 = pool.h1_idle(idx).filter(|_| client_upgrade.is_none());
        let answered = match own_h1 {
            Some(idle) => {
                let target = &pool.targets[idx].authority;
                let sent = crate::h1_upstream::send(idle, target, pool.spec.connect_timeout, req, idempotent);
                tokio::time::timeout(timeout, sent).await.map(|r| {
                    r.map(|resp| resp.map(UpstreamBody::H1))
                        .map_err(|e| (e.is_connect(), error_chain(&e)))
                })
            }
            None => tokio::time::timeout(timeout, pool.client().request(req))
                .await
                .map(|r| {
                    r.map(|resp| resp.map(UpstreamBody::Hyper))
                        .map_err(|e| (e.is_connect(), error_chain(&e)))
                }),
        };
        let retry_ok = match answered {
            Ok(Ok(resp)) => {
                if matches!(resp.status().as_u16(), 502..=504) {
                    pool.record_failure(idx);
                } else {
                    pool.record_success(idx);
                }
                return finish_response(resp, client_upgrade, request_id);
            }
            Ok(Err((never_sent, error))) => {
                pool.record_failure(idx);
                tracing::warn!(request_id, upstream = %pool.spec.name, target = %pool.targets[idx].labels.target, error, "upstream request failed");
                last_error = Some((StatusCode::BAD_GATEWAY, "upstream unavailable"));
                // A request that never reached the upstream is safe to send elsewhere; one that may have
                // reached it only when it is idempotent.
                idempotent || never_sent
            }
            Err(_) => {
                pool.record_failure(idx);
                tracing::warn!(request_id, upstream = %pool.spec.name, target = %pool.targets[idx].labels.target, "upstream timed out");
                last_error = Some((StatusCode::GATEWAY_TIMEOUT, "upstream timed out"));
                idempotent
            }
        };
        if !retry_ok || last_try {
            break;
        }
    }
    outcome.action = "upstream_error";
    let (status, msg) = last_error.unwrap_or((StatusCode::BAD_GATEWAY, "no healthy upstream target"));
    error_response(status, msg, request_id)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn finish_response(
    resp: Response<UpstreamBody>,
    client_upgrade: Option<ClientUpgrade>,
    request_id: &str,
) -> Response<RespBody> {
    let (mut parts, body) = resp.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(up) = client_upgrade {
            let mut upstream_resp = Response::from_parts(parts.clone(), ());
            let upstream_side = hyper::upgrade::on(&mut upstream_resp);
            let websocket = parts
                .headers
                .get(header::UPGRADE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            if let Some(expected) = &up.h2_accept {
                // RFC 8441: the client is answered 200 on its stream, without the HTTP/1.1 handshake's
                // headers; an upstream that did not complete the WebSocket handshake is not relayed.
                let accept = parts.headers.remove("sec-websocket-accept");
                if !websocket || accept.as_ref().is_none_or(|a| a.as_bytes() != expected.as_bytes()) {
                    return error_response(
                        StatusCode::BAD_GATEWAY,
                        "upstream did not accept the WebSocket handshake",
                        request_id,
                    );
                }
                parts.status = StatusCode::OK;
                parts.headers.remove(header::UPGRADE);
                parts.headers.remove(header::CONNECTION);
            }
            let guard = up.guard.filter(|_| websocket);
            let deflate = crate::websocket::deflate_params(&parts.headers);
            let client_side = up.on;
            tokio::spawn(async move {
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((client, upstream)) => {
                        let client = hyper_util::rt::TokioIo::new(client);
                        let upstream = hyper_util::rt::TokioIo::new(upstream);
                        crate::websocket::relay(client, upstream, guard, deflate).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            parts.extensions = http::Extensions::new();
            return Response::from_parts(parts, RespBody::empty());
        }
    }
    headers::strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, RespBody::Upstream(body))
}

pub fn error_response(status: StatusCode, message: &str, request_id: &str) -> Response<RespBody> {
    let body = serde_json::json!({ "error": message, "status": status.as_u16(), "request_id": request_id });
    let mut resp = Response::new(RespBody::full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn block_response(rt: &Runtime, request_id: &str) -> Response<RespBody> {
    let b = &rt.policy.block;
    let mut resp = Response::new(RespBody::full(b.render(request_id)));
    *resp.status_mut() = StatusCode::from_u16(b.status).unwrap_or(StatusCode::FORBIDDEN);
    if let Ok(v) = HeaderValue::from_str(&b.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in &b.headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// The gRPC form of a refusal by the gateway: HTTP 200, `grpc-status` and `grpc-message` in the headers
/// of a trailers-only response (no body). None for answers that came from the upstream.
fn grpc_refusal(action: &str, request_id: &str) -> Option<Response<RespBody>> {
    // https://grpc.github.io/grpc/core/md_doc_statuscodes.html
    let (code, message) = match action {
        "block" | "banned" | "abuse" | "challenged" => ("7", "request blocked by the API gateway"),
        "limited" | "too_large" | "overloaded" => ("8", "request refused by the API gateway: over a limit"),
        "upstream_error" => ("14", "upstream unavailable"),
        "client_error" => ("13", "could not read the request"),
        _ => return None,
    };
    let mut resp = Response::new(RespBody::empty());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static(code));
    // grpc-message is percent-encoded; these messages and request ids need only the spaces encoded.
    let msg = format!("{message} (request id {request_id})").replace(' ', "%20");
    if let Ok(v) = HeaderValue::from_str(&msg) {
        h.insert("grpc-message", v);
    }
    Some(resp)
}

/// A slot in a route's concurrency cap, released when dropped.
struct InFlight(Arc<std::sync::atomic::AtomicU32>);

impl InFlight {
    fn enter(counter: &Arc<std::sync::atomic::AtomicU32>, max: u32) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let mut cur = counter.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return None;
            }
            match counter.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(InFlight(counter.clone())),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Acts on an exceeded rate limit. Returns the response to answer with, or None when the request goes on
/// (action `log`, or a route in monitor mode, which never blocks).
#[allow(clippy::too_many_arguments)]
fn limited(
    shared: &Shared,
    rt: &Runtime,
    parts: &http::request::Parts,
    client_ip: IpAddr,
    mode: Mode,
    hit: rampart_guard::LimitOutcome,
    outcome: &mut Outcome,
    request_id: &str,
) -> Option<Response<RespBody>> {
    use rampart_events::Action;
    use rampart_policy::guard::{LimitAction, OnStoreError};
    let mut reason = format!("rate limit {}: {} over the limit", hit.limit, hit.key);
    if hit.fallback {
        reason.push_str(" (decided without the shared state store)");
    }
    let action = if mode == Mode::Monitor {
        LimitAction::Log
    } else {
        hit.action
    };
    match action {
        LimitAction::Log => {
            if first_report(&hit) {
                let a = if mode == Mode::Monitor {
                    Action::Monitor
                } else {
                    Action::Limit
                };
                outcome.event = Some(EventFacts::behaviour(parts, a, reason));
            }
            None
        }
        LimitAction::Reject => {
            outcome.action = "limited";
            if first_report(&hit) {
                outcome.event = Some(EventFacts::behaviour(parts, Action::Limit, reason));
            }
            let closed = hit.fallback && shared.state.on_error() == OnStoreError::Closed;
            let (status, message) = if closed {
                (StatusCode::SERVICE_UNAVAILABLE, "rate limit state unavailable")
            } else {
                (StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
            };
            let mut resp = error_response(status, message, request_id);
            let secs = hit.retry_after.as_secs() + u64::from(hit.retry_after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Some(resp)
        }
        LimitAction::Challenge => {
            outcome.action = "challenged";
            if first_report(&hit) {
                outcome.event = Some(EventFacts::behaviour(parts, Action::Challenge, reason));
            }
            let mut resp = Response::new(RespBody::full(shared.challenger.page(client_ip)));
            *resp.status_mut() = StatusCode::FORBIDDEN;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("x-rampart-challenge", HeaderValue::from_static("1"));
            Some(resp)
        }
        LimitAction::Ban(d) => {
            shared.bans.ban(client_ip, d);
            outcome.action = "banned";
            reason.push_str(&format!("; banned for {}", humantime::format_duration(d)));
            outcome.event = Some(EventFacts::behaviour(parts, Action::Ban, reason));
            Some(block_response(rt, request_id))
        }
    }
}

/// Acts on an abuse detector's finding. Returns the response to answer with, or None when the request goes
/// on (action `log`, or a route in monitor mode).
#[allow(clippy::too_many_arguments)]
fn abused(
    shared: &Shared,
    rt: &Runtime,
    parts: &http::request::Parts,
    client_ip: IpAddr,
    mode: Mode,
    found: rampart_guard::AbuseOutcome,
    outcome: &mut Outcome,
    request_id: &str,
) -> Option<Response<RespBody>> {
    use rampart_events::Action;
    use rampart_policy::guard::AbuseAction;
    let mut reason = format!("{} ({}): {}", found.detector, found.key, found.signals.join("; "));
    let action = if mode == Mode::Monitor {
        AbuseAction::Log
    } else {
        found.action
    };
    let report_key = rampart_guard::LimitOutcome {
        limit: found.detector.clone(),
        action: rampart_policy::guard::LimitAction::Log,
        retry_after: std::time::Duration::ZERO,
        key: found.key.clone(),
        fallback: false,
    };
    match action {
        AbuseAction::Log => {
            if first_report(&report_key) {
                outcome.event = Some(EventFacts::behaviour(parts, Action::Monitor, reason));
            }
            None
        }
        AbuseAction::Block => {
            outcome.action = "abuse";
            if first_report(&report_key) {
                outcome.event = Some(EventFacts::behaviour(parts, Action::Block, reason));
            }
            Some(block_response(rt, request_id))
        }
        AbuseAction::Ban(d) => {
            shared.bans.ban(client_ip, d);
            outcome.action = "banned";
            reason.push_str(&format!("; banned for {}", humantime::format_duration(d)));
            outcome.event = Some(EventFacts::behaviour(parts, Action::Ban, reason));
            Some(block_response(rt, request_id))
        }
    }
}

/// A gRPC or gRPC-Web call, by its content type.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The cookie that carries a solved challenge, as a key part (read like any other cookie).
fn clearance_cookie() -> rampart_policy::guard::KeyPart {
    rampart_policy::guard::KeyPart::Cookie(rampart_guard::challenge::CLEARANCE_COOKIE.to_string())
}

/// Whether this (limit, key) has not been reported by this worker in the last 10 s: a flood that a limit
/// holds back is one event per key every 10 s, not one per request.
fn first_report(hit: &rampart_guard::LimitOutcome) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::Duration;
    thread_local! {
        static REPORTED: RefCell<HashMap<(String, String), Instant>> = RefCell::new(HashMap::new());
    }
    REPORTED.with(|r| {
        let mut r = r.borrow_mut();
        let now = Instant::now();
        if r.len() > 10_000 {
            r.retain(|_, t| now.duration_since(*t) < Duration::from_secs(10));
        }
        let key = (hit.limit.clone(), hit.key.clone());
        match r.get(&key) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(10) => false,
            _ => {
                r.insert(key, now);
                true
            }
        }
    })
}

/// The event for a request that was blocked, monitored or refused.
#[allow(clippy::too_many_arguments)]
fn request_event(
    outcome: &Outcome,
    facts: &EventFacts,
    conn: &ConnInfo,
    request_id: &str,
    method: &str,
    path: &str,
    status: u16,
    elapsed: std::time::Duration,
) -> rampart_events::Event {
    use rampart_events::{Action, Event, EventKind, Finding};
    let mut e = match &facts.behaviour {
        Some((action, reason)) => {
            let mut e = Event::new(EventKind::Behaviour, *action);
            e.reason = Some(reason.clone());
            e
        }
        None => Event::new(
            EventKind::Request,
            match outcome.action {
                "block" => Action::Block,
                "monitor" => Action::Monitor,
                _ => Action::Reject,
            },
        ),
    };
    e.request_id = request_id.to_string();
    e.client_ip = outcome.client_ip.unwrap_or(conn.client).to_string();
    e.method = method.to_string();
    e.host.clone_from(&facts.host);
    e.path = path.to_string();
    e.route = outcome.route.as_deref().unwrap_or("").to_string();
    e.status = status;
    e.latency_us = elapsed.as_micros() as u64;
    e.user_agent = facts
        .user_agent
        .as_ref()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().take(256).collect());
    if let Some(i) = &outcome.inspection {
        e.score = i.score;
        e.findings = i.findings.iter().map(|f| f.to_event("")).collect();
    }
    if let Some((class, rule_id)) = facts.refusal {
        e.findings.push(Finding {
            class: class.to_string(),
            rule_id: rule_id.to_string(),
            score: 0,
            point: "request".to_string(),
            evidence: String::new(),
            decode_chain: Vec::new(),
        });
    }
    e
}

/// The current time as RFC 3339 with microseconds, UTC.
fn humantime_rfc3339() -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_micros(std::time::SystemTime::now())
}
