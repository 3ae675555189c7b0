//! Bans with expiry: client addresses, networks (CIDR), sessions and fingerprints, on one node or shared
//! by a fleet through Redis.
//!
//! The proxy asks [`BanList::banned`] on every request, so the common case (nobody banned) is one atomic
//! load. Sessions and fingerprints are held as short hashes ([`token_hash`]), never as the cookie or
//! header value itself.
//!
//! Sharing: with a Redis state store, [`run_sync`] publishes every ban and unban of this node to one
//! sorted set (member: the target, score: its expiry in Unix milliseconds) and pulls the whole set every
//! second into a read-only snapshot that requests check without a lock. Entries that reached the shared
//! snapshot leave the node's local list, so an unban on any node (ZREM) lifts the ban everywhere at the
//! next pull. While Redis is away, bans stay in the local list (enforced on this node) and are published
//! when it returns; the last snapshot keeps holding until its entries expire.

use arc_swap::ArcSwapOption;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a ban applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanTarget {
    Ip(IpAddr),
    Net(IpNet),
    /// A session, by [`token_hash`] of its identifier.
    Session(String),
    /// A client fingerprint, by [`token_hash`] of its value.
    Fingerprint(String),
}

/// A short, fixed-size hash of a session id, fingerprint, user name or phone number: what bans, events
/// and the store hold instead of the value.
pub fn token_hash(raw: &str) -> String {
    let d = Sha256::digest(raw.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is: one client, one key.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl fmt::Display for BanTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTarget::Ip(ip) => write!(f, "ip:{ip}"),
            BanTarget::Net(n) => write!(f, "net:{n}"),
            BanTarget::Session(h) => write!(f, "session:{h}"),
            BanTarget::Fingerprint(h) => write!(f, "fingerprint:{h}"),
        }
    }
}

impl std::str::FromStr for BanTarget {
    type Err = String;

    /// `ip:203.0.113.9`, `net:203.0.113.0/24`, `session:<hash>`, `fingerprint:<hash>`; a bare address
    /// or network is accepted too.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let hash = |h: &str, what: &str| {
            if (8..=64).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(h.to_ascii_lowercase())
            } else {
                Err(format!("a {what} ban takes the hash shown in events (hex), not `{h}`"))
            }
        };
        let addr_or_net = |v: &str| -> Result<BanTarget, String> {
            if let Ok(ip) = v.parse::<IpAddr>() {
                return Ok(BanTarget::Ip(canonical(ip)));
            }
            let net: IpNet = v
                .parse()
                .map_err(|_| format!("`{v}` is not an address or a network (203.0.113.0/24)"))?;
            Ok(if net.prefix_len() == net.max_prefix_len() {
                BanTarget::Ip(canonical(net.addr()))
            } else {
                BanTarget::Net(net.trunc())
            })
        };
        match s.split_once(':') {
            Some(("session", h)) => Ok(BanTarget::Session(hash(h, "session")?)),
            Some(("fingerprint", h)) | Some(("fp", h)) => Ok(BanTarget::Fingerprint(hash(h, "fingerprint")?)),
            Some(("ip", v)) | Some(("net", v)) => addr_or_net(v),
            _ => addr_or_net(s),
        }
    }
}

/// What a request is checked by.
#[derive(Debug, Default, Clone, Copy)]
pub struct BanProbe<'a> {
    pub ip: Option<IpAddr>,
    /// [`token_hash`] of the session id, when the request has one.
    pub session: Option<&'a str>,
    pub fingerprint: Option<&'a str>,
}

/// One set of bans: the node's local list or a shared snapshot.
#[derive(Default, Debug)]
struct Entries {
    ips: HashMap<IpAddr, Instant>,
    nets: Vec<(IpNet, Instant)>,
    /// Sessions and fingerprints by their `Display` form ("session:<hash>").
    tokens: HashMap<String, Instant>,
}

impl Entries {
    fn len(&self) -> usize {
        self.ips.len() + self.nets.len() + self.tokens.len()
    }

    fn get(&self, t: &BanTarget) -> Option<Instant> {
        match t {
            BanTarget::Ip(ip) => self.ips.get(ip).copied(),
            BanTarget::Net(n) => self.nets.iter().find(|(x, _)| x == n).map(|(_, u)| *u),
            other => self.tokens.get(&other.to_string()).copied(),
        }
    }

    /// Inserts or extends; true when the target is new.
    fn insert(&mut self, t: BanTarget, until: Instant) -> bool {
        match t {
            BanTarget::Ip(ip) => match self.ips.get_mut(&ip) {
                Some(u) => {
                    *u = (*u).max(until);
                    false
                }
                None => {
                    self.ips.insert(ip, until);
                    true
                }
            },
            BanTarget::Net(n) => match self.nets.iter_mut().find(|(x, _)| *x == n) {
                Some((_, u)) => {
                    *u = (*u).max(until);
                    false
                }
                None => {
                    self.nets.push((n, until));
                    true
                }
            },
            other => match self.tokens.get_mut(&other.to_string()) {
                Some(u) => {
                    *u = (*u).max(until);
                    false
                }
                None => {
                    self.tokens.insert(other.to_string(), until);
                    true
                }
            },
        }
    }

    fn remove(&mut self, t: &BanTarget) -> bool {
        match t {
            BanTarget::Ip(ip) => self.ips.remove(ip).is_some(),
            BanTarget::Net(n) => {
                let before = self.nets.len();
                self.nets.retain(|(x, _)| x != n);
                before != self.nets.len()
            }
            other => self.tokens.remove(&other.to_string()).is_some(),
        }
    }

    /// The latest expiry among the entries that match the probe.
    fn lookup(&self, p: &BanProbe<'_>, now: Instant) -> Option<Instant> {
        let mut until = None::<Instant>;
        let mut take = |u: Instant| {
            if u > now {
                until = Some(until.map_or(u, |x| x.max(u)));
            }
        };
        if let Some(ip) = p.ip {
            if let Some(u) = self.ips.get(&ip) {
                take(*u);
            }
            for (n, u) in &self.nets {
                if n.contains(&ip) {
                    take(*u);
                }
            }
        }
        if let Some(h) = p.session {
            if let Some(u) = self.tokens.get(&format!("session:{h}")) {
                take(*u);
            }
        }
        if let Some(h) = p.fingerprint {
            if let Some(u) = self.tokens.get(&format!("fingerprint:{h}")) {
                take(*u);
            }
        }
        until
    }

    fn retain_live(&mut self, now: Instant) {
        self.ips.retain(|_, u| *u > now);
        self.nets.retain(|(_, u)| *u > now);
        self.tokens.retain(|_, u| *u > now);
    }

    fn each(&self, mut f: impl FnMut(BanTarget, Instant)) {
        for (ip, u) in &self.ips {
            f(BanTarget::Ip(*ip), *u);
        }
        for (n, u) in &self.nets {
            f(BanTarget::Net(*n), *u);
        }
        for (k, u) in &self.tokens {
            if let Ok(t) = k.parse() {
                f(t, *u);
            }
        }
    }
}

/// A ban change for the fleet.
#[derive(Debug, Clone, PartialEq)]
pub enum BanOp {
    /// The target and its expiry in Unix milliseconds.
    Add(BanTarget, i64),
    Remove(BanTarget),
}

/// Queued ban changes waiting for the sync task; past this, changes stay local (counted in the metrics).
const PUBLISH_QUEUE: usize = 10_000;

#[derive(Default)]
pub struct BanList {
    local: RwLock<Entries>,
    /// Entries in `local`: zero means nothing to look up there.
    local_len: AtomicUsize,
    /// The fleet's bans as last pulled from the store.
    shared: ArcSwapOption<Entries>,
    publisher: OnceLock<tokio::sync::mpsc::Sender<BanOp>>,
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl BanList {
    pub fn new() -> Self {
        Self::default()
    }

    fn write_local(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.local.write().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, op: BanOp) {
        if let Some(tx) = self.publisher.get() {
            if tx.try_send(op).is_err() {
                tracing::warn!("ban sync queue full: the change stays on this node");
            }
        }
    }

    /// Bans the client address `ip` for `duration` from now; an existing longer ban is kept.
    pub fn ban(&self, ip: IpAddr, duration: Duration) {
        self.ban_target(BanTarget::Ip(canonical(ip)), duration);
    }

    pub fn ban_target(&self, target: BanTarget, duration: Duration) {
        let until = Instant::now() + duration;
        {
            let mut local = self.write_local();
            local.insert(target.clone(), until);
            self.local_len.store(local.len(), Ordering::Relaxed);
        }
        self.publish(BanOp::Add(target, unix_ms_now() + duration.as_millis() as i64));
    }

    pub fn unban(&self, ip: IpAddr) -> bool {
        self.unban_target(&BanTarget::Ip(canonical(ip)))
    }

    /// Lifts a ban here at once and, through the store, on the fleet at its next pull.
    pub fn unban_target(&self, target: &BanTarget) -> bool {
        let removed_local = {
            let mut local = self.write_local();
            let r = local.remove(target);
            self.local_len.store(local.len(), Ordering::Relaxed);
            r
        };
        let mut removed_shared = false;
        if let Some(snap) = self.shared.load_full() {
            if snap.get(target).is_some() {
                let mut copy = Entries {
                    ips: snap.ips.clone(),
                    nets: snap.nets.clone(),
                    tokens: snap.tokens.clone(),
                };
                copy.remove(target);
                self.shared.store(Some(Arc::new(copy)));
                removed_shared = true;
            }
        }
        self.publish(BanOp::Remove(target.clone()));
        removed_local || removed_shared
    }

    /// The time left on `ip`'s ban (by address or network), if it is banned.
    pub fn banned(&self, ip: IpAddr) -> Option<Duration> {
        self.banned_request(&BanProbe {
            ip: Some(ip),
            ..BanProbe::default()
        })
    }

    /// The time left on the longest ban that matches the request, if any.
    pub fn banned_request(&self, probe: &BanProbe<'_>) -> Option<Duration> {
        let probe = BanProbe {
            ip: probe.ip.map(canonical),
            ..*probe
        };
        let now = Instant::now();
        let mut until = None::<Instant>;
        if self.local_len.load(Ordering::Relaxed) > 0 {
            until = self.local.read().unwrap_or_else(|p| p.into_inner()).lookup(&probe, now);
        }
        if let Some(snap) = &*self.shared.load() {
            if let Some(u) = snap.lookup(&probe, now) {
                until = Some(until.map_or(u, |x| x.max(u)));
            }
        }
        until.map(|u| u - now)
    }

    /// Whether a session or fingerprint ban exists (the proxy then reads those from the request).
    pub fn has_token_bans(&self) -> bool {
        let local = self.local_len.load(Ordering::Relaxed) > 0
            && !self.local.read().unwrap_or_else(|p| p.into_inner()).tokens.is_empty();
        local || self.shared.load().as_ref().is_some_and(|s| !s.tokens.is_empty())
    }

    /// Removes expired local entries; returns how many bans are active (local and shared).
    pub fn purge(&self) -> usize {
        let now = Instant::now();
        let mut local = self.write_local();
        local.retain_live(now);
        self.local_len.store(local.len(), Ordering::Relaxed);
        drop(local);
        self.list().len()
    }

    /// Active bans with the time left, for the admin API.
    pub fn list(&self) -> Vec<(BanTarget, Duration)> {
        let now = Instant::now();
        let mut all: HashMap<BanTarget, Instant> = HashMap::new();
        let mut add = |t: BanTarget, u: Instant| {
            if u > now {
                let e = all.entry(t).or_insert(u);
                *e = (*e).max(u);
            }
        };
        self.local.read().unwrap_or_else(|p| p.into_inner()).each(&mut add);
        if let Some(snap) = &*self.shared.load() {
            snap.each(&mut add);
        }
        let mut out: Vec<(BanTarget, Duration)> = all.into_iter().map(|(t, u)| (t, u - now)).collect();
        out.sort();
        out
    }

    /// Takes the fleet's bans as pulled from the store (target, expiry in Unix ms). Local entries that
    /// the snapshot holds leave the local list: from now on the store decides when they end.
    pub fn install_snapshot(&self, pulled: Vec<(BanTarget, i64)>) {
        let (now, now_ms) = (Instant::now(), unix_ms_now());
        let mut snap = Entries::default();
        for (t, until_ms) in pulled {
            if until_ms > now_ms {
                snap.insert(t, now + Duration::from_millis((until_ms - now_ms) as u64));
            }
        }
        {
            let mut local = self.write_local();
            let held: Vec<BanTarget> = {
                let mut v = Vec::new();
                // Expiries went through Unix milliseconds and back: allow for the rounding.
                local.each(|t, u| {
                    if snap.get(&t).is_some_and(|s| s + Duration::from_secs(1) >= u) {
                        v.push(t);
                    }
                });
                v
            };
            for t in &held {
                local.remove(t);
            }
            self.local_len.store(local.len(), Ordering::Relaxed);
        }
        self.shared.store(Some(Arc::new(snap)));
    }

    /// Local bans still to publish (after the store was away), as operations.
    fn local_ops(&self) -> Vec<BanOp> {
        let (now, now_ms) = (Instant::now(), unix_ms_now());
        let mut ops = Vec::new();
        self.local.read().unwrap_or_else(|p| p.into_inner()).each(|t, u| {
            if u > now {
                ops.push(BanOp::Add(t, now_ms + (u - now).as_millis() as i64));
            }
        });
        ops
    }
}

/// Where the fleet's bans live (the Redis store implements it).
pub trait BanStore: Send + Sync {
    fn apply<'a>(&'a self, key: &'a str, ops: &'a [BanOp]) -> crate::store::StoreFuture<'a, ()>;
    /// Drops expired members and returns the live ones (at most `max`).
    fn pull<'a>(&'a self, key: &'a str, now_ms: i64, max: usize) -> crate::store::StoreFuture<'a, Vec<(String, i64)>>;
}

/// The most bans a node takes from the store in one pull.
pub const MAX_SHARED_BANS: usize = 100_000;

/// Keeps `bans` in step with the store: publishes this node's changes as they happen and pulls the
/// fleet's set every `interval`. Runs until the ban list is dropped.
pub async fn run_sync(
    store: Arc<dyn BanStore>,
    bans: Arc<BanList>,
    key: String,
    interval: Duration,
    errors: prometheus_client::metrics::counter::Counter,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(PUBLISH_QUEUE);
    if bans.publisher.set(tx).is_err() {
        return; // a sync already runs for this list
    }
    let weak = Arc::downgrade(&bans);
    drop(bans);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    let mut unpublished: Vec<BanOp> = Vec::new();
    loop {
        tokio::select! {
            op = rx.recv() => match op {
                Some(op) => unpublished.push(op),
                None => return,
            },
            _ = tick.tick() => {}
        }
        while let Ok(op) = rx.try_recv() {
            unpublished.push(op);
        }
        let Some(bans) = weak.upgrade() else { return };
        if !unpublished.is_empty() {
            match store.apply(&key, &unpublished).await {
                Ok(()) => unpublished.clear(),
                Err(e) => {
                    errors.inc();
                    if healthy {
                        tracing::warn!(error = %e, "ban sync: cannot publish; bans stay on this node for now");
                    }
                    healthy = false;
                    unpublished.truncate(PUBLISH_QUEUE);
                    continue;
                }
            }
        }
        match store.pull(&key, unix_ms_now(), MAX_SHARED_BANS).await {
            Ok(members) => {
                if !healthy {
                    tracing::info!("ban sync: the store is back");
                    // Bans made while it was away are in the local list: publish them now.
                    unpublished.extend(bans.local_ops());
                }
                healthy = true;
                bans.install_snapshot(
                    members
                        .into_iter()
                        .filter_map(|(m, u)| Some((m.parse().ok()?, u)))
                        .collect(),
                );
            }
            Err(e) => {
                errors.inc();
                if healthy {
                    tracing::warn!(error = %e, "ban sync: cannot pull the fleet's bans; keeping the last ones");
                }
                healthy = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_expire() {
        let b = BanList::new();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(b.banned(ip).is_none());
        b.ban(ip, Duration::from_millis(50));
        assert!(b.banned(ip).is_some());
        assert!(b.banned("203.0.113.10".parse().unwrap()).is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(b.banned(ip).is_none());
        assert_eq!(b.purge(), 0);
        assert_eq!(b.local_len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn mapped_v6_is_the_same_address() {
        let b = BanList::new();
        b.ban("::ffff:192.0.2.1".parse().unwrap(), Duration::from_secs(60));
        assert!(b.banned("192.0.2.1".parse().unwrap()).is_some());
        assert!(b.unban("192.0.2.1".parse().unwrap()));
        assert!(b.banned("192.0.2.1".parse().unwrap()).is_none());
    }

    #[test]
    fn longer_ban_wins_and_purge_counts() {
        let b = BanList::new();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        b.ban(ip, Duration::from_secs(600));
        b.ban(ip, Duration::from_millis(1));
        assert!(b.banned(ip).unwrap() > Duration::from_secs(500));
        b.ban("198.51.100.8".parse().unwrap(), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.purge(), 1);
        assert_eq!(b.list().len(), 1);
    }

    #[test]
    fn networks_sessions_and_fingerprints() {
        let b = BanList::new();
        b.ban_target("net:203.0.113.77/24".parse().unwrap(), Duration::from_secs(60));
        assert!(b.banned("203.0.113.200".parse().unwrap()).is_some());
        assert!(b.banned("203.0.114.1".parse().unwrap()).is_none());
        assert!(!b.has_token_bans());
        let sid = token_hash("s%3Aabc.def");
        b.ban_target(BanTarget::Session(sid.clone()), Duration::from_secs(60));
        assert!(b.has_token_bans());
        let probe = BanProbe {
            ip: Some("192.0.2.1".parse().unwrap()),
            session: Some(&sid),
            fingerprint: None,
        };
        assert!(b.banned_request(&probe).is_some());
        let other = token_hash("another");
        assert!(b
            .banned_request(&BanProbe {
                session: Some(&other),
                ..probe
            })
            .is_none());
        let listed: Vec<String> = b.list().iter().map(|(t, _)| t.to_string()).collect();
        assert_eq!(listed, vec!["net:203.0.113.0/24".to_string(), format!("session:{sid}")]);
    }

    #[test]
    fn targets_parse_and_print() {
        for s in [
            "ip:203.0.113.9",
            "net:10.0.0.0/8",
            "net:2001:db8::/32",
            "session:0123456789abcdef",
        ] {
            assert_eq!(s.parse::<BanTarget>().unwrap().to_string(), s);
        }
        assert_eq!(
            "203.0.113.9/32".parse::<BanTarget>().unwrap().to_string(),
            "ip:203.0.113.9"
        );
        assert_eq!("10.1.2.3/8".parse::<BanTarget>().unwrap().to_string(), "net:10.0.0.0/8");
        assert!("session:not-a-hash".parse::<BanTarget>().is_err());
        assert!("mallory".parse::<BanTarget>().is_err());
    }

    #[test]
    fn a_snapshot_takes_over_local_entries_and_an_unban_lifts_both() {
        let b = BanList::new();
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        b.ban(ip, Duration::from_secs(60));
        let until = unix_ms_now() + 60_000;
        b.install_snapshot(vec![
            (BanTarget::Ip(ip), until),
            ("net:192.0.2.0/24".parse().unwrap(), until),
            (BanTarget::Ip("198.51.100.10".parse().unwrap()), unix_ms_now() - 1),
        ]);
        assert_eq!(b.local_len.load(Ordering::Relaxed), 0, "the snapshot holds it now");
        assert!(b.banned(ip).is_some());
        assert!(b.banned("192.0.2.5".parse().unwrap()).is_some());
        assert!(
            b.banned("198.51.100.10".parse().unwrap()).is_none(),
            "expired in the store"
        );
        // A later pull without the address (unbanned on another node) lifts it here.
        b.install_snapshot(vec![("net:192.0.2.0/24".parse().unwrap(), until)]);
        assert!(b.banned(ip).is_none());
        assert!(b.unban_target(&"net:192.0.2.0/24".parse().unwrap()));
        assert!(b.banned("192.0.2.5".parse().unwrap()).is_none());
    }

    /// A store in memory that can be taken down: the fleet's sorted set.
    #[derive(Default)]
    struct FakeStore {
        set: std::sync::Mutex<HashMap<String, i64>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl BanStore for FakeStore {
        fn apply<'a>(&'a self, _: &'a str, ops: &'a [BanOp]) -> crate::store::StoreFuture<'a, ()> {
            Box::pin(async move {
                if self.down.load(Ordering::Relaxed) {
                    return Err(crate::store::StoreError::Unavailable("down".into()));
                }
                let mut set = self.set.lock().unwrap();
                for op in ops {
                    match op {
                        BanOp::Add(t, u) => {
                            let e = set.entry(t.to_string()).or_insert(*u);
                            *e = (*e).max(*u);
                        }
                        BanOp::Remove(t) => {
                            set.remove(&t.to_string());
                        }
                    }
                }
                Ok(())
            })
        }

        fn pull<'a>(&'a self, _: &'a str, now_ms: i64, _: usize) -> crate::store::StoreFuture<'a, Vec<(String, i64)>> {
            Box::pin(async move {
                if self.down.load(Ordering::Relaxed) {
                    return Err(crate::store::StoreError::Unavailable("down".into()));
                }
                Ok(self
                    .set
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, u)| **u > now_ms)
                    .map(|(m, u)| (m.clone(), *u))
                    .collect())
            })
        }
    }

    async fn eventually(what: &str, f: impl Fn() -> bool) {
        for _ in 0..100 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} did not happen within a second");
    }

    #[tokio::test]
    async fn two_lists_on_one_store_share_bans_and_outlive_an_outage() {
        let store = Arc::new(FakeStore::default());
        let (a, b) = (Arc::new(BanList::new()), Arc::new(BanList::new()));
        for list in [&a, &b] {
            tokio::spawn(run_sync(
                store.clone(),
                list.clone(),
                "k".into(),
                Duration::from_millis(20),
                Default::default(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (x, y): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        a.ban(x, Duration::from_secs(60));
        eventually("a's ban on b", || b.banned(x).is_some()).await;

        // The store goes away: a new ban holds where it was made, and reaches b when the store returns.
        store.down.store(true, Ordering::Relaxed);
        a.ban(y, Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(a.banned(y).is_some());
        assert!(b.banned(y).is_none());
        assert!(b.banned(x).is_some(), "the last snapshot keeps holding");
        store.down.store(false, Ordering::Relaxed);
        eventually("the ban made during the outage on b", || b.banned(y).is_some()).await;

        // Lifted on b, lifted on a.
        assert!(b.unban(x));
        eventually("b's unban on a", || a.banned(x).is_none()).await;
        assert!(a.banned(y).is_some());
    }
}
