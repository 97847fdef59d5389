//! Opening the backend the resolved config chooses (DESIGN §9: the backend is never chosen by
//! the repository). The CLI hands its config here and never names a backend itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::backends::{local, nomad};
use crate::config::{BackendChoice, Config};
use crate::error::Failure;
use crate::lease::{Backend, LeaseError};

/// Open the backend the config chooses.
///
/// # Errors
/// The local backend has no cache dir, or the Nomad settings are unusable.
pub fn open(config: &Config, env: &BTreeMap<String, String>) -> Result<Arc<dyn Backend>, Failure> {
    match config.settings().backend {
        BackendChoice::Local => {
            let cache = local::cache_dir(env).map_err(|e| Failure::from_error(&e))?;
            Ok(Arc::new(local::LocalBackend::new(&cache, env)))
        }
        BackendChoice::Nomad => {
            let backend = open_nomad(config, env).map_err(|e| Failure::from_error(&e))?;
            Ok(Arc::new(backend))
        }
    }
}

/// Open the backend a lease's claim names (`stop ID`, `status ID`: a lease is handled by the
/// backend that made it, whatever the config would choose now).
///
/// # Errors
/// The claim names a backend this build does not have, or that backend cannot be opened with
/// this config (a Nomad lease without a Nomad address, say).
pub fn open_for_claim(
    config: &Config,
    env: &BTreeMap<String, String>,
    claim_backend: &str,
    id: &str,
) -> Result<Arc<dyn Backend>, Failure> {
    match claim_backend {
        "local" => {
            let cache = local::cache_dir(env).map_err(|e| Failure::from_error(&e))?;
            Ok(Arc::new(local::LocalBackend::new(&cache, env)))
        }
        "nomad" => {
            let backend = open_nomad(config, env).map_err(|e| {
                Failure::from_error(&LeaseError::Config(format!(
                    "lease `{id}` is a Nomad lease, and {e}"
                )))
            })?;
            Ok(Arc::new(backend))
        }
        other => Err(Failure::from_error(&LeaseError::Ownership(format!(
            "lease `{id}` names the backend `{other}`, which this leasebox does not have"
        )))),
    }
}

/// The Nomad backend of `config`, its address's origin named for messages.
pub(super) fn open_nomad(
    config: &Config,
    env: &BTreeMap<String, String>,
) -> Result<nomad::NomadBackend, LeaseError> {
    let origin = config
        .get("nomad.address")
        .map_or_else(|| "the config".to_owned(), |r| r.source.to_string());
    nomad::NomadBackend::new(config.settings(), &origin, env)
}
