//! Abuse across requests: credential stuffing / account takeover on login routes, enumeration (BOLA,
//! forced browsing) on object routes, and SMS pumping on OTP routes (in [`crate::otp`]).
//!
//! Login signals, per route:
//! - `usernames_per_ip`: one address trying many user names (a stuffing list);
//! - `ips_per_username`: many addresses failing on one user name (a targeted takeover, spraying);
//! - `failures_per_prefix`: failures from one /24 (/48) over hours (low-and-slow campaigns that rotate
//!   addresses inside a provider's range);
//! - `leaked_password`: the password is in the Have I Been Pwned range files (k-anonymity: only the first
//!   five hex digits of its SHA-1 choose the file; the password is hashed at once and never kept);
//! - `success_after_failures`: a login that succeeds after a run of failures on the user name (recorded).
//!
//! A signal that crosses its threshold raises a flag (a window counter in the store) on the address, the
//! prefix or the user name; a login attempt that meets a flag is stopped. Enumeration counts distinct ids
//! per client and its share of 403/404 answers.

use crate::bans::token_hash;
use crate::guarded::Guarded;
use crate::limits::{key_of, part_value, RequestFacts};
use rampart_policy::guard::{AbuseAction, EnumerationSpec, LoginSpec, OtpSpec};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An abuse detector that stopped (or would stop) a request.
#[derive(Debug, Clone, PartialEq)]
pub struct AbuseOutcome {
    /// `login:<route>` or `enumeration:<name>`.
    pub detector: String,
    pub signals: Vec<String>,
    pub action: AbuseAction,
    /// What the decision is about (an address, a prefix, a hashed user name), safe to show.
    pub key: String,
}

/// What to count once the response status is known.
#[derive(Debug, Clone)]
pub enum PendingAbuse {
    Login {
        spec: usize,
        user: String,
        ip: IpAddr,
        prefix: String,
        /// The password tried is in the leaked-password ranges.
        leaked: bool,
    },
    Enumeration {
        spec: usize,
        per: String,
    },
    /// A code was asked for: counted as sent to these ranges when the answer is 2xx.
    OtpSend {
        spec: usize,
        country: String,
        range: String,
    },
    /// A code was checked: counted as verified when the answer is 2xx.
    OtpVerify {
        spec: usize,
        country: String,
        range: String,
    },
}

/// Leaked-password lookups in a directory of HIBP range files, with a small cache of files read.
pub struct LeakedPasswords {
    dir: PathBuf,
    cache: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

const RANGE_CACHE: usize = 1024;

impl LeakedPasswords {
    pub fn new(dir: &Path) -> Self {
        LeakedPasswords {
            dir: dir.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the password (given as its SHA-1, upper-case hex) is in the range files. Reads the range
    /// file on the blocking pool; a missing file means "not leaked".
    pub async fn contains(&self, sha1_hex: &str) -> bool {
        let (prefix, suffix) = sha1_hex.split_at(5);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
            .cloned();
        let data = match cached {
            Some(d) => d,
            None => {
                let path = self.dir.join(prefix);
                let d = Arc::new(tokio::fs::read(&path).await.unwrap_or_default());
                let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if c.len() >= RANGE_CACHE {
                    c.clear();
                }
                c.insert(prefix.to_string(), d.clone());
                d
            }
        };
        String::from_utf8_lossy(&data).lines().any(|l| {
            l.split(':')
                .next()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case(suffix))
        })
    }
}

/// SHA-1 of a password, upper-case hex (the HIBP range format). The plaintext goes no further.
pub fn password_sha1(password: &str) -> String {
    use sha1_smol::Sha1;
    Sha1::from(password.as_bytes())
        .digest()
        .to_string()
        .to_ascii_uppercase()
}

pub struct AbuseGuard {
    logins: Vec<(LoginSpec, Option<LeakedPasswords>)>,
    enumeration: Vec<EnumerationSpec>,
    otp: Vec<OtpSpec>,
    prefix: String,
}

fn ip_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => ipnet::Ipv4Net::new(a, 24)
            .map(|n| n.trunc().to_string())
            .unwrap_or_default(),
        IpAddr::V6(a) => ipnet::Ipv6Net::new(a, 48)
            .map(|n| n.trunc().to_string())
            .unwrap_or_default(),
    }
}

impl AbuseGuard {
    pub fn new(logins: &[LoginSpec], enumeration: &[EnumerationSpec], otp: &[OtpSpec], key_prefix: &str) -> Self {
        AbuseGuard {
            logins: logins
                .iter()
                .map(|l| (l.clone(), l.leaked_passwords.as_deref().map(LeakedPasswords::new)))
                .collect(),
            enumeration: enumeration.to_vec(),
            otp: otp.to_vec(),
            prefix: key_prefix.to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.logins.is_empty() && self.enumeration.is_empty() && self.otp.is_empty()
    }

    /// Whether a detector on `route` reads the body (user names in JSON or forms): the proxy then checks
    /// after reading it.
    pub fn applies_to(&self, route: &str) -> bool {
        self.logins.iter().any(|(l, _)| l.route == route)
            || self.enumeration.iter().any(|e| e.route == route)
            || self
                .otp
                .iter()
                .any(|o| o.route == route || o.verify.as_ref().is_some_and(|(v, _)| v == route))
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        // Hash-tagged like the rate-limit keys, so a Redis Cluster keeps each key's windows together.
        format!("{}ab:{{{}}}", self.prefix, token_hash(&parts.join("\u{1f}")))
    }

    /// Checks the request against the detectors of its route; records what to count after the response.
    pub async fn check(
        &self,
        store: &Guarded,
        f: &RequestFacts<'_>,
        pending: &mut Vec<PendingAbuse>,
    ) -> Option<AbuseOutcome> {
        for (i, (spec, leaked)) in self.logins.iter().enumerate() {
            if spec.route != f.route {
                continue;
            }
            if let Some(out) = self.check_login(store, i, spec, leaked.as_ref(), f, pending).await {
                return Some(out);
            }
        }
        for (i, spec) in self.enumeration.iter().enumerate() {
            if spec.route != f.route {
                continue;
            }
            if let Some(out) = self.check_enumeration(store, i, spec, f, pending).await {
                return Some(out);
            }
        }
        for (i, spec) in self.otp.iter().enumerate() {
            if spec.route == f.route {
                if let Some(out) = self.check_otp_send(store, i, spec, f, pending).await {
                    return Some(out);
                }
            }
            if let Some((verify, part)) = &spec.verify {
                if verify == f.route {
                    self.note_otp_verify(i, spec, part, f, pending);
                }
            }
        }
        None
    }

    async fn check_login(
        &self,
        store: &Guarded,
        i: usize,
        spec: &LoginSpec,
        leaked: Option<&LeakedPasswords>,
        f: &RequestFacts<'_>,
        pending: &mut Vec<PendingAbuse>,
    ) -> Option<AbuseOutcome> {
        let user = part_value(&spec.username, f)?.trim().to_lowercase();
        if user.is_empty() {
            return None;
        }
        let ip = f.client_ip;
        let prefix = ip_prefix(ip);
        let detector = format!("login:{}", spec.route);
        let user_shown = format!("user #{}", &token_hash(&user)[..8]);
        let mut signals = Vec::new();

        // Flags raised earlier (by this node or another).
        let flagged = |what: &str, who: &str| self.key(&[&spec.route, "flag", what, who]);
        let peek = |k: String, w| async move { store.window(&k, w, 0).await.value.map_or(0, |(n, _)| n) };
        if peek(flagged("ip", &ip.to_string()), spec.window).await > 0 {
            signals.push(format!(
                "usernames_per_ip: {ip} tried more than {} user names",
                spec.max_usernames_per_ip
            ));
        }
        if peek(flagged("user", &user), spec.window).await > 0 {
            signals.push(format!(
                "ips_per_username: more than {} addresses failed on {user_shown}",
                spec.max_ips_per_username
            ));
        }
        let prefix_failures = peek(self.key(&[&spec.route, "pf", &prefix]), spec.slow_window).await;
        if prefix_failures >= spec.max_failures_per_prefix {
            signals.push(format!(
                "failures_per_prefix: {prefix_failures} failed logins from {prefix} within {}",
                humantime::format_duration(spec.slow_window)
            ));
        }
        // This attempt's own count of user names from the address.
        if signals.is_empty() {
            let n = store
                .distinct(&self.key(&[&spec.route, "ipu", &ip.to_string()]), spec.window, &user)
                .await
                .value
                .unwrap_or(0);
            if n > spec.max_usernames_per_ip {
                store.window(&flagged("ip", &ip.to_string()), spec.window, 1).await;
                signals.push(format!(
                    "usernames_per_ip: {ip} tried {n} user names within {}",
                    humantime::format_duration(spec.window)
                ));
            }
        }
        let leaked_password = match (leaked, &spec.password) {
            (Some(l), Some(p)) => match part_value(p, f) {
                Some(pw) => l.contains(&password_sha1(&pw)).await,
                None => false,
            },
            _ => false,
        };
        if !signals.is_empty() {
            if leaked_password {
                signals.push("leaked_password".to_string());
            }
            let key = if signals[0].starts_with("ips_per_username") {
                user_shown
            } else if signals[0].starts_with("failures_per_prefix") {
                prefix
            } else {
                ip.to_string()
            };
            return Some(AbuseOutcome {
                detector,
                signals,
                action: spec.action,
                key,
            });
        }
        pending.push(PendingAbuse::Login {
            spec: i,
            user,
            ip,
            prefix,
            leaked: leaked_password,
        });
        None
    }

    async fn check_enumeration(
        &self,
        store: &Guarded,
        i: usize,
        spec: &EnumerationSpec,
        f: &RequestFacts<'_>,
        pending: &mut Vec<PendingAbuse>,
    ) -> Option<AbuseOutcome> {
        let id = part_value(&spec.id, f)?;
        let (per_raw, per_shown) = key_of(&spec.per, f)?;
        let detector = format!("enumeration:{}", spec.name);
        let mut signals = Vec::new();
        let total_key = self.key(&[&spec.name, "t", &per_raw]);
        let err_key = self.key(&[&spec.name, "e", &per_raw]);
        let total = store.window(&total_key, spec.window, 0).await.value.map_or(0, |v| v.0);
        let errors = store.window(&err_key, spec.window, 0).await.value.map_or(0, |v| v.0);
        if total >= spec.min_requests && errors as f64 / total as f64 > spec.max_error_ratio {
            signals.push(format!(
                "error_ratio: {errors} of {total} answers were 403/404 within {}",
                humantime::format_duration(spec.window)
            ));
        }
        let n = store
            .distinct(&self.key(&[&spec.name, "ids", &per_raw]), spec.window, &id)
            .await
            .value
            .unwrap_or(0);
        if n > spec.max_distinct {
            signals.push(format!(
                "distinct_ids: {n} different ids within {} (max {})",
                humantime::format_duration(spec.window),
                spec.max_distinct
            ));
        }
        if !signals.is_empty() {
            return Some(AbuseOutcome {
                detector,
                signals,
                action: spec.action,
                key: per_shown,
            });
        }
        pending.push(PendingAbuse::Enumeration { spec: i, per: per_raw });
        None
    }

    /// The text whose presence in the response body means a failed login, when a pending login's route
    /// declares one: the proxy then watches the body and calls [`AbuseGuard::count_response_with`].
    pub fn failure_marker(&self, pending: &[PendingAbuse]) -> Option<&str> {
        pending.iter().find_map(|p| match p {
            PendingAbuse::Login { spec, .. } => self.logins.get(*spec)?.0.failure_body.as_deref(),
            _ => None,
        })
    }

    /// Counts the response of a request that passed [`AbuseGuard::check`]. Returns an outcome to record
    /// (never to answer with: the response is gone) for a success after a run of failures.
    pub async fn count_response(&self, store: &Guarded, pending: &[PendingAbuse], status: u16) -> Option<AbuseOutcome> {
        self.count_response_with(store, pending, status, false).await
    }

    /// [`AbuseGuard::count_response`], where `body_failed` says the response body held the route's
    /// `failure_body` marker (a failed login whatever its status).
    pub async fn count_response_with(
        &self,
        store: &Guarded,
        pending: &[PendingAbuse],
        status: u16,
        body_failed: bool,
    ) -> Option<AbuseOutcome> {
        let mut out = None;
        for p in pending {
            match p {
                PendingAbuse::Login {
                    spec,
                    user,
                    ip,
                    prefix,
                    leaked,
                } => {
                    let Some((spec, _)) = self.logins.get(*spec) else {
                        continue;
                    };
                    let failures_key = self.key(&[&spec.route, "fu", user]);
                    if spec.failure_status.contains(&status) || body_failed {
                        store.count(&failures_key, spec.window, 1);
                        store.count(&self.key(&[&spec.route, "pf", prefix]), spec.slow_window, 1);
                        let ips = store
                            .distinct(&self.key(&[&spec.route, "ipsu", user]), spec.window, &ip.to_string())
                            .await
                            .value
                            .unwrap_or(0);
                        if ips > spec.max_ips_per_username {
                            store.count(&self.key(&[&spec.route, "flag", "user", user]), spec.window, 1);
                        }
                    } else if (200..300).contains(&status) {
                        let failures = store
                            .window(&failures_key, spec.window, 0)
                            .await
                            .value
                            .map_or(0, |v| v.0);
                        let mut signals = Vec::new();
                        if failures >= 3 {
                            signals.push(format!(
                                "success_after_failures: a login succeeded after {failures} failures on the user name"
                            ));
                        }
                        if *leaked {
                            // The account's password is in a breach corpus: it should be reset, whoever
                            // logged in.
                            signals.push("leaked_password: a login succeeded with a breached password".to_string());
                        }
                        if !signals.is_empty() {
                            out = Some(AbuseOutcome {
                                detector: format!("login:{}", spec.route),
                                signals,
                                action: AbuseAction::Log,
                                key: format!("user #{}", &token_hash(user)[..8]),
                            });
                        }
                    }
                }
                PendingAbuse::Enumeration { spec, per } => {
                    let Some(spec) = self.enumeration.get(*spec) else {
                        continue;
                    };
                    store.count(&self.key(&[&spec.name, "t", per]), spec.window, 1);
                    if status == 403 || status == 404 {
                        store.count(&self.key(&[&spec.name, "e", per]), spec.window, 1);
                    }
                }
                PendingAbuse::OtpSend { spec, country, range } | PendingAbuse::OtpVerify { spec, country, range } => {
                    let Some(o) = self.otp.get(*spec) else {
                        continue;
                    };
                    let sent = matches!(p, PendingAbuse::OtpSend { .. });
                    self.count_otp(store, o, [country, range], sent, status);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_policy::guard::KeyPart;
    use std::time::Duration;

    fn login_spec() -> LoginSpec {
        LoginSpec {
            route: "login".into(),
            username: KeyPart::Json("/username".into()),
            password: Some(KeyPart::Json("/password".into())),
            failure_status: vec![401],
            failure_body: None,
            window: Duration::from_secs(600),
            max_usernames_per_ip: 5,
            max_ips_per_username: 5,
            max_failures_per_prefix: 1000,
            slow_window: Duration::from_secs(3600),
            leaked_passwords: None,
            action: AbuseAction::Block,
        }
    }

    fn login() -> http::request::Parts {
        http::Request::post("/login").body(()).unwrap().into_parts().0
    }

    async fn attempt(g: &AbuseGuard, s: &Guarded, ip: &str, user: &str, status: u16) -> Option<AbuseOutcome> {
        let parts = login();
        let body = format!(r#"{{"username":"{user}","password":"pw"}}"#);
        let f = RequestFacts {
            parts: &parts,
            body: Some(body.as_bytes()),
            client_ip: ip.parse().unwrap(),
            route: "login",
        };
        let mut pending = Vec::new();
        let out = g.check(s, &f, &mut pending).await;
        if out.is_none() {
            g.count_response(s, &pending, status).await;
        }
        out
    }

    #[tokio::test]
    async fn one_address_many_usernames_is_stopped_and_a_typo_is_not() {
        let g = AbuseGuard::new(&[login_spec()], &[], &[], "t:");
        let s = Guarded::memory(10_000);
        // A user with two typos then success.
        for status in [401, 401, 200] {
            assert!(attempt(&g, &s, "198.51.100.7", "ada", status).await.is_none());
        }
        // A list run from one address.
        let mut stopped = 0;
        for i in 0..20 {
            if attempt(&g, &s, "203.0.113.9", &format!("user{i}"), 401).await.is_some() {
                stopped += 1;
            }
        }
        assert_eq!(stopped, 15, "after five user names every attempt is stopped");
        let out = attempt(&g, &s, "203.0.113.9", "ada", 200).await.unwrap();
        assert!(out.signals[0].starts_with("usernames_per_ip"), "{out:?}");
    }

    #[tokio::test]
    async fn many_addresses_failing_on_one_user_flag_the_user() {
        let g = AbuseGuard::new(&[login_spec()], &[], &[], "t:");
        let s = Guarded::memory(10_000);
        for i in 0..6 {
            assert!(attempt(&g, &s, &format!("192.0.2.{i}"), "victim", 401).await.is_none());
        }
        let out = attempt(&g, &s, "192.0.2.200", "victim", 401).await.unwrap();
        assert!(out.signals[0].starts_with("ips_per_username"), "{out:?}");
        assert!(!out.key.contains("victim"), "user names are shown hashed");
        assert!(attempt(&g, &s, "192.0.2.201", "someone-else", 200).await.is_none());
    }

    #[tokio::test]
    async fn leaked_passwords_are_found_by_range_file() {
        let dir = std::env::temp_dir().join(format!("rampart-hibp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = password_sha1("password123");
        std::fs::write(
            dir.join(&h[..5]),
            format!("0000000000000000000000000000000000A:3\r\n{}:42\r\n", &h[5..]),
        )
        .unwrap();
        let l = LeakedPasswords::new(&dir);
        assert!(l.contains(&h).await);
        assert!(!l.contains(&password_sha1("correct horse battery staple")).await);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(password_sha1("password"), "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }

    #[tokio::test]
    async fn a_success_with_a_breached_password_or_after_failures_is_recorded() {
        let dir = std::env::temp_dir().join(format!("rampart-hibp-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = password_sha1("pw");
        std::fs::write(dir.join(&h[..5]), format!("{}:7\n", &h[5..])).unwrap();
        let spec = LoginSpec {
            leaked_passwords: Some(dir.clone()),
            ..login_spec()
        };
        let g = AbuseGuard::new(&[spec], &[], &[], "t:");
        let s = Guarded::memory(10_000);
        let mut pending = Vec::new();
        let parts = login();
        let f = RequestFacts {
            parts: &parts,
            body: Some(br#"{"username":"grace","password":"pw"}"#),
            client_ip: "198.51.100.20".parse().unwrap(),
            route: "login",
        };
        assert!(
            g.check(&s, &f, &mut pending).await.is_none(),
            "a breached password alone does not block"
        );
        let out = g.count_response(&s, &pending, 200).await.expect("recorded");
        assert_eq!(out.action, AbuseAction::Log);
        assert!(out.signals.iter().any(|s| s.starts_with("leaked_password")), "{out:?}");
        // Without a breached password: three failures then a success is recorded too.
        let g = AbuseGuard::new(&[login_spec()], &[], &[], "t:");
        for _ in 0..3 {
            attempt(&g, &s, "198.51.100.21", "linus", 401).await;
        }
        let mut pending = Vec::new();
        let body = br#"{"username":"linus","password":"right"}"#;
        let f = RequestFacts { body: Some(body), ..f };
        assert!(g.check(&s, &f, &mut pending).await.is_none());
        let out = g.count_response(&s, &pending, 200).await.expect("recorded");
        assert!(
            out.signals[0].starts_with("success_after_failures: a login succeeded after 3"),
            "{out:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn enumeration_of_ids_is_stopped() {
        let spec = EnumerationSpec {
            name: "users".into(),
            route: "users".into(),
            id: KeyPart::PathSegment(2),
            per: vec![KeyPart::ClientIp],
            window: Duration::from_secs(60),
            max_distinct: 20,
            max_error_ratio: 0.5,
            min_requests: 10,
            action: AbuseAction::Block,
        };
        let g = AbuseGuard::new(&[], &[spec], &[], "t:");
        let s = Guarded::memory(10_000);
        let get = |id: u32, ip: &'static str| {
            let parts = http::Request::get(format!("/users/{id}"))
                .body(())
                .unwrap()
                .into_parts()
                .0;
            (parts, ip)
        };
        let mut stopped_at = None;
        for id in 0..40 {
            let (parts, ip) = get(id, "203.0.113.5");
            let f = RequestFacts {
                parts: &parts,
                body: None,
                client_ip: ip.parse().unwrap(),
                route: "users",
            };
            let mut pending = Vec::new();
            if g.check(&s, &f, &mut pending).await.is_some() {
                stopped_at.get_or_insert(id);
                continue;
            }
            g.count_response(&s, &pending, 200).await;
        }
        assert_eq!(stopped_at, Some(20));
        // A user reading their own few objects repeatedly is fine.
        for _ in 0..50 {
            let (parts, ip) = get(7, "198.51.100.3");
            let f = RequestFacts {
                parts: &parts,
                body: None,
                client_ip: ip.parse().unwrap(),
                route: "users",
            };
            let mut pending = Vec::new();
            assert!(g.check(&s, &f, &mut pending).await.is_none());
            g.count_response(&s, &pending, 200).await;
        }
    }
}
