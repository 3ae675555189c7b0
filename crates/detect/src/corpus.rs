//! The JSONL corpus format of `shared/corpus` (see its README): loading
//! records and turning each into the request the proxy would see, or into a
//! rejection when the HTTP layer would refuse it (it answers 400).

use std::io::BufRead;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Attack,
    Benign,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Record {
    pub id: String,
    pub source: String,
    pub category: String,
    pub label: Label,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default)]
    pub http_version: Option<String>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub body_b64: bool,
    #[serde(default)]
    pub raw_b64: Option<String>,
    #[serde(default)]
    pub meta: serde_json::Value,
}

fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: {msg}")]
    Parse { path: String, line: usize, msg: String },
}

/// Load one JSONL file.
pub fn load(path: &Path) -> Result<Vec<Record>, CorpusError> {
    let f = std::fs::File::open(path).map_err(|e| CorpusError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| CorpusError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(&line).map_err(|e| CorpusError::Parse {
            path: path.display().to_string(),
            line: i + 1,
            msg: e.to_string(),
        })?;
        out.push(r);
    }
    Ok(out)
}

/// An owned request, ready to be viewed as a [`rampart_inspect::RequestView`].
#[derive(Debug)]
pub struct OwnedRequest {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    pub fn view(&self) -> rampart_inspect::RequestView<'_> {
        rampart_inspect::RequestView {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: &self.body,
            body_truncated: false,
        }
    }
}

/// What the HTTP layer makes of a record.
#[derive(Debug)]
pub enum Prepared {
    Request(Box<OwnedRequest>),
    /// The HTTP layer answers 400 (or 413/431): counts as blocked.
    Rejected(String),
}

fn build(method: &str, target: &str, headers: &[(String, String)], body: Vec<u8>) -> Prepared {
    let Ok(m) = http::Method::from_bytes(method.as_bytes()) else {
        return Prepared::Rejected(format!("invalid method {method:?}"));
    };
    let uri = match http::Uri::try_from(target) {
        Ok(u) => u,
        Err(_) => {
            // The path carries bytes a URI may not; a client percent-encodes
            // them on the wire (what replay tools do), so encode and retry.
            let enc = encode_target(target);
            match http::Uri::try_from(enc.as_str()) {
                Ok(u) => u,
                Err(e) => return Prepared::Rejected(format!("invalid request target: {e}")),
            }
        }
    };
    let mut h = http::HeaderMap::new();
    for (k, v) in headers {
        let Ok(name) = http::header::HeaderName::from_bytes(k.as_bytes()) else {
            return Prepared::Rejected(format!("invalid header name {k:?}"));
        };
        let Ok(val) = http::HeaderValue::from_bytes(v.as_bytes()) else {
            return Prepared::Rejected(format!("invalid header value for {k}"));
        };
        h.append(name, val);
    }
    framing_checks(&h).map_or(
        Prepared::Request(Box::new(OwnedRequest {
            method: m,
            uri,
            headers: h,
            body,
        })),
        Prepared::Rejected,
    )
}

fn encode_target(t: &str) -> String {
    let mut out = String::with_capacity(t.len() * 2);
    for &b in t.as_bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Framing rules the proxy's HTTP layer enforces (it answers 400).
fn framing_checks(h: &http::HeaderMap) -> Option<String> {
    let cls: Vec<_> = h.get_all("content-length").iter().collect();
    for cl in &cls {
        if cl.is_empty() || !cl.as_bytes().iter().all(|c| c.is_ascii_digit()) {
            return Some("invalid content-length".into());
        }
    }
    if cls.len() > 1 && cls.windows(2).any(|w| w[0] != w[1]) {
        return Some("conflicting content-length headers".into());
    }
    if let Some(te) = h.get("transfer-encoding") {
        if !cls.is_empty() {
            return Some("content-length with transfer-encoding".into());
        }
        let t = String::from_utf8_lossy(te.as_bytes()).to_ascii_lowercase();
        if !t.trim().ends_with("chunked") {
            return Some("unsupported transfer-encoding".into());
        }
    }
    None
}

/// Turn a record into the request the proxy would see.
pub fn prepare(r: &Record) -> Prepared {
    if let Some(raw) = &r.raw_b64 {
        let bytes = match base64::engine::general_purpose::STANDARD.decode(raw.trim()) {
            Ok(b) => b,
            Err(e) => return Prepared::Rejected(format!("raw_b64 is not base64: {e}")),
        };
        return parse_raw(&bytes);
    }
    let body = match &r.body {
        None => Vec::new(),
        Some(b) if r.body_b64 => match base64::engine::general_purpose::STANDARD.decode(b.trim()) {
            Ok(x) => x,
            Err(_) => b.as_bytes().to_vec(),
        },
        Some(b) => b.as_bytes().to_vec(),
    };
    if let Some(why) = version_check(r.http_version.as_deref()) {
        return Prepared::Rejected(why);
    }
    let body = match body_framing(&r.headers, body) {
        Ok(b) => b,
        Err(why) => return Prepared::Rejected(why),
    };
    build(&r.method, &r.path, &r.headers, body)
}

/// The HTTP/1 layer answers 400 to a request line whose version is not
/// `HTTP/1.0` or `HTTP/1.1` (HTTP/0.9 has no version at all). `HTTP/2` records
/// stand for requests that arrived over HTTP/2; an empty version is sent as
/// HTTP/1.1 by the replay tool.
fn version_check(v: Option<&str>) -> Option<String> {
    match v {
        None | Some("" | "HTTP/1.0" | "HTTP/1.1" | "HTTP/2" | "HTTP/2.0") => None,
        Some(other) => Some(format!("unsupported HTTP version {:?}", util_excerpt(other))),
    }
}

fn util_excerpt(s: &str) -> String {
    crate::util::excerpt(s, 20)
}

/// A body shorter than its Content-Length never completes: the proxy waits
/// for the rest and answers 408/400. Bytes past it are the next request on
/// the connection, not this request's body.
fn body_framing(headers: &[(String, String)], mut body: Vec<u8>) -> Result<Vec<u8>, String> {
    let Some(cl) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
    else {
        return Ok(body);
    };
    if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")) {
        return Ok(body);
    }
    if cl > body.len() {
        return Err(format!("body of {} bytes shorter than content-length {cl}", body.len()));
    }
    body.truncate(cl);
    Ok(body)
}

/// Parse exact request bytes with httparse plus the framing rules of the
/// proxy: malformed requests are rejected.
pub fn parse_raw(bytes: &[u8]) -> Prepared {
    let Some(head_end) = memchr::memmem::find(bytes, b"\r\n\r\n").map(|p| p + 4) else {
        return Prepared::Rejected("incomplete or bare-LF request head".into());
    };
    let head = &bytes[..head_end];
    // bare LF in the head
    for (i, &c) in head.iter().enumerate() {
        if c == b'\n' && (i == 0 || head[i - 1] != b'\r') {
            return Prepared::Rejected("bare LF in request head".into());
        }
    }
    // obs-fold: a header line starting with whitespace
    if head
        .windows(3)
        .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t') && w[2] != b'\r')
    {
        return Prepared::Rejected("obsolete line folding".into());
    }
    let mut hdrs = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut hdrs);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Prepared::Rejected("incomplete request".into()),
        Err(e) => return Prepared::Rejected(format!("malformed request: {e}")),
    }
    let method = req.method.unwrap_or("GET").to_string();
    let path = req.path.unwrap_or("/").to_string();
    let mut headers = Vec::new();
    for h in req.headers.iter() {
        if h.value.iter().any(|&c| c == 0 || c == b'\r' || c == b'\n') {
            return Prepared::Rejected("invalid header value".into());
        }
        headers.push((h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()));
    }
    let rest = &bytes[head_end..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        match dechunk(rest) {
            Some(b) => b,
            None => return Prepared::Rejected("malformed chunked body".into()),
        }
    } else {
        let cl = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        rest[..cl.min(rest.len())].to_vec()
    };
    // header values must survive http's validation too
    let mut hv = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        hv.push((k, v));
    }
    build(&method, &path, &hv, body)
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = memchr::memmem::find(b, b"\r\n")?;
        let size_s = std::str::from_utf8(&b[..line_end]).ok()?;
        let size_s = size_s.split(';').next()?.trim();
        let size = usize::from_str_radix(size_s, 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
        if out.len() > 64 << 20 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ok_and_rejects() {
        assert!(matches!(
            parse_raw(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Prepared::Request(_)
        ));
        assert!(matches!(
            parse_raw(b"GET / HTTP/1.1\nHost: x\n\n"),
            Prepared::Rejected(_)
        ));
        assert!(matches!(
            parse_raw(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            Prepared::Rejected(_)
        ));
        assert!(matches!(
            parse_raw(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
            Prepared::Rejected(_)
        ));
        match parse_raw(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n") {
            Prepared::Request(r) => assert_eq!(r.body, b"abc"),
            other => panic!("{other:?}"),
        }
    }
}
