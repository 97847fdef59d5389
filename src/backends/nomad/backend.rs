//! The Nomad backend itself: its settings, tunables and the [`Backend`] impl, which puts the
//! job (`job`), placement and readiness (`placement`, `readiness`), the workdir (`workdir`) and
//! the purge (`purge`) together: register, exec, release, status, the ownership record, list.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::client::{Address, CallError, Client, TlsSettings};
use super::exec::{self, ExecTimings};
use super::job::{job_id_of, meta, ownership_of, scope_fingerprint};
use super::wire::{Allocation, Job, JobStub, RegisterResponse};
use super::workdir::{check_workdir, default_workdir};
use crate::config::Settings;
use crate::lease::{
    Backend, ExecRequest, ExecStream, Features, Lease, LeaseError, LeaseSpec, RemoteLease,
    RemoteState,
};

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
    pub(super) client: Client,
    pub(super) task: String,
    pub(super) driver: String,
    pub(super) datacenters: Vec<String>,
    pub(super) node_pool: Option<String>,
    pub(super) constraints: Vec<crate::config::ConstraintSpec>,
    pub(super) image: String,
    pub(super) ready_timeout: Duration,
    pub(super) scope: String,
    pub(super) timings: NomadTimings,
    pub(super) jobspec_template: Option<crate::config::FileSetting>,
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
                Some(template) => self.templated_job(template, spec, &workdir).await,
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
            &self.driver,
            &argv,
            request.stdin,
            request.tty,
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
        let members = lease.members();
        let mut states = Vec::with_capacity(members.len());
        for member in &members {
            let Some(alloc_id) = member.handle.get("alloc_id") else {
                return Ok(RemoteState::Pending);
            };
            states.push(self.allocation_state(alloc_id).await?);
        }
        // A group is as good as its worst box.
        let count = states.len();
        for (index, state) in states.iter().enumerate() {
            match state {
                RemoteState::Ready => {}
                RemoteState::Unhealthy(why) if count > 1 => {
                    return Ok(RemoteState::Unhealthy(format!(
                        "box {} of {count}: {why}",
                        index + 1
                    )));
                }
                RemoteState::Gone if count > 1 => {
                    return Ok(RemoteState::Unhealthy(format!(
                        "box {} of {count}: allocation gone",
                        index + 1
                    )));
                }
                other => return Ok(other.clone()),
            }
        }
        Ok(RemoteState::Ready)
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
                boxes: Vec::new(),
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

impl NomadBackend {
    /// The live state of one allocation.
    async fn allocation_state(&self, alloc_id: &str) -> Result<RemoteState, LeaseError> {
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
