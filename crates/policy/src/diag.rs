//! Diagnostics: every config error carries the file, line, column and a hint on how to fix it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the error has no position (a missing section, say).
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the errors found in one config file. Compilation reports every error it can, not just the first.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics while compiling; turns byte spans into line and column.
pub(crate) struct Reporter<'a> {
    file: &'a Path,
    source: &'a str,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(file: &'a Path, source: &'a str) -> Self {
        Reporter {
            file,
            source,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn position(&self, span: Range<usize>) -> (usize, usize) {
        line_col(self.source, span.start)
    }

    /// Where a route's unspanned sub-table `key` starts: the first line after `from` (a byte offset
    /// inside that route) that opens it as `[routes.key...]` or sets `key...` with a dotted key; `from`
    /// itself when none does.
    pub(crate) fn table_after(&self, from: usize, key: &str) -> Range<usize> {
        let mut offset = from.min(self.source.len());
        for line in self.source[offset..].split_inclusive('\n') {
            let t = line.trim_start();
            let lead = line.len() - t.len();
            let opens = t
                .strip_prefix("[routes.")
                .or_else(|| t.strip_prefix("[ routes."))
                .unwrap_or(t)
                .strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(['.', ']', ' ', '=']));
            if opens {
                return offset + lead..offset + line.len();
            }
            if t.starts_with("[[") && offset > from {
                break; // the next array entry: this route has no such line
            }
            offset += line.len();
        }
        from..from
    }

    pub(crate) fn error(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        let (line, column) = span.map(|s| line_col(self.source, s.start)).unwrap_or((0, 0));
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: hint.into(),
        });
    }
}

pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sub_table_is_found_after_its_route() {
        let src = "[[routes]]\nupstream = \"a\"\n\n[routes.detection.grpc]\nprotos = []\n";
        let r = super::Reporter::new(std::path::Path::new("f"), src);
        let from = src.find("\"a\"").unwrap();
        assert_eq!(r.position(r.table_after(from, "detection")), (4, 1));
        let src = "[[routes]]\nupstream = \"a\"\n[[routes]]\n[routes.detection]\n";
        let r = super::Reporter::new(std::path::Path::new("f"), src);
        assert_eq!(
            r.position(r.table_after(11, "detection")),
            (2, 1),
            "not another route's"
        );
    }

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(super::line_col(src, 0), (1, 1));
        assert_eq!(super::line_col(src, 6), (2, 1));
        assert_eq!(super::line_col(src, 11), (2, 6));
    }
}
