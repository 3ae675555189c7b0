//! gRPC and gRPC-Web bodies: length-prefixed messages (a flag byte, a 4-byte big-endian length, the
//! message), gzip-compressed when the flag says so, each walked as protobuf wire format without a
//! schema. Strings become points named by their field numbers (`body.grpc.0.2.1`: message 0, field 2,
//! its field 1); nested messages are followed to a depth bound; numbers and bytes that are not text are
//! not points. gRPC-Web text (`application/grpc-web-text`) is base64 of the same frames.
//!
//! A length-delimited field is read as text when it is printable UTF-8 and as a nested message
//! otherwise, when it parses as one: a nested message is almost never printable (its tags and lengths
//! are control bytes), while short text often happens to parse as protobuf.

use crate::{Collector, Location};
use std::borrow::Cow;

/// Messages inspected per request body; past it an anomaly.
pub const MAX_MESSAGES: usize = 100;
/// Nesting of messages followed.
pub const MAX_DEPTH: usize = 16;

/// Whether a content type is gRPC or gRPC-Web.
pub fn is_grpc(ct: &str) -> bool {
    ct.starts_with("application/grpc")
}

pub fn parse(c: &mut Collector<'_>, body: &[u8], ct: &str, truncated: bool) {
    let decoded;
    let mut frames: &[u8] = body;
    if ct.starts_with("application/grpc-web-text") {
        use base64::Engine;
        let clean: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(&clean) {
            Ok(d) => {
                decoded = d;
                frames = &decoded;
            }
            Err(_) => {
                c.anomaly("protocol", "GRPC-001", 5, "body", "gRPC-Web text body is not base64");
                return;
            }
        }
    }
    let mut i = 0;
    let mut n = 0;
    while frames.len() - i >= 5 {
        if n == MAX_MESSAGES {
            c.anomaly(
                "limit",
                "GRPC-002",
                5,
                "body.grpc",
                format!("more than {MAX_MESSAGES} messages in one request body"),
            );
            return;
        }
        let flag = frames[i];
        let len = u32::from_be_bytes([frames[i + 1], frames[i + 2], frames[i + 3], frames[i + 4]]) as usize;
        let start = i + 5;
        let end = start.saturating_add(len).min(frames.len());
        if start + len > frames.len() && !truncated {
            c.anomaly(
                "protocol",
                "GRPC-001",
                5,
                "body.grpc",
                format!("message {n} declares {len} bytes, {} present", frames.len() - start),
            );
        }
        // gRPC-Web trailers travel as a frame with the high bit set: headers text, not a message.
        if flag & 0x80 != 0 {
            i = end;
            continue;
        }
        let payload = &frames[start..end];
        let message: Cow<'_, [u8]> = if flag & 1 == 1 {
            match crate::body::inflate(c, payload, "gzip") {
                Some(m) => Cow::Owned(m),
                None => {
                    i = end;
                    n += 1;
                    continue;
                }
            }
        } else {
            Cow::Borrowed(payload)
        };
        let prefix = format!("body.grpc.{n}");
        if walk(c, &message, &prefix, 0).is_none() {
            // Not protobuf: inspect the bytes as text (a JSON-over-gRPC service, a bad client).
            let s = crate::decode::bytes_to_text(&message);
            c.add(&prefix, Cow::Owned(s), &[], Location::Body, false, 0);
        }
        i = end;
        n += 1;
    }
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One field of a message: a number, or length-delimited bytes with their field number.
enum Field<'a> {
    /// A number (varint, fixed 32 or 64 bits): not a point.
    Scalar,
    Bytes(u32, &'a [u8]),
}

/// The fields of `b` if all of it parses as protobuf wire format.
fn fields(b: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let number = u32::try_from(key >> 3).ok().filter(|n| (1..=536_870_911).contains(n))?;
        match key & 7 {
            0 => {
                varint(b, &mut i)?;
                out.push(Field::Scalar);
            }
            1 => {
                i = i.checked_add(8).filter(|e| *e <= b.len())?;
                out.push(Field::Scalar);
            }
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len).filter(|e| *e <= b.len())?;
                out.push(Field::Bytes(number, &b[i..end]));
                i = end;
            }
            5 => {
                i = i.checked_add(4).filter(|e| *e <= b.len())?;
                out.push(Field::Scalar);
            }
            // groups (3, 4) are deprecated and not followed; 6 and 7 do not exist
            _ => return None,
        }
    }
    Some(out)
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

/// Adds the strings of a message as points; None when `b` is not a message.
fn walk(c: &mut Collector<'_>, b: &[u8], prefix: &str, depth: usize) -> Option<()> {
    let fields = fields(b)?;
    for f in fields {
        let Field::Bytes(number, data) = f else { continue };
        let path = format!("{prefix}.{number}");
        match std::str::from_utf8(data) {
            Ok(s) if printable(s) => {
                c.add(&path, Cow::Owned(s.to_string()), &[], Location::Body, false, depth);
            }
            _ if depth + 1 >= MAX_DEPTH => {
                c.anomaly(
                    "limit",
                    "GRPC-003",
                    5,
                    &path,
                    format!("messages nested deeper than {MAX_DEPTH}"),
                );
            }
            _ => {
                if walk(c, data, &path, depth + 1).is_none() {
                    // bytes: only what reads as text is worth a detector's time
                    let s = String::from_utf8_lossy(data);
                    if s.chars().filter(|c| !c.is_control()).count() * 10 >= s.chars().count() * 9 && s.len() >= 4 {
                        c.add(&path, Cow::Owned(s.into_owned()), &[], Location::Body, false, depth);
                    }
                }
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    /// A protobuf field: key and value.
    fn field(number: u32, wire: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut key = u64::from(number << 3 | u32::from(wire));
        loop {
            let b = (key & 0x7f) as u8;
            key >>= 7;
            out.push(if key == 0 { b } else { b | 0x80 });
            if key == 0 {
                break;
            }
        }
        if wire == 2 {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(value);
        out
    }

    fn frame(flag: u8, msg: &[u8]) -> Vec<u8> {
        let mut f = vec![flag];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    }

    fn points(body: &[u8], ct: &str) -> Vec<(String, String)> {
        let limits = Limits::default();
        let mut c = Collector::new(&limits);
        parse(&mut c, body, ct, false);
        c.out.points.iter().map(|p| (p.path.clone(), p.value.clone())).collect()
    }

    #[test]
    fn strings_of_nested_messages_become_points() {
        // message { 1: "alice", 2: 42, 3: { 1: "x' or 1=1--" } }
        let inner = field(1, 2, b"x' or 1=1--");
        let mut msg = field(1, 2, b"alice");
        msg.extend(field(2, 0, &[42]));
        msg.extend(field(3, 2, &inner));
        let mut body = frame(0, &msg);
        body.extend(frame(0, &field(1, 2, b"second message")));
        let p = points(&body, "application/grpc");
        assert!(p.contains(&("body.grpc.0.1".into(), "alice".into())), "{p:?}");
        assert!(p.contains(&("body.grpc.0.3.1".into(), "x' or 1=1--".into())), "{p:?}");
        assert!(p.contains(&("body.grpc.1.1".into(), "second message".into())), "{p:?}");
    }

    #[test]
    fn compressed_and_web_text_messages_are_read() {
        use std::io::Write;
        let msg = field(1, 2, b"<script>alert(1)</script>");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&msg).unwrap();
        let p = points(&frame(1, &gz.finish().unwrap()), "application/grpc+proto");
        assert_eq!(
            p,
            vec![("body.grpc.0.1".to_string(), "<script>alert(1)</script>".to_string())]
        );
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(frame(0, &msg));
        let p = points(text.as_bytes(), "application/grpc-web-text");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn hostile_framing_is_bounded() {
        let limits = Limits::default();
        let mut c = Collector::new(&limits);
        let mut body = Vec::new();
        for _ in 0..150 {
            body.extend(frame(0, &field(1, 2, b"hi")));
        }
        parse(&mut c, &body, "application/grpc", false);
        assert!(c.out.anomalies.iter().any(|a| a.rule_id == "GRPC-002"));
        assert_eq!(c.out.points.len(), MAX_MESSAGES);
        // A declared length past the end, and a message nested 40 deep.
        let mut c = Collector::new(&limits);
        parse(&mut c, &[0, 0, 0, 1, 0, 1, 2], "application/grpc", false);
        assert!(c.out.anomalies.iter().any(|a| a.rule_id == "GRPC-001"));
        let mut m = field(1, 2, b"\x01\x02 deep");
        for _ in 0..40 {
            m = field(1, 2, &m);
        }
        let mut c = Collector::new(&limits);
        parse(&mut c, &frame(0, &m), "application/grpc", false);
        assert!(
            c.out.anomalies.iter().any(|a| a.rule_id == "GRPC-003"),
            "{:?}",
            c.out.anomalies
        );
    }
}
