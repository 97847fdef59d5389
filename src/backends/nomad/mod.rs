//! The Nomad backend: a lease is a one-task job that leasebox registers, owns and purges; exec
//! goes over the allocation exec websocket. The only module that knows Nomad's wire types.
//!
//! Warmup registers a create-only job (`EnforceIndex`, `JobModifyIndex: 0`) whose `Meta`
//! carries the ownership fields of DESIGN §6, with datacenters always sent (the configured
//! ones, else those of the ready nodes that have the driver), restart and reschedule off, and a
//! keepalive that exits promptly on TERM/INT. Placement failures are reported with Nomad's
//! reason; readiness is read from allocations with blocking queries, never from `Job.Status`;
//! anything that fails after registration purges the job before the error is returned.
//! Release purges and then confirms absence with a GET that answers 404 (a delete reply proves
//! nothing on 1.1).

mod backend;
pub mod client;
pub mod doctor;
pub mod exec;
#[doc(hidden)]
pub mod fuzzing;
mod job;
mod placement;
mod purge;
mod readiness;
pub mod template;
mod tls;
pub mod wire;
mod workdir;

pub use backend::{NomadBackend, NomadTimings, nomad_features};
pub use job::{meta, scope_fingerprint};
pub use workdir::{check_workdir, default_workdir};

/// The recorded exchanges with a real 1.1.2 agent the unit tests replay: `shared/fixtures/` beside
/// the checkout, or `LEASEBOX_NOMAD_FIXTURES` where the sources sit elsewhere (a box the
/// repository was synced into, as the `cargo test` benchmark does).
#[cfg(test)]
pub(crate) fn recorded_fixtures() -> std::path::PathBuf {
    std::env::var_os("LEASEBOX_NOMAD_FIXTURES").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/nomad-1.1.2"),
        Into::into,
    )
}
