//! The session layer on the local backend, in process: sync, fetch, verified exec, timeouts,
//! cancellation and recovery after a dropped connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasebox::backends::local::LocalFaults;
use leasebox::error::{ErrorKind, HasKind};
use leasebox::session::{Command, NullSink, OutputSink, SessionError, SyncOptions};
use tokio_util::sync::CancellationToken;

use crate::support::{Scratch, alive};

#[derive(Default, Clone)]
struct Collect(Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl OutputSink for Collect {
    fn stdout(&self, data: &[u8]) {
        self.0.lock().unwrap().0.extend_from_slice(data);
    }
    fn stderr(&self, data: &[u8]) {
        self.0.lock().unwrap().1.extend_from_slice(data);
    }
}

impl Collect {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().0).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().1).into_owned()
    }
}

fn sh(script: &str) -> Command {
    Command {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        ..Command::default()
    }
}

fn options(s: &Scratch) -> SyncOptions {
    SyncOptions {
        root: s.repo(),
        excludes: vec!["target/".into(), "node_modules/".into()],
        ..SyncOptions::default()
    }
}

#[tokio::test]
async fn sync_exec_fetch_round_trip() {
    let s = Scratch::new();
    s.write("src/main.txt", "hello from the repo\n")
        .write(".gitignore", "ignored/\n")
        .write("ignored/secret.txt", "must not ship")
        .write("target/debug/big", "build output");
    s.commit();
    s.write("untracked.txt", "untracked but not ignored");
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let report = session.sync(&options(&s), &cancel).await.unwrap();
    assert_eq!(report.files, 3, "{report:?}");

    let out = Collect::default();
    let outcome = session
        .exec(
            &sh("cat src/main.txt untracked.txt; test ! -e ignored && test ! -e target && echo clean; echo err >&2; mkdir -p out && echo artifact > out/a.txt"),
            Arc::new(out.clone()),
            &cancel,
        )
        .await
        .unwrap();
    assert_eq!(outcome.code, 0, "{}", out.stderr());
    assert_eq!(
        out.stdout(),
        "hello from the repo\nuntracked but not ignoredclean\n"
    );
    assert_eq!(out.stderr(), "err\n");

    let dest = tempfile::tempdir().unwrap();
    let fetched = session
        .fetch(&["out".into()], dest.path(), &cancel)
        .await
        .unwrap();
    assert_eq!(fetched.entries, 2);
    assert_eq!(
        std::fs::read_to_string(dest.path().join("out/a.txt")).unwrap(),
        "artifact\n"
    );
    let phases: Vec<_> = session
        .timing()
        .phases()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(phases, ["sync", "fetch"]);
}

#[tokio::test]
async fn a_resync_removes_deleted_files_and_checks_the_revision() {
    let s = Scratch::new();
    s.write("a.txt", "a").write("b.txt", "b");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    std::fs::remove_file(s.repo().join("b.txt")).unwrap();
    session.sync(&options(&s), &cancel).await.unwrap();
    let workdir = std::path::PathBuf::from(&session.lease().workdir);
    assert!(workdir.join("a.txt").exists());
    assert!(!workdir.join("b.txt").exists());
    let text =
        std::fs::read_to_string(format!("{}/manifest.jsonl", session.lease().state_dir())).unwrap();
    let (header, files) = leasebox::session::parse_manifest(&text).unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(Some(header.revision), session.sync_revision());
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "a.txt");
    assert_eq!(files[0].size, 1);
    assert!(files[0].hash.starts_with("sha256:"));

    // Another client changed the box: the next sync refuses.
    std::fs::write(
        format!("{}/revision", session.lease().state_dir()),
        "other\n",
    )
    .unwrap();
    let fail = SyncOptions {
        on_mismatch: leasebox::session::OnMismatch::Fail,
        ..options(&s)
    };
    let err = session.sync(&fail, &cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OwnershipRefused, "{err}");
    assert!(err.to_string().contains("another client"), "{err}");
}

#[tokio::test]
async fn symlinks_travel_as_links_and_are_never_followed() {
    let s = Scratch::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("id_rsa"), "PRIVATE KEY").unwrap();
    s.write("readme", "x");
    std::os::unix::fs::symlink(outside.path().join("id_rsa"), s.repo().join("key")).unwrap();
    std::os::unix::fs::symlink("readme", s.repo().join("inner")).unwrap();
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    let workdir = std::path::PathBuf::from(&session.lease().workdir);
    let meta = std::fs::symlink_metadata(workdir.join("key")).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(workdir.join("key")).unwrap(),
        outside.path().join("id_rsa")
    );
    let manifest =
        std::fs::read_to_string(format!("{}/manifest.jsonl", session.lease().state_dir())).unwrap();
    assert!(!manifest.contains("PRIVATE KEY"));
    assert_eq!(std::fs::read_to_string(workdir.join("inner")).unwrap(), "x");
}

#[tokio::test]
async fn exit_codes_pass_through() {
    let s = Scratch::new();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let sink = Arc::new(NullSink);
    let code = |c: &str| sh(c);
    assert_eq!(
        session
            .exec(&code("exit 3"), sink.clone(), &cancel)
            .await
            .unwrap()
            .code,
        3
    );
    let missing = Command {
        argv: vec!["definitely-not-a-command-xyz".into()],
        ..Command::default()
    };
    assert_eq!(
        session
            .exec(&missing, sink.clone(), &cancel)
            .await
            .unwrap()
            .code,
        127
    );
    assert_eq!(
        session
            .exec(&code("kill -9 $$"), sink, &cancel)
            .await
            .unwrap()
            .code,
        137
    );
}

#[tokio::test]
async fn env_cwd_stdin_and_capture() {
    let s = Scratch::new();
    s.write("sub/f", "in sub\n");
    s.commit();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    session.sync(&options(&s), &cancel).await.unwrap();
    let cmd = Command {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "cat f; printf '%s|' \"$MULTI\"; cat; env | grep -c NOMAD_TOKEN".into(),
        ],
        env: vec![("MULTI".into(), "a\nb c".into())],
        cwd: Some("sub".into()),
        stdin: Some(bytes::Bytes::from_static(b"from stdin\n")),
        capture: true,
        ..Command::default()
    };
    let outcome = session
        .exec(&cmd, Arc::new(NullSink), &cancel)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(outcome.stdout.unwrap()).unwrap(),
        "in sub\na\nb c|from stdin\n0\n"
    );
    // grep -c found nothing: exit 1 from grep is the last command's code.
    assert_eq!(outcome.code, 1);
}

#[tokio::test]
async fn a_timeout_kills_the_process_group() {
    let s = Scratch::new();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let pidfile = s.path().join("child.pid");
    let cmd = Command {
        timeout: Some(Duration::from_millis(300)),
        ..sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()))
    };
    let err = session
        .exec(&cmd, Arc::new(NullSink), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Timeout { .. }), "{err}");
    assert_eq!(err.kind().exit_code(), 124);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..50 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the background child {pid} survived the timeout");
}

#[tokio::test]
async fn cancellation_kills_the_command() {
    let s = Scratch::new();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let pidfile = s.path().join("child.pid");
    let cmd = sh(&format!("echo $$ > {}; sleep 30", pidfile.display()));
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let err = session
        .exec(&cmd, Arc::new(NullSink), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Cancelled), "{err}");
    assert_eq!(err.kind().exit_code(), 130);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..50 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the command {pid} survived cancellation");
}

#[tokio::test]
async fn a_lost_connection_with_no_record_is_a_transport_error() {
    let s = Scratch::new();
    let session = s.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    // Remove the box behind the session's back: no record can be read.
    std::fs::remove_dir_all(
        std::path::Path::new(&session.lease().workdir)
            .parent()
            .unwrap(),
    )
    .unwrap();
    let err = session
        .exec(&sh("true"), Arc::new(NullSink), &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::TransportLost | ErrorKind::OwnershipRefused
        ),
        "{err}"
    );
    assert_ne!(err.kind().exit_code(), 0);
}

#[tokio::test]
async fn a_huge_ignored_directory_is_not_sent() {
    let s = Scratch::new();
    s.write(".gitignore", "node_modules/\n")
        .write("keep.txt", "k");
    let nm = s.repo().join("node_modules");
    for d in 0..100 {
        let dir = nm.join(format!("pkg{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("f{f}.js")), "").unwrap();
        }
    }
    s.commit();
    let set = leasebox::session::fileset::collect(&s.repo(), &[]).unwrap();
    let paths: Vec<_> = set.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, [".gitignore", "keep.txt"]);
}

#[tokio::test]
async fn a_plain_directory_is_walked_with_ignore_rules() {
    let s = Scratch::plain();
    s.write(".gitignore", "build/\n")
        .write(".leasebox-ignore", "secret.env\n")
        .write("build/out.o", "x")
        .write("secret.env", "TOKEN=1")
        .write("target/x", "x")
        .write("src/lib.rs", "//");
    let set = leasebox::session::fileset::collect(&s.repo(), &["target/".into()]).unwrap();
    let paths: Vec<_> = set.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, [".gitignore", ".leasebox-ignore", "src/lib.rs"]);
    assert!(
        set.notices[0].contains("not a git repository"),
        "{:?}",
        set.notices
    );
}

#[tokio::test]
async fn a_session_that_hangs_after_the_command_ended_is_detected() {
    let s = Scratch::new();
    let faults = LocalFaults {
        hang_exec: Some("MARKER-HANG".into()),
        ..LocalFaults::default()
    };
    let session = s.session(faults).await;
    session.set_hang_probe(Duration::from_millis(300));
    let cancel = CancellationToken::new();
    let out = Collect::default();
    let cmd = Command {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo done; exit 4".into(),
            "MARKER-HANG".into(),
        ],
        ..Command::default()
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        session.exec(&cmd, Arc::new(out.clone()), &cancel),
    )
    .await
    .expect("the hang was not detected")
    .unwrap();
    assert_eq!(outcome.code, 4);
    assert!(outcome.recovered);
    assert_eq!(out.stdout(), "done\n");
}

/// Run `script` on a local box whose connection drops `after` it starts (the command goes
/// on); return the outcome and what was shown.
async fn run_with_a_dropped_connection(
    script: &str,
    after: Duration,
) -> (leasebox::session::ExecOutcome, Collect) {
    let s = Scratch::new();
    let faults = LocalFaults {
        drop_exec_after: Some(("MARKER-DROP".into(), after)),
        ..LocalFaults::default()
    };
    let session = s.session(faults).await;
    let out = Collect::default();
    // The local backend drops the connection of execs whose argv carries the marker.
    let cmd = Command {
        argv: vec![
            "sh".into(),
            "-c".into(),
            script.into(),
            "MARKER-DROP".into(),
        ],
        ..Command::default()
    };
    let outcome = session
        .exec(&cmd, Arc::new(out.clone()), &CancellationToken::new())
        .await
        .unwrap();
    (outcome, out)
}

#[tokio::test]
async fn a_dropped_connection_is_recovered_from_the_record() {
    let script = "echo before; sleep 1; echo after; echo to-err >&2; exit 7";
    let (outcome, out) = run_with_a_dropped_connection(script, Duration::from_millis(300)).await;
    assert!(outcome.recovered);
    assert_eq!(outcome.code, 7);
    assert_eq!(out.stdout(), "before\nafter\n");
    assert_eq!(out.stderr(), "to-err\n");
}

#[tokio::test]
async fn a_dropped_connection_after_exit_reads_the_recorded_code() {
    // The drop comes while the command is in its last half second: the result is read back
    // from the record once the command has finished.
    let script = "echo one; (sleep 0.5; echo two) ; exit 0";
    let (outcome, out) = run_with_a_dropped_connection(script, Duration::from_millis(200)).await;
    assert!(outcome.recovered);
    assert_eq!(outcome.code, 0);
    assert_eq!(out.stdout(), "one\ntwo\n");
}
