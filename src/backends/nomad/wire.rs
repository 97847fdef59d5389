//! Nomad's wire types: the parts of the HTTP API's JSON that leasebox reads and writes. Every
//! field is optional when decoding (1.1 agents omit empty fields in full allocations and
//! evaluations, and send `null` for empty lists), and field names are Go's PascalCase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node stub from `GET /v1/nodes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStub {
    /// Node id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub name: String,
    /// Its datacenter.
    pub datacenter: String,
    /// `initializing`, `ready`, `down`, `disconnected`.
    pub status: String,
    /// `eligible` or `ineligible`.
    pub scheduling_eligibility: String,
    /// Whether it is draining.
    pub drain: bool,
    /// Node pool (1.6+).
    pub node_pool: Option<String>,
    /// Drivers and their health.
    pub drivers: Option<BTreeMap<String, DriverInfo>>,
}

/// A driver's health on a node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverInfo {
    /// Detected by the client.
    pub detected: bool,
    /// Healthy.
    pub healthy: bool,
    /// Why not healthy.
    pub health_description: String,
}

/// The register reply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegisterResponse {
    /// The evaluation created for the job.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Warnings from the agent.
    pub warnings: Option<String>,
}

/// A job as `GET /v1/job/:id` returns it (only what leasebox reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    /// Job id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// `pending`, `running`, `dead`.
    pub status: String,
    /// Stopped but not purged.
    pub stop: bool,
    /// Job meta.
    pub meta: Option<BTreeMap<String, String>>,
    /// Task groups.
    pub task_groups: Option<Vec<serde_json::Value>>,
}

/// A job stub from `GET /v1/jobs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobStub {
    /// Job id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Status.
    pub status: String,
    /// Stopped.
    pub stop: bool,
    /// Meta, only with `?meta=true` on 1.5+.
    pub meta: Option<BTreeMap<String, String>>,
}

/// A task's state inside an allocation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskState {
    /// `pending`, `running`, `dead`.
    pub state: String,
    /// Died failing.
    pub failed: bool,
    /// Events, oldest first.
    pub events: Option<Vec<TaskEvent>>,
}

/// A task event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEvent {
    /// Event type (`Started`, `Terminated`, `Driver Failure`, …).
    #[serde(rename = "Type")]
    pub kind: String,
    /// Human message.
    pub display_message: String,
    /// Driver error, if any.
    pub driver_error: String,
    /// Exit code for `Terminated`.
    pub exit_code: i64,
}

/// An allocation stub (or the common part of a full allocation).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    /// Allocation id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `job.group[i]`: the allocation's place in its group.
    pub name: String,
    /// Node id.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Node name.
    pub node_name: String,
    /// `run`, `stop`, `evict`.
    pub desired_status: String,
    /// `pending`, `running`, `complete`, `failed`, `lost`, `unknown`.
    pub client_status: String,
    /// Why.
    pub client_description: String,
    /// Task states by task name.
    pub task_states: Option<BTreeMap<String, TaskState>>,
    /// The replacement, on full allocations (and stubs of some versions).
    pub next_allocation: String,
    /// A follow-up evaluation for a delayed reschedule.
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl Allocation {
    /// The allocation's index in its group, from its name (`job.group[3]` → 3).
    #[must_use]
    pub fn group_index(&self) -> Option<u32> {
        let open = self.name.rfind('[')?;
        self.name[open + 1..].strip_suffix(']')?.parse().ok()
    }

    /// Terminal on either side.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
            || matches!(self.desired_status.as_str(), "stop" | "evict")
    }
}

/// An evaluation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Evaluation {
    /// `blocked`, `pending`, `complete`, `failed`, `canceled`.
    pub status: String,
    /// Why.
    pub status_description: String,
    /// Placement failures by task group.
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, serde_json::Value>>,
    /// A blocked follow-up evaluation.
    #[serde(rename = "BlockedEval")]
    pub blocked_eval: String,
}

/// The agent's own config, from `GET /v1/agent/self`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AgentSelf {
    /// The agent config.
    pub config: AgentConfig,
}

/// The parts of the agent config leasebox reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentConfig {
    /// Region.
    pub region: String,
    /// Datacenter.
    pub datacenter: String,
    /// Version.
    pub version: Option<AgentVersion>,
    /// ACL settings.
    #[serde(rename = "ACL")]
    pub acl: Option<AgentAcl>,
}

/// Agent version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentVersion {
    /// `1.1.2`.
    pub version: String,
}

/// Agent ACL settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentAcl {
    /// ACLs on.
    pub enabled: bool,
}

/// An ACL token from `GET /v1/acl/token/self`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclToken {
    /// Accessor id (never the secret).
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    /// Name.
    pub name: String,
    /// `client` or `management`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Policy names.
    pub policies: Option<Vec<String>>,
}

/// A job to register (the subset leasebox builds).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobSpec {
    /// Job id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name (= id).
    pub name: String,
    /// `service`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Region.
    pub region: String,
    /// Datacenters, always explicit.
    pub datacenters: Vec<String>,
    /// Node pool (only when configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Placement constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Ownership meta.
    pub meta: BTreeMap<String, String>,
    /// One group.
    pub task_groups: Vec<TaskGroup>,
}

/// A placement constraint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Constraint {
    /// `${attr.kernel.name}`.
    #[serde(rename = "LTarget")]
    pub l_target: String,
    /// Value.
    #[serde(rename = "RTarget")]
    pub r_target: String,
    /// `=`, `!=`, `regexp`, …
    pub operand: String,
}

/// A task group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroup {
    /// Name.
    pub name: String,
    /// 1.
    pub count: u32,
    /// Restart policy (off).
    pub restart_policy: serde_json::Value,
    /// Reschedule policy (off).
    pub reschedule_policy: serde_json::Value,
    /// Disk.
    pub ephemeral_disk: serde_json::Value,
    /// The task.
    pub tasks: Vec<Task>,
}

/// A task.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Driver config.
    pub config: serde_json::Value,
    /// Resources.
    pub resources: serde_json::Value,
    /// Kill timeout in nanoseconds.
    pub kill_timeout: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    fn decode<T: DeserializeOwned>(body: &Value, what: &str) {
        if let Err(e) = serde_json::from_value::<T>(body.clone()) {
            panic!("{what}: {e}\n{body}");
        }
    }

    /// Every successful JSON reply a real 1.1.2 agent gave to a route leasebox reads decodes
    /// into leasebox's wire type for it.
    #[test]
    fn the_decoders_accept_every_recorded_reply() {
        let dir = crate::backends::nomad::recorded_fixtures();
        assert!(
            dir.is_dir(),
            "the recordings are missing: {}",
            dir.display()
        );
        let mut decoded = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().extension().is_none_or(|e| e != "json") {
                continue;
            }
            let doc: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(steps) = doc["steps"].as_array() else {
                continue;
            };
            let mut bodies = Vec::new();
            for step in steps {
                let (Some(req), Some(resp)) = (step.get("request"), step.get("response")) else {
                    continue;
                };
                let body = if resp["body"].is_null() {
                    // A repeated poll: the body of an earlier step.
                    match resp["body_same_as_step"].as_u64() {
                        Some(i) => bodies
                            .get(usize::try_from(i).unwrap())
                            .cloned()
                            .unwrap_or(Value::Null),
                        None => Value::Null,
                    }
                } else {
                    resp["body"].clone()
                };
                bodies.push(body.clone());
                if resp["status"] != 200
                    || !(body.is_object() || body.is_array() || body.is_string())
                {
                    continue;
                }
                let method = req["method"].as_str().unwrap_or("");
                let path = req["path"].as_str().unwrap_or("");
                let what = format!("{name}: {method} {path}");
                let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
                match (method, segments.as_slice()) {
                    ("GET", ["nodes"]) => decode::<Vec<NodeStub>>(&body, &what),
                    ("GET", ["jobs"]) => decode::<Vec<JobStub>>(&body, &what),
                    ("GET", ["job", _]) => decode::<Job>(&body, &what),
                    ("GET", ["job", _, "allocations"]) => decode::<Vec<Allocation>>(&body, &what),
                    ("GET", ["allocation", _]) => decode::<Allocation>(&body, &what),
                    ("GET", ["evaluation", _]) => decode::<Evaluation>(&body, &what),
                    ("GET", ["agent", "self"]) => decode::<AgentSelf>(&body, &what),
                    ("GET", ["acl", "token", "self"]) => decode::<AclToken>(&body, &what),
                    ("GET", ["status", "leader"]) => decode::<String>(&body, &what),
                    ("GET", ["regions"]) => decode::<Vec<String>>(&body, &what),
                    ("PUT" | "POST", ["jobs"]) => decode::<RegisterResponse>(&body, &what),
                    _ => continue,
                }
                decoded += 1;
            }
        }
        assert!(decoded >= 60, "only {decoded} replies decoded");
    }
}
