//! The server and client halves of the agent: register/deregister, evaluations and placement on
//! the nodes (count, `spread`, `distinct_hosts`, CPU per node), and the allocation runner that starts tasks as real processes, records task
//! events, kills on stop, restarts and reschedules by policy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::Shared;
use super::faults::AllocFailure;
use super::jobspec::{self, RegisterError, get};
use super::process::{self, ProcessInfo, SpawnSpec};
use super::state::{
    Alloc, Eval, Job, TaskState, go_duration, new_id, now_nanos, now_rfc3339, rfc3339, task_event,
};

/// Why an allocation's tasks are being killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    Stop,
    Lost,
}

/// What the client keeps for a running allocation: the kill switch and, per task, the process
/// group and environment exec sessions need.
pub struct AllocRuntime {
    pub kill_tx: watch::Sender<Option<KillReason>>,
    pub tasks: BTreeMap<String, TaskRuntime>,
    pub failure: Option<AllocFailure>,
    pub dir: PathBuf,
}

#[derive(Clone, Debug)]
pub struct TaskRuntime {
    pub pid: i32,
    pub pgid: i32,
    pub env: Vec<(String, String)>,
}

/// An HTTP error: status and bare message.
#[derive(Debug)]
pub struct ApiError(pub u16, pub String);

pub fn register(
    shared: &Arc<Shared>,
    body: &Value,
    query_ns: Option<&str>,
    query_region: Option<&str>,
    path_id: Option<&str>,
) -> Result<Value, ApiError> {
    let job_in = get(body, "Job");
    if job_in.is_null() {
        return Err(ApiError(400, "Job must be specified".into()));
    }
    if let Some(pid) = path_id
        && get(job_in, "ID").as_str() != Some(pid)
    {
        return Err(ApiError(400, "Job ID does not match name".into()));
    }
    let pick = |q: Option<&str>, key: &str| -> Option<String> {
        q.filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| {
                get(body, key)
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .or_else(|| {
                get(job_in, key)
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
    };
    let ns = pick(query_ns, "Namespace").unwrap_or_else(|| "default".into());
    let region = pick(query_region, "Region").unwrap_or_else(|| "global".into());
    if region != "global" && region != shared.config.region {
        return Err(ApiError(500, "No path to region".into()));
    }
    let mut spec = match jobspec::canonicalize(job_in, &shared.config) {
        Ok(s) => s,
        Err(RegisterError::BadRequest(m)) => return Err(ApiError(400, m)),
        Err(RegisterError::Invalid(m)) => return Err(ApiError(500, m)),
    };
    spec["Namespace"] = json!(ns);
    spec["Region"] = json!(shared.config.region);
    let id = spec["ID"].as_str().unwrap_or("").to_string();
    let enforce = get(body, "EnforceIndex").as_bool().unwrap_or(false);
    let want_index = get(body, "JobModifyIndex").as_u64().unwrap_or(0);
    let periodic = !spec["Periodic"].is_null() || !spec["ParameterizedJob"].is_null();
    let (reply, eval_id, replaced) = shared.write(|st| {
        if !st.namespaces.iter().any(|(n, _, _)| *n == ns) {
            return Err(ApiError(500, format!("job \"{id}\" is in nonexistent namespace \"{ns}\"")));
        }
        let existing = st.job(&ns, &id).cloned();
        if enforce {
            match (&existing, want_index) {
                (Some(_), 0) => {
                    return Err(ApiError(500, "Enforcing job modify index 0: job already exists".into()));
                }
                (Some(j), w) if j.job_modify_index != w => {
                    return Err(ApiError(
                        500,
                        format!(
                            "Enforcing job modify index {w}: job exists with conflicting job modify index: {}",
                            j.job_modify_index
                        ),
                    ));
                }
                (None, w) if w != 0 => {
                    return Err(ApiError(500, format!("Enforcing job modify index {w}: job not found")));
                }
                _ => {}
            }
        }
        let index = st.bump();
        let job = Job {
            namespace: ns.clone(),
            id: id.clone(),
            spec: spec.clone(),
            stop: false,
            version: existing.as_ref().map(|j| j.version + 1).unwrap_or(0),
            submit_time: now_nanos(),
            create_index: existing.as_ref().map(|j| j.create_index).unwrap_or(index),
            modify_index: index,
            job_modify_index: index,
            deployment_id: if spec["Type"] == "service" { new_id() } else { String::new() },
        };
        let mut replaced = Vec::new();
        for a in st.allocs.values_mut() {
            if a.namespace == ns && a.job_id == id && !a.client_terminal() && a.desired_status == "run" {
                a.desired_status = "stop".into();
                a.desired_description = "alloc not needed due to job update".into();
                a.modify_index = index;
                replaced.push(a.id.clone());
            }
        }
        let mut eval_id = String::new();
        if !periodic {
            let eval = Eval::new(&job, "job-register", index);
            eval_id = eval.id.clone();
            st.evals.insert(eval.id.clone(), eval);
            st.tables.evals = index;
        }
        st.jobs.insert((ns.clone(), id.clone()), job);
        st.tables.jobs = index;
        if !replaced.is_empty() {
            st.tables.allocs = index;
        }
        let reply = json!({
            "EvalID": eval_id, "EvalCreateIndex": if periodic { 0 } else { index },
            "JobModifyIndex": index, "Warnings": "", "Index": index, "LastContact": 0,
            "KnownLeader": false,
        });
        let mut reply = reply;
        if !shared.config.profile.is_v1_1() {
            reply["NextToken"] = json!("");
        }
        Ok((reply, eval_id, replaced))
    })?;
    for a in replaced {
        shared.kill_alloc(&a, KillReason::Stop);
    }
    if !eval_id.is_empty() {
        let s = shared.clone();
        shared.spawn(async move { process_eval(s, eval_id).await });
    }
    Ok(reply)
}

pub fn deregister(shared: &Arc<Shared>, ns: &str, id: &str, purge: bool) -> Value {
    let modern = !shared.config.profile.is_v1_1();
    let (reply, stopped, eval_id) = shared.write(|st| {
        let index = st.bump();
        let Some(mut job) = st.job(ns, id).cloned() else {
            if modern {
                return (
                    json!({"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "VolumeEvalID": "",
                           "VolumeEvalIndex": 0, "Index": index, "LastContact": 0, "KnownLeader": false}),
                    Vec::new(),
                    String::new(),
                );
            }
            let ghost = Job {
                namespace: ns.to_string(),
                id: id.to_string(),
                spec: json!({"Type": "service", "Priority": 50}),
                stop: true,
                version: 0,
                submit_time: 0,
                create_index: index,
                modify_index: index,
                job_modify_index: index,
                deployment_id: String::new(),
            };
            let mut eval = Eval::new(&ghost, "job-deregister", index);
            let id = eval.id.clone();
            eval.status = "complete".into();
            eval.modify_index = index;
            st.evals.insert(id.clone(), eval);
            st.tables.evals = index;
            let reply = json!({"EvalID": id, "EvalCreateIndex": index, "JobModifyIndex": index,
                               "VolumeEvalID": "", "VolumeEvalIndex": 0, "Index": index,
                               "LastContact": 0, "KnownLeader": false});
            return (reply, Vec::new(), String::new());
        };
        job.job_modify_index = index;
        job.modify_index = index;
        if purge {
            st.jobs.remove(&(ns.to_string(), id.to_string()));
        } else {
            job.stop = true;
            job.version += 1;
            st.jobs.insert((ns.to_string(), id.to_string()), job.clone());
        }
        st.tables.jobs = index;
        let mut stopped = Vec::new();
        for a in st.allocs.values_mut() {
            if a.namespace == ns && a.job_id == id && !a.client_terminal() && a.desired_status == "run" {
                a.desired_status = "stop".into();
                a.desired_description = "alloc not needed due to job update".into();
                a.modify_index = index;
                stopped.push(a.id.clone());
            }
        }
        for e in st.evals.values_mut() {
            if e.namespace == ns && e.job_id == id && !e.is_terminal() {
                e.status = "canceled".into();
                e.modify_index = index;
            }
        }
        st.tables.allocs = index;
        let mut eval = Eval::new(&job, "job-deregister", index);
        eval.job_modify_index = index;
        let queued: serde_json::Map<String, Value> =
            job.groups().iter().filter_map(|g| g["Name"].as_str()).map(|n| (n.to_string(), json!(0))).collect();
        eval.queued_allocations = Some(Value::Object(queued));
        let eval_id = eval.id.clone();
        st.evals.insert(eval_id.clone(), eval);
        st.tables.evals = index;
        let reply = json!({"EvalID": eval_id, "EvalCreateIndex": index, "JobModifyIndex": index,
                           "VolumeEvalID": "", "VolumeEvalIndex": 0, "Index": index,
                           "LastContact": 0, "KnownLeader": false});
        (reply, stopped, eval_id)
    });
    for a in &stopped {
        shared.kill_alloc(a, KillReason::Stop);
    }
    if !eval_id.is_empty() {
        let s = shared.clone();
        shared.spawn(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            s.write(|st| {
                let idx = st.bump();
                if let Some(e) = st.evals.get_mut(&eval_id) {
                    e.status = "complete".into();
                    e.modify_index = idx;
                    e.modify_time = now_nanos();
                    st.tables.evals = idx;
                }
            });
        });
    }
    reply
}

fn failure_metric(evaluated: u64, filtered: u64, dcs: &Value, constraint: Option<&str>) -> Value {
    json!({
        "NodesEvaluated": evaluated, "NodesFiltered": filtered, "NodesAvailable": dcs,
        "ClassFiltered": null,
        "ConstraintFiltered": constraint.map(|c| json!({c: 1})),
        "NodesExhausted": 0, "ClassExhausted": null, "DimensionExhausted": null,
        "QuotaExhausted": null, "ResourcesExhausted": null, "Scores": null,
        "ScoreMetaData": null, "AllocationTime": 30000, "CoalescedFailures": 0,
    })
}

/// Places a job-register evaluation: allocations, or `FailedTGAllocs` plus a blocked eval.
pub async fn process_eval(shared: Arc<Shared>, eval_id: String) {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let config = shared.config.clone();
    let placed = shared.write(|st| {
        let Some(eval) = st.evals.get(&eval_id).cloned() else {
            return Vec::new();
        };
        if eval.status != "pending" {
            return Vec::new();
        }
        let job = st.job(&eval.namespace, &eval.job_id).cloned();
        let index = st.bump();
        let mut e = eval.clone();
        e.status = "complete".into();
        e.modify_index = index;
        e.modify_time = now_nanos();
        e.snapshot_index = index;
        let Some(job) = job.filter(|j| !j.stop) else {
            st.evals.insert(e.id.clone(), e);
            st.tables.evals = index;
            return Vec::new();
        };
        let mut failed = serde_json::Map::new();
        let mut queued = serde_json::Map::new();
        let mut placed = Vec::new();
        let node_dc = config.datacenter.clone();
        let dcs: Vec<String> = job.spec["Datacenters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .map(str::to_string)
            .collect();
        let dc_ok = dcs
            .iter()
            .any(|d| *d == node_dc || (!config.profile.is_v1_1() && d == "*"));
        let forced = {
            let f = shared.faults.lock().unwrap();
            f.unplaceable
                .iter()
                .find(|(j, _)| j == "*" || *j == job.id)
                .map(|(_, r)| r.clone())
        };
        let deployment_id = job.deployment_id.clone();
        for g in job.groups() {
            let gname = g["Name"].as_str().unwrap_or("").to_string();
            let count = g["Count"].as_u64().unwrap_or(1);
            let drivers_ok = g["Tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|t| st.driver_usable(t["Driver"].as_str().unwrap_or("")));
            let failure = if st.node_status != "ready" || !dc_ok {
                let avail: serde_json::Map<String, Value> =
                    dcs.iter().map(|d| (d.clone(), json!(0))).collect();
                Some(failure_metric(0, 0, &Value::Object(avail), None))
            } else if let Some(reason) = &forced {
                Some(failure_metric(
                    1,
                    1,
                    &json!({node_dc.clone(): 1}),
                    Some(reason),
                ))
            } else if !drivers_ok {
                Some(failure_metric(
                    1,
                    1,
                    &json!({node_dc.clone(): 1}),
                    Some("missing drivers"),
                ))
            } else {
                None
            };
            if let Some(metric) = failure {
                failed.insert(gname.clone(), metric);
                queued.insert(gname.clone(), json!(count));
                continue;
            }
            queued.insert(gname.clone(), json!(0));
            // Placement over every node: a node takes a box while it has the CPU the group
            // asks for; `distinct_hosts` allows one box of the job a node; a `spread` picks
            // the node with the fewest of the job's boxes, else it bin-packs (the busiest
            // node that fits), as Nomad's default scoring does.
            let nodes = st.placement_nodes(&config);
            let ask = group_cpu(&g);
            let spread = g["Spreads"].as_array().is_some_and(|s| !s.is_empty());
            let distinct = has_distinct_hosts(&g["Constraints"])
                || has_distinct_hosts(&job.spec["Constraints"]);
            let live = |a: &Alloc| !a.client_terminal() && a.desired_status == "run";
            let mut used: Vec<u64> = nodes
                .iter()
                .map(|n| {
                    st.allocs
                        .values()
                        .filter(|a| a.node_id == n.id && live(a))
                        .map(alloc_cpu)
                        .sum()
                })
                .collect();
            let mut mine: Vec<u64> = nodes
                .iter()
                .map(|n| {
                    st.allocs
                        .values()
                        .filter(|a| {
                            a.node_id == n.id
                                && a.job_id == job.id
                                && a.namespace == job.namespace
                                && live(a)
                        })
                        .count() as u64
                })
                .collect();
            let mut unplaced = (0u64, 0u64, 0u64);
            for i in 0..count {
                let (mut exhausted, mut filtered) = (0u64, 0u64);
                let mut best: Option<usize> = None;
                for (k, n) in nodes.iter().enumerate() {
                    if distinct && mine[k] > 0 {
                        filtered += 1;
                        continue;
                    }
                    if n.cpu.saturating_sub(used[k]) < ask {
                        exhausted += 1;
                        continue;
                    }
                    best = Some(match best {
                        None => k,
                        Some(b) if spread && mine[k] < mine[b] => k,
                        Some(b) if !spread && used[k] > used[b] => k,
                        Some(b) => b,
                    });
                }
                let Some(k) = best else {
                    unplaced = (count - i, exhausted, filtered);
                    break;
                };
                used[k] = used[k].saturating_add(ask);
                mine[k] += 1;
                let node = &nodes[k];
                let aidx = st.bump();
                let now = now_nanos();
                let alloc = Alloc {
                    id: new_id(),
                    eval_id: e.id.clone(),
                    name: format!("{}.{}[{}]", job.id, gname, i),
                    namespace: job.namespace.clone(),
                    node_id: node.id.clone(),
                    node_name: node.name.clone(),
                    job_id: job.id.clone(),
                    job: st.job_full(&job),
                    job_type: job.job_type(),
                    job_version: job.version,
                    job_create_index: job.create_index,
                    task_group: gname.clone(),
                    desired_status: "run".into(),
                    desired_description: String::new(),
                    client_status: "pending".into(),
                    client_description: String::new(),
                    desired_reschedule: false,
                    task_states: BTreeMap::new(),
                    followup_eval_id: String::new(),
                    next_allocation: String::new(),
                    previous_allocation: String::new(),
                    reschedule_events: Vec::new(),
                    deployment_id: deployment_id.clone(),
                    deployment_status: None,
                    create_index: aidx,
                    modify_index: aidx,
                    alloc_modify_index: aidx,
                    create_time: now,
                    modify_time: now,
                };
                placed.push(alloc.id.clone());
                st.allocs.insert(alloc.id.clone(), alloc);
                st.tables.allocs = aidx;
            }
            let (left, exhausted, filtered) = unplaced;
            if left > 0 {
                let nodes_json: serde_json::Map<String, Value> =
                    [(node_dc.clone(), json!(nodes.len()))].into_iter().collect();
                failed.insert(
                    gname.clone(),
                    json!({
                        "NodesEvaluated": nodes.len(), "NodesFiltered": filtered,
                        "NodesAvailable": nodes_json, "ClassFiltered": null,
                        "ConstraintFiltered": if filtered > 0 { json!({"distinct_hosts": filtered}) } else { Value::Null },
                        "NodesExhausted": exhausted, "ClassExhausted": null,
                        "DimensionExhausted": if exhausted > 0 { json!({"cpu": exhausted}) } else { Value::Null },
                        "QuotaExhausted": null, "ResourcesExhausted": null, "Scores": null,
                        "ScoreMetaData": null, "AllocationTime": 30000, "CoalescedFailures": left - 1,
                    }),
                );
                queued.insert(gname.clone(), json!(left));
            }
        }
        e.queued_allocations = Some(Value::Object(queued.clone()));
        if !failed.is_empty() {
            let bidx = st.bump();
            let mut blocked = Eval::new(&job, "queued-allocs", bidx);
            blocked.status = "blocked".into();
            blocked.status_description = "created to place remaining allocations".into();
            blocked.previous_eval = e.id.clone();
            blocked.failed_tg_allocs = Some(Value::Object(failed.clone()));
            blocked.class_eligibility = Some(json!({"v1:1780303234482869971": false}));
            blocked.hidden_queued = Some(Value::Object(queued));
            blocked.job_modify_index = job.job_modify_index;
            blocked.deployment_id = String::new();
            e.blocked_eval = blocked.id.clone();
            e.failed_tg_allocs = Some(Value::Object(failed));
            st.evals.insert(blocked.id.clone(), blocked);
        }
        e.job_modify_index = job.job_modify_index;
        st.evals.insert(e.id.clone(), e);
        st.tables.evals = st.index;
        placed
    });
    for id in placed {
        shared.start_alloc(id);
    }
}

/// The CPU (MHz) one allocation of group `g` asks for: its tasks' together.
fn group_cpu(g: &Value) -> u64 {
    g["Tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["Resources"]["CPU"].as_u64().unwrap_or(100))
        .sum()
}

/// The CPU an allocation holds on its node.
fn alloc_cpu(a: &Alloc) -> u64 {
    a.job["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["Name"].as_str() == Some(a.task_group.as_str()))
        .map_or(100, group_cpu)
}

fn has_distinct_hosts(constraints: &Value) -> bool {
    constraints
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["Operand"].as_str() == Some("distinct_hosts"))
}

fn driver_command(task: &Value) -> (String, Vec<String>) {
    let cfg = get(task, "Config");
    let args: Vec<String> = get(cfg, "args")
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| a.to_string())
        })
        .collect();
    match get(cfg, "command").as_str() {
        Some(c) => (c.to_string(), args),
        None if task["Driver"] == "raw_exec" || task["Driver"] == "exec" => (String::new(), args),
        None => (
            "/bin/sh".into(),
            vec!["-c".into(), "while :; do sleep 3600; done".into()],
        ),
    }
}

fn task_env(
    shared: &Shared,
    alloc: &Alloc,
    task: &Value,
    dir: &std::path::Path,
) -> Vec<(String, String)> {
    let tname = task["Name"].as_str().unwrap_or("");
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for key in ["PATH", "HOME", "USER", "LANG", "TMPDIR"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.into(), v);
        }
    }
    let idx = alloc
        .name
        .rsplit('[')
        .next()
        .unwrap_or("0]")
        .trim_end_matches(']')
        .to_string();
    let pairs = [
        ("NOMAD_ALLOC_DIR", dir.join("alloc").display().to_string()),
        (
            "NOMAD_TASK_DIR",
            dir.join(tname).join("local").display().to_string(),
        ),
        (
            "NOMAD_SECRETS_DIR",
            dir.join(tname).join("secrets").display().to_string(),
        ),
        ("NOMAD_ALLOC_ID", alloc.id.clone()),
        ("NOMAD_SHORT_ALLOC_ID", alloc.id[..8].to_string()),
        ("NOMAD_ALLOC_NAME", alloc.name.clone()),
        ("NOMAD_ALLOC_INDEX", idx),
        (
            "NOMAD_JOB_NAME",
            alloc.job["Name"]
                .as_str()
                .unwrap_or(&alloc.job_id)
                .to_string(),
        ),
        ("NOMAD_JOB_ID", alloc.job_id.clone()),
        ("NOMAD_TASK_NAME", tname.to_string()),
        ("NOMAD_GROUP_NAME", alloc.task_group.clone()),
        ("NOMAD_NAMESPACE", alloc.namespace.clone()),
        ("NOMAD_REGION", shared.config.region.clone()),
        ("NOMAD_DC", shared.config.datacenter.clone()),
        ("NOMAD_NODE_ID", alloc.node_id.clone()),
        ("NOMAD_NODE_NAME", alloc.node_name.clone()),
        ("NOMAD_CPU_LIMIT", task["Resources"]["CPU"].to_string()),
        (
            "NOMAD_MEMORY_LIMIT",
            task["Resources"]["MemoryMB"].to_string(),
        ),
    ];
    for (k, v) in pairs {
        env.insert(k.to_string(), v);
    }
    for meta in [&alloc.job["Meta"], &task["Meta"]] {
        if let Some(m) = meta.as_object() {
            for (k, v) in m {
                let key = format!("NOMAD_META_{}", k.replace(['-', '.'], "_"));
                env.insert(key, v.as_str().unwrap_or("").to_string());
            }
        }
    }
    if let Some(m) = task["Env"].as_object() {
        for (k, v) in m {
            env.insert(
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    env.into_iter().collect()
}

fn push_event(
    shared: &Shared,
    alloc_id: &str,
    task: &str,
    event: Value,
    update: impl FnOnce(&mut TaskState, &mut Alloc),
) {
    shared.write(|st| {
        let idx = st.bump();
        if let Some(a) = st.allocs.get_mut(alloc_id) {
            let mut ts = a.task_states.remove(task).unwrap_or_default();
            ts.events.push(event);
            update(&mut ts, a);
            a.task_states.insert(task.to_string(), ts);
            a.modify_index = idx;
            a.modify_time = now_nanos();
            st.tables.allocs = idx;
        }
    });
}

enum TaskEnd {
    Exited { failed: bool },
    Killed,
}

/// Runs every task of an allocation, then settles its client status and any reschedule.
pub async fn run_alloc(
    shared: Arc<Shared>,
    alloc_id: String,
    mut kill_rx: watch::Receiver<Option<KillReason>>,
) {
    tokio::time::sleep(shared.config.timings.alloc_start_delay).await;
    // Paused starts: stay pending until released or stopped.
    let mut index_rx = shared.index_tx.subscribe();
    while shared.read(|st| st.starts_paused) && kill_rx.borrow().is_none() {
        tokio::select! {
            _ = index_rx.changed() => {}
            _ = kill_rx.changed() => {}
        }
    }
    let Some(alloc) = shared.read(|st| st.allocs.get(&alloc_id).cloned()) else {
        return;
    };
    let group = alloc.job["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["Name"] == alloc.task_group)
        .cloned()
        .unwrap_or(Value::Null);
    let tasks: Vec<Value> = group["Tasks"].as_array().cloned().unwrap_or_default();
    let dir = shared.runtime_dir(&alloc_id);
    let _ = std::fs::create_dir_all(dir.join("alloc"));
    let mut handles = Vec::new();
    for task in tasks {
        let s = shared.clone();
        let a = alloc.clone();
        let g = group.clone();
        let rx = kill_rx.clone();
        let d = dir.clone();
        handles.push(tokio::spawn(
            async move { run_task(s, a, g, task, rx, d).await },
        ));
    }
    let mut any_failed = false;
    let mut killed = false;
    for h in handles {
        match h.await {
            Ok(TaskEnd::Exited { failed }) => any_failed |= failed,
            Ok(TaskEnd::Killed) => killed = true,
            Err(_) => any_failed = true,
        }
    }
    let lost = *kill_rx.borrow_and_update() == Some(KillReason::Lost);
    let forced = shared
        .runtimes
        .lock()
        .unwrap()
        .get(&alloc_id)
        .and_then(|r| r.failure);
    let resched = shared.write(|st| {
        let idx = st.bump();
        let a = st.allocs.get_mut(&alloc_id)?;
        if !lost {
            if any_failed {
                a.client_status = "failed".into();
                a.client_description = "Failed tasks".into();
            } else {
                a.client_status = "complete".into();
                a.client_description = "All tasks have completed".into();
            }
        }
        if a.job_type == "service" {
            a.deployment_status =
                Some(json!({"Healthy": false, "Timestamp": now_rfc3339(), "Canary": false, "ModifyIndex": idx}));
        }
        a.modify_index = idx;
        a.modify_time = now_nanos();
        st.tables.allocs = idx;
        if !any_failed || killed || lost || a.desired_status != "run" {
            return None;
        }
        let policy = group["ReschedulePolicy"].clone();
        // A failed allocation is marked for rescheduling even when no attempt is left.
        if !policy.is_null() || forced.is_some() {
            a.desired_reschedule = true;
        }
        let done = a.reschedule_events.len() as i64;
        let allowed = forced == Some(AllocFailure::FailAndReplace)
            || (!policy.is_null()
                && (policy["Unlimited"].as_bool().unwrap_or(false)
                    || done < policy["Attempts"].as_i64().unwrap_or(0)));
        if !allowed {
            return None;
        }
        let base = policy["Delay"].as_i64().filter(|d| *d > 0).unwrap_or(30_000_000_000);
        let delay = match policy["DelayFunction"].as_str() {
            Some("constant") => base,
            _ => {
                let max = policy["MaxDelay"].as_i64().filter(|m| *m > 0).unwrap_or(i64::MAX);
                base.saturating_mul(1 << done.min(20)).min(max)
            }
        };
        let wait = shared
            .config
            .timings
            .reschedule_delay
            .unwrap_or(Duration::from_nanos(delay as u64));
        let (ns, jid, prev_eval) = (a.namespace.clone(), a.job_id.clone(), a.eval_id.clone());
        let job = st.job(&ns, &jid).cloned()?;
        let eidx = st.bump();
        let mut e = Eval::new(&job, "alloc-failure", eidx);
        e.previous_eval = prev_eval;
        e.wait_until = Some(rfc3339(now_nanos() + wait.as_nanos() as i64));
        e.job_modify_index = job.job_modify_index;
        let a = st.allocs.get_mut(&alloc_id)?;
        a.followup_eval_id = e.id.clone();
        a.desired_reschedule = true;
        a.modify_index = eidx;
        let eval_id = e.id.clone();
        st.evals.insert(eval_id.clone(), e);
        st.tables.evals = eidx;
        st.tables.allocs = eidx;
        Some((eval_id, wait, delay))
    });
    if let Some((eval_id, wait, delay)) = resched {
        tokio::time::sleep(wait).await;
        reschedule(&shared, &alloc_id, &eval_id, delay);
    }
}

fn reschedule(shared: &Arc<Shared>, old_id: &str, eval_id: &str, delay: i64) {
    let new_id_opt = shared.write(|st| {
        let idx = st.bump();
        let old = st.allocs.get(old_id).cloned()?;
        let job = st.job(&old.namespace, &old.job_id).cloned();
        let Some(job) = job.filter(|j| !j.stop && j.create_index == old.job_create_index) else {
            if let Some(e) = st.evals.get_mut(eval_id) {
                e.status = "canceled".into();
                e.modify_index = idx;
            }
            return None;
        };
        let now = now_nanos();
        let mut events = old.reschedule_events.clone();
        events.push(json!({"RescheduleTime": now, "PrevAllocID": old.id, "PrevNodeID": old.node_id, "Delay": delay}));
        let new = Alloc {
            id: new_id(),
            eval_id: eval_id.to_string(),
            client_status: "pending".into(),
            client_description: String::new(),
            desired_status: "run".into(),
            desired_description: String::new(),
            desired_reschedule: false,
            task_states: BTreeMap::new(),
            followup_eval_id: String::new(),
            next_allocation: String::new(),
            previous_allocation: old.id.clone(),
            reschedule_events: events,
            deployment_status: None,
            job: st.job_full(&job),
            job_version: job.version,
            create_index: idx,
            modify_index: idx,
            alloc_modify_index: idx,
            create_time: now,
            modify_time: now,
            ..old.clone()
        };
        let new_id = new.id.clone();
        st.allocs.insert(new_id.clone(), new);
        let o = st.allocs.get_mut(old_id)?;
        o.desired_status = "stop".into();
        o.desired_description = "alloc was rescheduled because it failed".into();
        o.next_allocation = new_id.clone();
        o.modify_index = idx;
        o.modify_time = now;
        if let Some(e) = st.evals.get_mut(eval_id) {
            e.status = "complete".into();
            e.modify_index = idx;
            e.modify_time = now;
            e.queued_allocations = Some(json!({old.task_group.clone(): 0}));
        }
        st.tables.allocs = idx;
        st.tables.evals = idx;
        Some(new_id)
    });
    if let Some(id) = new_id_opt {
        shared.start_alloc(id);
    }
}

async fn run_task(
    shared: Arc<Shared>,
    alloc: Alloc,
    group: Value,
    task: Value,
    mut kill_rx: watch::Receiver<Option<KillReason>>,
    dir: PathBuf,
) -> TaskEnd {
    let tname = task["Name"].as_str().unwrap_or("").to_string();
    let aid = alloc.id.clone();
    push_event(
        &shared,
        &aid,
        &tname,
        task_event("Received", "Task received by client", "", json!({})),
        |ts, _| {
            ts.state = "pending".into();
        },
    );
    let setup = json!({"message": "Building Task Directory"});
    push_event(
        &shared,
        &aid,
        &tname,
        task_event(
            "Task Setup",
            "Building Task Directory",
            "Building Task Directory",
            setup,
        ),
        |_, _| {},
    );
    for sub in ["local", "secrets", "tmp"] {
        let _ = std::fs::create_dir_all(dir.join(&tname).join(sub));
    }
    let env = task_env(&shared, &alloc, &task, &dir);
    let failure = shared
        .runtimes
        .lock()
        .unwrap()
        .get(&aid)
        .and_then(|r| r.failure);
    let (program, args) = if failure.is_some() {
        (
            "/bin/sh".to_string(),
            vec!["-c".to_string(), "exit 1".to_string()],
        )
    } else {
        driver_command(&task)
    };
    let restart = &group["RestartPolicy"];
    let attempts = restart["Attempts"].as_u64().unwrap_or(0);
    let kill_timeout_ns = task["KillTimeout"].as_i64().unwrap_or(5_000_000_000);
    let kill_wait = shared
        .config
        .timings
        .kill_timeout
        .unwrap_or(Duration::from_nanos(kill_timeout_ns as u64));
    let mut restarts = 0u64;
    loop {
        if kill_rx.borrow_and_update().is_some() {
            push_event(
                &shared,
                &aid,
                &tname,
                task_event("Killed", "Task successfully killed", "", json!({})),
                |ts, _| {
                    ts.state = "dead".into();
                    ts.finished_at = Some(now_rfc3339());
                },
            );
            return TaskEnd::Killed;
        }
        let spawned = if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return TaskEnd::Killed;
        } else if program.is_empty() {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "missing command",
            ))
        } else {
            process::spawn(&SpawnSpec {
                program: &program,
                args: &args,
                env: &env,
                cwd: &dir.join(&tname),
                group: None,
                ignore_sigint: shared.config.tasks_ignore_sigint,
                pipes: false,
            })
        };
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let msg = if program.is_empty() {
                    "failed to launch command with executor: rpc error: code = Unknown desc = missing command".to_string()
                } else {
                    format!(
                        "failed to launch command with executor: rpc error: code = Unknown desc = failed to start command: fork/exec {program}: {}",
                        go_errno_text(&e)
                    )
                };
                let mut ev = task_event("Driver Failure", &msg, "", json!({"driver_error": msg}));
                ev["DriverError"] = json!(msg);
                ev["FailsTask"] = json!(true);
                push_event(&shared, &aid, &tname, ev, |ts, _| {
                    ts.state = "dead".into();
                    ts.failed = true;
                    ts.finished_at = Some(now_rfc3339());
                });
                return TaskEnd::Exited { failed: true };
            }
        };
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        shared.procs.add(ProcessInfo {
            pid,
            pgid: pid,
            alloc_id: aid.clone(),
            task: tname.clone(),
            kind: "task".into(),
        });
        if let Some(rt) = shared.runtimes.lock().unwrap().get_mut(&aid) {
            rt.tasks.insert(
                tname.clone(),
                TaskRuntime {
                    pid,
                    pgid: pid,
                    env: env.clone(),
                },
            );
        }
        push_event(
            &shared,
            &aid,
            &tname,
            task_event("Started", "Task started by client", "", json!({})),
            |ts, a| {
                ts.state = "running".into();
                ts.started_at = Some(now_rfc3339());
                ts.finished_at = None;
                if a.client_status == "pending" {
                    a.client_status = "running".into();
                    a.client_description = "Tasks are running".into();
                }
            },
        );
        let outcome = tokio::select! {
            status = child.wait() => Ok(status),
            _ = kill_rx.wait_for(|k| k.is_some()) => Err(()),
        };
        match outcome {
            Ok(status) => {
                process::kill_group(pid, libc::SIGKILL);
                process::kill_alloc_processes(&aid);
                let (code, sig) = status.map(process::exit_of).unwrap_or((-1, 0));
                push_event(
                    &shared,
                    &aid,
                    &tname,
                    terminated_event(code, sig),
                    |_, _| {},
                );
                let service = alloc.job_type == "service";
                if (code != 0 || service) && restarts < attempts {
                    restarts += 1;
                    let delay_ns = restart["Delay"].as_i64().unwrap_or(15_000_000_000);
                    let wait = shared
                        .config
                        .timings
                        .restart_delay
                        .unwrap_or(Duration::from_nanos(delay_ns as u64));
                    let mut ev = task_event(
                        "Restarting",
                        &format!("Task restarting in {}", go_duration(delay_ns)),
                        "",
                        json!({"restart_reason": "Restart within policy", "start_delay": delay_ns.to_string()}),
                    );
                    ev["RestartReason"] = json!("Restart within policy");
                    ev["StartDelay"] = json!(delay_ns);
                    push_event(&shared, &aid, &tname, ev, |ts, _| {
                        ts.state = "pending".into();
                        ts.restarts += 1;
                        ts.last_restart = Some(now_rfc3339());
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = kill_rx.wait_for(|k| k.is_some()) => {}
                    }
                    continue;
                }
                let failed = code != 0;
                if failed {
                    let reason = if attempts == 0 {
                        "Policy allows no restarts".to_string()
                    } else {
                        format!(
                            "Exceeded allowed attempts {attempts} in interval {} and mode is \"fail\"",
                            go_duration(restart["Interval"].as_i64().unwrap_or(0))
                        )
                    };
                    let mut ev = task_event(
                        "Not Restarting",
                        &reason,
                        "",
                        json!({"restart_reason": reason, "fails_task": "true"}),
                    );
                    ev["FailsTask"] = json!(true);
                    ev["RestartReason"] = json!(reason);
                    push_event(&shared, &aid, &tname, ev, |_, _| {});
                }
                let finish = |ts: &mut TaskState, _: &mut Alloc| {
                    ts.state = "dead".into();
                    ts.failed = failed;
                    ts.finished_at = Some(now_rfc3339());
                };
                if failed {
                    let ev = task_event(
                        "Alloc Unhealthy",
                        "Unhealthy because of failed task",
                        "Unhealthy because of failed task",
                        json!({"message": "Unhealthy because of failed task"}),
                    );
                    push_event(&shared, &aid, &tname, ev, finish);
                } else {
                    shared.write(|st| {
                        let idx = st.bump();
                        if let Some(a) = st.allocs.get_mut(&aid) {
                            if let Some(ts) = a.task_states.get_mut(&tname) {
                                ts.state = "dead".into();
                                ts.finished_at = Some(now_rfc3339());
                            }
                            a.modify_index = idx;
                            st.tables.allocs = idx;
                        }
                    });
                }
                return TaskEnd::Exited { failed };
            }
            Err(()) => {
                let kt = go_duration(kill_timeout_ns);
                let mut ev = task_event(
                    "Killing",
                    &format!("Sent interrupt. Waiting {kt} before force killing"),
                    "",
                    json!({"kill_timeout": kt}),
                );
                ev["KillTimeout"] = json!(kill_timeout_ns);
                push_event(&shared, &aid, &tname, ev, |_, _| {});
                process::signal(pid, libc::SIGINT);
                let status = match tokio::time::timeout(kill_wait, child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        process::kill_group(pid, libc::SIGKILL);
                        child.wait().await
                    }
                };
                process::kill_group(pid, libc::SIGKILL);
                process::kill_alloc_processes(&aid);
                let (code, sig) = status.map(process::exit_of).unwrap_or((-1, 0));
                push_event(
                    &shared,
                    &aid,
                    &tname,
                    terminated_event(code, sig),
                    |_, _| {},
                );
                push_event(
                    &shared,
                    &aid,
                    &tname,
                    task_event("Killed", "Task successfully killed", "", json!({})),
                    |ts, _| {
                        ts.state = "dead".into();
                        ts.failed = false;
                        ts.finished_at = Some(now_rfc3339());
                    },
                );
                return TaskEnd::Killed;
            }
        }
    }
}

fn terminated_event(code: i64, sig: i64) -> Value {
    let display = if sig != 0 {
        format!("Exit Code: {code}, Signal: {sig}")
    } else {
        format!("Exit Code: {code}")
    };
    let mut ev = task_event(
        "Terminated",
        &display,
        "",
        json!({"exit_code": code.to_string(), "signal": sig.to_string(), "oom_killed": "false"}),
    );
    ev["ExitCode"] = json!(code);
    ev["Signal"] = json!(sig);
    ev
}

/// Go's text for the common spawn errors.
pub fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        Some(libc::ENOEXEC) => "exec format error".into(),
        _ => e.to_string(),
    }
}

/// Marks the node down: every live allocation is lost and its tasks are killed.
pub fn lose_node(shared: &Arc<Shared>) {
    let lost = shared.write(|st| {
        let idx = st.bump();
        st.node_status = "down".into();
        st.node_modify_index = idx;
        st.tables.nodes = idx;
        let mut lost = Vec::new();
        for a in st.allocs.values_mut() {
            if !a.client_terminal() {
                a.client_status = "lost".into();
                a.client_description = "alloc is lost since its node is down".into();
                a.desired_status = "stop".into();
                a.desired_description = "alloc is lost since its node is down".into();
                a.modify_index = idx;
                lost.push(a.id.clone());
            }
        }
        st.tables.allocs = idx;
        lost
    });
    for a in lost {
        shared.kill_alloc(&a, KillReason::Lost);
    }
}
