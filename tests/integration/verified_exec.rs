//! Verified exec keeps its promise: the command runs under a supervisor detached from the exec
//! session, so killing the exec'd process at any moment (what a Nomad agent does when a client
//! goes away while output flows) leaves a complete record and the right exit code; stop takes
//! the command's whole process group; records are pruned; a box without the tools is refused
//! as unsuitable. On the local backend under dash, BusyBox (a PATH of applets only) and a box
//! without `setsid`, with hostile paths and values; on the Nomad test server in both profiles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasebox::backends::local::{LocalBackend, LocalFaults};
use leasebox::error::{ErrorKind, HasKind};
use leasebox::lease::{Backend, LeaseId, LeaseSpec};
use leasebox::session::{
    Command, NullSink, OnMismatch, OutputSink, Session, SessionError, SyncOptions, Timing,
};
use tokio_util::sync::CancellationToken;

use crate::support::nomad::NomadServer;
use crate::support::{Scratch, code, describe, stdout};

/// A name full of what breaks careless shell code.
pub(crate) const HOSTILE: &str = "-we ird 'q' \"d\" $x `b` é";

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

/// The tools a box offers: a directory of symlinks that becomes the box's whole PATH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Toolbox {
    /// Debian's tools with `sh` being dash.
    Dash,
    /// BusyBox applets only (`sh`, `tar`, `tee`, `setsid`, … all BusyBox).
    BusyBox,
    /// No `setsid`; `sh` is bash, whose `set -m` gives the supervisor its own process group.
    NoSetsid,
    /// No `setsid` and dash, which has no job control without a terminal: unsuitable.
    NoSetsidDash,
    /// dash without `tee`: unsuitable.
    NoTee,
}

fn which(program: &str) -> PathBuf {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("`{program}` is not installed (.ci/run installs it)"))
}

/// Build the toolbox's PATH directory under `dir`.
fn toolbox(dir: &Path, kind: Toolbox) -> PathBuf {
    let bin = dir.join(format!("bin-{kind:?}"));
    std::fs::create_dir_all(&bin).unwrap();
    let link = |name: &str, target: &Path| {
        let _ = std::os::unix::fs::symlink(target, bin.join(name));
    };
    if kind == Toolbox::BusyBox {
        let busybox = which("busybox");
        let list = std::process::Command::new(&busybox)
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            link(applet, &busybox);
        }
        return bin;
    }
    let (skip, sh): (&[&str], &str) = match kind {
        Toolbox::Dash => (&[], "dash"),
        Toolbox::NoSetsid => (&["setsid"], "bash"),
        Toolbox::NoSetsidDash => (&["setsid"], "dash"),
        Toolbox::NoTee => (&["tee"], "dash"),
        Toolbox::BusyBox => unreachable!(),
    };
    for d in ["/usr/bin", "/bin"] {
        for entry in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "sh" && !skip.contains(&name.as_str()) {
                link(&name, &entry.path());
            }
        }
    }
    link("sh", &which(sh));
    bin
}

/// A local backend whose box has `kind`'s tools only, its lease trees under a cache dir whose
/// path is hostile (spaces, quotes, a newline, a leading `-` in a component, non-ASCII).
fn backend(s: &Scratch, kind: Toolbox, faults: LocalFaults) -> Arc<dyn Backend> {
    let cache = s.path().join(format!("{HOSTILE}\nline {kind:?}"));
    let mut env: BTreeMap<String, String> = s.env();
    env.insert(
        "PATH".into(),
        toolbox(s.path(), kind).to_string_lossy().into_owned(),
    );
    Arc::new(LocalBackend::new(&cache, &env).with_faults(faults))
}

async fn session_on(backend: Arc<dyn Backend>, s: &Scratch) -> Result<Session, SessionError> {
    let spec = LeaseSpec {
        id: LeaseId::generate(),
        owner: "tester".into(),
        repo_root: s.repo(),
        ..LeaseSpec::default()
    };
    let cancel = CancellationToken::new();
    let lease = backend.warmup(&spec, &cancel).await.expect("warmup");
    let session = Session::new(backend, lease, Arc::new(Timing::default()));
    session.prepare(&cancel).await.map(|()| session)
}

pub(crate) async fn prepared(s: &Scratch, kind: Toolbox, faults: LocalFaults) -> Session {
    session_on(backend(s, kind, faults), s)
        .await
        .unwrap_or_else(|e| panic!("prepare on {kind:?}: {e}"))
}

fn sh(script: &str) -> Command {
    Command {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        ..Command::default()
    }
}

/// The marker that makes the local backend kill the exec'd process (see `LocalFaults`).
const KILL_MARK: &str = "MARKER-KILL-EXEC";

fn kill_exec_after(ms: u64) -> LocalFaults {
    LocalFaults {
        kill_exec_after: Some((KILL_MARK.into(), Duration::from_millis(ms))),
        ..LocalFaults::default()
    }
}

/// `script` under `sh -c`, carrying the marker as `$0`.
fn marked(script: &str) -> Command {
    Command {
        argv: vec!["sh".into(), "-c".into(), script.into(), KILL_MARK.into()],
        ..Command::default()
    }
}

/// The pids of live processes whose argv is exactly `argv`.
fn processes_with_argv(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat.rsplit(')').next()?.trim_start().starts_with('Z');
            (cmdline == want && !zombie).then_some(pid)
        })
        .collect()
}

/// Wait (up to 10 s) until no process has one of these argvs; fail naming what is left.
async fn none_left(argvs: &[&[&str]]) {
    for _ in 0..100 {
        if argvs.iter().all(|a| processes_with_argv(a).is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<_> = argvs
        .iter()
        .map(|a| (a.join(" "), processes_with_argv(a)))
        .collect();
    panic!("processes of the stopped command are left: {left:?}");
}

/// A number no other test uses for its `sleep`, so leftovers can be found by argv.
fn unique_seconds() -> String {
    (100_000 + u32::from(rand::random::<u16>()) * 7 + std::process::id() % 7).to_string()
}

#[tokio::test]
async fn every_toolbox_runs_hostile_commands_and_survives_a_killed_exec() {
    for kind in [Toolbox::Dash, Toolbox::BusyBox, Toolbox::NoSetsid] {
        let s = Scratch::new();
        let dir = format!("sub {HOSTILE}");
        s.write(&format!("{dir}/f.txt"), "in the hostile dir\n");
        s.commit();
        let session = prepared(&s, kind, kill_exec_after(400)).await;
        let cancel = CancellationToken::new();
        let options = SyncOptions {
            root: s.repo(),
            ..SyncOptions::default()
        };
        session.sync(&options, &cancel).await.unwrap();

        // Paths, argv, environment values and stdin arrive byte for byte; variables named
        // like the wrapper's own reach the command with the recipe's values.
        let value = format!("{HOSTILE}\nsecond line\\n \\ %s\t");
        let cmd = Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "cat f.txt; printf '[%s]' \"$@\" \"$V\" \"$lbx_d\" \"$lbx_n\" \"$lbx_l\"; echo; cat"
                    .into(),
                "zero".into(),
                "-lead".into(),
                HOSTILE.into(),
                "new\nline".into(),
            ],
            env: vec![
                ("V".into(), value.clone()),
                ("lbx_d".into(), "recipe-d".into()),
                ("lbx_l".into(), "recipe\\l".into()),
                ("lbx_n".into(), "recipe\nn".into()),
            ],
            cwd: Some(dir.clone()),
            stdin: Some(bytes::Bytes::from(format!("stdin {HOSTILE}\n"))),
            capture: true,
            ..Command::default()
        };
        let outcome = session
            .exec(&cmd, Arc::new(NullSink), &cancel)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(outcome.stdout.as_deref().unwrap()),
            format!(
                "in the hostile dir\n[-lead][{HOSTILE}][new\nline][{value}][recipe-d][recipe\nn][recipe\\l]\nstdin {HOSTILE}\n"
            ),
            "{kind:?}: {}",
            String::from_utf8_lossy(outcome.stderr.as_deref().unwrap())
        );
        assert_eq!(outcome.code, 0, "{kind:?}");

        // A command that does not exist says so, in the shell's words, naming only itself.
        let missing = Command {
            argv: vec!["no-such-cmd".into(), "x".into()],
            capture: true,
            ..Command::default()
        };
        let outcome = session
            .exec(&missing, Arc::new(NullSink), &cancel)
            .await
            .unwrap();
        assert_eq!(outcome.code, 127, "{kind:?}");
        assert_eq!(
            String::from_utf8_lossy(outcome.stderr.as_deref().unwrap()),
            "no-such-cmd: not found\n",
            "{kind:?}"
        );

        // The exec'd process killed while the command prints, and while it is quiet.
        for (script, want_out, want_code) in [
            (
                "i=0; while [ $i -lt 10 ]; do i=$((i+1)); echo line$i; sleep 0.1; done; echo bye >&2; exit 7",
                "line1\nline2\nline3\nline4\nline5\nline6\nline7\nline8\nline9\nline10\n",
                7,
            ),
            ("sleep 1; exit 5", "", 5),
        ] {
            let out = Collect::default();
            let outcome = session
                .exec(&marked(script), Arc::new(out.clone()), &cancel)
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(outcome.recovered, "{kind:?}");
            assert_eq!(outcome.code, want_code, "{kind:?}: {}", out.stderr());
            assert_eq!(out.stdout(), want_out, "{kind:?}");
        }

        // A timeout stops the whole process group, children included, and leaves a record.
        let (a, b) = (unique_seconds(), unique_seconds());
        let cmd = Command {
            timeout: Some(Duration::from_millis(700)),
            ..sh(&format!("sleep {a} & sleep {b}; wait"))
        };
        let err = session
            .exec(&cmd, Arc::new(NullSink), &cancel)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{kind:?}: {err}");
        none_left(&[&["sleep", &a], &["sleep", &b]]).await;
    }
}

#[tokio::test]
async fn a_box_without_a_needed_tool_is_unsuitable_and_says_which() {
    for (kind, tool) in [
        (Toolbox::NoTee, "`tee`"),
        (Toolbox::NoSetsidDash, "`setsid`"),
    ] {
        let s = Scratch::new();
        let err = session_on(backend(&s, kind, LocalFaults::default()), &s)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BoxUnsuitable, "{kind:?}: {err}");
        assert_eq!(err.kind().exit_code(), 78);
        let text = err.to_string();
        assert!(text.contains(tool), "{kind:?}: {text}");
        assert!(text.contains("the local box"), "{kind:?}: {text}");
    }
}

#[tokio::test]
async fn a_drop_before_the_pid_is_recorded_never_starts_the_command() {
    let s = Scratch::new();
    let session = prepared(&s, Toolbox::Dash, kill_exec_after(0)).await;
    let flag = s.path().join("ran");
    let err = session
        .exec(
            &marked(&format!("touch '{}'", flag.display())),
            Arc::new(NullSink),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TransportLost, "{err}");
    assert!(err.to_string().contains("never ran"), "{err}");
    // The run is claimed: nothing can start it late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!flag.exists(), "the command ran after all");
}

#[tokio::test]
async fn a_killed_exec_before_during_and_after_the_last_write_loses_nothing() {
    // (script, kill after ms, stdout, code): the drop lands before the first write, between
    // writes, after the last write, and after the command ended.
    let cases = [
        ("sleep 0.6; echo late; exit 3", 200, "late\n", 3),
        (
            "echo a; sleep 0.5; echo b; sleep 0.5; exit 4",
            300,
            "a\nb\n",
            4,
        ),
        ("echo only; sleep 0.8; exit 6", 300, "only\n", 6),
        ("echo fast; exit 9", 150, "fast\n", 9),
    ];
    for (script, ms, want, want_code) in cases {
        let s = Scratch::new();
        let session = prepared(&s, Toolbox::Dash, kill_exec_after(ms)).await;
        let out = Collect::default();
        let outcome = session
            .exec(
                &marked(script),
                Arc::new(out.clone()),
                &CancellationToken::new(),
            )
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        assert_eq!(outcome.code, want_code, "{script}: {}", out.stderr());
        assert_eq!(out.stdout(), want, "{script}");
    }
}

/// What a process started on the box gets: the signals it starts with ignored or blocked, the
/// locale, and `OLDPWD` (which a `cd` on the way to the command would change).
const DISPOSITIONS: &str = "grep -E '^Sig(Ign|Blk)' /proc/self/status; echo \"LANG=${LANG-unset} LC_ALL=${LC_ALL-unset} OLDPWD=${OLDPWD-unset}\"";

/// What `argv` prints when the backend runs it bare, without the wrapper.
async fn bare_stdout(session: &Session, argv: &[&str]) -> String {
    let lease = session.lease();
    let mut stream = session
        .backend()
        .exec(
            lease,
            leasebox::lease::ExecRequest {
                argv: argv.iter().map(|a| (*a).to_owned()).collect(),
                cwd: None,
                stdin: false,
                tty: None,
            },
        )
        .await
        .expect("bare exec");
    let mut out = Vec::new();
    loop {
        match stream.events.recv().await {
            Some(leasebox::lease::ExecEvent::Stdout(b)) => out.extend_from_slice(&b),
            Some(leasebox::lease::ExecEvent::Exited(code)) => {
                assert_eq!(code, 0, "bare {argv:?}");
                break;
            }
            Some(_) => {}
            None => panic!("bare {argv:?}: the stream ended without an exit"),
        }
    }
    String::from_utf8(out).unwrap()
}

/// The command under the wrapper prints what the same command run bare prints.
async fn same_as_bare(session: &Session, what: &str) -> String {
    let argv = ["sh", "-c", DISPOSITIONS];
    let bare = bare_stdout(session, &argv).await;
    let outcome = session
        .exec(
            &Command {
                capture: true,
                ..sh(DISPOSITIONS)
            },
            Arc::new(NullSink),
            &CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let wrapped = String::from_utf8_lossy(outcome.stdout.as_deref().unwrap()).into_owned();
    assert_eq!(
        wrapped,
        bare,
        "{what}: the command under the wrapper starts differently from a bare one ({})",
        String::from_utf8_lossy(outcome.stderr.as_deref().unwrap())
    );
    bare
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_starts_with_the_signals_and_locale_the_box_gives() {
    // dash and BusyBox start a background job with SIGINT and SIGQUIT ignored for good; a
    // command started that way could not be interrupted (a test of a Ctrl-C handler fails,
    // Python never raises KeyboardInterrupt). The supervisor's relays run with LC_ALL=C; the
    // command gets the box's locale.
    for kind in [Toolbox::Dash, Toolbox::BusyBox, Toolbox::NoSetsid] {
        let s = Scratch::new();
        let mut env = s.env();
        env.insert(
            "PATH".into(),
            toolbox(s.path(), kind).to_string_lossy().into_owned(),
        );
        env.insert("LANG".into(), "C.UTF-8".into());
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&s.cache(), &env));
        let session = session_on(backend, &s).await.expect("prepare");
        let bare = same_as_bare(&session, &format!("{kind:?}")).await;
        // The local backend starts processes with SIGINT and SIGQUIT at their defaults.
        let ignored = bare
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("{kind:?}: no SigIgn line in {bare}"));
        let int_quit = (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGQUIT - 1));
        assert_eq!(ignored & int_quit, 0, "{kind:?}: {bare}");
        assert!(
            bare.contains("LANG=C.UTF-8 LC_ALL=unset OLDPWD=unset"),
            "{kind:?}: {bare}"
        );
    }
    for nomad in [NomadServer::start_v1_1(), NomadServer::start_modern()] {
        let s = Scratch::new();
        let session = crate::sync_incremental::nomad_session(&nomad, &s).await;
        same_as_bare(&session, &format!("{:?}", nomad.profile())).await;
    }
}

#[tokio::test]
async fn stop_takes_the_whole_process_group_on_a_kept_lease() {
    let s = Scratch::new();
    let session = prepared(&s, Toolbox::Dash, LocalFaults::default()).await;
    // Timeout, then cancellation (Ctrl-C): the lease stays, the command's group goes.
    for cancel_it in [false, true] {
        let (a, b) = (unique_seconds(), unique_seconds());
        let mut cmd = sh(&format!("sleep {a} & sleep {b}; wait"));
        let cancel = CancellationToken::new();
        if cancel_it {
            let trigger = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                trigger.cancel();
            });
        } else {
            cmd.timeout = Some(Duration::from_millis(500));
        }
        let err = session
            .exec(&cmd, Arc::new(NullSink), &cancel)
            .await
            .unwrap_err();
        let want = if cancel_it {
            ErrorKind::Cancelled
        } else {
            ErrorKind::Timeout
        };
        assert_eq!(err.kind(), want, "{err}");
        none_left(&[&["sleep", &a], &["sleep", &b]]).await;
    }
    // The stopped runs are recorded as ended (TERM: 143) and read.
    let runs = PathBuf::from(session.lease().state_dir()).join("runs");
    // The exit record is an empty file whose name carries the code: `RUN.exit.CODE`.
    let exits: Vec<(String, String)> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (run, code) = name.split_once(".exit.")?;
            (code != "t").then(|| (run.to_owned(), code.to_owned()))
        })
        .collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
    for (run, code) in exits {
        assert_eq!(code, "143", "{run}");
        assert!(runs.join(format!("{run}.read")).exists());
    }
    assert!(
        Path::new(&session.lease().workdir).exists(),
        "the lease is kept"
    );
}

#[tokio::test]
async fn run_records_are_pruned_but_never_a_running_or_unread_one() {
    let s = Scratch::new();
    let session = prepared(&s, Toolbox::Dash, LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let runs = PathBuf::from(session.lease().state_dir()).join("runs");
    let write = |run: &str, exts: &[&str], age: u64| {
        for ext in exts {
            // The pid and exit records carry their values in their names.
            let ext = match *ext {
                "pid" => "pid.1.1",
                "exit" => "exit.0",
                other => other,
            };
            let path = runs.join(format!("{run}.{ext}"));
            std::fs::write(&path, "").unwrap();
            let when = std::time::SystemTime::now() - Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    };
    // 60 finished and read runs, the newest first; an old unread one.
    for i in 0..60u64 {
        write(
            &format!("r{i:04}"),
            &["go", "pid", "out", "err", "exit", "read"],
            100 + i,
        );
    }
    write("rold0unread", &["go", "pid", "out", "err", "exit"], 10_000);
    // A run that still runs (a real one, in the background).
    let running = {
        let session = session.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            session
                .exec(&sh("sleep 3; echo done"), Arc::new(NullSink), &cancel)
                .await
        })
    };
    let live = loop {
        let found = std::fs::read_dir(&runs).unwrap().flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (run, _) = name.split_once(".pid.")?;
            (!run.starts_with("r00") && !run.starts_with("rold")).then(|| run.to_owned())
        });
        if let Some(run) = found {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    session.prepare(&cancel).await.unwrap();
    let exists = |run: &str| runs.join(format!("{run}.go")).exists();
    let kept = (0..60).filter(|i| exists(&format!("r{i:04}"))).count();
    assert_eq!(kept, 50, "the newest 50 finished runs stay");
    assert!(exists("r0000") && exists("r0049") && !exists("r0050"));
    assert!(exists("rold0unread"), "an unread result is never pruned");
    assert!(exists(&live), "a running command's record is never pruned");
    assert_eq!(running.await.unwrap().unwrap().code, 0);

    // At most 64 MiB of output stays: three runs of 30 MB keep two.
    for (i, age) in [(0, 1), (1, 2), (2, 3)] {
        let run = format!("rbig{i}");
        write(&run, &["go", "pid", "err", "exit", "read"], age);
        let out = std::fs::File::create(runs.join(format!("{run}.out"))).unwrap();
        out.set_len(30_000_000).unwrap();
    }
    session.prepare(&cancel).await.unwrap();
    assert!(exists("rbig0") && exists("rbig1") && !exists("rbig2"));
}

#[tokio::test]
async fn a_swap_that_breaks_part_way_shows_as_a_mismatch() {
    let s = Scratch::new();
    s.write("a.txt", "a");
    s.commit();
    let bin = toolbox(s.path(), Toolbox::Dash);
    let session = prepared(&s, Toolbox::Dash, LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    // The full replace (the incremental apply has tests of its own), told to stop on a
    // mismatch rather than compare with the box's manifest.
    let options = SyncOptions {
        root: s.repo(),
        clean: true,
        on_mismatch: OnMismatch::Fail,
        ..SyncOptions::default()
    };
    session.sync(&options, &cancel).await.unwrap();
    // Now the box's `mv` fails once, on the move of the new tree into place.
    let once = s.path().join("mv-failed");
    let real_mv = which("mv");
    std::fs::remove_file(bin.join("mv")).unwrap();
    std::fs::write(
        bin.join("mv"),
        format!(
            "#!/bin/sh\ncase \"$*\" in *incoming/tree*) [ -e '{0}' ] || {{ : > '{0}'; exit 1; }};; esac\nexec '{1}' \"$@\"\n",
            once.display(),
            real_mv.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(bin.join("mv")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(bin.join("mv"), perms).unwrap();
    s.write("b.txt", "b");
    s.commit();
    let err = session.sync(&options, &cancel).await.unwrap_err();
    assert!(once.exists(), "the fault did not fire: {err}");
    assert!(
        !Path::new(&session.lease().state_dir())
            .join("revision")
            .exists(),
        "a broken swap must leave no revision stamp"
    );
    // The next sync sees the box as changed, not as a tree that matches the stamp.
    let err = session.sync(&options, &cancel).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OwnershipRefused, "{err}");
    assert!(err.to_string().contains("revision none"), "{err}");
    // By default a sync compares with the box's own manifest instead, and says so.
    let report = session
        .sync(
            &SyncOptions {
                root: s.repo(),
                ..SyncOptions::default()
            },
            &cancel,
        )
        .await
        .unwrap();
    assert!(report.reconciled, "{report:?}");
    let workdir = Path::new(&session.lease().workdir);
    assert_eq!(std::fs::read_to_string(workdir.join("b.txt")).unwrap(), "b");
    assert_eq!(std::fs::read_to_string(workdir.join("a.txt")).unwrap(), "a");
}

fn nomad_run(s: &Scratch, nomad: &NomadServer, args: &[&str]) -> std::process::Output {
    s.leasebox(args)
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .output()
        .expect("run leasebox")
}

fn nomad_repo() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello\n");
    s.commit();
    s
}

#[test]
fn an_agent_that_kills_the_exec_on_broken_output_loses_no_exit_code() {
    for nomad in [NomadServer::start_v1_1(), NomadServer::start_modern()] {
        nomad.kill_exec_on_broken_output(Duration::from_millis(300));
        let s = nomad_repo();
        let id = stdout(&nomad_run(&s, &nomad, &["warmup"]))
            .trim()
            .to_owned();
        let lines: String = (1..=30).map(|i| format!("line{i}\n")).collect();
        // Cut 12 frames (about 1.2 s) into the output, then quiet commands cut at once.
        for (after, script, want_out, want_code) in [
            (
                12,
                "for i in $(seq 1 30); do echo line$i; sleep 0.1; done; exit 7",
                lines.as_str(),
                7,
            ),
            (1, "echo start; sleep 1; exit 5", "start\n", 5),
            (1, "echo one; sleep 1; echo two; exit 3", "one\ntwo\n", 3),
        ] {
            nomad.drop_next_exec(after);
            let out = nomad_run(
                &s,
                &nomad,
                &["run", "--lease", &id, "--no-sync", "--", "sh", "-c", script],
            );
            assert_eq!(
                code(&out),
                want_code,
                "{:?} {script}: {}",
                nomad.profile(),
                describe(&out)
            );
            assert_eq!(stdout(&out), want_out, "{}", describe(&out));
        }
        // Cut before the header arrived: the command never started, and never will.
        nomad.drop_next_exec(0);
        let flag = s.path().join("ran");
        let out = nomad_run(
            &s,
            &nomad,
            &[
                "run",
                "--lease",
                &id,
                "--no-sync",
                "--",
                "touch",
                flag.to_str().unwrap(),
            ],
        );
        assert_eq!(code(&out), 75, "{}", describe(&out));
        assert!(
            crate::support::stderr(&out).contains("never ran"),
            "{}",
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
        assert!(!flag.exists(), "the command ran after all");
        assert_eq!(code(&nomad_run(&s, &nomad, &["stop", &id])), 0);
    }
}

#[test]
fn a_timeout_on_a_kept_nomad_lease_leaves_no_process_of_the_command() {
    for nomad in [NomadServer::start_v1_1(), NomadServer::start_modern()] {
        let s = nomad_repo();
        let (a, b) = (unique_seconds(), unique_seconds());
        let out = nomad_run(
            &s,
            &nomad,
            &[
                "run",
                "--keep",
                "--timeout",
                "2s",
                "--",
                "sh",
                "-c",
                &format!("sleep {a} & sleep {b}; wait"),
            ],
        );
        assert_eq!(code(&out), 124, "{:?}: {}", nomad.profile(), describe(&out));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(none_left(&[&["sleep", &a], &["sleep", &b]]));
        assert!(!nomad.jobs().is_empty(), "the lease is kept");
    }
}
