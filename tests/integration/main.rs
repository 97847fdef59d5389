//! The one integration test binary. Each file is a feature; `support` holds the helpers they
//! share (the real `leasebox` binary in a scratch environment, scratch git repositories, and the
//! Nomad API test server).

mod cleanup;
mod cli_manners;
mod cli_run;
mod jobspec;
mod layers;
mod live_nomad;
mod nomad_backend;
mod nomad_server;
mod recipes;
mod report;
mod session_local;
mod support;
mod sync_incremental;
mod trust;
