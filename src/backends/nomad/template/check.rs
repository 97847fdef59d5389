//! The job checker: a rendered template's job must be the lease's (its ID, one group of count
//! 1, the configured task, `leasebox.*` Meta as leasebox would set it); the checker completes it
//! with the ownership Meta, namespace and region.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::TemplateErrorKind;
use super::render::{PLACEHOLDERS, TemplateFormat};

pub(super) fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Set a field under its canonical name, dropping any other spelling of it (the agent's
/// decoder matches field names case-insensitively).
pub(super) fn set_field(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.retain(|k, _| !k.eq_ignore_ascii_case(key));
    obj.insert(key.to_owned(), value);
}

/// The job object of a rendered template: the value itself, or its `Job`.
pub(super) fn job_object(value: Value) -> Result<Map<String, Value>, TemplateErrorKind> {
    let Value::Object(obj) = value else {
        return Err(TemplateErrorKind::NotAnObject);
    };
    match field(&obj, "Job") {
        Some(Value::Object(job)) => Ok(job.clone()),
        Some(_) => Err(TemplateErrorKind::NotAnObject),
        None => Ok(obj),
    }
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "missing".to_owned(),
        Some(Value::String(s)) => format!("`{s}`"),
        Some(v) => format!("`{v}`"),
    }
}

/// What the rendered job must carry.
#[derive(Debug, Clone)]
pub struct JobExpectations<'a> {
    /// The lease id (the job's ID).
    pub id: &'a str,
    /// `nomad.task`.
    pub task: &'a str,
    /// The ownership Meta leasebox sets.
    pub meta: &'a BTreeMap<String, String>,
    /// The configured namespace.
    pub namespace: &'a str,
    /// The configured region.
    pub region: &'a str,
    /// The resolved `nomad.driver`: the task's driver must be it (leasebox picks the workdir
    /// and the exec capability from it).
    pub driver: &'a str,
    /// How the template is written (for hints).
    pub format: TemplateFormat,
    /// The boxes the lease holds: leasebox sets the group's count to it, so a template says
    /// 1 (or nothing, or this number).
    pub count: u32,
}

/// Check a rendered job and complete it: ownership Meta added, namespace and region set. Returns
/// whether the job names datacenters.
///
/// # Errors
/// A wrong ID, not exactly one group of count 1, no task named `nomad.task`, a task driver that
/// is not `nomad.driver`, a Meta that is not strings, or a `leasebox.*` Meta key with another
/// value than leasebox's.
pub fn check_job(
    job: &mut Map<String, Value>,
    want: &JobExpectations<'_>,
) -> Result<bool, TemplateErrorKind> {
    let id = field(job, "ID");
    if id.and_then(Value::as_str) != Some(want.id) {
        return Err(TemplateErrorKind::WrongId {
            found: shown(id),
            expected: want.id.to_owned(),
            written: match want.format {
                TemplateFormat::Json => "\"ID\": \"{{lease_id}}\"",
                TemplateFormat::Hcl => "job \"{{lease_id}}\" {",
            },
        });
    }
    let groups = field(job, "TaskGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let [group] = groups.as_slice() else {
        return Err(TemplateErrorKind::Groups(groups.len()));
    };
    match field(group.as_object().unwrap_or(&Map::new()), "Count") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) || n.as_u64() == Some(u64::from(want.count)) => {}
        Some(other) => return Err(TemplateErrorKind::Count(other.to_string())),
    }
    let tasks: Vec<String> = group
        .as_object()
        .and_then(|g| field(g, "Tasks"))
        .and_then(Value::as_array)
        .map(|tasks| {
            tasks
                .iter()
                .filter_map(|t| t.as_object().and_then(|t| field(t, "Name")))
                .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !tasks.iter().any(|t| t == want.task) {
        let found = if tasks.is_empty() {
            "none".to_owned()
        } else {
            tasks
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(TemplateErrorKind::MissingTask {
            task: want.task.to_owned(),
            found,
        });
    }
    let driver = group
        .as_object()
        .and_then(|g| field(g, "Tasks"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .find(|t| field(t, "Name").and_then(Value::as_str) == Some(want.task))
        .and_then(|t| field(t, "Driver"));
    if driver.and_then(Value::as_str) != Some(want.driver) {
        return Err(TemplateErrorKind::DriverMismatch {
            task: want.task.to_owned(),
            found: shown(driver),
            expected: want.driver.to_owned(),
        });
    }
    let mut job_meta: BTreeMap<String, String> = match field(job, "Meta") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or(TemplateErrorKind::MetaNotStrings)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(TemplateErrorKind::MetaNotStrings),
    };
    for (key, found) in &job_meta {
        match want.meta.get(key) {
            Some(expected) if expected != found => {
                let placeholder = key
                    .strip_prefix("leasebox.")
                    .filter(|p| PLACEHOLDERS.contains(p));
                return Err(TemplateErrorKind::WrongMeta {
                    key: key.clone(),
                    found: found.clone(),
                    expected: expected.clone(),
                    written: placeholder
                        .map_or_else(|| expected.clone(), |p| format!("{{{{{p}}}}}")),
                });
            }
            None if key.starts_with("leasebox.") => {
                return Err(TemplateErrorKind::ReservedMeta(key.clone()));
            }
            _ => {}
        }
    }
    job_meta.extend(want.meta.iter().map(|(k, v)| (k.clone(), v.clone())));
    set_field(job, "Meta", json!(job_meta));
    set_field(job, "Namespace", json!(want.namespace));
    set_field(job, "Region", json!(want.region));
    Ok(field(job, "Datacenters")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ownership() -> BTreeMap<String, String> {
        [
            ("leasebox.managed", "true"),
            ("leasebox.lease_id", "lbx_0123456789ab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn check(job: Value) -> Result<(bool, Map<String, Value>), TemplateErrorKind> {
        let meta = ownership();
        let want = JobExpectations {
            id: "lbx_0123456789ab",
            task: "leasebox",
            meta: &meta,
            namespace: "default",
            region: "global",
            driver: "raw_exec",
            format: TemplateFormat::Json,
            count: 1,
        };
        let mut job = job_object(job)?;
        check_job(&mut job, &want).map(|dcs| (dcs, job))
    }

    #[test]
    fn the_job_is_checked_and_completed() {
        let (dcs, job) = check(json!({"Job": {
            "id": "lbx_0123456789ab", "Namespace": "other", "meta": {"mine": "x"},
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "leasebox", "Driver": "raw_exec"}]}],
        }}))
        .unwrap();
        assert!(!dcs);
        assert_eq!(job["Meta"]["mine"], "x");
        assert_eq!(job["Meta"]["leasebox.managed"], "true");
        assert!(!job.contains_key("meta"));
        assert_eq!(job["Namespace"], "default");
        let group = json!([{"Tasks": [{"Name": "leasebox", "Driver": "raw_exec"}]}]);
        for (job, want) in [
            (
                json!({"ID": "other", "TaskGroups": group}),
                "the job ID is `other`",
            ),
            (json!({"TaskGroups": group}), "the job ID is missing"),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": []}),
                "0 task groups",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": [{"Count": 2, "Tasks": [{"Name": "leasebox"}]}]}),
                "count is 2",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": [{"Tasks": [{"Name": "main"}]}]}),
                "no task named `leasebox` (`nomad.task`; the template's tasks: `main`)",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"leasebox.managed": "false"}}),
                "Meta `leasebox.managed` is `false`, but leasebox sets it to `true`; leave it out (leasebox adds the `leasebox.*` keys) or write `\"true\"`",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"leasebox.lease_id": "x"}}),
                "or write `\"{{lease_id}}\"`",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"leasebox.extra": "1"}}),
                "`leasebox.extra` is not a key leasebox sets",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"n": 1}}),
                "map of strings",
            ),
            (json!([1]), "must be a job object"),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": [{"Tasks": [{"Name": "leasebox", "Driver": "exec"}]}]}),
                "the task `leasebox` uses the driver `exec`, but `nomad.driver` is `raw_exec`",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": [{"Tasks": [{"Name": "leasebox"}]}]}),
                "uses the driver missing",
            ),
        ] {
            let text = check(job).unwrap_err().to_string();
            assert!(text.contains(want), "{text}");
        }
        let (dcs, _) = check(
            json!({"ID": "lbx_0123456789ab", "Datacenters": ["dc9"], "TaskGroups": group,
            "Meta": {"leasebox.managed": "true"}}),
        )
        .unwrap();
        assert!(dcs);
    }
}
