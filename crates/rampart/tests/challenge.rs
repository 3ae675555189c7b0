//! The `challenge` action with a real browser: a client over a challenge limit gets a proof-of-work page;
//! headless Chromium runs it, gets the clearance cookie and reaches the backend, while a script that runs
//! no JavaScript (or forges the cookie) stays behind the limit.
//!
//! Chromium is installed by .ci/run; outside CI the test skips when it is missing.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn chromium() -> Option<String> {
    let found = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium is not installed; .ci/run installs it");
        }
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
    }
    found.map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_solves_the_challenge_and_a_script_does_not() {
    let Some(browser) = chromium() else { return };
    let app = backend("app").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.app]
targets = ["http://{backend}"]

[[routes]]
name = "shop"
path = "/products"
upstream = "app"
mode = "block"

[[routes]]
name = "rest"
path = "/"
upstream = "app"
mode = "block"

[challenge]
secret = "test fleet secret"
difficulty = 14
clearance = "10m"

[[rate_limits]]
name = "browsing"
routes = ["shop"]
key = ["client_ip"]
rate = "3/1m"
burst = 3
action = "challenge"
"#,
        backend = app.addr
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&c, &format!("{base}/ready"), &proc, |_| true).await;

    // A script: three requests pass, the fourth gets the page (no JavaScript here, so that is the end).
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.get(format!("{base}/products")).send().await.unwrap());
    }
    let page = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == 200));
    assert_eq!(page.status(), 403);
    assert_eq!(page.headers()["x-rampart-challenge"], "1");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("rampart_clearance"), "{html}");
    // A made-up clearance is no clearance.
    let forged = c
        .get(format!("{base}/products"))
        .header(
            "cookie",
            "rampart_clearance=9999999999.0011223344556677.00000000000000000000000000000000.42",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // A browser from the same address, over the limit too: it solves the page and lands on the product.
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{base}/products/42");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=15000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#""backend":"app""#) && dom.contains("/products/42"),
        "the browser did not get through: {dom:.2000}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The script still does not.
    let again = c.get(format!("{base}/products")).send().await.unwrap();
    assert_eq!(again.status(), 403);
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(proc);
}
