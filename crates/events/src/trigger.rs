//! Triggers: "more than N matching events with one key within a window" -> an alert and actions.
//!
//! Each trigger keeps, per key (client IP, route, ...), the arrival times of its most recent matching
//! events, at most `threshold` of them: the trigger fires when the oldest of those is still inside the
//! window, which is exact for a sliding window and bounds memory by `threshold x max_keys`. After firing for
//! a key the trigger is quiet for that key for `cooldown` (one incident, one alert); if the incident goes on
//! past the cooldown it fires again.
//!
//! What a firing does outside this crate (ban an address, switch a route's mode, raise its sensitivity) goes
//! through the [`Responder`] the binary wires in.

use crate::event::{Action, Alert, Event, EventKind, Timestamp};
use crate::filter;
use rampart_policy::events::{GroupBy, TriggerSpec};
use rampart_policy::Mode;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Carries out what triggers decide. Implementations must not block: they run on the events thread.
pub trait Responder: Send + Sync {
    fn ban(&self, ip: IpAddr, duration: Duration);
    fn set_route_mode(&self, route: &str, mode: Mode, duration: Duration);
    /// `level` is a detection sensitivity name, validated when the policy was compiled.
    fn set_route_sensitivity(&self, route: &str, level: &str, duration: Duration);
}

/// Acts on nothing (tests, tools that only read events).
pub struct NoResponder;

impl Responder for NoResponder {
    fn ban(&self, _: IpAddr, _: Duration) {}
    fn set_route_mode(&self, _: &str, _: Mode, _: Duration) {}
    fn set_route_sensitivity(&self, _: &str, _: &str, _: Duration) {}
}

const SAMPLE_IDS: usize = 5;
const SMALL_SET: usize = 8;

struct KeyState {
    times: VecDeque<Instant>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    last_touch: Instant,
    quiet_until: Option<Instant>,
    sample_ids: VecDeque<String>,
    classes: Vec<String>,
    routes: Vec<String>,
}

struct TriggerState {
    spec: TriggerSpec,
    keys: HashMap<String, KeyState>,
}

/// One trigger crossing its threshold for one key.
#[derive(Debug, Clone)]
pub struct Firing {
    pub spec: TriggerSpec,
    pub key: String,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub classes: Vec<String>,
    pub routes: Vec<String>,
    pub sample_ids: Vec<String>,
}

#[derive(Default)]
pub struct TriggerEngine {
    triggers: Vec<TriggerState>,
}

impl TriggerEngine {
    pub fn new(specs: &[TriggerSpec]) -> Self {
        let mut t = TriggerEngine::default();
        t.update(specs);
        t
    }

    /// Installs a new set of triggers (a reload). A trigger whose spec did not change keeps its counts.
    pub fn update(&mut self, specs: &[TriggerSpec]) {
        let mut old: Vec<TriggerState> = std::mem::take(&mut self.triggers);
        self.triggers = specs
            .iter()
            .map(|spec| match old.iter().position(|o| o.spec == *spec) {
                Some(i) => old.swap_remove(i),
                None => TriggerState {
                    spec: spec.clone(),
                    keys: HashMap::new(),
                },
            })
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    /// Keys tracked across all triggers (memory bound checks).
    pub fn tracked_keys(&self) -> usize {
        self.triggers.iter().map(|t| t.keys.len()).sum()
    }

    /// Counts `e` in every trigger it matches; returns the firings it caused.
    pub fn observe(&mut self, e: &Event, now: Instant) -> Vec<Firing> {
        let mut out = Vec::new();
        for t in &mut self.triggers {
            if !filter::matches(&t.spec.filter, e) {
                continue;
            }
            for key in keys_of(t.spec.group_by, e) {
                if let Some(f) = t.count(key, e, now) {
                    out.push(f);
                }
            }
        }
        out
    }
}

/// The keys an event counts under: one, except for class and rule_id where each distinct value counts.
fn keys_of(g: GroupBy, e: &Event) -> Vec<String> {
    let one = |s: &str| if s.is_empty() { vec![] } else { vec![s.to_string()] };
    match g {
        GroupBy::ClientIp => one(&e.client_ip),
        GroupBy::Route => one(&e.route),
        GroupBy::Host => one(&e.host.to_ascii_lowercase()),
        GroupBy::Path => one(&e.path),
        GroupBy::Session => e.session.as_deref().map(one).unwrap_or_default(),
        GroupBy::Fingerprint => e
            .fingerprints
            .get("ja4")
            .or_else(|| e.fingerprints.values().next())
            .map(|s| one(s))
            .unwrap_or_default(),
        GroupBy::Class => e.classes().into_iter().map(str::to_string).collect(),
        GroupBy::RuleId => {
            let mut v: Vec<String> = Vec::new();
            for f in &e.findings {
                if !v.contains(&f.rule_id) {
                    v.push(f.rule_id.clone());
                }
            }
            v
        }
        GroupBy::Global => vec!["*".to_string()],
    }
}

impl TriggerState {
    fn count(&mut self, key: String, e: &Event, now: Instant) -> Option<Firing> {
        let spec = &self.spec;
        if !self.keys.contains_key(&key) && self.keys.len() >= spec.max_keys {
            evict(&mut self.keys, spec.window, now);
        }
        let st = self.keys.entry(key.clone()).or_insert_with(|| KeyState {
            times: VecDeque::new(),
            first_seen: e.ts,
            last_seen: e.ts,
            last_touch: now,
            quiet_until: None,
            sample_ids: VecDeque::new(),
            classes: Vec::new(),
            routes: Vec::new(),
        });
        let horizon = now.checked_sub(spec.window);
        while st.times.front().is_some_and(|t| horizon.is_some_and(|h| *t < h)) {
            st.times.pop_front();
        }
        if st.times.is_empty() {
            // A new incident for this key: forget the last one's details.
            st.first_seen = e.ts;
            st.classes.clear();
            st.routes.clear();
            st.sample_ids.clear();
        }
        st.times.push_back(now);
        while st.times.len() as u64 > spec.threshold {
            st.times.pop_front();
        }
        st.last_seen = e.ts;
        st.last_touch = now;
        st.sample_ids.push_back(e.id.clone());
        if st.sample_ids.len() > SAMPLE_IDS {
            st.sample_ids.pop_front();
        }
        for c in e.classes() {
            if st.classes.len() < SMALL_SET && !st.classes.iter().any(|x| x == c) {
                st.classes.push(c.to_string());
            }
        }
        if !e.route.is_empty() && st.routes.len() < SMALL_SET && !st.routes.contains(&e.route) {
            st.routes.push(e.route.clone());
        }
        if (st.times.len() as u64) < spec.threshold || st.quiet_until.is_some_and(|q| now < q) {
            return None;
        }
        st.quiet_until = Some(now + spec.cooldown);
        Some(Firing {
            spec: spec.clone(),
            key,
            count: st.times.len() as u64,
            first_seen: st.first_seen,
            last_seen: st.last_seen,
            classes: st.classes.clone(),
            routes: st.routes.clone(),
            sample_ids: st.sample_ids.iter().cloned().collect(),
        })
    }
}

/// Makes room for a new key: drops keys with nothing left in the window (and no cooldown running), then,
/// if still full, the least recently seen tenth.
fn evict(keys: &mut HashMap<String, KeyState>, window: Duration, now: Instant) {
    keys.retain(|_, st| {
        let active = now.saturating_duration_since(st.last_touch) < window;
        let quiet = st.quiet_until.is_some_and(|q| now < q);
        active || quiet
    });
    let len = keys.len();
    if len == 0 {
        return;
    }
    let drop = (len / 10).max(1);
    let mut touched: Vec<(Instant, String)> = keys.iter().map(|(k, s)| (s.last_touch, k.clone())).collect();
    touched.sort_unstable_by_key(|(t, _)| *t);
    for (_, k) in touched.into_iter().take(drop) {
        keys.remove(&k);
    }
}

/// What a firing produces: the alert, and the behaviour events of the actions it took (a ban is itself an
/// event, so that the ban shows up in the event stream and in SIEM searches for the address).
pub struct Outcome {
    pub alert: Alert,
    pub events: Vec<Event>,
}

/// Carries out a firing's actions through `responder` and describes them in the alert.
pub fn act(f: &Firing, node: &str, responder: &dyn Responder) -> Outcome {
    let spec = &f.spec;
    let mut actions = Vec::new();
    let mut events = Vec::new();
    if let Some(d) = spec.ban {
        match f.key.parse::<IpAddr>() {
            Ok(ip) => {
                responder.ban(ip, d);
                actions.push(format!("ban {ip} for {}", humantime::format_duration(d)));
                let mut ev = Event::new(EventKind::Behaviour, Action::Ban);
                ev.node = node.to_string();
                ev.client_ip = ip.to_string();
                ev.route = f.routes.first().cloned().unwrap_or_default();
                ev.reason = Some(format!(
                    "trigger {}: {} matching events within {}; banned for {}",
                    spec.name,
                    f.count,
                    humantime::format_duration(spec.window),
                    humantime::format_duration(d)
                ));
                events.push(ev);
            }
            Err(_) => tracing::warn!(trigger = %spec.name, key = %f.key, "ban skipped: the key is not an IP address"),
        }
    }
    for route in &f.routes {
        if let Some(mode) = spec.route_mode {
            responder.set_route_mode(route, mode, spec.revert_after);
            actions.push(format!(
                "route {route} -> {} for {}",
                mode.as_str(),
                humantime::format_duration(spec.revert_after)
            ));
        }
        if let Some(level) = &spec.sensitivity {
            responder.set_route_sensitivity(route, level, spec.revert_after);
            actions.push(format!(
                "route {route} sensitivity -> {level} for {}",
                humantime::format_duration(spec.revert_after)
            ));
        }
    }
    for n in &spec.notify {
        actions.push(format!("notify {n}"));
    }
    let summary = format!(
        "{}: {} {} events from {} {} within {} (threshold {}){}",
        spec.name,
        f.count,
        if f.classes.is_empty() {
            "matching".to_string()
        } else {
            f.classes.join("/")
        },
        spec.group_by.as_str(),
        f.key,
        humantime::format_duration(spec.window),
        spec.threshold,
        if f.routes.is_empty() {
            String::new()
        } else {
            format!(" on route {}", f.routes.join(", "))
        },
    );
    let alert = Alert {
        id: uuid::Uuid::now_v7().to_string(),
        ts: Timestamp::now(),
        node: node.to_string(),
        trigger: spec.name.clone(),
        severity: spec.severity.as_str().to_string(),
        group_by: spec.group_by.as_str().to_string(),
        key: f.key.clone(),
        count: f.count,
        threshold: spec.threshold,
        window_s: spec.window.as_secs(),
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        classes: f.classes.clone(),
        routes: f.routes.clone(),
        sample_event_ids: f.sample_ids.clone(),
        actions,
        summary,
    };
    Outcome { alert, events }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Finding;
    use rampart_policy::events::{EventFilter, Severity};
    use std::sync::Mutex;

    fn spec(threshold: u64, window: u64, cooldown: u64) -> TriggerSpec {
        TriggerSpec {
            name: "sqli-burst".into(),
            filter: EventFilter {
                classes: vec!["sqli".into()],
                ..Default::default()
            },
            group_by: GroupBy::ClientIp,
            window: Duration::from_secs(window),
            threshold,
            cooldown: Duration::from_secs(cooldown),
            severity: Severity::Critical,
            notify: vec!["slack".into()],
            ban: Some(Duration::from_secs(600)),
            route_mode: None,
            sensitivity: None,
            revert_after: Duration::from_secs(3600),
            max_keys: 100,
        }
    }

    fn sqli_from(ip: &str) -> Event {
        let mut e = Event::new(EventKind::Request, Action::Block);
        e.client_ip = ip.into();
        e.route = "api".into();
        e.findings.push(Finding {
            class: "sqli".into(),
            rule_id: "SQLI-001".into(),
            score: 5,
            point: "query.id".into(),
            evidence: "1 or 1=1".into(),
            decode_chain: vec![],
        });
        e
    }

    #[test]
    fn fires_at_threshold_within_window_once_per_cooldown() {
        let mut t = TriggerEngine::new(&[spec(5, 60, 300)]);
        let t0 = Instant::now();
        let mut fired = 0;
        for i in 0..4 {
            fired += t.observe(&sqli_from("203.0.113.9"), t0 + Duration::from_secs(i)).len();
        }
        assert_eq!(fired, 0, "below threshold");
        let f = t.observe(&sqli_from("203.0.113.9"), t0 + Duration::from_secs(4));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "203.0.113.9");
        assert_eq!(f[0].count, 5);
        // The burst goes on: the cooldown holds.
        for i in 5..304 {
            assert!(t
                .observe(&sqli_from("203.0.113.9"), t0 + Duration::from_secs(i))
                .is_empty());
        }
        // Another key counts on its own.
        for _ in 0..4 {
            assert!(t.observe(&sqli_from("198.51.100.1"), t0).is_empty());
        }
        // Past the cooldown, a still-running incident fires again.
        assert_eq!(
            t.observe(&sqli_from("203.0.113.9"), t0 + Duration::from_secs(304))
                .len(),
            1
        );
    }

    #[test]
    fn events_spread_wider_than_the_window_do_not_fire() {
        let mut t = TriggerEngine::new(&[spec(3, 10, 10)]);
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(t
                .observe(&sqli_from("203.0.113.9"), t0 + Duration::from_secs(i * 6))
                .is_empty());
        }
    }

    #[test]
    fn non_matching_events_are_not_counted() {
        let mut t = TriggerEngine::new(&[spec(2, 60, 60)]);
        let mut xss = sqli_from("203.0.113.9");
        xss.findings[0].class = "xss".into();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(t.observe(&xss, t0).is_empty());
        }
    }

    #[test]
    fn keys_are_bounded() {
        let mut s = spec(1000, 60, 60);
        s.max_keys = 50;
        let mut t = TriggerEngine::new(&[s]);
        let t0 = Instant::now();
        for i in 0..5000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            t.observe(&sqli_from(&ip), t0 + Duration::from_millis(i as u64));
        }
        assert!(t.tracked_keys() <= 50, "{}", t.tracked_keys());
    }

    #[test]
    fn reload_keeps_counts_of_unchanged_triggers() {
        let s = spec(3, 60, 60);
        let mut t = TriggerEngine::new(std::slice::from_ref(&s));
        let t0 = Instant::now();
        t.observe(&sqli_from("203.0.113.9"), t0);
        t.observe(&sqli_from("203.0.113.9"), t0);
        t.update(std::slice::from_ref(&s));
        assert_eq!(t.observe(&sqli_from("203.0.113.9"), t0).len(), 1);
        let mut changed = s;
        changed.threshold = 4;
        t.update(&[changed]);
        assert_eq!(t.tracked_keys(), 0);
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);
    impl Responder for Recorder {
        fn ban(&self, ip: IpAddr, d: Duration) {
            self.0.lock().unwrap().push(format!("ban {ip} {}", d.as_secs()));
        }
        fn set_route_mode(&self, r: &str, m: Mode, _: Duration) {
            self.0.lock().unwrap().push(format!("mode {r} {}", m.as_str()));
        }
        fn set_route_sensitivity(&self, r: &str, l: &str, _: Duration) {
            self.0.lock().unwrap().push(format!("sens {r} {l}"));
        }
    }

    #[test]
    fn acting_bans_switches_and_describes() {
        let mut s = spec(1, 60, 60);
        s.route_mode = Some(Mode::Block);
        s.sensitivity = Some("high".into());
        let mut t = TriggerEngine::new(&[s]);
        let f = t.observe(&sqli_from("203.0.113.9"), Instant::now()).remove(0);
        let r = Recorder::default();
        let out = act(&f, "gw-1", &r);
        assert_eq!(
            *r.0.lock().unwrap(),
            vec!["ban 203.0.113.9 600", "mode api block", "sens api high"]
        );
        assert_eq!(out.alert.trigger, "sqli-burst");
        assert_eq!(out.alert.severity, "critical");
        assert_eq!(out.alert.actions.len(), 4, "{:?}", out.alert.actions);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].action, Action::Ban);
        assert_eq!(out.events[0].kind, EventKind::Behaviour);
        assert_eq!(out.events[0].client_ip, "203.0.113.9");
    }
}
