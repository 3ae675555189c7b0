//! SSRF and remote file inclusion: URL parsing of every `scheme://`
//! reference, dangerous schemes, internal / metadata hosts, and IP
//! obfuscations (decimal, hex, octal, short forms, IPv6-mapped).

use std::net::Ipv4Addr;

use crate::{util, AttackClass, Ctx, Hit};

const BAD_SCHEMES: &[&str] = &[
    "gopher", "dict", "ldap", "ldaps", "jar", "netdoc", "tftp", "sftp", "smb", "rmi", "iiop", "corba", "nds", "expect",
    "phar", "jdbc",
];

/// Out-of-band application security testing (OAST) callback domains.
const OAST: &[&str] = &[
    "burpcollaborator.net",
    "oastify.com",
    "interact.sh",
    "oast.pro",
    "oast.live",
    "oast.site",
    "oast.online",
    "oast.fun",
    "oast.me",
    "dnslog.cn",
    "ceye.io",
    "requestbin.net",
    "canarytokens.com",
    "xss.ht",
    "bxss.me",
    "dnslog.link",
    "pipedream.net",
];

const META_HOSTS: &[&str] = &[
    "169.254.169.254",
    "metadata.google.internal",
    "metadata",
    "100.100.100.200",
    "169.254.170.2",
    "fd00:ec2::254",
    "metadata.azure.com",
    "instance-data",
];

/// Parse an IPv4 address in the forms `inet_aton` accepts: dotted with 1 to
/// 4 parts, each decimal, octal (leading 0) or hex (0x).
pub fn parse_ipv4_loose(h: &str) -> Option<(Ipv4Addr, bool)> {
    let parts: Vec<&str> = h.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    let mut obf = parts.len() != 4;
    for p in &parts {
        let v = if let Some(x) = p.strip_prefix("0x") {
            obf = true;
            u64::from_str_radix(x, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            obf = true;
            u64::from_str_radix(p, 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(v);
    }
    let last = *nums.last()?;
    let mut ip: u64 = 0;
    for (i, v) in nums[..nums.len() - 1].iter().enumerate() {
        if *v > 255 {
            return None;
        }
        ip |= v << (24 - 8 * i);
    }
    let rem_bits = 32 - 8 * (nums.len() as u64 - 1);
    if rem_bits < 64 && last >= (1u64 << rem_bits) {
        return None;
    }
    ip |= last;
    Some((Ipv4Addr::from(ip as u32), obf))
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.octets()[0] == 0
        || (ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
}

/// Classify the host part of a URL: (score, rule).
fn host_risk(host: &str) -> Option<(u32, &'static str)> {
    let h = host.trim_end_matches('.');
    if META_HOSTS.contains(&h) {
        return Some((10, "SSRF-002"));
    }
    if h == "localhost"
        || h.ends_with(".localhost")
        || h == "localtest.me"
        || h.ends_with(".internal")
        || h.ends_with(".local")
    {
        return Some((6, "SSRF-001"));
    }
    if h.starts_with('[') {
        let inner = h.trim_start_matches('[').trim_end_matches(']');
        if inner == "::1"
            || inner == "::"
            || inner.starts_with("::ffff:")
            || inner.starts_with("fe80")
            || inner.starts_with("fc")
            || inner.starts_with("fd")
            || inner == "0:0:0:0:0:0:0:1"
        {
            return Some((8, "SSRF-003"));
        }
        return None;
    }
    // wildcard DNS services that resolve to an embedded IP
    for svc in [".nip.io", ".xip.io", ".sslip.io"] {
        if let Some(pre) = h.strip_suffix(svc) {
            let ipish: String = pre
                .chars()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if ipish.contains("127.") || ipish.contains("169.254") || ipish.contains("10.") || ipish.contains("192.168")
            {
                return Some((8, "SSRF-003"));
            }
        }
    }
    if let Some((ip, obf)) = parse_ipv4_loose(h) {
        if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
            return Some((10, "SSRF-002"));
        }
        if obf && internal_v4(ip) {
            return Some((9, "SSRF-003"));
        }
        if obf {
            return Some((6, "SSRF-003"));
        }
        if internal_v4(ip) {
            return Some((6, "SSRF-001"));
        }
        // public IP literal as the host of a URL: classic RFI target
        return Some((4, "RFI-001"));
    }
    None
}

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    if matches!(ctx.point.path.as_str(), "header.referer" | "header.origin") {
        return;
    }
    let s = ctx.lower;
    let b = s.as_bytes();
    let mut best: (u32, &'static str, usize, AttackClass) = (0, "", 0, AttackClass::Ssrf);
    let mut from = 0;
    let mut seen = 0;
    while let Some(p) = s[from..].find("://") {
        let at = from + p;
        from = at + 3;
        seen += 1;
        if seen > 32 {
            break;
        }
        // scheme
        let mut st = at;
        while st > 0
            && (b[st - 1].is_ascii_alphanumeric() || b[st - 1] == b'+' || b[st - 1] == b'.' || b[st - 1] == b'-')
        {
            st -= 1;
        }
        let scheme = &s[st..at];
        // authority
        let rest = &s[at + 3..];
        let auth_end = rest
            .find(['/', '?', '#', ' ', '"', '\'', '<', '>', '\\', '\n'])
            .unwrap_or(rest.len());
        let auth = &rest[..auth_end];
        let hostport = auth.rsplit('@').next().unwrap_or(auth);
        let host = if hostport.starts_with('[') {
            &hostport[..hostport.find(']').map(|x| x + 1).unwrap_or(hostport.len())]
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        if BAD_SCHEMES.contains(&scheme) {
            let sc = if st == 0 { 9 } else { 7 };
            if sc > best.0 {
                best = (sc, "SSRF-004", st, AttackClass::Ssrf);
            }
            continue;
        }
        let webish = matches!(scheme, "http" | "https" | "ftp" | "ftps" | "ws" | "wss" | "" | "hxxp");
        if !webish {
            continue;
        }
        // a URL in a parameter whose name says "include this"
        let pname = ctx.point.path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        if st == 0
            && matches!(
                pname.as_str(),
                "include" | "inc" | "require" | "mosconfig_absolute_path" | "document_root" | "root_path"
            )
            && 6 > best.0
        {
            best = (6, "RFI-003", st, AttackClass::Rfi);
        }
        if let Some((mut sc, rule)) = host_risk(host) {
            // URL at the start of the value (a parameter that is a URL) is
            // the SSRF / RFI shape; a URL inside prose less so.
            if st != 0 && sc < 9 {
                sc = sc.saturating_sub(2);
            }
            let class = if rule == "RFI-001" {
                AttackClass::Rfi
            } else {
                AttackClass::Ssrf
            };
            if sc > best.0 {
                best = (sc, rule, st, class);
            }
        }
        // credentials trick: http://expected.com@evil.com
        if auth.contains('@') && auth.split('@').next().is_some_and(|u| u.contains('.')) && st == 0 {
            if 5 > best.0 {
                best = (5, "SSRF-005", st, AttackClass::Ssrf);
            }
        }
        // RFI: remote URL with a trailing '?' / '#' / NUL (drops the
        // application's suffix) or pointing at a script
        if st == 0 || s[..st].ends_with('=') {
            let tail = &rest[auth_end..];
            let path_end = tail.find([' ', '"', '\'']).unwrap_or(tail.len());
            let path = &tail[..path_end];
            let trunc = path.ends_with('?') || path.ends_with("%00") || path.ends_with('\0') || path.ends_with("?%00");
            let script = [".txt?", ".php?", ".txt", ".jsp?", ".asp?", ".sh", ".pl", ".py", ".gif?"]
                .iter()
                .any(|e| path.ends_with(e));
            if trunc || (script && path.contains('?')) {
                if 6 > best.0 {
                    best = (6, "RFI-002", st, AttackClass::Rfi);
                }
            } else if script && 4 > best.0 && path.ends_with(".txt") {
                best = (4, "RFI-002", st, AttackClass::Rfi);
            }
            // a script served from a bare public IP: hosts of include payloads have no name
            let script_path = [".php", ".asp", ".aspx", ".jsp", ".txt", ".pl", ".cgi", ".sh", ".py"]
                .iter()
                .any(|e| path.ends_with(e));
            if script_path && best.1 == "RFI-001" && 6 > best.0 {
                best = (6, "RFI-002", st, AttackClass::Rfi);
            }
            // include-ish parameter names carrying a URL
            let pname = ctx.point.path.rsplit('.').next().unwrap_or("");
            if matches!(
                pname,
                "include"
                    | "inc"
                    | "file"
                    | "page"
                    | "template"
                    | "path"
                    | "require"
                    | "load"
                    | "mosconfig_absolute_path"
                    | "document_root"
                    | "root_path"
                    | "dir"
                    | "folder"
                    | "module"
            ) && 6 > best.0
            {
                best = (6, "RFI-003", st, AttackClass::Rfi);
            }
        }
    }
    // out-of-band interaction domains (blind SSRF / RCE / XXE callbacks)
    if let Some((p, _)) = crate::lits!(OAST).find(s) {
        if 6 > best.0 {
            best = (6, "SSRF-006", p, AttackClass::Ssrf);
        }
    }
    if best.0 > 0 {
        out.push(Hit::new(
            best.3,
            best.1,
            best.0,
            util::excerpt_at(ctx.value, best.2, 80),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(v: &str) -> u32 {
        crate::max_score_at(check, v, "query.url", rampart_inspect::Location::Query, false)
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ipv4_loose("2130706433").unwrap().0, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(parse_ipv4_loose("0x7f000001").unwrap().0, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(parse_ipv4_loose("0177.0.0.1").unwrap().0, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(parse_ipv4_loose("127.1").unwrap().0, Ipv4Addr::new(127, 0, 0, 1));
        assert!(parse_ipv4_loose("example.com").is_none());
    }

    #[test]
    fn attacks() {
        for a in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://[::1]:8080/",
            "gopher://127.0.0.1:6379/_INFO",
            "http://localhost/admin",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://evil.com/shell.txt?",
            "http://203.0.113.7/x/shell.php",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "https://example.com/callback",
            "see https://docs.rs/regex for details",
            "http://www.example.com/tan?usp=4#8",
            "http://203.0.113.7/status",
            "https://cdn.example.com/app/index.php",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }
}
