//! The compiled `[state]` and `[[rate_limits]]` sections: where shared counters live and what they limit.

use crate::compile::Compiler;
use crate::file::{RateLimitFile, StateFile};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct StateSettings {
    pub backend: StateBackend,
    /// The longest a decision waits for the store.
    pub timeout: Duration,
    pub on_error: OnStoreError,
    pub key_prefix: String,
    /// Bound of the in-memory store (and of the local fallback).
    pub max_keys: usize,
    /// How often a node pulls the fleet's bans from a shared store.
    pub ban_sync: Duration,
}

/// What identifies a client beyond its address: read from each request when session or fingerprint bans
/// exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentitySettings {
    pub session: Option<KeyPart>,
    pub fingerprint: Option<KeyPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateBackend {
    Memory,
    Redis { url: String },
    RedisCluster { nodes: Vec<String> },
}

/// What a decision does when the shared store does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Decide with this node's own memory store (limits become per node until the store returns).
    Local,
    /// Allow.
    Open,
    /// Deny (503).
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSpec {
    pub name: String,
    /// Empty: every route.
    pub routes: Vec<String>,
    pub key: Vec<KeyPart>,
    pub algorithm: Algorithm,
    /// Empty: every request counts; else only responses with these statuses.
    pub count_status: Vec<u16>,
    pub action: LimitAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    ClientIp,
    /// The client address truncated to a prefix: (IPv4 bits, IPv6 bits).
    ClientPrefix(u8, u8),
    Header(String),
    Cookie(String),
    Query(String),
    /// A JSON pointer into the request body.
    Json(String),
    /// A claim of the bearer JWT's payload (not verified: a key, not an identity).
    Jwt(String),
    /// A field of a form-urlencoded body.
    Form(String),
    /// The Nth segment of the path (1 = first).
    PathSegment(usize),
    /// The user name of HTTP Basic credentials.
    BasicUser,
    /// The password of HTTP Basic credentials (only for the leaked-password check).
    BasicPassword,
    Route,
    Method,
    Path,
    Host,
}

impl KeyPart {
    /// Whether the part needs the request body.
    pub fn needs_body(&self) -> bool {
        matches!(self, KeyPart::Json(_) | KeyPart::Form(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Generic cell rate: `count` per `period`, `burst` at once.
    Gcra { count: u64, period: Duration, burst: u64 },
    /// A fixed window counter: `count` per window.
    Window { count: u64, period: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    /// 429 with Retry-After.
    Reject,
    /// Ban the client address for this long (and answer the block response).
    Ban(Duration),
    /// Answer a proof-of-work page; a browser that solves it passes this limit for a while.
    Challenge,
    /// Record an event; let the request through.
    Log,
}

/// The `challenge` action's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeSettings {
    /// Shared by the fleet so a clearance holds on every node; None: a random key per process.
    pub secret: Option<crate::events::Secret>,
    /// Leading zero bits the page's proof of work must find.
    pub difficulty: u8,
    /// How long a solved challenge lets the client through.
    pub clearance: Duration,
}

/// "100/1m", "5/s", "1000/1h".
fn parse_rate(s: &str) -> Result<(u64, Duration), String> {
    let (n, per) = s.split_once('/').ok_or_else(|| format!("`{s}` is not a rate"))?;
    let count: u64 = n.trim().parse().map_err(|_| format!("`{n}` is not a request count"))?;
    if count == 0 {
        return Err("a rate needs at least one request per period".into());
    }
    let per = per.trim();
    let period = match per {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => crate::units::parse_duration(other)?,
    };
    if period.is_zero() {
        return Err("the period must be longer than zero".into());
    }
    Ok((count, period))
}

fn parse_key(s: &str) -> Result<KeyPart, String> {
    let nonempty = |v: &str, what: &str| {
        if v.is_empty() {
            Err(format!("`{s}` names no {what}"))
        } else {
            Ok(v.to_string())
        }
    };
    Ok(match s {
        "client_ip" => KeyPart::ClientIp,
        "route" => KeyPart::Route,
        "method" => KeyPart::Method,
        "path" => KeyPart::Path,
        "host" => KeyPart::Host,
        _ => {
            if let Some(bits) = s.strip_prefix("client_ip/") {
                let b: u8 = bits.parse().map_err(|_| format!("`{bits}` is not a prefix length"))?;
                if b == 0 || b > 128 {
                    return Err("a prefix length is 1-32 (IPv4) or 1-128 (IPv6)".into());
                }
                // One length for both families: /24 means /24 for IPv4 and /48 for IPv6, the usual
                // allocation sizes; a length over 32 is an IPv6 length (IPv4 then counts per address).
                if b <= 32 {
                    KeyPart::ClientPrefix(b, (b * 2).min(128))
                } else {
                    KeyPart::ClientPrefix(32, b)
                }
            } else if let Some(h) = s.strip_prefix("header:") {
                let h = nonempty(h, "header")?.to_ascii_lowercase();
                http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("`{h}` is not a header name"))?;
                KeyPart::Header(h)
            } else if let Some(c) = s.strip_prefix("cookie:") {
                KeyPart::Cookie(nonempty(c, "cookie")?)
            } else if let Some(q) = s.strip_prefix("query:") {
                KeyPart::Query(nonempty(q, "query parameter")?)
            } else if let Some(j) = s.strip_prefix("json:") {
                if !j.starts_with('/') {
                    return Err(format!("`{j}` is not a JSON pointer (it starts with /)"));
                }
                KeyPart::Json(j.to_string())
            } else if let Some(c) = s.strip_prefix("jwt:") {
                KeyPart::Jwt(nonempty(c, "claim")?)
            } else if let Some(f) = s.strip_prefix("form:") {
                KeyPart::Form(nonempty(f, "form field")?)
            } else if let Some(n) = s.strip_prefix("path:") {
                let n: usize = n
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("`{n}` is not a path segment number (1 = the first)"))?;
                KeyPart::PathSegment(n)
            } else if s == "basic:user" {
                KeyPart::BasicUser
            } else if s == "basic:password" {
                KeyPart::BasicPassword
            } else {
                return Err(format!("`{s}` is not a key"));
            }
        }
    })
}

const KEY_HINT: &str =
    "keys: client_ip, client_ip/24, session, fingerprint, header:NAME, cookie:NAME, query:NAME, json:/pointer, \
                        form:FIELD, path:N, basic:user, jwt:claim, route, method, path, host";

impl Compiler<'_> {
    pub(crate) fn state(&mut self, f: &StateFile) -> StateSettings {
        let backend = match f.backend.as_ref().map(|b| (b.get_ref().as_str(), b.span())) {
            None | Some(("memory", _)) => StateBackend::Memory,
            Some(("redis", span)) => {
                if !f.cluster.is_empty() {
                    let mut nodes = Vec::new();
                    for n in &f.cluster {
                        if self.redis_url(n) {
                            nodes.push(n.get_ref().clone());
                        }
                    }
                    StateBackend::RedisCluster { nodes }
                } else if let Some(url) = &f.url {
                    self.redis_url(url);
                    StateBackend::Redis {
                        url: url.get_ref().clone(),
                    }
                } else {
                    self.r.error(
                        Some(span),
                        "the redis backend needs `url` (or `cluster`)".to_string(),
                        Some("e.g. url = \"redis://127.0.0.1:6379/0\"".to_string()),
                    );
                    StateBackend::Memory
                }
            }
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not a state backend"),
                    Some("use \"memory\" or \"redis\" (Redis and Valkey)".to_string()),
                );
                StateBackend::Memory
            }
        };
        let on_error = match f.on_error.as_ref().map(|b| (b.get_ref().as_str(), b.span())) {
            None | Some(("local", _)) => OnStoreError::Local,
            Some(("open", _)) => OnStoreError::Open,
            Some(("closed", _)) => OnStoreError::Closed,
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not an on_error setting"),
                    Some("use \"local\", \"open\" or \"closed\"".to_string()),
                );
                OnStoreError::Local
            }
        };
        StateSettings {
            backend,
            timeout: self.duration(&f.timeout, Duration::from_millis(5)),
            on_error,
            key_prefix: f.key_prefix.clone().unwrap_or_else(|| "rampart:".to_string()),
            max_keys: f.max_keys.unwrap_or(1_000_000).max(1),
            ban_sync: self
                .duration(&f.ban_sync, Duration::from_secs(1))
                .max(Duration::from_millis(50)),
        }
    }

    pub(crate) fn challenge(&mut self, f: &crate::file::ChallengeFile) -> ChallengeSettings {
        let difficulty = f.difficulty.as_ref().map_or(16, |d| {
            let v = *d.get_ref();
            if !(8..=24).contains(&v) {
                self.r.error(
                    Some(d.span()),
                    format!("difficulty {v} is out of range"),
                    Some("8-24 leading zero bits; 16 takes a browser well under a second".to_string()),
                );
            }
            v.clamp(8, 24) as u8
        });
        ChallengeSettings {
            secret: f.secret.as_ref().and_then(|s| self.secret(s)),
            difficulty,
            clearance: self.duration(&f.clearance, Duration::from_secs(1800)),
        }
    }

    pub(crate) fn identity(&mut self, f: &crate::file::IdentityFile) -> IdentitySettings {
        IdentitySettings {
            session: f.session.as_ref().and_then(|k| self.key_part(k)),
            fingerprint: f.fingerprint.as_ref().and_then(|k| self.key_part(k)),
        }
    }

    fn redis_url(&mut self, u: &crate::file::S<String>) -> bool {
        let v = u.get_ref();
        let ok = v.starts_with("redis://") && v.len() > "redis://".len();
        if !ok {
            self.r.error(
                Some(u.span()),
                format!("`{v}` is not a redis:// URL"),
                Some("write redis://host:port/db; TLS (rediss://) is not supported yet".to_string()),
            );
        }
        ok
    }

    pub(crate) fn rate_limit(&mut self, l: &RateLimitFile, route_names: &[String]) -> Option<RateLimitSpec> {
        let mut ok = true;
        let mut routes = Vec::new();
        for r in &l.routes {
            if route_names.contains(r.get_ref()) {
                routes.push(r.get_ref().clone());
            } else {
                ok = false;
                self.r.error(
                    Some(r.span()),
                    format!("rate limit `{}`: no route is named `{}`", l.name.get_ref(), r.get_ref()),
                    Some(format!("routes: {}", route_names.join(", "))),
                );
            }
        }
        let mut key = Vec::new();
        for k in &l.key {
            match self.key_part(k) {
                Some(p) => key.push(p),
                None => ok = false,
            }
        }
        let (count, period) = match parse_rate(l.rate.get_ref()) {
            Ok(r) => r,
            Err(e) => {
                self.r.error(
                    Some(l.rate.span()),
                    e,
                    Some("write requests/period, e.g. \"100/1m\", \"10/s\", \"1000/1h\"".to_string()),
                );
                return None;
            }
        };
        let algorithm = match l.algorithm.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("gcra", _)) => Algorithm::Gcra {
                count,
                period,
                burst: l.burst.unwrap_or(count).max(1),
            },
            Some(("window", _)) => Algorithm::Window { count, period },
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not a rate-limit algorithm"),
                    Some("use \"gcra\" (rate with burst) or \"window\" (fixed window counter)".to_string()),
                );
                return None;
            }
        };
        let action = match l.action.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("reject", _)) => LimitAction::Reject,
            Some(("log", _)) => LimitAction::Log,
            Some(("challenge", _)) => LimitAction::Challenge,
            Some(("ban", span)) => match &l.ban_for {
                Some(d) => LimitAction::Ban(self.duration(&Some(d.clone()), Duration::from_secs(600))),
                None => {
                    self.r.error(
                        Some(span),
                        "action = \"ban\" needs `ban_for`".to_string(),
                        Some("e.g. ban_for = \"10m\"".to_string()),
                    );
                    return None;
                }
            },
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not a rate-limit action"),
                    Some("use \"reject\" (429), \"ban\", \"challenge\" or \"log\"".to_string()),
                );
                return None;
            }
        };
        if let (LimitAction::Ban(_), false) = (action, key.iter().any(|k| matches!(k, KeyPart::ClientIp))) {
            self.r.error(
                l.action.as_ref().map(|a| a.span()),
                "action = \"ban\" bans the client address: the key must include client_ip".to_string(),
                Some("add \"client_ip\" to key, or use action = \"reject\"".to_string()),
            );
            return None;
        }
        ok.then(|| RateLimitSpec {
            name: l.name.get_ref().clone(),
            routes,
            key,
            algorithm,
            count_status: l.count_status.clone(),
            action,
        })
    }
}

/// What an abuse detector does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbuseAction {
    /// Answer the block response.
    Block,
    /// Ban the client address for this long.
    Ban(Duration),
    /// Record an event only.
    Log,
}

/// Credential stuffing and account takeover on one login route.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginSpec {
    pub route: String,
    pub username: KeyPart,
    pub password: Option<KeyPart>,
    /// Response statuses that mean "wrong credentials".
    pub failure_status: Vec<u16>,
    /// Text in the first [`FAILURE_BODY_SCAN`] bytes of the response body that means "wrong credentials".
    pub failure_body: Option<String>,
    pub window: Duration,
    /// Distinct user names tried from one address within `window`.
    pub max_usernames_per_ip: u64,
    /// Distinct addresses failing on one user name within `window`.
    pub max_ips_per_username: u64,
    /// Failures from one /24 (IPv6 /48) within `slow_window`: campaigns spread thin over addresses.
    pub max_failures_per_prefix: u64,
    pub slow_window: Duration,
    /// A directory of Have I Been Pwned range files (`ABCDE` -> `SUFFIX:COUNT` lines).
    pub leaked_passwords: Option<std::path::PathBuf>,
    pub action: AbuseAction,
}

/// How much of a login response body is searched for `failure_body`.
pub const FAILURE_BODY_SCAN: usize = 16 * 1024;

/// Enumeration / BOLA / forced browsing on one route.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumerationSpec {
    pub name: String,
    pub route: String,
    /// The identifier whose distinct values are counted.
    pub id: KeyPart,
    /// Who is counted: key parts (default: client_ip).
    pub per: Vec<KeyPart>,
    pub window: Duration,
    pub max_distinct: u64,
    /// Share of 403/404 answers past which the client is stopped (with at least `min_requests`).
    pub max_error_ratio: f64,
    pub min_requests: u64,
    pub action: AbuseAction,
}

/// SMS pumping (toll fraud) on a route that sends one-time codes by SMS.
#[derive(Debug, Clone, PartialEq)]
pub struct OtpSpec {
    pub route: String,
    /// Where the destination number is on the send route.
    pub phone: KeyPart,
    /// The route that checks codes, and where the number is there.
    pub verify: Option<(String, KeyPart)>,
    pub session: Option<KeyPart>,
    /// Velocity and conversion window.
    pub window: Duration,
    pub max_per_number: u64,
    pub max_per_ip: u64,
    pub max_per_session: u64,
    /// Leading digits, country code included, that make a range ("447700" for +44 7700 ...).
    pub prefix_digits: usize,
    pub min_sends: u64,
    pub min_conversion: f64,
    /// Sends younger than this are not yet expected to be verified.
    pub verify_grace: Duration,
    pub block_for: Duration,
    /// Denied ranges as digit strings ("882", "4470").
    pub deny_prefixes: Vec<String>,
    /// The country calling code for numbers written without one.
    pub default_country: Option<String>,
    pub action: AbuseAction,
}

/// The digits of an E.164 prefix written as "+44 70", "+1-900", "00882"; None when it is not one.
pub fn e164_prefix_digits(s: &str) -> Option<String> {
    let t = s.trim();
    let rest = t.strip_prefix('+').or_else(|| t.strip_prefix("00"))?;
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

impl Compiler<'_> {
    fn abuse_action(
        &mut self,
        action: &Option<crate::file::S<String>>,
        ban_for: &Option<crate::file::S<String>>,
    ) -> AbuseAction {
        match action.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("block", _)) => AbuseAction::Block,
            Some(("log", _)) => AbuseAction::Log,
            Some(("ban", _)) => AbuseAction::Ban(self.duration(ban_for, Duration::from_secs(3600))),
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not an action"),
                    Some("use \"block\", \"ban\" (with ban_for) or \"log\"".to_string()),
                );
                AbuseAction::Block
            }
        }
    }

    /// A key part as written; `session` and `fingerprint` stand for what `[identity]` names.
    fn key_part(&mut self, k: &crate::file::S<String>) -> Option<KeyPart> {
        let named = match k.get_ref().as_str() {
            "session" => Some(("session", self.identity.session.clone())),
            "fingerprint" => Some(("fingerprint", self.identity.fingerprint.clone())),
            _ => None,
        };
        if let Some((what, part)) = named {
            if part.is_none() {
                self.r.error(
                    Some(k.span()),
                    format!("key `{what}` needs [identity] {what}"),
                    Some(format!("say where it is, e.g. [identity] {what} = \"cookie:sid\"")),
                );
            }
            return part;
        }
        match parse_key(k.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.r.error(Some(k.span()), e, Some(KEY_HINT.to_string()));
                None
            }
        }
    }

    fn known_route(&mut self, r: &crate::file::S<String>, routes: &[String]) -> bool {
        let ok = routes.contains(r.get_ref());
        if !ok {
            self.r.error(
                Some(r.span()),
                format!("no route is named `{}`", r.get_ref()),
                Some(format!("routes: {}", routes.join(", "))),
            );
        }
        ok
    }

    pub(crate) fn login(&mut self, l: &crate::file::LoginFile, routes: &[String]) -> Option<LoginSpec> {
        let route_ok = self.known_route(&l.route, routes);
        let username = self.key_part(&l.username);
        let password = match &l.password {
            Some(p) => Some(self.key_part(p)?),
            None => None,
        };
        let leaked_passwords = l.leaked_passwords.as_ref().and_then(|d| {
            let dir = self.base_dir.join(d.get_ref());
            if dir.is_dir() {
                Some(dir)
            } else {
                self.r.error(
                    Some(d.span()),
                    format!("{} is not a directory", dir.display()),
                    Some(
                        "a directory of Have I Been Pwned range files (named by the first 5 hex digits of the SHA-1)"
                            .to_string(),
                    ),
                );
                None
            }
        });
        let failure_body = l.failure_body.as_ref().and_then(|b| {
            let v = b.get_ref();
            if v.is_empty() || v.len() > 256 {
                self.r.error(
                    Some(b.span()),
                    "failure_body must be 1-256 bytes of text".to_string(),
                    Some("a short marker of the error answer, e.g. \"invalid_credentials\"".to_string()),
                );
                None
            } else {
                Some(v.clone())
            }
        });
        let action = self.abuse_action(&l.action, &l.ban_for);
        if !route_ok {
            return None;
        }
        Some(LoginSpec {
            failure_body,
            route: l.route.get_ref().clone(),
            username: username?,
            password,
            failure_status: if l.failure_status.is_empty() {
                vec![401, 403]
            } else {
                l.failure_status.clone()
            },
            window: self.duration(&l.window, Duration::from_secs(600)),
            max_usernames_per_ip: l.max_usernames_per_ip.unwrap_or(10).max(1),
            max_ips_per_username: l.max_ips_per_username.unwrap_or(20).max(1),
            max_failures_per_prefix: l.max_failures_per_prefix.unwrap_or(100).max(1),
            slow_window: self.duration(&l.slow_window, Duration::from_secs(6 * 3600)),
            leaked_passwords,
            action,
        })
    }

    pub(crate) fn enumeration(
        &mut self,
        e: &crate::file::EnumerationFile,
        routes: &[String],
    ) -> Option<EnumerationSpec> {
        let route_ok = self.known_route(&e.route, routes);
        let id = self.key_part(&e.id);
        let mut per = Vec::new();
        for p in &e.per {
            per.push(self.key_part(p)?);
        }
        if per.is_empty() {
            per.push(KeyPart::ClientIp);
        }
        let ratio = e.max_error_ratio.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&ratio) {
            self.r.error(
                None,
                format!("enumeration `{}`: max_error_ratio must be within 0..1", e.name),
                Some("e.g. 0.5".to_string()),
            );
        }
        let action = self.abuse_action(&e.action, &e.ban_for);
        if !route_ok {
            return None;
        }
        Some(EnumerationSpec {
            name: e.name.clone(),
            route: e.route.get_ref().clone(),
            id: id?,
            per,
            window: self.duration(&e.window, Duration::from_secs(60)),
            max_distinct: e.max_distinct.unwrap_or(50).max(1),
            max_error_ratio: ratio,
            min_requests: e.min_requests.unwrap_or(20).max(1),
            action,
        })
    }
    pub(crate) fn otp(&mut self, o: &crate::file::OtpFile, routes: &[String]) -> Option<OtpSpec> {
        let route_ok = self.known_route(&o.route, routes);
        let phone = self.key_part(&o.phone);
        let verify = match &o.verify_route {
            Some(v) => {
                let ok = self.known_route(v, routes);
                let part = match &o.verify_phone {
                    Some(p) => self.key_part(p),
                    None => phone.clone(),
                };
                ok.then_some(()).and(part.map(|p| (v.get_ref().clone(), p)))
            }
            None => {
                if let Some(p) = &o.verify_phone {
                    self.r.error(
                        Some(p.span()),
                        "verify_phone without verify_route".to_string(),
                        Some("name the route that checks codes: verify_route = \"otp-verify\"".to_string()),
                    );
                }
                None
            }
        };
        let session = o.session.as_ref().and_then(|k| self.key_part(k));
        let mut deny_prefixes = Vec::new();
        for d in &o.deny_prefixes {
            match e164_prefix_digits(d.get_ref()) {
                Some(p) => deny_prefixes.push(p),
                None => self.r.error(
                    Some(d.span()),
                    format!("`{}` is not an international number prefix", d.get_ref()),
                    Some("write it with its country code: \"+882\", \"+44 70\"".to_string()),
                ),
            }
        }
        let default_country = o.default_country.as_ref().and_then(|c| {
            let code = c.get_ref().trim().trim_start_matches('+');
            if (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) {
                Some(code.to_string())
            } else {
                self.r.error(
                    Some(c.span()),
                    format!("`{}` is not a country calling code", c.get_ref()),
                    Some("one to three digits: \"1\", \"44\", \"353\"".to_string()),
                );
                None
            }
        });
        let prefix_digits = o.prefix_digits.unwrap_or(6);
        if !(2..=12).contains(&prefix_digits) {
            self.r.error(
                None,
                format!("otp `{}`: prefix_digits must be within 2..12", o.route.get_ref()),
                Some("6 digits is a country code and a range: +44 7700".to_string()),
            );
        }
        let min_conversion = o.min_conversion.unwrap_or(0.2);
        if !(0.0..=1.0).contains(&min_conversion) {
            self.r.error(
                None,
                format!("otp `{}`: min_conversion must be within 0..1", o.route.get_ref()),
                Some("e.g. 0.2: one send in five verified".to_string()),
            );
        }
        let action = self.abuse_action(&o.action, &o.ban_for);
        if !route_ok {
            return None;
        }
        let window = self.duration(&o.window, Duration::from_secs(3600));
        Some(OtpSpec {
            route: o.route.get_ref().clone(),
            phone: phone?,
            verify,
            session,
            window,
            max_per_number: o.max_per_number.unwrap_or(5).max(1),
            max_per_ip: o.max_per_ip.unwrap_or(20).max(1),
            max_per_session: o.max_per_session.unwrap_or(10).max(1),
            prefix_digits: prefix_digits.clamp(2, 12),
            min_sends: o.min_sends.unwrap_or(30).max(1),
            min_conversion,
            verify_grace: self.duration(&o.verify_grace, Duration::from_secs(60)).min(window),
            block_for: self.duration(&o.block_for, window),
            deny_prefixes,
            default_country,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_keys_parse() {
        assert_eq!(parse_rate("100/1m").unwrap(), (100, Duration::from_secs(60)));
        assert_eq!(parse_rate("5/s").unwrap(), (5, Duration::from_secs(1)));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_key("client_ip/24").unwrap(), KeyPart::ClientPrefix(24, 48));
        assert_eq!(parse_key("client_ip/64").unwrap(), KeyPart::ClientPrefix(32, 64));
        assert_eq!(
            parse_key("header:X-Api-Key").unwrap(),
            KeyPart::Header("x-api-key".into())
        );
        assert_eq!(
            parse_key("json:/user/email").unwrap(),
            KeyPart::Json("/user/email".into())
        );
        assert!(parse_key("json:user").is_err());
        assert!(parse_key("header:bad header").is_err());
        assert!(parse_key("phase_of_moon").is_err());
    }

    #[test]
    fn limits_and_state_compile_with_errors_on_lines() {
        let base = "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.a]\ntargets = [\"http://127.0.0.1:2\"]\n[[routes]]\nname = \"api\"\nupstream = \"a\"\n";
        let good = format!(
            "{base}[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\non_error = \"closed\"\n\
             [[rate_limits]]\nname = \"l\"\nkey = [\"client_ip\"]\nrate = \"10/s\"\nburst = 20\naction = \"ban\"\nban_for = \"5m\"\n"
        );
        let p = crate::compile_str(std::path::Path::new("t.toml"), &good).unwrap();
        assert_eq!(p.state.on_error, OnStoreError::Closed);
        assert_eq!(
            p.rate_limits[0].algorithm,
            Algorithm::Gcra {
                count: 10,
                period: Duration::from_secs(1),
                burst: 20
            }
        );
        assert_eq!(p.rate_limits[0].action, LimitAction::Ban(Duration::from_secs(300)));
        let bad = format!(
            "{base}[state]\nbackend = \"etcd\"\n[[rate_limits]]\nname = \"l\"\nroutes = [\"nope\"]\nkey = [\"shoe_size\"]\nrate = \"lots\"\n"
        );
        let e = crate::compile_str(std::path::Path::new("t.toml"), &bad).unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![9, 12, 13, 14], "{e}");
    }

    #[test]
    fn logins_and_enumeration_compile_with_errors_on_lines() {
        let base = "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.a]\ntargets = [\"http://127.0.0.1:2\"]\n[[routes]]\nname = \"login\"\nupstream = \"a\"\n";
        let good = format!(
            "{base}[[logins]]\nroute = \"login\"\nusername = \"form:user\"\npassword = \"basic:password\"\n\
             window = \"5m\"\nmax_usernames_per_ip = 4\naction = \"ban\"\nban_for = \"1h\"\n\
             [[enumeration]]\nname = \"users\"\nroute = \"login\"\nid = \"path:2\"\nper = [\"header:x-session\"]\nmax_distinct = 30\n"
        );
        let p = crate::compile_str(std::path::Path::new("t.toml"), &good).unwrap();
        let l = &p.logins[0];
        assert_eq!(l.username, KeyPart::Form("user".into()));
        assert_eq!(l.password, Some(KeyPart::BasicPassword));
        assert_eq!(l.failure_status, vec![401, 403]);
        assert_eq!(l.window, Duration::from_secs(300));
        assert_eq!(l.max_usernames_per_ip, 4);
        assert_eq!(l.max_failures_per_prefix, 100);
        assert_eq!(l.action, AbuseAction::Ban(Duration::from_secs(3600)));
        let e = &p.enumeration[0];
        assert_eq!(e.id, KeyPart::PathSegment(2));
        assert_eq!(e.per, vec![KeyPart::Header("x-session".into())]);
        assert_eq!((e.max_distinct, e.min_requests, e.action), (30, 20, AbuseAction::Block));
        let bad = format!(
            "{base}[[logins]]\nroute = \"signin\"\nusername = \"json:user\"\nleaked_passwords = \"no/such/dir\"\naction = \"shout\"\n\
             [[enumeration]]\nname = \"e\"\nroute = \"login\"\nid = \"path:0\"\n"
        );
        let e = crate::compile_str(std::path::Path::new("t.toml"), &bad).unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![9, 10, 11, 12, 16], "{e}");
    }

    #[test]
    fn otp_compiles_with_errors_on_lines() {
        let base = "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.a]\ntargets = [\"http://127.0.0.1:2\"]\n[[routes]]\nname = \"send\"\nupstream = \"a\"\n[[routes]]\nname = \"verify\"\nupstream = \"a\"\n";
        let good = format!(
            "{base}[[otp]]\nroute = \"send\"\nphone = \"json:/phone\"\nverify_route = \"verify\"\n\
             deny_prefixes = [\"+882\", \"+44 70\", \"00 883\"]\ndefault_country = \"+1\"\nmin_conversion = 0.3\n"
        );
        let p = crate::compile_str(std::path::Path::new("t.toml"), &good).unwrap();
        let o = &p.otp[0];
        assert_eq!(o.verify, Some(("verify".into(), KeyPart::Json("/phone".into()))));
        assert_eq!(o.deny_prefixes, vec!["882", "4470", "883"]);
        assert_eq!(o.default_country.as_deref(), Some("1"));
        assert_eq!(
            (o.prefix_digits, o.min_sends, o.block_for),
            (6, 30, Duration::from_secs(3600))
        );
        let bad = format!(
            "{base}[[otp]]\nroute = \"send\"\nphone = \"json:phone\"\nverify_route = \"check\"\n\
             deny_prefixes = [\"882\"]\ndefault_country = \"usa\"\n"
        );
        let e = crate::compile_str(std::path::Path::new("t.toml"), &bad).unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![13, 14, 15, 16], "{e}");
    }

    #[test]
    fn challenge_settings_compile_with_errors_on_lines() {
        let base = "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.a]\ntargets = [\"http://127.0.0.1:2\"]\n[[routes]]\nname = \"api\"\nupstream = \"a\"\n";
        let good = format!(
            "{base}[challenge]\nsecret = \"s3cret\"\ndifficulty = 12\nclearance = \"5m\"\n\
             [[rate_limits]]\nname = \"l\"\nkey = [\"client_ip\"]\nrate = \"10/s\"\naction = \"challenge\"\n"
        );
        let p = crate::compile_str(std::path::Path::new("t.toml"), &good).unwrap();
        assert_eq!(p.rate_limits[0].action, LimitAction::Challenge);
        assert_eq!(
            (p.challenge.difficulty, p.challenge.clearance),
            (12, Duration::from_secs(300))
        );
        assert_eq!(p.challenge.secret.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert!(
            !format!("{:?}", p.challenge).contains("s3cret"),
            "the secret never prints"
        );
        let defaults = crate::compile_str(std::path::Path::new("t.toml"), base)
            .unwrap()
            .challenge;
        assert_eq!(
            (defaults.difficulty, defaults.clearance),
            (16, Duration::from_secs(1800))
        );
        assert!(defaults.secret.is_none());
        let bad = format!("{base}[challenge]\ndifficulty = 40\nclearance = \"soon\"\n");
        let e = crate::compile_str(std::path::Path::new("t.toml"), &bad).unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![9, 10], "{e}");
    }

    #[test]
    fn session_and_fingerprint_keys_stand_for_the_identity() {
        let base = "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.a]\ntargets = [\"http://127.0.0.1:2\"]\n[[routes]]\nname = \"api\"\nupstream = \"a\"\n";
        let limit = "[[rate_limits]]\nname = \"per-session\"\nkey = [\"session\", \"fingerprint\"]\nrate = \"10/s\"\n";
        let good = format!("{base}[identity]\nsession = \"cookie:sid\"\nfingerprint = \"header:x-device-id\"\n{limit}");
        let p = crate::compile_str(std::path::Path::new("t.toml"), &good).unwrap();
        assert_eq!(
            p.rate_limits[0].key,
            vec![KeyPart::Cookie("sid".into()), KeyPart::Header("x-device-id".into())]
        );
        let e = crate::compile_str(std::path::Path::new("t.toml"), &format!("{base}{limit}")).unwrap_err();
        assert!(e.0.iter().all(|d| d.line == 10), "{e}");
        assert!(e.to_string().contains("needs [identity] session"), "{e}");
    }
}
