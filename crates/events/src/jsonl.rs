//! The JSON Lines sink: one record per line (`Record::to_json`, with `"record": "event" | "alert"`), appended
//! to a file that log shippers (Filebeat, Vector, Fluent Bit) tail.
//!
//! - Rotation: before a line would take the file past `max_size`, the file is renamed `path.1`, `path.1`
//!   becomes `path.2`, and so on; `keep` rotated files are kept (0: the full file is deleted). Rotation
//!   happens when the next line is written, so a full file stays in place (for shippers to finish reading)
//!   until then. A single line longer than `max_size` gets a file of its own.
//! - External rotation: when the file is moved or deleted under the sink (logrotate without
//!   `copytruncate`, an operator), the next batch goes to a new file at `path`; with `copytruncate` the
//!   appends go on at the new end.
//! - A batch is written with one `write` per file; if it fails midway, the partial tail is cut off again
//!   where possible so that a retried batch does not leave half a line behind.
//! - File I/O runs on the blocking thread pool, never on the async threads.

use crate::event::Record;
use crate::sink::{EventSink, SinkError};
use rampart_policy::events::JsonlSpec;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Appends records as JSON lines to a file, rotating it by size. See the module documentation.
pub struct JsonlSink {
    name: String,
    path: PathBuf,
    /// Shared with the blocking task that writes, so that a delivery whose future is dropped (a timeout)
    /// finishes its write before the next one starts.
    file: Arc<Mutex<JsonlFile>>,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JsonlSink {
    /// Creates the parent directories and opens (creating) the file in append mode. This does file I/O on
    /// the calling thread: call it at startup or from `spawn_blocking`.
    pub fn open(name: &str, spec: &JsonlSpec) -> Result<Self, SinkError> {
        let mut file = JsonlFile {
            path: spec.path.clone(),
            max_size: spec.max_size,
            keep: spec.keep,
            file: None,
        };
        file.current().map_err(|e| {
            SinkError::permanent(format!("jsonl sink {name}: cannot open {}: {e}", spec.path.display()))
        })?;
        Ok(JsonlSink {
            name: name.to_string(),
            path: spec.path.clone(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the `n`th rotated file (`path.n`).
    pub fn rotated_path(&self, n: usize) -> PathBuf {
        rotated(&self.path, n)
    }
}

impl EventSink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.to_vec();
        let file = self.file.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            file.write_batch(&batch)
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SinkError::transient(format!(
                "jsonl sink {}: writing {}: {e}",
                self.name,
                self.path.display()
            ))),
            Err(e) => Err(SinkError::transient(format!("jsonl sink {}: {e}", self.name))),
        }
    }

    async fn close(&mut self) {
        let file = self.file.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = file.file.take() {
                let _ = f.sync_data();
            }
        })
        .await;
    }
}

struct JsonlFile {
    path: PathBuf,
    /// 0: never rotate.
    max_size: u64,
    keep: usize,
    file: Option<File>,
}

impl JsonlFile {
    fn write_batch(&mut self, batch: &[Record]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        let mut ends = Vec::with_capacity(batch.len());
        for record in batch {
            serde_json::to_writer(&mut buf, &record.to_json()).map_err(io::Error::other)?;
            buf.push(b'\n');
            ends.push(buf.len());
        }
        let mut start = 0;
        let mut next_end = 0;
        while start < buf.len() {
            let size = self.current()?;
            // The lines that still fit in this file.
            let mut end = start;
            if self.max_size == 0 {
                end = buf.len();
                next_end = ends.len();
            } else {
                let room = self.max_size.saturating_sub(size);
                while next_end < ends.len() && (ends[next_end] - start) as u64 <= room {
                    end = ends[next_end];
                    next_end += 1;
                }
            }
            if end == start {
                if size > 0 {
                    self.rotate()?;
                    continue;
                }
                // A line longer than max_size, in an empty file: it goes alone.
                end = ends[next_end];
                next_end += 1;
            }
            self.append(&buf[start..end], size)?;
            start = end;
        }
        Ok(())
    }

    /// The open file's size, (re)opening `path` first when it is not open or no longer names the open file
    /// (moved or deleted from outside).
    fn current(&mut self) -> io::Result<u64> {
        if let Some(f) = &self.file {
            let ours = f.metadata()?;
            match std::fs::metadata(&self.path) {
                Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => return Ok(ours.len()),
                _ => self.file = None,
            }
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)?;
        let len = f.metadata()?.len();
        self.file = Some(f);
        Ok(len)
    }

    /// One write for `data`; on failure, cuts the file back to `size` (no half line left for the retry to
    /// follow) and drops the handle so that the next batch reopens.
    fn append(&mut self, data: &[u8], size: u64) -> io::Result<()> {
        let f = self.file.as_mut().expect("current() opened the file");
        let res = f.write_all(data).and_then(|()| f.flush());
        if res.is_err() {
            let _ = f.set_len(size);
            self.file = None;
        }
        res
    }

    /// `path.(keep-1)` -> `path.keep`, ..., `path` -> `path.1`; files past `keep` are deleted.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let ignore_missing = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        if self.keep == 0 {
            return ignore_missing(std::fs::remove_file(&self.path));
        }
        // Files left past `keep` (a smaller `keep` than before) go first.
        let mut n = self.keep;
        while rotated(&self.path, n).exists() {
            n += 1;
        }
        for i in (self.keep..n).rev() {
            ignore_missing(std::fs::remove_file(rotated(&self.path, i)))?;
        }
        for i in (1..self.keep).rev() {
            ignore_missing(std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1)))?;
        }
        ignore_missing(std::fs::rename(&self.path, rotated(&self.path, 1)))
    }
}

/// `path.n`
fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}
