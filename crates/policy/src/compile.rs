//! Config file -> [`Policy`]: every value checked, every reference resolved, every error reported.

use crate::diag::{ConfigErrors, Reporter};
use crate::file::*;
use crate::routes::{HostMatch, PathMatch, Route, RouteTable};
use crate::units::{parse_duration, parse_size};
use crate::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The configuration `rampart run` uses without a file: one catch-all route in block mode.
/// `{listen}` and `{upstream}` are filled in by the caller.
pub const EMBEDDED_DEFAULTS: &str = r#"
data_dir = "./rampart-data"

[[listeners]]
name = "main"
addr = "{listen}"

[upstreams.default]
targets = ["{upstream}"]

[[routes]]
name = "default"
path = "/"
upstream = "default"
mode = "block"

[console]
listen = "{console}"
"#;

/// Reads and compiles a config file. Errors name the file.
pub fn load_file(path: &Path) -> Result<Policy, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
            hint: Some("check the path given to --config".into()),
        }])
    })?;
    let mut policy = compile_str(path, &source)?;
    policy.source = Some(path.to_path_buf());
    Ok(policy)
}

/// Compiles config text; `file` is used in diagnostics and to resolve relative paths (certificates).
pub fn compile_str(file: &Path, source: &str) -> Result<Policy, ConfigErrors> {
    let mut r = Reporter::new(file, source);
    let parsed: ConfigFile = match toml::from_str(source) {
        Ok(c) => c,
        Err(e) => {
            let hint = parse_hint(e.message());
            r.error(e.span(), e.message().trim().to_string(), hint);
            return Err(ConfigErrors(r.diagnostics));
        }
    };
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Compiler {
        r,
        base_dir,
        identity: Default::default(),
    };
    let policy = c.policy(parsed);
    if c.r.diagnostics.is_empty() {
        Ok(policy)
    } else {
        Err(ConfigErrors(c.r.diagnostics))
    }
}

fn parse_hint(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("remove the key or fix its spelling; the config reference in README.md lists every key".into())
    } else if message.contains("missing field") {
        Some("add the required key to this table".into())
    } else if message.contains("invalid type") {
        Some("check the value's type: strings need quotes, lists need [ ]".into())
    } else {
        Some("see the TOML syntax at https://toml.io and the example in README.md".into())
    }
}

pub(crate) struct Compiler<'a> {
    pub(crate) r: Reporter<'a>,
    pub(crate) base_dir: std::path::PathBuf,
    /// `[identity]`, compiled first: the `session` and `fingerprint` key parts stand for it.
    pub(crate) identity: crate::guard::IdentitySettings,
}

impl Compiler<'_> {
    fn policy(&mut self, f: ConfigFile) -> Policy {
        self.identity = self.identity(&f.identity);
        let limits = self.limits(&f.limits);
        let default_max_conn = f.limits.max_connections.unwrap_or(50_000);
        let default_max_conn_ip = f.limits.max_connections_per_ip.unwrap_or(1_000);

        let mut listeners = Vec::new();
        let mut seen_addrs = HashSet::new();
        for (i, l) in f.listeners.iter().enumerate() {
            if let Some(listener) = self.listener(i, l, default_max_conn, default_max_conn_ip) {
                if !seen_addrs.insert(listener.addr) {
                    self.r.error(
                        Some(l.addr.span()),
                        format!("two listeners use the address {}", listener.addr),
                        Some("give each listener its own address or port".to_string()),
                    );
                }
                listeners.push(listener);
            }
        }
        if f.listeners.is_empty() {
            self.r.error(
                None,
                "no [[listeners]] defined",
                Some("add a listener, e.g. [[listeners]] addr = \"0.0.0.0:8080\"".to_string()),
            );
        }

        let mut upstreams = BTreeMap::new();
        for (name, u) in &f.upstreams {
            if let Some(up) = self.upstream(name, u) {
                upstreams.insert(name.clone(), Arc::new(up));
            }
        }

        let mut routes = Vec::new();
        for (i, rf) in f.routes.iter().enumerate() {
            if let Some(route) = self.route(i, rf, &f.upstreams) {
                routes.push(route);
            }
        }
        if f.routes.is_empty() {
            self.r.error(
                None,
                "no [[routes]] defined: every request would be answered 404",
                Some("add a route, e.g. [[routes]] path = \"/\" upstream = \"app\"".to_string()),
            );
        }

        let mut nets = Vec::new();
        for t in &f.trusted_proxies {
            match parse_net(t.get_ref()) {
                Ok(n) => nets.push(n),
                Err(e) => self.r.error(
                    Some(t.span()),
                    format!("`{}` is not an IP address or CIDR: {e}", t.get_ref()),
                    Some("write e.g. \"10.0.0.0/8\" or \"192.0.2.7\"".to_string()),
                ),
            }
        }

        let block = self.block(&f.block);
        let console = Console {
            listen: f.console.listen.as_ref().and_then(|a| self.socket_addr(a)),
            token: f.console.token.clone().filter(|t| !t.is_empty()),
        };
        let log = LogSettings {
            access: f.log.access.unwrap_or(true),
            level: f.log.level.clone().unwrap_or_else(|| "info".into()),
        };
        let data_dir: std::path::PathBuf = f.data_dir.map(Into::into).unwrap_or_else(|| "./rampart-data".into());
        let events = self.events(&f.events, &f.triggers, &data_dir);
        let state = self.state(&f.state);
        let route_names: Vec<String> = routes.iter().map(|r: &Route| r.name.to_string()).collect();
        let rate_limits = f
            .rate_limits
            .iter()
            .filter_map(|l| self.rate_limit(l, &route_names))
            .collect();
        let logins = f.logins.iter().filter_map(|l| self.login(l, &route_names)).collect();
        let enumeration = f
            .enumeration
            .iter()
            .filter_map(|e| self.enumeration(e, &route_names))
            .collect();
        let otp = f.otp.iter().filter_map(|o| self.otp(o, &route_names)).collect();
        let identity = self.identity.clone();
        let challenge = self.challenge(&f.challenge);
        let discovery = DiscoverySettings {
            enabled: f.discovery.enabled.unwrap_or(true),
            sample: match &f.discovery.sample {
                None => 1.0,
                Some(s) if (0.0..=1.0).contains(s.get_ref()) => *s.get_ref(),
                Some(s) => {
                    self.r.error(
                        Some(s.span()),
                        format!("discovery sample {} is not a fraction", s.get_ref()),
                        Some("use a number from 0 to 1, e.g. 0.1 to observe one request in ten".to_string()),
                    );
                    1.0
                }
            },
            flush_interval: self.duration(&f.discovery.flush_interval, Duration::from_secs(30)),
        };
        Policy {
            listeners,
            upstreams,
            routes: RouteTable::new(routes),
            limits,
            trusted_proxies: TrustedProxies::new(nets),
            block,
            console,
            log,
            data_dir,
            events,
            state,
            rate_limits,
            logins,
            enumeration,
            otp,
            identity,
            challenge,
            discovery,
            source: None,
        }
    }

    pub(crate) fn duration(&mut self, v: &Option<S<String>>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.r.error(
                        Some(s.span()),
                        e,
                        Some("durations look like \"500ms\", \"10s\", \"5m\"".to_string()),
                    );
                    default
                }
            },
        }
    }

    pub(crate) fn size(&mut self, v: &Option<S<String>>, default: u64) -> u64 {
        match v {
            None => default,
            Some(s) => match parse_size(s.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.r.error(
                        Some(s.span()),
                        e,
                        Some("sizes look like \"64KiB\", \"1MiB\"".to_string()),
                    );
                    default
                }
            },
        }
    }

    fn socket_addr(&mut self, s: &S<String>) -> Option<SocketAddr> {
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.r.error(
                    Some(s.span()),
                    format!("`{}` is not a socket address", s.get_ref()),
                    Some("write IP:port, e.g. \"0.0.0.0:8080\" or \"[::]:8443\"".to_string()),
                );
                None
            }
        }
    }

    fn limits(&mut self, l: &LimitsFile) -> Limits {
        let max_header_bytes = self.size(&l.max_header_bytes, 64 << 10) as usize;
        if let Some(s) = &l.max_header_bytes {
            if max_header_bytes < 8192 {
                self.r.error(
                    Some(s.span()),
                    "max_header_bytes must be at least 8KiB",
                    Some("real browsers send 2-8 KiB of headers; use \"16KiB\" or more".to_string()),
                );
            }
        }
        Limits {
            workers: l.workers.unwrap_or(0).min(1024),
            max_uri_length: l.max_uri_length.unwrap_or(8192),
            max_header_bytes: max_header_bytes.max(8192),
            max_headers: l.max_headers.unwrap_or(100),
            header_read_timeout: self.duration(&l.header_read_timeout, Duration::from_secs(10)),
            idle_timeout: self.duration(&l.idle_timeout, Duration::from_secs(60)),
            tls_handshake_timeout: self.duration(&l.tls_handshake_timeout, Duration::from_secs(10)),
            h2_max_concurrent_streams: l.h2_max_concurrent_streams.unwrap_or(128),
            h2_max_pending_resets: l.h2_max_pending_resets.unwrap_or(20),
            h2_max_local_error_resets: l.h2_max_local_error_resets.unwrap_or(1024),
            shutdown_grace: self.duration(&l.shutdown_grace, Duration::from_secs(30)),
        }
    }

    fn listener(&mut self, i: usize, l: &ListenerFile, max_conn: u32, max_conn_ip: u32) -> Option<Listener> {
        let addr = self.socket_addr(&l.addr)?;
        let tls = l.tls.as_ref().and_then(|t| self.tls(t));
        Some(Listener {
            name: l.name.clone().unwrap_or_else(|| format!("listener-{i}")),
            addr,
            tls,
            proxy_protocol: l.proxy_protocol,
            max_connections: l.max_connections.unwrap_or(max_conn),
            max_connections_per_ip: l.max_connections_per_ip.unwrap_or(max_conn_ip),
        })
    }

    pub(crate) fn read_pem(
        &mut self,
        s: &S<String>,
        what: &str,
        marker: &str,
    ) -> Option<(std::path::PathBuf, Vec<u8>)> {
        let path = self.base_dir.join(s.get_ref());
        match std::fs::read(&path) {
            Ok(bytes) if String::from_utf8_lossy(&bytes).contains(marker) => Some((path, bytes)),
            Ok(_) => {
                self.r.error(
                    Some(s.span()),
                    format!("{} holds no PEM {what}", path.display()),
                    Some(format!("the file must contain a `{marker}` block")),
                );
                None
            }
            Err(e) => {
                self.r.error(
                    Some(s.span()),
                    format!("cannot read {what} file {}: {e}", path.display()),
                    Some("paths are relative to the config file's directory".to_string()),
                );
                None
            }
        }
    }

    fn tls(&mut self, t: &TlsFile) -> Option<TlsSettings> {
        let mut certificates = Vec::new();
        for c in &t.certificates {
            let cert = self.read_pem(&c.cert, "certificate", "BEGIN CERTIFICATE");
            let key = self.read_pem(&c.key, "private key", "PRIVATE KEY");
            if let (Some((cert_path, chain_pem)), Some((_, key_pem))) = (cert, key) {
                certificates.push(Certificate {
                    cert_path,
                    chain_pem,
                    key_pem,
                    server_names: c.server_names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                });
            }
        }
        let min_version = match t.min_version.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "1.2")) => TlsVersion::Tls12,
            Some((_, "1.3")) => TlsVersion::Tls13,
            Some((s, other)) => {
                self.r.error(
                    Some(s.span()),
                    format!("unsupported TLS version `{other}`"),
                    Some("use \"1.2\" or \"1.3\"".to_string()),
                );
                TlsVersion::Tls12
            }
        };
        if t.certificates.is_empty() {
            self.r.error(
                None,
                "a [listeners.tls] table needs at least one certificate",
                Some("add [[listeners.tls.certificates]] cert = \"cert.pem\" key = \"key.pem\"".to_string()),
            );
        }
        Some(TlsSettings {
            certificates,
            min_version,
            http2: t.http2.unwrap_or(true),
        })
    }

    fn upstream(&mut self, name: &str, u: &UpstreamFile) -> Option<Upstream> {
        let mut targets = Vec::new();
        for t in &u.targets {
            match parse_target(t.get_ref()) {
                Ok(target) => targets.push(target),
                Err(e) => self.r.error(
                    Some(t.span()),
                    format!("upstream `{name}`: bad target `{}`: {e}", t.get_ref()),
                    Some("write a base URL like \"http://10.0.0.5:8080\" or \"https://api.internal\"".to_string()),
                ),
            }
        }
        if u.targets.is_empty() {
            self.r.error(
                None,
                format!("upstream `{name}` has no targets"),
                Some("add targets = [\"http://host:port\"]".to_string()),
            );
        }
        let balance = match u.balance.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "round_robin")) => Balance::RoundRobin,
            Some((_, "least_connections" | "least_conn")) => Balance::LeastConnections,
            Some((s, other)) => {
                self.r.error(
                    Some(s.span()),
                    format!("unknown balance `{other}`"),
                    Some("use \"round_robin\" or \"least_connections\"".to_string()),
                );
                Balance::RoundRobin
            }
        };
        let protocol = match u.protocol.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "http1")) => UpstreamProtocol::Http1,
            Some((_, "http2")) => UpstreamProtocol::Http2,
            Some((s, other)) => {
                self.r.error(
                    Some(s.span()),
                    format!("unknown upstream protocol `{other}`"),
                    Some("use \"http1\" or \"http2\"".to_string()),
                );
                UpstreamProtocol::Http1
            }
        };
        let ca_pem = u
            .ca_file
            .as_ref()
            .and_then(|s| self.read_pem(s, "CA certificate", "BEGIN CERTIFICATE"))
            .map(|(_, pem)| pem);
        let health = u.health.as_ref().map(|h| HealthCheck {
            path: h
                .path
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_else(|| "/".into()),
            interval: self.duration(&h.interval, Duration::from_secs(5)),
            timeout: self.duration(&h.timeout, Duration::from_secs(2)),
            healthy_threshold: h.healthy_threshold.unwrap_or(2).max(1),
            unhealthy_threshold: h.unhealthy_threshold.unwrap_or(3).max(1),
            expect_status: h.expect_status.clone().unwrap_or_default(),
        });
        if let Some(Some(p)) = u.health.as_ref().map(|h| h.path.as_ref()) {
            if !p.get_ref().starts_with('/') {
                self.r.error(
                    Some(p.span()),
                    "health check path must start with /",
                    Some("e.g. \"/healthz\"".to_string()),
                );
            }
        }
        let passive = PassiveHealth {
            max_failures: u.passive.as_ref().and_then(|p| p.max_failures).unwrap_or(3).max(1),
            eject_for: self.duration(
                &u.passive.as_ref().and_then(|p| p.eject_for.clone()),
                Duration::from_secs(10),
            ),
        };
        Some(Upstream {
            name: name.to_string(),
            targets,
            balance,
            protocol,
            connect_timeout: self.duration(&u.connect_timeout, Duration::from_secs(3)),
            read_timeout: self.duration(&u.read_timeout, Duration::from_secs(60)),
            pool_idle_timeout: self.duration(&u.pool_idle_timeout, Duration::from_secs(90)),
            pool_max_idle: u.pool_max_idle.unwrap_or(256),
            retries: u.retries.unwrap_or(1),
            ca_pem,
            health,
            passive,
        })
    }

    fn route(&mut self, i: usize, rf: &RouteFile, upstreams: &BTreeMap<String, UpstreamFile>) -> Option<Route> {
        let name = rf.name.clone().unwrap_or_else(|| format!("route-{i}"));
        if !upstreams.contains_key(rf.upstream.get_ref()) {
            let known: Vec<_> = upstreams.keys().map(String::as_str).collect();
            self.r.error(
                Some(rf.upstream.span()),
                format!("route `{name}` refers to unknown upstream `{}`", rf.upstream.get_ref()),
                Some(if known.is_empty() {
                    "define it in an [upstreams.NAME] table".to_string()
                } else {
                    format!("known upstreams: {}", known.join(", "))
                }),
            );
        }
        let host = match &rf.host {
            None => HostMatch::Any,
            Some(h) => {
                let v = h.get_ref().to_ascii_lowercase();
                if let Some(suffix) = v.strip_prefix('*') {
                    if !suffix.starts_with('.') || suffix.contains('*') {
                        self.r.error(
                            Some(h.span()),
                            format!("bad wildcard host `{v}`"),
                            Some("a wildcard host looks like \"*.example.com\"".to_string()),
                        );
                    }
                    HostMatch::Suffix(suffix.to_string())
                } else if v.is_empty() || v.contains(['/', ' ', '*']) {
                    self.r.error(
                        Some(h.span()),
                        format!("bad host `{v}`"),
                        Some("write a host name without scheme or path, e.g. \"api.example.com\"".to_string()),
                    );
                    HostMatch::Any
                } else {
                    HostMatch::Exact(v)
                }
            }
        };
        let path_text = rf
            .path
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_else(|| "/".into());
        let path_span = rf.path.as_ref().map(|p| p.span());
        if !path_text.starts_with('/') {
            self.r.error(
                path_span.clone(),
                format!("route path `{path_text}` must start with /"),
                None,
            );
        }
        let kind = rf.match_kind.as_ref().map(|s| s.get_ref().as_str()).unwrap_or_else(|| {
            if path_text.contains('{') {
                "template"
            } else {
                "prefix"
            }
        });
        let path = match kind {
            "prefix" => PathMatch::Prefix(path_text),
            "exact" => PathMatch::Exact(path_text),
            "template" => PathMatch::template(&path_text).unwrap_or_else(|| {
                self.r.error(
                    path_span.clone(),
                    format!("bad path template `{path_text}`"),
                    Some("parameters are whole segments in braces, e.g. \"/users/{id}/orders\"".to_string()),
                );
                PathMatch::Exact(String::new())
            }),
            other => {
                let span = rf.match_kind.as_ref().map(|s| s.span());
                self.r.error(
                    span,
                    format!("unknown match `{other}`"),
                    Some("use \"prefix\", \"exact\" or \"template\"".to_string()),
                );
                PathMatch::Prefix("/".into())
            }
        };
        let mode = match rf.mode.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "block")) => Mode::Block,
            Some((_, "monitor")) => Mode::Monitor,
            Some((_, "off")) => Mode::Off,
            Some((s, other)) => {
                self.r.error(
                    Some(s.span()),
                    format!("unknown mode `{other}`"),
                    Some("use \"block\", \"monitor\" or \"off\"".to_string()),
                );
                Mode::Block
            }
        };
        let body_file = rf.body.as_ref();
        let inspect_limit = self.size(&body_file.and_then(|b| b.inspect_limit.clone()), 1 << 20);
        if inspect_limit > 64 << 20 {
            let span = body_file.and_then(|b| b.inspect_limit.as_ref()).map(|s| s.span());
            self.r.error(
                span,
                "inspect_limit above 64MiB",
                Some(
                    "inspection holds this much per request in memory; use oversize = \"pass\" for large uploads"
                        .to_string(),
                ),
            );
        }
        let oversize = match body_file
            .and_then(|b| b.oversize.as_ref())
            .map(|s| (s, s.get_ref().as_str()))
        {
            None | Some((_, "block")) => Oversize::Block,
            Some((_, "pass")) => Oversize::Pass,
            Some((s, other)) => {
                self.r.error(
                    Some(s.span()),
                    format!("unknown oversize action `{other}`"),
                    Some("use \"block\" (answer 413) or \"pass\" (forward the rest uninspected)".to_string()),
                );
                Oversize::Block
            }
        };
        let max_size = body_file
            .and_then(|b| b.max_size.clone())
            .map(|s| self.size(&Some(s), u64::MAX));
        let detection = rf.detection.clone();
        let detection_at = match detection {
            Some(_) => self.r.position(self.r.table_after(rf.upstream.span().end, "detection")),
            None => (0, 0),
        };
        Some(Route {
            name: name.into(),
            host,
            path,
            upstream: rf.upstream.get_ref().clone(),
            mode,
            body: BodyPolicy {
                inspect_limit: inspect_limit.min(64 << 20) as usize,
                oversize,
                max_size,
            },
            timeout: self.duration(&rf.timeout, Duration::from_secs(60)),
            detection,
            detection_at,
            max_concurrent: rf.max_concurrent.filter(|n| *n > 0),
            websocket: {
                let ws = rf.websocket.as_ref();
                let rate = ws.and_then(|w| w.messages_per_second).unwrap_or(100).max(1);
                crate::WebSocketPolicy {
                    max_message: ws
                        .and_then(|w| w.max_message.clone())
                        .map_or(inspect_limit, |m| self.size(&Some(m), inspect_limit))
                        .min(64 << 20) as usize,
                    messages_per_second: rate,
                    burst: ws.and_then(|w| w.burst).unwrap_or(rate.saturating_mul(2)).max(1),
                    inspect_server: ws.and_then(|w| w.inspect_server).unwrap_or(false),
                }
            },
            grpc_max_stream_messages: rf.grpc.as_ref().and_then(|g| g.max_stream_messages).unwrap_or(10_000),
            openapi: rf.openapi.as_ref().map(|o| self.openapi(o)),
        })
    }

    fn openapi(&mut self, o: &crate::file::OpenApiFile) -> crate::OpenApiPolicy {
        let choice = |c: &mut Self, v: &Option<S<String>>, key: &str, allowed: [&str; 2]| match v {
            None => true,
            Some(s) if s.get_ref() == allowed[0] => true,
            Some(s) if s.get_ref() == allowed[1] => false,
            Some(s) => {
                c.r.error(
                    Some(s.span()),
                    format!("unknown openapi {key} `{}`", s.get_ref()),
                    Some(format!("use \"{}\" or \"{}\"", allowed[0], allowed[1])),
                );
                true
            }
        };
        let enforce = choice(self, &o.mode, "mode", ["block", "monitor"]);
        let unknown_is_violation = choice(self, &o.unknown, "unknown", ["block", "pass"]);
        crate::OpenApiPolicy {
            spec: self.base_dir.join(o.spec.get_ref()),
            spec_at: self.r.position(o.spec.span()),
            enforce,
            unknown_is_violation,
            check_responses: o.responses.unwrap_or(false),
        }
    }

    fn block(&mut self, b: &BlockFile) -> BlockResponse {
        let status = match &b.status {
            None => 403,
            Some(s) if (400..=599).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                self.r.error(
                    Some(s.span()),
                    format!("block status {} is not an error status", s.get_ref()),
                    Some("use a 4xx or 5xx status, e.g. 403".to_string()),
                );
                403
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &b.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value.get_ref()).is_err()
            {
                self.r.error(
                    Some(value.span()),
                    format!("invalid block header `{name}`"),
                    Some("header names are tokens (letters, digits, '-') and values printable ASCII".to_string()),
                );
            } else {
                headers.push((name.clone(), value.get_ref().clone()));
            }
        }
        BlockResponse {
            status,
            content_type: b.content_type.clone().unwrap_or_else(|| "application/json".into()),
            body_template: b
                .body
                .clone()
                .unwrap_or_else(|| r#"{"error":"request blocked","request_id":"{request_id}"}"#.to_string()),
            headers,
        }
    }
}

pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|e| e.to_string())
}

fn parse_target(s: &str) -> Result<Target, String> {
    let uri: http::Uri = s.parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("the scheme must be http or https".into()),
    };
    let host = uri.host().ok_or("no host")?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err("targets are base URLs without a path".into());
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = format!("{host}:{port}");
    Ok(Target {
        url: format!("{}://{authority}", if tls { "https" } else { "http" }),
        tls,
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<Policy, ConfigErrors> {
        compile_str(Path::new("rampart.toml"), src)
    }

    const GOOD: &str = r#"
[[listeners]]
addr = "127.0.0.1:8080"

[upstreams.app]
targets = ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]
balance = "least_connections"
[upstreams.app.health]
path = "/healthz"
interval = "2s"

[[routes]]
name = "api"
path = "/api"
upstream = "app"
mode = "monitor"
body = { inspect_limit = "64KiB", oversize = "pass" }
"#;

    #[test]
    fn good_config_compiles() {
        let p = compile(GOOD).unwrap();
        assert_eq!(p.listeners[0].addr, "127.0.0.1:8080".parse().unwrap());
        let up = &p.upstreams["app"];
        assert_eq!(up.targets.len(), 2);
        assert_eq!(up.balance, Balance::LeastConnections);
        assert_eq!(up.health.as_ref().unwrap().interval, Duration::from_secs(2));
        let route = p.routes.find("x", "/api/v1").unwrap();
        assert_eq!(route.mode, Mode::Monitor);
        assert_eq!(route.body.inspect_limit, 64 << 10);
        assert_eq!(route.body.oversize, Oversize::Pass);
    }

    #[test]
    fn a_detection_sub_table_needs_no_parent_header() {
        let src = format!("{GOOD}[routes.detection.grpc]\nprotos = []\n");
        let p = compile(&src).unwrap();
        let route = p.routes.find("x", "/api").unwrap();
        assert!(route.detection.as_ref().unwrap().get("grpc").is_some());
        assert_eq!(
            route.detection_at.0,
            GOOD.lines().count() + 1,
            "errors point at its header"
        );
    }

    #[test]
    fn every_error_is_reported_with_position_and_hint() {
        let src = GOOD
            .replace("least_connections", "fastest")
            .replace("upstream = \"app\"", "upstream = \"ap\"")
            .replace("\"2s\"", "\"2 weeks\"");
        let errs = compile(&src).unwrap_err().0;
        assert_eq!(errs.len(), 3, "{errs:#?}");
        let balance = errs.iter().find(|d| d.message.contains("fastest")).unwrap();
        assert_eq!((balance.line, balance.column), (7, 11));
        assert!(balance.hint.as_ref().unwrap().contains("least_connections"));
        let up = errs.iter().find(|d| d.message.contains("unknown upstream")).unwrap();
        assert_eq!(up.line, 15);
        assert!(up.hint.as_ref().unwrap().contains("app"));
        assert!(errs.iter().any(|d| d.message.contains("unit") && d.line == 10));
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_the_line() {
        let errs = compile("[[listeners]]\naddr = \"127.0.0.1:1\"\nport = 3\n")
            .unwrap_err()
            .0;
        assert_eq!(errs[0].line, 3);
        assert!(errs[0].message.contains("unknown field"), "{}", errs[0].message);
        let errs = compile("[[listeners]\n").unwrap_err().0;
        assert_eq!(errs[0].line, 1);
        let rendered = ConfigErrors(errs).to_string();
        assert!(rendered.starts_with("rampart.toml:1:"), "{rendered}");
    }

    #[test]
    fn missing_certificate_is_an_error() {
        let src = GOOD.replace(
            "addr = \"127.0.0.1:8080\"",
            "addr = \"127.0.0.1:8080\"\ntls = { certificates = [{ cert = \"nope.pem\", key = \"nope.key\" }] }",
        );
        let errs = compile(&src).unwrap_err().0;
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.contains("cannot read certificate"));
    }

    #[test]
    fn embedded_defaults_compile() {
        let src = EMBEDDED_DEFAULTS
            .replace("{listen}", "127.0.0.1:8080")
            .replace("{upstream}", "http://127.0.0.1:3000")
            .replace("{console}", "127.0.0.1:9901");
        let p = compile(&src).unwrap();
        assert_eq!(p.routes.find("any", "/x").unwrap().mode, Mode::Block);
    }

    #[test]
    fn targets_are_normalised() {
        let t = parse_target("https://api.internal").unwrap();
        assert_eq!((t.authority.as_str(), t.tls), ("api.internal:443", true));
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("http://x/path").is_err());
    }
}
