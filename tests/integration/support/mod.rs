//! Helpers shared by the integration tests: scratch git repositories, a scratch environment
//! for the real `leasebox` binary (its own state, cache and config dirs), and sessions on the
//! local backend for in-process tests of the session layer; the Nomad API test server is
//! [`nomad`].

#![allow(dead_code)]

pub mod nomad;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use leasebox::backends::local::{LocalBackend, LocalFaults};
use leasebox::lease::{Backend, LeaseId, LeaseSpec};
use leasebox::session::{Session, Timing};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// A scratch repository with its own home, state and cache dirs.
pub struct Scratch {
    pub dir: TempDir,
}

impl Scratch {
    /// An empty scratch area with a git repository in `repo/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["repo", "home", "state", "cache", "config"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let s = Scratch { dir };
        s.git(&["init", "-q", "-b", "main"]);
        s
    }

    /// A scratch area whose `repo/` is a plain directory, not a git repository.
    pub fn plain() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["repo", "home", "state", "cache", "config"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Write a file under the repository, creating its parents.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.repo().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// Run git in the repository.
    pub fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Add everything and commit.
    pub fn commit(&self) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "test"]);
    }

    /// The environment the binary runs with: nothing of the test's own environment but PATH.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        env.insert(
            "HOME".into(),
            self.path().join("home").display().to_string(),
        );
        env.insert("USER".into(), "tester".into());
        env.insert(
            "LEASEBOX_STATE_DIR".into(),
            self.state().display().to_string(),
        );
        env.insert("XDG_CACHE_HOME".into(), self.cache().display().to_string());
        env.insert(
            "XDG_CONFIG_HOME".into(),
            self.path().join("config").display().to_string(),
        );
        env
    }

    /// A `leasebox` command in the repository with the scratch environment.
    pub fn leasebox(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leasebox"));
        cmd.args(args)
            .current_dir(self.repo())
            .env_clear()
            .envs(self.env());
        cmd
    }

    /// Run `leasebox` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.leasebox(args).output().expect("run leasebox")
    }

    /// A local backend over this scratch cache dir.
    pub fn local_backend(&self, faults: LocalFaults) -> Arc<dyn Backend> {
        Arc::new(LocalBackend::new(&self.cache(), &self.env()).with_faults(faults))
    }

    /// A fresh local lease with a prepared box, as a session.
    pub async fn session(&self, faults: LocalFaults) -> Session {
        let backend = self.local_backend(faults);
        let spec = LeaseSpec {
            id: LeaseId::generate(),
            owner: "tester".into(),
            repo_root: self.repo(),
            ..LeaseSpec::default()
        };
        let cancel = CancellationToken::new();
        let lease = backend.warmup(&spec, &cancel).await.expect("warmup");
        let session = Session::new(backend, lease, Arc::new(Timing::default()));
        session.prepare(&cancel).await.expect("prepare");
        session
    }
}

/// Text of an output's stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether a process is alive.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The exit code (-1 for a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Poll `f` every 20 ms until it holds; fail after 30 s naming `what`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Scratch {
    /// The claims in the scratch state dir, parsed.
    pub fn claims(&self) -> Vec<serde_json::Value> {
        std::fs::read_dir(self.state().join("claims"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The local lease directories that still exist.
    pub fn lease_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.cache().join("leasebox/leases"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}
