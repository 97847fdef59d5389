//! Backends: `local` (a scratch directory on this machine) and, later, `nomad`.

pub mod local;
