//! Placement: the datacenters a job is sent with, and the reason Nomad gives when it cannot
//! place one (from the evaluation's failed allocations).

use std::time::Duration;

use super::NomadBackend;
use super::client::CallError;
use super::wire::{AgentSelf, Evaluation, NodeStub};
use crate::lease::{LeaseError, ProgressSender, WarmupProgress};

impl NomadBackend {
    /// Datacenters to send: the configured ones, else those of ready nodes with the driver,
    /// else the agent's own.
    pub(super) async fn datacenters(&self) -> Result<Vec<String>, LeaseError> {
        if !self.datacenters.is_empty() {
            return Ok(self.datacenters.clone());
        }
        match self.client.get::<Vec<NodeStub>>("/v1/nodes", &[]).await {
            Ok((nodes, _)) => {
                let mut dcs: Vec<String> = nodes
                    .iter()
                    .filter(|n| n.status == "ready" && n.scheduling_eligibility != "ineligible")
                    .filter(|n| {
                        n.drivers
                            .as_ref()
                            .and_then(|d| d.get(&self.driver))
                            .is_some_and(|d| d.detected && d.healthy)
                    })
                    .map(|n| n.datacenter.clone())
                    .collect();
                dcs.sort();
                dcs.dedup();
                if dcs.is_empty() {
                    return Err(LeaseError::Placement(format!(
                        "no ready node of Nomad at {} has the `{}` driver detected and healthy; pick another `nomad.driver`, or enable the driver on a client",
                        self.client.address().shown(),
                        self.driver
                    )));
                }
                Ok(dcs)
            }
            Err(CallError::Api(api))
                if api.status == 403 && !api.body.contains("ACL token not found") =>
            {
                let (agent, _) = self
                    .client
                    .get::<AgentSelf>("/v1/agent/self", &[])
                    .await
                    .map_err(|e| {
                        self.client.lease_error(
                            "finding the datacenters to send (`nomad.datacenters` is unset)",
                            "`node:read` (or `agent:read`)",
                            e,
                        )
                    })?;
                Ok(vec![agent.config.datacenter])
            }
            Err(e) => Err(self.client.lease_error("listing nodes", "`node:read`", e)),
        }
    }

    /// The placement failure an evaluation reports, if any; each status the evaluation goes
    /// through is reported to `progress`.
    pub(super) async fn placement_failure(
        &self,
        eval_id: &str,
        progress: &ProgressSender,
    ) -> Result<Option<String>, LeaseError> {
        let path = format!("/v1/evaluation/{eval_id}");
        let mut index = 1;
        let mut last_status = String::new();
        for _ in 0..10 {
            let (eval, new_index) = self
                .client
                .get_blocking::<Evaluation>(&path, index, Duration::from_secs(2))
                .await
                .map_err(|e| {
                    self.client
                        .lease_error("reading the evaluation", "`read-job`", e)
                })?;
            if eval.status != last_status {
                progress.send(WarmupProgress::Evaluation {
                    id: eval_id.to_owned(),
                    status: eval.status.clone(),
                });
                last_status.clone_from(&eval.status);
            }
            if let Some(failed) = eval.failed_tg_allocs.as_ref().filter(|f| !f.is_empty()) {
                let reasons: Vec<String> = failed
                    .iter()
                    .map(|(group, metric)| format!("group `{group}`: {}", summarize_metric(metric)))
                    .collect();
                return Ok(Some(format!(
                    "Nomad could not place the lease: {}",
                    reasons.join("; ")
                )));
            }
            if eval.status != "pending" {
                return Ok(None);
            }
            index = new_index.max(index + 1);
        }
        Ok(None)
    }
}

fn summarize_metric(metric: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for key in [
        "ConstraintFiltered",
        "ClassFiltered",
        "DimensionExhausted",
        "ClassExhausted",
        "QuotaExhausted",
    ] {
        if let Some(map) = metric.get(key).and_then(|v| v.as_object()) {
            for (reason, count) in map {
                parts.push(format!("{reason} ({count} node(s))"));
            }
        }
    }
    if let Some(n) = metric
        .get("NodesEvaluated")
        .and_then(serde_json::Value::as_u64)
    {
        parts.push(format!("{n} node(s) evaluated"));
    }
    if let Some(n) = metric
        .get("NodesExhausted")
        .and_then(serde_json::Value::as_u64)
        && n > 0
    {
        parts.push(format!("{n} node(s) out of resources"));
    }
    if parts.is_empty() {
        metric.to_string()
    } else {
        parts.join(", ")
    }
}
