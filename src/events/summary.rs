//! The closing summary of a run, built from its own events (so every kind of run, a recipe,
//! `run -- CMD` or a `watch` rerun, gets the same one): one line per step with its status and
//! time, the members of a parallel group indented under it, a sharded step's shards as one
//! block, each sync in its place among them (full or incremental, files and bytes sent, files
//! deleted), then the verdict: passed or failed, which step gave the exit code, the total time,
//! and what became of each lease.
//!
//! ```text
//! ==> summary
//!     sync      synced     38ms   incremental · 2 files sent (1.2 KiB), 1 deleted
//!     build     passed    412ms
//!     checks    parallel  1.1s
//!       lint    passed    306ms
//!       unit    failed    1.1s   exit 3
//!     deploy    skipped
//! ==> failed in 2.3s: step `unit` exited with code 3 · lease lbx_0123456789ab released
//! ```
//!
//! A run of `leasebox watch` ends with one line of its own instead
//! ([`Summary::rerun_verdict`]: `==> run 3 failed in 1.1s: step `unit` exited with code 3 ·
//! steps 1 passed, 1 failed`); when the watch stops, its summary is the last run's steps and
//! one line of totals and the leases' fates (`==> watched 7 runs in 3m12s: 5 passed, 2 failed
//! · lease lbx_… released`).

use std::sync::Mutex;

use indicatif::HumanBytes;

use super::event::{Event, Record, StepEnd};
use super::output::Output;
use super::sink::{Observer, WatchTotals};

/// One step as the summary shows it.
pub type SummaryStep = StepEnd;

/// What became of a lease by the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseFate {
    /// Asked for, never ready (warmup failed).
    Requested,
    /// Ready and still held (a run that keeps its lease warm, between reruns).
    Held,
    /// Released.
    Released,
    /// Left in place, with the reason of its `lease_kept`.
    Kept(String),
}

/// One sync as the summary shows it (from its `sync_end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummarySync {
    /// The lease synced to.
    pub lease_id: String,
    /// Files and links sent.
    pub files: u64,
    /// Bytes of file content sent.
    pub bytes: u64,
    /// Files and links deleted in the box.
    pub deleted: u64,
    /// Only what changed was sent.
    pub incremental: bool,
    /// Wall time.
    pub ms: u64,
    /// The error kind, when it failed.
    pub error_kind: Option<String>,
    /// How many steps had begun when it ended: it is shown before the next one.
    pub before_step: usize,
}

/// The summary of one run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Steps in the order they began (skipped steps where they would have).
    pub steps: Vec<SummaryStep>,
    /// Syncs in the order they ended.
    pub syncs: Vec<SummarySync>,
    /// Leases in the order they were asked for, and their fate.
    pub leases: Vec<(String, LeaseFate)>,
    /// The run's end: exit code, error kind, wall time; `None` before `run_end`.
    pub end: Option<(i32, Option<String>, u64)>,
    /// The run's number, for a run of `leasebox watch`.
    pub run_number: Option<u32>,
    /// How `leasebox watch` ended, once its `watch_end` came.
    pub watch: Option<WatchTotals>,
    /// The shard table of a sharded run: step name, shard, items, node.
    pub shards: Vec<ShardRow>,
}

/// One row of the shard table, from a `shard_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    /// The sharded step.
    pub name: String,
    /// 1..=count.
    pub shard: u32,
    /// How many shards.
    pub count: u32,
    /// Items it ran, in an item split.
    pub items: Option<u64>,
    /// The node its box ran on.
    pub node: Option<String>,
    /// `passed`, `failed`, `errored`, `cancelled`.
    pub status: String,
}

/// Collects the current run's summary from its records.
#[derive(Default)]
pub(super) struct SummaryCollector {
    summary: Mutex<Summary>,
}

impl SummaryCollector {
    pub(super) fn snapshot(&self) -> Summary {
        self.summary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn same_step(a: &StepEnd, name: &str, group: Option<&String>, shard: Option<u32>) -> bool {
    a.name == name && a.group.as_ref() == group && a.shard == shard
}

impl Observer for SummaryCollector {
    fn record(&self, record: &Record) {
        let mut s = self
            .summary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut fate = |id: &str, fate: LeaseFate| match s.leases.iter_mut().find(|(l, _)| l == id)
        {
            Some(entry) => entry.1 = fate,
            None => s.leases.push((id.to_owned(), fate)),
        };
        match &record.event {
            Event::RunStart { watch, .. } => {
                // A new run: what a rerun still holds stays held.
                let held: Vec<(String, LeaseFate)> = s
                    .leases
                    .iter()
                    .filter(|(_, f)| *f == LeaseFate::Held)
                    .cloned()
                    .collect();
                *s = Summary {
                    leases: held,
                    run_number: watch.as_ref().map(|w| w.number),
                    ..Summary::default()
                };
            }
            Event::WatchEnd {
                runs,
                passed,
                failed,
                restarted,
                exit_code,
                error_kind,
                ms,
            } => {
                s.watch = Some(WatchTotals {
                    runs: *runs,
                    passed: *passed,
                    failed: *failed,
                    restarted: *restarted,
                    exit_code: *exit_code,
                    error_kind: error_kind.clone(),
                    ms: *ms,
                });
            }
            Event::LeaseRequested { lease_id, .. } => fate(lease_id, LeaseFate::Requested),
            Event::LeaseReady { lease_id, .. } => fate(lease_id, LeaseFate::Held),
            Event::LeaseReleased { lease_id, .. } => fate(lease_id, LeaseFate::Released),
            Event::LeaseKept { lease_id, reason } => {
                fate(lease_id, LeaseFate::Kept(reason.clone()))
            }
            Event::StepStart {
                name,
                group,
                lane,
                shard,
            } if !s
                .steps
                .iter()
                .any(|st| same_step(st, name, group.as_ref(), *shard)) =>
            {
                s.steps.push(StepEnd {
                    name: name.clone(),
                    status: "running".to_owned(),
                    code: None,
                    error_kind: None,
                    ms: 0,
                    group: group.clone(),
                    lane: *lane,
                    shard: *shard,
                });
            }
            Event::StepEnd(end) => {
                match s
                    .steps
                    .iter_mut()
                    .find(|st| same_step(st, &end.name, end.group.as_ref(), end.shard))
                {
                    Some(st) => *st = end.clone(),
                    None => s.steps.push(end.clone()),
                }
            }
            Event::SyncEnd {
                lease_id,
                files,
                bytes,
                deleted,
                incremental,
                ms,
                error_kind,
            } => {
                let before_step = s.steps.len();
                s.syncs.push(SummarySync {
                    lease_id: lease_id.clone(),
                    files: *files,
                    bytes: *bytes,
                    deleted: *deleted,
                    incremental: *incremental,
                    ms: *ms,
                    error_kind: error_kind.clone(),
                    before_step,
                });
            }
            Event::RunEnd {
                exit_code,
                error_kind,
                ms,
                ..
            } => s.end = Some((*exit_code, error_kind.clone(), *ms)),
            Event::ShardEnd {
                name,
                shard,
                count,
                items,
                node,
                status,
                ..
            } => s.shards.push(ShardRow {
                name: name.clone(),
                shard: *shard,
                count: *count,
                items: *items,
                node: node.clone(),
                status: status.clone(),
            }),
            _ => {}
        }
    }
}

/// A duration as people read it: `412ms`, `1.2s`, `2m05s`, `1h02m`.
#[must_use]
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

fn lease_fate(id: &str, fate: &LeaseFate) -> String {
    match fate {
        LeaseFate::Requested => format!("lease {id} never became ready"),
        LeaseFate::Held => format!("lease {id} held"),
        LeaseFate::Released => format!("lease {id} released"),
        LeaseFate::Kept(reason) if reason == "release_failed" => {
            format!("lease {id} NOT released (`leasebox stop {id}` retries)")
        }
        LeaseFate::Kept(_) => format!("lease {id} kept (`leasebox stop {id}` releases it)"),
    }
}

fn status_style(status: &str) -> &'static str {
    match status {
        "passed" | "synced" => "32",
        "failed" | "errored" => "31",
        "skipped" => "33",
        _ => "2",
    }
}

/// One row of the summary before it is laid out.
struct Row {
    indent: usize,
    name: String,
    status: String,
    time: String,
    note: String,
}

fn step_row(step: &StepEnd, indent: usize, name: String) -> Row {
    let note = match (step.status.as_str(), step.code, &step.error_kind) {
        ("failed", Some(code), _) => format!("exit {code}"),
        ("errored", _, Some(kind)) => kind.clone(),
        _ => String::new(),
    };
    Row {
        indent,
        name,
        status: step.status.clone(),
        time: if step.status == "skipped" {
            String::new()
        } else {
            human_ms(step.ms)
        },
        note,
    }
}

/// `n` and the noun, with an `s` unless `n` is 1 (`1 file`, `3 files`).
#[must_use]
pub fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A sync's row: full or incremental, what was sent and deleted (and to which lease, when the
/// run holds several).
fn sync_row(sync: &SummarySync, name_lease: bool) -> Row {
    let mut note = if let Some(kind) = &sync.error_kind {
        kind.clone()
    } else if sync.incremental {
        format!(
            "incremental · {} sent ({}), {} deleted",
            plural(sync.files, "file"),
            HumanBytes(sync.bytes),
            sync.deleted
        )
    } else {
        format!(
            "full · {} sent ({})",
            plural(sync.files, "file"),
            HumanBytes(sync.bytes)
        )
    };
    if name_lease {
        note.push_str(&format!(" · {}", sync.lease_id));
    }
    Row {
        indent: 0,
        name: "sync".to_owned(),
        status: if sync.error_kind.is_some() {
            "failed"
        } else {
            "synced"
        }
        .to_owned(),
        time: human_ms(sync.ms),
        note,
    }
}

/// The status of a group of steps: failed/errored if any is, else passed if every one passed,
/// else skipped or running.
fn group_status(members: &[&StepEnd]) -> String {
    for bad in ["errored", "failed", "running"] {
        if members.iter().any(|m| m.status == bad) {
            return if bad == "errored" {
                "failed".to_owned()
            } else {
                bad.to_owned()
            };
        }
    }
    if members.iter().all(|m| m.status == "skipped") {
        "skipped".to_owned()
    } else {
        "passed".to_owned()
    }
}

impl Summary {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut done_groups: Vec<&str> = Vec::new();
        let mut done_sharded: Vec<&str> = Vec::new();
        let name_lease = self.leases.len() > 1;
        let mut syncs = self.syncs.iter().peekable();
        for (i, step) in self.steps.iter().enumerate() {
            while let Some(sync) = syncs.next_if(|s| s.before_step <= i) {
                rows.push(sync_row(sync, name_lease));
            }
            if let Some(group) = &step.group {
                if done_groups.contains(&group.as_str()) {
                    continue;
                }
                done_groups.push(group);
                let mut members: Vec<&StepEnd> = self
                    .steps
                    .iter()
                    .filter(|s| s.group.as_ref() == Some(group))
                    .collect();
                members.sort_by_key(|m| m.lane);
                let ms = members.iter().map(|m| m.ms).max().unwrap_or(0);
                rows.push(Row {
                    indent: 0,
                    name: group.clone(),
                    status: "parallel".to_owned(),
                    time: human_ms(ms),
                    note: format!("{} steps, {}", members.len(), group_status(&members)),
                });
                for m in members {
                    rows.push(step_row(m, 1, m.name.clone()));
                }
            } else if step.shard.is_some() {
                // A sharded step: its shards as one block, in shard order.
                if done_sharded.contains(&step.name.as_str()) {
                    continue;
                }
                done_sharded.push(&step.name);
                let mut shards: Vec<&StepEnd> = self
                    .steps
                    .iter()
                    .filter(|s| s.group.is_none() && s.shard.is_some() && s.name == step.name)
                    .collect();
                shards.sort_by_key(|s| s.shard);
                let passed = shards.iter().filter(|s| s.status == "passed").count();
                let ms = shards.iter().map(|m| m.ms).max().unwrap_or(0);
                rows.push(Row {
                    indent: 0,
                    name: step.name.clone(),
                    status: group_status(&shards),
                    time: human_ms(ms),
                    note: format!("{passed}/{} shards passed", shards.len()),
                });
                for s in shards {
                    let k = s.shard.unwrap_or(0);
                    let row = self
                        .shards
                        .iter()
                        .find(|r| r.name == s.name && r.shard == k);
                    let name = match row {
                        Some(r) => format!("[{k}/{}]", r.count),
                        None => format!("shard {k}"),
                    };
                    let mut line = step_row(s, 1, name);
                    if let Some(r) = row {
                        if r.status == "cancelled" {
                            line.status = "cancelled".to_owned();
                        }
                        let mut extra = Vec::new();
                        if let Some(n) = r.items {
                            extra.push(format!("{n} item{}", if n == 1 { "" } else { "s" }));
                        }
                        if let Some(node) = &r.node {
                            extra.push(format!("on {node}"));
                        }
                        if !line.note.is_empty() {
                            extra.push(std::mem::take(&mut line.note));
                        }
                        line.note = extra.join(" · ");
                    }
                    rows.push(line);
                }
            } else {
                rows.push(step_row(step, 0, step.name.clone()));
            }
        }
        rows.extend(syncs.map(|sync| sync_row(sync, name_lease)));
        rows
    }

    /// The step that gave the run's exit code, and how it says so.
    fn culprit(&self) -> Option<String> {
        let (code, kind, _) = self.end.as_ref()?;
        let failed = self
            .steps
            .iter()
            .find(|s| s.status == "failed" && s.code == Some(*code));
        if let Some(step) = failed {
            return Some(format!("step `{}` exited with code {code}", step.name));
        }
        let errored = self
            .steps
            .iter()
            .find(|s| s.status == "errored" && s.error_kind.is_some() && s.error_kind == *kind);
        errored.map(|step| {
            format!(
                "step `{}` errored ({}, exit code {code})",
                step.name,
                step.error_kind.as_deref().unwrap_or("error")
            )
        })
    }

    /// The summary as text for stderr: the step lines (when there are steps) and the verdict;
    /// for a watch that ended, the last run's steps and the watch's totals.
    #[must_use]
    pub fn render(&self, output: Output) -> String {
        let mut text = String::new();
        let rows = self.rows();
        if !rows.is_empty() {
            let head = match (&self.watch, self.run_number) {
                (Some(_), Some(n)) => format!("==> summary of run {n}"),
                _ => "==> summary".to_owned(),
            };
            text.push_str(&format!("{}\n", output.paint("1", &head)));
            let name_width = rows
                .iter()
                .map(|r| r.indent * 2 + r.name.chars().count())
                .max()
                .unwrap_or(0);
            for row in &rows {
                let name = format!("{}{}", "  ".repeat(row.indent), row.name);
                let status = format!("{:<8}", row.status);
                let line = format!(
                    "    {name:<name_width$}  {}  {:>6}  {}",
                    output.paint(status_style(&row.status), &status),
                    row.time,
                    row.note
                );
                text.push_str(line.trim_end());
                text.push('\n');
            }
        }
        match &self.watch {
            Some(totals) => text.push_str(&self.watch_verdict(totals, output)),
            None => text.push_str(&self.verdict(output)),
        }
        text.push('\n');
        text
    }

    /// The one line a run of `leasebox watch` ends with: its number, passed or failed (and
    /// why: the step that gave the code, else `detail`, the error's first line), its time and
    /// its step counts. A run a change stopped says so.
    #[must_use]
    pub fn rerun_verdict(&self, restarted: bool, detail: Option<&str>, output: Output) -> String {
        let n = self.run_number.unwrap_or(1);
        let (code, kind, ms) = self.end.clone().unwrap_or((0, None, 0));
        let time = human_ms(ms);
        let head = if restarted {
            output.paint("33", &format!("run {n} stopped for a restart after {time}"))
        } else if code == 0 {
            output.paint("1;32", &format!("run {n} passed in {time}"))
        } else if kind.as_deref() == Some("cancelled") {
            output.paint("33", &format!("run {n} cancelled after {time}"))
        } else {
            let why = self
                .culprit()
                .or_else(|| detail.map(str::to_owned))
                .unwrap_or_else(|| match &kind {
                    Some(kind) => format!("{kind} (exit code {code})"),
                    None => format!("exit code {code}"),
                });
            format!(
                "{}: {why}",
                output.paint("1;31", &format!("run {n} failed in {time}"))
            )
        };
        let count = |status: &str| self.steps.iter().filter(|s| s.status == status).count();
        let mut steps = Vec::new();
        if !self.steps.is_empty() {
            steps.push(format!("{} passed", count("passed")));
            let failed = count("failed") + count("errored");
            if failed > 0 {
                steps.push(format!("{failed} failed"));
            }
            let skipped = count("skipped");
            if skipped > 0 {
                steps.push(format!("{skipped} skipped"));
            }
        }
        if steps.is_empty() {
            format!("==> {head}")
        } else {
            format!("==> {head} · steps {}", steps.join(", "))
        }
    }

    /// The last line of a watch: the runs, how they went, how long it watched, the leases.
    fn watch_verdict(&self, totals: &WatchTotals, output: Output) -> String {
        let runs = match totals.runs {
            1 => "1 run".to_owned(),
            n => format!("{n} runs"),
        };
        let mut counts = vec![format!("{} passed", totals.passed)];
        if totals.failed > 0 {
            counts.push(output.paint("31", &format!("{} failed", totals.failed)));
        }
        if totals.restarted > 0 {
            counts.push(format!("{} restarted", totals.restarted));
        }
        let mut parts = vec![format!(
            "{}: {}",
            output.paint("1", &format!("watched {runs} in {}", human_ms(totals.ms))),
            counts.join(", ")
        )];
        match totals.error_kind.as_deref() {
            None => {}
            Some("cancelled") => parts.push("stopped by Ctrl-C".to_owned()),
            Some(kind) => parts.push(format!("ended by an error ({kind})")),
        }
        for (id, fate) in &self.leases {
            parts.push(lease_fate(id, fate));
        }
        format!("==> {}", parts.join(" · "))
    }

    /// The verdict line.
    #[must_use]
    pub fn verdict(&self, output: Output) -> String {
        let (code, kind, ms) = self.end.clone().unwrap_or((0, None, 0));
        let mut parts = Vec::new();
        let head = if code == 0 {
            output.paint("1;32", &format!("passed in {}", human_ms(ms)))
        } else {
            let why = self.culprit().unwrap_or_else(|| match &kind {
                Some(kind) => format!("{kind} (exit code {code})"),
                None => format!("exit code {code}"),
            });
            format!(
                "{}: {why}",
                output.paint("1;31", &format!("failed in {}", human_ms(ms)))
            )
        };
        parts.push(head);
        if self.leases.is_empty() {
            parts.push("no lease".to_owned());
        }
        for (id, fate) in &self.leases {
            parts.push(lease_fate(id, fate));
        }
        format!("==> {}", parts.join(" · "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, status: &str, code: Option<i32>, group: Option<&str>, lane: u32) -> Event {
        Event::StepEnd(StepEnd {
            name: name.into(),
            status: status.into(),
            code,
            error_kind: None,
            ms: 1200,
            group: group.map(str::to_owned),
            lane,
            shard: None,
        })
    }

    fn collect(events: Vec<Event>) -> Summary {
        let c = SummaryCollector::default();
        for (seq, event) in events.into_iter().enumerate() {
            c.record(&Record {
                schema: 1,
                ts: String::new(),
                run_id: "run_x".into(),
                seq: seq as u64,
                event,
            });
        }
        c.snapshot()
    }

    #[test]
    fn a_failing_parallel_member_is_named_in_the_verdict() {
        let s = collect(vec![
            Event::LeaseRequested {
                lease_id: "lbx_1".into(),
                backend: "local".into(),
            },
            step("build", "passed", Some(0), None, 0),
            Event::StepStart {
                name: "lint".into(),
                group: Some("checks".into()),
                lane: 0,
                shard: None,
            },
            Event::StepStart {
                name: "unit".into(),
                group: Some("checks".into()),
                lane: 1,
                shard: None,
            },
            step("unit", "failed", Some(3), Some("checks"), 1),
            step("lint", "passed", Some(0), Some("checks"), 0),
            step("deploy", "skipped", None, None, 0),
            Event::LeaseReleased {
                lease_id: "lbx_1".into(),
                ms: 3,
            },
            Event::RunEnd {
                passed: false,
                exit_code: 3,
                error_kind: Some("command_failed".into()),
                ms: 2300,
                watch: None,
            },
        ]);
        let text = s.render(Output::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "==> summary");
        assert_eq!(lines[1], "    build   passed      1.2s");
        assert_eq!(lines[2], "    checks  parallel    1.2s  2 steps, failed");
        assert_eq!(lines[3], "      lint  passed      1.2s");
        assert_eq!(lines[4], "      unit  failed      1.2s  exit 3");
        assert_eq!(lines[5], "    deploy  skipped");
        assert_eq!(
            lines[6],
            "==> failed in 2.3s: step `unit` exited with code 3 · lease lbx_1 released"
        );
    }

    #[test]
    fn shards_are_one_block_and_a_kept_lease_says_how_to_release_it() {
        let shard = |k: u32, status: &str| {
            Event::StepEnd(StepEnd {
                name: "test".into(),
                status: status.into(),
                code: Some(u32::from(status != "passed") as i32),
                error_kind: None,
                ms: 500 + u64::from(k),
                group: None,
                lane: k,
                shard: Some(k),
            })
        };
        let s = collect(vec![
            shard(1, "failed"),
            shard(0, "passed"),
            Event::LeaseKept {
                lease_id: "lbx_2".into(),
                reason: "kept".into(),
            },
            Event::RunEnd {
                passed: false,
                exit_code: 1,
                error_kind: Some("command_failed".into()),
                ms: 61_000,
                watch: None,
            },
        ]);
        let text = s.render(Output::default());
        assert!(
            text.contains("    test       failed     501ms  1/2 shards passed\n"),
            "{text}"
        );
        assert!(text.contains("      shard 0  passed     500ms\n"), "{text}");
        assert!(
            text.contains("      shard 1  failed     501ms  exit 1\n"),
            "{text}"
        );
        assert!(text.ends_with(
            "==> failed in 1m01s: step `test` exited with code 1 · lease lbx_2 kept (`leasebox stop lbx_2` releases it)\n"
        ), "{text}");
    }

    #[test]
    fn a_run_that_failed_before_any_step_names_its_error_kind() {
        let s = collect(vec![
            Event::LeaseRequested {
                lease_id: "lbx_3".into(),
                backend: "nomad".into(),
            },
            Event::RunEnd {
                passed: false,
                exit_code: 75,
                error_kind: Some("placement_failed".into()),
                ms: 40,
                watch: None,
            },
        ]);
        assert_eq!(
            s.render(Output::default()),
            "==> failed in 40ms: placement_failed (exit code 75) · lease lbx_3 never became ready\n"
        );
        assert_eq!(human_ms(3_723_000), "1h02m");
    }

    fn watch_run(number: u32) -> Event {
        Event::RunStart {
            recipe: Some("ci".into()),
            command: None,
            watch: Some(crate::events::WatchRun {
                number,
                trigger: "change".into(),
                changed: Some(vec!["src/a.rs".into()]),
                changed_count: 1,
            }),
        }
    }

    fn watch_end(number: u32, code: i32, kind: Option<&str>, restarted: bool) -> Event {
        Event::RunEnd {
            passed: code == 0,
            exit_code: code,
            error_kind: kind.map(str::to_owned),
            ms: 1100,
            watch: Some(crate::events::WatchRunEnd { number, restarted }),
        }
    }

    fn synced(lease: &str, files: u64, deleted: u64, incremental: bool) -> Event {
        Event::SyncEnd {
            lease_id: lease.into(),
            files,
            bytes: 2048,
            deleted,
            incremental,
            ms: 38,
            error_kind: None,
        }
    }

    #[test]
    fn a_watch_run_ends_with_one_line_and_the_watch_with_its_totals() {
        let ready = Event::LeaseReady {
            lease_id: "lbx_4".into(),
            backend: "local".into(),
            job: None,
            allocation: None,
            node: None,
            workdir: "/w".into(),
            reused: false,
            ms: 1,
        };
        let out = Output::default();
        let s = collect(vec![
            watch_run(3),
            ready.clone(),
            step("build", "passed", Some(0), None, 0),
            step("unit", "failed", Some(3), None, 0),
            step("deploy", "skipped", None, None, 0),
            watch_end(3, 3, Some("command_failed"), false),
        ]);
        assert_eq!(
            s.rerun_verdict(false, None, out),
            "==> run 3 failed in 1.1s: step `unit` exited with code 3 · steps 1 passed, 1 failed, 1 skipped"
        );
        let s = collect(vec![
            watch_run(4),
            ready.clone(),
            watch_end(4, 65, Some("recipe_error"), false),
        ]);
        assert_eq!(
            s.rerun_verdict(false, Some("ci.lua:3: boom"), out),
            "==> run 4 failed in 1.1s: ci.lua:3: boom"
        );
        let s = collect(vec![
            watch_run(5),
            ready.clone(),
            step("build", "errored", None, None, 0),
            watch_end(5, 130, Some("cancelled"), true),
        ]);
        assert_eq!(
            s.rerun_verdict(true, None, out),
            "==> run 5 stopped for a restart after 1.1s · steps 0 passed, 1 failed"
        );

        // The watch stops: the last run's steps, then the totals and the lease's fate (its
        // release came after the last run's end).
        let s = collect(vec![
            watch_run(6),
            ready,
            step("build", "passed", Some(0), None, 0),
            watch_end(6, 0, None, false),
            Event::LeaseReleased {
                lease_id: "lbx_4".into(),
                ms: 2,
            },
            Event::WatchEnd {
                runs: 6,
                passed: 3,
                failed: 2,
                restarted: 1,
                exit_code: 130,
                error_kind: Some("cancelled".into()),
                ms: 192_000,
            },
        ]);
        assert_eq!(
            s.rerun_verdict(false, None, out),
            "==> run 6 passed in 1.1s · steps 1 passed"
        );
        let text = s.render(out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "==> summary of run 6");
        assert_eq!(lines[1], "    build  passed      1.2s");
        assert_eq!(
            lines[2],
            "==> watched 6 runs in 3m12s: 3 passed, 2 failed, 1 restarted · stopped by Ctrl-C · lease lbx_4 released"
        );
    }

    #[test]
    fn each_sync_is_a_row_in_its_place_saying_full_or_incremental() {
        let s = collect(vec![
            Event::LeaseRequested {
                lease_id: "lbx_4".into(),
                backend: "local".into(),
            },
            synced("lbx_4", 9, 0, false),
            step("build", "passed", Some(0), None, 0),
            synced("lbx_4", 1, 2, true),
            step("test", "passed", Some(0), None, 0),
            Event::RunEnd {
                passed: true,
                exit_code: 0,
                error_kind: None,
                ms: 2300,
                watch: None,
            },
        ]);
        let text = s.render(Output::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "    sync   synced      38ms  full · 9 files sent (2.00 KiB)"
        );
        assert_eq!(lines[2], "    build  passed      1.2s");
        assert_eq!(
            lines[3],
            "    sync   synced      38ms  incremental · 1 file sent (2.00 KiB), 2 deleted"
        );
        assert_eq!(lines[4], "    test   passed      1.2s");
    }

    #[test]
    fn a_failed_sync_names_its_error_and_several_leases_are_told_apart() {
        let s = collect(vec![
            Event::LeaseRequested {
                lease_id: "lbx_5".into(),
                backend: "local".into(),
            },
            Event::LeaseRequested {
                lease_id: "lbx_6".into(),
                backend: "local".into(),
            },
            synced("lbx_5", 0, 0, true),
            Event::SyncEnd {
                lease_id: "lbx_6".into(),
                files: 0,
                bytes: 0,
                deleted: 0,
                incremental: false,
                ms: 5,
                error_kind: Some("ownership_refused".into()),
            },
            Event::RunEnd {
                passed: false,
                exit_code: 78,
                error_kind: Some("ownership_refused".into()),
                ms: 60,
                watch: None,
            },
        ]);
        let text = s.render(Output::default());
        assert!(
            text.contains(
                "    sync  synced      38ms  incremental · 0 files sent (2.00 KiB), 0 deleted · lbx_5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    sync  failed       5ms  ownership_refused · lbx_6\n"),
            "{text}"
        );
    }
}
