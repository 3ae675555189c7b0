//! The SQLite sink and the store that reads it back, on real files.

use rampart_events::sqlite::SqliteSink;
use rampart_events::store::{EventStore, Query, StoreError};
use rampart_events::{Action, Alert, Event, EventKind, EventSink, Finding, Record, Timestamp};
use rampart_policy::events::SqliteSpec;
use std::sync::Arc;
use std::time::Duration;

const MINUTE_US: i64 = 60_000_000;
const DAY: Duration = Duration::from_secs(86_400);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn spec(dir: &tempfile::TempDir, retention: Duration, max_size: u64) -> SqliteSpec {
    SqliteSpec {
        // A directory that does not exist yet: the sink creates it.
        path: dir.path().join("data/sub/events.db"),
        retention,
        max_size,
    }
}

fn finding(class: &str, rule_id: &str) -> Finding {
    Finding {
        class: class.into(),
        rule_id: rule_id.into(),
        score: 5,
        point: "query.q".into(),
        evidence: "1' or '1'='1".into(),
        decode_chain: vec!["url".into()],
    }
}

fn event(ts: i64, action: Action, route: &str, ip: &str, findings: Vec<Finding>) -> Event {
    let mut e = Event::new(EventKind::Request, action);
    e.ts = Timestamp(ts);
    e.node = "node-a".into();
    e.request_id = format!("req-{ts}");
    e.client_ip = ip.into();
    e.method = "GET".into();
    e.host = "shop.example".into();
    e.path = "/search".into();
    e.route = route.into();
    e.status = 403;
    e.score = findings.iter().map(|f| f.score).sum();
    e.findings = findings;
    e.fingerprints
        .insert("ja4".into(), "t13d1516h2_8daaf6152771_b0da82dd1658".into());
    e.latency_us = 1234;
    e
}

fn alert(ts: i64, key: &str) -> Alert {
    Alert {
        id: uuid_like(ts, key),
        ts: Timestamp(ts),
        node: "node-a".into(),
        trigger: "sqli-burst".into(),
        severity: "critical".into(),
        group_by: "client_ip".into(),
        key: key.into(),
        count: 12,
        threshold: 10,
        window_s: 60,
        first_seen: Timestamp(ts - MINUTE_US),
        last_seen: Timestamp(ts),
        classes: vec!["sqli".into()],
        routes: vec!["api".into()],
        sample_event_ids: vec!["e1".into(), "e2".into()],
        actions: vec![format!("ban {key} for 15m")],
        summary: format!("12 sqli events from {key} in 1m"),
    }
}

fn uuid_like(ts: i64, key: &str) -> String {
    format!("alert-{ts}-{key}")
}

fn records(events: &[Event]) -> Vec<Record> {
    events.iter().map(|e| Record::Event(Arc::new(e.clone()))).collect()
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

/// Twelve events a minute apart ending a minute ago, in a mix of actions, routes, clients and classes.
fn fixture(now: i64) -> Vec<Event> {
    let t = |i: i64| now - (13 - i) * MINUTE_US;
    vec![
        event(
            t(0),
            Action::Block,
            "api",
            "203.0.113.9",
            vec![finding("sqli", "SQLI-001")],
        ),
        event(
            t(1),
            Action::Block,
            "api",
            "203.0.113.9",
            vec![
                finding("sqli", "SQLI-002"),
                finding("xss", "XSS-001"),
                finding("sqli", "SQLI-001"),
            ],
        ),
        event(
            t(2),
            Action::Monitor,
            "web",
            "198.51.100.7",
            vec![finding("xss", "XSS-001")],
        ),
        event(
            t(3),
            Action::Reject,
            "web",
            "198.51.100.7",
            vec![finding("protocol", "HTTP-SMUGGLE")],
        ),
        event(
            t(4),
            Action::Block,
            "admin",
            "192.0.2.1",
            vec![finding("path", "PATH-001")],
        ),
        event(t(5), Action::Ban, "api", "203.0.113.9", vec![]),
        event(t(6), Action::Limit, "api", "203.0.113.10", vec![]),
        event(
            t(7),
            Action::Block,
            "api",
            "203.0.113.9",
            vec![finding("cmdi", "CMDI-001")],
        ),
        event(
            t(8),
            Action::Monitor,
            "api",
            "2001:db8::1",
            vec![finding("sqli", "SQLI-003")],
        ),
        event(t(9), Action::Challenge, "web", "198.51.100.8", vec![]),
        event(
            t(10),
            Action::Block,
            "web",
            "203.0.113.9",
            vec![finding("ssrf", "SSRF-001")],
        ),
        event(
            t(11),
            Action::Block,
            "api",
            "198.51.100.7",
            vec![finding("sqli", "SQLI-001")],
        ),
    ]
}

/// The events among `all` that `keep` selects, newest first (the store's order).
fn expect(all: &[Event], keep: impl Fn(&Event) -> bool) -> Vec<String> {
    let mut v: Vec<&Event> = all.iter().filter(|e| keep(e)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.ts));
    v.into_iter().map(|e| e.id.clone()).collect()
}

#[test]
fn events_and_alerts_round_trip_through_every_query_filter() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&dir, 30 * DAY, 1 << 30);
    let now = Timestamp::now().micros();
    let all = fixture(now);
    let alerts = [
        alert(now - 3 * MINUTE_US, "203.0.113.9"),
        alert(now - MINUTE_US, "198.51.100.7"),
    ];
    rt().block_on(async {
        let mut sink = SqliteSink::open("local", &spec).unwrap();
        assert_eq!(sink.name(), "local");
        // Two batches, events and alerts mixed.
        let mut first = records(&all[..5]);
        first.push(Record::Alert(Arc::new(alerts[0].clone())));
        sink.deliver(&first).await.unwrap();
        let mut second = records(&all[5..]);
        second.push(Record::Alert(Arc::new(alerts[1].clone())));
        sink.deliver(&second).await.unwrap();
        sink.deliver(&[]).await.unwrap();
        sink.close().await;
    });

    let store = EventStore::open(&spec.path).unwrap();
    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        ids(&store.events(&q).unwrap())
    };

    // Everything, newest first, records intact.
    let got = store.events(&Query::default()).unwrap();
    let mut newest_first = all.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);

    let since = Timestamp(now - 8 * MINUTE_US); // all[5..]
    let until = Timestamp(now - 4 * MINUTE_US); // before all[9]
    assert_eq!(
        ids(&store
            .events(&Query {
                since: Some(since),
                ..Query::default()
            })
            .unwrap()),
        expect(&all, |e| e.ts >= since)
    );
    assert_eq!(
        ids(&store
            .events(&Query {
                until: Some(until),
                ..Query::default()
            })
            .unwrap()),
        expect(&all, |e| e.ts < until)
    );
    assert_eq!(
        ids(&store
            .events(&Query {
                since: Some(since),
                until: Some(until),
                ..Query::default()
            })
            .unwrap()),
        expect(&all, |e| e.ts >= since && e.ts < until)
    );
    assert_eq!(
        q(|q| q.action = Some("block".into())),
        expect(&all, |e| e.action == Action::Block)
    );
    assert_eq!(q(|q| q.route = Some("web".into())), expect(&all, |e| e.route == "web"));
    assert_eq!(
        q(|q| q.client_ip = Some("203.0.113.9".into())),
        expect(&all, |e| e.client_ip == "203.0.113.9")
    );
    assert_eq!(
        q(|q| q.client_ip = Some("2001:db8::1".into())),
        expect(&all, |e| e.client_ip == "2001:db8::1")
    );
    let sqli = expect(&all, |e| e.findings.iter().any(|f| f.class == "sqli"));
    assert_eq!(sqli.len(), 4);
    // The event with two sqli findings comes back once.
    assert_eq!(q(|q| q.class = Some("sqli".into())), sqli);
    assert_eq!(
        q(|q| q.rule_id = Some("XSS-001".into())),
        expect(&all, |e| e.findings.iter().any(|f| f.rule_id == "XSS-001"))
    );
    assert_eq!(
        q(|q| q.rule_id = Some("SQLI-001".into())),
        expect(&all, |e| e.findings.iter().any(|f| f.rule_id == "SQLI-001"))
    );
    assert!(q(|q| q.class = Some("nosuchclass".into())).is_empty());
    assert_eq!(
        q(|q| {
            q.class = Some("sqli".into());
            q.rule_id = Some("SQLI-002".into());
        }),
        vec![all[1].id.clone()]
    );
    assert_eq!(
        q(|q| {
            q.rule_id = Some("XSS-001".into());
            q.route = Some("web".into());
            q.limit = 1;
        }),
        vec![all[2].id.clone()]
    );
    assert_eq!(q(|q| q.limit = 3), expect(&all, |_| true)[..3].to_vec());
    assert_eq!(q(|q| q.limit = 0).len(), all.len());
    // Filters combine with "and", the class filter with the time range too.
    assert_eq!(
        q(|q| {
            q.action = Some("block".into());
            q.route = Some("api".into());
            q.client_ip = Some("203.0.113.9".into());
            q.class = Some("sqli".into());
        }),
        expect(&all, |e| {
            e.action == Action::Block
                && e.route == "api"
                && e.client_ip == "203.0.113.9"
                && e.findings.iter().any(|f| f.class == "sqli")
        })
    );
    let sqli_since = Timestamp(now - 5 * MINUTE_US);
    assert_eq!(
        ids(&store
            .events(&Query {
                since: Some(sqli_since),
                class: Some("sqli".into()),
                ..Query::default()
            })
            .unwrap()),
        expect(&all, |e| e.ts >= sqli_since
            && e.findings.iter().any(|f| f.class == "sqli"))
    );
    // Values are parameters: a quote in a filter is just a character.
    assert!(q(|q| q.route = Some("x' OR '1'='1".into())).is_empty());

    // One event by id.
    assert_eq!(store.event(&all[3].id).unwrap().as_ref(), Some(&all[3]));
    assert_eq!(store.event("nope").unwrap(), None);

    // Alerts, newest first, with since and limit.
    assert_eq!(
        store.alerts(None, 0).unwrap(),
        vec![alerts[1].clone(), alerts[0].clone()]
    );
    assert_eq!(store.alerts(None, 1).unwrap(), vec![alerts[1].clone()]);
    assert_eq!(
        store.alerts(Some(Timestamp(now - 2 * MINUTE_US)), 10).unwrap(),
        vec![alerts[1].clone()]
    );

    // Aggregates.
    let by_class = store.counts_by_class(None).unwrap();
    assert_eq!(by_class[0], ("sqli".to_string(), 4));
    assert!(by_class.contains(&("xss".to_string(), 2)));
    assert!(by_class.contains(&("cmdi".to_string(), 1)));
    assert_eq!(by_class.len(), 6, "{by_class:?}");
    let recent = store.counts_by_class(Some(Timestamp(now - 3 * MINUTE_US))).unwrap();
    assert_eq!(recent, vec![("sqli".to_string(), 1), ("ssrf".to_string(), 1)]);
    assert_eq!(
        store.top_clients(None, 2).unwrap(),
        vec![("203.0.113.9".to_string(), 5), ("198.51.100.7".to_string(), 3)]
    );
    assert_eq!(
        store.top_clients(Some(since), 1).unwrap(),
        vec![("203.0.113.9".to_string(), 3)]
    );
    assert!(store.top_clients(None, 0).unwrap().is_empty());
}

#[test]
fn a_redelivered_batch_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&dir, 30 * DAY, 1 << 30);
    let now = Timestamp::now().micros();
    let all = fixture(now);
    let mut batch = records(&all);
    batch.push(Record::Alert(Arc::new(alert(now, "203.0.113.9"))));
    rt().block_on(async {
        let mut sink = SqliteSink::open("local", &spec).unwrap();
        sink.deliver(&batch).await.unwrap();
        sink.deliver(&batch).await.unwrap();
        // A retry that grew by newer records: only the new one is added.
        let extra = event(
            now,
            Action::Block,
            "api",
            "192.0.2.50",
            vec![finding("sqli", "SQLI-009")],
        );
        let mut grown = batch.clone();
        grown.push(Record::Event(Arc::new(extra)));
        sink.deliver(&grown).await.unwrap();
        sink.close().await;
    });
    let store = EventStore::open(&spec.path).unwrap();
    let got = store
        .events(&Query {
            limit: 0,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(got.len(), all.len() + 1);
    assert_eq!(store.alerts(None, 0).unwrap().len(), 1);
    // Findings were not duplicated either.
    assert_eq!(store.counts_by_class(None).unwrap()[0], ("sqli".to_string(), 5));
    let (tail, _) = store.events_after(0, 0).unwrap();
    assert_eq!(tail.len(), all.len() + 1);
}

#[test]
fn retention_by_age_deletes_old_events_alerts_and_findings() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&dir, Duration::from_secs(3600), 1 << 30);
    let now = Timestamp::now().micros();
    let old: Vec<Event> = (0..2500)
        .map(|i| {
            event(
                now - 2 * 3600 * 1_000_000 - i,
                Action::Block,
                "api",
                "192.0.2.1",
                vec![finding("sqli", "SQLI-001")],
            )
        })
        .collect();
    let fresh: Vec<Event> = (0..10)
        .map(|i| {
            event(
                now - i * 1000,
                Action::Block,
                "api",
                "192.0.2.2",
                vec![finding("xss", "XSS-001")],
            )
        })
        .collect();
    let old_alert = alert(now - 3 * 3600 * 1_000_000, "192.0.2.1");
    let new_alert = alert(now, "192.0.2.2");
    rt().block_on(async {
        let mut sink = SqliteSink::open("local", &spec).unwrap();
        for chunk in old.chunks(500) {
            sink.deliver(&records(chunk)).await.unwrap();
        }
        sink.deliver(&records(&fresh)).await.unwrap();
        sink.deliver(&[
            Record::Alert(Arc::new(old_alert)),
            Record::Alert(Arc::new(new_alert.clone())),
        ])
        .await
        .unwrap();
        let report = sink.enforce_retention().await.unwrap();
        // More than one delete chunk's worth.
        assert_eq!(report.expired_events, 2500, "{report:?}");
        assert_eq!(report.expired_alerts, 1);
        assert_eq!(report.evicted_events, 0);
        assert!(!report.incomplete);
        let again = sink.enforce_retention().await.unwrap();
        assert_eq!(again.expired_events + again.expired_alerts, 0);
        sink.close().await;
    });
    let store = EventStore::open(&spec.path).unwrap();
    let left = store
        .events(&Query {
            limit: 0,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(ids(&left), ids(&fresh));
    assert_eq!(store.alerts(None, 0).unwrap(), vec![new_alert]);
    // The old events' findings went with them.
    assert_eq!(store.counts_by_class(None).unwrap(), vec![("xss".to_string(), 10)]);
}

#[test]
fn retention_runs_when_the_sink_opens() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now().micros();
    let old = event(now - 40 * 86_400 * 1_000_000, Action::Block, "api", "192.0.2.1", vec![]);
    let fresh = event(now, Action::Block, "api", "192.0.2.1", vec![]);
    rt().block_on(async {
        // Written by a sink that keeps a year...
        let mut sink = SqliteSink::open("local", &spec(&dir, 365 * DAY, 1 << 30)).unwrap();
        sink.deliver(&records(&[old, fresh.clone()])).await.unwrap();
        sink.close().await;
        // ... reopened with 30 days: the writer thread deletes the old event by itself, without a delivery.
        let mut sink = SqliteSink::open("local", &spec(&dir, 30 * DAY, 1 << 30)).unwrap();
        let store = EventStore::open(spec(&dir, 30 * DAY, 0).path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = store.events(&Query::default()).unwrap();
            if ids(&left) == vec![fresh.id.clone()] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the open-time retention did not run: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sink.close().await;
    });
}

#[test]
fn retention_by_size_deletes_the_oldest_until_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let max_size: u64 = 512 << 10;
    let spec = spec(&dir, 30 * DAY, max_size);
    let now = Timestamp::now().micros();
    let events: Vec<Event> = (0..3000i64)
        .map(|i| {
            let mut f = finding("sqli", "SQLI-001");
            f.evidence = format!("{i:05}{}", "x".repeat(400));
            event(
                now - (3000 - i) * 1000,
                Action::Block,
                "api",
                &format!("192.0.2.{}", i % 200),
                vec![f],
            )
        })
        .collect();
    rt().block_on(async {
        let mut sink = SqliteSink::open("local", &spec).unwrap();
        for chunk in events.chunks(250) {
            sink.deliver(&records(chunk)).await.unwrap();
        }
        let report = sink.enforce_retention().await.unwrap();
        assert!(report.size_before > max_size, "{report:?}");
        assert!(report.evicted_events > 0, "{report:?}");
        assert!(report.size_after <= max_size * 9 / 10, "{report:?}");
        assert!(!report.incomplete);
        sink.close().await;
    });
    // Once closed (checkpointed), the file itself is under the limit.
    let on_disk = std::fs::metadata(&spec.path).unwrap().len();
    assert!(on_disk <= max_size, "{on_disk} > {max_size}");
    let conn = rusqlite::Connection::open(&spec.path).unwrap();
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(auto_vacuum, 2, "auto_vacuum=INCREMENTAL");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let orphans: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM findings WHERE event_seq NOT IN (SELECT seq FROM events)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    drop(conn);

    // The newest survive, the oldest went: what is left is a suffix.
    let store = EventStore::open(&spec.path).unwrap();
    let left = store
        .events(&Query {
            limit: 0,
            ..Query::default()
        })
        .unwrap();
    assert!(!left.is_empty() && left.len() < events.len(), "{} left", left.len());
    let mut expected: Vec<String> = ids(&events[events.len() - left.len()..]);
    expected.reverse();
    assert_eq!(ids(&left), expected);
}

#[test]
fn tail_cursor_goes_forward_and_survives_retention() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&dir, Duration::from_secs(3600), 1 << 30);
    let now = Timestamp::now().micros();
    let batch1: Vec<Event> = (0..5)
        .map(|i| event(now - 10_000 + i, Action::Block, "api", "192.0.2.1", vec![]))
        .collect();
    let batch2: Vec<Event> = (0..3)
        .map(|i| event(now - 5_000 + i, Action::Monitor, "web", "192.0.2.2", vec![]))
        .collect();
    let rt = rt();
    let mut sink = SqliteSink::open("local", &spec).unwrap();
    let store = EventStore::open(&spec.path).unwrap();
    assert_eq!(store.last_cursor().unwrap(), 0);
    assert_eq!(store.events_after(0, 10).unwrap(), (vec![], 0));

    rt.block_on(sink.deliver(&records(&batch1))).unwrap();
    // From 0: everything, oldest first, in pages.
    let (page, c1) = store.events_after(0, 3).unwrap();
    assert_eq!(ids(&page), ids(&batch1[..3]));
    let (page, c2) = store.events_after(c1, 3).unwrap();
    assert_eq!(ids(&page), ids(&batch1[3..]));
    assert!(c2 > c1);
    assert_eq!(store.last_cursor().unwrap(), c2);
    // Nothing new: same cursor.
    assert_eq!(store.events_after(c2, 10).unwrap(), (vec![], c2));

    // `tail -f` from the end sees only what comes next.
    let start = store.last_cursor().unwrap();
    rt.block_on(sink.deliver(&records(&batch2))).unwrap();
    let (page, c3) = store.events_after(start, 100).unwrap();
    assert_eq!(ids(&page), ids(&batch2));

    // Retention deletes everything; cursors are never reused, so a tail does not replay or miss anything.
    let old = event(now - 2 * 3600 * 1_000_000, Action::Block, "api", "192.0.2.3", vec![]);
    rt.block_on(sink.deliver(&records(std::slice::from_ref(&old)))).unwrap();
    let (page, c4) = store.events_after(c3, 100).unwrap();
    assert_eq!(ids(&page), vec![old.id.clone()]);
    let report = rt.block_on(sink.enforce_retention()).unwrap();
    assert_eq!(report.expired_events, 1);
    // Empty the table entirely through another sink with a tiny retention.
    rt.block_on(sink.close());
    let mut short = SqliteSink::open(
        "local",
        &SqliteSpec {
            retention: Duration::from_micros(1),
            ..spec.clone()
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    rt.block_on(short.enforce_retention()).unwrap();
    assert!(store.events(&Query::default()).unwrap().is_empty());
    assert_eq!(store.last_cursor().unwrap(), c4);
    rt.block_on(short.close());

    let mut sink = SqliteSink::open("local", &spec).unwrap();
    let next = event(now, Action::Ban, "api", "192.0.2.4", vec![]);
    rt.block_on(sink.deliver(&records(std::slice::from_ref(&next))))
        .unwrap();
    let (page, c5) = store.events_after(c4, 100).unwrap();
    assert_eq!(ids(&page), vec![next.id.clone()]);
    assert!(c5 > c4);
    rt.block_on(sink.close());
}

#[test]
fn a_reader_sees_whole_batches_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&dir, 30 * DAY, 1 << 30);
    const BATCHES: usize = 60;
    const PER_BATCH: usize = 25;
    let now = Timestamp::now().micros();
    let rt = rt();
    let mut sink = SqliteSink::open("local", &spec).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let path = spec.path.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let store = EventStore::open(&path).unwrap();
            let mut seen = Vec::new();
            let mut cursor = 0;
            let mut tailed = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let n = store
                    .events(&Query {
                        limit: 0,
                        ..Query::default()
                    })
                    .unwrap()
                    .len();
                seen.push(n);
                let (page, c) = store.events_after(cursor, 0).unwrap();
                tailed += page.len();
                cursor = c;
            }
            let (page, _) = store.events_after(cursor, 0).unwrap();
            (seen, tailed + page.len())
        })
    };
    rt.block_on(async {
        for b in 0..BATCHES {
            let batch: Vec<Event> = (0..PER_BATCH)
                .map(|i| {
                    let n = (b * PER_BATCH + i) as i64;
                    event(
                        now + n,
                        Action::Block,
                        "api",
                        "192.0.2.9",
                        vec![finding("xss", "XSS-001")],
                    )
                })
                .collect();
            sink.deliver(&records(&batch)).await.unwrap();
            if b % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (seen, tailed) = reader.join().unwrap();
    assert!(seen.len() > 1, "the reader ran {} queries", seen.len());
    // Each read saw whole batches, never fewer than before.
    for w in seen.windows(2) {
        assert!(w[0] <= w[1], "{seen:?}");
    }
    for n in &seen {
        assert_eq!(n % PER_BATCH, 0, "a read saw part of a batch: {n}");
    }
    // The tail saw each event exactly once.
    assert_eq!(tailed, BATCHES * PER_BATCH);
    rt.block_on(sink.close());
}

#[test]
fn the_store_explains_what_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/events.db");
    let e = EventStore::open(&missing).unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("no event database at"), "{e}");
    assert!(e.to_string().contains("nope/events.db"), "{e}");

    // A SQLite file that is not ours: the store refuses it, and so does the sink (it would not write its
    // tables into someone else's database).
    let foreign = dir.path().join("other.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let e = EventStore::open(&foreign).unwrap_err();
    assert!(matches!(e, StoreError::NotAnEventStore { .. }), "{e:?}");
    let e = SqliteSink::open(
        "local",
        &SqliteSpec {
            path: foreign.clone(),
            retention: DAY,
            max_size: 0,
        },
    )
    .unwrap_err();
    assert!(e.is_permanent(), "{e}");

    // Not SQLite at all.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "hello, this is not a database at all, just some text\n".repeat(100),
    )
    .unwrap();
    let e = EventStore::open(&text).unwrap_err();
    assert!(matches!(e, StoreError::NotAnEventStore { .. }), "{e:?}");

    // A newer schema: both refuse.
    let newer = spec(&dir, DAY, 0);
    rt().block_on(async {
        SqliteSink::open("local", &newer).unwrap().close().await;
    });
    rusqlite::Connection::open(&newer.path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = EventStore::open(&newer.path).unwrap_err();
    assert!(matches!(e, StoreError::NewerSchema { found: 99, .. }), "{e:?}");
    let e = SqliteSink::open("local", &newer).unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("newer"), "{e}");
}

#[test]
fn the_store_reads_a_closed_database_and_the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&dir, 30 * DAY, 1 << 30);
    let now = Timestamp::now().micros();
    let e = event(
        now,
        Action::Block,
        "api",
        "192.0.2.1",
        vec![finding("sqli", "SQLI-001")],
    );
    rt().block_on(async {
        let mut sink = SqliteSink::open("local", &spec).unwrap();
        sink.deliver(&records(std::slice::from_ref(&e))).await.unwrap();
        sink.close().await;
    });
    let mode = std::fs::metadata(&spec.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No writer: the WAL is gone, the read-only store opens anyway.
    let store = EventStore::open(&spec.path).unwrap();
    assert_eq!(store.events(&Query::default()).unwrap(), vec![e]);
}
