//! The backends: [`local`] is the embedded default (a scratch directory on this machine);
//! [`nomad`] leases allocations on a Nomad cluster. Each implements
//! [`Backend`] and writes its own `doctor` checks. Which backend a run
//! uses, and the lease lifecycle over it, belong to `leases`.

pub mod local;
pub mod nomad;

use std::collections::BTreeMap;

use crate::lease::{Backend, Features};

/// The features of every backend this build knows, for `leasebox backends`.
#[must_use]
pub fn all_features() -> Vec<Features> {
    let local = local::LocalBackend::new(std::path::Path::new("."), &BTreeMap::new()).features();
    vec![local, nomad::nomad_features()]
}
