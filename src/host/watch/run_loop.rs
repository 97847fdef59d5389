//! The loop of `leasebox watch`: one `select!` owns the state (the run going on, the changes
//! gathered, the keys, Ctrl-C, the renewal tick). It runs the recipe, then reruns it when files
//! of the sync set change, never two runs at once: a change during a run queues one rerun, or
//! with `on_busy = restart` cancels the run (the session stops the box-side command) and starts
//! again. Each rerun is a run of its own: a new run id, its own `run_start` (with what
//! started it and the changed paths) and `run_end` in the events, its own timing through
//! [`WatchHooks`]; it starts with the line naming what changed and ends with a one-line
//! verdict ([`Summary::rerun_verdict`]). The leases stay warm between runs ([`WarmLeases`]) and
//! are released when the watch ends, which the events close with `watch_end`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::changes::{Change, Pending, describe};
use super::filter::{WatchFilter, slash};
use super::keys::Key;
use super::warm::WarmLeases;
use super::watcher::{FileWatcher, RawEvent, WatchError, WatchMode};
use crate::error::HasKind as _;
use crate::events::{
    Events, RunEvents, RunStart, Summary, WATCH_CHANGED_LIMIT, WatchRun, WatchTotals,
};
use crate::host::engine::LeaseProvider;
use crate::host::error::HostError;
use crate::host::runner::{RecipeReport, RecipeRun, run_recipe};

/// What to do with a change that comes while a run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBusy {
    /// Let the run finish, then rerun once (whatever else changes meanwhile).
    #[default]
    Queue,
    /// Stop the run and start again.
    Restart,
}

impl OnBusy {
    /// `queue` or `restart` (the recipe's `watch = { on_busy = … }`).
    #[must_use]
    pub fn parse(text: &str) -> Option<OnBusy> {
        match text {
            "queue" => Some(OnBusy::Queue),
            "restart" => Some(OnBusy::Restart),
            _ => None,
        }
    }
}

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last change before a rerun (`--debounce`, 100 ms).
    pub debounce: Duration,
    /// `--on-busy`, which wins over the recipe's `watch = { on_busy = … }`.
    pub on_busy: Option<OnBusy>,
    /// Events or polling (`--poll DURATION`).
    pub mode: WatchMode,
    /// Keep the leases when the watch ends (`--keep`).
    pub keep: bool,
    /// The sync excludes of the config (the first run may add the recipe's own).
    pub excludes: Vec<String>,
    /// How many paths in one burst make a storm.
    pub storm_threshold: usize,
    /// How often the leases are renewed (also at every run's start).
    pub renew_every: Duration,
    /// Files leasebox itself writes in the repository while watching (the timing file, or its
    /// directory): never a change.
    pub own_outputs: Vec<PathBuf>,
    /// The recipe as given on the command line, for each run's `run_start`.
    pub recipe: Option<String>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(100),
            on_busy: None,
            mode: WatchMode::Events,
            keep: false,
            excludes: Vec::new(),
            storm_threshold: super::changes::STORM_THRESHOLD,
            renew_every: Duration::from_secs(60),
            own_outputs: Vec::new(),
            recipe: None,
        }
    }
}

/// One run of the watch, as the hooks see it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// 1 for the first run, then 2, 3, …
    pub number: u32,
    /// The run's own id.
    pub id: String,
    /// What changed (`None` on the first run, after Enter, or after dropped events).
    pub changed: Option<Vec<String>>,
    /// When it started.
    pub started: Instant,
}

/// What the caller does at each run's start and end (the CLI: the timing file).
pub trait WatchHooks: Send + Sync {
    /// A run starts.
    fn run_started(&self, run: &RunInfo);
    /// A run ended with this report.
    fn run_finished(&self, run: &RunInfo, report: &RecipeReport);
}

/// How the watch ended.
#[derive(Debug)]
pub enum WatchEnd {
    /// `q`, or the end of the keys when asked to stop at it.
    Quit,
    /// Ctrl-C.
    Cancelled,
    /// The watch could not go on (the watcher failed; a release failed at the end).
    Failed(HostError),
}

/// What a watch did.
#[derive(Debug)]
pub struct WatchReport {
    /// How it ended.
    pub end: WatchEnd,
    /// How many runs it started.
    pub runs: u32,
    /// How many passed.
    pub passed: u32,
    /// How many failed (not counting those stopped for a restart, by Ctrl-C or by `q`).
    pub failed: u32,
    /// How many a change stopped so they could start again.
    pub restarted: u32,
    /// The exit code of the last run that finished (0 before any).
    pub last_code: i32,
    /// The closing summary: the last run's steps, the totals, the leases' fates.
    pub summary: Summary,
}

impl WatchEnd {
    /// The watch's exit code and error kind: 0 after `q`, 130 after Ctrl-C, the error's.
    #[must_use]
    pub fn exit(&self) -> (i32, Option<&'static str>) {
        match self {
            WatchEnd::Quit => (0, None),
            WatchEnd::Cancelled => (crate::error::EXIT_CANCELLED, Some("cancelled")),
            WatchEnd::Failed(err) => (err.exit_code(), Some(err.kind().as_str())),
        }
    }
}

fn engine_error(context: &str, err: WatchError) -> HostError {
    HostError::Engine {
        context: context.to_owned(),
        source: Arc::new(err),
    }
}

fn session_error(context: &str, err: crate::session::SessionError) -> HostError {
    HostError::Engine {
        context: context.to_owned(),
        source: Arc::new(err),
    }
}

/// The filter and the watches.
struct Watching {
    filter: WatchFilter,
    watcher: FileWatcher,
}

impl Watching {
    fn start(
        root: &std::path::Path,
        excludes: &[String],
        mode: WatchMode,
        own_outputs: &[PathBuf],
    ) -> Result<Watching, HostError> {
        let (mut filter, dirs) =
            WatchFilter::new(root, excludes).map_err(|e| session_error("watch", e))?;
        filter.ignore_outputs(own_outputs);
        let watcher = FileWatcher::start(mode, &dirs).map_err(|e| engine_error("watch", e))?;
        Ok(Watching { filter, watcher })
    }

    /// Turn raw event paths into changes of the sync set, watching directories that appeared.
    fn absorb(&mut self, paths: Vec<PathBuf>, pending: &mut Pending) -> Result<(), HostError> {
        let now = Instant::now();
        for path in paths {
            let Some(rel) = self.filter.relative(&path) else {
                continue;
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path);
            if meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
                if self.filter.ignored(&rel, true) || self.watcher.is_watched(&path) {
                    continue;
                }
                // A directory appeared (made, or renamed into place): watch it and what it
                // holds, and count its files as changed (they may predate the watch).
                let dirs = self
                    .filter
                    .walk(&path)
                    .map_err(|e| session_error("watch", e))?;
                let total = self.watcher.len() + dirs.len();
                for dir in &dirs {
                    self.watcher
                        .add(dir, total)
                        .map_err(|e| engine_error("watch", e))?;
                    for file in self.filter.files_under(dir) {
                        pending.add(file, now);
                    }
                }
                continue;
            }
            if meta.is_err() && self.watcher.is_watched(&path) {
                self.watcher.forget(&path);
            }
            if self.filter.is_candidate(&rel) {
                pending.add(slash(&rel), now);
            }
        }
        Ok(())
    }
}

type RunFuture = Pin<Box<dyn Future<Output = RecipeReport>>>;

/// The run going on: its future, its cancellation, what the hooks know of it, its events.
struct Running {
    future: RunFuture,
    token: CancellationToken,
    info: RunInfo,
    events: RunEvents,
}

/// A warning: in the events while a run goes (its `warning`), else on stderr only, so that
/// nothing of a run's comes after its `run_end`.
fn warn(events: &Events, in_run: bool, message: &str) {
    if in_run {
        events.warn(message);
    } else {
        eprintln!("leasebox: {message}");
    }
}

/// Watch: run `run`, then rerun on every change of the sync set under its repository root,
/// until `q` (from `keys`) or `cancel` (Ctrl-C). The leases of `provider` stay warm between
/// runs and are released at the end unless kept.
pub async fn watch(
    run: &RecipeRun,
    provider: Arc<dyn LeaseProvider>,
    options: &WatchOptions,
    mut keys: mpsc::Receiver<Key>,
    hooks: Arc<dyn WatchHooks>,
    cancel: &CancellationToken,
) -> WatchReport {
    let started = Instant::now();
    let warm = Arc::new(WarmLeases::new(provider, run.events.clone()));
    let mut report = WatchReport {
        end: WatchEnd::Quit,
        runs: 0,
        passed: 0,
        failed: 0,
        restarted: 0,
        last_code: 0,
        summary: Summary::default(),
    };
    report.end = watch_loop(run, &warm, options, &mut keys, &hooks, cancel, &mut report).await;
    let (kept, failed) = warm.release_all(options.keep).await;
    for id in kept {
        run.events.say(&format!(
            "==> kept lease {id}: reuse it with `--lease {id}`, release it with `leasebox stop {id}`"
        ));
    }
    if let Some((id, source)) = failed.into_iter().next()
        && !matches!(report.end, WatchEnd::Failed(_))
    {
        report.end = WatchEnd::Failed(HostError::Engine {
            context: format!("release lease {id}"),
            source,
        });
    }
    let (exit_code, error_kind) = report.end.exit();
    report.summary = run.events.watch_finished(WatchTotals {
        runs: report.runs,
        passed: report.passed,
        failed: report.failed,
        restarted: report.restarted,
        exit_code,
        error_kind: error_kind.map(str::to_owned),
        ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    report
}

#[expect(
    clippy::too_many_lines,
    reason = "the one loop that owns the watch's state"
)]
async fn watch_loop(
    run: &RecipeRun,
    warm: &Arc<WarmLeases>,
    options: &WatchOptions,
    keys: &mut mpsc::Receiver<Key>,
    hooks: &Arc<dyn WatchHooks>,
    cancel: &CancellationToken,
    report: &mut WatchReport,
) -> WatchEnd {
    let started = Instant::now();
    let mut watching = match Watching::start(
        &run.repo_root,
        &options.excludes,
        options.mode,
        &options.own_outputs,
    ) {
        Ok(w) => w,
        Err(e) => return WatchEnd::Failed(e),
    };
    let events = &run.events;
    // The REPL of `--repl-on-failure` is open on a failed run: it owns the terminal.
    let repl_open = || {
        run.repl_on_failure
            .as_ref()
            .is_some_and(|r| r.interrupts.is_open())
    };
    events.say(&format!(
        "==> watching {} directories under {} ({} ms)",
        watching.watcher.len(),
        run.repo_root.display(),
        started.elapsed().as_millis()
    ));
    let mut excludes = options.excludes.clone();
    let mut on_busy = options.on_busy.unwrap_or_default();
    let recipe_on_busy: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut pending = Pending::default();
    // The change the next run starts with; `Some` when a run is due.
    let mut due: Option<Change> = Some(Change {
        everything: true,
        ..Change::default()
    });
    let mut first = true;
    let mut queued: Option<Change> = None;
    let mut running: Option<Running> = None;
    let mut restarting = false;
    let mut quitting = false;
    let mut keys_open = true;
    let mut renew = tokio::time::interval(options.renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        if running.is_none() {
            if cancel.is_cancelled() {
                return WatchEnd::Cancelled;
            }
            if quitting {
                return WatchEnd::Quit;
            }
            if let Some(change) = due.take() {
                report.runs += 1;
                warm.begin_run();
                let changed = if first { None } else { change.visible() };
                let run_events = events.run_started(RunStart {
                    recipe: options.recipe.clone(),
                    command: run.command.as_ref().map(|c| c.argv.clone()),
                    watch: Some(WatchRun {
                        number: report.runs,
                        trigger: if first { "start" } else { change.trigger() }.to_owned(),
                        changed: changed
                            .as_ref()
                            .map(|c| c.iter().take(WATCH_CHANGED_LIMIT).cloned().collect()),
                        changed_count: u64::try_from(change.paths.len()).unwrap_or(u64::MAX),
                    }),
                });
                if let Err(e) = warm.renew_all().await {
                    events.warn(&format!("renewing the leases failed: {e}"));
                }
                let info = RunInfo {
                    number: report.runs,
                    id: events.run_id().unwrap_or_else(|| {
                        format!("run_{}", hex::encode(rand::random::<[u8; 6]>()))
                    }),
                    changed,
                    started: Instant::now(),
                };
                if first {
                    events.say(&format!("==> run {} ({})", info.number, info.id));
                } else if change.everything {
                    events.say(&format!(
                        "==> run {} ({}): rerunning everything",
                        info.number, info.id
                    ));
                } else {
                    events.say(&format!(
                        "==> run {} ({}): changed {}",
                        info.number,
                        info.id,
                        describe(&change.paths)
                    ));
                }
                first = false;
                hooks.run_started(&info);
                let token = cancel.child_token();
                let mut this_run = run.clone();
                this_run.changed.clone_from(&info.changed);
                this_run.on_busy_seen = Some(Arc::clone(&recipe_on_busy));
                let provider: Arc<dyn LeaseProvider> = Arc::clone(warm) as Arc<dyn LeaseProvider>;
                let run_token = token.clone();
                let future: RunFuture =
                    Box::pin(async move { run_recipe(&this_run, provider, &run_token).await });
                running = Some(Running {
                    future,
                    token,
                    info,
                    events: run_events,
                });
            }
        }
        let deadline = pending.due(options.debounce, options.storm_threshold);
        tokio::select! {
            () = cancel.cancelled(), if running.is_some() && !quitting => {
                // The run's token is a child: it is cancelled too; wait for the run to end.
                quitting = true;
            }
            () = cancel.cancelled(), if running.is_none() => {
                return WatchEnd::Cancelled;
            }
            ended = async {
                match running.as_mut() {
                    Some(going) => going.future.as_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(Running { info, events: run_events, .. }) = running.take() else {
                    continue;
                };
                hooks.run_finished(&info, &ended);
                report.last_code = ended.exit_code();
                let restarted = std::mem::take(&mut restarting) && !cancel.is_cancelled();
                let summary = if restarted {
                    report.restarted += 1;
                    run_events.finish_restarted()
                } else {
                    match &ended.error {
                        None => report.passed += 1,
                        Some(e) if e.kind() == crate::error::ErrorKind::Cancelled => {}
                        Some(_) => report.failed += 1,
                    }
                    run_events.finish(
                        ended.exit_code(),
                        ended.error.as_ref().map(|e| e.kind().as_str()),
                    )
                };
                let detail = ended
                    .error
                    .as_ref()
                    .map(|e| e.to_string().lines().next().unwrap_or_default().to_owned());
                events.say(&summary.rerun_verdict(restarted, detail.as_deref(), events.output()));
                {
                    if let Some(used) = &ended.sync_excludes
                        && used != &excludes
                    {
                        // The recipe syncs with excludes of its own: watch by the same rules.
                        match Watching::start(&run.repo_root, used, options.mode, &options.own_outputs) {
                            Ok(w) => {
                                watching = w;
                                excludes.clone_from(used);
                            }
                            Err(e) => return WatchEnd::Failed(e),
                        }
                    }
                }
                if cancel.is_cancelled() {
                    return WatchEnd::Cancelled;
                }
                if quitting {
                    return WatchEnd::Quit;
                }
                if let Some(change) = queued.take() {
                    due = Some(change);
                } else {
                    events.say(&format!(
                        "==> watching for changes{}",
                        if keys_open { " (Enter reruns, q quits)" } else { "" }
                    ));
                }
            }
            event = watching.watcher.next() => {
                match event {
                    Some(RawEvent::Paths(paths)) => {
                        if let Err(e) = watching.absorb(paths, &mut pending) {
                            if let Some(going) = &running {
                                going.token.cancel();
                            }
                            quitting = true;
                            warn(events, running.is_some(), &e.to_string());
                            if running.is_none() {
                                return WatchEnd::Failed(e);
                            }
                        }
                    }
                    Some(RawEvent::Rescan) => pending.rescan(Instant::now()),
                    Some(RawEvent::Error(message)) => {
                        warn(events, running.is_some(), &format!("watch: {message}"));
                    }
                    None => {
                        return WatchEnd::Failed(HostError::Runtime {
                            message: "the file watcher stopped".to_owned(),
                        });
                    }
                }
                if let Some(line) = pending.announce_storm(options.storm_threshold)
                    && !repl_open()
                {
                    events.say(&line);
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let mut change = pending.take();
                change.paths = watching.filter.settle(std::mem::take(&mut change.paths));
                if change.paths.is_empty() && !change.everything {
                    continue;
                }
                if change.everything {
                    // Events were lost: look again at what to watch.
                    match Watching::start(&run.repo_root, &excludes, options.mode, &options.own_outputs) {
                        Ok(w) => watching = w,
                        Err(e) => return WatchEnd::Failed(e),
                    }
                }
                if options.on_busy.is_none()
                    && let Some(asked) = recipe_on_busy
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .as_deref()
                        .and_then(OnBusy::parse)
                {
                    on_busy = asked;
                }
                match &running {
                    None => due = Some(change),
                    Some(going) => {
                        queued.get_or_insert_with(Change::default).merge(change);
                        // A run whose REPL is open is the user's: the change waits for it.
                        if on_busy == OnBusy::Restart && !restarting && !quitting && !repl_open() {
                            events.say(&format!(
                                "==> files changed during run {}: restarting it",
                                going.info.number
                            ));
                            restarting = true;
                            going.token.cancel();
                        }
                    }
                }
            }
            key = keys.recv(), if keys_open => {
                match key {
                    None => keys_open = false,
                    Some(Key::Quit) => {
                        quitting = true;
                        if let Some(going) = &running {
                            going.token.cancel();
                        }
                    }
                    Some(Key::Rerun) => {
                        let now = Change::key();
                        match &running {
                            None => due = Some(now),
                            Some(going) => {
                                queued.get_or_insert_with(Change::default).merge(now);
                                if on_busy == OnBusy::Restart && !restarting {
                                    events.say(&format!("==> restarting run {}", going.info.number));
                                    restarting = true;
                                    going.token.cancel();
                                }
                            }
                        }
                    }
                }
            }
            _ = renew.tick() => {
                if let Err(e) = warm.renew_all().await {
                    warn(events, running.is_some(), &format!("renewing the leases failed: {e}"));
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
