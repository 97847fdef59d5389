//! A Nomad API test server: a clean-room re-implementation of what a Nomad agent does on the
//! wire, written from `NOMAD-WIRE.md` and the recordings in `fixtures/nomad-1.1.2/` (never from
//! Nomad's own server code). Real HTTP/1.1 on `127.0.0.1:0` (Go-canonical header names), a
//! unix socket on the modern profile, the real exec websocket, tasks as real local processes.
//!
//! # Starting an instance
//!
//! ```ignore
//! use std::time::Duration;
//! use crate::support::nomad::{DriverHealth, NomadServer, Profile};
//!
//! let nomad = NomadServer::start_v1_1();   // or NomadServer::start_modern()
//! let nomad = NomadServer::builder()
//!     .profile(Profile::V1_1)               // default: Profile::Modern (2.x)
//!     .acl(true)                            // ACLs on (default off)
//!     .driver("docker", DriverHealth::Healthy) // default: only raw_exec is healthy
//!     .namespace("dev")                     // besides `default`
//!     .kill_timeout(Duration::from_millis(200))     // default 300 ms (real: the job's 5 s)
//!     .reschedule_delay(Duration::from_millis(200)) // default 300 ms (real: the policy's)
//!     .default_blocking_wait(Duration::from_secs(1)) // `index` without `wait`; default 1 s
//!     .timings(Timings::real())             // or every real-world wait at once
//!     .tasks_ignore_sigint(true)            // as the recorded agent: bare loops die by SIGKILL
//!     .unix_socket(true)                    // modern only: `nomad.unix_url()`
//!     .start();
//! std::env::set_var("NOMAD_ADDR", nomad.url()); // "http://127.0.0.1:PORT"
//! ```
//!
//! `start` is synchronous: each instance runs on its own small tokio runtime, so it works from
//! sync and async tests alike, and many instances run in parallel. Dropping it kills every
//! process group it started and stops the listeners. Task processes lead their own process
//! group; exec'd commands join their task's group. Children get SIGKILL if the test process
//! dies (`PR_SET_PDEATHSIG`), and a guardian process kills the whole groups (grandchildren
//! included) in that case too.
//!
//! Tasks of any healthy driver run as local processes with raw_exec semantics: `command` +
//! `args` from the task `Config` (an image-only docker task runs a keepalive loop), in the
//! task directory, with `NOMAD_ALLOC_DIR`, `NOMAD_TASK_DIR`, `NOMAD_SECRETS_DIR`,
//! `NOMAD_ALLOC_ID`, `NOMAD_JOB_NAME`, … set; [`NomadServer::alloc_dir`] gives the directory.
//!
//! # ACLs
//!
//! With `.acl(true)`: [`NomadServer::management_token`] bootstraps (unless a test already did
//! over `POST /v1/acl/bootstrap`) and returns the management secret;
//! [`NomadServer::create_policy`]`(name, rules)` takes HCL rules (`namespace "default" { policy =
//! "read" capabilities = ["alloc-exec", "alloc-node-exec"] }`, `node { policy = "read" }`,
//! `agent { policy = "read" }`; a token reads the policies attached to it); [`NomadServer::create_token`]`(name, &[policies])` returns a
//! client secret. `PUT /v1/acl/policy/:name` and `PUT /v1/acl/token` work over HTTP too.
//!
//! # Injecting faults
//!
//! - [`NomadServer::fail_http`]`("GET /v1/job/*/allocations", nth, times)`: HTTP 500
//!   `injected fault` on the `nth` (1-based) matching call and the `times - 1` after it
//!   ([`NomadServer::fail_http_with`] picks the status and body). `*` matches one path segment,
//!   a trailing `/**` the rest; the method is optional.
//! - [`NomadServer::add_latency`]`(route, delay)`: every matching call waits first.
//! - [`NomadServer::drop_next_exec`]`(after_frames)`: the next exec session drops TCP (no close
//!   frame, no `exited`) after that many data frames; its process keeps running.
//! - [`NomadServer::kill_exec_on_broken_output`]`(delay)`: from then on, a client that goes
//!   away while its command prints gets the exec'd process (that process alone) killed `delay`
//!   after the first output frame that can no longer be sent, as a raw_exec agent does
//!   (NOMAD-WIRE.md §9); a quiet command's exec'd process keeps running.
//! - [`NomadServer::fail_next_allocation`]`(AllocFailure::FailAndReplace)`: the next allocation's
//!   task exits 1 at once (an exec that reaches it while it still reads `running` is refused as
//!   `not running`) and is rescheduled after the reschedule delay (`FollowupEvalID` and an
//!   `alloc-failure` eval with `WaitUntil`, then `NextAllocation`/`PreviousAllocation` and a
//!   `RescheduleTracker`). `AllocFailure::Fail` leaves it to the job's ReschedulePolicy.
//! - [`NomadServer::make_unplaceable`]`(job_id_or_star, reason)`: placement fails with
//!   `FailedTGAllocs.<group>.ConstraintFiltered {reason: 1}` and a blocked eval (a driver that is
//!   not healthy gives `missing drivers`, as on a real agent).
//! - [`NomadServer::lose_node`]: the node goes `down`, live allocations become `lost`, their
//!   processes are killed, and new jobs cannot be placed.
//! - [`NomadServer::set_unresponsive`]`(true)`: requests are accepted but never answered until
//!   it is set back to `false`.
//! - [`NomadServer::pause_starts`]`(true)`: new allocations stay `pending` until unpaused (a stuck
//!   client); `.alloc_start_delay(d)` on the builder makes every start slow instead.
//! - [`NomadServer::set_driver`]`(name, health)`: change driver health at run time.
//!
//! # Inspecting
//!
//! [`NomadServer::jobs`], [`NomadServer::job`], [`NomadServer::allocations`],
//! [`NomadServer::alive_processes`] (pid, pgid, allocation, task, `task`/`exec`),
//! [`NomadServer::requests`] (method, path, raw query, headers and body of every request, exec
//! upgrades included; [`RecordedRequest::header`]), [`NomadServer::clear_requests`],
//! [`NomadServer::wait_running`] and [`NomadServer::wait_alloc_terminal`].
//!
//! What is not implemented: gzip responses, `filter`
//! expressions, the Task API socket, Variables, Services, deployments beyond their IDs.

#![allow(dead_code, reason = "a support API: not every test uses every helper")]

mod acl;
mod config;
mod exec;
mod faults;
mod hcl;
mod http;
mod jobspec;
mod process;
mod scheduler;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use config::{Config, DriverHealth, NodeSpec, Profile, Timings};
pub use faults::{AllocFailure, Route};
pub use process::ProcessInfo;

use faults::{Faults, HttpFailure, Latency};
use process::ProcessTable;
use scheduler::{AllocRuntime, KillReason};
use state::State;

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`), empty when there was none.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A job as the inspection API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    pub namespace: String,
    pub id: String,
    pub stop: bool,
    pub status: String,
    pub version: u64,
}

/// State shared by the HTTP handlers, the scheduler and the allocation runners.
pub(crate) struct Shared {
    pub config: Config,
    pub state: Mutex<State>,
    pub index_tx: watch::Sender<u64>,
    pub faults: Mutex<Faults>,
    pub unresponsive_tx: watch::Sender<bool>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub procs: ProcessTable,
    pub runtimes: Mutex<HashMap<String, AllocRuntime>>,
    pub data_dir: PathBuf,
    pub handle: tokio::runtime::Handle,
    pub http_addr: Mutex<String>,
    /// Set when the instance is being dropped: no new processes.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Runs a write against the state store and wakes blocking queries.
    pub fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, index) = {
            let mut st = self.state.lock().unwrap();
            let r = f(&mut st);
            (r, st.index)
        };
        self.index_tx.send_replace(index);
        r
    }

    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(fut);
    }

    pub fn runtime_dir(&self, alloc_id: &str) -> PathBuf {
        self.data_dir.join("alloc").join(alloc_id)
    }

    /// Registers the client-side runtime of a new allocation and starts its runner.
    pub fn start_alloc(self: &Arc<Self>, alloc_id: String) {
        let (kill_tx, kill_rx) = watch::channel(None);
        let failure = {
            let mut f = self.faults.lock().unwrap();
            if f.alloc_failures.is_empty() {
                None
            } else {
                Some(f.alloc_failures.remove(0))
            }
        };
        self.runtimes.lock().unwrap().insert(
            alloc_id.clone(),
            AllocRuntime {
                kill_tx,
                tasks: Default::default(),
                failure,
                dir: self.runtime_dir(&alloc_id),
            },
        );
        let s = self.clone();
        self.spawn(async move { scheduler::run_alloc(s, alloc_id, kill_rx).await });
    }

    pub fn kill_alloc(&self, alloc_id: &str, reason: KillReason) {
        if let Some(rt) = self.runtimes.lock().unwrap().get(alloc_id) {
            rt.kill_tx.send_replace(Some(reason));
        }
    }
}

/// Builds a [`NomadServer`]; see the module docs.
pub struct NomadServerBuilder {
    config: Config,
}

impl NomadServerBuilder {
    pub fn profile(mut self, profile: Profile) -> Self {
        self.config.profile = profile;
        self
    }

    pub fn acl(mut self, enabled: bool) -> Self {
        self.config.acl_enabled = enabled;
        self
    }

    /// Sets what the node reports for a driver (`raw_exec` is healthy by default; `docker`,
    /// `exec`, `java`, `qemu` are not detected). Jobs of any healthy driver run as local
    /// processes (`command` + `args` from the task config; an image-only task runs a keepalive).
    pub fn driver(mut self, name: &str, health: DriverHealth) -> Self {
        self.config.drivers.insert(name.to_string(), health);
        self
    }

    /// Adds a namespace besides `default`.
    pub fn namespace(mut self, name: &str) -> Self {
        self.config.namespaces.push(name.to_string());
        self
    }

    pub fn datacenter(mut self, dc: &str) -> Self {
        self.config.datacenter = dc.to_string();
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.config.region = region.to_string();
        self
    }

    pub fn timings(mut self, timings: Timings) -> Self {
        self.config.timings = timings;
        self
    }

    pub fn kill_timeout(mut self, d: Duration) -> Self {
        self.config.timings.kill_timeout = Some(d);
        self
    }

    pub fn reschedule_delay(mut self, d: Duration) -> Self {
        self.config.timings.reschedule_delay = Some(d);
        self
    }

    /// How long a new allocation stays `pending` before its tasks start (default 20 ms).
    pub fn alloc_start_delay(mut self, d: Duration) -> Self {
        self.config.timings.alloc_start_delay = d;
        self
    }

    pub fn default_blocking_wait(mut self, d: Duration) -> Self {
        self.config.timings.default_blocking_wait = d;
        self
    }

    /// Start tasks with SIGINT ignored, as the recorded agent did (see [`Config`]).
    pub fn tasks_ignore_sigint(mut self, yes: bool) -> Self {
        self.config.tasks_ignore_sigint = yes;
        self
    }

    /// Also listen on a unix socket (modern profile only; 1.1 has no unix address).
    pub fn unix_socket(mut self, yes: bool) -> Self {
        self.config.unix_socket = yes;
        self
    }

    /// The client refuses every exec with `Permission denied` (`disable_remote_exec`).
    pub fn disable_remote_exec(mut self, yes: bool) -> Self {
        self.config.disable_remote_exec = yes;
        self
    }

    /// A cluster of `n` client nodes (`leasebox-test-node`, `leasebox-test-node-2`, …), each
    /// offering `cpu` MHz to allocations; placement follows count, `spread` and
    /// `distinct_hosts` (without a spread it bin-packs, as Nomad does).
    pub fn nodes(mut self, n: usize, cpu: u64) -> Self {
        self.config.node_cpu = Some(cpu);
        self.config.extra_nodes = (2..=n)
            .map(|i| NodeSpec {
                name: format!("{}-{i}", self.config.node_name),
                cpu,
            })
            .collect();
        self
    }

    /// One more client node, offering `cpu` MHz (less than a lease asks for: a node that
    /// cannot take an allocation).
    pub fn node(mut self, name: &str, cpu: u64) -> Self {
        self.config.extra_nodes.push(NodeSpec {
            name: name.to_string(),
            cpu,
        });
        self
    }

    pub fn start(self) -> NomadServer {
        NomadServer::start(self.config)
    }
}

/// A running Nomad API test server. Dropping it stops it and kills its processes.
pub struct NomadServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    unix_path: Option<PathBuf>,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl NomadServer {
    pub fn builder() -> NomadServerBuilder {
        NomadServerBuilder {
            config: Config::new(Profile::Modern),
        }
    }

    /// A 1.1 profile instance with defaults.
    pub fn start_v1_1() -> NomadServer {
        Self::builder().profile(Profile::V1_1).start()
    }

    /// A modern profile instance with defaults.
    pub fn start_modern() -> NomadServer {
        Self::builder().start()
    }

    fn start(config: Config) -> NomadServer {
        assert!(
            !(config.unix_socket && config.profile.is_v1_1()),
            "Nomad 1.1 has no unix address: use Profile::Modern for unix_socket(true)"
        );
        let dir = tempfile::Builder::new()
            .prefix("nomad-test-")
            .tempdir()
            .expect("temp dir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nomad-test-server")
            .enable_all()
            .build()
            .expect("runtime");
        let (index_tx, _) = watch::channel(0);
        let (unresponsive_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config)),
            config: config.clone(),
            index_tx,
            faults: Mutex::new(Faults::default()),
            unresponsive_tx,
            requests: Mutex::new(Vec::new()),
            procs: ProcessTable::default(),
            runtimes: Mutex::new(HashMap::new()),
            data_dir: dir.path().to_path_buf(),
            handle: runtime.handle().clone(),
            http_addr: Mutex::new(String::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        *shared.http_addr.lock().unwrap() = addr.to_string();
        let unix_path = config.unix_socket.then(|| dir.path().join("nomad.sock"));
        {
            let _guard = runtime.enter();
            let tcp = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            runtime.spawn(http::serve_tcp(shared.clone(), tcp));
            if let Some(path) = &unix_path {
                let unix = tokio::net::UnixListener::bind(path).expect("bind unix socket");
                runtime.spawn(http::serve_unix(shared.clone(), unix));
            }
        }
        NomadServer {
            shared,
            addr,
            unix_path,
            runtime: Some(runtime),
            _dir: dir,
        }
    }

    pub fn profile(&self) -> Profile {
        self.shared.config.profile
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `unix:///…/nomad.sock` when started with `unix_socket(true)`.
    pub fn unix_url(&self) -> Option<String> {
        self.unix_path
            .as_ref()
            .map(|p| format!("unix://{}", p.display()))
    }

    pub fn unix_path(&self) -> Option<PathBuf> {
        self.unix_path.clone()
    }

    // ----- ACLs -----

    /// The management token's secret, bootstrapping ACLs first if nobody did.
    pub fn management_token(&self) -> String {
        http::bootstrap(&self.shared).unwrap_or_else(|existing| existing)
    }

    /// Creates or replaces a policy. Panics on rules the HCL subset cannot read.
    pub fn create_policy(&self, name: &str, rules: &str) {
        http::put_policy(&self.shared, name, "", rules).expect("valid policy rules");
    }

    /// Creates a client token with these policies and returns its secret.
    pub fn create_token(&self, name: &str, policies: &[&str]) -> String {
        let policies: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
        http::create_token(&self.shared, name, "client", &policies).secret_id
    }

    // ----- faults -----

    /// HTTP 500 `injected fault` on the `nth` (1-based) call matching `route` and the
    /// `times - 1` calls after it.
    pub fn fail_http(&self, route: &str, nth: u64, times: u64) {
        self.fail_http_with(route, nth, times, 500, "injected fault");
    }

    pub fn fail_http_with(&self, route: &str, nth: u64, times: u64, status: u16, body: &str) {
        self.shared.faults.lock().unwrap().http.push(HttpFailure {
            route: Route::parse(route),
            nth,
            times,
            status,
            body: body.to_string(),
            seen: 0,
        });
    }

    pub fn add_latency(&self, route: &str, delay: Duration) {
        self.shared.faults.lock().unwrap().latency.push(Latency {
            route: Route::parse(route),
            delay,
        });
    }

    /// The next exec session drops its TCP connection, without a close frame or `exited`,
    /// after `after_data_frames` output frames; its process keeps running.
    /// From now on, behave as a raw_exec agent does when a client disconnects while output
    /// flows: kill the exec'd process (only it) `delay` after the next output it cannot send.
    pub fn kill_exec_on_broken_output(&self, delay: std::time::Duration) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .exec_kill_on_broken_output = Some(delay);
    }

    pub fn drop_next_exec(&self, after_data_frames: usize) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .exec_drops
            .push(after_data_frames);
    }

    /// The next terminal (`tty=true`) exec session drops its TCP connection after
    /// `after_data_frames` output frames, as [`Self::drop_next_exec`] does; other execs
    /// before it are left alone.
    pub fn drop_next_tty_exec(&self, after_data_frames: usize) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .tty_exec_drops
            .push(after_data_frames);
    }

    pub fn fail_next_allocation(&self, failure: AllocFailure) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .alloc_failures
            .push(failure);
    }

    /// Jobs with this ID (`*`: every job) cannot be placed; `reason` is reported in
    /// `FailedTGAllocs.<group>.ConstraintFiltered`.
    pub fn make_unplaceable(&self, job_id: &str, reason: &str) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .unplaceable
            .push((job_id.to_string(), reason.to_string()));
    }

    /// Changes what the node reports for a driver; later placements follow it.
    pub fn set_driver(&self, name: &str, health: DriverHealth) {
        self.shared.write(|st| {
            let idx = st.bump();
            st.drivers.insert(name.to_string(), health);
            st.node_modify_index = idx;
            st.tables.nodes = idx;
        });
    }

    /// While paused, new allocations stay `pending` (client status and task state) instead of
    /// starting: a slow or stuck client. Unpausing starts them.
    pub fn pause_starts(&self, paused: bool) {
        self.shared.write(|st| {
            st.bump();
            st.starts_paused = paused;
        });
    }

    pub fn lose_node(&self) {
        scheduler::lose_node(&self.shared);
    }

    /// While set, requests are accepted and read but never answered.
    pub fn set_unresponsive(&self, yes: bool) {
        self.shared.unresponsive_tx.send_replace(yes);
    }

    // ----- inspection -----

    pub fn jobs(&self) -> Vec<JobInfo> {
        self.shared.read(|st| {
            st.jobs
                .values()
                .map(|j| JobInfo {
                    namespace: j.namespace.clone(),
                    id: j.id.clone(),
                    stop: j.stop,
                    status: st.job_status(j).to_string(),
                    version: j.version,
                })
                .collect()
        })
    }

    /// The full job as `GET /v1/job/:id` shows it.
    pub fn job(&self, namespace: &str, id: &str) -> Option<Value> {
        self.shared
            .read(|st| st.job(namespace, id).map(|j| st.job_full(j)))
    }

    /// Full allocations of a job (all incarnations), oldest first.
    pub fn allocations(&self, job_id: &str) -> Vec<Value> {
        let profile = self.profile();
        let dc = self.shared.config.datacenter.clone();
        self.shared.read(|st| {
            let mut allocs: Vec<_> = st.allocs.values().filter(|a| a.job_id == job_id).collect();
            allocs.sort_by_key(|a| a.create_index);
            allocs.iter().map(|a| a.full(profile, &dc)).collect()
        })
    }

    /// Processes (tasks and exec'd commands) that are still alive.
    pub fn alive_processes(&self) -> Vec<ProcessInfo> {
        self.shared.procs.alive()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// The allocation directory (`NOMAD_ALLOC_DIR` is its `alloc/` child).
    pub fn alloc_dir(&self, alloc_id: &str) -> PathBuf {
        self.shared.runtime_dir(alloc_id)
    }

    /// Waits (polling the state, not HTTP) until an allocation of `job_id` has every task
    /// running; returns its ID.
    pub fn wait_running(&self, job_id: &str, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let found = self.shared.read(|st| {
                st.allocs
                    .values()
                    .filter(|a| a.job_id == job_id && a.client_status == "running")
                    .find(|a| {
                        !a.task_states.is_empty()
                            && a.task_states.values().all(|t| t.state == "running")
                    })
                    .map(|a| a.id.clone())
            });
            if found.is_some() || std::time::Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the allocation's client status is terminal; returns it.
    pub fn wait_alloc_terminal(&self, alloc_id: &str, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = self.shared.read(|st| {
                st.allocs
                    .get(alloc_id)
                    .filter(|a| a.client_terminal())
                    .map(|a| a.client_status.clone())
            });
            if status.is_some() || std::time::Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NomadServer {
    fn drop(&mut self) {
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.procs.kill_all();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.shared.procs.kill_all();
    }
}
