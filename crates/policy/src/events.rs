//! The compiled `[events]` and `[[triggers]]` sections: where events go and what acts on them.
//!
//! The events crate consumes these types; it owns the Event record and the matching of [`EventFilter`]s.
//! Secrets written in the file (webhook HMAC keys, PagerDuty routing keys, PostgreSQL passwords) may be
//! given as `env:NAME` so that the file itself holds none; they are kept in [`Secret`], which never prints.

use crate::compile::Compiler;
use crate::file::{EventsFile, FilterFile, SinkFile, TriggerFile, S};
use crate::Mode;
use ipnet::IpNet;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct EventSettings {
    /// This node's name in every event.
    pub node: String,
    /// Bound of the intake queue between the data plane and the dispatcher.
    pub queue: usize,
    pub sinks: Vec<SinkSpec>,
    pub triggers: Vec<TriggerSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    pub deliver: Deliver,
    pub filter: EventFilter,
    /// Records held for this sink while it is slow or down; past it the oldest are dropped and counted.
    pub buffer: usize,
    pub batch_size: usize,
    /// A partial batch is sent after this long.
    pub flush_interval: Duration,
    /// Attempts per batch before it is dropped (counted); a permanent error drops it at once.
    pub max_attempts: u32,
    /// Per delivery attempt (network sinks).
    pub timeout: Duration,
    pub kind: SinkKind,
}

/// What a sink receives: request and behaviour events, trigger alerts, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliver {
    Events,
    Alerts,
    All,
}

impl Deliver {
    pub fn events(self) -> bool {
        matches!(self, Deliver::Events | Deliver::All)
    }
    pub fn alerts(self) -> bool {
        matches!(self, Deliver::Alerts | Deliver::All)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Sqlite(SqliteSpec),
    Jsonl(JsonlSpec),
    Syslog(SyslogSpec),
    Webhook(WebhookSpec),
    Slack(SlackSpec),
    PagerDuty(PagerDutySpec),
    Postgres(PostgresSpec),
}

impl SinkKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Sqlite(_) => "sqlite",
            SinkKind::Jsonl(_) => "jsonl",
            SinkKind::Syslog(_) => "syslog",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Slack(_) => "slack",
            SinkKind::PagerDuty(_) => "pagerduty",
            SinkKind::Postgres(_) => "postgres",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SqliteSpec {
    pub path: PathBuf,
    /// Events older than this are deleted.
    pub retention: Duration,
    /// When the database grows past this, the oldest events are deleted.
    pub max_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonlSpec {
    pub path: PathBuf,
    /// The file is rotated (path.1, path.2, ...) when it reaches this size.
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    Cef,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyslogSpec {
    /// host:port
    pub addr: String,
    pub transport: SyslogTransport,
    pub format: SyslogFormat,
    /// RFC 5424 facility number (local0 = 16).
    pub facility: u8,
    pub app_name: String,
    /// Extra CA (PEM) to trust for `tls`, besides the built-in web roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Name checked in the server certificate (default: the host part of `addr`).
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    pub url: String,
    /// HMAC-SHA256 key for the signature header.
    pub secret: Option<Secret>,
    pub headers: Vec<(String, String)>,
    /// Send a batch as one JSON document (`{"records": [...]}`) instead of one POST per record.
    pub batch: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlackSpec {
    /// The incoming-webhook URL (a secret in itself).
    pub url: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutySpec {
    /// Events API v2 endpoint.
    pub url: String,
    pub routing_key: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSpec {
    /// A libpq-style connection string or postgres:// URL.
    pub url: Secret,
    pub table: String,
}

/// A secret from the config (or from the environment through `env:NAME`). Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which events match. Each non-empty list must contain the event's value; lists combine with "and".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// "request" or "behaviour".
    pub kinds: Vec<String>,
    /// Any finding of one of these classes.
    pub classes: Vec<String>,
    pub rule_ids: Vec<String>,
    pub routes: Vec<String>,
    /// "block", "monitor", "reject", "ban", "limit", "challenge".
    pub actions: Vec<String>,
    pub clients: Vec<IpNet>,
    pub methods: Vec<String>,
    pub hosts: Vec<String>,
    pub statuses: Vec<u16>,
    pub fingerprints: Vec<String>,
    pub min_score: Option<u32>,
}

/// What an event is grouped by when a trigger counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    ClientIp,
    Route,
    Host,
    Path,
    Session,
    Fingerprint,
    Class,
    RuleId,
    Global,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::ClientIp => "client_ip",
            GroupBy::Route => "route",
            GroupBy::Host => "host",
            GroupBy::Path => "path",
            GroupBy::Session => "session",
            GroupBy::Fingerprint => "fingerprint",
            GroupBy::Class => "class",
            GroupBy::RuleId => "rule_id",
            GroupBy::Global => "global",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    pub name: String,
    pub filter: EventFilter,
    pub group_by: GroupBy,
    pub window: Duration,
    /// Fires when this many matching events with one key fall within `window`.
    pub threshold: u64,
    /// After firing for a key, no new alert for that key for this long (one incident, one alert).
    pub cooldown: Duration,
    pub severity: Severity,
    /// Sink names that receive the alert.
    pub notify: Vec<String>,
    pub ban: Option<Duration>,
    pub route_mode: Option<Mode>,
    /// One of [`SENSITIVITY_LEVELS`]; its threshold belongs to the detection engine.
    pub sensitivity: Option<String>,
    pub revert_after: Duration,
    /// Keys tracked at once; the least recently seen is forgotten past it.
    pub max_keys: usize,
}

/// The detection sensitivity levels a trigger may raise a route to. The detection engine gives them their
/// thresholds; the binary's tests check that it knows every name listed here.
pub const SENSITIVITY_LEVELS: [&str; 4] = ["low", "medium", "high", "paranoid"];

const SINK_TYPES: &str = "sqlite, jsonl, syslog, webhook, slack, pagerduty, postgres";

/// Keys each sink type accepts, beyond the common ones.
fn type_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "sqlite" => &["path", "retention", "max_size"],
        "jsonl" => &["path", "max_size", "keep"],
        "syslog" => &[
            "addr",
            "transport",
            "format",
            "facility",
            "app_name",
            "ca_file",
            "server_name",
        ],
        "webhook" => &["url", "secret", "headers", "batch"],
        "slack" => &["url"],
        "pagerduty" => &["url", "routing_key"],
        "postgres" => &["url", "table"],
        _ => &[],
    }
}

/// The keys set in a sink table, beyond the common ones, with their spans where known.
fn set_keys(s: &SinkFile) -> Vec<(&'static str, Option<std::ops::Range<usize>>)> {
    let mut v = Vec::new();
    let mut spanned = |name: &'static str, x: &Option<S<String>>| {
        if let Some(x) = x {
            v.push((name, Some(x.span())));
        }
    };
    spanned("path", &s.path);
    spanned("retention", &s.retention);
    spanned("max_size", &s.max_size);
    spanned("addr", &s.addr);
    spanned("transport", &s.transport);
    spanned("format", &s.format);
    spanned("facility", &s.facility);
    spanned("ca_file", &s.ca_file);
    spanned("server_name", &s.server_name);
    spanned("url", &s.url);
    spanned("secret", &s.secret);
    spanned("routing_key", &s.routing_key);
    spanned("table", &s.table);
    if s.keep.is_some() {
        v.push(("keep", None));
    }
    if s.app_name.is_some() {
        v.push(("app_name", None));
    }
    if !s.headers.is_empty() {
        v.push(("headers", None));
    }
    if s.batch.is_some() {
        v.push(("batch", None));
    }
    v
}

fn default_node() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rampart".to_string())
}

impl Compiler<'_> {
    pub(crate) fn events(&mut self, f: &EventsFile, triggers: &[TriggerFile], data_dir: &Path) -> EventSettings {
        let mut sinks = Vec::new();
        let mut names = HashSet::new();
        for (i, s) in f.sinks.iter().enumerate() {
            if let Some(sink) = self.sink(i, s, data_dir) {
                if !names.insert(sink.name.clone()) {
                    self.r.error(
                        s.name.as_ref().map(|n| n.span()).or(Some(s.kind.span())),
                        format!("two sinks are named `{}`", sink.name),
                        Some("give each [[events.sinks]] its own name".to_string()),
                    );
                }
                sinks.push(sink);
            }
        }
        if f.sinks.is_empty() {
            sinks.push(default_sqlite(data_dir));
        }
        let mut compiled_triggers = Vec::new();
        let mut trigger_names = HashSet::new();
        for t in triggers {
            if !trigger_names.insert(t.name.get_ref().clone()) {
                self.r.error(
                    Some(t.name.span()),
                    format!("two triggers are named `{}`", t.name.get_ref()),
                    Some("give each [[triggers]] its own name".to_string()),
                );
            }
            if let Some(tr) = self.trigger(t, &sinks) {
                compiled_triggers.push(tr);
            }
        }
        EventSettings {
            node: f.node.clone().filter(|n| !n.is_empty()).unwrap_or_else(default_node),
            queue: f.queue.unwrap_or(10_000).max(1),
            sinks,
            triggers: compiled_triggers,
        }
    }

    fn sink(&mut self, i: usize, s: &SinkFile, data_dir: &Path) -> Option<SinkSpec> {
        let kind = s.kind.get_ref().as_str();
        let allowed = type_keys(kind);
        if allowed.is_empty() {
            self.r.error(
                Some(s.kind.span()),
                format!("`{kind}` is not a sink type"),
                Some(format!("use one of: {SINK_TYPES}")),
            );
            return None;
        }
        for (key, span) in set_keys(s) {
            if !allowed.contains(&key) {
                self.r.error(
                    span.or(Some(s.kind.span())),
                    format!("`{key}` is not a setting of {kind} sinks"),
                    Some(format!("{kind} sinks take: {}", allowed.join(", "))),
                );
            }
        }
        let name = s
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| format!("{kind}-{}", i + 1));
        let deliver_default = if matches!(kind, "slack" | "pagerduty") {
            Deliver::Alerts
        } else {
            Deliver::All
        };
        let deliver = match &s.deliver {
            None => deliver_default,
            Some(d) => match d.get_ref().as_str() {
                "events" => Deliver::Events,
                "alerts" => Deliver::Alerts,
                "all" => Deliver::All,
                other => {
                    self.r.error(
                        Some(d.span()),
                        format!("`{other}` is not a deliver setting"),
                        Some("use \"events\", \"alerts\" or \"all\"".to_string()),
                    );
                    deliver_default
                }
            },
        };
        let filter = match &s.when {
            Some(w) => self.filter(w),
            None => EventFilter::default(),
        };
        let sqlite_like = matches!(kind, "sqlite" | "postgres" | "jsonl");
        let spec_kind = match kind {
            "sqlite" => SinkKind::Sqlite(SqliteSpec {
                path: self.path_or(&s.path, data_dir.join("events.db"), data_dir),
                retention: self.duration(&s.retention, Duration::from_secs(30 * 86_400)),
                max_size: self.size(&s.max_size, 1 << 30),
            }),
            "jsonl" => SinkKind::Jsonl(JsonlSpec {
                path: self.path_or(&s.path, data_dir.join("events.jsonl"), data_dir),
                max_size: self.size(&s.max_size, 100 << 20),
                keep: s.keep.unwrap_or(5),
            }),
            "syslog" => {
                let addr = self.required(&s.addr, "syslog", "addr", "addr = \"127.0.0.1:514\"")?;
                if !addr.contains(':') {
                    self.r.error(
                        s.addr.as_ref().map(|a| a.span()),
                        format!("`{addr}` has no port"),
                        Some("write host:port, e.g. \"siem.internal:6514\"".to_string()),
                    );
                }
                let transport = match s.transport.as_ref().map(|t| (t.get_ref().as_str(), t.span())) {
                    None | Some(("udp", _)) => SyslogTransport::Udp,
                    Some(("tcp", _)) => SyslogTransport::Tcp,
                    Some(("tls", _)) => SyslogTransport::Tls,
                    Some((other, span)) => {
                        self.r.error(
                            Some(span),
                            format!("`{other}` is not a syslog transport"),
                            Some("use \"udp\", \"tcp\" or \"tls\"".to_string()),
                        );
                        SyslogTransport::Udp
                    }
                };
                let format = match s.format.as_ref().map(|t| (t.get_ref().as_str(), t.span())) {
                    None | Some(("cef", _)) => SyslogFormat::Cef,
                    Some(("json", _)) => SyslogFormat::Json,
                    Some((other, span)) => {
                        self.r.error(
                            Some(span),
                            format!("`{other}` is not a syslog format"),
                            Some("use \"cef\" or \"json\"".to_string()),
                        );
                        SyslogFormat::Cef
                    }
                };
                let facility = match &s.facility {
                    None => 16,
                    Some(f) => match syslog_facility(f.get_ref()) {
                        Some(n) => n,
                        None => {
                            self.r.error(
                                Some(f.span()),
                                format!("`{}` is not a syslog facility", f.get_ref()),
                                Some("use a name (auth, daemon, local0 .. local7) or a number 0-23".to_string()),
                            );
                            16
                        }
                    },
                };
                let ca_pem = s
                    .ca_file
                    .as_ref()
                    .and_then(|c| self.read_pem(c, "CA bundle", "CERTIFICATE"))
                    .map(|(_, pem)| pem);
                SinkKind::Syslog(SyslogSpec {
                    addr,
                    transport,
                    format,
                    facility,
                    app_name: s.app_name.clone().unwrap_or_else(|| "rampart".to_string()),
                    ca_pem,
                    server_name: s.server_name.as_ref().map(|n| n.get_ref().clone()),
                })
            }
            "webhook" => {
                let url = self.required(&s.url, "webhook", "url", "url = \"https://hooks.example.com/rampart\"")?;
                self.check_url(&s.url, &url);
                let mut headers = Vec::new();
                for (k, v) in &s.headers {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v.get_ref()).is_err()
                    {
                        self.r.error(
                            Some(v.span()),
                            format!("`{k}` is not a valid header"),
                            Some("header names are tokens; values are visible ASCII".to_string()),
                        );
                    }
                    headers.push((k.clone(), v.get_ref().clone()));
                }
                SinkKind::Webhook(WebhookSpec {
                    url,
                    secret: s.secret.as_ref().and_then(|v| self.secret(v)),
                    headers,
                    batch: s.batch.unwrap_or(false),
                })
            }
            "slack" => {
                let url = s.url.as_ref().and_then(|v| self.secret(v));
                let Some(url) = url else {
                    if s.url.is_none() {
                        self.missing_key(s, "slack", "url", "url = \"env:SLACK_WEBHOOK_URL\"");
                    }
                    return None;
                };
                self.check_url(&s.url, url.expose());
                SinkKind::Slack(SlackSpec { url })
            }
            "pagerduty" => {
                let url = s
                    .url
                    .as_ref()
                    .map(|u| u.get_ref().clone())
                    .unwrap_or_else(|| "https://events.pagerduty.com/v2/enqueue".to_string());
                self.check_url(&s.url, &url);
                let key = s.routing_key.as_ref().and_then(|v| self.secret(v));
                let Some(routing_key) = key else {
                    if s.routing_key.is_none() {
                        self.missing_key(s, "pagerduty", "routing_key", "routing_key = \"env:PD_ROUTING_KEY\"");
                    }
                    return None;
                };
                SinkKind::PagerDuty(PagerDutySpec { url, routing_key })
            }
            "postgres" => {
                let url = s.url.as_ref().and_then(|v| self.secret(v));
                let Some(url) = url else {
                    if s.url.is_none() {
                        self.missing_key(s, "postgres", "url", "url = \"env:RAMPART_PG_URL\"");
                    }
                    return None;
                };
                let table = s
                    .table
                    .as_ref()
                    .map(|t| t.get_ref().clone())
                    .unwrap_or_else(|| "rampart_events".to_string());
                if table.is_empty()
                    || table.len() > 48
                    || !table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    || table.as_bytes()[0].is_ascii_digit()
                {
                    self.r.error(
                        s.table.as_ref().map(|t| t.span()),
                        format!("`{table}` is not a usable table name"),
                        Some("use letters, digits and _ (not first), at most 48 characters".to_string()),
                    );
                }
                SinkKind::Postgres(PostgresSpec { url, table })
            }
            _ => unreachable!("sink types checked above"),
        };
        Some(SinkSpec {
            name,
            deliver,
            filter,
            buffer: s.buffer.unwrap_or(10_000).max(1),
            batch_size: s.batch_size.unwrap_or(if sqlite_like { 256 } else { 50 }).max(1),
            flush_interval: self.duration(&s.flush_interval, Duration::from_millis(200)),
            max_attempts: s.max_attempts.unwrap_or(8).max(1),
            timeout: self.duration(&s.timeout, Duration::from_secs(5)),
            kind: spec_kind,
        })
    }

    fn required(&mut self, v: &Option<S<String>>, kind: &str, key: &str, example: &str) -> Option<String> {
        match v {
            Some(v) if !v.get_ref().is_empty() => Some(v.get_ref().clone()),
            Some(v) => {
                self.r.error(
                    Some(v.span()),
                    format!("{kind} sinks need a non-empty `{key}`"),
                    Some(format!("e.g. {example}")),
                );
                None
            }
            None => {
                self.r.error(
                    None,
                    format!("a {kind} sink needs `{key}`"),
                    Some(format!("add {example} to the [[events.sinks]] table")),
                );
                None
            }
        }
    }

    fn missing_key(&mut self, s: &SinkFile, kind: &str, key: &str, example: &str) {
        self.r.error(
            Some(s.kind.span()),
            format!("a {kind} sink needs `{key}`"),
            Some(format!("add {example} to this [[events.sinks]] table")),
        );
    }

    fn check_url(&mut self, v: &Option<S<String>>, url: &str) {
        let ok = url
            .parse::<http::Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some());
        if ok.is_none() {
            self.r.error(
                v.as_ref().map(|v| v.span()),
                "not an http(s) URL".to_string(),
                Some("write e.g. \"https://hooks.example.com/path\"".to_string()),
            );
        }
    }

    /// A secret value, or `env:NAME` read from the environment now.
    pub(crate) fn secret(&mut self, v: &S<String>) -> Option<Secret> {
        let raw = v.get_ref();
        match raw.strip_prefix("env:") {
            Some(name) => match std::env::var(name) {
                Ok(val) if !val.is_empty() => Some(Secret(val)),
                _ => {
                    self.r.error(
                        Some(v.span()),
                        format!("environment variable `{name}` is not set"),
                        Some(format!(
                            "export {name}=... before starting rampart, or write the value here"
                        )),
                    );
                    None
                }
            },
            None if raw.is_empty() => {
                self.r.error(
                    Some(v.span()),
                    "empty secret".to_string(),
                    Some("write the value or env:NAME".to_string()),
                );
                None
            }
            None => Some(Secret(raw.clone())),
        }
    }

    fn path_or(&mut self, v: &Option<S<String>>, default: PathBuf, data_dir: &Path) -> PathBuf {
        match v {
            None => default,
            Some(p) => {
                let p = Path::new(p.get_ref());
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    data_dir.join(p)
                }
            }
        }
    }

    pub(crate) fn filter(&mut self, w: &FilterFile) -> EventFilter {
        let mut kinds = Vec::new();
        for k in &w.kind {
            match k.get_ref().as_str() {
                "request" | "behaviour" => kinds.push(k.get_ref().clone()),
                other => self.r.error(
                    Some(k.span()),
                    format!("`{other}` is not an event kind"),
                    Some("use \"request\" or \"behaviour\"".to_string()),
                ),
            }
        }
        let mut actions = Vec::new();
        for a in &w.action {
            match a.get_ref().as_str() {
                "block" | "monitor" | "reject" | "ban" | "limit" | "challenge" | "mask" => {
                    actions.push(a.get_ref().clone())
                }
                other => self.r.error(
                    Some(a.span()),
                    format!("`{other}` is not an event action"),
                    Some("use block, monitor, reject, ban, limit, challenge or mask".to_string()),
                ),
            }
        }
        let mut clients = Vec::new();
        for c in &w.client {
            match crate::compile::parse_net(c.get_ref()) {
                Ok(n) => clients.push(n),
                Err(e) => self.r.error(
                    Some(c.span()),
                    format!("`{}` is not an IP address or CIDR: {e}", c.get_ref()),
                    Some("write e.g. \"203.0.113.0/24\"".to_string()),
                ),
            }
        }
        EventFilter {
            kinds,
            classes: w.class.iter().map(|c| c.to_ascii_lowercase()).collect(),
            rule_ids: w.rule_id.clone(),
            routes: w.route.clone(),
            actions,
            clients,
            methods: w.method.iter().map(|m| m.to_ascii_uppercase()).collect(),
            hosts: w.host.iter().map(|h| h.to_ascii_lowercase()).collect(),
            statuses: w.status.clone(),
            fingerprints: w.fingerprint.clone(),
            min_score: w.min_score,
        }
    }

    fn trigger(&mut self, t: &TriggerFile, sinks: &[SinkSpec]) -> Option<TriggerSpec> {
        let filter = self.filter(&t.when);
        let group_by = match t.group_by.as_ref().map(|g| (g.get_ref().as_str(), g.span())) {
            None | Some(("client_ip", _)) => GroupBy::ClientIp,
            Some(("route", _)) => GroupBy::Route,
            Some(("host", _)) => GroupBy::Host,
            Some(("path", _)) => GroupBy::Path,
            Some(("session", _)) => GroupBy::Session,
            Some(("fingerprint", _)) => GroupBy::Fingerprint,
            Some(("class", _)) => GroupBy::Class,
            Some(("rule_id", _)) => GroupBy::RuleId,
            Some(("global", _)) => GroupBy::Global,
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not a group_by key"),
                    Some(
                        "use client_ip, route, host, path, session, fingerprint, class, rule_id or global".to_string(),
                    ),
                );
                GroupBy::ClientIp
            }
        };
        if *t.threshold.get_ref() == 0 {
            self.r.error(
                Some(t.threshold.span()),
                "threshold must be at least 1".to_string(),
                Some("the trigger fires when this many matching events fall in the window".to_string()),
            );
        }
        let window = self.duration(&t.window, Duration::from_secs(60));
        if window.is_zero() {
            self.r.error(
                t.window.as_ref().map(|w| w.span()),
                "window must be longer than zero".to_string(),
                Some("e.g. window = \"1m\"".to_string()),
            );
        }
        let severity = match t.severity.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("warning", _)) => Severity::Warning,
            Some(("info", _)) => Severity::Info,
            Some(("error", _)) => Severity::Error,
            Some(("critical", _)) => Severity::Critical,
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not a severity"),
                    Some("use info, warning, error or critical".to_string()),
                );
                Severity::Warning
            }
        };
        let mut notify = Vec::new();
        for n in &t.notify {
            match sinks.iter().find(|s| &s.name == n.get_ref()) {
                Some(s) if s.deliver.alerts() => notify.push(n.get_ref().clone()),
                Some(_) => self.r.error(
                    Some(n.span()),
                    format!("sink `{}` does not take alerts", n.get_ref()),
                    Some("set deliver = \"alerts\" or \"all\" on that sink".to_string()),
                ),
                None => self.r.error(
                    Some(n.span()),
                    format!("no sink is named `{}`", n.get_ref()),
                    Some(format!(
                        "sinks defined: {}",
                        sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                ),
            }
        }
        let ban = t.ban.as_ref().map(|b| self.duration(&Some(b.clone()), Duration::ZERO));
        if let (Some(b), true) = (&t.ban, group_by != GroupBy::ClientIp) {
            self.r.error(
                Some(b.span()),
                format!(
                    "ban needs group_by = \"client_ip\" (this trigger groups by {})",
                    group_by.as_str()
                ),
                Some("ban bans the client address the events came from".to_string()),
            );
        }
        let route_mode = match t.route_mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
            None => None,
            Some(("block", _)) => Some(Mode::Block),
            Some(("monitor", _)) => Some(Mode::Monitor),
            Some((other, span)) => {
                self.r.error(
                    Some(span),
                    format!("`{other}` is not a mode a trigger can set"),
                    Some("use \"block\" or \"monitor\"".to_string()),
                );
                None
            }
        };
        if let Some(s) = &t.sensitivity {
            if !SENSITIVITY_LEVELS.contains(&s.get_ref().as_str()) {
                self.r.error(
                    Some(s.span()),
                    format!("`{}` is not a sensitivity level", s.get_ref()),
                    Some(format!("use one of: {}", SENSITIVITY_LEVELS.join(", "))),
                );
            }
        }
        Some(TriggerSpec {
            name: t.name.get_ref().clone(),
            filter,
            group_by,
            window,
            threshold: (*t.threshold.get_ref()).max(1),
            cooldown: self.duration(&t.cooldown, window),
            severity,
            notify,
            ban,
            route_mode,
            sensitivity: t.sensitivity.as_ref().map(|s| s.get_ref().clone()),
            revert_after: self.duration(&t.revert_after, Duration::from_secs(3600)),
            max_keys: t.max_keys.unwrap_or(10_000).max(1),
        })
    }
}

fn default_sqlite(data_dir: &Path) -> SinkSpec {
    SinkSpec {
        name: "sqlite".to_string(),
        deliver: Deliver::All,
        filter: EventFilter::default(),
        buffer: 10_000,
        batch_size: 256,
        flush_interval: Duration::from_millis(200),
        max_attempts: 8,
        timeout: Duration::from_secs(5),
        kind: SinkKind::Sqlite(SqliteSpec {
            path: data_dir.join("events.db"),
            retention: Duration::from_secs(30 * 86_400),
            max_size: 1 << 30,
        }),
    }
}

fn syslog_facility(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 23).then_some(n);
    }
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
        "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.iter().position(|n| *n == s).map(|i| i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
data_dir = "/var/lib/rampart"
[[listeners]]
addr = "127.0.0.1:8080"
[upstreams.app]
targets = ["http://127.0.0.1:3000"]
[[routes]]
name = "api"
path = "/"
upstream = "app"
"#;

    fn compile(extra: &str) -> Result<crate::Policy, crate::ConfigErrors> {
        crate::compile_str(Path::new("t.toml"), &format!("{BASE}{extra}"))
    }

    #[test]
    fn without_sinks_events_go_to_sqlite_in_the_data_dir() {
        let p = compile("").unwrap();
        assert_eq!(p.events.sinks.len(), 1);
        let SinkKind::Sqlite(s) = &p.events.sinks[0].kind else {
            panic!("{:?}", p.events.sinks[0].kind)
        };
        assert_eq!(s.path, Path::new("/var/lib/rampart/events.db"));
        assert!(!p.events.node.is_empty());
        assert!(p.events.triggers.is_empty());
    }

    #[test]
    fn sinks_and_triggers_compile() {
        std::env::set_var("RAMPART_TEST_PD_KEY", "pd-key-123");
        let p = compile(
            r#"
[events]
node = "gw-7"
queue = 500
[[events.sinks]]
name = "siem"
type = "syslog"
addr = "siem.internal:6514"
transport = "tls"
format = "json"
facility = "auth"
[[events.sinks]]
name = "pager"
type = "pagerduty"
routing_key = "env:RAMPART_TEST_PD_KEY"
[[events.sinks]]
type = "webhook"
url = "https://hooks.example.com/x"
secret = "s"
batch = true
when = { action = ["block"], client = ["10.0.0.0/8"] }
[[triggers]]
name = "burst"
when = { class = ["SQLi"] }
threshold = 50
window = "1m"
notify = ["pager"]
ban = "15m"
route_mode = "block"
sensitivity = "high"
"#,
        )
        .unwrap();
        let e = &p.events;
        assert_eq!((e.node.as_str(), e.queue), ("gw-7", 500));
        assert_eq!(e.sinks.len(), 3);
        let SinkKind::Syslog(s) = &e.sinks[0].kind else {
            panic!()
        };
        assert_eq!(
            (s.transport, s.format, s.facility),
            (SyslogTransport::Tls, SyslogFormat::Json, 4)
        );
        assert_eq!(e.sinks[1].deliver, Deliver::Alerts);
        let SinkKind::PagerDuty(pd) = &e.sinks[1].kind else {
            panic!()
        };
        assert_eq!(pd.routing_key.expose(), "pd-key-123");
        assert!(
            !format!("{:?}", e.sinks[1]).contains("pd-key-123"),
            "secrets never print"
        );
        assert_eq!(e.sinks[2].name, "webhook-3");
        assert_eq!(e.sinks[2].filter.actions, vec!["block"]);
        let t = &e.triggers[0];
        assert_eq!(t.filter.classes, vec!["sqli"]);
        assert_eq!(
            (t.threshold, t.window, t.cooldown),
            (50, Duration::from_secs(60), Duration::from_secs(60))
        );
        assert_eq!(t.ban, Some(Duration::from_secs(900)));
        assert_eq!(t.route_mode, Some(Mode::Block));
        assert_eq!(t.group_by, GroupBy::ClientIp);
    }

    #[test]
    fn every_error_has_a_line() {
        let errs = compile(
            r#"
[[events.sinks]]
type = "kafka"
[[events.sinks]]
type = "postgres"
url = "env:RAMPART_TEST_UNSET_VAR"
[[events.sinks]]
type = "webhook"
url = "ftp://x"
[[events.sinks]]
type = "postgres"
url = "host=db"
table = "events; drop table x"
[[triggers]]
name = "t"
threshold = 0
window = "soon"
group_by = "planet"
when = { action = ["explode"], client = ["not-an-ip"] }
"#,
        )
        .unwrap_err();
        let msgs: Vec<String> = errs.0.iter().map(|d| format!("{}: {}", d.line, d.message)).collect();
        for (line, what) in [
            (13, "`kafka` is not a sink type"),
            (16, "`RAMPART_TEST_UNSET_VAR` is not set"),
            (19, "not an http(s) URL"),
            (23, "not a usable table name"),
            (26, "threshold must be at least 1"),
            (27, "soon"),
            (28, "not a group_by key"),
            (29, "not an event action"),
            (29, "not an IP address or CIDR"),
        ] {
            assert!(
                msgs.iter()
                    .any(|m| m.starts_with(&format!("{line}: ")) && m.contains(what)),
                "missing `{what}` at {line}: {msgs:#?}"
            );
        }
    }
}
