//! The local backend, the embedded default: a lease is a fresh directory under the cache dir
//! on this machine ([`LocalBackend`], in `backend.rs`), and `doctor`'s checks of what it needs
//! (`doctor.rs`); a terminal exec's pseudo-terminal is `pty.rs`.

mod backend;
pub mod doctor;
mod pty;

pub use backend::{FAULTS_VAR, INHERITED_ENV, LocalBackend, LocalFaults, cache_dir};
