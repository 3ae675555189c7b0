//! Request-level protocol checks: methods, framing headers, Host, ranges,
//! and content-type sanity.

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
    if let Some(cl) = h.get("content-length") {
        let v = cl.as_bytes();
        if v.is_empty() || !v.iter().all(|c| c.is_ascii_digit()) {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-002",
                5,
                "content-length is not a number",
            ));
        }
        if h.contains_key("transfer-encoding") {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-003",
                5,
                "content-length with transfer-encoding",
            ));
        }
    }
    if h.get_all("content-length").iter().count() > 1 {
        out.push(Hit::new(
            AttackClass::Protocol,
            "PROTO-003",
            5,
            "several content-length headers",
        ));
    }
    if let Some(te) = h.get("transfer-encoding") {
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
        out.push(Hit::new(
            AttackClass::Protocol,
            "PROTO-005",
            3,
            format!("{m} request with a body"),
        ));
    }
    // Host: absent (and no authority in the URI) or empty
    match h.get("host") {
        None if req.uri.authority().is_none() => {
            out.push(Hit::new(AttackClass::Protocol, "PROTO-006", 5, "no Host header"));
        }
        Some(v) if v.as_bytes().iter().all(|c| c.is_ascii_whitespace()) => {
            out.push(Hit::new(AttackClass::Protocol, "PROTO-006", 5, "empty Host header"));
        }
        _ => {}
    }
    if h.get_all("host").iter().count() > 1 {
        out.push(Hit::new(AttackClass::Protocol, "PROTO-006", 5, "several Host headers"));
    }
    // Range abuse: many ranges, or a range that ends before it starts
    for name in ["range", "request-range"] {
        if let Some(r) = h.get(name) {
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
            if (parts.len() > 10 && !req.uri.path().ends_with(".pdf")) || bad_order {
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
    if let Some(ct) = h.get("content-type") {
        let c = String::from_utf8_lossy(ct.as_bytes()).to_ascii_lowercase();
        if let Some(p) = c.find("charset=") {
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
        if c.matches("boundary=").count() > 1 || (c.contains("boundary=") && !c.starts_with("multipart/")) {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-009",
                5,
                "malformed multipart content type",
            ));
        }
    }
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
                    3,
                    crate::util::excerpt(&raw[i.saturating_sub(10)..], 40),
                ));
                break;
            }
        }
    }
}
