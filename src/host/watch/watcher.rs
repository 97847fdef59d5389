//! The `notify` crate behind a type of its own ([`FileWatcher`]): one non-recursive watch per
//! directory the [`WatchFilter`](super::WatchFilter) chose, with the operating system's events
//! (inotify, FSEvents, kqueue) or, with `--poll DURATION`, by scanning the directories at that
//! interval (for file systems without events: network mounts, some containers). Its errors are
//! [`WatchError`]s that say what to do: a watch limit names the `sysctl` to raise and
//! `--poll` as the way around it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::{ErrorKind, HasKind};

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchMode {
    /// The operating system's file events.
    #[default]
    Events,
    /// Scan the watched directories at this interval (`--poll DURATION`).
    Poll(Duration),
}

/// What the watcher noticed.
#[derive(Debug)]
pub enum RawEvent {
    /// These paths (absolute) were created, written, renamed or removed.
    Paths(Vec<PathBuf>),
    /// The system dropped events (its queue overflowed): anything may have changed.
    Rescan,
    /// The watcher reported an error it goes on after.
    Error(String),
}

/// Why watching failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The per-user inotify watch limit was reached.
    #[error(
        "cannot watch {dirs} directories: the system's limit on file watches was reached; raise \
         it with `sudo sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.conf to \
         keep it), exclude large directories in `.leasebox-ignore`, or poll instead with \
         `--poll 1s`"
    )]
    WatchLimit {
        /// How many directories were to be watched.
        dirs: usize,
    },
    /// The per-user inotify instance limit was reached.
    #[error(
        "cannot start a file watcher: the system's limit on inotify instances was reached; \
         raise it with `sudo sysctl fs.inotify.max_user_instances=1024`, stop other watchers, \
         or poll instead with `--poll 1s`"
    )]
    InstanceLimit,
    /// Anything else, naming the directory.
    #[error("cannot watch `{path}`: {message}; `--poll 1s` watches by scanning instead")]
    Other {
        /// The directory (or `-` when none).
        path: String,
        /// notify's message.
        message: String,
    },
}

impl HasKind for WatchError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::ConfigError
    }
}

fn convert(err: notify::Error, path: &Path, dirs: usize) -> WatchError {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => WatchError::WatchLimit { dirs },
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
            WatchError::WatchLimit { dirs }
        }
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => {
            WatchError::InstanceLimit
        }
        _ => WatchError::Other {
            path: path.display().to_string(),
            message: err.to_string(),
        },
    }
}

/// The watches of one `leasebox watch`.
pub struct FileWatcher {
    inner: Box<dyn Watcher + Send>,
    watched: BTreeSet<PathBuf>,
    events: mpsc::UnboundedReceiver<RawEvent>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher")
            .field("watched", &self.watched.len())
            .finish_non_exhaustive()
    }
}

impl FileWatcher {
    /// Watch each of `dirs`, non-recursively.
    ///
    /// # Errors
    /// The watcher cannot start, or a directory cannot be watched (a limit says which).
    pub fn start(mode: WatchMode, dirs: &[PathBuf]) -> Result<FileWatcher, WatchError> {
        let (tx, events) = mpsc::unbounded_channel();
        let handler = move |res: notify::Result<notify::Event>| {
            let event = match res {
                Ok(event) if event.need_rescan() => RawEvent::Rescan,
                // Reads (open, close without a write) change nothing.
                Ok(event) if matches!(event.kind, EventKind::Access(_)) => return,
                Ok(event) if event.paths.is_empty() => return,
                Ok(event) => RawEvent::Paths(event.paths),
                Err(e) => RawEvent::Error(e.to_string()),
            };
            let _ = tx.send(event);
        };
        let root = dirs.first().map_or(Path::new("-"), PathBuf::as_path);
        let inner: Box<dyn Watcher + Send> = match mode {
            WatchMode::Events => Box::new(
                notify::recommended_watcher(handler).map_err(|e| convert(e, root, dirs.len()))?,
            ),
            WatchMode::Poll(every) => Box::new(
                notify::PollWatcher::new(
                    handler,
                    notify::Config::default().with_poll_interval(every),
                )
                .map_err(|e| convert(e, root, dirs.len()))?,
            ),
        };
        let mut watcher = FileWatcher {
            inner,
            watched: BTreeSet::new(),
            events,
        };
        for dir in dirs {
            watcher.add(dir, dirs.len())?;
        }
        Ok(watcher)
    }

    /// Watch one more directory (one that appeared). `total` is for the message of a limit.
    ///
    /// # Errors
    /// As [`FileWatcher::start`]; a directory gone meanwhile is no error.
    pub fn add(&mut self, dir: &Path, total: usize) -> Result<(), WatchError> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        match self.inner.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf());
                Ok(())
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => Ok(()),
            Err(e) if matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) => {
                Ok(())
            }
            Err(e) => Err(convert(e, dir, total.max(self.watched.len() + 1))),
        }
    }

    /// Stop watching a directory and everything watched under it (it was removed or renamed).
    pub fn forget(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|d| d.starts_with(dir))
            .cloned()
            .collect();
        for d in gone {
            let _ = self.inner.unwatch(&d);
            self.watched.remove(&d);
        }
    }

    /// Whether `dir` is watched.
    #[must_use]
    pub fn is_watched(&self, dir: &Path) -> bool {
        self.watched.contains(dir)
    }

    /// How many directories are watched.
    #[must_use]
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether nothing is watched.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// The next event; `None` when the watcher stopped.
    pub async fn next(&mut self) -> Option<RawEvent> {
        self.events.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_limit_names_the_sysctl_and_the_way_around_it() {
        let err = convert(
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
            Path::new("/r"),
            9000,
        );
        let text = err.to_string();
        assert!(text.contains("cannot watch 9000 directories"), "{text}");
        assert!(text.contains("fs.inotify.max_user_watches"), "{text}");
        assert!(text.contains("--poll 1s"), "{text}");
        assert_eq!(err.kind(), ErrorKind::ConfigError);
        let enospc = notify::Error::io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(
            convert(enospc, Path::new("/r"), 1),
            WatchError::WatchLimit { .. }
        ));
        let emfile = notify::Error::io(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert!(
            convert(emfile, Path::new("/r"), 1)
                .to_string()
                .contains("max_user_instances")
        );
    }

    #[tokio::test]
    async fn a_write_in_a_watched_directory_is_an_event_and_one_below_it_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let mut w = FileWatcher::start(WatchMode::Events, &[tmp.path().to_path_buf()]).unwrap();
        std::fs::write(sub.join("deep.txt"), "x").unwrap();
        std::fs::write(tmp.path().join("top.txt"), "x").unwrap();
        let mut seen = Vec::new();
        while !seen.iter().any(|p: &PathBuf| p.ends_with("top.txt")) {
            match tokio::time::timeout(std::time::Duration::from_secs(10), w.next()).await {
                Ok(Some(RawEvent::Paths(paths))) => seen.extend(paths),
                Ok(Some(_)) => {}
                other => panic!("no event: {other:?}"),
            }
        }
        assert!(
            !seen.iter().any(|p| p.ends_with("deep.txt")),
            "non-recursive: {seen:?}"
        );
    }
}
