//! `leasebox cleanup` (and a recipe's `leasebox.cleanup{}`): release what should not be there
//! any more. The sweep has two parts, each a named step: every claim of this owner and backend
//! ([`Leases::sweep_claim`]: lock it, see whether it is in use, compare it with the box's own
//! record, decide, act), then the orphans, boxes with this owner's record and no claim
//! ([`Leases::sweep_orphans`]). What happened to each lease is a [`CleanupItem`] whose
//! [`CleanupAction`] `--json` shows as `released`, `dropped`, `kept` or `skipped`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Leases;
use super::lifecycle::ownership;
use crate::error::{ErrorKind, Failure};
use crate::lease::{LeaseId, RemoteLease};
use crate::ownership::{Claim, ClaimState, OwnershipError};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupAction {
    /// The box was released and the claim dropped.
    Released,
    /// The claim only was dropped: the box was gone.
    Dropped,
    /// Left alone: in use, kept and not expired, or an orphan not yet expired.
    Kept,
    /// Not touched: another leasebox is changing it, or its claim and record disagree.
    Skipped,
}

impl CleanupAction {
    /// The name `--json` and the listing show.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupAction::Released => "released",
            CleanupAction::Dropped => "dropped",
            CleanupAction::Kept => "kept",
            CleanupAction::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for CleanupAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so width and alignment (`{:<9}`) apply.
        f.pad(self.as_str())
    }
}

/// What `cleanup` did (or would do) with one lease.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupItem {
    /// The lease id.
    pub id: String,
    /// What was (or would be) done.
    pub action: CleanupAction,
    /// Why.
    pub reason: String,
}

impl CleanupItem {
    fn new(id: &str, action: CleanupAction, reason: impl Into<String>) -> Self {
        CleanupItem {
            id: id.to_owned(),
            action,
            reason: reason.into(),
        }
    }
}

impl Leases {
    /// Release what should not be there any more: leases past their TTL or idle time,
    /// non-kept leases whose holder is gone, claims whose box is gone, claims left in
    /// `registering`, and orphans (boxes with this owner's record and no claim) once past their
    /// expiry, or at once with `orphans`. Never touches a box whose record disagrees with its
    /// claim, nor a lease in use. An unexpected backend error stops the sweep, naming the lease.
    ///
    /// # Errors
    /// The claims cannot be listed, or the backend fails (the message names the lease).
    pub async fn cleanup(&self, options: &CleanupOptions) -> Result<Vec<CleanupItem>, Failure> {
        let now = SystemTime::now();
        let mut items = Vec::new();
        let mut claimed = BTreeSet::new();
        for claim in self.list()?.claims {
            claimed.insert(claim.id.clone());
            if !self.in_sweep(&claim, options) {
                continue;
            }
            if let Some(item) = self.sweep_claim(&claim, options, now).await? {
                items.push(item);
            }
        }
        if options.repo.is_none() {
            items.extend(self.sweep_orphans(&claimed, options, now).await?);
        }
        Ok(items)
    }

    /// Whether a claim is this sweep's: this owner's, this backend's, and of the repository
    /// asked for (if any).
    fn in_sweep(&self, claim: &Claim, options: &CleanupOptions) -> bool {
        claim.owner == self.owner()
            && claim.backend == self.backend_name()
            && options.repo.as_ref().is_none_or(|r| r == &claim.repo_root)
    }

    /// One claim: take its lock (skip it when another leasebox has it), reload it, keep it when
    /// in use, compare it with the box's own record (skip it when they disagree), then release
    /// the box and drop the claim when there is a reason to. `None`: nothing to report (a
    /// claim that vanished meanwhile, or a file name that is not a lease id).
    async fn sweep_claim(
        &self,
        listed: &Claim,
        options: &CleanupOptions,
        now: SystemTime,
    ) -> Result<Option<CleanupItem>, Failure> {
        let stop = |e: Failure| Failure {
            message: format!("cleanup stopped at lease `{}`: {}", listed.id, e.message),
            ..e
        };
        let Ok(id) = listed.id.parse::<LeaseId>() else {
            return Ok(None);
        };
        let Some(lock) = self
            .claims()
            .try_lock(id.as_str())
            .map_err(|e| ownership(&e))?
        else {
            return Ok(Some(CleanupItem::new(
                &listed.id,
                CleanupAction::Skipped,
                "another leasebox is changing it",
            )));
        };
        let claim = match lock.load() {
            Ok(c) => c,
            Err(OwnershipError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(stop(ownership(&e))),
        };
        let held = self
            .claims()
            .is_held(id.as_str())
            .map_err(|e| ownership(&e))?;
        if held && claim.state != ClaimState::Registering {
            return Ok(Some(CleanupItem::new(
                &claim.id,
                CleanupAction::Kept,
                in_use(&claim, now),
            )));
        }
        let lease = Self::lease_of(&claim).map_err(stop)?;
        let present = match self.verify(&claim, &lease).await {
            Ok(p) => p,
            Err(e) if e.kind == ErrorKind::OwnershipRefused => {
                return Ok(Some(CleanupItem::new(
                    &claim.id,
                    CleanupAction::Skipped,
                    e.message,
                )));
            }
            Err(e) => return Err(stop(e)),
        };
        let Some(why) = release_reason(&claim, present, held, now) else {
            return Ok(Some(CleanupItem::new(
                &claim.id,
                CleanupAction::Kept,
                "kept and not expired",
            )));
        };
        if !options.dry_run {
            if present {
                self.backend()
                    .release(&lease, &CancellationToken::new())
                    .await
                    .map_err(|e| stop(Failure::from_error(&e)))?;
            }
            self.forget_sync_index(&claim.id);
            lock.remove(claim.revision)
                .map_err(|e| stop(ownership(&e)))?;
        }
        let action = if present {
            CleanupAction::Released
        } else {
            CleanupAction::Dropped
        };
        Ok(Some(CleanupItem::new(&claim.id, action, why)))
    }

    /// Boxes with this owner's record and no claim here: released once past their expiry, or
    /// at once with `orphans`; kept (and said so) otherwise.
    async fn sweep_orphans(
        &self,
        claimed: &BTreeSet<String>,
        options: &CleanupOptions,
        now: SystemTime,
    ) -> Result<Vec<CleanupItem>, Failure> {
        let remote = self
            .backend()
            .list(self.owner())
            .await
            .map_err(|e| Failure::from_error(&e))?;
        let mut items = Vec::new();
        for orphan in remote {
            if claimed.contains(orphan.id.as_str()) || !self.is_our_orphan(&orphan) {
                continue;
            }
            let expires_at = orphan.record.expires_at;
            let expired = expires_at.is_some_and(|t| t <= now);
            if !expired && !options.orphans {
                let at = expires_at.map_or_else(
                    || "an unknown time".to_owned(),
                    |t| humantime::format_rfc3339_seconds(t).to_string(),
                );
                items.push(CleanupItem::new(
                    orphan.id.as_str(),
                    CleanupAction::Kept,
                    format!(
                        "an orphan (no claim here) that expires at {at}; `--orphans` releases it now"
                    ),
                ));
                continue;
            }
            if !options.dry_run {
                self.backend()
                    .release(&orphan.lease, &CancellationToken::new())
                    .await
                    .map_err(|e| Failure {
                        message: format!("cleanup stopped at orphan `{}`: {}", orphan.id, e),
                        ..Failure::from_error(&e)
                    })?;
            }
            items.push(CleanupItem::new(
                orphan.id.as_str(),
                CleanupAction::Released,
                if expired {
                    "an orphan (no claim here) past its expiry"
                } else {
                    "an orphan (no claim here), `--orphans`"
                },
            ));
        }
        Ok(items)
    }

    /// A box whose own record says it is managed by this owner under its own lease id.
    fn is_our_orphan(&self, orphan: &RemoteLease) -> bool {
        let r = &orphan.record;
        r.managed && r.owner == self.owner() && r.lease_id == orphan.id.as_str()
    }
}

/// Why a claim in use is kept: its holder, and its expiry if it has passed.
fn in_use(claim: &Claim, now: SystemTime) -> String {
    match claim.expiry(now) {
        Some(r) => format!(
            "in use by pid {} on {} ({r})",
            claim.holder.pid, claim.holder.host
        ),
        None => format!(
            "in use by pid {} on {}",
            claim.holder.pid, claim.holder.host
        ),
    }
}

/// Why a claim not in use should go (`None`: it stays): its box is gone, it was left in
/// `registering`, it expired, or it is not kept and its holder is gone.
/// Whether a claim is abandoned: no process holds it, and it is not kept (or was left in
/// `registering`); `cleanup` releases such a lease.
#[must_use]
pub fn is_abandoned(claim: &Claim, held: bool) -> bool {
    !held && (claim.state == ClaimState::Registering || !claim.keep)
}

impl Leases {
    /// The state `list` and `status` show for a claim, and whether a process holds it: the
    /// claim's own state, or `abandoned` when its holder process is gone ([`is_abandoned`]).
    #[must_use]
    pub fn shown_state(&self, claim: &Claim) -> (&'static str, bool) {
        let held = self.claims().is_held(claim.id.as_str()).unwrap_or(false);
        if is_abandoned(claim, held) {
            ("abandoned", held)
        } else {
            (claim.state.as_str(), held)
        }
    }
}

fn release_reason(claim: &Claim, present: bool, held: bool, now: SystemTime) -> Option<String> {
    if !present {
        return Some(if claim.state == ClaimState::Registering {
            "left in `registering` and never registered".to_owned()
        } else {
            "its box is gone".to_owned()
        });
    }
    if claim.state == ClaimState::Registering {
        return Some("left in `registering` by a leasebox that stopped midway".to_owned());
    }
    if let Some(reason) = claim.expiry(now) {
        return Some(reason.to_string());
    }
    if is_abandoned(claim, held) {
        return Some(format!(
            "not kept, and its holder (pid {} on {}) is gone",
            claim.holder.pid, claim.holder.host
        ));
    }
    None
}
