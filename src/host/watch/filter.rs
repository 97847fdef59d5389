//! What `leasebox watch` watches, decided before any watch is registered: the directories
//! that hold files of the sync set or could (every directory that git's ignore files,
//! `.leasebox-ignore` and the sync excludes leave in, plus the directories of tracked files),
//! each watched on its own, non-recursively. An ignored directory is never read, so a
//! 200,000-file `node_modules/` costs nothing at start-up and raises no events.
//!
//! The same rules ([`fileset::exclude_matcher`], the `.gitignore` files met on the walk,
//! `.git/info/exclude` and git's global excludes file) then decide whether a path an event
//! names is part of the sync set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::session::SessionError;
use crate::session::fileset;

/// The sync set's rules, as the watcher applies them to single paths.
#[derive(Debug)]
pub struct WatchFilter {
    root: PathBuf,
    excludes: Vec<String>,
    /// The sync excludes and `.leasebox-ignore`.
    leasebox: Gitignore,
    /// git's global excludes file (`core.excludesFile`), in a git repository.
    global: Gitignore,
    /// Each directory's `.gitignore` (and the root's `.git/info/exclude`), by directory
    /// relative to the root (`""` for the root).
    gitignores: BTreeMap<PathBuf, Vec<(PathBuf, Gitignore)>>,
    git: bool,
    /// The paths of the sync set when the filter was made, plus every path seen since that
    /// existed (a later deletion of one of them is a change).
    known: BTreeSet<String>,
    /// What leasebox itself writes while watching (relative to the root).
    outputs: Vec<PathBuf>,
}

impl WatchFilter {
    /// The filter of the repository at `root` with the sync `excludes`, and the directories
    /// to watch (absolute, the root first).
    ///
    /// # Errors
    /// An exclude pattern or an ignore file is invalid, `git` fails, or the root cannot be
    /// read.
    pub fn new(
        root: &Path,
        excludes: &[String],
    ) -> Result<(WatchFilter, Vec<PathBuf>), SessionError> {
        let git = root.join(".git").exists();
        let leasebox = fileset::exclude_matcher(root, excludes)?;
        let global = if git {
            Gitignore::global().0
        } else {
            Gitignore::empty()
        };
        let mut filter = WatchFilter {
            root: root.to_path_buf(),
            excludes: excludes.to_vec(),
            leasebox,
            global,
            gitignores: BTreeMap::new(),
            git,
            known: BTreeSet::new(),
            outputs: Vec::new(),
        };
        if git {
            let exclude = root.join(".git/info/exclude");
            if exclude.is_file() {
                filter.add_ignore_file(Path::new(""), &exclude);
            }
        }
        let mut dirs = filter.walk(root)?;
        let set = fileset::collect(root, excludes)?;
        // Tracked files inside ignored directories are synced too: watch their directories.
        let mut extra = BTreeSet::new();
        for entry in &set.entries {
            let mut parent = Path::new(&entry.path).parent();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                extra.insert(root.join(dir));
                parent = dir.parent();
            }
            filter.known.insert(entry.path.clone());
        }
        let walked: BTreeSet<PathBuf> = dirs.iter().cloned().collect();
        dirs.extend(extra.into_iter().filter(|d| !walked.contains(d)));
        Ok((filter, dirs))
    }

    /// The repository root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sync excludes the filter was made with.
    #[must_use]
    pub fn excludes(&self) -> &[String] {
        &self.excludes
    }

    /// The directories under `start` (itself included, when not ignored) that may hold
    /// synced files, reading no ignored directory. Their `.gitignore` files join the filter.
    ///
    /// # Errors
    /// `start` cannot be read.
    pub fn walk(&mut self, start: &Path) -> Result<Vec<PathBuf>, SessionError> {
        let mut dirs = Vec::new();
        let mut stack = vec![start.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let rel = self.relative(&dir).unwrap_or_default();
            if !rel.as_os_str().is_empty() && self.ignored(&rel, true) {
                continue;
            }
            let gitignore = dir.join(".gitignore");
            if self.git && gitignore.is_file() {
                self.add_ignore_file(&rel, &gitignore);
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                // Gone meanwhile (a branch switch removing it): nothing to watch.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != self.root => {
                    continue;
                }
                Err(e) => {
                    return Err(SessionError::local(
                        format!("cannot read the directory `{}`", dir.display()),
                        e,
                    ));
                }
            };
            dirs.push(dir.clone());
            for entry in entries.flatten() {
                // `file_type` does not follow links: a link to a directory is a link.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let child = entry.path();
                    if child.file_name().is_some_and(|n| n == ".git") && dir == self.root {
                        continue;
                    }
                    let child_rel = rel.join(entry.file_name());
                    if !self.ignored(&child_rel, true) {
                        stack.push(child);
                    }
                }
            }
        }
        Ok(dirs)
    }

    fn add_ignore_file(&mut self, rel_dir: &Path, file: &Path) {
        let mut builder = GitignoreBuilder::new(self.root.join(rel_dir));
        // A broken line in someone's .gitignore is git's business, not a reason to stop.
        let _ = builder.add(file);
        if let Ok(matcher) = builder.build() {
            let list = self.gitignores.entry(rel_dir.to_path_buf()).or_default();
            // A file read again (a rescan) replaces its earlier rules.
            list.retain(|(f, _)| f != file);
            list.push((file.to_path_buf(), matcher));
        }
    }

    /// `path` relative to the root, if it is under it.
    #[must_use]
    pub fn relative(&self, path: &Path) -> Option<PathBuf> {
        path.strip_prefix(&self.root).ok().map(Path::to_path_buf)
    }

    /// Never count these paths (files leasebox writes while watching: the timing file, or the
    /// directory of timing files) as changes.
    pub fn ignore_outputs(&mut self, paths: &[PathBuf]) {
        for path in paths {
            let absolute = if path.is_absolute() {
                path.clone()
            } else {
                std::env::current_dir().unwrap_or_default().join(path)
            };
            if let Some(rel) = self.relative(&absolute) {
                self.outputs.push(rel);
            }
        }
    }

    /// Whether the rules leave `rel` (relative to the root) out of the sync set.
    #[must_use]
    pub fn ignored(&self, rel: &Path, is_dir: bool) -> bool {
        if rel.as_os_str().is_empty() {
            return false;
        }
        if rel
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == ".git")
        {
            return true;
        }
        if self.outputs.iter().any(|o| rel.starts_with(o)) {
            return true;
        }
        if self
            .leasebox
            .matched_path_or_any_parents(rel, is_dir)
            .is_ignore()
        {
            return true;
        }
        if !self.git {
            return false;
        }
        let full = self.root.join(rel);
        // The deepest `.gitignore` that has a say wins, as in git.
        let mut dir = rel.parent();
        let mut decided = Match::None;
        while let Some(d) = dir {
            if let Some(matchers) = self.gitignores.get(d) {
                for (_, m) in matchers.iter().rev() {
                    let hit = m.matched_path_or_any_parents(&full, is_dir);
                    if !hit.is_none() {
                        decided = hit.map(|_| ());
                        break;
                    }
                }
            }
            if !decided.is_none() || d.as_os_str().is_empty() {
                break;
            }
            dir = d.parent();
        }
        match decided {
            Match::Ignore(()) => !self.known.contains(&slash(rel)),
            Match::Whitelist(()) => false,
            Match::None => {
                self.global
                    .matched_path_or_any_parents(rel, is_dir)
                    .is_ignore()
                    && !self.known.contains(&slash(rel))
            }
        }
    }

    /// Whether an event on `rel` may change the sync set: a file or link the rules leave in,
    /// or a path that is gone (checked again when the change settles, [`WatchFilter::settle`]).
    #[must_use]
    pub fn is_candidate(&self, rel: &Path) -> bool {
        match std::fs::symlink_metadata(self.root.join(rel)) {
            Ok(meta) => !meta.is_dir() && !self.ignored(rel, false),
            Err(_) => true,
        }
    }

    /// The changes of the sync set among `paths` (candidates gathered since the last run),
    /// looked at now that they settled: a file the rules leave in that exists, or a file the
    /// box has that is gone (deleted, renamed away, or in a directory that went). Events are
    /// a hint: a temporary file that came and went (an editor's rename-over save, `sed -i`)
    /// is no change.
    pub fn settle(&mut self, paths: Vec<String>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for key in paths {
            let rel = PathBuf::from(&key);
            match std::fs::symlink_metadata(self.root.join(&rel)) {
                Ok(meta) if !meta.is_dir() => {
                    if !self.ignored(&rel, false) {
                        self.known.insert(key.clone());
                        out.insert(key);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    if self.known.remove(&key) {
                        out.insert(key);
                        continue;
                    }
                    // A directory that went: the files the box has under it went with it.
                    let prefix = format!("{key}/");
                    let gone: Vec<String> = self
                        .known
                        .range(prefix.clone()..)
                        .take_while(|p| p.starts_with(&prefix))
                        .cloned()
                        .collect();
                    for p in gone {
                        self.known.remove(&p);
                        out.insert(p);
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The candidate files directly in `dir` (a directory that appeared: its files are
    /// changes whether or not events were seen for them).
    #[must_use]
    pub fn files_under(&self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| !t.is_dir())
                && let Some(rel) = self.relative(&entry.path())
                && self.is_candidate(&rel)
            {
                out.push(slash(&rel));
            }
        }
        out
    }
}

/// A relative path with `/` separators.
#[must_use]
pub fn slash(rel: &Path) -> String {
    rel.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fileset::IGNORE_FILE;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn ignored_directories_are_never_walked_and_their_paths_are_no_change() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        git(root, &["init", "-q"]);
        std::fs::write(root.join(".gitignore"), "node_modules/\n*.log\n").unwrap();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/a/b")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("src/deep/x.rs"), "x").unwrap();
        std::fs::write(root.join("node_modules/a/b/y.js"), "y").unwrap();
        let (mut filter, dirs) = WatchFilter::new(root, &["target/".to_owned()]).unwrap();
        let rel: BTreeSet<String> = dirs
            .iter()
            .map(|d| slash(d.strip_prefix(root).unwrap()))
            .collect();
        assert_eq!(
            rel,
            ["", "empty", "src", "src/deep"]
                .into_iter()
                .map(str::to_owned)
                .collect()
        );
        assert!(filter.is_candidate(Path::new("src/deep/x.rs")));
        std::fs::write(root.join("debug.log"), "l").unwrap();
        assert!(!filter.is_candidate(Path::new("debug.log")));
        assert!(filter.ignored(Path::new("node_modules/a/b/y.js"), false));
        assert!(filter.ignored(Path::new("target/t"), false));
        assert!(filter.ignored(Path::new(".git/HEAD"), false));
        // A temporary file that came and went is no change; a synced file that went is one,
        // and so are the files of a directory that went.
        std::fs::write(root.join("src/new.rs"), "n").unwrap();
        assert_eq!(
            filter.settle(vec!["src/.x.rs.swp".into(), "src/new.rs".into()]),
            ["src/new.rs"]
        );
        std::fs::remove_file(root.join("src/deep/x.rs")).unwrap();
        assert_eq!(
            filter.settle(vec!["src/deep/x.rs".into()]),
            ["src/deep/x.rs"]
        );
        assert!(
            filter.settle(vec!["src/deep/x.rs".into()]).is_empty(),
            "told once"
        );
        std::fs::remove_dir_all(root.join("src")).unwrap();
        assert_eq!(filter.settle(vec!["src".into()]), ["src/new.rs"]);
    }

    #[test]
    fn nested_gitignores_and_leasebox_ignore_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        git(root, &["init", "-q"]);
        std::fs::create_dir_all(root.join("web/dist")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        std::fs::write(root.join("web/.gitignore"), "dist/\n").unwrap();
        std::fs::write(root.join(IGNORE_FILE), "secret/\n").unwrap();
        let (filter, dirs) = WatchFilter::new(root, &[]).unwrap();
        assert!(dirs.contains(&root.join("web")));
        assert!(!dirs.contains(&root.join("web/dist")));
        assert!(!dirs.contains(&root.join("secret")));
        assert!(filter.ignored(Path::new("web/dist/app.js"), false));
        assert!(!filter.ignored(Path::new("web/app.js"), false));
    }
}
