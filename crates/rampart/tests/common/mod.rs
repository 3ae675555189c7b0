//! What the binary's integration tests share: running the real binary as a child process, free ports, and
//! a small HTTP backend.

#![allow(dead_code)]
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn rampart() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rampart"));
    c.env_remove("RAMPART_LOG");
    c
}

/// Writes `config` to `dir`/rampart.toml and runs the gateway on it, in `dir`.
pub fn run_with_config(dir: &Path, config: &str) -> Proc {
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = rampart();
    cmd.args(["run", "--config"]).arg(&path);
    Proc::spawn(cmd, dir)
}

pub fn output(mut cmd: Command) -> (Output, String, String) {
    let out = cmd.output().expect("rampart runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// A port nothing listens on (bound on 127.0.0.1:0, then closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 10 s) until something listens on `port` of 127.0.0.1.
pub async fn wait_listening(port: u16, proc: &Proc) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway never listened on {port}: {}", proc.dump());
}

/// The events file of a gateway run in `dir` (a jsonl sink writing data/events.jsonl), read until `done`
/// holds for it or 2 s have passed.
pub async fn events_until(dir: &Path, done: impl Fn(&str) -> bool) -> String {
    let mut events = String::new();
    for _ in 0..40 {
        events = std::fs::read_to_string(dir.join("data/events.jsonl")).unwrap_or_default();
        if done(&events) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    events
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// A running rampart process

/// A child process whose stdout lines are collected as they come; killed when dropped.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command, cwd: &Path) -> Proc {
        let mut child = cmd
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rampart starts");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let (out, l) = (child.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let (err, e) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut e = e.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        Proc { child, lines, stderr }
    }

    pub fn signal(&self, sig: libc::c_int) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({sig}) failed");
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The stdout lines from `from` on that parse as JSON.
    pub fn json_lines(&self, from: usize) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap()[from..]
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a JSON log line (from line `from` on) that satisfies `pred`.
    pub async fn wait_log(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.json_lines(from).into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "no log line for {what}; {}", self.dump());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}; {}",
                self.dump()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn dump(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let tail = &lines[lines.len().saturating_sub(30)..];
        format!(
            "stdout (last {} lines):\n{}\nstderr:\n{}",
            tail.len(),
            tail.join("\n"),
            self.stderr.lock().unwrap()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn message(v: &serde_json::Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

/// GETs `url` until it answers `200` (the gateway is up and, after a reload, serving the new routes) and
/// `accept` holds for the body.
pub async fn wait_for(c: &reqwest::Client, url: &str, proc: &Proc, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    loop {
        if let Ok(r) = c.get(url).send().await {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if status == 200 && accept(&body) {
                return body;
            }
            last = format!("{status} {body}");
        }
        assert!(
            Instant::now() < deadline,
            "{url} never served as expected (last: {last}); {}",
            proc.dump()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// A backend: answers JSON naming itself, the URI and the request id it received; `/slow...` sleeps 500 ms,
// `?fail=1` is answered 401.

pub struct Backend {
    pub addr: SocketAddr,
    pub in_flight: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn backend(name: &'static str) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let inf = in_flight.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let inf = inf.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let inf = inf.clone();
                    async move {
                        inf.fetch_add(1, Ordering::SeqCst);
                        if req.uri().path().starts_with("/slow") {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        let mut body = serde_json::json!({
                            "backend": name,
                            "uri": req.uri().to_string(),
                            "request_id": req.headers().get("x-request-id").and_then(|v| v.to_str().ok()),
                        });
                        // `/pii/...` answers with personal data, as a customer API does.
                        if req.uri().path().starts_with("/pii") {
                            body["contact"] =
                                serde_json::json!({"email": "aoife@example.ie", "iban": "DE89370400440532013000"});
                        }
                        inf.fetch_sub(1, Ordering::SeqCst);
                        // `?fail=1` answers 401, as a failed login does.
                        let status = if req.uri().query().is_some_and(|q| q.contains("fail=1")) {
                            401
                        } else {
                            200
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend { addr, in_flight, task }
}
