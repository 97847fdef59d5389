//! The lease lifecycle: [`Leases`] is the one lifecycle every caller (the CLI, the recipe host)
//! goes through. It writes the claim before the box exists, confirms it once the box is ready,
//! hands out the lease with its claim's holder lock ([`HeldLease`]), checks the claim against
//! the box's own record before reusing, stopping or cleaning up (`cleanup.rs`), and drops the
//! claim only after the backend confirmed the box is gone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::HeldLease;
use crate::config::Settings;
use crate::error::{ErrorKind, Failure};
use crate::events::{Event, Events};
use crate::lease::{
    Backend, BoxRef, GroupPlacement, Lease, LeaseError, LeaseId, LeaseSpec, ProgressSender,
    RemoteState,
};
use crate::ownership::{
    Claim, ClaimList, ClaimLock, ClaimState, ClaimStore, OwnershipError, StateDir,
};
use crate::session::{Phase, PhaseStatus, Session, Timing};

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
    /// How many boxes: 1 (0 means 1), or N for a shard group.
    pub count: u32,
    /// How a group's boxes are spread over the nodes.
    pub placement: GroupPlacement,
}

impl LeaseRequest {
    /// One box with what the config asks of it (`nomad.image`, `cpu`, `memory_mb`, `disk_mb`,
    /// `workdir`), kept afterwards or not.
    #[must_use]
    pub fn from_settings(settings: &Settings, keep: bool) -> Self {
        let n = &settings.nomad;
        LeaseRequest {
            image: Some(n.image.clone()),
            cpu: Some(n.cpu),
            memory_mb: Some(n.memory_mb),
            disk_mb: Some(n.disk_mb),
            workdir: n.workdir.clone(),
            keep,
            ..LeaseRequest::default()
        }
    }
}

/// The lease lifecycle: acquire, attach (reuse), release, stop, list, cleanup.
#[derive(Debug, Clone)]
pub struct Leases {
    backend: Arc<dyn Backend>,
    claims: ClaimStore,
    owner: String,
    repo_root: PathBuf,
    ttl: Duration,
    idle: Duration,
    max_leases: u64,
    timing: Arc<Timing>,
    events: Events,
}

pub(super) fn ownership(e: &OwnershipError) -> Failure {
    Failure::from_error(e)
}

/// A claim that could not be loaded: a missing one is refused, naming how to find the right id
/// (the one place this mapping lives).
fn claim_error(id: &LeaseId, e: OwnershipError) -> Failure {
    match e {
        OwnershipError::NotFound { .. } => Failure::new(
            ErrorKind::OwnershipRefused,
            format!("no lease `{id}` here: `leasebox list` shows your leases"),
        ),
        other => ownership(&other),
    }
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
            max_leases: settings.max_leases,
            timing,
            events: Events::default(),
        })
    }

    /// Report what this lifecycle and the sessions it hands out do to `events` (the run's
    /// `--events` stream, the terminal's progress, the summary).
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Leases {
        self.events = events;
        self
    }

    /// The events this lifecycle reports to.
    #[must_use]
    pub fn events(&self) -> &Events {
        &self.events
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

    pub(super) fn owner(&self) -> &str {
        &self.owner
    }

    /// The backend's name (`local`, `nomad`), as claims record it.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
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
    ) -> Result<HeldLease, Failure> {
        let start = Instant::now();
        let outcome = self.acquire_new(request, cancel).await;
        // The warmup phase is recorded whatever happened: a failed one with its error kind.
        let mut phase = Phase::new(
            "warmup",
            self.timing.offset_ms(start),
            crate::session::elapsed_ms(start),
        );
        if let Err(failure) = &outcome {
            phase.status = PhaseStatus::Errored;
            phase.error_kind = Some(failure.kind.as_str().to_owned());
        }
        self.timing.push(phase);
        outcome
    }

    /// Refuse a lease of `count` boxes that would take the boxes this state dir's claims hold
    /// past `max_leases` (a group of N counts N), before anything is leased.
    fn check_max_leases(&self, count: u32) -> Result<(), Failure> {
        let list = self.list()?;
        let held: u64 = list.claims.iter().map(|c| u64::from(c.count.max(1))).sum();
        let wanted = u64::from(count.max(1));
        if held + wanted <= self.max_leases {
            return Ok(());
        }
        let asked = if wanted == 1 {
            "a lease of 1 box".to_owned()
        } else {
            format!("a group of {wanted} boxes")
        };
        Err(Failure::new(
            ErrorKind::ConfigError,
            format!(
                "{asked} would make {} boxes, more than `max_leases` = {} allows ({held} held by {} lease(s): `leasebox list` shows them, `leasebox cleanup` releases stale ones); raise `max_leases` in your user config, `LEASEBOX_MAX_LEASES` or `--max-leases`, or ask for fewer boxes",
                held + wanted,
                self.max_leases,
                list.claims.len()
            ),
        ))
    }

    async fn acquire_new(
        &self,
        request: &LeaseRequest,
        cancel: &CancellationToken,
    ) -> Result<HeldLease, Failure> {
        self.check_max_leases(request.count)?;
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
        claim.count = request.count.max(1);
        let claim = self.claims.create(&claim).map_err(|e| ownership(&e))?;
        let holder = match self.claims.hold(id.as_str()) {
            Ok(h) => h,
            Err(e) => {
                let _ = self.claims.remove(id.as_str(), claim.revision);
                return Err(ownership(&e));
            }
        };
        self.events.emit(Event::LeaseRequested {
            lease_id: id.to_string(),
            backend: self.backend_name().to_owned(),
        });
        let (progress, progress_rx) = ProgressSender::channel();
        let spec = LeaseSpec {
            progress,
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
            count: request.count.max(1),
            placement: request.placement,
        };
        let mut watch = super::progress::WarmupWatch::new(&self.events, &id, Instant::now());
        let warmed = watch
            .forward(progress_rx, self.backend.warmup(&spec, cancel))
            .await;
        let lease = match warmed {
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
            c.count = lease.count() as u32;
            c.boxes = if lease.boxes.len() > 1 {
                lease.boxes.iter().map(box_record).collect()
            } else {
                Vec::new()
            };
        });
        if let Err(e) = confirmed {
            let _ = self
                .backend
                .release(&lease, &CancellationToken::new())
                .await;
            let _ = self.claims.remove(id.as_str(), claim.revision);
            return Err(ownership(&e));
        }
        let held = HeldLease::new(self.clone(), self.sessions_for(lease), holder, false);
        let prepared =
            futures::future::join_all(held.sessions().iter().map(|s| s.prepare(cancel))).await;
        if let Some(e) = prepared.into_iter().find_map(Result::err) {
            let failure = Failure::from_error(&e);
            let _ = held.release(&CancellationToken::new()).await;
            return Err(failure);
        }
        watch.ready(held.lease());
        Ok(held)
    }

    /// A session on each box of `lease` (box 1 first). A one-box lease's records every sync's
    /// revision in the claim; each box of a group keeps its own local index
    /// ([`Leases::box_index_path`]), whose first line is the revision that box last got.
    fn sessions_for(&self, lease: Lease) -> Vec<Session> {
        if lease.count() == 1 {
            return vec![self.session_for(lease)];
        }
        let id = lease.id.to_string();
        lease
            .members()
            .into_iter()
            .zip(1..)
            .map(|(member, index)| {
                let session =
                    Session::new(Arc::clone(&self.backend), member, Arc::clone(&self.timing));
                session.set_index_path(self.box_index_path(&id, index));
                session.set_events(self.events.clone());
                session
            })
            .collect()
    }

    /// A session on `lease` that shares this lifecycle's timing and records every sync's
    /// revision in the claim.
    fn session_for(&self, lease: Lease) -> Session {
        let session = Session::new(Arc::clone(&self.backend), lease, Arc::clone(&self.timing));
        session.set_index_path(self.sync_index_path(session.lease().id.as_str()));
        session.set_events(self.events.clone());
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

    /// The local sync index of lease `id`: `STATE/sync/ID.index`, beside the claims (what
    /// the box got from the last sync, and the local stats it was read under).
    #[must_use]
    pub fn sync_index_path(&self, id: &str) -> PathBuf {
        self.sync_dir().join(format!("{id}.index"))
    }

    /// The local sync index of box `index` (1-based) of group lease `id`:
    /// `STATE/sync/ID.box-INDEX.index`.
    #[must_use]
    pub fn box_index_path(&self, id: &str, index: usize) -> PathBuf {
        self.sync_dir().join(format!("{id}.box-{index}.index"))
    }

    fn sync_dir(&self) -> PathBuf {
        let claims = self.claims.dir();
        claims.parent().unwrap_or(claims).join("sync")
    }

    /// The lease a claim describes.
    ///
    /// # Errors
    /// The claim's id is not a lease id.
    pub fn lease_of(claim: &Claim) -> Result<Lease, Failure> {
        let id: LeaseId = claim.id.parse().map_err(|e: crate::lease::LeaseIdError| {
            Failure::new(ErrorKind::Usage, e.to_string())
        })?;
        let boxes = claim
            .boxes
            .iter()
            .zip(1u32..)
            .map(|(record, n)| {
                let mut handle = record.clone();
                let index = handle
                    .remove("index")
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(n);
                let workdir = handle.remove("workdir").unwrap_or_default();
                BoxRef {
                    index,
                    workdir,
                    handle,
                }
            })
            .collect();
        Ok(Lease {
            id,
            backend: claim.backend.clone(),
            workdir: claim.workdir.clone(),
            handle: claim.handle.clone(),
            boxes,
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
    ) -> Result<HeldLease, Failure> {
        let claim = self.load_claim(id)?;
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
        let sessions = self.sessions_for(lease);
        for session in &sessions {
            session.set_reused();
        }
        if sessions.len() == 1 {
            sessions[0].set_sync_revision(touched.sync_revision);
        } else {
            // Each box of a group expects the revision its own index says it last got.
            for (session, index) in sessions.iter().zip(1..) {
                let revision = crate::session::index::LocalIndex::revision_at(
                    &self.box_index_path(id.as_str(), index),
                    id.as_str(),
                );
                session.set_sync_revision(revision);
            }
        }
        let lease = sessions[0].lease();
        self.events.emit(Event::LeaseReady {
            lease_id: id.to_string(),
            backend: lease.backend.clone(),
            job: lease.handle.get("job_id").cloned(),
            allocation: lease.handle.get("alloc_id").cloned(),
            node: None,
            workdir: lease.workdir.clone(),
            reused: true,
            ms: 0,
        });
        Ok(HeldLease::new(self.clone(), sessions, holder, true))
    }

    /// Renew a lease in use (`leasebox watch` keeps its boxes warm): the claim's last use,
    /// holder and renewal now (its TTL counts from here, and the claim is what `cleanup` on
    /// this machine goes by), and the box's own expiry (what an orphan sweep elsewhere goes by)
    /// a TTL from now where the backend can change it: the local backend can, Nomad cannot (a
    /// job's `Meta` changes only with a new job version, which replaces the allocation).
    /// Returns whether the box's record was renewed too.
    ///
    /// # Errors
    /// The claim cannot be updated, or the backend fails.
    pub async fn renew(&self, lease: &Lease) -> Result<bool, Failure> {
        let claims = self.claims.clone();
        let id = lease.id.as_str().to_owned();
        tokio::task::spawn_blocking(move || claims.renew(&id))
            .await
            .map_err(|e| Failure::new(ErrorKind::Internal, format!("claim task failed: {e}")))?
            .map_err(|e| ownership(&e))?;
        let expires_at = std::time::SystemTime::now() + self.ttl;
        self.backend
            .renew(lease, expires_at)
            .await
            .map_err(|e| Failure::from_error(&e))
    }

    /// The claim of `id`.
    ///
    /// # Errors
    /// No such claim (refused, pointing at `leasebox list`), or it cannot be read.
    pub fn load_claim(&self, id: &LeaseId) -> Result<Claim, Failure> {
        self.claims
            .load(id.as_str())
            .map_err(|e| claim_error(id, e))
    }

    /// Release `lease`: mark the claim `releasing`, destroy the box, then drop the claim. If
    /// the backend fails, the claim stays (in `releasing`) for `stop` or `cleanup`. Recorded as
    /// the `cleanup` phase.
    pub(super) async fn release(
        &self,
        lease: &Lease,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let start = Instant::now();
        let result = self.release_lease(lease, cancel).await;
        self.timing.record_since("cleanup", start);
        self.events.emit(match &result {
            Ok(()) => Event::LeaseReleased {
                lease_id: lease.id.to_string(),
                ms: super::elapsed_ms(start),
            },
            Err(_) => Event::LeaseKept {
                lease_id: lease.id.to_string(),
                reason: "release_failed".to_owned(),
            },
        });
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
        // The box is gone, and with it what the index describes.
        self.forget_sync_index(id);
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
        let claim = lock.load().map_err(|e| claim_error(id, e))?;
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
        self.forget_sync_index(id.as_str());
        lock.remove(claim.revision).map_err(|e| ownership(&e))
    }

    /// Drop the local sync index of a lease whose box is gone (best effort: a stale one is
    /// never used, its lease id being unique).
    pub(super) fn forget_sync_index(&self, id: &str) {
        let _ = std::fs::remove_file(self.sync_index_path(id));
        let boxes = format!("{id}.box-");
        if let Ok(dir) = std::fs::read_dir(self.sync_dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&boxes) && name.ends_with(".index") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
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
    async fn lock(&self, id: &LeaseId) -> Result<ClaimLock, Failure> {
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

/// A box of a group as its claim records it: `index`, `workdir` and its references.
fn box_record(b: &BoxRef) -> std::collections::BTreeMap<String, String> {
    let mut record = b.handle.clone();
    record.insert("index".to_owned(), b.index.to_string());
    record.insert("workdir".to_owned(), b.workdir.clone());
    record
}
