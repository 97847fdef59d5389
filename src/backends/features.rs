//! What every backend this build knows can do, for `leasebox backends`.

use std::collections::BTreeMap;

use super::{local, nomad};
use crate::lease::{Backend, Features};

/// The features of every backend this build knows, for `leasebox backends`.
#[must_use]
pub fn all_features() -> Vec<Features> {
    let local = local::LocalBackend::new(std::path::Path::new("."), &BTreeMap::new()).features();
    vec![local, nomad::nomad_features()]
}
