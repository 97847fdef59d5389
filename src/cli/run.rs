//! `leasebox run`: lease (or reuse) a box, sync the repository, run the command, fetch what was
//! asked for (also after a failure), release (unless kept), and write the timing file. Ctrl-C
//! at any point stops the command, releases the lease and exits 130.
//!
//! Every run (a recipe or a command) reports to its [`Events`]: the `--events` stream, the
//! terminal's progress, and the closing summary printed at the end (unless `--quiet`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Context;
use super::args::RunArgs;
use crate::error::{ErrorKind, Failure};
use crate::events::{Event, Events, RunStart, StepEnd};
use crate::leases::{
    Command, HeldLease, LeaseRequest, Phase, PhaseStatus, SyncOptions, TIMING_FORMAT_VERSION,
    TerminalSink, Timing, TimingReport, elapsed_ms,
};

pub(crate) async fn run(args: RunArgs, cx: &Context) -> Result<(), Failure> {
    let start = Instant::now();
    let timing = Arc::new(Timing::default());
    let timing_file = args.timing_json.clone();
    let events = cx.events(args.events.as_deref())?;
    let run = events.run_started(RunStart {
        recipe: args.recipe.clone(),
        command: args.recipe.is_none().then(|| args.rest.clone()),
        watch: None,
    });
    let mut outcome = run_inner(args, cx, &timing, &events).await;
    if let Some(path) = timing_file {
        let report = TimingReport {
            format_version: TIMING_FORMAT_VERSION,
            phases: timing.phases(),
            total_ms: elapsed_ms(start),
            exit_code: outcome.as_ref().map_or_else(|f| f.code, |()| 0),
            error_kind: outcome.as_ref().err().map(|f| f.kind.as_str().to_owned()),
            run_id: None,
            changed: None,
        };
        if let Err(e) = report.write(&path) {
            outcome = outcome.and(Err(e));
        }
    }
    let kind = outcome.as_ref().err().map(|f| f.kind);
    let summary = run.finish(
        outcome.as_ref().map_or_else(|f| f.code, |()| 0),
        kind.map(ErrorKind::as_str),
    );
    // A run refused before it asked for a lease (a usage, config or trust error) did
    // nothing to sum up: its error line says it all.
    let did_something = !summary.leases.is_empty() || !summary.steps.is_empty();
    if !cx.output.quiet && kind != Some(ErrorKind::Usage) && did_something {
        events.say(summary.render(cx.output).trim_end());
    }
    outcome
}

async fn run_inner(
    args: RunArgs,
    cx: &Context,
    timing: &Arc<Timing>,
    events: &Events,
) -> Result<(), Failure> {
    if let Some(recipe) = &args.recipe {
        return super::recipe::run(&args, recipe, cx, timing, events).await;
    }
    if args.rest.is_empty() {
        return Err(super::recipe::list(cx));
    }
    match args.shards {
        Some(0) => {
            return Err(Failure::new(
                ErrorKind::Usage,
                "`--shards 0`: give the number of boxes to spread the command over, 1 or more",
            ));
        }
        Some(_) if args.lease.is_some() => {
            return Err(Failure::new(
                ErrorKind::Usage,
                "`--shards` leases a new group of boxes; to reuse a kept group, `run --lease ID -- CMD` runs the command on every box of it",
            ));
        }
        None if args.distinct_hosts || (args.fail_fast && args.lease.is_none()) => {
            return Err(Failure::new(
                ErrorKind::Usage,
                "`--fail-fast` and `--distinct-hosts` apply to `run --shards N -- CMD` (`--fail-fast` also to `run --lease GROUP -- CMD`)",
            ));
        }
        _ => {}
    }
    if args.repl_on_failure {
        return Err(Failure::new(
            ErrorKind::Usage,
            "`--repl-on-failure` applies to recipes (`leasebox run RECIPE`); for one command, \
             keep the lease (`run --keep-on-failure -- CMD`) and look around with \
             `leasebox repl --lease ID`",
        ));
    }
    // Bad input is refused before anything is leased.
    let repo_root = cx.repo_root();
    let here = cwd_in_repo(&cx.cwd, &repo_root);
    let mut fetch = Vec::with_capacity(args.fetch.len());
    for path in &args.fetch {
        fetch.push(fetch_path(path, here.as_deref())?);
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
    let leases = cx
        .leases(&config, repo_root.clone(), Arc::clone(timing))?
        .with_events(events.clone());
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
        events.warn(&format!(
            "the local backend runs commands on this machine and ignores {}",
            asked
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let held = match &args.lease {
        Some(id) => {
            leases
                .attach(&super::lease_id(id)?, settings.nomad.workdir.as_deref())
                .await?
        }
        None => {
            let request = LeaseRequest {
                count: args.shards.unwrap_or(1),
                placement: if args.distinct_hosts {
                    crate::leases::GroupPlacement::DistinctHosts
                } else {
                    crate::leases::GroupPlacement::Spread
                },
                ..LeaseRequest::from_settings(settings, args.keep)
            };
            // `acquire` honours the token itself and leaves nothing behind when cancelled.
            leases.acquire(&request, &cx.cancel).await?
        }
    };
    let id = held.lease().id.clone();
    let reused = held.reused();
    cx.hold(&held);
    let result = work(&args, cx, &held, &repo_root, settings, env, &fetch).await;
    let keep = args.keep
        || reused
        || (args.keep_on_failure
            && result
                .as_ref()
                .is_err_and(|f| f.kind != ErrorKind::Cancelled));

    if keep && !args.keep && !reused {
        leases.mark_kept(&id).await?;
    }
    finish(cx, &held, keep, result, "the command succeeded").await
}

/// The end of a lease a command held: keep it (saying how to reuse and release it) or release
/// it, even after Ctrl-C, and forget it as active; a failed release is reported after the
/// command's own failure, or as the failure when `done` (what succeeded) did.
pub(super) async fn finish(
    cx: &Context,
    held: &HeldLease,
    keep: bool,
    result: Result<(), Failure>,
    done: &str,
) -> Result<(), Failure> {
    let id = held.lease().id.clone();
    let release = if keep {
        eprintln!(
            "leasebox: kept lease `{id}`: reuse it with `--lease {id}`, release it with `leasebox stop {id}`"
        );
        Ok(())
    } else {
        // A fresh token: the release itself is not cancelled by the Ctrl-C that ended the run.
        held.release(&CancellationToken::new()).await
    };
    cx.let_go(&id);
    match (result, release) {
        (Err(f), Err(r)) => Err(Failure {
            message: format!(
                "{}{}releasing lease `{id}` failed: {}",
                f.message,
                if f.message.is_empty() { "" } else { "; also, " },
                r.message
            ),
            ..f
        }),
        (Err(f), Ok(())) => Err(f),
        (Ok(()), Err(r)) => Err(Failure {
            message: format!(
                "{done}, but releasing lease `{id}` failed: {}; `leasebox stop {id}` retries",
                r.message
            ),
            ..r
        }),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// The values of the `--pass-env` variables: each must be set.
pub(super) fn pass_env(names: &[String], cx: &Context) -> Result<Vec<(String, String)>, Failure> {
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

/// Where the current directory is inside the repository root (`None` at the root, or when it
/// is not under it).
fn cwd_in_repo(cwd: &Path, repo_root: &Path) -> Option<PathBuf> {
    cwd.strip_prefix(repo_root)
        .ok()
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
}

/// `--fetch PATH`: a path relative to the current directory (`here`, inside the repository),
/// which may use `..` while it stays inside the repository root; returned relative to the root
/// (the workdir mirrors the root), so it lands at the same path relative to the current
/// directory.
///
/// # Errors
/// An absolute path, one that leaves the repository root, or one the fetch refuses (the whole
/// workdir, a leading `-`): usage errors naming the path.
fn fetch_path(path: &str, here: Option<&Path>) -> Result<String, Failure> {
    use std::path::Component;
    let bad = |why: &str| {
        Failure::new(
            ErrorKind::Usage,
            format!(
                "cannot fetch `{path}`: {why}; give a path relative to the current directory that stays inside the repository, such as `target/report.xml`"
            ),
        )
    };
    if Path::new(path).is_absolute() {
        return Err(bad("it is absolute"));
    }
    let mut parts: Vec<String> = Vec::new();
    for c in here.unwrap_or(Path::new("")).join(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(bad("it leaves the repository root"));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(bad("it is absolute")),
        }
    }
    let joined = parts.join("/");
    crate::leases::check_fetch_path(&joined).map_err(|_| {
        if joined.is_empty() {
            bad("it names the whole repository")
        } else {
            bad("it starts with `-`")
        }
    })
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
    fetch: &[String],
) -> Result<(), Failure> {
    // A new group, or a kept group reused with `--lease`: the command runs on every box.
    if args.shards.is_some() || held.sessions().len() > 1 {
        let cwd = cwd_in_repo(&cx.cwd, repo_root).map(|p| p.to_string_lossy().into_owned());
        return super::shards::work(args, cx, held, repo_root, settings, env, cwd, fetch).await;
    }
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
            session.events().warn(notice);
        }
    }
    // Run in the same place relative to the repository as the user stands.
    let cwd = cwd_in_repo(&cx.cwd, repo_root).map(|p| p.to_string_lossy().into_owned());
    let command = Command {
        argv: args.rest.clone(),
        env,
        cwd: cwd.clone(),
        timeout: settings.exec_timeout,
        capture: false,
        stdin: None,
    };
    let step_start = Instant::now();
    let events = session.events();
    events.emit(Event::StepStart {
        name: "command".to_owned(),
        group: None,
        lane: 0,
        shard: None,
    });
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
    events.emit(Event::StepEnd(StepEnd {
        name: "command".to_owned(),
        status: match step.status {
            PhaseStatus::Passed => "passed",
            PhaseStatus::Failed => "failed",
            PhaseStatus::Errored => "errored",
            PhaseStatus::Skipped => "skipped",
        }
        .to_owned(),
        code: exec.as_ref().ok().map(|o| o.code),
        error_kind: step.error_kind.clone(),
        ms: step.ms,
        group: None,
        lane: 0,
        shard: None,
    }));
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
    if !fetch.is_empty() && !cancelled {
        // Each PATH was made relative to the repository root (`fetch_path`): fetched from the
        // workdir at that path, it lands at the same path relative to the current directory.
        let paths = fetch.to_vec();
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

#[cfg(test)]
mod fetch_path_tests {
    use super::*;

    #[test]
    fn fetch_paths_are_relative_to_the_current_directory_inside_the_root() {
        let sub = Some(Path::new("a/b"));
        assert_eq!(fetch_path("x.txt", sub).unwrap(), "a/b/x.txt");
        assert_eq!(fetch_path("../x.txt", sub).unwrap(), "a/x.txt");
        assert_eq!(fetch_path("../../x.txt", sub).unwrap(), "x.txt");
        assert_eq!(fetch_path("./out/", None).unwrap(), "out");
        for (bad, why) in [
            ("../../../x", "leaves the repository root"),
            ("../x", "leaves the repository root"),
            ("/etc/passwd", "absolute"),
            (".", "whole repository"),
            ("-rf", "starts with `-`"),
        ] {
            let here = if matches!(bad, "../x" | "." | "-rf") {
                None
            } else {
                sub
            };
            let e = fetch_path(bad, here).unwrap_err();
            assert_eq!(e.code, 2, "{bad}");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }
}
