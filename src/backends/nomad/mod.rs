//! The Nomad backend: a lease is a one-task job that leasebox registers, owns and purges; exec
//! goes over the allocation exec websocket. The only module that knows Nomad's wire types.
//!
//! Warmup registers a create-only job (`EnforceIndex`, `JobModifyIndex: 0`) whose `Meta`
//! carries the ownership fields of DESIGN §6, with datacenters always sent (the configured
//! ones, else those of the ready nodes that have the driver), restart and reschedule off, and a
//! keepalive that exits promptly on TERM/INT. Placement failures are reported with Nomad's
//! reason; readiness is read from allocations with blocking queries, never from `Job.Status`;
//! anything that fails after registration purges the job before the error is returned.
//! Release purges and then confirms absence with a GET that answers 404 (a delete reply proves
//! nothing on 1.1).

pub mod client;
pub mod doctor;
pub mod exec;
pub mod template;
mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use client::{Address, CallError, Client, TlsSettings};
use exec::ExecTimings;
use wire::{AgentSelf, Allocation, Evaluation, Job, JobStub, NodeStub, RegisterResponse};

use crate::config::Settings;
use crate::lease::{
    Backend, ExecRequest, ExecStream, Features, Lease, LeaseError, LeaseSpec, RemoteLease,
    RemoteState,
};

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
const IMAGE_DRIVERS: [&str; 2] = ["docker", "podman"];

/// The keepalive: sleeps until told to stop, and exits promptly on TERM or INT.
const KEEPALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// Tunables (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct NomadTimings {
    /// How long one blocking query waits at most.
    pub blocking_wait: Duration,
    /// How long release waits for the job to be gone.
    pub release_timeout: Duration,
    /// Exec session timings.
    pub exec: ExecTimings,
}

impl Default for NomadTimings {
    fn default() -> Self {
        NomadTimings {
            blocking_wait: Duration::from_secs(30),
            release_timeout: Duration::from_secs(60),
            exec: ExecTimings::default(),
        }
    }
}

/// The Nomad backend.
#[derive(Debug)]
pub struct NomadBackend {
    client: Client,
    task: String,
    driver: String,
    datacenters: Vec<String>,
    node_pool: Option<String>,
    constraints: Vec<crate::config::ConstraintSpec>,
    image: String,
    ready_timeout: Duration,
    scope: String,
    timings: NomadTimings,
    jobspec_template: Option<std::path::PathBuf>,
}

/// The scope fingerprint: sha256 of address, namespace, region and task, so the address never
/// appears in clear on the cluster.
#[must_use]
pub fn scope_fingerprint(address: &str, namespace: &str, region: &str, task: &str) -> String {
    let digest = Sha256::digest(format!("{address}\n{namespace}\n{region}\n{task}").as_bytes());
    hex::encode(&digest[..12])
}

/// The default workdir for a driver: inside the allocation dir for `raw_exec` (no isolation),
/// `/workspace/leasebox` for isolating drivers.
#[must_use]
pub fn default_workdir(driver: &str) -> &'static str {
    if driver == "raw_exec" {
        "${NOMAD_ALLOC_DIR}/leasebox"
    } else {
        "/workspace/leasebox"
    }
}

impl NomadBackend {
    /// A backend for the `[nomad]` settings, with the token read from `env[token_env]`.
    ///
    /// # Errors
    /// No address, an unusable address, or bad TLS settings.
    pub fn new(
        settings: &Settings,
        address_origin: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<NomadBackend, LeaseError> {
        let n = &settings.nomad;
        let Some(text) = &n.address else {
            return Err(LeaseError::Config(
                "the nomad backend needs an address: set `nomad.address` in your config, `LEASEBOX_NOMAD_ADDR`, `--nomad-address` or `NOMAD_ADDR`".into(),
            ));
        };
        let address = Address::parse(text, address_origin)?;
        let token = env.get(&n.token_env).cloned();
        let tls = TlsSettings {
            ca_cert: n.ca_cert.clone(),
            ca_path: n.ca_path.clone(),
            client_cert: n.client_cert.clone(),
            client_key: n.client_key.clone(),
            tls_server_name: n.tls_server_name.clone(),
            skip_verify: n.skip_verify,
        };
        let scope = scope_fingerprint(&address.shown(), &n.namespace, &n.region, &n.task);
        let client = Client::new(
            address,
            address_origin.to_owned(),
            token,
            n.token_env.clone(),
            n.region.clone(),
            n.namespace.clone(),
            &tls,
        )?;
        Ok(NomadBackend {
            client,
            task: n.task.clone(),
            driver: n.driver.clone(),
            datacenters: n.datacenters.clone(),
            node_pool: n.node_pool.clone(),
            constraints: n.constraints.clone(),
            image: n.image.clone(),
            ready_timeout: n.alloc_ready_timeout,
            scope,
            timings: NomadTimings::default(),
            jobspec_template: n.jobspec_template.clone(),
        })
    }

    /// Change the timings (tests).
    #[must_use]
    pub fn with_timings(mut self, timings: NomadTimings) -> Self {
        self.timings = timings;
        self
    }

    /// The HTTP client (for `doctor`).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The scope fingerprint of this backend's address, namespace, region and task.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Datacenters to send: the configured ones, else those of ready nodes with the driver,
    /// else the agent's own.
    async fn datacenters(&self) -> Result<Vec<String>, LeaseError> {
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
            Err(CallError::Api(api)) if api.status == 403 => {
                let (agent, _) = self
                    .client
                    .get::<AgentSelf>("/v1/agent/self", &[])
                    .await
                    .map_err(|e| {
                        self.client.lease_error(
                            "cannot find a datacenter (set `nomad.datacenters`)",
                            "`node:read` or `agent:read`",
                            e,
                        )
                    })?;
                Ok(vec![agent.config.datacenter])
            }
            Err(e) => Err(self.client.lease_error("listing nodes", "`node:read`", e)),
        }
    }

    fn job_spec(
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
                "Count": 1,
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
        if let Some(pool) = &self.node_pool {
            job["NodePool"] = json!(pool);
        }
        job
    }

    /// Purge a job and wait until a GET answers 404.
    async fn purge(&self, job_id: &str, cancel: &CancellationToken) -> Result<(), LeaseError> {
        let path = format!("/v1/job/{job_id}");
        self.client
            .call(
                reqwest::Method::DELETE,
                &path,
                &[("purge", "true".to_owned())],
                None,
                None,
            )
            .await
            .map_err(|e| {
                self.client
                    .lease_error("purging the job", "`submit-job`", e)
            })?;
        let deadline = tokio::time::Instant::now() + self.timings.release_timeout;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.client.get::<Job>(&path, &[]).await {
                Err(CallError::Api(api)) if api.status == 404 => return Ok(()),
                Err(e) => {
                    return Err(self.client.lease_error(
                        "confirming the job is gone",
                        "`read-job`",
                        e,
                    ));
                }
                Ok(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LeaseError::Transport(format!(
                    "job `{job_id}` was purged but is still there after {}",
                    humantime::format_duration(self.timings.release_timeout)
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Err(LeaseError::Cancelled),
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// Wait for the job's allocation to run the task; returns the allocation id.
    async fn wait_ready(
        &self,
        job_id: &str,
        eval_id: &str,
        cancel: &CancellationToken,
    ) -> Result<String, LeaseError> {
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        let path = format!("/v1/job/{job_id}/allocations");
        // The evaluation says first whether the job can be placed at all.
        if !eval_id.is_empty()
            && let Some(reason) = self.placement_failure(eval_id).await?
        {
            return Err(LeaseError::Placement(reason));
        }
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

    /// The placement failure an evaluation reports, if any.
    async fn placement_failure(&self, eval_id: &str) -> Result<Option<String>, LeaseError> {
        let path = format!("/v1/evaluation/{eval_id}");
        let mut index = 1;
        for _ in 0..10 {
            let (eval, new_index) = self
                .client
                .get_blocking::<Evaluation>(&path, index, Duration::from_secs(2))
                .await
                .map_err(|e| {
                    self.client
                        .lease_error("reading the evaluation", "`read-job`", e)
                })?;
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

    fn lease_of(&self, spec_id: &crate::lease::LeaseId, alloc_id: &str, workdir: String) -> Lease {
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

    /// Resolve `${NOMAD_ALLOC_DIR}` in a workdir by asking the box.
    async fn resolve_workdir(&self, alloc_id: &str, workdir: &str) -> Result<String, LeaseError> {
        if !workdir.contains("${NOMAD_ALLOC_DIR}") {
            return Ok(workdir.to_owned());
        }
        let argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "printf '%s' \"$NOMAD_ALLOC_DIR\"".to_owned(),
        ];
        let mut stream = exec::open(
            &self.client,
            alloc_id,
            &self.task,
            &argv,
            false,
            self.timings.exec,
        )
        .await?;
        let mut out = Vec::new();
        loop {
            match stream.events.recv().await {
                Some(crate::lease::ExecEvent::Stdout(b)) => out.extend_from_slice(&b),
                Some(crate::lease::ExecEvent::Exited(0)) => break,
                Some(crate::lease::ExecEvent::Stderr(_)) => {}
                Some(
                    crate::lease::ExecEvent::Refused { message, .. }
                    | crate::lease::ExecEvent::Lost(message),
                ) => {
                    return Err(LeaseError::Transport(format!(
                        "cannot read the allocation dir: {message}"
                    )));
                }
                Some(crate::lease::ExecEvent::Exited(code)) => {
                    return Err(LeaseError::Transport(format!(
                        "cannot read the allocation dir: exit {code}"
                    )));
                }
                None => {
                    return Err(LeaseError::Transport(
                        "cannot read the allocation dir".into(),
                    ));
                }
            }
        }
        let dir = String::from_utf8_lossy(&out).trim().to_owned();
        if !dir.starts_with('/') {
            return Err(LeaseError::Transport(format!(
                "the allocation reported `NOMAD_ALLOC_DIR` as `{dir}`, not an absolute path"
            )));
        }
        Ok(workdir.replace("${NOMAD_ALLOC_DIR}", &dir))
    }

    async fn warmup_registered(
        &self,
        spec: &LeaseSpec,
        eval_id: &str,
        workdir: &str,
        cancel: &CancellationToken,
    ) -> Result<Lease, LeaseError> {
        let job_id = spec.id.as_str();
        // An allocation can die right after it was seen running (and be replaced): if the
        // first exec finds its task gone, wait for readiness again, a few times.
        let mut attempts = 0;
        let (alloc_id, resolved) = loop {
            let alloc_id = self.wait_ready(job_id, eval_id, cancel).await?;
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

/// Workdirs must be absolute and not a system directory (after normalising).
///
/// # Errors
/// A relative workdir or a system directory.
pub fn check_workdir(workdir: &str) -> Result<(), LeaseError> {
    if !workdir.starts_with('/') {
        return Err(LeaseError::Config(format!(
            "the workdir `{workdir}` is not absolute; set `nomad.workdir` to an absolute path such as `/workspace/leasebox`"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in workdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let normal = format!("/{}", parts.join("/"));
    const SYSTEM: [&str; 19] = [
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/workspace",
    ];
    if SYSTEM.contains(&normal.as_str()) {
        return Err(LeaseError::Config(format!(
            "the workdir `{workdir}` is the system directory `{normal}`; leasebox replaces its workdir on every sync, so pick a directory of its own such as `/workspace/leasebox`"
        )));
    }
    Ok(())
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

#[async_trait]
impl Backend for NomadBackend {
    fn features(&self) -> Features {
        nomad_features()
    }

    fn scope(&self) -> String {
        self.scope.clone()
    }

    async fn warmup(
        &self,
        spec: &LeaseSpec,
        cancel: &CancellationToken,
    ) -> Result<Lease, LeaseError> {
        let workdir = spec
            .workdir
            .clone()
            .unwrap_or_else(|| default_workdir(&self.driver).to_owned());
        if !workdir.starts_with("${NOMAD_ALLOC_DIR}") {
            check_workdir(&workdir)?;
        }
        // A jobspec template replaces the built-in job (see `template`). Nothing exists yet, so
        // cancelling here leaves nothing behind.
        let build = async {
            match &self.jobspec_template {
                Some(path) => self.templated_job(path, spec, &workdir).await,
                None => Ok(self.job_spec(spec, self.datacenters().await?, &workdir)),
            }
        };
        let job = tokio::select! {
            job = build => job?,
            () = cancel.cancelled() => return Err(LeaseError::Cancelled),
        };
        let body = json!({"Job": job, "EnforceIndex": true, "JobModifyIndex": 0});
        let registered = tokio::select! {
            r = self.client.call(reqwest::Method::PUT, "/v1/jobs", &[], Some(&body), None) => r,
            () = cancel.cancelled() => {
                // The register may have landed: purge (bounded) before giving up.
                let purged = tokio::time::timeout(
                    Duration::from_secs(30),
                    self.purge(spec.id.as_str(), &CancellationToken::new()),
                )
                .await;
                return Err(match purged {
                    Ok(Ok(())) => LeaseError::Cancelled,
                    _ => LeaseError::LeftBehind {
                        id: spec.id.clone(),
                        error: Box::new(LeaseError::Cancelled),
                    },
                });
            }
        };
        let eval_id = match registered {
            Ok((_, bytes)) => serde_json::from_slice::<RegisterResponse>(&bytes)
                .map(|r| r.eval_id)
                .unwrap_or_default(),
            Err(CallError::Api(api)) if api.body.contains("job already exists") => {
                return Err(LeaseError::Ownership(format!(
                    "a job named `{}` already exists on the cluster; leasebox will not touch it",
                    spec.id
                )));
            }
            Err(CallError::Api(api)) if api.status == 500 || api.status == 400 => {
                // Validation errors: nothing was registered.
                return Err(LeaseError::Config(format!(
                    "Nomad refused the lease's job: {}",
                    api.body.replace("\n\t* ", " ").trim()
                )));
            }
            Err(e @ CallError::Transport(_)) => {
                // The register may or may not have landed: purge to be sure.
                let error =
                    self.client
                        .lease_error("registering the lease's job", "`submit-job`", e);
                return Err(
                    match self
                        .purge(spec.id.as_str(), &CancellationToken::new())
                        .await
                    {
                        Ok(()) => error,
                        Err(_) => LeaseError::LeftBehind {
                            id: spec.id.clone(),
                            error: Box::new(error),
                        },
                    },
                );
            }
            Err(e) => {
                return Err(self.client.lease_error(
                    "registering the lease's job",
                    "`submit-job`",
                    e,
                ));
            }
        };
        match self
            .warmup_registered(spec, &eval_id, &workdir, cancel)
            .await
        {
            Ok(lease) => Ok(lease),
            Err(e) => {
                if let Err(purge) = self
                    .purge(spec.id.as_str(), &CancellationToken::new())
                    .await
                {
                    return Err(LeaseError::LeftBehind {
                        id: spec.id.clone(),
                        error: Box::new(LeaseError::Transport(format!(
                            "{e}; and purging job `{}` failed too: {purge}",
                            spec.id
                        ))),
                    });
                }
                Err(e)
            }
        }
    }

    async fn exec(&self, lease: &Lease, request: ExecRequest) -> Result<ExecStream, LeaseError> {
        let alloc_id = lease.handle.get("alloc_id").ok_or_else(|| {
            LeaseError::Internal(format!("lease `{}` has no allocation", lease.id))
        })?;
        let task = lease.handle.get("task").unwrap_or(&self.task);
        let argv = match &request.cwd {
            Some(cwd) => {
                let mut a = vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    "cd \"$0\" && exec \"$@\"".to_owned(),
                    cwd.clone(),
                ];
                a.extend(request.argv.iter().cloned());
                a
            }
            None => request.argv.clone(),
        };
        exec::open(
            &self.client,
            alloc_id,
            task,
            &argv,
            request.stdin,
            self.timings.exec,
        )
        .await
    }

    async fn release(&self, lease: &Lease, cancel: &CancellationToken) -> Result<(), LeaseError> {
        let job_id = job_id_of(lease);
        self.purge(&job_id, cancel).await
    }

    async fn status(&self, lease: &Lease) -> Result<RemoteState, LeaseError> {
        let job_id = job_id_of(lease);
        match self
            .client
            .get::<Job>(&format!("/v1/job/{job_id}"), &[])
            .await
        {
            Err(CallError::Api(api)) if api.status == 404 => return Ok(RemoteState::Gone),
            Err(e) => return Err(self.client.lease_error("reading the job", "`read-job`", e)),
            Ok(_) => {}
        }
        let Some(alloc_id) = lease.handle.get("alloc_id") else {
            return Ok(RemoteState::Pending);
        };
        match self
            .client
            .get::<Allocation>(&format!("/v1/allocation/{alloc_id}"), &[])
            .await
        {
            Err(CallError::Api(api)) if api.status == 404 => Ok(RemoteState::Gone),
            Err(e) => Err(self
                .client
                .lease_error("reading the allocation", "`read-job`", e)),
            Ok((alloc, _)) if alloc.is_terminal() => Ok(RemoteState::Unhealthy(format!(
                "allocation {}",
                alloc.client_status
            ))),
            Ok((alloc, _)) if alloc.client_status == "running" => Ok(RemoteState::Ready),
            Ok(_) => Ok(RemoteState::Pending),
        }
    }

    async fn record(
        &self,
        lease: &Lease,
    ) -> Result<Option<crate::lease::OwnershipRecord>, LeaseError> {
        let job_id = job_id_of(lease);
        match self
            .client
            .get::<Job>(&format!("/v1/job/{job_id}"), &[])
            .await
        {
            Err(CallError::Api(api)) if api.status == 404 => Ok(None),
            Err(e) => Err(self.client.lease_error("reading the job", "`read-job`", e)),
            Ok((job, _)) => Ok(Some(ownership_of(&job.meta.unwrap_or_default()))),
        }
    }

    async fn list(&self, owner: &str) -> Result<Vec<RemoteLease>, LeaseError> {
        let (stubs, _) = self
            .client
            .get::<Vec<JobStub>>(
                "/v1/jobs",
                &[("prefix", "lbx_".to_owned()), ("meta", "true".to_owned())],
            )
            .await
            .map_err(|e| self.client.lease_error("listing jobs", "`list-jobs`", e))?;
        let mut out = Vec::new();
        for stub in stubs {
            let job_meta = match stub.meta {
                Some(m) => m,
                // 1.1 has no Meta in stubs: read the job.
                None => match self
                    .client
                    .get::<Job>(&format!("/v1/job/{}", stub.id), &[])
                    .await
                {
                    Ok((job, _)) => job.meta.unwrap_or_default(),
                    Err(CallError::Api(api)) if api.status == 404 => continue,
                    Err(e) => {
                        return Err(self.client.lease_error("reading a job", "`read-job`", e));
                    }
                },
            };
            if job_meta.get(meta::MANAGED).map(String::as_str) != Some("true")
                || job_meta.get(meta::OWNER).map(String::as_str) != Some(owner)
                || job_meta.get(meta::SCOPE) != Some(&self.scope)
            {
                continue;
            }
            // The job's own id is the lease id; the Meta must agree (cleanup checks).
            let Ok(id) = stub.id.parse::<crate::lease::LeaseId>() else {
                continue;
            };
            let state = if stub.stop {
                RemoteState::Unhealthy("stopped".into())
            } else {
                RemoteState::Ready
            };
            let mut handle = BTreeMap::new();
            handle.insert("job_id".to_owned(), stub.id.clone());
            handle.insert("task".to_owned(), self.task.clone());
            let lease = Lease {
                id: id.clone(),
                backend: "nomad".to_owned(),
                workdir: job_meta.get(meta::WORKDIR).cloned().unwrap_or_default(),
                handle,
            };
            out.push(RemoteLease {
                id,
                state,
                record: ownership_of(&job_meta),
                details: job_meta,
                lease,
            });
        }
        Ok(out)
    }
}

/// The job of a lease: recorded in its handle, else (a claim left in `registering`) the lease
/// id, which is what warmup names the job.
fn job_id_of(lease: &Lease) -> String {
    lease
        .handle
        .get("job_id")
        .cloned()
        .unwrap_or_else(|| lease.id.to_string())
}

fn ownership_of(job_meta: &BTreeMap<String, String>) -> crate::lease::OwnershipRecord {
    let get = |k: &str| job_meta.get(k).cloned().unwrap_or_default();
    crate::lease::OwnershipRecord {
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

/// What the Nomad backend supports.
#[must_use]
pub fn nomad_features() -> Features {
    Features {
        name: "nomad",
        description: "an allocation on a HashiCorp Nomad cluster (Nomad 1.1 and later)",
        isolation: true,
        exec_kill: false,
        image: true,
        resources: true,
        available: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_workdirs_are_refused() {
        for bad in [
            "/",
            "/tmp",
            "/tmp/",
            "/usr/../etc",
            "//workspace",
            "/workspace/.",
            "relative",
        ] {
            assert!(check_workdir(bad).is_err(), "{bad}");
        }
        for good in ["/workspace/leasebox", "/tmp/x", "/srv/app"] {
            assert!(check_workdir(good).is_ok(), "{good}");
        }
    }

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
