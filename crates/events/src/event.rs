//! The records that leave the data plane: [`Event`] (one per blocked, monitored or rejected request and per
//! behavioural decision) and [`Alert`] (one per trigger firing). Sinks receive them as [`Record`]s.
//!
//! The field names are a contract (../shared/DESIGN.md, "Events"): SIEM parsers, the console and the
//! `rampart events` commands read them. Add fields; do not rename them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch. Serialized as RFC 3339 (UTC, microseconds) so that JSON consumers
/// read a date; stores index the integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp::from(SystemTime::now())
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(self.0.unsigned_abs())
        }
    }

    /// RFC 3339 with microseconds, e.g. `2026-12-01T10:00:00.123456Z`.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_micros(self.to_system_time()).to_string()
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, humantime::TimestampError> {
        humantime::parse_rfc3339_weak(s).map(Timestamp::from)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_micros() as i64),
            Err(e) => Timestamp(-(e.duration().as_micros() as i64)),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(self.to_system_time()))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// What produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The request stage: detection findings, protocol violations, limits.
    Request,
    /// A decision across requests: a ban, a rate limit, a challenge.
    Behaviour,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Request => "request",
            EventKind::Behaviour => "behaviour",
        }
    }
}

/// What rampart did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Answered with the block response.
    Block,
    /// Would have blocked; passed because the route is in monitor mode.
    Monitor,
    /// Refused by the HTTP layer (smuggling, bad framing, size limits).
    Reject,
    /// The client was banned (the event that bans it, and requests refused while the ban holds).
    Ban,
    /// A rate limit answered 429.
    Limit,
    Challenge,
    /// The upstream's answer was rewritten to hide what it leaked (GraphQL field suggestions).
    Mask,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Monitor => "monitor",
            Action::Reject => "reject",
            Action::Ban => "ban",
            Action::Limit => "limit",
            Action::Challenge => "challenge",
            Action::Mask => "mask",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "block" => Action::Block,
            "monitor" => Action::Monitor,
            "reject" => Action::Reject,
            "ban" => Action::Ban,
            "limit" => Action::Limit,
            "challenge" => Action::Challenge,
            "mask" => Action::Mask,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Attack class: sqli, xss, cmdi, path, ssrf, ... (docs/rules.md), or protocol / limit / trigger.
    pub class: String,
    pub rule_id: String,
    pub score: u32,
    /// Where in the request: `query.q`, `body.json.user.name`, `header.user-agent`, ...
    pub point: String,
    /// A short excerpt of the value that matched, masked.
    pub evidence: String,
    /// The decoders applied to reach the value, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decode_chain: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7: unique and ordered by time.
    pub id: String,
    pub ts: Timestamp,
    pub node: String,
    pub kind: EventKind,
    #[serde(default)]
    pub request_id: String,
    /// The client as resolved through trusted proxies.
    pub client_ip: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub host: String,
    /// The path without the query string (the query may carry secrets; findings point into it instead).
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub route: String,
    /// The status answered to the client (for monitor: the upstream's).
    pub status: u16,
    pub action: Action,
    /// The anomaly score of the request (sum of finding scores).
    #[serde(default)]
    pub score: u32,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
    /// A session identifier, hashed: never the session cookie's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Time from the request's arrival to the response head.
    #[serde(default)]
    pub latency_us: u64,
    /// Why, for behaviour events: the trigger or the signals that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// A new event with a fresh id and the current time; the caller fills in the rest.
    pub fn new(kind: EventKind, action: Action) -> Self {
        Event {
            id: uuid::Uuid::now_v7().to_string(),
            ts: Timestamp::now(),
            node: String::new(),
            kind,
            request_id: String::new(),
            client_ip: String::new(),
            method: String::new(),
            host: String::new(),
            path: String::new(),
            route: String::new(),
            status: 0,
            action,
            score: 0,
            findings: Vec::new(),
            fingerprints: BTreeMap::new(),
            session: None,
            user_agent: None,
            latency_us: 0,
            reason: None,
        }
    }

    /// Distinct finding classes, in order of first appearance.
    pub fn classes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.findings {
            if !out.contains(&f.class.as_str()) {
                out.push(&f.class);
            }
        }
        out
    }

    /// A one-line human summary: `block sqli,xss GET /search from 203.0.113.9 (route api, score 12)`.
    pub fn summary(&self) -> String {
        let classes = self.classes().join(",");
        let mut s = format!("{} ", self.action.as_str());
        if !classes.is_empty() {
            s.push_str(&classes);
            s.push(' ');
        }
        if !self.method.is_empty() {
            s.push_str(&self.method);
            s.push(' ');
        }
        s.push_str(if self.path.is_empty() { "-" } else { &self.path });
        s.push_str(" from ");
        s.push_str(&self.client_ip);
        s.push_str(&format!(" (route {}, score {})", self.route, self.score));
        s
    }
}

/// One trigger firing for one key: an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub ts: Timestamp,
    pub node: String,
    pub trigger: String,
    pub severity: String,
    /// What the events were grouped by (client_ip, route, ...) and the value that crossed the threshold.
    pub group_by: String,
    pub key: String,
    /// Matching events with this key in the window when it fired.
    pub count: u64,
    pub threshold: u64,
    pub window_s: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub classes: Vec<String>,
    pub routes: Vec<String>,
    /// Ids of the most recent events that made up the incident (at most a few).
    pub sample_event_ids: Vec<String>,
    /// What the trigger did: `ban 203.0.113.9 for 15m`, `route api -> block for 1h`, `notify slack`.
    pub actions: Vec<String>,
    pub summary: String,
}

/// What a sink receives.
#[derive(Debug, Clone)]
pub enum Record {
    Event(Arc<Event>),
    Alert(Arc<Alert>),
}

impl Record {
    pub fn id(&self) -> &str {
        match self {
            Record::Event(e) => &e.id,
            Record::Alert(a) => &a.id,
        }
    }

    pub fn ts(&self) -> Timestamp {
        match self {
            Record::Event(e) => e.ts,
            Record::Alert(a) => a.ts,
        }
    }

    /// `"event"` or `"alert"`: the `record` field of JSON serializations.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Event(_) => "event",
            Record::Alert(_) => "alert",
        }
    }

    /// The record as one JSON object with a `"record": "event" | "alert"` field first.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match self {
            Record::Event(e) => serde_json::to_value(&**e),
            Record::Alert(a) => serde_json::to_value(&**a),
        }
        .unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut v {
            let mut out = serde_json::Map::with_capacity(map.len() + 1);
            out.insert("record".into(), self.type_name().into());
            out.extend(std::mem::take(map));
            return serde_json::Value::Object(out);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp(1_764_583_200_123_456);
        let s = t.rfc3339();
        assert_eq!(s, "2025-12-01T10:00:00.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&s).unwrap(), t);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-12-01T10:00:00.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn event_serializes_with_contract_field_names() {
        let mut e = Event::new(EventKind::Request, Action::Block);
        e.client_ip = "203.0.113.9".into();
        e.findings.push(Finding {
            class: "sqli".into(),
            rule_id: "SQLI-001".into(),
            score: 5,
            point: "query.q".into(),
            evidence: "1' or '1'='1".into(),
            decode_chain: vec![],
        });
        let v = Record::Event(Arc::new(e.clone())).to_json();
        for key in [
            "id",
            "ts",
            "node",
            "request_id",
            "client_ip",
            "method",
            "host",
            "path",
            "route",
            "status",
            "action",
            "findings",
            "fingerprints",
            "latency_us",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["record"], "event");
        assert_eq!(v["action"], "block");
        assert_eq!(v["findings"][0]["rule_id"], "SQLI-001");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = Event::new(EventKind::Request, Action::Block);
        std::thread::sleep(Duration::from_millis(2));
        let b = Event::new(EventKind::Request, Action::Block);
        assert!(a.id < b.id);
    }
}
