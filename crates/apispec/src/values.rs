//! Request values as the spec types them: query and cookie pairs, multipart parts, and strings coerced
//! to the JSON type their schema declares, so that one JSON Schema validator checks them all.

use percent_encoding::percent_decode_str;
use serde_json::Value;
use std::collections::BTreeMap;

/// The JSON type a schema gives a value, as far as turning a string into JSON needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Array(Box<Kind>),
    Object(BTreeMap<String, Kind>),
    /// No type said: kept as a string.
    Any,
}

/// Decodes a query component (`+` is a space in a query).
pub fn decode_query(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_decode_str(&s).decode_utf8_lossy().into_owned()
}

/// Decodes a path segment.
pub fn decode_segment(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `a=1&b=2&a=3`, decoded, in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_query(k), decode_query(v)),
            None => (decode_query(p), String::new()),
        })
        .collect()
}

/// The cookies of every `Cookie` header.
pub fn cookies(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

/// A string as the JSON value its kind says; Err names what it is not.
pub fn coerce(kind: &Kind, raw: &str) -> Result<Value, String> {
    match kind {
        Kind::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{raw}` is not an integer")),
        Kind::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{raw}` is not a number")),
        Kind::Boolean => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{raw}` is not a boolean (true or false)")),
        },
        Kind::Array(item) => raw
            .split(',')
            .map(|v| coerce(item, v))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        // An object or array written into one string part (a multipart JSON part).
        Kind::Object(_) => serde_json::from_str(raw).map_err(|_| "not a JSON object".to_string()),
        Kind::String | Kind::Any => Ok(Value::String(raw.to_string())),
    }
}

/// One part of a multipart body.
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

/// The parts of a `multipart/form-data` body with this boundary; None when it is not one.
pub fn multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let start = memfind(rest, delim.as_bytes())?;
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n").or_else(|| rest.strip_prefix(b"\n"))?;
        let head_end = memfind(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let after = &rest[head_end + 4..];
        let end = memfind(after, format!("\r\n{delim}").as_bytes())?;
        let data = &after[..end];
        let (mut name, mut filename, mut content_type) = (None, None, None);
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else { continue };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                for param in v.split(';').skip(1) {
                    if let Some((pk, pv)) = param.trim().split_once('=') {
                        let pv = pv.trim().trim_matches('"').to_string();
                        match pk.trim().to_ascii_lowercase().as_str() {
                            "name" => name = Some(pv),
                            "filename" => filename = Some(pv),
                            _ => {}
                        }
                    }
                }
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_ascii_lowercase());
            }
        }
        parts.push(Part {
            name: name?,
            filename,
            content_type,
            data,
        });
        rest = &after[end + 2 + delim.len()..];
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `/items/0/quantity` (a JSON pointer into the body) as `body.items[0].quantity`.
pub fn body_location(pointer: &str) -> String {
    let mut out = String::from("body");
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            out.push('.');
            out.push_str(&seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_keep_order() {
        assert_eq!(
            query_pairs("q=O%27Brien+caf%C3%A9&tag=a&tag=b&flag&filter%5Bstatus%5D=x"),
            vec![
                ("q".into(), "O'Brien café".into()),
                ("tag".into(), "a".into()),
                ("tag".into(), "b".into()),
                ("flag".into(), "".into()),
                ("filter[status]".into(), "x".into()),
            ]
        );
    }

    #[test]
    fn strings_become_their_kind() {
        assert_eq!(coerce(&Kind::Integer, "42"), Ok(Value::from(42)));
        assert!(coerce(&Kind::Integer, "4.2").is_err());
        assert!(coerce(&Kind::Boolean, "1").is_err());
        assert_eq!(
            coerce(&Kind::Array(Box::new(Kind::Integer)), "1,2"),
            Ok(serde_json::json!([1, 2]))
        );
    }

    #[test]
    fn multipart_parts_are_split() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"altText\":\"x\"}\r\n--XyZ--\r\n";
        let parts = multipart(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].data, b"\x89PNG");
        assert_eq!(parts[1].data, b"{\"altText\":\"x\"}");
    }

    #[test]
    fn pointers_read_as_locations() {
        assert_eq!(body_location(""), "body");
        assert_eq!(body_location("/items/0/quantity"), "body.items[0].quantity");
        assert_eq!(body_location("/1/delta"), "body[1].delta");
    }
}
