//! Grammar checks for standard request headers. A header value that
//! parses in its own grammar (media-type lists, language ranges, client
//! hints, user-agent product tokens) carries no injection and skips the
//! value detectors; anything else is inspected like any other point.

fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'+' | b'*' | b'!' | b'~')
}

/// `item *( "," item )`, item = token [ "/" token ] *( ";" token "=" (token | quoted) )
fn param_list(v: &str, quoted_ok: impl Fn(&str) -> bool) -> bool {
    if v.len() > 1024 {
        return false;
    }
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut parts = item.split(';');
        let head = parts.next().unwrap_or("").trim();
        let head_ok = if let Some(q) = head.strip_prefix('"').and_then(|h| h.strip_suffix('"')) {
            quoted_ok(q)
        } else {
            let mut hp = head.splitn(2, '/');
            let a = hp.next().unwrap_or("");
            let b = hp.next();
            !a.is_empty() && a.bytes().all(token_char) && b.is_none_or(|b| !b.is_empty() && b.bytes().all(token_char))
        };
        if !head_ok {
            return false;
        }
        for prm in parts {
            let prm = prm.trim();
            let Some((k, val)) = prm.split_once('=') else {
                if prm.bytes().all(token_char) {
                    continue;
                }
                return false;
            };
            if !k.trim().bytes().all(token_char) {
                return false;
            }
            let val = val.trim();
            let ok = if let Some(q) = val.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                quoted_ok(q)
            } else {
                val.bytes().all(|c| token_char(c) || c == b'/')
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

fn brand(q: &str) -> bool {
    q.len() <= 64
        && q.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b' ' | b'(' | b')' | b'.' | b':' | b';' | b'_' | b'-' | b'/' | b'=')
        })
}

/// `product[/version] *( " " product | "(" comment ")" )`
fn user_agent(v: &str) -> bool {
    if v.len() > 512 || v.is_empty() {
        return false;
    }
    let b = v.as_bytes();
    let mut depth = 0;
    for &c in b {
        match c {
            b'(' => {
                depth += 1;
                if depth > 2 {
                    return false;
                }
            }
            b')' => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b' ' | b'.' | b'/' | b'_' | b'-' | b'+' => {}
            b';' | b',' | b':' if depth > 0 => {}
            _ => return false,
        }
    }
    depth == 0
}

/// Is this a standard header whose value parses in its own grammar?
pub fn well_formed(path: &str, v: &str) -> bool {
    let Some(name) = path.strip_prefix("header.") else {
        return false;
    };
    match name {
        "accept" | "accept-encoding" | "accept-language" | "accept-charset" | "content-type" | "te"
        | "content-encoding" | "transfer-encoding" => param_list(v, |q| {
            q.len() <= 200
                && q.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'/' | b'+' | b'=' | b' '))
        }),
        "sec-ch-ua"
        | "sec-ch-ua-full-version-list"
        | "sec-ch-ua-platform"
        | "sec-ch-ua-mobile"
        | "sec-ch-ua-arch"
        | "sec-ch-ua-model"
        | "sec-ch-ua-platform-version"
        | "sec-ch-ua-bitness"
        | "sec-ch-ua-full-version"
        | "sec-ch-ua-wow64" => v.trim() == "?0" || v.trim() == "?1" || param_list(v, brand),
        "sec-fetch-dest"
        | "sec-fetch-mode"
        | "sec-fetch-site"
        | "sec-fetch-user"
        | "upgrade-insecure-requests"
        | "dnt"
        | "priority"
        | "cache-control"
        | "pragma"
        | "connection"
        | "keep-alive" => {
            v.len() <= 128
                && v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'?' | b',' | b' ' | b'=' | b'_' | b'.'))
        }
        "user-agent" => user_agent(v),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_headers() {
        assert!(well_formed(
            "header.accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(well_formed("header.accept-language", "en-US,en;q=0.5"));
        assert!(well_formed(
            "header.sec-ch-ua",
            "\"Chromium\";v=\"122\", \"Not(A:Brand\";v=\"24\""
        ));
        assert!(well_formed("header.user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"));
        assert!(!well_formed("header.user-agent", "${jndi:ldap://x/a}"));
        assert!(!well_formed("header.user-agent", "Mozilla' or 1=1--"));
        assert!(!well_formed("header.accept", "text/html'; select 1"));
        assert!(!well_formed("header.x-custom", "abc"));
    }
}
