//! Keyed rate limits: the policy's `[[rate_limits]]`, compiled once per policy, decided per request against
//! a [`Guarded`] store.
//!
//! A limit applies to a request when its route matches and every part of its key can be read from the
//! request (a limit keyed on `header:x-api-key` does not apply to requests without that header). Limits
//! that count responses (`count_status`) ask the store before the request (is the key over?) and count after
//! the response, when its status matches. Keys go to the store hashed: the store never holds an email
//! address or an API key, and every key has the same size.

use crate::guarded::Guarded;
use crate::store::Gcra;
use rampart_policy::guard::{Algorithm, KeyPart, LimitAction, RateLimitSpec};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;

/// What a limit needs to know about a request.
pub struct RequestFacts<'a> {
    pub parts: &'a http::request::Parts,
    /// The inspected body, when the limit stage runs after it was read.
    pub body: Option<&'a [u8]>,
    pub client_ip: IpAddr,
    pub route: &'a str,
}

/// A limit that was exceeded.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitOutcome {
    pub limit: String,
    pub action: LimitAction,
    pub retry_after: Duration,
    /// The key as it may be shown (addresses, route, path; other parts only as a short hash).
    pub key: String,
    /// The shared store did not answer: the fallback decided.
    pub fallback: bool,
}

/// A response-counting limit to count once the response status is known.
#[derive(Debug, Clone)]
pub struct PendingCount {
    limit: usize,
    store_key: String,
}

struct Compiled {
    spec: RateLimitSpec,
    gcra: Option<Gcra>,
    needs_body: bool,
}

/// When in the request's life a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before the body is read: limits whose key needs no body.
    Head,
    /// After the inspected body was read: limits keyed on the body.
    Body,
}

pub struct RateLimiter {
    limits: Vec<Compiled>,
    prefix: String,
}

impl RateLimiter {
    pub fn new(specs: &[RateLimitSpec], key_prefix: &str) -> Self {
        RateLimiter {
            limits: specs
                .iter()
                .map(|s| Compiled {
                    gcra: match s.algorithm {
                        Algorithm::Gcra { count, period, burst } => Some(Gcra::new(count, period, burst)),
                        Algorithm::Window { .. } => None,
                    },
                    needs_body: s.key.iter().any(KeyPart::needs_body),
                    spec: s.clone(),
                })
                .collect(),
            prefix: key_prefix.to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Whether any limit on `route` reads the body (the proxy then checks again after reading it).
    pub fn needs_body(&self, route: &str) -> bool {
        self.limits.iter().any(|l| l.needs_body && applies_to(&l.spec, route))
    }

    /// Checks the limits of `stage`. Returns the first exceeded limit, and the response-counting limits to
    /// count once the status is known (into `pending`).
    pub async fn check(
        &self,
        store: &Guarded,
        facts: &RequestFacts<'_>,
        stage: Stage,
        pending: &mut Vec<PendingCount>,
    ) -> Option<LimitOutcome> {
        self.check_cleared(store, facts, stage, pending, false).await
    }

    /// Whether a limit on `route` answers with a challenge (the proxy then reads the clearance cookie).
    pub fn has_challenge(&self, route: &str) -> bool {
        self.limits
            .iter()
            .any(|l| l.spec.action == LimitAction::Challenge && applies_to(&l.spec, route))
    }

    /// [`RateLimiter::check`] for a request that may carry a solved challenge: with `cleared`, limits whose
    /// action is `challenge` let it through (they still count it).
    pub async fn check_cleared(
        &self,
        store: &Guarded,
        facts: &RequestFacts<'_>,
        stage: Stage,
        pending: &mut Vec<PendingCount>,
        cleared: bool,
    ) -> Option<LimitOutcome> {
        for (i, l) in self.limits.iter().enumerate() {
            if l.needs_body != (stage == Stage::Body) || !applies_to(&l.spec, facts.route) {
                continue;
            }
            let Some((raw, shown)) = key_of(&l.spec.key, facts) else {
                continue;
            };
            let store_key = self.store_key(&l.spec.name, &raw);
            let counting_responses = !l.spec.count_status.is_empty();
            let cost = if counting_responses { 0 } else { 1 };
            let (allowed, retry_after, fallback) = match (&l.gcra, l.spec.algorithm) {
                (Some(g), _) => {
                    let a = store.gcra(&store_key, *g, cost).await;
                    (a.value.allowed, a.value.retry_after, a.fallback)
                }
                (None, Algorithm::Window { count, period }) => {
                    let a = store.window(&store_key, period, u64::from(cost)).await;
                    match a.value {
                        // Counting requests: this one is included. Peeking: the next one would be.
                        Some((n, left)) => {
                            let over = if counting_responses { n >= count } else { n > count };
                            (!over, if over { left } else { Duration::ZERO }, a.fallback)
                        }
                        None => (false, Duration::from_secs(1), true),
                    }
                }
                (None, Algorithm::Gcra { .. }) => unreachable!("compiled with a cell"),
            };
            let passes_challenge = cleared && l.spec.action == LimitAction::Challenge;
            if !(allowed || passes_challenge) {
                return Some(LimitOutcome {
                    limit: l.spec.name.clone(),
                    action: l.spec.action,
                    retry_after,
                    key: shown,
                    fallback,
                });
            }
            if counting_responses {
                pending.push(PendingCount { limit: i, store_key });
            }
        }
        None
    }

    /// Counts the response-counting limits whose statuses include `status`.
    pub async fn count_response(&self, store: &Guarded, pending: &[PendingCount], status: u16) {
        for p in pending {
            let Some(l) = self.limits.get(p.limit) else { continue };
            if !l.spec.count_status.contains(&status) {
                continue;
            }
            match (&l.gcra, l.spec.algorithm) {
                (Some(g), _) => {
                    store.gcra(&p.store_key, *g, 1).await;
                }
                (None, Algorithm::Window { period, .. }) => store.count(&p.store_key, period, 1),
                _ => {}
            }
        }
    }

    fn store_key(&self, limit: &str, raw: &str) -> String {
        let mut h = Sha256::new();
        h.update(limit.as_bytes());
        h.update([0x1f]);
        h.update(raw.as_bytes());
        let d = h.finalize();
        let mut s = String::with_capacity(self.prefix.len() + 3 + 2 + 32);
        s.push_str(&self.prefix);
        s.push_str("rl:{");
        for b in &d[..16] {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        s.push('}');
        s
    }
}

fn applies_to(spec: &RateLimitSpec, route: &str) -> bool {
    spec.routes.is_empty() || spec.routes.iter().any(|r| r == route)
}

const MAX_KEY_PART: usize = 256;

/// The raw key (for hashing) and a display form; None when a part is missing.
pub(crate) fn key_of(parts: &[KeyPart], f: &RequestFacts<'_>) -> Option<(String, String)> {
    let mut raw = String::new();
    let mut shown = Vec::with_capacity(parts.len());
    for p in parts {
        let v = part_value(p, f)?;
        let v: String = v.chars().take(MAX_KEY_PART).collect();
        raw.push_str(&v);
        raw.push('\u{1f}');
        shown.push(match p {
            KeyPart::ClientIp | KeyPart::ClientPrefix(..) | KeyPart::Route | KeyPart::Method | KeyPart::Host => v,
            KeyPart::Path | KeyPart::PathSegment(_) => v,
            // Values that may be credentials or personal data are shown as a short hash.
            other => {
                let d = Sha256::digest(v.as_bytes());
                format!("{}=#{:02x}{:02x}{:02x}{:02x}", label(other), d[0], d[1], d[2], d[3])
            }
        });
    }
    if parts.is_empty() {
        shown.push("*".to_string());
    }
    Some((raw, shown.join(" ")))
}

fn label(p: &KeyPart) -> String {
    match p {
        KeyPart::Header(h) => format!("header:{h}"),
        KeyPart::Cookie(c) => format!("cookie:{c}"),
        KeyPart::Query(q) => format!("query:{q}"),
        KeyPart::Json(j) => format!("json:{j}"),
        KeyPart::Jwt(c) => format!("jwt:{c}"),
        KeyPart::Form(c) => format!("form:{c}"),
        KeyPart::BasicUser => "basic:user".to_string(),
        KeyPart::BasicPassword => "basic:password".to_string(),
        _ => String::new(),
    }
}

/// The value of one key part in the request, if it has one.
pub fn part_value(p: &KeyPart, f: &RequestFacts<'_>) -> Option<String> {
    let ip = crate::bans::canonical(f.client_ip);
    match p {
        KeyPart::ClientIp => Some(ip.to_string()),
        KeyPart::ClientPrefix(v4, v6) => Some(match ip {
            IpAddr::V4(a) => ipnet::Ipv4Net::new(a, *v4).ok()?.trunc().to_string(),
            IpAddr::V6(a) => ipnet::Ipv6Net::new(a, *v6).ok()?.trunc().to_string(),
        }),
        KeyPart::Route => Some(f.route.to_string()),
        KeyPart::Method => Some(f.parts.method.as_str().to_string()),
        KeyPart::Path => Some(f.parts.uri.path().to_string()),
        KeyPart::Host => f
            .parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| f.parts.uri.host())
            .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase()),
        KeyPart::Header(h) => f
            .parts
            .headers
            .get(h.as_str())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .filter(|v| !v.is_empty()),
        KeyPart::Cookie(name) => f
            .parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty()),
        KeyPart::Query(name) => f.parts.uri.query().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k) == *name).then(|| decode(v)).filter(|v| !v.is_empty())
            })
        }),
        KeyPart::Json(pointer) => {
            let body = f.body?;
            let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
            match doc.pointer(pointer)? {
                serde_json::Value::String(s) => Some(s.trim().to_lowercase()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        }
        KeyPart::Form(field) => {
            let body = std::str::from_utf8(f.body?).ok()?;
            body.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k) == *field).then(|| decode(v)).filter(|v| !v.is_empty())
            })
        }
        KeyPart::PathSegment(n) => f
            .parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .nth(n - 1)
            .map(decode),
        KeyPart::BasicUser | KeyPart::BasicPassword => {
            use base64::Engine;
            let auth = f.parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, b64) = auth.trim().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return None;
            }
            let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (user, pass) = text.split_once(':')?;
            Some(if matches!(p, KeyPart::BasicUser) { user } else { pass }.to_string()).filter(|v| !v.is_empty())
        }
        KeyPart::Jwt(claim) => {
            use base64::Engine;
            let auth = f.parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))?
                .trim();
            let payload = token.split('.').nth(1)?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()?;
            let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            match doc.get(claim)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        }
    }
}

/// Percent and '+' decoding, so that `a%40b` and `a@b` count as one key.
fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn spec(key: &[KeyPart], count: u64) -> RateLimitSpec {
        RateLimitSpec {
            name: "l".into(),
            routes: vec![],
            key: key.to_vec(),
            algorithm: Algorithm::Window {
                count,
                period: Duration::from_secs(60),
            },
            count_status: vec![],
            action: LimitAction::Reject,
        }
    }

    #[test]
    fn key_parts_are_read_from_the_request() {
        let p = parts(
            "/login?user=ada%40example.com&x=1",
            &[
                ("host", "API.example.com:8443"),
                ("x-api-key", "k-123"),
                ("cookie", "theme=dark; sid=abc"),
                // {"sub":"user-42"}
                ("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTQyIn0."),
            ],
        );
        let body = br#"{"user": {"email": "Ada@Example.com "}}"#;
        let f = RequestFacts {
            parts: &p,
            body: Some(body),
            client_ip: "203.0.113.77".parse().unwrap(),
            route: "login",
        };
        let v = |k: KeyPart| part_value(&k, &f);
        assert_eq!(v(KeyPart::ClientIp).unwrap(), "203.0.113.77");
        assert_eq!(v(KeyPart::ClientPrefix(24, 48)).unwrap(), "203.0.113.0/24");
        assert_eq!(v(KeyPart::Host).unwrap(), "api.example.com");
        assert_eq!(v(KeyPart::Header("x-api-key".into())).unwrap(), "k-123");
        assert_eq!(v(KeyPart::Cookie("sid".into())).unwrap(), "abc");
        assert_eq!(v(KeyPart::Query("user".into())).unwrap(), "ada@example.com");
        assert_eq!(v(KeyPart::Json("/user/email".into())).unwrap(), "ada@example.com");
        assert_eq!(v(KeyPart::Jwt("sub".into())).unwrap(), "user-42");
        assert!(v(KeyPart::Header("x-missing".into())).is_none());
        let v6 = RequestFacts {
            client_ip: "2001:db8:1:2:3::9".parse().unwrap(),
            ..f
        };
        assert_eq!(
            part_value(&KeyPart::ClientPrefix(24, 48), &v6).unwrap(),
            "2001:db8:1::/48"
        );
    }

    #[tokio::test]
    async fn limits_decide_per_key_and_skip_requests_without_the_key() {
        let store = Guarded::memory(1000);
        let rl = RateLimiter::new(&[spec(&[KeyPart::Header("x-api-key".into())], 3)], "t:");
        let with = parts("/", &[("x-api-key", "k1")]);
        let other = parts("/", &[("x-api-key", "k2")]);
        let without = parts("/", &[]);
        let f = |p| RequestFacts {
            parts: p,
            body: None,
            client_ip: "192.0.2.1".parse().unwrap(),
            route: "r",
        };
        let mut pending = Vec::new();
        let mut limited = 0;
        for _ in 0..10 {
            if rl.check(&store, &f(&with), Stage::Head, &mut pending).await.is_some() {
                limited += 1;
            }
        }
        assert_eq!(limited, 7);
        assert!(rl.check(&store, &f(&other), Stage::Head, &mut pending).await.is_none());
        for _ in 0..10 {
            assert!(rl
                .check(&store, &f(&without), Stage::Head, &mut pending)
                .await
                .is_none());
        }
        let out = rl.check(&store, &f(&with), Stage::Head, &mut pending).await.unwrap();
        assert!(out.key.starts_with("header:x-api-key=#"), "{}", out.key);
        assert!(!out.key.contains("k1"));
    }

    #[tokio::test]
    async fn response_counting_limits_count_only_matching_statuses() {
        let store = Guarded::memory(1000);
        let mut s = spec(&[KeyPart::ClientIp], 3);
        s.count_status = vec![401];
        let rl = RateLimiter::new(&[s], "t:");
        let p = parts("/login", &[]);
        let f = RequestFacts {
            parts: &p,
            body: None,
            client_ip: "192.0.2.9".parse().unwrap(),
            route: "login",
        };
        // Successful logins never count.
        for _ in 0..10 {
            let mut pending = Vec::new();
            assert!(rl.check(&store, &f, Stage::Head, &mut pending).await.is_none());
            rl.count_response(&store, &pending, 200).await;
        }
        // Three failures; the fourth attempt is refused before it reaches the upstream.
        for _ in 0..3 {
            let mut pending = Vec::new();
            assert!(rl.check(&store, &f, Stage::Head, &mut pending).await.is_none());
            rl.count_response(&store, &pending, 401).await;
        }
        let mut pending = Vec::new();
        assert!(rl.check(&store, &f, Stage::Head, &mut pending).await.is_some());
    }
}
