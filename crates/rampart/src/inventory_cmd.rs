//! `rampart openapi export` and `rampart openapi diff`: the API inventory the gateway learned from
//! traffic (inventory.db in the data directory), as an OpenAPI 3.1 document or against a spec.

use anyhow::Context;
use rampart_apispec::discovery::{self, Endpoint};
use rampart_apispec::store::InventoryStore;
use rampart_apispec::Contract;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct Source {
    pub db: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub host: Option<String>,
}

fn database(s: &Source) -> anyhow::Result<PathBuf> {
    if let Some(db) = &s.db {
        return Ok(db.clone());
    }
    let policy = match &s.config {
        Some(c) => rampart_policy::load_file(c).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => crate::serve::embedded_policy("127.0.0.1:0", "http://127.0.0.1:1", "127.0.0.1:0")?,
    };
    Ok(policy.data_dir.join("inventory.db"))
}

/// The endpoints of the chosen host, or of every host merged.
fn endpoints(s: &Source) -> anyhow::Result<(Vec<Endpoint>, String)> {
    let db = database(s)?;
    anyhow::ensure!(
        db.exists(),
        "no inventory at {}: discovery writes it while the gateway runs (see [discovery])",
        db.display()
    );
    let hosts = InventoryStore::open(&db)?.load()?;
    match &s.host {
        Some(h) => {
            let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
            let e = hosts
                .get(h)
                .cloned()
                .with_context(|| format!("no host {h} in the inventory (hosts: {})", known.join(", ")))?;
            Ok((e, h.clone()))
        }
        None => {
            let title = hosts.keys().cloned().collect::<Vec<_>>().join(", ");
            let all = hosts
                .into_values()
                .fold(Vec::new(), |acc, e| discovery::merge_endpoints(&acc, e));
            Ok((all, title))
        }
    }
}

pub fn export(s: &Source) -> ExitCode {
    match endpoints(s) {
        Ok((e, title)) => {
            let doc = discovery::export(&e, &format!("{title} (discovered)"));
            println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart openapi export: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn diff(s: &Source, spec: &Path, old: Option<&Path>, json: bool) -> ExitCode {
    let run = || -> anyhow::Result<()> {
        let (seen, _) = endpoints(s)?;
        let current = Contract::load(spec)?;
        let older = old.map(Contract::load).transpose()?;
        let d = discovery::diff(&seen, &current, older.as_ref());
        let deprecated: std::collections::BTreeSet<_> = current
            .operations()
            .filter(|o| o.deprecated)
            .map(|o| (o.method.clone(), discovery::shape(&o.template)))
            .collect();
        // The endpoint seen for a key, for its figures and risk.
        let base = current.base_paths().first().cloned().unwrap_or_default();
        let find = |k: &discovery::EndpointKey| {
            seen.iter().find(|e| {
                e.method == k.method
                    && discovery::shape(e.template.strip_prefix(base.as_str()).unwrap_or(&e.template)) == k.shape
            })
        };
        let row = |k: &discovery::EndpointKey, documented: bool| {
            let e = find(k);
            let risk = e.map_or(0, |e| {
                discovery::risk(e, documented, deprecated.contains(&(k.method.clone(), k.shape.clone())))
            });
            serde_json::json!({
                "method": k.method,
                "path": k.shape,
                "hits": e.map_or(0, |e| e.stats.hits),
                "last_seen": e.map(|e| e.stats.last_seen),
                "risk": risk,
                "sensitive": e.map(|e| e.stats.sensitive.keys().cloned().collect::<Vec<_>>()),
            })
        };
        let out = serde_json::json!({
            "shadow": d.shadow.iter().map(|k| row(k, false)).collect::<Vec<_>>(),
            "orphan": d.orphan.iter().map(|k| serde_json::json!({"method": k.method, "path": k.shape})).collect::<Vec<_>>(),
            "zombie": d.zombie.iter().map(|k| row(k, true)).collect::<Vec<_>>(),
        });
        if json {
            println!("{out}");
            return Ok(());
        }
        for (name, what) in [
            ("shadow", "called, in no spec"),
            ("zombie", "deprecated or removed, still called"),
            ("orphan", "in the spec, never called"),
        ] {
            let rows = out[name].as_array().expect("rows");
            println!("{name} ({what}): {}", rows.len());
            for r in rows {
                let method = r["method"].as_str().unwrap_or_default();
                let path = r["path"].as_str().unwrap_or_default();
                match r.get("risk") {
                    Some(risk) => println!("  {method:<7} {path}  hits {}  risk {risk}", r["hits"]),
                    None => println!("  {method:<7} {path}"),
                }
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart openapi diff: {e:#}");
            ExitCode::FAILURE
        }
    }
}
