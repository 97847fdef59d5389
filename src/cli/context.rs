//! What every command works with ([`Context`]), and the helpers commands share: the
//! repository root of a directory and a lease id from the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigInputs};
use crate::error::{ErrorKind, Failure};
use crate::host::Interrupts;
use crate::lease::LeaseId;

/// What every command works with: the environment snapshot, the current directory, the config
/// flags, the cancellation token Ctrl-C fires, the leases a run currently holds (for the
/// second Ctrl-C's message), the route of Ctrl-C to an open REPL, and how the human output
/// looks (`--quiet`, `-v`, colour).
pub(crate) struct Context {
    pub output: crate::events::Output,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub config_flags: Vec<(String, String)>,
    pub cancel: CancellationToken,
    pub active: Arc<Mutex<Vec<LeaseId>>>,
    pub interrupts: Interrupts,
}

impl Context {
    /// While a REPL is open, every Ctrl-C stops the call running at its prompt. Otherwise:
    /// first Ctrl-C: cancel (runs release their leases and exit 130). Second: exit at once,
    /// saying what was left and how to clean it.
    pub(super) fn watch_ctrl_c(&self) {
        let cancel = self.cancel.clone();
        let active = Arc::clone(&self.active);
        let interrupts = self.interrupts.clone();
        tokio::spawn(async move {
            let mut signal =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            let mut seen = 0;
            while seen < 2 {
                if signal.recv().await.is_none() {
                    return;
                }
                if interrupts.interrupt() {
                    continue;
                }
                seen += 1;
                if seen == 1 {
                    eprintln!(
                        "\nleasebox: cancelling; releasing the lease (press Ctrl-C again to exit at once)"
                    );
                    cancel.cancel();
                }
            }
            let left = active.lock().map(|v| v.clone()).unwrap_or_default();
            if left.is_empty() {
                eprintln!("leasebox: exiting at once");
            } else {
                for id in &left {
                    eprintln!(
                        "leasebox: left lease `{id}` behind; release it with `leasebox stop {id}`"
                    );
                }
            }
            std::process::exit(crate::error::EXIT_CANCELLED);
        });
    }

    /// Note a lease this command holds: a second Ctrl-C names it as left behind.
    pub(super) fn hold(&self, held: &crate::leases::HeldLease) {
        if let Ok(mut active) = self.active.lock() {
            active.push(held.lease().id.clone());
        }
    }

    /// Forget a lease once it is released or kept.
    pub(super) fn let_go(&self, id: &LeaseId) {
        if let Ok(mut active) = self.active.lock() {
            active.retain(|a| a != id);
        }
    }

    /// The repository root: the git top level of the current directory, else the directory.
    pub fn repo_root(&self) -> PathBuf {
        repo_root_of(&self.cwd)
    }

    /// Resolve the config with extra flags (from command options such as `--timeout`).
    pub fn config(&self, extra_flags: &[(String, String)]) -> Result<Config, Failure> {
        let mut flags = self.config_flags.clone();
        flags.extend_from_slice(extra_flags);
        let inputs = ConfigInputs {
            env: self.env.clone(),
            flags,
            repo_root: Some(self.repo_root()),
            trust_dir: self.state_dir().ok().map(|d| d.path().to_owned()),
        };
        let config = Config::load(&inputs).map_err(|e| Failure::from_error(&e))?;
        for notice in config.notices() {
            eprintln!("leasebox: {notice}");
        }
        Ok(config)
    }

    /// The events of a run: to the `--events` stream when given, to the terminal's progress
    /// and the summary.
    pub fn events(&self, stream: Option<&Path>) -> Result<crate::events::Events, Failure> {
        let stream = stream
            .map(|p| {
                crate::events::EventStream::open(p)
                    .map_err(|m| Failure::new(ErrorKind::Usage, format!("`--events`: {m}")))
            })
            .transpose()?;
        if stream
            .as_ref()
            .is_some_and(crate::events::EventStream::is_stdout)
        {
            // stdout carries the events: the commands' stdout joins the human output.
            crate::leases::TerminalSink::stdout_to_stderr(true);
        }
        Ok(crate::events::Events::new(crate::events::EventsOptions {
            stream,
            output: self.output,
            observers: Vec::new(),
        }))
    }

    /// The state dir (claims).
    pub fn state_dir(&self) -> Result<crate::ownership::StateDir, Failure> {
        crate::ownership::StateDir::resolve(&self.env).map_err(|e| Failure::from_error(&e))
    }

    /// The lease lifecycle on the backend `config` chooses, with this invocation's state dir.
    pub fn leases(
        &self,
        config: &Config,
        repo_root: PathBuf,
        timing: Arc<crate::leases::Timing>,
    ) -> Result<crate::leases::Leases, Failure> {
        let backend = crate::leases::open(config, &self.env)?;
        crate::leases::Leases::new(
            backend,
            &self.state_dir()?,
            config.settings(),
            repo_root,
            timing,
        )
    }
}

/// The git top level of `dir`, else `dir` itself.
#[must_use]
pub fn repo_root_of(dir: &Path) -> PathBuf {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if text.is_empty() {
                dir.to_path_buf()
            } else {
                PathBuf::from(text)
            }
        }
        _ => dir.to_path_buf(),
    }
}

/// Parse a lease id given on the command line.
pub(crate) fn lease_id(text: &str) -> Result<LeaseId, Failure> {
    text.parse()
        .map_err(|e: crate::lease::LeaseIdError| Failure::new(ErrorKind::Usage, e.to_string()))
}
