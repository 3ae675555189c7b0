//! The [`EventSink`] trait: what the pipeline needs from a destination.
//!
//! The pipeline owns batching, buffering, retries and drop counting (see [`crate::pipeline`]); a sink only
//! delivers one batch and says whether a failure is worth retrying. Each sink runs in its own task, so a
//! slow sink delays nobody but itself.

use crate::event::Record;
use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: the receiver is down, slow, or asked us to back off (HTTP 429 / 5xx, I/O errors).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (HTTP 4xx other than 429, a record the receiver refuses): the batch is dropped.
    #[error("{0}")]
    Permanent(String),
}

impl SinkError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        SinkError::Transient(e.to_string())
    }

    pub fn permanent(e: impl std::fmt::Display) -> Self {
        SinkError::Permanent(e.to_string())
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, SinkError::Permanent(_))
    }
}

/// A destination for records. `deliver` either delivers the whole batch or fails; on a transient error the
/// pipeline calls it again later with the same batch (possibly grown by newer records), so a sink must not
/// keep partial state across calls that would duplicate what it already delivered where it can avoid it
/// (stores use the record id as a key and ignore duplicates).
pub trait EventSink: Send + 'static {
    /// The sink's configured name (metrics labels, logs).
    fn name(&self) -> &str;

    fn deliver(&mut self, batch: &[Record]) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Called when the pipeline shuts down, after the last delivery.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
