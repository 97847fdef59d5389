//! leasebox: run recipes (Lua files in a repository) on a leased box, a Nomad allocation or a
//! local scratch directory: lease, sync, run steps with live output and real exit codes, fetch
//! artifacts, release.
//!
//! # Layers
//!
//! Modules and what each may import (no cycles; nothing imports `cli`; a module without an
//! arrow line imports only the universal modules, `error` and `atomic_file`):
//!
//! ```text
//! cli        clap; parses, resolves config, hands the backend choice to `leases`, calls the host.  The only clap.
//!            -> host, leases, config, ownership, lease, report, events
//! host       the Lua VM: sandbox, module loader, bindings of the primitives, REPL, watch loop.  The only Lua.
//!            -> leases, session, lease, config, ownership, events
//! leases     the lease lifecycle: acquire, reuse, release, cleanup, doctor's sequence, the attached session
//!            -> backends, session, ownership, config, lease, events
//! session    backend-independent operations over exec: sync, fetch, verified exec, timing
//!            -> lease, events
//! backends   nomad (HTTP + exec websocket; the only module that knows Nomad's wire types) and local
//!            -> lease, config, ownership
//! report     the timeline picture of a timing file (`leasebox report`)
//!            -> session
//! events     what a run tells as it goes: the event stream (`--events`), terminal progress, the summary
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
//! # One type per concept
//!
//! - The lease a backend knows: [`lease::Lease`] (its id, backend, workdir and handle), made
//!   from a [`lease::LeaseSpec`].
//! - The lease a caller holds: [`leases::HeldLease`], the backend's lease attached as a
//!   [`session::Session`], with its claim's holder lock and its release, handed out by the
//!   lifecycle [`leases::Leases`].
//! - The lease a recipe sees: the `lease` userdata of the host (`LuaLease` in
//!   `host/bindings.rs`), over the host's one seam [`host::LeasedBox`], which a `HeldLease`
//!   implements (and the host's scratch-directory test double).
//! - The exec request of a backend: [`lease::ExecRequest`] (an argv, stdin or not, a terminal
//!   of a [`lease::TtySize`] or not), answered by an [`lease::ExecStream`].
//! - The exec request of a session: [`session::Command`] (argv, env, cwd, timeout, capture,
//!   stdin), answered by a [`session::ExecOutcome`]; a recipe's `exec{…}` table is decoded
//!   into one (`host/decode.rs`).
//! - The interactive request of a session: [`session::ShellRequest`] (argv or the box's shell,
//!   env, cwd), run on a terminal exec by [`session::Session::shell`] with this process's
//!   terminal attached, answered by a [`session::ShellOutcome`]; `leasebox shell` and
//!   `box:shell()` both make one.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`], which owns the one exit funnel.

pub mod atomic_file;
pub mod backends;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod host;
pub mod lease;
pub mod leases;
pub mod ownership;
pub mod report;
pub mod session;
