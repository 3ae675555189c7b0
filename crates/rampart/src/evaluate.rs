//! `rampart eval` and `rampart explain`: the proxy's request stage, in process, over corpora or one raw
//! request.
//!
//! Both build the same [`Runtime`](rampart_proxy::Runtime) the gateway serves from (policy, detection per
//! route) and ask [`rampart_proxy::verdict::decide`] for each request: framing checks, route lookup, body
//! limits, detection and mode, exactly as the live request stage applies them. A record that the HTTP
//! parser would refuse counts as blocked, as the proxy answers it with 400.

use anyhow::Context;
use rampart_detect::corpus::{self, Prepared, Record};
use rampart_detect::eval::Outcome;
use rampart_proxy::verdict::{decide, Decision};
use rampart_proxy::{Runtime, Shared};
use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn runtime(config: Option<&Path>) -> anyhow::Result<Arc<Runtime>> {
    let policy = match config {
        Some(path) => rampart_policy::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => crate::serve::embedded_policy("127.0.0.1:0", "http://127.0.0.1:9", "127.0.0.1:0")?,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = rampart_proxy::metrics::Metrics::new(&mut registry);
    let shared = Shared::new(policy, metrics, Arc::new(crate::detection::DetectionFactory))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(shared.load())
}

fn parts_of(req: &corpus::OwnedRequest, version: http::Version) -> http::request::Parts {
    let mut r = http::Request::new(());
    *r.method_mut() = req.method.clone();
    *r.uri_mut() = req.uri.clone();
    *r.headers_mut() = req.headers.clone();
    *r.version_mut() = version;
    r.into_parts().0
}

/// A record labelled HTTP/2 is evaluated as the HTTP/2 request it describes (what the proxy sees from an
/// h2 client). replay.py can only send it as an HTTP/1 request line with that version, which the proxy
/// answers 505 (a version it does not speak that way), not a block: both count it as passed.
fn version_of(text: &str) -> http::Version {
    match text {
        "HTTP/1.0" => http::Version::HTTP_10,
        "HTTP/2" | "HTTP/2.0" => http::Version::HTTP_2,
        _ => http::Version::HTTP_11,
    }
}

/// A record as the connection layer sees it: exact bytes go through the same raw-head checks as a live
/// connection (bare LF, framing headers hyper would normalise) before they are parsed. The status is the
/// one a refusal is answered with.
fn prepare(record: &Record) -> (Prepared, u16) {
    if let Some(raw) = record.raw_b64.as_deref() {
        use base64::Engine;
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw.trim()) {
            return prepare_raw(&bytes);
        }
    }
    (corpus::prepare(record), 400)
}

fn prepare_raw(bytes: &[u8]) -> (Prepared, u16) {
    match rampart_proxy::framing::check_raw_request(bytes) {
        Some(reject) => (
            Prepared::Rejected(reject.reason().to_string()),
            reject.status().as_u16(),
        ),
        None => (corpus::parse_raw(bytes), 400),
    }
}

fn decide_prepared(
    rt: &Runtime,
    (prepared, status): (Prepared, u16),
    version: http::Version,
) -> (Decision, Option<String>) {
    match prepared {
        Prepared::Rejected(why) => (
            Decision::Reject {
                reason: "malformed",
                status,
            },
            Some(why),
        ),
        Prepared::Request(req) => (decide(rt, &parts_of(&req, version), &req.body, CLIENT), None),
    }
}

fn outcome_of(rt: &Runtime, decision: Decision, rejected: Option<String>) -> Outcome {
    let blocked = decision.status(rt).is_some_and(|s| (400..500).contains(&s));
    let rejected = rejected.or_else(|| match &decision {
        Decision::Reject { reason, .. } => Some((*reason).to_string()),
        Decision::TooLarge => Some("body too large".into()),
        _ => None,
    });
    Outcome {
        index: 0,
        blocked,
        rejected,
        analysis: None,
    }
}

pub fn eval(config: Option<PathBuf>, json: bool, misses: Option<PathBuf>, corpora: Vec<PathBuf>) -> ExitCode {
    match eval_inner(config, json, misses, corpora) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart eval: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn eval_inner(
    config: Option<PathBuf>,
    json: bool,
    misses: Option<PathBuf>,
    corpora: Vec<PathBuf>,
) -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _guard = tokio.enter();
    let rt = runtime(config.as_deref())?;
    let mut records: Vec<Record> = Vec::new();
    for path in &corpora {
        records.extend(corpus::load(path).with_context(|| format!("reading {}", path.display()))?);
    }
    let terminal = std::io::stderr().is_terminal();
    let report = rampart_detect::eval::evaluate_by(
        &records,
        |done, total| {
            if terminal {
                let width = 40;
                let filled = done * width / total.max(1);
                eprint!(
                    "\r[{}{}] {done}/{total}",
                    "#".repeat(filled),
                    " ".repeat(width - filled)
                );
            }
        },
        |record| {
            let (decision, rejected) = decide_prepared(
                &rt,
                prepare(record),
                version_of(record.http_version.as_deref().unwrap_or("HTTP/1.1")),
            );
            outcome_of(&rt, decision, rejected)
        },
    );
    if terminal {
        eprintln!();
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.render_table());
    }
    if let Some(path) = misses {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        let n = report.write_misses(&records, &mut f)?;
        f.flush()?;
        eprintln!("{n} misses written to {}", path.display());
    }
    Ok(())
}

pub fn explain(config: Option<PathBuf>, file: Option<PathBuf>, json: bool) -> ExitCode {
    match explain_inner(config, file, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart explain: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn explain_inner(config: Option<PathBuf>, file: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _guard = tokio.enter();
    let rt = runtime(config.as_deref())?;
    let mut raw = Vec::new();
    match file.as_deref() {
        Some(p) if p != Path::new("-") => {
            raw = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        _ => {
            std::io::stdin().read_to_end(&mut raw)?;
        }
    }
    let raw = rampart_detect::eval::normalize_typed_request(&raw);
    let version = if raw.windows(8).take(4096).any(|w| w == b"HTTP/1.0") {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    };
    let (decision, rejected) = decide_prepared(&rt, prepare_raw(&raw), version);
    if json {
        let mut v = serde_json::to_value(&decision)?;
        v["status"] = serde_json::json!(decision.status(&rt));
        if let Some(r) = rejected {
            v["rejected"] = serde_json::json!(r);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let status = decision
        .status(&rt)
        .map_or("forwarded upstream".to_string(), |s| format!("answered {s}"));
    let (label, route, inspection) = match &decision {
        Decision::Reject { reason, .. } => {
            println!("verdict: REJECT ({status}): {}", rejected.as_deref().unwrap_or(reason));
            return Ok(());
        }
        Decision::NoRoute => {
            println!("verdict: NO ROUTE ({status})");
            return Ok(());
        }
        Decision::ServerOptions => {
            println!("verdict: SERVER OPTIONS ({status}): OPTIONS * is answered by the gateway");
            return Ok(());
        }
        Decision::TooLarge => {
            println!("verdict: TOO LARGE ({status})");
            return Ok(());
        }
        Decision::Block { route, inspection } => ("BLOCK", route, Some(inspection)),
        Decision::Monitor { route, inspection } => ("MONITOR (would block)", route, Some(inspection)),
        Decision::Pass { route, inspection } => ("PASS", route, inspection.as_ref()),
    };
    let score = inspection.map_or(0, |i| i.score);
    println!("verdict: {label} ({status}), route {route}, score {score}");
    match inspection {
        Some(i) if !i.findings.is_empty() => {
            for f in &i.findings {
                let chain = if f.decode_chain.is_empty() {
                    "-".to_string()
                } else {
                    f.decode_chain.join(" > ")
                };
                println!("  [{}] {} score {}", f.class, f.rule_id, f.score);
                println!("    point:    {}", f.point);
                println!("    decoded:  {chain}");
                println!("    evidence: {}", f.evidence);
            }
        }
        Some(_) => println!("  no findings"),
        None => println!("  route mode is off: not inspected"),
    }
    Ok(())
}
