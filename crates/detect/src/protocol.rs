//! Request-level protocol checks: methods, framing headers, Host, ranges,
//! and content-type sanity.

use http::header::{
    HeaderName, ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, COOKIE, HOST, RANGE, REFERER,
    TRANSFER_ENCODING, USER_AGENT,
};
use rampart_inspect::{Inspection, RequestView};

use crate::{AttackClass, Hit};

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub fn check_request(req: &RequestView<'_>, _insp: &Inspection, out: &mut Vec<Hit>) {
    let m = req.method.as_str();
    if !METHODS.contains(&m) {
        out.push(Hit::new(
            AttackClass::Protocol,
            "PROTO-001",
            5,
            format!("method {m} not allowed"),
        ));
    }
    let h = req.headers;
    if let Some(cl) = h.get(CONTENT_LENGTH) {
        let v = cl.as_bytes();
        if v.is_empty() || !v.iter().all(|c| c.is_ascii_digit()) {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-002",
                5,
                "content-length is not a number",
            ));
        }
        if h.contains_key(TRANSFER_ENCODING) {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-003",
                5,
                "content-length with transfer-encoding",
            ));
        }
    }
    if h.get_all(CONTENT_LENGTH).iter().count() > 1 {
        out.push(Hit::new(
            AttackClass::Protocol,
            "PROTO-003",
            5,
            "several content-length headers",
        ));
    }
    if let Some(te) = h.get(TRANSFER_ENCODING) {
        let t = String::from_utf8_lossy(te.as_bytes()).to_ascii_lowercase();
        if t.trim() != "chunked" {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-004",
                5,
                format!("transfer-encoding {t}"),
            ));
        }
    }
    if (m == "GET" || m == "HEAD") && !req.body.is_empty() {
        // A GET with a JSON body is how some search APIs work; a form (or
        // untyped) body on GET, or any body on HEAD, smuggles parameters.
        let ct = h
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
            .unwrap_or_default();
        let sc = if ct.is_empty() || ct.contains("form") || !ct.contains('/') {
            5
        } else {
            3
        };
        out.push(Hit::new(
            AttackClass::Protocol,
            "PROTO-005",
            sc,
            format!("{m} request with a body"),
        ));
    }
    // Host: absent (and no authority in the URI) or empty
    match h.get(HOST) {
        None if req.uri.authority().is_none() => {
            out.push(Hit::new(AttackClass::Protocol, "PROTO-006", 5, "no Host header"));
        }
        Some(v) if v.as_bytes().iter().all(|c| c.is_ascii_whitespace()) => {
            out.push(Hit::new(AttackClass::Protocol, "PROTO-006", 5, "empty Host header"));
        }
        _ => {}
    }
    if h.get_all(HOST).iter().count() > 1 {
        out.push(Hit::new(AttackClass::Protocol, "PROTO-006", 5, "several Host headers"));
    }
    // Range abuse: many ranges, or a range that ends before it starts
    for name in [RANGE, REQUEST_RANGE] {
        if let Some(r) = h.get(&name) {
            let r = String::from_utf8_lossy(r.as_bytes()).to_ascii_lowercase();
            let spec = r.trim().strip_prefix("bytes=").unwrap_or(&r);
            let parts: Vec<&str> = spec.split(',').collect();
            let bad_order = parts.iter().any(|p| {
                let mut it = p.trim().splitn(2, '-');
                match (
                    it.next().and_then(|a| a.trim().parse::<u64>().ok()),
                    it.next().and_then(|b| b.trim().parse::<u64>().ok()),
                ) {
                    (Some(a), Some(b)) => b < a,
                    _ => false,
                }
            });
            let pdf = req.uri.path().to_ascii_lowercase().ends_with(".pdf");
            let malformed = r.trim_start().starts_with("bytes=")
                && parts.iter().any(|p| {
                    let p = p.trim();
                    let Some((a, b)) = p.split_once('-') else {
                        return true;
                    };
                    let (a, b) = (a.trim(), b.trim());
                    (a.is_empty() && b.is_empty())
                        || !a.bytes().all(|c| c.is_ascii_digit())
                        || !b.bytes().all(|c| c.is_ascii_digit())
                });
            // PDF readers fetch many small ranges, in any order
            let too_many = if pdf { parts.len() > 63 } else { parts.len() > 5 };
            if too_many || (!pdf && bad_order) || malformed {
                out.push(Hit::new(
                    AttackClass::Protocol,
                    "PROTO-007",
                    5,
                    format!("{name}: {}", crate::util::excerpt(&r, 60)),
                ));
            }
        }
    }
    // body with a content type the inspector cannot read, or charset tricks
    if let Some(ct) = h.get(CONTENT_TYPE) {
        let c = String::from_utf8_lossy(ct.as_bytes()).to_ascii_lowercase();
        // both checks read parameters: a type without `=` has none (most do: application/json)
        let params = c.contains('=');
        if let Some(p) = params.then(|| c.find("charset=")).flatten() {
            let cs = c[p + 8..]
                .trim_matches(|x: char| x == '"' || x == '\'' || x.is_whitespace())
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            if cs.starts_with("utf-7")
                || cs.starts_with("utf-16")
                || cs.starts_with("utf-32")
                || cs.starts_with("ibm")
                || cs.starts_with("cp037")
                || cs.starts_with("cp500")
                || cs.starts_with("ebcdic")
                || cs == "x-imap4-modified-utf7"
            {
                out.push(Hit::new(AttackClass::Protocol, "PROTO-008", 5, format!("charset {cs}")));
            }
        }
        if params && (c.matches("boundary=").count() > 1 || (c.contains("boundary=") && !c.starts_with("multipart/"))) {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-009",
                5,
                "malformed multipart content type",
            ));
        }
    }
    more_checks(req, out);
    // invalid percent-encoding in the raw query or path
    let raw = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let rb = raw.as_bytes();
    for (i, &c) in rb.iter().enumerate() {
        if c == b'%' {
            let ok = rb.get(i + 1).is_some_and(|x| x.is_ascii_hexdigit())
                && rb.get(i + 2).is_some_and(|x| x.is_ascii_hexdigit());
            let unicode = rb.get(i + 1).is_some_and(|x| *x == b'u' || *x == b'U');
            if !ok && !unicode {
                out.push(Hit::new(
                    AttackClass::Protocol,
                    "PROTO-011",
                    5,
                    crate::util::excerpt(&raw[i.saturating_sub(10)..], 40),
                ));
                break;
            }
        }
    }
}

fn hit(out: &mut Vec<Hit>, rule: &'static str, score: u32, what: impl AsRef<str>) {
    out.push(Hit::new(AttackClass::Protocol, rule, score, what));
}

fn header_str<'a>(req: &'a RequestView<'_>, name: HeaderName) -> Option<std::borrow::Cow<'a, str>> {
    req.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// Charsets a request body or an `Accept` preference may name.
const CHARSETS: &[&str] = &[
    "utf-8",
    "utf8",
    "us-ascii",
    "ascii",
    "iso-8859-1",
    "iso-8859-2",
    "iso-8859-5",
    "iso-8859-7",
    "iso-8859-9",
    "iso-8859-15",
    "latin1",
    "latin-1",
    "windows-1250",
    "windows-1251",
    "windows-1252",
    "windows-1254",
    "cp1252",
    "shift_jis",
    "shift-jis",
    "euc-jp",
    "euc-kr",
    "iso-2022-jp",
    "gb2312",
    "gbk",
    "gb18030",
    "big5",
    "koi8-r",
    "koi8-u",
    "tis-620",
];

/// Multipart subtypes of RFC 2046 / 7578 and friends.
const MULTIPART: &[&str] = &[
    "form-data",
    "mixed",
    "related",
    "alternative",
    "byteranges",
    "signed",
    "encrypted",
    "x-mixed-replace",
];

/// File extensions of backups, dumps, databases and keys: never a resource
/// an API serves by its file name.
const RESTRICTED_EXT: &[&str] = &[
    "bak", "backup", "old", "orig", "save", "swp", "swo", "sql", "db", "mdb", "rdb", "dbf", "sqlite", "sqlite3", "pwd",
    "passwd", "htpasswd", "pem", "key", "pfx", "p12", "kdbx", "tmp",
];

/// Names in the paths vulnerability scanners probe.
const SCANNER_PROBES: &[&str] = &[
    "nessus",
    "appscan",
    "acunetix",
    "netsparker",
    "nikto",
    "sqlmap",
    "w3af",
    "arachni",
];

/// Headers of WebDAV locking and other request headers an API has no use for.
const RESTRICTED_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("lock-token"),
    HeaderName::from_static("if"),
    HeaderName::from_static("proxy"),
];
const REQUEST_RANGE: HeaderName = HeaderName::from_static("request-range");

/// One parameter list of a media type: `type/subtype; k=v; k="v"`. Returns
/// (type/subtype, params) or None when the syntax is broken.
fn media_type(v: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut it = v.split(';');
    let mt = it.next()?.trim().to_ascii_lowercase();
    let (t, st) = mt.split_once('/')?;
    let tok = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-*'".contains(&c))
    };
    if !tok(t) || !tok(st) {
        return None;
    }
    let mut params = Vec::new();
    for p in it {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=')?;
        let k = k.trim();
        if !tok(k) {
            return None;
        }
        let v = v.trim();
        let v = if let Some(q) = v.strip_prefix('"') {
            q.strip_suffix('"').unwrap_or(q)
        } else {
            if v.is_empty() || v.contains('"') {
                return None;
            }
            v
        };
        params.push((k.to_ascii_lowercase(), v.to_ascii_lowercase()));
    }
    Some((mt, params))
}

fn evasive_charset(cs: &str) -> bool {
    cs.starts_with("utf-7")
        || cs.starts_with("utf7")
        || cs.starts_with("utf-16")
        || cs.starts_with("utf-32")
        || cs.starts_with("ucs-")
        || cs.starts_with("ibm")
        || cs.starts_with("cp0")
        || cs.starts_with("cp1026")
        || cs.starts_with("cp500")
        || cs.starts_with("cp875")
        || cs.starts_with("ebcdic")
        || cs == "x-imap4-modified-utf7"
}

fn hexv(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Encoding tricks in a raw URL component or form body: overlong UTF-8
/// sequences, `%u` escapes of fullwidth characters, double encoding of
/// unreserved characters, escaped control characters. Returns (rule evidence).
fn encoding_tricks(raw: &str) -> Option<(&'static str, String)> {
    let b = raw.as_bytes();
    let at = |i: usize| -> Option<u8> {
        if b.get(i) == Some(&b'%') {
            Some(hexv(*b.get(i + 1)?)? << 4 | hexv(*b.get(i + 2)?)?)
        } else {
            None
        }
    };
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'%', &b[i..]) {
        i += p;
        let ctx = || crate::util::excerpt(&raw[i.saturating_sub(6)..], 30);
        if let Some(x) = at(i) {
            let cont = |k: usize| at(i + 3 * k).is_some_and(|c| (0x80..0xc0).contains(&c));
            let next = at(i + 3);
            let overlong = match x {
                0xc0 | 0xc1 => cont(1),
                0xe0 => next.is_some_and(|c| (0x80..0xa0).contains(&c)) && cont(2),
                0xf0 => next.is_some_and(|c| (0x80..0x90).contains(&c)) && cont(2) && cont(3),
                0xf5..=0xf7 => cont(1) && cont(2) && cont(3),
                _ => false,
            };
            if overlong {
                return Some(("overlong or out-of-range UTF-8", ctx()));
            }
            if x == 0x25 {
                // %25XX%25XX: double encoding of a run of letters or digits is
                // pure evasion (one such escape may be a literal in a password)
                let dbl = |k: usize| {
                    at(k) == Some(0x25)
                        && b.get(k + 3..k + 5)
                            .and_then(|h| Some(hexv(h[0])? << 4 | hexv(h[1])?))
                            .is_some_and(|y| y.is_ascii_alphanumeric())
                };
                if dbl(i) && dbl(i + 5) {
                    return Some(("double-encoded letters or digits", ctx()));
                }
            }
            if (x < 0x20 && !matches!(x, 0x00 | 0x09 | 0x0a | 0x0d)) || x == 0x7f {
                return Some(("escaped control character", ctx()));
            }
        } else if matches!(b.get(i + 1), Some(b'u' | b'U')) {
            let cp = b
                .get(i + 2..i + 6)
                .filter(|h| h.iter().all(|c| c.is_ascii_hexdigit()))
                .map(|h| h.iter().fold(0u32, |a, c| a * 16 + hexv(*c).unwrap_or(0) as u32));
            if let Some(cp) = cp {
                if (0xff01..=0xff5e).contains(&cp) || cp < 0x80 {
                    return Some(("%u escape of an ASCII or fullwidth character", ctx()));
                }
            }
        }
        i += 1;
    }
    None
}

/// Two escapes in a row that encode letters or digits (`%73%6F`).
fn alnum_escape_run(s: &str) -> bool {
    let b = s.as_bytes();
    let esc = |i: usize| -> bool {
        b.get(i) == Some(&b'%')
            && b.get(i + 1..i + 3)
                .and_then(|h| Some(hexv(h[0])? << 4 | hexv(h[1])?))
                .is_some_and(|c| c.is_ascii_alphanumeric())
    };
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'%', &b[i..]) {
        i += p;
        if esc(i) && esc(i + 3) {
            return true;
        }
        i += 1;
    }
    false
}

fn bad_percent(raw: &str) -> Option<usize> {
    let rb = raw.as_bytes();
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'%', &rb[i..]) {
        i += p;
        let ok = rb.get(i + 1).is_some_and(|x| x.is_ascii_hexdigit())
            && rb.get(i + 2).is_some_and(|x| x.is_ascii_hexdigit());
        let unicode = rb.get(i + 1).is_some_and(|x| *x == b'u' || *x == b'U');
        if !ok && !unicode {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Request-line, header and body-framing policy of a gateway in front of
/// APIs: what no well-behaved client sends.
fn more_checks(req: &RequestView<'_>, out: &mut Vec<Hit>) {
    let h = req.headers;
    // CR / LF in the request path: header injection through the URL
    let raw_path = req.uri.path();
    let rp = raw_path.to_ascii_lowercase();
    if rp.contains('%') && (rp.contains("%0a") || rp.contains("%0d")) {
        out.push(Hit::new(
            AttackClass::Crlf,
            "CRLF-003",
            8,
            crate::util::excerpt(raw_path, 60),
        ));
    }
    // file name of a backup, dump or key; editor backups `name~`
    if let Some(last) = rp.rsplit('/').find(|s| !s.is_empty()) {
        if let Some((_, ext)) = last.rsplit_once('.') {
            if RESTRICTED_EXT.contains(&ext) {
                hit(out, "PROTO-016", 5, format!("restricted file extension .{ext}"));
            }
        }
    }
    if rp.split('/').any(|s| s.len() > 1 && s.ends_with('~')) {
        hit(out, "PROTO-016", 5, "editor backup file (name~)");
    }
    // URL encoding tricks
    let raw = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    if let Some((what, ev)) = encoding_tricks(raw) {
        hit(out, "PROTO-012", 5, format!("{what}: {ev}"));
    } else if raw.contains('%') && raw.contains("%25") {
        // `%25%37%33`: the escape's own digits encoded; one decode leaves
        // escapes of letters and digits
        if let Some(once) = rampart_inspect::decode::percent(raw, false) {
            if alnum_escape_run(&once) {
                let ev = crate::util::excerpt(raw, 40);
                hit(out, "PROTO-012", 5, format!("double-encoded letters or digits: {ev}"));
            }
        }
    }
    // parameter names: a platform session id in the URL (session fixation)
    if let Some(q) = req.uri.query() {
        for pair in q.split('&').take(256) {
            let k = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            let platform = matches!(
                k.as_str(),
                "jsessionid" | "phpsessid" | "asp.net_sessionid" | "cfid" | "cftoken"
            ) || (k.starts_with("aspsessionid") && k.len() <= 24);
            // the application's own links (same-site Referer) may rewrite
            // URLs with the session; fixation arrives from elsewhere
            let same_site = match (header_str(req, REFERER), header_str(req, HOST)) {
                (Some(r), Some(h)) => {
                    let r = r.to_ascii_lowercase();
                    let host = h.trim().to_ascii_lowercase();
                    let after = r.split_once("://").map_or("", |x| x.1);
                    let rhost = after.split(['/', '?', '#']).next().unwrap_or("");
                    !host.is_empty() && rhost == host
                }
                _ => false,
            };
            if platform && !same_site {
                let ev = format!("session id in the URL: {k}");
                out.push(Hit::new(AttackClass::Protocol, "SESSION-001", 5, ev));
                break;
            }
        }
    }
    // scanner fingerprints: their own headers, their probe paths
    for name in req.headers.keys() {
        let n = name.as_str();
        if n == "x-scanner" || n.starts_with("acunetix") || n.starts_with("x-wipp") || n == "x-scan-memo" {
            let ev = format!("scanner header {n}");
            out.push(Hit::new(AttackClass::Scanner, "SCANNER-002", 8, ev));
            break;
        }
    }
    // one automaton pass tells whether any probe name is there; the first in the list names the finding
    if crate::lits!(SCANNER_PROBES).find(&rp).is_some() {
        if let Some(probe) = SCANNER_PROBES.iter().find(|p| rp.contains(*p)) {
            let ev = format!("scanner probe path ({probe})");
            out.push(Hit::new(AttackClass::Scanner, "SCANNER-002", 6, ev));
        }
    }

    if let Some(c) = h.get(COOKIE) {
        let c = String::from_utf8_lossy(c.as_bytes());
        if let Some((what, ev)) = encoding_tricks(&c) {
            hit(out, "PROTO-012", 5, format!("cookie: {what}: {ev}"));
        }
    }
    // Connection: repeated or contradicting options
    let mut conn: Vec<String> = Vec::new();
    for v in h.get_all(CONNECTION) {
        for t in String::from_utf8_lossy(v.as_bytes()).split(',') {
            conn.push(t.trim().to_ascii_lowercase());
        }
    }
    if conn.len() > 1 {
        let dup = conn.iter().enumerate().any(|(i, t)| conn[..i].contains(t));
        let both = conn.iter().any(|t| t == "close") && conn.iter().any(|t| t == "keep-alive");
        if dup || both {
            hit(out, "PROTO-013", 5, format!("connection: {}", conn.join(",")));
        }
    }
    // empty Accept / User-Agent: sent on purpose, by tools
    for (name, sc) in [(ACCEPT, 2), (USER_AGENT, 5)] {
        if h.get_all(&name)
            .iter()
            .any(|v| v.as_bytes().iter().all(|c| c.is_ascii_whitespace()))
        {
            hit(out, "PROTO-014", sc, format!("empty {name} header"));
        }
    }
    // Accept asking for an evasive charset
    if let Some(a) = header_str(req, ACCEPT) {
        let a = a.to_ascii_lowercase();
        for item in a.split(',') {
            for p in item.split(';').skip(1) {
                if let Some((k, v)) = p.split_once('=') {
                    let v = v.trim().trim_matches('"');
                    if k.trim() == "charset" && (evasive_charset(v) || !CHARSETS.contains(&v)) {
                        hit(out, "PROTO-008", 5, format!("accept charset {v}"));
                    }
                }
            }
        }
    }
    // restricted request headers
    for name in &RESTRICTED_HEADERS {
        if h.contains_key(name) {
            hit(out, "PROTO-017", 5, format!("restricted header {name}"));
        }
    }
    if req.body.is_empty() && h.contains_key(CONTENT_RANGE) {
        hit(out, "PROTO-017", 5, "content-range on a request without a body");
    }
    // Host that is an IP literal (public or not): no browser or API client
    // addressed by name sends one
    if let Some(host) = header_str(req, HOST) {
        let hn = host.trim();
        let hn = hn
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()))
            .map_or(hn, |(a, _)| a);
        if hn.parse::<std::net::Ipv4Addr>().is_ok() {
            hit(out, "PROTO-018", 3, format!("host is an IP address: {hn}"));
        }
    }
    // Content-Type: syntax, multipart subtype, charset
    let cts: Vec<String> = h
        .get_all(CONTENT_TYPE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if cts.is_empty() && !req.body.is_empty() {
        hit(out, "PROTO-015", 3, "body without a content type");
    }
    for ct in &cts {
        match media_type(ct) {
            None => hit(
                out,
                "PROTO-015",
                5,
                format!("malformed content type {}", crate::util::excerpt(ct, 50)),
            ),
            Some((mt, params)) => {
                if let Some(sub) = mt.strip_prefix("multipart/") {
                    if !MULTIPART.contains(&sub) {
                        hit(out, "PROTO-015", 5, format!("unknown multipart type {mt}"));
                    }
                }
                let charsets: Vec<&String> = params.iter().filter(|(k, _)| k == "charset").map(|(_, v)| v).collect();
                if charsets.len() > 1 {
                    hit(out, "PROTO-008", 5, "several charsets");
                }
                for cs in charsets {
                    let cs = cs.trim_matches('\'');
                    let name_like = cs.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c));
                    if name_like && !evasive_charset(cs) && !CHARSETS.contains(&cs) {
                        hit(out, "PROTO-008", 5, format!("unknown charset {cs}"));
                    }
                }
                if mt == "application/x-www-form-urlencoded" && !req.body.is_empty() {
                    let body = String::from_utf8_lossy(req.body);
                    if let Some(i) = bad_percent(&body) {
                        // form bodies are often raw text posted by scripts:
                        // only an encoded-looking body (no raw spaces) blocks
                        let sc = if body.contains(' ') { 3 } else { 5 };
                        hit(
                            out,
                            "PROTO-011",
                            sc,
                            crate::util::excerpt(&body[i.saturating_sub(10)..], 40),
                        );
                    }
                    if let Some((what, ev)) = encoding_tricks(&body) {
                        hit(out, "PROTO-012", 5, format!("{what}: {ev}"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> u32 {
        hits(method, uri, headers, body).iter().map(|h| h.score).sum()
    }

    fn hits(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<Hit> {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        let u: http::Uri = uri.parse().unwrap();
        let mut hm = http::HeaderMap::new();
        for (k, v) in headers {
            hm.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let rv = RequestView {
            method: &m,
            uri: &u,
            headers: &hm,
            body,
            body_truncated: false,
        };
        let mut out = Vec::new();
        check_request(&rv, &Inspection::default(), &mut out);
        out
    }

    #[test]
    fn scanner_probe_paths_and_restricted_headers_are_named() {
        let host = ("host", "api.example.com");
        let found = |uri: &str, headers: &[(&str, &str)], rule: &str| -> Vec<String> {
            hits("GET", uri, headers, b"")
                .into_iter()
                .filter(|h| h.rule_id == rule)
                .map(|h| h.evidence)
                .collect()
        };
        // the first probe of the list names the finding, wherever it stands in the path
        assert_eq!(
            found("/tools/SQLMap/Nikto.txt", &[host], "SCANNER-002"),
            ["scanner probe path (nikto)"]
        );
        assert!(found("/api/v1/orders/nik/to", &[host], "SCANNER-002").is_empty());
        assert_eq!(
            found("/files", &[host, ("if", "<urn:x> (<opaquelocktoken:y>)")], "PROTO-017"),
            ["restricted header if"]
        );
        assert!(found("/files", &[host, ("if-match", "\"v1\"")], "PROTO-017").is_empty());
        // a media type's parameters are read only when it has some
        assert_eq!(
            score(
                "POST",
                "/u",
                &[host, ("content-type", "text/plain; charset=utf-7")],
                b"x"
            ),
            5
        );
        assert_eq!(
            score("POST", "/u", &[host, ("content-type", "application/json")], b"{}"),
            0
        );
    }

    #[test]
    fn policy_violations() {
        let host = ("host", "api.example.com");
        assert!(score("GET", "/a?x=%c0%ae", &[host], b"") >= 5);
        assert!(score("GET", "/a?x=%uff0e", &[host], b"") >= 5);
        assert!(score("GET", "/a?x=%2561%2562", &[host], b"") >= 5);
        assert_eq!(score("GET", "/a?pw=S%40_V%256Bk", &[host], b""), 0);
        assert!(score("GET", "/a?x=1%07", &[host], b"") >= 5);
        assert!(score("GET", "/a?x=%zz", &[host], b"") >= 5);
        assert!(score("GET", "/site.sql", &[host], b"") >= 5);
        assert!(score("GET", "/index.php~", &[host], b"") >= 5);
        assert!(score("GET", "/a%0aSet-Cookie:x", &[host], b"") >= 5);
        assert!(score("GET", "/", &[host, ("connection", "close, close")], b"") >= 5);
        assert!(score("GET", "/", &[host, ("user-agent", "")], b"") >= 5);
        assert!(score("GET", "/", &[host, ("range", "bytes=0-1,2-3,4-5,6-7,8-9,10-11")], b"") >= 5);
        let form = ("content-type", "application/x-www-form-urlencoded; charset=nonsense");
        assert!(score("POST", "/", &[host, form, ("content-length", "3")], b"a=b") >= 5);
        let ct = ("content-type", "json");
        assert!(score("POST", "/", &[host, ct, ("content-length", "2")], b"{}") >= 5);
        let ct = ("content-type", "multipart/bogus; boundary=x");
        assert!(score("POST", "/", &[host, ct, ("content-length", "2")], b"xx") >= 5);
        let ct = ("content-type", "application/x-www-form-urlencoded");
        assert!(score("GET", "/", &[host, ct, ("content-length", "3")], b"a=b") >= 5);
    }

    #[test]
    fn ordinary_requests_pass() {
        let host = ("host", "api.example.com");
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(score("GET", "/api/v1/items?q=caf%C3%A9&page=2", &[host], b""), 0);
        assert_eq!(
            score("GET", "/files/report.pdf", &[host, ("range", "bytes=0-1023")], b""),
            0
        );
        assert_eq!(
            score("GET", "/", &[host, ("connection", "keep-alive, Upgrade")], b""),
            0
        );
        assert_eq!(
            score("POST", "/api/posts", &[host, json, ("content-length", "2")], b"{}"),
            0
        );
        let mp = (
            "content-type",
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        );
        assert_eq!(score("POST", "/upload", &[host, mp, ("content-length", "1")], b"x"), 0);
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert_eq!(
            score(
                "POST",
                "/login",
                &[host, form, ("content-length", "29")],
                b"user=O%27Brien&note=50%25+off"
            ),
            0
        );
        // a search API that takes a JSON body on GET only counts, never blocks alone
        assert!(score("GET", "/_search", &[host, json, ("content-length", "2")], b"{}") < 5);
        assert_eq!(
            score(
                "GET",
                "/",
                &[host, ("accept", "text/html;charset=utf-8, */*;q=0.8")],
                b""
            ),
            0
        );
    }
}
