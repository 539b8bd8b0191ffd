//! Hot reload: the config file is read again when it changes on disk and on SIGHUP. An
//! invalid new file is rejected with a logged error and the running config stays.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::Service;

/// Editors write a file in several steps; changes closer together than this are one reload.
const SETTLE: Duration = Duration::from_millis(150);

/// Watches the service's config file until `stopped` completes.
pub async fn watch(service: Arc<Service>, stopped: impl Future<Output = ()>) {
    let Some(path) = service.config_path().map(PathBuf::from) else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    // Watch the directory, not the file: editors and `kubectl` replace files by renaming,
    // which a watch on the old file would miss.
    let file_name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let file_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name)
        {
            let _ = file_tx.send("file changed");
        }
    });
    let _watcher = match watcher {
        Ok(mut w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config file; SIGHUP still reloads");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files; SIGHUP still reloads");
            None
        }
    };
    #[cfg(unix)]
    {
        let hup_tx = tx.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if hup_tx.send("SIGHUP").is_err() {
                        return;
                    }
                }
            });
        }
    }
    drop(tx);
    tokio::pin!(stopped);
    loop {
        let why = tokio::select! {
            _ = &mut stopped => return,
            why = rx.recv() => match why { Some(w) => w, None => return },
        };
        tokio::time::sleep(SETTLE).await;
        while rx.try_recv().is_ok() {}
        reload(&service, why);
    }
}

/// Reloads now, logging the outcome.
pub fn reload(service: &Service, why: &str) {
    match service.reload() {
        Some(Ok(notes)) => {
            let config = service.config();
            tracing::info!(why, policies = config.policies.len(), "config reloaded");
            for note in notes {
                tracing::warn!("{note}");
            }
        }
        Some(Err(e)) => tracing::error!(
            why,
            "config reload rejected, keeping the running config: {e}"
        ),
        None => {}
    }
}
