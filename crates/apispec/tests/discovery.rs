//! Discovery against a known spec: traffic generated from the shop spec (OpenAPI 3.0, 82 operations:
//! integer ids, UUIDs, slugs, codes and SKUs in paths, fixed words next to them) is fed to an inventory.
//! The endpoints it infers must recover at least 95 % of the operations that were called, with the
//! right templates, and no endpoint may come from id variation. Planted cases must come out exactly:
//! an undocumented debug endpoint (shadow), five operations never called (orphans), and the calls to
//! the three deprecated operations and to four that only the previous version of the spec had (zombies).

use rampart_apispec::discovery::{self, EndpointKey, Inventory, Observation};
use rampart_apispec::values::Kind;
use rampart_apispec::Contract;
use std::collections::BTreeSet;
use std::path::Path;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// A small deterministic generator (xorshift), so that the test is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A value for a path parameter, as a client of the API would send it.
fn value(rng: &mut Rng, name: &str, kind: &Kind, format: Option<&str>) -> String {
    const WORDS: &[&str] = &[
        "summer", "linen", "blue", "kids", "outdoor", "sale", "wool", "denim", "retro", "eco",
    ];
    match (kind, format) {
        (Kind::Integer, _) => (1 + rng.next() % 900_000).to_string(),
        (_, Some("uuid")) => {
            let h = format!("{:016x}{:016x}", rng.next(), rng.next());
            format!(
                "{}-{}-4{}-a{}-{}",
                &h[..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )
        }
        _ if name.to_ascii_lowercase().contains("slug") => {
            format!("{}-{}-{}", rng.pick(WORDS), rng.pick(WORDS), rng.next() % 1000)
        }
        _ if name.to_ascii_lowercase().contains("sku") => {
            format!("TSH{}-{}", rng.next() % 100_000, rng.pick(&["BLU", "RED", "M", "XL"]))
        }
        _ => format!(
            "{}{}",
            rng.pick(&["SAVE", "WELCOME", "VIP", "SPRING"]),
            rng.next() % 10_000
        ),
    }
}

#[test]
fn generated_traffic_recovers_the_spec_and_the_planted_cases() {
    let spec = Contract::load(&fixtures().join("shop/openapi.yaml")).unwrap();
    let old = Contract::load(&fixtures().join("shop/openapi.v1.yaml")).unwrap();
    let base = &spec.base_paths()[0];
    let key = |method: &str, template: &str| EndpointKey {
        method: method.to_string(),
        shape: discovery::shape(template),
    };
    let headers = http::HeaderMap::new();
    let mut inv = Inventory::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let observe = |inv: &mut Inventory, method: &str, path: &str, at: u64| {
        inv.observe(&Observation {
            method,
            path,
            query: None,
            headers: &headers,
            body: b"",
            status: 200,
            response: b"",
            at,
        });
    };

    // Five operations nobody calls: the orphans.
    let ops: Vec<_> = spec.operations().collect();
    let orphans: BTreeSet<EndpointKey> = ops
        .iter()
        .filter(|o| !o.deprecated)
        .step_by(16)
        .take(5)
        .map(|o| key(&o.method, &o.template))
        .collect();
    assert_eq!(orphans.len(), 5);
    let mut called = BTreeSet::new();
    let mut t = 1_764_000_000;
    for round in 0..40 {
        for o in &ops {
            let k = key(&o.method, &o.template);
            if orphans.contains(&k) {
                continue;
            }
            let mut path = base.clone();
            for seg in o.template.split('/').filter(|s| !s.is_empty()) {
                path.push('/');
                match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => {
                        let (_, kind, format) = o.path_params.iter().find(|(n, _, _)| n == name).unwrap();
                        path.push_str(&value(&mut rng, name, kind, format.as_deref()));
                    }
                    None => path.push_str(seg),
                }
            }
            observe(&mut inv, &o.method, &path, t);
            t += 1;
            called.insert(k);
        }
        // Planted: an undocumented debug endpoint, and the four operations the current version removed.
        if round % 2 == 0 {
            observe(&mut inv, "GET", "/v2/internal/debug/vars", t);
            observe(
                &mut inv,
                "GET",
                &format!("/v2/products/{}/legacy-pricing", 100 + round),
                t,
            );
            observe(
                &mut inv,
                "POST",
                &format!(
                    "/v2/carts/{}/apply-voucher",
                    value(&mut rng, "cartId", &Kind::String, Some("uuid"))
                ),
                t,
            );
            observe(&mut inv, "GET", &format!("/v2/customers/{}/wishlist", 7000 + round), t);
            observe(
                &mut inv,
                "DELETE",
                &format!(
                    "/v2/sessions/{}",
                    value(&mut rng, "sessionId", &Kind::String, Some("uuid"))
                ),
                t,
            );
        }
    }

    let endpoints = inv.endpoints();
    let seen: BTreeSet<EndpointKey> = endpoints
        .iter()
        .map(|e| key(&e.method, e.template.strip_prefix(base.as_str()).unwrap()))
        .collect();
    let recovered = called.intersection(&seen).count();
    let ratio = recovered as f64 / called.len() as f64;
    let missed: Vec<_> = called.difference(&seen).collect();
    assert!(
        ratio >= 0.95,
        "recovered {recovered} of {} ({ratio:.3}); missed {missed:#?}",
        called.len()
    );

    let d = discovery::diff(&endpoints, &spec, Some(&old));
    let shadow: Vec<_> = d.shadow.iter().map(|k| format!("{} {}", k.method, k.shape)).collect();
    assert_eq!(
        shadow,
        vec!["GET /internal/debug/vars"],
        "no spurious endpoints from id variation"
    );
    assert_eq!(d.orphan.iter().cloned().collect::<BTreeSet<_>>(), orphans);
    let zombies: BTreeSet<String> = d.zombie.iter().map(|k| format!("{} {}", k.method, k.shape)).collect();
    let mut expected: BTreeSet<String> = ops
        .iter()
        .filter(|o| o.deprecated)
        .map(|o| format!("{} {}", o.method, discovery::shape(&o.template)))
        .collect();
    expected.extend(
        [
            "GET /products/{}/legacy-pricing",
            "POST /carts/{}/apply-voucher",
            "GET /customers/{}/wishlist",
            "DELETE /sessions/{}",
        ]
        .map(String::from),
    );
    assert_eq!(zombies, expected);
    eprintln!(
        "discovery: {recovered} of {} called operations recovered ({:.1} %), {} endpoints, shadow {}, orphan {}, zombie {}",
        called.len(),
        ratio * 100.0,
        endpoints.len(),
        d.shadow.len(),
        d.orphan.len(),
        d.zombie.len()
    );

    // The export is an OpenAPI 3.1 document that loads back as a contract with the same operations.
    let doc = discovery::export(&endpoints, "shop (discovered)");
    let dir = tempfile_dir();
    let file = dir.join("discovered.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let back = Contract::load(&file).unwrap();
    assert_eq!(back.operations().count(), endpoints.len());
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rampart-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
