//! The lease's job: the built-in job spec, the ownership `Meta` it carries (DESIGN §6) and
//! reading that `Meta` back, and the scope fingerprint.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::NomadBackend;
use crate::lease::{GroupPlacement, Lease, LeaseSpec, OwnershipRecord};

/// Ownership Meta keys on every leasebox job.
pub mod meta {
    /// `"true"` on every job leasebox created.
    pub const MANAGED: &str = "leasebox.managed";
    /// The lease id.
    pub const LEASE_ID: &str = "leasebox.lease_id";
    /// The scope fingerprint (sha256 of address, namespace, region, task).
    pub const SCOPE: &str = "leasebox.scope";
    /// The workdir as configured.
    pub const WORKDIR: &str = "leasebox.workdir";
    /// The owner.
    pub const OWNER: &str = "leasebox.owner";
    /// When the lease expires (RFC 3339).
    pub const EXPIRES_AT: &str = "leasebox.expires_at";
}

/// Drivers whose tasks run from an image.
pub(super) const IMAGE_DRIVERS: [&str; 2] = ["docker", "podman"];

/// The keepalive: sleeps until told to stop, and exits promptly on TERM or INT.
const KEEPALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// The scope fingerprint: sha256 of address, namespace, region and task, so the address never
/// appears in clear on the cluster.
#[must_use]
pub fn scope_fingerprint(address: &str, namespace: &str, region: &str, task: &str) -> String {
    let digest = Sha256::digest(format!("{address}\n{namespace}\n{region}\n{task}").as_bytes());
    hex::encode(&digest[..12])
}

impl NomadBackend {
    /// The built-in job of a lease: one group of count N (1 unless a shard group), restart and reschedule off, the
    /// keepalive as the task, the ownership `Meta`.
    pub(super) fn job_spec(
        &self,
        spec: &LeaseSpec,
        datacenters: Vec<String>,
        workdir: &str,
    ) -> serde_json::Value {
        let expires = SystemTime::now() + spec.ttl;
        let meta: BTreeMap<String, String> = [
            (meta::MANAGED, "true".to_owned()),
            (meta::LEASE_ID, spec.id.to_string()),
            (meta::SCOPE, self.scope.clone()),
            (meta::WORKDIR, workdir.to_owned()),
            (meta::OWNER, spec.owner.clone()),
            (
                meta::EXPIRES_AT,
                humantime::format_rfc3339_seconds(expires).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut config = json!({"command": "/bin/sh", "args": ["-c", KEEPALIVE]});
        if IMAGE_DRIVERS.contains(&self.driver.as_str()) {
            config["image"] = json!(spec.image.clone().unwrap_or_else(|| self.image.clone()));
        }
        let constraints: Vec<_> = self
            .constraints
            .iter()
            .map(|c| json!({"LTarget": c.attribute, "RTarget": c.value, "Operand": c.operator}))
            .collect();
        let mut job = json!({
            "ID": spec.id.as_str(),
            "Name": spec.id.as_str(),
            "Type": "service",
            "Namespace": self.client.namespace(),
            "Region": self.client.region(),
            "Datacenters": datacenters,
            "Meta": meta,
            "TaskGroups": [{
                "Name": "leasebox",
                "Count": spec.boxes(),
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
                "EphemeralDisk": {"SizeMB": spec.disk_mb.unwrap_or(1024)},
                "Tasks": [{
                    "Name": self.task,
                    "Driver": self.driver,
                    "Config": config,
                    "Resources": {
                        "CPU": spec.cpu.unwrap_or(1000),
                        "MemoryMB": spec.memory_mb.unwrap_or(2048),
                    },
                    "KillTimeout": 5_000_000_000u64,
                }],
            }],
        });
        if !constraints.is_empty() {
            job["Constraints"] = json!(constraints);
        }
        group_placement(&mut job["TaskGroups"][0], spec);
        if let Some(pool) = &self.node_pool {
            job["NodePool"] = json!(pool);
        }
        job
    }
}

/// Give a task group the lease's count and, for a group of several boxes, its placement: a
/// `spread` over `${node.unique.id}` (so the boxes do not bin-pack onto one node), or the
/// `distinct_hosts` constraint (at most one box a node). A template's group gets the same.
pub(super) fn group_placement(group: &mut serde_json::Value, spec: &LeaseSpec) {
    group["Count"] = json!(spec.boxes());
    if spec.boxes() < 2 {
        return;
    }
    match spec.placement {
        GroupPlacement::Spread => {
            let spread = json!({"Attribute": "${node.unique.id}", "Weight": 100});
            match group.get_mut("Spreads").and_then(|s| s.as_array_mut()) {
                Some(list) => list.push(spread),
                None => group["Spreads"] = json!([spread]),
            }
        }
        GroupPlacement::DistinctHosts => {
            let constraint = json!({"Operand": "distinct_hosts", "RTarget": "true"});
            match group.get_mut("Constraints").and_then(|s| s.as_array_mut()) {
                Some(list) => list.push(constraint),
                None => group["Constraints"] = json!([constraint]),
            }
        }
    }
}

/// The job of a lease: recorded in its handle, else (a claim left in `registering`) the lease
/// id, which is what warmup names the job.
pub(super) fn job_id_of(lease: &Lease) -> String {
    lease
        .handle
        .get("job_id")
        .cloned()
        .unwrap_or_else(|| lease.id.to_string())
}

pub(super) fn ownership_of(job_meta: &BTreeMap<String, String>) -> OwnershipRecord {
    let get = |k: &str| job_meta.get(k).cloned().unwrap_or_default();
    OwnershipRecord {
        lease_id: get(meta::LEASE_ID),
        owner: get(meta::OWNER),
        scope: get(meta::SCOPE),
        workdir: get(meta::WORKDIR),
        expires_at: job_meta
            .get(meta::EXPIRES_AT)
            .and_then(|t| humantime::parse_rfc3339(t).ok()),
        managed: job_meta.get(meta::MANAGED).map(String::as_str) == Some("true"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_hides_the_address() {
        let s = scope_fingerprint("http://10.1.2.3:4646", "default", "global", "leasebox");
        assert_eq!(s.len(), 24);
        assert!(!s.contains("10.1"));
        assert_ne!(
            s,
            scope_fingerprint("http://10.1.2.3:4646", "other", "global", "leasebox")
        );
    }
}
