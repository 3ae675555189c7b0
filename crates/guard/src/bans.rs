//! An in-memory ban list with expiry.
//!
//! The proxy asks [`BanList::banned`] on every request, so the common case (nobody banned) is one atomic
//! load. Entries are sharded by address to keep writers (triggers) from contending with readers on other
//! shards; expired entries are removed when they are next looked at and by [`BanList::purge`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

pub struct BanList {
    shards: [RwLock<HashMap<IpAddr, Instant>>; SHARDS],
    /// Entries across all shards, expired or not: zero means nobody is banned.
    entries: AtomicUsize,
}

impl Default for BanList {
    fn default() -> Self {
        BanList {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            entries: AtomicUsize::new(0),
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn shard_of(ip: &IpAddr) -> usize {
    let b = match ip {
        IpAddr::V4(v4) => v4.octets()[3] as usize ^ v4.octets()[2] as usize,
        IpAddr::V6(v6) => v6.octets()[15] as usize ^ v6.octets()[7] as usize,
    };
    b % SHARDS
}

impl BanList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bans `ip` for `duration` from now; an existing longer ban is kept.
    pub fn ban(&self, ip: IpAddr, duration: Duration) {
        let ip = canonical(ip);
        let until = Instant::now() + duration;
        let mut shard = self.shards[shard_of(&ip)].write().unwrap_or_else(|p| p.into_inner());
        match shard.get_mut(&ip) {
            Some(u) => *u = (*u).max(until),
            None => {
                shard.insert(ip, until);
                self.entries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn unban(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let removed = self.shards[shard_of(&ip)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip)
            .is_some();
        if removed {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// The time left on `ip`'s ban, if it is banned.
    pub fn banned(&self, ip: IpAddr) -> Option<Duration> {
        if self.entries.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let ip = canonical(ip);
        let now = Instant::now();
        let shard = &self.shards[shard_of(&ip)];
        let until = *shard.read().unwrap_or_else(|p| p.into_inner()).get(&ip)?;
        if until > now {
            return Some(until - now);
        }
        let mut w = shard.write().unwrap_or_else(|p| p.into_inner());
        if w.get(&ip).is_some_and(|u| *u <= now) {
            w.remove(&ip);
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        None
    }

    /// Removes expired entries; returns how many bans are active.
    pub fn purge(&self) -> usize {
        let now = Instant::now();
        let mut active = 0;
        for shard in &self.shards {
            let mut s = shard.write().unwrap_or_else(|p| p.into_inner());
            let before = s.len();
            s.retain(|_, until| *until > now);
            self.entries.fetch_sub(before - s.len(), Ordering::Relaxed);
            active += s.len();
        }
        active
    }

    /// Active bans with the time left, for the console and the CLI.
    pub fn list(&self) -> Vec<(IpAddr, Duration)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            for (ip, until) in shard.read().unwrap_or_else(|p| p.into_inner()).iter() {
                if *until > now {
                    out.push((*ip, *until - now));
                }
            }
        }
        out.sort();
        out
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
        assert_eq!(b.entries.load(Ordering::Relaxed), 0);
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
}
