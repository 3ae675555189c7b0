//! The PostgreSQL sink against a real server started for the test (see support/postgres.rs): schema,
//! complete batches, duplicates, a crash and a restart, timeouts, permanent errors.

#[path = "support/postgres.rs"]
mod pg;

use rampart_events::postgres::PostgresSink;
use rampart_events::{Action, Alert, Event, EventKind, EventSink, Finding, Record, SinkError, Timestamp};
use rampart_policy::events::{PostgresSpec, Secret};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_postgres::NoTls;

const TABLE: &str = "rampart_events";

fn event(n: usize) -> Event {
    let mut e = Event::new(
        EventKind::Request,
        if matches!(n % 3, 0) {
            Action::Monitor
        } else {
            Action::Block
        },
    );
    e.node = "node-a".into();
    e.request_id = format!("req-{n}");
    e.client_ip = format!("192.0.2.{}", n % 250);
    e.method = "GET".into();
    e.host = "shop.example".into();
    e.path = format!("/search/{n}");
    e.route = if matches!(n % 2, 0) { "api".into() } else { "web".into() };
    e.status = 403;
    e.score = 12;
    e.latency_us = 1500 + n as u64;
    e.findings = vec![
        Finding {
            class: "sqli".into(),
            rule_id: "SQLI-001".into(),
            score: 5,
            point: "query.q".into(),
            evidence: "1' or '1'='1 — ünïcode".into(),
            decode_chain: vec!["url".into(), "html".into()],
        },
        Finding {
            class: "xss".into(),
            rule_id: "XSS-004".into(),
            score: 5,
            point: "query.q".into(),
            evidence: "<script>".into(),
            decode_chain: vec![],
        },
        Finding {
            class: "sqli".into(),
            rule_id: "SQLI-007".into(),
            score: 2,
            point: "header.cookie".into(),
            evidence: "union select".into(),
            decode_chain: vec![],
        },
    ];
    e.fingerprints
        .insert("ja4".into(), "t13d1516h2_8daaf6152771_b0da82dd1658".into());
    e.user_agent = Some("curl/8.5.0".into());
    e
}

fn alert(n: usize) -> Alert {
    Alert {
        id: format!("alert-{n}-{}", uuid_suffix()),
        ts: Timestamp::now(),
        node: "node-a".into(),
        trigger: "sqli-burst".into(),
        severity: "critical".into(),
        group_by: "client_ip".into(),
        key: format!("192.0.2.{n}"),
        count: 25,
        threshold: 20,
        window_s: 60,
        first_seen: Timestamp::now(),
        last_seen: Timestamp::now(),
        classes: vec!["sqli".into()],
        routes: vec!["api".into()],
        sample_event_ids: vec!["e1".into()],
        actions: vec!["ban 192.0.2.1 for 15m".into()],
        summary: "25 sqli events in 1m".into(),
    }
}

fn uuid_suffix() -> String {
    Event::new(EventKind::Request, Action::Block).id
}

fn records(events: &[Event]) -> Vec<Record> {
    events.iter().map(|e| Record::Event(Arc::new(e.clone()))).collect()
}

fn spec(server: &pg::PgServer, table: &str) -> PostgresSpec {
    PostgresSpec {
        url: Secret::new(server.url()),
        table: table.to_string(),
    }
}

async fn client(server: &pg::PgServer) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT COUNT(*) FROM \"{table}\""), &[])
        .await
        .unwrap()
        .get(0)
}

fn assert_transient(r: Result<(), SinkError>, what: &str) {
    match r {
        Err(SinkError::Transient(msg)) => eprintln!("{what}: transient as expected: {msg}"),
        other => panic!("{what}: expected a transient error, got {other:?}"),
    }
}

#[test]
fn postgres_sink_against_a_real_server() {
    let started = Instant::now();
    let Some(mut server) = pg::PgServer::start_or_skip("postgres_sink_against_a_real_server") else {
        return;
    };
    eprintln!("postgres up on port {} in {:?}", server.port(), started.elapsed());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sink = PostgresSink::new("fleet", &spec(&server, TABLE), Duration::from_secs(5)).unwrap();
    assert_eq!(sink.name(), "fleet");
    assert!(!sink.is_connected(), "new() must not connect");

    // 1. Schema on first delivery; a batch larger than the pipeline's default, with alerts, arrives whole.
    let first: Vec<Event> = (0..600).map(event).collect();
    let alerts = [alert(1), alert(2)];
    let mut odd = event(9999);
    // NUL characters (attack payloads carry them) are refused by PostgreSQL text and jsonb.
    odd.findings[0].evidence = "../../etc/passwd\0.png".into();
    odd.path = "/a\0b".into();
    rt.block_on(async {
        let mut batch = records(&first);
        batch.extend(alerts.iter().map(|a| Record::Alert(Arc::new(a.clone()))));
        batch.push(Record::Event(Arc::new(odd.clone())));
        sink.deliver(&batch).await.unwrap();
        assert!(sink.is_connected());

        let c = client(&server).await;
        let tables: Vec<String> = c
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(tables, vec![TABLE.to_string(), format!("{TABLE}_alerts")]);
        let indexes: Vec<String> = c
            .query(
                "SELECT indexname::text FROM pg_indexes WHERE tablename IN ($1, $2) ORDER BY 1",
                &[&TABLE, &format!("{TABLE}_alerts")],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for suffix in [
            "_ts",
            "_client_ts",
            "_route_ts",
            "_action_ts",
            "_classes",
            "_rule_ids",
            "_alerts_ts",
        ] {
            assert!(
                indexes.contains(&format!("{TABLE}{suffix}")),
                "missing {suffix} in {indexes:?}"
            );
        }
        let gin: String = c
            .query_one(
                "SELECT indexdef FROM pg_indexes WHERE indexname = $1",
                &[&format!("{TABLE}_classes")],
            )
            .await
            .unwrap()
            .get(0);
        assert!(gin.contains("USING gin"), "{gin}");

        assert_eq!(count(&c, TABLE).await, 601);
        assert_eq!(count(&c, &format!("{TABLE}_alerts")).await, 2);

        // Every row: the columns, and the jsonb equal to the record's JSON.
        let rows = c
            .query(
                &format!(
                    "SELECT id, ts, node, kind, request_id, client_ip, method, host, path, route, status, action, \
                     score, latency_us, classes, rule_ids, record::text FROM \"{TABLE}\""
                ),
                &[],
            )
            .await
            .unwrap();
        let by_id: std::collections::HashMap<&str, &Event> = first.iter().map(|e| (e.id.as_str(), e)).collect();
        for row in &rows {
            let id: String = row.get(0);
            if id == odd.id {
                continue;
            }
            let e = by_id[id.as_str()];
            let ts: SystemTime = row.get(1);
            assert_eq!(Timestamp::from(ts), e.ts);
            assert_eq!(row.get::<_, String>(2), e.node);
            assert_eq!(row.get::<_, String>(3), "request");
            assert_eq!(row.get::<_, String>(4), e.request_id);
            assert_eq!(row.get::<_, String>(5), e.client_ip);
            assert_eq!(row.get::<_, String>(6), e.method);
            assert_eq!(row.get::<_, String>(7), e.host);
            assert_eq!(row.get::<_, String>(8), e.path);
            assert_eq!(row.get::<_, String>(9), e.route);
            assert_eq!(row.get::<_, i32>(10), 403);
            assert_eq!(row.get::<_, String>(11), e.action.as_str());
            assert_eq!(row.get::<_, i32>(12), 12);
            assert_eq!(row.get::<_, i64>(13), e.latency_us as i64);
            assert_eq!(row.get::<_, Vec<String>>(14), vec!["sqli", "xss"]);
            assert_eq!(row.get::<_, Vec<String>>(15), vec!["SQLI-001", "XSS-004", "SQLI-007"]);
            let json: serde_json::Value = serde_json::from_str(&row.get::<_, String>(16)).unwrap();
            assert_eq!(json, Record::Event(Arc::new(e.clone())).to_json());
        }
        let odd_json: String = c
            .query_one(
                &format!("SELECT record::text FROM \"{TABLE}\" WHERE id = $1"),
                &[&odd.id],
            )
            .await
            .unwrap()
            .get(0);
        let odd_json: serde_json::Value = serde_json::from_str(&odd_json).unwrap();
        assert_eq!(odd_json["findings"][0]["evidence"], "../../etc/passwd\u{fffd}.png");
        assert_eq!(odd_json["path"], "/a\u{fffd}b");

        let alert_json: String = c
            .query_one(
                &format!("SELECT record::text FROM \"{TABLE}_alerts\" WHERE id = $1 AND \"key\" = $2 AND count = 25"),
                &[&alerts[0].id, &alerts[0].key],
            )
            .await
            .unwrap()
            .get(0);
        let alert_json: serde_json::Value = serde_json::from_str(&alert_json).unwrap();
        assert_eq!(alert_json, Record::Alert(Arc::new(alerts[0].clone())).to_json());

        // The class index answers array queries.
        let n: i64 = c
            .query_one(
                &format!("SELECT COUNT(*) FROM \"{TABLE}\" WHERE classes @> ARRAY['xss']"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 601);
    });

    // 2. A redelivered batch (and one grown by newer records) adds only what is new.
    let grown: Vec<Event> = first.iter().cloned().chain((600..610).map(event)).collect();
    rt.block_on(async {
        let mut batch = records(&first);
        batch.extend(alerts.iter().map(|a| Record::Alert(Arc::new(a.clone()))));
        sink.deliver(&batch).await.unwrap();
        sink.deliver(&records(&grown)).await.unwrap();
        let c = client(&server).await;
        assert_eq!(count(&c, TABLE).await, 611);
        assert_eq!(count(&c, &format!("{TABLE}_alerts")).await, 2);
    });

    // 3. The server crashes: transient errors, the connection dropped, no panic, no hang.
    let during: Vec<Event> = (700..720).map(event).collect();
    server.kill();
    rt.block_on(async {
        let t = Instant::now();
        assert_transient(sink.deliver(&records(&during)).await, "after the kill");
        assert!(!sink.is_connected());
        // Nothing listens now: connection refused, transient too.
        assert_transient(sink.deliver(&records(&during)).await, "while down");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    });

    // 4. Restarted on the same port: delivery resumes, the retried batch arrives once.
    server.restart().unwrap();
    rt.block_on(async {
        let mut retried = records(&during);
        retried.push(Record::Event(Arc::new(event(720))));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match sink.deliver(&retried).await {
                Ok(()) => break,
                // Right after the restart, crash recovery may still be running ("starting up").
                Err(SinkError::Transient(msg)) if Instant::now() < deadline => {
                    eprintln!("retrying after restart: {msg}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("delivery did not resume: {e:?}"),
            }
        }
        let c = client(&server).await;
        assert_eq!(count(&c, TABLE).await, 611 + 21);
    });

    // 5. A clean restart while the sink is idle: the closed connection is noticed and the next delivery
    //    reconnects at once instead of failing first.
    server.stop();
    server.restart().unwrap();
    rt.block_on(async {
        // The idle time in which the connection task sees the server's goodbye.
        tokio::time::sleep(Duration::from_millis(200)).await;
        sink.deliver(&records(&[event(750)])).await.unwrap();
        let c = client(&server).await;
        assert_eq!(count(&c, TABLE).await, 611 + 22);
    });

    // 6. A statement that cannot get its lock in time: the delivery times out (transient), then succeeds.
    rt.block_on(async {
        let mut quick = PostgresSink::new("quick", &spec(&server, TABLE), Duration::from_millis(500)).unwrap();
        quick.deliver(&records(&[event(800)])).await.unwrap();
        let mut c = client(&server).await;
        let tx = c.transaction().await.unwrap();
        tx.batch_execute(&format!("LOCK TABLE \"{TABLE}\" IN ACCESS EXCLUSIVE MODE"))
            .await
            .unwrap();
        let t = Instant::now();
        assert_transient(quick.deliver(&records(&[event(801)])).await, "locked table");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(!quick.is_connected());
        tx.rollback().await.unwrap();
        quick.deliver(&records(&[event(801)])).await.unwrap();
        assert_eq!(count(&c, TABLE).await, 611 + 22 + 2);
        quick.close().await;
    });

    // 7. The table dropped under a connected sink: transient, and the next delivery creates it again.
    rt.block_on(async {
        let c = client(&server).await;
        c.batch_execute(&format!("DROP TABLE \"{TABLE}\"")).await.unwrap();
        let again = records(&[event(900)]);
        assert_transient(sink.deliver(&again).await, "dropped table");
        sink.deliver(&again).await.unwrap();
        assert_eq!(count(&c, TABLE).await, 1);
    });

    // 8. Errors that a retry would repeat are permanent: a table of another shape, a wrong database.
    rt.block_on(async {
        let c = client(&server).await;
        c.batch_execute("CREATE TABLE other_shape (id integer PRIMARY KEY)")
            .await
            .unwrap();
        let mut bad = PostgresSink::new("bad", &spec(&server, "other_shape"), Duration::from_secs(5)).unwrap();
        let err = bad.deliver(&records(&[event(1)])).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        let mut missing_db = PostgresSink::new(
            "nodb",
            &PostgresSpec {
                url: Secret::new(format!("{} dbname=does_not_exist", server.url())),
                table: TABLE.into(),
            },
            Duration::from_secs(5),
        )
        .unwrap();
        let err = missing_db.deliver(&records(&[event(1)])).await.unwrap_err();
        assert!(
            err.is_permanent() && err.to_string().contains("does_not_exist"),
            "{err:?}"
        );
        // An empty batch does nothing, connected or not.
        missing_db.deliver(&[]).await.unwrap();
        sink.close().await;
        assert!(!sink.is_connected());
    });

    server.stop();
    eprintln!("postgres sink test took {:?}", started.elapsed());
}
