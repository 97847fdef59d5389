//! [`HeldLease`]: the lease a caller holds. It is the box the backend knows
//! ([`Lease`](crate::lease::Lease)) attached as a [`Session`] (sync, fetch, verified exec) —
//! for a shard group, each of its N boxes attached as a session of its own — the
//! claim's holder lock (so no other leasebox stops or cleans it up while it is in use), and the
//! way back into the lifecycle to release it.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use super::Leases;
use crate::error::Failure;
use crate::lease::Lease;
use crate::ownership::HolderGuard;
use crate::session::Session;

/// A lease in use by this process: its session, its claim's holder lock, and its release.
/// Dropping it lets go of the holder lock (the box stays; `release` destroys it); a lease
/// dropped without a release is reported as kept (`lease_kept`).
#[derive(Debug)]
pub struct HeldLease {
    lease: Lease,
    sessions: Vec<Session>,
    lifecycle: Leases,
    reused: bool,
    release_tried: AtomicBool,
    _holder: HolderGuard,
}

impl HeldLease {
    /// `sessions` holds one session a box, box 1 first (never empty).
    pub(super) fn new(
        lifecycle: Leases,
        sessions: Vec<Session>,
        holder: HolderGuard,
        reused: bool,
    ) -> Self {
        let first = sessions[0].lease();
        let lease = if sessions.len() == 1 {
            first.clone()
        } else {
            // The group: box 1's fields, every box in `boxes`.
            Lease {
                boxes: sessions
                    .iter()
                    .flat_map(|s| s.lease().boxes.clone())
                    .collect(),
                ..first.clone()
            }
        };
        HeldLease {
            lease,
            sessions,
            lifecycle,
            reused,
            release_tried: AtomicBool::new(false),
            _holder: holder,
        }
    }

    /// The lease as its backend knows it (a group: every box in `boxes`, with the node each
    /// runs on).
    #[must_use]
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The session attached to the lease's (first) box: sync, fetch and verified exec.
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.sessions[0]
    }

    /// One session a box, box 1 first.
    #[must_use]
    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }

    /// Sync the repository to every box of the lease (see [`crate::session::sync_group`]):
    /// one report a box, box 1 first.
    ///
    /// # Errors
    /// As a box's sync; the error names the box of a group.
    pub async fn sync_all(
        &self,
        options: &crate::session::SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<crate::session::SyncReport>, crate::session::SessionError> {
        crate::session::sync_group(&self.sessions, options, cancel).await
    }

    /// Whether this is a kept lease attached with `--lease ID` (the run does not release it).
    #[must_use]
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Renew the lease while it is in use: see [`Leases::renew`].
    ///
    /// # Errors
    /// The claim or the box's record cannot be renewed.
    pub async fn renew(&self) -> Result<bool, Failure> {
        self.lifecycle.renew(self.lease()).await
    }

    /// Mark the lease kept (its claim says so, and `cleanup` leaves it alone until it expires):
    /// the REPL's `:lease keep`.
    ///
    /// # Errors
    /// The claim could not be updated.
    pub async fn mark_kept(&self) -> Result<(), Failure> {
        self.lifecycle.mark_kept(&self.lease().id).await
    }

    /// Release the lease: mark the claim `releasing`, destroy the box, drop the claim (the
    /// `cleanup` phase of the run's timing). If the backend fails, the claim stays for `stop` or
    /// `cleanup`.
    ///
    /// # Errors
    /// The backend could not release the box, or the claim could not be dropped.
    pub async fn release(&self, cancel: &CancellationToken) -> Result<(), Failure> {
        self.release_tried.store(true, Ordering::SeqCst);
        self.lifecycle.release(self.lease(), cancel).await
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if !self.release_tried.load(Ordering::SeqCst) {
            self.lifecycle
                .events()
                .emit(crate::events::Event::LeaseKept {
                    lease_id: self.lease().id.to_string(),
                    reason: if self.reused { "reused" } else { "kept" }.to_owned(),
                });
        }
    }
}
