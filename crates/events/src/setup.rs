//! From the compiled `[events]` settings to a running [`Pipeline`]: one sink per configured spec.

use crate::pipeline::{EventMetrics, Pipeline, PipelineBuilder};
use crate::sink::SinkError;
use crate::trigger::Responder;
use rampart_policy::events::{EventSettings, SinkKind};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("events sink `{sink}`: {error}")]
    Sink { sink: String, error: SinkError },
    #[error("cannot start the events thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Opens every configured sink (local files now; network sinks connect on first delivery, so a receiver
/// that is down at start costs a backlog, not the start) and starts the pipeline.
pub fn start(
    settings: &EventSettings,
    metrics: Arc<EventMetrics>,
    responder: Arc<dyn Responder>,
) -> Result<Pipeline, SetupError> {
    let mut b = PipelineBuilder::new(settings, metrics, responder);
    for spec in &settings.sinks {
        let err = |error| SetupError::Sink {
            sink: spec.name.clone(),
            error,
        };
        let name = spec.name.as_str();
        match &spec.kind {
            SinkKind::Sqlite(s) => {
                b.add_sink(spec, crate::sqlite::SqliteSink::open(name, s).map_err(err)?);
            }
            SinkKind::Jsonl(s) => {
                b.add_sink(spec, crate::jsonl::JsonlSink::open(name, s).map_err(err)?);
            }
            SinkKind::Syslog(s) => {
                b.add_sink(
                    spec,
                    crate::syslog::SyslogSink::new(name, s, spec.timeout).map_err(err)?,
                );
            }
            SinkKind::Webhook(s) => {
                b.add_sink(
                    spec,
                    crate::webhook::WebhookSink::new(name, s, spec.timeout).map_err(err)?,
                );
            }
            SinkKind::Slack(s) => {
                b.add_sink(
                    spec,
                    crate::webhook::SlackSink::new(name, s, spec.timeout).map_err(err)?,
                );
            }
            SinkKind::PagerDuty(s) => {
                b.add_sink(
                    spec,
                    crate::webhook::PagerDutySink::new(name, s, spec.timeout).map_err(err)?,
                );
            }
            SinkKind::Postgres(s) => {
                b.add_sink(
                    spec,
                    crate::postgres::PostgresSink::new(name, s, spec.timeout).map_err(err)?,
                );
            }
        }
    }
    Ok(b.start()?)
}
