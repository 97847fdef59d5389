//! The lease provider the CLI hands to [`run_recipe`](super::run_recipe): recipes lease boxes
//! through the one lease lifecycle ([`Leases`]: claims first, holder locks, release), with the
//! resolved config's defaults and the user's limits.
//!
//! A recipe's `lease{}` / `warmup{}` values override the config's own keys (DESIGN §5: they
//! rank above `.leasebox.toml` and below flags, so a key a flag set is not overridden), and may
//! not exceed the user's `max_cpu`, `max_memory_mb` and `max_disk_mb`. With `--lease ID` the
//! first lease the recipe asks for is that kept lease (reused, never released by the run).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::engine::{EngineError, LeaseOptions, LeaseProvider, LeasedBox};
use super::session_box::{Releaser, SessionBox};
use crate::backends::{LeaseRequest, Leases};
use crate::config::Settings;
use crate::error::{ErrorKind, Failure};
use crate::lease::LeaseId;
use crate::session::Session;

/// Leases for a recipe run, over the lease lifecycle.
pub struct RecipeLeases {
    leases: Leases,
    image: String,
    cpu: u64,
    memory_mb: u64,
    disk_mb: u64,
    workdir: Option<String>,
    max_cpu: u64,
    max_memory_mb: u64,
    max_disk_mb: u64,
    exec_timeout: Option<Duration>,
    sync_exclude: Vec<String>,
    pinned: Vec<String>,
    repo_root: PathBuf,
    reuse: Mutex<Option<LeaseId>>,
}

impl RecipeLeases {
    /// Leases with the defaults and limits of `settings`. `pinned` lists the config keys a
    /// flag set (`nomad.image`, `nomad.cpu`, `nomad.memory_mb`, `nomad.disk_mb`,
    /// `exec_timeout`): a recipe does not override those (a flag's `exec_timeout` bounds every
    /// command, whatever timeouts the recipe sets). `reuse` is the `--lease ID` to
    /// attach for the first lease.
    #[must_use]
    pub fn new(
        leases: Leases,
        settings: &Settings,
        repo_root: PathBuf,
        pinned: Vec<String>,
        reuse: Option<LeaseId>,
    ) -> Self {
        RecipeLeases {
            leases,
            image: settings.nomad.image.clone(),
            cpu: settings.nomad.cpu,
            memory_mb: settings.nomad.memory_mb,
            disk_mb: settings.nomad.disk_mb,
            workdir: settings.nomad.workdir.clone(),
            max_cpu: settings.max_cpu,
            max_memory_mb: settings.max_memory_mb,
            max_disk_mb: settings.max_disk_mb,
            exec_timeout: settings.exec_timeout,
            sync_exclude: settings.sync_exclude.clone(),
            pinned,
            repo_root,
            reuse: Mutex::new(reuse),
        }
    }

    fn is_pinned(&self, key: &str) -> bool {
        self.pinned.iter().any(|p| p == key)
    }

    fn pick<T: Clone>(&self, key: &str, config: T, recipe: Option<T>) -> T {
        if self.is_pinned(key) {
            config
        } else {
            recipe.unwrap_or(config)
        }
    }

    fn request(&self, options: &LeaseOptions) -> Result<LeaseRequest, Failure> {
        let cpu = self.pick("nomad.cpu", self.cpu, options.cpu);
        let memory_mb = self.pick("nomad.memory_mb", self.memory_mb, options.memory_mb);
        let disk_mb = self.pick("nomad.disk_mb", self.disk_mb, options.disk_mb);
        for (key, value, max) in [
            ("cpu", cpu, self.max_cpu),
            ("memory_mb", memory_mb, self.max_memory_mb),
            ("disk_mb", disk_mb, self.max_disk_mb),
        ] {
            if value > max {
                return Err(Failure::new(
                    ErrorKind::ConfigError,
                    format!(
                        "the recipe asks for {key} = {value}, above your limit `max_{key}` = {max}; \
                         raise `max_{key}` in your user config (~/.config/leasebox/config.toml) \
                         or ask for less"
                    ),
                ));
            }
        }
        Ok(LeaseRequest {
            image: Some(self.pick("nomad.image", self.image.clone(), options.image.clone())),
            cpu: Some(cpu),
            memory_mb: Some(memory_mb),
            disk_mb: Some(disk_mb),
            workdir: self.workdir.clone(),
            keep: options.keep,
        })
    }
}

struct LeasesReleaser(Leases);

#[async_trait]
impl Releaser for LeasesReleaser {
    async fn release(
        &self,
        session: &Session,
        cancel: &CancellationToken,
    ) -> Result<(), EngineError> {
        self.0
            .release(session, cancel)
            .await
            .map_err(|e| Arc::new(e) as EngineError)
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
        let releaser = Arc::new(LeasesReleaser(self.leases.clone()));
        if let Some(id) = reuse {
            let session = self
                .leases
                .attach(&id, self.workdir.as_deref())
                .await
                .map_err(|e| Arc::new(e) as EngineError)?;
            return Ok(Arc::new(
                SessionBox::new(session, releaser, self.sync_exclude.clone())
                    .with_exec_timeout(self.exec_timeout, self.is_pinned("exec_timeout"))
                    .reused(),
            ));
        }
        let request = self
            .request(options)
            .map_err(|e| Arc::new(e) as EngineError)?;
        // Leases::acquire honours the token itself and leaves nothing behind when cancelled;
        // dropping it midway would leave a half-made lease.
        let session = self
            .leases
            .acquire(&request, cancel)
            .await
            .map_err(|e| Arc::new(e) as EngineError)?;
        Ok(Arc::new(
            SessionBox::new(session, releaser, self.sync_exclude.clone())
                .with_exec_timeout(self.exec_timeout, self.is_pinned("exec_timeout")),
        ))
    }

    async fn sweep(
        &self,
        dry_run: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, EngineError> {
        let list = self.leases.list().map_err(|e| Arc::new(e) as EngineError)?;
        let now = SystemTime::now();
        let mut lines = Vec::new();
        for claim in list.claims {
            if claim.repo_root != self.repo_root {
                continue;
            }
            let held = self.leases.claims().is_held(&claim.id).unwrap_or(true);
            let why = match claim.expiry(now) {
                Some(reason) => reason.to_string(),
                None if !claim.keep && !held => "its holder is gone".to_owned(),
                None => continue,
            };
            if held {
                continue;
            }
            if dry_run {
                lines.push(format!("would release {} ({why})", claim.id));
                continue;
            }
            let Ok(id) = claim.id.parse::<LeaseId>() else {
                continue;
            };
            match self.leases.stop(&id, cancel).await {
                Ok(()) => lines.push(format!("released {} ({why})", claim.id)),
                Err(e) => lines.push(format!("could not release {}: {}", claim.id, e.message)),
            }
        }
        Ok(lines)
    }
}
