//! PHP code injection, PHP / Java deserialization and Java class /
//! gadget references.

use crate::{util, AttackClass, Ctx, Hit};

/// PHP functions that execute code, run commands, read files or decode
/// payloads.
const PHP_FUNCS: &[&str] = &[
    "eval",
    "assert",
    "system",
    "exec",
    "shell_exec",
    "passthru",
    "popen",
    "proc_open",
    "pcntl_exec",
    "create_function",
    "call_user_func",
    "call_user_func_array",
    "preg_replace",
    "include",
    "include_once",
    "require",
    "require_once",
    "file_get_contents",
    "file_put_contents",
    "fopen",
    "fwrite",
    "fputs",
    "readfile",
    "file",
    "show_source",
    "highlight_file",
    "phpinfo",
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "gzdecode",
    "str_rot13",
    "convert_uudecode",
    "unserialize",
    "fsockopen",
    "pfsockopen",
    "curl_exec",
    "curl_init",
    "move_uploaded_file",
    "chmod",
    "chown",
    "unlink",
    "rmdir",
    "mkdir",
    "symlink",
    "putenv",
    "ini_set",
    "ini_get",
    "dl",
    "mail",
    "array_map",
    "array_filter",
    "usort",
    "uasort",
    "uksort",
    "array_walk",
    "register_shutdown_function",
    "register_tick_function",
    "ob_start",
    "set_error_handler",
    "set_exception_handler",
    "get_defined_vars",
    "get_defined_functions",
    "get_defined_constants",
    "getenv",
    "posix_getpwuid",
    "posix_uname",
    "posix_getuid",
    "posix_kill",
    "posix_setuid",
    "php_uname",
    "phpversion",
    "getcwd",
    "scandir",
    "glob",
    "opendir",
    "readdir",
    "stream_get_contents",
    "var_dump",
    "print_r",
    "var_export",
    "serialize",
    "hex2bin",
    "bzdecompress",
    "get_class_methods",
    "reflectionfunction",
    "invokeargs",
    "wp_remote_get",
    "wp_remote_post",
    "parse_str",
    "extract",
    "import_request_variables",
    "apache_child_terminate",
    "sys_get_temp_dir",
    "posix_getcwd",
    "lchown",
    "lchgrp",
    "chgrp",
    "copy",
    "tmpfile",
    "tempnam",
    "filepro",
    "error_log",
    "escapeshellcmd",
    "escapeshellarg",
    "expect_popen",
    "mb_ereg_replace",
    "ereg_replace",
    "preg_replace_callback",
    "stream_socket_client",
    "socket_create",
    "apache_setenv",
    "curl_exec",
    "putenv",
    "ini_set",
    "ini_restore",
    "set_include_path",
    "symlink",
    "openlog",
    "syslog",
];

/// Names so specific to PHP that the bare name is suspicious.
const PHP_DISTINCT: &[&str] = &[
    "shell_exec",
    "proc_open",
    "pcntl_exec",
    "create_function",
    "call_user_func",
    "call_user_func_array",
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "str_rot13",
    "convert_uudecode",
    "file_get_contents",
    "file_put_contents",
    "fsockopen",
    "pfsockopen",
    "move_uploaded_file",
    "get_defined_vars",
    "get_defined_functions",
    "get_defined_constants",
    "posix_getpwuid",
    "posix_uname",
    "php_uname",
    "register_shutdown_function",
    "preg_replace_callback",
    "reflectionfunction",
    "wp_remote_get",
    "wp_remote_post",
    "apache_child_terminate",
    "sys_get_temp_dir",
    "posix_getcwd",
    "posix_getuid",
    "bzdecompress",
    "gzdecode",
    "get_class_methods",
    "highlight_file",
    "show_source",
    "phpinfo",
    "invokeargs",
    "stream_get_contents",
    "expect_popen",
    "apache_setenv",
    "__halt_compiler",
];

const SUPERGLOBALS: &[&str] = &[
    "$_get",
    "$_post",
    "$_cookie",
    "$_request",
    "$_server",
    "$_files",
    "$_env",
    "$_session",
    "$globals",
    "$http_raw_post_data",
    "$http_get_vars",
    "$http_post_vars",
];

/// Java classes / packages an exploit reaches for.
const JAVA_DANGER: &[&str] = &[
    "java.lang.runtime",
    "java.lang.processbuilder",
    "java.lang.process",
    "java.lang.system",
    "java.lang.reflect",
    "java.lang.class",
    "java.lang.classloader",
    "java.lang.thread",
    "java.lang.object",
    "java.net.urlclassloader",
    "java.net.url",
    "java.net.socket",
    "java.beans.xmldecoder",
    "javax.script",
    "javax.naming",
    "javax.management",
    "java.rmi",
    "java.util.prioritymap",
    "org.apache.commons",
    "org.apache.xalan",
    "com.sun.org.apache.xalan",
    "com.sun.rowset.jdbcrowsetimpl",
    "com.sun.jndi",
    "org.codehaus.groovy",
    "org.springframework.beans",
    "org.springframework.context",
    "bsh.interpreter",
    "ysoserial",
    "com.mchange.v2.c3p0",
    "org.hibernate",
    "com.alibaba.fastjson",
    "org.apache.tomcat",
    "sun.misc.unsafe",
    "com.sun.org.apache.bcel",
    "org.mozilla.javascript",
    "clojure.",
    "net.sf.json",
    "com.thoughtworks.xstream",
    "java.io.objectinputstream",
    "java.lang.invoke",
    "javax.el",
    "org.apache.commons.io",
    "java.nio.file",
    "java.util.zip",
    "java.security",
    "sun.reflect",
    "jdk.jshell",
    "org.apache.catalina",
    "com.opensymphony.xwork2",
    "org.apache.struts2",
    "com.sun.org.apache",
    "org.apache.commons.fileupload",
    "org.apache.naming",
    "com.sun.jmx",
    "javax.xml.transform",
    "java.lang.instrument",
];

/// Simple names of classes used in Java deserialization gadget chains.
const GADGETS: &[&str] = &[
    "invokertransformer",
    "chainedtransformer",
    "constanttransformer",
    "instantiatetransformer",
    "instantiatefactory",
    "clonetransformer",
    "prototypeclonefactory",
    "prototypeserializationfactory",
    "forclosure",
    "whileclosure",
    "lazymap",
    "transformedmap",
    "templatesimpl",
    "annotationinvocationhandler",
    "badattributevalueexpexception",
    "priorityqueue",
    "jdbcrowsetimpl",
    "beancomparator",
    "objectfactory",
    "mozillainterpreter",
    "jythoninterpreter",
    "groovyshell",
    "methodclosure",
    "convertedclosure",
    "xmldecoder",
    "eventhandler",
    "javassist",
    "commonsbeanutils",
    "spring.beans.factory",
    "urlclassloader",
    "bcel$$",
    "$$bcel$$",
    "jndimanager",
    "org.omg.corba",
    "org.omg.cosnaming",
    "com.sun.jndi.",
    "com.sun.org.apache.xalan",
    "sun.rmi.",
    "java.rmi.",
    "javax.script.",
    "javax.management.",
    "bsh.interpreter",
    "org.mozilla.javascript",
];

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `name (` with optional whitespace, comments, quotes-concatenation.
fn php_calls(s: &str) -> Option<(usize, &'static str)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut seen = 0;
    while i < b.len() {
        if is_ident(b[i]) && (i == 0 || !is_ident(b[i - 1])) {
            let st = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let w = &s[st..i];
            let mut j = i;
            loop {
                while j < b.len()
                    && (b[j] == b' ' || b[j] == b'\t' || b[j] == b'\r' || b[j] == b'\n' || b[j] == 0x0b || b[j] == 0x0c)
                {
                    j += 1;
                }
                if s[j..].starts_with("/*") {
                    match s[j + 2..].find("*/") {
                        Some(e) => {
                            j = j + 2 + e + 2;
                            continue;
                        }
                        None => break,
                    }
                }
                break;
            }
            if j < b.len() && b[j] == b'(' {
                if let Some(f) = PHP_FUNCS.iter().find(|f| **f == w) {
                    return Some((st, f));
                }
                // the POSIX extension: every posix_* function is PHP's
                if w.len() > 6 && w.starts_with("posix_") {
                    return Some((st, "posix_"));
                }
            }
            seen += 1;
            if seen > 4096 {
                break;
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Skip whitespace and PHP comments (`/* */`, `//`, `#` to end of line).
fn php_skip(b: &[u8], mut j: usize) -> usize {
    loop {
        while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == 0x0b) {
            j += 1;
        }
        if b[j..].starts_with(b"/*") {
            match memchr::memmem::find(&b[j + 2..], b"*/") {
                Some(e) => j += 2 + e + 2,
                None => return b.len(),
            }
        } else if b[j..].starts_with(b"//") || (j < b.len() && b[j] == b'#' && !b[j..].starts_with(b"#[")) {
            match memchr::memchr(b'\n', &b[j..]) {
                Some(e) => j += e + 1,
                None => return b.len(),
            }
        } else {
            return j;
        }
    }
}

/// Skip a short bracketed group starting at `b[j]` (`[..]` or `{..}`),
/// nesting allowed, at most 64 bytes. Returns the index after it.
fn php_group(b: &[u8], j: usize) -> Option<usize> {
    let (open, close) = match b.get(j)? {
        b'[' => (b'[', b']'),
        b'{' => (b'{', b'}'),
        _ => return None,
    };
    let mut depth = 0;
    for (k, &c) in b.iter().enumerate().skip(j).take(64) {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(k + 1);
            }
        }
    }
    None
}

/// PHP variable-function call through an obfuscated callee: `$__['o'](..)`,
/// `@$_[1](..)`, `${@a}(..)`, `$O0O{0}(..)`, `$a[5]/*x*/['d'] (..)`. The
/// callee is a variable with subscripts, a `${expr}`, or a name made only of
/// underscores / `O` and `0`; comments may sit anywhere. Returns the
/// position of the `$`.
fn php_varcall(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while let Some(p) = memchr::memchr(b'$', &b[i..]) {
        let at = i + p;
        i = at + 1;
        n += 1;
        if n > 512 {
            break;
        }
        let mut j = php_skip(b, at + 1);
        let mut obfuscated = false;
        if j < b.len() && b[j] == b'{' {
            match php_group(b, j) {
                Some(e) => {
                    j = e;
                    obfuscated = true;
                }
                None => continue,
            }
        } else if j == at + 1 && j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_' || b[j] >= 0x80) {
            let st = j;
            while j < b.len() && (is_ident(b[j]) || b[j] >= 0x80) {
                j += 1;
            }
            let name = &b[st..j];
            if name.iter().all(|c| *c == b'_') || (name.len() > 3 && name.iter().all(|c| matches!(c, b'o' | b'0'))) {
                obfuscated = true;
            }
        } else {
            continue;
        }
        let mut subs = 0;
        let mut last_end = j;
        loop {
            let k = php_skip(b, j);
            match php_group(b, k) {
                Some(e) => {
                    j = e;
                    last_end = e;
                    subs += 1;
                }
                None => {
                    j = k;
                    break;
                }
            }
            if subs > 16 {
                break;
            }
        }
        // `$row['id'] (an integer)` in prose: an ordinary name needs the
        // call right after it, or a comment in between (an obfuscator's)
        let gap = &b[last_end..j];
        let tight = gap.is_empty() || memchr::memmem::find(gap, b"/*").is_some();
        if j < b.len() && b[j] == b'(' && (obfuscated || (subs > 0 && tight)) {
            return Some(at);
        }
    }
    None
}

/// `(system)('id')`, `(/* x */ exec /* y */)(..)`: a parenthesised function
/// name called at once.
fn php_paren_callee(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while let Some(p) = memchr::memchr(b'(', &b[i..]) {
        let at = i + p;
        i = at + 1;
        n += 1;
        if n > 512 {
            break;
        }
        let st = php_skip(b, at + 1);
        let mut e = st;
        while e < b.len() && is_ident(b[e]) {
            e += 1;
        }
        if e == st {
            continue;
        }
        let w = &s[st..e];
        let k = php_skip(b, e);
        if k < b.len() && b[k] == b')' {
            let k2 = php_skip(b, k + 1);
            if k2 < b.len() && b[k2] == b'(' && PHP_FUNCS.contains(&w) {
                return Some(at);
            }
        }
    }
    None
}

/// PHP runtime configuration set from a request (`allow_url_include=1`,
/// `auto_prepend_file=..`, `session.x=..`): the `PHP_VALUE` / ini trick.
const PHP_INI: &[&str] = &[
    "allow_url_include",
    "allow_url_fopen",
    "auto_prepend_file",
    "auto_append_file",
    "open_basedir",
    "disable_functions",
    "disable_classes",
    "safe_mode",
    "register_globals",
    "magic_quotes_gpc",
    "extension_dir",
    "session.",
    "suhosin.",
];

fn php_ini(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    for (p, name) in crate::lits!(PHP_INI).iter(s) {
        if p > 0 && (is_ident(b[p - 1]) || b[p - 1] == b'.') {
            continue;
        }
        let mut j = p + name.len();
        if name.ends_with('.') {
            let st = j;
            while j < b.len() && (is_ident(b[j]) || b[j] == b'.') {
                j += 1;
            }
            if j == st {
                continue;
            }
        }
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && b.get(j + 1) != Some(&b'=') {
            return Some(p);
        }
    }
    None
}

/// `java.Runtime`, `javax.x.ProcessBuilder`: a dotted Java name rooted in
/// `java`/`javax` whose later segment names the process launchers.
fn java_launcher_name(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    for p in memchr::memmem::find_iter(b, b"java") {
        if p > 0 && (is_ident(b[p - 1]) || b[p - 1] == b'.') {
            continue;
        }
        let mut e = p;
        while e < b.len() && (is_ident(b[e]) || b[e] == b'.' || b[e] == b'$') {
            e += 1;
        }
        let mut segs = s[p..e].split('.');
        if !matches!(segs.next(), Some("java" | "javax")) {
            continue;
        }
        if segs.any(|x| matches!(x, "runtime" | "processbuilder" | "processimpl" | "unixprocess")) {
            return Some(p);
        }
    }
    None
}

/// Base64 of the Java serialization magic (AC ED 00 05) at the three byte
/// alignments a base64 stream can have.
/// Built once: the strings, and one searcher for all three.
fn java_magic_b64() -> &'static util::FirstOf<3> {
    static CELL: std::sync::OnceLock<util::FirstOf<3>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        use base64::Engine;
        let e = base64::engine::general_purpose::STANDARD;
        let m = [0xACu8, 0xED, 0x00, 0x05];
        let a = e.encode(m);
        let b = e.encode([0u8, m[0], m[1], m[2], m[3]]);
        let c = e.encode([0u8, 0, m[0], m[1], m[2], m[3]]);
        // keep only the stable characters of each alignment
        util::FirstOf::new([&a[..5], &b[2..6], &c[3..7]])
    })
}

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    let v = ctx.value;
    let mut best: (u32, &'static str, usize, AttackClass) = (0, "", 0, AttackClass::PhpInjection);
    let upd = |sc: u32,
               rule: &'static str,
               at: usize,
               class: AttackClass,
               best: &mut (u32, &'static str, usize, AttackClass)| {
        if sc > best.0 {
            *best = (sc, rule, at, class);
        }
    };
    // PHP open tags
    if let Some(p) = s.find("<?php").or_else(|| s.find("<?=")) {
        upd(8, "PHP-001", p, AttackClass::PhpInjection, &mut best);
    }
    // PHP serialized objects: O:8:"stdClass":1:{ / a:2:{i:0; / C:...
    {
        let b = v.as_bytes();
        let mut i = 0;
        while i + 3 < b.len() {
            if matches!(b[i], b'O' | b'C' | b'a')
                && b[i + 1] == b':'
                && b[i + 2].is_ascii_digit()
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            {
                let mut j = i + 2;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j + 1 < b.len()
                    && b[j] == b':'
                    && (b[j + 1] == b'"'
                        || (b[i] == b'a' && b[j + 1] == b'{')
                        || (b[i] == b'a' && b[j + 1].is_ascii_digit()))
                {
                    let rest = util::clip(v, j, j + 200);
                    if b[i] != b'a' || rest.contains("{i:") || rest.contains("{s:") || rest.contains(":{") {
                        upd(9, "PHP-002", i, AttackClass::Deserialization, &mut best);
                        break;
                    }
                }
            }
            i += 1;
        }
    }
    if let Some((p, f)) = php_calls(s) {
        let strong = PHP_DISTINCT.contains(&f)
            || matches!(
                f,
                "eval"
                    | "assert"
                    | "system"
                    | "exec"
                    | "passthru"
                    | "popen"
                    | "preg_replace"
                    | "include"
                    | "require"
                    | "fopen"
                    | "readfile"
                    | "unserialize"
                    | "chmod"
                    | "unlink"
                    | "getenv"
            );
        let codeish =
            s.contains('$') || s.contains(';') || s.contains('@') || s.contains("'") || s.contains('"') || s.len() < 60;
        let sc = if strong && codeish {
            8
        } else if strong {
            5
        } else if codeish && s.len() < 80 {
            5
        } else {
            2
        };
        upd(sc, "PHP-003", p, AttackClass::PhpInjection, &mut best);
    }
    for (p, name) in crate::lits!(PHP_DISTINCT).iter(s) {
        // a name with an underscore is PHP's own even inside a longer word
        let e = p + name.len();
        let word = (p == 0 || !is_ident(s.as_bytes()[p - 1])) && (e >= s.len() || !is_ident(s.as_bytes()[e]));
        if word || name.contains('_') || name.len() >= 10 {
            upd(6, "PHP-004", p, AttackClass::PhpInjection, &mut best);
            break;
        }
    }
    if let Some(p) = php_varcall(s) {
        upd(7, "PHP-006", p, AttackClass::PhpInjection, &mut best);
    }
    if let Some(p) = php_paren_callee(s) {
        upd(8, "PHP-003", p, AttackClass::PhpInjection, &mut best);
    }
    if let Some(p) = php_ini(s) {
        upd(6, "PHP-007", p, AttackClass::PhpInjection, &mut best);
    }
    if let Some((p, g)) = crate::lits!(SUPERGLOBALS).find(s) {
        {
            let end = p + g.len();
            if end >= s.len() || !is_ident(s.as_bytes()[end]) {
                upd(7, "PHP-005", p, AttackClass::PhpInjection, &mut best);
            }
        }
    }
    // variable variables / variable functions: $$x, ${'a'}, $x(, @$_
    {
        let b = s.as_bytes();
        for i in 0..b.len().saturating_sub(2) {
            if b[i] == b'$'
                && (b[i + 1] == b'$'
                    || (b[i + 1] == b'{' && (b[i + 2] == b'\'' || b[i + 2] == b'"' || b[i + 2] == b'$')))
                && (i + 2 < b.len())
            {
                if b[i + 1] == b'$'
                    && !(b[i + 2].is_ascii_alphabetic() || b[i + 2] == b'_' || b[i + 2] == b'$' || b[i + 2] == b'{')
                {
                    continue;
                }
                upd(7, "PHP-006", i, AttackClass::PhpInjection, &mut best);
                break;
            }
            if b[i] == b'$' && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_') {
                let mut j = i + 1;
                while j < b.len() && is_ident(b[j]) {
                    j += 1;
                }
                let mut k = j;
                while k < b.len() && b[k] == b' ' {
                    k += 1;
                }
                // `$f(..)`; with a space only when an argument follows at
                // once (`$amount (incl. tax)` is prose)
                let arg_next = b.get(k + 1).is_some_and(|c| matches!(c, b'\'' | b'"' | b'$' | b')'));
                if k < b.len() && b[k] == b'(' && j - i <= 12 && (k == j || arg_next) {
                    // $x(...) variable function call
                    upd(5, "PHP-006", i, AttackClass::PhpInjection, &mut best);
                }
            }
            if i > 8192 {
                break;
            }
        }
    }
    // YAML deserialization tags that instantiate language objects
    let tags = crate::first_of!([
        "!!python/",
        "!!java",
        "!!ruby/",
        "!!perl/",
        "!!php/",
        "tag:yaml.org,2002:python/",
        "!ruby/object",
        "!!com.sun",
        "!!org.",
    ]);
    // the first tag of the list that occurs, as a `find` loop would pick it
    if let Some(p) = tags.positions(s).into_iter().flatten().next() {
        upd(9, "DESER-001", p, AttackClass::Deserialization, &mut best);
    }
    // Java serialization magic (raw or base64 at any alignment), gzip'd
    // base64 objects
    if v.as_bytes().windows(4).any(|w| w == [0xAC, 0xED, 0x00, 0x05])
        || s.contains("aced0005")
        || s.contains("\u{ac}\u{ed}\u{0}\u{5}")
    {
        upd(10, "JAVA-001", 0, AttackClass::Deserialization, &mut best);
    }
    for (k, p) in java_magic_b64().positions(v).into_iter().enumerate() {
        if let Some(p) = p {
            // alignment 0 starts a token; others are inside a longer base64 run
            let ok = k == 0 || p > 0;
            if ok {
                upd(9, "JAVA-001", p, AttackClass::Deserialization, &mut best);
            }
        }
    }
    // Java classes
    for (p, c) in crate::lits!(JAVA_DANGER).iter(s) {
        {
            let end = p + c.len();
            let boundary = end >= s.len() || !s.as_bytes()[end].is_ascii_alphanumeric() || c.ends_with('.');
            let starts = p == 0 || !s.as_bytes()[p - 1].is_ascii_alphanumeric();
            if !(boundary || c.contains("runtime") || c.contains("process")) || !starts {
                continue;
            }
            let prose = util::prose_ratio(s) > 0.8 && s.len() > 80;
            let sc = if prose { 3 } else { 8 };
            upd(sc, "JAVA-002", p, AttackClass::Java, &mut best);
            break;
        }
    }
    if let Some(p) = java_launcher_name(s) {
        let prose = util::prose_ratio(s) > 0.8 && s.len() > 80;
        upd(if prose { 3 } else { 8 }, "JAVA-002", p, AttackClass::Java, &mut best);
    }
    // generic fully-qualified JDK classes (java.io.File, java.util.Scanner)
    if best.0 < 5 {
        if let Some(p) = s.find("java.").or_else(|| s.find("javax.")) {
            let tail = &s[p..];
            let cls: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '$')
                .collect();
            let parts = cls.split('.').count();
            let short_value = s.len() <= cls.len() + 40;
            let code = s.contains('(') || s.contains("new ") || s.contains("class") || s.contains(';');
            if parts >= 3 && (short_value || code) && !(util::prose_ratio(s) > 0.8 && s.len() > 80) {
                upd(6, "JAVA-003", p, AttackClass::Java, &mut best);
            }
        }
    }
    // gadget class names, stronger next to Runtime / ProcessBuilder
    if let Some((p, _)) = crate::lits!(GADGETS).find(s) {
        {
            let launcher = s.contains("processbuilder") || s.contains("runtime") || s.contains("java.");
            upd(
                if launcher { 9 } else { 6 },
                "JAVA-005",
                p,
                AttackClass::Deserialization,
                &mut best,
            );
        }
    }
    // Runtime.getRuntime().exec / new ProcessBuilder
    let launch = crate::first_of!([
        "getruntime().exec",
        "runtime.getruntime",
        "new processbuilder",
        "processbuilder(",
        ".exec(\"",
        "getruntime()",
    ]);
    if let Some(p) = launch.positions(s).into_iter().flatten().next() {
        upd(9, "JAVA-004", p, AttackClass::Java, &mut best);
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
        crate::max_score_of(check, v)
    }

    #[test]
    fn php_obfuscated_calls_and_config() {
        for a in [
            "@$___[$k]('id')",
            "$O0O0{1}($c)",
            "$fn /*a*/ [2] /*b*/ ('x')",
            "${ 'x' }($y)",
            "( /*c*/ passthru /*d*/ )('id')",
            "allow_url_include = On",
            "session.upload_progress.enabled=1",
            "xx_shell_exec",
            "posix_setsid()",
            "javax.script.ScriptEngineManager",
            "java.util.Runtime",
            "org.omg.CORBA.ORB",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
        for b in [
            "Price: $amount (incl. tax)",
            "the value of $row['id'] (an integer) is returned",
            "session.timeout is 30 minutes",
            "We use Java at runtime for the batch jobs",
            "shell scripts use ${HOME}/bin and the path",
            "items cost $5 [approx] (see table)",
            "Our javascript runtime is Node.js",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }

    #[test]
    fn attacks() {
        for a in [
            "<?php system($_GET['c']); ?>",
            "O:8:\"stdClass\":1:{s:1:\"a\";i:1;}",
            "eval($_POST[x])",
            "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==",
            "java.lang.Runtime",
            "T(java.lang.Runtime).getRuntime().exec('id')",
            "base64_decode",
            "$$x",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "The file was uploaded",
            "I paid $5 for it",
            "Please include me in the list (thanks)",
            "We use Java at work, it is great for building large systems and teams like it a lot",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }
}
