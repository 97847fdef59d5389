//! The command line: the only module that knows clap. It parses arguments, resolves the config,
//! picks a backend, wires Ctrl-C to a cancellation token, calls the layers below, and funnels
//! every outcome into one exit code ([`main`]).

mod args;
mod completion;
mod info;
mod leases;
mod manual;
mod recipe;
mod repl;
mod report;
mod run;
mod shards;
mod shell;
mod sync;
mod trust;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigInputs};
use crate::error::{ErrorKind, Failure};
use crate::host::Interrupts;
use crate::lease::LeaseId;

pub use args::{Cli, Commands, VERSION, command, parse};
pub use completion::COMPLETE_VAR;

/// Run leasebox with this process's arguments and environment; returns the exit code.
#[must_use]
pub fn main() -> i32 {
    // A shell's completion script calling back (`LEASEBOX_COMPLETE` set): answer and stop.
    if completion::answer_if_asked() {
        return 0;
    }
    let parsed = match args::parse(std::env::args_os()) {
        Ok(p) => p,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("leasebox: error: cannot read the current directory: {e}");
            return crate::error::EXIT_INTERNAL;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leasebox: error: cannot start the async runtime: {e}");
            return crate::error::EXIT_INTERNAL;
        }
    };
    let output = crate::events::Output::detect(parsed.cli.quiet, parsed.cli.verbose, &env);
    let json = parsed.cli.command.json();
    let context = Context {
        output,
        env,
        cwd,
        config_flags: parsed.config_flags,
        cancel: CancellationToken::new(),
        active: Arc::default(),
        interrupts: Interrupts::default(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            context.watch_ctrl_c();
            dispatch(parsed.cli.command, &context).await
        })
    }))
    .unwrap_or_else(|_| {
        Err(Failure::new(
            ErrorKind::Internal,
            "internal error: leasebox panicked (a bug; the message above says where); `leasebox list` shows any lease left behind",
        ))
    });
    // Do not wait for stray tasks (a dropped exec's readers, say).
    runtime.shutdown_background();
    exit_code(outcome, json)
}

/// The one exit funnel: print the failure (if any) and return its code. Under `--json` the
/// failure is also one JSON object on stdout (`error_kind`, `message`, `exit_code`, and what
/// the command had to say: [`Failure::to_json`]); the text goes to stderr either way.
fn exit_code(outcome: Result<(), Failure>, json: bool) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(failure) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&failure.to_json()).unwrap_or_default()
                );
            }
            if !failure.message.is_empty() {
                eprintln!("leasebox: error: {}", failure.message);
            }
            failure.code
        }
    }
}

async fn dispatch(command: Commands, cx: &Context) -> Result<(), Failure> {
    match command {
        Commands::Run(a) => run::run(a, cx).await,
        Commands::Watch(a) => watch::watch(a, cx).await,
        Commands::Shell(a) => shell::shell(a, cx).await,
        Commands::Repl(a) => repl::repl(a, cx).await,
        Commands::Warmup(a) => leases::warmup(&a, cx).await,
        Commands::Sync(a) => sync::sync(&a, cx).await,
        Commands::List(a) => leases::list(&a, cx).await,
        Commands::Status(a) => leases::status(&a, cx).await,
        Commands::Stop(a) => leases::stop(&a, cx).await,
        Commands::Cleanup(a) => leases::cleanup(&a, cx).await,
        Commands::Doctor(a) => info::doctor(&a, cx).await,
        Commands::Config(a) => info::config(&a, cx),
        Commands::Trust(a) => trust::trust(&a, cx),
        Commands::Backends(a) => {
            info::backends(&a);
            Ok(())
        }
        Commands::Report(a) => report::report(&a, cx),
        Commands::Completions(a) => {
            completion::write_script(a.shell, &mut std::io::stdout().lock())
        }
        Commands::Man(a) => manual::man(&a),
    }
}

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
    fn watch_ctrl_c(&self) {
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
