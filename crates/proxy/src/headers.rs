//! Header rules: request framing checks (smuggling), hop-by-hop removal, forwarding headers, client IP.
//!
//! hyper's parser already refuses obs-fold, invalid name characters, differing Content-Length values and a
//! Transfer-Encoding whose last coding is not chunked. What it tolerates but a gateway must not, because
//! a server behind us might read the framing differently, is refused here and, for what hyper hides from
//! the handler (bare LF, Content-Length dropped beside Transfer-Encoding, repeated equal Content-Length
//! values), on the raw bytes in [`crate::framing`].

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rampart_policy::{Limits, TrustedProxies};
use std::net::IpAddr;

/// Why a request is refused before routing; each maps to a status and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Content-Length together with Transfer-Encoding, or a Transfer-Encoding other than a single
    /// `chunked`, or several Content-Length headers.
    Smuggling,
    BadContentLength,
    MissingHost,
    DuplicateHost,
    UriTooLong,
    TooManyHeaders,
    /// A line of the request head ends in a bare LF instead of CRLF.
    BareLineFeed,
    /// obs-fold or an invalid header line (no colon, invalid characters in the name).
    MalformedHead,
    /// The request head is larger than the read buffer allows.
    HeadTooLarge,
    /// An HTTP/1 request line that names HTTP/2 (`GET / HTTP/2.0`): a major version this framing does
    /// not speak (RFC 9110 §15.6.6). h2 arrives with its preface or over TLS with ALPN instead.
    VersionNotSupported,
}

impl Reject {
    pub fn status(self) -> http::StatusCode {
        match self {
            Reject::UriTooLong => http::StatusCode::URI_TOO_LONG,
            Reject::TooManyHeaders | Reject::HeadTooLarge => http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::VersionNotSupported => http::StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The rule id of the refusal in events (docs/rules.md, "HTTP layer").
    pub fn rule_id(self) -> &'static str {
        match self {
            Reject::Smuggling => "HTTP-SMUGGLING",
            Reject::BadContentLength => "HTTP-BAD-CONTENT-LENGTH",
            Reject::MissingHost => "HTTP-MISSING-HOST",
            Reject::DuplicateHost => "HTTP-DUPLICATE-HOST",
            Reject::UriTooLong => "HTTP-URI-TOO-LONG",
            Reject::TooManyHeaders => "HTTP-TOO-MANY-HEADERS",
            Reject::BareLineFeed => "HTTP-BARE-LF",
            Reject::MalformedHead => "HTTP-MALFORMED-HEAD",
            Reject::HeadTooLarge => "HTTP-HEAD-TOO-LARGE",
            Reject::VersionNotSupported => "HTTP-VERSION-NOT-SUPPORTED",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Reject::Smuggling => "smuggling",
            Reject::BadContentLength => "bad_content_length",
            Reject::MissingHost => "missing_host",
            Reject::DuplicateHost => "duplicate_host",
            Reject::UriTooLong => "uri_too_long",
            Reject::TooManyHeaders => "too_many_headers",
            Reject::BareLineFeed => "bare_lf",
            Reject::MalformedHead => "malformed_head",
            Reject::HeadTooLarge => "head_too_large",
            Reject::VersionNotSupported => "version_not_supported",
        }
    }
}

pub fn check_request(parts: &http::request::Parts, limits: &Limits) -> Result<(), Reject> {
    let uri_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_length {
        return Err(Reject::UriTooLong);
    }
    if parts.headers.len() > limits.max_headers {
        return Err(Reject::TooManyHeaders);
    }
    let h = &parts.headers;
    if parts.version == http::Version::HTTP_11 || parts.version == http::Version::HTTP_10 {
        let mut te = h.get_all(header::TRANSFER_ENCODING).iter();
        if let Some(first) = te.next() {
            let chunked_only = first.as_bytes().eq_ignore_ascii_case(b"chunked");
            if !chunked_only || te.next().is_some() || h.contains_key(header::CONTENT_LENGTH) {
                return Err(Reject::Smuggling);
            }
        }
        let mut cl = h.get_all(header::CONTENT_LENGTH).iter();
        if let Some(first) = cl.next() {
            if cl.next().is_some() {
                return Err(Reject::Smuggling);
            }
            if first.is_empty() || !first.as_bytes().iter().all(u8::is_ascii_digit) || first.len() > 19 {
                return Err(Reject::BadContentLength);
            }
        }
        let mut hosts = h.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) if parts.version == http::Version::HTTP_11 && parts.uri.authority().is_none() => {
                return Err(Reject::MissingHost)
            }
            (Some(_), Some(_)) => return Err(Reject::DuplicateHost),
            _ => {}
        }
    }
    Ok(())
}

/// The host a request is for, lower-cased, without port: the URI authority (HTTP/2, absolute-form) or
/// the Host header.
pub fn request_host(parts: &http::request::Parts) -> &str {
    let raw = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The connection-level headers of RFC 9110 §7.6.1, never forwarded. (`Trailer` is not one of them: it
/// is end-to-end, and hyper only sends the trailer fields it names.)
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and those the Connection header names. `keep_upgrade` keeps Upgrade and
/// sets `Connection: upgrade` for protocol switches (WebSocket) that must reach the upstream. A `TE` that
/// accepts trailers becomes `TE: trailers` on the next hop: rampart relays trailers, and without it an
/// HTTP/1.1 upstream drops them (gRPC needs them).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of them: one pass over the names says so, instead of a hashed removal
    // for each (everything below acts only when one of them is present).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let upgrade = if keep_upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        });
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True for an HTTP/1.1 protocol-switch request (`Connection: upgrade` + `Upgrade: x`).
/// `OPTIONS *` (RFC 9110 section 9.3.7): a question about the server's capabilities, answered by the
/// gateway itself.
pub fn is_server_options(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::OPTIONS && parts.uri.path() == "*"
}

/// The methods the gateway relays, as `OPTIONS *` lists them.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

pub fn is_upgrade(version: http::Version, headers: &HeaderMap) -> bool {
    version == http::Version::HTTP_11
        && headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the right-most
/// address in X-Forwarded-For that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all(header::HeaderName::from_static("x-forwarded-for"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            // Garbage in the chain: stop at the last address we could trust.
            Err(_) => break,
        }
    }
    client
}

pub struct Forwarding<'a> {
    pub peer: IpAddr,
    pub peer_trusted: bool,
    pub tls: bool,
    pub host: &'a str,
    pub request_id: &'a str,
    pub version: http::Version,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Sets X-Forwarded-*, Via and X-Request-Id on a request going upstream. From an untrusted peer any
/// X-Forwarded-* it sent is replaced, never extended: it could say anything.
pub fn set_forwarding(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    let mut xff = Vec::with_capacity(48);
    match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(prev) if f.peer_trusted && !prev.is_empty() => {
            xff.extend_from_slice(prev);
            xff.extend_from_slice(b", ");
        }
        _ => {}
    }
    write_ip(&mut xff, rampart_policy::canonical_ip(f.peer));
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !(f.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(if f.tls { "https" } else { "http" }),
        );
    }
    if !(f.peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        if let Ok(v) = HeaderValue::from_str(f.host) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
    let via = match f.version {
        http::Version::HTTP_2 => "2 rampart",
        http::Version::HTTP_10 => "1.0 rampart",
        _ => "1.1 rampart",
    };
    headers.append(header::VIA, HeaderValue::from_static(via));
    if let Ok(v) = HeaderValue::from_str(f.request_id) {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
}

/// Appends `ip` as text. IPv4, nearly every request's case, is written by hand: `Display` goes through
/// the formatting machinery and cost more than the rest of the forwarding headers together.
pub fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(out, "{ip}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_written_as_display_writes_them() {
        let cases = [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
        ];
        for text in cases {
            let ip: std::net::IpAddr = text.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        }
        for n in [0u32, 1, 9, 10, 99, 100, 101, 199, 200, 209, 250, 0x0a63_64c8, u32::MAX] {
            let ip = std::net::IpAddr::V4(n.into());
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        }
    }

    fn parts(version: http::Version, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/x").version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn limits() -> Limits {
        rampart_policy::compile_str(
            std::path::Path::new("t.toml"),
            "[[listeners]]\naddr='127.0.0.1:1'\n[upstreams.a]\ntargets=['http://127.0.0.1:2']\n[[routes]]\nupstream='a'\n",
        )
        .unwrap()
        .limits
    }

    #[test]
    fn framing_conflicts_are_refused() {
        let l = limits();
        let v11 = http::Version::HTTP_11;
        let ok = |h: &[(&str, &str)]| check_request(&parts(v11, h), &l);
        assert_eq!(ok(&[("host", "a")]), Ok(()));
        assert_eq!(ok(&[("host", "a"), ("transfer-encoding", "chunked")]), Ok(()));
        assert_eq!(
            ok(&[("host", "a"), ("transfer-encoding", "chunked"), ("content-length", "3")]),
            Err(Reject::Smuggling)
        );
        assert_eq!(
            ok(&[
                ("host", "a"),
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]),
            Err(Reject::Smuggling)
        );
        assert_eq!(
            ok(&[("host", "a"), ("transfer-encoding", "gzip, chunked")]),
            Err(Reject::Smuggling)
        );
        assert_eq!(
            ok(&[("host", "a"), ("content-length", "3"), ("content-length", "3")]),
            Err(Reject::Smuggling)
        );
        assert_eq!(
            ok(&[("host", "a"), ("content-length", "+3")]),
            Err(Reject::BadContentLength)
        );
        assert_eq!(ok(&[]), Err(Reject::MissingHost));
        assert_eq!(ok(&[("host", "a"), ("host", "b")]), Err(Reject::DuplicateHost));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("gzip"));
        h.insert("x-app", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-app"));
        h.insert("te", HeaderValue::from_static("gzip, trailers"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.get("te").unwrap(), "trailers");
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_from_trusted_peers() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.1.1.1"),
        );
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("198.51.100.1".parse().unwrap(), &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("::ffff:10.0.0.1".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(strip_port("api.example.com:8443"), "api.example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
