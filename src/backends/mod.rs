//! Backends and the lease lifecycle over them.
//!
//! [`local`] is the embedded default (a scratch directory on this machine); the Nomad backend
//! joins it later. [`open`] picks the backend the resolved config asks for (DESIGN §9: never
//! from the repository). [`Leases`] is the one lifecycle every caller (the CLI, the recipe
//! host) goes through: it writes the claim before the box exists, confirms it once the box is
//! ready, holds the claim's holder lock while the lease is in use, and drops the claim only
//! after the backend confirmed the box is gone.

pub mod local;
pub mod nomad;

use serde::Serialize;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{BackendChoice, Config, Settings};
use crate::error::{ErrorKind, Failure};
use crate::lease::{Backend, Features, Lease, LeaseId, LeaseSpec, RemoteState};
use crate::ownership::{Claim, ClaimList, ClaimState, ClaimStore, OwnershipError, StateDir};
use crate::session::{Session, Timing};

/// The features of every backend this build knows, for `leasebox backends`.
#[must_use]
pub fn all_features() -> Vec<Features> {
    vec![local_features(), nomad::nomad_features()]
}

fn local_features() -> Features {
    local::LocalBackend::new(std::path::Path::new("."), &BTreeMap::new()).features()
}

/// Open the backend the config chooses.
///
/// # Errors
/// The local backend has no cache dir, or the Nomad settings are unusable.
pub fn open(config: &Config, env: &BTreeMap<String, String>) -> Result<Arc<dyn Backend>, Failure> {
    let settings = config.settings();
    match settings.backend {
        BackendChoice::Local => {
            let cache = local::cache_dir(env).map_err(|e| Failure::from_error(&e))?;
            Ok(Arc::new(local::LocalBackend::new(&cache, env)))
        }
        BackendChoice::Nomad => {
            let origin = config
                .get("nomad.address")
                .map_or_else(|| "the config".to_owned(), |r| r.source.to_string());
            let backend = nomad::NomadBackend::new(settings, &origin, env)
                .map_err(|e| Failure::from_error(&e))?;
            Ok(Arc::new(backend))
        }
    }
}

/// How one `doctor` check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Could not be told, or a risk worth knowing.
    Warn,
    /// Broken: runs will fail until fixed.
    Fail,
}

/// One `doctor` check: what was checked, how it came out, and how to fix a failure.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`address`, `auth`, …).
    pub check: String,
    /// The outcome.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix it, for warnings and failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check result.
    pub fn new(
        check: &str,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            check: check.to_owned(),
            status,
            detail: detail.into(),
            fix,
        }
    }
}

/// `leasebox doctor`: read-only checks of the configured backend.
pub async fn doctor(
    config: &Config,
    env: &BTreeMap<String, String>,
    state: &StateDir,
) -> Vec<Check> {
    let settings = config.settings();
    let mut checks = vec![Check::new(
        "backend",
        CheckStatus::Ok,
        format!(
            "`{}` ({})",
            settings.backend,
            config
                .get("backend")
                .map_or_else(String::new, |r| format!("from {}", r.source))
        ),
        None,
    )];
    match state.ensure() {
        Ok(()) => checks.push(Check::new(
            "state dir",
            CheckStatus::Ok,
            state.path().display().to_string(),
            None,
        )),
        Err(e) => checks.push(Check::new(
            "state dir",
            CheckStatus::Fail,
            e.to_string(),
            Some("set `LEASEBOX_STATE_DIR` to a writable directory".into()),
        )),
    }
    match settings.backend {
        BackendChoice::Local => {
            match local::cache_dir(env) {
                Ok(dir) => {
                    let probe = std::fs::create_dir_all(&dir)
                        .and_then(|()| tempfile::tempfile_in(&dir).map(drop));
                    checks.push(match probe {
                        Ok(()) => Check::new(
                            "cache dir",
                            CheckStatus::Ok,
                            dir.display().to_string(),
                            None,
                        ),
                        Err(e) => Check::new(
                            "cache dir",
                            CheckStatus::Fail,
                            format!("{}: {e}", dir.display()),
                            Some("set `XDG_CACHE_HOME` to a writable directory".into()),
                        ),
                    });
                }
                Err(e) => checks.push(Check::new(
                    "cache dir",
                    CheckStatus::Fail,
                    e.to_string(),
                    Some("set `XDG_CACHE_HOME` or `HOME`".into()),
                )),
            }
            for tool in ["sh", "tar", "mkfifo", "tee", "cat", "tail", "git"] {
                let found = env
                    .get("PATH")
                    .map(|p| std::env::split_paths(p).any(|d| d.join(tool).is_file()))
                    .unwrap_or(false);
                if !found {
                    checks.push(Check::new(
                        "tools",
                        CheckStatus::Fail,
                        format!("`{tool}` is not on PATH"),
                        Some(format!("install `{tool}`")),
                    ));
                }
            }
            if checks.iter().all(|c| c.check != "tools") {
                checks.push(Check::new(
                    "tools",
                    CheckStatus::Ok,
                    "sh, tar, mkfifo, tee, cat, tail and git found",
                    None,
                ));
            }
        }
        BackendChoice::Nomad => {
            let origin = config
                .get("nomad.address")
                .map_or_else(|| "the config".to_owned(), |r| r.source.to_string());
            match nomad::NomadBackend::new(settings, &origin, env) {
                Ok(backend) => checks.extend(nomad::doctor::run(&backend).await),
                Err(e) => checks.push(Check::new(
                    "address",
                    CheckStatus::Fail,
                    e.to_string(),
                    Some("fix `nomad.address` (or `NOMAD_ADDR`) and the TLS settings".into()),
                )),
            }
        }
    }
    checks
}

/// What to ask of a new lease, beyond what the config fixes.
#[derive(Debug, Clone, Default)]
pub struct LeaseRequest {
    /// Image, for image drivers.
    pub image: Option<String>,
    /// CPU in MHz.
    pub cpu: Option<u64>,
    /// Memory in MB.
    pub memory_mb: Option<u64>,
    /// Disk in MB.
    pub disk_mb: Option<u64>,
    /// The workdir inside the box, when the config sets one.
    pub workdir: Option<String>,
    /// Keep the lease after the run (a later `--lease ID` reuses it).
    pub keep: bool,
}

/// The lease lifecycle: acquire, attach (reuse), release, stop, list.
#[derive(Debug, Clone)]
pub struct Leases {
    backend: Arc<dyn Backend>,
    claims: ClaimStore,
    owner: String,
    repo_root: PathBuf,
    ttl: Duration,
    idle: Duration,
    timing: Arc<Timing>,
}

fn ownership(e: &OwnershipError) -> Failure {
    Failure::from_error(e)
}

impl Leases {
    /// The lifecycle for `backend`, keeping claims in `state`, with the owner, TTL and idle
    /// timeout of `settings`.
    ///
    /// # Errors
    /// The state dir cannot be created or written.
    pub fn new(
        backend: Arc<dyn Backend>,
        state: &StateDir,
        settings: &Settings,
        repo_root: PathBuf,
        timing: Arc<Timing>,
    ) -> Result<Leases, Failure> {
        state.ensure().map_err(|e| ownership(&e))?;
        Ok(Leases {
            backend,
            claims: state.claim_store(),
            owner: settings.owner.clone(),
            repo_root,
            ttl: settings.lease_ttl,
            idle: settings.lease_idle,
            timing,
        })
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The claims store.
    #[must_use]
    pub fn claims(&self) -> &ClaimStore {
        &self.claims
    }

    /// The timing recorder shared with the sessions this creates.
    #[must_use]
    pub fn timing(&self) -> &Arc<Timing> {
        &self.timing
    }

    fn backend_name(&self) -> &'static str {
        self.backend.features().name
    }

    /// Create a lease: claim it (state `registering`), warm it up, confirm the claim, prepare
    /// the box. On any failure nothing is left: the box is released and the claim dropped.
    ///
    /// # Errors
    /// The claim cannot be written, warmup or preparation fails, or cancellation.
    pub async fn acquire(
        &self,
        request: &LeaseRequest,
        cancel: &CancellationToken,
    ) -> Result<Session, Failure> {
        let start = Instant::now();
        let id = LeaseId::generate();
        let mut claim = Claim::new(
            id.as_str(),
            self.backend_name(),
            self.backend_name(),
            &self.owner,
        )
        .map_err(|e| ownership(&e))?;
        claim.state = ClaimState::Registering;
        claim.repo_root.clone_from(&self.repo_root);
        claim.ttl_secs = self.ttl.as_secs();
        claim.idle_secs = self.idle.as_secs();
        claim.keep = request.keep;
        let claim = self.claims.create(&claim).map_err(|e| ownership(&e))?;
        let holder = match self.claims.hold(id.as_str()) {
            Ok(h) => h,
            Err(e) => {
                let _ = self.claims.remove(id.as_str(), claim.revision);
                return Err(ownership(&e));
            }
        };
        let spec = LeaseSpec {
            id: id.clone(),
            image: request.image.clone(),
            cpu: request.cpu,
            memory_mb: request.memory_mb,
            disk_mb: request.disk_mb,
            workdir: request.workdir.clone(),
            owner: self.owner.clone(),
            repo_root: self.repo_root.clone(),
            ttl: self.ttl,
            idle: self.idle,
        };
        let lease = match self.backend.warmup(&spec, cancel).await {
            Ok(lease) => lease,
            Err(e) => {
                let _ = self.claims.remove(id.as_str(), claim.revision);
                return Err(Failure::from_error(&e));
            }
        };
        let confirmed = self.claims.update(id.as_str(), claim.revision, |c| {
            c.state = ClaimState::Active;
            c.workdir.clone_from(&lease.workdir);
            c.handle.clone_from(&lease.handle);
            c.job_id = lease.handle.get("job_id").cloned();
            c.alloc_id = lease.handle.get("alloc_id").cloned();
            c.task = lease.handle.get("task").cloned();
        });
        if let Err(e) = confirmed {
            let _ = self
                .backend
                .release(&lease, &CancellationToken::new())
                .await;
            let _ = self.claims.remove(id.as_str(), claim.revision);
            return Err(ownership(&e));
        }
        let session = self.session_for(lease, holder);
        if let Err(e) = session.prepare(cancel).await {
            let failure = Failure::from_error(&e);
            let _ = self.release(&session, &CancellationToken::new()).await;
            return Err(failure);
        }
        self.timing.record_since("warmup", start);
        Ok(session)
    }

    fn session_for(&self, lease: Lease, holder: crate::ownership::HolderGuard) -> Session {
        let session = Session::new(Arc::clone(&self.backend), lease, Arc::clone(&self.timing));
        session.hold(Box::new(holder));
        let claims = self.claims.clone();
        let id = session.lease().id.as_str().to_owned();
        session.on_synced(move |revision| {
            // Best effort: the revision only guards the next sync; a failure here means the
            // next sync refuses, which says so.
            if let Ok(lock) = claims.lock(&id)
                && let Ok(current) = lock.load()
            {
                let _ = lock.update(current.revision, |c| {
                    c.sync_revision = Some(revision.to_owned());
                });
            }
        });
        session
    }

    fn lease_of(claim: &Claim) -> Result<Lease, Failure> {
        let id: LeaseId = claim.id.parse().map_err(|e: crate::lease::LeaseIdError| {
            Failure::new(ErrorKind::Usage, e.to_string())
        })?;
        Ok(Lease {
            id,
            backend: claim.backend.clone(),
            workdir: claim.workdir.clone(),
            handle: claim.handle.clone(),
        })
    }

    fn check_claim(&self, claim: &Claim) -> Result<(), Failure> {
        let refuse = |field: &str, ours: &str, theirs: &str| {
            Failure::new(
                ErrorKind::OwnershipRefused,
                format!(
                    "lease `{}` is not ours to use: its claim has {field} `{theirs}`, this leasebox has `{ours}`",
                    claim.id
                ),
            )
        };
        if claim.backend != self.backend_name() {
            return Err(refuse("backend", self.backend_name(), &claim.backend));
        }
        if claim.owner != self.owner {
            return Err(refuse("owner", &self.owner, &claim.owner));
        }
        Ok(())
    }

    /// Reuse a kept lease: check its claim, take its holder lock, check the box still exists.
    ///
    /// # Errors
    /// No such claim, the claim is not ours or not active, another process holds it, or the box
    /// is gone.
    pub async fn attach(&self, id: &LeaseId) -> Result<Session, Failure> {
        let claim = self.claims.load(id.as_str()).map_err(|e| match e {
            OwnershipError::NotFound { .. } => Failure::new(
                ErrorKind::OwnershipRefused,
                format!("no lease `{id}` here: `leasebox list` shows your leases"),
            ),
            other => ownership(&other),
        })?;
        self.check_claim(&claim)?;
        if claim.state != ClaimState::Active {
            return Err(Failure::new(
                ErrorKind::OwnershipRefused,
                format!(
                    "lease `{id}` is `{}`, not active: `leasebox stop {id}` releases it",
                    claim.state
                ),
            ));
        }
        let holder = self.claims.hold(id.as_str()).map_err(|e| ownership(&e))?;
        let lease = Self::lease_of(&claim)?;
        match self.backend.status(&lease).await {
            Ok(RemoteState::Ready) => {}
            Ok(state) => {
                return Err(Failure::new(
                    ErrorKind::OwnershipRefused,
                    format!(
                        "lease `{id}` cannot be reused: its box is {state:?}; `leasebox stop {id}` drops it"
                    ),
                ));
            }
            Err(e) => return Err(Failure::from_error(&e)),
        }
        let touched = self.claims.touch(id.as_str()).map_err(|e| ownership(&e))?;
        let session = self.session_for(lease, holder);
        session.set_sync_revision(touched.sync_revision);
        Ok(session)
    }

    /// Release a session's lease: mark the claim `releasing`, destroy the box, then drop the
    /// claim. If the backend fails, the claim stays (in `releasing`) for `stop` or `cleanup`.
    ///
    /// # Errors
    /// The backend could not release the box, or the claim could not be dropped.
    pub async fn release(
        &self,
        session: &Session,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let start = Instant::now();
        let result = self.release_lease(session.lease(), cancel).await;
        self.timing.record_since("cleanup", start);
        result
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let id = lease.id.as_str();
        if let Ok(claim) = self.claims.load(id) {
            let _ = self
                .claims
                .update(id, claim.revision, |c| c.state = ClaimState::Releasing);
        }
        self.backend
            .release(lease, cancel)
            .await
            .map_err(|e| Failure::from_error(&e))?;
        match self.claims.load(id) {
            Ok(claim) => self
                .claims
                .remove(id, claim.revision)
                .map_err(|e| ownership(&e)),
            Err(OwnershipError::NotFound { .. }) => Ok(()),
            Err(e) => Err(ownership(&e)),
        }
    }

    /// `leasebox stop ID`: check the claim is ours, release the box, drop the claim.
    ///
    /// # Errors
    /// No such claim, not ours, in use by a running leasebox, or the release fails.
    pub async fn stop(&self, id: &LeaseId, cancel: &CancellationToken) -> Result<(), Failure> {
        let claim = self.claims.load(id.as_str()).map_err(|e| match e {
            OwnershipError::NotFound { .. } => Failure::new(
                ErrorKind::OwnershipRefused,
                format!("no lease `{id}` here: `leasebox list` shows your leases"),
            ),
            other => ownership(&other),
        })?;
        self.check_claim(&claim)?;
        if self
            .claims
            .is_held(id.as_str())
            .map_err(|e| ownership(&e))?
        {
            return Err(Failure::new(
                ErrorKind::OwnershipRefused,
                format!(
                    "lease `{id}` is in use by a running leasebox (pid {} on {}); stop that run first",
                    claim.holder.pid, claim.holder.host
                ),
            ));
        }
        let lease = Self::lease_of(&claim)?;
        self.release_lease(&lease, cancel).await
    }

    /// The live state of a claimed lease.
    ///
    /// # Errors
    /// The backend cannot tell.
    pub async fn remote_state(&self, claim: &Claim) -> Result<RemoteState, Failure> {
        if claim.backend != self.backend_name() {
            return Err(Failure::new(
                ErrorKind::ConfigError,
                format!("lease `{}` is on the `{}` backend", claim.id, claim.backend),
            ));
        }
        let lease = Self::lease_of(claim)?;
        self.backend
            .status(&lease)
            .await
            .map_err(|e| Failure::from_error(&e))
    }

    /// Every claim in the state dir, with corrupt files reported separately.
    ///
    /// # Errors
    /// The claims directory cannot be read.
    pub fn list(&self) -> Result<ClaimList, Failure> {
        self.claims.list().map_err(|e| ownership(&e))
    }
}
