//! CRLF / header injection, mail (SMTP / IMAP / POP3) command injection and
//! server-side includes.

use rampart_inspect::Location;

use crate::{util, AttackClass, Ctx, Hit};

const MAIL_HEADERS: &[&str] = &[
    "bcc",
    "cc",
    "to",
    "from",
    "subject",
    "reply-to",
    "sender",
    "return-path",
    "content-type",
    "mime-version",
];
const HTTP_HEADERS: &[&str] = &[
    "set-cookie",
    "location",
    "content-type",
    "content-length",
    "refresh",
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "transfer-encoding",
    "access-control-allow-origin",
    "content-disposition",
    "cookie",
    "authorization",
    "x-xss-protection",
    "content-security-policy",
    "link",
    "cache-control",
];
const MAIL_CMDS: &[&str] = &[
    "rcpt to",
    "mail from",
    "data",
    "quit",
    "helo",
    "ehlo",
    "rset",
    "vrfy",
    "expn",
    "noop",
    "auth",
    "capability",
    "login",
    "select",
    "examine",
    "fetch",
    "store",
    "logout",
    "list",
    "retr",
    "dele",
    "user",
    "pass",
    "stat",
    "uid",
    "append",
    "copy",
    "search",
    "starttls",
];

/// Newline-like chars: CR, LF and the UTF-16 chars whose low byte a naive
/// server truncates to CR/LF.
fn is_nl(c: char) -> bool {
    matches!(
        c,
        '\r' | '\n'
            | '\u{560a}'
            | '\u{560d}'
            | '\u{010a}'
            | '\u{010d}'
            | '\u{0d0a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{85}'
    )
}

/// The bytes an [`is_nl`] char starts with in UTF-8 (CR, LF, and the lead bytes of the others): a value
/// with none of them holds no newline, told by a table lookup per byte instead of decoding its chars.
static NEWLINE_LEAD: [bool; 256] = {
    let mut t = [false; 256];
    let lead = [b'\r', b'\n', 0xc2, 0xc4, 0xe0, 0xe2, 0xe5];
    let mut i = 0;
    while i < lead.len() {
        t[lead[i] as usize] = true;
        i += 1;
    }
    t
};

const HTTP_METHODS: &[&str] = &[
    "get",
    "post",
    "head",
    "put",
    "delete",
    "options",
    "patch",
    "trace",
    "track",
    "connect",
    "propfind",
    "proppatch",
    "mkcol",
    "copy",
    "move",
    "lock",
    "unlock",
];

/// `GET http://host/x HTTP/1.1` inside a value: a request line smuggled into
/// a parameter (after a newline it is scored below).
fn request_line(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    let b = s.as_bytes();
    for p in crate::finder!(b" http/").find_iter(b) {
        if !b.get(p + 6).is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        let head = &s[..p];
        let Some(sp) = head.rfind(' ') else { continue };
        let target = &head[sp + 1..];
        if !(target.starts_with('/') || target.starts_with("http:") || target.starts_with("https:") || target == "*") {
            continue;
        }
        let before = head[..sp].trim_end();
        let mut m_start = before.rfind(|c: char| !c.is_ascii_alphabetic()).map_or(0, |x| x + 1);
        // `barGET /a HTTP/1.1` then a line break: a request glued to the end of the body of the one
        // before it (smuggling); the method is the word's upper-case tail
        if !HTTP_METHODS.contains(&&before[m_start..]) && b[p + 7..].iter().take(4).any(|c| *c == b'\n') {
            let orig = &ctx.value.as_bytes()[..before.len()];
            let upper = orig.iter().rev().take_while(|c| c.is_ascii_uppercase()).count();
            m_start = before.len() - upper;
        }
        if HTTP_METHODS.contains(&&before[m_start..]) {
            let sc = if s.len() < 200 { 7 } else { 4 };
            out.push(Hit::new(
                AttackClass::Crlf,
                "CRLF-002",
                sc,
                util::excerpt_at(ctx.value, m_start, 80),
            ));
            return;
        }
    }
}

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    // SSI
    if let Some(p) = crate::finder!(b"<!--#").find(s.as_bytes()) {
        let d = &s[p + 5..];
        if [
            "exec", "include", "echo", "config", "printenv", "set ", "fsize", "flastmod", "if ", "elif",
        ]
        .iter()
        .any(|x| d.starts_with(x))
        {
            out.push(Hit::new(
                AttackClass::Ssi,
                "SSI-001",
                10,
                util::excerpt_at(ctx.value, p, 80),
            ));
        }
    }
    request_line(ctx, out);
    if !(s.bytes().any(|c| NEWLINE_LEAD[c as usize]) && s.chars().any(is_nl)) {
        return;
    }
    let loc = ctx.point.location;
    // A newline that JSON decoding produced is data of the JSON document (a comment's paragraphs in a
    // `?variables=` parameter), not a break in the header or parameter that carried it.
    let structured = matches!(
        loc,
        Location::Path | Location::Query | Location::Header | Location::Cookie
    ) && !ctx.point.chain.contains(&"json");
    let lines: Vec<&str> = s.split(is_nl).collect();
    let short = lines.len() <= 6 && s.len() < 400;
    let mut best: (u32, &'static str, AttackClass, usize) = (0, "", AttackClass::Crlf, 0);
    for (i, line) in lines.iter().enumerate().skip(1).take(32) {
        let l = line.trim_start();
        if l.is_empty() {
            continue;
        }
        // "Name: value"
        if let Some(c) = l.find(':') {
            let name = l[..c].trim_end();
            let valid =
                !name.is_empty() && name.len() < 40 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if valid {
                let http = HTTP_HEADERS.contains(&name) || name.starts_with("x-");
                let mail = MAIL_HEADERS.contains(&name);
                let empty_value = l[c + 1..].trim().is_empty();
                let decoded_header = loc == Location::Header && !ctx.point.chain.is_empty();
                let sc = if structured && (http || mail) && empty_value {
                    4
                } else if structured && (http || mail) {
                    9
                } else if decoded_header {
                    // an escaped newline in a custom header is text until
                    // something decodes it
                    3
                } else if structured {
                    6
                } else if short && (http || matches!(name, "bcc" | "cc")) {
                    7
                } else {
                    0
                };
                let class = if mail && !http {
                    AttackClass::MailInjection
                } else {
                    AttackClass::Crlf
                };
                if sc > best.0 {
                    best = (
                        sc,
                        if class == AttackClass::Crlf {
                            "CRLF-001"
                        } else {
                            "MAIL-001"
                        },
                        class,
                        i,
                    );
                }
            }
        }
        // HTTP request / response splitting
        if l.starts_with("http/1.")
            || ((l.starts_with("get ") || l.starts_with("post ") || l.starts_with("head ")) && l.contains(" http/"))
        {
            let sc = if structured || short { 9 } else { 5 };
            if sc > best.0 {
                best = (sc, "CRLF-002", AttackClass::Crlf, i);
            }
        }
        // mail protocol commands: optional tag (IMAP) then a command
        let words: Vec<&str> = l.splitn(3, ' ').collect();
        let cmd_at = |w: &str| MAIL_CMDS.iter().any(|m| w == *m || l.starts_with(m) && m.contains(' '));
        let tagged = words.len() >= 2
            && words[0].len() <= 6
            && words[0].bytes().all(|b| b.is_ascii_alphanumeric())
            && cmd_at(words[1]);
        let plain = cmd_at(words[0])
            && (l.starts_with("rcpt to")
                || l.starts_with("mail from")
                || words[0].len() >= 4
                    && (words.len() == 1
                        || words[0] == "data"
                        || words[0] == "quit"
                        || words[0] == "ehlo"
                        || words[0] == "helo"));
        if (tagged || plain) && (structured || short) && l.len() < 120 {
            let sc = if structured { 8 } else { 6 };
            if sc > best.0 {
                best = (sc, "MAIL-002", AttackClass::MailInjection, i);
            }
        }
    }
    // a newline in a parameter or cookie name is never data
    if ctx.point.is_key && structured && best.0 < 7 {
        best = (7, "CRLF-001", AttackClass::Crlf, 1.min(lines.len() - 1));
    }
    // response splitting: an empty line, then a body
    if structured && best.0 < 8 {
        let nl2 = s
            .find("\r\n\r\n")
            .map(|p| p + 4)
            .or_else(|| s.find("\n\n").map(|p| p + 2));
        if let Some(p) = nl2 {
            if !s[p..].trim().is_empty() {
                best = (8, "CRLF-002", AttackClass::Crlf, 1.min(lines.len() - 1));
            }
        }
    }
    // a request line right after a newline: `..%0d%0aGET /x`
    for (i, line) in lines.iter().enumerate().skip(1).take(32) {
        let l = line.trim_start();
        let m = l.split(' ').next().unwrap_or("");
        if HTTP_METHODS.contains(&m) && (structured || short) && best.0 < 7 {
            let t = l[m.len()..].trim_start();
            if t.starts_with('/') || t.starts_with("http") {
                best = (7, "CRLF-002", AttackClass::Crlf, i);
            }
        }
    }
    if best.0 > 0 {
        let ev: String = lines[best.3.saturating_sub(1)..].join("\\n");
        out.push(Hit::new(best.2, best.1, best.0, util::excerpt(&ev, 80)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_newline_char_starts_with_a_lead_byte_of_the_table() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32).filter(|&c| is_nl(c)) {
            let mut buf = [0u8; 4];
            let lead = c.encode_utf8(&mut buf).as_bytes()[0];
            assert!(NEWLINE_LEAD[lead as usize], "{c:?}");
        }
    }

    fn score(v: &str, loc: Location) -> u32 {
        crate::max_score_at(check, v, "q", loc, false)
    }

    #[test]
    fn request_lines_in_values() {
        assert!(score("PUT /admin/users HTTP/1.1", Location::Query) >= 5);
        assert!(score("x\r\nDELETE /api/items/1\r\n", Location::Query) >= 5);
        assert!(score("a\r\n\r\n<html>hi</html>", Location::Cookie) >= 5);
        assert!(score("barGET /a.html HTTP/1.1\r\nX: GET /b HTTP/1.1\r\n", Location::Body) >= 5);
        assert!(score("forGET /a.html HTTP/1.1", Location::Body) < 5);
        let doc = "To list items, send GET /v1/items HTTP/1.1 with an Authorization header; the response \
                   is paginated and each page carries a cursor that you pass back in the next request. \
                   Rate limits apply per token and are reported in headers.";
        assert!(score(doc, Location::Body) < 5);
        assert!(score("GET requests over HTTP/2 are faster", Location::Body) < 5);
    }

    #[test]
    fn attacks() {
        assert!(score("/\r\nSet-Cookie: a=b", Location::Path) >= 5);
        assert!(score("x\nBcc: victim@example.com", Location::Body) >= 5);
        assert!(score("/\r\nV100 CAPABILITY\r\n", Location::Path) >= 5);
        assert!(score("\nRCPT TO: a@b.c\n", Location::Query) >= 5);
        assert!(score("<!--#exec cmd=\"ls\" -->", Location::Body) >= 5);
        assert!(score("/\u{560d}Set-cookie:x=y", Location::Path) >= 5);
    }

    #[test]
    fn benign() {
        assert!(score("Dear team,\nNote: the meeting moved.\nThanks,\nAnna\n\nPS: bring snacks\nMore text here for length\nand more", Location::Body) < 5);
        assert!(score("line one\nline two", Location::Body) < 5);
    }
}
