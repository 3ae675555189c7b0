//! Config reload: on a change of the file and on SIGHUP, compile the file off the async workers and swap it
//! in; a file that does not compile is logged and the running config stays.

use crate::runtime::Shared;
use notify::{RecursiveMode, Watcher};
use rampart_policy::ConfigErrors;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Compiles `path` on the blocking pool and installs it. Returns the new generation.
pub async fn reload_now(shared: &Arc<Shared>, path: &Path) -> Result<u64, ConfigErrors> {
    let p = path.to_path_buf();
    let compiled = tokio::task::spawn_blocking(move || rampart_policy::load_file(&p))
        .await
        .expect("config compilation does not panic");
    let shared = shared.clone();
    // Building the runtime spawns health-check tasks, so it runs on the async side; it does no I/O.
    shared.install(compiled?)
}

async fn reload_and_log(shared: &Arc<Shared>, path: &Path, trigger: &str) {
    match reload_now(shared, path).await {
        Ok(generation) => tracing::info!(trigger, generation, file = %path.display(), "config reloaded"),
        Err(errors) => {
            for d in &errors.0 {
                tracing::error!(trigger, file = %d.file.display(), line = d.line, column = d.column, hint = d.hint.as_deref().unwrap_or(""), "config refused, running config kept: {}", d.message);
            }
        }
    }
}

/// Watches `path` (through its directory, so editors that replace the file are seen) and listens for
/// SIGHUP; each event triggers a reload. Bursts of file events within 200 ms count once.
pub fn spawn_reloader(shared: Arc<Shared>, path: PathBuf) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(16);
    let file_name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let watch_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        if event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name)
        {
            let _ = watch_tx.try_send("file");
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    #[cfg(unix)]
    {
        let tx = tx.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = tx.send("sighup").await;
            }
        });
    }

    Ok(tokio::spawn(async move {
        let _watcher = watcher; // lives as long as the task
        while let Some(trigger) = rx.recv().await {
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            reload_and_log(&shared, &path, trigger).await;
        }
    }))
}
