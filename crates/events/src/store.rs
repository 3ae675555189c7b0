//! Reading events back from the SQLite sink's file: `rampart events query` / `tail`, and the console.
//!
//! [`EventStore`] opens the file read-only; in WAL mode it reads while the gateway writes, and sees each
//! delivered batch whole or not at all. The API is synchronous (rusqlite): from async code, call it from
//! `spawn_blocking`.
//!
//! Times are half-open ranges: `since <= ts < until`. Results are newest first except for the tail cursor
//! ([`EventStore::events_after`]), which goes forward in the order events were stored.

use crate::event::{Alert, Event, Timestamp};
use crate::sqlite::{APPLICATION_ID, BUSY_TIMEOUT, SCHEMA_VERSION};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no event database at {}: nothing has been recorded there yet, or the sqlite sink writes elsewhere \
         (see [[events.sinks]] in the config)",
        path.display()
    )]
    NotFound { path: PathBuf },
    #[error("{}: not a rampart event database", path.display())]
    NotAnEventStore { path: PathBuf },
    #[error(
        "{}: written by a newer rampart (schema version {found}; this build reads up to {supported})",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("event database {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("event database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// Which events [`EventStore::events`] returns. Filters combine with "and"; `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Events at or after this time.
    pub since: Option<Timestamp>,
    /// Events before this time.
    pub until: Option<Timestamp>,
    /// `block`, `monitor`, `reject`, `ban`, `limit`, `challenge`.
    pub action: Option<String>,
    pub route: Option<String>,
    pub client_ip: Option<String>,
    /// Events with at least one finding of this class (exact match; classes are lower case).
    pub class: Option<String>,
    /// Events with at least one finding of this rule.
    pub rule_id: Option<String>,
    /// At most this many events, the newest; 0 means no limit.
    pub limit: usize,
}

impl Default for Query {
    /// Everything, the 100 newest.
    fn default() -> Self {
        Query {
            since: None,
            until: None,
            action: None,
            route: None,
            client_ip: None,
            class: None,
            rule_id: None,
            limit: 100,
        }
    }
}

/// A read-only view of an event database written by [`crate::sqlite::SqliteSink`].
pub struct EventStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Opens the database at `path` read-only. Fails with [`StoreError::NotFound`] when there is no file,
    /// and refuses files that are not rampart event databases or are of a newer schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(StoreError::NotAnEventStore { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound { path }),
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let store = EventStore { conn, path };
        store.conn.busy_timeout(BUSY_TIMEOUT).map_err(store.err())?;
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                    StoreError::NotAnEventStore {
                        path: store.path.clone(),
                    }
                }
                e => store.err()(e),
            })?;
        let app: i64 = store
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(store.err())?;
        if version == 0 || app != APPLICATION_ID {
            return Err(StoreError::NotAnEventStore { path: store.path });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: store.path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The events matching `q`, newest first.
    pub fn events(&self, q: &Query) -> Result<Vec<Event>, StoreError> {
        let mut sql = String::new();
        let mut args: Vec<Value> = Vec::new();
        // With a class or rule filter, the query walks that finding index backwards in time (one entry per
        // event: see the `*_first` columns) and stops at the limit; otherwise the events table's indexes.
        let (driver, ts, order) = match (&q.class, &q.rule_id) {
            (Some(class), _) => {
                args.push(Value::Text(class.clone()));
                (
                    "f.class = ? AND f.class_first = 1",
                    "f.ts_us",
                    "f.ts_us DESC, f.event_seq DESC",
                )
            }
            (None, Some(rule)) => {
                args.push(Value::Text(rule.clone()));
                (
                    "f.rule_id = ? AND f.rule_first = 1",
                    "f.ts_us",
                    "f.ts_us DESC, f.event_seq DESC",
                )
            }
            (None, None) => ("1 = 1", "e.ts_us", "e.ts_us DESC, e.seq DESC"),
        };
        if q.class.is_some() || q.rule_id.is_some() {
            sql.push_str("SELECT e.seq, e.id, e.json FROM findings f JOIN events e ON e.seq = f.event_seq WHERE ");
        } else {
            sql.push_str("SELECT e.seq, e.id, e.json FROM events e WHERE ");
        }
        sql.push_str(driver);
        if let Some(since) = q.since {
            sql.push_str(&format!(" AND {ts} >= ?"));
            args.push(Value::Integer(since.micros()));
        }
        if let Some(until) = q.until {
            sql.push_str(&format!(" AND {ts} < ?"));
            args.push(Value::Integer(until.micros()));
        }
        for (column, value) in [
            ("e.action", &q.action),
            ("e.route", &q.route),
            ("e.client_ip", &q.client_ip),
        ] {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(Value::Text(v.clone()));
            }
        }
        if let (Some(_), Some(rule)) = (&q.class, &q.rule_id) {
            sql.push_str(" AND EXISTS (SELECT 1 FROM findings r WHERE r.event_seq = e.seq AND r.rule_id = ?)");
            args.push(Value::Text(rule.clone()));
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
        args.push(Value::Integer(sql_limit(q.limit)));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (_, id, json) = row.map_err(self.err())?;
            if let Some(e) = self.parse::<Event>("event", &id, &json) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// One event by id.
    pub fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        let json: Option<String> = self
            .conn
            .prepare_cached("SELECT json FROM events WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .map_err(self.err())?;
        Ok(json.and_then(|j| self.parse::<Event>("event", id, &j)))
    }

    /// Alerts at or after `since`, newest first; `limit` 0 means no limit.
    pub fn alerts(&self, since: Option<Timestamp>, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, json FROM alerts WHERE ts_us >= ?1 ORDER BY ts_us DESC, seq DESC LIMIT ?2")
            .map_err(self.err())?;
        let since = since.map_or(i64::MIN, Timestamp::micros);
        let rows = stmt
            .query_map(params![since, sql_limit(limit)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(self.err())?;
            if let Some(a) = self.parse::<Alert>("alert", &id, &json) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// For `tail -f`: up to `limit` events stored after `cursor`, oldest first, and the cursor to pass next
    /// time (unchanged when there is nothing new). Start from [`EventStore::last_cursor`] to see only new
    /// events, or from 0 to read everything. Cursors only grow: retention never makes one reused.
    pub fn events_after(&self, cursor: i64, limit: usize) -> Result<(Vec<Event>, i64), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, id, json FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![cursor, sql_limit(limit)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        let mut next = cursor;
        for row in rows {
            let (seq, id, json) = row.map_err(self.err())?;
            next = seq;
            if let Some(e) = self.parse::<Event>("event", &id, &json) {
                out.push(e);
            }
        }
        Ok((out, next))
    }

    /// The cursor of the newest event stored so far (0 when none ever was).
    pub fn last_cursor(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), \
                 COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Events per finding class at or after `since` (an event with two findings of one class counts once),
    /// most frequent first.
    pub fn counts_by_class(&self, since: Option<Timestamp>) -> Result<Vec<(String, u64)>, StoreError> {
        self.counts(
            "SELECT class, COUNT(*) AS n FROM findings WHERE class_first = 1 AND ts_us >= ?1 \
             GROUP BY class ORDER BY n DESC, class LIMIT ?2",
            since,
            0,
        )
    }

    /// The `n` client addresses with the most events at or after `since`, most first.
    pub fn top_clients(&self, since: Option<Timestamp>, n: usize) -> Result<Vec<(String, u64)>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.counts(
            "SELECT client_ip, COUNT(*) AS n FROM events WHERE ts_us >= ?1 \
             GROUP BY client_ip ORDER BY n DESC, client_ip LIMIT ?2",
            since,
            n,
        )
    }

    fn counts(&self, sql: &str, since: Option<Timestamp>, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        let since = since.map_or(i64::MIN, Timestamp::micros);
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params![since, sql_limit(limit)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// A stored record that no longer parses (hand-edited file, a bug) is skipped with a warning rather than
    /// failing every query that touches it.
    fn parse<T: serde::de::DeserializeOwned>(&self, what: &str, id: &str, json: &str) -> Option<T> {
        match serde_json::from_str(json) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), id, error = %e, "skipping an unreadable stored {what}");
                None
            }
        }
    }
}

/// SQLite's LIMIT: a negative value means none.
fn sql_limit(limit: usize) -> i64 {
    if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }
}
