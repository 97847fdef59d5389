//! Backends and the lease lifecycle over them.
//!
//! [`local`] is the embedded default (a scratch directory on this machine); [`nomad`] leases
//! allocations on a Nomad cluster. [`open`] picks the backend the resolved config asks for
//! (DESIGN §9: never from the repository). [`Leases`] is the one lifecycle every caller (the
//! CLI, the recipe host) goes through: it writes the claim before the box exists, confirms it
//! once the box is ready, holds the claim's holder lock while the lease is in use, checks the
//! claim against the box's own record before reusing, stopping or cleaning up, and drops the
//! claim only after the backend confirmed the box is gone. [`doctor`] holds the read-only
//! checks of `leasebox doctor`.

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
use crate::lease::{Backend, Features, Lease, LeaseError, LeaseId, LeaseSpec, RemoteState};
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

/// What `cleanup` should do.
#[derive(Debug, Clone, Default)]
pub struct CleanupOptions {
    /// Say what would be done, change nothing.
    pub dry_run: bool,
    /// Release orphans (jobs with this owner's Meta and no claim) at once, not only once past
    /// their expiry.
    pub orphans: bool,
    /// Only leases of this repository (a recipe's `leasebox.cleanup{}`).
    pub repo: Option<PathBuf>,
}

/// What `cleanup` did (or would do) with one lease.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupItem {
    /// The lease id.
    pub id: String,
    /// `released`, `dropped` (the claim only: the box was gone), `kept`, `skipped`.
    pub action: &'static str,
    /// Why.
    pub reason: String,
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
            &self.backend.scope(),
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
            // The backend cleaned up after itself, or says what it could not: then the claim
            // stays (in `registering`) for `cleanup` to resolve.
            Err(e @ LeaseError::LeftBehind { .. }) => return Err(Failure::from_error(&e)),
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

    /// The lease a claim describes.
    ///
    /// # Errors
    /// The claim's id is not a lease id.
    pub fn lease_of(claim: &Claim) -> Result<Lease, Failure> {
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

    /// Refuse a claim of another backend or owner.
    ///
    /// # Errors
    /// The claim's backend or owner differs, naming which.
    pub fn check_claim(&self, claim: &Claim) -> Result<(), Failure> {
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
    pub async fn attach(
        &self,
        id: &LeaseId,
        requested_workdir: Option<&str>,
    ) -> Result<Session, Failure> {
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
        if let (Some(wanted), Some(has)) = (requested_workdir, claim.handle.get("workdir_spec"))
            && wanted != has
        {
            return Err(Failure::new(
                ErrorKind::OwnershipRefused,
                format!(
                    "lease `{id}` was created with workdir `{has}`, but this run asks for `{wanted}`; reuse it without changing `nomad.workdir`, or start a new lease"
                ),
            ));
        }
        let holder = self.claims.hold(id.as_str()).map_err(|e| ownership(&e))?;
        let lease = Self::lease_of(&claim)?;
        self.verify(&claim, &lease).await?;
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

    /// `leasebox stop ID`: check the claim and the box's own record agree that the lease is
    /// ours, then release the box and drop the claim, holding the claim's lock from the check
    /// through the confirmation that the box is gone (no release after the claim changed).
    ///
    /// # Errors
    /// No such claim, not ours, a record that disagrees, in use by a running leasebox, or the
    /// release fails.
    pub async fn stop(&self, id: &LeaseId, cancel: &CancellationToken) -> Result<(), Failure> {
        let lock = self.lock(id).await?;
        let claim = lock.load().map_err(|e| match e {
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
        if self.verify(&claim, &lease).await? {
            self.backend
                .release(&lease, cancel)
                .await
                .map_err(|e| Failure::from_error(&e))?;
        }
        lock.remove(claim.revision).map_err(|e| ownership(&e))
    }

    /// Mark a lease as kept (for `--keep-on-failure`), so `cleanup` leaves it until it expires.
    ///
    /// # Errors
    /// The claim cannot be updated.
    pub async fn mark_kept(&self, id: &LeaseId) -> Result<(), Failure> {
        let lock = self.lock(id).await?;
        let claim = lock.load().map_err(|e| ownership(&e))?;
        lock.update(claim.revision, |c| c.keep = true)
            .map_err(|e| ownership(&e))?;
        Ok(())
    }

    /// Take a claim's lock without blocking the async runtime.
    async fn lock(&self, id: &LeaseId) -> Result<crate::ownership::ClaimLock, Failure> {
        let claims = self.claims.clone();
        let id = id.as_str().to_owned();
        tokio::task::spawn_blocking(move || claims.lock(&id))
            .await
            .map_err(|e| Failure::new(ErrorKind::Internal, format!("claim lock task failed: {e}")))?
            .map_err(|e| ownership(&e))
    }

    /// Compare a claim with the box's own record. `Ok(true)`: they agree; `Ok(false)`: the box
    /// is gone. A record that disagrees is refused, naming the field.
    ///
    /// # Errors
    /// The record disagrees, or the backend cannot be asked.
    pub async fn verify(&self, claim: &Claim, lease: &Lease) -> Result<bool, Failure> {
        let record = self
            .backend
            .record(lease)
            .await
            .map_err(|e| Failure::from_error(&e))?;
        let Some(record) = record else {
            return Ok(false);
        };
        let workdir = claim.handle.get("workdir_spec").unwrap_or(&claim.workdir);
        let fields = [
            ("managed", "true".to_owned(), record.managed.to_string()),
            ("lease id", claim.id.clone(), record.lease_id.clone()),
            ("owner", claim.owner.clone(), record.owner.clone()),
            ("scope", claim.scope.clone(), record.scope.clone()),
            ("workdir", workdir.clone(), record.workdir.clone()),
        ];
        for (field, ours, theirs) in fields {
            // A claim left in `registering` never learnt its workdir.
            if field == "workdir" && claim.state == ClaimState::Registering {
                continue;
            }
            if ours != theirs {
                return Err(Failure::new(
                    ErrorKind::OwnershipRefused,
                    format!(
                        "lease `{}`: the claim and the box's own record disagree on the {field} (claim `{ours}`, box `{theirs}`); leasebox will not touch it",
                        claim.id
                    ),
                ));
            }
        }
        Ok(true)
    }

    /// Release what should not be there any more: leases past their TTL or idle time,
    /// non-kept leases whose holder is gone, claims whose box is gone, claims left in
    /// `registering`, and orphans (boxes with this owner's record and no claim) once past their
    /// expiry, or at once with `orphans`. Never touches a box whose record disagrees with its
    /// claim, nor a lease in use. An unexpected backend error stops the sweep, naming the lease.
    ///
    /// # Errors
    /// The claims cannot be listed, or the backend fails (the message names the lease).
    pub async fn cleanup(&self, options: &CleanupOptions) -> Result<Vec<CleanupItem>, Failure> {
        let mut items = Vec::new();
        let now = std::time::SystemTime::now();
        let all = self.list()?;
        let mut claimed = std::collections::BTreeSet::new();
        let item = |id: &str, action: &'static str, reason: String| CleanupItem {
            id: id.to_owned(),
            action,
            reason,
        };
        for claim in all.claims {
            claimed.insert(claim.id.clone());
            if claim.owner != self.owner || claim.backend != self.backend_name() {
                continue;
            }
            if options.repo.as_ref().is_some_and(|r| r != &claim.repo_root) {
                continue;
            }
            let stop = |e: Failure| Failure {
                message: format!("cleanup stopped at lease `{}`: {}", claim.id, e.message),
                ..e
            };
            let id: LeaseId = match claim.id.parse() {
                Ok(id) => id,
                Err(_) => continue,
            };
            let Some(lock) = self
                .claims
                .try_lock(id.as_str())
                .map_err(|e| ownership(&e))?
            else {
                items.push(item(
                    &claim.id,
                    "skipped",
                    "another leasebox is changing it".into(),
                ));
                continue;
            };
            let claim = match lock.load() {
                Ok(c) => c,
                Err(OwnershipError::NotFound { .. }) => continue,
                Err(e) => return Err(stop(ownership(&e))),
            };
            let held = self
                .claims
                .is_held(id.as_str())
                .map_err(|e| ownership(&e))?;
            if held && claim.state != ClaimState::Registering {
                let expired = claim.expiry(now);
                items.push(item(
                    &claim.id,
                    "kept",
                    match expired {
                        Some(r) => format!(
                            "in use by pid {} on {} ({r})",
                            claim.holder.pid, claim.holder.host
                        ),
                        None => format!(
                            "in use by pid {} on {}",
                            claim.holder.pid, claim.holder.host
                        ),
                    },
                ));
                continue;
            }
            let lease = Self::lease_of(&claim).map_err(stop)?;
            let present = match self.verify(&claim, &lease).await {
                Ok(p) => p,
                Err(e) if e.kind == ErrorKind::OwnershipRefused => {
                    items.push(item(&claim.id, "skipped", e.message));
                    continue;
                }
                Err(e) => return Err(stop(e)),
            };
            let why = if !present {
                Some(if claim.state == ClaimState::Registering {
                    "left in `registering` and never registered".to_owned()
                } else {
                    "its box is gone".to_owned()
                })
            } else if claim.state == ClaimState::Registering {
                Some("left in `registering` by a leasebox that stopped midway".to_owned())
            } else if let Some(reason) = claim.expiry(now) {
                Some(reason.to_string())
            } else if !claim.keep && !held {
                Some(format!(
                    "not kept, and its holder (pid {} on {}) is gone",
                    claim.holder.pid, claim.holder.host
                ))
            } else {
                None
            };
            let Some(why) = why else {
                items.push(item(&claim.id, "kept", "kept and not expired".into()));
                continue;
            };
            let action = if present { "released" } else { "dropped" };
            if !options.dry_run {
                if present {
                    self.backend
                        .release(&lease, &CancellationToken::new())
                        .await
                        .map_err(|e| stop(Failure::from_error(&e)))?;
                }
                lock.remove(claim.revision)
                    .map_err(|e| stop(ownership(&e)))?;
            }
            items.push(item(&claim.id, action, why));
        }
        if options.repo.is_none() {
            let remote = self
                .backend
                .list(&self.owner)
                .await
                .map_err(|e| Failure::from_error(&e))?;
            for orphan in remote {
                if claimed.contains(orphan.id.as_str()) {
                    continue;
                }
                let r = &orphan.record;
                if !r.managed || r.owner != self.owner || r.lease_id != orphan.id.as_str() {
                    continue;
                }
                let expired = r.expires_at.is_some_and(|t| t <= now);
                if !expired && !options.orphans {
                    items.push(item(
                        orphan.id.as_str(),
                        "kept",
                        format!(
                            "an orphan (no claim here) that expires at {}; `--orphans` releases it now",
                            r.expires_at
                                .map_or_else(|| "an unknown time".to_owned(), |t| humantime::format_rfc3339_seconds(t).to_string())
                        ),
                    ));
                    continue;
                }
                if !options.dry_run {
                    self.backend
                        .release(&orphan.lease, &CancellationToken::new())
                        .await
                        .map_err(|e| Failure {
                            message: format!("cleanup stopped at orphan `{}`: {}", orphan.id, e),
                            ..Failure::from_error(&e)
                        })?;
                }
                items.push(item(
                    orphan.id.as_str(),
                    "released",
                    if expired {
                        "an orphan (no claim here) past its expiry".into()
                    } else {
                        "an orphan (no claim here), `--orphans`".into()
                    },
                ));
            }
        }
        Ok(items)
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
