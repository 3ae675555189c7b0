//! A small SQL expression grammar over the tokens of [`super::lex`].
//!
//! It answers one question: read from a given token, is the rest of the
//! value a *complete, well-formed continuation* of a SQL query - an
//! expression chain (operands joined by arithmetic, logic and comparison
//! operators, function calls, parenthesised lists, subqueries, `CASE`),
//! optionally followed by clauses (`FROM .. WHERE`, `GROUP BY`, `HAVING`,
//! `ORDER BY`, `LIMIT`, `UNION`, `FOR UPDATE`) and a terminator that makes the
//! rest of the host query harmless (end of value, a comment, a re-opened
//! string literal that the host query's own closing quote will close, or a
//! stacked statement)? And if so, what did it use (features the caller
//! scores)?
//!
//! Prose almost never parses: two words in a row, a word right after a
//! closed string or a number followed by a word end the expression and the
//! continuation is rejected. The parser is recursive descent with a depth
//! bound; every token is consumed at most once, so it is linear in the
//! number of tokens.

use super::{Kw, Tk, Token};

/// How a valid continuation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// end of value
    Eof,
    /// a comment swallows the rest of the host query; `true` when the
    /// comment has no text of its own (`--`, `#`, `/*`)
    Comment(bool),
    /// a string literal left open for the host query's closing quote
    OpenStr,
    /// `;` then another statement
    Semi,
}

/// Features of a valid continuation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    pub end: Option<End>,
    /// binary operators (arithmetic, logic, comparison)
    pub binops: u32,
    pub logic: u32,
    pub cmp: u32,
    /// a comparison between two constant expressions (`8=3`, `'a'='a'`,
    /// `1+2=(7*3)`, `pi()=3`) joined by a logic operator or standing alone
    pub const_cmp: bool,
    /// calls of known SQL functions
    pub known_funcs: u32,
    /// calls of unknown functions
    pub funcs: u32,
    /// a complete `CASE .. END`
    pub case_expr: bool,
    /// a parenthesised `SELECT` with SQL-only structure
    pub subquery: bool,
    /// `FROM`, `WHERE`, `GROUP BY`, `HAVING`, `ORDER BY`, `LIMIT`, `PROCEDURE`
    pub clause: bool,
    /// `UNION` at the end of the value
    pub union_tail: bool,
    /// the value starts with a clause (`limit 0,1--`)
    pub clause_first: bool,
    /// a top-level comma list (`1,2,3`)
    pub list: bool,
    /// MySQL unary operators that only code uses: `!`, `~`, `BINARY`
    pub code_unary: u32,
    /// operands that are a column / identifier (not literals)
    pub idents: u32,
    /// the value starts with a comparison whose left operand is the host
    /// query's (`in (1,2)`, `is not null`, `rlike '^a'`)
    pub op_first: bool,
    /// the value starts with `FROM table`
    pub from_first: bool,
    /// number of clauses read
    pub clauses: u32,
    /// the FROM table is a quoted or qualified identifier (`` `db`.`t` ``)
    pub from_code: bool,
}

const MAX_DEPTH: u32 = 48;

struct P<'a> {
    s: &'a str,
    t: &'a [Token],
    i: usize,
    depth: u32,
    sh: Shape,
    /// const-ness of the current comparison segment
    seg_const: bool,
    seg_cmp: bool,
    postfix: bool,
}

impl<'a> P<'a> {
    fn kind(&self) -> Option<Tk> {
        self.t.get(self.i).map(|x| x.kind)
    }
    fn kind_at(&self, j: usize) -> Option<Tk> {
        self.t.get(j).map(|x| x.kind)
    }
    fn text(&self) -> &'a str {
        self.t.get(self.i).map(|x| &self.s[x.start..x.end]).unwrap_or("")
    }
    fn text_at(&self, j: usize) -> &'a str {
        self.t.get(j).map(|x| &self.s[x.start..x.end]).unwrap_or("")
    }
    /// Skip inline comments (`/**/` between tokens is whitespace in SQL),
    /// but not a trailing one (that is the terminator).
    fn skip_inline(&mut self) {
        while self.i < self.t.len() && matches!(self.t[self.i].kind, Tk::Comment | Tk::ExecComment) {
            let txt = self.text();
            let is_block = txt.starts_with("/*");
            // a block comment followed by more code is whitespace; a line
            // comment ends the code
            if (is_block || self.t[self.i].kind == Tk::ExecComment) && self.i + 1 < self.t.len() {
                self.i += 1;
            } else {
                break;
            }
        }
    }
    fn bump(&mut self) {
        self.i += 1;
        self.skip_inline();
    }

    fn end_segment(&mut self) {
        if self.seg_cmp && self.seg_const {
            self.sh.const_cmp = true;
        }
        self.seg_cmp = false;
        self.seg_const = true;
    }

    /// Binary operator at the cursor? Consumes it (and its companion words:
    /// `NOT LIKE`, `SOUNDS LIKE`, `IS NOT`) and returns true.
    fn binop(&mut self) -> bool {
        let Some(k) = self.kind() else {
            return false;
        };
        let txt = self.text();
        match k {
            Tk::Logic => {
                self.sh.binops += 1;
                self.sh.logic += 1;
                self.end_segment();
                self.bump();
                true
            }
            Tk::Arith => {
                self.sh.binops += 1;
                if txt == "||" {
                    self.sh.logic += 1;
                    self.end_segment();
                }
                self.bump();
                true
            }
            Tk::Cmp => {
                self.sh.binops += 1;
                self.sh.cmp += 1;
                self.seg_cmp = true;
                self.bump();
                match txt {
                    "is" => {
                        if self.kind() == Some(Tk::Kw(Kw::Not)) {
                            self.bump();
                        }
                        // x IS [NOT] NULL / TRUE / UNKNOWN: a condition that
                        // holds whatever the row
                        if matches!(
                            self.kind(),
                            Some(Tk::Kw(Kw::Null)) | Some(Tk::Kw(Kw::True)) | Some(Tk::Kw(Kw::False))
                        ) || self.text() == "unknown"
                            || self.text() == "\\"
                        {
                            self.sh.const_cmp = true;
                        }
                    }
                    "in" => {
                        // MATCH .. AGAINST ('x' IN BOOLEAN MODE)
                        if self.text() == "boolean" && self.text_at(self.i + 1) == "mode" {
                            self.bump();
                            self.bump();
                            self.sh.binops -= 1;
                            self.sh.cmp -= 1;
                            return self.binop_or_end();
                        }
                    }
                    "sounds" => {
                        if self.text() == "like" {
                            self.bump();
                        }
                    }
                    _ => {}
                }
                true
            }
            Tk::Kw(Kw::Not) => {
                // NOT LIKE / NOT IN / NOT BETWEEN / NOT REGEXP
                if self.kind_at(self.i + 1) == Some(Tk::Cmp) {
                    self.i += 1;
                    self.binop()
                } else {
                    false
                }
            }
            Tk::Word if txt == "collate" || txt == "escape" => {
                self.sh.binops += 1;
                self.bump();
                true
            }
            _ => false,
        }
    }

    /// After a postfix operator: either another binary operator follows
    /// (true, operator consumed) or the expression ends here, which the
    /// caller's following `operand()` must not see; report "no operator" by
    /// pretending a no-op operand.
    fn binop_or_end(&mut self) -> bool {
        self.postfix = true;
        true
    }

    /// operand (binop operand)*
    fn expr(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        self.depth += 1;
        let saved_const = self.seg_const;
        let saved_cmp = self.seg_cmp;
        self.seg_const = true;
        self.seg_cmp = false;
        let mut ok = self.operand();
        while ok && self.binop() {
            ok = self.operand();
        }
        self.end_segment();
        let inner_const = self.seg_const;
        self.seg_const = saved_const && inner_const;
        self.seg_cmp = saved_cmp;
        self.depth -= 1;
        ok
    }

    /// A `(`-list of expressions; the cursor is on `(`. Returns
    /// (ok, all constant).
    fn paren_list(&mut self) -> bool {
        self.bump(); // (
        if self.kind() == Some(Tk::RParen) {
            self.bump();
            return true;
        }
        if self.kind() == Some(Tk::Kw(Kw::Select)) {
            return self.subquery();
        }
        loop {
            if !self.expr() {
                return false;
            }
            match self.kind() {
                Some(Tk::Comma) => self.bump(),
                Some(Tk::RParen) => {
                    self.bump();
                    return true;
                }
                // substr(x FROM 1 FOR 2), cast(x AS char), convert(x USING utf8)
                Some(Tk::Kw(Kw::From)) | Some(Tk::Kw(Kw::As)) => self.bump(),
                Some(Tk::Word) if matches!(self.text(), "for" | "using") => self.bump(),
                // MATCH (..) AGAINST ('x' IN BOOLEAN MODE)
                Some(Tk::Word) if self.text() == "boolean" || self.text() == "mode" => self.bump(),
                _ => return false,
            }
        }
    }

    /// `SELECT ...` inside parentheses, up to the matching `)`. The cursor is
    /// on SELECT.
    fn subquery(&mut self) -> bool {
        let start = self.i;
        let mut depth = 1u32;
        let mut strong = false;
        let mut from = false;
        while self.i < self.t.len() {
            match self.t[self.i].kind {
                Tk::LParen => depth += 1,
                Tk::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Tk::Func(true) | Tk::Var | Tk::Kw(Kw::Case) | Tk::Kw(Kw::Limit) | Tk::Kw(Kw::Where) => strong = true,
                Tk::Comma | Tk::Num | Tk::Cmp | Tk::Kw(Kw::Null) if self.i == start + 1 || from => strong = true,
                Tk::Arith if self.i == start + 1 => strong = true,
                Tk::Kw(Kw::From) => from = true,
                Tk::Semi => return false,
                _ => {}
            }
            self.i += 1;
        }
        if depth != 0 {
            return false;
        }
        self.bump(); // )
        if strong {
            self.sh.subquery = true;
        }
        self.seg_const = false;
        true
    }

    fn operand(&mut self) -> bool {
        if self.postfix {
            // the previous "operator" was postfix: nothing to read
            self.postfix = false;
            return true;
        }
        // unary prefixes
        let mut guard = 0;
        loop {
            guard += 1;
            if guard > 64 {
                return false;
            }
            match self.kind() {
                Some(Tk::Arith) if matches!(self.text(), "+" | "-" | "~") => {
                    if self.text() == "~" {
                        self.sh.code_unary += 1;
                    }
                    self.bump();
                }
                Some(Tk::Logic) if self.text() == "!" => {
                    self.sh.code_unary += 1;
                    self.bump();
                }
                Some(Tk::Kw(Kw::Not)) => self.bump(),
                Some(Tk::Word) if self.text() == "binary" => {
                    self.sh.code_unary += 1;
                    self.bump();
                }
                _ => break,
            }
        }
        let Some(k) = self.kind() else {
            return false;
        };
        match k {
            Tk::Num | Tk::Kw(Kw::Null) | Tk::Kw(Kw::True) | Tk::Kw(Kw::False) => {
                self.bump();
                true
            }
            Tk::Str(true) => {
                self.bump();
                true
            }
            Tk::Str(false) => {
                // only the last token: the host query closes it
                if self.i + 1 == self.t.len() {
                    self.i += 1;
                    self.sh.end = Some(End::OpenStr);
                    true
                } else {
                    false
                }
            }
            Tk::Var => {
                self.seg_const = false;
                self.sh.idents += 1;
                self.bump();
                true
            }
            Tk::Word => {
                let w = self.text();
                if !is_niladic(w) {
                    self.seg_const = false;
                    self.sh.idents += 1;
                }
                self.bump();
                self.qualified();
                true
            }
            Tk::Kw(Kw::Rownum) => {
                self.seg_const = false;
                self.bump();
                true
            }
            Tk::Other if self.text() == "\\" && self.text_at(self.i + 1) == "n" => {
                // MySQL \N is NULL
                self.i += 1;
                self.bump();
                true
            }
            Tk::Func(known) => {
                if known {
                    self.sh.known_funcs += 1;
                } else {
                    self.sh.funcs += 1;
                }
                self.bump();
                if self.kind() != Some(Tk::LParen) {
                    return false;
                }
                if self.depth >= MAX_DEPTH {
                    return false;
                }
                self.depth += 1;
                let ok = self.paren_list();
                self.depth -= 1;
                // MATCH (col) AGAINST (...)
                if ok && self.kind() == Some(Tk::Func(false)) && self.text() == "against" {
                    return self.operand();
                }
                ok
            }
            Tk::LParen => {
                if self.depth >= MAX_DEPTH {
                    return false;
                }
                self.depth += 1;
                let ok = self.paren_list();
                self.depth -= 1;
                ok
            }
            Tk::Kw(Kw::Case) => self.case_expr(),
            _ => false,
        }
    }

    /// `.name` parts of a qualified identifier whose parts are quoted
    /// (`` `db`.`tbl` ``; unquoted `a.b` is one word already).
    fn qualified(&mut self) {
        while self.kind() == Some(Tk::Other)
            && self.text() == "."
            && self.kind_at(self.i + 1) == Some(Tk::Word)
            && self.t[self.i].end == self.t[self.i + 1].start
        {
            self.bump();
            self.bump();
        }
    }

    fn case_expr(&mut self) -> bool {
        self.bump(); // case
        if self.kind() != Some(Tk::Kw(Kw::When)) && !self.expr() {
            return false;
        }
        let mut whens = 0;
        while self.kind() == Some(Tk::Kw(Kw::When)) {
            self.bump();
            if !self.expr() || self.kind() != Some(Tk::Kw(Kw::Then)) {
                return false;
            }
            self.bump();
            if !self.expr() {
                return false;
            }
            whens += 1;
        }
        if whens == 0 {
            return false;
        }
        if self.kind() == Some(Tk::Kw(Kw::Else)) {
            self.bump();
            if !self.expr() {
                return false;
            }
        }
        if self.kind() != Some(Tk::Kw(Kw::End)) {
            return false;
        }
        self.bump();
        self.sh.case_expr = true;
        true
    }

    /// Clauses after the expression. Returns false on a malformed clause.
    fn clauses(&mut self) -> bool {
        let mut guard = 0;
        loop {
            guard += 1;
            if guard > 16 {
                return false;
            }
            match self.kind() {
                Some(Tk::Kw(Kw::From)) => {
                    self.bump();
                    if self.kind() != Some(Tk::Word) {
                        return false;
                    }
                    let table = self.i;
                    self.bump();
                    self.qualified();
                    let tb = self.s.as_bytes()[self.t[table].start];
                    if matches!(tb, b'`' | b'[' | b'"') || self.i > table + 1 || self.text_at(table).contains('.') {
                        self.sh.from_code = true;
                    }
                    if self.kind() == Some(Tk::Word) && !is_clause_word(self.text()) {
                        self.bump(); // alias
                    }
                    self.sh.clause = true;
                    self.sh.clauses += 1;
                }
                Some(Tk::Kw(Kw::Where)) | Some(Tk::Kw(Kw::Having)) => {
                    self.bump();
                    let ops = self.sh.binops + self.sh.known_funcs;
                    let idents = self.sh.idents;
                    let at = self.i;
                    if !self.expr() {
                        return false;
                    }
                    // `where's george`: a condition needs an operator or
                    // is a literal (`HAVING TRUE`)
                    let literal = self.i == at + 1
                        && self.sh.idents == idents
                        && matches!(
                            self.kind_at(at),
                            Some(Tk::Num) | Some(Tk::Kw(Kw::True)) | Some(Tk::Kw(Kw::False)) | Some(Tk::Kw(Kw::Null))
                        );
                    if self.sh.binops + self.sh.known_funcs == ops && !literal {
                        return false;
                    }
                    self.sh.clause = true;
                    self.sh.clauses += 1;
                }
                Some(Tk::Kw(Kw::Order)) | Some(Tk::Kw(Kw::Group)) => {
                    self.bump();
                    if self.kind() != Some(Tk::Kw(Kw::By)) {
                        return false;
                    }
                    self.bump();
                    self.sh.clause = true;
                    self.sh.clauses += 1;
                    if self.kind().is_none() {
                        return true;
                    }
                    loop {
                        if !self.expr() {
                            return false;
                        }
                        if self.kind() == Some(Tk::Word) && matches!(self.text(), "asc" | "desc") {
                            self.bump();
                        }
                        if self.kind() == Some(Tk::Comma) {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                Some(Tk::Kw(Kw::Limit)) => {
                    self.bump();
                    // a query tail cut before the row count (counted only
                    // after a quoted table: `from home limit` is prose)
                    if self.kind().is_none() && self.sh.from_first {
                        self.sh.clause = true;
                        if self.sh.from_code {
                            self.sh.clauses += 1;
                        }
                        return true;
                    }
                    self.sh.clauses += 1;
                    if self.kind() != Some(Tk::Num) {
                        return false;
                    }
                    self.bump();
                    if matches!(self.kind(), Some(Tk::Comma) | Some(Tk::Kw(Kw::Offset))) {
                        self.bump();
                        if self.kind() != Some(Tk::Num) {
                            return false;
                        }
                        self.bump();
                    }
                    self.sh.clause = true;
                }
                Some(Tk::Kw(Kw::Procedure)) => {
                    self.bump();
                    if !matches!(self.kind(), Some(Tk::Func(_))) || !self.operand() {
                        return false;
                    }
                    self.sh.clause = true;
                }
                Some(Tk::Word) if self.text() == "for" && self.kind_at(self.i + 1) == Some(Tk::Kw(Kw::Update)) => {
                    self.bump();
                    self.bump();
                    self.sh.clause = true;
                }
                Some(Tk::Kw(Kw::Union)) => {
                    self.bump();
                    while matches!(self.kind(), Some(Tk::Kw(Kw::All)) | Some(Tk::Kw(Kw::Distinct))) {
                        self.bump();
                    }
                    if self.kind().is_none() {
                        self.sh.union_tail = true;
                        return true;
                    }
                    return false;
                }
                _ => return true,
            }
        }
    }

    /// Terminator: end, comments only, `;` + anything.
    fn terminator(&mut self) -> bool {
        // `)` closing what the value opened in the host query
        while self.kind() == Some(Tk::RParen) {
            self.bump();
        }
        match self.kind() {
            None => {
                if self.sh.end.is_none() {
                    self.sh.end = Some(End::Eof);
                }
                true
            }
            Some(Tk::Comment) => {
                let txt = self.text();
                let body = txt
                    .trim_start_matches(['-', '#', '/', '*'])
                    .trim_end_matches(['*', '/'])
                    .trim();
                let rest_comments = self.t[self.i + 1..]
                    .iter()
                    .all(|x| matches!(x.kind, Tk::Comment | Tk::ExecComment));
                if !rest_comments {
                    return false;
                }
                self.sh.end = Some(End::Comment(body.is_empty() || body == "-" || body.len() <= 2));
                true
            }
            Some(Tk::Semi) => {
                self.sh.end = Some(End::Semi);
                true
            }
            _ => false,
        }
    }
}

/// Niladic SQL "constants" used as operands (`current_date`, `utc_time`).
fn is_niladic(w: &str) -> bool {
    matches!(
        w,
        "current_date"
            | "current_time"
            | "current_timestamp"
            | "localtime"
            | "localtimestamp"
            | "utc_date"
            | "utc_time"
            | "utc_timestamp"
            | "unknown"
            | "current_user"
            | "sysdate"
    )
}

fn is_clause_word(w: &str) -> bool {
    matches!(
        w,
        "for" | "asc" | "desc" | "inner" | "left" | "right" | "outer" | "cross" | "natural"
    )
}

/// Numeric / identifier context: the whole value from token 0 is an
/// expression (closing the host query's parentheses with `)` where needed),
/// then clauses, then a terminator.
pub fn numeric(s: &str, t: &[Token]) -> Option<Shape> {
    let mut p = P {
        s,
        t,
        i: 0,
        depth: 0,
        sh: Shape::default(),
        seg_const: true,
        seg_cmp: false,
        postfix: false,
    };
    p.skip_inline();
    if is_clause_start(p.kind()) {
        p.sh.clause_first = true;
        return tail(p);
    }
    if p.kind() == Some(Tk::Kw(Kw::From)) {
        p.sh.clause_first = true;
        p.sh.from_first = true;
        return tail(p);
    }
    // the host query holds the left operand: `in (1,2)`, `is not null`,
    // `<=> 1`, `rlike '^a'`
    if p.kind() == Some(Tk::Cmp) && matches!(p.text(), "in" | "is" | "rlike" | "regexp" | "sounds" | "<=>") {
        let in_list = p.text() == "in";
        if !p.binop() {
            return None;
        }
        if in_list && p.kind() != Some(Tk::LParen) {
            return None;
        }
        p.sh.op_first = true;
        let mut ok = p.operand();
        while ok && p.binop() {
            ok = p.operand();
        }
        p.end_segment();
        if !ok {
            return None;
        }
        return tail(p);
    }
    if !p.expr() {
        return None;
    }
    // a list: 17,23 order by 16 / foo,(select ..)
    let mut guard = 0;
    while p.kind() == Some(Tk::Comma) && guard < 64 {
        guard += 1;
        p.sh.list = true;
        p.bump();
        if !p.expr() {
            return None;
        }
    }
    tail(p)
}

fn is_clause_start(k: Option<Tk>) -> bool {
    matches!(
        k,
        Some(Tk::Kw(Kw::Order))
            | Some(Tk::Kw(Kw::Group))
            | Some(Tk::Kw(Kw::Having))
            | Some(Tk::Kw(Kw::Limit))
            | Some(Tk::Kw(Kw::Procedure))
    )
}

/// Quote context: t[0] is the string the value closes. What follows must be
/// an operator continuing the expression, or a clause.
pub fn quoted(s: &str, t: &[Token]) -> Option<Shape> {
    let mut p = P {
        s,
        t,
        i: 1,
        depth: 0,
        sh: Shape::default(),
        seg_const: true,
        seg_cmp: false,
        postfix: false,
    };
    p.skip_inline();
    while p.kind() == Some(Tk::RParen) {
        p.bump();
    }
    if p.binop() {
        let mut ok = p.operand();
        while ok && p.binop() {
            ok = p.operand();
        }
        p.end_segment();
        if !ok {
            return None;
        }
    } else if !matches!(
        p.kind(),
        Some(Tk::Kw(Kw::Order))
            | Some(Tk::Kw(Kw::Group))
            | Some(Tk::Kw(Kw::Having))
            | Some(Tk::Kw(Kw::Where))
            | Some(Tk::Kw(Kw::Limit))
            | Some(Tk::Kw(Kw::Procedure))
            | Some(Tk::Kw(Kw::From))
    ) {
        return None;
    }
    tail(p)
}

fn tail(mut p: P<'_>) -> Option<Shape> {
    // `)` closing the host query's parentheses, each possibly followed by
    // more of the expression: 1) or (1=1
    let mut guard = 0;
    while p.kind() == Some(Tk::RParen) && guard < 64 {
        guard += 1;
        p.bump();
        while p.binop() {
            if !p.operand() {
                return None;
            }
        }
        p.end_segment();
    }
    if p.sh.end == Some(End::OpenStr) {
        return (p.i >= p.t.len()).then_some(p.sh);
    }
    if !p.clauses() {
        return None;
    }
    if p.sh.end == Some(End::OpenStr) {
        return (p.i >= p.t.len()).then_some(p.sh);
    }
    if !p.terminator() {
        return None;
    }
    Some(p.sh)
}
