//! GraphQL documents, parsed with apollo-parser (with token and recursion limits): the strings an
//! attacker controls (argument values, directive arguments, variable defaults) go to the injection
//! detectors, the syntax never does; the document's shape (depth, aliases, fields, directives, a cost
//! estimate, fragment cycles, introspection) is measured against the route's limits.
//!
//! Depth and cost follow fragment spreads; each fragment is measured once (memoised) so a document
//! that spreads one fragment many times costs linear time, and a spread that reaches its own fragment
//! is a cycle, reported and not followed.

use apollo_parser::{cst, Parser};
use serde::Deserialize;
use std::collections::HashMap;

/// Tokens parsed per document; beyond it the document is over a limit.
pub const MAX_TOKENS: usize = 15_000;
/// Parser recursion (nesting of selections and values).
pub const MAX_RECURSION: usize = 200;
/// Strings kept per document for the detectors.
const MAX_STRINGS: usize = 256;

/// Per-route GraphQL limits (`[routes.detection.graphql]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlLimits {
    pub max_depth: usize,
    pub max_aliases: usize,
    pub max_fields: usize,
    pub max_directives: usize,
    /// Operations in one request (a JSON array of operations).
    pub max_batch: usize,
    /// Fields selected, each multiplied by the page sizes (`first`, `last`, `limit`, ...) above it.
    pub max_cost: u64,
    /// Allow `__schema` / `__type` (off by default: introspection maps the API for an attacker).
    pub allow_introspection: bool,
    /// An SDL file of the API: operations that do not validate against it (unknown fields, wrong
    /// argument types, ...) are findings (GQL-010).
    pub schema: Option<String>,
    /// Remove "Did you mean ...?" field suggestions from the error messages of GraphQL answers (on by
    /// default: with introspection off, suggestions still spell the schema out to whoever guesses).
    pub mask_suggestions: bool,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        GraphqlLimits {
            max_depth: 12,
            max_aliases: 30,
            max_fields: 500,
            max_directives: 50,
            max_batch: 10,
            max_cost: 50_000,
            allow_introspection: false,
            schema: None,
            mask_suggestions: true,
        }
    }
}

/// What a document looks like.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shape {
    pub operations: usize,
    pub depth: usize,
    pub aliases: usize,
    pub fields: usize,
    pub directives: usize,
    pub cost: u64,
    /// A fragment that spreads itself (directly or through others).
    pub fragment_cycle: Option<String>,
    /// `__schema` or `__type`, when selected.
    pub introspection: Option<String>,
}

pub struct Document {
    /// Parsed without errors.
    pub valid: bool,
    /// The token or recursion limit stopped the parser.
    pub over_limit: bool,
    pub strings: Vec<String>,
    pub shape: Shape,
}

/// Arguments that size a list: the cost of what is selected under them is multiplied by their value.
const PAGE_ARGS: &[&str] = &[
    "first",
    "last",
    "limit",
    "pagesize",
    "page_size",
    "perpage",
    "per_page",
    "take",
    "count",
];

/// Parses `doc` and measures it.
pub fn parse(doc: &str) -> Document {
    let tree = Parser::new(doc)
        .token_limit(MAX_TOKENS)
        .recursion_limit(MAX_RECURSION)
        .parse();
    let over_limit = tree.errors().any(|e| e.message().contains("limit"));
    let valid = tree.errors().len() == 0;
    let document = tree.document();
    let mut w = Walker::default();
    let mut fragments: HashMap<String, cst::FragmentDefinition> = HashMap::new();
    let mut operations = Vec::new();
    for def in document.definitions() {
        match def {
            cst::Definition::OperationDefinition(op) => operations.push(op),
            cst::Definition::FragmentDefinition(f) => {
                if let Some(name) = f.fragment_name().and_then(|n| n.name()) {
                    fragments.insert(name.text().to_string(), f);
                }
            }
            _ => {}
        }
    }
    // Syntax-wide counts and strings: every operation and fragment once.
    for op in &operations {
        w.directives(op.directives());
        if let Some(vars) = op.variable_definitions() {
            for v in vars.variable_definitions() {
                if let Some(d) = v.default_value().and_then(|d| d.value()) {
                    w.value(&d);
                }
                w.directives(v.directives());
            }
        }
        if let Some(s) = op.selection_set() {
            w.count(&s);
        }
    }
    for f in fragments.values() {
        w.directives(f.directives());
        if let Some(s) = f.selection_set() {
            w.count(&s);
        }
    }
    // Depth and cost, through fragments.
    let mut m = Measure {
        fragments: &fragments,
        memo: HashMap::new(),
        active: Vec::new(),
        cycle: None,
    };
    let mut depth = 0;
    let mut cost = 0u64;
    for op in &operations {
        if let Some(s) = op.selection_set() {
            let (d, c) = m.selection_set(&s);
            depth = depth.max(d);
            cost = cost.saturating_add(c);
        }
    }
    let shape = Shape {
        operations: operations.len(),
        depth,
        aliases: w.aliases,
        fields: w.fields,
        directives: w.directives,
        cost,
        fragment_cycle: m.cycle,
        introspection: w.introspection,
    };
    Document {
        valid,
        over_limit,
        strings: w.strings,
        shape,
    }
}

#[derive(Default)]
struct Walker {
    strings: Vec<String>,
    aliases: usize,
    fields: usize,
    directives: usize,
    introspection: Option<String>,
}

impl Walker {
    fn count(&mut self, set: &cst::SelectionSet) {
        for sel in set.selections() {
            match sel {
                cst::Selection::Field(f) => {
                    self.fields += 1;
                    if f.alias().is_some() {
                        self.aliases += 1;
                    }
                    if let Some(n) = f.name() {
                        let name = n.text();
                        if self.introspection.is_none() && (name == "__schema" || name == "__type") {
                            self.introspection = Some(name.to_string());
                        }
                    }
                    if let Some(args) = f.arguments() {
                        for a in args.arguments() {
                            if let Some(v) = a.value() {
                                self.value(&v);
                            }
                        }
                    }
                    self.directives(f.directives());
                    if let Some(s) = f.selection_set() {
                        self.count(&s);
                    }
                }
                cst::Selection::FragmentSpread(s) => self.directives(s.directives()),
                cst::Selection::InlineFragment(i) => {
                    self.directives(i.directives());
                    if let Some(s) = i.selection_set() {
                        self.count(&s);
                    }
                }
            }
        }
    }

    fn directives(&mut self, d: Option<cst::Directives>) {
        for d in d.iter().flat_map(|d| d.directives()) {
            self.directives += 1;
            for a in d.arguments().iter().flat_map(|a| a.arguments()) {
                if let Some(v) = a.value() {
                    self.value(&v);
                }
            }
        }
    }

    fn value(&mut self, v: &cst::Value) {
        match v {
            cst::Value::StringValue(s) => {
                if self.strings.len() < MAX_STRINGS {
                    self.strings.push(String::from(s));
                }
            }
            cst::Value::ListValue(l) => {
                for v in l.values() {
                    self.value(&v);
                }
            }
            cst::Value::ObjectValue(o) => {
                for f in o.object_fields() {
                    if let Some(v) = f.value() {
                        self.value(&v);
                    }
                }
            }
            _ => {}
        }
    }
}

struct Measure<'f> {
    fragments: &'f HashMap<String, cst::FragmentDefinition>,
    /// Depth and cost (per unit multiplier) of each fragment measured.
    memo: HashMap<String, (usize, u64)>,
    /// Fragments being measured: a spread of one of them is a cycle.
    active: Vec<String>,
    cycle: Option<String>,
}

fn page_size(f: &cst::Field) -> u64 {
    let mut size = 1u64;
    for a in f.arguments().iter().flat_map(|a| a.arguments()) {
        let Some(name) = a.name() else { continue };
        if !PAGE_ARGS.contains(&name.text().to_ascii_lowercase().as_str()) {
            continue;
        }
        if let Some(cst::Value::IntValue(i)) = a.value() {
            if let Ok(n) = i32::try_from(&i) {
                size = size.max(n.max(0) as u64);
            }
        }
    }
    size
}

impl Measure<'_> {
    /// (depth, cost) of a selection set.
    fn selection_set(&mut self, set: &cst::SelectionSet) -> (usize, u64) {
        let mut depth = 0;
        let mut cost = 0u64;
        for sel in set.selections() {
            let (d, c) = match sel {
                cst::Selection::Field(f) => {
                    let (d, c) = match f.selection_set() {
                        Some(s) => self.selection_set(&s),
                        None => (0, 0),
                    };
                    (d + 1, c.saturating_mul(page_size(&f)).saturating_add(1))
                }
                cst::Selection::InlineFragment(i) => match i.selection_set() {
                    Some(s) => self.selection_set(&s),
                    None => (0, 0),
                },
                cst::Selection::FragmentSpread(s) => {
                    let Some(name) = s.fragment_name().and_then(|n| n.name()) else {
                        continue;
                    };
                    self.fragment(&name.text())
                }
            };
            depth = depth.max(d);
            cost = cost.saturating_add(c);
        }
        (depth, cost)
    }

    fn fragment(&mut self, name: &str) -> (usize, u64) {
        if let Some(m) = self.memo.get(name) {
            return *m;
        }
        if self.active.iter().any(|a| a == name) {
            self.cycle.get_or_insert_with(|| name.to_string());
            return (0, 0);
        }
        let Some(set) = self.fragments.get(name).and_then(|f| f.selection_set()) else {
            return (0, 0);
        };
        self.active.push(name.to_string());
        let m = self.selection_set(&set);
        self.active.pop();
        self.memo.insert(name.to_string(), m);
        m
    }
}

/// A schema to validate operations against (apollo-compiler).
pub struct Schema(apollo_compiler::validation::Valid<apollo_compiler::Schema>);

impl Schema {
    /// Loads and validates an SDL file; the error names what is wrong.
    pub fn load(path: &str) -> Result<Schema, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        apollo_compiler::Schema::parse_and_validate(text, path)
            .map(Schema)
            .map_err(|e| first_message(&e.errors))
    }

    /// The first reason `doc` does not validate, if it does not.
    pub fn violation(&self, doc: &str) -> Option<String> {
        apollo_compiler::ExecutableDocument::parse_and_validate(&self.0, doc, "operation.graphql")
            .err()
            .map(|e| first_message(&e.errors))
    }
}

fn first_message(errors: &apollo_compiler::validation::DiagnosticList) -> String {
    errors
        .iter()
        .next()
        .map(|d| {
            let j = d.to_json();
            match j.locations.first() {
                Some(l) => format!("{}:{}: {}", l.line, l.column, j.message),
                None => j.message,
            }
        })
        .unwrap_or_else(|| "invalid".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_come_from_arguments_directives_and_defaults_only() {
        let d = parse(
            r#"query Search($q: String = "default text", $n: Int = 10) {
                 search(term: $q, filter: {name: "O'Brien", tags: ["a b", "c"]}, first: 5) @include(if: true) {
                   ... on User { name @deprecatedNote(reason: "old") }
                 }
               }"#,
        );
        assert!(d.valid);
        assert_eq!(d.strings, vec!["default text", "O'Brien", "a b", "c", "old"]);
        assert_eq!(d.shape.directives, 2);
        assert_eq!(d.shape.depth, 2);
        assert!(d.shape.introspection.is_none());
    }

    #[test]
    fn depth_and_cost_follow_fragments_and_page_sizes() {
        let d = parse(
            r#"query { users(first: 100) { ...U } }
               fragment U on User { id friends(first: 50) { id name } }"#,
        );
        assert_eq!(d.shape.depth, 3);
        // users: 1 + 100 * (id 1 + friends (1 + 50 * 2)) = 1 + 100 * 102
        assert_eq!(d.shape.cost, 1 + 100 * 102);
        assert_eq!((d.shape.fields, d.shape.aliases), (5, 0));
    }

    #[test]
    fn aliases_cycles_and_introspection_are_seen() {
        let aliased: String = (0..40).map(|i| format!("a{i}: me {{ id }} ")).collect();
        let d = parse(&format!("{{ {aliased} }}"));
        assert_eq!(d.shape.aliases, 40);
        let d = parse("query { ...A } fragment A on Q { ...B } fragment B on Q { ...A }");
        assert!(d.shape.fragment_cycle.is_some());
        let d = parse("query { __schema { types { name } } }");
        assert_eq!(d.shape.introspection.as_deref(), Some("__schema"));
        assert!(parse("query { __typename }").shape.introspection.is_none());
    }

    #[test]
    fn one_fragment_spread_many_times_costs_linear_time() {
        // Each level spreads the previous fragment twice: 2^30 fields if expanded naively.
        let mut doc = String::from("query { ...F30 } fragment F0 on Q { id }\n");
        for i in 1..=30 {
            doc.push_str(&format!(
                "fragment F{i} on Q {{ a: x {{ ...F{} }} b: y {{ ...F{} }} }}\n",
                i - 1,
                i - 1
            ));
        }
        let t = std::time::Instant::now();
        let d = parse(&doc);
        assert!(t.elapsed() < std::time::Duration::from_millis(200));
        assert_eq!(d.shape.depth, 31);
        assert!(d.shape.cost > 1 << 30, "{}", d.shape.cost);
    }

    #[test]
    fn hostile_documents_stop_at_the_limits() {
        let deep = format!("query {}{}", "{ a ".repeat(5000), "}".repeat(5000));
        assert!(parse(&deep).over_limit);
        let long = format!("query {{ {} }}", "f ".repeat(20_000));
        assert!(parse(&long).over_limit);
        assert!(!parse("not graphql at all }{").valid);
    }
}
