//! Abuse simulations through the real binary, client addresses from X-Forwarded-For (127.0.0.1 is a
//! trusted proxy): a credential-stuffing run with 10,000 leaked pairs over 256 rotating addresses in eight
//! /24s is stopped while normal logins (a few with typos) pass, an enumeration run on /users/{id} is
//! stopped while users reading their own objects are not, and an SMS-pumping run on a few number ranges is
//! stopped while normal OTP traffic from many countries passes.
//!
//! The backend is a small account service: POST /login with JSON credentials answers 200 or 401, GET
//! /users/{id} answers 200 for ids up to 500 and 404 beyond, POST /otp/send "texts" a code (it keeps the
//! code where the test, playing the phone's owner, can read it) and POST /otp/verify checks it.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct AccountService {
    addr: SocketAddr,
    /// Login attempts that reached the service.
    logins: Arc<AtomicUsize>,
    /// Codes texted, by destination number: what each phone received last.
    sms: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AccountService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn account_service(accounts: HashMap<String, String>) -> AccountService {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accounts = Arc::new(accounts);
    let logins = Arc::new(AtomicUsize::new(0));
    let counter = logins.clone();
    let sms: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let phones = sms.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (accounts, counter, phones) = (accounts.clone(), counter.clone(), phones.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (accounts, counter, phones) = (accounts.clone(), counter.clone(), phones.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let status = if path.starts_with("/otp/") {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            let mut phones = phones.lock().unwrap();
                            match (path.as_str(), v["phone"].as_str(), v["code"].as_str()) {
                                ("/otp/send", Some(phone), _) => {
                                    let code =
                                        format!("{:06}", (phones.len() * 7919 + phone.len() * 104_729) % 1_000_000);
                                    phones.insert(phone.to_string(), code);
                                    200
                                }
                                ("/otp/verify", Some(phone), Some(code)) => {
                                    if phones.get(phone).is_some_and(|c| c == code) {
                                        phones.insert(phone.to_string(), "used".into());
                                        200
                                    } else {
                                        401
                                    }
                                }
                                _ => 400,
                            }
                        } else if path == "/v1/session" {
                            // An older API: every answer is 200, a wrong password says so in the body.
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            let ok = match (v["username"].as_str(), v["password"].as_str()) {
                                (Some(u), Some(p)) => accounts.get(u).is_some_and(|known| known == p),
                                _ => false,
                            };
                            let answer: &'static [u8] = if ok {
                                br#"{"token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}"#
                            } else {
                                br#"{"status":"error","error":"invalid_credentials","message":"Wrong user name or password"}"#
                            };
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .status(200)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(answer)))
                                    .unwrap(),
                            );
                        } else if path == "/login" {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            let (user, password) = (v["username"].as_str(), v["password"].as_str());
                            match (user, password) {
                                (Some(u), Some(p)) if accounts.get(u).is_some_and(|known| known == p) => 200,
                                _ => 401,
                            }
                        } else if let Some(id) = path.strip_prefix("/users/") {
                            match id.parse::<u32>() {
                                Ok(n) if n <= 500 => 200,
                                _ => 404,
                            }
                        } else {
                            200
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(b"{}")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    AccountService {
        addr,
        logins,
        sms,
        task,
    }
}

fn start(dir: &Path, port: u16, backend: SocketAddr, extra: &str) -> Proc {
    let config = format!(
        r#"data_dir = "./data"
trusted_proxies = ["127.0.0.1"]

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.app]
targets = ["http://{backend}"]

[[routes]]
name = "api"
path = "/"
upstream = "app"
mode = "block"

[[routes]]
name = "login"
path = "/login"
match = "exact"
upstream = "app"
mode = "block"

[[routes]]
name = "users"
path = "/users/{{id}}"
match = "template"
upstream = "app"
mode = "block"

[[routes]]
name = "session"
path = "/v1/session"
match = "exact"
upstream = "app"
mode = "block"

[[routes]]
name = "otp-send"
path = "/otp/send"
match = "exact"
upstream = "app"
mode = "block"

[[routes]]
name = "otp-verify"
path = "/otp/verify"
match = "exact"
upstream = "app"
mode = "block"
{extra}"#
    );
    run_with_config(dir, &config)
}

async fn login(c: &reqwest::Client, base: &str, ip: &str, user: &str, password: &str) -> u16 {
    c.post(format!("{base}/login"))
        .header("x-forwarded-for", ip)
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Writes Have I Been Pwned range files (`ABCDE` named, `SUFFIX:COUNT` lines) for `passwords`.
fn write_ranges(dir: &Path, passwords: &[String]) {
    let mut ranges: HashMap<String, String> = HashMap::new();
    for (i, p) in passwords.iter().enumerate() {
        let h = rampart_guard::abuse::password_sha1(p);
        let line = format!("{}:{}\r\n", &h[5..], 1 + i % 97);
        ranges.entry(h[..5].to_string()).or_default().push_str(&line);
    }
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, lines) in ranges {
        std::fs::write(dir.join(prefix), lines).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_stuffing_over_rotating_addresses_is_stopped_and_real_users_log_in() {
    // 300 real users with their own passwords; 100 of them reused a password that leaked elsewhere, and the
    // attacker's list (10,000 pairs: e-mail addresses from other breaches, mostly not ours) holds those.
    let mut accounts = HashMap::new();
    let real: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("member{i}@example.org"),
                format!("Quiet-Harbour-{i}-{}", i * 7919 % 1000),
            )
        })
        .collect();
    for (u, p) in &real {
        accounts.insert(u.clone(), p.clone());
    }
    let mut pairs: Vec<(String, String)> = (0..10_000)
        .map(|i| {
            (
                format!("{}.{}@mail{}.test", ["jo", "sam", "li", "kim", "ana"][i % 5], i, i % 13),
                format!("s3cret{i}!"),
            )
        })
        .collect();
    for k in 0..100 {
        // Reused credentials: a real account whose password is in the breach list.
        let (user, _) = &real[200 + k];
        let leaked = format!("summer{k}2019");
        accounts.insert(user.clone(), leaked.clone());
        pairs[k * 97 + 13] = (user.clone(), leaked);
    }
    let app = account_service(accounts.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    write_ranges(
        &dir.path().join("pwned"),
        &pairs.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
    );
    let port = free_port();
    let proc = start(
        dir.path(),
        port,
        app.addr,
        r#"
[[logins]]
route = "login"
username = "json:/username"
password = "json:/password"
failure_status = [401]
window = "10m"
max_usernames_per_ip = 5
max_ips_per_username = 10
max_failures_per_prefix = 50
slow_window = "6h"
leaked_passwords = "pwned"

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#,
    );
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&c, &format!("{base}/ready"), &proc, |_| true).await;

    // The campaign: 256 addresses in eight /24s of one provider, taking turns, 32 requests in flight.
    let attack = {
        let (c, base, pairs) = (c.clone(), base.clone(), pairs.clone());
        async move {
            stream::iter(pairs.into_iter().enumerate())
                .map(|(i, (u, p))| {
                    let (c, base) = (c.clone(), base.clone());
                    async move {
                        let ip = format!("45.{}.77.{}", 8 + i % 8, 1 + (i / 8) % 32);
                        login(&c, &base, &ip, &u, &p).await
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<u16>>()
                .await
        }
    };
    // Meanwhile real users log in from their own addresses; every tenth mistypes first.
    let members = {
        let (c, base, real) = (c.clone(), base.clone(), real[..200].to_vec());
        async move {
            let mut finals = Vec::new();
            for (i, (u, p)) in real.iter().enumerate() {
                let ip = format!("172.{}.{}.10", 16 + i / 256, i % 256);
                if i % 10 == 0 {
                    assert_eq!(
                        login(&c, &base, &ip, u, &format!("{p}x")).await,
                        401,
                        "a typo reaches the service"
                    );
                    let _ = login(&c, &base, &ip, &u.to_uppercase(), p).await; // caps lock on
                }
                finals.push(login(&c, &base, &ip, u, p).await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            finals
        }
    };
    let (attack, finals) = tokio::join!(attack, members);

    let refused = attack.iter().filter(|s| **s == 403).count();
    let taken_over = attack.iter().filter(|s| **s == 200).count();
    eprintln!(
        "stuffing: {refused} of {} refused, {taken_over} logins succeeded, {} attempts reached the service",
        attack.len(),
        app.logins.load(Ordering::SeqCst)
    );
    assert!(
        attack.iter().all(|s| [200, 401, 403].contains(s)),
        "unexpected statuses"
    );
    assert!(
        refused * 100 >= attack.len() * 90,
        "only {refused} of {} refused",
        attack.len()
    );
    assert!(taken_over <= 10, "{taken_over} of 100 reused accounts taken over");
    assert!(finals.iter().all(|s| *s == 200), "a real user was refused: {finals:?}");

    // The events name the signals and never the password or the plain user name.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = std::fs::read_to_string(dir.path().join("data/events.jsonl")).unwrap_or_default();
    assert!(
        events
            .lines()
            .any(|l| l.contains("login:login") && l.contains("usernames_per_ip") || l.contains("failures_per_prefix")),
        "no stuffing event: {events:.2000}"
    );
    assert!(
        !events.contains("s3cret") && !events.contains("summer1"),
        "a password leaked into the events"
    );
    assert!(!events.contains("@mail"), "a plain user name in the events");
    drop(proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enumeration_on_user_ids_is_stopped() {
    let app = account_service(HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proc = start(
        dir.path(),
        port,
        app.addr,
        r#"
[[enumeration]]
name = "user-objects"
route = "users"
id = "path:2"
per = ["client_ip"]
window = "1m"
max_distinct = 40
max_error_ratio = 0.5
min_requests = 20
"#,
    );
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&c, &format!("{base}/ready"), &proc, |_| true).await;
    let get = |ip: String, id: u32| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            c.get(format!("{base}/users/{id}"))
                .header("x-forwarded-for", ip)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };

    // A scraper walks ids 1..=1000 from one address.
    let mut walk = Vec::new();
    for id in 1..=1000 {
        walk.push(get("203.0.113.66".into(), id).await);
    }
    let passed = walk.iter().filter(|s| **s == 200).count();
    assert!(passed <= 41, "{passed} objects read before the walk was stopped");
    assert!(walk[60..].iter().all(|s| *s == 403), "the walk went on");

    // A prober of ids that do not exist (forced browsing): stopped by the 404 share before 40 ids.
    let mut probe = Vec::new();
    for id in 0..40 {
        probe.push(get("203.0.113.67".into(), 90_000 + id * 17).await);
    }
    let first_refused = probe.iter().position(|s| *s == 403).expect("the prober was stopped");
    assert!(
        (20..=22).contains(&first_refused),
        "stopped after {first_refused}: {probe:?}"
    );

    // 50 users each reading their own few objects many times pass.
    for u in 0..50u32 {
        for k in 0..30 {
            let s = get(format!("198.51.100.{}", u + 1), 1 + u * 3 + k % 3).await;
            assert_eq!(s, 200, "user {u}");
        }
    }
    drop(proc);
}

async fn otp(c: &reqwest::Client, base: &str, what: &str, ip: &str, body: serde_json::Value) -> u16 {
    c.post(format!("{base}/otp/{what}"))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_pumping_on_a_few_ranges_is_stopped_and_real_users_get_their_codes() {
    let app = account_service(HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proc = start(
        dir.path(),
        port,
        app.addr,
        r#"
[[otp]]
route = "otp-send"
phone = "json:/phone"
verify_route = "otp-verify"
window = "1h"
max_per_number = 3
max_per_ip = 5
min_sends = 20
min_conversion = 0.3
verify_grace = "2s"
block_for = "1h"
deny_prefixes = ["+881", "+882"]

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#,
    );
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&c, &format!("{base}/ready"), &proc, |_| true).await;

    // Real users: 400 sign-ups from 25 countries, mobile numbers in several ranges each, written the ways
    // people type them. Most verify at once, some mistype the code first, one in twenty asks for a resend,
    // one in seven never comes back.
    let countries: [(&str, &[&str]); 25] = [
        ("+1", &["415 555", "212 555", "646 555", "312 555"]),
        ("+44", &["7700 900", "7400 123", "7555 010"]),
        ("+49", &["151 2345", "160 9876", "176 5432"]),
        ("+33", &["6 12 34", "7 81 22"]),
        ("+34", &["612 34", "699 87"]),
        ("+39", &["347 123", "333 987"]),
        ("+81", &["90 1234", "80 5678"]),
        ("+91", &["98765 4", "91234 5"]),
        ("+55", &["11 98765", "21 99876"]),
        ("+61", &["412 345", "498 765"]),
        ("+52", &["55 1234", "33 9876"]),
        ("+353", &["85 123", "87 654"]),
        ("+234", &["803 123", "805 987"]),
        ("+27", &["82 123", "71 987"]),
        ("+65", &["9123", "8765"]),
        ("+82", &["10 1234", "10 9876"]),
        ("+86", &["138 0013", "139 1234"]),
        ("+31", &["6 1234", "6 9876"]),
        ("+46", &["70 123", "73 987"]),
        ("+48", &["512 345", "601 987"]),
        ("+90", &["532 123", "505 987"]),
        ("+62", &["812 3456", "813 9876"]),
        ("+63", &["917 123", "918 987"]),
        ("+20", &["100 123", "122 987"]),
        ("+971", &["50 123", "55 987"]),
    ];
    let users: Vec<(String, String)> = (0..400)
        .map(|i| {
            let (cc, ranges) = countries[i % countries.len()];
            let range = ranges[(i / countries.len()) % ranges.len()];
            let tail = format!("{:04}", (i * 37) % 10_000);
            let phone = match i % 3 {
                0 => format!("{cc} {range} {tail}"),
                1 => format!("{cc}{}{tail}", range.replace(' ', "")),
                _ => format!("00{} {range}-{tail}", &cc[1..]),
            };
            (phone, format!("10.{}.{}.{}", i / 250, i % 250, 1 + i % 200))
        })
        .collect();
    let members = {
        let (c, base, sms) = (c.clone(), base.clone(), app.sms.clone());
        async move {
            let mut refused = Vec::new();
            for (i, (phone, ip)) in users.iter().enumerate() {
                let sends = if i % 20 == 0 { 2 } else { 1 };
                for _ in 0..sends {
                    let s = otp(&c, &base, "send", ip, serde_json::json!({ "phone": phone })).await;
                    if s != 200 {
                        refused.push(format!("send {phone}: {s}"));
                    }
                }
                if i % 7 == 3 {
                    continue; // never types the code
                }
                let code = sms.lock().unwrap().get(phone).cloned().unwrap_or_default();
                if i % 11 == 0 {
                    let wrong = otp(
                        &c,
                        &base,
                        "verify",
                        ip,
                        serde_json::json!({ "phone": phone, "code": "000000" }),
                    )
                    .await;
                    assert_eq!(wrong, 401, "a mistyped code reaches the service");
                }
                let s = otp(
                    &c,
                    &base,
                    "verify",
                    ip,
                    serde_json::json!({ "phone": phone, "code": code }),
                )
                .await;
                if s != 200 {
                    refused.push(format!("verify {phone}: {s}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            refused
        }
    };

    // The campaign: codes to numbers in three ranges it is paid for (and some to satellite ranges), from
    // 1,000 rotating addresses, 16 requests in flight, never verified.
    let targets = ["+44 7911 12", "+371 29 1", "+992 93 8", "+882 16 55"];
    let attack = {
        let (c, base) = (c.clone(), base.clone());
        async move {
            stream::iter(0..3100usize)
                .map(|i| {
                    let (c, base) = (c.clone(), base.clone());
                    let target = if i % 31 == 0 { targets[3] } else { targets[i % 3] };
                    let phone = format!("{target}{:05}", (i * 7_919) % 100_000);
                    let ip = format!("{}.{}.{}.{}", 60 + i % 40, (i / 40) % 25, (i * 13) % 250, 1 + i % 250);
                    async move {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        (
                            target,
                            otp(&c, &base, "send", &ip, serde_json::json!({ "phone": phone })).await,
                        )
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<(&str, u16)>>()
                .await
        }
    };
    let (refused, attack) = tokio::join!(members, attack);

    let texted = attack.iter().filter(|(_, s)| *s == 200).count();
    let stopped = attack.iter().filter(|(_, s)| *s == 403).count();
    let per_target: Vec<usize> = targets
        .iter()
        .map(|t| attack.iter().filter(|(x, s)| x == t && *s == 200).count())
        .collect();
    eprintln!(
        "sms pumping: {stopped} of {} stopped, {texted} codes texted (per range {per_target:?}); real users refused: {}",
        attack.len(),
        refused.len()
    );
    assert!(
        attack.iter().all(|(_, s)| [200, 403].contains(s)),
        "unexpected statuses"
    );
    assert!(
        texted * 100 <= attack.len() * 5,
        "{texted} of {} pumped codes were texted",
        attack.len()
    );
    assert_eq!(per_target[3], 0, "a denied range was texted");
    assert!(refused.is_empty(), "real users were refused: {refused:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = std::fs::read_to_string(dir.path().join("data/events.jsonl")).unwrap_or_default();
    for signal in ["volume_spike", "denied_range: +882"] {
        assert!(
            events
                .lines()
                .any(|l| l.contains("sms_pumping:otp-send") && l.contains(signal)),
            "no {signal} event: {events:.2000}"
        );
    }
    drop(proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_recognised_by_the_body_when_the_status_says_200() {
    let mut accounts = HashMap::new();
    accounts.insert("victim@example.org".to_string(), "correct horse".to_string());
    accounts.insert("ada@example.org".to_string(), "Analytical-Engine-1843".to_string());
    let app = account_service(accounts).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proc = start(
        dir.path(),
        port,
        app.addr,
        r#"
[[logins]]
route = "session"
username = "json:/username"
password = "json:/password"
failure_status = [401]
failure_body = "invalid_credentials"
window = "10m"
max_ips_per_username = 5
"#,
    );
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&c, &format!("{base}/ready"), &proc, |_| true).await;
    let attempt = |ip: String, user: &'static str, password: &'static str| {
        let c = c.clone();
        let url = format!("{base}/v1/session");
        async move {
            let r = c
                .post(url)
                .header("x-forwarded-for", ip)
                .json(&serde_json::json!({ "username": user, "password": password }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Password spraying on one account from many addresses; every answer is 200 with an error body, which
    // reaches the client whole.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let (status, body) = attempt(format!("198.18.{i}.9"), "victim@example.org", "Winter2024!").await;
        if status == 200 {
            assert!(body.contains("invalid_credentials"), "{body}");
        }
        statuses.push(status);
        tokio::time::sleep(Duration::from_millis(20)).await; // the verdict is counted after the body
    }
    let first_refused = statuses.iter().position(|s| *s == 403);
    assert_eq!(
        first_refused,
        Some(6),
        "once more than five addresses failed, the next is refused: {statuses:?}"
    );
    // Someone else logs in; a 200 with a token is not a failure.
    for _ in 0..3 {
        let (status, body) = attempt("192.0.2.44".into(), "ada@example.org", "Analytical-Engine-1843").await;
        assert_eq!(status, 200);
        assert!(body.contains("token"));
    }
    drop(proc);
}
