//! Matching events against the config's [`EventFilter`]s (trigger conditions, per-sink selection).

use crate::event::Event;
use rampart_policy::events::EventFilter;
use std::net::IpAddr;

/// Whether `e` passes `f`: every non-empty list of the filter must contain the event's value.
pub fn matches(f: &EventFilter, e: &Event) -> bool {
    fn any_of(list: &[String], v: &str) -> bool {
        list.is_empty() || list.iter().any(|x| x == v)
    }
    if !any_of(&f.kinds, e.kind.as_str())
        || !any_of(&f.actions, e.action.as_str())
        || !any_of(&f.routes, &e.route)
        || !any_of(&f.methods, &e.method)
    {
        return false;
    }
    if !f.hosts.is_empty() && !f.hosts.iter().any(|h| h.eq_ignore_ascii_case(&e.host)) {
        return false;
    }
    if !f.statuses.is_empty() && !f.statuses.contains(&e.status) {
        return false;
    }
    if f.min_score.is_some_and(|m| e.score < m) {
        return false;
    }
    if !f.classes.is_empty() && !e.findings.iter().any(|x| f.classes.contains(&x.class)) {
        return false;
    }
    if !f.rule_ids.is_empty() && !e.findings.iter().any(|x| f.rule_ids.contains(&x.rule_id)) {
        return false;
    }
    if !f.fingerprints.is_empty() && !e.fingerprints.values().any(|v| f.fingerprints.contains(v)) {
        return false;
    }
    if !f.clients.is_empty() {
        let Ok(ip) = e.client_ip.parse::<IpAddr>() else {
            return false;
        };
        let ip = rampart_policy::canonical_ip(ip);
        if !f.clients.iter().any(|n| n.contains(&ip)) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, EventKind, Finding};

    fn event() -> Event {
        let mut e = Event::new(EventKind::Request, Action::Block);
        e.client_ip = "203.0.113.9".into();
        e.route = "api".into();
        e.method = "POST".into();
        e.host = "API.example.com".into();
        e.status = 403;
        e.score = 8;
        e.findings.push(Finding {
            class: "sqli".into(),
            rule_id: "SQLI-003".into(),
            score: 8,
            point: "query.q".into(),
            evidence: "x".into(),
            decode_chain: vec![],
        });
        e
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(matches(&EventFilter::default(), &event()));
    }

    #[test]
    fn every_list_must_match() {
        let e = event();
        let f = |edit: &dyn Fn(&mut EventFilter)| {
            let mut f = EventFilter::default();
            edit(&mut f);
            matches(&f, &e)
        };
        assert!(f(&|f| f.classes = vec!["xss".into(), "sqli".into()]));
        assert!(!f(&|f| f.classes = vec!["xss".into()]));
        assert!(f(&|f| f.actions = vec!["block".into()]));
        assert!(!f(&|f| f.actions = vec!["monitor".into()]));
        assert!(f(&|f| f.clients = vec!["203.0.113.0/24".parse().unwrap()]));
        assert!(!f(&|f| f.clients = vec!["198.51.100.0/24".parse().unwrap()]));
        assert!(f(&|f| f.hosts = vec!["api.example.com".into()]));
        assert!(!f(&|f| f.min_score = Some(9)));
        assert!(f(&|f| f.rule_ids = vec!["SQLI-003".into()]));
        assert!(!f(&|f| {
            f.classes = vec!["sqli".into()];
            f.routes = vec!["admin".into()];
        }));
        assert!(!f(&|f| f.kinds = vec!["behaviour".into()]));
    }
}
