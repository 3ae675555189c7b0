//! Temporary per-route changes made at run time by triggers: a mode switch (monitor -> block) or a lower
//! anomaly threshold (a raised sensitivity), each with an expiry.
//!
//! They live beside the policy, not in it: a reload keeps them (they are keyed by route name), and they
//! lapse on their own. The request path checks one atomic flag when none is set.

use rampart_policy::Mode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct RouteOverrides {
    any: AtomicBool,
    routes: RwLock<HashMap<String, RouteOverride>>,
}

#[derive(Default, Clone, Copy)]
struct RouteOverride {
    mode: Option<(Mode, Instant)>,
    threshold: Option<(u32, Instant)>,
}

/// What applies to a route right now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub mode: Option<Mode>,
    pub threshold: Option<u32>,
}

impl RouteOverrides {
    pub fn set_mode(&self, route: &str, mode: Mode, duration: Duration) {
        let mut m = self.routes.write().unwrap_or_else(|p| p.into_inner());
        m.entry(route.to_string()).or_default().mode = Some((mode, Instant::now() + duration));
        self.any.store(true, Ordering::Release);
    }

    /// Lowers the route's anomaly threshold to `threshold` (a stricter one already set is kept).
    pub fn set_threshold(&self, route: &str, threshold: u32, duration: Duration) {
        let mut m = self.routes.write().unwrap_or_else(|p| p.into_inner());
        let o = m.entry(route.to_string()).or_default();
        let until = Instant::now() + duration;
        o.threshold = Some(match o.threshold {
            Some((t, u)) if t <= threshold => (t, u.max(until)),
            _ => (threshold, until),
        });
        self.any.store(true, Ordering::Release);
    }

    pub fn get(&self, route: &str) -> Effective {
        if !self.any.load(Ordering::Acquire) {
            return Effective::default();
        }
        let now = Instant::now();
        let m = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let Some(o) = m.get(route) else {
            return Effective::default();
        };
        Effective {
            mode: o.mode.filter(|(_, u)| *u > now).map(|(m, _)| m),
            threshold: o.threshold.filter(|(_, u)| *u > now).map(|(t, _)| t),
        }
    }

    /// Drops lapsed overrides; returns the routes that still have one, for the console.
    pub fn purge(&self) -> Vec<String> {
        let now = Instant::now();
        let mut m = self.routes.write().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, o| {
            o.mode = o.mode.filter(|(_, u)| *u > now);
            o.threshold = o.threshold.filter(|(_, u)| *u > now);
            o.mode.is_some() || o.threshold.is_some()
        });
        self.any.store(!m.is_empty(), Ordering::Release);
        let mut names: Vec<String> = m.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_lapse() {
        let o = RouteOverrides::default();
        assert_eq!(o.get("api"), Effective::default());
        o.set_mode("api", Mode::Block, Duration::from_millis(40));
        o.set_threshold("api", 4, Duration::from_secs(60));
        o.set_threshold("api", 5, Duration::from_secs(60));
        assert_eq!(
            o.get("api"),
            Effective {
                mode: Some(Mode::Block),
                threshold: Some(4)
            }
        );
        assert_eq!(o.get("other"), Effective::default());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(o.get("api").mode, None);
        assert_eq!(o.purge(), vec!["api".to_string()]);
    }
}
