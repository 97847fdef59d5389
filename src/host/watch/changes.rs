//! The changes `leasebox watch` collects between two runs: paths gathered until the events go
//! quiet for the debounce, a burst above the storm threshold (a branch switch) waited out
//! until it settles, and the one line that names what changed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How many paths in one burst make a storm (a `git checkout`, a rebase, a generator).
pub const STORM_THRESHOLD: usize = 100;

/// Changes gathered since the last flush.
#[derive(Debug, Default)]
pub struct Pending {
    paths: BTreeSet<String>,
    last: Option<Instant>,
    rescan: bool,
    storm_announced: bool,
}

impl Pending {
    /// A changed path (relative, `/` separators) seen at `now`.
    pub fn add(&mut self, path: String, now: Instant) {
        self.paths.insert(path);
        self.last = Some(now);
    }

    /// The system dropped events: everything may have changed.
    pub fn rescan(&mut self, now: Instant) {
        self.rescan = true;
        self.last = Some(now);
    }

    /// Whether nothing was gathered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.rescan
    }

    /// Whether the burst is a storm.
    #[must_use]
    pub fn is_storm(&self, threshold: usize) -> bool {
        self.rescan || self.paths.len() > threshold
    }

    /// The first time a burst turns into a storm: the one line that says so (`None` after).
    pub fn announce_storm(&mut self, threshold: usize) -> Option<String> {
        if self.storm_announced || !self.is_storm(threshold) {
            return None;
        }
        self.storm_announced = true;
        Some(if self.rescan {
            "==> the system dropped file events (too many at once): rerunning everything once \
             changes settle"
                .to_owned()
        } else {
            format!(
                "==> {}+ files changed at once (a branch switch?): rerunning once when changes settle",
                self.paths.len()
            )
        })
    }

    /// When the gathered changes are due: the debounce after the last event, or, in a storm,
    /// the settle time (five debounces, at least half a second).
    #[must_use]
    pub fn due(&self, debounce: Duration, threshold: usize) -> Option<Instant> {
        let last = self.last?;
        if self.is_empty() {
            return None;
        }
        let quiet = if self.is_storm(threshold) {
            (debounce * 5).max(Duration::from_millis(500))
        } else {
            debounce
        };
        Some(last + quiet)
    }

    /// Take what was gathered.
    pub fn take(&mut self) -> Change {
        let change = Change {
            paths: std::mem::take(&mut self.paths).into_iter().collect(),
            everything: self.rescan,
            key: false,
        };
        *self = Pending::default();
        change
    }
}

/// What starts a rerun.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The changed paths, sorted.
    pub paths: Vec<String>,
    /// Anything may have changed (dropped events, or Enter): the run sees no change list.
    pub everything: bool,
    /// Enter asked for it.
    pub key: bool,
}

impl Change {
    /// Add another change (one that came while a run was going).
    pub fn merge(&mut self, other: Change) {
        self.everything |= other.everything;
        self.key |= other.key;
        let mut all: BTreeSet<String> = std::mem::take(&mut self.paths).into_iter().collect();
        all.extend(other.paths);
        self.paths = all.into_iter().collect();
    }

    /// Enter: rerun everything now.
    #[must_use]
    pub fn key() -> Change {
        Change {
            paths: Vec::new(),
            everything: true,
            key: true,
        }
    }

    /// What started the run, as its `run_start` event says (`change`, `key` or `rescan`; the
    /// first run's `start` is the loop's to say).
    #[must_use]
    pub fn trigger(&self) -> &'static str {
        if self.key {
            "key"
        } else if self.everything {
            "rescan"
        } else {
            "change"
        }
    }

    /// The paths the recipe sees (`ctx.changed`, `lb.changed()`): `None` when anything may
    /// have changed.
    #[must_use]
    pub fn visible(&self) -> Option<Vec<String>> {
        (!self.everything).then(|| self.paths.clone())
    }
}

/// The first few paths and the count: `src/a.rs, src/b.rs, Cargo.toml and 4 more (7 files)`.
#[must_use]
pub fn describe(paths: &[String]) -> String {
    const SHOWN: usize = 3;
    let count = paths.len();
    let files = if count == 1 { "file" } else { "files" };
    let head = paths
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if count > SHOWN {
        format!("{head} and {} more ({count} {files})", count - SHOWN)
    } else {
        format!("{head} ({count} {files})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_due_after_the_debounce_and_a_storm_after_it_settles() {
        let t0 = Instant::now();
        let debounce = Duration::from_millis(100);
        let mut p = Pending::default();
        assert_eq!(p.due(debounce, 3), None);
        p.add("a".into(), t0);
        p.add("a".into(), t0 + Duration::from_millis(50));
        assert_eq!(p.due(debounce, 3), Some(t0 + Duration::from_millis(150)));
        assert_eq!(p.announce_storm(3), None);
        for name in ["b", "c", "d"] {
            p.add(name.into(), t0 + Duration::from_millis(60));
        }
        assert_eq!(p.due(debounce, 3), Some(t0 + Duration::from_millis(560)));
        assert!(
            p.announce_storm(3)
                .unwrap()
                .contains("4+ files changed at once")
        );
        assert_eq!(p.announce_storm(3), None, "said once");
        let change = p.take();
        assert_eq!(change.paths, ["a", "b", "c", "d"]);
        assert!(p.is_empty());
        assert_eq!(change.visible().unwrap().len(), 4);
    }

    #[test]
    fn the_line_names_the_first_paths_and_counts() {
        let paths: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(describe(&paths), "a, b, c and 2 more (5 files)");
        assert_eq!(describe(&paths[..1]), "a (1 file)");
        let mut c = Change {
            paths: vec!["b".into()],
            ..Change::default()
        };
        c.merge(Change {
            paths: vec!["a".into(), "b".into()],
            ..Change::default()
        });
        assert_eq!(c.paths, ["a", "b"]);
        assert_eq!(c.trigger(), "change");
        c.merge(Change {
            paths: vec![],
            everything: true,
            key: false,
        });
        assert_eq!(c.visible(), None);
        assert_eq!(c.trigger(), "rescan");
        c.merge(Change::key());
        assert_eq!(c.trigger(), "key");
    }
}
