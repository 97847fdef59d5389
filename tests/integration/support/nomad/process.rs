//! Real local processes for tasks and exec sessions. Every task is the leader of its own
//! process group; exec'd commands join their task's group, so stopping the task takes them
//! too. Each child asks the kernel for SIGKILL when the thread that spawned it dies
//! (`PR_SET_PDEATHSIG`, set in `pre_exec`), and the instance kills every group it started
//! when it is dropped, so a failed test leaves nothing running.
//!
//! A task that ends takes every process of its allocation with it, as the executor's cgroup
//! does on a real client: processes that left the task's group (a verified-exec supervisor
//! in a session of its own) are found by the `NOMAD_ALLOC_ID` in their environment.
//!
//! Grandchildren (the `sleep` a task's shell runs) get no parent-death signal, so each instance
//! also starts a guardian: a tiny `sh` that is told every new process group on its stdin and,
//! when that pipe reaches EOF without a `done` line (the test process died), kills them all.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use tokio::process::{Child, Command};

/// A process the instance started, for the inspection API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub pgid: i32,
    pub alloc_id: String,
    pub task: String,
    /// `task` or `exec`.
    pub kind: String,
}

#[derive(Default)]
pub struct ProcessTable {
    procs: Mutex<BTreeMap<i32, ProcessInfo>>,
    guardian: Mutex<Option<Guardian>>,
}

struct Guardian {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
}

const GUARDIAN: &str = "g=''; while read p; do [ \"$p\" = done ] && exit 0; g=\"$g $p\"; done; \
                        for p in $g; do kill -9 -$p 2>/dev/null; done";

impl ProcessTable {
    pub fn add(&self, info: ProcessInfo) {
        let new_group = {
            let mut procs = self.procs.lock().unwrap();
            let new_group = !procs.values().any(|p| p.pgid == info.pgid);
            procs.insert(info.pid, info.clone());
            new_group
        };
        if new_group {
            self.tell_guardian(&format!("{}\n", info.pgid));
        }
    }

    fn tell_guardian(&self, line: &str) {
        use std::io::Write;
        let mut guard = self.guardian.lock().unwrap();
        if guard.is_none() {
            let spawned = std::process::Command::new("/bin/sh")
                .args(["-c", GUARDIAN])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            if let Ok(mut child) = spawned {
                let stdin = child.stdin.take().expect("piped stdin");
                *guard = Some(Guardian { child, stdin });
            }
        }
        if let Some(g) = guard.as_mut() {
            let _ = g.stdin.write_all(line.as_bytes());
            let _ = g.stdin.flush();
        }
    }

    /// Dismisses the guardian (the instance cleans up itself).
    fn dismiss_guardian(&self) {
        use std::io::Write;
        if let Some(mut g) = self.guardian.lock().unwrap().take() {
            let _ = g.stdin.write_all(b"done\n");
            drop(g.stdin);
            let _ = g.child.wait();
        }
    }

    /// The processes still alive (not yet reaped and not zombies).
    pub fn alive(&self) -> Vec<ProcessInfo> {
        self.procs
            .lock()
            .unwrap()
            .values()
            .filter(|p| is_alive(p.pid))
            .cloned()
            .collect()
    }

    /// SIGKILL to the exec'd processes of an allocation that run in groups of their own
    /// (TTY sessions lead their own session).
    pub fn kill_alloc(&self, alloc_id: &str) {
        for p in self.procs.lock().unwrap().values() {
            if p.alloc_id == alloc_id && p.kind == "exec" && p.pgid == p.pid {
                kill_group(p.pgid, libc::SIGKILL);
            }
        }
    }

    /// SIGKILL to every process group this instance started.
    pub fn kill_all(&self) {
        let procs = self.procs.lock().unwrap();
        let mut groups: Vec<i32> = procs.values().map(|p| p.pgid).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            kill_group(g, libc::SIGKILL);
        }
        for p in procs.values() {
            signal(p.pid, libc::SIGKILL);
        }
        drop(procs);
        self.dismiss_guardian();
    }
}

/// SIGKILL to every process whose environment carries `NOMAD_ALLOC_ID=<alloc_id>`: what a
/// client's cgroup teardown does when the task ends.
pub fn kill_alloc_processes(alloc_id: &str) {
    let needle = format!("NOMAD_ALLOC_ID={alloc_id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_bytes())
        {
            signal(pid, libc::SIGKILL);
        }
    }
}

pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

pub fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) with a positive pid has no memory-safety requirements.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

pub fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg(2) has no memory-safety requirements.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

pub struct SpawnSpec<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    /// `None`: lead a new group. `Some(g)`: join group `g`.
    pub group: Option<i32>,
    pub ignore_sigint: bool,
    pub pipes: bool,
}

/// Spawns a child in a process group with a parent-death signal.
pub fn spawn(spec: &SpawnSpec<'_>) -> std::io::Result<Child> {
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .current_dir(spec.cwd);
    cmd.kill_on_drop(false);
    if spec.pipes {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    cmd.process_group(spec.group.unwrap_or(0));
    let ignore_sigint = spec.ignore_sigint;
    // SAFETY: the closure only calls async-signal-safe functions (prctl, signal, getppid).
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            if ignore_sigint {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
            } else {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The exit code and signal of a finished child, with 128+signo for signal deaths.
pub fn exit_of(status: std::process::ExitStatus) -> (i64, i64) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        (code as i64, 0)
    } else if let Some(sig) = status.signal() {
        (128 + sig as i64, sig as i64)
    } else {
        (-1, 0)
    }
}

/// Spawns a child on a new pseudo-terminal (its own session, the PTY as controlling terminal);
/// returns the child and the PTY master.
pub fn spawn_pty(
    spec: &SpawnSpec<'_>,
    rows: u16,
    cols: u16,
) -> std::io::Result<(Child, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds into the provided integers; the name and termios pointers
    // may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both fds are open and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            libc::F_SETFD,
            libc::FD_CLOEXEC,
        );
    }
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .current_dir(spec.cwd);
    cmd.env("TERM", "xterm");
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls (prctl, setsid, ioctl, signal, getppid).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY as _, 0);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok((child, master))
}

/// Sets a PTY's window size.
pub fn resize_pty(master: &std::os::fd::OwnedFd, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer; the fd is a PTY master we own.
    unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(master),
            libc::TIOCSWINSZ,
            &size,
        );
    }
}
