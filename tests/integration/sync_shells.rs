//! The box-side scripts of the incremental sync (`SYNC_PROBE`, `SYNC_APPLY`) and of the clean
//! sync (`SYNC_RECEIVE`), run for real under dash and under BusyBox `sh` (a PATH of BusyBox
//! applets only: its `find`, `tar`, `rm`, `rmdir`, `mv`, `printf`), into a workdir whose own
//! path is hostile, with file names full of what breaks careless shell code: spaces, tabs,
//! newlines, leading dashes, both quotes, `$`, backquotes, backslashes (`\n`, `\c`, octal),
//! `%` directives, glob characters, `=`, dot names, unicode and very long names. A first sync,
//! an incremental one (modify, delete, rename, file↔directory, mode change, link retarget),
//! drift on the box, and a clean sync each leave the box tree equal to the local file set, and
//! the files the box made stay (until the clean sync).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use leasebox::backends::local::LocalFaults;
use leasebox::session::{Session, SyncOptions};
use tokio_util::sync::CancellationToken;

use crate::support::Scratch;
use crate::sync_incremental::{Node, tree};
use crate::verified_exec::{Toolbox, prepared};

/// Long names: a 255-byte component (`NAME_MAX`) and a path of over 600 bytes (past the
/// 100-byte name field of a plain tar header).
fn long_names() -> [String; 2] {
    [
        format!("long/{}.txt", "x".repeat(251)),
        format!(
            "{}/{}/{}.txt",
            "a".repeat(200),
            "b".repeat(200),
            "c".repeat(200)
        ),
    ]
}

/// The hostile paths of the file set, relative to the repository root.
fn hostile_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        "sp ace/file with  two spaces.txt",
        "new\nline dir/na\nme.txt",
        "-leading/-dash.txt",
        "-",
        "--",
        "-n",
        "quo'te/\"double\" 'single'.txt",
        "dol$lar/$HOME $(echo pwned) `id`.txt",
        "back\\slash/a\\nb\\c\\0101.txt",
        "ünï/çødé 日本語 🎉.txt",
        "tab\there.txt",
        "star*[x]?/glob*?.txt",
        ".hidden/.dot",
        "..two",
        "eq=ual/k=v=w.txt",
        "pct%s%n/%b%%.txt",
        "end",
        "f x",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    paths.extend(long_names());
    paths
}

const LINK: &str = "li nk -> 'to' $x";
const NL_LINK: &str = "new\nline dir/link\nhere";

/// What the box makes in the workdir: never synced, never touched by an incremental sync.
const BOX_MADE: [&str; 3] = [
    "sp ace/build -o $x\nout.bin",
    "star*[x]?/made.o",
    "box made\\n dir/x",
];

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink(target, path).unwrap();
}

fn options(s: &Scratch) -> SyncOptions {
    SyncOptions {
        root: s.repo(),
        ..SyncOptions::default()
    }
}

/// The box tree equals the local file set; the box's own files are there when `box_made`.
fn assert_mirrors(s: &Scratch, session: &Session, box_made: bool, step: &str) {
    let workdir = Path::new(&session.lease().workdir);
    let local = tree(&s.repo(), &[".git"]);
    let remote: BTreeMap<String, Node> = tree(workdir, &[])
        .into_iter()
        .filter(|(k, _)| !BOX_MADE.contains(&k.as_str()))
        .collect();
    let diff: Vec<_> = local
        .keys()
        .chain(remote.keys())
        .filter(|k| local.get(*k) != remote.get(*k))
        .collect();
    assert!(
        diff.is_empty(),
        "{step}: box and local differ at {diff:?}\nlocal: {:?}\nbox: {:?}",
        diff.iter().map(|k| local.get(*k)).collect::<Vec<_>>(),
        diff.iter().map(|k| remote.get(*k)).collect::<Vec<_>>()
    );
    for path in BOX_MADE {
        assert_eq!(
            std::fs::read(workdir.join(path)).ok().as_deref(),
            box_made.then_some(path.as_bytes()),
            "{step}: the box's own `{path}`"
        );
    }
}

/// Move a path's mtime (a file's, or a directory's) into the future: the box changed it after
/// the sync, whatever resolution the box's `find -newer` has (BusyBox's compares seconds).
fn touch_later(path: &Path) {
    let later = SystemTime::now() + Duration::from_secs(5);
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(later).unwrap();
}

async fn hostile_paths_round_trip(kind: Toolbox) {
    let s = Scratch::new();
    let repo = s.repo();
    for (i, path) in hostile_paths().iter().enumerate() {
        write(&repo, path, format!("{i}: {path}\n").as_bytes());
    }
    link(&repo, LINK, "sp ace/file with  two spaces.txt");
    link(&repo, NL_LINK, "na\nme.txt");
    s.commit();
    let session = prepared(&s, kind, LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let workdir = Path::new(&session.lease().workdir).to_path_buf();

    // A first sync into the empty box: everything, through the probe and the apply.
    let first = session.sync(&options(&s), &cancel).await.unwrap();
    assert!(!first.incremental, "{kind:?}: {first:?}");
    assert_eq!(
        first.files,
        hostile_paths().len() + 2,
        "{kind:?}: {first:?}"
    );
    for path in BOX_MADE {
        write(&workdir, path, path.as_bytes());
    }
    assert_mirrors(&s, &session, true, &format!("{kind:?} first sync"));

    // Every kind of change, on hostile names.
    let [long_one, deep] = long_names();
    write(&repo, "new\nline dir/na\nme.txt", b"modified\n");
    write(&repo, &deep, b"the deep one, modified\n");
    std::fs::remove_file(repo.join("back\\slash/a\\nb\\c\\0101.txt")).unwrap();
    std::fs::remove_dir_all(repo.join("dol$lar")).unwrap();
    std::fs::rename(
        repo.join("quo'te/\"double\" 'single'.txt"),
        repo.join("quo'te/renamed -n \\t %s.txt"),
    )
    .unwrap();
    std::fs::remove_dir_all(repo.join("-leading")).unwrap();
    write(&repo, "-leading", b"a file where a directory was\n");
    std::fs::remove_file(repo.join("tab\there.txt")).unwrap();
    write(
        &repo,
        "tab\there.txt/in\tner",
        b"a directory where a file was\n",
    );
    let mode_file = repo.join("ünï/çødé 日本語 🎉.txt");
    std::fs::set_permissions(&mode_file, std::fs::Permissions::from_mode(0o755)).unwrap();
    link(&repo, LINK, "-leading");
    std::fs::remove_file(repo.join(&long_one)).unwrap();
    write(&repo, "--", b"rewritten\n");
    s.commit();
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    let what = format!("{kind:?} incremental: {report:?}");
    assert!(report.incremental, "{what}");
    assert!(!report.reconciled && report.drift.is_empty(), "{what}");
    // Sent: the two modified, the renamed, the new file and the new inner file, the file
    // whose mode changed, the retargeted link and `--`.
    assert_eq!(report.files, 8, "{what}");
    // Deleted: the backslash file, the `$` file, the old name, the file under `-leading`, the
    // file that became a directory, and the long name.
    assert_eq!(report.deleted, 6, "{what}");
    assert_mirrors(&s, &session, true, &what);
    assert!(
        !workdir.join("dol$lar").exists() && !workdir.join("back\\slash").exists(),
        "{what}: the emptied directories go"
    );
    let again = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(
        (again.files, again.deleted),
        (0, 0),
        "{kind:?}: nothing changed: {again:?}"
    );

    // Drift: the box edits two synced files and deletes a third.
    let edited = ["new\nline dir/na\nme.txt", "pct%s%n/%b%%.txt"];
    for path in edited {
        write(&workdir, path, b"edited in the box\n");
        touch_later(&workdir.join(path));
    }
    let gone = "ünï/çødé 日本語 🎉.txt";
    std::fs::remove_file(workdir.join(gone)).unwrap();
    touch_later(&workdir.join("ünï"));
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    let what = format!("{kind:?} drift: {report:?}");
    let mut expected: Vec<&str> = edited.iter().copied().chain([gone]).collect();
    expected.sort_unstable();
    assert_eq!(report.drift, expected, "{what}");
    assert_eq!(report.files, 3, "{what}");
    assert_mirrors(&s, &session, true, &what);
    assert_eq!(
        std::fs::metadata(workdir.join(gone))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755,
        "{what}"
    );

    // The clean sync (`SYNC_RECEIVE`) replaces everything, the box's own files too.
    let clean = session
        .sync(
            &SyncOptions {
                clean: true,
                ..options(&s)
            },
            &cancel,
        )
        .await
        .unwrap();
    assert!(!clean.incremental, "{kind:?}: {clean:?}");
    assert_mirrors(&s, &session, false, &format!("{kind:?} clean sync"));
    // And an incremental sync after it sends nothing.
    let after = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(
        (after.files, after.deleted, after.incremental),
        (0, 0, true),
        "{kind:?}: {after:?}"
    );
}

#[tokio::test]
async fn the_sync_scripts_handle_hostile_paths_under_dash() {
    hostile_paths_round_trip(Toolbox::Dash).await;
}

#[tokio::test]
async fn the_sync_scripts_handle_hostile_paths_under_busybox() {
    hostile_paths_round_trip(Toolbox::BusyBox).await;
}
