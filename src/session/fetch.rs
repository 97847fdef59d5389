//! Fetch: paths of the workdir streamed back as a tar over exec stdout and extracted under a
//! local destination. Extraction refuses absolute paths, `..`, links pointing outside the
//! destination, hard links, and device or fifo entries, and writes nothing outside the
//! destination, whatever the box sends.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::scripts;
use super::{Session, SessionError, elapsed_ms};

/// What a fetch brought back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchReport {
    /// Files, directories and links written.
    pub entries: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Wall time in milliseconds.
    pub ms: u64,
}

/// Check a path to fetch: relative, inside the workdir, not an option.
///
/// # Errors
/// The path is empty, absolute, contains `..`, or starts with `-`.
pub fn check_fetch_path(path: &str) -> Result<String, SessionError> {
    let trimmed = path.trim_end_matches('/');
    let bad = |why: &str| {
        SessionError::Invalid(format!(
            "cannot fetch `{path}`: {why}; give a relative path inside the workdir, such as `target/report.xml`"
        ))
    };
    if trimmed.is_empty() || trimmed == "." {
        return Err(bad("it names the whole workdir"));
    }
    if trimmed.starts_with('-') {
        return Err(bad("it starts with `-`"));
    }
    let p = Path::new(trimmed);
    if p.is_absolute() {
        return Err(bad("it is absolute"));
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad("it leaves the workdir"));
    }
    Ok(trimmed.to_owned())
}

impl Session {
    /// Fetch `paths` (relative to the workdir) into `dest`, at the same relative paths.
    ///
    /// # Errors
    /// A path is invalid or missing in the box, the archive holds a refused entry, a local
    /// write fails, the connection is lost, or cancellation.
    pub async fn fetch(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<FetchReport, SessionError> {
        let start = Instant::now();
        if paths.is_empty() {
            return Ok(FetchReport::default());
        }
        self.fetch_started(paths);
        let result = self.fetch_paths(paths, dest, cancel).await;
        self.fetch_ended(paths, &result, elapsed_ms(start));
        result
    }

    async fn fetch_paths(
        &self,
        paths: &[String],
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<FetchReport, SessionError> {
        let start = Instant::now();
        let mut checked = Vec::with_capacity(paths.len());
        for p in paths {
            checked.push(check_fetch_path(p)?);
        }
        if checked.is_empty() {
            return Ok(FetchReport::default());
        }
        std::fs::create_dir_all(dest)
            .map_err(|e| SessionError::local(format!("cannot create `{}`", dest.display()), e))?;
        let args = std::iter::once(self.lease().workdir.clone()).chain(checked);
        let mut stream = self
            .open_script("fetch", scripts::FETCH_SEND, args, false)
            .await?;
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let dest_owned = dest.to_path_buf();
        let events = self.events();
        let extractor = tokio::task::spawn_blocking(move || {
            extract_observed(ChannelReader::new(rx), &dest_owned, |report| {
                super::observe::fetched(&events, report);
            })
        });
        let (code, stderr) = super::drive(
            &mut stream,
            "fetch",
            cancel,
            super::StdoutTo::Channel(Some(tx)),
        )
        .await?;
        let extracted = extractor
            .await
            .map_err(|e| SessionError::Invalid(format!("fetch extraction failed: {e}")))?;
        let out = super::ControlOutput {
            code,
            stdout: Vec::new(),
            stderr,
        };
        out.check("fetch")?;
        let mut report = extracted?;
        report.ms = elapsed_ms(start);
        self.timing().record("fetch", report.ms);
        Ok(report)
    }
}

/// Extract a tar stream under `dest`, refusing anything that could write outside it.
///
/// # Errors
/// [`SessionError::UnsafeArchive`] for a refused entry (extraction stops there), or a local
/// write error.
pub fn extract<R: Read>(reader: R, dest: &Path) -> Result<FetchReport, SessionError> {
    extract_observed(reader, dest, |_| {})
}

/// [`extract`], calling `written` with the report so far after each entry.
///
/// # Errors
/// As [`extract`].
pub fn extract_observed<R: Read>(
    reader: R,
    dest: &Path,
    mut written: impl FnMut(&FetchReport),
) -> Result<FetchReport, SessionError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let mut report = FetchReport::default();
    let entries = archive
        .entries()
        .map_err(|e| SessionError::local("cannot read the fetched archive", e))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| SessionError::local("cannot read the fetched archive", e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: &str| SessionError::UnsafeArchive {
            path: raw.clone(),
            reason: reason.to_owned(),
        };
        let rel = safe_relative(&raw).ok_or_else(|| refuse("the path is absolute or uses `..`"))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular
            | tar::EntryType::Directory
            | tar::EntryType::Continuous
            | tar::EntryType::GNULongName
            | tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader => {}
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| SessionError::local("cannot read the fetched archive", e))?
                    .ok_or_else(|| refuse("a link without a target"))?
                    .into_owned();
                if !link_stays_inside(&rel, &target) {
                    return Err(refuse(&format!(
                        "a link to `{}`, outside the destination",
                        target.display()
                    )));
                }
                // Its `..` climbs real directories only: one in a linked directory would
                // start from wherever that link leads.
                if rel.ancestors().skip(1).any(|a| {
                    !a.as_os_str().is_empty()
                        && std::fs::symlink_metadata(dest.join(a))
                            .is_ok_and(|m| m.file_type().is_symlink())
                }) {
                    return Err(refuse("a link inside a linked directory"));
                }
            }
            tar::EntryType::Link => return Err(refuse("hard links are not accepted")),
            _ => {
                return Err(refuse(
                    "devices, fifos and other special files are not accepted",
                ));
            }
        }
        // Never write through an existing link at the final component.
        let target_path = dest.join(&rel);
        if let Ok(meta) = std::fs::symlink_metadata(&target_path)
            && meta.file_type().is_symlink()
        {
            std::fs::remove_file(&target_path).map_err(|e| {
                SessionError::local(format!("cannot replace `{}`", target_path.display()), e)
            })?;
        }
        let size = entry.header().size().unwrap_or(0);
        let unpacked = entry.unpack_in(dest).map_err(|e| {
            SessionError::local(format!("cannot write `{}`", target_path.display()), e)
        })?;
        if !unpacked {
            return Err(refuse("it would be written outside the destination"));
        }
        report.entries += 1;
        if kind == tar::EntryType::Regular {
            report.bytes += size;
        }
        written(&report);
    }
    Ok(report)
}

/// The entry path as a relative path with no `..`, root or prefix; `None` if it has any.
fn safe_relative(raw: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a link at `entry` (relative to the destination) pointing at `target` resolves inside
/// the destination whatever the other entries are: `target` is relative, and its `..`
/// components all come first and climb no higher than the destination (a `..` after a name
/// would climb out of that name, which another entry can make a link to anywhere inside).
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = i64::try_from(entry.components().count()).unwrap_or(i64::MAX) - 1;
    let mut named = false;
    for component in target.components() {
        match component {
            Component::Normal(_) => {
                named = true;
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if named || depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A blocking `Read` over a channel of chunks (the exec's stdout).
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    /// A reader draining `rx`.
    #[must_use]
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, link: &str) {
        let mut h = tar::Header::new_gnu();
        // Write the name bytes directly: `set_path` itself refuses `..`.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_size(if kind == tar::EntryType::Regular {
            4
        } else {
            0
        });
        h.set_mode(0o644);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        b.append(&h, data).unwrap();
    }

    fn outside_untouched(outside: &Path) {
        let names: Vec<_> = std::fs::read_dir(outside).unwrap().collect();
        assert!(names.is_empty(), "something was written outside: {names:?}");
    }

    #[test]
    fn hostile_entries_are_refused_and_nothing_lands_outside() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "dotdot",
                archive(|b| raw_entry(b, "../escape", tar::EntryType::Regular, "")),
            ),
            (
                "absolute",
                archive(|b| raw_entry(b, "/tmp/escape", tar::EntryType::Regular, "")),
            ),
            (
                "link out",
                archive(|b| raw_entry(b, "out", tar::EntryType::Symlink, "../..")),
            ),
            (
                "abs link",
                archive(|b| raw_entry(b, "out", tar::EntryType::Symlink, "/etc")),
            ),
            (
                "hard link",
                archive(|b| raw_entry(b, "h", tar::EntryType::Link, "/etc/passwd")),
            ),
            (
                "fifo",
                archive(|b| raw_entry(b, "f", tar::EntryType::Fifo, "")),
            ),
        ];
        for (name, data) in cases {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("dest");
            let outside = root.path().join("outside");
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            let err = extract(&data[..], &dest).unwrap_err();
            assert!(
                matches!(err, SessionError::UnsafeArchive { .. }),
                "{name}: {err}"
            );
            outside_untouched(&outside);
        }
    }

    /// Found by the `fetch_extract` fuzz target: `a -> .` then `b -> a/..` each looked inside,
    /// judged lexically, but `b` led to the destination's parent; so did a link made inside a
    /// linked directory.
    #[test]
    fn links_through_links_cannot_lead_outside() {
        let cases = [
            archive(|b| {
                raw_entry(b, "a", tar::EntryType::Symlink, ".");
                raw_entry(b, "b", tar::EntryType::Symlink, "a/..");
            }),
            archive(|b| {
                raw_entry(b, "d", tar::EntryType::Symlink, ".");
                raw_entry(b, "d/l", tar::EntryType::Symlink, "../x");
            }),
        ];
        for data in cases {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("dest");
            std::fs::create_dir_all(&dest).unwrap();
            let err = extract(&data[..], &dest).unwrap_err();
            assert!(matches!(err, SessionError::UnsafeArchive { .. }), "{err}");
            for entry in std::fs::read_dir(&dest).unwrap() {
                let path = entry.unwrap().path();
                if let Ok(target) = std::fs::read_link(&path) {
                    assert!(
                        !target.to_string_lossy().contains(".."),
                        "{} -> {}",
                        path.display(),
                        target.display()
                    );
                }
            }
        }
    }

    #[test]
    fn an_existing_link_is_replaced_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), dest.join("f")).unwrap();
        let data = archive(|b| raw_entry(b, "f", tar::EntryType::Regular, ""));
        extract(&data[..], &dest).unwrap();
        outside_untouched(&outside);
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"evil");
    }

    #[test]
    fn links_inside_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let data = archive(|b| {
            raw_entry(b, "dir/a", tar::EntryType::Regular, "");
            raw_entry(b, "dir/l", tar::EntryType::Symlink, "a");
            raw_entry(b, "dir/up", tar::EntryType::Symlink, "../dir/a");
        });
        let report = extract(&data[..], root.path()).unwrap();
        assert_eq!(report.entries, 3);
        assert_eq!(std::fs::read(root.path().join("dir/l")).unwrap(), b"evil");
    }

    #[test]
    fn fetch_paths_are_checked() {
        assert_eq!(check_fetch_path("out/").unwrap(), "out");
        for bad in ["", ".", "/etc", "../x", "a/../../b", "-rf"] {
            assert!(check_fetch_path(bad).is_err(), "{bad}");
        }
    }
}
