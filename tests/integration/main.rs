//! The one integration test binary. Each file is a feature; `support` holds the helpers they
//! share (the real `leasebox` binary in a scratch environment, scratch git repositories, and the
//! Nomad API test server).

mod cleanup;
mod cli_manners;
mod cli_run;
mod events;
mod fuzz_oracles;
mod jobspec;
mod json_errors;
mod layers;
mod listing;
mod live_nomad;
mod nomad_backend;
mod nomad_server;
mod progress;
mod recipes;
mod repl;
mod report;
mod session_local;
mod shard;
mod shell;
mod support;
mod sync_incremental;
mod sync_shells;
mod trust;
mod verified_exec;
mod watch;
