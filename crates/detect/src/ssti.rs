//! Server-side template injection and expression-language injection: find
//! template delimiters of the common engines (Jinja/Twig/Nunjucks `{{ }}`
//! `{% %}`, Freemarker `${ }` `<#...>` `[#...]`, Velocity `#set` `$x.y()`,
//! ERB/JSP `<% %>`, Thymeleaf/Spring `*{ }` `#{ }` `${T(...)}`, OGNL `%{ }`,
//! Smarty `{php}`/`{$smarty}`, Razor `@( )`) and score what the expression
//! inside would do.

use crate::{util, AttackClass, Ctx, Hit};

/// Things an expression reaches for when it wants code execution.
const DANGER: &[&str] = &[
    "__class__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "__init__",
    "__base__",
    "__bases__",
    "__getattribute__",
    "__dict__",
    "getclass",
    "forname(",
    "runtime",
    "processbuilder",
    "exec(",
    "popen",
    "system(",
    "eval(",
    "subprocess",
    "os.",
    "import ",
    "freemarker.template",
    "?new(",
    "t(java",
    "new java",
    "java.lang",
    "_self.env",
    "self._",
    "config.items",
    "request.application",
    "lipsum",
    "cycler",
    "joiner",
    "namespace.__",
    "url_for",
    "get_flashed_messages",
    "registerundefinedfiltercallback",
    "getfilter",
    "{php}",
    ".constructor",
    "process.mainmodule",
    "require(",
    "child_process",
    "file.open",
    "io.popen",
    "`",
    "%x(",
    "getruntime",
    "classloader",
    "#_memberaccess",
    "#context",
    "@java.",
    "ognl",
    "invoke(",
    "getmethod(",
    "newinstance",
    "scriptengine",
    "$smarty",
    "system'",
    "passthru",
    "shell_exec",
    "file_get_contents",
    "readfile",
    "include(",
    "attr(",
    "|attr",
    "\\x5f\\x5f",
    "objectconstructor",
    "request.getparameter",
    "response.getwriter",
    "application.getrealpath",
    "applicationscope",
    "sessionscope",
    "pagecontext",
    "facescontext",
    "getservletcontext",
    "print(",
    "phpinfo",
    "md5(",
    "var_dump(",
    "assert(",
];

fn inner_danger(inner: &str) -> Option<&'static str> {
    crate::lits!(DANGER).find(inner).map(|(_, d)| d)
}

/// Arithmetic on literals (`7*7`, `1337*1338`, `7*'7'`): the classic probe.
fn arithmetic_probe(inner: &str) -> bool {
    let t: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    let b = t.as_bytes();
    for i in 1..b.len().saturating_sub(1) {
        if matches!(b[i], b'*' | b'+' | b'-' | b'/' | b'%') {
            let l = b[i - 1];
            let r = b[i + 1];
            let lnum = l.is_ascii_digit() || l == b'\'' || l == b'"';
            let rnum = r.is_ascii_digit() || r == b'\'' || r == b'"';
            if lnum && rnum && t.bytes().filter(|c| c.is_ascii_alphabetic()).count() <= 2 {
                return true;
            }
        }
    }
    false
}

const OPENERS: [(&str, &str, &str); 17] = [
    ("{{", "}}", "jinja"),
    ("{%", "%}", "jinja"),
    ("${", "}", "el"),
    ("#{", "}", "el"),
    ("*{", "}", "el"),
    ("%{", "}", "ognl"),
    ("@{", "}", "el"),
    ("<%", "%>", "erb"),
    ("<#", ">", "freemarker"),
    ("[#", "]", "freemarker"),
    ("[=", "]", "freemarker"),
    ("{$", "}", "smarty"),
    ("{php}", "{/php}", "smarty"),
    ("@(", ")", "razor"),
    ("#set(", ")", "velocity"),
    ("#foreach(", ")", "velocity"),
    ("$!{", "}", "velocity"),
];

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    let mut best: (u32, &'static str, usize, AttackClass) = (0, "", 0, AttackClass::Ssti);
    let mut checked = 0;
    // first occurrence of every opener in one pass; most values have none
    let firsts = crate::first_of!(OPENERS.map(|(o, _, _)| o); OPENERS.len()).positions(s);
    for ((open, close, engine), first) in OPENERS.iter().zip(firsts) {
        let mut next = first;
        while let Some(st) = next {
            let from = st + open.len();
            next = memchr::memmem::find(&s.as_bytes()[from..], open.as_bytes()).map(|p| from + p);
            checked += 1;
            if checked > 64 {
                break;
            }
            let body_start = st + open.len();
            let window = util::clip(s, body_start, body_start + 400);
            let (inner, closed) = match window.find(close) {
                Some(e) => (&window[..e], true),
                None => (window, false),
            };
            // `${jndi:` is the JNDI detector's business
            if inner.starts_with("jndi") {
                continue;
            }
            let class = match *engine {
                "el" | "ognl"
                    if inner.contains("java")
                        || inner.contains("#_")
                        || inner.contains("@")
                        || inner.contains("t(") =>
                {
                    AttackClass::El
                }
                _ => AttackClass::Ssti,
            };
            if let Some(_d) = inner_danger(inner) {
                let sc = if closed { 10 } else { 7 };
                if sc > best.0 {
                    best = (sc, "SSTI-001", st, class);
                }
            } else if closed && arithmetic_probe(inner) {
                if 7 > best.0 {
                    best = (7, "SSTI-002", st, class);
                }
            } else if *engine == "freemarker"
                && (inner.starts_with("assign") || inner.starts_with("import") || inner.starts_with("include"))
            {
                if 6 > best.0 {
                    best = (6, "SSTI-003", st, class);
                }
            } else if *engine == "velocity" && (inner.contains('$') || inner.contains('=')) {
                if 5 > best.0 {
                    best = (5, "SSTI-003", st, class);
                }
            } else if *engine == "jinja"
                && open == &"{%"
                && (inner.trim_start().starts_with("import")
                    || inner.trim_start().starts_with("include")
                    || inner.contains("debug"))
            {
                if 5 > best.0 {
                    best = (5, "SSTI-003", st, class);
                }
            }
        }
    }
    // Velocity / Java reflection outside delimiters: $class.inspect, .getClass().forName(
    // (and, last two, Spring4Shell-style class.module.classLoader property
    // paths): one pass for all
    let at = crate::first_of!([
        ".getclass().forname(",
        "$class.inspect",
        ".getclass().getclassloader",
        "java.lang.runtime@getruntime",
        "@java.lang.runtime@",
        "class.module.classloader",
        "class.classloader",
    ])
    .positions(s);
    if let Some(p) = at[..5].iter().flatten().next() {
        if 8 > best.0 {
            best = (8, "EL-001", *p, AttackClass::El);
        }
    }
    if let Some(p) = at[5..].iter().flatten().next() {
        if 9 > best.0 {
            best = (9, "EL-002", *p, AttackClass::El);
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
        crate::max_score_of(check, v)
    }

    #[test]
    fn attacks() {
        for a in [
            "{{7*7}}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "${7*7}",
            "<#assign ex=\"freemarker.template.utility.Execute\"?new()>${ex(\"id\")}",
            "#set($x=$class.inspect(\"java.lang.Runtime\"))",
            "<%= system('id') %>",
            "${T(java.lang.Runtime).getRuntime().exec('id')}",
            "%{(#_memberAccess['allowStaticMethodAccess']=true)}",
            "{{config.items()}}",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "Hello {{ user.name }}, welcome",
            "price: ${price}",
            "{% for item in items %}",
            "#{id}",
            "{\"a\": {\"b\": 1}}",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }
}
