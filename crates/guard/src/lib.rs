//! Behaviour across requests.
//!
//! Module map:
//! - [`bans`]: addresses banned for a while (by a trigger, later by abuse detectors), checked by the proxy
//!   on every request.
//!
//! Keyed rate limits, credential-stuffing, enumeration and SMS-pumping detectors, and the `StateStore`
//! that shares their state across a fleet (Redis / Valkey), come next (issue 7); the ban list will then be
//! backed by that store with this in-memory list as the local cache.

pub mod bans;

pub use bans::BanList;
