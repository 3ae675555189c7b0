//! rampart's configuration: one TOML file in, one validated, immutable [`Policy`] out.
//!
//! Module map:
//! - [`file`]: serde types mirroring the TOML file (what the user wrote, with spans);
//! - [`compile`](crate::compile): checks every value and reference and builds the [`Policy`], collecting
//!   every error as a [`Diagnostic`] with file, line, column and hint;
//! - [`routes`]: the compiled route table and its matcher (host, then exact / template / prefix path);
//! - [`events`]: where events go (sinks) and what acts on them (triggers);
//! - [`guard`]: the state store and keyed rate limits;
//! - [`units`]: durations and sizes.
//!
//! A `Policy` never changes after it is built. Reload builds a new one off the hot path and the proxy swaps
//! the pointer; a file that fails to compile leaves the running policy in place.

mod compile;
pub mod diag;
pub mod events;
pub mod file;
pub mod guard;
pub mod routes;
pub mod units;

pub use compile::{compile_str, load_file, EMBEDDED_DEFAULTS};
pub use diag::{ConfigErrors, Diagnostic};
pub use routes::{HostMatch, PathMatch, Route, RouteTable};

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The compiled, validated configuration.
#[derive(Debug)]
pub struct Policy {
    pub listeners: Vec<Listener>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub routes: RouteTable,
    pub limits: Limits,
    pub trusted_proxies: TrustedProxies,
    pub block: BlockResponse,
    pub console: Console,
    pub log: LogSettings,
    pub data_dir: PathBuf,
    pub events: events::EventSettings,
    pub state: guard::StateSettings,
    pub rate_limits: Vec<guard::RateLimitSpec>,
    pub logins: Vec<guard::LoginSpec>,
    pub enumeration: Vec<guard::EnumerationSpec>,
    pub otp: Vec<guard::OtpSpec>,
    pub identity: guard::IdentitySettings,
    pub challenge: guard::ChallengeSettings,
    pub discovery: DiscoverySettings,
    /// The file this policy came from, if any (embedded defaults have none).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub proxy_protocol: bool,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    pub certificates: Vec<Certificate>,
    pub min_version: TlsVersion,
    pub http2: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A certificate chain and its key, as PEM read from disk at compile time (so a bad file fails the reload,
/// not the first handshake).
#[derive(Clone, PartialEq)]
pub struct Certificate {
    pub cert_path: PathBuf,
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub server_names: Vec<String>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Certificate")
            .field("cert_path", &self.cert_path)
            .field("server_names", &self.server_names)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    pub balance: Balance,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// Extra attempts on another target, for idempotent requests whose body is replayable.
    pub retries: u32,
    pub ca_pem: Option<Vec<u8>>,
    pub health: Option<HealthCheck>,
    pub passive: PassiveHealth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port` or `https://host:port`, as written (normalised, no path).
    pub url: String,
    pub tls: bool,
    /// host:port
    pub authority: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConnections,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    Http2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expect_status: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PassiveHealth {
    /// Consecutive failures (connect errors, timeouts, 502/503/504) before a target is ejected.
    pub max_failures: u32,
    pub eject_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Blocking: attacks are answered with the block response.
    Block,
    /// Findings are logged; nothing is blocked, nothing answered 413 for a body only inspected.
    Monitor,
    /// No inspection at all.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Block => "block",
            Mode::Monitor => "monitor",
            Mode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    Block,
    Pass,
}

/// API discovery: the inventory learned from traffic (in `data_dir`/inventory.db).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverySettings {
    pub enabled: bool,
    /// The fraction of requests observed (0..=1).
    pub sample: f64,
    pub flush_interval: std::time::Duration,
}

/// A route's OpenAPI contract: the spec file and how its violations count.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenApiPolicy {
    pub spec: std::path::PathBuf,
    /// Line and column of `spec` in the config file, for errors found when the spec is compiled.
    pub spec_at: (usize, usize),
    /// Violations count as attacks (true), or are recorded only (false).
    pub enforce: bool,
    /// Requests to paths and methods the spec does not define are violations (true) or pass (false).
    pub unknown_is_violation: bool,
    /// The upstream's answers are checked too, and what breaks the contract is recorded.
    pub check_responses: bool,
}

/// WebSocket messages on a route: their size and rate per connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebSocketPolicy {
    /// The largest message (after reassembly and inflation); past it the connection closes with 1009.
    pub max_message: usize,
    /// Client messages per second per connection, with `burst` at once; past it 1008.
    pub messages_per_second: u32,
    pub burst: u32,
    /// Whether the server's messages are inspected too (an attack closes the connection with 1008).
    pub inspect_server: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BodyPolicy {
    pub inspect_limit: usize,
    pub oversize: Oversize,
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    pub max_uri_length: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_resets: usize,
    pub h2_max_local_error_resets: usize,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies { nets }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlockResponse {
    pub status: u16,
    pub content_type: String,
    pub body_template: String,
    pub headers: Vec<(String, String)>,
}

impl BlockResponse {
    pub fn render(&self, request_id: &str) -> String {
        self.body_template.replace("{request_id}", request_id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Console {
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    pub access: bool,
    pub level: String,
}
