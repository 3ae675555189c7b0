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
    Route,
    Method,
    Path,
    Host,
}

impl KeyPart {
    /// Whether the part needs the request body.
    pub fn needs_body(&self) -> bool {
        matches!(self, KeyPart::Json(_))
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
    /// Record an event; let the request through.
    Log,
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
            } else {
                return Err(format!("`{s}` is not a key"));
            }
        }
    })
}

const KEY_HINT: &str = "keys: client_ip, client_ip/24, header:NAME, cookie:NAME, query:NAME, json:/pointer, \
                        jwt:claim, route, method, path, host";

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
            match parse_key(k.get_ref()) {
                Ok(p) => key.push(p),
                Err(e) => {
                    ok = false;
                    self.r.error(Some(k.span()), e, Some(KEY_HINT.to_string()));
                }
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
                    Some("use \"reject\" (429), \"ban\" or \"log\"".to_string()),
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
}
