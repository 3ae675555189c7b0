//! Secrets masked before a record leaves the process.
//!
//! Two rules:
//! - a value read from a point whose name says it holds a secret (`body.json.password`, `header.authorization`,
//!   `cookie.sessionid`, `query.api_key`, ...) is replaced as a whole: its evidence becomes `[masked N chars]`,
//!   even when it carries an attack, because a password field that holds `' or 1=1--` may also hold a real
//!   password on the next request. The finding (class, rule id, point, score) stays, so the event still says
//!   what happened;
//! - every other text that leaves (evidence, path, user agent, reason) is scanned for secrets inside it:
//!   `key=value` and `"key": "value"` pairs with a secret-looking key, `Bearer`/`Basic` credentials, JWTs,
//!   well-known API key formats, and card numbers that pass the Luhn check (all but the last four digits
//!   masked).
//!
//! Masking runs on the dispatcher thread, never on the request path.

use crate::event::{Alert, Event};
use regex::{Captures, Regex};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Point segments (lowercase) that hold secrets. A point is sensitive when any of its segments is one of
/// these or ends with one of [`SECRET_SUFFIXES`].
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "new_password",
    "old_password",
    "current_password",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-auth-token",
    "x-csrf-token",
    "x-xsrf-token",
    "csrf_token",
    "otp",
    "pin",
    "cvv",
    "cvc",
    "card_number",
    "cardnumber",
    "ssn",
    "session",
    "sessionid",
    "session_id",
    "sid",
    "jsessionid",
    "phpsessid",
    "private_key",
];

const SECRET_SUFFIXES: &[&str] = &[
    "_session", "-session", "_token", "-token", "_secret", "-secret", "password",
];

/// Whether values at this point are secrets as a whole.
pub fn is_secret_point(point: &str) -> bool {
    point
        .split(['.', '|', '[', ']'])
        .filter(|s| !s.is_empty())
        // The first segment is the point's namespace (header, cookie, query, body, path), not a name.
        .skip(1)
        .any(|seg| {
            let seg = seg.to_ascii_lowercase();
            SECRET_NAMES.contains(&seg.as_str()) || SECRET_SUFFIXES.iter().any(|s| seg.ends_with(s))
        })
}

static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b((?:new_|old_|current_)?pass(?:word|wd|phrase)?|pwd|secret|client_secret|(?:access_|refresh_|id_|auth_)?token|api[_-]?key|authorization|session(?:_?id)?|sid|jsessionid|phpsessid|otp|cvv|cvc|private_key)(["']?\s*[:=]\s*["']?)((?:(?:bearer|basic|digest)\s+)?[^"'&;,\s}]+)"#,
    )
    .expect("static regex")
});

static AUTH_SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    // The credential must look like one (a digit or a symbol in it, or long): "basic authentication" is prose.
    Regex::new(r"(?i)\b(bearer|basic|digest)(\s+)(?:[A-Za-z0-9._~+/-]{20,}=*|[A-Za-z0-9._~+/-]*[0-9._~+/][A-Za-z0-9._~+/-]{3,}=*)")
        .expect("static regex")
});

static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*").expect("static regex")
});

static API_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|\b(sk|rk|pk)_(live|test)_[0-9A-Za-z]{10,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bxox[abposr]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}|\bglpat-[A-Za-z0-9_-]{20,}",
    )
    .expect("static regex")
});

/// 13 to 19 digits, optionally grouped by single spaces or dashes.
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("static regex"));

/// Masks secrets inside free text. Returns the input unchanged (borrowed) when there is nothing to mask.
pub fn mask_text(s: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(s);
    // A cheap gate: most evidence has no digit run, no '=' or ':' and no "ey" prefix.
    let maybe_kv = s.contains('=') || s.contains(':');
    if maybe_kv {
        if let Cow::Owned(o) = KEY_VALUE.replace_all(&out, |c: &Captures| format!("{}{}***", &c[1], &c[2])) {
            out = Cow::Owned(o);
        }
    }
    if let Cow::Owned(o) = AUTH_SCHEME.replace_all(&out, "$1$2***") {
        out = Cow::Owned(o);
    }
    if out.contains("eyJ") {
        if let Cow::Owned(o) = JWT.replace_all(&out, "[jwt]") {
            out = Cow::Owned(o);
        }
    }
    if let Cow::Owned(o) = API_KEY.replace_all(&out, |c: &Captures| {
        let m = &c[0];
        let keep = m.char_indices().nth(4).map_or(m.len(), |(i, _)| i);
        format!("{}***", &m[..keep])
    }) {
        out = Cow::Owned(o);
    }
    if out.bytes().filter(u8::is_ascii_digit).count() >= 13 {
        if let Cow::Owned(o) = CARD.replace_all(&out, |c: &Captures| mask_card(&c[0])) {
            out = Cow::Owned(o);
        }
    }
    // Replacements by closure allocate even when they change nothing (a digit run that is not a card).
    if out == s {
        return Cow::Borrowed(s);
    }
    out
}

/// Card-looking digit runs that pass Luhn keep their last four digits; others are left alone (order ids,
/// timestamps and phone numbers are not cards).
fn mask_card(m: &str) -> String {
    let digits: Vec<u8> = m.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    if !(13..=19).contains(&digits.len()) || !luhn(&digits) {
        return m.to_string();
    }
    let total = digits.len();
    let mut seen = 0;
    m.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= total - 4 {
                    '*'
                } else {
                    c
                }
            } else {
                c
            }
        })
        .collect()
}

pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for d in digits.iter().rev() {
        let mut d = u32::from(*d);
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        double = !double;
        sum += d;
    }
    sum % 10 == 0
}

fn mask_in_place(s: &mut String) {
    if let Cow::Owned(o) = mask_text(s) {
        *s = o;
    }
}

/// Masks an event in place.
pub fn mask_event(e: &mut Event) {
    for f in &mut e.findings {
        if is_secret_point(&f.point) {
            let n = f.evidence.chars().count();
            f.evidence = format!("[masked {n} chars]");
        } else {
            mask_in_place(&mut f.evidence);
        }
    }
    mask_in_place(&mut e.path);
    if let Some(ua) = &mut e.user_agent {
        mask_in_place(ua);
    }
    if let Some(r) = &mut e.reason {
        mask_in_place(r);
    }
}

/// Masks an alert in place (its text is built from masked events; the key may be a session or a path).
pub fn mask_alert(a: &mut Alert) {
    mask_in_place(&mut a.key);
    mask_in_place(&mut a.summary);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, EventKind, Finding};

    fn finding(point: &str, evidence: &str) -> Finding {
        Finding {
            class: "sqli".into(),
            rule_id: "SQLI-001".into(),
            score: 5,
            point: point.into(),
            evidence: evidence.into(),
            decode_chain: vec![],
        }
    }

    #[test]
    fn secret_points_are_masked_whole() {
        for p in [
            "body.json.password",
            "body.form.user[password]",
            "header.authorization",
            "cookie.sessionid",
            "cookie.connect.sid",
            "cookie.laravel_session",
            "query.access_token",
            "body.json.credentials.api_key|base64",
            "header.x-api-key",
        ] {
            assert!(is_secret_point(p), "{p}");
        }
        for p in [
            "query.q",
            "body.json.comment",
            "header.user-agent",
            "path.2",
            "body.json.passenger",
            "cookie.theme",
        ] {
            assert!(!is_secret_point(p), "{p}");
        }
        let mut e = Event::new(EventKind::Request, Action::Block);
        e.findings.push(finding("body.json.password", "' or 1=1-- hunter2"));
        e.findings.push(finding("query.q", "' union select 1--"));
        mask_event(&mut e);
        assert_eq!(e.findings[0].evidence, "[masked 18 chars]");
        assert_eq!(e.findings[1].evidence, "' union select 1--");
    }

    #[test]
    fn secrets_inside_text_are_masked() {
        let cases = [
            ("user=bob&password=hunter2&x=1", "user=bob&password=***&x=1"),
            (r#"{"token": "abc123def", "q": "x"}"#, r#"{"token": "***", "q": "x"}"#),
            ("Authorization: Bearer abcdefghijkl", "Authorization: ***"),
            ("auth Bearer abcdefghijkl.mnop", "auth Bearer ***"),
            ("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_nature-x", "t=[jwt]"),
            ("key AKIAIOSFODNN7EXAMPLE used", "key AKIA*** used"),
            ("card 4111 1111 1111 1111 paid", "card **** **** **** 1111 paid"),
            ("card 4111-1111-1111-1111", "card ****-****-****-1111"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_text(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in [
            "' union select password from users--",
            "<script>alert(1)</script>",
            "order 1234567890123 shipped",
            "../../etc/passwd",
            "O'Brien said the passing score is 12",
        ] {
            assert!(matches!(mask_text(s), Cow::Borrowed(_)), "{s} -> {}", mask_text(s));
        }
    }

    #[test]
    fn luhn_checks() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(luhn(&d("5500005555555559")));
        assert!(!luhn(&d("4111111111111112")));
    }
}
