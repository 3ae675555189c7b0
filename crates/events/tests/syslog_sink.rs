//! The syslog sink against real receivers on 127.0.0.1: a UDP socket, a TCP listener and a TLS listener that
//! parse RFC 6587 octet-counted frames.

use rampart_events::syslog::{SyslogSink, MAX_DATAGRAM};
use rampart_events::{Action, Alert, Event, EventKind, EventSink, Finding, Record, Timestamp};
use rampart_policy::events::{SyslogFormat, SyslogSpec, SyslogTransport};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

const TIMEOUT: Duration = Duration::from_secs(2);
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn event() -> Event {
    let mut e = Event::new(EventKind::Request, Action::Block);
    e.id = "0193a1b2-0000-7000-8000-000000000001".into();
    e.ts = Timestamp(1_764_583_200_123_456);
    e.node = "node-1".into();
    e.request_id = "req-1".into();
    e.client_ip = "203.0.113.9".into();
    e.method = "GET".into();
    e.host = "shop.example.com".into();
    e.path = "/search".into();
    e.route = "api".into();
    e.status = 403;
    e.score = 12;
    e.user_agent = Some("curl/8.0".into());
    e.latency_us = 850;
    e.fingerprints
        .insert("ja4".into(), "t13d1516h2_8daaf6152771_b0da82dd1658".into());
    e.findings.push(Finding {
        class: "sqli".into(),
        rule_id: "SQLI-001".into(),
        score: 7,
        point: "query.q".into(),
        evidence: "a|b=c\\d\ne".into(),
        decode_chain: vec![],
    });
    e.findings.push(Finding {
        class: "xss".into(),
        rule_id: "XSS-004".into(),
        score: 5,
        point: "query.x".into(),
        evidence: "<script>".into(),
        decode_chain: vec!["url".into()],
    });
    e
}

fn alert() -> Alert {
    Alert {
        id: "0193a1b2-0000-7000-8000-0000000000a1".into(),
        ts: Timestamp(1_764_583_260_000_000),
        node: "node-1".into(),
        trigger: "probe|scan".into(),
        severity: "critical".into(),
        group_by: "client_ip".into(),
        key: "203.0.113.9".into(),
        count: 25,
        threshold: 20,
        window_s: 60,
        first_seen: Timestamp(1_764_583_201_000_000),
        last_seen: Timestamp(1_764_583_259_500_000),
        classes: vec!["sqli".into(), "xss".into()],
        routes: vec!["api".into(), "login".into()],
        sample_event_ids: vec!["e1".into(), "e2".into()],
        actions: vec!["ban 203.0.113.9 for 15m".into(), "notify slack".into()],
        summary: "25 sqli|xss events from 203.0.113.9 in 1m \\ threshold 20".into(),
    }
}

fn spec(addr: SocketAddr, transport: SyslogTransport, format: SyslogFormat) -> SyslogSpec {
    SyslogSpec {
        addr: addr.to_string(),
        transport,
        format,
        facility: 16,
        app_name: "rampart".into(),
        ca_pem: None,
        server_name: None,
    }
}

fn pid() -> u32 {
    std::process::id()
}

fn expected_event_cef() -> String {
    format!(
        "CEF:0|rampart|rampart|{VERSION}|SQLI-001|block sqli,xss|7|rt=1764583200123 \
         externalId=0193a1b2-0000-7000-8000-000000000001 cat=request dvchost=node-1 src=203.0.113.9 \
         requestMethod=GET dhost=shop.example.com request=shop.example.com/search \
         requestClientApplication=curl/8.0 act=block cs1Label=route cs1=api cs2Label=request_id cs2=req-1 \
         cs3Label=classes cs3=sqli,xss cs4Label=rule_ids cs4=SQLI-001,XSS-004 cs5Label=evidence \
         cs5=query.q\\=a|b\\=c\\\\d\\ne cs6Label=ja4 cs6=t13d1516h2_8daaf6152771_b0da82dd1658 cn1Label=score \
         cn1=12 cn2Label=status cn2=403 cn3Label=latency_us cn3=850"
    )
}

fn expected_alert_cef() -> String {
    format!(
        "CEF:0|rampart|rampart|{VERSION}|trigger:probe\\|scan|25 sqli\\|xss events from 203.0.113.9 in 1m \\\\ \
         threshold 20|10|rt=1764583260000 externalId=0193a1b2-0000-7000-8000-0000000000a1 cat=alert \
         dvchost=node-1 src=203.0.113.9 msg=25 sqli|xss events from 203.0.113.9 in 1m \\\\ threshold 20 cnt=25 \
         start=1764583201000 end=1764583259500 cs1Label=routes cs1=api,login cs2Label=trigger cs2=probe|scan \
         cs3Label=classes cs3=sqli,xss cs4Label=key cs4=client_ip\\=203.0.113.9 cs5Label=actions \
         cs5=ban 203.0.113.9 for 15m; notify slack cs6Label=sample_event_ids cs6=e1,e2 cn1Label=threshold cn1=20 \
         cn2Label=window_s cn2=60"
    )
}

/// Octet-counted frames from one stream until it ends; a malformed frame ends the stream.
async fn read_frames<S: AsyncRead + Unpin>(s: S, tx: mpsc::UnboundedSender<String>) {
    let mut r = BufReader::new(s);
    loop {
        let mut len = Vec::new();
        match r.read_until(b' ', &mut len).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(digits) = std::str::from_utf8(&len).ok().and_then(|l| l.strip_suffix(' ')) else {
            return;
        };
        assert!(
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            "bad frame length {digits:?}"
        );
        let Ok(n) = digits.parse::<usize>() else { return };
        let mut msg = vec![0u8; n];
        if r.read_exact(&mut msg).await.is_err() {
            return;
        }
        let _ = tx.send(String::from_utf8(msg).expect("frame is UTF-8"));
    }
}

/// A TCP (or TLS) syslog receiver: every frame received goes to `rx`.
struct StreamReceiver {
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<String>,
    accepted: Arc<AtomicUsize>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl StreamReceiver {
    async fn start(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, _)) => stream,
                        Err(_) => break,
                    },
                    _ = &mut stopped => break,
                };
                count.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => read_frames(stream, tx).await,
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                read_frames(s, tx).await;
                            }
                        }
                    }
                });
            }
            drop(listener);
            // Every connection is closed before stop() returns.
            conns.shutdown().await;
        });
        StreamReceiver {
            addr,
            rx,
            accepted,
            stop,
            task,
        }
    }

    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a frame within 5 s")
            .expect("receiver running")
    }

    /// Stops listening and closes every connection.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn udp_cef_messages_in_full() {
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = receiver.local_addr().unwrap();
    let mut sink = SyslogSink::new("siem", &spec(addr, SyslogTransport::Udp, SyslogFormat::Cef), TIMEOUT).unwrap();
    assert_eq!(sink.name(), "siem");
    let mut monitor = event();
    monitor.action = Action::Monitor;
    monitor.findings.clear();
    monitor.fingerprints.clear();
    monitor.user_agent = None;
    monitor.node = "edge node\u{e9}".into();
    let batch = [
        Record::Event(Arc::new(event())),
        Record::Alert(Arc::new(alert())),
        Record::Event(Arc::new(monitor)),
    ];
    sink.deliver(&batch).await.unwrap();

    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
            .await
            .expect("a datagram")
            .unwrap();
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    // local0 (16): warning 4 -> 132, critical 2 -> 130, notice 5 -> 133.
    assert_eq!(
        got[0],
        format!(
            "<132>1 2025-12-01T10:00:00.123456Z node-1 rampart {} event - {}",
            pid(),
            expected_event_cef()
        )
    );
    assert_eq!(
        got[1],
        format!(
            "<130>1 2025-12-01T10:01:00.000000Z node-1 rampart {} alert - {}",
            pid(),
            expected_alert_cef()
        )
    );
    assert_eq!(
        got[2],
        format!(
            "<133>1 2025-12-01T10:00:00.123456Z edge_node_ rampart {} event - CEF:0|rampart|rampart|{VERSION}|\
             monitor|monitor|3|rt=1764583200123 externalId=0193a1b2-0000-7000-8000-000000000001 cat=request \
             dvchost=edge node\u{e9} src=203.0.113.9 requestMethod=GET dhost=shop.example.com \
             request=shop.example.com/search act=monitor cs1Label=route cs1=api cs2Label=request_id cs2=req-1 \
             cn1Label=score cn1=12 cn2Label=status cn2=403 cn3Label=latency_us cn3=850",
            pid()
        )
    );
    sink.close().await;
}

#[tokio::test]
async fn udp_cuts_large_messages_at_a_character_boundary() {
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = receiver.local_addr().unwrap();
    let mut sink = SyslogSink::new("siem", &spec(addr, SyslogTransport::Udp, SyslogFormat::Json), TIMEOUT).unwrap();
    let mut e = event();
    // 3-byte characters, so that 8 KiB falls inside one.
    e.findings[0].evidence = "\u{20ac}".repeat(5000);
    let full = sink.message(&Record::Event(Arc::new(e.clone())));
    assert!(full.len() > MAX_DATAGRAM);
    sink.deliver(&[Record::Event(Arc::new(e))]).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n <= MAX_DATAGRAM && n > MAX_DATAGRAM - 4, "{n}");
    let got = std::str::from_utf8(&buf[..n]).expect("cut at a character boundary");
    assert!(full.starts_with(got));
    assert!(got.starts_with("<132>1 2025-12-01T10:00:00.123456Z node-1 rampart "));
}

#[tokio::test]
async fn tcp_json_frames_are_octet_counted() {
    let mut rx = StreamReceiver::start("127.0.0.1:0".parse().unwrap(), None).await;
    let mut s = spec(rx.addr, SyslogTransport::Tcp, SyslogFormat::Json);
    s.facility = 4; // auth
    s.app_name = "waf gw".into();
    let mut sink = SyslogSink::new("siem", &s, TIMEOUT).unwrap();
    let mut e = event();
    e.path = "/caf\u{e9}".into(); // multi-byte: the frame length counts octets
    let batch = [Record::Event(Arc::new(e)), Record::Alert(Arc::new(alert()))];
    sink.deliver(&batch).await.unwrap();
    sink.deliver(&batch[1..]).await.unwrap();

    for (i, r) in [&batch[0], &batch[1], &batch[1]].into_iter().enumerate() {
        let msg = rx.next().await;
        let (pri, ts, msgid) = match r {
            Record::Event(_) => (36, "2025-12-01T10:00:00.123456Z", "event"),
            Record::Alert(_) => (34, "2025-12-01T10:01:00.000000Z", "alert"),
        };
        let header = format!("<{pri}>1 {ts} node-1 waf_gw {} {msgid} - ", pid());
        let json = msg.strip_prefix(&header).unwrap_or_else(|| panic!("frame {i}: {msg}"));
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v, r.to_json(), "frame {i}");
    }
    // Both deliveries went over one connection.
    assert_eq!(rx.accepted.load(Ordering::SeqCst), 1);
    sink.close().await;
    rx.stop().await;
}

#[tokio::test]
async fn tcp_reconnects_when_the_receiver_comes_back() {
    let addr = free_port().await;
    let mut sink = SyslogSink::new("siem", &spec(addr, SyslogTransport::Tcp, SyslogFormat::Cef), TIMEOUT).unwrap();
    let one = [Record::Event(Arc::new(event()))];

    // Nobody listens: transient, and no connection is kept.
    let err = sink.deliver(&one).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    let mut rx = StreamReceiver::start(addr, None).await;
    sink.deliver(&one).await.unwrap();
    assert!(rx.next().await.ends_with(&expected_event_cef()));

    // The receiver goes away while the connection is idle: the sink notices instead of writing into a
    // closed connection, and fails transiently.
    rx.stop().await;
    let err = sink.deliver(&one).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");

    // It comes back: the next delivery reconnects.
    let mut rx = StreamReceiver::start(addr, None).await;
    let a = [Record::Alert(Arc::new(alert()))];
    sink.deliver(&a).await.unwrap();
    assert!(rx.next().await.ends_with(&expected_alert_cef()));
    assert_eq!(rx.accepted.load(Ordering::SeqCst), 1);
    rx.stop().await;
}

struct TestCa {
    pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn tls_for_localhost() -> TestCa {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    TestCa {
        pem: ck.cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

#[tokio::test]
async fn tls_frames_with_a_configured_ca() {
    let ca = tls_for_localhost();
    let mut rx = StreamReceiver::start("127.0.0.1:0".parse().unwrap(), Some(ca.acceptor.clone())).await;
    let mut s = spec(rx.addr, SyslogTransport::Tls, SyslogFormat::Cef);
    s.ca_pem = Some(ca.pem.clone().into_bytes());
    s.server_name = Some("localhost".into());
    let mut sink = SyslogSink::new("siem", &s, TIMEOUT).unwrap();
    let batch = [Record::Event(Arc::new(event())), Record::Alert(Arc::new(alert()))];
    sink.deliver(&batch).await.unwrap();
    sink.deliver(&batch[..1]).await.unwrap();
    let header_event = format!("<132>1 2025-12-01T10:00:00.123456Z node-1 rampart {} event - ", pid());
    let header_alert = format!("<130>1 2025-12-01T10:01:00.000000Z node-1 rampart {} alert - ", pid());
    assert_eq!(rx.next().await, format!("{header_event}{}", expected_event_cef()));
    assert_eq!(rx.next().await, format!("{header_alert}{}", expected_alert_cef()));
    assert_eq!(rx.next().await, format!("{header_event}{}", expected_event_cef()));
    assert_eq!(rx.accepted.load(Ordering::SeqCst), 1);
    sink.close().await;

    // After close, a new delivery opens a new connection.
    sink.deliver(&batch[..1]).await.unwrap();
    assert_eq!(rx.next().await, format!("{header_event}{}", expected_event_cef()));
    assert_eq!(rx.accepted.load(Ordering::SeqCst), 2);
    rx.stop().await;
}

#[tokio::test]
async fn tls_refuses_a_certificate_for_another_name() {
    let ca = tls_for_localhost();
    let rx = StreamReceiver::start("127.0.0.1:0".parse().unwrap(), Some(ca.acceptor.clone())).await;
    let mut s = spec(rx.addr, SyslogTransport::Tls, SyslogFormat::Cef);
    s.ca_pem = Some(ca.pem.clone().into_bytes());
    s.server_name = Some("siem.example.com".into());
    let mut sink = SyslogSink::new("siem", &s, TIMEOUT).unwrap();
    let err = sink.deliver(&[Record::Event(Arc::new(event()))]).await.unwrap_err();
    assert!(!err.is_permanent());
    assert!(err.to_string().contains("TLS handshake"), "{err}");

    // Without the CA the self-signed certificate is not trusted either.
    let mut s = spec(rx.addr, SyslogTransport::Tls, SyslogFormat::Cef);
    s.server_name = Some("localhost".into());
    let mut sink = SyslogSink::new("siem", &s, TIMEOUT).unwrap();
    let err = sink.deliver(&[Record::Event(Arc::new(event()))]).await.unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    rx.stop().await;
}

#[tokio::test]
async fn new_checks_the_spec_without_connecting() {
    // Nothing listens on port 9; new() must not care.
    let ok = SyslogSpec {
        addr: "127.0.0.1:9".into(),
        transport: SyslogTransport::Tcp,
        format: SyslogFormat::Cef,
        facility: 16,
        app_name: "rampart".into(),
        ca_pem: None,
        server_name: None,
    };
    assert!(SyslogSink::new("s", &ok, TIMEOUT).is_ok());
    for addr in ["no-port", "host:99999", "::1:514"] {
        let bad = SyslogSpec {
            addr: addr.into(),
            ..ok.clone()
        };
        assert!(
            SyslogSink::new("s", &bad, TIMEOUT).unwrap_err().is_permanent(),
            "{addr}"
        );
    }
    let bad = SyslogSpec {
        facility: 24,
        ..ok.clone()
    };
    assert!(SyslogSink::new("s", &bad, TIMEOUT).is_err());
}
