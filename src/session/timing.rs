//! Per-phase timing of a run, written by `--timing-json FILE`: warmup, sync, each step,
//! fetch, cleanup, the exit code and the error kind.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// One measured phase.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Phase {
    /// `warmup`, `sync`, `step:NAME`, `fetch`, `cleanup`, …
    pub name: String,
    /// Wall time in milliseconds.
    pub ms: u64,
}

/// Collects phases as they finish; shared by everything that works for one run.
#[derive(Debug, Default)]
pub struct Timing {
    phases: Mutex<Vec<Phase>>,
}

/// The timing file's contents.
#[derive(Debug, Clone, Serialize)]
pub struct TimingReport {
    /// Phases in the order they finished.
    pub phases: Vec<Phase>,
    /// Total wall time of the run in milliseconds.
    pub total_ms: u64,
    /// The process exit code.
    pub exit_code: i32,
    /// `null` on success, else one of the `error_kind` names of `docs/exit-codes.md`.
    pub error_kind: Option<&'static str>,
}

impl Timing {
    /// Record a finished phase.
    pub fn record(&self, name: impl Into<String>, ms: u64) {
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Phase {
                name: name.into(),
                ms,
            });
    }

    /// Record a phase that started at `start`.
    pub fn record_since(&self, name: impl Into<String>, start: Instant) {
        self.record(name, elapsed_ms(start));
    }

    /// The phases so far.
    pub fn phases(&self) -> Vec<Phase> {
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Milliseconds since `start`.
#[must_use]
pub fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
