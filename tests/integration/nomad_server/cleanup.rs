//! Nothing outlives a test: not when the instance is dropped, not when the test process dies.

use std::time::{Duration, Instant};

use super::client::*;
use crate::support::nomad::{NomadServer, Profile};

fn state_of(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn wait_gone(pids: &[i32]) -> Vec<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<(i32, String)> = pids
            .iter()
            .filter_map(|p| state_of(*p).filter(|s| s != "Z").map(|s| (*p, s)))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn processes_die_with_the_instance() {
    let nomad = NomadServer::builder().profile(Profile::V1_1).start();
    running_keepalive(&nomad, "dropme").await;
    let task = nomad.alive_processes()[0].pid;
    let mut pids = vec![task];
    for _ in 0..100 {
        let kids = children_of(task);
        if !kids.is_empty() {
            pids.extend(kids);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pids.len() >= 2, "the task's shell runs a sleep");
    drop(nomad);
    assert_eq!(wait_gone(&pids), vec![]);
}

/// Run by [`processes_die_with_the_test_process`] in a child test process, which it aborts.
#[test]
#[ignore = "helper: only meaningful when run by processes_die_with_the_test_process"]
fn helper_abort_with_running_tasks() {
    if std::env::var_os("LEASEBOX_NOMAD_ABORT_HELPER").is_none() {
        return;
    }
    let nomad = NomadServer::start_v1_1();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(running_keepalive(&nomad, "orphan"));
    let task = nomad.alive_processes()[0].pid;
    let mut kids = Vec::new();
    for _ in 0..200 {
        kids = children_of(task);
        if !kids.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let all: Vec<String> = std::iter::once(task)
        .chain(kids)
        .map(|p| p.to_string())
        .collect();
    println!("PIDS {}", all.join(" "));
    std::process::abort();
}

#[test]
fn processes_die_with_the_test_process() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "nomad_server::cleanup::helper_abort_with_running_tasks",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LEASEBOX_NOMAD_ABORT_HELPER", "1")
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split("PIDS ").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "helper printed no pids: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.len() >= 2, "task and its sleep: {pids:?}");
    assert_eq!(
        wait_gone(&pids),
        vec![],
        "left running after the test process died"
    );
}
