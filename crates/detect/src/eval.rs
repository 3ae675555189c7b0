//! `rampart eval` / `rampart explain`: run the detector over labelled
//! corpora and report per source and category; explain one raw request.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{self, Label, Prepared, Record};
use crate::{Analysis, Detector, Finding, Verdict};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub attack: u64,
    pub benign: u64,
    pub tp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    pub fp: u64,
    pub tpr: Option<f64>,
    pub fpr: Option<f64>,
    pub ba: Option<f64>,
}

impl Counts {
    fn add(&mut self, label: Label, blocked: bool) {
        match (label, blocked) {
            (Label::Attack, true) => self.tp += 1,
            (Label::Attack, false) => self.fn_ += 1,
            (Label::Benign, true) => self.fp += 1,
            (Label::Benign, false) => self.tn += 1,
        }
        match label {
            Label::Attack => self.attack += 1,
            Label::Benign => self.benign += 1,
        }
    }

    fn finish(&mut self) {
        self.tpr = (self.attack > 0).then(|| self.tp as f64 / self.attack as f64);
        self.fpr = (self.benign > 0).then(|| self.fp as f64 / self.benign as f64);
        self.ba = match (self.tpr, self.fpr) {
            (Some(t), Some(f)) => Some((t + (1.0 - f)) / 2.0),
            _ => None,
        };
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceReport {
    #[serde(flatten)]
    pub counts: Counts,
    pub categories: BTreeMap<String, Counts>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Total {
    pub records: u64,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
}

/// The outcome of one record.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub index: usize,
    pub blocked: bool,
    pub rejected: Option<String>,
    pub analysis: Option<Analysis>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub sources: BTreeMap<String, SourceReport>,
    pub total: Total,
    #[serde(skip)]
    pub outcomes: Vec<Outcome>,
}

/// Decide one record: rejected by the HTTP layer, or the detector's verdict.
pub fn decide(detector: &Detector, r: &Record) -> Outcome {
    match corpus::prepare(r) {
        Prepared::Rejected(why) => Outcome {
            index: 0,
            blocked: true,
            rejected: Some(why),
            analysis: None,
        },
        Prepared::Request(req) => {
            let a = detector.analyze(&req.view());
            Outcome {
                index: 0,
                blocked: a.verdict == Verdict::Block,
                rejected: None,
                analysis: Some(a),
            }
        }
    }
}

/// Run the detector over every record.
pub fn evaluate(detector: &Detector, records: &[Record]) -> Report {
    evaluate_with_progress(detector, records, |_, _| {})
}

/// Like [`evaluate`], calling `progress(done, total)` every 1024 records.
pub fn evaluate_with_progress(detector: &Detector, records: &[Record], progress: impl FnMut(usize, usize)) -> Report {
    evaluate_by(records, progress, |r| decide(detector, r))
}

/// Runs `decide` over every record and builds the report. The binary passes the proxy's own request stage
/// here, so that `rampart eval` measures exactly what the gateway does.
pub fn evaluate_by(
    records: &[Record],
    mut progress: impl FnMut(usize, usize),
    mut decide: impl FnMut(&Record) -> Outcome,
) -> Report {
    let start = Instant::now();
    let mut outcomes = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let mut o = decide(r);
        o.index = i;
        outcomes.push(o);
        if i % 1024 == 0 {
            progress(i, records.len());
        }
    }
    progress(records.len(), records.len());
    let elapsed = start.elapsed().as_secs_f64();
    let mut report = Report::default();
    for o in &outcomes {
        let r = &records[o.index];
        let src = report.sources.entry(r.source.clone()).or_default();
        src.counts.add(r.label, o.blocked);
        src.categories
            .entry(r.category.clone())
            .or_default()
            .add(r.label, o.blocked);
    }
    for s in report.sources.values_mut() {
        s.counts.finish();
        for c in s.categories.values_mut() {
            c.finish();
        }
    }
    report.total = Total {
        records: records.len() as u64,
        elapsed_s: elapsed,
        requests_per_s: if elapsed > 0.0 {
            records.len() as f64 / elapsed
        } else {
            0.0
        },
    };
    report.outcomes = outcomes;
    report
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:6.2}%", v * 100.0))
        .unwrap_or_else(|| "      -".into())
}

fn ba(x: Option<f64>) -> String {
    x.map(|v| format!("{:6.2}%", v * 100.0))
        .unwrap_or_else(|| "      -".into())
}

impl Report {
    /// A human table: one line per source and per category.
    pub fn render_table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{:<34} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}\n",
            "source / category", "attack", "benign", "tp", "fn", "tn", "fp", "tpr", "fpr", "ba"
        ));
        for (name, src) in &self.sources {
            let line = |label: &str, c: &Counts| {
                format!(
                    "{:<34} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}\n",
                    label,
                    c.attack,
                    c.benign,
                    c.tp,
                    c.fn_,
                    c.tn,
                    c.fp,
                    pct(c.tpr),
                    pct(c.fpr),
                    ba(c.ba)
                )
            };
            s.push_str(&line(name, &src.counts));
            for (cat, c) in &src.categories {
                s.push_str(&line(&format!("  {cat}"), c));
            }
        }
        s.push_str(&format!(
            "total: {} records in {:.3} s ({:.0} requests/s)\n",
            self.total.records, self.total.elapsed_s, self.total.requests_per_s
        ));
        s
    }

    /// Write the false negatives and false positives as JSON lines, with
    /// their findings.
    pub fn write_misses(&self, records: &[Record], w: &mut dyn Write) -> std::io::Result<usize> {
        let mut n = 0;
        for o in &self.outcomes {
            let r = &records[o.index];
            let kind = match (r.label, o.blocked) {
                (Label::Attack, false) => "fn",
                (Label::Benign, true) => "fp",
                _ => continue,
            };
            let line = serde_json::json!({
                "id": r.id,
                "source": r.source,
                "category": r.category,
                "label": r.label,
                "miss": kind,
                "rejected": o.rejected,
                "score": o.analysis.as_ref().map(|a| a.score),
                "threshold": o.analysis.as_ref().map(|a| a.threshold),
                "findings": o.analysis.as_ref().map(|a| &a.findings),
                "method": r.method,
                "path": r.path,
            });
            writeln!(w, "{line}")?;
            n += 1;
        }
        Ok(n)
    }
}

/// Output of [`explain`].
#[derive(Clone, Debug, Serialize)]
pub struct ExplainOutput {
    pub verdict: Verdict,
    /// Why the HTTP layer rejects the request, when it does.
    pub rejected: Option<String>,
    pub score: u32,
    pub threshold: u32,
    pub findings: Vec<Finding>,
}

/// A request typed by hand (bare LF line endings, no blank line at the end) turned into wire form: CRLF in
/// the head and a terminating empty line. Bytes that already have CRLF are left as they are.
pub fn normalize_typed_request(raw: &[u8]) -> Vec<u8> {
    let mut out = if memchr::memmem::find(raw, b"\r\n").is_none() && raw.contains(&b'\n') {
        normalize_newlines(raw)
    } else {
        raw.to_vec()
    };
    if memchr::memmem::find(&out, b"\r\n\r\n").is_none() {
        while out.ends_with(b"\r\n") {
            out.truncate(out.len() - 2);
        }
        out.extend_from_slice(b"\r\n\r\n");
    }
    out
}

/// Explain one raw HTTP request.
pub fn explain(detector: &Detector, raw: &[u8]) -> ExplainOutput {
    let raw = &normalize_typed_request(raw)[..];
    match corpus::parse_raw(raw) {
        Prepared::Rejected(why) => ExplainOutput {
            verdict: Verdict::Block,
            rejected: Some(why),
            score: 0,
            threshold: detector.threshold(),
            findings: vec![],
        },
        Prepared::Request(req) => {
            let a = detector.analyze(&req.view());
            ExplainOutput {
                verdict: a.verdict,
                rejected: None,
                score: a.score,
                threshold: a.threshold,
                findings: a.findings,
            }
        }
    }
}

fn normalize_newlines(raw: &[u8]) -> Vec<u8> {
    // only the head: up to the first empty line
    let mut out = Vec::with_capacity(raw.len() + 32);
    let mut i = 0;
    let mut in_head = true;
    while i < raw.len() {
        let c = raw[i];
        if in_head && c == b'\n' {
            out.extend_from_slice(b"\r\n");
            if i + 1 < raw.len() && raw[i + 1] == b'\n' {
                out.extend_from_slice(b"\r\n");
                in_head = false;
                i += 2;
                continue;
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

impl ExplainOutput {
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let v = match self.verdict {
            Verdict::Block => "BLOCK",
            Verdict::Pass => "PASS",
        };
        s.push_str(&format!(
            "verdict: {v} (score {} / threshold {})\n",
            self.score, self.threshold
        ));
        if let Some(r) = &self.rejected {
            s.push_str(&format!("rejected by the HTTP layer (400): {r}\n"));
        }
        if self.findings.is_empty() && self.rejected.is_none() {
            s.push_str("no findings\n");
        }
        for f in &self.findings {
            let chain = if f.decode_chain.is_empty() {
                "-".to_string()
            } else {
                f.decode_chain.join(" > ")
            };
            s.push_str(&format!(
                "  [{}] {} score {}\n    point:  {}\n    decode: {}\n    evidence: {}\n",
                f.class, f.rule_id, f.score, f.point, chain, f.evidence
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_raw() {
        let d = Detector::default();
        let e = explain(&d, b"GET /?id=1%20union%20select%201,2 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(e.verdict, Verdict::Block);
        assert!(e.render_text().contains("query.id"));
        let e = explain(&d, b"GET /?q=hello HTTP/1.1\nHost: x\n\n");
        assert_eq!(e.verdict, Verdict::Pass, "{e:?}");
    }

    #[test]
    fn report_shape() {
        let d = Detector::default();
        let recs: Vec<Record> = vec![
            serde_json::from_str(r#"{"id":"t:1","source":"t","category":"sqli","label":"attack","method":"GET","path":"/?q=1%27%20or%20%271%27=%271","headers":[["Host","x"]]}"#).unwrap(),
            serde_json::from_str(r#"{"id":"t:2","source":"t","category":"benign","label":"benign","method":"GET","path":"/?q=hello","headers":[["Host","x"]]}"#).unwrap(),
        ];
        let r = evaluate(&d, &recs);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["sources"]["t"]["tp"], 1);
        assert_eq!(j["sources"]["t"]["tn"], 1);
        assert!(j["sources"]["t"]["categories"]["sqli"]["fpr"].is_null());
        assert_eq!(j["total"]["records"], 2);
        let mut buf = Vec::new();
        assert_eq!(r.write_misses(&recs, &mut buf).unwrap(), 0);
        assert!(r.render_table().contains("sqli"));
    }
}
