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

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    // SSI
    if let Some(p) = s.find("<!--#") {
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
    if !s.chars().any(is_nl) {
        return;
    }
    let loc = ctx.point.location;
    let structured = matches!(
        loc,
        Location::Path | Location::Query | Location::Header | Location::Cookie
    );
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
                let sc = if structured && (http || mail) {
                    9
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
    if best.0 > 0 {
        let ev: String = lines[best.3.saturating_sub(1)..].join("\\n");
        out.push(Hit::new(best.2, best.1, best.0, util::excerpt(&ev, 80)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(v: &str, loc: Location) -> u32 {
        let p = rampart_inspect::Point {
            path: "q".into(),
            value: v.into(),
            chain: vec![],
            location: loc,
            is_key: false,
            root: 0,
        };
        let pre = crate::prefilter::Prefilter::new().scan(v);
        let lower = v.to_ascii_lowercase();
        let ctx = Ctx {
            point: &p,
            value: v,
            lower: &lower,
            pre: &pre,
        };
        let mut out = vec![];
        check(&ctx, &mut out);
        out.iter().map(|h| h.score).max().unwrap_or(0)
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
