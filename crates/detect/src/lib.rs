//! rampart-detect: points -> findings -> verdict.
//!
//! Each attack class has its own module that tokenizes a value in the
//! language it would attack (SQL, HTML/JS, shell, paths, templates, LDAP
//! filters, ...) and scores what the tokens would do there. A one-pass
//! prefilter ([`prefilter`]) lets clean values skip every expensive detector.

// Scoring ladders read better as explicit if/else chains, one rule per arm.
#![allow(clippy::collapsible_if, clippy::collapsible_match, clippy::if_same_then_else)]

pub mod config;
pub mod corpus;
pub mod docs;
pub mod eval;
pub mod graphql;
pub mod headers;
pub mod prefilter;
pub mod util;

pub mod cmdi;
pub mod deser;
pub mod inj;
pub mod misc;
pub mod names;
pub mod path;
pub mod protocol;
pub mod sqli;
pub mod ssrf;
pub mod ssti;
pub mod xss;

use std::borrow::Cow;

pub use config::{ConfigError, CustomRule, DetectionConfig, Exclusion, GrpcConfig, Sensitivity};
use rampart_inspect::{Inspection, Limits, Point, RequestView};
use serde::Serialize;

/// Attack classes (serialized in kebab-case: `sqli`, `path-traversal`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum AttackClass {
    Sqli,
    Xss,
    Rce,
    PathTraversal,
    Ssrf,
    Rfi,
    Xxe,
    Ssti,
    Nosqli,
    Ldapi,
    MailInjection,
    Ssi,
    Crlf,
    Jndi,
    PrototypePollution,
    PhpInjection,
    Deserialization,
    Java,
    El,
    Scanner,
    Graphql,
    Protocol,
    Limit,
    Custom,
}

impl AttackClass {
    pub const ALL: &'static [AttackClass] = &[
        AttackClass::Sqli,
        AttackClass::Xss,
        AttackClass::Rce,
        AttackClass::PathTraversal,
        AttackClass::Ssrf,
        AttackClass::Rfi,
        AttackClass::Xxe,
        AttackClass::Ssti,
        AttackClass::Nosqli,
        AttackClass::Ldapi,
        AttackClass::MailInjection,
        AttackClass::Ssi,
        AttackClass::Crlf,
        AttackClass::Jndi,
        AttackClass::PrototypePollution,
        AttackClass::PhpInjection,
        AttackClass::Deserialization,
        AttackClass::Java,
        AttackClass::El,
        AttackClass::Scanner,
        AttackClass::Graphql,
        AttackClass::Protocol,
        AttackClass::Limit,
        AttackClass::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttackClass::Sqli => "sqli",
            AttackClass::Xss => "xss",
            AttackClass::Rce => "rce",
            AttackClass::PathTraversal => "path-traversal",
            AttackClass::Ssrf => "ssrf",
            AttackClass::Rfi => "rfi",
            AttackClass::Xxe => "xxe",
            AttackClass::Ssti => "ssti",
            AttackClass::Nosqli => "nosqli",
            AttackClass::Ldapi => "ldapi",
            AttackClass::MailInjection => "mail-injection",
            AttackClass::Ssi => "ssi",
            AttackClass::Crlf => "crlf",
            AttackClass::Jndi => "jndi",
            AttackClass::PrototypePollution => "prototype-pollution",
            AttackClass::PhpInjection => "php-injection",
            AttackClass::Deserialization => "deserialization",
            AttackClass::Java => "java",
            AttackClass::El => "el",
            AttackClass::Scanner => "scanner",
            AttackClass::Graphql => "graphql",
            AttackClass::Protocol => "protocol",
            AttackClass::Limit => "limit",
            AttackClass::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<AttackClass> {
        let s = s.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "cmdi" | "command-injection" | "os-command" => "rce",
            "lfi" | "traversal" => "path-traversal",
            "nosql" => "nosqli",
            "ldap" => "ldapi",
            "mail" => "mail-injection",
            "log4shell" => "jndi",
            "php" => "php-injection",
            "header-injection" => "crlf",
            other => other,
        };
        AttackClass::ALL.iter().copied().find(|c| c.as_str() == alias)
    }
}

impl std::fmt::Display for AttackClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason to suspect the request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub class: AttackClass,
    pub rule_id: Cow<'static, str>,
    pub score: u32,
    pub point: String,
    pub decode_chain: Vec<&'static str>,
    /// Short excerpt (at most 80 chars).
    pub evidence: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Block,
}

/// The result of [`Detector::analyze`].
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    pub findings: Vec<Finding>,
    pub score: u32,
    pub threshold: u32,
    pub verdict: Verdict,
    /// A GraphQL operation on a route that masks field suggestions in its answers.
    pub mask_graphql_suggestions: bool,
}

/// A detector's raw hit on one value, before point and exclusion handling.
#[derive(Clone, Debug)]
pub struct Hit {
    pub class: AttackClass,
    pub rule_id: &'static str,
    pub score: u32,
    pub evidence: String,
}

impl Hit {
    pub fn new(class: AttackClass, rule_id: &'static str, score: u32, evidence: impl AsRef<str>) -> Hit {
        Hit {
            class,
            rule_id,
            score,
            evidence: util::excerpt(evidence.as_ref(), 80),
        }
    }
}

/// What a detector sees: one value of one point.
pub struct Ctx<'a> {
    pub point: &'a Point,
    pub value: &'a str,
    /// ASCII-lowercased value.
    pub lower: &'a str,
    pub pre: &'a prefilter::Pre,
}

struct CompiledCustom {
    id: String,
    point: util::Glob,
    regex: regex::Regex,
    class: AttackClass,
    score: u32,
}

struct CompiledExclusion {
    point: util::Glob,
    classes: Vec<AttackClass>,
    all_classes: bool,
    path: Option<util::Glob>,
}

/// The compiled detection engine. Immutable, `Send + Sync`; share it in an
/// `Arc`.
pub struct Detector {
    threshold: u32,
    limits: Limits,
    exclusions: Vec<CompiledExclusion>,
    custom: Vec<CompiledCustom>,
    disabled: Vec<String>,
    prefilter: &'static prefilter::Prefilter,
    graphql: graphql::GraphqlLimits,
    graphql_schema: Option<std::sync::Arc<graphql::Schema>>,
}

impl Detector {
    pub fn new(cfg: &DetectionConfig) -> Result<Detector, ConfigError> {
        let threshold = match cfg.threshold {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    field: "threshold".into(),
                    hint: "must be at least 1 (omit it to use the sensitivity level)".into(),
                })
            }
            Some(t) => t,
            None => cfg.sensitivity.threshold(),
        };
        let mut exclusions = Vec::new();
        for (i, e) in cfg.exclusions.iter().enumerate() {
            let mut classes = Vec::new();
            let mut all = e.classes.is_empty();
            for c in &e.classes {
                if c == "*" || c == "all" {
                    all = true;
                    continue;
                }
                classes.push(AttackClass::parse(c).ok_or_else(|| ConfigError::Invalid {
                    field: format!("exclusions[{i}].classes"),
                    hint: format!("unknown attack class {c:?}; known: {}", known_classes()),
                })?);
            }
            if e.point.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    field: format!("exclusions[{i}].point"),
                    hint: "empty point glob; use e.g. \"body.json.content\" or \"query.*\"".into(),
                });
            }
            exclusions.push(CompiledExclusion {
                point: util::Glob::new(&e.point),
                classes,
                all_classes: all,
                path: e.path.as_deref().map(util::Glob::new),
            });
        }
        let mut custom = Vec::new();
        for (i, r) in cfg.custom_rules.iter().enumerate() {
            if r.id.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    field: format!("custom_rules[{i}].id"),
                    hint: "give the rule an id such as \"CUSTOM-001\"".into(),
                });
            }
            let regex = regex::RegexBuilder::new(&r.pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ConfigError::Invalid {
                    field: format!("custom_rules[{i}].pattern"),
                    hint: format!("invalid regex: {e}"),
                })?;
            let class = match &r.class {
                Some(c) => AttackClass::parse(c).ok_or_else(|| ConfigError::Invalid {
                    field: format!("custom_rules[{i}].class"),
                    hint: format!("unknown attack class {c:?}; known: {}", known_classes()),
                })?,
                None => AttackClass::Custom,
            };
            let score = match r.action.as_deref() {
                None | Some("score") => r.score.unwrap_or(threshold),
                Some("block") => r.score.unwrap_or(0).max(threshold),
                Some("log") => r.score.unwrap_or(0),
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        field: format!("custom_rules[{i}].action"),
                        hint: format!("unknown action {other:?}; use \"block\", \"score\" or \"log\""),
                    })
                }
            };
            custom.push(CompiledCustom {
                id: r.id.clone(),
                point: util::Glob::new(&r.point),
                regex,
                class,
                score,
            });
        }
        let graphql_schema = match &cfg.graphql.schema {
            Some(path) => Some(std::sync::Arc::new(graphql::Schema::load(path).map_err(|e| {
                ConfigError::Invalid {
                    field: "graphql.schema".into(),
                    hint: e,
                }
            })?)),
            None => None,
        };
        let mut limits = Limits::default();
        if !cfg.grpc.protos.is_empty() {
            let files: Vec<std::path::PathBuf> = cfg.grpc.protos.iter().map(Into::into).collect();
            let mut includes: Vec<std::path::PathBuf> = cfg.grpc.include.iter().map(Into::into).collect();
            if includes.is_empty() {
                for f in &files {
                    let dir = f.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
                    if !includes.contains(&dir) {
                        includes.push(dir);
                    }
                }
            }
            let schema =
                rampart_inspect::grpc::GrpcSchema::compile(&files, &includes).map_err(|e| ConfigError::Invalid {
                    field: "grpc.protos".into(),
                    hint: e,
                })?;
            limits.grpc_schema = Some(std::sync::Arc::new(schema));
        }
        Ok(Detector {
            threshold,
            limits,
            exclusions,
            custom,
            disabled: cfg.disabled_rules.clone(),
            prefilter: prefilter::Prefilter::shared(),
            graphql: cfg.graphql.clone(),
            graphql_schema,
        })
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Run every detector over every point of the request.
    pub fn analyze(&self, req: &RequestView<'_>) -> Analysis {
        let insp = rampart_inspect::inspect(req, &self.limits);
        self.analyze_inspection(req, &insp)
    }

    /// A message of a connection or stream the request opened (a WebSocket message, a later gRPC stream
    /// message), carried in `req`'s body: its values are analyzed, while the request-level checks
    /// (method, framing headers, Host) are not run again for every message, nor are its path and
    /// headers read again as values: the request that opened the connection had them.
    pub fn analyze_message(&self, req: &RequestView<'_>) -> Analysis {
        let insp = rampart_inspect::inspect_body(req, &self.limits);
        self.analyze_with(req, &insp, false)
    }

    /// Analyze an already inspected request.
    pub fn analyze_inspection(&self, req: &RequestView<'_>, insp: &Inspection) -> Analysis {
        self.analyze_with(req, insp, true)
    }

    fn analyze_with(&self, req: &RequestView<'_>, insp: &Inspection, request_level: bool) -> Analysis {
        let mut findings: Vec<Finding> = Vec::new();
        let req_path = req.uri.path();
        // request-level checks
        let mut hits = Vec::new();
        if request_level {
            protocol::check_request(req, insp, &mut hits);
        }
        for h in hits.drain(..) {
            self.push(&mut findings, h, "request", &[], req_path);
        }
        for a in &insp.anomalies {
            let class = AttackClass::parse(a.class).unwrap_or(AttackClass::Protocol);
            let h = Hit::new(class, a.rule_id, a.score, &a.detail);
            self.push(&mut findings, h, &a.point, &[], req_path);
        }
        // lowercase buffers reused across points (and derived texts)
        let mut lower = String::new();
        let mut derived_lower = String::new();
        let mut graphql_docs = 0usize;
        let graphql_body = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/graphql"));
        for p in &insp.points {
            names::check(p, &mut hits);
            if p.location == rampart_inspect::Location::Header
                && p.chain.is_empty()
                && headers::well_formed(&p.path, &p.value)
            {
                // standard header in its own grammar: only the scanner check
                if p.path == "header.user-agent" {
                    misc::scanner_ua(&p.value, &mut hits);
                    let pname = point_name(p);
                    for h in hits.drain(..) {
                        self.push(&mut findings, h, &pname, &p.chain, req_path);
                    }
                }
                if self.custom.is_empty() {
                    continue;
                }
            }
            let graphql_doc = (docs::looks_graphql(&p.path, &p.value) || (graphql_body && p.path == "body.text"))
                .then(|| graphql::parse(&p.value))
                .filter(|d| d.valid || d.over_limit);
            if let Some(doc) = graphql_doc {
                // A GraphQL document: its limits always, the detectors on its strings only. A value the
                // parser refuses is not GraphQL to the server either: it is inspected like any value.
                graphql_docs += 1;
                self.graphql(p, doc, &mut lower, &mut derived_lower, &mut hits);
            } else {
                let pre = self.prefilter.scan(&p.value);
                if pre.is_clean() && self.custom.is_empty() && hits.is_empty() {
                    continue;
                }
                if !pre.is_clean() {
                    lower.clear();
                    lower.push_str(&p.value);
                    lower.make_ascii_lowercase();
                    let ctx = Ctx {
                        point: p,
                        value: &p.value,
                        lower: &lower,
                        pre: &pre,
                    };
                    match docs::derive(&p.path, &p.value) {
                        None => run_detectors(&ctx, &mut hits),
                        Some(docs::Derived::Text(t)) => self.run_on(p, &t, &mut derived_lower, &mut hits),
                    }
                }
            }
            // the point's name is an allocation: only for points with a hit
            if hits.is_empty() && self.custom.is_empty() {
                continue;
            }
            let pname = point_name(p);
            for h in hits.drain(..) {
                self.push(&mut findings, h, &pname, &p.chain, req_path);
            }
            for c in &self.custom {
                if c.point.matches(&p.path) {
                    if let Some(m) = c.regex.find(&p.value) {
                        let f = Finding {
                            class: c.class,
                            rule_id: Cow::Owned(c.id.clone()),
                            score: c.score,
                            point: pname.clone(),
                            decode_chain: p.chain.clone(),
                            evidence: util::excerpt(m.as_str(), 80),
                        };
                        if !self.excluded(&f, &p.path, req_path) && !findings.contains(&f) {
                            findings.push(f);
                        }
                    }
                }
            }
        }
        if graphql_docs > self.graphql.max_batch {
            let h = Hit::new(
                AttackClass::Graphql,
                "GQL-005",
                10,
                format!(
                    "{graphql_docs} operations in one request (max {})",
                    self.graphql.max_batch
                ),
            );
            self.push(&mut findings, h, "body", &[], req_path);
        }
        let score = findings.iter().map(|f| f.score).sum::<u32>();
        Analysis {
            verdict: if score >= self.threshold {
                Verdict::Block
            } else {
                Verdict::Pass
            },
            findings,
            score,
            threshold: self.threshold,
            mask_graphql_suggestions: graphql_docs > 0 && self.graphql.mask_suggestions,
        }
    }

    /// A GraphQL document: measured against the route's limits, introspection checked, and the value
    /// detectors run on its strings (a document over the parser's limits: on its string literals).
    fn graphql(
        &self,
        p: &Point,
        doc: graphql::Document,
        lower: &mut String,
        derived_lower: &mut String,
        hits: &mut Vec<Hit>,
    ) {
        let lim = &self.graphql;
        let s = &doc.shape;
        let mut over = |rule: &'static str, what: &str, n: u64, max: u64| {
            if n > max {
                hits.push(Hit::new(
                    AttackClass::Graphql,
                    rule,
                    10,
                    format!("{what} {n} (max {max})"),
                ));
            }
        };
        over("GQL-002", "depth", s.depth as u64, lim.max_depth as u64);
        over("GQL-003", "aliases", s.aliases as u64, lim.max_aliases as u64);
        over("GQL-004", "fields", s.fields as u64, lim.max_fields as u64);
        over("GQL-006", "directives", s.directives as u64, lim.max_directives as u64);
        over("GQL-007", "estimated cost", s.cost, lim.max_cost);
        if let Some(f) = &s.fragment_cycle {
            hits.push(Hit::new(
                AttackClass::Graphql,
                "GQL-008",
                10,
                format!("fragment {f} spreads itself"),
            ));
        }
        if let (Some(schema), true) = (&self.graphql_schema, doc.valid) {
            if let Some(why) = schema.violation(&p.value) {
                hits.push(Hit::new(AttackClass::Graphql, "GQL-010", 10, util::excerpt(&why, 120)));
            }
        }
        if doc.over_limit {
            hits.push(Hit::new(
                AttackClass::Graphql,
                "GQL-009",
                10,
                format!(
                    "document over the parser's limits ({} tokens, nesting {})",
                    graphql::MAX_TOKENS,
                    graphql::MAX_RECURSION
                ),
            ));
        }
        // Introspection and the other checks that read the whole value (NUL bytes, ...).
        let pre = self.prefilter.scan(&p.value);
        lower.clear();
        lower.push_str(&p.value);
        lower.make_ascii_lowercase();
        let ctx = Ctx {
            point: p,
            value: &p.value,
            lower,
            pre: &pre,
        };
        let before = hits.len();
        misc::check(&ctx, hits);
        if lim.allow_introspection {
            let mut i = before;
            while i < hits.len() {
                if hits[i].rule_id == "GQL-001" {
                    hits.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        let strings = if doc.valid {
            doc.strings
        } else {
            docs::graphql_strings(&p.value)
        };
        for t in strings.iter().take(64) {
            self.run_on(p, t, derived_lower, hits);
        }
    }

    /// Run the value detectors on a text derived from a point's value.
    fn run_on(&self, p: &Point, text: &str, lower: &mut String, hits: &mut Vec<Hit>) {
        let pre = self.prefilter.scan(text);
        if pre.is_clean() {
            return;
        }
        lower.clear();
        lower.push_str(text);
        lower.make_ascii_lowercase();
        let ctx = Ctx {
            point: p,
            value: text,
            lower,
            pre: &pre,
        };
        run_detectors(&ctx, hits);
    }

    fn excluded(&self, f: &Finding, point_path: &str, req_path: &str) -> bool {
        self.exclusions.iter().any(|e| {
            e.point.matches(point_path)
                && (e.all_classes || e.classes.contains(&f.class))
                && e.path.as_ref().is_none_or(|p| p.matches(req_path))
        })
    }

    fn push(&self, findings: &mut Vec<Finding>, h: Hit, point: &str, chain: &[&'static str], req_path: &str) {
        if self.disabled.iter().any(|d| d == h.rule_id) {
            return;
        }
        let bare = point.strip_suffix("#key").unwrap_or(point);
        let f = Finding {
            class: h.class,
            rule_id: Cow::Borrowed(h.rule_id),
            score: h.score,
            point: point.to_string(),
            decode_chain: chain.to_vec(),
            evidence: h.evidence,
        };
        if self.excluded(&f, bare, req_path) {
            return;
        }
        // one finding per rule and point (the decoded variants of a value
        // would otherwise count the same attack several times): keep the
        // highest score.
        if let Some(prev) = findings
            .iter_mut()
            .find(|x| x.rule_id == f.rule_id && x.point == f.point)
        {
            if f.score > prev.score {
                *prev = f;
            }
            return;
        }
        findings.push(f);
    }
}

fn known_classes() -> String {
    AttackClass::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn point_name(p: &Point) -> String {
    if p.is_key {
        format!("{}#key", p.path)
    } else {
        p.path.clone()
    }
}

/// All value detectors, in the order of cost.
pub fn run_detectors(ctx: &Ctx<'_>, out: &mut Vec<Hit>) {
    use prefilter::*;
    let pre = ctx.pre;
    if pre.any(G_SQL) {
        sqli::check(ctx, out);
    }
    if pre.any(G_XSS) {
        xss::check(ctx, out);
    }
    if pre.any(G_CMD) {
        cmdi::check(ctx, out);
    }
    if pre.any(G_PATH) {
        path::check(ctx, out);
    }
    if pre.any(G_URL) {
        ssrf::check(ctx, out);
    }
    if pre.any(G_TPL) {
        ssti::check(ctx, out);
    }
    if pre.any(G_INJ) {
        inj::check(ctx, out);
    }
    if pre.any(G_DESER) {
        deser::check(ctx, out);
    }
    if pre.any(G_MISC) {
        misc::check(ctx, out);
    }
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(&DetectionConfig::default()).expect("default config is valid")
    }
}

/// Test support: the highest score a detector's `check` gives `v` read as a query value.
#[cfg(test)]
pub(crate) fn max_score_of(check: fn(&Ctx<'_>, &mut Vec<Hit>), v: &str) -> u32 {
    max_score_at(check, v, "q", rampart_inspect::Location::Query, false)
}

/// Test support: the highest score `check` gives `v` at a point with this path, location and key flag.
#[cfg(test)]
pub(crate) fn max_score_at(
    check: fn(&Ctx<'_>, &mut Vec<Hit>),
    v: &str,
    path: &str,
    location: rampart_inspect::Location,
    is_key: bool,
) -> u32 {
    let p = rampart_inspect::Point {
        path: path.into(),
        value: v.into(),
        chain: vec![],
        location,
        is_key,
        root: 0,
    };
    let pre = crate::prefilter::Prefilter::shared().scan(v);
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn analyze_get(d: &Detector, uri: &str, headers: &[(&str, &str)]) -> Analysis {
        let m = http::Method::GET;
        let u: http::Uri = uri.parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("api.example.com"));
        for (k, v) in headers {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        d.analyze(&RequestView {
            method: &m,
            uri: &u,
            headers: &h,
            body: b"",
            body_truncated: false,
        })
    }

    #[test]
    fn send_sync() {
        fn assert_ss<T: Send + Sync>() {}
        assert_ss::<Detector>();
    }

    #[test]
    fn blocks_and_passes() {
        let d = Detector::default();
        let a = analyze_get(&d, "/search?q=1%27%20OR%20%271%27%3D%271", &[]);
        assert_eq!(a.verdict, Verdict::Block, "{a:?}");
        assert!(a
            .findings
            .iter()
            .any(|f| f.class == AttackClass::Sqli && f.point == "query.q"));
        let a = analyze_get(&d, "/search?q=O%27Brien%20and%20sons", &[]);
        assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    }

    #[test]
    fn exclusion_and_custom_rule() {
        let cfg: DetectionConfig = toml_like(
            r#"{"exclusions":[{"point":"query.q","classes":["sqli"]}],
                "custom_rules":[{"id":"C-1","point":"query.*","pattern":"forbidden","score":10}]}"#,
        );
        let d = Detector::new(&cfg).unwrap();
        let a = analyze_get(&d, "/?q=1%27%20OR%20%271%27%3D%271", &[]);
        assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
        let a = analyze_get(&d, "/?x=forbidden", &[]);
        assert_eq!(a.verdict, Verdict::Block);
        assert_eq!(a.findings[0].rule_id, "C-1");
    }

    #[test]
    fn config_errors_name_field() {
        let cfg: DetectionConfig = toml_like(r#"{"custom_rules":[{"id":"x","point":"*","pattern":"("}]}"#);
        let e = Detector::new(&cfg).err().unwrap().to_string();
        assert!(e.contains("custom_rules[0].pattern"), "{e}");
        let cfg: DetectionConfig = toml_like(r#"{"exclusions":[{"point":"q","classes":["nope"]}]}"#);
        let e = Detector::new(&cfg).err().unwrap().to_string();
        assert!(e.contains("exclusions[0].classes"), "{e}");
        assert!(serde_json::from_str::<DetectionConfig>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn messages_are_judged_by_their_values_alone() {
        // A WebSocket message relayed for a client of an IP-addressed host: the upgrade request had its
        // Host checked; each message must not pay for it again.
        let d = Detector::new(&DetectionConfig::default()).unwrap();
        let m = http::Method::POST;
        let u: http::Uri = "/ws/room".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("10.0.0.5:8080"));
        h.insert("content-type", http::HeaderValue::from_static("application/json"));
        let view = |body: &'static str| RequestView {
            method: &m,
            uri: &u,
            headers: &h,
            body: body.as_bytes(),
            body_truncated: false,
        };
        let chat = r#"{"text":"it's O'Brien -- I'll select the blue one"}"#;
        assert!(rules(&d.analyze(&view(chat))).contains(&"PROTO-018".to_string()));
        let message = d.analyze_message(&view(chat));
        assert!(
            message.findings.iter().all(|f| f.point != "request"),
            "{:?}",
            rules(&message)
        );
        assert_eq!(message.verdict, Verdict::Pass);
        // Attacks in messages are still attacks.
        let attack = d.analyze_message(&view(r#"{"text":"x' UNION SELECT password FROM users--"}"#));
        assert_eq!(attack.verdict, Verdict::Block, "{:?}", rules(&attack));
        assert!(
            attack.findings.iter().all(|f| f.point.starts_with("body")),
            "{:?}",
            attack.findings
        );
        // The upgrade's query was judged with the upgrade; its messages are not blocked for it again.
        let q: http::Uri = "/ws/room?room=1%27%20UNION%20SELECT%20password%20FROM%20users--"
            .parse()
            .unwrap();
        let with_query = RequestView { uri: &q, ..view(chat) };
        assert_eq!(d.analyze(&with_query).verdict, Verdict::Block);
        assert_eq!(d.analyze_message(&with_query).verdict, Verdict::Pass);
    }

    fn toml_like(s: &str) -> DetectionConfig {
        serde_json::from_str(s).unwrap()
    }

    fn post(d: &Detector, ctype: &str, body: &str) -> Analysis {
        let m = http::Method::POST;
        let u: http::Uri = "/graphql".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("api.example.com"));
        h.insert("content-type", http::HeaderValue::from_str(ctype).unwrap());
        h.insert("accept", http::HeaderValue::from_static("application/json"));
        d.analyze(&RequestView {
            method: &m,
            uri: &u,
            headers: &h,
            body: body.as_bytes(),
            body_truncated: false,
        })
    }

    fn rules(a: &Analysis) -> Vec<String> {
        a.findings.iter().map(|f| f.rule_id.to_string()).collect()
    }

    fn gql(query: &str) -> String {
        serde_json::json!({ "query": query }).to_string()
    }

    #[test]
    fn graphql_syntax_is_not_an_attack_and_its_strings_are_inspected() {
        let d = Detector::default();
        let benign = gql(
            r#"mutation { addComment(body: "I'd select the blue one -- it's from O'Brien's shop; see <b>this</b>") { id } }"#,
        );
        let a = post(&d, "application/json", &benign);
        assert_eq!(a.verdict, Verdict::Pass, "{:?}", a.findings);
        let sqli = gql(r#"query { user(name: "x' UNION SELECT password FROM users--") { id } }"#);
        let a = post(&d, "application/json", &sqli);
        assert_eq!(a.verdict, Verdict::Block);
        assert!(
            a.findings.iter().any(|f| f.class == AttackClass::Sqli),
            "{:?}",
            a.findings
        );
        // The same in an application/graphql body.
        let a = post(
            &d,
            "application/graphql",
            r#"{ search(q: "<script>alert(1)</script>") { id } }"#,
        );
        assert_eq!(a.verdict, Verdict::Block, "{:?}", a.findings);
        // A value the parser refuses is inspected whole: no hiding outside string literals.
        let a = post(&d, "application/json", &gql("{ a } ; cat /etc/passwd"));
        assert_eq!(a.verdict, Verdict::Block, "{:?}", a.findings);
    }

    #[test]
    fn graphql_limits_are_findings_with_their_own_rules() {
        let d = Detector::default();
        let deep = format!("query {{ {}id{} }}", "a { ".repeat(20), " }".repeat(20));
        assert!(rules(&post(&d, "application/json", &gql(&deep))).contains(&"GQL-002".to_string()));
        let aliases: String = (0..100).map(|i| format!("u{i}: user(id: {i}) {{ id }} ")).collect();
        let a = post(&d, "application/json", &gql(&format!("{{ {aliases} }}")));
        assert!(rules(&a).contains(&"GQL-003".to_string()), "{:?}", rules(&a));
        let batch = serde_json::Value::Array(
            (0..20)
                .map(|i| serde_json::json!({"query": format!("{{ user(id: {i}) {{ id }} }}")}))
                .collect(),
        );
        let a = post(&d, "application/json", &batch.to_string());
        assert!(rules(&a).contains(&"GQL-005".to_string()), "{:?}", rules(&a));
        let costly = "{ users(first: 1000) { friends(first: 1000) { id } } }";
        assert!(rules(&post(&d, "application/json", &gql(costly))).contains(&"GQL-007".to_string()));
        let cycle = "query { ...A } fragment A on Q { b { ...B } } fragment B on Q { a { ...A } }";
        assert!(rules(&post(&d, "application/json", &gql(cycle))).contains(&"GQL-008".to_string()));
        for a in [
            post(&d, "application/json", &gql(&deep)),
            post(&d, "application/json", &gql(cycle)),
        ] {
            assert_eq!(a.verdict, Verdict::Block);
        }
        // A small batch of ordinary operations passes.
        let ok = serde_json::json!([{"query": "{ me { id } }"}, {"query": "query Q($id: ID!) { user(id: $id) { name } }", "variables": {"id": "7"}}]);
        assert_eq!(post(&d, "application/json", &ok.to_string()).verdict, Verdict::Pass);
    }

    #[test]
    fn introspection_is_blocked_unless_the_route_allows_it() {
        let q = gql("query { __schema { types { name } } }");
        assert_eq!(
            post(&Detector::default(), "application/json", &q).verdict,
            Verdict::Block
        );
        let cfg: DetectionConfig =
            serde_json::from_str(r#"{"graphql": {"allow_introspection": true, "max_depth": 3}}"#).unwrap();
        let d = Detector::new(&cfg).unwrap();
        assert_eq!(post(&d, "application/json", &q).verdict, Verdict::Pass);
        let deep = gql("{ a { b { c { d } } } }");
        assert!(rules(&post(&d, "application/json", &deep)).contains(&"GQL-002".to_string()));
    }

    #[test]
    fn graphql_over_websocket_payloads_are_operations_too() {
        // graphql-transport-ws `subscribe` and graphql-ws `start` messages, inspected as a message body.
        let d = Detector::default();
        let ok = r#"{"id":"1","type":"subscribe","payload":{"query":"subscription OnMessage($room: ID!) { messageAdded(roomId: $room) { id text author { name } } }","variables":{"room":"42"}}}"#;
        assert_eq!(post(&d, "application/json", ok).verdict, Verdict::Pass);
        let bad = r#"{"id":"2","type":"start","payload":{"query":"subscription { messageAdded(roomId: \"1' OR '1'='1' --\") { id } }"}}"#;
        let a = post(&d, "application/json", bad);
        assert_eq!(a.verdict, Verdict::Block, "{:?}", a.findings);
        let deep = format!(
            r#"{{"id":"3","type":"subscribe","payload":{{"query":"subscription {{ {}id{} }}"}}}}"#,
            "a { ".repeat(15),
            " }".repeat(15)
        );
        assert!(rules(&post(&d, "application/json", &deep)).contains(&"GQL-002".to_string()));
    }

    #[test]
    fn operations_are_validated_against_an_sdl_schema() {
        let path = std::env::temp_dir().join(format!("rampart-schema-{}.graphql", std::process::id()));
        std::fs::write(
            &path,
            "type Query { user(id: ID!): User products(first: Int = 10): [Product!]! }\n\
             type User { id: ID! name: String! email: String }\n\
             type Product { id: ID! name: String! price: Float! }\n",
        )
        .unwrap();
        let cfg: DetectionConfig = serde_json::from_value(serde_json::json!({
            "graphql": {"schema": path.to_string_lossy()}
        }))
        .unwrap();
        let d = Detector::new(&cfg).unwrap();
        let ok = gql(r#"query { user(id: "7") { name email } products(first: 5) { name price } }"#);
        assert_eq!(post(&d, "application/json", &ok).verdict, Verdict::Pass);
        for bad in [
            r#"query { user(id: "7") { name passwordHash } }"#,
            r#"query { products(first: "lots") { name } }"#,
            r#"query { adminUsers { id } }"#,
        ] {
            let a = post(&d, "application/json", &gql(bad));
            assert!(rules(&a).contains(&"GQL-010".to_string()), "{bad}: {:?}", a.findings);
            assert_eq!(a.verdict, Verdict::Block);
        }
        std::fs::write(&path, "type Query { broken: Nope }").unwrap();
        let err = Detector::new(&cfg)
            .err()
            .expect("an invalid schema is refused")
            .to_string();
        assert!(err.contains("graphql.schema") && err.contains("Nope"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
