//! Waking a reader when its file may have changed.
//!
//! inotify (through `notify`) watches folders, not the file: renames, deletions and
//! re-creations are seen too. When the configured path is a symlink, the folder of every
//! link on the way to the real file is watched as well (writes land in the target's
//! folder, re-pointing happens in the link's), and the set is worked out again at every
//! check, so a re-pointed link moves the watches with it. A queue overflow (`Rescan`), an
//! event without paths and a watcher error all wake the reader: it then checks everything,
//! which is never wrong, only a little work. The reader also checks on a timer
//! (`tail.poll_interval`), because some writes wake nothing (a rotated file moved to a
//! folder nobody watches, an unlinked file, a watch that could not be made).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, Watcher};
use tokio::sync::mpsc;

/// Links followed at most from the configured path to the file (as the kernel's 40).
const MAX_LINKS: usize = 40;

/// What makes an event worth a check; shared with the watcher's thread.
#[derive(Debug, Default)]
struct Interest {
    /// File names along the symlink chain (the configured one first).
    names: Mutex<Vec<OsString>>,
    /// A rotated file is still being read: its new name is unknown, so every change in
    /// the watched folders counts.
    any: AtomicBool,
}

impl Interest {
    fn names(&self) -> std::sync::MutexGuard<'_, Vec<OsString>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watches of one reader.
pub struct Wakeups {
    watcher: Option<notify::RecommendedWatcher>,
    /// Folders watched now.
    folders: Vec<PathBuf>,
    interest: Arc<Interest>,
}

impl Wakeups {
    /// Watches the folders of `path` (and of its symlink targets); each relevant event puts
    /// a wake-up in `wake`. [`Wakeups::watching`] says whether inotify could be used.
    pub fn new(path: &Path, wake: mpsc::Sender<()>) -> Self {
        let interest = Arc::new(Interest::default());
        let shared = interest.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = relevant(&event, &shared.names(), shared.any.load(Ordering::SeqCst));
            if relevant {
                // A full channel already holds a wake-up: the reader reads everything new.
                let _ = wake.try_send(());
            }
        })
        .ok();
        let mut wakeups = Self {
            watcher,
            folders: Vec::new(),
            interest,
        };
        wakeups.refresh(path);
        wakeups
    }

    /// Whether at least one folder is watched; if not, only the timer wakes the reader.
    pub fn watching(&self) -> bool {
        self.watcher.is_some() && !self.folders.is_empty()
    }

    /// Every change in the watched folders counts while a rotated file is still read.
    pub fn wake_on_any_change(&self, any: bool) {
        self.interest.any.store(any, Ordering::SeqCst);
    }

    /// Works out the symlink chain again and moves the watches to its folders.
    pub fn refresh(&mut self, path: &Path) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let chain = symlink_chain(path);
        let mut wanted: Vec<PathBuf> = Vec::new();
        for link in &chain {
            let folder = folder_of(link);
            if !wanted.contains(&folder) {
                wanted.push(folder);
            }
        }
        *self.interest.names() = chain
            .iter()
            .filter_map(|p| p.file_name().map(ToOwned::to_owned))
            .collect();
        self.folders.retain(|folder| {
            let keep = wanted.contains(folder);
            if !keep {
                let _ = watcher.unwatch(folder);
            }
            keep
        });
        for folder in wanted {
            if !self.folders.contains(&folder)
                && watcher
                    .watch(&folder, notify::RecursiveMode::NonRecursive)
                    .is_ok()
            {
                self.folders.push(folder);
            }
        }
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `path`, then each symlink's target in turn (relative targets taken from the link's
/// folder), ending with the file itself, which may not exist.
pub fn symlink_chain(path: &Path) -> Vec<PathBuf> {
    let mut chain = vec![path.to_owned()];
    while chain.len() <= MAX_LINKS {
        let link = chain.last().expect("the chain starts with the path");
        let Ok(target) = std::fs::read_link(link) else {
            break;
        };
        let next = if target.is_absolute() {
            target
        } else {
            folder_of(link).join(target)
        };
        if chain.contains(&next) {
            break;
        }
        chain.push(next);
    }
    chain
}

/// Whether an event may concern the followed file. `names` are the file names along the
/// symlink chain; `any` counts every change (a rotated file is still being read).
fn relevant(event: &notify::Result<notify::Event>, names: &[OsString], any: bool) -> bool {
    let event = match event {
        Ok(event) => event,
        // The watcher lost track of something: check everything.
        Err(_) => return true,
    };
    if event.need_rescan() || event.paths.is_empty() {
        return true;
    }
    // Opening and reading (ours included) change nothing; closing after a write may.
    if let EventKind::Access(access) = event.kind
        && access != AccessKind::Close(AccessMode::Write)
    {
        return false;
    }
    any || event
        .paths
        .iter()
        .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, Flag, ModifyKind};
    use notify::{Event, EventKind};

    fn names() -> Vec<OsString> {
        vec!["app.log".into(), "real.log".into()]
    }

    #[test]
    fn an_overflow_an_event_without_paths_and_an_error_wake_the_reader() {
        let rescan = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(relevant(&Ok(rescan), &names(), false));
        let no_paths = Event::new(EventKind::Modify(ModifyKind::Any));
        assert!(relevant(&Ok(no_paths), &names(), false));
        let error = notify::Error::generic("inotify queue overflow");
        assert!(relevant(&Err(error), &names(), false));
    }

    #[test]
    fn events_about_any_name_along_the_link_chain_wake_the_reader() {
        let modify = |path: &str| {
            Event::new(EventKind::Modify(ModifyKind::Any)).add_path(PathBuf::from(path))
        };
        assert!(relevant(&Ok(modify("/a/app.log")), &names(), false));
        assert!(relevant(&Ok(modify("/b/real.log")), &names(), false));
        assert!(!relevant(&Ok(modify("/a/other.log")), &names(), false));
        // While a rotated file is read, whatever its new name is.
        assert!(relevant(&Ok(modify("/a/app.log.1")), &names(), true));
        let create = Event::new(EventKind::Create(CreateKind::File)).add_path("/a/app.log".into());
        assert!(relevant(&Ok(create), &names(), false));
    }

    #[test]
    fn opening_and_reading_the_file_does_not_wake_the_reader() {
        let open = Event::new(EventKind::Access(AccessKind::Open(AccessMode::Any)))
            .add_path("/a/app.log".into());
        assert!(!relevant(&Ok(open), &names(), true));
        let written = Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
            .add_path("/a/app.log".into());
        assert!(relevant(&Ok(written), &names(), false));
    }

    #[test]
    fn the_chain_follows_relative_and_absolute_links_to_the_file() {
        let dir = tempfile_dir();
        let real = dir.join("data").join("real.log");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "x\n").unwrap();
        let middle = dir.join("middle.log");
        std::os::unix::fs::symlink("data/real.log", &middle).unwrap();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let link = logs.join("app.log");
        std::os::unix::fs::symlink(&middle, &link).unwrap();
        assert_eq!(
            symlink_chain(&link),
            [link.clone(), middle, dir.join("data/real.log")]
        );
        // A loop ends the chain instead of spinning.
        let a = dir.join("a");
        let b = dir.join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert_eq!(symlink_chain(&a), [a.clone(), b]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "opsdeck-watch-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
