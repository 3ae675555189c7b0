//! The delivery pipeline: data plane -> intake queue -> dispatcher -> one buffer and one task per sink.
//!
//! ```text
//!  workers ──emit (try_send, never waits)──▶ intake (bounded) ──▶ dispatcher ──▶ sink buffer ──▶ sink task
//!                                                                  │ mask         (bounded,      batch, deliver,
//!                                                                  │ triggers      drop oldest)  retry w/ backoff
//!                                                                  ▼
//!                                                           alerts, actions
//! ```
//!
//! Nothing on the request path waits for a sink: [`EventBus::emit`] is a `try_send`; when the intake is
//! full the event is dropped and counted. Each sink has its own bounded buffer and task, so one slow or dead
//! sink costs only its own backlog: when its buffer is full the oldest records are dropped and counted; a
//! batch that keeps failing is retried with exponential backoff up to `max_attempts`, then dropped and
//! counted. All of it runs on one dedicated thread with its own small runtime, away from the traffic.

use crate::event::{Event, Record};
use crate::filter;
use crate::mask;
use crate::sink::{EventSink, SinkError};
use crate::trigger::{self, Responder, TriggerEngine};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rampart_policy::events::{EventSettings, SinkKind, SinkSpec, TriggerSpec};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};

/// `sink="..."`, `reason="..."`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct DropLabels {
    pub sink: Arc<str>,
    pub reason: &'static str,
}

impl EncodeLabelSet for DropLabels {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("sink", &*self.sink).encode(encoder.encode_label())?;
        ("reason", self.reason).encode(encoder.encode_label())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct NameLabel(pub &'static str, pub Arc<str>);

impl EncodeLabelSet for NameLabel {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        (self.0, &*self.1).encode(encoder.encode_label())
    }
}

/// Why records were dropped (the `reason` label of `rampart_events_dropped_total`).
pub mod drop_reason {
    /// The intake queue was full: the dispatcher fell behind the data plane.
    pub const QUEUE_FULL: &str = "queue_full";
    /// A sink's buffer was full (the sink is slow or down): its oldest records made room.
    pub const BUFFER_FULL: &str = "buffer_full";
    /// A batch failed `max_attempts` times.
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    /// The sink refused the batch for good (e.g. HTTP 400).
    pub const REJECTED: &str = "rejected";
    /// Still undelivered when the process shut down.
    pub const SHUTDOWN: &str = "shutdown";
}

pub struct EventMetrics {
    pub emitted: Counter,
    pub dropped: Family<DropLabels, Counter>,
    pub delivered: Family<NameLabel, Counter>,
    pub sink_errors: Family<NameLabel, Counter>,
    pub buffered: Family<NameLabel, Gauge>,
    pub alerts: Family<NameLabel, Counter>,
}

impl EventMetrics {
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Self::unregistered();
        registry.register(
            "rampart_events_emitted",
            "Events handed to the pipeline by the data plane",
            m.emitted.clone(),
        );
        registry.register(
            "rampart_events_dropped",
            "Records dropped before delivery, by sink and reason",
            m.dropped.clone(),
        );
        registry.register(
            "rampart_events_delivered",
            "Records delivered, by sink",
            m.delivered.clone(),
        );
        registry.register(
            "rampart_events_sink_errors",
            "Failed delivery attempts, by sink",
            m.sink_errors.clone(),
        );
        registry.register(
            "rampart_events_buffered",
            "Records waiting in a sink's buffer",
            m.buffered.clone(),
        );
        registry.register("rampart_alerts", "Alerts raised, by trigger", m.alerts.clone());
        Arc::new(m)
    }

    /// Metrics that no registry exposes (tests, tools).
    pub fn unregistered() -> Self {
        EventMetrics {
            emitted: Counter::default(),
            dropped: Family::default(),
            delivered: Family::default(),
            sink_errors: Family::default(),
            buffered: Family::default(),
            alerts: Family::default(),
        }
    }

    pub fn dropped_count(&self, sink: &str, reason: &'static str) -> u64 {
        self.dropped
            .get_or_create(&DropLabels {
                sink: Arc::from(sink),
                reason,
            })
            .get()
    }

    pub fn delivered_count(&self, sink: &str) -> u64 {
        self.delivered.get_or_create(&NameLabel("sink", Arc::from(sink))).get()
    }

    fn drop_n(&self, sink: &Arc<str>, reason: &'static str, n: usize) {
        self.dropped
            .get_or_create(&DropLabels {
                sink: sink.clone(),
                reason,
            })
            .inc_by(n as u64);
    }
}

/// The data plane's handle: cheap to clone, never blocks.
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Option<Arc<BusInner>>,
}

struct BusInner {
    tx: mpsc::Sender<Event>,
    metrics: Arc<EventMetrics>,
    /// The `sink="-", reason="queue_full"` counter, resolved once.
    queue_full: Counter,
}

impl EventBus {
    /// A bus that drops everything (the proxy without an events pipeline).
    pub fn disabled() -> Self {
        EventBus { inner: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Hands an event to the pipeline, or drops and counts it when the intake is full. Never waits.
    pub fn emit(&self, e: Event) {
        let Some(inner) = &self.inner else { return };
        match inner.tx.try_send(e) {
            Ok(()) => {
                inner.metrics.emitted.inc();
            }
            Err(_) => {
                inner.queue_full.inc();
            }
        }
    }
}

/// One sink's buffer, shared by the dispatcher (pushes) and the sink's task (takes batches).
struct SinkQueue {
    name: Arc<str>,
    spec: SinkSpec,
    records: Mutex<VecDeque<Record>>,
    notify: Notify,
    metrics: Arc<EventMetrics>,
}

impl SinkQueue {
    fn push(&self, r: Record) {
        let mut dropped = 0;
        let len = {
            let mut q = self.records.lock().unwrap_or_else(|p| p.into_inner());
            while q.len() >= self.spec.buffer {
                q.pop_front();
                dropped += 1;
            }
            q.push_back(r);
            q.len()
        };
        if dropped > 0 {
            self.metrics.drop_n(&self.name, drop_reason::BUFFER_FULL, dropped);
        }
        self.gauge().set(len as i64);
        self.notify.notify_one();
    }

    fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn take(&self, n: usize) -> Vec<Record> {
        let (batch, left) = {
            let mut q = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let n = n.min(q.len());
            (q.drain(..n).collect::<Vec<_>>(), q.len())
        };
        self.gauge().set(left as i64);
        batch
    }

    fn gauge(&self) -> Gauge {
        self.metrics
            .buffered
            .get_or_create(&NameLabel("sink", self.name.clone()))
            .clone()
    }

    /// Alerts go to the sinks a trigger names, and to every record-keeping sink that takes alerts.
    fn wants_alert(&self, notify: &[String]) -> bool {
        if !self.spec.deliver.alerts() {
            return false;
        }
        let keeper = matches!(
            self.spec.kind,
            SinkKind::Sqlite(_) | SinkKind::Jsonl(_) | SinkKind::Postgres(_) | SinkKind::Syslog(_)
        );
        keeper || notify.iter().any(|n| **n == *self.name)
    }
}

type WorkerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type SpawnWorker = Box<dyn FnOnce(Arc<SinkQueue>, watch::Receiver<bool>) -> WorkerFuture + Send>;

/// Assembles a pipeline: settings, then one sink per configured spec, then [`PipelineBuilder::start`].
pub struct PipelineBuilder {
    settings: EventSettings,
    metrics: Arc<EventMetrics>,
    responder: Arc<dyn Responder>,
    sinks: Vec<(SinkSpec, SpawnWorker)>,
}

impl PipelineBuilder {
    pub fn new(settings: &EventSettings, metrics: Arc<EventMetrics>, responder: Arc<dyn Responder>) -> Self {
        PipelineBuilder {
            settings: settings.clone(),
            metrics,
            responder,
            sinks: Vec::new(),
        }
    }

    /// Adds a sink under `spec` (its name, buffer, batch and retry settings).
    pub fn add_sink<S: EventSink>(&mut self, spec: &SinkSpec, sink: S) -> &mut Self {
        let spawn: SpawnWorker = Box::new(move |q, closing| Box::pin(run_sink(sink, q, closing)));
        self.sinks.push((spec.clone(), spawn));
        self
    }

    /// Starts the events thread. Returns the running pipeline and the bus the data plane emits into.
    pub fn start(self) -> std::io::Result<Pipeline> {
        let (tx, rx) = mpsc::channel(self.settings.queue);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (closing_tx, closing_rx) = watch::channel(false);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let queues: Vec<Arc<SinkQueue>> = self
            .sinks
            .iter()
            .map(|(spec, _)| {
                Arc::new(SinkQueue {
                    name: Arc::from(spec.name.as_str()),
                    spec: spec.clone(),
                    records: Mutex::new(VecDeque::new()),
                    notify: Notify::new(),
                    metrics: self.metrics.clone(),
                })
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let metrics = self.metrics.clone();
        let queue_full = metrics
            .dropped
            .get_or_create(&DropLabels {
                sink: Arc::from("-"),
                reason: drop_reason::QUEUE_FULL,
            })
            .clone();
        let dispatcher = Dispatcher {
            node: self.settings.node.clone(),
            queues: queues.clone(),
            triggers: TriggerEngine::new(&self.settings.triggers),
            responder: self.responder,
            metrics: metrics.clone(),
        };
        let workers: Vec<(Arc<SinkQueue>, SpawnWorker)> =
            queues.into_iter().zip(self.sinks).map(|(q, (_, w))| (q, w)).collect();
        let thread = std::thread::Builder::new()
            .name("rampart-events".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut tasks = Vec::new();
                    for (q, spawn) in workers {
                        tasks.push(tokio::spawn(spawn(q, closing_rx.clone())));
                    }
                    dispatcher.run(rx, ctl_rx).await;
                    let _ = closing_tx.send(true);
                    for t in tasks {
                        let _ = t.await;
                    }
                });
                let _ = done_tx.send(());
            })?;
        Ok(Pipeline {
            bus: EventBus {
                inner: Some(Arc::new(BusInner {
                    tx,
                    queue_full,
                    metrics,
                })),
            },
            control: ctl_tx,
            done: Mutex::new(Some(done_rx)),
            thread: Mutex::new(Some(thread)),
        })
    }
}

enum Control {
    Triggers(Vec<TriggerSpec>),
    Close,
}

/// A running pipeline. Dropping it without [`Pipeline::shutdown`] leaves the thread running until the
/// process exits.
pub struct Pipeline {
    bus: EventBus,
    control: mpsc::UnboundedSender<Control>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Pipeline {
    pub fn bus(&self) -> EventBus {
        self.bus.clone()
    }

    /// Replaces the triggers (a reload); triggers whose spec did not change keep their counts.
    pub fn update_triggers(&self, specs: &[TriggerSpec]) {
        let _ = self.control.send(Control::Triggers(specs.to_vec()));
    }

    /// Stops taking events, delivers what is buffered (one attempt per batch, no backoff), and waits up to
    /// `grace` for the sinks to finish. Returns whether everything finished in time.
    pub fn shutdown(&self, grace: Duration) -> bool {
        let _ = self.control.send(Control::Close);
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        let finished = done.is_some_and(|d| d.recv_timeout(grace).is_ok());
        if finished {
            if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = t.join();
            }
        }
        finished
    }
}

struct Dispatcher {
    node: String,
    queues: Vec<Arc<SinkQueue>>,
    triggers: TriggerEngine,
    responder: Arc<dyn Responder>,
    metrics: Arc<EventMetrics>,
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut ctl: mpsc::UnboundedReceiver<Control>) {
        loop {
            tokio::select! {
                biased;
                c = ctl.recv() => match c {
                    Some(Control::Triggers(specs)) => self.triggers.update(&specs),
                    Some(Control::Close) | None => break,
                },
                e = rx.recv() => match e {
                    Some(e) => self.dispatch(e),
                    None => break,
                },
            }
        }
        // Take what is already queued, then stop.
        rx.close();
        while let Ok(e) = rx.try_recv() {
            self.dispatch(e);
        }
    }

    fn dispatch(&mut self, mut e: Event) {
        if e.node.is_empty() {
            e.node.clone_from(&self.node);
        }
        mask::mask_event(&mut e);
        let firings = if self.triggers.is_empty() {
            Vec::new()
        } else {
            self.triggers.observe(&e, Instant::now())
        };
        self.route_event(e);
        for f in firings {
            let out = trigger::act(&f, &self.node, &*self.responder);
            let mut alert = out.alert;
            mask::mask_alert(&mut alert);
            self.metrics
                .alerts
                .get_or_create(&NameLabel("trigger", Arc::from(alert.trigger.as_str())))
                .inc();
            tracing::warn!(trigger = %alert.trigger, key = %alert.key, count = alert.count, actions = ?alert.actions, "trigger fired");
            let rec = Record::Alert(Arc::new(alert));
            for q in &self.queues {
                if q.wants_alert(&f.spec.notify) {
                    q.push(rec.clone());
                }
            }
            // Behaviour events of the actions (a ban) go to the sinks but not back into the triggers: a
            // trigger counting its own consequences would feed itself.
            for mut ev in out.events {
                mask::mask_event(&mut ev);
                self.route_event(ev);
            }
        }
    }

    fn route_event(&self, e: Event) {
        let rec = Record::Event(Arc::new(e));
        let Record::Event(ev) = &rec else { unreachable!() };
        for q in &self.queues {
            if q.spec.deliver.events() && filter::matches(&q.spec.filter, ev) {
                q.push(rec.clone());
            }
        }
    }
}

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

async fn run_sink<S: EventSink>(mut sink: S, q: Arc<SinkQueue>, mut closing: watch::Receiver<bool>) {
    let batch_size = q.spec.batch_size;
    loop {
        let is_closing = *closing.borrow();
        if q.len() == 0 {
            if is_closing {
                break;
            }
            tokio::select! {
                _ = q.notify.notified() => {}
                _ = closing.changed() => {}
            }
            continue;
        }
        // Let a batch fill for up to flush_interval, unless it is full already or we are closing.
        if !is_closing && q.len() < batch_size {
            let deadline = tokio::time::Instant::now() + q.spec.flush_interval;
            while q.len() < batch_size {
                tokio::select! {
                    _ = q.notify.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = closing.changed() => break,
                }
            }
        }
        let batch = q.take(batch_size);
        deliver(&mut sink, &q, &batch, &mut closing).await;
    }
    sink.close().await;
}

/// Delivers one batch, retrying transient failures with exponential backoff.
async fn deliver<S: EventSink>(sink: &mut S, q: &SinkQueue, batch: &[Record], closing: &mut watch::Receiver<bool>) {
    let metrics = &q.metrics;
    // The sink's own timeout bounds each attempt; this outer one guards against a sink that forgets to.
    let attempt_limit = q.spec.timeout * 2 + Duration::from_secs(1);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = match tokio::time::timeout(attempt_limit, sink.deliver(batch)).await {
            Ok(r) => r,
            Err(_) => Err(SinkError::Transient("delivery timed out".into())),
        };
        let err = match result {
            Ok(()) => {
                metrics
                    .delivered
                    .get_or_create(&NameLabel("sink", q.name.clone()))
                    .inc_by(batch.len() as u64);
                return;
            }
            Err(e) => e,
        };
        metrics
            .sink_errors
            .get_or_create(&NameLabel("sink", q.name.clone()))
            .inc();
        if err.is_permanent() {
            tracing::warn!(sink = %q.name, error = %err, records = batch.len(), "sink refused a batch; dropped");
            metrics.drop_n(&q.name, drop_reason::REJECTED, batch.len());
            return;
        }
        if *closing.borrow() {
            tracing::warn!(sink = %q.name, error = %err, records = batch.len(), "sink failed during shutdown; dropped");
            metrics.drop_n(&q.name, drop_reason::SHUTDOWN, batch.len());
            return;
        }
        if attempt >= q.spec.max_attempts {
            tracing::warn!(sink = %q.name, error = %err, attempts = attempt, records = batch.len(), "sink failed; batch dropped");
            metrics.drop_n(&q.name, drop_reason::RETRIES_EXHAUSTED, batch.len());
            return;
        }
        if attempt == 1 {
            tracing::warn!(sink = %q.name, error = %err, "sink delivery failed; retrying with backoff");
        }
        let backoff = BACKOFF_FIRST
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = closing.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, EventKind};
    use crate::trigger::NoResponder;
    use rampart_policy::events::{Deliver, EventFilter, SqliteSpec};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A sink that records what it receives and can be switched down.
    #[derive(Clone, Default)]
    struct Probe {
        got: Arc<Mutex<Vec<Record>>>,
        down: Arc<AtomicBool>,
        attempts: Arc<AtomicUsize>,
        permanent: bool,
    }

    impl EventSink for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(if self.permanent {
                    SinkError::Permanent("no".into())
                } else {
                    SinkError::Transient("down".into())
                });
            }
            self.got.lock().unwrap().extend(batch.iter().cloned());
            Ok(())
        }
    }

    fn spec(name: &str, buffer: usize, max_attempts: u32) -> SinkSpec {
        SinkSpec {
            name: name.into(),
            deliver: Deliver::All,
            filter: EventFilter::default(),
            buffer,
            batch_size: 10,
            flush_interval: Duration::from_millis(20),
            max_attempts,
            timeout: Duration::from_secs(1),
            kind: SinkKind::Sqlite(SqliteSpec {
                path: "unused".into(),
                retention: Duration::from_secs(1),
                max_size: 1,
            }),
        }
    }

    fn settings(queue: usize) -> EventSettings {
        EventSettings {
            node: "test-node".into(),
            queue,
            sinks: vec![],
            triggers: vec![],
        }
    }

    fn event(i: usize) -> Event {
        let mut e = Event::new(EventKind::Request, Action::Block);
        e.client_ip = format!("10.0.0.{}", i % 250);
        e.path = format!("/p/{i}?password=hunter2");
        e
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn events_arrive_masked_with_node() {
        let probe = Probe::default();
        let metrics = Arc::new(EventMetrics::unregistered());
        let mut b = PipelineBuilder::new(&settings(100), metrics.clone(), Arc::new(NoResponder));
        b.add_sink(&spec("a", 100, 3), probe.clone());
        let p = b.start().unwrap();
        for i in 0..25 {
            p.bus().emit(event(i));
        }
        wait_until("25 delivered", || probe.got.lock().unwrap().len() == 25);
        let got = probe.got.lock().unwrap();
        let Record::Event(e) = &got[3] else { panic!() };
        assert_eq!(e.node, "test-node");
        assert_eq!(e.path, "/p/3?password=***");
        assert_eq!(metrics.delivered_count("a"), 25);
        drop(got);
        assert!(p.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_dead_sink_drops_oldest_with_counters_and_resumes() {
        let probe = Probe::default();
        probe.down.store(true, Ordering::SeqCst);
        let healthy = Probe::default();
        let metrics = Arc::new(EventMetrics::unregistered());
        let mut b = PipelineBuilder::new(&settings(10_000), metrics.clone(), Arc::new(NoResponder));
        b.add_sink(&spec("dead", 50, 1000), probe.clone());
        b.add_sink(&spec("ok", 10_000, 3), healthy.clone());
        let p = b.start().unwrap();
        for i in 0..500 {
            p.bus().emit(event(i));
        }
        // The healthy sink is not held back by the dead one.
        wait_until("healthy got all", || healthy.got.lock().unwrap().len() == 500);
        // The dead one holds one batch in hand (10) plus its buffer (50); the rest was dropped, oldest first.
        wait_until("drops counted", || {
            metrics.dropped_count("dead", drop_reason::BUFFER_FULL) == 500 - 50 - 10
        });
        probe.down.store(false, Ordering::SeqCst);
        wait_until("resumed", || probe.got.lock().unwrap().len() == 60);
        let got = probe.got.lock().unwrap();
        // The newest survived.
        let Record::Event(last) = got.last().unwrap() else {
            panic!()
        };
        assert!(last.path.starts_with("/p/499"));
        drop(got);
        assert!(probe.attempts.load(Ordering::SeqCst) > 2, "it retried");
        assert!(p.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn retries_are_bounded_and_permanent_errors_drop_at_once() {
        let flaky = Probe::default();
        flaky.down.store(true, Ordering::SeqCst);
        let refusing = Probe {
            permanent: true,
            ..Probe::default()
        };
        refusing.down.store(true, Ordering::SeqCst);
        let metrics = Arc::new(EventMetrics::unregistered());
        let mut b = PipelineBuilder::new(&settings(100), metrics.clone(), Arc::new(NoResponder));
        b.add_sink(&spec("flaky", 100, 2), flaky.clone());
        b.add_sink(&spec("refusing", 100, 5), refusing.clone());
        let p = b.start().unwrap();
        for i in 0..5 {
            p.bus().emit(event(i));
        }
        wait_until("retries exhausted", || {
            metrics.dropped_count("flaky", drop_reason::RETRIES_EXHAUSTED) == 5
        });
        wait_until("rejected", || {
            metrics.dropped_count("refusing", drop_reason::REJECTED) == 5
        });
        assert_eq!(flaky.attempts.load(Ordering::SeqCst), 2);
        assert_eq!(refusing.attempts.load(Ordering::SeqCst), 1);
        assert!(p.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_full_intake_drops_and_counts_without_waiting() {
        // A sink that never finishes its first delivery keeps the dispatcher's buffers full.
        struct Stuck;
        impl EventSink for Stuck {
            fn name(&self) -> &str {
                "stuck"
            }
            async fn deliver(&mut self, _: &[Record]) -> Result<(), SinkError> {
                std::future::pending().await
            }
        }
        let metrics = Arc::new(EventMetrics::unregistered());
        let mut b = PipelineBuilder::new(&settings(8), metrics.clone(), Arc::new(NoResponder));
        b.add_sink(&spec("stuck", 5, 1), Stuck);
        let p = b.start().unwrap();
        let t = Instant::now();
        for i in 0..100_000 {
            p.bus().emit(event(i));
        }
        assert!(t.elapsed() < Duration::from_secs(5), "emit never waits");
        let dropped = metrics.dropped_count("-", drop_reason::QUEUE_FULL)
            + metrics.dropped_count("stuck", drop_reason::BUFFER_FULL);
        assert!(dropped > 0);
        assert_eq!(
            metrics.emitted.get() + metrics.dropped_count("-", drop_reason::QUEUE_FULL),
            100_000
        );
    }
}
