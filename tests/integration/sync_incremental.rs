//! The incremental sync, on the local backend and on the Nomad API test server: seeded,
//! bounded random edit sequences (create, modify, same-size rewrites under an old mtime,
//! touch, delete, rename, mode change, symlink, file↔directory), after each of which the box
//! tree is compared file by file with the local file set and the files the box created are
//! checked still there; two clients and revision fencing; a broken apply; drift on the box;
//! dry runs and clean syncs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use leasebox::backends::local::LocalFaults;
use leasebox::backends::nomad::NomadBackend;
use leasebox::config::{Config, ConfigInputs};
use leasebox::error::{ErrorKind, HasKind};
use leasebox::lease::{Backend, LeaseId, LeaseSpec};
use leasebox::session::{Command, NullSink, OnMismatch, Session, SyncOptions, SyncReport, Timing};
use tokio_util::sync::CancellationToken;

use crate::support::Scratch;
use crate::support::nomad::NomadServer;

fn options(s: &Scratch) -> SyncOptions {
    SyncOptions {
        root: s.repo(),
        excludes: vec!["target/".into()],
        ..SyncOptions::default()
    }
}

/// Run a shell command in the box's workdir; panics unless it exits 0.
async fn in_box(session: &Session, script: &str) {
    let outcome = session
        .exec(
            &Command {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                capture: true,
                ..Command::default()
            },
            Arc::new(NullSink),
            &CancellationToken::new(),
        )
        .await
        .expect("exec in the box");
    assert_eq!(
        outcome.code,
        0,
        "`{script}` in the box: {}",
        String::from_utf8_lossy(outcome.stderr.as_deref().unwrap_or_default())
    );
}

/// What a tree holds, path by path: file content and exec bit, or link target.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Node {
    File(Vec<u8>, bool),
    Link(PathBuf),
}

pub(crate) fn tree(root: &Path, skip: &[&str]) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, Node>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if skip.contains(&rel.as_str()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Node::Link(std::fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                walk(root, &path, skip, out);
            } else {
                let exec = meta.permissions().mode() & 0o100 != 0;
                out.insert(rel, Node::File(std::fs::read(&path).unwrap(), exec));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

/// What the box created: never in the file set, never touched by a sync.
const BOX_MADE: [(&str, &str); 3] = [
    ("target/debug/out.bin", "built in the box"),
    ("boxmade.log", "log of the box"),
    ("src/boxmade.o", "object file"),
];

async fn make_box_files(session: &Session) {
    let mut script = String::from("mkdir -p target/debug src");
    for (path, content) in BOX_MADE {
        script.push_str(&format!(" && printf '%s' '{content}' > {path}"));
    }
    in_box(session, &script).await;
}

/// The box tree equals the local file set, and the box's own files are still there.
fn assert_mirrors(s: &Scratch, session: &Session, step: &str) {
    let workdir = PathBuf::from(&session.lease().workdir);
    let local = tree(&s.repo(), &[".git", "target"]);
    let remote = tree(&workdir, &["target", "boxmade.log", "src/boxmade.o"]);
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
    for (path, content) in BOX_MADE {
        assert_eq!(
            std::fs::read_to_string(workdir.join(path)).ok().as_deref(),
            Some(content),
            "{step}: the box's own `{path}` is gone or changed"
        );
    }
}

/// A small seeded generator (xorshift64*), so every failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOP: [&str; 4] = ["t0", "t1", "t2", "t 3"];
const DIRS: [&str; 3] = ["p0", "p1", "p2"];
const LEAVES: [&str; 3] = ["f0", "f1", "q/f2"];

fn pool_path(rng: &mut Rng) -> String {
    if rng.below(3) == 0 {
        rng.pick(&TOP).to_owned()
    } else {
        format!("{}/{}", rng.pick(&DIRS), rng.pick(&LEAVES))
    }
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// Make every ancestor of `rel` a directory (removing files and links in the way).
fn make_parents(repo: &Path, rel: &str) {
    let mut at = repo.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                std::fs::remove_file(&at).unwrap();
                std::fs::create_dir(&at).unwrap();
            }
            Err(_) => std::fs::create_dir(&at).unwrap(),
        }
    }
}

fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| (rng.next() % 251) as u8).collect()
}

fn existing_files(repo: &Path) -> Vec<String> {
    tree(repo, &[".git", "target", "src"])
        .into_iter()
        .filter(|(_, n)| matches!(n, Node::File(..)))
        .map(|(p, _)| p)
        .collect()
}

/// One random edit of the local tree; returns what it did.
fn random_edit(repo: &Path, rng: &mut Rng) -> String {
    let files = existing_files(repo);
    let some_file = |rng: &mut Rng| -> Option<String> {
        (!files.is_empty()).then(|| files[rng.below(files.len())].clone())
    };
    match rng.below(9) {
        0 | 1 => {
            let rel = pool_path(rng);
            let path = repo.join(&rel);
            make_parents(repo, &rel);
            remove_any(&path);
            let len = rng.below(3000);
            std::fs::write(&path, content(rng, len)).unwrap();
            format!("write {rel}")
        }
        2 => match some_file(rng) {
            Some(rel) => {
                std::fs::remove_file(repo.join(&rel)).unwrap();
                format!("delete {rel}")
            }
            None => "nothing to delete".into(),
        },
        3 => match some_file(rng) {
            Some(from) => {
                let to = pool_path(rng);
                if to == from || to.starts_with(&format!("{from}/")) {
                    return "rename onto itself skipped".into();
                }
                make_parents(repo, &to);
                remove_any(&repo.join(&to));
                std::fs::rename(repo.join(&from), repo.join(&to)).unwrap();
                format!("rename {from} -> {to}")
            }
            None => "nothing to rename".into(),
        },
        4 => match some_file(rng) {
            Some(rel) => {
                let path = repo.join(&rel);
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                let new = if mode & 0o100 == 0 { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(new)).unwrap();
                format!("chmod {new:o} {rel}")
            }
            None => "nothing to chmod".into(),
        },
        5 => {
            let rel = rng.pick(&TOP).to_owned();
            let target = rng.pick(&["t0", "../outside", "p0", "/etc/hostname", "missing"]);
            let path = repo.join(&rel);
            remove_any(&path);
            std::os::unix::fs::symlink(target, &path).unwrap();
            format!("symlink {rel} -> {target}")
        }
        6 => {
            let dir = rng.pick(&DIRS);
            let path = repo.join(dir);
            let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            remove_any(&path);
            if is_dir {
                std::fs::write(&path, content(rng, 100)).unwrap();
                format!("dir -> file {dir}")
            } else {
                std::fs::create_dir(&path).unwrap();
                std::fs::write(path.join("f0"), content(rng, 100)).unwrap();
                format!("file -> dir {dir}")
            }
        }
        7 => match some_file(rng) {
            // Same size, new bytes, the old mtime put back: only ctime and the hash tell.
            Some(rel) => {
                let path = repo.join(&rel);
                let meta = std::fs::metadata(&path).unwrap();
                let len = usize::try_from(meta.len()).unwrap();
                let mut bytes = std::fs::read(&path).unwrap();
                if bytes.is_empty() {
                    bytes = vec![1];
                } else {
                    bytes[rng.below(len)] ^= 0x5a;
                }
                std::fs::write(&path, &bytes).unwrap();
                let file = std::fs::File::options().write(true).open(&path).unwrap();
                file.set_modified(meta.modified().unwrap()).unwrap();
                format!("same-size rewrite {rel}")
            }
            None => "nothing to rewrite".into(),
        },
        _ => match some_file(rng) {
            Some(rel) => {
                let file = std::fs::File::options()
                    .write(true)
                    .open(repo.join(&rel))
                    .unwrap();
                file.set_modified(std::time::SystemTime::now()).unwrap();
                format!("touch {rel}")
            }
            None => "nothing to touch".into(),
        },
    }
}

/// Seeded random edit sequences on `session`: after every step the box mirrors the file set.
async fn random_sequences(s: &Scratch, session: &Session, seed: u64, steps: usize) {
    let cancel = CancellationToken::new();
    s.write("src/keep.rs", "fn main() {}\n")
        .write("t0", "top\n")
        .write("p0/f0", "first\n");
    s.commit();
    let first = session.sync(&options(s), &cancel).await.unwrap();
    assert!(!first.incremental, "{first:?}");
    assert_eq!(first.files, 3, "{first:?}");
    make_box_files(session).await;
    assert_mirrors(s, session, "first sync");

    let mut rng = Rng(seed);
    for step in 0..steps {
        let edits: Vec<String> = (0..=rng.below(3))
            .map(|_| random_edit(&s.repo(), &mut rng))
            .collect();
        let mut opts = options(s);
        // A wrong hint (nothing changed, or a path that did not) must not matter.
        if step % 3 == 1 {
            opts.changed = Some(vec!["t1".into()]);
        }
        let report = session.sync(&opts, &cancel).await.unwrap();
        let what = format!("seed {seed} step {step} ({edits:?}): {report:?}");
        assert!(report.incremental, "{what}");
        assert!(!report.reconciled, "{what}");
        assert!(report.drift.is_empty(), "{what}");
        assert_mirrors(s, session, &what);
        let again = session.sync(&options(s), &cancel).await.unwrap();
        assert_eq!(
            (again.files, again.deleted),
            (0, 0),
            "a second sync with nothing changed sends nothing: {what}: {again:?}"
        );
    }
}

#[tokio::test]
async fn random_edit_sequences_mirror_the_file_set_on_the_local_backend() {
    for seed in [0x5eed_0001_u64, 0xdead_beef, 42] {
        let s = Scratch::new();
        let session = s.session(LocalFaults::default()).await;
        random_sequences(&s, &session, seed, 30).await;
    }
}

pub(crate) async fn nomad_session(nomad: &NomadServer, s: &Scratch) -> Session {
    let mut env = s.env();
    env.insert("NOMAD_ADDR".into(), nomad.url());
    env.insert("LEASEBOX_NOMAD_DRIVER".into(), "raw_exec".into());
    let config = Config::load(&ConfigInputs {
        env: env.clone(),
        repo_root: Some(s.repo()),
        ..ConfigInputs::default()
    })
    .expect("config");
    let backend: Arc<dyn Backend> =
        Arc::new(NomadBackend::new(config.settings(), "NOMAD_ADDR", &env).expect("backend"));
    let spec = LeaseSpec {
        id: LeaseId::generate(),
        owner: config.settings().owner.clone(),
        repo_root: s.repo(),
        ttl: config.settings().lease_ttl,
        idle: config.settings().lease_idle,
        ..LeaseSpec::default()
    };
    let cancel = CancellationToken::new();
    let lease = backend.warmup(&spec, &cancel).await.expect("warmup");
    let session = Session::new(backend, lease, Arc::new(Timing::default()));
    session.prepare(&cancel).await.expect("prepare");
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_edit_sequences_mirror_the_file_set_on_the_nomad_test_server() {
    let nomad = NomadServer::start_modern();
    let s = Scratch::new();
    let session = nomad_session(&nomad, &s).await;
    random_sequences(&s, &session, 0x00c0_ffee, 12).await;
    // Drift goes through the same scripts over the exec websocket.
    s.write("drift.txt", "local\n");
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    in_box(&session, "printf changed > drift.txt && rm src/keep.rs").await;
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(report.drift, ["drift.txt", "src/keep.rs"], "{report:?}");
    assert_mirrors(&s, &session, &format!("drift on nomad: {report:?}"));
    session
        .backend()
        .release(session.lease(), &CancellationToken::new())
        .await
        .expect("release");
}

#[tokio::test]
async fn drift_on_the_box_is_restored_and_reported() {
    let s = Scratch::new();
    s.write("src/keep.rs", "fn main() {}\n")
        .write("a.txt", "a\n")
        .write("d/b.txt", "b\n")
        .write("d/sub/c.txt", "c\n")
        .write("e.txt", "e\n")
        .write("gone/x.txt", "x\n");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    make_box_files(&session).await;
    // The box edits one synced file, deletes another, replaces one by a directory and removes a
    // whole synced directory.
    in_box(
        &session,
        "printf 'edited in the box' > a.txt && rm d/b.txt && rm e.txt && mkdir e.txt && echo in > e.txt/inner && rm -r gone",
    )
    .await;
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(
        report.drift,
        ["a.txt", "d/b.txt", "e.txt", "gone/x.txt"],
        "{report:?}"
    );
    assert!(report.incremental);
    assert_eq!(report.files, 4, "{report:?}");
    let notice = report
        .notices
        .iter()
        .find(|n| n.contains("the box changed since the last sync"))
        .expect("one line about the drift");
    assert!(notice.contains("restoring 4 files"), "{notice}");
    assert_mirrors(&s, &session, "after drift");
    // Unchanged since: nothing more to restore.
    let again = session.sync(&options(&s), &cancel).await.unwrap();
    assert!(again.drift.is_empty() && again.files == 0, "{again:?}");
}

#[tokio::test]
async fn two_clients_are_fenced_by_the_revision_stamp() {
    let s = Scratch::new();
    s.write("a.txt", "one\n").write("b.txt", "b\n");
    s.commit();
    let a = s.session(LocalFaults::default()).await;
    // A second client on the same box: same lease, its own state.
    let b = Session::new(
        Arc::clone(a.backend()),
        a.lease().clone(),
        Arc::new(Timing::default()),
    );
    let cancel = CancellationToken::new();
    a.sync(&options(&s), &cancel).await.unwrap();
    make_box_files(&a).await;

    s.write("a.txt", "two\n");
    let report = b.sync(&options(&s), &cancel).await.unwrap();
    assert!(report.reconciled, "{report:?}");
    assert_eq!(
        report.sent_paths,
        ["a.txt"],
        "only what differs: {report:?}"
    );
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.contains("compared with the box's own manifest")),
        "{report:?}"
    );
    assert_mirrors(&s, &b, "second client");

    // The first client now finds a stamp it did not write: `fail` stops, naming the lease.
    let fail = SyncOptions {
        on_mismatch: OnMismatch::Fail,
        ..options(&s)
    };
    let err = a.sync(&fail, &cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OwnershipRefused, "{err}");
    assert_eq!(err.kind().exit_code(), 78);
    assert!(err.to_string().contains(a.lease().id.as_str()), "{err}");
    // By default it compares and sends what differs (here: nothing).
    std::fs::remove_file(s.repo().join("b.txt")).unwrap();
    let report = a.sync(&options(&s), &cancel).await.unwrap();
    assert!(report.reconciled, "{report:?}");
    assert_eq!((report.files, report.deleted), (0, 1), "{report:?}");
    assert_mirrors(&s, &a, "first client again");
    // And now the stamp is its own again.
    let report = a.sync(&fail, &cancel).await.unwrap();
    assert!(!report.reconciled && report.files == 0, "{report:?}");
}

#[tokio::test]
async fn a_broken_apply_leaves_no_stamp_and_the_next_sync_repairs_it() {
    let s = Scratch::new();
    s.write("a.txt", "old a\n").write("z.txt", "old z\n");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    make_box_files(&session).await;
    let before = session.sync_revision().unwrap();

    // An apply whose stream is cut in the middle of its tar: `a.txt` arrives, the rest not.
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [("a.txt", &b"new a\n"[..]), ("z.txt", &[b'z'; 4096][..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, data).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut stdin = b"leasebox-sync 1\nrev=0123abcd\nd=gone-anyway\n\n".to_vec();
    stdin.extend_from_slice(&tar[..512 + 512 + 512 + 100]);
    let workdir = session.lease().workdir.clone();
    let state = session.lease().state_dir();
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            leasebox::session::sync_scripts::SYNC_APPLY,
            "leasebox-sync",
        ])
        .args([&workdir, &state, &before])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a cut stream fails");
    assert!(
        !Path::new(&state).join("revision").exists(),
        "the stamp was removed before the tree changed"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&workdir).join("a.txt")).unwrap(),
        "new a\n",
        "the tree is mixed"
    );

    // Fencing sees the missing stamp: `fail` stops, the default repairs.
    let fail = SyncOptions {
        on_mismatch: OnMismatch::Fail,
        ..options(&s)
    };
    let err = session.sync(&fail, &cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OwnershipRefused, "{err}");
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    assert!(report.reconciled, "{report:?}");
    assert!(
        report.sent_paths.contains(&"a.txt".to_owned()),
        "{report:?}"
    );
    assert_mirrors(&s, &session, "repaired");
}

#[tokio::test]
async fn dry_run_says_what_would_change_and_changes_nothing() {
    let s = Scratch::new();
    s.write("a.txt", "a\n").write("b.txt", "b\n");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    let revision = session.sync_revision();
    s.write("a.txt", "changed\n").write("c.txt", "new\n");
    std::fs::remove_file(s.repo().join("b.txt")).unwrap();
    let dry = SyncOptions {
        dry_run: true,
        ..options(&s)
    };
    let report: SyncReport = session.sync(&dry, &cancel).await.unwrap();
    assert_eq!(report.sent_paths, ["a.txt", "c.txt"], "{report:?}");
    assert_eq!(report.deleted_paths, ["b.txt"], "{report:?}");
    assert_eq!((report.files, report.bytes, report.deleted), (2, 12, 1));
    let workdir = PathBuf::from(&session.lease().workdir);
    assert_eq!(
        std::fs::read_to_string(workdir.join("a.txt")).unwrap(),
        "a\n"
    );
    assert!(workdir.join("b.txt").exists() && !workdir.join("c.txt").exists());
    assert_eq!(session.sync_revision(), revision);
    // The real sync then does exactly that.
    let real = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(
        (real.sent_paths, real.deleted_paths),
        (report.sent_paths, report.deleted_paths)
    );
}

#[tokio::test]
async fn a_clean_sync_replaces_everything_and_the_index_survives_the_session() {
    let s = Scratch::new();
    s.write("a.txt", "a\n");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let index = s
        .state()
        .join("sync")
        .join(format!("{}.index", session.lease().id));
    session.set_index_path(index.clone());
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    make_box_files(&session).await;
    let clean = SyncOptions {
        clean: true,
        ..options(&s)
    };
    let report = session.sync(&clean, &cancel).await.unwrap();
    assert!(!report.incremental && report.files == 1, "{report:?}");
    let workdir = PathBuf::from(&session.lease().workdir);
    assert!(
        !workdir.join("boxmade.log").exists(),
        "clean removes the box's files"
    );
    assert!(index.is_file(), "the index is kept in the state dir");
    // The box changed nothing since the clean sync: the next one sends nothing and restores
    // nothing (the clean sync leaves the drift marker too).
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    assert!(report.incremental && report.drift.is_empty(), "{report:?}");
    assert_eq!((report.files, report.deleted), (0, 0), "{report:?}");

    // A later process (a new session, same claim revision) reads the index: nothing to send.
    let later = Session::new(
        Arc::clone(session.backend()),
        session.lease().clone(),
        Arc::new(Timing::default()),
    );
    later.set_index_path(index);
    later.set_sync_revision(session.sync_revision());
    let report = later.sync(&options(&s), &cancel).await.unwrap();
    assert!(report.incremental && !report.reconciled, "{report:?}");
    assert_eq!((report.files, report.deleted), (0, 0), "{report:?}");
}

#[test]
fn leasebox_sync_and_reruns_keep_what_the_box_built() {
    use crate::support::{code, describe, stderr, stdout};
    let s = Scratch::new();
    s.write("hello.txt", "hi\n").write("src/lib.rs", "x\n");
    s.commit();
    let none = s.run(&["sync"]);
    assert_eq!(code(&none), 2, "{}", describe(&none));
    assert!(
        stderr(&none).contains("no kept lease"),
        "{}",
        describe(&none)
    );

    let out = s.run(&["warmup"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let id = stdout(&out).trim().to_owned();
    let built = s.run(&[
        "run",
        "--lease",
        &id,
        "--",
        "sh",
        "-c",
        "mkdir -p target && echo built > target/cache",
    ]);
    assert_eq!(code(&built), 0, "{}", describe(&built));

    s.write("hello.txt", "changed\n").write("new.txt", "n\n");
    let dry = s.run(&["sync", "--dry-run", "--json"]);
    assert_eq!(code(&dry), 0, "{}", describe(&dry));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["lease"], id.as_str());
    assert_eq!(plan["files"], 2, "{plan}");
    assert_eq!(plan["deleted"], 0, "{plan}");
    assert_eq!(plan["incremental"], true, "{plan}");
    assert_eq!(
        plan["sent_paths"],
        serde_json::json!(["hello.txt", "new.txt"])
    );

    // Without `--lease`: the one kept lease of this repository.
    let synced = s.run(&["sync"]);
    assert_eq!(code(&synced), 0, "{}", describe(&synced));
    assert!(
        stdout(&synced).contains("sent 2 of 3 files"),
        "{}",
        describe(&synced)
    );
    assert!(
        stdout(&synced).contains("+ new.txt"),
        "{}",
        describe(&synced)
    );

    let timing = s.path().join("timing.json");
    let rerun = s.run(&[
        "run",
        "--lease",
        &id,
        "--timing-json",
        timing.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "cat target/cache hello.txt",
    ]);
    assert_eq!(stdout(&rerun), "built\nchanged\n", "{}", describe(&rerun));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&timing).unwrap()).unwrap();
    let sync = record["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sync")
        .expect("a sync phase");
    assert_eq!(sync["sync"]["files"], 0, "{record}");
    assert_eq!(sync["sync"]["deleted"], 0, "{record}");
    assert_eq!(sync["sync"]["incremental"], true, "{record}");

    let clean = s.run(&[
        "run",
        "--lease",
        &id,
        "--sync-clean",
        "--",
        "sh",
        "-c",
        "test ! -e target && cat new.txt",
    ]);
    assert_eq!(stdout(&clean), "n\n", "{}", describe(&clean));

    let other = s.run(&["warmup"]);
    let other_id = stdout(&other).trim().to_owned();
    let which = s.run(&["sync"]);
    assert_eq!(code(&which), 2, "{}", describe(&which));
    assert!(
        stderr(&which).contains(&id) && stderr(&which).contains(&other_id),
        "{}",
        describe(&which)
    );
    for lease in [&id, &other_id] {
        assert_eq!(code(&s.run(&["stop", lease])), 0);
    }
    assert!(
        !s.state().join("sync").join(format!("{id}.index")).exists(),
        "the index goes with its lease"
    );
}

#[test]
fn recipes_pass_clean_and_on_mismatch_and_see_the_sync_result() {
    use crate::support::{code, describe, stdout};
    let s = Scratch::new();
    s.write("a.txt", "a\n");
    s.write(
        "recipes/sync.lua",
        r#"local lb = require("leasebox")
local box = lb.warmup{}
local first = box:sync{}
local made = box:exec{ "sh", "-c", "echo mine > boxmade", capture = true }
local again = box:sync{}
local kept = box:exec{ "cat", "boxmade", capture = true }
local clean = box:sync{ clean = true, on_mismatch = "fail" }
local after = box:exec{ "sh", "-c", "test -e boxmade && echo still || echo gone", capture = true }
print(first.files, first.incremental, again.files, again.incremental, kept.stdout:gsub("\n", ""), clean.incremental, after.stdout)
local ok, err = pcall(function() return box:sync{ on_mismatch = "sometimes" } end)
print(ok, tostring(err):match("on_mismatch[^\n]*"))
"#,
    );
    s.commit();
    let out = s.run(&["run", "recipes/sync.lua"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2\tfalse\t0\ttrue\tmine\tfalse\tgone"),
        "{}",
        describe(&out)
    );
    assert!(
        text.contains("false\ton_mismatch` must be \"reconcile\" or \"fail\""),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn a_link_the_box_put_where_a_synced_directory_was_is_never_followed() {
    let s = Scratch::new();
    s.write("d/a.txt", "a\n")
        .write("d/b.txt", "b\n")
        .write("keep.txt", "k\n");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("a.txt"), "precious a").unwrap();
    std::fs::write(outside.path().join("b.txt"), "precious b").unwrap();
    in_box(
        &session,
        &format!("rm -r d && ln -s '{}' d", outside.path().display()),
    )
    .await;
    std::fs::remove_file(s.repo().join("d/b.txt")).unwrap();
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path().join("a.txt")).unwrap(),
        "precious a"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("b.txt")).unwrap(),
        "precious b",
        "nothing is deleted through the box's link: {report:?}"
    );
    let workdir = PathBuf::from(&session.lease().workdir);
    assert_eq!(
        tree(&workdir, &[]),
        tree(&s.repo(), &[".git"]),
        "{report:?}"
    );
}
