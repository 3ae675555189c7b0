//! Reading an OpenAPI document and every file its `$ref`s reach, as JSON values keyed by their
//! `file://` URI, with OpenAPI 3.0 schemas rewritten into the JSON Schema 2020-12 they mean.
//!
//! 3.0 schemas are a dialect of JSON Schema draft 4 plus `nullable`; 3.1 schemas are JSON Schema 2020-12.
//! Rewriting 3.0 into 2020-12 once, at load time (`nullable: true` becomes a `"null"` in `type`,
//! boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers), lets one validator serve both.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Files one spec may pull in through relative `$ref`s.
const MAX_FILES: usize = 64;
/// The largest spec file read.
const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V30,
    V31,
}

/// Why a spec was refused: the file, and where in it when known.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct SpecError {
    pub file: PathBuf,
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(file: &Path, message: impl Into<String>) -> Self {
        SpecError {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }
}

/// A spec and the files it references.
pub struct SpecFiles {
    pub version: Version,
    /// The URI of the root document.
    pub root: String,
    /// Every document by its `file://` URI.
    pub docs: HashMap<String, Value>,
}

impl SpecFiles {
    pub fn root_doc(&self) -> &Value {
        &self.docs[&self.root]
    }
}

pub(crate) fn file_uri(path: &Path) -> String {
    let mut s = String::from("file://");
    for (i, c) in path.components().enumerate() {
        let part = c.as_os_str().to_string_lossy();
        if i > 0 && !s.ends_with('/') {
            s.push('/');
        }
        if part != "/" {
            s.push_str(&percent_encoding::utf8_percent_encode(&part, URI_SEGMENT).to_string());
        } else {
            s.push('/');
        }
    }
    s
}

const URI_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Parses one file as JSON or YAML (by extension; YAML when unsure, as YAML is a superset of JSON).
pub fn parse_file(path: &Path) -> Result<Value, SpecError> {
    let meta = std::fs::metadata(path).map_err(|e| SpecError::new(path, format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(SpecError::new(
            path,
            format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::new(path, format!("cannot read: {e}")))?;
    parse_text(path, &text)
}

pub(crate) fn parse_text(path: &Path, text: &str) -> Result<Value, SpecError> {
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        serde_json::from_str(text)
            .map_err(|e| SpecError::new(path, format!("line {}, column {}: {e}", e.line(), e.column())))
    } else {
        serde_saphyr::from_str::<Value>(text).map_err(|e| SpecError::new(path, e.to_string()))
    }
}

/// Loads a spec: the root file, every file reachable through relative `$ref`s, the version, and the 3.0
/// rewrite.
pub fn load(path: &Path) -> Result<SpecFiles, SpecError> {
    let path = std::fs::canonicalize(path).map_err(|e| SpecError::new(path, format!("cannot read: {e}")))?;
    let root_doc = parse_file(&path)?;
    let version = match root_doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") => Version::V30,
        Some(v) if v.starts_with("3.1.") => Version::V31,
        Some(v) => {
            return Err(SpecError::new(
                &path,
                format!("OpenAPI {v} is not supported: use a 3.0.x or 3.1.x document"),
            ))
        }
        None => {
            return Err(SpecError::new(
                &path,
                "no `openapi` version field: not an OpenAPI 3 document (Swagger 2.0 needs converting)",
            ))
        }
    };
    if !root_doc.get("paths").is_some_and(Value::is_object) && !root_doc.get("webhooks").is_some_and(Value::is_object) {
        return Err(SpecError::new(&path, "the document has no `paths`"));
    }
    let root = file_uri(&path);
    let mut docs = HashMap::new();
    let mut pending = vec![(path.clone(), root_doc)];
    while let Some((file, mut doc)) = pending.pop() {
        if version == Version::V30 {
            rewrite_30(&mut doc);
        }
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut refs = Vec::new();
        collect_file_refs(&doc, &mut refs);
        docs.insert(file_uri(&file), doc);
        for r in refs {
            let target = dir.join(&r);
            let target = std::fs::canonicalize(&target)
                .map_err(|e| SpecError::new(&file, format!("$ref to `{r}`: cannot read {}: {e}", target.display())))?;
            let uri = file_uri(&target);
            if docs.contains_key(&uri) || pending.iter().any(|(p, _)| p == &target) {
                continue;
            }
            if docs.len() + pending.len() >= MAX_FILES {
                return Err(SpecError::new(&file, format!("more than {MAX_FILES} files referenced")));
            }
            let doc = parse_file(&target)?;
            pending.push((target, doc));
        }
    }
    Ok(SpecFiles { version, root, docs })
}

/// The file parts of the relative `$ref`s in `v` (`schemas/common.yaml` of `schemas/common.yaml#/Money`).
fn collect_file_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let file = r.split('#').next().unwrap_or_default();
                if !file.is_empty() && !file.contains("://") && !out.iter().any(|f| f == file) {
                    out.push(file.to_string());
                }
            }
            m.values().for_each(|v| collect_file_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_file_refs(v, out)),
        _ => {}
    }
}

/// OpenAPI 3.0 schema keywords into JSON Schema 2020-12, wherever they appear (the keywords are not
/// used anywhere else in a 3.0 document).
fn rewrite_30(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("nullable") == Some(&Value::Bool(true)) {
                // 3.0.3: nullable applies where `type` is given; an enum must then admit null too.
                match m.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = std::mem::take(t);
                        m.insert(
                            "type".into(),
                            Value::Array(vec![Value::String(t), Value::String("null".into())]),
                        );
                    }
                    Some(Value::Array(ts)) if !ts.iter().any(|t| t == "null") => ts.push("null".into()),
                    _ => {}
                }
                if let Some(Value::Array(e)) = m.get_mut("enum") {
                    if !e.contains(&Value::Null) {
                        e.push(Value::Null);
                    }
                }
            }
            if m.get("nullable").is_some_and(Value::is_boolean) {
                m.remove("nullable");
            }
            for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
                match m.get(flag) {
                    Some(Value::Bool(true)) => {
                        if let Some(b) = m.remove(bound) {
                            m.insert(flag.into(), b);
                        } else {
                            m.remove(flag);
                        }
                    }
                    Some(Value::Bool(false)) => {
                        m.remove(flag);
                    }
                    _ => {}
                }
            }
            m.values_mut().for_each(rewrite_30);
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_30),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openapi_30_schemas_become_2020_12() {
        let mut v = json!({
            "a": {"type": "string", "nullable": true, "enum": ["x", "y"]},
            "b": {"type": "integer", "minimum": 0, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false},
            "c": {"allOf": [{"$ref": "#/x"}], "nullable": false}
        });
        rewrite_30(&mut v);
        assert_eq!(v["a"], json!({"type": ["string", "null"], "enum": ["x", "y", null]}));
        assert_eq!(v["b"], json!({"type": "integer", "exclusiveMinimum": 0, "maximum": 9}));
        assert_eq!(v["c"], json!({"allOf": [{"$ref": "#/x"}]}));
    }

    #[test]
    fn file_uris_are_absolute_and_escaped() {
        assert_eq!(
            file_uri(Path::new("/srv/api specs/openapi.yaml")),
            "file:///srv/api%20specs/openapi.yaml"
        );
    }
}
