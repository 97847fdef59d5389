//! leasebox: run recipes (Lua files in a repository) on a leased box, a Nomad allocation or a
//! local scratch directory: lease, sync, run steps with live output and real exit codes, fetch
//! artifacts, release.
//!
//! # Layers
//!
//! Modules and what each may import (no cycles; nothing imports `cli`):
//!
//! ```text
//! cli        clap; parses, resolves config, hands the backend choice to `leases`, calls the host.  The only clap.
//!            -> host, leases, config, ownership, lease
//! host       the Lua VM: sandbox, module loader, bindings of the primitives, REPL, watch loop.  The only Lua.
//!            -> leases, session, lease, config, ownership
//! leases     the lease lifecycle: acquire, reuse, release, cleanup, doctor's sequence, the attached session
//!            -> backends, session, ownership, config, lease
//! session    backend-independent operations over exec: sync, fetch, verified exec, timing
//!            -> lease
//! backends   nomad (HTTP + exec websocket; the only module that knows Nomad's wire types) and local
//!            -> lease, config, ownership
//! lease      the Backend trait and its types (LeaseSpec, Lease, ExecRequest, ExecEvent, LeaseError)
//! config     layered config with provenance, trust gate, trust store
//! ownership  claims store (state dir, locks), scope fingerprint, reuse/cleanup rules
//! error      error kinds and exit codes; every layer may import it
//! atomic_file  atomic writes of private files, private directories; every layer may import it
//! ```
//!
//! This table is the one source of the rules: `tests/integration/layers/` reads it and fails,
//! naming file and line, on every import it does not allow, on `mlua` outside `host`, `clap`
//! outside `cli`, and Nomad wire types outside `backends::nomad`.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`], which owns the one exit funnel.

pub mod backends;
pub mod cli;
pub mod config;
pub mod error;
pub mod host;
pub mod lease;
pub mod ownership;
pub mod session;
