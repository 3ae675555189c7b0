//! SQL injection: a SQL lexer (MySQL / MSSQL / PostgreSQL / Oracle / SQLite
//! flavoured) and scoring of what the token stream would do when the value
//! is pasted into a query, in three contexts: as-is (numeric context), and
//! inside a single- or double-quoted string literal.
//!
//! libinjection (via libinjectionrs) is one more opinion: it adds a small
//! score that only blocks together with a signal of our own.

use crate::{util, AttackClass, Ctx, Hit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kw {
    Select,
    Union,
    From,
    Where,
    Insert,
    Into,
    Values,
    Update,
    Set,
    Delete,
    Drop,
    Create,
    Alter,
    Truncate,
    Exec,
    Declare,
    Waitfor,
    Delay,
    Order,
    Group,
    By,
    Having,
    Limit,
    Offset,
    Not,
    Null,
    Case,
    When,
    Then,
    Else,
    End,
    As,
    All,
    Distinct,
    Top,
    Procedure,
    Table,
    Shutdown,
    Outfile,
    True,
    False,
    Begin,
    Join,
    Rownum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tk {
    Num,
    /// string literal; `true` when closed
    Str(bool),
    Word,
    Kw(Kw),
    /// function call: word directly followed by `(`; `true` when the name is
    /// a known SQL function
    Func(bool),
    Cmp,
    Logic,
    Arith,
    LParen,
    RParen,
    Comma,
    Semi,
    Comment,
    /// `/*! ... */` MySQL executable comment opener
    ExecComment,
    Var,
    Dot,
    Other,
}

#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub kind: Tk,
    pub start: usize,
    pub end: usize,
}

const MAX_TOKENS: usize = 2048;

fn keyword(w: &str) -> Option<Tk> {
    Some(match w {
        "select" => Tk::Kw(Kw::Select),
        "union" => Tk::Kw(Kw::Union),
        "from" => Tk::Kw(Kw::From),
        "where" => Tk::Kw(Kw::Where),
        "insert" => Tk::Kw(Kw::Insert),
        "into" => Tk::Kw(Kw::Into),
        "values" => Tk::Kw(Kw::Values),
        "update" => Tk::Kw(Kw::Update),
        "set" => Tk::Kw(Kw::Set),
        "delete" => Tk::Kw(Kw::Delete),
        "drop" => Tk::Kw(Kw::Drop),
        "create" => Tk::Kw(Kw::Create),
        "alter" => Tk::Kw(Kw::Alter),
        "truncate" => Tk::Kw(Kw::Truncate),
        "exec" | "execute" => Tk::Kw(Kw::Exec),
        "declare" => Tk::Kw(Kw::Declare),
        "waitfor" => Tk::Kw(Kw::Waitfor),
        "delay" => Tk::Kw(Kw::Delay),
        "order" => Tk::Kw(Kw::Order),
        "group" => Tk::Kw(Kw::Group),
        "by" => Tk::Kw(Kw::By),
        "having" => Tk::Kw(Kw::Having),
        "limit" => Tk::Kw(Kw::Limit),
        "offset" => Tk::Kw(Kw::Offset),
        "not" => Tk::Kw(Kw::Not),
        "null" => Tk::Kw(Kw::Null),
        "case" => Tk::Kw(Kw::Case),
        "when" => Tk::Kw(Kw::When),
        "then" => Tk::Kw(Kw::Then),
        "else" => Tk::Kw(Kw::Else),
        "end" => Tk::Kw(Kw::End),
        "as" => Tk::Kw(Kw::As),
        "all" => Tk::Kw(Kw::All),
        "distinct" | "distinctrow" => Tk::Kw(Kw::Distinct),
        "top" => Tk::Kw(Kw::Top),
        "procedure" => Tk::Kw(Kw::Procedure),
        "table" => Tk::Kw(Kw::Table),
        "shutdown" => Tk::Kw(Kw::Shutdown),
        "outfile" | "dumpfile" => Tk::Kw(Kw::Outfile),
        "true" => Tk::Kw(Kw::True),
        "false" => Tk::Kw(Kw::False),
        "begin" => Tk::Kw(Kw::Begin),
        "join" => Tk::Kw(Kw::Join),
        "rownum" => Tk::Kw(Kw::Rownum),
        "and" | "or" | "xor" | "div" => Tk::Logic,
        "like" | "rlike" | "regexp" | "is" | "in" | "between" | "sounds" | "glob" | "ilike" => Tk::Cmp,
        "mod" => Tk::Arith,
        _ => return None,
    })
}

/// SQL functions that show up in injections (lowercase).
const FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "version",
    "user",
    "current_user",
    "system_user",
    "session_user",
    "database",
    "schema",
    "concat",
    "concat_ws",
    "group_concat",
    "char",
    "chr",
    "nchar",
    "ascii",
    "ord",
    "substring",
    "substr",
    "mid",
    "left",
    "right",
    "hex",
    "unhex",
    "extractvalue",
    "updatexml",
    "load_file",
    "if",
    "iif",
    "ifnull",
    "isnull",
    "nullif",
    "coalesce",
    "cast",
    "convert",
    "count",
    "floor",
    "rand",
    "elt",
    "md5",
    "sha1",
    "now",
    "length",
    "len",
    "lower",
    "upper",
    "exp",
    "name_const",
    "make_set",
    "json_extract",
    "json_keys",
    "randomblob",
    "row_count",
    "xp_cmdshell",
    "sp_executesql",
    "sp_oacreate",
    "dbms_pipe.receive_message",
    "utl_inaddr.get_host_address",
    "utl_http.request",
    "db_name",
    "user_name",
    "host_name",
    "suser_name",
    "is_srvrolemember",
    "object_id",
    "col_name",
    "table_name",
    "column_name",
    "current_database",
    "pg_read_file",
    "lo_import",
    "sqlite_version",
    "dbms_xmlgen.getxml",
    "xmltype",
    "ctxsys.drithsx.sn",
    "waitfor",
    "instr",
    "locate",
    "position",
    "strcmp",
    "find_in_set",
    "bin",
    "oct",
    "conv",
    "reverse",
    "repeat",
    "replace",
    "trim",
    "space",
    "least",
    "greatest",
    "polygon",
    "geometrycollection",
    "multipoint",
    "linestring",
    "gtid_subset",
    "st_latfromgeohash",
    "uuid",
    "connection_id",
    "last_insert_id",
    "found_rows",
    "pi",
    "abs",
    "avg",
    "sum",
    "min",
    "max",
    "round",
    "mod",
    "power",
    "sqrt",
    "to_char",
    "to_number",
    "decode",
    "utl_inaddr",
    "sys_context",
    "char_length",
    "bit_length",
    "ascii_str",
    "quote",
    "string_agg",
    "array_agg",
    "generate_series",
    "pg_ls_dir",
    "current_setting",
    "openrowset",
    "opendatasource",
];

/// Functions specific enough to SQL that a short value calling one is a
/// fragment of an injection.
const FRAGMENT_FUNCS: &[&str] = &[
    "ascii",
    "char",
    "chr",
    "nchar",
    "concat",
    "concat_ws",
    "group_concat",
    "substring",
    "substr",
    "xmltype",
    "extractvalue",
    "updatexml",
    "benchmark",
    "sleep",
    "pg_sleep",
    "version",
    "database",
    "unhex",
    "hex",
    "md5",
    "sha1",
    "load_file",
    "ifnull",
    "nullif",
    "coalesce",
    "elt",
    "make_set",
    "json_extract",
    "json_keys",
    "randomblob",
    "db_name",
    "user_name",
    "current_user",
    "system_user",
    "session_user",
    "schema",
    "instr",
    "locate",
    "strcmp",
    "find_in_set",
    "sys_context",
    "to_char",
    "name_const",
    "row_count",
    "connection_id",
    "last_insert_id",
    "current_database",
    "sqlite_version",
    "pg_read_file",
    "utl_inaddr.get_host_address",
    "dbms_pipe.receive_message",
    "iif",
    "isnull",
    "char_length",
    "bit_length",
    "string_agg",
    "array_agg",
    "gtid_subset",
    "st_latfromgeohash",
];

/// Server variables read by injections (`@@version`).
const SYS_VARS: &[&str] = &[
    "version",
    "datadir",
    "hostname",
    "basedir",
    "servername",
    "identity",
    "spid",
    "language",
    "global",
    "session",
    "tmpdir",
    "port",
    "plugin_dir",
    "secure_file_priv",
    "innodb",
    "log",
    "character_set",
    "collation",
    "max_allowed_packet",
    "sql_mode",
    "rowcount",
    "error",
    "microsoftversion",
];

/// Sleep-like functions.
const TIME_FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "dbms_pipe.receive_message",
    "randomblob",
];

/// Dangerous functions / objects: direct file, command or metadata access.
const DANGER: &[&str] = &[
    "load_file",
    "xp_cmdshell",
    "sp_oacreate",
    "sp_executesql",
    "extractvalue",
    "updatexml",
    "utl_http.request",
    "utl_inaddr.get_host_address",
    "dbms_xmlgen.getxml",
    "name_const",
    "pg_read_file",
    "lo_import",
    "openrowset",
    "opendatasource",
    "pg_ls_dir",
    "xp_dirtree",
    "xp_regread",
    "sp_makewebtask",
    "ctxsys.drithsx.sn",
    "gtid_subset",
    "st_latfromgeohash",
];

const SYS_OBJECTS: &[&str] = &[
    "information_schema",
    "sysobjects",
    "syscolumns",
    "sysdatabases",
    "sys.tables",
    "sys.objects",
    "mysql.user",
    "pg_shadow",
    "pg_catalog",
    "pg_user",
    "sqlite_master",
    "all_tables",
    "user_tables",
    "dba_users",
    "msysaccessobjects",
    "master..",
    "@@version",
    "@@datadir",
    "@@hostname",
    "@@basedir",
    "@@servername",
    "v$version",
    "sys.user$",
    "sqlite_schema",
    "mysql.db",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c >= 0x80
}

/// Lex `s` (ASCII-lowercased text) from byte `from`.
pub fn lex(s: &str, from: usize, out: &mut Vec<Token>) {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = from;
    while i < n && out.len() < MAX_TOKENS {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c | 0xa0 | 0 => {
                i += 1;
                continue;
            }
            b'\'' | b'"' => {
                let q = c;
                i += 1;
                let mut closed = false;
                while i < n {
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == q {
                        if i + 1 < n && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        closed = true;
                        break;
                    }
                    i += 1;
                }
                i = i.min(n);
                Tk::Str(closed)
            }
            b'`' => {
                i += 1;
                while i < n && b[i] != b'`' {
                    i += 1;
                }
                i = (i + 1).min(n);
                Tk::Word
            }
            b'[' => {
                // MSSQL bracket identifier
                let mut j = i + 1;
                while j < n && j - i < 64 && b[j] != b']' && b[j] != b'[' {
                    j += 1;
                }
                if j < n && b[j] == b']' {
                    i = j + 1;
                    Tk::Word
                } else {
                    i += 1;
                    Tk::Other
                }
            }
            b'0'..=b'9' => {
                if c == b'0' && i + 1 < n && (b[i + 1] == b'x' || b[i + 1] == b'b') {
                    i += 2;
                    while i < n && b[i].is_ascii_hexdigit() {
                        i += 1;
                    }
                } else {
                    while i < n && (b[i].is_ascii_digit() || b[i] == b'.') {
                        i += 1;
                    }
                    if i < n
                        && b[i] == b'e'
                        && i + 1 < n
                        && (b[i + 1].is_ascii_digit() || b[i + 1] == b'-' || b[i + 1] == b'+')
                    {
                        i += 2;
                        while i < n && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                // 1e1union: number glued to a word is still a number token
                Tk::Num
            }
            b'.' if i + 1 < n && b[i + 1].is_ascii_digit() => {
                i += 1;
                while i < n && b[i].is_ascii_digit() {
                    i += 1;
                }
                Tk::Num
            }
            b'@' => {
                i += 1;
                if i < n && b[i] == b'@' {
                    i += 1;
                }
                while i < n && is_ident(b[i]) {
                    i += 1;
                }
                Tk::Var
            }
            b'#' => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                Tk::Comment
            }
            b'-' if i + 1 < n && b[i + 1] == b'-' => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                Tk::Comment
            }
            b'/' if i + 1 < n && b[i + 1] == b'*' => {
                if i + 2 < n && b[i + 2] == b'!' {
                    // MySQL executable comment: lex its content as code
                    i += 3;
                    while i < n && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    Tk::ExecComment
                } else {
                    match s[i + 2..].find("*/") {
                        Some(j) => i = i + 2 + j + 2,
                        None => i = n,
                    }
                    Tk::Comment
                }
            }
            b'*' if i + 1 < n && b[i + 1] == b'/' => {
                // end of an executable comment
                i += 2;
                continue;
            }
            b'(' => {
                i += 1;
                Tk::LParen
            }
            b')' => {
                i += 1;
                Tk::RParen
            }
            b',' => {
                i += 1;
                Tk::Comma
            }
            b';' => {
                i += 1;
                Tk::Semi
            }
            b'=' => {
                i += 1;
                if i < n && b[i] == b'=' {
                    i += 1;
                }
                Tk::Cmp
            }
            b'<' | b'>' | b'!' => {
                i += 1;
                while i < n && i - start < 3 && matches!(b[i], b'=' | b'>' | b'<') {
                    i += 1;
                }
                if c == b'!' && i == start + 1 {
                    Tk::Logic // NOT
                } else {
                    Tk::Cmp
                }
            }
            b'|' | b'&' => {
                i += 1;
                if i < n && b[i] == c {
                    i += 1;
                    if c == b'|' {
                        Tk::Arith // || is concat in ANSI, OR in MySQL
                    } else {
                        Tk::Logic
                    }
                } else {
                    Tk::Arith
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'~' => {
                i += 1;
                Tk::Arith
            }
            b':' if i + 1 < n && b[i + 1] == b'=' => {
                i += 2;
                Tk::Cmp
            }
            c if is_ident_start(c) => {
                // N'..' / X'..' / B'..' / E'..' string prefixes
                if matches!(c, b'n' | b'x' | b'b' | b'e' | b'q') && i + 1 < n && b[i + 1] == b'\'' {
                    i += 1;
                    continue;
                }
                while i < n && is_ident(b[i]) {
                    i += 1;
                }
                let w = &s[start..i];
                let w_trim = w.trim_end_matches('.');
                if let Some(k) = keyword(w_trim) {
                    k
                } else {
                    // function call?
                    let mut j = i;
                    while j < n && (b[j] == b' ' || b[j] == b'\t') {
                        j += 1;
                    }
                    let mut k = j;
                    // allow inline comments between name and paren
                    while k + 1 < n && b[k] == b'/' && b[k + 1] == b'*' {
                        match s[k + 2..].find("*/") {
                            Some(e) => k = k + 2 + e + 2,
                            None => break,
                        }
                    }
                    if k < n && b[k] == b'(' {
                        Tk::Func(FUNCS.contains(&w_trim))
                    } else {
                        Tk::Word
                    }
                }
            }
            _ => {
                i += 1;
                // skip multi-byte chars
                while i < n && (b[i] & 0xC0) == 0x80 {
                    i += 1;
                }
                Tk::Other
            }
        };
        out.push(Token { kind, start, end: i });
    }
}

fn sig(t: &[Token], i: usize) -> Option<Tk> {
    t.get(i).map(|x| x.kind)
}

/// Skip comments forward from i.
fn skip_c(t: &[Token], mut i: usize) -> usize {
    while i < t.len() && matches!(t[i].kind, Tk::Comment | Tk::ExecComment) {
        i += 1;
    }
    i
}

struct Scored {
    score: u32,
    rule: &'static str,
    at: usize,
}

fn better(cur: &mut Option<Scored>, score: u32, rule: &'static str, at: usize) {
    if cur.as_ref().is_none_or(|c| score > c.score) {
        *cur = Some(Scored { score, rule, at });
    }
}

fn func_name<'a>(s: &'a str, t: &Token) -> &'a str {
    s[t.start..t.end].trim_end_matches('.')
}

/// An "expression that evaluates" after a logic operator: a comparison
/// of at most two operands, a function, a subquery, a boolean literal, or a
/// single literal followed by a comment / statement end.
fn expr_after_logic(t: &[Token], i: usize) -> bool {
    let i = skip_c(t, i);
    let end = (i + 8).min(t.len());
    let mut operands = 0;
    let mut j = i;
    while j < end {
        match t[j].kind {
            Tk::Cmp => return (1..=2).contains(&operands),
            Tk::Func(_) => return operands == 0,
            Tk::Kw(Kw::Select) | Tk::Kw(Kw::True) | Tk::Kw(Kw::False) | Tk::Kw(Kw::Null) => return operands == 0,
            Tk::Num | Tk::Str(_) | Tk::Var | Tk::Word => {
                operands += 1;
                if operands > 2 {
                    return false;
                }
            }
            Tk::LParen | Tk::Arith | Tk::Logic | Tk::Dot => {}
            Tk::Comment | Tk::Semi | Tk::ExecComment => {
                return operands == 1 && matches!(t[j - 1].kind, Tk::Num | Tk::Str(_) | Tk::Var | Tk::RParen);
            }
            Tk::RParen => {}
            _ => return false,
        }
        j += 1;
    }
    false
}

/// Score one token stream. `breakout` says whether t[0] is the string that
/// the context closes (quote context) - it then is the injection point.
fn score_tokens(s: &str, t: &[Token], quote_ctx: bool, out: &mut Option<Scored>) {
    let n = t.len();
    if n == 0 {
        return;
    }
    let mut kw_count = 0;
    for (i, tok) in t.iter().enumerate() {
        match tok.kind {
            Tk::Kw(Kw::Union) => {
                let mut j = skip_c(t, i + 1);
                while j < n
                    && matches!(
                        t[j].kind,
                        Tk::Kw(Kw::All) | Tk::Kw(Kw::Distinct) | Tk::LParen | Tk::Comment | Tk::ExecComment
                    )
                {
                    j += 1;
                }
                if sig(t, j) == Some(Tk::Kw(Kw::Select)) {
                    better(out, 10, "SQLI-001", tok.start);
                }
            }
            Tk::Semi => {
                let j = skip_c(t, i + 1);
                let next = sig(t, j);
                let after = sig(t, skip_c(t, j + 1));
                let stacked = match next {
                    Some(Tk::Kw(Kw::Select)) => select_shape(t, j),
                    Some(Tk::Kw(Kw::Drop)) | Some(Tk::Kw(Kw::Truncate)) | Some(Tk::Kw(Kw::Alter)) => {
                        matches!(after, Some(Tk::Kw(Kw::Table)) | Some(Tk::Word))
                            && (quote_ctx || t.iter().any(|x| x.kind == Tk::Kw(Kw::Table)))
                    }
                    Some(Tk::Kw(Kw::Delete)) => after == Some(Tk::Kw(Kw::From)),
                    Some(Tk::Kw(Kw::Insert)) => after == Some(Tk::Kw(Kw::Into)),
                    Some(Tk::Kw(Kw::Update)) => {
                        after == Some(Tk::Word) && sig(t, skip_c(t, j + 2)) == Some(Tk::Kw(Kw::Set))
                    }
                    Some(Tk::Kw(Kw::Exec)) => {
                        let w = t.get(skip_c(t, j + 1)).map(|x| &s[x.start..x.end]).unwrap_or("");
                        matches!(after, Some(Tk::Func(_)) | Some(Tk::LParen) | Some(Tk::Var))
                            || w.starts_with("xp_")
                            || w.starts_with("sp_")
                            || w.starts_with("master.")
                            || w.starts_with("dbo.")
                    }
                    Some(Tk::Kw(Kw::Declare)) => after == Some(Tk::Var),
                    Some(Tk::Kw(Kw::Shutdown)) => true,
                    Some(Tk::Kw(Kw::Waitfor)) => after == Some(Tk::Kw(Kw::Delay)),
                    Some(Tk::Kw(Kw::Set)) => after == Some(Tk::Var),
                    Some(Tk::Kw(Kw::Create)) => matches!(after, Some(Tk::Kw(Kw::Table)) | Some(Tk::Word)) && quote_ctx,
                    Some(Tk::Func(true)) => quote_ctx || i <= 2,
                    _ => false,
                };
                if stacked {
                    better(out, 8, "SQLI-002", tok.start);
                }
            }
            Tk::Func(known) => {
                let name = func_name(s, tok);
                if TIME_FUNCS.contains(&name) && matches!(sig(t, i + 1), Some(Tk::LParen)) {
                    // sleep(5), benchmark(1000000, md5(1))
                    if matches!(
                        sig(t, i + 2),
                        Some(Tk::Num) | Some(Tk::Func(_)) | Some(Tk::LParen) | Some(Tk::Arith) | Some(Tk::Word)
                    ) {
                        better(out, 8, "SQLI-003", tok.start);
                    }
                } else if DANGER.contains(&name) {
                    better(out, 8, "SQLI-007", tok.start);
                } else if known && i > 0 && quote_ctx {
                    // function right after a break-out: ' and ascii(...
                }
            }
            Tk::Kw(Kw::Waitfor) => {
                if sig(t, i + 1) == Some(Tk::Kw(Kw::Delay)) && matches!(sig(t, i + 2), Some(Tk::Str(_))) {
                    better(out, 8, "SQLI-003", tok.start);
                }
            }
            Tk::Kw(Kw::Select) => {
                if select_shape(t, i) {
                    let sub = i > 0 && t[i - 1].kind == Tk::LParen;
                    let score = if sub { 8 } else { 5 };
                    better(out, score, "SQLI-008", tok.start);
                }
            }
            Tk::Kw(Kw::Into) => {
                if sig(t, i + 1) == Some(Tk::Kw(Kw::Outfile)) {
                    better(out, 8, "SQLI-007", tok.start);
                }
            }
            Tk::Kw(Kw::Exec) => {
                let w = t.get(i + 1).map(|x| &s[x.start..x.end]).unwrap_or("");
                if w.starts_with("xp_") || w.starts_with("sp_") || w.starts_with("master.") {
                    better(out, 8, "SQLI-007", tok.start);
                }
            }
            Tk::Kw(Kw::As) => {
                // ) as alias from  -- the tail of an injected select list
                if i > 0
                    && t[i - 1].kind == Tk::RParen
                    && matches!(sig(t, i + 1), Some(Tk::Word) | Some(Tk::Str(_)))
                    && sig(t, i + 2) == Some(Tk::Kw(Kw::From))
                {
                    better(out, 6, "SQLI-011", tok.start);
                }
            }
            Tk::Kw(_) => kw_count += 1,
            Tk::ExecComment => better(out, 6, "SQLI-009", tok.start),
            Tk::Var => {
                let v = &s[tok.start..tok.end];
                if v.starts_with("@@") && SYS_VARS.iter().any(|x| v[2..].starts_with(x)) {
                    better(out, 6, "SQLI-010", tok.start);
                }
            }
            Tk::Word => {
                let w = &s[tok.start..tok.end];
                if SYS_OBJECTS.iter().any(|o| w.starts_with(o)) {
                    better(out, 6, "SQLI-010", tok.start);
                }
            }
            _ => {}
        }
    }
    let _ = kw_count;

    // Break-out analysis: where does the injected code begin?
    // quote context: after t[0] (the closed string);
    // numeric context: after a leading number / identifier value.
    let start = if quote_ctx {
        1
    } else {
        match t[0].kind {
            Tk::Num => 1,
            Tk::Arith if n > 1 && t[1].kind == Tk::Num => 2,
            _ => return,
        }
    };
    let mut i = start;
    let mut parens = 0;
    while i < n && t[i].kind == Tk::RParen {
        i += 1;
        parens += 1;
    }
    let i = i;
    let Some(k) = sig(t, i) else {
        return;
    };
    let at = t[i.min(n - 1)].start;
    match k {
        Tk::Logic => {
            if expr_after_logic(t, i + 1) {
                better(out, 8, "SQLI-004", at);
            }
        }
        Tk::Arith => {
            // ' + (select ...), '||sleep(5)||', 1-sleep(5)
            let j = skip_c(t, i + 1);
            match sig(t, j) {
                Some(Tk::Func(true)) => better(out, if quote_ctx { 8 } else { 6 }, "SQLI-004", at),
                Some(Tk::LParen) if sig(t, j + 1) == Some(Tk::Kw(Kw::Select)) => better(out, 8, "SQLI-004", at),
                _ => {}
            }
        }
        Tk::Comment if quote_ctx => {
            // admin'-- / admin'#: a single identifier-like prefix, nothing
            // after the comment
            let prefix = s[..t[0].end.saturating_sub(1)].trim();
            let comment = s[t[i].start..t[i].end].trim_start_matches(['-', '#', '/', '*']).trim();
            let single = !prefix.is_empty() && prefix.len() <= 32 && !prefix.contains(' ');
            let tail = t[i + 1..].iter().any(|x| !matches!(x.kind, Tk::Comment));
            if single && comment.is_empty() && !tail {
                better(out, 5, "SQLI-005", at);
            } else if parens > 0 && !tail {
                better(out, 5, "SQLI-005", at);
            } else {
                better(out, 2, "SQLI-005", at);
            }
        }
        Tk::Semi if quote_ctx => {
            if sig(t, skip_c(t, i + 1)).is_none() && t[i + 1..].iter().any(|x| x.kind == Tk::Comment) {
                better(out, 5, "SQLI-005", at);
            }
        }
        Tk::Kw(Kw::Order) | Tk::Kw(Kw::Group) => {
            if sig(t, i + 1) == Some(Tk::Kw(Kw::By))
                && matches!(sig(t, i + 2), Some(Tk::Num) | Some(Tk::Word) | Some(Tk::Func(_)))
            {
                let tail_ok = quote_ctx || t[i + 3..].iter().any(|x| matches!(x.kind, Tk::Comment | Tk::Semi));
                if tail_ok {
                    better(out, 8, "SQLI-006", at);
                }
            }
        }
        Tk::Kw(Kw::Having) | Tk::Kw(Kw::Where) => {
            let operand = matches!(
                sig(t, i + 1),
                Some(Tk::Num) | Some(Tk::Word) | Some(Tk::Str(_)) | Some(Tk::Func(_))
            );
            if quote_ctx && operand && sig(t, i + 2) == Some(Tk::Cmp) {
                better(out, 8, "SQLI-006", at);
            }
        }
        Tk::Kw(Kw::Limit) if quote_ctx && sig(t, i + 1) == Some(Tk::Num) => better(out, 6, "SQLI-006", at),
        Tk::Kw(Kw::Procedure) if quote_ctx && matches!(sig(t, i + 1), Some(Tk::Func(_))) => {
            better(out, 8, "SQLI-006", at)
        }
        Tk::Kw(Kw::Into) if quote_ctx => {
            if sig(t, i + 1) == Some(Tk::Kw(Kw::Outfile)) {
                better(out, 8, "SQLI-007", at);
            }
        }
        Tk::Cmp if quote_ctx && is_eq_op(&s[t[i].start..t[i].end]) => {
            // '='  ' = 'x  ('a'='a)
            if matches!(
                sig(t, i + 1),
                Some(Tk::Str(_)) | Some(Tk::Num) | Some(Tk::Func(_)) | Some(Tk::LParen)
            ) {
                let more = t[i + 2..]
                    .iter()
                    .any(|x| matches!(x.kind, Tk::Logic | Tk::Comment | Tk::Cmp));
                better(out, if more { 8 } else { 5 }, "SQLI-004", at);
            }
        }
        Tk::Func(true) if quote_ctx => better(out, 5, "SQLI-004", at),
        _ => {}
    }
}

fn is_eq_op(op: &str) -> bool {
    matches!(op, "=" | "==" | "!=" | "<>" | "<=>")
}

/// `select` followed by a select list that looks like SQL (a function, a
/// number, `*`, a variable, a string, a column list) and a FROM or a
/// function in it.
fn select_shape(t: &[Token], i: usize) -> bool {
    let n = t.len();
    let mut j = i + 1;
    let mut items = 0;
    let mut strong = false;
    let mut words = 0;
    while j < n && j < i + 40 {
        match t[j].kind {
            Tk::Func(_) | Tk::Var => strong = true,
            Tk::Num | Tk::Str(_) => {
                if j == i + 1 || matches!(t[j - 1].kind, Tk::Comma | Tk::LParen) {
                    strong = true;
                }
                items += 1
            }
            Tk::Arith => {
                // select * from
                if j == i + 1 {
                    strong = true;
                }
            }
            Tk::Comma => items += 1,
            Tk::Word => {
                words += 1;
                if words > 4 && items == 0 {
                    return false;
                }
            }
            Tk::Kw(Kw::From) => {
                return strong || (items > 0 && words <= items + 2);
            }
            Tk::Kw(Kw::Distinct)
            | Tk::Kw(Kw::Top)
            | Tk::Kw(Kw::All)
            | Tk::Kw(Kw::As)
            | Tk::Dot
            | Tk::LParen
            | Tk::RParen => {}
            Tk::ExecComment => strong = true,
            Tk::Comment => {}
            Tk::Kw(Kw::Null)
            | Tk::Kw(Kw::Case)
            | Tk::Kw(Kw::When)
            | Tk::Kw(Kw::Then)
            | Tk::Kw(Kw::Else)
            | Tk::Kw(Kw::End) => strong = true,
            _ => break,
        }
        j += 1;
    }
    let code_item = t[i + 1..j.min(n)]
        .iter()
        .any(|x| matches!(x.kind, Tk::Func(_) | Tk::Var | Tk::ExecComment));
    strong
        && ((j >= n && code_item)
            || matches!(
                t.get(j).map(|x| x.kind),
                Some(Tk::Comment) | Some(Tk::Semi) | Some(Tk::RParen) | Some(Tk::Kw(_)) | Some(Tk::Logic)
            ))
}

/// Run the SQL detector on a value.
pub fn check(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    let s = ctx.lower;
    if s.len() < 2 {
        return;
    }
    let mut best: Option<Scored> = None;
    let mut toks: Vec<Token> = Vec::with_capacity(32);
    // as-is
    lex(s, 0, &mut toks);
    score_tokens(s, &toks, false, &mut best);
    // inside a quoted string: the first quote of the value closes it
    for q in [b'\'', b'"'] {
        if let Some(p) = memchr::memchr(q, s.as_bytes()) {
            toks.clear();
            toks.push(Token {
                kind: Tk::Str(true),
                start: 0,
                end: p + 1,
            });
            lex(s, p + 1, &mut toks);
            score_tokens(s, &toks, true, &mut best);
        }
    }
    // fragments: a short value that is a SQL function call (`ascii(`,
    // `xmltype(`) or starts with a logic operator and a comparison
    // (`|| a ==`, `or x= '`): the value continues an expression of the query
    if best.as_ref().is_none_or(|b| b.score < 5) && s.len() <= 48 && util::prose_ratio(s) < 0.9 {
        toks.clear();
        lex(s, 0, &mut toks);
        let first = toks.first().map(|t| t.kind);
        let fcall = toks
            .iter()
            .position(|t| matches!(t.kind, Tk::Func(true)) && FRAGMENT_FUNCS.contains(&func_name(s, t)));
        if let Some(fi) = fcall {
            let t = toks[fi];
            let glued = s.as_bytes().get(t.end) == Some(&b'(');
            if glued && fi <= 2 && t.end - t.start >= 3 {
                better(&mut best, 5, "SQLI-012", t.start);
            }
        }
        let lead = s.trim_start();
        let logic_word = ["or ", "and ", "xor ", "||", "&&"].iter().any(|w| lead.starts_with(w));
        if logic_word && matches!(first, Some(Tk::Logic) | Some(Tk::Arith)) {
            let operand = |k: Tk| matches!(k, Tk::Word | Tk::Num | Tk::Str(_) | Tk::Var);
            if toks.len() >= 3
                && operand(toks[1].kind)
                && toks[2].kind == Tk::Cmp
                && is_eq_op(&s[toks[2].start..toks[2].end])
            {
                better(&mut best, 5, "SQLI-013", 0);
            }
        }
    }
    // prose discount: natural-language text that merely mentions SQL
    if let Some(b) = &mut best {
        if b.rule == "SQLI-008" && s.len() > 60 && util::prose_ratio(s) > 0.75 {
            b.score = 3;
        }
    }
    // libinjection as one more opinion
    let li = s.len() <= 8192 && libinjectionrs::detect_sqli(ctx.value.as_bytes()).is_injection();
    match (&best, li) {
        (Some(b), _) => {
            let mut score = b.score;
            if li && score < 8 {
                score += 3;
            }
            out.push(Hit::new(
                AttackClass::Sqli,
                b.rule,
                score,
                util::excerpt_at(ctx.value, b.at, 80),
            ));
        }
        (None, true) => {
            // libinjection alone: blocks only with structural support
            let support = weak_support(s, &toks_all(s));
            let score = 3 + support;
            out.push(Hit::new(
                AttackClass::Sqli,
                "SQLI-020",
                score,
                util::excerpt(ctx.value, 80),
            ));
        }
        _ => {}
    }
}

fn toks_all(s: &str) -> Vec<Token> {
    let mut v = Vec::new();
    lex(s, 0, &mut v);
    v
}

/// Weak structural signals (0..=3) used to confirm libinjection's opinion.
fn weak_support(s: &str, t: &[Token]) -> u32 {
    let mut n = 0;
    let has = |k: Tk| t.iter().any(|x| x.kind == k);
    if has(Tk::Comment) || has(Tk::ExecComment) {
        n += 1;
    }
    if t.iter().any(|x| matches!(x.kind, Tk::Func(true))) {
        n += 1;
    }
    if t.iter().any(|x| {
        matches!(
            x.kind,
            Tk::Kw(Kw::Select) | Tk::Kw(Kw::Union) | Tk::Kw(Kw::Exec) | Tk::Kw(Kw::Delete) | Tk::Kw(Kw::Insert)
        )
    }) {
        n += 1;
    }
    if has(Tk::Logic) && t.iter().any(|x| x.kind == Tk::Cmp && is_eq_op(&s[x.start..x.end])) {
        n += 1;
    }
    if has(Tk::Var) {
        n += 1;
    }
    if t.windows(2)
        .any(|w| matches!(w[0].kind, Tk::Str(_)) && matches!(w[1].kind, Tk::Arith | Tk::Logic | Tk::Cmp))
    {
        n += 1;
    }
    if t.windows(2).any(|w| w[0].kind == Tk::LParen && w[1].kind == Tk::LParen) {
        n += 1;
    }
    n.min(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn score(v: &str) -> u32 {
        let p = rampart_inspect::Point {
            path: "q".into(),
            value: v.into(),
            chain: vec![],
            location: rampart_inspect::Location::Query,
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
        for a in [
            "1' OR '1'='1",
            "1 union select 1,2,3--",
            "-1 UNION/**/SELECT password FROM users",
            "admin'--",
            "1; DROP TABLE users",
            "' and sleep(5)#",
            "1 AND 1=1",
            "x' AND extractvalue(1,concat(0x7e,version()))--",
            "/*!50000union*/ /*!50000select*/ 1",
            "') or ('a'='a",
            "1' order by 3--",
            "'; exec xp_cmdshell 'dir'--",
            "1 or 1=1",
        ] {
            assert!(score(a) >= 5, "{a}: {}", score(a));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "O'Brien",
            "Please select the best option from the list and order by price",
            "I'd like to update my profile; thanks",
            "rock 'n' roll or jazz",
            "DRESS WITH HAT 18';",
            "20 SET 3",
            "We can't drop everything, or can we?",
            "john or@var.es",
            "SELECT is a SQL keyword",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }

    proptest::proptest! {
        #[test]
        fn lexer_never_panics(s in "\\PC{0,300}") {
            let mut v = Vec::new();
            lex(&s.to_ascii_lowercase(), 0, &mut v);
            let _ = score(&s);
        }
    }

    #[test]
    fn linear_on_pathological() {
        let s = "'/*".repeat(20000) + &"(".repeat(50000);
        let t = std::time::Instant::now();
        let _ = score(&s);
        assert!(t.elapsed().as_millis() < 2000);
    }
}
