//! Progress on a terminal, quiet otherwise: a warmup on the Nomad test server with allocation
//! starts paused, run once in a real pseudo-terminal (the spinner shows the evaluation and the
//! allocation pending, then the run goes on once starts resume) and once piped (none of it;
//! with `-v`, one plain line per report instead). The `--events` stream of the same run tells
//! the wait too: `lease_waiting` with the allocation pending, `lease_placed` with its node.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

use crate::events::validated;
use crate::support::nomad::NomadServer;
use crate::support::{Scratch, describe, stderr, wait_for};

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello\n");
    s.write(".gitignore", "events.ndjson\n");
    s.commit();
    s
}

fn env(s: &Scratch, nomad: &NomadServer) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = s.env().into_iter().collect();
    env.push(("NOMAD_ADDR".into(), nomad.url()));
    env.push(("LEASEBOX_NOMAD_DRIVER".into(), "raw_exec".into()));
    env.push(("TERM".into(), "xterm-256color".into()));
    env
}

const ARGS: [&str; 6] = ["run", "--events", "events.ndjson", "--", "cat", "hello.txt"];

/// Whether the job's allocation exists and is still pending (starts are paused).
fn alloc_pending(nomad: &NomadServer) -> bool {
    nomad.jobs().iter().any(|j| {
        nomad
            .allocations(&j.id)
            .iter()
            .any(|a| a["ClientStatus"] == "pending")
    })
}

fn check_events(s: &Scratch) {
    let text = std::fs::read_to_string(s.repo().join("events.ndjson")).unwrap();
    let records = validated(&text);
    let pending = records.iter().find(|r| {
        r["event"] == "lease_waiting" && r["stage"] == "allocation" && r["status"] == "pending"
    });
    assert!(pending.is_some(), "no pending allocation in:\n{text}");
    let placed = records
        .iter()
        .find(|r| r["event"] == "lease_placed")
        .unwrap();
    assert!(placed["node"].is_string(), "{placed}");
    assert!(placed["allocation"].is_string(), "{placed}");
    let ready = records
        .iter()
        .find(|r| r["event"] == "lease_ready")
        .unwrap();
    assert_eq!(ready["node"], placed["node"], "{ready}");
    assert_eq!(ready["backend"], "nomad");
    let end = records.last().unwrap();
    assert_eq!(end["exit_code"], 0, "{text}");
}

#[test]
fn on_a_terminal_warmup_shows_what_the_cluster_reports_while_it_waits() {
    let nomad = NomadServer::start_modern();
    nomad.pause_starts(true);
    let s = repo();
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 30,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_leasebox"));
    cmd.args(ARGS);
    cmd.cwd(s.repo());
    cmd.env_clear();
    for (k, v) in env(&s, &nomad) {
        cmd.env(k, v);
    }
    let mut child = pair.slave.spawn_command(cmd).expect("spawn in the pty");
    drop(pair.slave);
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let sink = Arc::clone(&screen);
    let reading = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    // The spinner says what the cluster says: the allocation is pending, for as long as it is.
    wait_for("the spinner to show the pending allocation", || {
        let t = text();
        t.contains("pending") && t.contains("allocation")
    });
    assert!(alloc_pending(&nomad));
    nomad.pause_starts(false);
    let status = child.wait().expect("wait");
    drop(pair.master);
    let _ = reading.join();
    let screen = text();
    assert!(status.success(), "{status:?}\n{screen}");
    assert!(screen.contains("lease lbx_"), "{screen}");
    assert!(screen.contains("evaluation"), "{screen}");
    // Redrawn in place, with the elapsed time.
    assert!(
        screen.contains('\r') || screen.contains("\x1b["),
        "{screen}"
    );
    assert!(screen.contains("hello\r\n"), "{screen}");
    // The sync's bar: bytes against the file set's size, and its file count.
    assert!(
        screen.contains("B/20 B") && screen.contains("2 files"),
        "{screen}"
    );
    assert!(screen.contains("passed in"), "{screen}");
    assert!(
        screen.contains("\x1b[32mpassed"),
        "colour on a terminal: {screen}"
    );
    check_events(&s);
}

fn piped(verbose: bool) -> (std::process::Output, Scratch) {
    let nomad = NomadServer::start_modern();
    nomad.pause_starts(true);
    let s = repo();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leasebox"));
    if verbose {
        cmd.arg("-v");
    }
    cmd.args(ARGS)
        .current_dir(s.repo())
        .env_clear()
        .envs(env(&s, &nomad))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    wait_for("the allocation to be pending", || alloc_pending(&nomad));
    nomad.pause_starts(false);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", describe(&out));
    check_events(&s);
    (out, s)
}

#[test]
fn piped_there_is_no_progress_and_with_v_one_line_per_report() {
    let (out, _s) = piped(false);
    let err = stderr(&out);
    assert!(!err.contains("pending"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err}");
    assert!(err.contains("==> passed in"), "{err}");

    let (out, _s) = piped(true);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("leasebox: lease lbx_")
            && l.contains(": allocation ")
            && l.contains(" pending")),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.contains("evaluation complete")),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.contains(": placed: allocation ")),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err}");
}
