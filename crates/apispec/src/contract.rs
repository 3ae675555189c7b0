//! A loaded spec compiled for checking requests: servers' base paths, a path router, and per operation
//! its parameters, request bodies and security requirements, each schema compiled once into a JSON
//! Schema validator (2020-12; 3.0 schemas were rewritten at load, see [`crate::load`]).

use crate::load::{SpecError, SpecFiles, Version};
use crate::values::{self, Kind};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// `$ref` hops followed before a chain is called a loop.
const MAX_REF_HOPS: usize = 32;

/// What kind of rule a request broke; each has its rule id (docs/rules.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    UnknownPath,
    UnknownMethod,
    PathParam,
    QueryParam,
    HeaderParam,
    CookieParam,
    BodySchema,
    BodyContentType,
    MissingBody,
    Security,
    /// The answer's status is not one the operation documents.
    ResponseStatus,
    /// The answer's body breaks the documented schema, or its media type is not documented.
    ResponseBody,
}

impl ViolationKind {
    pub fn rule_id(self) -> &'static str {
        match self {
            ViolationKind::UnknownPath => "OAS-001",
            ViolationKind::UnknownMethod => "OAS-002",
            ViolationKind::PathParam => "OAS-003",
            ViolationKind::QueryParam => "OAS-004",
            ViolationKind::HeaderParam => "OAS-005",
            ViolationKind::CookieParam => "OAS-006",
            ViolationKind::BodySchema => "OAS-007",
            ViolationKind::BodyContentType => "OAS-008",
            ViolationKind::MissingBody => "OAS-009",
            ViolationKind::Security => "OAS-010",
            ViolationKind::ResponseStatus => "OAS-011",
            ViolationKind::ResponseBody => "OAS-012",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::UnknownPath => "unknown_path",
            ViolationKind::UnknownMethod => "unknown_method",
            ViolationKind::PathParam => "path_param",
            ViolationKind::QueryParam => "query_param",
            ViolationKind::HeaderParam => "header_param",
            ViolationKind::CookieParam => "cookie_param",
            ViolationKind::BodySchema => "body_schema",
            ViolationKind::BodyContentType => "body_content_type",
            ViolationKind::MissingBody => "missing_body",
            ViolationKind::Security => "security",
            ViolationKind::ResponseStatus => "response_status",
            ViolationKind::ResponseBody => "response_body",
        }
    }
}

/// One broken rule: its kind, where (`query.limit`, `body.items[0].quantity`, `header.authorization`)
/// and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub location: String,
    pub message: String,
}

/// A request as the contract reads it.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    /// False when `body` is only the start of the body (past the inspection limit): it is not checked.
    pub body_complete: bool,
}

/// The operation a request matched.
#[derive(Debug, Clone)]
pub struct OperationInfo {
    pub method: String,
    /// The path template as written in the spec (`/orders/{orderId}`).
    pub template: String,
    pub operation_id: Option<String>,
    pub deprecated: bool,
    /// The path parameters: name, JSON kind and format.
    pub path_params: Vec<(String, Kind, Option<String>)>,
}

pub struct Checked<'c> {
    pub operation: Option<&'c OperationInfo>,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum In {
    Path,
    Query,
    Header,
    Cookie,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    Simple,
    Form,
    DeepObject,
    SpaceDelimited,
    PipeDelimited,
}

struct Param {
    name: String,
    format: Option<String>,
    at: In,
    required: bool,
    style: Style,
    explode: bool,
    kind: Kind,
    validator: Option<jsonschema::Validator>,
}

struct Media {
    /// Lower-case media type, possibly with a `*` (`image/*`, `*/*`).
    media: String,
    kind: Kind,
    validator: Option<jsonschema::Validator>,
}

struct Body {
    required: bool,
    media: Vec<Media>,
}

#[derive(Debug, Clone, PartialEq)]
enum Credential {
    Header(String),
    Query(String),
    Cookie(String),
    Bearer,
    Basic,
}

impl Credential {
    fn location(&self) -> String {
        match self {
            Credential::Header(n) => format!("header.{n}"),
            Credential::Query(n) => format!("query.{n}"),
            Credential::Cookie(n) => format!("cookie.{n}"),
            Credential::Bearer | Credential::Basic => "header.authorization".into(),
        }
    }
}

/// Which answers a response entry covers: `200`, `2XX`, or `default`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Statuses {
    Exact(u16),
    Class(u16),
    Default,
}

struct Operation {
    info: OperationInfo,
    params: Vec<Param>,
    body: Option<Body>,
    responses: Vec<(Statuses, Vec<Media>)>,
    /// Alternatives, each a set of credentials that must all be present; empty when none is needed.
    security: Vec<Vec<Credential>>,
}

struct PathItem {
    operations: Vec<(http::Method, Operation)>,
}

/// A compiled OpenAPI contract.
pub struct Contract {
    pub version: Version,
    base_paths: Vec<String>,
    router: matchit::Router<usize>,
    paths: Vec<PathItem>,
}

/// A location in one of the spec's documents.
#[derive(Clone)]
struct At {
    uri: String,
    pointer: String,
}

impl At {
    fn child(&self, key: &str) -> At {
        At {
            uri: self.uri.clone(),
            pointer: format!("{}/{}", self.pointer, key.replace('~', "~0").replace('/', "~1")),
        }
    }
}

const FRAGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'~')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

struct Compiler<'a> {
    files: &'a SpecFiles,
    /// Every document of the spec, for the validators' `$ref`s (nothing is fetched from elsewhere).
    registry: jsonschema::Registry<'a>,
    paths_by_uri: HashMap<String, std::path::PathBuf>,
    root_file: std::path::PathBuf,
}

impl<'a> Compiler<'a> {
    fn err(&self, at: &At, message: impl std::fmt::Display) -> SpecError {
        SpecError::new(
            &self.root_file,
            format!("at {}#{}: {message}", short(&at.uri), at.pointer),
        )
    }

    fn value(&self, at: &At) -> Option<&'a Value> {
        self.files.docs.get(&at.uri)?.pointer(&at.pointer)
    }

    /// Follows `$ref`s from `at` to the object they name.
    fn follow(&self, mut at: At) -> Result<(At, &'a Value), SpecError> {
        for _ in 0..MAX_REF_HOPS {
            let v = self.value(&at).ok_or_else(|| self.err(&at, "nothing there"))?;
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Ok((at, v));
            };
            at = self.target(&at, r)?;
        }
        Err(self.err(&at, "a $ref loop"))
    }

    fn target(&self, from: &At, r: &str) -> Result<At, SpecError> {
        let (file, fragment) = r.split_once('#').unwrap_or((r, ""));
        let uri = if file.is_empty() {
            from.uri.clone()
        } else {
            let base = self
                .paths_by_uri
                .get(&from.uri)
                .and_then(|p| p.parent())
                .unwrap_or(Path::new("."));
            let path =
                std::fs::canonicalize(base.join(file)).map_err(|e| self.err(from, format!("$ref `{r}`: {e}")))?;
            crate::load::file_uri(&path)
        };
        let pointer = percent_encoding::percent_decode_str(fragment)
            .decode_utf8_lossy()
            .into_owned();
        let at = At { uri, pointer };
        if self.value(&at).is_none() {
            return Err(self.err(from, format!("$ref `{r}` points at nothing")));
        }
        Ok(at)
    }

    fn validator(&self, at: &At) -> Result<jsonschema::Validator, SpecError> {
        let target = format!(
            "{}#{}",
            at.uri,
            percent_encoding::utf8_percent_encode(&at.pointer, FRAGMENT)
        );
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_registry(&self.registry)
            .build(&json!({ "$ref": target }))
            .map_err(|e| self.err(at, format!("schema does not compile: {e}")))
    }

    /// The JSON kind of the schema at `at`, as far as coercing strings needs it.
    fn kind(&self, at: &At, depth: usize) -> Kind {
        let Ok((at, v)) = self.follow(at.clone()) else {
            return Kind::Any;
        };
        if depth > 8 {
            return Kind::Any;
        }
        let ty = match v.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        match ty {
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("string") => Kind::String,
            Some("array") => Kind::Array(Box::new(if v.get("items").is_some() {
                self.kind(&at.child("items"), depth + 1)
            } else {
                Kind::Any
            })),
            Some("object") => Kind::Object(self.properties(&at, v, depth)),
            _ => {
                for combinator in ["allOf", "oneOf", "anyOf"] {
                    if v.get(combinator)
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
                    {
                        return self.kind(&at.child(combinator).child("0"), depth + 1);
                    }
                }
                if v.get("properties").is_some() {
                    Kind::Object(self.properties(&at, v, depth))
                } else {
                    Kind::Any
                }
            }
        }
    }

    fn properties(&self, at: &At, v: &Value, depth: usize) -> BTreeMap<String, Kind> {
        let mut props = BTreeMap::new();
        if let Some(p) = v.get("properties").and_then(Value::as_object) {
            for name in p.keys() {
                props.insert(name.clone(), self.kind(&at.child("properties").child(name), depth + 1));
            }
        }
        // allOf members add their properties (`allOf: [{$ref: Base}, {properties: ...}]`).
        if let Some(all) = v.get("allOf").and_then(Value::as_array) {
            for i in 0..all.len() {
                if let Kind::Object(more) = self.kind(&at.child("allOf").child(&i.to_string()), depth + 1) {
                    props.extend(more);
                }
            }
        }
        props
    }

    fn param(&self, at: At) -> Result<Param, SpecError> {
        let (at, v) = self.follow(at)?;
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| self.err(&at, "a parameter without a name"))?;
        let at_in = match v.get("in").and_then(Value::as_str) {
            Some("path") => In::Path,
            Some("query") => In::Query,
            Some("header") => In::Header,
            Some("cookie") => In::Cookie,
            other => return Err(self.err(&at, format!("parameter `{name}`: `in` is {other:?}"))),
        };
        let style = match v.get("style").and_then(Value::as_str) {
            Some("deepObject") => Style::DeepObject,
            Some("spaceDelimited") => Style::SpaceDelimited,
            Some("pipeDelimited") => Style::PipeDelimited,
            Some("form") => Style::Form,
            Some(_) => Style::Simple,
            None if matches!(at_in, In::Query | In::Cookie) => Style::Form,
            None => Style::Simple,
        };
        let explode = v
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == Style::Form);
        let schema = v.get("schema").map(|_| at.child("schema")).or_else(|| {
            // `content` instead of `schema`: the one media type's schema.
            let content = v.get("content")?.as_object()?;
            let media = content.keys().next()?;
            content[media]
                .get("schema")
                .map(|_| at.child("content").child(media).child("schema"))
        });
        Ok(Param {
            name: if at_in == In::Header {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            },
            format: schema
                .as_ref()
                .and_then(|s| self.follow(s.clone()).ok())
                .and_then(|(_, v)| v.get("format").and_then(Value::as_str).map(str::to_string)),
            at: at_in,
            required: at_in == In::Path || v.get("required").and_then(Value::as_bool).unwrap_or(false),
            style,
            explode,
            kind: schema.as_ref().map_or(Kind::Any, |s| self.kind(s, 0)),
            validator: schema.as_ref().map(|s| self.validator(s)).transpose()?,
        })
    }

    fn responses(&self, at: At) -> Result<Vec<(Statuses, Vec<Media>)>, SpecError> {
        let Some(map) = self.value(&at).and_then(Value::as_object) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for code in map.keys() {
            let statuses = match code.as_str() {
                "default" => Statuses::Default,
                c if c.len() == 3 && (c.ends_with("XX") || c.ends_with("xx")) => match c[..1].parse::<u16>() {
                    Ok(d) => Statuses::Class(d),
                    Err(_) => continue,
                },
                c => match c.parse::<u16>() {
                    Ok(n) => Statuses::Exact(n),
                    Err(_) => continue,
                },
            };
            // A response without content documents an empty answer: its media list is empty.
            let body = self.body(at.child(code))?;
            out.push((statuses, body.media));
        }
        Ok(out)
    }

    fn body(&self, at: At) -> Result<Body, SpecError> {
        let (at, v) = self.follow(at)?;
        let mut media = Vec::new();
        if let Some(content) = v.get("content").and_then(Value::as_object) {
            for (m, mv) in content {
                let schema = mv.get("schema").map(|_| at.child("content").child(m).child("schema"));
                media.push(Media {
                    media: m.to_ascii_lowercase(),
                    kind: schema.as_ref().map_or(Kind::Any, |s| self.kind(s, 0)),
                    validator: schema.as_ref().map(|s| self.validator(s)).transpose()?,
                });
            }
        }
        Ok(Body {
            required: v.get("required").and_then(Value::as_bool).unwrap_or(false),
            media,
        })
    }

    fn security(&self, requirements: &Value, at: &At) -> Result<Vec<Vec<Credential>>, SpecError> {
        let root = self.files.root_doc();
        let schemes = root.pointer("/components/securitySchemes");
        let mut alternatives = Vec::new();
        for req in requirements.as_array().into_iter().flatten() {
            let mut all = Vec::new();
            for name in req.as_object().into_iter().flat_map(|o| o.keys()) {
                let scheme = schemes.and_then(|s| s.get(name)).ok_or_else(|| {
                    self.err(
                        at,
                        format!("security scheme `{name}` is not in components.securitySchemes"),
                    )
                })?;
                let scheme = match scheme.get("$ref").and_then(Value::as_str) {
                    Some(r) => self.follow(self.target(at, r)?)?.1,
                    None => scheme,
                };
                let cred = match (
                    scheme.get("type").and_then(Value::as_str),
                    scheme.get("in").and_then(Value::as_str),
                    scheme
                        .get("scheme")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase),
                ) {
                    (Some("apiKey"), Some("header"), _) => {
                        Credential::Header(scheme["name"].as_str().unwrap_or_default().to_ascii_lowercase())
                    }
                    (Some("apiKey"), Some("query"), _) => {
                        Credential::Query(scheme["name"].as_str().unwrap_or_default().into())
                    }
                    (Some("apiKey"), Some("cookie"), _) => {
                        Credential::Cookie(scheme["name"].as_str().unwrap_or_default().into())
                    }
                    (Some("http"), _, Some(s)) if s == "basic" => Credential::Basic,
                    (Some("http"), _, _) | (Some("oauth2"), _, _) | (Some("openIdConnect"), _, _) => Credential::Bearer,
                    // mutualTLS and what we cannot see: nothing to check here.
                    _ => continue,
                };
                all.push(cred);
            }
            if all.is_empty() {
                // `{}`: anonymous access is one of the alternatives.
                return Ok(Vec::new());
            }
            alternatives.push(all);
        }
        Ok(alternatives)
    }
}

fn short(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

/// The path part of each server URL (`https://api.example/v2` is `/v2`), variables at their defaults.
fn base_paths(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for server in root.get("servers").and_then(Value::as_array).into_iter().flatten() {
        let Some(mut url) = server.get("url").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        if let Some(vars) = server.get("variables").and_then(Value::as_object) {
            for (k, v) in vars {
                if let Some(d) = v.get("default").and_then(Value::as_str) {
                    url = url.replace(&format!("{{{k}}}"), d);
                }
            }
        }
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
            None => url,
        };
        let path = path.trim_end_matches('/').to_string();
        if !out.contains(&path) {
            out.push(path);
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

impl Contract {
    /// Loads and compiles a spec file.
    pub fn load(path: &Path) -> Result<Contract, SpecError> {
        let files = crate::load::load(path)?;
        Contract::compile(&files, path)
    }

    pub fn compile(files: &SpecFiles, file: &Path) -> Result<Contract, SpecError> {
        let paths_by_uri = files
            .docs
            .keys()
            .filter_map(|u| {
                let p = u.strip_prefix("file://")?;
                Some((
                    u.clone(),
                    std::path::PathBuf::from(percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()),
                ))
            })
            .collect();
        let registry = jsonschema::Registry::new()
            .draft(jsonschema::Draft::Draft202012)
            .extend(
                files
                    .docs
                    .iter()
                    .map(|(u, v)| (u, jsonschema::Resource::from_contents(v.clone()))),
            )
            .and_then(|r| r.prepare())
            .map_err(|e| SpecError::new(file, format!("the spec's documents do not form a schema registry: {e}")))?;
        let c = Compiler {
            files,
            registry,
            paths_by_uri,
            root_file: file.to_path_buf(),
        };
        let root = files.root_doc();
        let root_at = At {
            uri: files.root.clone(),
            pointer: String::new(),
        };
        let global_security = match root.get("security") {
            Some(s) => c.security(s, &root_at.child("security"))?,
            None => Vec::new(),
        };
        let mut router = matchit::Router::new();
        let mut paths = Vec::new();
        for (template, _) in root.get("paths").and_then(Value::as_object).into_iter().flatten() {
            let item_at = root_at.child("paths").child(template);
            let (item_at, item) = c.follow(item_at)?;
            let shared_params: Vec<At> = (0..item.get("parameters").and_then(Value::as_array).map_or(0, Vec::len))
                .map(|i| item_at.child("parameters").child(&i.to_string()))
                .collect();
            let mut operations = Vec::new();
            for &m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let op_at = item_at.child(m);
                let mut params: Vec<Param> = Vec::new();
                let own = (0..op.get("parameters").and_then(Value::as_array).map_or(0, Vec::len))
                    .map(|i| op_at.child("parameters").child(&i.to_string()));
                // Operation parameters override the path's of the same name and location.
                for p in shared_params.iter().cloned().chain(own) {
                    let p = c.param(p)?;
                    // The spec ignores these header parameters (OpenAPI 3 section 4.8.12.1).
                    if p.at == In::Header && ["accept", "content-type", "authorization"].contains(&p.name.as_str()) {
                        continue;
                    }
                    params.retain(|q| !(q.name == p.name && q.at == p.at));
                    params.push(p);
                }
                let body = op
                    .get("requestBody")
                    .map(|_| c.body(op_at.child("requestBody")))
                    .transpose()?;
                let responses = c.responses(op_at.child("responses"))?;
                let security = match op.get("security") {
                    Some(s) => c.security(s, &op_at.child("security"))?,
                    None => global_security.clone(),
                };
                let method = http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).expect("a known method");
                operations.push((
                    method,
                    Operation {
                        info: OperationInfo {
                            method: m.to_ascii_uppercase(),
                            template: template.clone(),
                            operation_id: op.get("operationId").and_then(Value::as_str).map(str::to_string),
                            deprecated: op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
                            path_params: params
                                .iter()
                                .filter(|p| p.at == In::Path)
                                .map(|p| (p.name.clone(), p.kind.clone(), p.format.clone()))
                                .collect(),
                        },
                        params,
                        body,
                        responses,
                        security,
                    },
                ));
            }
            router
                .insert(template.as_str(), paths.len())
                .map_err(|e| c.err(&root_at.child("paths").child(template), format!("path template: {e}")))?;
            paths.push(PathItem { operations });
        }
        Ok(Contract {
            version: files.version,
            base_paths: base_paths(root),
            router,
            paths,
        })
    }

    /// The servers' base paths (`/v2`), empty for a spec served at the root.
    pub fn base_paths(&self) -> &[String] {
        &self.base_paths
    }

    /// Every operation: method, template, id, deprecated.
    pub fn operations(&self) -> impl Iterator<Item = &OperationInfo> {
        self.paths
            .iter()
            .flat_map(|p| p.operations.iter().map(|(_, o)| &o.info))
    }

    /// Checks an answer against the operation the request matched: a status the operation documents
    /// (exactly, by class such as `4XX`, or `default`), and a JSON body that fits the documented schema.
    /// `complete` is false when `body` is only the start of the answer: the schema is then not checked.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        complete: bool,
    ) -> Vec<Violation> {
        let Some(op) = self.operation(method, path) else {
            return Vec::new();
        };
        if op.responses.is_empty() {
            return Vec::new();
        }
        let entry = op
            .responses
            .iter()
            .find(|(s, _)| *s == Statuses::Exact(status))
            .or_else(|| op.responses.iter().find(|(s, _)| *s == Statuses::Class(status / 100)))
            .or_else(|| op.responses.iter().find(|(s, _)| *s == Statuses::Default));
        let Some((_, media)) = entry else {
            return vec![Violation {
                kind: ViolationKind::ResponseStatus,
                location: "response.status".into(),
                message: format!(
                    "status {status} is not documented for {} {}",
                    op.info.method, op.info.template
                ),
            }];
        };
        let bad = |location: String, message: String| {
            vec![Violation {
                kind: ViolationKind::ResponseBody,
                location,
                message,
            }]
        };
        if media.is_empty() || body.is_empty() {
            return Vec::new();
        }
        let media_type = content_type
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let Some(m) = media.iter().find(|m| {
            m.media == media_type
                || m.media == "*/*"
                || m.media
                    .strip_suffix("/*")
                    .is_some_and(|major| media_type.split('/').next() == Some(major))
        }) else {
            let known: Vec<&str> = media.iter().map(|m| m.media.as_str()).collect();
            return bad(
                "response.header.content-type".into(),
                format!("{media_type} is not one of {}", known.join(", ")),
            );
        };
        if !complete || !(media_type == "application/json" || media_type.ends_with("+json")) {
            return Vec::new();
        }
        let Some(validator) = &m.validator else {
            return Vec::new();
        };
        let instance: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad("response.body".into(), format!("not JSON: {e}")),
        };
        let first = validator
            .iter_errors(&instance)
            .next()
            .map(|err| (error_location(&err), err.to_string()));
        match first {
            Some((location, message)) => bad(format!("response.{location}"), message),
            None => Vec::new(),
        }
    }

    /// The operation a method and path match.
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let rest = self.base_paths.iter().find_map(|b| {
            let rest = path.strip_prefix(b.as_str())?;
            (rest.starts_with('/') || (rest.is_empty() && !b.is_empty())).then_some(rest)
        })?;
        let matched = self.router.at(if rest.is_empty() { "/" } else { rest }).ok()?;
        self.paths[*matched.value]
            .operations
            .iter()
            .find(|(m, _)| m.as_str() == method)
            .map(|(_, o)| o)
    }

    /// Checks a request against the contract.
    pub fn check(&self, req: &ApiRequest<'_>) -> Checked<'_> {
        let mut violations = Vec::new();
        let unknown = |violations: &mut Vec<Violation>, message: String| {
            violations.push(Violation {
                kind: ViolationKind::UnknownPath,
                location: "path".into(),
                message,
            });
        };
        let Some(rest) = self.base_paths.iter().find_map(|b| {
            let rest = req.path.strip_prefix(b.as_str())?;
            (rest.starts_with('/') || (rest.is_empty() && !b.is_empty())).then_some(rest)
        }) else {
            unknown(&mut violations, format!("{} is outside the API's base path", req.path));
            return Checked {
                operation: None,
                violations,
            };
        };
        let rest = if rest.is_empty() { "/" } else { rest };
        let Ok(matched) = self.router.at(rest) else {
            unknown(
                &mut violations,
                format!("no operation has a path matching {}", req.path),
            );
            return Checked {
                operation: None,
                violations,
            };
        };
        let item = &self.paths[*matched.value];
        let Some((_, op)) = item.operations.iter().find(|(m, _)| m.as_str() == req.method) else {
            let allowed: Vec<&str> = item.operations.iter().map(|(m, _)| m.as_str()).collect();
            violations.push(Violation {
                kind: ViolationKind::UnknownMethod,
                location: "method".into(),
                message: format!("{} is not defined here (allowed: {})", req.method, allowed.join(", ")),
            });
            return Checked {
                operation: None,
                violations,
            };
        };
        let query = values::query_pairs(req.query.unwrap_or_default());
        let cookies = values::cookies(req.headers);
        for p in &op.params {
            if let Some(v) = check_param(p, &matched.params, &query, &cookies, req.headers) {
                violations.push(v);
            }
        }
        if !op.security.is_empty()
            && !op
                .security
                .iter()
                .any(|all| all.iter().all(|c| present(c, req.headers, &query, &cookies)))
        {
            let first = &op.security[0];
            let missing = first
                .iter()
                .find(|c| !present(c, req.headers, &query, &cookies))
                .unwrap_or(&first[0]);
            violations.push(Violation {
                kind: ViolationKind::Security,
                location: missing.location(),
                message: "no credential the operation's security requires".into(),
            });
        }
        if let (Some(body), true) = (&op.body, req.body_complete) {
            if let Some(v) = check_body(body, req) {
                violations.push(v);
            }
        }
        Checked {
            operation: Some(&op.info),
            violations,
        }
    }
}

fn present(
    c: &Credential,
    headers: &http::HeaderMap,
    query: &[(String, String)],
    cookies: &[(String, String)],
) -> bool {
    let auth = || {
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let scheme = |s: &str| {
        let a = auth();
        a.len() > s.len() + 1 && a[..s.len()].eq_ignore_ascii_case(s) && a.as_bytes()[s.len()] == b' '
    };
    match c {
        Credential::Header(n) => headers.get(n.as_str()).is_some_and(|v| !v.is_empty()),
        Credential::Query(n) => query.iter().any(|(k, v)| k == n && !v.is_empty()),
        Credential::Cookie(n) => cookies.iter().any(|(k, v)| k == n && !v.is_empty()),
        Credential::Bearer => scheme("bearer"),
        Credential::Basic => scheme("basic"),
    }
}

fn check_param(
    p: &Param,
    path_params: &matchit::Params<'_, '_>,
    query: &[(String, String)],
    cookies: &[(String, String)],
    headers: &http::HeaderMap,
) -> Option<Violation> {
    let (kind, location) = match p.at {
        In::Path => (ViolationKind::PathParam, format!("path.{}", p.name)),
        In::Query => (ViolationKind::QueryParam, format!("query.{}", p.name)),
        In::Header => (ViolationKind::HeaderParam, format!("header.{}", p.name)),
        In::Cookie => (ViolationKind::CookieParam, format!("cookie.{}", p.name)),
    };
    let violation = |message: String| {
        Some(Violation {
            kind,
            location: location.clone(),
            message,
        })
    };
    let split = |raw: &str| -> Vec<String> {
        let sep = match p.style {
            Style::SpaceDelimited => ' ',
            Style::PipeDelimited => '|',
            _ => ',',
        };
        raw.split(sep).map(str::to_string).collect()
    };
    // The raw strings of the parameter, then its JSON value.
    let value: Result<Option<Value>, String> = match (&p.kind, p.at) {
        (Kind::Object(props), In::Query) if p.style == Style::DeepObject => {
            let prefix = format!("{}[", p.name);
            let mut obj = serde_json::Map::new();
            let mut err = None;
            for (k, v) in query {
                let Some(prop) = k.strip_prefix(&prefix).and_then(|r| r.strip_suffix(']')) else {
                    continue;
                };
                match values::coerce(props.get(prop).unwrap_or(&Kind::Any), v) {
                    Ok(v) => {
                        obj.insert(prop.to_string(), v);
                    }
                    Err(e) => err = Some(format!("{prop}: {e}")),
                }
            }
            match err {
                Some(e) => Err(e),
                None => Ok((!obj.is_empty()).then_some(Value::Object(obj))),
            }
        }
        (kind, at) => {
            let raws: Vec<String> = match at {
                In::Path => path_params
                    .get(&p.name)
                    .map(|v| vec![values::decode_segment(v)])
                    .unwrap_or_default(),
                In::Query => query
                    .iter()
                    .filter(|(k, _)| k == &p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                In::Cookie => cookies
                    .iter()
                    .filter(|(k, _)| k == &p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                In::Header => headers
                    .get_all(p.name.as_str())
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
            };
            if raws.is_empty() {
                Ok(None)
            } else if let Kind::Array(item) = kind {
                let items: Vec<String> = if p.explode && p.style == Style::Form {
                    raws
                } else {
                    raws.iter().flat_map(|r| split(r)).collect()
                };
                items
                    .iter()
                    .map(|i| values::coerce(item, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|a| Some(Value::Array(a)))
            } else {
                values::coerce(kind, &raws[0]).map(Some)
            }
        }
    };
    match value {
        Err(e) => violation(e),
        Ok(None) if p.required => violation("required, missing".into()),
        Ok(None) => None,
        Ok(Some(v)) => {
            let validator = p.validator.as_ref()?;
            let err = validator.iter_errors(&v).next()?;
            violation(err.to_string())
        }
    }
}

fn check_body(body: &Body, req: &ApiRequest<'_>) -> Option<Violation> {
    let ctype = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase());
    if req.body.is_empty() {
        // Nothing sent (a content type alone is no body).
        return body.required.then(|| Violation {
            kind: ViolationKind::MissingBody,
            location: "body".into(),
            message: "the operation requires a request body".into(),
        });
    }
    let bad_type = |message: String| {
        Some(Violation {
            kind: ViolationKind::BodyContentType,
            location: "header.content-type".into(),
            message,
        })
    };
    let Some(ctype) = ctype else {
        return bad_type("a body without a content type".into());
    };
    let media_type = ctype.split(';').next().unwrap_or_default().trim();
    let matches = |m: &Media| {
        m.media == media_type
            || m.media == "*/*"
            || m.media
                .strip_suffix("/*")
                .is_some_and(|major| media_type.split('/').next() == Some(major))
    };
    let Some(media) = body
        .media
        .iter()
        .find(|m| m.media == media_type)
        .or_else(|| body.media.iter().find(|m| matches(m)))
    else {
        let known: Vec<&str> = body.media.iter().map(|m| m.media.as_str()).collect();
        return bad_type(format!("{media_type} is not one of {}", known.join(", ")));
    };
    let schema_error = |location: String, message: String| {
        Some(Violation {
            kind: ViolationKind::BodySchema,
            location,
            message,
        })
    };
    let instance: Value = if media_type == "application/json" || media_type.ends_with("+json") {
        match serde_json::from_slice(req.body) {
            Ok(v) => v,
            Err(e) => return schema_error("body".into(), format!("not JSON: {e}")),
        }
    } else if media_type == "application/x-www-form-urlencoded" {
        let props = match &media.kind {
            Kind::Object(p) => p.clone(),
            _ => BTreeMap::new(),
        };
        let mut obj = serde_json::Map::new();
        for (k, v) in values::query_pairs(&String::from_utf8_lossy(req.body)) {
            let kind = props.get(&k).unwrap_or(&Kind::Any);
            let value = match kind {
                Kind::Array(item) => values::coerce(item, &v).map(|x| {
                    let mut arr = match obj.remove(&k) {
                        Some(Value::Array(a)) => a,
                        _ => Vec::new(),
                    };
                    arr.push(x);
                    Value::Array(arr)
                }),
                kind => values::coerce(kind, &v),
            };
            match value {
                Ok(value) => {
                    obj.insert(k, value);
                }
                Err(e) => return schema_error(format!("body.{k}"), e),
            }
        }
        Value::Object(obj)
    } else if media_type == "multipart/form-data" {
        let boundary = ctype
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_string());
        // The boundary keeps its case: read it from the header as sent.
        let raw = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let boundary = boundary.and_then(|b| {
            let i = raw.to_ascii_lowercase().find(&b)?;
            Some(raw[i..i + b.len()].to_string())
        });
        let Some(parts) = boundary.and_then(|b| values::multipart(req.body, &b)) else {
            return schema_error("body".into(), "not a multipart/form-data body".into());
        };
        let props = match &media.kind {
            Kind::Object(p) => p.clone(),
            _ => BTreeMap::new(),
        };
        let mut obj = serde_json::Map::new();
        for part in parts {
            let value = if part.filename.is_some() {
                Value::String(String::from_utf8_lossy(part.data).into_owned())
            } else {
                let text = String::from_utf8_lossy(part.data);
                match values::coerce(props.get(&part.name).unwrap_or(&Kind::Any), &text) {
                    Ok(v) => v,
                    Err(e) => return schema_error(format!("body.{}", part.name), e),
                }
            };
            obj.insert(part.name, value);
        }
        Value::Object(obj)
    } else {
        // Text, binary and other media: nothing a schema says about them is checked.
        return None;
    };
    let validator = media.validator.as_ref()?;
    let err = validator.iter_errors(&instance).next()?;
    schema_error(error_location(&err), err.to_string())
}

/// Where in a body a schema error is (`body.items[0].quantity`): the missing property of a `required`,
/// the extra one of an `additionalProperties: false`.
fn error_location(err: &jsonschema::ValidationError<'_>) -> String {
    let mut location = values::body_location(err.instance_path().as_str());
    match err.kind() {
        jsonschema::error::ValidationErrorKind::Required { property } => {
            location.push('.');
            location.push_str(property.as_str().unwrap_or_default());
        }
        jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected }
        | jsonschema::error::ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            if let Some(u) = unexpected.first() {
                location.push('.');
                location.push_str(u);
            }
        }
        _ => {}
    }
    location
}
