//! The `rampart` binary end to end: `--version`, `--help`, `check`, `run` (serving, blocking, reload on file
//! change and SIGHUP, refusal of a bad file, graceful shutdown on SIGTERM), `demo` and `explain`.
//!
//! Every test runs the real binary as a child process on free loopback ports, with backends of its own.

mod common;

use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------------------
// --version, --help, check

#[test]
fn version_and_help() {
    let (out, stdout, _) = output({
        let mut c = rampart();
        c.arg("--version");
        c
    });
    assert!(out.status.success());
    assert_eq!(stdout.trim(), format!("rampart {}", env!("CARGO_PKG_VERSION")));

    let (out, stdout, _) = output({
        let mut c = rampart();
        c.arg("--help");
        c
    });
    assert!(out.status.success());
    for sub in ["run", "check", "demo", "eval", "explain"] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(sub)),
            "--help does not list `{sub}`:\n{stdout}"
        );
    }
    assert!(stdout.contains("Examples:"), "{stdout}");
    for example in [
        "rampart demo",
        "rampart run --upstream http://127.0.0.1:3000",
        "rampart run --config rampart.toml",
        "rampart check --config rampart.toml",
        "rampart explain -",
    ] {
        assert!(
            stdout.contains(example),
            "--help lacks the example `{example}`:\n{stdout}"
        );
    }

    // A subcommand is required: no arguments is a usage error, not a silent start.
    let (out, _, stderr) = output(rampart());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("Usage"), "{stderr}");
}

const GOOD: &str = r#"data_dir = "./data"

[[listeners]]
addr = "127.0.0.1:18080"

[upstreams.app]
targets = ["http://127.0.0.1:3000", "http://127.0.0.1:3001"]
balance = "least_connections"

[[routes]]
name = "api"
path = "/api"
upstream = "app"
mode = "monitor"

[[routes]]
path = "/"
upstream = "app"
"#;

/// Three different errors on known lines: a bad duration (line 6), an unknown upstream protocol (line 10)
/// and a route naming an upstream that does not exist (line 15).
const BAD: &str = r#"[[listeners]]
addr = "127.0.0.1:18080"

[limits]
max_headers = 100
idle_timeout = "ten seconds"

[upstreams.app]
targets = ["http://127.0.0.1:3000"]
protocol = "http3"

[[routes]]
name = "main"
path = "/"
upstream = "missing"
"#;

#[test]
fn check_accepts_a_good_file_and_reports_every_error_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let (out, stdout, stderr) = output({
        let mut c = rampart();
        c.args(["check", "--config"]).arg(&good);
        c
    });
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ok (1 listeners, 1 upstreams, 2 routes)"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, BAD).unwrap();
    let (out, stdout, stderr) = output({
        let mut c = rampart();
        c.args(["check", "--config"]).arg(&bad);
        c
    });
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let file = bad.display().to_string();
    // `file:line:column: error: message`, then an indented `hint:` line.
    for (line, column, needle) in [(6, 16, "ten seconds"), (10, 12, "http3"), (15, 12, "missing")] {
        let prefix = format!("{file}:{line}:{column}: error: ");
        let i = lines
            .iter()
            .position(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` diagnostic in:\n{stderr}"));
        assert!(lines[i].contains(needle), "{}", lines[i]);
        let hint = lines.get(i + 1).copied().unwrap_or("");
        assert!(
            hint.trim_start().starts_with("hint: ") && hint.trim().len() > "hint: ".len(),
            "no hint after `{}`:\n{stderr}",
            lines[i]
        );
    }
    assert_eq!(lines.iter().filter(|l| l.contains(": error: ")).count(), 3, "{stderr}");
    assert!(stderr.contains(&format!("3 errors in {file}")), "{stderr}");

    // A file that does not exist is an error too, not a crash.
    let (out, _, stderr) = output({
        let mut c = rampart();
        c.args(["check", "--config"]).arg(dir.path().join("absent.toml"));
        c
    });
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

// ---------------------------------------------------------------------------------------------------------
// run: serve, block, reload (file and SIGHUP), refuse a bad file, drain on SIGTERM

fn run_config(
    data: &Path,
    listen: u16,
    console: u16,
    upstreams: &[(&str, SocketAddr)],
    routes: &[(&str, &str)],
) -> String {
    let mut s = format!(
        "data_dir = \"{}\"\n\n[[listeners]]\naddr = \"127.0.0.1:{listen}\"\n\n[limits]\nshutdown_grace = \"5s\"\n\n\
         [console]\nlisten = \"127.0.0.1:{console}\"\n\n[log]\naccess = true\n",
        data.display()
    );
    for (name, addr) in upstreams {
        s += &format!("\n[upstreams.{name}]\ntargets = [\"http://{addr}\"]\nconnect_timeout = \"1s\"\n");
    }
    for (path, upstream) in routes {
        s += &format!("\n[[routes]]\npath = \"{path}\"\nupstream = \"{upstream}\"\nmode = \"block\"\n");
    }
    s
}

/// Replaces `path` the way editors and deploy tools do: write a sibling, then rename over it.
fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn generation(c: &reqwest::Client, console: u16) -> u64 {
    let v: serde_json::Value = c
        .get(format!("http://127.0.0.1:{console}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["config_generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no config_generation in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_blocks_reloads_and_drains() {
    let b1 = backend("b1").await;
    let b2 = backend("b2").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg: PathBuf = dir.path().join("rampart.toml");
    let (port, console) = (free_port(), free_port());
    let one_route = run_config(&data, port, console, &[("one", b1.addr)], &[("/", "one")]);
    let two_routes = run_config(
        &data,
        port,
        console,
        &[("one", b1.addr), ("two", b2.addr)],
        &[("/", "one"), ("/v2", "two")],
    );
    std::fs::write(&cfg, &one_route).unwrap();

    let mut cmd = rampart();
    cmd.args(["run", "--config"]).arg(&cfg);
    let mut proc = Proc::spawn(cmd, dir.path());
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");

    // A request passes.
    let body = wait_for(&c, &format!("{base}/hello?x=1"), &proc, |_| true).await;
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["backend"], "b1");
    assert_eq!(j["uri"], "/hello?x=1");
    assert!(data.is_dir(), "data_dir was not created");

    // A SQL injection in the query is blocked with the JSON block body; its request id is the header's.
    let r = c
        .get(format!("{base}/items?id=1%27%20OR%20%271%27%3D%271"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["error"], "request blocked");
    assert_eq!(j["request_id"], rid.as_str());
    assert!(!rid.is_empty());
    let gen0 = generation(&c, console).await;

    // File change: a second route to a second upstream starts serving.
    let before = wait_for(&c, &format!("{base}/v2/x"), &proc, |_| true).await;
    assert!(
        before.contains("\"b1\""),
        "before the reload /v2 goes to the catch-all route: {before}"
    );
    let mark = proc.line_count();
    std::fs::write(&cfg, &two_routes).unwrap();
    let body = wait_for(&c, &format!("{base}/v2/x"), &proc, |b| b.contains("\"b2\"")).await;
    assert!(body.contains("\"uri\":\"/v2/x\""), "{body}");
    let reloaded = proc
        .wait_log(mark, "the file reload", |v| {
            message(v) == "config reloaded" && v["trigger"] == "file"
        })
        .await;
    assert!(reloaded["generation"].as_u64().unwrap() > gen0, "{reloaded}");

    // A broken file is refused and logged; the running routes keep serving.
    let mark = proc.line_count();
    replace_file(&cfg, &two_routes.replace("upstream = \"two\"", "upstream = \"three\""));
    let refused = proc
        .wait_log(mark, "the refusal", |v| message(v).contains("config refused"))
        .await;
    assert_eq!(refused["level"], "ERROR", "{refused}");
    assert!(message(&refused).contains("three"), "{refused}");
    assert_eq!(
        refused["line"].as_u64(),
        Some(two_routes.lines().position(|l| l == "upstream = \"two\"").unwrap() as u64 + 1)
    );
    let gen_before_hup;
    {
        for (path, backend) in [("/v2/still", "b2"), ("/still", "b1")] {
            let r = c.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let j: serde_json::Value = r.json().await.unwrap();
            assert_eq!(j["backend"], backend, "{path} after a refused reload");
        }
        gen_before_hup = generation(&c, console).await;
        assert_eq!(
            gen_before_hup,
            reloaded["generation"].as_u64().unwrap(),
            "a refused file changed the generation"
        );
    }

    // Restore a good file (the watcher reloads it), then SIGHUP reloads again.
    let mark = proc.line_count();
    replace_file(&cfg, &two_routes);
    proc.wait_log(mark, "the restored file", |v| {
        message(v) == "config reloaded" && v["trigger"] == "file"
    })
    .await;
    let gen_restored = generation(&c, console).await;
    assert!(gen_restored > gen_before_hup);
    let mark = proc.line_count();
    proc.signal(libc::SIGHUP);
    let hup = proc
        .wait_log(mark, "the SIGHUP reload", |v| {
            message(v) == "config reloaded" && v["trigger"] == "sighup"
        })
        .await;
    assert!(hup["generation"].as_u64().unwrap() > gen_restored, "{hup}");
    assert_eq!(generation(&c, console).await, hup["generation"].as_u64().unwrap());
    let r = c.get(format!("{base}/v2/after-hup")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["backend"], "b2");

    // SIGTERM while a slow request is in flight: it completes, then the process exits 0 within the grace.
    let slow = {
        let c = c.clone();
        let url = format!("{base}/slow");
        tokio::spawn(async move {
            let r = c
                .get(url)
                .send()
                .await
                .expect("the in-flight request gets its response");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while b1.in_flight.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the slow request never reached the backend");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = Instant::now();
    proc.signal(libc::SIGTERM);
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"uri\":\"/slow\""), "{body}");
    let exit = proc.wait_exit(Duration::from_secs(5)).await;
    assert!(exit.success(), "exit status {exit:?}; {}", proc.dump());
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?}", sent.elapsed());
    // After the drain nothing listens any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    drop(b2);
}

// ---------------------------------------------------------------------------------------------------------
// demo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_sample_api_with_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let (port, console) = (free_port(), free_port());
    let mut cmd = rampart();
    cmd.args([
        "demo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--console",
        &format!("127.0.0.1:{console}"),
    ]);
    let mut proc = Proc::spawn(cmd, dir.path());
    let c = http_client();

    let body = wait_for(&c, &format!("http://127.0.0.1:{port}/api/users"), &proc, |_| true).await;
    let users: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let users = users.as_array().expect("a JSON array of users");
    assert!(users.len() >= 3);
    assert_eq!(users[0]["name"], "Ada Lovelace");

    let r = c
        .get(format!("http://127.0.0.1:{port}/api/users/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["name"], "Grace Hopper");

    let r = c
        .get(format!("http://127.0.0.1:{console}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = c
        .get(format!("http://127.0.0.1:{console}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("rampart_requests_total{")),
        "no rampart_requests_total sample in /metrics:\n{metrics}"
    );
    // The banner with the URLs goes to stderr.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proc
        .stderr
        .lock()
        .unwrap()
        .contains(&format!("curl -s http://127.0.0.1:{port}/api/users"))
    {
        assert!(Instant::now() < deadline, "no demo banner; {}", proc.dump());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dir.path().join("rampart-data").is_dir());

    proc.signal(libc::SIGTERM);
    let exit = proc.wait_exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit:?}; {}", proc.dump());
}

// ---------------------------------------------------------------------------------------------------------
// explain

fn explain(raw: &[u8]) -> (ExitStatus, String, String) {
    let mut child = rampart()
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_blocks_an_attack_with_its_point_and_passes_a_benign_post() {
    let (status, stdout, stderr) =
        explain(b"GET /items?id=1%27%20OR%20%271%27%3D%271 HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert!(status.success(), "stderr:\n{stderr}");
    let first = stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("verdict: BLOCK (answered 403)"), "{stdout}");
    assert!(stdout.contains("[sqli]"), "no SQL injection finding:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.trim() == "point:    query.id"),
        "the finding does not point at the id parameter:\n{stdout}"
    );

    let body = br#"{"name":"Ada Lovelace","email":"ada@example.com","tags":["admin","ops"]}"#;
    let mut raw = format!(
        "POST /api/users HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let (status, stdout, stderr) = explain(&raw);
    assert!(status.success(), "stderr:\n{stderr}");
    assert!(stdout.starts_with("verdict: PASS (forwarded upstream)"), "{stdout}");
    assert!(stdout.contains("no findings"), "{stdout}");
}
