//! Decisions per second and per-decision latency of [`Guarded`] over the memory store and the Redis store.
//!
//! ```text
//! cargo run --release -p rampart-guard --example decisions -- [options]
//!
//!   --decisions N     decisions per case (default 200000)
//!   --tasks N         concurrent tasks making decisions (default 64)
//!   --keys N          distinct keys the decisions spread over (default 10000)
//!   --threads N       tokio worker threads (default: the number of cores)
//!   --timeout-ms MS   the decision deadline of `Guarded` (default 50; the gateway's default is 5)
//!   --ops gcra,window operations to measure (default gcra,window)
//!   --redis URL       also measure the Redis store, e.g. redis://127.0.0.1:6379 (without it: memory only)
//! ```
//!
//! Each case is one backend and one operation: a fresh [`Guarded`] (memory: `Guarded::new(None, ..)`;
//! Redis: `RedisStore::standalone(url)` connected with `.connect()`, wrapped with `OnStoreError::Local`),
//! a warm-up of one decision per key (not timed), then N decisions made by `--tasks` tasks on a
//! multi-thread runtime, each picking keys at random (xorshift) among `--keys`. Decisions per second is N
//! over the time from the tasks' common start until the last one finished; each decision's latency is the
//! time its `.await` took (queueing behind the other tasks on the Redis connection included). A decision
//! whose `Answer.fallback` is true did not come from the shared store (an error or the deadline); with the
//! generous default deadline there should be none, and any are counted, as are the store errors.
//!
//! The limits never deny (GCRA: a million per second with the same burst; window: 60 s, counting one per
//! decision), so every GCRA decision writes its cell and every window decision increments its counter: the
//! cost of a decision that counts, which is what a rate limit pays on every request.

use rampart_guard::guarded::{GuardMetrics, Guarded};
use rampart_guard::redis_store::RedisStore;
use rampart_guard::store::Gcra;
use rampart_policy::guard::OnStoreError;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    decisions: usize,
    tasks: usize,
    keys: usize,
    threads: usize,
    timeout: Duration,
    ops: Vec<Op>,
    redis: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gcra,
    Window,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Gcra => "gcra",
            Op::Window => "window",
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: decisions [--decisions N] [--tasks N] [--keys N] [--threads N] [--timeout-ms MS] \
         [--ops gcra,window] [--redis URL]"
    );
    std::process::exit(2)
}

fn number(s: String) -> usize {
    s.replace('_', "").parse().unwrap_or_else(|_| usage())
}

fn parse_args() -> Args {
    let mut a = Args {
        decisions: 200_000,
        tasks: 64,
        keys: 10_000,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        timeout: Duration::from_millis(50),
        ops: vec![Op::Gcra, Op::Window],
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--decisions" | "-n" => a.decisions = number(value()),
            "--tasks" => a.tasks = number(value()),
            "--keys" => a.keys = number(value()),
            "--threads" => a.threads = number(value()),
            "--timeout-ms" => a.timeout = Duration::from_millis(number(value()) as u64),
            "--ops" => {
                a.ops = value()
                    .split(',')
                    .map(|s| match s.trim() {
                        "gcra" => Some(Op::Gcra),
                        "window" => Some(Op::Window),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_else(|| usage())
            }
            "--redis" => a.redis = Some(value()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if a.decisions == 0 || a.tasks == 0 || a.keys == 0 || a.threads == 0 || a.ops.is_empty() || a.timeout.is_zero() {
        usage();
    }
    a
}

/// xorshift64*: keys at random without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// Never denies: a million per second, a million at once.
fn limit() -> Gcra {
    Gcra::new(1_000_000, Duration::from_secs(1), 1_000_000)
}
const WINDOW: Duration = Duration::from_secs(60);

/// One decision; whether the fallback made it.
async fn decide(g: &Guarded, op: Op, key: &str) -> bool {
    match op {
        Op::Gcra => {
            let a = g.gcra(key, limit(), 1).await;
            debug_assert!(a.value.allowed);
            a.fallback
        }
        Op::Window => g.window(key, WINDOW, 1).await.fallback,
    }
}

struct Outcome {
    backend: &'static str,
    op: Op,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    fallbacks: u64,
    store_errors: u64,
}

/// The nearest-rank percentile of sorted nanoseconds, in microseconds.
fn percentile_us(sorted_ns: &[u32], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil().max(1.0) as usize;
    f64::from(sorted_ns[rank.min(sorted_ns.len()) - 1]) / 1000.0
}

async fn run_case(args: &Args, backend: &'static str, op: Op, guard: Guarded, metrics: Arc<GuardMetrics>) -> Outcome {
    let guard = Arc::new(guard);
    // A run-specific prefix, so that a second run against the same server starts from fresh keys; the
    // hash tag keeps each key's derived keys on one Cluster slot, as the gateway's keys do.
    let keys: Arc<Vec<String>> = Arc::new(
        (0..args.keys)
            .map(|i| format!("rampart:bench:{}:{}:{{k{i}}}", std::process::id(), op.name()))
            .collect(),
    );
    for k in keys.iter() {
        decide(&guard, op, k).await;
    }
    let fallbacks_before = metrics.decisions.get_or_create(&[("decided_by", "fallback")]).get();
    let errors_before = metrics.store_errors.get();

    let barrier = Arc::new(tokio::sync::Barrier::new(args.tasks + 1));
    let mut handles = Vec::with_capacity(args.tasks);
    for t in 0..args.tasks {
        let share = args.decisions / args.tasks + usize::from(t < args.decisions % args.tasks);
        let (guard, keys, barrier) = (guard.clone(), keys.clone(), barrier.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
            let mut lat = Vec::with_capacity(share);
            let mut fallbacks = 0u64;
            barrier.wait().await;
            for _ in 0..share {
                let key = &keys[rng.below(keys.len())];
                let t0 = Instant::now();
                fallbacks += u64::from(decide(&guard, op, key).await);
                lat.push(t0.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
            }
            (lat, fallbacks)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut all = Vec::with_capacity(args.decisions);
    let mut fallbacks = 0;
    for h in handles {
        let (lat, f) = h.await.expect("a decision task panicked");
        all.extend_from_slice(&lat);
        fallbacks += f;
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let counted = metrics.decisions.get_or_create(&[("decided_by", "fallback")]).get() - fallbacks_before;
    debug_assert_eq!(counted, fallbacks);
    Outcome {
        backend,
        op,
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50_us: percentile_us(&all, 50.0),
        p99_us: percentile_us(&all, 99.0),
        fallbacks,
        store_errors: metrics.store_errors.get() - errors_before,
    }
}

fn max_keys(args: &Args) -> usize {
    (args.keys * 4).max(100_000)
}

async fn memory_case(args: &Args, op: Op) -> Outcome {
    let metrics = Arc::new(GuardMetrics::default());
    let g = Guarded::new(None, max_keys(args), args.timeout, OnStoreError::Local, metrics.clone());
    run_case(args, "memory", op, g, metrics).await
}

async fn redis_case(args: &Args, url: &str, op: Op) -> Result<Outcome, String> {
    let store = RedisStore::standalone(url).map_err(|e| e.to_string())?;
    store.connect().await.map_err(|e| format!("connecting to {url}: {e}"))?;
    let metrics = Arc::new(GuardMetrics::default());
    let g = Guarded::new(
        Some(store),
        max_keys(args),
        args.timeout,
        OnStoreError::Local,
        metrics.clone(),
    );
    Ok(run_case(args, "redis", op, g, metrics).await)
}

/// 1234567.8 -> "1,234,568"
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        // Three significant figures or so: 0.0254, 0.512, 12.3, 1418.
        let r = a / b;
        let decimals = match r {
            r if r >= 100.0 => 0,
            r if r >= 10.0 => 1,
            r if r >= 1.0 => 2,
            r if r >= 0.1 => 3,
            _ => 4,
        };
        format!("{r:.decimals$}")
    } else {
        "n/a".into()
    }
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "# {} decisions per case, {} tasks, {} keys, {} worker threads, deadline {:?}, on_error local, redis {}",
        args.decisions,
        args.tasks,
        args.keys,
        args.threads,
        args.timeout,
        args.redis.as_deref().unwrap_or("(none: memory only)")
    );
    println!("| case | decisions/s | p50 us | p99 us | fallbacks | store errors |");
    println!("|---|---|---|---|---|---|");
    let line = |o: &Outcome| {
        println!(
            "| {} {} | {} | {:.2} | {:.2} | {} | {} |",
            o.backend,
            o.op.name(),
            thousands(o.rate),
            o.p50_us,
            o.p99_us,
            o.fallbacks,
            o.store_errors
        )
    };
    let mut failed = false;
    rt.block_on(async {
        for &op in &args.ops {
            let mem = memory_case(&args, op).await;
            line(&mem);
            let Some(url) = &args.redis else { continue };
            match redis_case(&args, url, op).await {
                Ok(red) => {
                    line(&red);
                    println!(
                        "| redis/memory {} | {} | {} | {} | | |",
                        op.name(),
                        ratio(red.rate, mem.rate),
                        ratio(red.p50_us, mem.p50_us),
                        ratio(red.p99_us, mem.p99_us)
                    );
                }
                Err(e) => {
                    eprintln!("redis {}: {e}", op.name());
                    failed = true;
                }
            }
        }
    });
    if failed {
        std::process::exit(1);
    }
}
