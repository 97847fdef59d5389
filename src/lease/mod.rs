//! The Backend trait and its types: what every kind of box (a Nomad allocation, a local
//! scratch directory) must offer so that sync, fetch, verified exec, watch and the recipe host
//! can be written once over it.
//!
//! The trait is deliberately small: warm up a lease from a [`LeaseSpec`], open an exec stream
//! ([`ExecRequest`] in, [`ExecStream`] out), release a lease, and report status and listings.
//! Everything else happens in the `session` layer by running commands through [`Backend::exec`].
//!
//! Exec streams follow Nomad's semantics on every backend: dropping an [`ExecStream`] (or
//! losing its connection) leaves the command running, like a dropped websocket does on a Nomad
//! client; [`ExecStream::kill`] asks the backend to stop it, which only some backends can do
//! ([`Features::exec_kill`]) and which reaches only the exec'd process's own group. The session
//! layer stops a verified-exec command through its record, by the process group of its
//! supervisor's session, on every backend.
//!
//! An exec may run on a terminal ([`ExecRequest::tty`]): the command gets a pseudo-terminal of
//! the given [`TtySize`] (Nomad's `tty=true`; a real pty on the local backend), its stdout and
//! stderr arrive merged as [`ExecEvent::Stdout`] with the terminal's CR/LF line ends, and new
//! window sizes go in through [`ExecStream::resize`]. Interactive shells use it; nothing that
//! must be recorded or recovered does.

mod backend;
mod boxes;
mod check;
mod error;
mod exec;
mod id;
mod progress;
mod remote;
mod spec;

pub use backend::Backend;
pub use boxes::{BoxRef, Lease, box_state_dir};
pub use check::{Check, CheckStatus};
pub use error::LeaseError;
pub use exec::{ExecEvent, ExecRequest, ExecStream, TtySize};
pub use id::{LeaseId, LeaseIdError};
pub use progress::{ProgressSender, WarmupProgress};
pub use remote::{Features, OwnershipRecord, RemoteLease, RemoteState};
pub use spec::{GroupPlacement, LeaseSpec};
