//! The timeline picture of a timing file (`leasebox report TIMING.json -o run.html|run.svg`):
//! phases and steps as bars on a time axis, parallel steps and shards as lanes, failures
//! marked, durations labelled. The SVG is drawn here as text (no script, no external asset);
//! the HTML page holds it inline with its CSS, so one file shows the picture anywhere.
//!
//! Reads the timing types of [`session`](crate::session); [`load`] checks the file's
//! `format_version` first, so an old or foreign file gets a message saying what to do.

mod error;
mod format;
mod layout;
mod read;
mod render;

pub use error::ReportError;
pub use layout::{Row, Timeline};
pub use read::{load, parse};
pub use render::{html, svg};
