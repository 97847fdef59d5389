//! The human side of a run on stderr: `==>` lines, and, when stderr is a terminal, indicatif
//! spinners and bars fed by the run's own events: a lease's warmup shows what the backend
//! reports (the evaluation's status, a placement failure with its reason, the allocation going
//! from `pending` to `running`) and the elapsed time; sync shows bytes sent against the file
//! set's size and its file count; fetch shows files and bytes written. Nothing of this is drawn
//! when stderr is not a terminal, or under `--quiet`; with `-v` each of those reports is also a
//! line of its own, terminal or not.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::event::{Event, Record, Tick};
use super::output::Output;
use super::sink::Observer;
use super::summary::human_ms;

#[derive(Default)]
struct Bars {
    warmup: BTreeMap<String, ProgressBar>,
    sync: Option<ProgressBar>,
    fetch: Option<ProgressBar>,
}

/// The terminal side of a run.
pub(super) struct Console {
    output: Output,
    multi: Option<MultiProgress>,
    bars: Mutex<Bars>,
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// What a `lease_waiting` says, as a phrase.
fn waiting_phrase(
    stage: &str,
    status: &str,
    reason: Option<&String>,
    id: Option<&String>,
    node: Option<&String>,
) -> String {
    match stage {
        "registered" => format!(
            "job registered, evaluation {}",
            id.map_or("?", |i| short(i))
        ),
        "evaluation" => format!("evaluation {status}"),
        "placement_failed" => format!(
            "placement failed: {}",
            reason.map_or("no reason given", String::as_str)
        ),
        "allocation" => {
            let alloc = id.map_or("?", |i| short(i));
            match node.filter(|n| !n.is_empty()) {
                Some(node) => format!("allocation {alloc} {status} on node {}", short(node)),
                None => format!("allocation {alloc} {status}"),
            }
        }
        other => format!("{other} {status}"),
    }
}

impl Console {
    pub(super) fn new(output: Output) -> Console {
        let multi = output
            .progress
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Console {
            output,
            multi,
            bars: Mutex::default(),
        }
    }

    /// A line on stderr, above the bars.
    pub(super) fn line(&self, line: &str) {
        match &self.multi {
            Some(multi) => multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// A `==>` line, unless quiet.
    pub(super) fn say(&self, line: &str) {
        if !self.output.quiet {
            self.line(line);
        }
    }

    /// A `-v` narration line.
    fn narrate(&self, line: &str) {
        if self.output.verbose {
            self.line(&format!("leasebox: {line}"));
        }
    }

    fn style(&self, plain: &str, coloured: &str) -> ProgressStyle {
        let template = if self.output.color { coloured } else { plain };
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .progress_chars("=> ")
    }

    fn spinner(&self, prefix: String, message: String) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(self.style(
            "{spinner} {prefix}: {wide_msg} [{elapsed}]",
            "{spinner:.cyan} {prefix:.bold}: {wide_msg} [{elapsed}]",
        ));
        bar.set_prefix(prefix);
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, Bars> {
        self.bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lease_event(&self, event: &Event) {
        match event {
            Event::LeaseRequested { lease_id, backend } => {
                if let Some(bar) = self.spinner(
                    format!("lease {lease_id}"),
                    format!("requested from {backend}"),
                ) {
                    self.bars().warmup.insert(lease_id.clone(), bar);
                }
                self.narrate(&format!("lease {lease_id}: requested from {backend}"));
            }
            Event::LeaseWaiting {
                lease_id,
                stage,
                status,
                reason,
                id,
                node,
                elapsed_ms,
                ..
            } => {
                let phrase =
                    waiting_phrase(stage, status, reason.as_ref(), id.as_ref(), node.as_ref());
                if let Some(bar) = self.bars().warmup.get(lease_id) {
                    bar.set_message(phrase.clone());
                }
                self.narrate(&format!(
                    "lease {lease_id}: {phrase} (after {})",
                    human_ms(*elapsed_ms)
                ));
            }
            Event::LeasePlaced {
                lease_id,
                allocation,
                node,
                ..
            } => {
                let phrase = match (allocation, node) {
                    (Some(a), Some(n)) => {
                        format!("placed: allocation {} on node {}", short(a), short(n))
                    }
                    _ => "placed".to_owned(),
                };
                if let Some(bar) = self.bars().warmup.get(lease_id) {
                    bar.set_message(phrase.clone());
                }
                self.narrate(&format!("lease {lease_id}: {phrase}"));
            }
            Event::LeaseReady {
                lease_id,
                ms,
                reused,
                allocation,
                node,
                ..
            } => {
                if let Some(bar) = self.bars().warmup.remove(lease_id) {
                    bar.finish_and_clear();
                }
                let place = match (allocation, node) {
                    (Some(a), Some(n)) => {
                        format!(" (allocation {} on node {})", short(a), short(n))
                    }
                    _ => String::new(),
                };
                let what = if *reused {
                    format!("lease {lease_id} reused{place}")
                } else {
                    format!("lease {lease_id} ready in {}{place}", human_ms(*ms))
                };
                // The spinner goes; the recipe host says `==> leased …` itself, and `-v` says more.
                self.narrate(&what);
            }
            Event::LeaseReleased { lease_id, ms } => {
                self.narrate(&format!("lease {lease_id}: released in {}", human_ms(*ms)));
            }
            _ => {}
        }
    }

    fn transfer_event(&self, event: &Event) {
        match event {
            Event::SyncStart {
                files,
                bytes,
                lease_id,
            } => {
                if let Some(multi) = &self.multi {
                    let bar = multi.add(ProgressBar::new(*bytes));
                    bar.set_style(self.style(
                        "{prefix}: [{bar:30}] {bytes}/{total_bytes} {msg} [{elapsed}]",
                        "{prefix:.bold}: [{bar:30.cyan}] {bytes}/{total_bytes} {msg} [{elapsed}]",
                    ));
                    bar.set_prefix("sync");
                    bar.set_message(format!("· {files} files"));
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bars().sync = Some(bar);
                }
                self.narrate(&format!(
                    "sync to {lease_id}: {files} files, {}",
                    HumanBytes(*bytes)
                ));
            }
            Event::SyncEnd {
                ms,
                files,
                bytes,
                deleted,
                incremental,
                ..
            } => {
                if let Some(bar) = self.bars().sync.take() {
                    bar.finish_and_clear();
                }
                let how = if *incremental {
                    format!("incremental, {deleted} deleted")
                } else {
                    "full".to_owned()
                };
                self.narrate(&format!(
                    "sync: {files} files, {} sent in {} ({how})",
                    HumanBytes(*bytes),
                    human_ms(*ms)
                ));
            }
            Event::FetchStart { paths, lease_id } => {
                if let Some(bar) = self.spinner("fetch".to_owned(), paths.join(", ")) {
                    self.bars().fetch = Some(bar);
                }
                self.narrate(&format!("fetch from {lease_id}: {}", paths.join(", ")));
            }
            Event::FetchEnd {
                files, bytes, ms, ..
            } => {
                if let Some(bar) = self.bars().fetch.take() {
                    bar.finish_and_clear();
                }
                self.narrate(&format!(
                    "fetch: {files} files, {} in {}",
                    HumanBytes(*bytes),
                    human_ms(*ms)
                ));
            }
            _ => {}
        }
    }
}

impl Observer for Console {
    fn record(&self, record: &Record) {
        match &record.event {
            Event::RunEnd { .. } => {
                // Whatever is still drawn (a warmup that failed) goes away before the verdict.
                let mut bars = self.bars();
                for (_, bar) in std::mem::take(&mut bars.warmup) {
                    bar.finish_and_clear();
                }
                for bar in [bars.sync.take(), bars.fetch.take()].into_iter().flatten() {
                    bar.finish_and_clear();
                }
            }
            Event::StepStart { .. }
            | Event::StepEnd(_)
            | Event::Warning { .. }
            | Event::WatchEnd { .. } => {}
            event @ (Event::SyncStart { .. }
            | Event::SyncEnd { .. }
            | Event::FetchStart { .. }
            | Event::FetchEnd { .. }) => self.transfer_event(event),
            event => self.lease_event(event),
        }
    }

    fn tick(&self, tick: &Tick) {
        let bars = self.bars();
        match tick {
            Tick::Synced { bytes } => {
                if let Some(bar) = &bars.sync {
                    bar.set_position((*bytes).min(bar.length().unwrap_or(u64::MAX)));
                }
            }
            Tick::Fetched { files, bytes } => {
                if let Some(bar) = &bars.fetch {
                    bar.set_message(format!("{files} files, {}", HumanBytes(*bytes)));
                }
            }
        }
    }
}
