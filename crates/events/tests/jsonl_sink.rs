//! The JSON Lines sink on real files: what it writes, rotation, files moved or deleted under it.

use rampart_events::jsonl::JsonlSink;
use rampart_events::{Action, Alert, Event, EventKind, EventSink, Finding, Record, Timestamp};
use rampart_policy::events::JsonlSpec;
use std::path::Path;
use std::sync::Arc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn event(n: usize) -> Record {
    let mut e = Event::new(EventKind::Request, Action::Block);
    e.node = "node-a".into();
    e.client_ip = "203.0.113.9".into();
    e.method = "POST".into();
    e.path = format!("/login/{n}");
    e.route = "api".into();
    e.status = 403;
    e.score = 7;
    e.findings.push(Finding {
        class: "sqli".into(),
        rule_id: "SQLI-001".into(),
        score: 7,
        point: "body.json.user".into(),
        // Quotes, a newline and non-ASCII: still one line.
        evidence: "admin'--\n\"é\u{0}".into(),
        decode_chain: vec!["json".into()],
    });
    e.reason = Some(format!("n={n}"));
    Record::Event(Arc::new(e))
}

fn alert() -> Record {
    Record::Alert(Arc::new(Alert {
        id: "a-1".into(),
        ts: Timestamp::now(),
        node: "node-a".into(),
        trigger: "burst".into(),
        severity: "warning".into(),
        group_by: "client_ip".into(),
        key: "203.0.113.9".into(),
        count: 10,
        threshold: 10,
        window_s: 60,
        first_seen: Timestamp::now(),
        last_seen: Timestamp::now(),
        classes: vec!["sqli".into()],
        routes: vec!["api".into()],
        sample_event_ids: vec![],
        actions: vec![],
        summary: "10 sqli events".into(),
    }))
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The `n` of the `/login/{n}` paths in a file, in order.
fn numbers(path: &Path) -> Vec<usize> {
    lines(path)
        .iter()
        .filter(|v| v["record"] == "event")
        .map(|v| {
            v["path"]
                .as_str()
                .unwrap()
                .trim_start_matches("/login/")
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn each_record_is_one_json_line_that_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let spec = JsonlSpec {
        path: dir.path().join("logs/deep/events.jsonl"),
        max_size: 100 << 20,
        keep: 3,
    };
    let batch = vec![event(1), alert(), event(2)];
    rt().block_on(async {
        let mut sink = JsonlSink::open("file", &spec).unwrap();
        assert_eq!(sink.name(), "file");
        sink.deliver(&batch).await.unwrap();
        sink.deliver(&[]).await.unwrap();
        sink.deliver(&[event(3)]).await.unwrap();
        sink.close().await;
    });
    let got = lines(&spec.path);
    assert_eq!(got.len(), 4);
    for (line, record) in got.iter().zip(batch.iter().chain([&event(3)])) {
        assert_eq!(line["record"], record.type_name());
        if let Record::Event(e) = record {
            let back: Event = serde_json::from_value(line.clone()).unwrap();
            if e.path != "/login/3" {
                assert_eq!(&back, &**e);
                assert_eq!(line, &record.to_json());
            }
        }
    }
    let back: Alert = serde_json::from_value(got[1].clone()).unwrap();
    let Record::Alert(a) = &batch[1] else { unreachable!() };
    assert_eq!(&back, &**a);
    // Appends: reopening keeps what is there.
    rt().block_on(async {
        let mut sink = JsonlSink::open("file", &spec).unwrap();
        sink.deliver(&[event(4)]).await.unwrap();
    });
    assert_eq!(numbers(&spec.path).last(), Some(&4));
    assert_eq!(lines(&spec.path).len(), 5);
}

#[test]
fn rotation_keeps_keep_files_under_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let line_len = serde_json::to_vec(&event(100).to_json()).unwrap().len() as u64 + 1;
    let spec = JsonlSpec {
        path: dir.path().join("events.jsonl"),
        max_size: line_len * 5 + line_len / 2,
        keep: 2,
    };
    // A leftover from a configuration that kept more files.
    std::fs::write(dir.path().join("events.jsonl.3"), "old\n").unwrap();
    let total = 103;
    rt().block_on(async {
        let mut sink = JsonlSink::open("file", &spec).unwrap();
        let all: Vec<Record> = (100..100 + total).map(event).collect();
        for chunk in all.chunks(7) {
            sink.deliver(chunk).await.unwrap();
        }
        assert_eq!(sink.rotated_path(2), dir.path().join("events.jsonl.2"));
        sink.close().await;
    });
    let base = spec.path.clone();
    let r1 = dir.path().join("events.jsonl.1");
    let r2 = dir.path().join("events.jsonl.2");
    assert!(!dir.path().join("events.jsonl.3").exists());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]);
    for p in [&base, &r1, &r2] {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len <= spec.max_size, "{} is {len} > {}", p.display(), spec.max_size);
    }
    // Oldest in .2, newest in the live file, no gap, ending with the last record written.
    let mut seq = numbers(&r2);
    seq.extend(numbers(&r1));
    seq.extend(numbers(&base));
    assert_eq!(numbers(&r1).len(), 5);
    assert_eq!(numbers(&r2).len(), 5);
    let last = 100 + total - 1;
    let expected: Vec<usize> = (last + 1 - seq.len()..=last).collect();
    assert_eq!(seq, expected);
}

#[test]
fn keep_zero_deletes_the_full_file_and_long_lines_get_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let spec = JsonlSpec {
        path: dir.path().join("events.jsonl"),
        max_size: 200,
        keep: 0,
    };
    rt().block_on(async {
        let mut sink = JsonlSink::open("file", &spec).unwrap();
        // Each line is longer than max_size: each goes alone, and the full file is deleted (keep = 0) when
        // the next line comes.
        sink.deliver(&[event(1), event(2)]).await.unwrap();
        assert_eq!(numbers(&spec.path), vec![2]);
        sink.deliver(&[event(3)]).await.unwrap();
        sink.close().await;
    });
    assert!(!dir.path().join("events.jsonl.1").exists());
    assert_eq!(numbers(&spec.path), vec![3]);

    let spec = JsonlSpec { keep: 1, ..spec };
    rt().block_on(async {
        let mut sink = JsonlSink::open("file", &spec).unwrap();
        sink.deliver(&[event(4), event(5)]).await.unwrap();
    });
    assert_eq!(numbers(&dir.path().join("events.jsonl.1")), vec![4]);
    assert_eq!(numbers(&spec.path), vec![5]);
}

#[test]
fn a_file_moved_or_deleted_under_the_sink_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let spec = JsonlSpec {
        path: dir.path().join("events.jsonl"),
        max_size: 100 << 20,
        keep: 3,
    };
    let moved = dir.path().join("events.jsonl.moved");
    rt().block_on(async {
        let mut sink = JsonlSink::open("file", &spec).unwrap();
        sink.deliver(&[event(1)]).await.unwrap();
        // logrotate without copytruncate: move, the writer goes on in a new file.
        std::fs::rename(&spec.path, &moved).unwrap();
        sink.deliver(&[event(2)]).await.unwrap();
        assert_eq!(numbers(&moved), vec![1]);
        assert_eq!(numbers(&spec.path), vec![2]);
        // Deleted.
        std::fs::remove_file(&spec.path).unwrap();
        sink.deliver(&[event(3)]).await.unwrap();
        assert_eq!(numbers(&spec.path), vec![3]);
        // Truncated in place (copytruncate): appends continue at the new end.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&spec.path)
            .unwrap()
            .set_len(0)
            .unwrap();
        sink.deliver(&[event(4)]).await.unwrap();
        assert_eq!(numbers(&spec.path), vec![4]);
        // The whole directory removed.
        std::fs::remove_dir_all(dir.path()).unwrap();
        sink.deliver(&[event(5)]).await.unwrap();
        assert_eq!(numbers(&spec.path), vec![5]);
        sink.close().await;
    });
}
