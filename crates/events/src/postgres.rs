//! The PostgreSQL sink: events from a fleet of nodes in one table, alerts in `<table>_alerts`.
//!
//! - No I/O in [`PostgresSink::new`]: the sink connects on its first delivery, and again after any
//!   connection-level failure, so that a database that is down at startup only delays delivery.
//! - On connect it creates what is missing (`CREATE TABLE/INDEX IF NOT EXISTS`, under an advisory lock so
//!   that nodes starting together do not race), then prepares its two insert statements.
//! - A batch is one transaction: one `INSERT ... SELECT FROM UNNEST(arrays) ON CONFLICT (id) DO NOTHING`
//!   per table, whatever the batch size (a redelivered batch adds nothing).
//! - Each delivery, connecting included, is bounded by the sink's timeout.
//! - Errors: connection, I/O, timeouts and server conditions that pass (shutdown, too many connections,
//!   serialization failures, the table dropped under us) are [`SinkError::Transient`] and drop the
//!   connection so that the next attempt reconnects; SQL errors that a retry would repeat (authentication,
//!   a table of another shape, refused data) are [`SinkError::Permanent`].
//! - PostgreSQL refuses NUL characters in text and jsonb; attack payloads carry them, so they are replaced by
//!   U+FFFD before insertion.
//!
//! TLS to PostgreSQL is not supported yet: the connection is plain TCP (or a Unix socket), so keep the
//! database on a trusted network; `sslmode=require` in the URL is refused when the sink is created.

use crate::event::Record;
use crate::sink::{EventSink, SinkError};
use rampart_policy::events::PostgresSpec;
use std::borrow::Cow;
use std::time::{Duration, SystemTime};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// Used when the sink is given a zero timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Joins the classes and rule ids of one event in the UNNEST arrays (split back by the server).
const LIST_SEPARATOR: char = '\u{1f}';

/// Writes events and alerts to PostgreSQL. See the module documentation.
pub struct PostgresSink {
    name: String,
    config: Config,
    table: String,
    timeout: Duration,
    conn: Option<PgConn>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: only the name and table are shown.
        f.debug_struct("PostgresSink")
            .field("name", &self.name)
            .field("table", &self.table)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

struct PgConn {
    client: Client,
    task: tokio::task::JoinHandle<()>,
    insert_events: Statement,
    insert_alerts: Statement,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A failed step: what was being done, and the driver's error.
struct Failure {
    stage: &'static str,
    error: tokio_postgres::Error,
}

fn at(stage: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Failure {
    move |error| Failure { stage, error }
}

impl PostgresSink {
    /// Checks the settings (connection string, table name); connects later, on the first delivery.
    /// `timeout` bounds each delivery, connecting included (zero: 5 s).
    pub fn new(name: &str, spec: &PostgresSpec, timeout: Duration) -> Result<Self, SinkError> {
        if !valid_table_name(&spec.table) {
            return Err(SinkError::permanent(format!(
                "postgres sink {name}: `{}` is not a usable table name (letters, digits and _, not starting \
                 with a digit, at most 48 characters)",
                spec.table
            )));
        }
        let mut config: Config = spec.url.expose().parse().map_err(|e: tokio_postgres::Error| {
            // Only the error, never the string: it may hold a password.
            SinkError::permanent(format!("postgres sink {name}: {}", describe(&e)))
        })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(SinkError::permanent(format!(
                "postgres sink {name}: sslmode=require, but TLS to PostgreSQL is not supported yet; use \
                 sslmode=disable on a trusted network"
            )));
        }
        let timeout = if timeout.is_zero() { DEFAULT_TIMEOUT } else { timeout };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("rampart");
        }
        Ok(PostgresSink {
            name: name.to_string(),
            config,
            table: spec.table.clone(),
            timeout,
            conn: None,
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether a connection is open (it is dropped after a transient error).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    async fn connect(&self) -> Result<PgConn, Failure> {
        let (mut client, connection) = self.config.connect(NoTls).await.map_err(at("connecting"))?;
        let name = self.name.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(sink = %name, error = %describe(&e), "postgres connection ended");
            }
        });
        // From here on, an early return drops `task` with the client: abort it explicitly.
        let res = async {
            let tx = client.transaction().await.map_err(at("creating the schema"))?;
            tx.batch_execute("SET LOCAL client_min_messages = warning")
                .await
                .map_err(at("creating the schema"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(&self.table)])
                .await
                .map_err(at("creating the schema"))?;
            tx.batch_execute(&schema_sql(&self.table))
                .await
                .map_err(at("creating the schema"))?;
            tx.commit().await.map_err(at("creating the schema"))?;
            let insert_events = client
                .prepare(&insert_events_sql(&self.table))
                .await
                .map_err(at("preparing the insert"))?;
            let insert_alerts = client
                .prepare(&insert_alerts_sql(&self.table))
                .await
                .map_err(at("preparing the insert"))?;
            Ok((insert_events, insert_alerts))
        }
        .await;
        match res {
            Ok((insert_events, insert_alerts)) => Ok(PgConn {
                client,
                task,
                insert_events,
                insert_alerts,
            }),
            Err(e) => {
                task.abort();
                Err(e)
            }
        }
    }

    async fn write(&mut self, events: &EventColumns, alerts: &AlertColumns) -> Result<(), Failure> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            // Closed while idle (server restart, idle timeout): reconnect now rather than fail this attempt.
            self.conn = None;
        }
        if self.conn.is_none() {
            let conn = self.connect().await?;
            tracing::debug!(sink = %self.name, table = %self.table, "postgres connected");
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let tx = conn.client.transaction().await.map_err(at("inserting"))?;
        if !events.id.is_empty() {
            tx.execute(&conn.insert_events, &events.params())
                .await
                .map_err(at("inserting events"))?;
        }
        if !alerts.id.is_empty() {
            tx.execute(&conn.insert_alerts, &alerts.params())
                .await
                .map_err(at("inserting alerts"))?;
        }
        tx.commit().await.map_err(at("committing"))
    }
}

impl EventSink for PostgresSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let mut events = EventColumns::default();
        let mut alerts = AlertColumns::default();
        for record in batch {
            match record {
                Record::Event(_) => events.push(record),
                Record::Alert(_) => alerts.push(record),
            }
        }
        if events.id.is_empty() && alerts.id.is_empty() {
            return Ok(());
        }
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.write(&events, &alerts)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => {
                let (err, reset) = classify(&self.name, &f);
                if reset {
                    self.conn = None;
                }
                Err(err)
            }
            Err(_) => {
                // The transaction may or may not have committed: the redelivery is ignored by id if it did.
                self.conn = None;
                Err(SinkError::transient(format!(
                    "postgres sink {}: no answer within {timeout:?}",
                    self.name
                )))
            }
        }
    }

    async fn close(&mut self) {
        self.conn = None;
    }
}

/// The error for the pipeline, and whether to drop the connection.
fn classify(name: &str, f: &Failure) -> (SinkError, bool) {
    let msg = format!("postgres sink {name}: {}: {}", f.stage, describe(&f.error));
    let Some(db) = f.error.as_db_error() else {
        // I/O, closed connection, timeouts, protocol errors: the connection is not to be trusted.
        return (SinkError::Transient(msg), true);
    };
    let code = db.code().code();
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        // Connection exceptions, operator intervention (shutdown, "starting up"), system errors.
        ("08" | "57" | "58", _) => (SinkError::Transient(msg), true),
        // The table disappeared: reconnecting creates it again.
        (_, "42P01") => (SinkError::Transient(msg), true),
        // Serialization failure, deadlock, insufficient resources (disk full, too many connections), lock
        // not available, internal errors.
        ("40" | "53" | "XX", _) | (_, "55P03" | "55006") => (SinkError::Transient(msg), false),
        // Authentication, missing database, privileges, a table of another shape, refused data.
        _ => (SinkError::Permanent(msg), false),
    }
}

/// The driver's error with its cause (its `Display` alone says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(": ");
            s.push_str(detail);
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The same rule as the policy compiler: letters, digits and _, not starting with a digit, at most 48 (so
/// that `<table>_alerts` and the index names stay under PostgreSQL's 63).
fn valid_table_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 48
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !t.as_bytes()[0].is_ascii_digit()
}

/// The advisory lock taken while creating the schema: a fixed prefix and the table name (FNV-1a).
fn lock_key(table: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "rampart-events:".bytes().chain(table.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

// Identifiers are quoted (the name is used as written, case included). The table name is checked by
// `valid_table_name`, so formatting it into DDL cannot inject anything; values always travel as parameters.

fn schema_sql(t: &str) -> String {
    format!(
        r#"
CREATE TABLE IF NOT EXISTS "{t}" (
    id         text        PRIMARY KEY,
    ts         timestamptz NOT NULL,
    node       text        NOT NULL,
    kind       text        NOT NULL,
    request_id text        NOT NULL,
    client_ip  text        NOT NULL,
    method     text        NOT NULL,
    host       text        NOT NULL,
    path       text        NOT NULL,
    route      text        NOT NULL,
    status     integer     NOT NULL,
    action     text        NOT NULL,
    score      integer     NOT NULL,
    latency_us bigint      NOT NULL,
    classes    text[]      NOT NULL,
    rule_ids   text[]      NOT NULL,
    record     jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS "{t}_ts"        ON "{t}" (ts);
CREATE INDEX IF NOT EXISTS "{t}_client_ts" ON "{t}" (client_ip, ts);
CREATE INDEX IF NOT EXISTS "{t}_route_ts"  ON "{t}" (route, ts);
CREATE INDEX IF NOT EXISTS "{t}_action_ts" ON "{t}" (action, ts);
CREATE INDEX IF NOT EXISTS "{t}_classes"   ON "{t}" USING gin (classes);
CREATE INDEX IF NOT EXISTS "{t}_rule_ids"  ON "{t}" USING gin (rule_ids);
CREATE TABLE IF NOT EXISTS "{t}_alerts" (
    id        text        PRIMARY KEY,
    ts        timestamptz NOT NULL,
    node      text        NOT NULL,
    "trigger" text        NOT NULL,
    severity  text        NOT NULL,
    group_by  text        NOT NULL,
    "key"     text        NOT NULL,
    count     bigint      NOT NULL,
    record    jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS "{t}_alerts_ts" ON "{t}_alerts" (ts);
"#
    )
}

fn insert_events_sql(t: &str) -> String {
    format!(
        r#"INSERT INTO "{t}" (id, ts, node, kind, request_id, client_ip, method, host, path, route, status,
    action, score, latency_us, classes, rule_ids, record)
SELECT id, ts, node, kind, request_id, client_ip, method, host, path, route, status, action, score, latency_us,
    string_to_array(classes, chr(31)), string_to_array(rule_ids, chr(31)), record::jsonb
FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::integer[], $12::text[], $13::integer[], $14::bigint[],
    $15::text[], $16::text[], $17::text[])
    AS u(id, ts, node, kind, request_id, client_ip, method, host, path, route, status, action, score,
    latency_us, classes, rule_ids, record)
ON CONFLICT (id) DO NOTHING"#
    )
}

fn insert_alerts_sql(t: &str) -> String {
    format!(
        r#"INSERT INTO "{t}_alerts" (id, ts, node, "trigger", severity, group_by, "key", count, record)
SELECT id, ts, node, "trigger", severity, group_by, "key", count, record::jsonb
FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::bigint[], $9::text[])
    AS u(id, ts, node, "trigger", severity, group_by, "key", count, record)
ON CONFLICT (id) DO NOTHING"#
    )
}

/// Text without NUL characters (which PostgreSQL refuses in text and jsonb).
fn pg_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_string()
    }
}

/// The record's JSON without NUL characters in any string or key.
fn pg_json(record: &Record) -> String {
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
            serde_json::Value::Array(a) => a.iter_mut().for_each(clean),
            serde_json::Value::Object(m) => {
                if m.keys().any(|k| k.contains('\0')) {
                    let old = std::mem::take(m);
                    for (k, mut v) in old {
                        clean(&mut v);
                        m.insert(k.replace('\0', "\u{fffd}"), v);
                    }
                } else {
                    m.values_mut().for_each(clean);
                }
            }
            _ => {}
        }
    }
    let mut v = record.to_json();
    clean(&mut v);
    v.to_string()
}

/// A list of names for one array cell, split back into text[] by the server.
fn pg_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        if seen.contains(&item) {
            continue;
        }
        seen.push(item);
        if !out.is_empty() {
            out.push(LIST_SEPARATOR);
        }
        let item: Cow<str> = if item.contains(['\0', LIST_SEPARATOR]) {
            Cow::Owned(item.replace(['\0', LIST_SEPARATOR], "\u{fffd}"))
        } else {
            Cow::Borrowed(item)
        };
        out.push_str(&item);
    }
    out
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The events of a batch, one array per column.
#[derive(Default)]
struct EventColumns {
    id: Vec<String>,
    ts: Vec<SystemTime>,
    node: Vec<String>,
    kind: Vec<String>,
    request_id: Vec<String>,
    client_ip: Vec<String>,
    method: Vec<String>,
    host: Vec<String>,
    path: Vec<String>,
    route: Vec<String>,
    status: Vec<i32>,
    action: Vec<String>,
    score: Vec<i32>,
    latency_us: Vec<i64>,
    classes: Vec<String>,
    rule_ids: Vec<String>,
    record: Vec<String>,
}

impl EventColumns {
    fn push(&mut self, record: &Record) {
        let Record::Event(e) = record else { return };
        self.id.push(pg_text(&e.id));
        self.ts.push(e.ts.to_system_time());
        self.node.push(pg_text(&e.node));
        self.kind.push(e.kind.as_str().to_string());
        self.request_id.push(pg_text(&e.request_id));
        self.client_ip.push(pg_text(&e.client_ip));
        self.method.push(pg_text(&e.method));
        self.host.push(pg_text(&e.host));
        self.path.push(pg_text(&e.path));
        self.route.push(pg_text(&e.route));
        self.status.push(i32::from(e.status));
        self.action.push(e.action.as_str().to_string());
        self.score.push(clamp_i32(e.score));
        self.latency_us.push(clamp_i64(e.latency_us));
        self.classes.push(pg_list(e.findings.iter().map(|f| f.class.as_str())));
        self.rule_ids
            .push(pg_list(e.findings.iter().map(|f| f.rule_id.as_str())));
        self.record.push(pg_json(record));
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        [
            &self.id,
            &self.ts,
            &self.node,
            &self.kind,
            &self.request_id,
            &self.client_ip,
            &self.method,
            &self.host,
            &self.path,
            &self.route,
            &self.status,
            &self.action,
            &self.score,
            &self.latency_us,
            &self.classes,
            &self.rule_ids,
            &self.record,
        ]
    }
}

/// The alerts of a batch, one array per column.
#[derive(Default)]
struct AlertColumns {
    id: Vec<String>,
    ts: Vec<SystemTime>,
    node: Vec<String>,
    trigger: Vec<String>,
    severity: Vec<String>,
    group_by: Vec<String>,
    key: Vec<String>,
    count: Vec<i64>,
    record: Vec<String>,
}

impl AlertColumns {
    fn push(&mut self, record: &Record) {
        let Record::Alert(a) = record else { return };
        self.id.push(pg_text(&a.id));
        self.ts.push(a.ts.to_system_time());
        self.node.push(pg_text(&a.node));
        self.trigger.push(pg_text(&a.trigger));
        self.severity.push(pg_text(&a.severity));
        self.group_by.push(pg_text(&a.group_by));
        self.key.push(pg_text(&a.key));
        self.count.push(clamp_i64(a.count));
        self.record.push(pg_json(record));
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.id,
            &self.ts,
            &self.node,
            &self.trigger,
            &self.severity,
            &self.group_by,
            &self.key,
            &self.count,
            &self.record,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(valid_table_name("rampart_events"));
        assert!(valid_table_name("Events2"));
        assert!(!valid_table_name(""));
        assert!(!valid_table_name("2events"));
        assert!(!valid_table_name("events; drop table x"));
        assert!(!valid_table_name("ev\"ents"));
        assert!(!valid_table_name(&"a".repeat(49)));
    }

    #[test]
    fn lists_drop_duplicates_and_separators() {
        let l = pg_list(["sqli", "xss", "sqli", "a\u{1f}b\0"].into_iter());
        assert_eq!(l, "sqli\u{1f}xss\u{1f}a\u{fffd}b\u{fffd}");
        assert_eq!(pg_list(std::iter::empty()), "");
    }

    #[test]
    fn new_refuses_bad_settings_without_io() {
        let spec = |url: &str, table: &str| PostgresSpec {
            url: rampart_policy::events::Secret::new(url),
            table: table.to_string(),
        };
        let e = PostgresSink::new("pg", &spec("host=localhost", "bad-name"), Duration::from_secs(1)).unwrap_err();
        assert!(e.is_permanent());
        let e = PostgresSink::new(
            "pg",
            &spec("host=localhost sslmode=require", "t"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.is_permanent() && e.to_string().contains("TLS"), "{e}");
        let e = PostgresSink::new(
            "pg",
            &spec("postgres://u:hunter2@localhost:notaport/db", "t"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.is_permanent());
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let s = PostgresSink::new("pg", &spec("postgres://u:hunter2@localhost/db", "t"), Duration::ZERO).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert!(!s.is_connected());
    }
}
