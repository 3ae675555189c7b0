//! The conformance suite: valid and invalid requests (tests/fixtures/cases.jsonl) against two realistic
//! specs, an OpenAPI 3.0 shop (YAML, with relative-file $refs) and an OpenAPI 3.1 bank (JSON). A valid
//! request must pass with no violation; an invalid one breaks exactly one rule and must be reported with
//! that kind, at that location.

use rampart_apispec::{ApiRequest, Contract};
use std::collections::HashMap;
use std::path::Path;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

#[test]
fn specs_load_with_every_operation() {
    let shop = Contract::load(&fixtures().join("shop/openapi.yaml")).unwrap();
    let bank = Contract::load(&fixtures().join("bank/openapi.json")).unwrap();
    let old = Contract::load(&fixtures().join("shop/openapi.v1.yaml")).unwrap();
    assert_eq!(shop.version, rampart_apispec::Version::V30);
    assert_eq!(bank.version, rampart_apispec::Version::V31);
    assert!(shop.operations().count() >= 55, "{}", shop.operations().count());
    assert!(bank.operations().count() >= 55, "{}", bank.operations().count());
    assert_eq!(shop.operations().filter(|o| o.deprecated).count(), 3);
    assert_eq!(old.operations().count(), 36);
}

#[test]
fn every_case_gets_the_expected_verdict() {
    let text = std::fs::read_to_string(fixtures().join("cases.jsonl")).unwrap();
    let mut contracts: HashMap<String, Contract> = HashMap::new();
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let spec = case["spec"].as_str().unwrap();
        let contract = contracts
            .entry(spec.to_string())
            .or_insert_with(|| Contract::load(&fixtures().join(spec)).unwrap());
        let target = case["target"].as_str().unwrap();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let mut headers = http::HeaderMap::new();
        for (k, v) in case["headers"].as_object().unwrap() {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            );
        }
        let body = case["body"].as_str().unwrap_or_default();
        let checked = contract.check(&ApiRequest {
            method: case["method"].as_str().unwrap(),
            path,
            query,
            headers: &headers,
            body: body.as_bytes(),
            body_complete: true,
        });
        total += 1;
        let got: Vec<(String, String)> = checked
            .violations
            .iter()
            .map(|v| (v.kind.as_str().to_string(), v.location.clone()))
            .collect();
        let ok = match case["expect"].as_str().unwrap() {
            "valid" => got.is_empty(),
            _ => {
                let want = (
                    case["kind"].as_str().unwrap().to_string(),
                    case["where"].as_str().unwrap().to_string(),
                );
                got.len() == 1 && got[0] == want
            }
        };
        if !ok {
            let why: Vec<&str> = checked.violations.iter().map(|v| v.message.as_str()).collect();
            failures.push(format!(
                "{} {target} expected {} {} {}, got {got:?} {why:?}",
                case["method"].as_str().unwrap(),
                case["expect"],
                case["kind"],
                case["where"]
            ));
        }
    }
    assert!(total >= 150, "{total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn answers_are_checked_against_the_documented_responses() {
    let dir = std::env::temp_dir().join(format!("rampart-responses-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("api.yaml");
    std::fs::write(
        &spec,
        r#"openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /users/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses:
        "200":
          description: a user
          content:
            application/json:
              schema:
                type: object
                required: [id, name]
                properties:
                  id: {type: integer}
                  name: {type: string}
                  nickname: {type: string, nullable: true}
        4XX:
          description: client error
          content:
            application/problem+json:
              schema: {type: object, required: [title], properties: {title: {type: string}}}
"#,
    )
    .unwrap();
    let c = Contract::load(&spec).unwrap();
    let check = |status, ct: &str, body: &str| {
        c.check_response("GET", "/users/7", status, Some(ct), body.as_bytes(), true)
            .into_iter()
            .map(|v| (v.kind.as_str(), v.location))
            .collect::<Vec<_>>()
    };
    assert!(check(
        200,
        "application/json",
        r#"{"id": 7, "name": "Aoife", "nickname": null}"#
    )
    .is_empty());
    assert!(check(404, "application/problem+json", r#"{"title": "not found"}"#).is_empty());
    assert_eq!(
        check(500, "application/json", "{}"),
        vec![("response_status", "response.status".to_string())]
    );
    assert_eq!(
        check(200, "application/json", r#"{"id": "7", "name": "Aoife"}"#),
        vec![("response_body", "response.body.id".to_string())]
    );
    assert_eq!(
        check(200, "text/html", "<h1>oops</h1>"),
        vec![("response_body", "response.header.content-type".to_string())]
    );
    // Only the start of a long answer: its schema is not judged.
    assert!(c
        .check_response(
            "GET",
            "/users/7",
            200,
            Some("application/json"),
            b"{\"id\": 7, \"na",
            false
        )
        .is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
