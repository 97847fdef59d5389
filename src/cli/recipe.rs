//! `leasebox run RECIPE [-- ARGS]` and a bare `leasebox run`: find the recipe (DESIGN §9), hand
//! it to the recipe host with leases over the lease lifecycle, and turn its report into the
//! exit funnel's failure and the timing file's phases.

use std::path::Path;
use std::sync::Arc;

use super::Context;
use super::args::RunArgs;
use crate::config::Config;
use crate::error::{ErrorKind, Failure};
use std::io::IsTerminal as _;

use crate::host::{
    RecipeLeases, RecipeRun, ReplOnFailure, StepReport, StepStatus, find_recipe, recipe_listing,
    run_recipe,
};
use crate::leases::{Events, Phase, PhaseStatus, Timing};

/// A bare `leasebox run`: list the recipes and exit with the usage code.
pub(crate) fn list(cx: &Context) -> Failure {
    Failure::new(
        ErrorKind::Usage,
        format!(
            "give a recipe to run (`leasebox run NAME [-- ARGS]`) or a command (`leasebox run -- CMD…`)\n{}",
            recipe_listing(&cx.repo_root())
        ),
    )
}

/// Run the recipe `name` with the arguments after `--`.
pub(crate) async fn run(
    args: &RunArgs,
    name: &str,
    cx: &Context,
    timing: &Arc<Timing>,
    events: &Events,
) -> Result<(), Failure> {
    let repo_root = cx.repo_root();
    let path = find_recipe(&repo_root, &cx.cwd, name).map_err(|e| e.failure())?;
    if args.no_sync || !args.fetch.is_empty() || !args.pass_env.is_empty() {
        return Err(Failure::new(
            ErrorKind::Usage,
            "`--no-sync`, `--fetch` and `--pass-env` apply to `run -- CMD`; a recipe says what it syncs, runs and fetches",
        ));
    }
    let mut extra = Vec::new();
    if let Some(t) = &args.timeout {
        extra.push(("exec_timeout".to_owned(), t.clone()));
    }
    let config = cx.config(&extra)?;
    let settings = config.settings();
    // The recipe's `lease{}` / `warmup{}` options are resolved against this config by the host
    // (`Config::with_recipe`): own keys only, up to the user's limits, below flags.
    let provider = provider(
        cx,
        &config,
        &repo_root,
        timing,
        events,
        args.lease.as_deref(),
    )?;
    let repl_on_failure = repl_on_failure(cx, args.repl_on_failure)?;
    let run = RecipeRun {
        path,
        repo_root,
        fetch_root: cx.cwd.clone(),
        args: args.rest.clone(),
        sandbox: super::repl::sandbox(settings),
        keep: args.keep,
        sync_clean: args.sync_clean,
        config: config.clone(),
        changed: None,
        command: None,
        on_busy_seen: None,
        events: events.clone(),
        repl_on_failure,
    };
    let report = run_recipe(&run, Arc::new(provider), &cx.cancel).await;
    for step in &report.steps {
        timing.push(step_phase(step, timing));
    }
    match report.error {
        None => Ok(()),
        Some(err) => Err(err.failure()),
    }
}

/// A recipe step as a phase of the timing file: `step:NAME`, with its start, status and lane.
pub(super) fn step_phase(step: &StepReport, timing: &Timing) -> Phase {
    let start_ms = step.started.map_or(0, |at| timing.offset_ms(at));
    let mut phase = Phase::new(format!("step:{}", step.name), start_ms, step.ms);
    phase.lane = step.lane;
    phase.group.clone_from(&step.group);
    match &step.status {
        StepStatus::Passed => {}
        StepStatus::Failed { code } => {
            phase.status = PhaseStatus::Failed;
            phase.code = Some(*code);
        }
        StepStatus::Errored { error_kind } => {
            phase.status = PhaseStatus::Errored;
            phase.error_kind = Some(error_kind.as_str().to_owned());
        }
        StepStatus::Skipped => phase.status = PhaseStatus::Skipped,
    }
    phase
}

/// The leases a recipe run (or a watch) takes its boxes from: the backend the config names,
/// the run's timing and events, and the kept lease `--lease` names, if any.
pub(super) fn provider(
    cx: &Context,
    config: &Config,
    repo_root: &Path,
    timing: &Arc<Timing>,
    events: &Events,
    lease: Option<&str>,
) -> Result<RecipeLeases, Failure> {
    let settings = config.settings();
    let leases = cx
        .leases(config, repo_root.to_path_buf(), Arc::clone(timing))?
        .with_events(events.clone());
    let reuse = lease.map(super::lease_id).transpose()?;
    Ok(RecipeLeases::new(
        leases,
        settings,
        repo_root.to_path_buf(),
        reuse,
    ))
}

/// What `--repl-on-failure` opens, when asked and stdin is a terminal (else it is ignored,
/// with a line saying so).
pub(super) fn repl_on_failure(cx: &Context, asked: bool) -> Result<Option<ReplOnFailure>, Failure> {
    if !asked {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("leasebox: `--repl-on-failure` is ignored: stdin is not a terminal");
        return Ok(None);
    }
    Ok(Some(ReplOnFailure {
        interrupts: cx.interrupts.clone(),
        history: Some(cx.state_dir()?.path().join(super::repl::HISTORY_FILE)),
    }))
}
