//! `leasebox run`: lease (or reuse) a box, sync the repository, run the command, fetch what was
//! asked for (also after a failure), release (unless kept), and write the timing file. Ctrl-C
//! at any point stops the command, releases the lease and exits 130.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Context;
use super::args::RunArgs;
use crate::error::{ErrorKind, Failure};
use crate::leases::{
    Command, HeldLease, LeaseRequest, Leases, Phase, PhaseStatus, SyncOptions,
    TIMING_FORMAT_VERSION, TerminalSink, Timing, TimingReport, elapsed_ms,
};

pub(crate) async fn run(args: RunArgs, cx: &Context) -> Result<(), Failure> {
    let start = Instant::now();
    let timing = Arc::new(Timing::default());
    let timing_file = args.timing_json.clone();
    let outcome = run_inner(args, cx, &timing).await;
    if let Some(path) = timing_file {
        let report = TimingReport {
            format_version: TIMING_FORMAT_VERSION,
            phases: timing.phases(),
            total_ms: elapsed_ms(start),
            exit_code: outcome.as_ref().map_or_else(|f| f.code, |()| 0),
            error_kind: outcome.as_ref().err().map(|f| f.kind.as_str().to_owned()),
        };
        report.write(&path)?;
    }
    outcome
}

async fn run_inner(args: RunArgs, cx: &Context, timing: &Arc<Timing>) -> Result<(), Failure> {
    if let Some(recipe) = &args.recipe {
        return super::recipe::run(&args, recipe, cx, timing).await;
    }
    if args.rest.is_empty() {
        return Err(super::recipe::list(cx));
    }
    // Bad input is refused before anything is leased.
    for path in &args.fetch {
        crate::leases::check_fetch_path(path).map_err(|e| Failure::from_error(&e))?;
    }
    let mut extra = Vec::new();
    if let Some(t) = &args.timeout {
        humantime::parse_duration(t).map_err(|e| {
            Failure::new(
                ErrorKind::Usage,
                format!("invalid `--timeout {t}`: {e}; give a duration such as `90s` or `20m`"),
            )
        })?;
        extra.push(("exec_timeout".to_owned(), t.clone()));
    }
    let config = cx.config(&extra)?;
    let settings = config.settings();
    let env = pass_env(&args.pass_env, cx)?;
    let backend = crate::leases::open(&config, &cx.env)?;
    let repo_root = cx.repo_root();
    let leases = Leases::new(
        backend,
        &cx.state_dir()?,
        settings,
        repo_root.clone(),
        Arc::clone(timing),
    )?;
    let asked: Vec<&str> = [
        "nomad.image",
        "nomad.cpu",
        "nomad.memory_mb",
        "nomad.disk_mb",
    ]
    .into_iter()
    .filter(|k| {
        config
            .get(k)
            .is_some_and(|r| !matches!(r.source, crate::config::Source::Default))
    })
    .collect();
    if !asked.is_empty() && !leases.backend().features().resources {
        eprintln!(
            "leasebox: the local backend runs commands on this machine and ignores {}",
            asked
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let held = match &args.lease {
        Some(id) => {
            leases
                .attach(&super::lease_id(id)?, settings.nomad.workdir.as_deref())
                .await?
        }
        None => {
            let request = LeaseRequest {
                image: Some(settings.nomad.image.clone()),
                cpu: Some(settings.nomad.cpu),
                memory_mb: Some(settings.nomad.memory_mb),
                disk_mb: Some(settings.nomad.disk_mb),
                workdir: settings.nomad.workdir.clone(),
                keep: args.keep,
            };
            // `acquire` honours the token itself and leaves nothing behind when cancelled.
            leases.acquire(&request, &cx.cancel).await?
        }
    };
    let id = held.lease().id.clone();
    let reused = held.reused();
    if let Ok(mut active) = cx.active.lock() {
        active.push(id.clone());
    }
    let result = work(&args, cx, &held, &repo_root, settings, env).await;
    let keep = args.keep
        || reused
        || (args.keep_on_failure
            && result
                .as_ref()
                .is_err_and(|f| f.kind != ErrorKind::Cancelled));

    if keep && !args.keep && !reused {
        leases.mark_kept(&id).await?;
    }
    let release = if keep {
        eprintln!(
            "leasebox: kept lease `{id}`: reuse it with `--lease {id}`, release it with `leasebox stop {id}`"
        );
        Ok(())
    } else {
        // Release even after Ctrl-C: with a fresh token, so the cleanup itself is not cancelled.
        held.release(&CancellationToken::new()).await
    };
    if let Ok(mut active) = cx.active.lock() {
        active.retain(|a| a != &id);
    }
    match (result, release) {
        (Err(f), Err(r)) => Err(Failure {
            message: format!(
                "{}; also, releasing lease `{id}` failed: {}",
                f.message, r.message
            ),
            ..f
        }),
        (Err(f), Ok(())) => Err(f),
        (Ok(()), Err(r)) => Err(Failure {
            message: format!(
                "the command succeeded, but releasing lease `{id}` failed: {}; `leasebox stop {id}` retries",
                r.message
            ),
            ..r
        }),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// The values of the `--pass-env` variables: each must be set.
fn pass_env(names: &[String], cx: &Context) -> Result<Vec<(String, String)>, Failure> {
    names
        .iter()
        .map(|name| match cx.env.get(name) {
            Some(v) => Ok((name.clone(), v.clone())),
            None => Err(Failure::new(
                ErrorKind::Usage,
                format!("`--pass-env {name}`: `{name}` is not set in your environment"),
            )),
        })
        .collect()
}

/// Sync, run, fetch. Fetch happens even when the command failed or was cancelled midway
/// (not after Ctrl-C: the user asked to stop).
async fn work(
    args: &RunArgs,
    cx: &Context,
    held: &HeldLease,
    repo_root: &Path,
    settings: &crate::config::Settings,
    env: Vec<(String, String)>,
) -> Result<(), Failure> {
    let cancel = &cx.cancel;
    let session = held.session();
    if !args.no_sync {
        let options = SyncOptions {
            root: repo_root.to_path_buf(),
            excludes: settings.sync_exclude.clone(),
            clean: args.sync_clean,
            ..SyncOptions::default()
        };
        let report = session
            .sync(&options, cancel)
            .await
            .map_err(|e| Failure::from_error(&e))?;
        for notice in &report.notices {
            eprintln!("leasebox: {notice}");
        }
    }
    // Run in the same place relative to the repository as the user stands.
    let cwd = cx
        .cwd
        .strip_prefix(repo_root)
        .ok()
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned());
    let command = Command {
        argv: args.rest.clone(),
        env,
        cwd: cwd.clone(),
        timeout: settings.exec_timeout,
        capture: false,
        stdin: None,
    };
    let step_start = Instant::now();
    let exec = session.exec(&command, Arc::new(TerminalSink), cancel).await;
    let timing = session.timing();
    let mut step = Phase::new(
        "step:command",
        timing.offset_ms(step_start),
        elapsed_ms(step_start),
    );
    match &exec {
        Ok(outcome) if outcome.code == 0 => {}
        Ok(outcome) => {
            step.status = PhaseStatus::Failed;
            step.code = Some(outcome.code);
        }
        Err(e) => {
            step.status = PhaseStatus::Errored;
            step.error_kind = Some(Failure::from_error(e).kind.as_str().to_owned());
        }
    }
    timing.push(step);
    let exec_result = match exec {
        Ok(outcome) if outcome.code == 0 => Ok(()),
        Ok(outcome) => Err(Failure::command_failed(
            outcome.code,
            format!(
                "`{}` exited with code {}",
                args.rest.join(" "),
                outcome.code
            ),
        )),
        Err(e) => Err(Failure::from_error(&e)),
    };
    let cancelled = exec_result
        .as_ref()
        .is_err_and(|f| f.kind == ErrorKind::Cancelled);
    if !args.fetch.is_empty() && !cancelled {
        // PATH is relative to where the command ran, and lands at the same place here.
        let paths: Vec<String> = args
            .fetch
            .iter()
            .map(|p| match &cwd {
                Some(sub) => format!("{sub}/{p}"),
                None => p.clone(),
            })
            .collect();
        let fetched = session.fetch(&paths, repo_root, cancel).await;
        if let Err(e) = fetched {
            let failure = Failure::from_error(&e);
            return match exec_result {
                Err(f) => Err(Failure {
                    message: format!("{}; also, fetching failed: {}", f.message, failure.message),
                    ..f
                }),
                Ok(()) => Err(failure),
            };
        }
    }
    exec_result
}
