//! `leasebox watch`: run a recipe, keep its leases warm, rerun it when files of the sync set
//! change.
//!
//! - `filter`: what is watched, decided before any watch is registered ([`WatchFilter`]).
//! - `watcher`: `notify` behind its own type, with actionable errors ([`FileWatcher`]).
//! - `changes`: debounce, storms, the line naming what changed ([`Pending`], [`Change`]).
//! - `warm`: the leases kept warm across runs and renewed ([`WarmLeases`]).
//! - `keys`: Enter reruns, `q` quits ([`Key`]).
//! - `run_loop`: the one loop that owns the state ([`watch`]).
//!
//! The user documentation is `docs/watch.md`.

mod changes;
mod filter;
mod keys;
mod run_loop;
mod warm;
mod watcher;

pub use changes::{Change, Pending, STORM_THRESHOLD, describe};
pub use filter::WatchFilter;
pub use keys::{Key, key_of, stdin_keys};
pub use run_loop::{OnBusy, RunInfo, WatchEnd, WatchHooks, WatchOptions, WatchReport, watch};
pub use warm::WarmLeases;
pub use watcher::{FileWatcher, RawEvent, WatchError, WatchMode};
