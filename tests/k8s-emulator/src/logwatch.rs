//! One inotify watcher for every container log file, waking the follow
//! streams of a container when its file is written, created or moved.
//!
//! Directories are watched rather than files, so a log file that is
//! replaced (restart, rotation by a test) stays watched. Tests that append
//! through [`crate::Emulator::append_log`] wake readers directly; this
//! watcher covers tests and tools that write the files themselves. If
//! inotify is unavailable the follow streams fall back to their 1 s check.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use inotify::{Inotify, WatchDescriptor, WatchMask};
use tokio::sync::watch;

use crate::pods::LogSignals;

type Interested = HashMap<WatchDescriptor, Vec<(OsString, Arc<LogSignals>)>>;

/// Starts the watcher task; logs and returns without one on failure.
pub fn spawn(files: Vec<(PathBuf, Arc<LogSignals>)>, mut shutdown: watch::Receiver<bool>) {
    let (inotify, interested) = match setup(files) {
        Ok(ok) => ok,
        Err(error) => {
            tracing::warn!(%error, "inotify unavailable; log follow falls back to a 1 s check");
            return;
        }
    };
    let mut events = match inotify.into_event_stream([0u8; 4096]) {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "inotify stream unavailable; log follow falls back to a 1 s check");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        let Some(watched) = interested.get(&event.wd) else { continue };
                        for (name, signals) in watched {
                            if event.name.as_deref() == Some(name.as_os_str()) {
                                signals.notify_changed();
                            }
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "inotify read failed; stopping the log watcher");
                        return;
                    }
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    });
}

fn setup(files: Vec<(PathBuf, Arc<LogSignals>)>) -> std::io::Result<(Inotify, Interested)> {
    let inotify = Inotify::init()?;
    let mut interested: Interested = HashMap::new();
    let mask = WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE;
    for (path, signals) in files {
        let Some(name) = path.file_name() else {
            continue;
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let wd = inotify.watches().add(dir, mask)?;
        interested
            .entry(wd)
            .or_default()
            .push((name.to_owned(), signals));
    }
    Ok((inotify, interested))
}
