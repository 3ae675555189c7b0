//! Events: every decision rampart makes, as a structured record, delivered where the security team looks.
//!
//! Module map:
//! - [`event`]: the [`Event`] and [`Alert`] records and their JSON shape (a contract: see DESIGN.md);
//! - [`mask`]: secrets (passwords, tokens, Authorization, session cookies, card numbers) masked before a
//!   record leaves the process;
//! - [`sink`]: the [`EventSink`] trait;
//! - [`pipeline`]: the bounded, batching, retrying delivery that never blocks traffic;
//! - [`filter`]: matching events against the config's filters;
//! - [`trigger`]: conditions over a window, grouped by a key, that raise alerts and act;
//! - sinks: [`sqlite`] (the default), [`jsonl`], [`syslog`] (RFC 5424, UDP/TCP/TLS, CEF or JSON),
//!   [`webhook`] (generic JSON with HMAC signature, Slack, PagerDuty), [`postgres`];
//! - [`store`]: reading events back from SQLite (`rampart events query/tail`, the console).

pub mod event;
pub mod filter;
pub mod jsonl;
pub mod mask;
pub mod pipeline;
pub mod postgres;
pub mod setup;
pub mod sink;
pub mod sqlite;
pub mod store;
pub mod syslog;
pub mod trigger;
pub mod webhook;

pub use event::{Action, Alert, Event, EventKind, Finding, Record, Timestamp};
pub use pipeline::{EventBus, EventMetrics, Pipeline, PipelineBuilder};
pub use sink::{EventSink, SinkError};
pub use trigger::{NoResponder, Responder};
