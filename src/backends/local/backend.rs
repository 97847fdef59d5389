//! The local backend, the embedded default: a lease is a fresh directory under the cache dir
//! (`$XDG_CACHE_HOME/leasebox/leases/<id>`, else `~/.cache/leasebox/leases/<id>`), holding the
//! workdir `work/` and its box-side state `work.lbx/`.
//!
//! Exec spawns the process in its own process group in that directory, with a cleaned
//! environment (`PATH`, `HOME`, `USER`, `LANG`, `TERM`, `TMPDIR` from this process, plus what
//! the command sets), so no token leaks into steps. [`ExecStream::kill`] stops the exec's
//! whole group (TERM, then KILL after a grace period); a verified-exec command runs in its
//! supervisor's own session, outside that group, and the session layer stops it through its
//! record. Dropping the stream leaves the command running, as a dropped websocket does on
//! Nomad. Release stops whatever still runs in the lease (the exec groups and every recorded
//! run's process group) and removes the directory. A terminal exec runs on a real
//! pseudo-terminal (`pty.rs`). This backend is not a sandbox: commands run as the user, on this
//! machine.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pty;
use crate::lease::{
    Backend, BoxRef, ExecEvent, ExecRequest, ExecStream, Features, Lease, LeaseError, LeaseId,
    LeaseSpec, RemoteLease, RemoteState, TtySize,
};

/// The variables of this process that local execs inherit; nothing else is passed.
pub const INHERITED_ENV: [&str; 6] = ["PATH", "HOME", "USER", "LANG", "TERM", "TMPDIR"];

/// The marker file recording who created a local lease.
const LEASE_FILE: &str = "lease.json";

#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    id: LeaseId,
    owner: String,
    created: u64,
    #[serde(default)]
    expires_at: Option<u64>,
    /// The boxes of the lease (a shard group has several).
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

impl LeaseRecord {
    fn ownership(&self, workdir: &str) -> crate::lease::OwnershipRecord {
        crate::lease::OwnershipRecord {
            lease_id: self.id.to_string(),
            owner: self.owner.clone(),
            scope: "local".to_owned(),
            workdir: workdir.to_owned(),
            expires_at: self
                .expires_at
                .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s)),
            managed: true,
        }
    }
}

/// The variable that injects faults into the local backend, for tests of the real binary:
/// `release_delay_ms=N` makes every release wait N ms first (a slow cluster).
pub const FAULTS_VAR: &str = "LEASEBOX_LOCAL_FAULTS";

/// Fault injection for the local backend (tests only).
#[derive(Debug, Clone, Default)]
pub struct LocalFaults {
    /// Drop the connection of every exec whose argv contains this marker after this long,
    /// leaving the command running (what a lost websocket does on Nomad).
    pub drop_exec_after: Option<(String, Duration)>,
    /// Kill the exec'd process (that process alone, SIGKILL) of every exec whose argv contains
    /// this marker after this long, and report the connection lost: what a Nomad agent does
    /// when a client goes away while output flows. A zero delay kills it before it reads any
    /// of its stdin.
    pub kill_exec_after: Option<(String, Duration)>,
    /// Wait this long before every release.
    pub release_delay: Option<Duration>,
    /// Never deliver the exit of execs whose argv contains this marker: the stream stays open
    /// after the command ended (a hung session).
    pub hang_exec: Option<String>,
}

impl LocalFaults {
    /// Faults named in [`FAULTS_VAR`], if set.
    #[must_use]
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let mut faults = LocalFaults::default();
        for item in env
            .get(FAULTS_VAR)
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
        {
            if let Some(ms) = item.trim().strip_prefix("release_delay_ms=")
                && let Ok(ms) = ms.parse()
            {
                faults.release_delay = Some(Duration::from_millis(ms));
            }
        }
        faults
    }
}

/// A backend whose boxes are directories on this machine.
#[derive(Debug)]
pub struct LocalBackend {
    leases_dir: PathBuf,
    env: Vec<(String, String)>,
    kill_grace: Duration,
    groups: Arc<Mutex<HashMap<LeaseId, Vec<i32>>>>,
    faults: LocalFaults,
}

/// Where local lease trees go: `$XDG_CACHE_HOME/leasebox`, else `$HOME/.cache/leasebox`.
///
/// # Errors
/// Neither `XDG_CACHE_HOME` nor `HOME` is set.
pub fn cache_dir(env: &BTreeMap<String, String>) -> Result<PathBuf, LeaseError> {
    if let Some(x) = env.get("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("leasebox"));
    }
    if let Some(h) = env.get("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h).join(".cache").join("leasebox"));
    }
    Err(LeaseError::Config(
        "cannot find a cache directory for local leases: set `XDG_CACHE_HOME` or `HOME`".into(),
    ))
}

impl LocalBackend {
    /// A local backend keeping its lease trees under `cache_dir/leases`, passing the
    /// [`INHERITED_ENV`] variables found in `env` to commands.
    #[must_use]
    pub fn new(cache_dir: &Path, env: &BTreeMap<String, String>) -> Self {
        let faults = LocalFaults::from_env(env);
        let env = INHERITED_ENV
            .iter()
            .filter_map(|k| env.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        LocalBackend {
            leases_dir: cache_dir.join("leases"),
            env,
            kill_grace: Duration::from_secs(2),
            groups: Arc::default(),
            faults,
        }
    }

    /// Inject faults (tests only).
    #[must_use]
    pub fn with_faults(mut self, faults: LocalFaults) -> Self {
        self.faults = faults;
        self
    }

    fn root_of(&self, id: &LeaseId) -> PathBuf {
        self.leases_dir.join(id.as_str())
    }

    /// The lease `id` of `count` boxes: one box works in `<root>/work`; box k of a group in
    /// `<root>/box-k/work`, each with its own box-side state beside it.
    fn lease_for(&self, id: &LeaseId, count: u32) -> Lease {
        let root = self.root_of(id);
        let mut handle = BTreeMap::new();
        handle.insert("root".to_owned(), root.to_string_lossy().into_owned());
        let boxes: Vec<BoxRef> = (1..=count.max(1))
            .map(|index| {
                let dir = if count > 1 {
                    root.join(format!("box-{index}")).join("work")
                } else {
                    root.join("work")
                };
                let mut handle = BTreeMap::new();
                handle.insert("node_name".to_owned(), "local".to_owned());
                BoxRef {
                    index,
                    workdir: dir.to_string_lossy().into_owned(),
                    handle,
                }
            })
            .collect();
        Lease {
            id: id.clone(),
            backend: "local".to_owned(),
            workdir: boxes[0].workdir.clone(),
            handle,
            boxes,
        }
    }

    /// The number of boxes the lease's marker records (1 when it is unreadable).
    fn count_of(&self, id: &LeaseId) -> u32 {
        std::fs::read(self.root_of(id).join(LEASE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).ok())
            .map_or(1, |r| r.count.max(1))
    }

    /// Start `program` on a fresh pseudo-terminal of `size` (`pty.rs`): the leader of its own
    /// session, the terminal its controlling terminal. Typed input is written to the master,
    /// output read from it as stdout, resizes set on it; kill stops the session's group.
    fn exec_terminal(
        &self,
        lease: &Lease,
        program: &str,
        args: &[String],
        cwd: &Path,
        size: TtySize,
    ) -> Result<ExecStream, LeaseError> {
        let failed = |e: std::io::Error| {
            LeaseError::io(
                format!("cannot open a terminal for `{program}` in the local lease"),
                e,
            )
        };
        let (master, slave) = pty::open(size).map_err(failed)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::from(slave.try_clone().map_err(failed)?))
            .stdout(Stdio::from(slave.try_clone().map_err(failed)?))
            .stderr(Stdio::from(slave))
            .kill_on_drop(false);
        // SAFETY: the hook makes only async-signal-safe system calls (setsid, ioctl).
        unsafe {
            cmd.pre_exec(|| pty::become_session_leader());
        }
        let spawned = cmd.spawn();
        // The slave stays open only in the child: its exit ends the terminal.
        drop(cmd);
        let mut child = spawned.map_err(|e| {
            LeaseError::io(format!("cannot start `{program}` in the local lease"), e)
        })?;
        let master = Arc::new(pty::Master::new(master).map_err(failed)?);
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(lease.id.clone())
            .or_default()
            .push(pgid);

        let (events_tx, events_rx) = mpsc::channel(64);
        let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(16);
        let (resize_tx, mut resize_rx) = mpsc::channel::<TtySize>(4);
        let kill = CancellationToken::new();
        let writer = Arc::clone(&master);
        tokio::spawn(async move {
            while let Some(chunk) = stdin_rx.recv().await {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let grace = self.kill_grace;
        let kill_token = kill.clone();
        let groups = Arc::clone(&self.groups);
        let lease_id = lease.id.clone();
        tokio::spawn(async move {
            let mut killed = false;
            let mut output_ended = false;
            let status = loop {
                tokio::select! {
                    () = kill_token.cancelled(), if !killed => {
                        killed = true;
                        signal_group(pgid, libc::SIGHUP);
                        signal_group(pgid, libc::SIGTERM);
                        tokio::select! {
                            _ = child.wait() => {}
                            () = tokio::time::sleep(grace) => signal_group(pgid, libc::SIGKILL),
                        }
                    }
                    Some(size) = resize_rx.recv() => master.resize(size),
                    read = master.read(), if !output_ended => match read {
                        pty::Read::Data(chunk) => {
                            if events_tx.send(ExecEvent::Stdout(chunk)).await.is_err() {
                                // Nobody listens: the command keeps its terminal until it ends.
                                let _ = child.wait().await;
                                return;
                            }
                        }
                        pty::Read::End => output_ended = true,
                    },
                    status = child.wait() => break status,
                }
            };
            if !output_ended {
                for chunk in master.drain().await {
                    if events_tx.send(ExecEvent::Stdout(chunk)).await.is_err() {
                        break;
                    }
                }
            }
            if let Some(list) = groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&lease_id)
            {
                list.retain(|g| *g != pgid);
            }
            let event = match status {
                Ok(status) => ExecEvent::Exited(exit_code(status)),
                Err(e) => ExecEvent::Lost(format!("cannot wait for the command: {e}")),
            };
            let _ = events_tx.send(event).await;
        });
        Ok(ExecStream {
            stdin: Some(stdin_tx),
            events: events_rx,
            kill,
            resize: Some(resize_tx),
        })
    }

    /// Stop every process this lease still runs: the groups this process started, and the
    /// process group of every recorded run that has no exit record (its supervisor's
    /// session, which no exec's group contains), from whichever leasebox process started it.
    fn stop_everything(&self, lease: &Lease) {
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lease.id)
            .unwrap_or_default();
        for pgid in &groups {
            signal_group(*pgid, libc::SIGKILL);
        }
        // Every box of the lease, whatever the caller's lease says (a lease rebuilt from a
        // listing knows no boxes).
        let count = self.count_of(&lease.id).max(lease.count() as u32);
        for member in self.lease_for(&lease.id, count).members() {
            for pgid in recorded_groups(&PathBuf::from(member.state_dir()).join("runs")) {
                signal_group(pgid, libc::SIGKILL);
            }
        }
    }
}

/// The process groups of the runs recorded in `runs` that have no exit record yet. The records
/// are the verified-exec protocol's (`session::scripts`): empty files whose names carry the
/// values, `RUN.pid.PID.PGID` and `RUN.exit.CODE`.
fn recorded_groups(runs: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    let names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let exited = |run: &str| {
        names.iter().any(|n| {
            n.strip_prefix(run)
                .and_then(|rest| rest.strip_prefix(".exit."))
                .is_some_and(|code| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    names
        .iter()
        .filter_map(|name| {
            let (run, ids) = name.split_once(".pid.")?;
            let (pid, pgid) = ids.split_once('.')?;
            pid.parse::<u32>().ok()?;
            let pgid = pgid.parse::<i32>().ok()?;
            (!exited(run)).then_some(pgid)
        })
        .filter(|pgid| *pgid > 1)
        .collect()
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) on a negative pid signals the process group we created.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl Backend for LocalBackend {
    fn features(&self) -> Features {
        Features {
            name: "local",
            description: "a scratch directory on this machine; commands run as you, unsandboxed",
            isolation: false,
            exec_kill: true,
            image: false,
            resources: false,
            available: true,
        }
    }

    async fn warmup(
        &self,
        spec: &LeaseSpec,
        cancel: &CancellationToken,
    ) -> Result<Lease, LeaseError> {
        if cancel.is_cancelled() {
            return Err(LeaseError::Cancelled);
        }
        let root = self.root_of(&spec.id);
        let lease = self.lease_for(&spec.id, spec.boxes());
        let create = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.leases_dir)?;
            std::fs::create_dir(&root)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
            }
            for member in lease.members() {
                std::fs::create_dir_all(&member.workdir)?;
                std::fs::create_dir_all(PathBuf::from(member.state_dir()).join("runs"))?;
            }
            let record = LeaseRecord {
                id: spec.id.clone(),
                owner: spec.owner.clone(),
                created: now_secs(),
                expires_at: Some(now_secs() + spec.ttl.as_secs()),
                count: spec.boxes(),
            };
            std::fs::write(root.join(LEASE_FILE), serde_json::to_vec(&record)?)?;
            Ok(())
        };
        if let Err(e) = create() {
            let _ = std::fs::remove_dir_all(&root);
            return Err(LeaseError::Config(format!(
                "cannot create the local lease directory `{}`: {e}; set `XDG_CACHE_HOME` to a writable directory",
                root.display()
            )));
        }
        Ok(lease)
    }

    async fn exec(&self, lease: &Lease, request: ExecRequest) -> Result<ExecStream, LeaseError> {
        let root = self.root_of(&lease.id);
        if !root.is_dir() {
            return Err(LeaseError::NotFound(lease.id.clone()));
        }
        let Some((program, args)) = request.argv.split_first() else {
            return Err(LeaseError::Internal("exec with an empty argv".into()));
        };
        let cwd = request.cwd.as_deref().map_or(root.clone(), PathBuf::from);
        if let Some(size) = request.tty {
            return self.exec_terminal(lease, program, args, &cwd, size);
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| {
            LeaseError::io(format!("cannot start `{program}` in the local lease"), e)
        })?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let kill_after = self
            .faults
            .kill_exec_after
            .as_ref()
            .filter(|(marker, _)| request.argv.iter().any(|a| a.contains(marker.as_str())))
            .map(|(_, d)| *d);
        if kill_after == Some(Duration::ZERO) {
            // SAFETY: kill(2) on the pid of the child we just spawned.
            unsafe {
                libc::kill(pgid, libc::SIGKILL);
            }
        }
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(lease.id.clone())
            .or_default()
            .push(pgid);

        let (events_tx, events_rx) = mpsc::channel(64);
        let kill = CancellationToken::new();
        let stdin_tx = if let Some(mut child_stdin) = child.stdin.take() {
            let (tx, mut rx) = mpsc::channel::<Bytes>(16);
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if child_stdin.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                // Dropping closes the command's stdin.
            });
            Some(tx)
        } else {
            None
        };

        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let drop_after = self
            .faults
            .drop_exec_after
            .as_ref()
            .filter(|(marker, _)| request.argv.iter().any(|a| a.contains(marker.as_str())))
            .map(|(_, d)| *d);
        let hang = self
            .faults
            .hang_exec
            .as_ref()
            .is_some_and(|marker| request.argv.iter().any(|a| a.contains(marker.as_str())));
        let grace = self.kill_grace;
        let kill_token = kill.clone();
        let groups = Arc::clone(&self.groups);
        let lease_id = lease.id.clone();
        tokio::spawn(async move {
            let (out_tx, mut out_rx) = mpsc::channel::<ExecEvent>(64);
            let pump_out = tokio::spawn(pump(stdout, out_tx.clone(), ExecEvent::Stdout));
            let pump_err = tokio::spawn(pump(stderr, out_tx, ExecEvent::Stderr));
            if kill_after == Some(Duration::ZERO) {
                // Killed before it read anything: the connection is gone, nothing more comes.
                pump_out.abort();
                pump_err.abort();
                let _ = events_tx
                    .send(ExecEvent::Lost("connection dropped (simulated)".into()))
                    .await;
                return;
            }
            let dropped = async {
                match (drop_after, kill_after) {
                    (Some(d), _) | (None, Some(d)) => tokio::time::sleep(d).await,
                    (None, None) => std::future::pending().await,
                }
            };
            tokio::pin!(dropped);
            let mut killed = false;
            loop {
                tokio::select! {
                    () = kill_token.cancelled(), if !killed => {
                        killed = true;
                        signal_group(pgid, libc::SIGTERM);
                        let deadline = tokio::time::sleep(grace);
                        tokio::select! {
                            _ = child.wait() => {}
                            () = deadline => signal_group(pgid, libc::SIGKILL),
                        }
                    }
                    () = &mut dropped => {
                        // Simulated connection loss: stop reading, leave the command running
                        // (or, as an agent does, kill the exec'd process alone).
                        if kill_after.is_some() && drop_after.is_none() {
                            // SAFETY: kill(2) on the pid of the child this task owns.
                            unsafe {
                                libc::kill(pgid, libc::SIGKILL);
                            }
                        }
                        pump_out.abort();
                        pump_err.abort();
                        let _ = events_tx.send(ExecEvent::Lost("connection dropped (simulated)".into())).await;
                        return;
                    }
                    event = out_rx.recv() => match event {
                        Some(e) => {
                            if events_tx.send(e).await.is_err() {
                                // Nobody listens any more: the connection is gone, the command
                                // goes on (its output is recorded by the wrapper).
                                return;
                            }
                        }
                        None => break,
                    }
                }
            }
            let status = child.wait().await;
            if let Some(list) = groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&lease_id)
            {
                list.retain(|g| *g != pgid);
            }
            if hang {
                // Keep the stream open, silent, until the reader goes away or kills it.
                tokio::select! {
                    () = events_tx.closed() => {}
                    () = kill_token.cancelled() => {}
                }
                return;
            }
            let event = match status {
                Ok(status) => ExecEvent::Exited(exit_code(status)),
                Err(e) => ExecEvent::Lost(format!("cannot wait for the command: {e}")),
            };
            let _ = events_tx.send(event).await;
        });

        Ok(ExecStream {
            stdin: stdin_tx,
            events: events_rx,
            kill,
            resize: None,
        })
    }

    async fn release(&self, lease: &Lease, _cancel: &CancellationToken) -> Result<(), LeaseError> {
        if let Some(delay) = self.faults.release_delay {
            tokio::time::sleep(delay).await;
        }
        self.stop_everything(lease);
        let root = self.root_of(&lease.id);
        match tokio::fs::remove_dir_all(&root).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LeaseError::io(
                format!(
                    "cannot remove the local lease directory `{}`",
                    root.display()
                ),
                e,
            )),
        }
    }

    async fn status(&self, lease: &Lease) -> Result<RemoteState, LeaseError> {
        let root = self.root_of(&lease.id);
        Ok(if root.join(LEASE_FILE).is_file() {
            RemoteState::Ready
        } else {
            RemoteState::Gone
        })
    }

    async fn record(
        &self,
        lease: &Lease,
    ) -> Result<Option<crate::lease::OwnershipRecord>, LeaseError> {
        let path = self.root_of(&lease.id).join(LEASE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let record: LeaseRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    LeaseError::Ownership(format!(
                        "the lease marker `{}` is corrupt: {e}",
                        path.display()
                    ))
                })?;
                Ok(Some(record.ownership(
                    &self.lease_for(&lease.id, record.count).workdir,
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LeaseError::io(
                format!("cannot read `{}`", path.display()),
                e,
            )),
        }
    }

    async fn list(&self, owner: &str) -> Result<Vec<RemoteLease>, LeaseError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.leases_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(LeaseError::io(
                    format!("cannot read `{}`", self.leases_dir.display()),
                    e,
                ));
            }
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read(entry.path().join(LEASE_FILE)) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<LeaseRecord>(&text) else {
                continue;
            };
            if record.owner != owner {
                continue;
            }
            let mut details = BTreeMap::new();
            details.insert(
                "root".to_owned(),
                entry.path().to_string_lossy().into_owned(),
            );
            details.insert("created".to_owned(), record.created.to_string());
            let lease = self.lease_for(&record.id, record.count);
            out.push(RemoteLease {
                record: record.ownership(&lease.workdir),
                id: record.id,
                state: RemoteState::Ready,
                details,
                lease,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    tx: mpsc::Sender<ExecEvent>,
    wrap: fn(Bytes) -> ExecEvent,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}
