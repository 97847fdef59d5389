//! The file set a sync sends, decided before anything is sent: in a git repository the tracked
//! files plus the untracked ones git does not ignore; elsewhere a walk with the `ignore` crate
//! honouring the same ignore files. Both honour `.leasebox-ignore` at the root and the
//! configured excludes (dependency and build directories by default). Ignored and excluded
//! directories are never walked. Symlinks are entries of their own and are never followed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::SessionError;

/// The name of the per-repository ignore file leasebox reads in addition to git's.
pub const IGNORE_FILE: &str = ".leasebox-ignore";

/// What a file-set entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link, sent as a link with this target (never followed).
    Symlink(PathBuf),
}

/// One path to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root, with `/` separators.
    pub path: String,
    /// File or link.
    pub kind: EntryKind,
}

/// The decided file set.
#[derive(Debug, Clone, Default)]
pub struct FileSet {
    /// The root the paths are relative to.
    pub root: PathBuf,
    /// Entries sorted by path.
    pub entries: Vec<Entry>,
    /// Lines worth telling the user once (not a git repository, skipped submodules, …).
    pub notices: Vec<String>,
}

impl FileSet {
    /// The bytes of its regular files, from a `stat` of each (no content is read): the
    /// progress bar's total before a full sync streams them.
    #[must_use]
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File))
            .filter_map(|e| std::fs::symlink_metadata(self.root.join(&e.path)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Decide the file set under `root`, leaving out what matches `excludes` (gitignore syntax).
///
/// # Errors
/// `git` fails in a git repository, a directory cannot be read, or an exclude pattern is
/// invalid.
pub fn collect(root: &Path, excludes: &[String]) -> Result<FileSet, SessionError> {
    let matcher = exclude_matcher(root, excludes)?;
    let mut set = FileSet {
        root: root.to_path_buf(),
        ..FileSet::default()
    };
    let candidates = if root.join(".git").exists() {
        git_candidates(root, excludes)?
    } else {
        set.notices.push(format!(
            "{} is not a git repository: syncing the files that .gitignore and {IGNORE_FILE} do not exclude",
            root.display()
        ));
        walk_candidates(root, &matcher)?
    };
    for path in candidates {
        if matcher
            .matched_path_or_any_parents(Path::new(&path), false)
            .is_ignore()
        {
            continue;
        }
        let full = root.join(&path);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            // Tracked but deleted in the work tree (or a parent is a file now): nothing to send.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => {
                return Err(SessionError::local(
                    format!("cannot read `{}`", full.display()),
                    e,
                ));
            }
        };
        let kind = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).map_err(|e| {
                SessionError::local(format!("cannot read the link `{}`", full.display()), e)
            })?;
            EntryKind::Symlink(target)
        } else if meta.is_file() {
            EntryKind::File
        } else if meta.is_dir() {
            set.notices
                .push(format!("skipping `{path}`: a git submodule (not synced)"));
            continue;
        } else {
            continue;
        };
        set.entries.push(Entry { path, kind });
    }
    set.entries.sort_by(|a, b| a.path.cmp(&b.path));
    set.entries.dedup_by(|a, b| a.path == b.path);
    Ok(set)
}

/// The matcher of the configured excludes plus the root's `.leasebox-ignore` (what
/// [`collect`] leaves out on top of git's own rules); `leasebox watch` filters its events
/// with the same matcher.
///
/// # Errors
/// An exclude pattern or the ignore file is invalid.
pub fn exclude_matcher(root: &Path, excludes: &[String]) -> Result<Gitignore, SessionError> {
    let mut builder = GitignoreBuilder::new(root);
    for pattern in excludes {
        builder.add_line(None, pattern).map_err(|e| {
            SessionError::Invalid(format!("invalid sync exclude pattern `{pattern}`: {e}"))
        })?;
    }
    let ignore_file = root.join(IGNORE_FILE);
    if ignore_file.exists()
        && let Some(e) = builder.add(&ignore_file)
    {
        return Err(SessionError::Invalid(format!(
            "cannot use `{}`: {e}",
            ignore_file.display()
        )));
    }
    builder
        .build()
        .map_err(|e| SessionError::Invalid(format!("invalid sync exclude patterns: {e}")))
}

/// Tracked files, and untracked files git does not ignore; git itself does not descend into
/// ignored or excluded directories.
fn git_candidates(root: &Path, excludes: &[String]) -> Result<Vec<String>, SessionError> {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]);
    for pattern in excludes {
        cmd.arg(format!("--exclude={pattern}"));
    }
    if root.join(IGNORE_FILE).is_file() {
        cmd.arg(format!("--exclude-from={IGNORE_FILE}"));
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| SessionError::local("cannot run `git ls-files` (is git installed?)", e))?;
    if !out.status.success() {
        return Err(SessionError::Invalid(format!(
            "`git ls-files` failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// Walk a directory that is not a git repository, pruning ignored and excluded directories.
fn walk_candidates(root: &Path, matcher: &Gitignore) -> Result<Vec<String>, SessionError> {
    let matcher = matcher.clone();
    let walk_root = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .follow_links(false)
        .require_git(false)
        .git_global(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(move |entry| {
            let Ok(rel) = entry.path().strip_prefix(&walk_root) else {
                return true;
            };
            if rel.as_os_str().is_empty() {
                return true;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if is_dir && rel == Path::new(".git") {
                return false;
            }
            !matcher.matched(rel, is_dir).is_ignore()
        })
        .build();
    let mut out = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| {
            SessionError::local(
                format!("cannot read a directory under `{}`", root.display()),
                std::io::Error::other(e.to_string()),
            )
        })?;
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            continue;
        }
        if let Ok(rel) = entry.path().strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(out)
}
