//! Syslog sink: RFC 5424 messages over UDP, TCP or TLS, carrying CEF or JSON.
//!
//! # Message
//!
//! Each record is one RFC 5424 message:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//! ```
//!
//! - `PRI` = facility * 8 + severity. Event severity by action: `block`, `ban`, `limit`, `challenge` -> 4
//!   (warning); `monitor`, `reject` -> 5 (notice). Alert severity from the trigger's: `critical` -> 2,
//!   `error` -> 3, `warning` -> 4, `info` -> 6 (anything else -> 4).
//! - `TIMESTAMP` is the record's time, RFC 3339 in UTC with microseconds (the 6 fraction digits RFC 5424
//!   allows).
//! - `HOSTNAME` is the record's `node`, `APP-NAME` the configured `app_name`, `PROCID` this process's id,
//!   `MSGID` `event` or `alert`. Header fields keep only printable US-ASCII (others become `_`), are cut to
//!   the RFC's lengths (255, 48, 128, 32) and are `-` when empty.
//! - No structured data (`-`): everything is in MSG, which is sent as RFC 5424 MSG-ANY, without a BOM, so
//!   that CEF parsers see `CEF:0|` first.
//!
//! # CEF
//!
//! `CEF:0|rampart|rampart|<version>|<signature id>|<name>|<severity>|<extension>`, escaped per the CEF
//! specification: in the header `\` and `|` are escaped with `\` (line breaks become spaces); in extension
//! values `\` and `=` are escaped and line breaks are written `\n` / `\r`.
//!
//! | | event | alert |
//! |---|---|---|
//! | signature id | the first finding's `rule_id`, else the action | `trigger:<trigger>` |
//! | name | `<action> <classes>` (or `<action> <reason>`) | the alert's summary (or `trigger <name> fired`) |
//! | severity (0-10) | ban 8, block 7, limit/challenge/reject 5, monitor 3 | critical 10, error 8, warning 6, info 3 |
//!
//! Extension keys for events (standard CEF keys where one exists; empty values are left out):
//!
//! | key | value |
//! |---|---|
//! | `rt` | the event time, milliseconds since the epoch |
//! | `externalId` | the event id |
//! | `cat` | the event kind (`request` / `behaviour`) |
//! | `dvchost` | the node |
//! | `src` | the client address |
//! | `requestMethod` | the method |
//! | `dhost` | the Host |
//! | `request` | host + path (never the query string) |
//! | `requestClientApplication` | the User-Agent |
//! | `act` | the action |
//! | `reason` | why (behaviour events) |
//! | `cs1Label=route` `cs1` | the route |
//! | `cs2Label=request_id` `cs2` | the request id |
//! | `cs3Label=classes` `cs3` | finding classes, comma-separated |
//! | `cs4Label=rule_ids` `cs4` | finding rule ids, comma-separated |
//! | `cs5Label=evidence` `cs5` | the first finding as `<point>=<evidence>` (evidence already masked) |
//! | `cs6Label=ja4` `cs6` | the JA4 fingerprint |
//! | `cn1Label=score` `cn1` | the anomaly score |
//! | `cn2Label=status` `cn2` | the status answered |
//! | `cn3Label=latency_us` `cn3` | latency to the response head, microseconds |
//!
//! For alerts: `rt`, `externalId`, `cat=alert`, `dvchost`, `src` (the key, when grouped by `client_ip`),
//! `msg` (summary), `cnt` (matching events), `start` / `end` (first / last seen, ms), `cs1Label=routes`,
//! `cs2Label=trigger`, `cs3Label=classes`, `cs4Label=key` (`<group_by>=<key>`), `cs5Label=actions`
//! (`; `-separated), `cs6Label=sample_event_ids`, `cn1Label=threshold`, `cn2Label=window_s`.
//!
//! # JSON
//!
//! MSG is [`Record::to_json`], compact (one line).
//!
//! # Transports
//!
//! - `udp`: one datagram per message; a message over 8 KiB is cut at a UTF-8 boundary (never in the middle
//!   of a CEF escape).
//! - `tcp` and `tls`: octet-counting framing (RFC 6587 3.4.1, `<len> <msg>`), which RFC 5425 requires for
//!   TLS. TLS trusts the built-in web roots plus the configured CA and checks `server_name` (default: the
//!   host part of `addr`).
//!
//! The sink connects on the first delivery, not when it is built; a failed connect or write is a transient
//! error that drops the connection, and the next attempt reconnects. A connection the receiver closed while
//! idle is noticed before writing. A batch is written in one piece; a batch that fails midway is sent again
//! whole, so delivery is at least once.

use crate::event::{Action, Alert, Event, Record};
use crate::sink::{EventSink, SinkError};
use rampart_policy::events::{SyslogFormat, SyslogSpec, SyslogTransport};
use rustls::pki_types::ServerName;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The largest UDP message sent; longer messages are cut.
pub const MAX_DATAGRAM: usize = 8 * 1024;

const CEF_VENDOR: &str = "rampart";
const CEF_PRODUCT: &str = "rampart";
const CEF_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Delivers records to a syslog receiver. See the module documentation for the message format.
pub struct SyslogSink {
    name: String,
    /// As configured, for messages.
    addr: String,
    host: String,
    port: u16,
    transport: SyslogTransport,
    format: SyslogFormat,
    facility: u8,
    app_name: String,
    procid: String,
    timeout: Duration,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("transport", &self.transport)
            .field("format", &self.format)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl SyslogSink {
    /// Checks the spec and prepares TLS; does no network I/O (the first delivery connects). `timeout` bounds
    /// resolving, connecting, the TLS handshake and each write (zero means 5 s).
    pub fn new(name: &str, spec: &SyslogSpec, timeout: Duration) -> Result<Self, SinkError> {
        let (host, port) = split_host_port(&spec.addr).map_err(SinkError::Permanent)?;
        if spec.facility > 23 {
            return Err(SinkError::Permanent(format!(
                "syslog facility {} is out of range (0-23)",
                spec.facility
            )));
        }
        let tls = match spec.transport {
            SyslogTransport::Tls => {
                let config = tls_client_config(spec.ca_pem.as_deref())?;
                let sni = spec.server_name.clone().unwrap_or_else(|| host.clone());
                let server_name = ServerName::try_from(sni.clone())
                    .map_err(|_| SinkError::Permanent(format!("`{sni}` is not a valid TLS server name")))?;
                Some((TlsConnector::from(Arc::new(config)), server_name))
            }
            _ => None,
        };
        Ok(SyslogSink {
            name: name.to_string(),
            addr: spec.addr.clone(),
            host,
            port,
            transport: spec.transport,
            format: spec.format,
            facility: spec.facility,
            app_name: header_field(&spec.app_name, 48),
            procid: std::process::id().to_string(),
            timeout: if timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                timeout
            },
            tls,
            conn: None,
        })
    }

    /// The complete RFC 5424 message for one record (without transport framing).
    pub fn message(&self, record: &Record) -> String {
        let (severity, node, msgid) = match record {
            Record::Event(e) => (event_syslog_severity(e.action), e.node.as_str(), "event"),
            Record::Alert(a) => (alert_syslog_severity(&a.severity), a.node.as_str(), "alert"),
        };
        let pri = u16::from(self.facility) * 8 + u16::from(severity);
        let mut m = format!(
            "<{pri}>1 {} {} {} {} {msgid} - ",
            record.ts().rfc3339(),
            header_field(node, 255),
            self.app_name,
            self.procid
        );
        match self.format {
            SyslogFormat::Cef => m.push_str(&cef(record)),
            SyslogFormat::Json => m.push_str(&record.to_json().to_string()),
        }
        m
    }

    fn transport_name(&self) -> &'static str {
        match self.transport {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls => "tls",
        }
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> SinkError {
        SinkError::Transient(format!("syslog {} {}: {what}: {e}", self.transport_name(), self.addr))
    }

    async fn resolve(&self) -> Result<Vec<SocketAddr>, SinkError> {
        let found = tokio::time::timeout(self.timeout, tokio::net::lookup_host((self.host.as_str(), self.port)))
            .await
            .map_err(|_| self.fail("resolve", "timed out"))?
            .map_err(|e| self.fail("resolve", e))?
            .collect::<Vec<_>>();
        if found.is_empty() {
            return Err(self.fail("resolve", "no address"));
        }
        Ok(found)
    }

    async fn connect(&self) -> Result<Conn, SinkError> {
        let addrs = self.resolve().await?;
        if self.transport == SyslogTransport::Udp {
            let target = addrs[0];
            let local: SocketAddr = if target.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let sock = UdpSocket::bind(local).await.map_err(|e| self.fail("bind", e))?;
            sock.connect(target).await.map_err(|e| self.fail("connect", e))?;
            return Ok(Conn::Udp(sock));
        }
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match tokio::time::timeout(self.timeout, TcpStream::connect(a)).await {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => last = Some(self.fail("connect", e)),
                Err(_) => last = Some(self.fail("connect", "timed out")),
            }
        }
        let Some(tcp) = tcp else {
            return Err(last.unwrap_or_else(|| self.fail("connect", "no address")));
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Conn::Tcp(tcp)),
            Some((connector, server_name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(server_name.clone(), tcp))
                    .await
                    .map_err(|_| self.fail("TLS handshake", "timed out"))?
                    .map_err(|e| self.fail("TLS handshake", e))?;
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }

    /// The open connection, unless the receiver closed it since; else a new one.
    async fn take_conn(&mut self) -> Result<Conn, SinkError> {
        if let Some(mut c) = self.conn.take() {
            let closed = match &mut c {
                Conn::Udp(_) => false,
                Conn::Tcp(s) => peer_closed(s).await,
                Conn::Tls(s) => peer_closed(&mut **s).await,
            };
            if !closed {
                return Ok(c);
            }
            tracing::debug!(sink = %self.name, "syslog receiver closed the connection; reconnecting");
        }
        self.connect().await
    }
}

impl EventSink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let messages: Vec<String> = batch.iter().map(|r| self.message(r)).collect();
        // The connection is out of `self` while in use: if this future fails or is dropped midway (a frame
        // half written), it is dropped with it and the next delivery starts on a fresh one.
        let mut conn = self.take_conn().await?;
        match &mut conn {
            Conn::Udp(sock) => {
                for m in &messages {
                    let datagram = truncate_message(m, MAX_DATAGRAM);
                    match tokio::time::timeout(self.timeout, sock.send(datagram.as_bytes())).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(self.fail("send", e)),
                        Err(_) => return Err(self.fail("send", "timed out")),
                    }
                }
            }
            Conn::Tcp(s) => self.write_frames(s, &messages).await?,
            Conn::Tls(s) => self.write_frames(&mut **s, &messages).await?,
        }
        self.conn = Some(conn);
        Ok(())
    }

    async fn close(&mut self) {
        let timeout = self.timeout;
        match self.conn.take() {
            Some(Conn::Tcp(mut s)) => {
                let _ = tokio::time::timeout(timeout, s.shutdown()).await;
            }
            Some(Conn::Tls(mut s)) => {
                // Sends close_notify.
                let _ = tokio::time::timeout(timeout, s.shutdown()).await;
            }
            Some(Conn::Udp(_)) | None => {}
        }
    }
}

impl SyslogSink {
    async fn write_frames<S: AsyncWrite + Unpin>(&self, s: &mut S, messages: &[String]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
        for m in messages {
            buf.extend_from_slice(octet_frame(m).as_bytes());
        }
        let write = async {
            s.write_all(&buf).await?;
            s.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.fail("write", e)),
            Err(_) => Err(self.fail("write", "timed out")),
        }
    }
}

/// RFC 6587 octet counting: `<length in octets> <message>`.
pub fn octet_frame(msg: &str) -> String {
    format!("{} {msg}", msg.len())
}

/// Whether the peer has closed (or broken) an idle stream. Reads without waiting; whatever the receiver sent
/// (syslog receivers send nothing) is discarded.
async fn peer_closed<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut buf = [0u8; 512];
    std::future::poll_fn(|cx| {
        for _ in 0..16 {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut *s).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Ready(false),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(true),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(true),
            }
        }
        Poll::Ready(false)
    })
    .await
}

/// The rustls client configuration shared by the network sinks: the web roots, plus the certificates in
/// `extra_pem` when given.
pub(crate) fn tls_client_config(extra_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, SinkError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_pem {
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut &*pem) {
            let cert = cert.map_err(|e| SinkError::Permanent(format!("CA bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| SinkError::Permanent(format!("CA bundle: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(SinkError::Permanent("CA bundle holds no certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Permanent(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `host:port` or `[v6]:port` -> (host, port).
fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{addr}` is not host:port");
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        let (h, p) = addr.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(format!("`{addr}`: write an IPv6 address as [addr]:port"));
        }
        (h, p)
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// An RFC 5424 header field: printable US-ASCII only (others become `_`), at most `max` octets, `-` when
/// empty.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() {
        "-".to_string()
    } else {
        out
    }
}

fn event_syslog_severity(action: Action) -> u8 {
    match action {
        Action::Block | Action::Ban | Action::Limit | Action::Challenge => 4,
        Action::Monitor | Action::Reject | Action::Mask => 5,
    }
}

fn alert_syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "error" => 3,
        "warning" => 4,
        "info" => 6,
        _ => 4,
    }
}

fn event_cef_severity(action: Action) -> u8 {
    match action {
        Action::Ban => 8,
        Action::Block => 7,
        Action::Limit | Action::Challenge | Action::Reject => 5,
        Action::Monitor | Action::Mask => 3,
    }
}

fn alert_cef_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 10,
        "error" => 8,
        "info" => 3,
        _ => 6,
    }
}

/// `s` cut to at most `max` octets at a UTF-8 boundary, never leaving a lone trailing `\` (half of a CEF
/// escape).
pub fn truncate_message(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = &s[..end];
    let trailing = out.bytes().rev().take_while(|&b| b == b'\\').count();
    if trailing % 2 == 1 {
        out = &out[..out.len() - 1];
    }
    out
}

/// Escapes a CEF header field: `\` -> `\\`, `|` -> `\|`; line breaks become spaces.
pub fn cef_escape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a CEF extension value: `\` -> `\\`, `=` -> `\=`, line breaks -> `\n` / `\r`.
pub fn cef_escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// CEF extension `key=value` pairs, space-separated; empty values are left out.
#[derive(Default)]
struct Extension(String);

impl Extension {
    fn put(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&cef_escape_value(value));
    }

    fn put_num(&mut self, key: &str, value: impl std::fmt::Display) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{key}={value}");
    }

    /// A custom field with its label (`cs1Label=route cs1=...`), left out when the value is empty.
    fn put_labelled(&mut self, key: &str, label: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        self.put(&format!("{key}Label"), label);
        self.put(key, value);
    }
}

fn cef_line(signature: &str, name: &str, severity: u8, ext: &str) -> String {
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{severity}|{ext}",
        cef_escape_header(CEF_VENDOR),
        cef_escape_header(CEF_PRODUCT),
        cef_escape_header(CEF_VERSION),
        cef_escape_header(&cut_chars(signature, 1023)),
        cef_escape_header(&cut_chars(name, 512)),
    )
}

fn cut_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn ms(ts: crate::event::Timestamp) -> i64 {
    ts.micros().div_euclid(1000)
}

/// The CEF line for a record.
pub fn cef(record: &Record) -> String {
    match record {
        Record::Event(e) => cef_event(e),
        Record::Alert(a) => cef_alert(a),
    }
}

fn cef_event(e: &Event) -> String {
    let action = e.action.as_str();
    let signature = e.findings.first().map(|f| f.rule_id.as_str()).unwrap_or(action);
    let classes = e.classes().join(",");
    let name = if !classes.is_empty() {
        format!("{action} {classes}")
    } else if let Some(reason) = e.reason.as_deref().filter(|r| !r.is_empty()) {
        format!("{action} {reason}")
    } else {
        action.to_string()
    };
    let mut x = Extension::default();
    x.put_num("rt", ms(e.ts));
    x.put("externalId", &e.id);
    x.put("cat", e.kind.as_str());
    x.put("dvchost", &e.node);
    x.put("src", &e.client_ip);
    x.put("requestMethod", &e.method);
    x.put("dhost", &e.host);
    x.put("request", &format!("{}{}", e.host, e.path));
    if let Some(ua) = &e.user_agent {
        x.put("requestClientApplication", ua);
    }
    x.put("act", action);
    if let Some(reason) = &e.reason {
        x.put("reason", reason);
    }
    x.put_labelled("cs1", "route", &e.route);
    x.put_labelled("cs2", "request_id", &e.request_id);
    x.put_labelled("cs3", "classes", &classes);
    let mut rule_ids: Vec<&str> = Vec::new();
    for f in &e.findings {
        if !rule_ids.contains(&f.rule_id.as_str()) {
            rule_ids.push(&f.rule_id);
        }
    }
    x.put_labelled("cs4", "rule_ids", &rule_ids.join(","));
    if let Some(f) = e.findings.first() {
        x.put_labelled("cs5", "evidence", &format!("{}={}", f.point, f.evidence));
    }
    if let Some(ja4) = e.fingerprints.get("ja4") {
        x.put_labelled("cs6", "ja4", ja4);
    }
    x.put("cn1Label", "score");
    x.put_num("cn1", e.score);
    x.put("cn2Label", "status");
    x.put_num("cn2", e.status);
    x.put("cn3Label", "latency_us");
    x.put_num("cn3", e.latency_us);
    cef_line(signature, &name, event_cef_severity(e.action), &x.0)
}

fn cef_alert(a: &Alert) -> String {
    let signature = format!("trigger:{}", a.trigger);
    let name = if a.summary.is_empty() {
        format!("trigger {} fired", a.trigger)
    } else {
        a.summary.clone()
    };
    let mut x = Extension::default();
    x.put_num("rt", ms(a.ts));
    x.put("externalId", &a.id);
    x.put("cat", "alert");
    x.put("dvchost", &a.node);
    if a.group_by == "client_ip" {
        x.put("src", &a.key);
    }
    x.put("msg", &a.summary);
    x.put_num("cnt", a.count);
    x.put_num("start", ms(a.first_seen));
    x.put_num("end", ms(a.last_seen));
    x.put_labelled("cs1", "routes", &a.routes.join(","));
    x.put_labelled("cs2", "trigger", &a.trigger);
    x.put_labelled("cs3", "classes", &a.classes.join(","));
    x.put_labelled("cs4", "key", &format!("{}={}", a.group_by, a.key));
    x.put_labelled("cs5", "actions", &a.actions.join("; "));
    x.put_labelled("cs6", "sample_event_ids", &a.sample_event_ids.join(","));
    x.put("cn1Label", "threshold");
    x.put_num("cn1", a.threshold);
    x.put("cn2Label", "window_s");
    x.put_num("cn2", a.window_s);
    cef_line(&signature, &name, alert_cef_severity(&a.severity), &x.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_escaping() {
        assert_eq!(cef_escape_header(r"a|b\c=d"), r"a\|b\\c=d");
        assert_eq!(cef_escape_header("line1\nline2\r"), "line1 line2 ");
        assert_eq!(cef_escape_header("plain"), "plain");
    }

    #[test]
    fn extension_escaping() {
        assert_eq!(cef_escape_value(r"a=b\c|d"), r"a\=b\\c|d");
        assert_eq!(cef_escape_value("x\ny\rz"), r"x\ny\rz");
        assert_eq!(cef_escape_value("é ü"), "é ü");
    }

    #[test]
    fn truncation_respects_utf8_and_escapes() {
        assert_eq!(truncate_message("abc", 8), "abc");
        assert_eq!(truncate_message("ééé", 5), "éé");
        assert_eq!(truncate_message("ééé", 4), "éé");
        assert_eq!(truncate_message("ééé", 3), "é");
        assert_eq!(truncate_message(r"ab\\cd", 4), r"ab\\");
        assert_eq!(truncate_message(r"ab\\cd", 3), "ab");
        assert_eq!(truncate_message(r"ab\=cd", 3), "ab");
    }

    #[test]
    fn header_fields_are_printable_ascii() {
        assert_eq!(header_field("", 10), "-");
        assert_eq!(header_field("node 1", 10), "node_1");
        assert_eq!(header_field("nœud", 10), "n_ud");
        assert_eq!(header_field("abcdef", 3), "abc");
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(split_host_port("siem:514").unwrap(), ("siem".to_string(), 514));
        assert_eq!(split_host_port("[::1]:6514").unwrap(), ("::1".to_string(), 6514));
        assert!(split_host_port("::1:514").is_err());
        assert!(split_host_port("siem").is_err());
        assert!(split_host_port("siem:0").is_err());
        assert!(split_host_port(":514").is_err());
        assert!(split_host_port("siem:x").is_err());
    }

    #[test]
    fn frames_count_octets() {
        assert_eq!(octet_frame("héllo"), "6 héllo");
    }

    #[test]
    fn tls_server_name_defaults_to_the_host() {
        let spec = SyslogSpec {
            addr: "siem.example.com:6514".into(),
            transport: SyslogTransport::Tls,
            format: SyslogFormat::Cef,
            facility: 16,
            app_name: "rampart".into(),
            ca_pem: None,
            server_name: None,
        };
        let s = SyslogSink::new("s", &spec, Duration::from_secs(1)).unwrap();
        let (_, name) = s.tls.as_ref().unwrap();
        assert_eq!(name.to_str(), "siem.example.com");
        let bad = SyslogSpec {
            ca_pem: Some(b"not a pem".to_vec()),
            ..spec
        };
        assert!(SyslogSink::new("s", &bad, Duration::from_secs(1))
            .unwrap_err()
            .is_permanent());
    }
}
