//! The agent's state store: jobs, allocations, evaluations, the one node, ACL objects, and the
//! raft-like index that every write advances. Rendering to the wire shapes of each profile
//! lives here too, next to the data it renders.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::config::{Config, DriverHealth, Profile};

pub fn new_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn rfc3339(nanos: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339(now_nanos())
}

/// Formats a duration the way Go's `time.Duration.String` does for whole units (`5s`, `30m0s`).
pub fn go_duration(nanos: i64) -> String {
    let secs = nanos / 1_000_000_000;
    let rem = nanos % 1_000_000_000;
    if secs == 0 {
        return if rem == 0 {
            "0s".into()
        } else {
            format!("{}ms", rem / 1_000_000)
        };
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[derive(Clone, Debug)]
pub struct Job {
    pub namespace: String,
    pub id: String,
    /// The canonical job body, without the status fields rendered at read time.
    pub spec: Value,
    pub stop: bool,
    pub version: u64,
    pub submit_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    /// The deployment service jobs get on register (evaluations and allocations carry it).
    pub deployment_id: String,
}

impl Job {
    pub fn job_type(&self) -> String {
        self.spec["Type"].as_str().unwrap_or("service").to_string()
    }

    pub fn groups(&self) -> Vec<Value> {
        self.spec["TaskGroups"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default)]
pub struct TaskState {
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    pub last_restart: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub events: Vec<Value>,
}

impl TaskState {
    pub fn render(&self) -> Value {
        json!({
            "State": self.state, "Failed": self.failed, "Restarts": self.restarts,
            "LastRestart": self.last_restart, "StartedAt": self.started_at,
            "FinishedAt": self.finished_at, "Events": self.events, "TaskHandle": null,
        })
    }
}

/// A task event with every field a 1.1.2 agent sends.
pub fn task_event(kind: &str, display: &str, message: &str, details: Value) -> Value {
    json!({
        "Type": kind, "Time": now_nanos(), "Message": message, "DisplayMessage": display,
        "Details": details, "FailsTask": false, "RestartReason": "", "SetupError": "",
        "DriverError": "", "ExitCode": 0, "Signal": 0, "KillTimeout": 0, "KillError": "",
        "KillReason": "", "StartDelay": 0, "DownloadError": "", "ValidationError": "",
        "DiskLimit": 0, "FailedSibling": "", "VaultError": "", "TaskSignalReason": "",
        "TaskSignal": "", "DriverMessage": "", "GenericSource": "",
    })
}

#[derive(Clone, Debug)]
pub struct Alloc {
    pub id: String,
    pub eval_id: String,
    pub name: String,
    pub namespace: String,
    pub node_id: String,
    pub node_name: String,
    pub job_id: String,
    pub job: Value,
    pub job_type: String,
    pub job_version: u64,
    pub job_create_index: u64,
    pub task_group: String,
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    pub desired_reschedule: bool,
    pub task_states: BTreeMap<String, TaskState>,
    pub followup_eval_id: String,
    pub next_allocation: String,
    pub previous_allocation: String,
    pub reschedule_events: Vec<Value>,
    pub deployment_id: String,
    pub deployment_status: Option<Value>,
    pub create_index: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Alloc {
    pub fn is_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
            || matches!(self.desired_status.as_str(), "stop" | "evict")
                && self.client_status != "running"
                && self.client_status != "pending"
    }

    pub fn client_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
    }

    fn reschedule_tracker(&self) -> Value {
        if self.reschedule_events.is_empty() {
            Value::Null
        } else {
            json!({ "Events": self.reschedule_events })
        }
    }

    fn desired_transition(&self) -> Value {
        json!({
            "Migrate": null,
            "Reschedule": if self.desired_reschedule { json!(true) } else { Value::Null },
            "ForceReschedule": null,
        })
    }

    fn task_states(&self) -> Value {
        if self.task_states.is_empty() {
            return Value::Null;
        }
        let map: Map<String, Value> = self
            .task_states
            .iter()
            .map(|(k, v)| (k.clone(), v.render()))
            .collect();
        Value::Object(map)
    }

    pub fn stub(&self, profile: Profile) -> Value {
        let mut v = json!({
            "ID": self.id, "EvalID": self.eval_id, "Name": self.name, "Namespace": self.namespace,
            "NodeID": self.node_id, "NodeName": self.node_name, "JobID": self.job_id,
            "JobType": self.job_type, "JobVersion": self.job_version, "TaskGroup": self.task_group,
            "AllocatedResources": null, "DesiredStatus": self.desired_status,
            "DesiredDescription": self.desired_description, "ClientStatus": self.client_status,
            "ClientDescription": self.client_description,
            "DesiredTransition": self.desired_transition(), "TaskStates": self.task_states(),
            "DeploymentStatus": self.deployment_status, "FollowupEvalID": self.followup_eval_id,
            "RescheduleTracker": self.reschedule_tracker(), "PreemptedAllocations": null,
            "PreemptedByAllocation": "", "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index, "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        });
        if profile == Profile::Modern {
            v["NextAllocation"] = json!(self.next_allocation);
            v["NodePool"] = json!("default");
        }
        v
    }

    pub fn full(&self, profile: Profile, node_dc: &str) -> Value {
        let tasks: Vec<(String, Value)> = self.job["TaskGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["Name"] == self.task_group)
            .flat_map(|g| g["Tasks"].as_array().cloned().unwrap_or_default())
            .map(|t| {
                (
                    t["Name"].as_str().unwrap_or("").to_string(),
                    t["Resources"].clone(),
                )
            })
            .collect();
        let cpu: i64 = tasks
            .iter()
            .map(|(_, r)| r["CPU"].as_i64().unwrap_or(100))
            .sum();
        let mem: i64 = tasks
            .iter()
            .map(|(_, r)| r["MemoryMB"].as_i64().unwrap_or(300))
            .sum();
        let res = |cpu: i64, mem: i64, memmax: i64, disk: i64| {
            json!({"CPU": cpu, "Cores": 0, "MemoryMB": mem, "MemoryMaxMB": memmax, "DiskMB": disk,
                   "IOPS": 0, "Networks": null, "Devices": null})
        };
        let mut task_res = Map::new();
        let mut alloc_tasks = Map::new();
        let mut lifecycles = Map::new();
        for (name, r) in &tasks {
            let (c, m) = (
                r["CPU"].as_i64().unwrap_or(100),
                r["MemoryMB"].as_i64().unwrap_or(300),
            );
            task_res.insert(name.clone(), res(c, m, 0, 0));
            alloc_tasks.insert(
                name.clone(),
                json!({"Cpu": {"CpuShares": c, "ReservedCores": null},
                       "Memory": {"MemoryMB": m, "MemoryMaxMB": 0}, "Networks": null, "Devices": null}),
            );
            lifecycles.insert(name.clone(), Value::Null);
        }
        let mut v = json!({
            "ID": self.id, "Namespace": self.namespace, "EvalID": self.eval_id, "Name": self.name,
            "NodeID": self.node_id, "NodeName": self.node_name, "JobID": self.job_id,
            "Job": self.job, "TaskGroup": self.task_group,
            "Resources": res(cpu, mem, mem, 300),
            "SharedResources": res(0, 0, 0, 300),
            "TaskResources": task_res,
            "AllocatedResources": {"Tasks": alloc_tasks, "TaskLifecycles": lifecycles,
                                   "Shared": {"Networks": null, "DiskMB": 300, "Ports": null}},
            "Metrics": {"NodesEvaluated": 1, "NodesFiltered": 0, "NodesAvailable": {node_dc: 1},
                        "ClassFiltered": null, "ConstraintFiltered": null, "NodesExhausted": 0,
                        "ClassExhausted": null, "DimensionExhausted": null, "QuotaExhausted": null,
                        "ResourcesExhausted": null, "Scores": null,
                        "ScoreMetaData": [{"NodeID": self.node_id,
                                           "Scores": {"binpack": 0.04, "job-anti-affinity": 0.0,
                                                      "node-reschedule-penalty": 0.0, "node-affinity": 0.0},
                                           "NormScore": 0.04}],
                        "AllocationTime": 50000, "CoalescedFailures": 0},
            "DesiredStatus": self.desired_status, "DesiredDescription": self.desired_description,
            "DesiredTransition": self.desired_transition(),
            "ClientStatus": self.client_status, "ClientDescription": self.client_description,
            "TaskStates": self.task_states(), "NextAllocation": self.next_allocation,
            "PreviousAllocation": self.previous_allocation, "DeploymentID": self.deployment_id,
            "DeploymentStatus": self.deployment_status,
            "RescheduleTracker": self.reschedule_tracker(),
            "NetworkStatus": {"InterfaceName": "", "Address": "", "DNS": null},
            "FollowupEvalID": self.followup_eval_id,
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
            "AllocModifyIndex": self.alloc_modify_index, "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        });
        // The full allocation omits zero-valued fields (recorded on 1.1.2).
        let obj = v.as_object_mut().expect("object");
        for key in [
            "DesiredDescription",
            "NextAllocation",
            "PreviousAllocation",
            "FollowupEvalID",
            "DeploymentID",
            "DeploymentStatus",
            "RescheduleTracker",
            "TaskStates",
            "ClientDescription",
        ] {
            if is_empty(&obj[key]) {
                obj.remove(key);
            }
        }
        if !self.desired_reschedule {
            obj.remove("DesiredTransition");
        }
        if profile == Profile::Modern {
            obj.insert("NodePool".into(), json!("default"));
        }
        v
    }
}

pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
    }
}

#[derive(Clone, Debug)]
pub struct Eval {
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    pub eval_type: String,
    pub triggered_by: String,
    pub job_id: String,
    pub job_modify_index: u64,
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
    pub wait_until: Option<String>,
    pub next_eval: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub failed_tg_allocs: Option<Value>,
    pub class_eligibility: Option<Value>,
    pub queued_allocations: Option<Value>,
    /// Allocations a blocked eval still has to place (not rendered).
    pub hidden_queued: Option<Value>,
    pub snapshot_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Eval {
    pub fn new(job: &Job, triggered_by: &str, index: u64) -> Eval {
        let now = now_nanos();
        Eval {
            id: new_id(),
            namespace: job.namespace.clone(),
            priority: job.spec["Priority"].as_i64().unwrap_or(50),
            eval_type: job.job_type(),
            triggered_by: triggered_by.to_string(),
            job_id: job.id.clone(),
            job_modify_index: job.job_modify_index,
            deployment_id: job.deployment_id.clone(),
            status: "pending".into(),
            status_description: String::new(),
            wait_until: None,
            next_eval: String::new(),
            previous_eval: String::new(),
            blocked_eval: String::new(),
            failed_tg_allocs: None,
            class_eligibility: None,
            queued_allocations: None,
            hidden_queued: None,
            snapshot_index: index,
            create_index: index,
            modify_index: index,
            create_time: now,
            modify_time: now,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "complete" | "failed" | "canceled")
    }

    /// Evaluations omit empty fields on the wire.
    pub fn render(&self) -> Value {
        let mut v = json!({
            "ID": self.id, "Namespace": self.namespace, "Priority": self.priority,
            "Type": self.eval_type, "TriggeredBy": self.triggered_by, "JobID": self.job_id,
            "JobModifyIndex": self.job_modify_index, "DeploymentID": self.deployment_id,
            "Status": self.status, "StatusDescription": self.status_description,
            "WaitUntil": self.wait_until, "NextEval": self.next_eval,
            "PreviousEval": self.previous_eval, "BlockedEval": self.blocked_eval,
            "FailedTGAllocs": self.failed_tg_allocs, "ClassEligibility": self.class_eligibility,
            "QueuedAllocations": self.queued_allocations, "SnapshotIndex": self.snapshot_index,
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
            "CreateTime": self.create_time, "ModifyTime": self.modify_time,
        });
        let obj = v.as_object_mut().expect("object");
        obj.retain(|k, v| {
            !is_empty(v) || matches!(k.as_str(), "Priority" | "CreateIndex" | "ModifyIndex")
        });
        v
    }
}

#[derive(Clone, Debug)]
pub struct AclToken {
    pub accessor_id: String,
    pub secret_id: String,
    pub name: String,
    pub token_type: String,
    pub policies: Vec<String>,
    pub global: bool,
    pub hash: String,
    pub create_time: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl AclToken {
    pub fn render(&self, profile: Profile) -> Value {
        let mut v = json!({
            "AccessorID": self.accessor_id, "SecretID": self.secret_id, "Name": self.name,
            "Type": self.token_type,
            "Policies": if self.policies.is_empty() { Value::Null } else { json!(self.policies) },
            "Global": self.global, "Hash": self.hash, "CreateTime": self.create_time,
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
        });
        if profile == Profile::Modern {
            v["Roles"] = Value::Null;
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct AclPolicy {
    pub name: String,
    pub description: String,
    pub rules: String,
    pub parsed: super::acl::Rules,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Per-table indexes, as a real state store keeps them.
#[derive(Clone, Debug, Default)]
pub struct TableIndex {
    pub jobs: u64,
    pub allocs: u64,
    pub evals: u64,
    pub nodes: u64,
    pub acl: u64,
    pub namespaces: u64,
}

#[derive(Debug)]
pub struct State {
    pub index: u64,
    pub tables: TableIndex,
    pub jobs: BTreeMap<(String, String), Job>,
    pub allocs: BTreeMap<String, Alloc>,
    pub evals: BTreeMap<String, Eval>,
    pub node_id: String,
    pub node_status: String,
    pub node_create_index: u64,
    pub node_modify_index: u64,
    pub node_update_time: String,
    pub namespaces: Vec<(String, String, u64)>,
    pub acl_bootstrapped: Option<u64>,
    pub tokens: BTreeMap<String, AclToken>,
    pub policies: BTreeMap<String, AclPolicy>,
    /// Driver health as the node reports it (starts from the config; tests may change it).
    pub drivers: BTreeMap<String, DriverHealth>,
    /// While set, placed allocations stay `pending` (their tasks do not start).
    pub starts_paused: bool,
    /// The client nodes besides the first: id, name, CPU offered (MHz).
    pub extra_nodes: Vec<(String, String, u64)>,
}

/// A node as placement sees it.
#[derive(Clone, Debug)]
pub struct PlacementNode {
    pub id: String,
    pub name: String,
    /// CPU (MHz) offered; `u64::MAX` for unlimited.
    pub cpu: u64,
}

impl State {
    pub fn new(config: &Config) -> State {
        let mut namespaces = vec![(
            "default".to_string(),
            "Default shared namespace".to_string(),
            1,
        )];
        for ns in &config.namespaces {
            if ns != "default" {
                namespaces.push((ns.clone(), String::new(), 1));
            }
        }
        State {
            index: 8,
            tables: TableIndex {
                nodes: 8,
                namespaces: 1,
                ..TableIndex::default()
            },
            jobs: BTreeMap::new(),
            allocs: BTreeMap::new(),
            evals: BTreeMap::new(),
            node_id: new_id(),
            node_status: "ready".into(),
            node_create_index: 7,
            node_modify_index: 8,
            node_update_time: now_rfc3339(),
            namespaces,
            acl_bootstrapped: None,
            tokens: BTreeMap::new(),
            policies: BTreeMap::new(),
            drivers: config.drivers.clone(),
            starts_paused: false,
            extra_nodes: config
                .extra_nodes
                .iter()
                .map(|n| (new_id(), n.name.clone(), n.cpu))
                .collect(),
        }
    }

    pub fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    pub fn job(&self, ns: &str, id: &str) -> Option<&Job> {
        self.jobs.get(&(ns.to_string(), id.to_string()))
    }

    pub fn job_allocs(&self, ns: &str, id: &str) -> Vec<&Alloc> {
        self.allocs
            .values()
            .filter(|a| a.namespace == ns && a.job_id == id)
            .collect()
    }

    /// `pending`, `running` or `dead`, computed from allocations and evaluations.
    pub fn job_status(&self, job: &Job) -> &'static str {
        if job.stop {
            return "dead";
        }
        let t = job.job_type();
        if t == "system"
            || !job.spec["Periodic"].is_null()
            || !job.spec["ParameterizedJob"].is_null()
        {
            return "running";
        }
        let allocs: Vec<&Alloc> = self
            .job_allocs(&job.namespace, &job.id)
            .into_iter()
            .filter(|a| a.job_create_index == job.create_index)
            .collect();
        if allocs.iter().any(|a| !a.client_terminal()) {
            return "running";
        }
        let evals_pending = self.evals.values().any(|e| {
            e.namespace == job.namespace
                && e.job_id == job.id
                && e.create_index >= job.create_index
                && !e.is_terminal()
        });
        if evals_pending {
            return "pending";
        }
        if allocs.is_empty() { "pending" } else { "dead" }
    }

    pub fn summary(&self, job: &Job, profile: Profile) -> Value {
        let mut summary = Map::new();
        for g in job.groups() {
            let name = g["Name"].as_str().unwrap_or("").to_string();
            let mut c = [0u64; 7];
            for a in self.job_allocs(&job.namespace, &job.id) {
                if a.task_group != name || a.job_create_index != job.create_index {
                    continue;
                }
                let i = match a.client_status.as_str() {
                    "pending" => 1,
                    "running" => 2,
                    "complete" => 3,
                    "failed" => 4,
                    "lost" => 5,
                    _ => 6,
                };
                c[i] += 1;
            }
            let queued: u64 = self
                .evals
                .values()
                .filter(|e| {
                    e.job_id == job.id
                        && e.namespace == job.namespace
                        && e.status == "blocked"
                        && e.create_index >= job.create_index
                })
                .filter_map(|e| e.hidden_queued.as_ref())
                .filter_map(|q| q[&name].as_u64())
                .max()
                .unwrap_or(0);
            c[0] = queued;
            let mut s = json!({"Queued": c[0], "Complete": c[3], "Failed": c[4], "Running": c[2],
                               "Starting": c[1], "Lost": c[5]});
            if profile == Profile::Modern {
                s["Unknown"] = json!(c[6]);
            }
            summary.insert(name, s);
        }
        let modify = self
            .job_allocs(&job.namespace, &job.id)
            .iter()
            .map(|a| a.modify_index)
            .max()
            .unwrap_or(job.modify_index)
            .max(job.modify_index);
        json!({
            "JobID": job.id, "Namespace": job.namespace, "Summary": summary,
            "Children": {"Pending": 0, "Running": 0, "Dead": 0},
            "CreateIndex": job.create_index, "ModifyIndex": modify,
        })
    }

    pub fn job_full(&self, job: &Job) -> Value {
        let mut v = job.spec.clone();
        v["Stop"] = json!(job.stop);
        v["Status"] = json!(self.job_status(job));
        v["StatusDescription"] = json!("");
        v["Stable"] = json!(false);
        v["Version"] = json!(job.version);
        v["SubmitTime"] = json!(job.submit_time);
        v["CreateIndex"] = json!(job.create_index);
        v["ModifyIndex"] = json!(job.modify_index);
        v["JobModifyIndex"] = json!(job.job_modify_index);
        v
    }

    pub fn job_stub(&self, job: &Job, profile: Profile, with_meta: bool) -> Value {
        let s = &job.spec;
        let mut v = json!({
            "ID": job.id, "ParentID": s["ParentID"], "Name": s["Name"], "Namespace": job.namespace,
            "Datacenters": s["Datacenters"], "Multiregion": null, "Type": s["Type"],
            "Priority": s["Priority"], "Periodic": !s["Periodic"].is_null(),
            "ParameterizedJob": !s["ParameterizedJob"].is_null(), "Stop": job.stop,
            "Status": self.job_status(job), "StatusDescription": "",
            "JobSummary": self.summary(job, profile), "CreateIndex": job.create_index,
            "ModifyIndex": job.modify_index, "JobModifyIndex": job.job_modify_index,
            "SubmitTime": job.submit_time,
        });
        if profile == Profile::Modern {
            v["NodePool"] = json!("default");
            v["Version"] = json!(job.version);
            if with_meta && !is_empty(&s["Meta"]) {
                v["Meta"] = s["Meta"].clone();
            }
        }
        v
    }

    /// Every client node, the first (the agent's own) first.
    pub fn placement_nodes(&self, config: &Config) -> Vec<PlacementNode> {
        let mut nodes = vec![PlacementNode {
            id: self.node_id.clone(),
            name: config.node_name.clone(),
            cpu: config.node_cpu.unwrap_or(u64::MAX),
        }];
        for (id, name, cpu) in &self.extra_nodes {
            nodes.push(PlacementNode {
                id: id.clone(),
                name: name.clone(),
                cpu: *cpu,
            });
        }
        nodes
    }

    /// The stubs of every node, as `/v1/nodes` lists them.
    pub fn node_stubs(&self, config: &Config) -> Vec<Value> {
        let mut out = vec![self.node_stub(config)];
        for (id, name, _) in &self.extra_nodes {
            let mut stub = self.node_stub(config);
            stub["ID"] = json!(id);
            stub["Name"] = json!(name);
            out.push(stub);
        }
        out
    }

    /// One node's stub by id.
    pub fn node_stub_by_id(&self, config: &Config, id: &str) -> Option<Value> {
        self.node_stubs(config)
            .into_iter()
            .find(|n| n["ID"].as_str() == Some(id))
    }

    pub fn driver_usable(&self, name: &str) -> bool {
        self.drivers.get(name) == Some(&DriverHealth::Healthy)
    }

    pub fn node_stub(&self, config: &Config) -> Value {
        let mut drivers = Map::new();
        for (name, health) in &self.drivers {
            let (detected, healthy, desc) = match health {
                DriverHealth::Healthy => (true, true, "Healthy".to_string()),
                DriverHealth::Unhealthy => (true, false, "Unhealthy".to_string()),
                DriverHealth::Undetected if name == "docker" => (
                    false,
                    false,
                    "Failed to connect to docker daemon".to_string(),
                ),
                DriverHealth::Undetected => (false, false, String::new()),
            };
            let attrs = if detected {
                json!({format!("driver.{name}"): "true"})
            } else {
                Value::Null
            };
            drivers.insert(
                name.clone(),
                json!({"Attributes": attrs, "Detected": detected, "Healthy": healthy,
                       "HealthDescription": desc, "UpdateTime": self.node_update_time}),
            );
        }
        let mut v = json!({
            "Address": "127.0.0.1", "ID": self.node_id, "Datacenter": config.datacenter,
            "Name": config.node_name, "NodeClass": "", "Version": config.profile.version(),
            "Drain": false, "SchedulingEligibility": "eligible", "Status": self.node_status,
            "StatusDescription": "", "Drivers": drivers, "HostVolumes": null,
            "NodeResources": null, "ReservedResources": null, "LastDrain": null,
            "CreateIndex": self.node_create_index, "ModifyIndex": self.node_modify_index,
        });
        if config.profile == Profile::Modern {
            v["NodePool"] = json!("default");
        }
        v
    }
}
