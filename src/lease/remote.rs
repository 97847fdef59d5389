//! What a backend reports about itself and its boxes: [`Features`], the live
//! [`RemoteState`], the [`OwnershipRecord`] a box carries and the [`RemoteLease`] listings.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Lease, LeaseId};

/// What a backend can do, for `leasebox backends --json` and for the session layer.
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    /// The backend name.
    pub name: &'static str,
    /// One line saying what a lease is on this backend.
    pub description: &'static str,
    /// The box is isolated from this machine (a container or a remote node).
    pub isolation: bool,
    /// `ExecStream::kill` really stops the exec'd process and its group (a verified-exec
    /// command, in a session of its own, is stopped through its record on every backend).
    pub exec_kill: bool,
    /// Images are honoured.
    pub image: bool,
    /// CPU, memory and disk requests are honoured.
    pub resources: bool,
    /// Whether the backend is usable in this build.
    pub available: bool,
}

/// The live state of a lease as its backend sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    /// The box exists and accepts execs.
    Ready,
    /// The box is being created.
    Pending,
    /// The box is gone (released, lost, or never created).
    Gone,
    /// The box exists but is not usable (failed, stopping).
    Unhealthy(String),
}

/// The ownership fields a box carries on the backend side, compared with the local claim
/// before a lease is reused, stopped or cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnershipRecord {
    /// The lease id.
    pub lease_id: String,
    /// The owner.
    pub owner: String,
    /// The scope fingerprint.
    pub scope: String,
    /// The workdir as configured.
    pub workdir: String,
    /// When the lease expires, if the record says.
    pub expires_at: Option<std::time::SystemTime>,
    /// Whether the record says leasebox created it.
    pub managed: bool,
}

/// A lease as found on the backend by [`Backend::list`].
#[derive(Debug, Clone, Serialize)]
pub struct RemoteLease {
    /// The lease id.
    pub id: LeaseId,
    /// Its state.
    pub state: RemoteState,
    /// Backend-specific details (for Nomad the ownership Meta).
    pub details: BTreeMap<String, String>,
    /// The ownership record.
    pub record: OwnershipRecord,
    /// What it takes to release it.
    pub lease: Lease,
}
