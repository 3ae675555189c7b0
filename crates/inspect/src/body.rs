//! Structured parsers: query / form, cookies, JSON, XML, multipart, and the
//! body dispatcher with content sniffing and gzip / deflate.

use std::borrow::Cow;
use std::io::Read;

use crate::{child_path, decode, BodyKind, Collector, Location, RequestView};

/// `a=1&b=2` (query string or urlencoded form). Keys are points too.
pub fn parse_form(c: &mut Collector<'_>, prefix: &str, s: &str, loc: Location, nesting: usize) {
    for pair in s.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.find('=') {
            Some(i) => (&pair[..i], Some(&pair[i + 1..])),
            None => (pair, None),
        };
        let (key, kchanged) = decode::form_component(k);
        let path = key_path(prefix, &key);
        let chain: &[&'static str] = if kchanged { &["percent"] } else { &[] };
        c.add(&path, Cow::Borrowed(&key), chain, loc, true, nesting);
        // `pay%3D<payload>`: an encoded `=` puts the value inside the key,
        // out of sight of checks that only read values. Inspect the text
        // after the key's first `=` as a value too.
        if let Some(i) = key.find('=') {
            let hidden = &key[i + 1..];
            if !hidden.is_empty() {
                let chain: &[&'static str] = if kchanged {
                    &["percent", "form-key"]
                } else {
                    &["form-key"]
                };
                c.add(&path, Cow::Borrowed(hidden), chain, loc, false, nesting);
            }
        }
        if let Some(v) = v {
            let (val, vchanged) = decode::form_component(v);
            let chain: &[&'static str] = if vchanged { &["percent"] } else { &[] };
            c.add(&path, Cow::Owned(val), chain, loc, false, nesting);
        }
    }
    // `x=&gt;+src+onerror=confirm&amp;lpar;1&amp;rpar;`: a value written with HTML character references
    // is cut into pieces at each `&` of a reference, and no piece holds the attack. An application
    // that reads the raw string (or decodes the references before splitting) sees it whole; so does
    // this point.
    if splits_a_reference(s) {
        let (whole, changed) = decode::form_component(s);
        let chain: &[&'static str] = if changed {
            &["percent", "references-joined"]
        } else {
            &["references-joined"]
        };
        c.add(prefix, Cow::Owned(whole), chain, loc, false, nesting);
    }
}

/// Whether an `&` of `s` starts an HTML character reference (`&gt;`, `&#60;`, `&lpar%3B`) rather than a
/// parameter.
fn splits_a_reference(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr_iter(b'&', b).any(|i| {
        let rest = &b[i + 1..];
        let name = rest
            .iter()
            .take(10)
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
            .count();
        let after = &rest[name..];
        name >= 2 && (after.starts_with(b";") || after.len() >= 3 && after[..3].eq_ignore_ascii_case(b"%3b"))
    })
}

/// `prefix.key`, the key made a path segment: `a[b][]` -> `a.b`, at most 64 characters, `_` when
/// nothing is left. Built in one buffer: it runs for every field of every body.
fn key_path(prefix: &str, k: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + k.len().min(64));
    out.push_str(prefix);
    out.push('.');
    let base = out.len();
    for ch in k.chars().take(64) {
        match ch {
            '[' => out.push('.'),
            ']' => {}
            c => out.push(c),
        }
    }
    while out.len() > base && out.ends_with('.') {
        out.pop();
    }
    if out.len() == base {
        out.push('_');
    }
    out
}

pub fn parse_cookies(c: &mut Collector<'_>, header: &str) {
    for part in header.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.find('=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, ""),
        };
        let path = key_path("cookie", k.trim());
        c.add(&path, Cow::Borrowed(k.trim()), &[], Location::Cookie, true, 0);
        let (val, changed) = match decode::percent(v, false) {
            Some(s) => (s, true),
            None => (v.to_string(), false),
        };
        let chain: &[&'static str] = if changed { &["percent"] } else { &[] };
        c.add(&path, Cow::Owned(val), chain, Location::Cookie, false, 0);
    }
}

/// Every string, number and key of a JSON value, at any depth.
pub fn walk_json(
    c: &mut Collector<'_>,
    path: &str,
    v: serde_json::Value,
    chain: &[&'static str],
    loc: Location,
    nesting: usize,
) {
    if nesting > c.limits.max_nesting {
        c.anomaly(
            "limit",
            "LIMIT-003",
            5,
            path,
            format!("nesting deeper than {}", c.limits.max_nesting),
        );
        return;
    }
    match v {
        // Owned: the document's strings move into their points rather than being copied.
        serde_json::Value::String(s) => c.add(path, Cow::Owned(s), chain, loc, false, nesting),
        serde_json::Value::Number(n) => c.add(path, Cow::Owned(n.to_string()), chain, loc, false, nesting),
        serde_json::Value::Array(a) => {
            for (i, x) in a.into_iter().enumerate() {
                walk_json(c, &format!("{path}.{i}"), x, chain, loc, nesting + 1);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let p = key_path(path, &k);
                c.add(&p, Cow::Owned(k), chain, loc, true, nesting);
                walk_json(c, &p, x, chain, loc, nesting + 1);
            }
        }
        _ => {}
    }
}

fn header<'a>(req: &'a RequestView<'_>, name: &str) -> Option<Cow<'a, str>> {
    req.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// Inflate with size and ratio limits.
pub(crate) fn inflate(c: &mut Collector<'_>, body: &[u8], enc: &str) -> Option<Vec<u8>> {
    let max = c
        .limits
        .max_inflated_bytes
        .min(body.len().saturating_mul(c.limits.max_inflate_ratio).max(4096));
    let mut out = Vec::new();
    let res = match enc {
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(body)
            .take(max as u64 + 1)
            .read_to_end(&mut out),
        "deflate" => {
            // zlib-wrapped per RFC, raw deflate in practice too
            let r = flate2::read::ZlibDecoder::new(body)
                .take(max as u64 + 1)
                .read_to_end(&mut out);
            if r.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(max as u64 + 1)
                    .read_to_end(&mut out)
            } else {
                r
            }
        }
        _ => return None,
    };
    if out.len() > max {
        c.anomaly(
            "limit",
            "LIMIT-004",
            5,
            "body",
            format!("decompressed body over {max} bytes (ratio or size limit)"),
        );
        return None;
    }
    match res {
        Ok(_) => Some(out),
        Err(_) => {
            c.anomaly("protocol", "PROTO-010", 3, "body", "corrupt compressed body");
            None
        }
    }
}

/// Sniff the body kind from its first bytes.
fn sniff(b: &[u8]) -> BodyKind {
    let t = trim_ascii_start(b);
    if t.is_empty() {
        return BodyKind::None;
    }
    match t[0] {
        b'{' | b'[' if serde_json::from_slice::<serde::de::IgnoredAny>(t).is_ok() => {
            return BodyKind::Json;
        }
        b'<' => return BodyKind::Xml,
        b'-' if t.starts_with(b"--") => return BodyKind::Multipart,
        _ => {}
    }
    if std::str::from_utf8(b).is_err() {
        let bin = b.iter().take(512).filter(|&&x| x < 9 || (x > 13 && x < 32)).count();
        if bin > 8 {
            return BodyKind::Binary;
        }
    }
    // form: k=v pairs, no raw whitespace other than a trailing newline
    let tt = trim_ascii(b);
    if !tt.is_empty()
        && tt.contains(&b'=')
        && !tt.iter().any(|&x| x == b' ' || x == b'\n' || x == b'\r' || x == b'<')
        && !tt.starts_with(b"=")
    {
        return BodyKind::Form;
    }
    BodyKind::Text
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    &b[i..]
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let t = trim_ascii_start(b);
    let j = t
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map(|x| x + 1)
        .unwrap_or(0);
    &t[..j]
}

/// Parse the body by its content type, sniffing when the type is missing or
/// disagrees with the content.
pub fn parse_body(c: &mut Collector<'_>, req: &RequestView<'_>) {
    let mut body: Cow<'_, [u8]> = Cow::Borrowed(req.body);
    if let Some(enc) = header(req, "content-encoding") {
        let enc = enc.trim().to_ascii_lowercase();
        if enc != "identity" && !enc.is_empty() {
            match inflate(c, req.body, &enc) {
                Some(b) => body = Cow::Owned(b),
                // over a limit: the anomaly blocks; corrupt: inspect as sent
                None if c.out.anomalies.iter().any(|a| a.rule_id == "LIMIT-004") => {
                    c.out.body_kind = Some(BodyKind::Binary);
                    return;
                }
                None => {}
            }
        }
    }
    let ct = header(req, "content-type")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    if crate::grpc::is_grpc(&ct) {
        c.out.body_kind = Some(BodyKind::Binary);
        let schema = c.limits.grpc_schema.clone();
        crate::grpc::parse_with(c, &body, &ct, req.body_truncated, schema.as_deref(), req.uri.path());
        return;
    }
    let sniffed = sniff(&body);
    let declared = if ct.starts_with("multipart/") {
        Some(BodyKind::Multipart)
    } else if ct.contains("json") {
        Some(BodyKind::Json)
    } else if ct.contains("xml") || ct.contains("soap") {
        Some(BodyKind::Xml)
    } else if ct.contains("x-www-form-urlencoded") {
        Some(BodyKind::Form)
    } else {
        None
    };
    let kind = match (declared, sniffed) {
        (Some(BodyKind::Multipart), _) if boundary(&ct).is_some() => BodyKind::Multipart,
        (Some(BodyKind::Json), BodyKind::Json) => BodyKind::Json,
        (Some(BodyKind::Xml), BodyKind::Xml) => BodyKind::Xml,
        (Some(BodyKind::Form), BodyKind::Json | BodyKind::Xml) => sniffed,
        (Some(BodyKind::Form), _) => BodyKind::Form,
        (_, BodyKind::Multipart) => {
            if first_line_boundary(&body).is_some() {
                BodyKind::Multipart
            } else {
                BodyKind::Text
            }
        }
        (_, s) => s,
    };
    c.out.body_kind = Some(kind);
    parse_kind(c, kind, &body, &ct, "body", 0);
}

fn parse_kind(c: &mut Collector<'_>, kind: BodyKind, body: &[u8], ct: &str, prefix: &str, nesting: usize) {
    match kind {
        BodyKind::None => {}
        BodyKind::Json => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => walk_json(c, &child_path(prefix, "json"), v, &[], Location::Body, nesting),
            Err(_) => text(c, prefix, body),
        },
        BodyKind::Form => {
            let s = String::from_utf8_lossy(body);
            parse_form(c, &child_path(prefix, "form"), s.trim_end(), Location::Body, nesting);
        }
        BodyKind::Xml => {
            let head = String::from_utf8_lossy(&body[..body.len().min(200)]).to_ascii_lowercase();
            if head.contains("encoding=\"utf-7\"") || head.contains("encoding='utf-7'") || head.contains("+adwaiq-") {
                c.anomaly(
                    "xxe",
                    "XXE-005",
                    8,
                    &format!("{prefix}.xml"),
                    "UTF-7 encoded XML (hides markup from filters)",
                );
                text(c, prefix, body);
            }
            parse_xml(c, body, &format!("{prefix}.xml"), nesting)
        }
        BodyKind::Multipart => {
            let b = boundary(ct)
                .map(|s| s.into_bytes())
                .or_else(|| first_line_boundary(body).map(|s| s.to_vec()));
            match b {
                Some(b) => parse_multipart(c, body, &b, prefix, nesting),
                None => text(c, prefix, body),
            }
        }
        BodyKind::Text => text(c, prefix, body),
        BodyKind::Binary => {
            // serialized-object markers and embedded text still matter
            let s = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
            c.add(
                &format!("{prefix}.binary"),
                Cow::Owned(s),
                &[],
                Location::Body,
                false,
                nesting,
            );
        }
    }
}

fn text(c: &mut Collector<'_>, prefix: &str, body: &[u8]) {
    let s = decode::bytes_to_text(body);
    c.add(
        &child_path(prefix, "text"),
        Cow::Owned(s),
        &[],
        Location::Body,
        false,
        0,
    );
}

fn boundary(ct: &str) -> Option<String> {
    let i = ct.find("boundary=")?;
    let rest = &ct[i + 9..];
    let rest = rest.split(';').next()?.trim();
    let b = rest.trim_matches('"');
    (!b.is_empty()).then(|| b.to_string())
}

fn first_line_boundary(body: &[u8]) -> Option<&[u8]> {
    let t = trim_ascii_start(body);
    let t = t.strip_prefix(b"--")?;
    let end = t.iter().position(|&c| c == b'\r' || c == b'\n')?;
    let b = &t[..end];
    (!b.is_empty() && b.len() <= 200 && !b.contains(&b' ')).then_some(b)
}

/// Case-sensitive boundary lookup in the (lowercased) content-type header:
/// the original header value carries the real case.
/// Quoted `name` / `filename` values of a Content-Disposition that carry
/// `;`, `=`, a backslash-escaped quote or a control character: parsers split
/// them differently (the multipart evasion family). Field names never need
/// them (5); file names rarely do (3).
fn disposition_tricks(hv: &str) -> Option<(u32, String)> {
    let b = hv.as_bytes();
    let mut best: Option<(u32, String)> = None;
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'"', &b[i..]) {
        let open = i + p;
        let Some(q) = memchr::memchr(b'"', &b[open + 1..]) else {
            break;
        };
        let close = open + 1 + q;
        let inner = &hv[open + 1..close];
        let key = hv[..open].trim_end().trim_end_matches('=').trim_end();
        let key = key.rsplit([';', ' ']).next().unwrap_or("").to_ascii_lowercase();
        let bad = inner.bytes().any(|c| c == b';' || c == b'=' || c == b'\\' || c < 0x20);
        if bad {
            let sc = if key == "name" { 5 } else { 3 };
            if best.as_ref().is_none_or(|(s, _)| sc > *s) {
                best = Some((sc, format!("{key}=\"{inner}\" in a multipart part")));
            }
        }
        i = close + 1;
    }
    best
}

fn parse_multipart(c: &mut Collector<'_>, body: &[u8], boundary_lc: &[u8], prefix: &str, nesting: usize) {
    // The boundary was lowercased with the content-type; find the real one in
    // the body by a case-insensitive search of "--" + boundary.
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary_lc);
    let lower: Vec<u8> = body.to_ascii_lowercase();
    let finder = memchr::memmem::Finder::new(&delim);
    let positions: Vec<usize> = finder.find_iter(&lower).collect();
    if positions.is_empty() {
        text(c, prefix, body);
        return;
    }
    for w in 0..positions.len() {
        let start = positions[w] + delim.len();
        let end = positions.get(w + 1).copied().unwrap_or(body.len());
        if start > end {
            continue;
        }
        let mut part = &body[start..end];
        if part.starts_with(b"--") {
            break;
        }
        // strip line break after the boundary and before the next one
        part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        let (head, content) = match memchr::memmem::find(part, b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match memchr::memmem::find(part, b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => (part, &b""[..]),
            },
        };
        let head = String::from_utf8_lossy(head);
        let mut name = String::from("_");
        let mut filename: Option<String> = None;
        let mut ptype = String::new();
        let mut other_headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            let Some((hn, hv)) = line.split_once(':') else {
                continue;
            };
            let hn_l = hn.trim().to_ascii_lowercase();
            if hn_l == "content-disposition" {
                if let Some((sc, what)) = disposition_tricks(hv) {
                    c.anomaly("protocol", "MULTIPART-001", sc, prefix, what);
                }
                for attr in hv.split(';') {
                    let attr = attr.trim();
                    if let Some((k, v)) = attr.split_once('=') {
                        let v = v.trim().trim_matches('"').to_string();
                        match k.trim().to_ascii_lowercase().as_str() {
                            "name" => name = v,
                            "filename" | "filename*" => filename = Some(v),
                            _ => {}
                        }
                    }
                }
            } else if hn_l == "content-type" {
                ptype = hv.trim().to_ascii_lowercase();
            } else {
                other_headers.push((hn_l, hv.trim().to_string()));
            }
        }
        let base = key_path(&child_path(prefix, "multipart"), &name);
        c.add(&base, Cow::Owned(name.clone()), &[], Location::Body, true, nesting);
        if let Some(f) = filename {
            c.add(
                &format!("{base}.filename"),
                Cow::Owned(f),
                &[],
                Location::Body,
                false,
                nesting,
            );
        }
        for (hn, hv) in other_headers {
            c.add(
                &format!("{base}.header.{hn}"),
                Cow::Owned(hv),
                &[],
                Location::Body,
                false,
                nesting,
            );
        }
        if !ptype.is_empty() && !ptype.starts_with("text/plain") {
            c.add(
                &format!("{base}.header.content-type"),
                Cow::Owned(ptype.clone()),
                &[],
                Location::Body,
                false,
                nesting,
            );
        }
        // a part that declares an evasive charset, or the form's `_charset_`
        // field naming one: the text below is not what filters read
        let declared = if name == "_charset_" {
            String::from_utf8_lossy(content).trim().to_ascii_lowercase()
        } else {
            ptype
                .split(';')
                .find_map(|p| p.trim().strip_prefix("charset="))
                .unwrap_or("")
                .trim_matches('"')
                .to_string()
        };
        if [
            "utf-7", "utf7", "utf-16", "utf-32", "ibm0", "ibm5", "cp037", "cp500", "cp1026", "ebcdic",
        ]
        .iter()
        .any(|e| declared.starts_with(e))
        {
            c.anomaly(
                "protocol",
                "PROTO-008",
                5,
                &format!("{prefix}.multipart"),
                format!("multipart part charset {declared}"),
            );
        }
        if content.is_empty() {
            continue;
        }
        let kind = if ptype.contains("json") {
            BodyKind::Json
        } else if ptype.contains("xml") {
            BodyKind::Xml
        } else if ptype.is_empty() || ptype.starts_with("text/") {
            // a form field: JSON when it is JSON, otherwise text (markup in a
            // field is text the application will echo, not a document)
            match sniff(content) {
                BodyKind::Json => BodyKind::Json,
                BodyKind::Binary => BodyKind::Binary,
                _ => BodyKind::Text,
            }
        } else {
            match sniff(content) {
                BodyKind::Binary => BodyKind::Binary,
                _ => BodyKind::Text,
            }
        };
        if nesting + 1 > c.limits.max_nesting {
            continue;
        }
        match kind {
            BodyKind::Text => {
                let s = decode::bytes_to_text(content);
                c.add(&base, Cow::Owned(s), &[], Location::Body, false, nesting + 1);
            }
            k => parse_kind(c, k, content, &ptype, &base, nesting + 1),
        }
    }
}

/// XML / SOAP: element text, attribute values, comments, CDATA, processing
/// instructions. Entities are never expanded; a DOCTYPE is an anomaly.
pub fn parse_xml(c: &mut Collector<'_>, body: &[u8], prefix: &str, nesting: usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    {
        let cfg = reader.config_mut();
        cfg.trim_text(true);
        cfg.check_end_names = false;
        cfg.expand_empty_elements = false;
    }
    let mut stack: Vec<String> = Vec::new();
    let mut ok = true;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let ev = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            Err(_) => {
                ok = false;
                break;
            }
        };
        let (ev, is_empty) = match ev {
            Event::Empty(e) => (Event::Start(e), true),
            other => (other, false),
        };
        match ev {
            Event::Eof => break,
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let short: String = name.chars().take(40).collect();
                if stack.len() >= c.limits.max_nesting {
                    c.anomaly("limit", "LIMIT-003", 5, prefix, "XML nesting too deep");
                    return;
                }
                let p = if stack.is_empty() {
                    format!("{prefix}.{short}")
                } else {
                    format!("{prefix}.{}.{short}", stack.join("."))
                };
                for a in e.attributes().with_checks(false).flatten() {
                    let k = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                    let v = decode::bytes_to_text(&a.value);
                    // attribute names are fixed by the schema: only values are points
                    let ap = format!("{p}@{k}");
                    c.add(&ap, Cow::Owned(v), &[], Location::Body, false, nesting);
                }
                if !is_empty {
                    stack.push(short);
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let v = decode::bytes_to_text(&t);
                let p = format!("{prefix}.{}", stack.join("."));
                c.add(&p, Cow::Owned(v), &[], Location::Body, false, nesting);
            }
            Event::CData(t) => {
                let v = decode::bytes_to_text(&t);
                let p = format!("{prefix}.{}", stack.join("."));
                c.add(&p, Cow::Owned(v), &["cdata"], Location::Body, false, nesting);
            }
            Event::Comment(t) => {
                let v = decode::bytes_to_text(&t);
                c.add(
                    &format!("{prefix}.comment"),
                    Cow::Owned(v),
                    &[],
                    Location::Body,
                    false,
                    nesting,
                );
            }
            Event::PI(t) => {
                let v = decode::bytes_to_text(&t);
                c.add(
                    &format!("{prefix}.pi"),
                    Cow::Owned(v),
                    &[],
                    Location::Body,
                    false,
                    nesting,
                );
            }
            Event::DocType(t) => {
                let v = decode::bytes_to_text(&t);
                let up = v.to_ascii_uppercase();
                let (rule, score, what) = if up.contains("<!ENTITY") && (up.contains("SYSTEM") || up.contains("PUBLIC"))
                {
                    ("XXE-001", 10, "external entity declared in DOCTYPE")
                } else if up.contains("<!ENTITY") {
                    ("XXE-002", 5, "entity declared in DOCTYPE")
                } else if up.contains("SYSTEM") || up.contains("PUBLIC") {
                    ("XXE-003", 5, "DOCTYPE with external DTD")
                } else {
                    ("XXE-004", 3, "DOCTYPE in request body")
                };
                c.anomaly(
                    "xxe",
                    rule,
                    score,
                    &format!("{prefix}.doctype"),
                    format!("{what}: {}", excerpt(&v)),
                );
                c.add(
                    &format!("{prefix}.doctype"),
                    Cow::Owned(v),
                    &[],
                    Location::Body,
                    false,
                    nesting,
                );
            }
            Event::Decl(_) | Event::Empty(_) => {}
        }
    }
    if !ok {
        // malformed XML: inspect as text as well
        text(c, prefix, body);
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod form_tests {
    use crate::{inspect, Inspection, Limits, RequestView};

    fn form(body: &str) -> Inspection {
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
        inspect(&rv, &Limits::default())
    }

    #[test]
    fn value_hidden_in_a_key_is_a_point() {
        // an encoded `=` keeps the whole pair in the key
        let i = form("note%3Dhello+world");
        assert!(i
            .points
            .iter()
            .any(|p| !p.is_key && p.value == "hello world" && p.chain.contains(&"form-key")));
        // a plain pair yields no extra point
        let i = form("a=b");
        assert!(!i.points.iter().any(|p| p.chain.contains(&"form-key")));
    }
}
