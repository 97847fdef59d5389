//! The lease provider the CLI hands to [`run_recipe`](super::run_recipe): recipes lease boxes
//! through the one lease lifecycle ([`Leases`]: claims first, holder locks, release); each box
//! is a [`HeldLease`](crate::leases::HeldLease) (a [`LeasedBox`] by `held_lease.rs`).
//!
//! What a lease asks for (image, resources, sync excludes, exec timeout) arrives resolved in
//! [`LeaseOptions`]: the host resolved the recipe's `lease{}` / `warmup{}` options against the
//! config with [`Config::with_recipe`](crate::config::Config::with_recipe), which also enforced
//! the trust classes and the user's limits and let flags win. With `--lease ID` the first lease
//! the recipe asks for is that kept lease (reused, never released by the run).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::engine::{EngineError, LeaseOptions, LeaseProvider, LeasedBox};
use crate::config::Settings;
use crate::lease::{GroupPlacement, LeaseId};
use crate::leases::{CleanupAction, CleanupOptions, LeaseRequest, Leases};

/// Leases for a recipe run, over the lease lifecycle.
pub struct RecipeLeases {
    leases: Leases,
    workdir: Option<String>,
    repo_root: PathBuf,
    reuse: Mutex<Option<LeaseId>>,
}

impl RecipeLeases {
    /// Leases in the workdir of `settings` (an execution boundary: never the recipe's). `reuse`
    /// is the `--lease ID` to attach for the first lease.
    #[must_use]
    pub fn new(
        leases: Leases,
        settings: &Settings,
        repo_root: PathBuf,
        reuse: Option<LeaseId>,
    ) -> Self {
        RecipeLeases {
            leases,
            workdir: settings.nomad.workdir.clone(),
            repo_root,
            reuse: Mutex::new(reuse),
        }
    }

    fn request(&self, options: &LeaseOptions) -> LeaseRequest {
        LeaseRequest {
            image: Some(options.image.clone()),
            cpu: Some(options.cpu),
            memory_mb: Some(options.memory_mb),
            disk_mb: Some(options.disk_mb),
            workdir: self.workdir.clone(),
            keep: options.keep,
            count: options.count,
            placement: if options.distinct_hosts {
                GroupPlacement::DistinctHosts
            } else {
                GroupPlacement::Spread
            },
        }
    }
}

#[async_trait]
impl LeaseProvider for RecipeLeases {
    async fn acquire(
        &self,
        options: &LeaseOptions,
        cancel: &CancellationToken,
    ) -> Result<Arc<dyn LeasedBox>, EngineError> {
        let reuse = self
            .reuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let held = match reuse {
            Some(id) => self.leases.attach(&id, self.workdir.as_deref()).await,
            // Leases::acquire honours the token itself and leaves nothing behind when
            // cancelled; dropping it midway would leave a half-made lease.
            None => self.leases.acquire(&self.request(options), cancel).await,
        };
        // The lease's sync excludes and exec timeout travel with each call (the host adds
        // them), so the box adds none of its own.
        Ok(Arc::new(held.map_err(|e| Arc::new(e) as EngineError)?))
    }

    async fn attach(
        &self,
        id: &str,
        _cancel: &CancellationToken,
    ) -> Result<Arc<dyn LeasedBox>, EngineError> {
        let id: LeaseId = id.parse().map_err(|e: crate::lease::LeaseIdError| {
            Arc::new(crate::error::Failure::new(
                crate::error::ErrorKind::Usage,
                e.to_string(),
            )) as EngineError
        })?;
        let held = self.leases.attach(&id, self.workdir.as_deref()).await;
        Ok(Arc::new(held.map_err(|e| Arc::new(e) as EngineError)?))
    }

    fn history_dir(&self) -> Option<PathBuf> {
        self.leases
            .claims()
            .dir()
            .parent()
            .map(|state| state.join("history"))
    }

    async fn sweep(
        &self,
        dry_run: bool,
        _cancel: &CancellationToken,
    ) -> Result<Vec<String>, EngineError> {
        // The one cleanup, limited to this repository's leases (never orphans, whose
        // repository nobody can vouch for).
        let options = CleanupOptions {
            dry_run,
            orphans: false,
            repo: Some(self.repo_root.clone()),
        };
        let items = self
            .leases
            .cleanup(&options)
            .await
            .map_err(|e| Arc::new(e) as EngineError)?;
        let prefix = if dry_run { "would be " } else { "" };
        Ok(items
            .into_iter()
            .filter(|i| i.action != CleanupAction::Kept)
            .map(|i| format!("{}: {prefix}{} ({})", i.id, i.action, i.reason))
            .collect())
    }
}
