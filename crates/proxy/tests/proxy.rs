//! The data plane over real sockets: listeners and protocols, forwarding headers, bodies, upstream
//! failures and balancing, request smuggling, limits, WebSocket, reload and shutdown.
//!
//! Every test starts its own gateway (listeners on port 0) in front of small backends of its own.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n";

// ---------------------------------------------------------------------------------------------------------
// HTTP/1.1

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    for path in ["/one", "/two", "/three"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        // Read exactly one response: head, then Content-Length bytes.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let resp = loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("response on the kept-alive connection")
                .unwrap();
            assert!(n > 0, "connection closed after a keep-alive request");
            got.extend_from_slice(&buf[..n]);
            let parsed = parse_responses(&got);
            if let Some(r) = parsed.into_iter().next() {
                let len: usize = r.header("content-length").unwrap().parse().unwrap();
                if r.body.len() == len {
                    break r;
                }
            }
        };
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["uri"], path);
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    // Two requests in one write; the first is slower upstream, its answer must still come first.
    let resps = raw_responses(
        gw.addr(),
        b"GET /first?sleep=200 HTTP/1.1\r\nHost: example.test\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resps.len(), 2, "{resps:?}");
    assert_eq!(resps[0].status, 200);
    assert_eq!(resps[0].json()["uri"], "/first?sleep=200");
    assert_eq!(resps[1].json()["uri"], "/second");
}

#[tokio::test]
async fn chunked_request_body_is_forwarded() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let resps = raw_responses(
        gw.addr(),
        b"POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(resps.len(), 1);
    let j = resps[0].json();
    assert_eq!(j["body"], "hello world");
    assert_eq!(j["body_len"], 11);
    // Never both framings upstream.
    assert!(j["headers"]["transfer-encoding"].is_null() || j["headers"]["content-length"].is_null());
}

/// The checksum the echo backend computes.
fn checksum(sum: u64, data: &[u8]) -> u64 {
    data.iter().fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(b as u64))
}

#[tokio::test]
async fn large_body_streams_through_with_oversize_pass() {
    let b = echo("b1").await;
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url()], "")
            + &route(
                "upload",
                "/",
                "app",
                "body = { inspect_limit = \"64KiB\", oversize = \"pass\" }",
            )),
    ))
    .await;
    const MIB: usize = 1 << 20;
    const TOTAL: usize = 50;
    let chunk: Bytes = (0..MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let mut expected = 0u64;
    for _ in 0..TOTAL {
        expected = checksum(expected, &chunk);
    }
    let c = chunk.clone();
    let stream = futures_util::stream::iter(
        (0..TOTAL).map(move |_| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http_body::Frame::data(c.clone()))),
    );
    let body = http_body_util::StreamBody::new(stream).boxed();
    let started = Instant::now();
    let resp = send(&client(), Request::post(gw.url("/upload")).body(body).unwrap()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let j = resp.json();
    assert_eq!(j["body_len"], (TOTAL * MIB) as u64);
    assert_eq!(j["body_sum"], expected);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "50 MiB took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn trailers_pass_both_ways() {
    let b = echo("b1").await;
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url()], "")
            + &route("streamed", "/off", "app", "mode = \"off\"")
            + &route("inspected", "/", "app", "")),
    ))
    .await;
    // Request trailers, on the inspected (buffered) path and on the streamed one.
    for path in ["/inspected", "/off"] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\
             Trailer: x-req-trailer\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nx-req-trailer: yes\r\n\r\n"
        );
        let resps = raw_responses(gw.addr(), req.as_bytes()).await;
        assert_eq!(resps.len(), 1, "{path}");
        let j = resps[0].json();
        assert_eq!(j["body"], "abc", "{path}");
        assert_eq!(j["trailers"]["x-req-trailer"], "yes", "{path}: {j}");
    }
    // Response trailers to an HTTP/1.1 client that accepts them.
    let resps = raw_responses(
        gw.addr(),
        b"GET /trailers HTTP/1.1\r\nHost: example.test\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].status, 200);
    assert!(
        resps[0].trailers.contains(&("x-checksum".into(), "abc123".into())),
        "{:?}",
        resps[0]
    );
    // And to an HTTP/2 client (h2c), as gRPC needs.
    let tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let req = Request::get(format!("http://{}/trailers", gw.addr()))
        .header("te", "trailers")
        .body(full(""))
        .unwrap();
    let r = h2_over(tcp, vec![req]).await.remove(0);
    assert_eq!(r.status, 200);
    let t = r.trailers.expect("h2 trailers");
    assert_eq!(t.get("x-checksum").unwrap(), "abc123");
}

// ---------------------------------------------------------------------------------------------------------
// HTTP/2, TLS

#[tokio::test]
async fn h2c_prior_knowledge_on_a_plain_port() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let reqs = (0..3)
        .map(|i| {
            Request::get(format!("http://example.test/h2c/{i}"))
                .body(full(""))
                .unwrap()
        })
        .collect();
    let resps = h2_over(tcp, reqs).await;
    for (i, r) in resps.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.version, http::Version::HTTP_2);
        assert_eq!(r.json()["uri"], format!("/h2c/{i}"));
        assert_eq!(r.upstream_header("via").as_deref(), Some("2 rampart"));
        assert_eq!(r.upstream_header("x-forwarded-host").as_deref(), Some("example.test"));
    }
}

fn tls_listener(certs: &[(&TestCert, &[&str])], min_version: &str) -> String {
    let mut s = format!("[listeners.tls]\nmin_version = \"{min_version}\"\n");
    for (c, names) in certs {
        let names = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
        s += &format!(
            "[[listeners.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\nserver_names = [{names}]\n",
            c.cert_path.display(),
            c.key_path.display()
        );
    }
    s
}

#[tokio::test]
async fn http2_and_http1_over_tls_by_alpn() {
    let b = echo("b1").await;
    let cert = self_signed(&["a.test"]);
    let gw = gateway(&config(
        &tls_listener(&[(&cert, &["a.test"])], "1.2"),
        &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
    ))
    .await;
    let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];

    let tls = tls_connect(
        gw.addr(),
        "a.test",
        tls_client_config(&[&cert], versions, &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let req = Request::get("https://a.test/over-h2").body(full("")).unwrap();
    let r = h2_over(tls, vec![req]).await.remove(0);
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(r.upstream_header("via").as_deref(), Some("2 rampart"));

    let tls = tls_connect(
        gw.addr(),
        "a.test",
        tls_client_config(&[&cert], versions, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let req = Request::get("/over-h1")
        .header("host", "a.test")
        .body(full(""))
        .unwrap();
    let r = h1_over(tls, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_11);
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(r.upstream_header("via").as_deref(), Some("1.1 rampart"));
}

#[tokio::test]
async fn tls_versions_and_sni_certificate_choice() {
    let b = echo("b1").await;
    let a = self_signed(&["a.test"]);
    let bc = self_signed(&["b.test"]);
    let gw = gateway(&config(
        &tls_listener(&[(&a, &["a.test"]), (&bc, &["b.test"])], "1.2"),
        &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
    ))
    .await;
    // SNI picks the certificate (the client verifies the name against the chain it gets).
    for (sni, cert) in [("a.test", &a), ("b.test", &bc)] {
        let cfg = tls_client_config(&[&a, &bc], &[&rustls::version::TLS13], &[b"http/1.1"]);
        let tls = tls_connect(gw.addr(), sni, cfg).await.unwrap();
        let presented = &tls.get_ref().1.peer_certificates().unwrap()[0];
        assert_eq!(presented, &cert.der, "certificate for {sni}");
        let req = Request::get("/").header("host", sni).body(full("")).unwrap();
        assert_eq!(h1_over(tls, req).await.status, 200);
    }
    // Both protocol versions.
    for (version, expect) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let cfg = tls_client_config(&[&a], &[version], &[b"h2"]);
        let tls = tls_connect(gw.addr(), "a.test", cfg).await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expect));
        let req = Request::get("https://a.test/").body(full("")).unwrap();
        assert_eq!(h2_over(tls, vec![req]).await[0].status, 200);
    }
    // min_version = "1.3" refuses a TLS 1.2-only client.
    let gw13 = gateway(&config(
        &tls_listener(&[(&a, &["a.test"])], "1.3"),
        &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
    ))
    .await;
    let cfg = tls_client_config(&[&a], &[&rustls::version::TLS12], &[b"http/1.1"]);
    assert!(tls_connect(gw13.addr(), "a.test", cfg).await.is_err());
    let cfg = tls_client_config(&[&a], &[&rustls::version::TLS13], &[b"http/1.1"]);
    assert!(tls_connect(gw13.addr(), "a.test", cfg).await.is_ok());
}

// ---------------------------------------------------------------------------------------------------------
// Forwarding headers, client IP, PROXY protocol

#[tokio::test]
async fn forwarding_headers_set_and_hop_by_hop_removed() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let resps = raw_responses(
        gw.addr(),
        b"GET /fwd HTTP/1.1\r\nHost: api.example.test:8080\r\n\
          X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n\
          Connection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
          TE: gzip\r\nX-App: kept\r\n\r\n",
    )
    .await;
    assert_eq!(resps.len(), 1);
    let r = &resps[0];
    assert_eq!(r.status, 200);
    let j = r.json();
    let h = &j["headers"];
    // An untrusted peer's X-Forwarded-* are replaced, not extended.
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], "api.example.test");
    assert_eq!(h["via"][0], "1.1 rampart");
    let rid = r.header("x-request-id").expect("request id on the response");
    assert_eq!(h["x-request-id"][0], rid);
    assert_eq!(h["x-app"][0], "kept");
    for gone in ["x-secret", "keep-alive", "proxy-connection", "te", "connection"] {
        // hyper's client may add its own `connection: keep-alive`; nothing the client named may pass.
        if gone == "connection" {
            assert!(h[gone].is_null() || h[gone][0] == "keep-alive", "{h}");
        } else {
            assert!(h[gone].is_null(), "{gone} reached the upstream: {h}");
        }
    }
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_trusted_proxies() {
    let b = echo("b1").await;
    let req = b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n\
                X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
    let rest = upstream("app", &[b.url()], "") + &route("main", "/", "app", "");

    let trusted = gateway(&config_full("trusted_proxies = [\"127.0.0.0/8\"]", "", "", &rest)).await;
    let r = raw_responses(trusted.addr(), req).await.remove(0);
    let j = r.json();
    assert_eq!(
        j["headers"]["x-forwarded-for"][0],
        "198.51.100.1, 203.0.113.9, 127.0.0.1"
    );
    assert_eq!(j["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(
        trusted.inspector.client_ips.lock().unwrap().as_slice(),
        &["203.0.113.9".parse::<std::net::IpAddr>().unwrap()]
    );

    let untrusted = gateway(&config_full("trusted_proxies = [\"10.0.0.0/8\"]", "", "", &rest)).await;
    let r = raw_responses(untrusted.addr(), req).await.remove(0);
    let j = r.json();
    assert_eq!(j["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(j["headers"]["x-forwarded-proto"][0], "http");
    assert_eq!(
        untrusted.inspector.client_ips.lock().unwrap().as_slice(),
        &["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
}

fn proxy_v2_header(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_from_a_trusted_peer() {
    let b = echo("b1").await;
    let rest = upstream("app", &[b.url()], "") + &route("main", "/", "app", "");
    let gw = gateway(&config_full(
        "trusted_proxies = [\"127.0.0.1\"]",
        "",
        "proxy_protocol = true",
        &rest,
    ))
    .await;
    let v1 = [b"PROXY TCP4 198.51.100.7 192.0.2.1 5555 443\r\n".as_slice(), GET].concat();
    let v2 = [
        proxy_v2_header([198, 51, 100, 8], [192, 0, 2, 1], 5555, 443).as_slice(),
        GET,
    ]
    .concat();
    for (input, client) in [(v1, "198.51.100.7"), (v2, "198.51.100.8")] {
        let resps = raw_responses(gw.addr(), &input).await;
        assert_eq!(resps.len(), 1);
        assert_eq!(resps[0].status, 200);
        let j = resps[0].json();
        // The PROXY source is the client, for inspection and for the upstream.
        assert_eq!(j["headers"]["x-forwarded-for"][0], client, "{j}");
        assert_eq!(
            gw.inspector.client_ips.lock().unwrap().last().unwrap().to_string(),
            client
        );
    }
    // A client behind the balancer cannot forge X-Forwarded-For: it is not a trusted proxy.
    let forged = [
        b"PROXY TCP4 198.51.100.7 192.0.2.1 5555 443\r\n".as_slice(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    let j = raw_responses(gw.addr(), &forged).await.remove(0).json();
    assert_eq!(j["headers"]["x-forwarded-for"][0], "198.51.100.7", "{j}");
    assert_eq!(
        gw.inspector.client_ips.lock().unwrap().last().unwrap().to_string(),
        "198.51.100.7"
    );

    // From an untrusted peer the listener refuses the connection, header or not.
    let untrusted = gateway(&config_full(
        "trusted_proxies = [\"10.0.0.0/8\"]",
        "",
        "proxy_protocol = true",
        &rest,
    ))
    .await;
    let input = [b"PROXY TCP4 198.51.100.7 192.0.2.1 5555 443\r\n".as_slice(), GET].concat();
    assert!(raw(untrusted.addr(), &input, Duration::from_secs(3)).await.is_empty());
    assert_eq!(b.hits.load(Ordering::SeqCst), 3);
}

// ---------------------------------------------------------------------------------------------------------
// Verdicts and body limits

#[tokio::test]
async fn block_and_monitor_modes() {
    let b = echo("b1").await;
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url()], "")
            + &route("watch", "/monitored", "app", "mode = \"monitor\"")
            + &route("guard", "/", "app", "mode = \"block\"")),
    ))
    .await;
    let c = client();
    let attack = |path: &str| {
        Request::get(gw.url(path))
            .header("x-test-attack", "1")
            .body(full(""))
            .unwrap()
    };
    let r = send(&c, attack("/blocked")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let rid = r.header("x-request-id").unwrap().to_string();
    assert_eq!(r.json()["request_id"], rid);
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        0,
        "a blocked request reached the upstream"
    );

    let r = send(&c, attack("/monitored/x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-test-attack"][0], "1");
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);

    // An attack in the body is found too.
    let r = send(
        &c,
        Request::post(gw.url("/blocked")).body(full("x=test-attack")).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&c, &gw.url("/clean")).await.status, 200);
}

#[tokio::test]
async fn oversize_bodies_by_mode() {
    let b = echo("b1").await;
    let small = "body = { inspect_limit = \"1KiB\", oversize = \"block\" }";
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url()], "")
            + &route("block", "/block", "app", small)
            + &route(
                "pass",
                "/pass",
                "app",
                "body = { inspect_limit = \"1KiB\", oversize = \"pass\" }",
            )
            + &route("monitor", "/monitor", "app", &format!("mode = \"monitor\"\n{small}"))
            + &route(
                "capped",
                "/capped",
                "app",
                "mode = \"monitor\"\nbody = { inspect_limit = \"1KiB\", oversize = \"pass\", max_size = \"2KiB\" }",
            )),
    ))
    .await;
    let c = client();
    let big = vec![b'a'; 1500];
    let post = |path: &str, body: Vec<u8>| Request::post(gw.url(path)).body(full(body)).unwrap();

    let r = send(&c, post("/block", big.clone())).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json()["request_id"].is_string());
    assert_eq!(send(&c, post("/block", vec![b'a'; 500])).await.status, 200);

    let r = send(&c, post("/pass", big.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 1500);

    // Monitor mode never answers 413 for a body it only inspects.
    let r = send(&c, post("/monitor", big.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 1500);

    // max_size is a hard cap, whatever the mode.
    assert_eq!(send(&c, post("/capped", big.clone())).await.status, 200);
    assert_eq!(
        send(&c, post("/capped", vec![b'a'; 3000])).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

// ---------------------------------------------------------------------------------------------------------
// Upstream failures, retries, balancing, health

#[tokio::test]
async fn upstream_down_is_502_json() {
    let dead = dead_addr().await;
    let gw = gateway(&simple(&[format!("http://{dead}")])).await;
    let r = get(&client(), &gw.url("/")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let j = r.json();
    assert_eq!(j["status"], 502);
    assert_eq!(j["request_id"], r.header("x-request-id").unwrap());
}

#[tokio::test]
async fn upstream_slow_is_504_json() {
    let b = echo("slow").await;
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url()], "retries = 0") + &route("main", "/", "app", "timeout = \"300ms\"")),
    ))
    .await;
    let started = Instant::now();
    let r = get(&client(), &gw.url("/?sleep=3000")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["status"], 504);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn upstream_reset_is_502_and_a_post_that_reached_it_is_not_retried() {
    let (reset, reset_hits, _t) = resetting_backend().await;
    let good = echo("good").await;
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &[format!("http://{reset}"), good.url()],
            "retries = 1\npassive = { max_failures = 100 }",
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    let mut bad = 0;
    let mut ok = 0;
    for i in 0..6 {
        let r = send(&c, Request::post(gw.url(&format!("/p{i}"))).body(full("x")).unwrap()).await;
        match r.status.as_u16() {
            502 => {
                assert!(r.json()["request_id"].is_string());
                bad += 1
            }
            200 => ok += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(bad > 0, "round robin never sent a POST to the resetting target");
    // Every POST that reached the resetting target was answered 502, none was sent on to the other.
    assert_eq!(reset_hits.load(Ordering::SeqCst), bad);
    assert_eq!(good.hits.load(Ordering::SeqCst), ok);
}

#[tokio::test]
async fn idempotent_get_is_retried_on_a_second_target() {
    let dead = dead_addr().await;
    let good = echo("good").await;
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &[format!("http://{dead}"), good.url()],
            "retries = 1\npassive = { max_failures = 100 }",
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    for _ in 0..6 {
        let r = get(&c, &gw.url("/")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    assert_eq!(good.hits.load(Ordering::SeqCst), 6);
}

/// A raw HTTP/1.1 upstream that numbers its connections and answers each request with
/// `<connection>:<request on it>:<body>`. With `drop_second`, a connection that has answered once reads
/// its next request and closes without answering (an upstream closing an idle keep-alive connection as
/// the gateway reuses it).
async fn numbering_upstream(drop_second: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let conn = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 1.. {
                    let Some(end) = read_head_raw(&mut s, &mut buf).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + length {
                        let mut more = [0u8; 4096];
                        match s.read(&mut more).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&more[..k]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
                    buf.drain(..end + length);
                    if drop_second && n == 2 {
                        return;
                    }
                    let answer = format!("{conn}:{n}:{body}");
                    let out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}", answer.len());
                    if s.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, conns)
}

/// Reads into `buf` until it holds a request head; the head's length, or `None` at the end.
async fn read_head_raw(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut more = [0u8; 4096];
        match s.read(&mut more).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&more[..n]),
        }
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (addr, conns) = numbering_upstream(false).await;
    let gw = gateway(&simple(&[format!("http://{addr}")])).await;
    let c = client();
    for i in 1..=10 {
        let r = send(&c, Request::post(gw.url("/")).body(full(format!("b{i}"))).unwrap()).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.text(),
            format!("1:{i}:b{i}"),
            "request {i} went on the first connection"
        );
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_reused_connection_closed_by_the_upstream_is_retried_only_for_idempotent_requests() {
    let (addr, conns) = numbering_upstream(true).await;
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &[format!("http://{addr}")],
            "retries = 0\npassive = { max_failures = 100 }",
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    assert_eq!(get(&c, &gw.url("/one")).await.text(), "1:1:");
    // The first connection takes the next request and closes without answering: a GET is sent again
    // on a fresh connection, even with retries = 0, since the upstream never answered it.
    let r = get(&c, &gw.url("/two")).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "2:1:".to_string()));
    // A POST in the same place is not sent twice: the client hears 502.
    let r = send(&c, Request::post(gw.url("/three")).body(full("pay")).unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    // And the gateway goes on: a new connection serves the next one.
    let r = send(&c, Request::post(gw.url("/four")).body(full("ok")).unwrap()).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "3:1:ok".to_string()));
}

#[tokio::test]
async fn malformed_upstream_answers_are_502_and_close_delimited_ones_pass() {
    async fn answering(answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    if read_head_raw(&mut s, &mut buf).await.is_some() {
                        let _ = s.write_all(answer).await;
                    }
                });
            }
        });
        addr
    }
    let c = client();
    for answer in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"SMTP ready\r\n\r\n",
    ] {
        let gw = gateway(&simple(&[format!("http://{}", answering(answer).await)])).await;
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            // A chunked answer can fail only once its head is on the way: the client sees it cut (the
            // connection closes before the answer or its body is complete).
            match c.request(Request::get(gw.url("/")).body(full("")).unwrap()).await {
                Ok(resp) => (Some(resp.status()), resp.into_body().collect().await.is_ok()),
                Err(_) => (None, false),
            }
        })
        .await
        .expect("answered");
        assert!(
            r.0 == Some(StatusCode::BAD_GATEWAY) || !r.1,
            "{:?} gave {r:?}",
            String::from_utf8_lossy(answer)
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // An answer without a length ends when the upstream closes, and is whole.
    let gw = gateway(&simple(&[format!(
        "http://{}",
        answering(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end").await
    )]))
    .await;
    let r = get(&c, &gw.url("/")).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "until the end".to_string()));
}

async fn backend_counts(gw: &Gw, n: usize) -> std::collections::HashMap<String, usize> {
    let c = client();
    let mut counts = std::collections::HashMap::new();
    for _ in 0..n {
        let r = get(&c, &gw.url("/")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *counts.entry(r.header("x-backend").unwrap().to_string()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let bs = [echo("b1").await, echo("b2").await, echo("b3").await];
    let gw = gateway(&simple(&bs.iter().map(Backend::url).collect::<Vec<_>>())).await;
    let counts = backend_counts(&gw, 30).await;
    for b in &bs {
        assert_eq!(counts.get(&b.name), Some(&10), "{counts:?}");
    }
}

#[tokio::test]
async fn least_connections_avoids_the_busy_target() {
    let bs = [echo("b1").await, echo("b2").await];
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &bs.iter().map(Backend::url).collect::<Vec<_>>(),
            "balance = \"least_connections\"",
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    let url = gw.url("/?sleep=1500");
    let slow = tokio::spawn(async move { get(&client(), &url).await });
    // Wait until the slow request is in flight upstream.
    let started = Instant::now();
    let busy = loop {
        if let Some(b) = bs.iter().find(|b| b.in_flight.load(Ordering::SeqCst) == 1) {
            break b.name.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let counts = backend_counts(&gw, 10).await;
    assert_eq!(counts.get(&busy), None, "{counts:?} while {busy} was busy");
    let r = slow.await.unwrap();
    assert_eq!(r.header("x-backend"), Some(busy.as_str()));
}

#[tokio::test]
async fn active_health_checks_eject_and_recover() {
    let bs = [echo("b1").await, echo("b2").await];
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &bs.iter().map(Backend::url).collect::<Vec<_>>(),
            "[upstreams.app.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"300ms\"\n\
             healthy_threshold = 1\nunhealthy_threshold = 1",
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    bs[0].healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = backend_counts(&gw, 10).await;
    assert_eq!(counts.get("b2"), Some(&10), "unhealthy b1 still served: {counts:?}");

    bs[0].healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = backend_counts(&gw, 10).await;
    assert_eq!(counts.get("b1"), Some(&5), "b1 did not come back: {counts:?}");
}

#[tokio::test]
async fn passive_ejection_after_consecutive_failures() {
    let (reset, reset_hits, _t) = resetting_backend().await;
    let good = echo("good").await;
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &[format!("http://{reset}"), good.url()],
            "retries = 0\npassive = { max_failures = 2, eject_for = \"700ms\" }",
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&c, &gw.url("/")).await.status.as_u16());
    }
    assert_eq!(reset_hits.load(Ordering::SeqCst), 2, "{statuses:?}");
    // Ejected: everything goes to the good target.
    for _ in 0..10 {
        assert_eq!(get(&c, &gw.url("/")).await.status, 200);
    }
    assert_eq!(reset_hits.load(Ordering::SeqCst), 2);
    // After eject_for the target is tried again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..4 {
        get(&c, &gw.url("/")).await;
    }
    assert!(reset_hits.load(Ordering::SeqCst) > 2, "ejected target never retried");
}

// ---------------------------------------------------------------------------------------------------------
// Smuggling and malformed requests

const SMUGGLING: &[(&str, &[u8])] = &[
    (
        "CL + TE",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    ),
    (
        "TE + CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ),
    (
        "two differing CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    ),
    (
        "duplicate CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    ),
    ("CL list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd"),
    ("CL sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd"),
    (
        "TE chunked, identity",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE identity, chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE xchunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE space-padded + CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE tab-padded + CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "space before colon",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE header folded",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE vertical tab",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "two TE headers",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE + HTTP/1.0",
        b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n b\r\n\r\n"),
    ("bare LF after request line", b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
    ("bare LF after a header", b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"),
    ("bare LF ending the head", b"GET / HTTP/1.1\r\nHost: x\r\n\n"),
    ("all bare LF", b"GET / HTTP/1.1\nHost: x\n\n"),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"),
    ("space in a name", b"GET / HTTP/1.1\r\nHost: x\r\nX Name: 1\r\n\r\n"),
    ("@ in a name", b"GET / HTTP/1.1\r\nHost: x\r\nX@Name: 1\r\n\r\n"),
    ("control byte in a name", b"GET / HTTP/1.1\r\nHost: x\r\nX\x01Name: 1\r\n\r\n"),
    ("non-ASCII in a name", b"GET / HTTP/1.1\r\nHost: x\r\nX\xc3\xa9: 1\r\n\r\n"),
    ("empty name", b"GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n"),
    ("duplicate Host", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
    ("missing Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
];

#[tokio::test]
async fn smuggling_vectors_are_refused_with_400() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let mut failures = Vec::new();
    for (name, input) in SMUGGLING {
        let out = raw(gw.addr(), input, Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&out);
        let responses = text.matches("HTTP/1.").count();
        if !text.starts_with("HTTP/1.1 400 ") || responses != 1 {
            failures.push(format!("{name}: {text:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "not refused with one 400:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        0,
        "a refused request reached the upstream"
    );
    // The gateway keeps serving new connections.
    let resps = raw_responses(gw.addr(), GET).await;
    assert_eq!(resps[0].status, 200);
}

#[tokio::test]
async fn a_bad_request_in_a_pipeline_is_refused_and_the_connection_closed() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let out = raw(
        gw.addr(),
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /bad HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let resps = parse_responses(&out);
    assert_eq!(resps.len(), 2, "{}", String::from_utf8_lossy(&out));
    assert_eq!(resps[0].status, 200);
    assert_eq!(resps[1].status, 400);
    assert_eq!(resps[1].json()["status"], 400);
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_line_naming_http2_is_answered_505_and_not_forwarded() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    for version in ["HTTP/2.0", "HTTP/2"] {
        let input = format!("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b {version}\r\nHost: x\r\n\r\n");
        let out = raw(gw.addr(), input.as_bytes(), Duration::from_secs(3)).await;
        let resps = parse_responses(&out);
        assert_eq!(
            resps.iter().map(|r| r.status).collect::<Vec<_>>(),
            vec![200, 505],
            "{version}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    // only the two HTTP/1.1 requests reached the upstream
    assert_eq!(b.hits.load(Ordering::SeqCst), 2);
    // other versions stay malformed
    let out = raw(gw.addr(), b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400 "));
}

#[tokio::test]
async fn clean_bodies_with_line_feeds_are_not_mistaken_for_heads() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    // Bodies full of bare LFs, then more requests on the same connection.
    let out = raw(
        gw.addr(),
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n\n\nab\n\n\
          POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n\n\n\n\n\r\n0\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let resps = parse_responses(&out);
    assert_eq!(
        resps.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 200, 200],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(resps[0].json()["body"], "\n\nab\n\n");
    assert_eq!(resps[1].json()["body"], "\n\n\n\n");
}

// ---------------------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn slowloris_is_cut_off() {
    let b = echo("b1").await;
    let gw = gateway(
        &config_full(
            "",
            "",
            "",
            &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
        )
        .replace("header_read_timeout = \"2s\"", "header_read_timeout = \"500ms\""),
    )
    .await;
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(format!("X-{i}: {i}\r\n").as_bytes()).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => {
                // A 408 before the close is fine; a 200 is not.
                assert!(!String::from_utf8_lossy(&buf[..n]).contains(" 200 "));
            }
            Err(_) => {}
        }
    }
    let t = closed_after.expect("a slow head was never cut off");
    assert!(t < Duration::from_millis(2000), "cut off only after {t:?}");
    assert_eq!(b.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn uri_and_header_limits() {
    let b = echo("b1").await;
    let gw = gateway(&config_full(
        "",
        "max_uri_length = 1024\nmax_headers = 20\nmax_header_bytes = \"16KiB\"",
        "",
        &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
    ))
    .await;
    let status = |out: Vec<u8>| parse_responses(&out).first().map(|r| r.status);

    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(2000)
    );
    assert_eq!(
        status(raw(gw.addr(), long.as_bytes(), Duration::from_secs(3)).await),
        Some(414)
    );
    let ok = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(1000)
    );
    assert_eq!(
        status(raw(gw.addr(), ok.as_bytes(), Duration::from_secs(3)).await),
        Some(200)
    );

    let mut many = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
    for i in 0..30 {
        many += &format!("X-H{i}: {i}\r\n");
    }
    many += "\r\n";
    assert_eq!(
        status(raw(gw.addr(), many.as_bytes(), Duration::from_secs(3)).await),
        Some(431)
    );

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20 << 10)
    );
    assert_eq!(
        status(raw(gw.addr(), huge.as_bytes(), Duration::from_secs(3)).await),
        Some(431)
    );
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn max_connections_per_ip_is_enforced() {
    let b = echo("b1").await;
    let gw = gateway(&config(
        "max_connections_per_ip = 2",
        &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
    ))
    .await;
    let mut first = TcpStream::connect(gw.addr()).await.unwrap();
    let _second = TcpStream::connect(gw.addr()).await.unwrap();
    // Both are accepted: prove the first works.
    first.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 4096];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A third from the same IP is closed without an answer.
    let out = raw(gw.addr(), GET, Duration::from_secs(2)).await;
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    // Closing one frees its slot.
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(raw_responses(gw.addr(), GET).await[0].status, 200);
}

#[tokio::test]
async fn max_connections_per_listener_is_enforced() {
    let b = echo("b1").await;
    let gw = gateway(&config(
        "max_connections = 1",
        &(upstream("app", &[b.url()], "") + &route("main", "/", "app", "")),
    ))
    .await;
    let held = TcpStream::connect(gw.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(raw(gw.addr(), GET, Duration::from_secs(2)).await.is_empty());
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(raw_responses(gw.addr(), GET).await[0].status, 200);
}

// ---------------------------------------------------------------------------------------------------------
// WebSocket

#[tokio::test]
async fn websocket_upgrade_is_passed_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
                ws.send(Message::Text("welcome".into())).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        ws.send(m).await.unwrap();
                    }
                }
            });
        }
    });
    let gw = gateway(&simple(&[format!("http://{ws_addr}")])).await;
    let tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.addr()), tcp)
        .await
        .expect("upgrade through the gateway");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let next = |m: Option<Result<Message, _>>| m.expect("message").expect("frame");
    assert_eq!(next(ws.next().await), Message::Text("welcome".into()));
    ws.send(Message::Text("hello\nthere".into())).await.unwrap();
    assert_eq!(next(ws.next().await), Message::Text("hello\nthere".into()));
    ws.send(Message::Binary(vec![0, 1, 2, 10, 13])).await.unwrap();
    assert_eq!(next(ws.next().await), Message::Binary(vec![0, 1, 2, 10, 13]));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_refused_upgrade_closes_the_connection() {
    // The echo backend answers 200 to an upgrade request: no switch happens, so the raw-head checks,
    // which stop at a switch attempt, must not be skipped for a next request on the same connection.
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let out = raw(
        gw.addr(),
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\
          GET /next HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let resps = parse_responses(&out);
    assert_eq!(resps.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(resps[0].status, 200);
    assert_eq!(resps[0].header("connection"), Some("close"));
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------------------
// Reload and shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let b1 = echo("b1").await;
    let b2 = echo("b2").await;
    let cfg_for = |target: &Backend, i: usize| {
        config(
            "",
            &(upstream("app", &[target.url()], "")
                + &route(&format!("main-{i}"), "/", "app", "")
                + &route("extra", &format!("/extra{i}"), "app", "mode = \"monitor\"")),
        )
    };
    let gw = gateway(&cfg_for(&b1, 0)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let url = gw.url("/load");
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let req = Request::post(&url).body(full("payload")).unwrap();
                match tokio::time::timeout(Duration::from_secs(5), c.request(req)).await {
                    Ok(Ok(resp)) => {
                        let status = resp.status();
                        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                        if status == 200 && body.is_ok() {
                            ok += 1;
                        } else {
                            failed.push(format!("{status} {body:?}"));
                        }
                    }
                    Ok(Err(e)) => failed.push(format!("{e:?}")),
                    Err(_) => failed.push("timeout".into()),
                }
            }
            (ok, failed)
        }));
    }
    let dir = temp_dir("reload");
    let file = dir.join("rampart.toml");
    for i in 1..=20 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let target = if i % 2 == 0 { &b1 } else { &b2 };
        if i % 4 == 0 {
            std::fs::write(&file, cfg_for(target, i)).unwrap();
            rampart_proxy::reload::reload_now(&gw.shared, &file)
                .await
                .expect("reload");
        } else {
            gw.shared.install(compile(&cfg_for(target, i))).expect("install");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for t in load {
        let (o, f) = t.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok >= 100, "only {ok} requests during the reloads");
    assert!(b1.hits.load(Ordering::SeqCst) > 0 && b2.hits.load(Ordering::SeqCst) > 0);
    // The last config (20: b1) is the one serving.
    assert_eq!(
        gw.shared.load().policy.routes.find("x", "/").unwrap().name.as_ref(),
        "main-20"
    );
    let r = get(&client(), &gw.url("/after")).await;
    assert_eq!(r.header("x-backend"), Some("b1"));
}

#[tokio::test]
async fn bad_config_is_refused_and_the_old_one_keeps_serving() {
    let b1 = echo("b1").await;
    let gw = gateway(&simple(&[b1.url()])).await;
    let dir = temp_dir("bad");
    let file = dir.join("rampart.toml");
    let c = client();
    for bad in [
        "[[listeners]]\naddr = \"127.0.0.1:0\"\n[[routes]\n".to_string(),
        simple(&[b1.url()]).replace("upstream = \"app\"", "upstream = \"nope\""),
        simple(&[b1.url()]).replace("[upstreams.app]", "[upstreams.app]\nbalance = \"fastest\""),
    ] {
        std::fs::write(&file, &bad).unwrap();
        let before = gw.shared.load().generation;
        let errs = rampart_proxy::reload::reload_now(&gw.shared, &file)
            .await
            .expect_err("bad config accepted");
        assert!(errs.0.iter().all(|d| d.line > 0), "{errs}");
        assert_eq!(gw.shared.load().generation, before);
        let r = get(&c, &gw.url("/still")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("b1"));
    }
    // A missing file is refused too.
    assert!(rampart_proxy::reload::reload_now(&gw.shared, &dir.join("missing.toml"))
        .await
        .is_err());
    assert_eq!(get(&c, &gw.url("/still")).await.status, 200);
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let b = echo("b1").await;
    let mut gw = gateway(&simple(&[b.url()])).await;
    let url = gw.url("/?sleep=700");
    let in_flight = tokio::spawn(async move { get(&client(), &url).await });
    while b.in_flight.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = gw.addr();
    let started = Instant::now();
    let left = gw.shutdown().await;
    assert_eq!(left, 0, "connections left at the end of the grace");
    assert!(started.elapsed() >= Duration::from_millis(400), "shutdown did not wait");
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    // No longer accepting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = match TcpStream::connect(addr).await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(GET).await;
            read_until_close(&mut s, Duration::from_secs(2)).await.is_empty()
        }
    };
    assert!(refused, "a new connection was served after shutdown");
}

/// Clients that send `"`, `<`, `>`, `{`, `|` or UTF-8 raw in the query (curl, scripts, many SDKs) get
/// through, with the target percent-encoded as a browser would have sent it; inspection sees the decoded
/// value as before.
#[tokio::test]
async fn raw_special_characters_in_the_target_are_normalised_not_refused() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let resps = raw_responses(
        gw.addr(),
        "GET /search?q=\"O'Brien\"&t=<b>&j={x|y}&c=caf\u{e9} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            .as_bytes(),
    )
    .await;
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].status, 200);
    assert_eq!(
        resps[0].json()["uri"],
        "/search?q=%22O'Brien%22&t=%3Cb%3E&j=%7Bx%7Cy%7D&c=caf%C3%A9"
    );
    // Control characters in the target are still a malformed request.
    let resps = raw_responses(gw.addr(), b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(resps[0].status, 400);
}

// ---------------------------------------------------------------------------------------------------------
// Upstream protocols: https targets verified with ca_file, HTTP/2 to the upstream (h2c and ALPN h2)

fn ca_file(cert: &TestCert) -> String {
    format!("ca_file = \"{}\"", cert.cert_path.display())
}

#[tokio::test]
async fn https_upstream_is_verified_with_the_configured_ca_file() {
    let cert = self_signed(&["127.0.0.1"]);
    let b = proto_backend("tls", Proto::Http1, Some((&cert, &[b"http/1.1"]))).await;
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url("https")], &ca_file(&cert)) + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    for i in 0..2 {
        let r = get(&c, &gw.url(&format!("/over-tls/{i}?q=1"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let j = r.json();
        assert_eq!(j["backend"], "tls");
        assert_eq!(j["uri"], format!("/over-tls/{i}?q=1"));
        assert_eq!(j["version"], "HTTP/1.1");
    }
    let body = vec![b'x'; 100_000];
    let r = send(
        &c,
        Request::post(gw.url("/upload"))
            .body(full(Bytes::from(body.clone())))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["body_len"], body.len());
    // The backend only speaks TLS: the requests reached it through handshakes it completed, and the
    // pooled connection was reused rather than one handshake per request.
    assert_eq!(b.hits.load(Ordering::SeqCst), 3);
    let hs = b.handshakes();
    assert!(!hs.is_empty() && hs.len() < 3, "handshakes: {hs:?}");
    assert!(
        hs.iter().all(|p| p.as_deref() != Some(&b"h2"[..])),
        "an http1 upstream negotiated h2: {hs:?}"
    );
    assert_eq!(b.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http2_upstream_over_plain_http_uses_h2c_prior_knowledge() {
    let b = proto_backend("h2c", Proto::Http2, None).await;
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url("http")], "protocol = \"http2\"") + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    // The client speaks HTTP/1.1 to the gateway; the backend, which only serves HTTP/2, sees HTTP/2.
    let r = get(&c, &gw.url("/h2c/a?x=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.version, http::Version::HTTP_11);
    let j = r.json();
    assert_eq!(j["version"], "HTTP/2.0");
    // HTTP/2 carries the target as :scheme/:authority/:path: the absolute URI of the target.
    assert_eq!(j["uri"], format!("{}/h2c/a?x=1", b.url("http")));
    assert_eq!(j["method"], "GET");
    assert_eq!(r.upstream_header("x-forwarded-host").as_deref(), Some("127.0.0.1"));
    let r = send(
        &c,
        Request::post(gw.url("/h2c/post"))
            .header("content-type", "application/json")
            .body(full(r#"{"k":"v"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["version"], "HTTP/2.0");
    assert_eq!(j["method"], "POST");
    assert_eq!(j["body"], r#"{"k":"v"}"#);
    assert_eq!(b.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http2_upstream_over_tls_negotiates_h2_by_alpn() {
    let cert = self_signed(&["127.0.0.1"]);
    // The backend offers only h2 and serves only HTTP/2.
    let b = proto_backend("h2tls", Proto::Http2, Some((&cert, &[b"h2"]))).await;
    let gw = gateway(&config(
        "",
        &(upstream(
            "app",
            &[b.url("https")],
            &format!("protocol = \"http2\"\n{}", ca_file(&cert)),
        ) + &route("main", "/", "app", "")),
    ))
    .await;
    let c = client();
    for i in 0..3 {
        let r = get(&c, &gw.url(&format!("/h2tls/{i}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let j = r.json();
        assert_eq!(j["version"], "HTTP/2.0");
        assert_eq!(j["uri"], format!("{}/h2tls/{i}", b.url("https")));
    }
    assert_eq!(b.hits.load(Ordering::SeqCst), 3);
    let hs = b.handshakes();
    assert!(!hs.is_empty(), "no TLS handshake reached the backend");
    assert!(
        hs.iter().all(|p| p.as_deref() == Some(&b"h2"[..])),
        "ALPN negotiated: {hs:?}"
    );
}

#[tokio::test]
async fn https_upstream_with_an_untrusted_certificate_is_502_json() {
    let served = self_signed(&["127.0.0.1"]);
    let other = self_signed(&["127.0.0.1"]);
    let b = proto_backend("untrusted", Proto::Http1, Some((&served, &[b"http/1.1"]))).await;
    // ca_file names a different certificate than the one the backend presents.
    let gw = gateway(&config(
        "",
        &(upstream("app", &[b.url("https")], &format!("retries = 0\n{}", ca_file(&other)))
            + &route("main", "/", "app", "")),
    ))
    .await;
    let started = Instant::now();
    let r = get(&client(), &gw.url("/secret")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(r
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json")));
    let j = r.json();
    assert_eq!(j["status"], 502);
    assert_eq!(j["request_id"], r.header("x-request-id").unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The gateway refused the certificate: no request reached the backend.
    assert_eq!(b.hits.load(Ordering::SeqCst), 0);
    assert!(b.handshakes().is_empty());
    assert!(b.failed_handshakes.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn options_asterisk_is_answered_by_the_gateway() {
    let b = echo("b1").await;
    let gw = gateway(&simple(&[b.url()])).await;
    let resps = raw_responses(
        gw.addr(),
        b"OPTIONS * HTTP/1.1\r\nHost: api.example\r\n\r\nGET / HTTP/1.1\r\nHost: api.example\r\n\r\n",
    )
    .await;
    assert_eq!(resps.len(), 2, "the connection goes on after it");
    assert_eq!(resps[0].status, 200);
    let allow = resps[0]
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("allow"))
        .map(|(_, v)| v.as_str());
    assert_eq!(allow, Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    assert_eq!(resps[1].status, 200);
    assert_eq!(b.hits.load(Ordering::SeqCst), 1, "only the GET went upstream");
}
