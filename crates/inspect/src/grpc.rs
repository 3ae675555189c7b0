//! gRPC and gRPC-Web bodies: length-prefixed messages (a flag byte, a 4-byte big-endian length, the
//! message), gzip-compressed when the flag says so, each walked as protobuf wire format without a
//! schema. Strings become points named by their field numbers (`body.grpc.0.2.1`: message 0, field 2,
//! its field 1); nested messages are followed to a depth bound; numbers and bytes that are not text are
//! not points. gRPC-Web text (`application/grpc-web-text`) is base64 of the same frames.
//!
//! A length-delimited field is read as text when it is printable UTF-8 and as a nested message
//! otherwise, when it parses as one: a nested message is almost never printable (its tags and lengths
//! are control bytes), while short text often happens to parse as protobuf.
//!
//! With .proto files ([`GrpcSchema`], compiled at load time by protox, no protoc), a message of a known
//! method is decoded as its input type: points are named by field (`body.grpc.0.note.body.text`), a
//! message that does not decode as its type is a finding (GRPC-004), and so are fields the schema does
//! not know (GRPC-005).

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

/// Compiled .proto files: the input type of each method.
pub struct GrpcSchema {
    pool: prost_reflect::DescriptorPool,
}

impl std::fmt::Debug for GrpcSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcSchema")
            .field(
                "services",
                &self
                    .pool
                    .services()
                    .map(|s| s.full_name().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GrpcSchema {
    /// Compiles `files` (found in `includes`) with protox; the error says which file and line is wrong.
    pub fn compile(files: &[std::path::PathBuf], includes: &[std::path::PathBuf]) -> Result<Self, String> {
        let set = protox::compile(files, includes).map_err(|e| {
            use miette::Diagnostic;
            // "file:line:column: message", the position from the error's first label.
            let at = e.file().map(|f| {
                let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
                let text = includes
                    .iter()
                    .map(|i| i.join(f))
                    .chain(std::iter::once(std::path::PathBuf::from(f)))
                    .find_map(|p| std::fs::read_to_string(p).ok());
                match (offset, text) {
                    (Some(o), Some(t)) => {
                        let before = &t[..o.min(t.len())];
                        let line = before.matches('\n').count() + 1;
                        let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
                        format!("{f}:{line}:{column}: ")
                    }
                    _ => format!("{f}: "),
                }
            });
            format!("{}{e}", at.unwrap_or_default())
        })?;
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(set).map_err(|e| e.to_string())?;
        Ok(GrpcSchema { pool })
    }

    /// The input message of the method at a gRPC path ("/notes.Board/Post").
    fn input_of(&self, path: &str) -> Option<prost_reflect::MessageDescriptor> {
        let (service, method) = path.trim_start_matches('/').split_once('/')?;
        let s = self.pool.get_service_by_name(service)?;
        let m = s.methods().find(|m| m.name() == method)?;
        Some(m.input())
    }
}

/// Adds the strings of a decoded message as named points; fields the schema does not know are findings.
fn walk_typed(c: &mut Collector<'_>, m: &prost_reflect::DynamicMessage, prefix: &str, depth: usize) {
    use prost_reflect::{MapKey, ReflectMessage, Value};
    if depth >= MAX_DEPTH {
        c.anomaly(
            "limit",
            "GRPC-003",
            5,
            prefix,
            format!("messages nested deeper than {MAX_DEPTH}"),
        );
        return;
    }
    if let Some(u) = m.unknown_fields().next() {
        c.anomaly(
            "protocol",
            "GRPC-005",
            5,
            prefix,
            format!("field {} is not in {}", u.number(), m.descriptor().full_name()),
        );
    }
    fn value(c: &mut Collector<'_>, v: &Value, path: &str, depth: usize) {
        match v {
            Value::String(s) => c.add(path, Cow::Owned(s.clone()), &[], Location::Body, false, depth),
            Value::Bytes(b) => {
                if let Ok(s) = std::str::from_utf8(b) {
                    if printable(s) {
                        c.add(path, Cow::Owned(s.to_string()), &[], Location::Body, false, depth);
                    }
                }
            }
            Value::Message(m) => walk_typed(c, m, path, depth + 1),
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    value(c, v, &format!("{path}.{i}"), depth);
                }
            }
            Value::Map(map) => {
                for (k, v) in map {
                    if let MapKey::String(k) = k {
                        c.add(
                            &format!("{path}.{k}"),
                            Cow::Owned(k.clone()),
                            &[],
                            Location::Body,
                            true,
                            depth,
                        );
                        value(c, v, &format!("{path}.{k}"), depth);
                    } else {
                        value(c, v, path, depth);
                    }
                }
            }
            _ => {}
        }
    }
    for (f, v) in m.fields() {
        value(c, v, &crate::child_path(prefix, f.name()), depth);
    }
}

pub fn parse(c: &mut Collector<'_>, body: &[u8], ct: &str, truncated: bool) {
    parse_with(c, body, ct, truncated, None, "")
}

/// [`parse`] with the route's schema, for the method at `path`.
pub fn parse_with(
    c: &mut Collector<'_>,
    body: &[u8],
    ct: &str,
    truncated: bool,
    schema: Option<&GrpcSchema>,
    path: &str,
) {
    let input = schema.and_then(|s| s.input_of(path));
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
        if let Some(desc) = &input {
            let complete = !(truncated && end == frames.len());
            match prost_reflect::DynamicMessage::decode(desc.clone(), &message[..]) {
                Ok(m) => {
                    walk_typed(c, &m, &crate::child_path(&prefix, &desc.name().to_ascii_lowercase()), 0);
                    i = end;
                    n += 1;
                    continue;
                }
                Err(e) if complete => c.anomaly(
                    "protocol",
                    "GRPC-004",
                    8,
                    &prefix,
                    format!("message {n} is not a {}: {e}", desc.full_name()),
                ),
                // the last message of a cut stream: read it without the schema
                Err(_) => {}
            }
        }
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

    const BOARD_PROTO: &str = r#"
syntax = "proto3";
package notes;
message Body { string text = 1; int32 stars = 2; }
message Note { string author = 1; Body body = 2; repeated string tags = 3; map<string, string> meta = 4; }
message Ack { string echo = 1; }
service Board { rpc Post(Note) returns (Ack); }
"#;

    fn schema() -> (tempfile::TempDir, GrpcSchema) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("board.proto");
        std::fs::write(&file, BOARD_PROTO).unwrap();
        let s = GrpcSchema::compile(&[file], &[dir.path().to_path_buf()]).unwrap();
        (dir, s)
    }

    fn typed(body: &[u8], schema: &GrpcSchema, path: &str) -> Collector<'static> {
        let limits: &'static Limits = Box::leak(Box::new(Limits::default()));
        let mut c = Collector::new(limits);
        parse_with(&mut c, body, "application/grpc", false, Some(schema), path);
        c
    }

    #[test]
    fn a_schema_names_the_points_and_checks_the_types() {
        let (_dir, schema) = schema();
        let mut msg = field(1, 2, b"aoife");
        msg.extend(field(2, 2, &field(1, 2, b"x' or 1=1--")));
        msg.extend(field(3, 2, b"urgent"));
        let c = typed(&frame(0, &msg), &schema, "/notes.Board/Post");
        let p: Vec<(String, String)> = c.out.points.iter().map(|p| (p.path.clone(), p.value.clone())).collect();
        assert!(p.contains(&("body.grpc.0.note.author".into(), "aoife".into())), "{p:?}");
        assert!(
            p.contains(&("body.grpc.0.note.body.text".into(), "x' or 1=1--".into())),
            "{p:?}"
        );
        assert!(
            p.contains(&("body.grpc.0.note.tags.0".into(), "urgent".into())),
            "{p:?}"
        );
        assert!(c.out.anomalies.is_empty(), "{:?}", c.out.anomalies);
        // A string where the schema says a message, and a field it does not know.
        let wrong = field(2, 0, &[5]);
        let c = typed(&frame(0, &wrong), &schema, "/notes.Board/Post");
        assert!(
            c.out.anomalies.iter().any(|a| a.rule_id == "GRPC-004"),
            "{:?}",
            c.out.anomalies
        );
        let unknown = field(9, 2, b"smuggled");
        let c = typed(&frame(0, &unknown), &schema, "/notes.Board/Post");
        assert!(
            c.out.anomalies.iter().any(|a| a.rule_id == "GRPC-005"),
            "{:?}",
            c.out.anomalies
        );
        // A method the schema does not have is walked without it.
        let c = typed(&frame(0, &field(1, 2, b"hi there")), &schema, "/other.Svc/Call");
        assert_eq!(c.out.points[0].path, "body.grpc.0.1");
    }

    #[test]
    fn a_bad_proto_file_is_refused_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.proto");
        std::fs::write(&file, "syntax = \"proto3\";\nmessage A { strin x = 1; }\n").unwrap();
        let e = GrpcSchema::compile(&[file], &[dir.path().to_path_buf()]).unwrap_err();
        assert!(e.starts_with("bad.proto:2:13: "), "{e}");
    }
}
