//! The REPL: `leasebox repl [--lease ID] [RECIPE]` and `run --repl-on-failure`.
//!
//! A Lua prompt in the same sandbox as recipes, with `lb` (the recipe API) loaded, the lease
//! attached as `box`, a recipe loaded as `recipe` (inert until `:run`), and the last failed
//! step as `last`. `start` opens it (from the CLI, or from a failed run); `state` holds the
//! prompt's state and runs entries; `eval` decides what an entry means (expression, statement,
//! incomplete); `commands` are the `:` commands; `prompt` reads lines (rustyline, or the whole
//! of a piped stdin); `complete` is the editor's completion and validation; `pretty` prints
//! values; `interrupt` routes Ctrl-C to the running call. User documentation: `docs/repl.md`.

mod commands;
mod complete;
mod eval;
mod interrupt;
mod pretty;
mod prompt;
mod start;
mod state;

pub use interrupt::Interrupts;
pub(crate) use start::{FailureRepl, after_failure};
pub use start::{ReplInput, ReplOnFailure, ReplOptions, run_repl};
pub(crate) use state::{Loaded, RecipeSource};
