//! What a lease is asked to be ([`LeaseSpec`]) and how the boxes of a group are placed
//! ([`GroupPlacement`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{LeaseId, ProgressSender};

/// What a lease is asked to be: its id and the resources and placement the resolved config
/// allows. Backends ignore what they cannot honour (the local backend ignores image and
/// resources, and says so once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseSpec {
    /// The lease id, chosen by the caller before anything is created (so the claim can be
    /// written first).
    pub id: LeaseId,
    /// The container image, for image drivers.
    pub image: Option<String>,
    /// CPU in MHz.
    pub cpu: Option<u64>,
    /// Memory in MB.
    pub memory_mb: Option<u64>,
    /// Disk in MB.
    pub disk_mb: Option<u64>,
    /// The workdir inside the box as configured (may contain `${NOMAD_ALLOC_DIR}`); `None`
    /// lets the backend choose.
    pub workdir: Option<String>,
    /// The owner fingerprint recorded with the lease.
    pub owner: String,
    /// The repository root on this machine (recorded, never sent).
    pub repo_root: PathBuf,
    /// How long the lease may live.
    #[serde(with = "humantime_serde_secs")]
    pub ttl: Duration,
    /// How long the lease may sit unused.
    #[serde(with = "humantime_serde_secs")]
    pub idle: Duration,
    /// Where the backend reports what it sees while it waits for the box (nowhere by default).
    #[serde(skip)]
    pub progress: ProgressSender,
    /// How many boxes the lease holds: 1 (0 means 1), or N for a shard group (one Nomad job
    /// whose task group has count N; N directories on the local backend).
    #[serde(default)]
    pub count: u32,
    /// How the boxes of a group are spread over the cluster's nodes (ignored for one box).
    #[serde(default)]
    pub placement: GroupPlacement,
}

impl LeaseSpec {
    /// The number of boxes asked for (at least 1).
    #[must_use]
    pub fn boxes(&self) -> u32 {
        self.count.max(1)
    }
}

/// How the boxes of a group are placed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupPlacement {
    /// Spread over the nodes (Nomad: a `spread` on `${node.unique.id}`), several boxes on one
    /// node when there are fewer nodes than boxes.
    #[default]
    Spread,
    /// At most one box a node (Nomad: the `distinct_hosts` constraint); a group larger than
    /// the eligible nodes cannot be placed.
    DistinctHosts,
}

/// Serialize durations as whole seconds.
mod humantime_serde_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}
