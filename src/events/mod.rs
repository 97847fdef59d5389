//! What a run tells as it goes, to people and to programs.
//!
//! - [`Event`] is one thing that happened (a run started, a lease became ready, a step ended, …),
//!   stamped into a [`Record`] with the schema version, a timestamp, the run id and a sequence
//!   number (`event.rs`). `docs/events.schema.json` is its JSON Schema; `docs/events.md` explains
//!   it.
//! - [`Events`] is the emitter every layer of a run shares (cheap to clone; the default one
//!   records nothing and prints human lines to stderr); [`RunEvents`] is the handle of one run:
//!   made by [`Events::run_started`], it stamps that run's id on everything and ends with exactly
//!   one `run_end` ([`RunEvents::finish`]), so a command that reruns (`watch`) makes one per
//!   rerun over the same emitter (`sink.rs`).
//! - Observers of the records: the NDJSON stream of `--events FILE` ([`EventStream`],
//!   `stream.rs`), the terminal's progress (indicatif spinners and bars, only when stderr is a
//!   terminal; `terminal.rs`), and the closing [`Summary`] (`summary.rs`).
//! - [`Output`] is how the human side is asked to look: `--quiet`, `-v`, colour from the
//!   terminal, `NO_COLOR` and `CLICOLOR_FORCE` (`output.rs`).

mod event;
mod output;
mod sink;
mod stream;
mod summary;
mod terminal;

pub use event::{
    EVENTS_SCHEMA_VERSION, Event, Record, StepEnd, Tick, WATCH_CHANGED_LIMIT, WatchRun, WatchRunEnd,
};
pub use output::{Output, color_from_env};
pub use sink::{Events, EventsOptions, Observer, RunEvents, RunStart, WatchTotals};
pub use stream::EventStream;
pub use summary::{LeaseFate, Summary, SummaryStep, SummarySync, plural};
