//! SQL injection: a SQL lexer (MySQL / MSSQL / PostgreSQL / Oracle / SQLite
//! flavoured) and scoring of what the token stream would do when the value
//! is pasted into a query, in three contexts: as-is (numeric context), and
//! inside a single- or double-quoted string literal.
//!
//! libinjection (via libinjectionrs) is one more opinion: it adds a small
//! score that only blocks together with a signal of our own.

use crate::{util, AttackClass, Ctx, Hit};

#[path = "sqli_grammar.rs"]
mod grammar;
use grammar::End;

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
    "dbms_lock.sleep",
    "utl_inaddr.get_host_address",
    "utl_http.request",
    "db_name",
    "lpad",
    "rpad",
    "compress",
    "uncompress",
    "coercibility",
    "charset",
    "collation",
    "benchmark",
    "strcomp",
    "unicode",
    "soundex",
    "pg_sleep_for",
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
    "pg_sleep_for",
    "dbms_lock.sleep",
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
    IDENT[c as usize]
}

/// Bytes of an identifier after its first: a table, asked for every byte of every word of every value
/// the SQL lexer reads (several times a value).
static IDENT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.' || b >= 0x80;
        c += 1;
    }
    t
};

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
                // 1e1union: number glued to a word is still a number token;
                // 1dunion / 1funion: a float / double suffix (Oracle) glued
                // to a keyword
                if i + 1 < n && matches!(b[i], b'd' | b'f') && is_ident_start(b[i + 1]) {
                    let mut j = i + 1;
                    while j < n && b[j].is_ascii_alphabetic() {
                        j += 1;
                    }
                    if keyword(&s[i + 1..j]).is_some() {
                        i += 1;
                    }
                }
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
                i += b[i..].iter().position(|&c| !is_ident(c)).unwrap_or(n - i);
                // select.2 / union.select: a keyword glued to a dot ends there
                // (a byte scan: words are short, and a searcher costs more to set up than to run)
                if let Some(d) = b[start..i].iter().position(|&c| c == b'.') {
                    if d > 0
                        && matches!(
                            keyword(&s[start..start + d]),
                            Some(Tk::Kw(Kw::Select)) | Some(Tk::Kw(Kw::Union)) | Some(Tk::Kw(Kw::From))
                        )
                    {
                        i = start + d;
                    }
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

/// A procedural statement that starts at token j (after a `;`).
fn stacked_statement(s: &str, t: &[Token], j: usize) -> bool {
    let w = |k: usize| t.get(k).map(|x| &s[x.start..x.end]).unwrap_or("");
    let k1 = skip_c(t, j + 1);
    match w(j) {
        // IF 1=1 DROP .. / IF EXISTS (..) / WHILE 1=1 SHUTDOWN
        "if" | "while" => {
            let mut k = k1;
            let end = (k1 + 12).min(t.len());
            let mut cond = false;
            while k < end {
                match t[k].kind {
                    Tk::Cmp | Tk::Func(_) | Tk::LParen => cond = true,
                    Tk::Kw(Kw::Drop)
                    | Tk::Kw(Kw::Shutdown)
                    | Tk::Kw(Kw::Select)
                    | Tk::Kw(Kw::Delete)
                    | Tk::Kw(Kw::Insert)
                    | Tk::Kw(Kw::Update)
                    | Tk::Kw(Kw::Exec)
                    | Tk::Kw(Kw::Waitfor)
                    | Tk::Kw(Kw::Begin) => return cond,
                    _ => {}
                }
                k += 1;
            }
            cond && w(k1) == "exists"
        }
        "begin" => matches!(
            sig(t, k1),
            Some(Tk::Kw(Kw::Declare)) | Some(Tk::Kw(Kw::Shutdown)) | Some(Tk::Func(true)) | Some(Tk::Kw(Kw::Exec))
        ),
        "call" => matches!(sig(t, k1), Some(Tk::Func(_))),
        "do" => sig(t, j) == Some(Tk::Func(false)),
        "load" => matches!(w(k1), "data" | "xml") && t[k1..].iter().take(6).any(|x| &s[x.start..x.end] == "infile"),
        "goto" => sig(t, k1) == Some(Tk::Word),
        _ => false,
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
                    Some(Tk::Kw(Kw::Select)) => select_shape(s, t, j),
                    Some(Tk::Kw(Kw::Drop)) | Some(Tk::Kw(Kw::Truncate)) | Some(Tk::Kw(Kw::Alter)) => {
                        matches!(after, Some(Tk::Kw(Kw::Table)) | Some(Tk::Word))
                            && (quote_ctx
                                || t.iter().any(|x| x.kind == Tk::Kw(Kw::Table))
                                || (i <= 2 && t[n - 1].kind == Tk::Comment))
                    }
                    Some(Tk::Kw(Kw::Delete)) => {
                        // DELETE [LOW_PRIORITY] [QUICK] [IGNORE] FROM
                        let mut k = skip_c(t, j + 1);
                        while k < n
                            && k < j + 5
                            && matches!(&s[t[k].start..t[k].end], "low_priority" | "quick" | "ignore")
                        {
                            k += 1;
                        }
                        sig(t, k) == Some(Tk::Kw(Kw::From))
                    }
                    Some(Tk::Kw(Kw::Insert)) => after == Some(Tk::Kw(Kw::Into)),
                    Some(Tk::Kw(Kw::Update)) => {
                        after == Some(Tk::Word) && sig(t, skip_c(t, j + 2)) == Some(Tk::Kw(Kw::Set))
                    }
                    Some(Tk::Kw(Kw::Exec)) => {
                        let w = t.get(skip_c(t, j + 1)).map(|x| &s[x.start..x.end]).unwrap_or("");
                        matches!(
                            after,
                            Some(Tk::Func(_)) | Some(Tk::LParen) | Some(Tk::Var) | Some(Tk::Kw(Kw::As))
                        ) || w == "immediate"
                            || w.starts_with("xp_")
                            || w.starts_with("sp_")
                            || w.starts_with("master.")
                            || w.starts_with("dbo.")
                    }
                    Some(Tk::Kw(Kw::Declare)) => after == Some(Tk::Var),
                    Some(Tk::Kw(Kw::Shutdown)) => true,
                    Some(Tk::Kw(Kw::Waitfor)) => after == Some(Tk::Kw(Kw::Delay)),
                    // `SET @v`: a variable with a name (`;set @` alone is a fragment of nothing)
                    Some(Tk::Kw(Kw::Set)) => {
                        after == Some(Tk::Var) && t.get(skip_c(t, j + 1)).is_some_and(|v| v.end - v.start >= 2)
                    }
                    Some(Tk::Kw(Kw::Create)) => matches!(after, Some(Tk::Kw(Kw::Table)) | Some(Tk::Word)) && quote_ctx,
                    Some(Tk::Func(true)) => quote_ctx || i <= 2,
                    // procedural statements: IF cond stmt, WHILE cond stmt,
                    // BEGIN .., CALL p(..), DO (..), LOAD DATA/XML .. INFILE,
                    // EXECUTE AS, GOTO label
                    Some(Tk::Kw(Kw::Begin)) | Some(Tk::Word) | Some(Tk::Func(false)) => {
                        (quote_ctx || i <= 2) && stacked_statement(s, t, j)
                    }
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
                // `name=(select` ending the value: a subquery assigned to a
                // parameter, cut where the host's query goes on
                if i + 1 == n && i >= 2 && t[i - 1].kind == Tk::LParen && t[i - 2].kind == Tk::Cmp {
                    better(out, 5, "SQLI-008", tok.start);
                }
                if select_shape(s, t, i) {
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
                // exec/**/xp_cmdshell
                let w = t.get(skip_c(t, i + 1)).map(|x| &s[x.start..x.end]).unwrap_or("");
                if w.starts_with("xp_") || w.starts_with("sp_") || w.starts_with("master.") {
                    better(out, 8, "SQLI-007", tok.start);
                }
            }
            Tk::Kw(Kw::As) => {
                // ) as alias from  -- the tail of an injected select list;
                // 1 as "alias" from: a quoted alias after a literal
                let quoted_alias = t
                    .get(i + 1)
                    .is_some_and(|x| x.kind == Tk::Str(true) || (x.kind == Tk::Word && s.as_bytes()[x.start] == b'`'));
                let item = i > 0
                    && (t[i - 1].kind == Tk::RParen
                        || (quoted_alias && matches!(t[i - 1].kind, Tk::Num | Tk::Str(true) | Tk::Word)));
                if item
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
                // `information_schema`.tables: quoted identifiers too
                let w = s[tok.start..tok.end].trim_start_matches(['`', '[']);
                if SYS_OBJECTS.iter().any(|o| w.starts_with(o)) {
                    better(out, 6, "SQLI-010", tok.start);
                } else if i > 0
                    && matches!(t[i - 1].kind, Tk::Kw(Kw::Select) | Tk::Kw(Kw::Exec))
                    && (TIME_FUNCS.contains(&w) || DANGER.contains(&w))
                {
                    // `select pg_sleep`, `exec xp_cmdshell` without the call
                    better(out, 6, "SQLI-007", tok.start);
                }
            }
            _ => {}
        }
    }
    let _ = kw_count;
    grammar_score(s, t, quote_ctx, out);

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
        // MSSQL needs no `;` between statements: x' DECLARE @v ..
        Tk::Kw(Kw::Declare) if quote_ctx && sig(t, i + 1) == Some(Tk::Var) => better(out, 8, "SQLI-002", at),
        _ => {}
    }
}

/// Score the token stream by the SQL expression grammar: the value is a
/// complete continuation of the host query (see [`grammar`]).
fn grammar_score(s: &str, t: &[Token], quote_ctx: bool, out: &mut Option<Scored>) {
    if t.len() < 2 {
        return;
    }
    let shape = if quote_ctx {
        grammar::quoted(s, t)
    } else {
        grammar::numeric(s, t)
    };
    let Some(sh) = shape else {
        return;
    };
    let end = sh.end.unwrap_or(End::Eof);
    if end == End::OpenStr && !reopened_literal(&s[t[t.len() - 1].start..]) {
        return;
    }
    let at = t[if quote_ctx { 1 } else { 0 }].start;
    let strong_end = matches!(end, End::Comment(_) | End::OpenStr | End::Semi);
    let mut score: u32 = 0;
    let mut bump = |v: u32| {
        score = if score == 0 { v } else { score.max(v) + 1 };
    };
    if quote_ctx {
        // closing the literal and continuing the expression: ' op expr '
        if sh.binops > 0 || sh.clause {
            bump(if strong_end { 2 } else { 1 });
        }
        if sh.logic > 0 && sh.const_cmp {
            bump(5);
        } else if sh.logic > 0 {
            // ' or 1 / 'or current_date*0
            bump(2);
        }
        if sh.known_funcs > 0 {
            bump(4);
        }
        if sh.case_expr || sh.subquery {
            bump(6);
        }
        if sh.clause && strong_end {
            bump(5);
        }
        if sh.code_unary > 0 && strong_end {
            bump(3);
        }
        // A bare `' op '` (one operator between the closed and the
        // re-opened literal) is weak evidence; prose quotes words that way
        // (`the "like" stamp`, `small "&" sign`). Keep it only for a single
        // quote, a prefix that is one token, and a symbolic operator unless
        // the prefix is glued to the quote.
        let q = t[0].end.saturating_sub(1);
        let quote = s.as_bytes()[q];
        let prefix = &s[..q];
        let word_op = s.as_bytes().get(t[1].start).is_some_and(|c| c.is_ascii_alphabetic());
        let bare = sh.binops == 1 && end == End::OpenStr && t.len() <= 4;
        if bare && score < 5 {
            let one_token = !prefix.trim().contains(char::is_whitespace);
            let glued = !prefix.ends_with(char::is_whitespace);
            let keep = one_token
                && (!word_op || glued)
                && (quote == b'\'' || sh.code_unary > 0 || (glued && !prefix.is_empty()));
            if !keep {
                score = 0;
            }
        }
    } else {
        // numeric / identifier context: the whole value is an expression
        if sh.from_first && sh.clauses < 2 {
            // `from home`: a lone FROM is prose
            return;
        }
        if sh.from_first {
            // `FROM tbl WHERE ..` / `FROM tbl GROUP BY ..`: a query tail
            bump(5);
        }
        if sh.op_first && ((sh.const_cmp && sh.idents == 0) || sh.subquery) {
            // `in (1,2)`, `is not null`, `rlike '^a'`: the right-hand side
            // of a comparison whose left operand is the host query's
            bump(5);
        }
        let first = t
            .iter()
            .find(|x| !matches!(x.kind, Tk::Arith | Tk::LParen | Tk::Comment | Tk::ExecComment));
        let lead_num = first.is_some_and(|x| x.kind == Tk::Num);
        let lead_word = first.is_some_and(|x| matches!(x.kind, Tk::Word | Tk::Num));
        if let End::Comment(empty) = end {
            if sh.idents > 0 {
                // `id-token--`: an identifier-like value, not an expression
            } else if sh.binops > 0 || sh.code_unary > 0 || sh.funcs + sh.known_funcs > 0 {
                bump(3);
            } else if empty && !sh.list && (lead_num || t[0].kind == Tk::LParen) {
                bump(2);
            }
            // `1-- sp_password`: hides the statement from MSSQL's trace log
            if s[t[t.len() - 1].start..].contains("sp_password") {
                bump(6);
            }
            if sh.clause_first && sh.clause {
                bump(4);
            }
        }
        if sh.logic > 0 && sh.const_cmp && lead_word {
            bump(6);
        }
        if sh.clause {
            bump(if lead_num { 4 } else { 3 });
        }
        if sh.union_tail && lead_num {
            bump(3);
        }
        if sh.case_expr {
            bump(5);
        }
        if sh.subquery {
            bump(6);
        }
        if sh.known_funcs >= 2 {
            bump(4);
        } else if sh.known_funcs == 1 && (sh.binops > 0 || sh.logic > 0) {
            bump(2);
        }
    }
    if score > 0 {
        better(out, score.min(8), "SQLI-014", at);
    }
}

/// The literal an injection re-opens for the host query's closing quote is
/// a short dummy operand (`'1`, `'a`, `'x' = 'x`), not a run of text or
/// markup.
fn reopened_literal(lit: &str) -> bool {
    let body = &lit[1.min(lit.len())..];
    body.len() <= 32 && !body.contains(['<', '>']) && (body.is_empty() || !body.bytes().all(|c| c == lit.as_bytes()[0]))
}

fn is_eq_op(op: &str) -> bool {
    matches!(op, "=" | "==" | "!=" | "<>" | "<=>")
}

/// `select` followed by a select list that looks like SQL (a function, a
/// number, `*`, a variable, a string, a column list) and a FROM or a
/// function in it.
fn select_shape(s: &str, t: &[Token], i: usize) -> bool {
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
    // code-only items: a call, a variable, `(case`, a hex literal
    let code_item = (i + 1..j.min(n)).any(|k| match t[k].kind {
        Tk::Func(_) | Tk::Var | Tk::ExecComment => true,
        Tk::Kw(Kw::Case) | Tk::Kw(Kw::Select) => t[k - 1].kind == Tk::LParen,
        Tk::Num => t[k].end - t[k].start >= 6 && s[t[k].start..].starts_with("0x"),
        _ => false,
    });
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
    // fragments: short values that are a piece of a query rather than a
    // whole injection (see `fragments`); read from the as-is tokens, they
    // count only where nothing else scores 5 or more
    let mut frag: Option<Scored> = None;
    if s.len() <= 48 {
        fragments(s, &toks, &mut frag);
    }
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
            // `x''y' and ..`: a doubled quote is an escaped one inside the
            // literal; the break-out is the first quote that is not doubled
            if s.as_bytes().get(p + 1) == Some(&q) {
                if let Some(p2) = first_single_quote(s.as_bytes(), q, p) {
                    toks.clear();
                    toks.push(Token {
                        kind: Tk::Str(true),
                        start: 0,
                        end: p2 + 1,
                    });
                    lex(s, p2 + 1, &mut toks);
                    score_tokens(s, &toks, true, &mut best);
                }
            }
        }
    }
    if let Some(f) = frag {
        better(&mut best, f.score, f.rule, f.at);
    }
    // a DDL statement as the whole value: `ALTER TABLE t ADD ..`
    if best.as_ref().is_none_or(|b| b.score < 5) && s.len() <= 512 {
        ddl_statement(s, &mut toks, &mut best);
    }
    // prose discount: natural-language text that merely mentions SQL
    if let Some(b) = &mut best {
        if b.rule == "SQLI-008" && s.len() > 60 && util::prose_ratio(s) > 0.75 {
            b.score = 3;
        }
    }
    // libinjection as one more opinion; not asked about prose in which our lexer found nothing (its
    // tokenizer is the costliest step for a sentence with apostrophes, and alone it scores 3 at most
    // there: weak support cannot come from prose)
    let prose = best.is_none() && s.len() > 40 && util::prose_ratio(s) > 0.85;
    let li = !prose && s.len() <= 8192 && libinjectionrs::detect_sqli(ctx.value.as_bytes()).is_injection();
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
            // libinjection alone: blocks only with structural support. A single bare token (no space,
            // quote, bracket, `--`, `/*` or SQL word: a generated password such as `J%@NRf9mVB#i#g`) gets
            // none: its `@` and `#` are characters, not a variable and a comment.
            let toks = toks_all(s);
            let bare = !s.contains(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '(' | ')'))
                && !s.contains("--")
                && !s.contains("/*")
                && !toks
                    .iter()
                    .any(|x| matches!(x.kind, Tk::Kw(_) | Tk::Logic | Tk::Func(_) | Tk::Str(_)));
            let support = if bare { 0 } else { weak_support(s, &toks) };
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

/// SQL built-ins that, opened as a call with nothing after the `(`, make
/// up a whole value only as a fragment of a query (`floor(`, `concat (`).
const OPENER_FUNCS: &[&str] = &[
    "abs",
    "cos",
    "sin",
    "tan",
    "acos",
    "asin",
    "atan",
    "cot",
    "ln",
    "log",
    "log2",
    "log10",
    "pow",
    "exp",
    "sign",
    "ceil",
    "ceiling",
    "date",
    "time",
    "day",
    "month",
    "year",
    "hour",
    "minute",
    "second",
    "quarter",
    "week",
    "weekday",
    "dayname",
    "monthname",
    "curdate",
    "curtime",
    "sysdate",
    "datediff",
    "date_add",
    "date_sub",
    "date_format",
    "str_to_date",
    "from_unixtime",
    "unix_timestamp",
    "format",
    "ltrim",
    "rtrim",
    "lcase",
    "ucase",
    "insert",
    "encode",
    "default",
    "password",
    "old_password",
    "encrypt",
    "aes_encrypt",
    "aes_decrypt",
    "des_encrypt",
    "sha2",
    "crc32",
    "octet_length",
    "export_set",
    "field",
    "found_rows",
    "truncate",
    "values",
    "stddev",
    "variance",
    "localtime",
    "localtimestamp",
    "utc_time",
    "utc_date",
    "load_file",
    "extract",
    "weight_string",
    "inet_aton",
    "inet_ntoa",
    "is_ipv4",
    "benchmark",
    "sleep",
    "user",
    "database",
    "schema",
    "version",
];

/// Procedures, packages and system databases that only a SQL server has.
const SQL_ONLY_NAMES: &[&str] = &[
    "sp_password",
    "sp_configure",
    "sp_addlogin",
    "sp_addsrvrolemember",
    "utl_http",
    "utl_inaddr",
    "utl_file",
    "dbms_pipe",
    "dbms_lock",
    "dbms_java",
    "tempdb",
    "msdb",
    "information_schema",
    "sqlite_master",
    "pg_catalog",
    // OLE DB providers that OPENROWSET / OPENDATASOURCE load on SQL Server
    "msdasql",
    "sqloledb",
    "sqlncli",
    "msoledbsql",
    // Access's system tables
    "msysobjects",
    "msysaccessobjects",
    "msysqueries",
];

fn opener_func(name: &str) -> bool {
    OPENER_FUNCS.contains(&name) || FUNCS.contains(&name)
}

/// Short values that are a fragment of a query: the attacker supplies one
/// piece and the host query the rest. Each shape is code-only: prose,
/// names and search terms do not take it.
fn fragments(s: &str, t: &[Token], best: &mut Option<Scored>) {
    let n = t.len();
    if n == 0 {
        return;
    }
    let txt = |k: usize| t.get(k).map(|x| &s[x.start..x.end]).unwrap_or("");
    // mostly words and spaces: the shapes that prose can take need code
    let wordy = || util::prose_ratio(s) >= 0.9;
    // a call of a SQL-specific function (`ascii(`, `xmltype(x)`)
    let fcall = t
        .iter()
        .position(|x| matches!(x.kind, Tk::Func(true)) && FRAGMENT_FUNCS.contains(&func_name(s, x)))
        .filter(|_| !wordy());
    if let Some(fi) = fcall {
        let x = t[fi];
        let glued = s.as_bytes().get(x.end) == Some(&b'(');
        if glued && fi <= 2 && x.end - x.start >= 3 {
            better(best, 5, "SQLI-012", x.start);
        }
    }
    // a SQL built-in opened as a call and nothing else: `floor(`,
    // `concat /**/ (`, `if !(`: the arguments come from elsewhere
    if n <= 7 && t[n - 1].kind == Tk::LParen && s.len() <= 24 {
        let name = func_name(s, &t[0]);
        let named = match t[0].kind {
            Tk::Func(_) | Tk::Word => opener_func(name),
            Tk::Kw(Kw::Values) | Tk::Kw(Kw::Insert) | Tk::Kw(Kw::Exec) => true,
            Tk::Cmp => name == "in",
            _ => false,
        };
        // between the name and the `(` only operators or punctuation
        let glue = t[1..n - 1].iter().all(|x| {
            matches!(
                x.kind,
                Tk::Cmp | Tk::Logic | Tk::Arith | Tk::Other | Tk::RParen | Tk::Comment
            )
        });
        if named && glue && name.len() >= 2 {
            better(best, 5, "SQLI-012", t[0].start);
        }
    }
    // a logic operator, then a comparison: `|| a ==`, `or x= '`,
    // `&&(null!=`, `OR (3=4)`
    let lead = s.trim_start();
    let logic_word = ["or ", "or(", "and ", "and(", "xor ", "||", "&&"]
        .iter()
        .any(|w| lead.starts_with(w));
    if logic_word && matches!(t[0].kind, Tk::Logic | Tk::Arith) && !wordy() {
        let mut k = 1;
        while k < n && k < 4 && t[k].kind == Tk::LParen {
            k += 1;
        }
        let operand = |k: Tk| matches!(k, Tk::Word | Tk::Num | Tk::Str(_) | Tk::Var | Tk::Kw(Kw::Null));
        if k + 1 < n && operand(t[k].kind) && t[k + 1].kind == Tk::Cmp {
            let op = txt(k + 1);
            let symbolic = !op.as_bytes()[0].is_ascii_alphabetic();
            // `or a = b` with a word operand in prose needs the `=`
            if is_eq_op(op) || (symbolic && (k > 1 || t[k].kind != Tk::Word)) {
                better(best, 5, "SQLI-013", 0);
            }
        }
    }
    // a tautology as the whole value: `1=1`, `'a'='a'`, `2!=3`,
    // `x,1=1`
    if n >= 3 {
        let (a, op, b) = (t[n - 3], t[n - 2], t[n - 1]);
        let lit = |x: Token| matches!(x.kind, Tk::Num | Tk::Str(true));
        let before_ok = n == 3 || (n <= 5 && t[n - 4].kind == Tk::Comma);
        if before_ok && lit(a) && lit(b) && op.kind == Tk::Cmp {
            let (va, vb) = (&s[a.start..a.end], &s[b.start..b.end]);
            let truth = match &s[op.start..op.end] {
                "=" | "==" | "<=>" => va == vb,
                "!=" | "<>" => va != vb,
                _ => false,
            };
            if truth {
                better(best, 5, "SQLI-013", a.start);
            }
        }
    }
    // the name of a SQL-only procedure, package, system database or OLE DB provider as the whole
    // value, bare or as a string literal: `xp_cmdshell`, `utl_http`, `tempdb`, `'msdasql'`
    if n == 1 && matches!(t[0].kind, Tk::Word | Tk::Str(true)) {
        let w = txt(0);
        let w = if t[0].kind == Tk::Word { w } else { &w[1..w.len() - 1] };
        if DANGER.contains(&w) || SQL_ONLY_NAMES.contains(&w) {
            better(best, 5, "SQLI-010", 0);
        }
    }
    // `<=>` (MySQL's null-safe equality) leading the value
    if lead.starts_with("<=>") {
        better(best, 5, "SQLI-013", 0);
    }
    // statements that only SQL has, leading the value
    let k1 = skip_c(t, 1);
    match t[0].kind {
        // `declare @v` (MSSQL variable)
        Tk::Kw(Kw::Declare) if sig(t, k1) == Some(Tk::Var) && txt(k1).len() >= 2 => better(best, 5, "SQLI-002", 0),
        // `execute immediate` (Oracle dynamic SQL), `exec xp_..`
        Tk::Kw(Kw::Exec) if txt(k1) == "immediate" => better(best, 5, "SQLI-002", 0),
        // `procedure analyse(` (MySQL)
        Tk::Kw(Kw::Procedure) if matches!(sig(t, k1), Some(Tk::Func(_))) && txt(k1) == "analyse" => {
            better(best, 5, "SQLI-006", 0)
        }
        // `drop tbl;--`: a statement closed and the rest commented out
        Tk::Kw(Kw::Drop) | Tk::Kw(Kw::Truncate) => {
            let mut k = k1;
            if sig(t, k) == Some(Tk::Kw(Kw::Table)) {
                k += 1;
            }
            if sig(t, k) == Some(Tk::Word) && sig(t, k + 1) == Some(Tk::Semi) && k + 3 >= n {
                better(best, 5, "SQLI-002", 0);
            }
        }
        _ => {}
    }
    // `SET @v` or `SET @v =` as the whole value, or after one operator (`>SET @OLD_SQL_NOTES`): a
    // MySQL user-variable assignment; `set @alice as reviewer` goes on in words
    let k0 = usize::from(matches!(t[0].kind, Tk::Cmp | Tk::Other));
    if sig(t, k0) == Some(Tk::Kw(Kw::Set))
        && sig(t, k0 + 1) == Some(Tk::Var)
        && txt(k0 + 1).len() >= 3
        && (k0 + 2 >= n || sig(t, k0 + 2) == Some(Tk::Cmp))
    {
        better(best, 5, "SQLI-002", t[k0].start);
    }
    // a break-out from a quoted identifier into the tail of a select
    // list: `` ` AS `alias` FROM ``
    if lead.starts_with('`') {
        let mut v = Vec::new();
        lex(s, s.len() - lead.len() + 1, &mut v);
        let t = &v[..];
        let quoted = |x: &Token| x.kind == Tk::Str(true) || (x.kind == Tk::Word && s.as_bytes()[x.start] == b'`');
        if sig(t, 0) == Some(Tk::Kw(Kw::As)) && t.get(1).is_some_and(quoted) && sig(t, 2) == Some(Tk::Kw(Kw::From)) {
            better(best, 5, "SQLI-011", 0);
        }
        return;
    }
    // a break-out quote opening the value, then a statement: `'union/`,
    // `" UNION A`, `';select x`, `;drop`. The quote is the only one of its
    // kind in the value (prose quotes in pairs).
    let b = s.as_bytes();
    let lead_at = s.len() - lead.len();
    let q = b.get(lead_at).copied().filter(|c| matches!(c, b'\'' | b'"'));
    let from = lead_at + q.map_or(0, |_| 1);
    let lone_quote = q.is_some_and(|q| memchr::memchr(q, &b[from..]).is_none());
    if lone_quote || (q.is_none() && t[0].kind == Tk::Semi) {
        let relexed;
        let t: &[Token] = if lone_quote {
            let mut v = Vec::new();
            lex(s, from, &mut v);
            relexed = v;
            &relexed
        } else {
            t
        };
        let verb = |k: Option<Tk>| {
            matches!(
                k,
                Some(Tk::Kw(Kw::Select))
                    | Some(Tk::Kw(Kw::Union))
                    | Some(Tk::Kw(Kw::Drop))
                    | Some(Tk::Kw(Kw::Update))
                    | Some(Tk::Kw(Kw::Delete))
                    | Some(Tk::Kw(Kw::Insert))
                    | Some(Tk::Kw(Kw::Alter))
                    | Some(Tk::Kw(Kw::Create))
                    | Some(Tk::Kw(Kw::Truncate))
                    | Some(Tk::Kw(Kw::Shutdown))
                    | Some(Tk::Kw(Kw::Exec))
                    | Some(Tk::Kw(Kw::Declare))
            )
        };
        let first = sig(t, 0);
        let k = skip_c(t, 1);
        let stmt = sig(t, k);
        if first == Some(Tk::Semi)
            && verb(stmt)
            && k + 2 >= t.len()
            && (q.is_some() || stmt != Some(Tk::Kw(Kw::Select)))
        {
            // `;drop`, `';select p`: a stacked statement
            better(best, 5, "SQLI-002", 0);
        } else if q.is_some()
            && t.len() <= 2
            && matches!(
                first,
                Some(Tk::Kw(Kw::Union)) | Some(Tk::Kw(Kw::Select)) | Some(Tk::Kw(Kw::Alter))
            )
            && t.get(1).is_none_or(|x| match x.kind {
                // `'union/`, `'select x`: no prose continues that way
                Tk::Word => x.end - x.start == 1,
                Tk::Kw(_) => first == Some(Tk::Kw(Kw::Union)),
                Tk::Str(false) => false,
                _ => true,
            })
        {
            // `'union/`, `" UNION A`: a break-out into a union / select
            better(best, 5, "SQLI-001", 0);
        }
    }
}

/// A DDL statement as the whole value: `ALTER TABLE t ADD ..`,
/// `CREATE TABLE t (..`. Prose that mentions creating a table does not
/// name it and go on with a column clause.
fn ddl_statement(s: &str, toks: &mut Vec<Token>, best: &mut Option<Scored>) {
    let lead = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/' || c == ';');
    if !(lead.starts_with("alter") || lead.starts_with("create")) {
        return;
    }
    toks.clear();
    lex(s, s.len() - lead.len(), toks);
    let t = &toks[..];
    if !matches!(sig(t, 0), Some(Tk::Kw(Kw::Alter)) | Some(Tk::Kw(Kw::Create))) || sig(t, 1) != Some(Tk::Kw(Kw::Table))
    {
        return;
    }
    let k = if t.get(2).is_some_and(|x| &s[x.start..x.end] == "if") {
        // IF [NOT] EXISTS
        t.iter()
            .skip(2)
            .take(4)
            .position(|x| &s[x.start..x.end] == "exists")
            .map(|p| p + 3)
    } else {
        Some(2)
    };
    let Some(k) = k else {
        return;
    };
    if !matches!(sig(t, k), Some(Tk::Word) | Some(Tk::Func(_))) {
        return;
    }
    let next = t.get(k + 1);
    let quoted = s.as_bytes()[t[k].start] == b'`';
    let ok = match next {
        None => quoted,
        Some(x) => {
            x.kind == Tk::LParen
                || matches!(
                    &s[x.start..x.end],
                    "add" | "change" | "modify" | "rename" | "engine" | "convert" | "charset"
                )
                || (x.kind == Tk::Kw(Kw::Drop) && t.len() > k + 2)
        }
    };
    if ok {
        better(best, 5, "SQLI-002", t[0].start);
    }
}

/// First occurrence of quote `q` at or after `from` that is not doubled.
fn first_single_quote(b: &[u8], q: u8, from: usize) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
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
        crate::max_score_of(check, v)
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
            "1; set @v=1",
            " SET @OLD_SQL_NOTES",
            ">SET @saved_cs_client",
            "SET @x := (select 1)",
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
            ";set @",
            "set @alice as reviewer",
            "Please set @here for the channel",
            // generated passwords
            "J%@NRf9mVB#i#g",
            "x7#Qp@2zL!9w",
        ] {
            assert!(score(b) < 5, "{b}: {}", score(b));
        }
    }

    /// Construct families recognised by the expression grammar (SQLI-014)
    /// and the extended stacked-statement rule. Scores include the
    /// libinjection opinion, as in production.
    #[test]
    fn grammar_families() {
        let mut bad = vec![];
        for a in [
            // numeric context: constant comparison joined by logic
            "price AND 7=4",
            "5 || 2 = 2",
            "(7)*col XOR 3=(3)",
            "10 and 2 not between 5 and 9",
            "3 or item_id is not null",
            // expression closed by a comment
            "42 * 2 --",
            "( binary ( 'z' ) ) --",
            ".5or-utc_time--",
            // clauses
            "77 group by 2,name having 2=2",
            "9,8 order by 12",
            "12) order by 1",
            "limit 3,1 #",
            // CASE / subqueries / nested functions
            "case 4 when 4 then 1 else 0 end",
            "bar,(select (case when (5=6) then 2 else 3 end))",
            "(select name from accounts limit 2,1)",
            "length(uncompress(version()))",
            // quote context: operator chains ending in a re-opened literal
            "zz' ^ 7 or 'q",
            "k'-!3 regexp'1",
            "m' % 4 like '2",
            "x'&(9)='x",
            "q' is 42 = '",
            "w'IS NOT NULL or+3=+'3",
            "n' sounds like (select case(2=2) when '1' then 'n' end) and '1",
            "r' between 2 and 4 or 0x62 like 'b",
            // doubled-quote escapes before the break-out
            "ab''cd' and (2=pi())--",
            // stacked procedural statements
            "7; delete quick from t",
            "2;load data infile 'x'",
            "';if 2=2 drop table t-- x",
            "'; while 2=2 shutdown--",
            "5;call proc(@a)",
            "x' declare @q varchar(10)",
            // number suffix glued to a keyword
            "3dunion select 4",
        ] {
            if score(a) < 5 {
                bad.push(format!("{a}: {}", score(a)));
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn grammar_benign_shapes() {
        let mut bad = vec![];
        for b in [
            // names and apostrophes
            "O'Brien and O'Neil",
            "Tom's and Jerry's",
            "It's 5' - 6' tall? no, 5'10\"",
            // prose quoting an operator word
            "the 'and' operator",
            "use the \"like\" button",
            "select 'or' to widen the search",
            "\"is\" stamp",
            "where's the order?",
            "\"WHERE'S GEORGE\"",
            // quoted search terms and sizes
            "necklace 16\" or 18\"",
            "\"red\" and \"blue\" and",
            "frame 36\"+x+48\"",
            "pack (8.5x11\"-300 dpi) --",
            // numbers and operators
            "2+2=4",
            "1,2,3",
            "1,1--",
            "10.00 and under",
            "(new and unique)",
            "price > 10 and rating >= 4",
            "status = active and age > 30",
            "a-b-c--",
            "AbC123xyz-Qr7TUvw0Zz--",
            "2019--2020",
            // markup after a quote
            "<a href=\"/apps/\">galerie d'applications</a>!",
            // emails, paths, dates
            "john.o'hara@example.com",
            "/v1/items/42?order=desc",
            "2024-01-01T10:00:00Z",
            "in case when you need it, then end it",
            "order by date please",
        ] {
            if score(b) >= 5 {
                bad.push(format!("{b}: {}", score(b)));
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    /// Fragments: short values that are one piece of a query (the host
    /// query supplies the rest), and query tails. Scores include the
    /// libinjection opinion, as in production.
    #[test]
    fn fragment_families() {
        let mut bad = vec![];
        for a in [
            // a SQL built-in opened as a call, nothing after
            "ceiling (",
            "date_format(",
            "sha2 /**/ (",
            "values(",
            "in(",
            // logic operator then a comparison
            "or (12=34)",
            "&&(flag!=0)",
            "|| (null == x",
            // a comparison that is always true
            "22=22",
            "'q'='q'",
            "5<>6",
            "id,7=7",
            // stacked statements and SQL-only statements
            "; truncate logs",
            "';delete x",
            "declare @cnt int",
            "execute immediate 'x'",
            "alter table orders add column x int",
            "create table t1 (id int)",
            // break-out quote into a union / select
            "\"union--",
            "'select 1",
            // right-hand side of a comparison the host query starts
            "in (4, 8, 15)",
            "is not null --",
            "rlike '^adm'",
            // query tails
            "FROM accounts GROUP BY region",
            "from orders where total > 0 order by 1",
            "from `shop`.`orders` limit",
            "n=(select",
            "select 0x41424344",
            "select (case",
            "` as `user_alias` from",
            // SQL-only procedures and packages as the whole value
            "xp_regread",
            "dbms_pipe",
        ] {
            if score(a) < 5 {
                bad.push(format!("{a}: {}", score(a)));
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn fragment_benign() {
        let mut bad = vec![];
        for b in [
            // prose that mentions SQL words
            "Please select an item from the list where the price is null or like new",
            "O'Brien's order by phone",
            "from Paris with love",
            "from home limit",
            "from London where it rained",
            "Create table for the kids",
            "create table of contents",
            "create table persons",
            "drop table",
            "the 'union' of two sets",
            "\"select\" the item",
            "'Select all",
            "'Union Jack",
            "'alter ego",
            "Select case type",
            "where is null island?",
            // search filters and math
            "price >= 10 and rating > 4",
            "rating >= 4 and price <= 100",
            "between 1 and 5",
            "like 'this'",
            "in (2 days)",
            "in (London, Paris)",
            "in (stock)",
            "3*(4+5) = 27",
            "(a+b)^2 = a^2 + 2ab + b^2",
            "2+2=4",
            ">=",
            "!=",
            // parentheses in text
            "Meeting time (",
            "see notes (",
            "version 2 (beta)",
            "values (see below)",
            "insert (coin)",
            "user (guest)",
            "and (see above)",
            // semicolons and quotes in text
            ";)",
            "; select your size",
            "; drop me a line",
            "Drop me a line; thanks",
            // markdown with SQL in code
            "Use `SELECT * FROM t WHERE a = 1` to filter",
            "```sql\nselect * from users where id = 1;\n```",
            // type names are data, not attacks
            "varchar",
        ] {
            if score(b) >= 5 {
                bad.push(format!("{b}: {}", score(b)));
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
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
        // the expression grammar: deep nesting, long operator chains, many
        // CASE / function frames
        for s in [
            "1 or (".repeat(5000) + "1=1",
            "' or ".to_string() + &"1+".repeat(20000) + "'1",
            "case when ".repeat(3000) + "1",
            "f(".repeat(5000) + "1",
            "1,".repeat(20000) + "1 order by 1--",
        ] {
            let t = std::time::Instant::now();
            let _ = score(&s);
            assert!(t.elapsed().as_millis() < 2000);
        }
    }
}
