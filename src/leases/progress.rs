//! Forwarding a backend's warmup progress to the run's events: what the backend reports on its
//! [`ProgressSender`](crate::lease::ProgressSender) channel while `warmup` runs becomes
//! `lease_waiting` events (and `lease_placed` once the box has a node), then `lease_placed` (if
//! the backend never said) and `lease_ready` when the box is ready.

use std::future::Future;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedReceiver;

use super::elapsed_ms;
use crate::events::{Event, Events};
use crate::lease::{Lease, LeaseId, WarmupProgress};

/// One warmup's forwarding state.
pub(super) struct WarmupWatch<'a> {
    events: &'a Events,
    lease_id: String,
    start: Instant,
    job: Option<String>,
    placed: Option<(String, String)>,
}

impl<'a> WarmupWatch<'a> {
    pub(super) fn new(events: &'a Events, id: &LeaseId, start: Instant) -> Self {
        WarmupWatch {
            events,
            lease_id: id.to_string(),
            start,
            job: None,
            placed: None,
        }
    }

    /// Run `warmup`, forwarding what arrives on `rx` as it arrives; then what is left.
    pub(super) async fn forward<T>(
        &mut self,
        mut rx: UnboundedReceiver<WarmupProgress>,
        warmup: impl Future<Output = T>,
    ) -> T {
        tokio::pin!(warmup);
        let result = loop {
            tokio::select! {
                biased;
                Some(progress) = rx.recv() => self.report(progress),
                result = &mut warmup => break result,
            }
        };
        while let Ok(progress) = rx.try_recv() {
            self.report(progress);
        }
        result
    }

    fn waiting(
        &self,
        stage: &str,
        status: &str,
        id: Option<String>,
        node: Option<String>,
    ) -> Event {
        Event::LeaseWaiting {
            lease_id: self.lease_id.clone(),
            stage: stage.to_owned(),
            status: status.to_owned(),
            reason: None,
            job: self.job.clone(),
            id,
            node,
            elapsed_ms: elapsed_ms(self.start),
        }
    }

    fn report(&mut self, progress: WarmupProgress) {
        let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
        let event = match progress {
            WarmupProgress::Registered { job, evaluation } => {
                self.job = Some(job);
                self.waiting("registered", "registered", non_empty(evaluation), None)
            }
            WarmupProgress::Evaluation { id, status } => {
                self.waiting("evaluation", &status, Some(id), None)
            }
            WarmupProgress::PlacementFailed { reason } => {
                let mut event = self.waiting("placement_failed", "failed", None, None);
                if let Event::LeaseWaiting { reason: r, .. } = &mut event {
                    *r = Some(reason);
                }
                event
            }
            WarmupProgress::Allocation {
                id,
                node,
                client_status,
                task_state,
            } => {
                let status = match task_state {
                    Some(task) if task != client_status => format!("{client_status} (task {task})"),
                    _ => client_status,
                };
                let event = self.waiting(
                    "allocation",
                    &status,
                    Some(id.clone()),
                    non_empty(node.clone()),
                );
                self.events.emit(event);
                if !node.is_empty() && self.placed.as_ref().is_none_or(|(a, _)| *a != id) {
                    self.placed = Some((id.clone(), node.clone()));
                    self.events.emit(Event::LeasePlaced {
                        lease_id: self.lease_id.clone(),
                        job: self.job.clone(),
                        allocation: Some(id),
                        node: Some(node),
                    });
                }
                return;
            }
        };
        self.events.emit(event);
    }

    /// The box is ready (and prepared).
    pub(super) fn ready(&mut self, lease: &Lease) {
        let job = lease
            .handle
            .get("job_id")
            .cloned()
            .or_else(|| self.job.clone());
        let allocation = lease.handle.get("alloc_id").cloned();
        let node = self
            .placed
            .as_ref()
            .filter(|(a, _)| Some(a) == allocation.as_ref())
            .map(|(_, n)| n.clone());
        if node.is_none() {
            self.events.emit(Event::LeasePlaced {
                lease_id: self.lease_id.clone(),
                job: job.clone(),
                allocation: allocation.clone(),
                node: None,
            });
        }
        self.events.emit(Event::LeaseReady {
            lease_id: self.lease_id.clone(),
            backend: lease.backend.clone(),
            job,
            allocation,
            node,
            workdir: lease.workdir.clone(),
            reused: false,
            ms: elapsed_ms(self.start),
        });
    }
}
