//! `rampart run`: load the policy, start the gateway, the console and the reloader, drain on SIGTERM.

use anyhow::Context;
use rampart_policy::{Policy, EMBEDDED_DEFAULTS};
use rampart_proxy::{Gateway, Shared};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub upstream: String,
    pub listen: Option<String>,
    /// Console address override (demo).
    pub console: Option<String>,
}

pub fn run_blocking(args: RunArgs) -> ExitCode {
    // The control runtime (console, reload, health checks) is small; the traffic runs on the gateway's workers.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args, None)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the policy for `rampart run` without a file.
pub fn embedded_policy(listen: &str, upstream: &str, console: &str) -> anyhow::Result<Policy> {
    let src = EMBEDDED_DEFAULTS
        .replace("{listen}", listen)
        .replace("{upstream}", upstream)
        .replace("{console}", console);
    rampart_policy::compile_str(Path::new("<embedded defaults>"), &src).map_err(|e| anyhow::anyhow!("{e}"))
}

fn init_logging(level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    // Access logs go through a non-blocking writer: a slow stdout never stalls a request. When the writer's
    // buffer is full, lines are dropped (and counted by tracing-appender), never waited for.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
    guard
}

/// Runs until SIGTERM / SIGINT. `ready` receives the bound gateway addresses once serving (tests, demo).
pub async fn run(
    args: RunArgs,
    ready: Option<tokio::sync::oneshot::Sender<Vec<std::net::SocketAddr>>>,
) -> anyhow::Result<()> {
    let console_default = args.console.clone().unwrap_or_else(|| "127.0.0.1:9901".into());
    let mut policy = match &args.config {
        Some(path) => rampart_policy::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => embedded_policy(
            args.listen.as_deref().unwrap_or("127.0.0.1:8080"),
            &args.upstream,
            &console_default,
        )?,
    };
    if let (Some(listen), Some(first)) = (&args.listen, policy.listeners.first_mut()) {
        first.addr = listen
            .parse()
            .with_context(|| format!("--listen {listen}: not an address"))?;
    }
    let _log_guard = init_logging(&policy.log.level);
    std::fs::create_dir_all(&policy.data_dir)
        .with_context(|| format!("cannot create data directory {}", policy.data_dir.display()))?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = rampart_proxy::metrics::Metrics::new(&mut registry);
    let console_addr = policy.console.listen;
    let console_token = policy.console.token.clone();
    let shared = Shared::new(policy, metrics, Arc::new(crate::detection::DetectionFactory))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if shared.load().policy.log.access {
        let dropped = shared.metrics.access_log_dropped.clone();
        shared.set_access_log(rampart_proxy::access_log::AccessLog::new(std::io::stdout(), dropped)?);
    }
    let events = start_events(&shared, &mut registry)?;
    let d = shared.load().policy.discovery.clone();
    if d.enabled {
        // A `[discovery]` change takes effect on restart.
        let store = shared.load().policy.data_dir.join("inventory.db");
        let dropped = shared.metrics.discovery_dropped.clone();
        shared.set_discovery(rampart_proxy::discovery::start(
            store,
            d.sample,
            d.flush_interval,
            dropped,
        ));
    }
    let gateway = Gateway::start(shared.clone()).await?;

    let _console_task = match console_addr {
        Some(addr) => {
            let console = Arc::new(rampart_console::Console {
                registry: Arc::new(registry),
                backend: Arc::new(Backend {
                    shared: shared.clone(),
                    config: args.config.clone(),
                }),
                token: console_token,
            });
            let (bound, task) = rampart_console::serve(console, addr).await?;
            tracing::info!(addr = %bound, "console listening (/metrics, /healthz)");
            Some(task)
        }
        None => None,
    };
    let _reloader = match &args.config {
        Some(path) => Some(rampart_proxy::reload::spawn_reloader(shared.clone(), path.clone())?),
        None => None,
    };
    for addr in &gateway.addrs {
        tracing::info!(%addr, "gateway listening");
    }
    if let Some(tx) = ready {
        let _ = tx.send(gateway.addrs.clone());
    }

    wait_for_shutdown().await;
    tracing::info!("shutting down: draining connections");
    let left = gateway.shutdown().await;
    if left > 0 {
        tracing::warn!(connections = left, "grace period over; closing remaining connections");
    }
    if let Some(d) = shared.discovery() {
        if !d.flush(std::time::Duration::from_secs(5)).await {
            tracing::warn!("API inventory not written at shutdown within 5s");
        }
    }
    // Deliver what is buffered; a sink that is down gets one last attempt, not a backoff.
    let flushed = tokio::task::spawn_blocking(move || events.shutdown(std::time::Duration::from_secs(5)))
        .await
        .unwrap_or(false);
    if !flushed {
        tracing::warn!("events pipeline did not finish delivering within 5s");
    }
    Ok(())
}

/// Starts the events pipeline on the policy's `[events]` settings, wires it to the gateway (events in, bans
/// and route changes out) and keeps its triggers in step with reloads.
fn start_events(
    shared: &Arc<Shared>,
    registry: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<Arc<rampart_events::Pipeline>> {
    let settings = shared.load().policy.events.clone();
    let metrics = rampart_events::EventMetrics::new(registry);
    let responder = Arc::new(GatewayResponder {
        bans: shared.bans.clone(),
        overrides: shared.overrides.clone(),
    });
    let pipeline = Arc::new(rampart_events::setup::start(&settings, metrics, responder)?);
    shared.set_events(pipeline.bus());
    for s in &settings.sinks {
        tracing::info!(sink = %s.name, kind = s.kind.type_name(), "events sink");
    }
    let mut installed = shared.installed();
    let follow = (shared.clone(), pipeline.clone());
    tokio::spawn(async move {
        let (shared, pipeline) = follow;
        let mut sinks = settings.sinks;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tokio::select! {
                changed = installed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let rt = shared.load();
                    pipeline.update_triggers(&rt.policy.events.triggers);
                    if rt.policy.events.sinks != sinks {
                        tracing::warn!("events sink changes take effect on restart; triggers were reloaded");
                        sinks.clone_from(&rt.policy.events.sinks);
                    }
                }
                _ = tick.tick() => {
                    // Memory hygiene: lapsed bans and route overrides.
                    shared.bans.purge();
                    shared.overrides.purge();
                }
            }
        }
    });
    Ok(pipeline)
}

/// Carries out trigger actions on the running gateway.
struct GatewayResponder {
    bans: Arc<rampart_guard::BanList>,
    overrides: Arc<rampart_proxy::overrides::RouteOverrides>,
}

impl rampart_events::Responder for GatewayResponder {
    fn ban(&self, ip: std::net::IpAddr, duration: std::time::Duration) {
        self.bans.ban(ip, duration);
    }

    fn set_route_mode(&self, route: &str, mode: rampart_policy::Mode, duration: std::time::Duration) {
        self.overrides.set_mode(route, mode, duration);
    }

    fn set_route_sensitivity(&self, route: &str, level: &str, duration: std::time::Duration) {
        // Validated when the policy was compiled (detection::DetectionFactory).
        if let Ok(s) = level.parse::<rampart_detect::Sensitivity>() {
            self.overrides.set_threshold(route, s.threshold(), duration);
        }
    }
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

struct Backend {
    shared: Arc<Shared>,
    config: Option<PathBuf>,
}

impl rampart_console::ConsoleBackend for Backend {
    fn health(&self) -> serde_json::Value {
        let rt = self.shared.load();
        serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "config_generation": rt.generation,
            "config": rt.policy.source.as_ref().map(|p| p.display().to_string()),
            "routes": rt.policy.routes.len(),
            "upstreams": rt.policy.upstreams.len(),
        })
    }

    fn reload(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send + '_>> {
        Box::pin(async move {
            let Some(path) = &self.config else {
                return Err("running on embedded defaults: there is no config file to reload".to_string());
            };
            rampart_proxy::reload::reload_now(&self.shared, path)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn bans(&self) -> serde_json::Value {
        let list: Vec<serde_json::Value> = self
            .shared
            .bans
            .list()
            .into_iter()
            .map(|(t, left)| serde_json::json!({"target": t.to_string(), "expires_in_s": left.as_secs()}))
            .collect();
        serde_json::json!({ "bans": list })
    }

    fn ban(&self, target: &str, duration: &str) -> Result<(), String> {
        let t: rampart_guard::BanTarget = target.parse()?;
        let d = humantime::parse_duration(duration).map_err(|e| format!("`{duration}` is not a duration: {e}"))?;
        if d.is_zero() {
            return Err("a ban needs a duration longer than zero".into());
        }
        tracing::info!(target = %t, duration = %humantime::format_duration(d), "banned through the admin API");
        self.shared.bans.ban_target(t, d);
        Ok(())
    }

    fn unban(&self, target: &str) -> Result<bool, String> {
        let t: rampart_guard::BanTarget = target.parse()?;
        tracing::info!(target = %t, "unbanned through the admin API");
        Ok(self.shared.bans.unban_target(&t))
    }
}
