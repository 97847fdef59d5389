//! Agent-side job handling: case-insensitive field lookup (Go `encoding/json`), the defaults
//! the agent fills in, and the validation errors it returns as go-multierror text.

use serde_json::{Map, Value, json};

use super::config::{Config, Profile};

const SEC: i64 = 1_000_000_000;

/// Looks a field up the way Go's `encoding/json` does: exact name first, then any case.
pub fn get<'a>(obj: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    let Some(map) = obj.as_object() else {
        return &NULL;
    };
    if let Some(v) = map.get(key) {
        return v;
    }
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .unwrap_or(&NULL)
}

fn str_or(v: &Value, d: &str) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| d.to_string())
}

fn i64_or(v: &Value, d: i64) -> i64 {
    v.as_i64().unwrap_or(d)
}

fn bool_or(v: &Value, d: bool) -> bool {
    v.as_bool().unwrap_or(d)
}

fn string_map(v: &Value) -> Value {
    match v.as_object() {
        Some(m) if !m.is_empty() => Value::Object(m.clone()),
        _ => Value::Null,
    }
}

/// go-multierror's text: `1 error occurred:\n\t* x\n\n`.
pub fn multierror(errors: &[String]) -> String {
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    if errors.len() == 1 {
        format!("1 error occurred:\n\t{}\n\n", points[0])
    } else {
        format!(
            "{} errors occurred:\n\t{}\n\n",
            errors.len(),
            points.join("\n\t")
        )
    }
}

fn update_block(group: bool) -> Value {
    if group {
        json!({"Stagger": 30 * SEC, "MaxParallel": 1, "HealthCheck": "checks",
               "MinHealthyTime": 10 * SEC, "HealthyDeadline": 300 * SEC,
               "ProgressDeadline": 600 * SEC, "AutoRevert": false, "AutoPromote": false, "Canary": 0})
    } else {
        json!({"Stagger": 30 * SEC, "MaxParallel": 1, "HealthCheck": "", "MinHealthyTime": 0,
               "HealthyDeadline": 0, "ProgressDeadline": 0, "AutoRevert": false,
               "AutoPromote": false, "Canary": 0})
    }
}

fn restart_policy(input: &Value, job_type: &str) -> Value {
    let (a, i, d) = if job_type == "batch" {
        (3, 86400 * SEC, 15 * SEC)
    } else {
        (2, 1800 * SEC, 15 * SEC)
    };
    let nz = |v: &Value, d: i64| match v.as_i64() {
        Some(0) | None => d,
        Some(x) => x,
    };
    if input.is_null() {
        return json!({"Attempts": a, "Interval": i, "Delay": d, "Mode": "fail"});
    }
    json!({
        "Attempts": i64_or(get(input, "Attempts"), a),
        "Interval": nz(get(input, "Interval"), i),
        "Delay": nz(get(input, "Delay"), d),
        "Mode": str_or(get(input, "Mode"), "fail"),
    })
}

fn reschedule_policy(input: &Value, job_type: &str) -> Value {
    if job_type == "system" || job_type == "sysbatch" {
        return Value::Null;
    }
    let defaults = if job_type == "batch" {
        json!({"Attempts": 1, "Interval": 86400 * SEC, "Delay": 5 * SEC,
               "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": false})
    } else {
        json!({"Attempts": 0, "Interval": 0, "Delay": 30 * SEC, "DelayFunction": "exponential",
               "MaxDelay": 3600 * SEC, "Unlimited": true})
    };
    if input.is_null() {
        return defaults;
    }
    let mut out = Map::new();
    for key in [
        "Attempts",
        "Interval",
        "Delay",
        "DelayFunction",
        "MaxDelay",
        "Unlimited",
    ] {
        let v = get(input, key);
        let keep = match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => key == "Attempts" || n.as_i64() != Some(0),
            _ => true,
        };
        out.insert(
            key.to_string(),
            if keep {
                v.clone()
            } else {
                defaults[key].clone()
            },
        );
    }
    Value::Object(out)
}

fn resources(input: &Value) -> Value {
    let nz = |v: &Value, d: i64| match v.as_i64() {
        Some(0) | None => d,
        Some(x) => x,
    };
    json!({
        "CPU": nz(get(input, "CPU"), 100), "Cores": i64_or(get(input, "Cores"), 0),
        "MemoryMB": nz(get(input, "MemoryMB"), 300),
        "MemoryMaxMB": i64_or(get(input, "MemoryMaxMB"), 0), "DiskMB": 0, "IOPS": 0,
        "Networks": null, "Devices": null,
    })
}

fn task(input: &Value, restart: &Value) -> Value {
    let log = get(input, "LogConfig");
    json!({
        "Name": get(input, "Name"), "Driver": str_or(get(input, "Driver"), ""),
        "User": str_or(get(input, "User"), ""), "Config": get(input, "Config"),
        "Env": string_map(get(input, "Env")), "Services": null, "Vault": null, "Templates": null,
        "Constraints": null, "Affinities": null, "Resources": resources(get(input, "Resources")),
        "RestartPolicy": restart, "DispatchPayload": null, "Lifecycle": null,
        "Meta": string_map(get(input, "Meta")),
        "KillTimeout": match get(input, "KillTimeout").as_i64() { Some(0) | None => 5 * SEC, Some(k) => k },
        "LogConfig": {"MaxFiles": i64_or(get(log, "MaxFiles"), 10),
                      "MaxFileSizeMB": i64_or(get(log, "MaxFileSizeMB"), 10)},
        "Artifacts": null, "Leader": bool_or(get(input, "Leader"), false), "ShutdownDelay": 0,
        "VolumeMounts": null, "ScalingPolicies": null,
        "KillSignal": str_or(get(input, "KillSignal"), ""), "Kind": "", "CSIPluginConfig": null,
    })
}

/// Register-time problems with the request itself (400) versus the job (500 multierror).
pub enum RegisterError {
    BadRequest(String),
    Invalid(String),
}

/// Canonicalizes and validates a job as the agent does on register.
pub fn canonicalize(input: &Value, config: &Config) -> Result<Value, RegisterError> {
    let job_type = str_or(get(input, "Type"), "service");
    let id = get(input, "ID");
    if id.is_null() {
        return Err(RegisterError::BadRequest(
            "Job ID hasn't been provided".into(),
        ));
    }
    let id = str_or(id, "");
    let mut errs: Vec<String> = Vec::new();
    if id.is_empty() {
        errs.push("Missing job ID".into());
    } else if id.contains(' ') {
        errs.push("Job ID contains a space".into());
    }
    let mut dcs: Vec<Value> = get(input, "Datacenters")
        .as_array()
        .cloned()
        .unwrap_or_default();
    if dcs.is_empty() {
        if config.profile.is_v1_1() {
            errs.push("Missing job datacenters".into());
        } else {
            dcs = vec![json!("*")];
        }
    }
    if !matches!(
        job_type.as_str(),
        "service" | "batch" | "system" | "sysbatch"
    ) {
        errs.push(format!("Invalid job type: \"{job_type}\""));
    }
    let groups_in = get(input, "TaskGroups")
        .as_array()
        .cloned()
        .unwrap_or_default();
    if groups_in.is_empty() {
        errs.push("Missing job task groups".into());
    }
    let mut groups = Vec::new();
    for g in &groups_in {
        let name = str_or(get(g, "Name"), "");
        let restart = restart_policy(get(g, "RestartPolicy"), &job_type);
        let resched = reschedule_policy(get(g, "ReschedulePolicy"), &job_type);
        let disk = get(g, "EphemeralDisk");
        let size_mb = match get(disk, "SizeMB").as_i64() {
            Some(0) | None => 300,
            Some(s) => s,
        };
        let tasks_in = get(g, "Tasks").as_array().cloned().unwrap_or_default();
        let mut gerrs: Vec<String> = Vec::new();
        if tasks_in.is_empty() {
            gerrs.push("Missing tasks for task group".into());
        }
        if !resched.is_null() {
            let unlimited = resched["Unlimited"].as_bool().unwrap_or(false);
            let enabled = resched["Attempts"].as_i64().unwrap_or(0) > 0 || unlimited;
            let delay = resched["Delay"].as_i64().unwrap_or(0);
            let interval = resched["Interval"].as_i64().unwrap_or(0);
            let function = resched["DelayFunction"].as_str().unwrap_or("");
            let mut rerrs = Vec::new();
            if enabled {
                if !matches!(function, "constant" | "exponential" | "fibonacci") {
                    rerrs.push(format!(
                        "Invalid delay function {function:?}, must be one of [constant exponential fibonacci]"
                    ));
                }
                if delay < 5 * SEC {
                    rerrs.push(format!(
                        "Delay cannot be less than 5s (got {})",
                        super::state::go_duration(delay)
                    ));
                }
                if !unlimited && interval < 15 * SEC {
                    rerrs.push(format!(
                        "Interval cannot be less than 15s (got {})",
                        super::state::go_duration(interval)
                    ));
                }
            }
            if !rerrs.is_empty() {
                gerrs.push(multierror(&rerrs));
            }
        }
        if !restart.is_null() {
            let mode = restart["Mode"].as_str().unwrap_or("");
            if !matches!(mode, "delay" | "fail") {
                gerrs.push(multierror(&[format!("Unsupported restart mode: {mode:?}")]));
            }
        }
        let mut tasks = Vec::new();
        for t in &tasks_in {
            let tname = str_or(get(t, "Name"), "");
            let mut terrs = Vec::new();
            if str_or(get(t, "Driver"), "").is_empty() {
                terrs.push("Missing task driver".to_string());
            }
            let task = task(t, &restart);
            let log_mb = task["LogConfig"]["MaxFiles"].as_i64().unwrap_or(10)
                * task["LogConfig"]["MaxFileSizeMB"].as_i64().unwrap_or(10);
            if log_mb >= size_mb {
                gerrs.push(format!(
                    "log storage ({log_mb} MB) must be less than requested disk capacity ({size_mb} MB)"
                ));
            }
            if !terrs.is_empty() {
                gerrs.push(format!(
                    "Task {tname} validation failed: {}",
                    multierror(&terrs)
                ));
            }
            tasks.push(task);
        }
        if !gerrs.is_empty() {
            errs.push(format!(
                "Task group {name} validation failed: {}",
                multierror(&gerrs)
            ));
        }
        let service = job_type == "service";
        groups.push(json!({
            "Name": name, "Count": get(g, "Count").as_i64().unwrap_or(1),
            "Update": if service { update_block(true) } else { Value::Null },
            "Migrate": if service {
                json!({"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SEC,
                       "HealthyDeadline": 300 * SEC})
            } else { Value::Null },
            "Constraints": constraint_list(get(g, "Constraints")), "Scaling": null,
            "RestartPolicy": restart, "Tasks": tasks,
            "EphemeralDisk": {"Sticky": bool_or(get(disk, "Sticky"), false), "SizeMB": size_mb,
                              "Migrate": bool_or(get(disk, "Migrate"), false)},
            "Meta": string_map(get(g, "Meta")), "ReschedulePolicy": resched, "Affinities": null,
            "Spreads": spread_list(get(g, "Spreads")), "Networks": null,
            "Consul": {"Namespace": ""}, "Services": null,
            "Volumes": null, "ShutdownDelay": null, "StopAfterClientDisconnect": null,
        }));
    }
    if !errs.is_empty() {
        return Err(RegisterError::Invalid(multierror(&errs)));
    }
    let name = match get(input, "Name").as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => id.clone(),
    };
    let mut job = json!({
        "Stop": false, "Region": config.region, "Namespace": "default", "ID": id,
        "ParentID": str_or(get(input, "ParentID"), ""), "Name": name, "Type": job_type,
        "Priority": match get(input, "Priority").as_i64() { Some(0) | None => 50, Some(p) => p },
        "AllAtOnce": bool_or(get(input, "AllAtOnce"), false), "Datacenters": dcs,
        "Constraints": constraint_list(get(input, "Constraints")), "Affinities": null,
        "Spreads": spread_list(get(input, "Spreads")), "TaskGroups": groups,
        "Update": update_block(false), "Multiregion": null, "Periodic": get(input, "Periodic"),
        "ParameterizedJob": get(input, "ParameterizedJob"), "Dispatched": false,
        "Payload": null, "Meta": string_map(get(input, "Meta")), "ConsulToken": "",
        "ConsulNamespace": "", "VaultToken": "", "VaultNamespace": "", "NomadTokenID": "",
    });
    if config.profile == Profile::Modern {
        job["NodePool"] = json!("default");
    }
    Ok(job)
}

/// Constraints as the agent keeps them: each with `LTarget`, `RTarget` and `Operand` (`=` by
/// default); `null` for none.
fn constraint_list(v: &Value) -> Value {
    match v.as_array() {
        Some(list) if !list.is_empty() => Value::Array(
            list.iter()
                .map(|c| {
                    json!({
                        "LTarget": str_or(get(c, "LTarget"), ""),
                        "RTarget": str_or(get(c, "RTarget"), ""),
                        "Operand": match get(c, "Operand").as_str() {
                            Some(o) if !o.is_empty() => o.to_string(),
                            _ => "=".to_string(),
                        },
                    })
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Spreads as the agent keeps them: `Attribute`, `Weight` (50 by default), `SpreadTarget`.
fn spread_list(v: &Value) -> Value {
    match v.as_array() {
        Some(list) if !list.is_empty() => Value::Array(
            list.iter()
                .map(|sp| {
                    json!({
                        "Attribute": str_or(get(sp, "Attribute"), ""),
                        "Weight": get(sp, "Weight").as_i64().unwrap_or(50),
                        "SpreadTarget": get(sp, "SpreadTarget"),
                    })
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}
