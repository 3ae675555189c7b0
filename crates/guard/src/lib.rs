//! Behaviour across requests.
//!
//! Module map:
//! - [`store`]: the [`StateStore`] trait (GCRA cells and window counters) and the in-memory store;
//! - [`redis_store`]: the Redis / Valkey store (standalone or Cluster), one Lua script per decision;
//! - [`guarded`]: a deadline and a fallback (local, open or closed) around the shared store;
//! - [`limits`]: keyed rate limits compiled from the policy, and their decisions;
//! - [`abuse`]: credential stuffing / account takeover on login routes, enumeration on object routes;
//! - [`otp`]: SMS pumping (toll fraud) on OTP routes: velocity, per-range conversion, denied ranges;
//! - [`challenge`]: the `challenge` action's proof-of-work page and clearance cookie;
//! - [`bans`]: addresses, networks, sessions and fingerprints banned for a while, shared by the fleet
//!   through the store and checked by the proxy on every request.

pub mod abuse;
pub mod bans;
pub mod challenge;
pub mod guarded;
pub mod limits;
pub mod otp;
pub mod redis_store;
pub mod store;

pub use abuse::{AbuseGuard, AbuseOutcome, PendingAbuse};
pub use bans::{token_hash, BanList, BanProbe, BanTarget};
pub use challenge::Challenger;
pub use guarded::{GuardMetrics, Guarded};
pub use limits::{LimitOutcome, RateLimiter, RequestFacts};
pub use store::{Decision, Gcra, MemoryStore, StateStore, StoreError};
