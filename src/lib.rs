//! leasebox: run recipes (Lua files in a repository) on a leased box, a Nomad allocation or a
//! local scratch directory: lease, sync, run steps with live output and real exit codes, fetch
//! artifacts, release.
//!
//! # Layers
//!
//! Modules and what each may import (no cycles; nothing imports `cli`):
//!
//! ```text
//! cli        clap; parses, resolves config, picks a backend, calls the host.  The only clap.
//!            -> host, session, backends, config, ownership, lease, report
//! host       the Lua VM: sandbox, module loader, bindings of the primitives.  The only Lua.
//!            -> session, lease, config, ownership
//! session    backend-independent operations over exec: sync, fetch, verified exec, timing
//!            -> lease
//! backends   nomad and local (the only module that knows Nomad's wire types is backends::nomad)
//!            -> lease, config, ownership
//! report     the timeline picture of a timing file (`leasebox report`)
//!            -> session
//! lease      the Backend trait and its types (LeaseSpec, Lease, ExecRequest, ExecEvent, LeaseError)
//! config     layered config with provenance
//! ownership  claims store (state dir, locks), reuse/cleanup rules
//! error      error kinds and exit codes, importable by every layer
//! ```
//!
//! The binary (`src/main.rs`) only calls [`cli::main`], which owns the one exit funnel.

pub mod backends;
pub mod cli;
pub mod config;
pub mod error;
pub mod host;
pub mod lease;
pub mod ownership;
pub mod report;
pub mod session;
