//! `rampart events query` and `rampart events tail`: read the SQLite event store from the command line.

use anyhow::Context;
use rampart_events::store::{EventStore, Query};
use rampart_events::{Alert, Event, Timestamp};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// Where the events database is: `--db`, else the config's first SQLite sink, else the default data dir.
pub fn database(db: Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(db) = db {
        return Ok(db);
    }
    let policy = match config {
        Some(c) => rampart_policy::load_file(c).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => crate::serve::embedded_policy("127.0.0.1:0", "http://127.0.0.1:1", "127.0.0.1:0")?,
    };
    policy
        .events
        .sinks
        .iter()
        .find_map(|s| match &s.kind {
            rampart_policy::events::SinkKind::Sqlite(sq) => Some(sq.path.clone()),
            _ => None,
        })
        .context("the config has no sqlite sink; pass --db FILE")
}

/// `--since 1h` (a duration back from now) or an RFC 3339 time.
pub fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(Timestamp::from(SystemTime::now() - d));
    }
    Timestamp::parse_rfc3339(s)
        .map_err(|_| anyhow::anyhow!("`{s}` is neither a duration (15m, 2h, 7d) nor an RFC 3339 time"))
}

pub struct QueryArgs {
    pub db: PathBuf,
    pub since: Option<String>,
    pub until: Option<String>,
    pub action: Option<String>,
    pub route: Option<String>,
    pub ip: Option<String>,
    pub class: Option<String>,
    pub rule: Option<String>,
    pub limit: usize,
    pub alerts: bool,
    pub json: bool,
}

pub fn query(a: QueryArgs) -> ExitCode {
    match run_query(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart events query: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_query(a: QueryArgs) -> anyhow::Result<()> {
    let store = EventStore::open(&a.db).with_context(|| format!("events database {}", a.db.display()))?;
    let since = a.since.as_deref().map(parse_time).transpose()?;
    if a.alerts {
        let alerts = store.alerts(since, a.limit)?;
        for al in alerts.iter().rev() {
            print_alert(al, a.json);
        }
        if !a.json {
            eprintln!("{} alert{}", alerts.len(), if alerts.len() == 1 { "" } else { "s" });
        }
        return Ok(());
    }
    let q = Query {
        since,
        until: a.until.as_deref().map(parse_time).transpose()?,
        action: a.action,
        route: a.route,
        client_ip: a.ip,
        class: a.class.map(|c| c.to_ascii_lowercase()),
        rule_id: a.rule,
        limit: a.limit,
    };
    let events = store.events(&q)?;
    // Oldest first, like a log.
    for e in events.iter().rev() {
        print_event(e, a.json);
    }
    if !a.json {
        eprintln!("{} event{}", events.len(), if events.len() == 1 { "" } else { "s" });
    }
    Ok(())
}

pub fn tail(db: PathBuf, lines: usize, follow: bool, json: bool) -> ExitCode {
    match run_tail(&db, lines, follow, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart events tail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_tail(db: &Path, lines: usize, follow: bool, json: bool) -> anyhow::Result<()> {
    let store = EventStore::open(db).with_context(|| format!("events database {}", db.display()))?;
    // The cursor is taken first so that nothing recorded meanwhile is missed; what the first page and the
    // follow loop both see is printed once.
    let mut cursor = store.last_cursor()?;
    let last = if lines == 0 {
        Vec::new()
    } else {
        store.events(&Query {
            limit: lines,
            ..Query::default()
        })?
    };
    for e in last.iter().rev() {
        print_event(e, json);
    }
    if !follow {
        return Ok(());
    }
    let printed: std::collections::HashSet<String> = last.into_iter().map(|e| e.id).collect();
    loop {
        let (batch, next) = store.events_after(cursor, 500)?;
        cursor = next;
        for e in batch.iter().filter(|e| !printed.contains(&e.id)) {
            print_event(e, json);
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn print_event(e: &Event, json: bool) {
    if json {
        match serde_json::to_string(e) {
            Ok(s) => println!("{s}"),
            Err(err) => eprintln!("cannot print event {}: {err}", e.id),
        }
        return;
    }
    let findings: Vec<String> = e
        .findings
        .iter()
        .map(|f| format!("{}:{}@{}", f.class, f.rule_id, f.point))
        .collect();
    println!(
        "{}  {:<7} {:>3}  {:<15}  {} {}{}  route={}  score={}  {}{}",
        e.ts.rfc3339(),
        e.action.as_str(),
        e.status,
        e.client_ip,
        if e.method.is_empty() { "-" } else { &e.method },
        e.host,
        if e.path.is_empty() { "" } else { &e.path },
        if e.route.is_empty() { "-" } else { &e.route },
        e.score,
        findings.join(" "),
        e.reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default(),
    );
}

fn print_alert(a: &Alert, json: bool) {
    if json {
        match serde_json::to_string(a) {
            Ok(s) => println!("{s}"),
            Err(err) => eprintln!("cannot print alert {}: {err}", a.id),
        }
        return;
    }
    println!(
        "{}  {:<8}  {}  [{}]",
        a.ts.rfc3339(),
        a.severity,
        a.summary,
        a.actions.join("; ")
    );
}
