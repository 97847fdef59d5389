//! Readiness: from a registered job to a ready lease. Read from allocations with blocking
//! queries, never from `Job.Status`; an allocation that ends before its task runs is reported
//! with the task's last event.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::NomadBackend;
use super::job::IMAGE_DRIVERS;
use super::wire::Allocation;
use super::workdir::check_workdir;
use crate::lease::{BoxRef, Lease, LeaseError, LeaseId, LeaseSpec, ProgressSender, WarmupProgress};

impl NomadBackend {
    /// Wait for `count` allocations of the job to run the task; returns them in group order
    /// (`job.group[0]` first). What it sees on the way (the evaluation, a placement failure,
    /// each allocation's states) goes to `progress`, each change once. A group that cannot be
    /// placed whole fails with how many boxes were placed and why the rest were not.
    pub(super) async fn wait_ready(
        &self,
        job_id: &str,
        eval_id: &str,
        count: u32,
        progress: &ProgressSender,
        cancel: &CancellationToken,
    ) -> Result<Vec<Allocation>, LeaseError> {
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        let path = format!("/v1/job/{job_id}/allocations");
        // The evaluation says first whether the job can be placed at all.
        if !eval_id.is_empty()
            && let Some(reason) = self.placement_failure(eval_id, progress).await?
        {
            let reason = if count > 1 {
                let placed = self
                    .client
                    .get::<Vec<Allocation>>(&path, &[])
                    .await
                    .map(|(a, _)| a.iter().filter(|a| !a.is_terminal()).count())
                    .unwrap_or(0);
                format!(
                    "{placed} of the group's {count} boxes placed; {}",
                    reason.replacen(
                        "Nomad could not place the lease",
                        "the rest could not be",
                        1
                    )
                )
            } else {
                reason
            };
            progress.send(WarmupProgress::PlacementFailed {
                reason: reason.clone(),
            });
            return Err(LeaseError::Placement(reason));
        }
        let mut seen = AllocationSeen::default();
        let mut index = 1u64;
        let mut empty_rounds = 0u32;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let what = if count > 1 {
                    format!(
                        "all {count} allocations of job `{job_id}` running task `{}`",
                        self.task
                    )
                } else {
                    format!("task `{}` running", self.task)
                };
                return Err(LeaseError::ReadinessTimeout(format!(
                    "job `{job_id}` did not have {what} within {} (`nomad.alloc_ready_timeout`)",
                    humantime::format_duration(self.ready_timeout)
                )));
            }
            // While there is no allocation yet, poll in short rounds: an empty list's index
            // may never move.
            let cap = if empty_rounds > 0 {
                Duration::from_secs(2)
            } else {
                self.timings.blocking_wait
            };
            let wait = (deadline - now).min(cap);
            let query = self
                .client
                .get_blocking::<Vec<Allocation>>(&path, index, wait);
            let (allocs, new_index) = tokio::select! {
                r = query => r.map_err(|e| self.client.lease_error("waiting for the allocation", "`read-job`", e))?,
                () = cancel.cancelled() => return Err(LeaseError::Cancelled),
            };
            // Guard against an index that does not move (0 on some agents): never spin.
            if new_index <= index {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = cancel.cancelled() => return Err(LeaseError::Cancelled),
                }
            }
            index = new_index.max(index);
            if allocs.is_empty() {
                empty_rounds += 1;
                continue;
            }
            empty_rounds = 0;
            // Per place in the group, prefer a live allocation (a pending replacement beats a
            // stale terminal one), newest first.
            let mut by_place: BTreeMap<u32, Allocation> = BTreeMap::new();
            for alloc in allocs {
                let place = alloc.group_index().unwrap_or(0);
                let better = by_place.get(&place).is_none_or(|current| {
                    (!alloc.is_terminal(), alloc.create_index)
                        > (!current.is_terminal(), current.create_index)
                });
                if better {
                    by_place.insert(place, alloc);
                }
            }
            let mut ready = Vec::new();
            for alloc in by_place.values() {
                seen.report(alloc, &self.task, progress);
                if alloc.is_terminal() {
                    // Ended, and nothing replaces it: the group cannot be whole.
                    if alloc.followup_eval_id.is_empty() && alloc.next_allocation.is_empty() {
                        let which = if count > 1 {
                            format!(
                                "allocation {} of {count} of job `{job_id}`",
                                alloc.group_index().map_or(1, |i| i + 1)
                            )
                        } else {
                            format!("the allocation of job `{job_id}`")
                        };
                        return Err(LeaseError::Placement(format!(
                            "{which} ended `{}` before task `{}` ran: {}",
                            alloc.client_status,
                            self.task,
                            task_failure(alloc, &self.task)
                        )));
                    }
                    continue;
                }
                let task_running = alloc
                    .task_states
                    .as_ref()
                    .and_then(|t| t.get(&self.task))
                    .is_some_and(|t| t.state == "running");
                if task_running && alloc.client_status == "running" && alloc.desired_status == "run"
                {
                    ready.push(alloc.clone());
                }
            }
            if ready.len() >= count as usize {
                ready.truncate(count as usize);
                return Ok(ready);
            }
        }
    }

    pub(super) fn lease_of(&self, spec_id: &LeaseId, alloc_id: &str, workdir: String) -> Lease {
        let mut handle = BTreeMap::new();
        handle.insert("job_id".to_owned(), spec_id.to_string());
        handle.insert("alloc_id".to_owned(), alloc_id.to_owned());
        handle.insert("task".to_owned(), self.task.clone());
        handle.insert("namespace".to_owned(), self.client.namespace().to_owned());
        handle.insert("region".to_owned(), self.client.region().to_owned());
        handle.insert("scope".to_owned(), self.scope.clone());
        Lease {
            id: spec_id.clone(),
            backend: "nomad".to_owned(),
            workdir,
            handle,
            boxes: Vec::new(),
        }
    }

    /// Wait for the boxes and resolve each one's workdir; an allocation that died right
    /// after it was seen running (its first exec finds the task gone) sends the wait round
    /// again, a few times.
    async fn ready_boxes(
        &self,
        spec: &LeaseSpec,
        eval_id: &str,
        workdir: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<(Allocation, String)>, LeaseError> {
        let job_id = spec.id.as_str();
        let mut attempts = 0;
        loop {
            let allocs = self
                .wait_ready(job_id, eval_id, spec.boxes(), &spec.progress, cancel)
                .await?;
            let resolved = futures::future::join_all(
                allocs.iter().map(|a| self.resolve_workdir(&a.id, workdir)),
            )
            .await;
            let mut boxes = Vec::with_capacity(allocs.len());
            let mut retry = false;
            for (alloc, dir) in allocs.into_iter().zip(resolved) {
                match dir {
                    Ok(dir) => boxes.push((alloc, dir)),
                    Err(e) if attempts < 3 && e.to_string().contains("not running") => {
                        retry = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !retry {
                return Ok(boxes);
            }
            attempts += 1;
        }
    }

    pub(super) async fn warmup_registered(
        &self,
        spec: &LeaseSpec,
        eval_id: &str,
        workdir: &str,
        cancel: &CancellationToken,
    ) -> Result<Lease, LeaseError> {
        let job_id = spec.id.as_str();
        spec.progress.send(WarmupProgress::Registered {
            job: job_id.to_owned(),
            evaluation: eval_id.to_owned(),
        });
        let boxes = self.ready_boxes(spec, eval_id, workdir, cancel).await?;
        for (_, resolved) in &boxes {
            check_workdir(resolved)?;
        }
        let (first, first_dir) = &boxes[0];
        let mut lease = self.lease_of(&spec.id, &first.id, first_dir.clone());
        lease
            .handle
            .insert("workdir_spec".to_owned(), workdir.to_owned());
        // Named by errors about the box (a missing tool).
        lease
            .handle
            .insert("driver".to_owned(), self.driver.clone());
        if IMAGE_DRIVERS.contains(&self.driver.as_str()) {
            let image = spec.image.clone().unwrap_or_else(|| self.image.clone());
            lease.handle.insert("image".to_owned(), image);
        }
        lease.boxes = boxes
            .iter()
            .zip(1u32..)
            .map(|((alloc, dir), index)| {
                let mut handle = BTreeMap::new();
                handle.insert("alloc_id".to_owned(), alloc.id.clone());
                handle.insert("node_id".to_owned(), alloc.node_id.clone());
                if !alloc.node_name.is_empty() {
                    handle.insert("node_name".to_owned(), alloc.node_name.clone());
                }
                BoxRef {
                    index,
                    workdir: dir.clone(),
                    handle,
                }
            })
            .collect();
        for (key, value) in &lease.boxes[0].handle {
            lease.handle.insert(key.clone(), value.clone());
        }
        Ok(lease)
    }
}

/// The last allocation state reported, so each change is reported once.
#[derive(Default)]
struct AllocationSeen(BTreeMap<String, (String, String, Option<String>)>);

impl AllocationSeen {
    fn report(&mut self, alloc: &Allocation, task: &str, progress: &ProgressSender) {
        let task_state = alloc
            .task_states
            .as_ref()
            .and_then(|t| t.get(task))
            .map(|t| t.state.clone())
            .filter(|s| !s.is_empty());
        let now = (
            alloc.node_id.clone(),
            alloc.client_status.clone(),
            task_state,
        );
        if self.0.get(&alloc.id) == Some(&now) {
            return;
        }
        progress.send(WarmupProgress::Allocation {
            id: alloc.id.clone(),
            node: now.0.clone(),
            client_status: now.1.clone(),
            task_state: now.2.clone(),
        });
        self.0.insert(alloc.id.clone(), now);
    }
}

fn task_failure(alloc: &Allocation, task: &str) -> String {
    let events = alloc
        .task_states
        .as_ref()
        .and_then(|t| t.get(task))
        .and_then(|t| t.events.clone())
        .unwrap_or_default();
    let last = events
        .iter()
        .rev()
        .find(|e| !e.driver_error.is_empty() || !e.display_message.is_empty());
    match last {
        Some(e) if !e.driver_error.is_empty() => format!("{}: {}", e.kind, e.driver_error),
        Some(e) => format!("{}: {}", e.kind, e.display_message),
        None if !alloc.client_description.is_empty() => alloc.client_description.clone(),
        None => "no task events".to_owned(),
    }
}
