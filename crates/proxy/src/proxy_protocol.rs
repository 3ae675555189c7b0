//! PROXY protocol v1 (text) and v2 (binary) headers, as sent by load balancers in front of rampart.
//!
//! Hand-written: the format is small and fixed, and we need to consume exactly the header bytes and not one
//! more (the rest belongs to TLS or HTTP), which we do by peeking first and then reading the exact length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1 headers are at most 107 bytes; v2 with TLVs may be larger, but we cap what we accept.
const MAX_HEADER: usize = 536;

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The header is complete: `len` bytes long, carrying the original source address, or `None` for
    /// `UNKNOWN` / `LOCAL` (health checks from the balancer itself).
    Done { len: usize, source: Option<SocketAddr> },
    /// More bytes are needed.
    Partial,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() >= 12 && buf[..12] == V2_SIGNATURE {
        return parse_v2(buf);
    }
    if V2_SIGNATURE.starts_with(&buf[..buf.len().min(12)]) && buf.len() < 12 {
        return Ok(Parsed::Partial);
    }
    if buf.len() >= 6 && &buf[..6] == b"PROXY " {
        return parse_v1(buf);
    }
    if b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
        return Ok(Parsed::Partial);
    }
    Err(ProxyHeaderError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let Some(end) = buf.iter().take(107).position(|&b| b == b'\n') else {
        return if buf.len() >= 107 {
            Err(ProxyHeaderError::Malformed("v1 line too long"))
        } else {
            Ok(Parsed::Partial)
        };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(ProxyHeaderError::Malformed("v1 line must end with CRLF"));
    }
    let line = std::str::from_utf8(&buf[..end - 1]).map_err(|_| ProxyHeaderError::Malformed("v1 not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| ProxyHeaderError::Malformed("v1 bad source address"))?;
            if (*proto == "TCP4") != ip.is_ipv4() {
                return Err(ProxyHeaderError::Malformed("v1 address family mismatch"));
            }
            let port: u16 = sport
                .parse()
                .map_err(|_| ProxyHeaderError::Malformed("v1 bad source port"))?;
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err(ProxyHeaderError::Malformed("v1 fields")),
    };
    Ok(Parsed::Done { len: end + 1, source })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() < 16 {
        return Ok(Parsed::Partial);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("v2 version"));
    }
    let len = 16 + u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if len > MAX_HEADER {
        return Err(ProxyHeaderError::Malformed("v2 header too long"));
    }
    if buf.len() < len {
        return Ok(Parsed::Partial);
    }
    let body = &buf[16..len];
    let source = match (ver_cmd & 0x0f, buf[13] >> 4) {
        (0, _) => None, // LOCAL
        (1, 1) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]])))
        }
        (1, 2) if body.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            Some(SocketAddr::new(
                Ipv6Addr::from(a).into(),
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        (1, 0) => None, // UNSPEC
        (1, _) => return Err(ProxyHeaderError::Malformed("v2 address block")),
        _ => return Err(ProxyHeaderError::Malformed("v2 command")),
    };
    Ok(Parsed::Done { len, source })
}

/// Reads a PROXY header off `stream`, consuming exactly its bytes.
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = [0u8; MAX_HEADER];
    loop {
        let n = stream.peek(&mut buf).await.map_err(|_| ProxyHeaderError::Missing)?;
        if n == 0 {
            return Err(ProxyHeaderError::Missing);
        }
        match parse(&buf[..n])? {
            Parsed::Done { len, source } => {
                stream
                    .read_exact(&mut buf[..len])
                    .await
                    .map_err(|_| ProxyHeaderError::Missing)?;
                return Ok(source);
            }
            Parsed::Partial if n == MAX_HEADER => return Err(ProxyHeaderError::Malformed("header too long")),
            // Wait for more bytes: peek returns what is there now, so yield to the reactor first.
            Parsed::Partial => tokio::time::sleep(std::time::Duration::from_millis(2)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1() {
        let h = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h).unwrap(),
            Parsed::Done {
                len: 43,
                source: Some("203.0.113.7:51234".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n").unwrap(),
            Parsed::Done {
                len: 32,
                source: Some("[2001:db8::1]:1".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").unwrap(),
            Parsed::Done { len: 15, source: None }
        );
        assert_eq!(parse(b"PROXY TCP4 1.2").unwrap(), Parsed::Partial);
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 ::1 1 2\r\n").is_err());
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::Missing));
    }

    #[test]
    fn v2() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb]);
        h.extend_from_slice(b"GET /");
        assert_eq!(
            parse(&h).unwrap(),
            Parsed::Done {
                len: 28,
                source: Some("198.51.100.9:8080".parse().unwrap())
            }
        );
        assert_eq!(parse(&h[..20]).unwrap(), Parsed::Partial);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap(), Parsed::Done { len: 16, source: None });
    }
}
