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
use crate::lease::{Lease, LeaseError, LeaseId, LeaseSpec, ProgressSender, WarmupProgress};

impl NomadBackend {
    /// Wait for the job's allocation to run the task; returns the allocation id. What it sees on
    /// the way (the evaluation, a placement failure, the allocation's states) goes to
    /// `progress`, each change once.
    pub(super) async fn wait_ready(
        &self,
        job_id: &str,
        eval_id: &str,
        progress: &ProgressSender,
        cancel: &CancellationToken,
    ) -> Result<String, LeaseError> {
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        let path = format!("/v1/job/{job_id}/allocations");
        // The evaluation says first whether the job can be placed at all.
        if !eval_id.is_empty()
            && let Some(reason) = self.placement_failure(eval_id, progress).await?
        {
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
                return Err(LeaseError::ReadinessTimeout(format!(
                    "job `{job_id}` did not have task `{}` running within {} (`nomad.alloc_ready_timeout`)",
                    self.task,
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
            // Prefer a live allocation (a pending replacement beats a stale terminal one),
            // newest first.
            let mut sorted = allocs.clone();
            sorted.sort_by_key(|a| std::cmp::Reverse((!a.is_terminal(), a.create_index)));
            let best = &sorted[0];
            seen.report(best, &self.task, progress);
            if !best.is_terminal() {
                let task_running = best
                    .task_states
                    .as_ref()
                    .and_then(|t| t.get(&self.task))
                    .is_some_and(|t| t.state == "running");
                if task_running && best.client_status == "running" && best.desired_status == "run" {
                    return Ok(best.id.clone());
                }
                continue;
            }
            // Every allocation is terminal and nothing replaces it.
            if best.followup_eval_id.is_empty() && best.next_allocation.is_empty() {
                return Err(LeaseError::Placement(format!(
                    "the allocation of job `{job_id}` ended `{}` before task `{}` ran: {}",
                    best.client_status,
                    self.task,
                    task_failure(best, &self.task)
                )));
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
        // An allocation can die right after it was seen running (and be replaced): if the
        // first exec finds its task gone, wait for readiness again, a few times.
        let mut attempts = 0;
        let (alloc_id, resolved) = loop {
            let alloc_id = self
                .wait_ready(job_id, eval_id, &spec.progress, cancel)
                .await?;
            match self.resolve_workdir(&alloc_id, workdir).await {
                Ok(resolved) => break (alloc_id, resolved),
                Err(e) if attempts < 3 && e.to_string().contains("not running") => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        };
        check_workdir(&resolved)?;
        let mut lease = self.lease_of(&spec.id, &alloc_id, resolved);
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
        Ok(lease)
    }
}

/// The last allocation state reported, so each change is reported once.
#[derive(Default)]
struct AllocationSeen(Option<(String, String, String, Option<String>)>);

impl AllocationSeen {
    fn report(&mut self, alloc: &Allocation, task: &str, progress: &ProgressSender) {
        let task_state = alloc
            .task_states
            .as_ref()
            .and_then(|t| t.get(task))
            .map(|t| t.state.clone())
            .filter(|s| !s.is_empty());
        let now = (
            alloc.id.clone(),
            alloc.node_id.clone(),
            alloc.client_status.clone(),
            task_state,
        );
        if self.0.as_ref() == Some(&now) {
            return;
        }
        progress.send(WarmupProgress::Allocation {
            id: now.0.clone(),
            node: now.1.clone(),
            client_status: now.2.clone(),
            task_state: now.3.clone(),
        });
        self.0 = Some(now);
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
