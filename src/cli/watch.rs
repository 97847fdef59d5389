//! `leasebox watch [RECIPE] [-- ARGS]` and `leasebox watch -- CMD…`: the arguments become the
//! host's [`WatchOptions`] here (the one place), the lease lifecycle and the recipe host do the
//! rest (`host::watch`), and each run's timing file is written by the hooks below: rewritten by
//! every rerun (`--timing-json FILE`), or one file per run (`--timing-json DIR/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Context;
use super::args::{OnBusyArg, WatchArgs};
use crate::error::{ErrorKind, Failure};
use crate::host::watch::{
    OnBusy, RunInfo, WatchEnd, WatchHooks, WatchMode, WatchOptions, stdin_keys, watch as watch_loop,
};
use crate::host::{CommandRecipe, RecipeReport, RecipeRun, find_recipe};
use crate::leases::{TIMING_FORMAT_VERSION, Timing, TimingReport, elapsed_ms};

fn duration(flag: &str, text: &str) -> Result<Duration, Failure> {
    humantime::parse_duration(text).map_err(|e| {
        Failure::new(
            ErrorKind::Usage,
            format!("invalid `{flag} {text}`: {e}; give a duration such as `100ms` or `2s`"),
        )
    })
}

pub(crate) async fn watch(args: WatchArgs, cx: &Context) -> Result<(), Failure> {
    let debounce = duration("--debounce", &args.debounce)?;
    let mode = match &args.poll {
        Some(text) => {
            let every = duration("--poll", text)?;
            if every.is_zero() {
                return Err(Failure::new(
                    ErrorKind::Usage,
                    "`--poll 0s` would scan without pause; give an interval such as `1s`",
                ));
            }
            WatchMode::Poll(every)
        }
        None => WatchMode::Events,
    };
    let repo_root = cx.repo_root();
    let (path, command) = match &args.recipe {
        Some(name) => {
            if !args.pass_env.is_empty() {
                return Err(Failure::new(
                    ErrorKind::Usage,
                    "`--pass-env` applies to `watch -- CMD`; a recipe says what its steps see",
                ));
            }
            let path = find_recipe(&repo_root, &cx.cwd, name).map_err(|e| e.failure())?;
            (path, None)
        }
        None if args.rest.is_empty() => return Err(super::recipe::list(cx)),
        None => {
            let cwd = cx
                .cwd
                .strip_prefix(&repo_root)
                .ok()
                .map(PathBuf::from)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.to_string_lossy().into_owned());
            let command = CommandRecipe {
                argv: args.rest.clone(),
                env: super::run::pass_env(&args.pass_env, cx)?,
                cwd,
            };
            (repo_root.join("(watch -- command)"), Some(command))
        }
    };
    if args.repl_on_failure && command.is_some() {
        return Err(Failure::new(
            ErrorKind::Usage,
            "`--repl-on-failure` applies to recipes (`leasebox watch RECIPE`); for one command, \
             keep the lease (`watch --keep -- CMD`) and look around with `leasebox repl --lease ID`",
        ));
    }
    let mut extra = Vec::new();
    if let Some(t) = &args.timeout {
        duration("--timeout", t)?;
        extra.push(("exec_timeout".to_owned(), t.clone()));
    }
    let config = cx.config(&extra)?;
    let settings = config.settings();
    let timing = Arc::new(Timing::default());
    let events = cx.events(args.events.as_deref())?;
    let provider = super::recipe::provider(
        cx,
        &config,
        &repo_root,
        &timing,
        &events,
        args.lease.as_deref(),
    )?;
    let repl_on_failure = super::recipe::repl_on_failure(cx, args.repl_on_failure)?;
    let (recipe_args, command) = if command.is_some() {
        (Vec::new(), command)
    } else {
        (args.rest.clone(), None)
    };
    let run = RecipeRun {
        path,
        repo_root,
        fetch_root: cx.cwd.clone(),
        args: recipe_args,
        sandbox: super::repl::sandbox(settings),
        // The watch keeps the leases warm between runs and releases them when it ends.
        keep: false,
        config: config.clone(),
        changed: None,
        command,
        on_busy_seen: None,
        events: events.clone(),
        repl_on_failure,
        // Reruns mirror the changes and keep what the box built.
        sync_clean: false,
    };
    let options = WatchOptions {
        debounce,
        on_busy: args.on_busy.map(|b| match b {
            OnBusyArg::Queue => OnBusy::Queue,
            OnBusyArg::Restart => OnBusy::Restart,
        }),
        mode,
        keep: args.keep,
        excludes: settings.sync_exclude.clone(),
        own_outputs: args
            .timing_json
            .iter()
            .chain(args.events.iter().filter(|p| p.as_os_str() != "-"))
            .map(|p| cx.cwd.join(p))
            .collect(),
        recipe: args.recipe.clone(),
        ..WatchOptions::default()
    };
    let hooks = Arc::new(TimingHooks {
        timing,
        target: args.timing_json.as_deref().map(TimingTarget::of),
    });
    let report = watch_loop(
        &run,
        Arc::new(provider),
        &options,
        {
            // While the REPL is open it owns the terminal: no keys are read.
            let interrupts = cx.interrupts.clone();
            stdin_keys(move || interrupts.is_open())
        },
        hooks,
        &cx.cancel,
    )
    .await;
    // The closing summary: the last run's steps, the runs' totals, the leases' fates.
    if !cx.output.quiet && report.runs > 0 {
        events.say(report.summary.render(cx.output).trim_end());
    }
    match report.end {
        WatchEnd::Quit => Ok(()),
        WatchEnd::Cancelled => Err(Failure::new(
            ErrorKind::Cancelled,
            format!("cancelled after {} runs", report.runs),
        )),
        WatchEnd::Failed(err) => Err(err.failure()),
    }
}

/// Where the timing files go.
#[derive(Debug, Clone)]
enum TimingTarget {
    /// One file, rewritten by every run.
    File(PathBuf),
    /// One file per run in this directory.
    Dir(PathBuf),
}

impl TimingTarget {
    fn of(path: &Path) -> TimingTarget {
        let text = path.to_string_lossy();
        if text.ends_with('/') || path.is_dir() {
            TimingTarget::Dir(path.to_path_buf())
        } else {
            TimingTarget::File(path.to_path_buf())
        }
    }
}

/// The hooks of the CLI: each run gets its own timing record.
struct TimingHooks {
    timing: Arc<Timing>,
    target: Option<TimingTarget>,
}

impl TimingHooks {
    fn write(&self, run: &RunInfo, report: &RecipeReport) -> Result<(), Failure> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        for step in &report.steps {
            self.timing
                .push(super::recipe::step_phase(step, &self.timing));
        }
        let timing_report = TimingReport {
            format_version: TIMING_FORMAT_VERSION,
            phases: self.timing.phases(),
            total_ms: elapsed_ms(run.started),
            exit_code: report.exit_code(),
            error_kind: report
                .error
                .as_ref()
                .map(|e| crate::error::HasKind::kind(e).as_str().to_owned()),
            run_id: Some(run.id.clone()),
            changed: run.changed.clone(),
        };
        let path = match target {
            TimingTarget::File(path) => path.clone(),
            TimingTarget::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Failure::new(
                        ErrorKind::ConfigError,
                        format!(
                            "cannot create the timing directory `{}`: {e}",
                            dir.display()
                        ),
                    )
                })?;
                dir.join(format!("run-{:04}-{}.json", run.number, run.id))
            }
        };
        timing_report.write(&path)
    }
}

// A timing file that cannot be written is said on the run's end; the watch goes on.
impl WatchHooks for TimingHooks {
    fn run_started(&self, _run: &RunInfo) {
        self.timing.restart();
    }

    fn run_finished(&self, run: &RunInfo, report: &RecipeReport) {
        if let Err(e) = self.write(run, report) {
            eprintln!("leasebox: {}", e.message);
        }
    }
}
