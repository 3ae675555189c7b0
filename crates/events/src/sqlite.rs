//! The SQLite sink: the default store on a single node, read back by [`crate::store::EventStore`]
//! (`rampart events query` / `tail`, the console).
//!
//! SQLite calls block, so one dedicated thread per sink owns the write connection; [`SqliteSink::deliver`]
//! hands it the batch over a channel and awaits the answer, and the async runtime never waits on the disk.
//! The same thread runs the retention work (at open, then at most once a minute, in bounded steps that
//! interleave with deliveries), so an idle node still ages its events out.
//!
//! The file is in WAL mode (readers never block the writer nor the other way round), `synchronous=NORMAL`
//! (a power loss may lose the last transactions, never corrupt the file), `auto_vacuum=INCREMENTAL` (space
//! freed by retention is given back to the file system).
//!
//! Schema (version 1, in `PRAGMA user_version`; `PRAGMA application_id` marks the file as rampart's):
//! - `events`: one row per event; `seq` (AUTOINCREMENT, never reused) is the cursor of `tail -f`, `id` is
//!   unique so that a redelivered batch adds nothing; indexed columns for the console's filters, and `json`
//!   the whole record (`Record::to_json`).
//! - `findings`: one row per finding (`event_seq`, `ts_us`, `class`, `rule_id`, `point`) so that queries
//!   by class or rule are indexed; a trigger deletes them with their event. `class_first` / `rule_first`
//!   mark the first finding of each class / rule in its event: the partial indexes on them hold one entry
//!   per (event, class) in time order, so "the newest sqli events" reads the index backwards and stops at
//!   the limit, and counts per class need no DISTINCT.
//! - `alerts`: one row per alert, `json` the whole record.

use crate::event::Record;
use crate::sink::{EventSink, SinkError};
use rampart_policy::events::SqliteSpec;
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The schema this build writes and reads (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;
/// `PRAGMA application_id` of rampart's event databases: "RAMP".
pub(crate) const APPLICATION_ID: i64 = 0x5241_4d50;
/// How long a statement waits for a lock held by another connection before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Retention runs this often (and once at open).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// Time one retention step may take before the writer goes back to deliveries; the rest follows at once.
const MAINTENANCE_BUDGET: Duration = Duration::from_millis(250);
/// Rows deleted by one statement.
const DELETE_CHUNK: i64 = 2_000;
/// When the file is over `max_size`, the oldest events are deleted until it is under this share of it.
const SIZE_TARGET_PERCENT: u64 = 90;
/// The WAL file is truncated back to at most this after a checkpoint (bounded further by `max_size / 8`).
const WAL_SIZE_LIMIT: u64 = 64 << 20;

const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    ts_us      INTEGER NOT NULL,
    node       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    client_ip  TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    score      INTEGER NOT NULL,
    latency_us INTEGER NOT NULL,
    classes    TEXT    NOT NULL,
    rule_ids   TEXT    NOT NULL,
    json       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts        ON events (ts_us);
CREATE INDEX IF NOT EXISTS events_client_ts ON events (client_ip, ts_us);
CREATE INDEX IF NOT EXISTS events_route_ts  ON events (route, ts_us);
CREATE INDEX IF NOT EXISTS events_action_ts ON events (action, ts_us);

CREATE TABLE IF NOT EXISTS findings (
    event_seq   INTEGER NOT NULL,
    ts_us       INTEGER NOT NULL,
    class       TEXT    NOT NULL,
    rule_id     TEXT    NOT NULL,
    point       TEXT    NOT NULL,
    class_first INTEGER NOT NULL,
    rule_first  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_event    ON findings (event_seq);
CREATE INDEX IF NOT EXISTS findings_class_ts ON findings (class, ts_us, event_seq) WHERE class_first = 1;
CREATE INDEX IF NOT EXISTS findings_rule_ts  ON findings (rule_id, ts_us, event_seq) WHERE rule_first = 1;
CREATE TRIGGER IF NOT EXISTS events_delete_findings AFTER DELETE ON events
BEGIN
    DELETE FROM findings WHERE event_seq = old.seq;
END;

CREATE TABLE IF NOT EXISTS alerts (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    ts_us     INTEGER NOT NULL,
    node      TEXT    NOT NULL,
    "trigger" TEXT    NOT NULL,
    severity  TEXT    NOT NULL,
    group_by  TEXT    NOT NULL,
    "key"     TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    json      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts_us);
"#;

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (id, ts_us, node, kind, request_id, client_ip, method, host, \
     path, route, status, action, score, latency_us, classes, rule_ids, json) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
const INSERT_FINDING: &str = "INSERT INTO findings (event_seq, ts_us, class, rule_id, point, class_first, rule_first) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_ALERT: &str = "INSERT OR IGNORE INTO alerts (id, ts_us, node, \"trigger\", severity, group_by, \"key\", \
     count, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const DELETE_EXPIRED_EVENTS: &str =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_us < ?1 ORDER BY ts_us LIMIT ?2)";
const DELETE_EXPIRED_ALERTS: &str =
    "DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts WHERE ts_us < ?1 ORDER BY ts_us LIMIT ?2)";
const DELETE_OLDEST_EVENTS: &str =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY ts_us, seq LIMIT ?1)";

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Events older than the retention period.
    pub expired_events: u64,
    /// Alerts older than the retention period.
    pub expired_alerts: u64,
    /// The oldest events, deleted because the file had grown past `max_size`.
    pub evicted_events: u64,
    /// `page_count * page_size` before and after.
    pub size_before: u64,
    pub size_after: u64,
    /// The pass stopped at its time budget with work left (the writer goes on with it shortly).
    pub incomplete: bool,
}

impl RetentionReport {
    fn deleted_anything(&self) -> bool {
        self.expired_events + self.expired_alerts + self.evicted_events > 0
    }
}

enum Command {
    Deliver(Vec<Record>, oneshot::Sender<Result<(), SinkError>>),
    Retention(oneshot::Sender<Result<RetentionReport, SinkError>>),
    Close(oneshot::Sender<()>),
}

/// Writes events and alerts to a SQLite file. See the module documentation.
pub struct SqliteSink {
    name: String,
    spec: SqliteSpec,
    /// The writer thread; `None` after it stopped unexpectedly (it is started again on the next delivery)
    /// or after [`EventSink::close`].
    worker: Option<mpsc::Sender<Command>>,
    closed: bool,
}

impl std::fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSink")
            .field("name", &self.name)
            .field("path", &self.spec.path)
            .finish_non_exhaustive()
    }
}

impl SqliteSink {
    /// Opens (creating it, its parent directories and the schema if needed) the database at `spec.path`
    /// and starts the writer thread.
    ///
    /// This does file I/O on the calling thread (directory creation, schema setup: milliseconds): call it
    /// at startup or from `spawn_blocking`, not from a latency-sensitive task. Retention's first pass runs
    /// on the writer thread, not here.
    pub fn open(name: &str, spec: &SqliteSpec) -> Result<Self, SinkError> {
        let worker = Writer::open(name, spec)?.spawn()?;
        Ok(SqliteSink {
            name: name.to_string(),
            spec: spec.clone(),
            worker: Some(worker),
            closed: false,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    /// Runs retention now, to completion (not bounded by the per-step budget), and says what it deleted.
    /// The writer thread does this by itself once a minute; this is for tests and explicit pruning.
    pub async fn enforce_retention(&mut self) -> Result<RetentionReport, SinkError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Retention(tx)).await?;
        self.answer(rx).await?
    }

    /// The writer's channel, starting a new writer (off the async thread) if the previous one stopped.
    async fn worker(&mut self) -> Result<&mpsc::Sender<Command>, SinkError> {
        if self.closed {
            return Err(SinkError::permanent(format!("sqlite sink {}: closed", self.name)));
        }
        if self.worker.is_none() {
            let (name, spec) = (self.name.clone(), self.spec.clone());
            let worker = tokio::task::spawn_blocking(move || Writer::open(&name, &spec)?.spawn())
                .await
                .map_err(|e| SinkError::transient(format!("sqlite sink {}: reopening: {e}", self.name)))??;
            tracing::info!(sink = %self.name, path = %self.spec.path.display(), "sqlite writer restarted");
            self.worker = Some(worker);
        }
        Ok(self.worker.as_ref().expect("set above"))
    }

    async fn send(&mut self, cmd: Command) -> Result<(), SinkError> {
        let name = self.name.clone();
        if self.worker().await?.send(cmd).is_err() {
            self.worker = None;
            return Err(SinkError::transient(format!(
                "sqlite sink {name}: the writer thread stopped; it is restarted on the next delivery"
            )));
        }
        Ok(())
    }

    async fn answer<T>(&mut self, rx: oneshot::Receiver<T>) -> Result<T, SinkError> {
        match rx.await {
            Ok(v) => Ok(v),
            Err(_) => {
                self.worker = None;
                Err(SinkError::transient(format!(
                    "sqlite sink {}: the writer thread stopped; it is restarted on the next delivery",
                    self.name
                )))
            }
        }
    }
}

impl EventSink for SqliteSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Command::Deliver(batch.to_vec(), tx)).await?;
        // If this future is dropped here, the writer still commits the batch; a redelivery is ignored by id.
        self.answer(rx).await?
    }

    async fn close(&mut self) {
        self.closed = true;
        if let Some(worker) = self.worker.take() {
            let (tx, rx) = oneshot::channel();
            if worker.send(Command::Close(tx)).is_ok() {
                let _ = rx.await;
            }
        }
    }
}

/// The writer thread's state: the connection and the retention settings.
struct Writer {
    name: String,
    conn: Connection,
    path: PathBuf,
    retention: Duration,
    max_size: u64,
    /// Warned that the file is over `max_size` with no event left to delete (said once, not every minute).
    warned_full: bool,
}

impl Writer {
    fn open(name: &str, spec: &SqliteSpec) -> Result<Writer, SinkError> {
        let path = &spec.path;
        let ctx = |what: &str| format!("sqlite sink {name}: {what} {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError::permanent(format!("{}: {e}", ctx("cannot create the directory of"))))?;
        }
        create_private(path).map_err(|e| SinkError::permanent(format!("{}: {e}", ctx("cannot create"))))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(&ctx("cannot open"), e))?;
        init(&conn, spec.max_size).map_err(|e| match e {
            InitError::Sqlite(e) => classify(&ctx("cannot set up"), e),
            InitError::Refused(why) => SinkError::permanent(format!("{}: {why}", ctx("refusing to write to"))),
        })?;
        Ok(Writer {
            name: name.to_string(),
            conn,
            path: path.clone(),
            retention: spec.retention,
            max_size: spec.max_size,
            warned_full: false,
        })
    }

    fn spawn(self) -> Result<mpsc::Sender<Command>, SinkError> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("rampart-sqlite-{}", self.name))
            .spawn(move || self.run(rx))
            .map_err(|e| SinkError::transient(format!("sqlite sink: cannot start the writer thread: {e}")))?;
        Ok(tx)
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        // Retention once at open, then every MAINTENANCE_INTERVAL (sooner while a pass is incomplete).
        let mut next_maintenance = Instant::now();
        loop {
            if Instant::now() >= next_maintenance {
                next_maintenance = self.maintenance_step();
            }
            let wait = next_maintenance.saturating_duration_since(Instant::now());
            let cmd = match rx.recv_timeout(wait) {
                Ok(cmd) => cmd,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match cmd {
                Command::Deliver(batch, reply) => {
                    let res = self
                        .write(&batch)
                        .map_err(|e| classify(&format!("sqlite sink {}", self.name), e));
                    let _ = reply.send(res);
                }
                Command::Retention(reply) => {
                    let res = self
                        .retention(None)
                        .map_err(|e| classify(&format!("sqlite sink {} retention", self.name), e));
                    if let Ok(r) = &res {
                        self.log_retention(r);
                    }
                    let _ = reply.send(res);
                }
                Command::Close(reply) => {
                    self.close();
                    let _ = reply.send(());
                    return;
                }
            }
        }
        self.close();
    }

    fn close(self) {
        let _ = self.conn.execute_batch("PRAGMA optimize");
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(sink = %self.name, path = %self.path.display(), error = %e, "closing the event database");
        }
    }

    /// One bounded retention step; returns when the next one is due.
    fn maintenance_step(&mut self) -> Instant {
        match self.retention(Some(MAINTENANCE_BUDGET)) {
            Ok(r) => {
                self.log_retention(&r);
                if r.incomplete {
                    return Instant::now();
                }
                // Keeps the query planner's statistics fresh on a long-lived connection (cheap when nothing
                // changed much).
                if let Err(e) = self.conn.execute_batch("PRAGMA optimize") {
                    tracing::debug!(sink = %self.name, error = %e, "PRAGMA optimize");
                }
            }
            Err(e) => {
                tracing::warn!(sink = %self.name, path = %self.path.display(), error = %e, "event retention failed");
            }
        }
        Instant::now() + MAINTENANCE_INTERVAL
    }

    fn log_retention(&self, r: &RetentionReport) {
        if r.deleted_anything() {
            tracing::info!(
                sink = %self.name,
                expired_events = r.expired_events,
                expired_alerts = r.expired_alerts,
                evicted_events = r.evicted_events,
                size_before = r.size_before,
                size_after = r.size_after,
                incomplete = r.incomplete,
                "event retention"
            );
        }
    }

    /// One transaction for the whole batch; records already stored (same id) are skipped.
    fn write(&mut self, batch: &[Record]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
            let mut insert_finding = tx.prepare_cached(INSERT_FINDING)?;
            let mut insert_alert = tx.prepare_cached(INSERT_ALERT)?;
            for record in batch {
                let json = record.to_json().to_string();
                match record {
                    Record::Event(e) => {
                        let mut rule_ids: Vec<&str> = Vec::new();
                        for f in &e.findings {
                            if !rule_ids.contains(&f.rule_id.as_str()) {
                                rule_ids.push(&f.rule_id);
                            }
                        }
                        let inserted = insert_event.execute(params![
                            e.id,
                            e.ts.micros(),
                            e.node,
                            e.kind.as_str(),
                            e.request_id,
                            e.client_ip,
                            e.method,
                            e.host,
                            e.path,
                            e.route,
                            i64::from(e.status),
                            e.action.as_str(),
                            i64::from(e.score),
                            clamp_i64(e.latency_us),
                            e.classes().join(","),
                            rule_ids.join(","),
                            json,
                        ])?;
                        if inserted == 1 {
                            let seq = tx.last_insert_rowid();
                            for (i, f) in e.findings.iter().enumerate() {
                                let earlier = &e.findings[..i];
                                let class_first = !earlier.iter().any(|g| g.class == f.class);
                                let rule_first = !earlier.iter().any(|g| g.rule_id == f.rule_id);
                                insert_finding.execute(params![
                                    seq,
                                    e.ts.micros(),
                                    f.class,
                                    f.rule_id,
                                    f.point,
                                    class_first,
                                    rule_first
                                ])?;
                            }
                        }
                    }
                    Record::Alert(a) => {
                        insert_alert.execute(params![
                            a.id,
                            a.ts.micros(),
                            a.node,
                            a.trigger,
                            a.severity,
                            a.group_by,
                            a.key,
                            clamp_i64(a.count),
                            json,
                        ])?;
                    }
                }
            }
        }
        tx.commit()
    }

    /// Deletes what retention says must go. With a budget, stops when it is spent (`incomplete`).
    fn retention(&mut self, budget: Option<Duration>) -> rusqlite::Result<RetentionReport> {
        let deadline = budget.map(|b| Instant::now() + b);
        let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
        let mut r = RetentionReport {
            size_before: db_size(&self.conn)?,
            ..RetentionReport::default()
        };

        if !self.retention.is_zero() {
            let keep_us = i64::try_from(self.retention.as_micros()).unwrap_or(i64::MAX);
            let cutoff = crate::event::Timestamp::now().micros().saturating_sub(keep_us);
            for (sql, is_event) in [(DELETE_EXPIRED_EVENTS, true), (DELETE_EXPIRED_ALERTS, false)] {
                loop {
                    let n = self.conn.prepare_cached(sql)?.execute(params![cutoff, DELETE_CHUNK])?;
                    if is_event {
                        r.expired_events += n as u64;
                    } else {
                        r.expired_alerts += n as u64;
                    }
                    if (n as i64) < DELETE_CHUNK {
                        break;
                    }
                    if out_of_time() {
                        r.incomplete = true;
                        r.size_after = db_size(&self.conn)?;
                        return Ok(r);
                    }
                }
            }
            if r.expired_events + r.expired_alerts > 0 {
                incremental_vacuum(&self.conn)?;
            }
        }

        if self.max_size > 0 && db_size(&self.conn)? > self.max_size {
            let target = self.max_size / 100 * SIZE_TARGET_PERCENT;
            incremental_vacuum(&self.conn)?;
            let mut remaining: i64 = self
                .conn
                .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))?;
            loop {
                let size = db_size(&self.conn)?;
                if size <= target {
                    self.warned_full = false;
                    break;
                }
                if remaining == 0 {
                    if !self.warned_full {
                        tracing::warn!(
                            sink = %self.name,
                            path = %self.path.display(),
                            size,
                            max_size = self.max_size,
                            "the event database is over max_size with no event left to delete"
                        );
                        self.warned_full = true;
                    }
                    break;
                }
                if out_of_time() {
                    r.incomplete = true;
                    break;
                }
                // Estimate how many of the oldest events hold the excess; index pages only free up when
                // they empty, so the loop measures again and goes on until the file is small enough.
                let used = used_size(&self.conn)?;
                let per_event = (used / remaining as u64).max(1);
                let chunk = ((size - target) / per_event).clamp(100, 5 * DELETE_CHUNK as u64) as i64;
                let n = self
                    .conn
                    .prepare_cached(DELETE_OLDEST_EVENTS)?
                    .execute(params![chunk])?;
                r.evicted_events += n as u64;
                remaining -= n as i64;
                incremental_vacuum(&self.conn)?;
            }
        }

        if r.deleted_anything() {
            // Lets the file shrink now rather than at the next automatic checkpoint; never waits for readers.
            self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        r.size_after = db_size(&self.conn)?;
        Ok(r)
    }
}

/// Creates the database file readable by its owner and group only (events name clients and paths), unless
/// it exists. SQLite's -wal and -shm files take the same permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

enum InitError {
    Sqlite(rusqlite::Error),
    Refused(String),
}

impl From<rusqlite::Error> for InitError {
    fn from(e: rusqlite::Error) -> Self {
        InitError::Sqlite(e)
    }
}

/// Connection settings and the schema (created, or checked to be one this build knows).
fn init(conn: &Connection, max_size: u64) -> Result<(), InitError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(InitError::Refused(format!(
            "it was written by a newer rampart (schema version {version}; this build knows up to {SCHEMA_VERSION})"
        )));
    }
    if version == 0 {
        let tables: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Err(InitError::Refused(
                "it is a SQLite database that rampart did not create; give the sink another path".to_string(),
            ));
        }
        // Must be set before the first table exists.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    } else {
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if app != APPLICATION_ID {
            return Err(InitError::Refused("it is not a rampart event database".to_string()));
        }
    }
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "the event database could not switch to WAL mode (network file system?)");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let wal_limit = if max_size > 0 {
        (max_size / 8).clamp(1 << 20, WAL_SIZE_LIMIT)
    } else {
        WAL_SIZE_LIMIT
    };
    conn.pragma_update(None, "journal_size_limit", wal_limit as i64)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;

    // Two processes opening a new file at once: the IMMEDIATE transaction serialises them, and the second
    // sees the version the first wrote.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = (|| -> rusqlite::Result<()> {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 1 {
            conn.execute_batch(SCHEMA_V1)?;
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        // Later versions migrate here, one step at a time: `if version < 2 { ... }`.
        Ok(())
    })();
    match res {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

/// `page_count * page_size`: the size of the database (the file, once checkpointed).
fn db_size(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok((pages.max(0) as u64) * (page_size.max(0) as u64))
}

/// The size of the pages in use (not on the free list).
fn used_size(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok(((pages - free).max(0) as u64) * (page_size.max(0) as u64))
}

/// Gives the free pages back to the file system. The pragma frees one page per result row, so it is stepped
/// to the end (`execute_batch` would free one page).
fn incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Retrying helps unless the file is corrupt or not a database, or the record itself is refused.
fn classify(context: &str, e: rusqlite::Error) -> SinkError {
    use rusqlite::ErrorCode;
    let permanent = match &e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::TooBig
                | ErrorCode::TypeMismatch
                | ErrorCode::ApiMisuse
        ),
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::InvalidParameterCount(..) => true,
        _ => false,
    };
    let msg = format!("{context}: {e}");
    if permanent {
        SinkError::Permanent(msg)
    } else {
        SinkError::Transient(msg)
    }
}
