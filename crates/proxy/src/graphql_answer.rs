//! GraphQL answers: field suggestions removed from error messages.
//!
//! A GraphQL server that cannot resolve a field answers `Cannot query field "usr" on type "Query". Did
//! you mean "user" or "users"?`. With introspection off, those suggestions still spell the schema out to
//! whoever guesses (tools such as Clairvoyance rebuild whole schemas from them). For a GraphQL operation
//! on a route that masks them (`[routes.detection.graphql] mask_suggestions`, on by default), the JSON
//! answer is held (up to [`MAX_HELD`]; past it, it streams on unchanged) and each error message loses
//! its "Did you mean ...?" sentence; the rest of the answer is kept as it was. In monitor mode the
//! answer is left alone and the leak is only reported.

use crate::body::RespBody;
use bytes::BytesMut;
use http::{header, Response};
use http_body_util::BodyExt;

/// The most of an answer held to look for suggestions; error answers are far smaller.
pub const MAX_HELD: usize = 64 * 1024;

const SUGGESTION: &str = " Did you mean ";

/// What [`hold_and_mask`] found.
pub struct Masked {
    /// The first suggestion found, as evidence ("Did you mean \"user\" or \"users\"?").
    pub evidence: String,
    pub count: usize,
}

/// Removes the suggestion sentence from one message; None when it has none.
fn strip_suggestion(message: &str) -> Option<(String, String)> {
    let start = message.find(SUGGESTION)?;
    let after = &message[start + SUGGESTION.len()..];
    // The sentence ends at its question mark; names are quoted, so a '?' inside quotes is skipped.
    let mut quoted = false;
    let end = after
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            c == '?' && !quoted
        })
        .map_or(after.len(), |(i, _)| i + 1);
    let evidence = message[start + 1..start + SUGGESTION.len() + end].to_string();
    let mut out = message[..start].to_string();
    out.push_str(&after[end..]);
    Some((out, evidence))
}

/// Masks the suggestions in the `errors` of a GraphQL answer (or of each answer of a batch); the new
/// body and what was masked, or None when there was nothing to mask.
pub fn mask(body: &[u8]) -> Option<(Vec<u8>, Masked)> {
    memchr::memmem::find(body, SUGGESTION.trim_start().as_bytes())?;
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut found = Masked {
        evidence: String::new(),
        count: 0,
    };
    let answers: Vec<&mut serde_json::Value> = match &mut v {
        serde_json::Value::Array(batch) => batch.iter_mut().collect(),
        one => vec![one],
    };
    for answer in answers {
        let Some(errors) = answer.get_mut("errors").and_then(|e| e.as_array_mut()) else {
            continue;
        };
        for e in errors {
            let Some(serde_json::Value::String(m)) = e.get_mut("message") else {
                continue;
            };
            if let Some((clean, evidence)) = strip_suggestion(m) {
                *m = clean;
                if found.count == 0 {
                    found.evidence = evidence;
                }
                found.count += 1;
            }
        }
    }
    if found.count == 0 {
        return None;
    }
    Some((serde_json::to_vec(&v).ok()?, found))
}

/// Holds a JSON answer from the upstream (up to [`MAX_HELD`]) and, with `rewrite`, masks the
/// suggestions in it. Returns the answer to send and what was found (also when not rewritten).
pub async fn hold_and_mask(resp: Response<RespBody>, rewrite: bool) -> (Response<RespBody>, Option<Masked>) {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if !json || declared.is_some_and(|n| n > MAX_HELD) {
        return (resp, None);
    }
    let (mut parts, body) = resp.into_parts();
    let RespBody::Upstream(mut body) = body else {
        return (Response::from_parts(parts, body), None);
    };
    let mut held = BytesMut::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => {
                    held.extend_from_slice(&d);
                    if held.len() > MAX_HELD {
                        let prefix = Some(held.freeze());
                        return (
                            Response::from_parts(parts, RespBody::Prefixed { prefix, rest: body }),
                            None,
                        );
                    }
                }
                // Trailers on a JSON answer: nothing a GraphQL client reads; the body is complete.
                Err(_) => break,
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "upstream answer failed while held");
                let prefix = Some(held.freeze());
                return (
                    Response::from_parts(parts, RespBody::Prefixed { prefix, rest: body }),
                    None,
                );
            }
        }
    }
    let held = held.freeze();
    match mask(&held) {
        Some((masked, found)) if rewrite => {
            parts.headers.remove(header::CONTENT_LENGTH);
            (Response::from_parts(parts, RespBody::full(masked)), Some(found))
        }
        Some((_, found)) => (Response::from_parts(parts, RespBody::full(held)), Some(found)),
        None => (
            Response::from_parts(parts, RespBody::Full(Some(held).filter(|b| !b.is_empty()))),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_cut_and_the_rest_is_kept() {
        let (m, e) =
            strip_suggestion(r#"Cannot query field "usr" on type "Query". Did you mean "user" or "users"?"#).unwrap();
        assert_eq!(m, r#"Cannot query field "usr" on type "Query"."#);
        assert_eq!(e, r#"Did you mean "user" or "users"?"#);
        let (m, _) =
            strip_suggestion(r#"Unknown argument "fist" on field "Query.posts". Did you mean "first"? See the docs."#)
                .unwrap();
        assert_eq!(m, r#"Unknown argument "fist" on field "Query.posts". See the docs."#);
        let (m, _) = strip_suggestion(r#"Unknown type "Usr". Did you mean "Why?" or "User"?"#).unwrap();
        assert_eq!(m, r#"Unknown type "Usr"."#, "a quoted '?' does not end the sentence");
        assert!(strip_suggestion("Variable \"$id\" of required type \"ID!\" was not provided.").is_none());
    }

    #[test]
    fn only_error_messages_are_rewritten() {
        let body = br#"{"errors":[{"message":"Cannot query field \"emial\" on type \"User\". Did you mean \"email\"?","locations":[{"line":1,"column":9}]}],"data":{"note":"Did you mean it?"}}"#;
        let (out, found) = mask(body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["errors"][0]["message"],
            r#"Cannot query field "emial" on type "User"."#
        );
        assert_eq!(v["errors"][0]["locations"][0]["column"], 9);
        assert_eq!(v["data"]["note"], "Did you mean it?", "data is the API's business");
        assert_eq!((found.count, found.evidence.as_str()), (1, r#"Did you mean "email"?"#));
        let batch = br#"[{"data":{"a":1}},{"errors":[{"message":"x. Did you mean \"y\"?"}]}]"#;
        assert_eq!(mask(batch).unwrap().1.count, 1);
        assert!(mask(br#"{"data":{"user":{"name":"O'Brien"}}}"#).is_none());
        assert!(mask(b"Did you mean: not JSON").is_none());
    }
}
