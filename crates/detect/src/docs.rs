//! Documents inside values: markdown (fenced code blocks and inline code
//! spans are documentation, not input to a shell or a database) and GraphQL
//! documents (the grammar is GraphQL; the injectable parts are its string
//! arguments).

use crate::util;

/// What the value detectors should read instead of the raw value.
pub enum Derived {
    /// Text outside code fences / spans.
    Text(String),
}

/// GraphQL documents are recognised by [`looks_graphql`] and handled by [`crate::graphql`] before this.
pub fn derive(_path: &str, v: &str) -> Option<Derived> {
    // Code needs a backquote: one memchr rules out most values before any substring search.
    if !v.contains('`') {
        return None;
    }
    if v.contains("```") || (v.len() > 24 && util::prose_ratio(v) > 0.6 && v.matches(' ').count() >= 4) {
        return Some(Derived::Text(strip_code(v)));
    }
    None
}

/// A value at a `query` (or `mutation`) key that starts like a GraphQL document with balanced braces.
pub fn looks_graphql(path: &str, v: &str) -> bool {
    let t = v.trim_start();
    let starts = ["query", "mutation", "subscription", "fragment", "{"]
        .iter()
        .any(|k| t.starts_with(k));
    let named_query = path.ends_with(".query") || path.ends_with(".mutation");
    if !(starts && named_query) {
        return false;
    }
    // balanced braces, at least one selection set
    let mut depth = 0i32;
    let mut in_str = false;
    let mut prev = 0u8;
    let mut saw = false;
    for &c in t.as_bytes() {
        if in_str {
            if c == b'"' && prev != b'\\' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' => {
                    depth += 1;
                    saw = true
                }
                b'}' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
        }
        prev = c;
    }
    saw && depth == 0 && !in_str
}

/// String literals of a document the GraphQL parser refused, found by scanning for quotes.
pub fn graphql_strings(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() < 256 {
        if b[i] == b'"' {
            // block string """...""" or "..."
            if v[i..].starts_with("\"\"\"") {
                let start = i + 3;
                let end = v[start..].find("\"\"\"").map(|e| start + e).unwrap_or(b.len());
                out.push(v[start..end].to_string());
                i = end + 3;
                continue;
            }
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            let end = j.min(b.len());
            out.push(util::clip(v, start, end).to_string());
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Remove fenced code blocks; drop the backticks of inline code spans.
fn strip_code(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut in_fence = false;
    for line in v.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push('\n');
            continue;
        }
        if !in_fence {
            out.push_str(line);
        }
    }
    out.replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences() {
        match derive(
            "body.json.content",
            "Hi\n```bash\nrm -rf /tmp/x; cat /etc/passwd\n```\nthanks",
        ) {
            Some(Derived::Text(t)) => assert!(!t.contains("passwd")),
            _ => panic!(),
        }
    }

    #[test]
    fn graphql() {
        assert!(looks_graphql("body.json.query", "query { user(id: \"1\") { name } }"));
        assert!(!looks_graphql("body.json.text", "query { a }"));
        assert_eq!(
            graphql_strings("query { user(id: \"1' or '1'='1\") { name }"),
            vec!["1' or '1'='1"]
        );
    }
}
