//! The config file as written: serde types that mirror the TOML one to one.
//!
//! Values that need checking beyond their TOML type (durations, sizes, addresses, names that refer to other
//! sections) are kept as [`Spanned`] so that [`crate::compile`] can point at the exact line and column.
//! Every table denies unknown keys: a typo must be an error, not a silently ignored setting.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub listeners: Vec<ListenerFile>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    #[serde(default)]
    pub block: BlockFile,
    #[serde(default)]
    pub console: ConsoleFile,
    #[serde(default)]
    pub log: LogFile,
    pub data_dir: Option<String>,
    #[serde(default)]
    pub events: EventsFile,
    #[serde(default)]
    pub triggers: Vec<TriggerFile>,
    #[serde(default)]
    pub state: StateFile,
    #[serde(default)]
    pub rate_limits: Vec<RateLimitFile>,
    #[serde(default)]
    pub logins: Vec<LoginFile>,
    #[serde(default)]
    pub enumeration: Vec<EnumerationFile>,
    #[serde(default)]
    pub otp: Vec<OtpFile>,
    #[serde(default)]
    pub identity: IdentityFile,
    #[serde(default)]
    pub challenge: ChallengeFile,
    #[serde(default)]
    pub discovery: DiscoveryFile,
}

/// The `challenge` action of rate limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeFile {
    /// Shared by the fleet (or env:NAME); default: a random key per process.
    pub secret: Option<S<String>>,
    /// Leading zero bits of the proof of work (default 16).
    pub difficulty: Option<S<u32>>,
    /// How long a solved challenge holds (default 30m).
    pub clearance: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Option<String>,
    pub addr: S<String>,
    pub tls: Option<TlsFile>,
    /// Expect a PROXY protocol v1/v2 header from trusted peers.
    #[serde(default)]
    pub proxy_protocol: bool,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub certificates: Vec<CertificateFile>,
    /// "1.2" or "1.3": the oldest protocol version accepted.
    pub min_version: Option<S<String>>,
    /// Offer HTTP/2 through ALPN (default true).
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    pub cert: S<String>,
    pub key: S<String>,
    /// SNI names served by this certificate; empty means "the names in the certificate". The first
    /// certificate is also the default for clients that send no SNI.
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub targets: Vec<S<String>>,
    pub balance: Option<S<String>>,
    /// "http1" or "http2" towards the targets.
    pub protocol: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    pub read_timeout: Option<S<String>>,
    pub pool_idle_timeout: Option<S<String>>,
    pub pool_max_idle: Option<usize>,
    pub retries: Option<u32>,
    /// Extra PEM CA bundle to trust for https targets (in addition to the built-in web roots).
    pub ca_file: Option<S<String>>,
    pub health: Option<HealthFile>,
    pub passive: Option<PassiveFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    pub path: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    /// Status codes counted as healthy: "2xx" and "3xx" by default.
    pub expect_status: Option<Vec<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveFile {
    pub max_failures: Option<u32>,
    pub eject_for: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: Option<String>,
    /// Host to match ("api.example.com", "*.example.com"); absent matches any host.
    pub host: Option<S<String>>,
    pub path: Option<S<String>>,
    /// "prefix" (default), "exact" or "template" ("/users/{id}/orders").
    #[serde(rename = "match")]
    pub match_kind: Option<S<String>>,
    pub upstream: S<String>,
    pub mode: Option<S<String>>,
    pub body: Option<BodyFile>,
    /// Time for the whole upstream exchange up to the response head.
    pub timeout: Option<S<String>>,
    /// Kept as raw TOML here: the detection engine owns its schema (see the detect crate). Not spanned:
    /// the toml crate has no span for a table that only a sub-table header such as
    /// `[routes.detection.grpc]` creates, and would refuse that valid file.
    pub detection: Option<toml::Value>,
    /// Requests in flight on this route (per node) past which new ones are answered 503.
    pub max_concurrent: Option<u32>,
    pub websocket: Option<WebSocketFile>,
    pub grpc: Option<GrpcFile>,
    pub openapi: Option<OpenApiFile>,
}

/// API discovery from traffic.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryFile {
    /// On by default.
    pub enabled: Option<bool>,
    /// The fraction of requests observed, 0 to 1 (default 1).
    pub sample: Option<S<f64>>,
    /// How often the inventory is written to the data directory (default 30s).
    pub flush_interval: Option<S<String>>,
}

/// A route's OpenAPI contract (positive security).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiFile {
    /// The spec (JSON or YAML, OpenAPI 3.0 or 3.1), relative to the config file.
    pub spec: S<String>,
    /// "block" (default): violations count as attacks under the route's mode; "monitor": recorded only.
    pub mode: Option<S<String>>,
    /// Requests to paths or methods the spec does not define: "block" (default) or "pass".
    pub unknown: Option<S<String>>,
    /// Check the upstream's answers too (status, JSON body): recorded, never blocked (default false).
    pub responses: Option<bool>,
}

/// gRPC calls on a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcFile {
    /// Messages per request stream (default 10,000; 0 for no limit).
    pub max_stream_messages: Option<u64>,
}

/// WebSocket connections on a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketFile {
    /// The largest client message (default: the route's inspect_limit).
    pub max_message: Option<S<String>>,
    /// Client messages per second per connection (default 100).
    pub messages_per_second: Option<u32>,
    /// Messages at once above the rate (default twice the rate).
    pub burst: Option<u32>,
    /// Inspect the server's messages to the client too (default false).
    pub inspect_server: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyFile {
    /// How much of a request body is held for inspection before it is forwarded.
    pub inspect_limit: Option<S<String>>,
    /// What happens past `inspect_limit`: "block" (413) or "pass" (forward uninspected).
    pub oversize: Option<S<String>>,
    /// Hard cap on a request body; beyond it the request is answered 413 whatever the mode.
    pub max_size: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Worker threads, each with its own event loop and listening socket (SO_REUSEPORT); 0 = one per core.
    pub workers: Option<usize>,
    pub max_uri_length: Option<usize>,
    pub max_header_bytes: Option<S<String>>,
    pub max_headers: Option<usize>,
    pub header_read_timeout: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
    pub tls_handshake_timeout: Option<S<String>>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub h2_max_pending_resets: Option<usize>,
    pub h2_max_local_error_resets: Option<usize>,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub shutdown_grace: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockFile {
    pub status: Option<S<u16>>,
    pub content_type: Option<String>,
    /// Body template; `{request_id}` is replaced by the request id.
    pub body: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    pub listen: Option<S<String>>,
    /// Bearer token for the admin API; metrics and health stay open on the console port.
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// One JSON line per request on stdout (default true).
    pub access: Option<bool>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    /// This node's name in events (default: the host name).
    pub node: Option<String>,
    /// Events waiting to be dispatched to sinks; past it new events are dropped and counted.
    pub queue: Option<usize>,
    /// Without any, events go to SQLite in the data directory.
    #[serde(default)]
    pub sinks: Vec<SinkFile>,
}

/// One sink. Every type shares this table; `compile` refuses keys that do not belong to the sink's type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFile {
    pub name: Option<S<String>>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    /// "events", "alerts" or "all".
    pub deliver: Option<S<String>>,
    pub when: Option<FilterFile>,
    pub buffer: Option<usize>,
    pub batch_size: Option<usize>,
    pub flush_interval: Option<S<String>>,
    pub max_attempts: Option<u32>,
    pub timeout: Option<S<String>>,
    // sqlite, jsonl
    pub path: Option<S<String>>,
    pub retention: Option<S<String>>,
    pub max_size: Option<S<String>>,
    pub keep: Option<usize>,
    // syslog
    pub addr: Option<S<String>>,
    pub transport: Option<S<String>>,
    pub format: Option<S<String>>,
    pub facility: Option<S<String>>,
    pub app_name: Option<String>,
    pub ca_file: Option<S<String>>,
    pub server_name: Option<S<String>>,
    // webhook, slack, pagerduty, postgres
    pub url: Option<S<String>>,
    pub secret: Option<S<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    pub batch: Option<bool>,
    pub routing_key: Option<S<String>>,
    pub table: Option<S<String>>,
}

/// Which events a trigger counts or a sink receives. Every list is "any of"; lists combine with "and".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterFile {
    #[serde(default)]
    pub kind: Vec<S<String>>,
    #[serde(default)]
    pub class: Vec<String>,
    #[serde(default)]
    pub rule_id: Vec<String>,
    #[serde(default)]
    pub route: Vec<String>,
    #[serde(default)]
    pub action: Vec<S<String>>,
    #[serde(default)]
    pub client: Vec<S<String>>,
    #[serde(default)]
    pub method: Vec<String>,
    #[serde(default)]
    pub host: Vec<String>,
    #[serde(default)]
    pub status: Vec<u16>,
    #[serde(default)]
    pub fingerprint: Vec<String>,
    pub min_score: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerFile {
    pub name: S<String>,
    #[serde(default)]
    pub when: FilterFile,
    /// client_ip, route, host, path, session, fingerprint, class, rule_id or global.
    pub group_by: Option<S<String>>,
    pub window: Option<S<String>>,
    /// The trigger fires when this many matching events with one key fall in the window.
    pub threshold: S<u64>,
    pub cooldown: Option<S<String>>,
    pub severity: Option<S<String>>,
    #[serde(default)]
    pub notify: Vec<S<String>>,
    /// Ban the key (group_by = "client_ip") for this long.
    pub ban: Option<S<String>>,
    /// Switch the event's route to this mode.
    pub route_mode: Option<S<String>>,
    /// Raise the event's route to this detection sensitivity (low, medium, high, paranoid).
    pub sensitivity: Option<S<String>>,
    /// How long a route_mode or sensitivity change lasts (default 1h).
    pub revert_after: Option<S<String>>,
    pub max_keys: Option<usize>,
}

/// Where state shared across requests (rate-limit counters) lives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    /// "memory" (default) or "redis".
    pub backend: Option<S<String>>,
    /// redis://host:port/db (or rediss:// is refused: TLS to Redis is not supported yet).
    pub url: Option<S<String>>,
    /// Cluster seed nodes instead of `url`.
    #[serde(default)]
    pub cluster: Vec<S<String>>,
    /// The longest a decision waits for the store (default 5ms).
    pub timeout: Option<S<String>>,
    /// When the store is away: "local" (decide on this node's memory), "open" (allow), "closed" (deny).
    pub on_error: Option<S<String>>,
    pub key_prefix: Option<String>,
    /// Memory store bound (keys).
    pub max_keys: Option<usize>,
    /// How often each node pulls the fleet's bans from Redis (default 1s).
    pub ban_sync: Option<S<String>>,
}

/// What identifies a session and a client fingerprint (for session and fingerprint bans).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    /// e.g. cookie:sid, header:x-session, jwt:sid
    pub session: Option<S<String>>,
    /// e.g. header:x-device-id
    pub fingerprint: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub name: S<String>,
    /// Routes the limit applies to (default: all).
    #[serde(default)]
    pub routes: Vec<S<String>>,
    /// What is counted together: client_ip, client_ip/24, header:NAME, cookie:NAME, query:NAME,
    /// json:/pointer, jwt:claim, route, method, path, host. Empty: one counter for everything.
    #[serde(default)]
    pub key: Vec<S<String>>,
    /// "100/1m": requests per period.
    pub rate: S<String>,
    /// Requests allowed at once above the steady rate (GCRA); default: the rate's count.
    pub burst: Option<u64>,
    /// "gcra" (default) or "window" (a fixed window counter).
    pub algorithm: Option<S<String>>,
    /// Count only responses with these statuses (e.g. [401] for failed logins); default: every request.
    #[serde(default)]
    pub count_status: Vec<u16>,
    /// "reject" (429, default), "ban" or "log".
    pub action: Option<S<String>>,
    pub ban_for: Option<S<String>>,
}

/// Credential stuffing / account takeover on a login route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginFile {
    pub route: S<String>,
    /// Where the user name is: json:/username, form:user, basic:user, header:NAME, query:NAME.
    pub username: S<String>,
    /// Where the password is (for the leaked-password check); hashed at once, never stored.
    pub password: Option<S<String>>,
    #[serde(default)]
    pub failure_status: Vec<u16>,
    /// Text in the response body that means "wrong credentials" (for APIs that answer 200 with an error).
    pub failure_body: Option<S<String>>,
    pub window: Option<S<String>>,
    pub max_usernames_per_ip: Option<u64>,
    pub max_ips_per_username: Option<u64>,
    pub max_failures_per_prefix: Option<u64>,
    pub slow_window: Option<S<String>>,
    pub leaked_passwords: Option<S<String>>,
    pub action: Option<S<String>>,
    pub ban_for: Option<S<String>>,
}

/// Enumeration / BOLA: distinct identifiers per client and 403/404 ratios.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumerationFile {
    pub name: String,
    pub route: S<String>,
    pub id: S<String>,
    #[serde(default)]
    pub per: Vec<S<String>>,
    pub window: Option<S<String>>,
    pub max_distinct: Option<u64>,
    pub max_error_ratio: Option<f64>,
    pub min_requests: Option<u64>,
    pub action: Option<S<String>>,
    pub ban_for: Option<S<String>>,
}

/// SMS pumping (toll fraud) on a route that sends one-time codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpFile {
    /// The route that sends a code.
    pub route: S<String>,
    /// Where the destination number is: json:/phone, form:phone, query:to, header:NAME.
    pub phone: S<String>,
    /// The route that checks a code; its 2xx answers are the verified sends.
    pub verify_route: Option<S<String>>,
    /// Where the number is on the verify route (default: like `phone`).
    pub verify_phone: Option<S<String>>,
    /// A session key (cookie:sid, header:x-session, jwt:sub) with its own velocity limit.
    pub session: Option<S<String>>,
    pub window: Option<S<String>>,
    pub max_per_number: Option<u64>,
    pub max_per_ip: Option<u64>,
    pub max_per_session: Option<u64>,
    /// Leading digits (country code included) that make a number range.
    pub prefix_digits: Option<usize>,
    /// Sends to a range within `window` before its conversion is judged.
    pub min_sends: Option<u64>,
    /// Share of sends to a range that must be verified.
    pub min_conversion: Option<f64>,
    /// Sends younger than this are left out of the conversion (codes not typed yet); default 1m.
    pub verify_grace: Option<S<String>>,
    /// How long a range stays closed once its conversion collapsed.
    pub block_for: Option<S<String>>,
    /// Premium or disallowed ranges, E.164 prefixes like "+882" or "+44 70".
    #[serde(default)]
    pub deny_prefixes: Vec<S<String>>,
    /// The country calling code of numbers written without one ("1", "44").
    pub default_country: Option<S<String>>,
    pub action: Option<S<String>>,
    pub ban_for: Option<S<String>>,
}
