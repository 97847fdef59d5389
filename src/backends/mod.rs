//! The backends: [`local`] is the embedded default (a scratch directory on this machine);
//! [`nomad`] leases allocations on a Nomad cluster. Each implements
//! [`Backend`](crate::lease::Backend) and writes its own `doctor` checks. Which backend a run
//! uses, and the lease lifecycle over it, belong to `leases`.

mod features;
pub mod local;
pub mod nomad;

pub use features::all_features;
