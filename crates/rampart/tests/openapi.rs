//! OpenAPI positive security through the real binary, with the shop spec of the apispec fixtures
//! (OpenAPI 3.0, YAML, relative-file $refs): requests the contract allows reach the backend; a wrong path
//! parameter, an unknown path, an undefined method and a form body the schema refuses are blocked with
//! OAS rule ids and exact locations in the events; a route whose contract only monitors lets them pass
//! and records them; a spec that does not load is refused by `rampart check` with the config's line.

mod common;

use common::*;
use std::time::Duration;

fn shop_spec() -> String {
    format!(
        "{}/../apispec/tests/fixtures/shop/openapi.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_contract_are_blocked_with_their_location() {
    let app = backend("shop").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = shop_spec();
    let config = format!(
        r#"data_dir = "./data"

[log]
access = false

[[listeners]]
addr = "127.0.0.1:{port}"

[upstreams.shop]
targets = ["http://{backend}"]

[[routes]]
name = "shop"
host = "api.shop.example"
path = "/v2"
upstream = "shop"
mode = "block"
[routes.openapi]
spec = "{spec}"

[[routes]]
name = "shop-monitored"
host = "staging.shop.example"
path = "/v2"
upstream = "shop"
mode = "block"
[routes.openapi]
spec = "{spec}"
mode = "monitor"

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#,
        backend = app.addr
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    let send = |method: &str, host: &'static str, target: &str, form: Option<&'static str>| {
        let mut r = c
            .request(method.parse().unwrap(), format!("{base}{target}"))
            .header("host", host);
        if let Some(body) = form {
            r = r.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        async move { r.send().await.map(|r| r.status().as_u16()) }
    };
    let mut up = false;
    for _ in 0..100 {
        if send("GET", "api.shop.example", "/v2/products/42", None).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "gateway never answered: {}", proc.dump());

    let login = "username=zoe.obrien%40example.com&password=s3cr3t%21P%C3%A4ss&grant_type=password&remember_me=true";
    let extra = "username=zoe&password=s3cr3t%21Pass&grant_type=password&otp=123456";
    let cases: [(&str, &str, Option<&'static str>, u16); 7] = [
        ("GET", "/v2/products/42", None, 200),
        (
            "GET",
            "/v2/products?page=2&limit=50&sort=price_asc&tag=summer&tag=sale",
            None,
            200,
        ),
        ("POST", "/v2/auth/login", Some(login), 200),
        ("GET", "/v2/products/abc", None, 403),
        ("GET", "/v2/no-such-thing", None, 403),
        ("DELETE", "/v2/products", None, 403),
        ("POST", "/v2/auth/login", Some(extra), 403),
    ];
    for (method, target, body, want) in cases {
        let got = send(method, "api.shop.example", target, body).await.unwrap();
        assert_eq!(got, want, "{method} {target}");
        // The monitoring route lets everything through.
        let got = send(method, "staging.shop.example", target, body).await.unwrap();
        assert_eq!(got, 200, "monitored {method} {target}");
    }

    let events = events_until(dir.path(), |events| {
        events.lines().filter(|l| l.contains("OAS-")).count() >= 8
    })
    .await;
    let found: Vec<(String, String, String, String)> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|e| {
            let (route, action) = (
                e["route"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            );
            e["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["class"] == "api")
                .map(|f| {
                    (
                        route.clone(),
                        action.clone(),
                        f["rule_id"].as_str().unwrap().to_string(),
                        f["point"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (rule, point) in [
        ("OAS-003", "path.productId"),
        ("OAS-001", "path"),
        ("OAS-002", "method"),
        ("OAS-007", "body.otp"),
    ] {
        for (route, action) in [("shop", "block"), ("shop-monitored", "monitor")] {
            let want = (
                route.to_string(),
                action.to_string(),
                rule.to_string(),
                point.to_string(),
            );
            assert!(found.contains(&want), "missing {want:?} in {found:#?}");
        }
    }
    assert_eq!(found.len(), 8, "nothing valid was flagged: {found:#?}");
    drop(proc);
}

#[test]
fn a_spec_that_does_not_load_is_refused_with_the_config_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - $ref: '#/components/parameters/Missing'\n",
    )
    .unwrap();
    let config = "[[listeners]]\naddr = \"127.0.0.1:1\"\n\n[upstreams.app]\ntargets = [\"http://127.0.0.1:9\"]\n\n[[routes]]\nname = \"api\"\npath = \"/\"\nupstream = \"app\"\n[routes.openapi]\nspec = \"broken.yaml\"\n";
    std::fs::write(dir.path().join("rampart.toml"), config).unwrap();
    let mut cmd = rampart();
    cmd.args(["check", "--config"]).arg(dir.path().join("rampart.toml"));
    let (out, _, stderr) = output(cmd);
    assert!(!out.status.success());
    assert!(stderr.contains("rampart.toml:12:"), "{stderr}");
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("points at nothing"),
        "{stderr}"
    );
}

/// With `responses = true` the upstream's answers are checked against the operation too, after they
/// have gone to the client unchanged: an undocumented status and a body without a required property are
/// recorded (action monitor), and nothing is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_outside_the_contract_are_recorded_not_blocked() {
    let app = backend("users").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.yaml"),
        r#"openapi: 3.1.0
info: {title: users, version: "1"}
paths:
  /users/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
        - {name: fail, in: query, schema: {type: integer}}
      responses:
        "200":
          description: a user
          content:
            application/json:
              schema: {type: object, required: [backend, name], properties: {backend: {type: string}}}
"#,
    )
    .unwrap();
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
name = "users"
path = "/users"
upstream = "app"
mode = "block"
[routes.openapi]
spec = "users.yaml"
responses = true

[[events.sinks]]
name = "file"
type = "jsonl"
flush_interval = "50ms"
"#,
        backend = app.addr
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_listening(port, &proc).await;
    // The backend answers {"backend", "uri", "request_id"}: no `name`.
    let r = c.get(format!("{base}/users/7")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", proc.dump());
    assert!(
        r.text().await.unwrap().contains("\"backend\":\"users\""),
        "the answer is passed unchanged"
    );
    // `?fail=1` makes it answer 401, which the operation does not document.
    let r = c.get(format!("{base}/users/7?fail=1")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let events = events_until(dir.path(), |events| {
        events.contains("OAS-011") && events.contains("OAS-012")
    })
    .await;
    let answers: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["reason"] == "answer outside the OpenAPI contract")
        .collect();
    assert_eq!(answers.len(), 2, "{events}");
    for e in &answers {
        assert_eq!(e["action"], "monitor");
        assert_eq!(e["route"], "users");
    }
    let found: Vec<(&str, &str, u64)> = answers
        .iter()
        .map(|e| {
            (
                e["findings"][0]["rule_id"].as_str().unwrap(),
                e["findings"][0]["point"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(found.contains(&("OAS-012", "response.body.name", 200)), "{found:?}");
    assert!(found.contains(&("OAS-011", "response.status", 401)), "{found:?}");
    drop(proc);
}
