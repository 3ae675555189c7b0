//! The Redis store against a real redis-server: the same semantics as the memory store, exact counts
//! across two clients (two nodes), and the guarded store's behaviour through an outage.

#[path = "support/redis.rs"]
mod support;

use rampart_guard::guarded::{GuardMetrics, Guarded};
use rampart_guard::redis_store::RedisStore;
use rampart_guard::store::{Gcra, StateStore};
use rampart_policy::guard::OnStoreError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{RedisCluster, RedisServer};

async fn connected(server: &RedisServer) -> Arc<RedisStore> {
    let s = RedisStore::standalone(&server.url()).unwrap();
    s.connect().await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_and_windows_behave_like_the_memory_store() {
    let Some(server) = RedisServer::start() else { return };
    let s = connected(&server).await;
    let g = Gcra::new(10, Duration::from_secs(1), 5);
    let mut allowed = 0;
    for _ in 0..20 {
        allowed += usize::from(s.gcra("rampart:test:{a}", g, 1).await.unwrap().allowed);
    }
    assert_eq!(allowed, 5, "the burst");
    let d = s.gcra("rampart:test:{a}", g, 1).await.unwrap();
    assert!(!d.allowed);
    assert!(
        d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_millis(100),
        "{d:?}"
    );
    // A peek does not count.
    assert!(!s.gcra("rampart:test:{a}", g, 0).await.unwrap().allowed);
    tokio::time::sleep(Duration::from_millis(110)).await;
    assert!(s.gcra("rampart:test:{a}", g, 0).await.unwrap().allowed);
    assert!(s.gcra("rampart:test:{a}", g, 1).await.unwrap().allowed);
    assert!(!s.gcra("rampart:test:{a}", g, 1).await.unwrap().allowed);

    let w = Duration::from_secs(60);
    assert_eq!(s.window("rampart:test:{w}", w, 1).await.unwrap().0, 1);
    assert_eq!(s.window("rampart:test:{w}", w, 4).await.unwrap().0, 5);
    let (n, left) = s.window("rampart:test:{w}", w, 0).await.unwrap();
    assert_eq!(n, 5);
    assert!(left <= w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_counts_are_shared_and_close() {
    let Some(server) = RedisServer::start() else { return };
    let (a, b) = (connected(&server).await, connected(&server).await);
    let w = Duration::from_secs(3600);
    for i in 0..500 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.distinct("rampart:test:{d}", w, &format!("user{}", i % 250))
            .await
            .unwrap();
    }
    let n = a.distinct("rampart:test:{d}", w, "user0").await.unwrap();
    assert!((247..=253).contains(&n), "{n} distinct of 250");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_exact_limit() {
    let Some(server) = RedisServer::start() else { return };
    let (a, b) = (connected(&server).await, connected(&server).await);
    let w = Duration::from_secs(3600);
    let limit = 500u64;
    let run = |s: Arc<RedisStore>| async move {
        let mut allowed = 0u64;
        for _ in 0..1000 {
            let (n, _) = s.window("rampart:test:{shared}", w, 1).await.unwrap();
            allowed += u64::from(n <= limit);
        }
        allowed
    };
    let (x, y) = tokio::join!(tokio::spawn(run(a)), tokio::spawn(run(b)));
    assert_eq!(x.unwrap() + y.unwrap(), limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_costs_at_most_the_timeout_and_the_store_comes_back() {
    let Some(mut server) = RedisServer::start() else { return };
    let store = RedisStore::standalone(&server.url()).unwrap();
    store.connect().await.unwrap();
    let metrics = Arc::new(GuardMetrics::default());
    let guarded = Guarded::new(
        Some(store.clone()),
        1000,
        Duration::from_millis(5),
        OnStoreError::Closed,
        metrics.clone(),
    );
    let g = Gcra::new(1000, Duration::from_secs(1), 1000);
    // The store answers while it is up. A 2-core CI machine can miss one 5 ms deadline to scheduling,
    // so the first answer from Redis within a few tries is what counts.
    let mut answered = false;
    for _ in 0..20 {
        if !guarded.gcra("rampart:test:{o}", g, 1).await.fallback {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "redis never answered within the deadline while up");

    server.kill();
    let mut times = Vec::new();
    let mut fallbacks = 0;
    for _ in 0..2000 {
        let t = Instant::now();
        let a = guarded.gcra("rampart:test:{o}", g, 1).await;
        times.push(t.elapsed());
        if a.fallback {
            fallbacks += 1;
            assert!(!a.value.allowed, "fail closed");
        }
    }
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    assert!(p99 < Duration::from_millis(5), "p99 decision time {p99:?}");
    assert!(fallbacks > 1900, "{fallbacks}");

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = guarded.gcra("rampart:test:{o}", g, 1).await;
        if !a.fallback {
            assert!(a.value.allowed);
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_counts_exactly_across_slots_and_shares_bans() {
    use rampart_guard::bans::{BanOp, BanStore};
    let Some(cluster) = RedisCluster::start() else { return };
    let (a, b) = (
        RedisStore::cluster(&cluster.nodes()).unwrap(),
        RedisStore::cluster(&cluster.nodes()).unwrap(),
    );
    a.connect().await.unwrap();
    b.connect().await.unwrap();
    assert_eq!(a.kind(), "redis-cluster");
    // Keys in many hash slots (so on all three masters), each counted by two clients.
    let w = Duration::from_secs(3600);
    for k in 0..30 {
        let key = format!("rampart:test:{{tenant-{k}}}");
        for i in 0..20 {
            let s = if i % 2 == 0 { &a } else { &b };
            s.window(&key, w, 1).await.unwrap();
        }
        assert_eq!(a.window(&key, w, 0).await.unwrap().0, 20, "{key}");
    }
    let g = Gcra::new(10, Duration::from_secs(60), 5);
    let mut allowed = 0;
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        allowed += usize::from(s.gcra("rampart:test:{gcra}", g, 1).await.unwrap().allowed);
    }
    assert_eq!(allowed, 5);
    for i in 0..100 {
        a.distinct("rampart:test:{ids}", w, &format!("id{i}")).await.unwrap();
    }
    let n = b.distinct("rampart:test:{ids}", w, "id0").await.unwrap();
    assert!((98..=102).contains(&n), "{n}");

    // The fleet's ban set lives in one slot; a ban published by one client is pulled by the other.
    let key = "rampart:bans:{fleet}";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let target: rampart_guard::BanTarget = "net:203.0.113.0/24".parse().unwrap();
    a.apply(key, &[BanOp::Add(target.clone(), now + 60_000)]).await.unwrap();
    let pulled = b.pull(key, now, 100).await.unwrap();
    assert_eq!(pulled, vec![(target.to_string(), now + 60_000)]);
    b.apply(key, &[BanOp::Remove(target)]).await.unwrap();
    assert!(a.pull(key, now, 100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_go_in_one_pipeline_and_survive_a_script_flush() {
    use rampart_guard::store::Count;
    let Some(server) = RedisServer::start() else { return };
    let s = connected(&server).await;
    let w = Duration::from_secs(60);
    let counts: Vec<Count> = (0..300)
        .map(|i| Count {
            key: format!("rampart:test:{{c{}}}", i % 3),
            window: w,
            add: 1 + (i % 3) as u64,
        })
        .collect();
    s.add_many(&counts).await.unwrap();
    for k in 0..3u64 {
        let n = s.window(&format!("rampart:test:{{c{k}}}"), w, 0).await.unwrap().0;
        assert_eq!(n, 100 * (k + 1), "key c{k}");
    }
    // A server that lost its scripts (restart, SCRIPT FLUSH): the batch reloads the script and lands.
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut admin).await.unwrap();
    s.add_many(&counts[..3]).await.unwrap();
    assert_eq!(s.window("rampart:test:{c0}", w, 0).await.unwrap().0, 101);
}
