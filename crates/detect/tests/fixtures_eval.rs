//! Runs the eval over the realistic benign API fixtures and asserts the
//! false-positive bound of issue 4 (FPR <= 0.1 %). When the shared
//! development corpora are present, also guards against regressions there.

use std::path::PathBuf;

use rampart_detect::{corpus, eval, Detector};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn benign_api_fpr_bound() {
    let recs = corpus::load(&fixture("benign-api.jsonl")).expect("fixtures (run gen_benign.py)");
    assert!(recs.len() >= 5000, "need at least 5000 fixtures, have {}", recs.len());
    let d = Detector::default();
    let r = eval::evaluate(&d, &recs);
    let src = &r.sources["benign-api"];
    let fpr = src.counts.fpr.unwrap();
    if fpr > 0.001 {
        let mut buf = Vec::new();
        r.write_misses(&recs, &mut buf).unwrap();
        panic!(
            "benign-api FPR {fpr:.4} > 0.001\n{}",
            String::from_utf8_lossy(&buf[..buf.len().min(4000)])
        );
    }
}

#[test]
fn shared_corpora_floors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let gtw = dir.join("gotestwaf.jsonl");
    if !gtw.exists() {
        eprintln!("shared corpora not found at {}; skipping", dir.display());
        return;
    }
    let d = Detector::default();
    let recs = corpus::load(&gtw).unwrap();
    let r = eval::evaluate(&d, &recs);
    let c = &r.sources["gotestwaf"].counts;
    assert!(c.fpr.unwrap() <= 0.01, "gotestwaf fpr {:?}", c.fpr);
    assert!(c.tpr.unwrap() >= 0.90, "gotestwaf tpr {:?}", c.tpr);
    let recs = corpus::load(&dir.join("libinjection.jsonl")).unwrap();
    let r = eval::evaluate(&d, &recs);
    let c = &r.sources["libinjection"].counts;
    assert!(c.fpr.unwrap() <= 0.03, "libinjection fpr {:?}", c.fpr);
    assert!(c.tpr.unwrap() >= 0.97, "libinjection tpr {:?}", c.tpr);
}

#[test]
fn benign_graphql_has_no_false_positives() {
    let recs = corpus::load(&fixture("benign-graphql.jsonl")).expect("fixtures (run gen_graphql.py)");
    assert!(recs.len() >= 500, "need at least 500 operations, have {}", recs.len());
    let d = Detector::default();
    let r = eval::evaluate(&d, &recs);
    let c = &r.sources["benign-graphql"].counts;
    if c.fpr.unwrap() > 0.0 {
        let mut buf = Vec::new();
        r.write_misses(&recs, &mut buf).unwrap();
        panic!(
            "benign GraphQL blocked: {:?}\n{}",
            c.fpr,
            String::from_utf8_lossy(&buf[..buf.len().min(6000)])
        );
    }
}
