//! The route table: which route serves a request, by host and path.
//!
//! Routes are sorted once, at compile time, from most to least specific (exact host before wildcard host
//! before any host; exact path before template before the longest prefix), so matching is a single linear
//! scan that stops at the first hit. Route tables hold tens of routes, where a scan over a sorted `Vec`
//! beats any tree on cache behaviour and keeps the rule obvious.

use crate::{BodyPolicy, Mode};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain, stored as the suffix ".example.com".
    Suffix(String),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Suffix(s) => host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 2,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Template(Vec<Segment>),
}

impl PathMatch {
    /// Parses `/users/{id}/orders` into segments; `None` when a brace is unbalanced.
    pub fn template(path: &str) -> Option<PathMatch> {
        let mut segments = Vec::new();
        for seg in path.trim_start_matches('/').split('/') {
            if seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2 {
                segments.push(Segment::Param);
            } else if seg.contains('{') || seg.contains('}') {
                return None;
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Some(PathMatch::Template(segments))
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => {
                // "/api" matches "/api", "/api/x" but not "/apix": a prefix ends at a segment boundary.
                path.starts_with(p.as_str())
                    && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            PathMatch::Template(segments) => {
                let mut parts = path.trim_start_matches('/').split('/');
                for seg in segments {
                    match (seg, parts.next()) {
                        (Segment::Literal(l), Some(p)) if l == p => {}
                        (Segment::Param, Some(p)) if !p.is_empty() => {}
                        _ => return false,
                    }
                }
                parts.next().is_none()
            }
        }
    }

    fn rank(&self) -> (u8, usize) {
        match self {
            PathMatch::Exact(p) => (3, p.len()),
            PathMatch::Template(s) => (
                2,
                s.len() * 2 + s.iter().filter(|x| matches!(x, Segment::Literal(_))).count(),
            ),
            PathMatch::Prefix(p) => (1, p.len()),
        }
    }
}

#[derive(Debug)]
pub struct Route {
    /// Shared so metrics and logs can label by route without allocating.
    pub name: std::sync::Arc<str>,
    pub host: HostMatch,
    pub path: PathMatch,
    pub upstream: String,
    pub mode: Mode,
    pub body: BodyPolicy,
    pub timeout: Duration,
    /// The route's `[routes.detection]` table, as written; the detection engine compiles it.
    pub detection: Option<toml::Value>,
    /// Line and column of the `detection` table, for errors the detection engine finds in it.
    pub detection_at: (usize, usize),
    /// Requests in flight on this route (per node) past which new ones are answered 503.
    pub max_concurrent: Option<u32>,
    pub websocket: crate::WebSocketPolicy,
    /// Messages per gRPC request stream, past which the call is refused (RESOURCE_EXHAUSTED on a block
    /// route); 0 for no limit.
    pub grpc_max_stream_messages: u64,
    /// The route's OpenAPI contract, when it has one.
    pub openapi: Option<crate::OpenApiPolicy>,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> Self {
        // Stable sort: among equally specific routes, the one written first wins.
        routes.sort_by_key(|r| std::cmp::Reverse((r.host.rank(), r.path.rank())));
        RouteTable { routes }
    }

    /// `host` without port, `path` without query.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && r.path.matches(path))
    }

    /// Like [`RouteTable::find`], as an index for [`RouteTable::get`]: for what outlives a borrow of the
    /// table, such as a streaming body that holds its runtime.
    pub fn find_index(&self, host: &str, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.host.matches(host) && r.path.matches(path))
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Oversize;

    fn route(name: &str, host: HostMatch, path: PathMatch) -> Route {
        Route {
            name: name.into(),
            host,
            path,
            upstream: "u".into(),
            mode: Mode::Block,
            body: BodyPolicy {
                inspect_limit: 1,
                oversize: Oversize::Block,
                max_size: None,
            },
            timeout: Duration::from_secs(1),
            detection: None,
            detection_at: (0, 0),
            max_concurrent: None,
            websocket: crate::WebSocketPolicy {
                max_message: 1,
                messages_per_second: 1,
                burst: 1,
                inspect_server: false,
            },
            grpc_max_stream_messages: 0,
            openapi: None,
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let table = RouteTable::new(vec![
            route("catch-all", HostMatch::Any, PathMatch::Prefix("/".into())),
            route("api", HostMatch::Any, PathMatch::Prefix("/api".into())),
            route("user", HostMatch::Any, PathMatch::template("/api/users/{id}").unwrap()),
            route("login", HostMatch::Any, PathMatch::Exact("/api/login".into())),
            route(
                "admin-host",
                HostMatch::Exact("admin.example.com".into()),
                PathMatch::Prefix("/".into()),
            ),
            route(
                "sub",
                HostMatch::Suffix(".example.com".into()),
                PathMatch::Prefix("/".into()),
            ),
        ]);
        let name = |h, p| table.find(h, p).map(|r| &*r.name);
        assert_eq!(name("x", "/"), Some("catch-all"));
        assert_eq!(name("x", "/api"), Some("api"));
        assert_eq!(name("x", "/apix"), Some("catch-all"));
        assert_eq!(name("x", "/api/users/42"), Some("user"));
        assert_eq!(name("x", "/api/users/42/orders"), Some("api"));
        assert_eq!(name("x", "/api/users/"), Some("api"));
        assert_eq!(name("x", "/api/login"), Some("login"));
        assert_eq!(name("ADMIN.example.com", "/api/login"), Some("admin-host"));
        assert_eq!(name("www.example.com", "/api"), Some("sub"));
        assert_eq!(name("example.com", "/api"), Some("api"));
    }

    #[test]
    fn unbalanced_template_is_refused() {
        assert!(PathMatch::template("/users/{id").is_none());
    }
}
