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

/// Watches the service's config file, and listens for SIGHUP, until `stopped` completes.
///
/// Both are set up before this returns, not when the future first runs: a server that
/// answers is a server a SIGHUP reloads (the default action of SIGHUP would end the process)
/// and whose file edits are seen.
pub fn watch(
    service: Arc<Service>,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let watcher = service
        .config_path()
        .and_then(|path| watch_file(&PathBuf::from(path), tx.clone()));
    #[cfg(unix)]
    forward_hangups(tx.clone());
    drop(tx);
    async move {
        let _watcher = watcher;
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
}

/// A watch on the config file's directory that sends "file changed" on `tx`; `None` (logged)
/// when the platform cannot watch it.
fn watch_file(
    path: &std::path::Path,
    tx: mpsc::UnboundedSender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    // Watch the directory, not the file: editors and `kubectl` replace files by renaming,
    // which a watch on the old file would miss.
    let file_name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name)
        {
            let _ = tx.send("file changed");
        }
    });
    match watcher {
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
    }
}

/// Sends "SIGHUP" on `tx` for each SIGHUP, from a task of its own; the handler is installed
/// before this returns.
#[cfg(unix)]
fn forward_hangups(tx: mpsc::UnboundedSender<&'static str>) {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if tx.send("SIGHUP").is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
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
        None => tracing::info!(why, "no config file to reload"),
    }
}
