//! Per-phase timing of a run, written by `--timing-json FILE`: warmup, sync, each step,
//! fetch, cleanup, the exit code and the error kind; and, since format version 1, what a
//! picture of the run needs (`leasebox report`): each phase's start offset from the run's
//! start, its status, its lane (parallel steps and shards get distinct lanes) and its shard.

use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The timing file's `format_version`: what this leasebox writes and `leasebox report` reads.
/// Version 1 added `format_version` and each phase's `start_ms`, `status`, `lane` and the
/// optional `shard`, `group`, `code` and `error_kind`; earlier files had none of these.
pub const TIMING_FORMAT_VERSION: u32 = 1;

/// How a phase ended.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    /// It finished and did what it should (a step: exit code 0).
    #[default]
    Passed,
    /// A step whose command exited non-zero (`code` says with what).
    Failed,
    /// A step that raised an error: a Lua error, a lost connection, a timeout (`error_kind`).
    Errored,
    /// A step not run: an earlier step failed, or the run was cancelled.
    Skipped,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Phase {
    /// `warmup`, `sync`, `step:NAME`, `fetch`, `cleanup`, …
    pub name: String,
    /// Wall time in milliseconds.
    pub ms: u64,
    /// When it started, in milliseconds from the start of the run.
    pub start_ms: u64,
    /// How it ended.
    pub status: PhaseStatus,
    /// The row of concurrent work it ran in: 0, unless it ran beside others (the members of a
    /// parallel group are lanes 0, 1, … in declaration order; shards are lanes by index).
    pub lane: u32,
    /// The shard it belongs to, in a sharded run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// The parallel group a step ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A failed step's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// An errored step's error kind (an `error_kind` name of `docs/exit-codes.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// What a `sync` phase moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncFigures>,
}

/// What a sync moved, in the timing file's `sync` phase.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncFigures {
    /// Files and links sent.
    pub files: u64,
    /// Bytes of file content sent.
    pub bytes: u64,
    /// Files and links deleted in the box.
    pub deleted: u64,
    /// Only the differences were sent.
    pub incremental: bool,
}

impl Phase {
    /// A phase that passed, on lane 0.
    #[must_use]
    pub fn new(name: impl Into<String>, start_ms: u64, ms: u64) -> Phase {
        Phase {
            name: name.into(),
            ms,
            start_ms,
            status: PhaseStatus::Passed,
            lane: 0,
            shard: None,
            group: None,
            code: None,
            error_kind: None,
            sync: None,
        }
    }
}

/// Collects phases as they finish; shared by everything that works for one run. The run's
/// start (offset 0) is when the collector was made.
#[derive(Debug)]
pub struct Timing {
    origin: Mutex<Instant>,
    phases: Mutex<Vec<Phase>>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            origin: Mutex::new(Instant::now()),
            phases: Mutex::default(),
        }
    }
}

/// The timing file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimingReport {
    /// [`TIMING_FORMAT_VERSION`] when written by this leasebox.
    pub format_version: u32,
    /// Phases in the order they ran (by start, ties in the order recorded).
    pub phases: Vec<Phase>,
    /// Total wall time of the run in milliseconds.
    pub total_ms: u64,
    /// The process exit code.
    pub exit_code: i32,
    /// `null` on success, else one of the `error_kind` names of `docs/exit-codes.md`.
    pub error_kind: Option<String>,
    /// The run's id, for a run of `leasebox watch` (each rerun is a run of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The paths whose change started this rerun of `leasebox watch` (absent on a first run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

impl Timing {
    /// Record a phase that took `ms` and ended now.
    pub fn record(&self, name: impl Into<String>, ms: u64) {
        let start_ms = self.offset_ms(Instant::now()).saturating_sub(ms);
        self.push(Phase::new(name, start_ms, ms));
    }

    /// Record a phase that started at `start` and ended now.
    pub fn record_since(&self, name: impl Into<String>, start: Instant) {
        self.push(Phase::new(name, self.offset_ms(start), elapsed_ms(start)));
    }

    /// Record a phase described in full (a step with its status and lane).
    pub fn push(&self, phase: Phase) {
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(phase);
    }

    /// Milliseconds from the run's start to `at` (0 for an instant before it).
    #[must_use]
    pub fn offset_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin()).as_millis()).unwrap_or(u64::MAX)
    }

    /// When the run started (offset 0).
    #[must_use]
    pub fn origin(&self) -> Instant {
        *self.origin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a new run on the same recorder (each rerun of `leasebox watch`): offset 0 is now,
    /// and the phases so far are dropped.
    pub fn restart(&self) {
        *self.origin.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The phases so far, in the order they ran: by start offset, ties (and the members of a
    /// parallel group, which start together) in the order recorded. Phases are recorded when
    /// they end, and a recipe's steps after the fetch and cleanup that follow them, so the
    /// recording order is not the running order.
    pub fn phases(&self) -> Vec<Phase> {
        let mut phases = self
            .phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        phases.sort_by_key(|p| p.start_ms);
        phases
    }
}

/// Milliseconds since `start`.
#[must_use]
pub fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn phases_carry_their_start_offsets() {
        let timing = Timing::default();
        let start = timing.origin() + Duration::from_millis(40);
        timing.push(Phase::new("warmup", timing.offset_ms(start), 5));
        assert_eq!(timing.offsets(), [("warmup".to_owned(), 40)]);
        // `record` ends now: its start is now minus its length, never before the run began.
        timing.record("sync", u64::MAX);
        let sync = timing
            .phases()
            .into_iter()
            .find(|p| p.name == "sync")
            .unwrap();
        assert_eq!(sync.start_ms, 0);
        assert_eq!(
            timing.offset_ms(timing.origin() - Duration::from_millis(1)),
            0
        );
    }

    #[test]
    fn phases_come_back_in_the_order_they_ran() {
        let timing = Timing::default();
        let at = |ms| timing.origin() + Duration::from_millis(ms);
        // Recorded as a recipe run does: fetch and cleanup end before the steps are recorded.
        timing.push(Phase::new("warmup", timing.offset_ms(at(0)), 10));
        timing.push(Phase::new("sync", timing.offset_ms(at(10)), 5));
        timing.push(Phase::new("fetch", timing.offset_ms(at(40)), 2));
        timing.push(Phase::new("cleanup", timing.offset_ms(at(42)), 3));
        timing.push(Phase::new("step:a", timing.offset_ms(at(15)), 20));
        timing.push(Phase::new("step:b", timing.offset_ms(at(15)), 25));
        let names: Vec<String> = timing.phases().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["warmup", "sync", "step:a", "step:b", "fetch", "cleanup"]
        );
    }

    #[test]
    fn the_file_names_its_format_and_reads_back() {
        let mut step = Phase::new("step:b", 12, 3);
        step.status = PhaseStatus::Failed;
        step.code = Some(2);
        step.lane = 1;
        step.group = Some("checks".into());
        let report = TimingReport {
            format_version: TIMING_FORMAT_VERSION,
            phases: vec![Phase::new("warmup", 0, 10), step],
            total_ms: 20,
            exit_code: 2,
            error_kind: Some("command_failed".into()),
            run_id: None,
            changed: None,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["format_version"], 1);
        assert_eq!(json["phases"][1]["status"], "failed");
        assert_eq!(json["phases"][1]["lane"], 1);
        assert_eq!(json["phases"][1]["code"], 2);
        assert!(json["phases"][0].get("shard").is_none());
        let back: TimingReport = serde_json::from_value(json).unwrap();
        assert_eq!(back.phases, report.phases);
    }

    impl Timing {
        fn offsets(&self) -> Vec<(String, u64)> {
            self.phases()
                .into_iter()
                .map(|p| (p.name, p.start_ms))
                .collect()
        }
    }
}
