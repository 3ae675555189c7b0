//! The running state a request reads: the compiled policy, the upstream pools and the inspector, swapped
//! as one unit on reload.
//!
//! Each request loads an `Arc<Runtime>` once, at its start, and keeps it to the end: in-flight requests
//! finish on the config they started with while new requests see the new one.

use crate::inspect::{Inspector, InspectorFactory};
use crate::metrics::{Label, Metrics};
use crate::upstream::UpstreamPool;
use arc_swap::ArcSwap;
use rampart_policy::{ConfigErrors, Diagnostic, Policy};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Runtime {
    pub policy: Arc<Policy>,
    pub pools: HashMap<String, Arc<UpstreamPool>>,
    pub inspector: Arc<dyn Inspector>,
    pub limiter: rampart_guard::RateLimiter,
    pub abuse: rampart_guard::AbuseGuard,
    /// Requests in flight per route that has a `max_concurrent` cap.
    pub in_flight: HashMap<Arc<str>, Arc<std::sync::atomic::AtomicU32>>,
    pub generation: u64,
}

/// What the whole process shares: the current runtime, metrics, ids.
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    pub ids: RequestIds,
    factory: Arc<dyn InspectorFactory>,
    generation: AtomicU64,
    access_log: std::sync::OnceLock<crate::access_log::AccessLog>,
    events: std::sync::OnceLock<rampart_events::EventBus>,
    discovery: std::sync::OnceLock<crate::discovery::DiscoveryTap>,
    installed: tokio::sync::watch::Sender<u64>,
    /// Addresses refused at the request stage until their ban lapses (set by triggers).
    pub bans: Arc<rampart_guard::BanList>,
    /// Issues and checks the `challenge` action's pages; its key is set at start (a `[challenge]` change
    /// takes effect on restart).
    pub challenger: Arc<rampart_guard::Challenger>,
    /// Run-time route changes made by triggers (mode, sensitivity), kept across reloads.
    pub overrides: Arc<crate::overrides::RouteOverrides>,
    /// Where rate-limit counters live (memory, or Redis with a local fallback). Chosen at start: a
    /// `[state]` change takes effect on restart.
    pub state: Arc<rampart_guard::Guarded>,
}

impl Shared {
    pub fn new(
        policy: Policy,
        metrics: Arc<Metrics>,
        factory: Arc<dyn InspectorFactory>,
    ) -> Result<Arc<Self>, ConfigErrors> {
        let runtime = build_runtime(Arc::new(policy), None, &metrics, &*factory, 1)?;
        let (state, redis) = state_store(&runtime.policy, &metrics)?;
        let bans = Arc::new(rampart_guard::BanList::new());
        if let (Some(redis), Ok(handle)) = (redis, tokio::runtime::Handle::try_current()) {
            // Bans are shared by every node on the same store (and key prefix).
            handle.spawn(rampart_guard::bans::run_sync(
                redis,
                bans.clone(),
                format!("{}bans:{{fleet}}", runtime.policy.state.key_prefix),
                runtime.policy.state.ban_sync,
                metrics.guard.ban_sync_errors.clone(),
            ));
        }
        let c = &runtime.policy.challenge;
        let challenger = Arc::new(rampart_guard::Challenger::new(
            c.secret.as_ref().map(|s| s.expose()),
            c.difficulty,
            c.clearance,
        ));
        Ok(Arc::new(Shared {
            challenger,
            state: Arc::new(state),
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            ids: RequestIds::new(),
            factory,
            generation: AtomicU64::new(1),
            access_log: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
            discovery: std::sync::OnceLock::new(),
            installed: tokio::sync::watch::Sender::new(1),
            bans,
            overrides: Arc::new(crate::overrides::RouteOverrides::default()),
        }))
    }

    /// Sets where events go (once; without it, events are not recorded).
    pub fn set_events(&self, bus: rampart_events::EventBus) {
        let _ = self.events.set(bus);
    }

    pub fn events(&self) -> Option<&rampart_events::EventBus> {
        self.events.get().filter(|b| b.is_enabled())
    }

    /// Sets where discovery samples go (once; without it, nothing is learned).
    pub fn set_discovery(&self, tap: crate::discovery::DiscoveryTap) {
        let _ = self.discovery.set(tap);
    }

    pub fn discovery(&self) -> Option<&crate::discovery::DiscoveryTap> {
        self.discovery.get()
    }

    /// Sets where access log lines go (once; without it, routes with `log.access` log nothing).
    pub fn set_access_log(&self, log: crate::access_log::AccessLog) {
        let _ = self.access_log.set(log);
    }

    pub fn access_log(&self) -> Option<&crate::access_log::AccessLog> {
        self.access_log.get()
    }

    /// Changes whenever a new policy is installed (its generation): parts of the process that keep state
    /// outside the runtime (the events pipeline's triggers) follow reloads through it.
    pub fn installed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.installed.subscribe()
    }

    pub fn load(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Compiles `policy` into a new runtime and swaps it in. On error the running runtime stays.
    pub fn install(&self, policy: Policy) -> Result<u64, ConfigErrors> {
        let current = self.runtime.load_full();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        match build_runtime(
            Arc::new(policy),
            Some(&current),
            &self.metrics,
            &*self.factory,
            generation,
        ) {
            Ok(rt) => {
                if rt.policy.listeners != current.policy.listeners {
                    tracing::warn!("listener changes take effect on restart; the running listeners stay");
                }
                if rt.policy.state != current.policy.state {
                    tracing::warn!("[state] changes take effect on restart; the running state store stays");
                }
                self.runtime.store(Arc::new(rt));
                self.installed.send_replace(generation);
                self.metrics
                    .reloads
                    .get_or_create(&Label("result", Arc::from("ok")))
                    .inc();
                Ok(generation)
            }
            Err(e) => {
                self.metrics
                    .reloads
                    .get_or_create(&Label("result", Arc::from("error")))
                    .inc();
                Err(e)
            }
        }
    }
}

fn build_runtime(
    policy: Arc<Policy>,
    previous: Option<&Runtime>,
    metrics: &Arc<Metrics>,
    factory: &dyn InspectorFactory,
    generation: u64,
) -> Result<Runtime, ConfigErrors> {
    let file = policy.source.clone().unwrap_or_else(|| PathBuf::from("<embedded>"));
    let error = |message: String| {
        ConfigErrors(vec![Diagnostic {
            file: file.clone(),
            line: 0,
            column: 0,
            message,
            hint: None,
        }])
    };
    let inspector = factory.build(&policy)?;
    let mut pools = HashMap::new();
    for (name, spec) in &policy.upstreams {
        let reuse = previous.and_then(|p| p.pools.get(name)).filter(|p| *p.spec == **spec);
        let pool = match reuse {
            Some(p) => p.clone(),
            None => UpstreamPool::new(
                spec.clone(),
                metrics.clone(),
                crate::worker::count(policy.limits.workers),
            )
            .map_err(|e| error(format!("upstream `{name}`: {e}")))?,
        };
        pools.insert(name.clone(), pool);
    }
    let limiter = rampart_guard::RateLimiter::new(&policy.rate_limits, &policy.state.key_prefix);
    let abuse = rampart_guard::AbuseGuard::new(
        &policy.logins,
        &policy.enumeration,
        &policy.otp,
        &policy.state.key_prefix,
    );
    let in_flight = policy
        .routes
        .iter()
        .filter(|r| r.max_concurrent.is_some())
        .map(|r| (r.name.clone(), Arc::default()))
        .collect();
    Ok(Runtime {
        policy,
        pools,
        inspector,
        limiter,
        abuse,
        in_flight,
        generation,
    })
}

/// The state store of `[state]`: memory, or Redis behind a deadline and a fallback. A Redis store
/// connects in the background (when there is a runtime to do it on): the gateway starts whether or not
/// Redis is up, deciding by the fallback until it is.
type BanStoreHandle = Arc<dyn rampart_guard::bans::BanStore>;

fn state_store(
    policy: &Policy,
    metrics: &Metrics,
) -> Result<(rampart_guard::Guarded, Option<BanStoreHandle>), ConfigErrors> {
    use rampart_policy::guard::StateBackend;
    let s = &policy.state;
    let mut bans: Option<BanStoreHandle> = None;
    let shared: Option<Arc<dyn rampart_guard::StateStore>> = match &s.backend {
        StateBackend::Memory => None,
        StateBackend::Redis { .. } | StateBackend::RedisCluster { .. } => {
            let store = match &s.backend {
                StateBackend::Redis { url } => rampart_guard::redis_store::RedisStore::standalone(url),
                StateBackend::RedisCluster { nodes } => rampart_guard::redis_store::RedisStore::cluster(nodes),
                StateBackend::Memory => unreachable!(),
            }
            .map_err(|e| {
                ConfigErrors(vec![Diagnostic {
                    file: policy.source.clone().unwrap_or_else(|| PathBuf::from("<embedded>")),
                    line: 0,
                    column: 0,
                    message: format!("[state]: {e}"),
                    hint: Some("check the redis URL".into()),
                }])
            })?;
            if tokio::runtime::Handle::try_current().is_ok() {
                store.connect_in_background();
            }
            bans = Some(store.clone());
            Some(store)
        }
    };
    let guarded = rampart_guard::Guarded::new(shared, s.max_keys, s.timeout, s.on_error, metrics.guard.clone());
    Ok((guarded, bans))
}

/// Request ids: a random per-process prefix and a counter. Unique across restarts and nodes with
/// overwhelming probability, and far cheaper than a random UUID per request.
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        // Randomness from the OS through rustls' provider keeps us off an extra dependency.
        let _ = rustls::crypto::ring::default_provider().secure_random.fill(&mut seed);
        RequestIds {
            prefix: u64::from_le_bytes(seed),
            counter: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:08x}", self.prefix, n as u32)
    }
}
