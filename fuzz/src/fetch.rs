//! Fetch's archive extraction (`session::fetch::extract`), fed tar streams a hostile box could
//! send: raw bytes, and archives built entry by entry with absolute paths, `..`, links, links
//! through links, hard links, fifos and devices. Oracle: whatever the result, nothing outside
//! the destination changed (a sibling directory with a file stays exactly as it was, nothing
//! new appears beside the destination), the destination is still a directory, and no link
//! left inside it resolves, followed as the kernel would, to a place outside it.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

use leasebox::session::fetch::extract;

use super::input::Input;

const NAMES: &[&str] = &[
    "a",
    "b",
    "a/b",
    "a/c",
    "..",
    ".",
    "",
    "/",
    "/tmp/x",
    "../outside",
    "../outside/secret",
    "outside",
    "a/../b",
    "./a",
    "a/b/../../..",
    "dest",
    "l",
    "l/x",
    "a/l",
    "a/l/x",
];

fn name(input: &mut Input<'_>) -> String {
    let mut out = String::new();
    for i in 0..=input.below(3) {
        if i > 0 {
            out.push('/');
        }
        out.push_str(input.pick(NAMES));
    }
    out
}

/// An archive built from the input, entry by entry, with raw names (no checks of the tar
/// crate's builder in the way).
fn archive(input: &mut Input<'_>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for _ in 0..=input.below(7) {
        let path = name(input);
        let kind = input.pick(&[
            tar::EntryType::Regular,
            tar::EntryType::Regular,
            tar::EntryType::Directory,
            tar::EntryType::Symlink,
            tar::EntryType::Symlink,
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Fifo,
            tar::EntryType::Char,
            tar::EntryType::Continuous,
        ]);
        let data = if kind == tar::EntryType::Regular {
            input.bytes(16)
        } else {
            Vec::new()
        };
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(input.pick(&[0o644, 0o755, 0o4755, 0o000, 0o777]));
        let old = header.as_old_mut();
        let bytes = path.as_bytes();
        let n = bytes.len().min(old.name.len());
        old.name[..n].copy_from_slice(&bytes[..n]);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            let target = name(input);
            let bytes = target.as_bytes();
            let n = bytes.len().min(old.linkname.len());
            old.linkname[..n].copy_from_slice(&bytes[..n]);
        }
        header.set_cksum();
        if builder.append(&header, data.as_slice()).is_err() {
            break;
        }
    }
    builder.into_inner().unwrap_or_default()
}

/// Every path under `root` (not following links) with what it is and, for files, its bytes.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == skip {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let what = if meta.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&path).ok())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                format!("file {:?}", std::fs::read(&path).ok())
            };
            out.insert(path, what);
        }
    }
    out
}

/// Where `path` leads when each link on the way is followed, as the kernel would (at most 40
/// links); components that do not exist are taken as written.
fn resolve(path: &Path) -> PathBuf {
    let mut queue: std::collections::VecDeque<PathBuf> = path
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut at = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part.components().next() {
            Some(Component::RootDir) => at = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                at.pop();
            }
            Some(Component::Normal(c)) => {
                let next = at.join(c);
                match std::fs::read_link(&next) {
                    Ok(target) if hops < 40 => {
                        hops += 1;
                        for c in target.components().rev() {
                            queue.push_front(PathBuf::from(c.as_os_str()));
                        }
                    }
                    _ => at = next,
                }
            }
            _ => {}
        }
    }
    at
}

fn links_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => out.push(path),
            Ok(m) if m.is_dir() => links_under(&path, out),
            _ => {}
        }
    }
}

/// Run the oracle on one input; true when extraction succeeded.
///
/// # Panics
/// When extraction writes outside the destination or leaves a link that leads out of it.
pub fn check(data: &[u8]) -> bool {
    let mut input = Input::new(data);
    let tar = if input.byte().is_multiple_of(4) {
        input.rest().to_vec()
    } else {
        archive(&mut input)
    };
    check_archive(&tar)
}

/// The oracle for one tar stream; true when extraction succeeded.
///
/// # Panics
/// When extraction writes outside the destination or leaves a link that leads out of it.
pub fn check_archive(tar: &[u8]) -> bool {
    let guard = tempfile::tempdir().expect("a temporary directory");
    let base = guard
        .path()
        .canonicalize()
        .expect("a canonical temporary directory");
    let dest = base.join("dest");
    std::fs::create_dir_all(base.join("outside/dir")).expect("outside dir");
    std::fs::write(base.join("outside/secret"), b"secret").expect("outside file");
    std::fs::create_dir(&dest).expect("dest");
    let before = snapshot(&base, &dest);
    let result = extract(Cursor::new(tar), &dest);
    let after = snapshot(&base, &dest);
    assert_eq!(
        before, after,
        "extraction changed things outside the destination: {result:?}"
    );
    let meta = std::fs::symlink_metadata(&dest).expect("the destination still exists");
    assert!(meta.is_dir(), "the destination is no longer a directory");
    let mut links = Vec::new();
    links_under(&dest, &mut links);
    for link in links {
        let to = resolve(&link);
        assert!(
            to.starts_with(&dest),
            "the link {} leads outside the destination, to {} ({result:?})",
            link.display(),
            to.display()
        );
    }
    // Leave no unreadable directory behind for the temp dir's cleanup.
    open_up(&dest);
    result.is_ok()
}

fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&entry.path());
        }
    }
}
