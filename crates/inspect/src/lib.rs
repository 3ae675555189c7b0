//! rampart-inspect: from an HTTP request to *points*.
//!
//! A point is one value of the request with its path (`query.q`,
//! `header.user-agent`, `cookie.sid`, `path`, `body.json.user.name`, ...) and
//! the chain of decoders that produced it (`["percent", "base64", "json"]`).
//! The decoders are applied recursively with a depth bound, and every hard
//! limit (decode depth, number of points, decoded bytes, nesting, inflate
//! ratio) produces an [`Anomaly`] instead of a panic.

pub mod body;
pub mod decode;
pub mod grpc;

use std::borrow::Cow;

/// The request as the proxy sees it.
pub struct RequestView<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub body_truncated: bool,
}

/// Hard limits of the inspection. Past a limit, an [`Anomaly`] of class
/// `limit` is produced and the remaining input is skipped.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum number of recursive decode steps on one value.
    pub max_decode_depth: usize,
    /// Maximum number of decoded variants of one value.
    pub max_variants: usize,
    /// Maximum number of points per request.
    pub max_points: usize,
    /// Maximum bytes of decoded text over all points.
    pub max_decoded_bytes: usize,
    /// Maximum nesting of JSON / XML / JSON-in-string.
    pub max_nesting: usize,
    /// Maximum size of an inflated (gzip / deflate) body.
    pub max_inflated_bytes: usize,
    /// Maximum inflate ratio (inflated / compressed).
    pub max_inflate_ratio: usize,
    /// The route's .proto files, compiled: gRPC messages of known methods are decoded by type.
    pub grpc_schema: Option<std::sync::Arc<grpc::GrpcSchema>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decode_depth: 5,
            max_variants: 10,
            max_points: 20_000,
            max_decoded_bytes: 16 << 20,
            max_nesting: 64,
            max_inflated_bytes: 8 << 20,
            max_inflate_ratio: 200,
            grpc_schema: None,
        }
    }
}

/// Where in the request a point comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    Path,
    Query,
    Header,
    Cookie,
    Body,
}

/// One value of the request.
#[derive(Clone, Debug)]
pub struct Point {
    /// Path of the value: `query.q`, `body.json.user.name`, ...
    pub path: String,
    /// The (decoded) value.
    pub value: String,
    /// The decoders applied, outermost first.
    pub chain: Vec<&'static str>,
    pub location: Location,
    /// True when the value is a key (parameter name, JSON key, cookie name).
    pub is_key: bool,
    /// Index of the root value this point was decoded from (variants of
    /// one value share it).
    pub root: u32,
}

/// Something structurally wrong or over a limit, found while inspecting.
#[derive(Clone, Debug)]
pub struct Anomaly {
    /// Attack class name (`limit`, `xxe`, `protocol`).
    pub class: &'static str,
    pub rule_id: &'static str,
    pub score: u32,
    pub point: String,
    pub detail: String,
}

/// The kind of body, after sniffing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Form,
    Json,
    Xml,
    Multipart,
    Text,
    Binary,
}

/// Output of [`inspect`].
#[derive(Debug, Default)]
pub struct Inspection {
    pub points: Vec<Point>,
    pub anomalies: Vec<Anomaly>,
    pub body_kind: Option<BodyKind>,
}

/// Collects points and enforces the limits.
pub struct Collector<'l> {
    pub limits: &'l Limits,
    pub out: Inspection,
    decoded_bytes: usize,
    next_root: u32,
    points_exceeded: bool,
    bytes_exceeded: bool,
}

impl<'l> Collector<'l> {
    pub fn new(limits: &'l Limits) -> Self {
        Collector {
            limits,
            out: Inspection::default(),
            decoded_bytes: 0,
            next_root: 0,
            points_exceeded: false,
            bytes_exceeded: false,
        }
    }

    pub fn anomaly(
        &mut self,
        class: &'static str,
        rule_id: &'static str,
        score: u32,
        point: &str,
        detail: impl Into<String>,
    ) {
        if self.out.anomalies.len() >= 64 {
            return;
        }
        if self
            .out
            .anomalies
            .iter()
            .any(|a| a.rule_id == rule_id && a.point == point)
        {
            return;
        }
        self.out.anomalies.push(Anomaly {
            class,
            rule_id,
            score,
            point: point.to_string(),
            detail: detail.into(),
        });
    }

    fn room(&mut self, len: usize, path: &str) -> bool {
        if self.out.points.len() >= self.limits.max_points {
            if !self.points_exceeded {
                self.points_exceeded = true;
                self.anomaly(
                    "limit",
                    "LIMIT-001",
                    5,
                    path,
                    format!("more than {} points", self.limits.max_points),
                );
            }
            return false;
        }
        if self.decoded_bytes + len > self.limits.max_decoded_bytes {
            if !self.bytes_exceeded {
                self.bytes_exceeded = true;
                self.anomaly(
                    "limit",
                    "LIMIT-002",
                    5,
                    path,
                    format!("more than {} decoded bytes", self.limits.max_decoded_bytes),
                );
            }
            return false;
        }
        self.decoded_bytes += len;
        true
    }

    /// Add one value and all its decoded variants.
    pub fn add(
        &mut self,
        path: &str,
        value: Cow<'_, str>,
        chain: &[&'static str],
        location: Location,
        is_key: bool,
        nesting: usize,
    ) {
        if value.is_empty() {
            return;
        }
        let root = self.next_root;
        self.next_root += 1;
        let mut variants = 0usize;
        self.add_rec(
            path,
            value.into_owned(),
            chain.to_vec(),
            location,
            is_key,
            nesting,
            root,
            0,
            &mut variants,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add_rec(
        &mut self,
        path: &str,
        value: String,
        chain: Vec<&'static str>,
        location: Location,
        is_key: bool,
        nesting: usize,
        root: u32,
        depth: usize,
        variants: &mut usize,
    ) {
        if !self.room(value.len(), path) {
            return;
        }
        *variants += 1;
        // Decode candidates before moving the value into the point.
        let mut next: Vec<(&'static str, String)> = Vec::new();
        let mut json_child: Option<(&'static str, serde_json::Value)> = None;
        let mut jwt_parts: Option<(String, String)> = None;
        if depth < self.limits.max_decode_depth && *variants < self.limits.max_variants {
            let triggers = decode::Triggers::of(&value);
            if let Some(s) = triggers.percent().then(|| decode::percent(&value, false)).flatten() {
                next.push(("percent", s));
            }
            if let Some(s) = triggers.html().then(|| decode::html_entities(&value)).flatten() {
                next.push(("html", s));
            }
            if let Some(s) = triggers.js().then(|| decode::js_escapes(&value)).flatten() {
                next.push(("unescape", s));
            }
            if let Some(s) = triggers.utf7().then(|| decode::utf7(&value)).flatten() {
                next.push(("utf7", s));
            }
            // '+' for space outside a query string (payloads written for URLs); after percent-decoding
            // only while escapes remain (`FROM+%60t%60`: encoded twice for an application that decodes
            // twice, `+` included)
            if location == Location::Body
                && (!chain.contains(&"percent") || value.contains('%'))
                && value.contains('+')
                && !value.contains(' ')
                && value.len() < 4096
                && value.bytes().any(|c| c.is_ascii_alphabetic())
            {
                next.push(("plus", value.replace('+', " ")));
            }
            if let Some(s) = triggers.unicode().then(|| decode::unicode_fold(&value)).flatten() {
                next.push(("unicode", s));
            }
            if let Some(parts) = decode::jwt(&value) {
                jwt_parts = Some(parts);
            } else if let Some(s) = triggers.base64().then(|| decode::base64_text(&value)).flatten() {
                next.push(("base64", s));
            }
            let t = value.trim_start();
            if (t.starts_with('{') || t.starts_with('[')) && t.len() >= 2 && nesting < self.limits.max_nesting {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
                    if v.is_object() || v.is_array() {
                        json_child = Some(("json", v));
                    }
                }
            }
        }
        self.out.points.push(Point {
            path: path.to_string(),
            value,
            chain: chain.clone(),
            location,
            is_key,
            root,
        });
        for (name, s) in next {
            if *variants >= self.limits.max_variants {
                break;
            }
            // skip a variant identical to an existing one of the same root
            if self
                .out
                .points
                .iter()
                .rev()
                .take_while(|p| p.root == root)
                .any(|p| p.value == s)
            {
                continue;
            }
            let mut c = chain.clone();
            c.push(name);
            self.add_rec(path, s, c, location, is_key, nesting, root, depth + 1, variants);
        }
        if let Some((name, v)) = json_child {
            let mut c = chain.clone();
            c.push(name);
            let p = format!("{path}|json");
            body::walk_json(self, &p, v, &c, location, nesting + 1);
        }
        if let Some((h, p)) = jwt_parts {
            let mut c = chain.clone();
            c.push("jwt");
            for (part, text) in [("header", h), ("payload", p)] {
                let pp = format!("{path}|jwt.{part}");
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => {
                        let mut cj = c.clone();
                        cj.push("json");
                        body::walk_json(self, &pp, v, &cj, location, nesting + 1);
                    }
                    Err(_) => self.add(&pp, Cow::Owned(text), &c, location, false, nesting + 1),
                }
            }
        }
    }
}

/// `prefix.name`, the path of a point below `prefix`. Built by hand: `format!` costs several times more,
/// and every header and field of every request takes this path.
pub(crate) fn child_path(prefix: &str, name: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1 + name.len());
    p.push_str(prefix);
    p.push('.');
    p.push_str(name);
    p
}

/// Inspect a request: every value as a point, plus anomalies.
pub fn inspect(req: &RequestView<'_>, limits: &Limits) -> Inspection {
    let mut c = Collector::new(limits);
    // path
    let path = req.uri.path();
    if path.len() > 1 {
        let (decoded, changed) = match decode::percent(path, false) {
            Some(s) => (s, true),
            None => (path.to_string(), false),
        };
        let chain: &[&'static str] = if changed { &["percent"] } else { &[] };
        // per-segment points for segments that could hide an encoded value
        for (i, seg) in path.split('/').enumerate().skip(1) {
            if seg.len() >= 8 && !seg.contains('%') && decode::base64_text(seg).is_some() {
                c.add(&format!("path.{i}"), Cow::Borrowed(seg), &[], Location::Path, false, 0);
            }
        }
        c.add("path", Cow::Owned(decoded), chain, Location::Path, false, 0);
    }
    // query
    if let Some(q) = req.uri.query() {
        body::parse_form(&mut c, "query", q, Location::Query, 0);
    }
    // headers
    for (name, value) in req.headers.iter() {
        let n = name.as_str();
        let v = String::from_utf8_lossy(value.as_bytes());
        if n == "cookie" {
            body::parse_cookies(&mut c, &v);
            continue;
        }
        if matches!(
            n,
            "content-length" | "host" | "connection" | "accept-encoding" | "cache-control" | "pragma"
        ) && v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" ,.:-=*;/_[]".contains(&b))
        {
            continue;
        }
        let p = child_path("header", n);
        c.add(&p, v, &[], Location::Header, false, 0);
    }
    // body
    if !req.body.is_empty() {
        body::parse_body(&mut c, req);
    }
    c.out
}

/// The body's points alone, read as its `Content-Type` says: for a message on a connection (a WebSocket
/// message, a gRPC stream message) whose path and headers were inspected once, with the request that
/// opened it.
pub fn inspect_body(req: &RequestView<'_>, limits: &Limits) -> Inspection {
    let mut c = Collector::new(limits);
    if !req.body.is_empty() {
        body::parse_body(&mut c, req);
    }
    c.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Inspection {
        let m: http::Method = method.parse().unwrap();
        let u: http::Uri = uri.parse().unwrap();
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let rv = RequestView {
            method: &m,
            uri: &u,
            headers: &h,
            body,
            body_truncated: false,
        };
        inspect(&rv, &Limits::default())
    }

    fn find<'a>(i: &'a Inspection, path: &str) -> Vec<&'a Point> {
        i.points.iter().filter(|p| p.path == path && !p.is_key).collect()
    }

    #[test]
    fn query_and_chain() {
        let i = run("GET", "/a?q=%253Cscript%253E&x=1", &[], b"");
        let q = find(&i, "query.q");
        assert!(q
            .iter()
            .any(|p| p.value == "<script>" && p.chain == ["percent", "percent"]));
        assert!(i.points.iter().any(|p| p.is_key && p.value == "q"));
    }

    #[test]
    fn a_value_cut_at_character_references_is_also_read_whole() {
        let i = run("GET", "/?x=&gt;+src+onerror=confirm&amp;lpar;1&amp;rpar;&lt;", &[], b"");
        let whole = find(&i, "query");
        assert!(
            whole.iter().any(|p| p.value.contains("> src onerror=confirm(1)")),
            "{:?}",
            whole.iter().map(|p| (&p.value, &p.chain)).collect::<Vec<_>>()
        );
        // an ordinary query is only read parameter by parameter
        let i = run("GET", "/?a=1&b=O%27Brien", &[], b"");
        assert!(find(&i, "query").is_empty());
    }

    #[test]
    fn base64_then_json() {
        // {"a":"<b>"} base64
        let i = run("GET", "/?d=eyJhIjoiPGI+In0=", &[], b"");
        let p = find(&i, "query.d|base64|json.a")
            .into_iter()
            .chain(find(&i, "query.d|json.a"))
            .next();
        let p = p.expect("json child");
        assert_eq!(p.value, "<b>");
        assert_eq!(p.chain, ["percent", "base64", "json"]);
    }

    #[test]
    fn json_body_every_string_number_key() {
        let i = run(
            "POST",
            "/x",
            &[("content-type", "application/json")],
            br#"{"user":{"name":"O'Brien","age":42,"tags":["a"]}}"#,
        );
        assert_eq!(find(&i, "body.json.user.name")[0].value, "O'Brien");
        assert_eq!(find(&i, "body.json.user.age")[0].value, "42");
        assert_eq!(find(&i, "body.json.user.tags.0")[0].value, "a");
        assert!(i.points.iter().any(|p| p.is_key && p.value == "name"));
    }

    #[test]
    fn sniff_json_when_header_lies() {
        let i = run("POST", "/x", &[("content-type", "text/plain")], br#"{"a":"b"}"#);
        assert_eq!(find(&i, "body.json.a")[0].value, "b");
    }

    #[test]
    fn xml_doctype_is_anomaly() {
        let i = run(
            "POST",
            "/x",
            &[("content-type", "application/xml")],
            br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r a="v">&x;</r>"#,
        );
        assert!(i.anomalies.iter().any(|a| a.class == "xxe"));
        assert!(i.points.iter().any(|p| p.value == "v"));
    }

    #[test]
    fn multipart_parts() {
        let body = b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../x.php\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB--\r\n";
        let i = run(
            "POST",
            "/u",
            &[("content-type", "multipart/form-data; boundary=BB")],
            body,
        );
        assert_eq!(find(&i, "body.multipart.file.filename")[0].value, "../x.php");
        assert_eq!(find(&i, "body.multipart.file")[0].value, "hello");
    }

    #[test]
    fn multipart_disposition_and_charset_tricks() {
        let ct = [("content-type", "multipart/form-data; boundary=BB")];
        let split = b"--BB\r\nContent-Disposition: form-data; name=\"a;b\"\r\n\r\nx\r\n--BB--\r\n";
        let i = run("POST", "/u", &ct, split);
        assert!(i.anomalies.iter().any(|a| a.rule_id == "MULTIPART-001" && a.score == 5));
        let utf7 = b"--BB\r\nContent-Disposition: form-data; name=\"_charset_\"\r\n\r\nUTF-7\r\n--BB--\r\n";
        let i = run("POST", "/u", &ct, utf7);
        assert!(i.anomalies.iter().any(|a| a.rule_id == "PROTO-008"));
        // an ordinary upload: a file name with spaces and an apostrophe
        let ok = b"--BB\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"O'Brien photo (1).png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--BB--\r\n";
        let i = run("POST", "/u", &ct, ok);
        assert!(i.anomalies.is_empty(), "{:?}", i.anomalies);
    }

    #[test]
    fn jwt_header_payload() {
        let i = run(
            "GET",
            "/",
            &[("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.")],
            b"",
        );
        assert!(i
            .points
            .iter()
            .any(|p| p.path == "header.authorization|jwt.payload.sub" && p.value == "admin"));
    }

    #[test]
    fn gzip_body() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"a=hello").unwrap();
        let gz = e.finish().unwrap();
        let i = run(
            "POST",
            "/",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-encoding", "gzip"),
            ],
            &gz,
        );
        assert_eq!(find(&i, "body.form.a")[0].value, "hello");
    }

    #[test]
    fn gzip_bomb_is_limit() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b'a'; 4 << 20]).unwrap();
        let gz = e.finish().unwrap();
        let i = run("POST", "/", &[("content-encoding", "gzip")], &gz);
        assert!(i.anomalies.iter().any(|a| a.class == "limit"));
    }

    #[test]
    fn points_limit() {
        let body: String = (0..100).map(|i| format!("k{i}=v&")).collect();
        let m = http::Method::POST;
        let u: http::Uri = "/".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        let rv = RequestView {
            method: &m,
            uri: &u,
            headers: &h,
            body: body.as_bytes(),
            body_truncated: false,
        };
        let l = Limits {
            max_points: 20,
            ..Limits::default()
        };
        let i = inspect(&rv, &l);
        assert!(i.points.len() <= 20);
        assert!(i.anomalies.iter().any(|a| a.rule_id == "LIMIT-001"));
    }

    #[test]
    fn get_without_body_has_no_body_points() {
        let i = run("GET", "/", &[("user-agent", "curl/8")], b"");
        assert!(i.body_kind.is_none());
        assert!(i.points.iter().all(|p| p.location != Location::Body));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}", b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode::percent(&s, true);
            let _ = decode::html_entities(&s);
            let _ = decode::js_escapes(&s);
            let _ = decode::base64_text(&s);
            let _ = decode::unicode_fold(&s);
            let _ = decode::bytes_to_text(&b);
            let _ = run("POST", "/", &[("content-type", "multipart/form-data; boundary=x")], &b);
            let _ = run("POST", "/", &[("content-type", "application/xml")], &b);
        }
    }
}
