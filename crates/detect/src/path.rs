//! Path traversal and local file inclusion: path normalisation (both
//! slashes, dot-dot segments, dot-dot obfuscations) and sensitive targets;
//! PHP / Java stream wrappers.

use crate::{util, AttackClass, Ctx, Hit};

/// Files and directories an attacker reads (lowercase, forward slashes).
const TARGETS: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/hostname",
    "etc/motd",
    "etc/crontab",
    "etc/sudoers",
    "etc/apache",
    "etc/httpd",
    "etc/nginx",
    "etc/mysql",
    "etc/ssh",
    "etc/resolv.conf",
    "etc/fstab",
    "etc/profile",
    "etc/security",
    "etc/master.passwd",
    "etc/os-release",
    "proc/self",
    "proc/version",
    "proc/cpuinfo",
    "proc/net",
    "proc/1/",
    "proc/sched_debug",
    "dev/null",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "windows/win.ini",
    "system32/drivers/etc",
    "system32/config/sam",
    "inetpub/",
    "autoexec.bat",
    "web-inf/",
    "meta-inf/",
    ".htaccess",
    ".htpasswd",
    ".ssh/",
    "id_rsa",
    "id_dsa",
    "authorized_keys",
    ".bash_history",
    ".bashrc",
    ".git/",
    ".svn/",
    ".env",
    "wp-config.php",
    "config.php",
    "configuration.php",
    "localsettings.php",
    "settings.php",
    "var/log/",
    "var/www/",
    "usr/local/",
    "root/",
    "home/",
    "applicationhost.config",
    "web.config",
    "php.ini",
    "my.cnf",
    "boot/grub",
    ".aws/credentials",
    ".docker/config",
    "ntuser.dat",
    "c$/",
    "admin$/",
    "ipc$",
    "repair/sam",
    "pagefile.sys",
    "hiberfil.sys",
    "shadow",
    "passwd",
];

const WRAPPERS: &[&str] = &[
    "php://filter",
    "php://input",
    "php://stdin",
    "php://fd",
    "php://memory",
    "php://temp",
    "php://stdout",
    "php://stderr",
    "php://output",
    "zip://",
    "phar://",
    "expect://",
    "glob://",
    "data://",
    "compress.zlib://",
    "compress.bzip2://",
    "zlib:",
    "ogg://",
    "rar://",
    "ssh2.",
    "jar:file:",
    "netdoc:",
    "file://",
    "file:/",
];

/// Count dot-dot segments after normalising separators and known
/// obfuscations (`....//`, `..;/`, `.%2e`, `..\`).
fn traversal(s: &str) -> (usize, usize) {
    let b = s.as_bytes();
    let n = b.len();
    let mut count = 0;
    let mut first = usize::MAX;
    let mut i = 0;
    while i + 1 < n {
        if b[i] == b'.' && b[i + 1] == b'.' {
            let st = i;
            // run of dots
            let mut j = i;
            while j < n && b[j] == b'.' {
                j += 1;
            }
            // optional junk browsers/servers drop: ';' or NUL
            let mut k = j;
            while k < n && (b[k] == b';' || b[k] == 0 || b[k] == b' ') && k - j < 3 {
                k += 1;
            }
            let sep_after = k >= n || b[k] == b'/' || b[k] == b'\\';
            let sep_before = st == 0 || matches!(b[st - 1], b'/' | b'\\' | b'=' | b' ' | b'"' | b'\'' | b':' | b'|');
            if sep_after && sep_before && k < n {
                count += 1;
                if first == usize::MAX {
                    first = st;
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    (count, first)
}

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    let mut best: (u32, &'static str, usize) = (0, "", 0);
    let norm: String = if s.contains('\\') {
        s.replace('\\', "/")
    } else {
        s.to_string()
    };
    let (dots, at) = traversal(&norm);
    let target = crate::lits!(TARGETS).find(&norm);
    if dots > 0 {
        let sc = match (dots, target) {
            (_, Some(_)) => 10,
            (1, None) => 3,
            (2, None) => 5,
            _ => 8,
        };
        best = (sc, "LFI-001", at);
    }
    if let Some((p, t)) = target {
        // absolute path to a sensitive file: /etc/passwd, c:/windows/win.ini
        let before = &norm[..p];
        let abs = before.ends_with('/') && {
            let lead = before.trim_end_matches('/');
            lead.is_empty()
                || lead.ends_with("file:")
                || (lead.len() == 2 && lead.as_bytes()[1] == b':')
                || lead.ends_with(['=', ' ', '"', '\'', '<', '|', ';', '`', '(', '>'])
                || lead.ends_with("%00")
        };
        let specific = !matches!(
            t,
            "shadow" | "passwd" | "root/" | "home/" | "var/www/" | "usr/local/" | "var/log/" | "dev/null"
        );
        if abs && specific {
            let sc = if norm.trim_start().starts_with('/') || norm.trim_start().starts_with("file:") || norm.len() < 40
            {
                8
            } else {
                5
            };
            if sc > best.0 {
                best = (sc, "LFI-002", p);
            }
        }
    }
    if let Some((p, w)) = crate::lits!(WRAPPERS).find(&norm) {
        {
            let sc = if w == "file:/" || w == "file://" {
                if p == 0 {
                    8
                } else {
                    5
                }
            } else {
                8
            };
            if sc > best.0 {
                best = (sc, "LFI-003", p);
            }
        }
    }
    // UNC path to an administrative share or a loopback host; in a request path after its leading `/`
    // (`/\\::1\c$\...`, which a Windows server hands to its file APIs)
    let unc = norm.trim_start();
    let unc = match unc.strip_prefix('/') {
        Some(rest) if ctx.point.location == rampart_inspect::Location::Path && s.trim_start().starts_with("/\\\\") => {
            rest
        }
        _ => unc,
    };
    if let Some(rest) = unc.strip_prefix("//") {
        let host = rest.split('/').next().unwrap_or("");
        let share = rest.split('/').nth(1).unwrap_or("");
        if share.ends_with('$')
            || matches!(host, "::1" | "localhost" | "127.0.0.1" | "0.0.0.0")
            || host.ends_with(".internal")
        {
            best = (best.0.max(8), "LFI-005", 0);
        }
    }
    // NUL byte truncation of an extension
    if let Some(p) = s.find('\0') {
        if dots > 0 || target.is_some() || s[p..].starts_with("\0.") {
            best = (best.0.max(8), "LFI-004", p);
        }
    }
    if best.0 > 0 {
        out.push(Hit::new(
            AttackClass::PathTraversal,
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
        crate::max_score_of(check, v)
    }

    #[test]
    fn attacks() {
        for a in [
            "../../../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "/etc/shadow",
            "....//....//etc/hosts",
            "php://filter/convert.base64-encode/resource=index.php",
            "file:///etc/passwd",
            "../../../../../../x",
            "..;/..;/web-inf/web.xml",
            "\\\\::1\\c$\\users\\default\\ntuser.dat",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
        // a UNC path as the request path, after its leading `/`
        let unc = "/\\\\::1\\c$\\users\\default\\ntuser.dat";
        assert!(crate::max_score_at(check, unc, "path", rampart_inspect::Location::Path, false) >= 5);
        assert_eq!(
            crate::max_score_at(
                check,
                "//cdn/assets/app.js",
                "path",
                rampart_inspect::Location::Path,
                false
            ),
            0
        );
    }

    #[test]
    fn benign() {
        for b in [
            "Wait... what?",
            "see ../docs/readme.md",
            "1.2..3",
            "the password field",
            "home/garden",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = score(&s);
        }
    }
}
