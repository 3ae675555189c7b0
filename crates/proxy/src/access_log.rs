//! The access log: one JSON object per request, written in batches by a dedicated thread.
//!
//! Why not a `tracing` event per request: formatting through the subscriber and waking the log writer for
//! every line cost more than a third of the proxy's throughput. Here each worker thread appends lines to its
//! own buffer and hands a full buffer (or, every 100 ms, whatever it holds) to the writer thread, so the
//! hot path does a few hundred bytes of formatting and no locking or waking. When the writer falls behind
//! (a slow disk or a blocked pipe), whole batches are dropped and counted, never waited for.
//! Diagnostics (errors, reloads, health changes) still go through `tracing`.

use prometheus_client::metrics::counter::Counter;
use std::cell::RefCell;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

const BATCH_BYTES: usize = 32 * 1024;
/// Batches in flight to the writer before new ones are dropped (~4 MiB).
const QUEUE_BATCHES: usize = 128;

thread_local! {
    static BUFFER: RefCell<Batch> = RefCell::new(Batch { bytes: Vec::with_capacity(BATCH_BYTES + 1024), lines: 0 });
}

struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    /// Lines dropped because the writer could not keep up (`rampart_access_log_dropped_lines_total`).
    dropped_lines: Counter,
}

impl AccessLog {
    /// An access log written to `out` (stdout for the binary) by a thread of its own.
    pub fn new(mut out: impl Write + Send + 'static, dropped_lines: Counter) -> std::io::Result<AccessLog> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE_BATCHES);
        std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    if out.write_all(&batch).and_then(|_| out.flush()).is_err() {
                        // Nowhere to write to (stdout closed): keep draining so senders never block.
                        continue;
                    }
                }
            })?;
        Ok(AccessLog { tx, dropped_lines })
    }

    /// Appends one line, written by `write` (which must not write a newline), to this thread's batch.
    pub fn record(&self, write: impl FnOnce(&mut Vec<u8>)) {
        BUFFER.with(|b| {
            let mut b = b.borrow_mut();
            write(&mut b.bytes);
            b.bytes.push(b'\n');
            b.lines += 1;
            if b.bytes.len() >= BATCH_BYTES {
                self.ship(&mut b);
            }
        });
    }

    /// Hands this thread's pending lines to the writer (called periodically by each worker).
    pub fn flush_thread(&self) {
        BUFFER.with(|b| {
            let mut b = b.borrow_mut();
            if !b.bytes.is_empty() {
                self.ship(&mut b);
            }
        });
    }

    fn ship(&self, b: &mut Batch) {
        let lines = std::mem::take(&mut b.lines);
        let full = std::mem::replace(&mut b.bytes, Vec::with_capacity(BATCH_BYTES + 1024));
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(full) {
            self.dropped_lines.inc_by(lines);
        }
    }
}

/// Writes `s` as a JSON string (quoted and escaped).
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_batched_and_flushed() {
        let sink = Sink::default();
        let log = AccessLog::new(sink.clone(), Counter::default()).unwrap();
        log.record(|b| {
            b.extend_from_slice(b"{\"path\":");
            json_str(b, "/a\"b\n");
            b.push(b'}');
        });
        assert!(sink.0.lock().unwrap().is_empty(), "a short line waits for the batch");
        log.flush_thread();
        for _ in 0..100 {
            if !sink.0.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written, "{\"path\":\"/a\\\"b\\n\"}\n");
        let v: serde_json::Value = serde_json::from_str(written.trim()).unwrap();
        assert_eq!(v["path"], "/a\"b\n");
    }
}
