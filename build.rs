//! Build script: records the git revision the binary is built from, for `leasebox --version`
//! (`LEASEBOX_GIT_REVISION`: the short hash, `-dirty` when tracked files have uncommitted
//! changes, or `unknown revision` when git or the repository is missing, as in a crate tarball).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    let revision = revision(&manifest_dir).unwrap_or_else(|| "unknown revision".to_owned());
    println!("cargo:rustc-env=LEASEBOX_GIT_REVISION={revision}");
}

/// The revision of the checkout at `dir`, when `dir` is the top of a git work tree.
fn revision(dir: &Path) -> Option<String> {
    // Only this repository's own revision: not that of some repository the sources sit inside
    // (a vendored copy, an unpacked crate under another checkout).
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(&top), dir) {
        return None;
    }
    rerun_on_git_changes(dir);
    let hash = git(dir, &["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// Ask cargo to rerun this script when HEAD moves, a branch or tag changes, the index changes,
/// or a tracked source changes (which may flip `-dirty`).
fn rerun_on_git_changes(dir: &Path) {
    let resolve = |arg: &str| {
        git(dir, &["rev-parse", arg]).map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { dir.join(p) }
        })
    };
    // In a linked work tree HEAD and the index live in its own git dir, refs in the common one.
    if let Some(git_dir) = resolve("--git-dir") {
        for name in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={}", git_dir.join(name).display());
        }
    }
    if let Some(common) = resolve("--git-common-dir") {
        for name in ["refs", "packed-refs"] {
            println!("cargo:rerun-if-changed={}", common.join(name).display());
        }
    }
    for tracked in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={tracked}");
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
