//! Measure the detector over corpora:
//! `cargo run --release -p rampart-detect --example eval -- [--misses FILE] [--json] CORPUS.jsonl...`
use std::path::PathBuf;

use rampart_detect::{corpus, eval, DetectionConfig, Detector};

fn main() {
    let mut files = Vec::new();
    let mut misses: Option<PathBuf> = None;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--misses" => misses = args.next().map(PathBuf::from),
            "--json" => json = true,
            _ => files.push(PathBuf::from(a)),
        }
    }
    let mut records = Vec::new();
    for f in &files {
        records.extend(corpus::load(f).unwrap_or_else(|e| panic!("{e}")));
    }
    let det = Detector::new(&DetectionConfig::default()).expect("config");
    let report = eval::evaluate(&det, &records);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        print!("{}", report.render_table());
    }
    // CRS: attacks of rules at paranoia level 1-2 (the target of issue 4)
    let mut crs = (0u64, 0u64);
    for o in &report.outcomes {
        let r = &records[o.index];
        if r.source.starts_with("crs") && r.label == corpus::Label::Attack {
            if let Some(pl) = r.meta.get("rule_pl").and_then(|x| x.as_u64()) {
                if pl <= 2 {
                    crs.0 += 1;
                    if o.blocked {
                        crs.1 += 1;
                    }
                }
            }
        }
    }
    if crs.0 > 0 {
        eprintln!(
            "crs PL1-2 attacks: {}/{} = {:.2}%",
            crs.1,
            crs.0,
            100.0 * crs.1 as f64 / crs.0 as f64
        );
    }
    if let Some(m) = misses {
        let mut f = std::fs::File::create(&m).expect("misses file");
        let n = report.write_misses(&records, &mut f).expect("write misses");
        eprintln!("{n} misses written to {}", m.display());
    }
}
