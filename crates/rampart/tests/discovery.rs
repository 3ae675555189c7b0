//! API discovery through the real binary: traffic through the gateway builds the inventory in the data
//! directory (ids and slugs folded into parameters, sensitive data counted by kind, credentials by
//! scheme, blocked attacks left out), `rampart openapi export` prints it as OpenAPI 3.1, and `rampart
//! openapi diff` compares it with a spec (shadow and orphan endpoints).

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_builds_the_inventory_and_the_cli_exports_and_diffs_it() {
    let app = backend("api").await;
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
name = "api"
path = "/"
upstream = "app"
mode = "block"

[discovery]
flush_interval = "200ms"
"#,
        backend = app.addr
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if c.get(format!("{base}/api/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "gateway never answered: {}", proc.dump());
    for i in 0..30 {
        let r = c
            .get(format!("{base}/api/orders/{}?expand=items&page={i}", 1000 + i * 7))
            .header(
                "authorization",
                "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ6b2UifQ.c2lnbmF0dXJl",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let slug = format!("linen-shirt-{}", i * 13 % 97);
        c.get(format!("{base}/api/products/{slug}")).send().await.unwrap();
    }
    for name in ["Aoife O'Brien", "Zoë Ng", "José Álvarez"] {
        let r = c
            .post(format!("{base}/api/orders"))
            .header("content-type", "application/json")
            .body(serde_json::json!({"customer": name, "email": "zoe@example.com", "items": [{"sku": "TSH-1", "qty": 2}]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..3 {
        c.get(format!("{base}/api/internal/debug")).send().await.unwrap();
    }
    // Personal data in the answers only.
    for id in [77, 78] {
        let r = c.get(format!("{base}/pii/customers/{id}")).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("aoife@example.ie"));
    }
    // Blocked: not part of the API; and an attack on a known endpoint, which counts against it.
    for target in ["/api/search", "/api/orders/1007"] {
        let r = c
            .get(format!(
                "{base}{target}?q=1'%20UNION%20SELECT%20password%20FROM%20users--"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }

    // The inventory is written every 200 ms.
    let export = || {
        let mut cmd = rampart();
        cmd.args(["openapi", "export", "--db"])
            .arg(dir.path().join("data/inventory.db"));
        output(cmd)
    };
    let mut doc = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (out, stdout, _) = export();
        if out.status.success() {
            doc = serde_json::from_str(&stdout).unwrap();
            if doc["paths"]["/api/internal/debug"].is_object() {
                break;
            }
        }
    }
    let paths = doc["paths"].as_object().unwrap_or_else(|| panic!("no export: {doc}"));
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "/api/health",
            "/api/internal/debug",
            "/api/orders",
            "/api/orders/{id}",
            "/api/products/{param}",
            "/pii/customers/{id}"
        ],
        "{doc:#}"
    );
    let get_order = &paths["/api/orders/{id}"]["get"];
    assert_eq!(get_order["x-rampart"]["hits"], 30);
    assert_eq!(get_order["x-rampart"]["attacks"], 1);
    assert_eq!(get_order["x-rampart"]["auth"], serde_json::json!(["bearer"]));
    let params: Vec<&str> = get_order["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, vec!["id", "expand", "page"]);
    let post_order = &paths["/api/orders"]["post"];
    assert_eq!(post_order["x-rampart"]["sensitive"]["email"], 3);
    assert!(post_order["requestBody"]["content"]["application/json"]["schema"]["properties"]["customer"].is_object());
    assert_eq!(
        paths["/pii/customers/{id}"]["get"]["x-rampart"]["sensitive"],
        serde_json::json!({"email": 2, "iban": 2}),
        "sensitive data in answers"
    );
    assert!(get_order["x-rampart"]["sensitive"].get("email").is_none());
    assert!(!doc.to_string().contains("zoe@example.com"), "values are never kept");
    assert!(!doc.to_string().contains("c2lnbmF0dXJl"), "tokens are never kept");

    // Against a spec: the debug endpoint is a shadow, the returns endpoint an orphan.
    std::fs::write(
        dir.path().join("spec.yaml"),
        r#"openapi: 3.1.0
info: {title: shop, version: "1"}
paths:
  /api/health: {get: {responses: {"200": {description: ok}}}}
  /api/orders:
    post: {responses: {"201": {description: created}}}
  /api/orders/{orderId}:
    get:
      parameters: [{name: orderId, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
  /api/products/{slug}:
    get:
      parameters: [{name: slug, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /api/returns: {get: {responses: {"200": {description: ok}}}}
  /pii/customers/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok}}
"#,
    )
    .unwrap();
    let mut cmd = rampart();
    cmd.args(["openapi", "diff"])
        .arg(dir.path().join("spec.yaml"))
        .args(["--json", "--db"])
        .arg(dir.path().join("data/inventory.db"));
    let (out, stdout, stderr) = output(cmd);
    assert!(out.status.success(), "{stderr}");
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["shadow"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["shadow"][0]["path"], "/api/internal/debug");
    assert_eq!(d["shadow"][0]["hits"], 3);
    assert_eq!(
        d["orphan"],
        serde_json::json!([{"method": "GET", "path": "/api/returns"}])
    );
    assert_eq!(d["zombie"], serde_json::json!([]));
    drop(proc);
}

/// The shop spec of the apispec fixtures (OpenAPI 3.0, 82 operations), called through the gateway with
/// generated values: the exported inventory recovers at least 95 % of the operations called, with
/// their templates, and nothing spurious comes from id variation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_traffic_for_a_known_spec_is_recovered_through_the_gateway() {
    use rampart_apispec::discovery::{shape, EndpointKey};
    use rampart_apispec::values::Kind;
    use std::collections::BTreeSet;
    let spec_path = format!(
        "{}/../apispec/tests/fixtures/shop/openapi.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let spec = rampart_apispec::Contract::load(std::path::Path::new(&spec_path)).unwrap();
    let app = backend("shop").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "data_dir = \"./data\"\n[log]\naccess = false\n[[listeners]]\naddr = \"127.0.0.1:{port}\"\n\
         [upstreams.app]\ntargets = [\"http://{}\"]\n[[routes]]\nname = \"shop\"\npath = \"/\"\nupstream = \"app\"\n\
         mode = \"off\"\n[discovery]\nflush_interval = \"200ms\"\n",
        app.addr
    );
    let proc = run_with_config(dir.path(), &config);
    let c = http_client();
    let base = format!("http://127.0.0.1:{port}");
    // Ready when it listens (a probe request would be an endpoint of its own).
    wait_listening(port, &proc).await;
    // Values as clients send them: integers, UUIDs, slugs, codes; a small xorshift keeps runs equal.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut called = BTreeSet::new();
    let ops: Vec<_> = spec.operations().collect();
    for _ in 0..12 {
        for o in &ops {
            let mut path = spec.base_paths()[0].clone();
            for seg in o.template.split('/').filter(|s| !s.is_empty()) {
                path.push('/');
                let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                    path.push_str(seg);
                    continue;
                };
                let (_, kind, format) = o.path_params.iter().find(|(n, _, _)| n == name).unwrap();
                let v = next();
                path.push_str(&match (kind, format.as_deref()) {
                    (Kind::Integer, _) => (1 + v % 900_000).to_string(),
                    (_, Some("uuid")) => {
                        let h = format!("{v:016x}{:016x}", v.rotate_left(17));
                        format!(
                            "{}-{}-4{}-a{}-{}",
                            &h[..8],
                            &h[8..12],
                            &h[13..16],
                            &h[17..20],
                            &h[20..32]
                        )
                    }
                    _ if name.contains("Slug") => format!("summer-linen-{}", v % 5000),
                    _ => format!("CODE{}X", v % 100_000),
                });
            }
            let r = c
                .request(o.method.parse().unwrap(), format!("{base}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{} {path}", o.method);
            called.insert(EndpointKey {
                method: o.method.clone(),
                shape: shape(&o.template),
            });
        }
    }
    let mut seen = BTreeSet::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut cmd = rampart();
        cmd.args(["openapi", "export", "--db"])
            .arg(dir.path().join("data/inventory.db"));
        let (out, stdout, _) = output(cmd);
        if !out.status.success() {
            continue;
        }
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        seen = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(t, item)| {
                let t = t.strip_prefix("/v2").unwrap_or(t).to_string();
                item.as_object().unwrap().keys().map(move |m| EndpointKey {
                    method: m.to_ascii_uppercase(),
                    shape: shape(&t),
                })
            })
            .collect();
        if seen.len() >= called.len() {
            break;
        }
    }
    let recovered = called.intersection(&seen).count();
    let spurious: Vec<_> = seen.difference(&called).collect();
    eprintln!(
        "through the gateway: {recovered} of {} operations recovered, {} spurious",
        called.len(),
        spurious.len()
    );
    assert!(
        recovered * 100 >= called.len() * 95,
        "recovered {recovered} of {}: missing {:#?}",
        called.len(),
        called.difference(&seen).collect::<Vec<_>>()
    );
    assert!(spurious.is_empty(), "spurious endpoints: {spurious:#?}");
    drop(proc);
}
