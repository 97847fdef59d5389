//! The lease lifecycle, between the callers (`cli`, `host`) and what it orchestrates
//! (`backends`, `session`, `ownership`, `config`).
//!
//! - [`open`] opens the backend the resolved config chooses, [`open_for_claim`] the one a
//!   lease's claim names (`open.rs`); [`all_features`]
//!   lists what each backend of this build supports.
//! - [`Leases`] acquires, reuses (attaches), releases, stops and lists leases, claims first
//!   (`lifecycle.rs`); [`Leases::cleanup`] sweeps what should not be there (`cleanup.rs`).
//! - [`HeldLease`] is the lease a caller holds: the attached [`Session`], the claim's holder
//!   lock, and its release (`held.rs`).
//! - [`doctor`] runs `leasebox doctor`'s sequence (`doctor.rs`).
//! - The run's timing: the sessions a [`Leases`] hands out share its [`Timing`], and
//!   [`TimingReport`] is the `--timing-json` file (`timing.rs`).
//! - The run's events: a [`Leases`] made [`with_events`](Leases::with_events) reports each lease
//!   requested, waiting (what the backend reports while it warms up, forwarded from the
//!   backend's progress channel: `progress.rs`), placed, ready, released or kept, and hands the
//!   same events to the sessions it creates.
//!
//! Callers reach the attached session's vocabulary (commands, sync options, output sinks)
//! through the re-exports here, never through `session` or `backends` directly.

mod cleanup;
mod doctor;
mod held;
mod lifecycle;
mod open;
mod progress;
mod timing;

pub use cleanup::{CleanupAction, CleanupItem, CleanupOptions};
pub use doctor::doctor;
pub use held::HeldLease;
pub use lifecycle::{LeaseRequest, Leases};
pub use open::{open, open_for_claim};
pub use timing::{Phase, PhaseStatus, TIMING_FORMAT_VERSION, Timing, TimingReport, elapsed_ms};

pub use crate::backends::all_features;
pub use crate::events::{Event, Events, RunEvents, RunStart, StepEnd};
pub use crate::lease::{Check, CheckStatus, GroupPlacement};
pub use crate::session::fetch::check_fetch_path;
pub use crate::session::{
    Command, ExecOutcome, OnMismatch, PrefixSink, Session, ShellOutcome, ShellRequest, SyncOptions,
    SyncReport, TerminalSink, stdin_is_terminal, sync_group,
};
