//! Parameter names: the names of query, form and cookie parameters.
//!
//! A name is an identifier. Applications splice names where values never go:
//! into `ORDER BY` and column lists, into mass assignment (`UPDATE t SET
//! {name} = ?`), into template or log keys. So a name holds a much smaller
//! language than a value, and text that is harmless as a value (`order by`,
//! `||`, `x' or '1`) is an injection as a name. This module reads names in that
//! identifier context; the value detectors read them as well.
//!
//! JSON keys are not names in this sense: they are data (maps keyed by user
//! text are common), and keys decoded out of a value (`q=<json>`) carry a
//! decode chain other than percent-decoding; both are left to the value
//! detectors.

use rampart_inspect::{Location, Point};

use crate::sqli::{lex, Kw, Tk, Token};
use crate::{util, AttackClass, Hit};

/// Whether `p` is the name of a query, form or cookie parameter, as sent.
fn is_parameter_name(p: &Point) -> bool {
    p.is_key
        && p.chain.iter().all(|d| *d == "percent")
        && (matches!(p.location, Location::Query | Location::Cookie) || p.path.starts_with("body.form."))
}

/// Bytes of an ordinary name: `user_id`, `filter[price][gte]`, `a.b-c`,
/// `$top`, `utm:source`, `q@v2`, and names in any script (non-ASCII).
fn plain_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']' | b'$' | b':' | b'@' | b'/') || b >= 0x80
}

pub fn check(p: &Point, out: &mut Vec<Hit>) {
    if !is_parameter_name(p) || p.value.bytes().all(plain_name_byte) {
        return;
    }
    let name = p.value.as_str();
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        // CR, LF, TAB, NUL: a name never carries them; a parser that splits lines or a log line does
        out.push(Hit::new(AttackClass::Protocol, "PROTO-021", 5, name));
        return;
    }
    let lower = name.to_ascii_lowercase();
    if let Some(at) = sql_in_name(&lower) {
        out.push(Hit::new(
            AttackClass::Sqli,
            "SQLI-015",
            5,
            util::excerpt_at(name, at, 80),
        ));
    }
    // `onload=` as a name: the value detectors wake on markup, which a bare attribute lacks
    if lower.contains('=') {
        if let Some(at) = crate::xss::handler_injection(&lower, true) {
            out.push(Hit::new(AttackClass::Xss, "XSS-007", 8, util::excerpt_at(name, at, 80)));
        }
    }
}

/// SQL syntax where an identifier belongs; the byte offset of the evidence.
fn sql_in_name(s: &str) -> Option<usize> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let lead = s.len() - s.trim_start().len();
    // only operators: `||`, `<>`, `!=`, `>=`, `<<`
    if t.len() <= 8 && t.bytes().all(|b| b"|&<>=!~^".contains(&b)) {
        return Some(lead);
    }
    let mut toks: Vec<Token> = Vec::with_capacity(8);
    // a quote that closes or opens a literal next to SQL keywords or operators: `and '5'x`, `! as' from`;
    // read with the quotes as separators, as either side of a quote may be the injected code
    if t.contains(['\'', '"', '`']) {
        let unquoted = s.replace(['\'', '"', '`'], " ");
        lex(&unquoted, 0, &mut toks);
        if let Some(x) = toks
            .iter()
            .find(|x| matches!(x.kind, Tk::Kw(_) | Tk::Logic | Tk::Cmp | Tk::Semi))
        {
            return Some(x.start);
        }
    }
    toks.clear();
    lex(s, 0, &mut toks);
    let sig: Vec<&Token> = toks.iter().filter(|x| x.kind != Tk::Comment).collect();
    // a clause where one word belongs: `order by`, `having 1=`, `exec php`, `; as not from`
    let starts = sig
        .iter()
        .position(|x| !matches!(x.kind, Tk::Other | Tk::Semi | Tk::Arith));
    let after_semi = sig.first().is_some_and(|x| x.kind == Tk::Semi);
    if let Some(i) = starts {
        let (first, next) = (sig[i], sig.get(i + 1));
        let clause = match (first.kind, next.map(|x| x.kind)) {
            (Tk::Kw(Kw::Order | Kw::Group), Some(Tk::Kw(Kw::By))) => true,
            (Tk::Kw(Kw::Having | Kw::Exec | Kw::Union | Kw::Select | Kw::Declare | Kw::Waitfor), Some(_)) => true,
            (Tk::Kw(Kw::Insert | Kw::Update | Kw::Delete | Kw::Drop | Kw::Truncate), Some(_)) => true,
            (Tk::Kw(_), Some(_)) => after_semi,
            _ => false,
        };
        if clause {
            return Some(first.start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_score(path: &str, name: &str, location: Location) -> u32 {
        let p = Point {
            path: path.into(),
            value: name.into(),
            chain: vec![],
            location,
            is_key: true,
            root: 0,
        };
        let mut out = vec![];
        check(&p, &mut out);
        out.iter().map(|h| h.score).max().unwrap_or(0)
    }

    fn query_name(name: &str) -> u32 {
        name_score(&format!("query.{name}"), name, Location::Query)
    }

    #[test]
    fn sql_where_a_name_belongs() {
        for n in [
            "||",
            "<>",
            "!=",
            "ORDER BY",
            "group by 2",
            "having 1=",
            "execute sp_who",
            "union select",
            "; as not from",
            "x' and '1",
            "name\" or 1",
        ] {
            assert_eq!(query_name(n), 5, "{n:?}");
        }
        assert_eq!(name_score("body.form.a", "DROP users", Location::Body), 5);
        assert_eq!(name_score("cookie.x", "sid' or '1", Location::Cookie), 5);
    }

    #[test]
    fn an_event_handler_as_a_name() {
        assert_eq!(query_name("  onload= "), 8);
        assert_eq!(query_name("onmouseover="), 8);
        assert_eq!(query_name("online"), 0);
        assert_eq!(query_name("a=b"), 0);
    }

    #[test]
    fn control_characters_in_a_name() {
        assert_eq!(query_name("id\n"), 5);
        assert_eq!(query_name("a\r\nSet-Cookie"), 5);
    }

    #[test]
    fn ordinary_names_pass() {
        for n in [
            "user_id",
            "filter[price][gte]",
            "$top",
            "utm_source",
            "page.size",
            "first name",
            "order",
            "sort by",
            "select",
            "Straße",
            "名前",
            "amount (usd)",
            "don't",
            "q",
            // a quoted word is not yet code
            "'bla'",
            "`col`",
        ] {
            assert_eq!(query_name(n), 0, "{n:?}");
        }
    }

    #[test]
    fn json_keys_and_values_are_not_names() {
        let mut p = Point {
            path: "body.json.order by".into(),
            value: "order by".into(),
            chain: vec![],
            location: Location::Body,
            is_key: true,
            root: 0,
        };
        let mut out = vec![];
        check(&p, &mut out);
        assert!(out.is_empty());
        p.path = "query.q".into();
        p.location = Location::Query;
        p.is_key = false;
        check(&p, &mut out);
        assert!(out.is_empty());
        p.is_key = true;
        p.chain = vec!["percent", "json"];
        check(&p, &mut out);
        assert!(out.is_empty());
    }
}
