//! The API as traffic shows it: endpoints with inferred path templates, their methods, parameters,
//! content types, statuses, auth schemes and sensitive data, learned from observed requests.
//!
//! Templates are inferred in two steps. A segment whose shape says it is a value (a number, a UUID, a
//! hex hash, a date, an email, a long token) is a parameter at once. Other segments are kept literally in
//! a prefix tree; when one position holds many distinct literals that are each seen rarely (slugs, codes,
//! SKUs), [`Inventory::endpoints`] folds them into one parameter, while literals seen often at that
//! position (the fixed `/inventory/adjustments` next to `/inventory/{sku}`) stay. Memory is bounded: a
//! position keeps at most [`MAX_LITERALS`] literals (past it new ones go straight to the parameter), and
//! the inventory at most [`MAX_ENDPOINTS`] endpoints.
//!
//! Values are never stored: parameters keep their types and formats, sensitive data its kind and a count.

use crate::values;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Literal segments kept at one position before new ones are taken as a parameter.
pub const MAX_LITERALS: usize = 256;
/// Endpoints (method and template) kept.
pub const MAX_ENDPOINTS: usize = 10_000;
/// Distinct literals at one position past which the position may be folded into a parameter.
const FOLD_AT: usize = 8;
/// Requests per endpoint whose fields and sensitive data are all read; past it, one in [`DEEP_EVERY`].
pub const DEEP_ALWAYS: u64 = 100;
pub const DEEP_EVERY: u64 = 100;
/// Query parameters and body properties kept per endpoint.
const MAX_FIELDS: usize = 64;

/// One request (and what is known of its answer) as discovery sees it.
pub struct Observation<'a> {
    pub method: &'a str,
    /// Raw path, without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// The request body as far as it was read.
    pub body: &'a [u8],
    pub status: u16,
    /// The start of the response body, when it was looked at (for sensitive data).
    pub response: &'a [u8],
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// What a segment's shape says it is, or None for a literal.
pub fn segment_kind(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("id");
    }
    if b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    {
        return Some("uuid");
    }
    if b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit) {
        return Some("hash");
    }
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().filter(|c| c.is_ascii_digit()).count() == 8 {
        return Some("date");
    }
    if seg.contains('@') && seg.contains('.') {
        return Some("email");
    }
    // Long random tokens: letters and digits mixed, no word to read.
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if b.len() >= 20 && digits >= 3 && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_') {
        return Some("token");
    }
    None
}

/// The JSON type and format a query or body value looks like.
fn value_shape(v: &str) -> (&'static str, Option<&'static str>) {
    if v.parse::<i64>().is_ok() {
        return ("integer", None);
    }
    if v.parse::<f64>().is_ok() && v.contains('.') {
        return ("number", None);
    }
    if v == "true" || v == "false" {
        return ("boolean", None);
    }
    let format = match segment_kind(v) {
        Some("uuid") => Some("uuid"),
        Some("date") => Some("date"),
        Some("email") => Some("email"),
        _ if v.len() >= 20 && v.as_bytes().get(10) == Some(&b'T') && segment_kind(&v[..10]) == Some("date") => {
            Some("date-time")
        }
        _ => None,
    };
    ("string", format)
}

/// Kinds of sensitive data in a text: emails, phone numbers, card numbers (Luhn), IBANs (mod 97), US
/// social security numbers, access tokens and API keys, passwords (by field name).
pub fn sensitive_kinds(text: &str) -> BTreeSet<&'static str> {
    use std::sync::OnceLock;
    const KINDS: [(&str, &str); 7] = [
        (
            "email",
            r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}",
        ),
        ("phone", r"\+[1-9][0-9 ()-]{7,18}[0-9]"),
        ("card", r"\b(?:[0-9][ -]?){12,18}[0-9]\b"),
        ("iban", r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b"),
        ("national_id", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"),
        (
            "token",
            r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|\b(?:sk_live|pk_live|rk_live)_[A-Za-z0-9]{16,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}",
        ),
        (
            "password",
            r#"(?i)"(?:password|passwd|pwd|secret|pin)"\s*:\s*"[^"]+"|(?i)\b(?:password|passwd|pwd)=[^&\s]+"#,
        ),
    ];
    /// All kinds in one automaton, to learn in a single pass which kinds could be present (most texts
    /// hold none), then each kind's own pattern for the matches that need checking (Luhn, mod 97).
    static PATTERNS: OnceLock<(regex::RegexSet, Vec<regex::Regex>)> = OnceLock::new();
    let (any, each) = PATTERNS.get_or_init(|| {
        let set = regex::RegexSet::new(KINDS.iter().map(|(_, p)| p)).expect("valid patterns");
        let each = KINDS
            .iter()
            .map(|(_, p)| regex::Regex::new(p).expect("a valid pattern"))
            .collect();
        (set, each)
    });
    let mut out = BTreeSet::new();
    if text.is_empty() {
        return out;
    }
    for i in any.matches(text).iter() {
        let kind = KINDS[i].0;
        for m in each[i].find_iter(text) {
            let s = m.as_str();
            let ok = match kind {
                "card" => luhn(s),
                "iban" => iban_checks(s),
                "phone" => s.bytes().filter(u8::is_ascii_digit).count() >= 8,
                _ => true,
            };
            if ok {
                out.insert(kind);
                break;
            }
        }
    }
    out
}

fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn iban_checks(s: &str) -> bool {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem = 0u32;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        for d in if v >= 10 { vec![v / 10, v % 10] } else { vec![v] } {
            rem = (rem * 10 + d) % 97;
        }
    }
    rem == 1
}

/// What is known of one parameter or body property.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldStats {
    pub seen: u64,
    pub types: BTreeSet<String>,
    pub formats: BTreeSet<String>,
}

impl FieldStats {
    fn add(&mut self, value: &str) {
        let (t, f) = value_shape(value);
        self.seen += 1;
        if !self.types.contains(t) {
            self.types.insert(t.to_string());
        }
        if let Some(f) = f.filter(|f| !self.formats.contains(*f)) {
            self.formats.insert(f.to_string());
        }
    }

    fn merge(&mut self, o: &FieldStats) {
        self.seen += o.seen;
        self.types.extend(o.types.iter().cloned());
        self.formats.extend(o.formats.iter().cloned());
    }
}

/// One method on one endpoint.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MethodStats {
    pub hits: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub content_types: BTreeSet<String>,
    /// `bearer`, `basic`, `api-key:<header>`, `cookie`, or `none`.
    pub auth: BTreeSet<String>,
    pub query: BTreeMap<String, FieldStats>,
    pub body: BTreeMap<String, FieldStats>,
    /// Sensitive data by kind: requests and answers that carried it (every request of the first
    /// [`DEEP_ALWAYS`], then one in [`DEEP_EVERY`]).
    pub sensitive: BTreeMap<String, u64>,
    /// Requests to this endpoint that were found to be attacks (blocked or monitored).
    #[serde(default)]
    pub attacks: u64,
}

impl MethodStats {
    /// The request rate between first and last seen (over one minute at least).
    pub fn per_minute(&self) -> f64 {
        let minutes = (self.last_seen.saturating_sub(self.first_seen) as f64 / 60.0).max(1.0);
        (self.hits as f64 / minutes * 100.0).round() / 100.0
    }

    pub fn merge(&mut self, o: &MethodStats) {
        if self.hits == 0 || o.first_seen < self.first_seen {
            self.first_seen = o.first_seen;
        }
        self.last_seen = self.last_seen.max(o.last_seen);
        self.hits += o.hits;
        self.attacks += o.attacks;
        for (s, n) in &o.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.content_types.extend(o.content_types.iter().cloned());
        self.auth.extend(o.auth.iter().cloned());
        for (k, f) in &o.query {
            self.query.entry(k.clone()).or_default().merge(f);
        }
        for (k, f) in &o.body {
            self.body.entry(k.clone()).or_default().merge(f);
        }
        for (k, n) in &o.sensitive {
            *self.sensitive.entry(k.clone()).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    hits: u64,
    literals: BTreeMap<String, Node>,
    /// Parameter children by kind (`id`, `uuid`, ..., `param` for folded literals).
    params: BTreeMap<&'static str, Node>,
    methods: BTreeMap<String, MethodStats>,
}

impl Node {
    fn merge(&mut self, o: Node) {
        self.hits += o.hits;
        for (k, n) in o.literals {
            self.literals.entry(k).or_default().merge(n);
        }
        for (k, n) in o.params {
            self.params.entry(k).or_default().merge(n);
        }
        for (m, s) in o.methods {
            self.methods.entry(m).or_default().merge(&s);
        }
    }

    /// Folds the literals of value-like positions into a parameter, all the way down. A position is
    /// value-like when it holds more than [`FOLD_AT`] literals and at least half of them were seen at
    /// most twice (ids, slugs and codes vary; an API's own words repeat); there every literal with less
    /// than a tenth of the position's traffic is folded, and the fixed words that carry more stay.
    fn fold(&mut self) {
        let rare = self.literals.values().filter(|n| n.hits <= 2).count();
        if self.literals.len() > FOLD_AT && rare * 2 >= self.literals.len() {
            let total: u64 = self.literals.values().map(|n| n.hits).sum();
            let rare: Vec<String> = self
                .literals
                .iter()
                .filter(|(_, n)| n.hits * 10 < total)
                .map(|(k, _)| k.clone())
                .collect();
            for k in rare {
                let n = self.literals.remove(&k).expect("a literal just listed");
                self.params.entry("param").or_default().merge(n);
            }
        }
        self.literals.values_mut().for_each(Node::fold);
        self.params.values_mut().for_each(Node::fold);
    }

    fn count_endpoints(&self) -> usize {
        self.methods.len()
            + self.literals.values().map(Node::count_endpoints).sum::<usize>()
            + self.params.values().map(Node::count_endpoints).sum::<usize>()
    }
}

/// A discovered endpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub method: String,
    /// `/orders/{id}/items/{id2}`.
    pub template: String,
    pub stats: MethodStats,
}

/// The endpoints learned from traffic.
#[derive(Debug, Default)]
pub struct Inventory {
    root: Node,
    endpoints: usize,
    /// Observations not recorded because the inventory was full.
    pub dropped: u64,
}

impl Inventory {
    pub fn new() -> Self {
        Inventory::default()
    }

    /// Counts an attack against an endpoint already known (an attack never creates one: scanners would
    /// fill the inventory with endpoints that do not exist).
    pub fn observe_attack(&mut self, method: &str, path: &str) {
        let mut node = &mut self.root;
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            let seg = values::decode_segment(raw);
            let next = match segment_kind(&seg) {
                Some(kind) => node.params.get_mut(kind),
                None if node.literals.contains_key(&seg) => node.literals.get_mut(&seg),
                None => node.params.get_mut("param"),
            };
            let Some(next) = next else { return };
            node = next;
        }
        if let Some(s) = node.methods.get_mut(&method.to_ascii_uppercase()) {
            s.attacks += 1;
        }
    }

    pub fn observe(&mut self, o: &Observation<'_>) {
        let mut node = &mut self.root;
        node.hits += 1;
        for raw in o.path.split('/').filter(|s| !s.is_empty()) {
            let seg = values::decode_segment(raw);
            node = match segment_kind(&seg) {
                Some(kind) => node.params.entry(kind).or_default(),
                None if node.literals.contains_key(&seg) || node.literals.len() < MAX_LITERALS => {
                    node.literals.entry(seg).or_default()
                }
                None => node.params.entry("param").or_default(),
            };
            node.hits += 1;
        }
        let method = o.method.to_ascii_uppercase();
        if !node.methods.contains_key(&method) {
            if self.endpoints >= MAX_ENDPOINTS {
                self.dropped += 1;
                return;
            }
            self.endpoints += 1;
        }
        let s = node.methods.entry(method).or_default();
        if s.hits == 0 {
            s.first_seen = o.at;
        }
        s.hits += 1;
        s.last_seen = s.last_seen.max(o.at);
        *s.statuses.entry(o.status).or_default() += 1;
        let ctype = o
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        if let Some(ct) = &ctype {
            if s.content_types.len() < 8 {
                s.content_types.insert(ct.clone());
            }
        }
        s.auth.insert(auth_scheme(o.headers));
        // Fields and sensitive data are read from every request while an endpoint is new, then from one
        // in DEEP_EVERY: a busy endpoint's shape is known by then, and the regexes are the costly part.
        if s.hits > DEEP_ALWAYS && s.hits % DEEP_EVERY != 0 {
            return;
        }
        for (k, v) in values::query_pairs(o.query.unwrap_or_default()) {
            if s.query.len() < MAX_FIELDS || s.query.contains_key(&k) {
                s.query.entry(k).or_default().add(&v);
            }
        }
        if ctype
            .as_deref()
            .is_some_and(|c| c == "application/json" || c.ends_with("+json"))
        {
            if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(o.body) {
                for (k, v) in m {
                    if s.body.len() >= MAX_FIELDS && !s.body.contains_key(&k) {
                        continue;
                    }
                    let text = match &v {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    s.body.entry(k).or_default().add(&text);
                }
            }
        }
        let mut kinds = sensitive_kinds(&String::from_utf8_lossy(o.body));
        if let Some(q) = o.query {
            kinds.extend(sensitive_kinds(&values::decode_query(q)));
        }
        kinds.extend(sensitive_kinds(&String::from_utf8_lossy(o.response)));
        for k in kinds {
            *s.sensitive.entry(k.to_string()).or_default() += 1;
        }
    }

    /// The endpoints, with crowded positions folded into parameters; parameters are named by kind, with
    /// a number when one kind repeats in a template (`{id}`, `{id2}`).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut root = self.root.clone();
        root.fold();
        let mut out = Vec::with_capacity(root.count_endpoints());
        walk(&root, &mut Vec::new(), &mut out);
        out
    }
}

fn walk(node: &Node, segs: &mut Vec<String>, out: &mut Vec<Endpoint>) {
    for (m, s) in &node.methods {
        out.push(Endpoint {
            method: m.clone(),
            template: template(segs),
            stats: s.clone(),
        });
    }
    for (k, n) in &node.literals {
        segs.push(k.clone());
        walk(n, segs, out);
        segs.pop();
    }
    for (k, n) in &node.params {
        segs.push(format!("{{{k}}}"));
        walk(n, segs, out);
        segs.pop();
    }
}

fn template(segs: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = String::new();
    for s in segs {
        out.push('/');
        if let Some(kind) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let n = counts.entry(kind).or_default();
            *n += 1;
            if *n == 1 {
                out.push_str(s);
            } else {
                out.push_str(&format!("{{{kind}{n}}}"));
            }
        } else {
            out.push_str(s);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn auth_scheme(h: &http::HeaderMap) -> String {
    if let Some(a) = h.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let scheme = a.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
        return match scheme.as_str() {
            "bearer" | "basic" | "digest" => scheme,
            _ => "authorization".into(),
        };
    }
    for name in ["x-api-key", "api-key", "x-auth-token", "x-access-token"] {
        if h.contains_key(name) {
            return format!("api-key:{name}");
        }
    }
    if h.contains_key(http::header::COOKIE) {
        return "cookie".into();
    }
    "none".into()
}

/// Endpoints recorded before (a stored inventory) and endpoints seen since, as one list: the same method
/// and template merge their figures.
pub fn merge_endpoints(before: &[Endpoint], now: Vec<Endpoint>) -> Vec<Endpoint> {
    let mut all: BTreeMap<(String, String), Endpoint> = before
        .iter()
        .map(|e| ((e.method.clone(), e.template.clone()), e.clone()))
        .collect();
    for e in now {
        match all.entry((e.method.clone(), e.template.clone())) {
            std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().stats.merge(&e.stats),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(e);
            }
        }
    }
    all.into_values().collect()
}

/// The shape of a template for comparing it with others: parameters unnamed (`/orders/{}/items`).
pub fn shape(template: &str) -> String {
    let mut out = String::new();
    for seg in template.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if seg.starts_with('{') && seg.ends_with('}') {
            out.push_str("{}");
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// A risk score (0-10) for an endpoint: sensitive data, no auth, errors, and whether it is documented.
pub fn risk(e: &Endpoint, documented: bool, deprecated: bool) -> u32 {
    let s = &e.stats;
    let mut r = 0;
    if !s.sensitive.is_empty() {
        r += 2 + u32::from(
            s.sensitive
                .keys()
                .any(|k| matches!(k.as_str(), "card" | "iban" | "national_id" | "password" | "token")),
        );
    }
    if s.auth.iter().all(|a| a == "none") {
        r += 2;
    }
    if !documented {
        r += 2;
    }
    if deprecated {
        r += 2;
    }
    if s.attacks > 0 {
        r += 2;
    }
    if ["POST", "PUT", "PATCH", "DELETE"].contains(&e.method.as_str()) {
        r += 1;
    }
    r.min(10)
}

/// The inventory as an OpenAPI 3.1 document, with what was seen in `x-rampart` extensions.
pub fn export(endpoints: &[Endpoint], title: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for e in endpoints {
        let s = &e.stats;
        let mut params: Vec<Value> = Vec::new();
        for seg in e.template.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let kind = name.trim_end_matches(|c: char| c.is_ascii_digit());
                let schema = match kind {
                    "id" => json!({"type": "integer"}),
                    "uuid" => json!({"type": "string", "format": "uuid"}),
                    "date" => json!({"type": "string", "format": "date"}),
                    "email" => json!({"type": "string", "format": "email"}),
                    _ => json!({"type": "string"}),
                };
                params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            }
        }
        for (name, f) in &s.query {
            params.push(json!({"name": name, "in": "query", "schema": field_schema(f), "x-rampart-seen": f.seen}));
        }
        let mut op = json!({
            "responses": s.statuses.keys().map(|c| (c.to_string(), json!({"description": "seen"}))).collect::<serde_json::Map<_, _>>(),
            "x-rampart": {
                "hits": s.hits,
                "per_minute": s.per_minute(),
                "attacks": s.attacks,
                "first_seen": s.first_seen,
                "last_seen": s.last_seen,
                "auth": s.auth,
                "sensitive": s.sensitive,
            },
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if !s.content_types.is_empty() {
            let props: serde_json::Map<String, Value> =
                s.body.iter().map(|(k, f)| (k.clone(), field_schema(f))).collect();
            let content: serde_json::Map<String, Value> = s
                .content_types
                .iter()
                .map(|ct| {
                    let schema = if ct.contains("json") && !props.is_empty() {
                        json!({"type": "object", "properties": props})
                    } else {
                        json!({})
                    };
                    (ct.clone(), json!({ "schema": schema }))
                })
                .collect();
            op["requestBody"] = json!({ "content": content });
        }
        paths
            .entry(e.template.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item")
            .insert(e.method.to_ascii_lowercase(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": "discovered"},
        "paths": paths,
    })
}

fn field_schema(f: &FieldStats) -> Value {
    let mut types: Vec<&str> = f.types.iter().map(String::as_str).collect();
    // A field seen as integer and number is a number.
    if types.contains(&"number") {
        types.retain(|t| *t != "integer");
    }
    let mut s = if types.len() == 1 {
        json!({"type": types[0]})
    } else {
        json!({"type": types})
    };
    if f.formats.len() == 1 && types == ["string"] {
        s["format"] = json!(f.formats.iter().next());
    }
    s
}

/// An endpoint of traffic or of a spec, compared by method and template shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointKey {
    pub method: String,
    pub shape: String,
}

/// Traffic against specs: what is undocumented, unused, or still called though retired.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Seen in traffic, in no spec.
    pub shadow: Vec<EndpointKey>,
    /// In the current spec, never seen.
    pub orphan: Vec<EndpointKey>,
    /// Seen, and either deprecated in the current spec or in the older spec but removed from the current.
    pub zombie: Vec<EndpointKey>,
}

/// Compares endpoints seen with the current spec and, optionally, an older version of it. Seen templates
/// are full paths: the current spec's base path (`/v2`) is taken off where they start with it.
pub fn diff(seen: &[Endpoint], current: &crate::Contract, older: Option<&crate::Contract>) -> Diff {
    let relative = |t: &str| -> String {
        current
            .base_paths()
            .iter()
            .filter(|b| !b.is_empty())
            .find_map(|b| {
                t.strip_prefix(b.as_str())
                    .filter(|r| r.starts_with('/') || r.is_empty())
            })
            .unwrap_or(t)
            .to_string()
    };
    let key = |method: &str, template: &str| EndpointKey {
        method: method.to_ascii_uppercase(),
        shape: shape(template),
    };
    let now: BTreeMap<EndpointKey, bool> = current
        .operations()
        .map(|o| (key(&o.method, &o.template), o.deprecated))
        .collect();
    let before: BTreeSet<EndpointKey> = older
        .map(|c| c.operations().map(|o| key(&o.method, &o.template)).collect())
        .unwrap_or_default();
    let seen_keys: BTreeSet<EndpointKey> = seen.iter().map(|e| key(&e.method, &relative(&e.template))).collect();
    let mut d = Diff::default();
    for k in &seen_keys {
        match now.get(k) {
            Some(true) => d.zombie.push(k.clone()),
            Some(false) => {}
            None if before.contains(k) => d.zombie.push(k.clone()),
            None => d.shadow.push(k.clone()),
        }
    }
    d.orphan = now.keys().filter(|k| !seen_keys.contains(k)).cloned().collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn see(inv: &mut Inventory, method: &str, path: &str, at: u64) {
        let headers = http::HeaderMap::new();
        inv.observe(&Observation {
            method,
            path,
            query: None,
            headers: &headers,
            body: b"",
            status: 200,
            response: b"",
            at,
        });
    }

    #[test]
    fn value_segments_are_parameters_and_words_stay() {
        assert_eq!(segment_kind("42"), Some("id"));
        assert_eq!(segment_kind("f47ac10b-58cc-4372-a567-0e02b2c3d479"), Some("uuid"));
        assert_eq!(segment_kind("9e107d9d372bb6826bd81d3542a419d6"), Some("hash"));
        assert_eq!(segment_kind("2026-12-02"), Some("date"));
        assert_eq!(segment_kind("zoe@example.com"), Some("email"));
        assert_eq!(segment_kind("orders"), None);
        assert_eq!(segment_kind("legacy-pricing"), None);
        assert_eq!(segment_kind("v2"), None);
    }

    #[test]
    fn slugs_fold_into_a_parameter_and_fixed_words_stay() {
        let mut inv = Inventory::new();
        for i in 0..60 {
            see(&mut inv, "GET", &format!("/v2/categories/summer-sale-{i}"), i);
            see(&mut inv, "GET", &format!("/v2/orders/{}", 1000 + i), i);
            see(&mut inv, "GET", "/v2/inventory/adjustments", i);
            see(&mut inv, "GET", &format!("/v2/inventory/SKU{}-BLU", i), i);
        }
        let mut got: Vec<String> = inv
            .endpoints()
            .iter()
            .map(|e| format!("{} {}", e.method, e.template))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "GET /v2/categories/{param}",
                "GET /v2/inventory/adjustments",
                "GET /v2/inventory/{param}",
                "GET /v2/orders/{id}",
            ]
        );
        let orders = inv
            .endpoints()
            .into_iter()
            .find(|e| e.template == "/v2/orders/{id}")
            .unwrap();
        assert_eq!(
            (orders.stats.hits, orders.stats.first_seen, orders.stats.last_seen),
            (60, 0, 59)
        );
        assert_eq!(orders.stats.per_minute(), 60.0);
    }

    #[test]
    fn attacks_count_on_known_endpoints_only() {
        let mut inv = Inventory::new();
        see(&mut inv, "GET", "/orders/7", 1);
        inv.observe_attack("GET", "/orders/8");
        inv.observe_attack("GET", "/wp-admin/setup.php");
        let e = inv.endpoints();
        assert_eq!(e.len(), 1, "no endpoint from an attack");
        assert_eq!(e[0].stats.attacks, 1);
        assert!(risk(&e[0], true, false) >= 2 + 2, "no auth and attacked");
    }

    #[test]
    fn repeated_kinds_get_numbered_names() {
        let mut inv = Inventory::new();
        see(&mut inv, "DELETE", "/carts/7/items/9", 1);
        assert_eq!(inv.endpoints()[0].template, "/carts/{id}/items/{id2}");
        assert_eq!(shape("/carts/{cartId}/items/{itemId}"), "/carts/{}/items/{}");
    }

    #[test]
    fn sensitive_data_is_found_by_kind_and_checked() {
        let k = sensitive_kinds(
            r#"{"email":"aoife@example.ie","card":"4111 1111 1111 1111","iban":"DE89370400440532013000","password":"hunter2"}"#,
        );
        assert_eq!(k, ["card", "email", "iban", "password"].into_iter().collect());
        assert!(
            sensitive_kinds("order 4111 1111 1111 1112 shipped").is_empty(),
            "fails Luhn"
        );
        assert!(sensitive_kinds("DE89370400440532013001").is_empty(), "fails mod 97");
        assert_eq!(
            sensitive_kinds("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig"),
            ["token"].into_iter().collect()
        );
        assert_eq!(
            sensitive_kinds("call +44 20 7946 0958"),
            ["phone"].into_iter().collect()
        );
        assert!(sensitive_kinds("It's O'Brien's order, 3 items, total 42.50").is_empty());
    }
}
