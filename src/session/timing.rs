//! Per-phase timing of a run: the recorder every operation of one run writes its phase into
//! (warmup, sync, each step, fetch, cleanup). The timing file of `--timing-json FILE` is the
//! lifecycle layer's (`leases::TimingReport`).

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
