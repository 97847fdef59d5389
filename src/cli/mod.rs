//! The command line: the only module that knows clap. It parses arguments, resolves the config,
//! picks a backend, wires Ctrl-C to a cancellation token, calls the layers below, and funnels
//! every outcome into one exit code ([`main`]).

mod args;
mod completion;
mod context;
mod entry;
mod info;
mod leases;
mod manual;
mod recipe;
mod repl;
mod report;
mod run;
mod shards;
mod shell;
mod sync;
mod trust;
mod watch;

pub use args::{Cli, Commands, VERSION, command, parse};
pub use completion::COMPLETE_VAR;
pub use context::repo_root_of;
pub(crate) use context::{Context, lease_id};
pub use entry::main;
