//! Per-instance configuration: the version profile, ACL mode, driver health and the timings
//! that stand in for Nomad's slow real-world waits.

use std::collections::BTreeMap;
use std::time::Duration;

/// Which Nomad version the instance behaves like on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Nomad 1.1.2, as recorded in `fixtures/nomad-1.1.2/`: datacenters required and `*`
    /// never placed, 1.1 token/self texts, a close frame after `exited`, no unix address, no
    /// `Meta`/`NodePool` in stubs, no `NextAllocation` in allocation stubs.
    V1_1,
    /// Nomad 2.x (2.0.3 and later): `Datacenters` defaults to `["*"]`, `acls-disabled` and
    /// anonymous tokens, TCP dropped after `exited`, exec errors after the upgrade, unix
    /// listener allowed, `Authorization: Bearer` accepted.
    Modern,
}

impl Profile {
    pub fn version(self) -> &'static str {
        match self {
            Profile::V1_1 => "1.1.2",
            Profile::Modern => "2.0.3",
        }
    }

    pub fn is_v1_1(self) -> bool {
        self == Profile::V1_1
    }
}

/// What the node reports for one driver in `/v1/nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverHealth {
    /// Detected and healthy: jobs using it are placed (and run as local processes).
    Healthy,
    /// Detected but unhealthy: jobs using it are not placed (`missing drivers`).
    Unhealthy,
    /// Not detected: jobs using it are not placed (`missing drivers`).
    Undetected,
}

/// The waits that take seconds or minutes on a real agent, scaled down for tests.
#[derive(Clone, Debug)]
pub struct Timings {
    /// Replaces every task's `KillTimeout` when set (the events still name the job's value).
    pub kill_timeout: Option<Duration>,
    /// Replaces the computed reschedule delay when set (`WaitUntil` follows the real wait).
    pub reschedule_delay: Option<Duration>,
    /// Replaces the restart `Delay` when set.
    pub restart_delay: Option<Duration>,
    /// The blocking-query wait when `wait` is absent (Nomad: 300 s).
    pub default_blocking_wait: Duration,
    /// The cap on `wait` (Nomad: 300 s).
    pub max_blocking_wait: Duration,
    /// How long an allocation stays `pending` before its task is started.
    pub alloc_start_delay: Duration,
    /// How long a finished or broken exec session keeps its TCP connection when a real agent
    /// would keep it open until the client drops it.
    pub hung_exec_hold: Duration,
}

impl Timings {
    /// Tiny waits for tests.
    pub fn fast() -> Timings {
        Timings {
            kill_timeout: Some(Duration::from_millis(300)),
            reschedule_delay: Some(Duration::from_millis(300)),
            restart_delay: Some(Duration::from_millis(100)),
            default_blocking_wait: Duration::from_secs(1),
            max_blocking_wait: Duration::from_secs(300),
            alloc_start_delay: Duration::from_millis(20),
            hung_exec_hold: Duration::from_secs(30),
        }
    }

    /// The waits of a real agent.
    pub fn real() -> Timings {
        Timings {
            kill_timeout: None,
            reschedule_delay: None,
            restart_delay: None,
            default_blocking_wait: Duration::from_secs(300),
            max_blocking_wait: Duration::from_secs(300),
            alloc_start_delay: Duration::from_millis(20),
            hung_exec_hold: Duration::from_secs(300),
        }
    }
}

/// Everything an instance is started with. Built by [`super::NomadServerBuilder`].
#[derive(Clone, Debug)]
pub struct Config {
    pub profile: Profile,
    pub acl_enabled: bool,
    pub region: String,
    pub datacenter: String,
    pub node_name: String,
    pub drivers: BTreeMap<String, DriverHealth>,
    pub namespaces: Vec<String>,
    pub timings: Timings,
    /// Start task processes with SIGINT ignored, as the recorded 1.1.2 agent did (it was
    /// started in the background by a script): a bare shell loop then survives the interrupt
    /// and is force-killed after the kill timeout (exit 137).
    pub tasks_ignore_sigint: bool,
    /// Also listen on a unix socket (modern profile only).
    pub unix_socket: bool,
    /// Run `docker`/`exec`/other healthy drivers' tasks as local processes too.
    pub disable_remote_exec: bool,
    /// The CPU (MHz) the first node offers; `None`: unlimited (the single-node default, as
    /// the recorded agent never ran out).
    pub node_cpu: Option<u64>,
    /// Client nodes besides the first (the dev agent's own), in order.
    pub extra_nodes: Vec<NodeSpec>,
}

/// A client node besides the first: its name and the CPU (MHz) it offers allocations. A node
/// offering less than one allocation asks for cannot take any (`DimensionExhausted`).
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub cpu: u64,
}

impl Config {
    pub fn new(profile: Profile) -> Config {
        let mut drivers = BTreeMap::new();
        drivers.insert("raw_exec".to_string(), DriverHealth::Healthy);
        drivers.insert("docker".to_string(), DriverHealth::Undetected);
        drivers.insert("exec".to_string(), DriverHealth::Undetected);
        drivers.insert("java".to_string(), DriverHealth::Undetected);
        drivers.insert("qemu".to_string(), DriverHealth::Undetected);
        Config {
            profile,
            acl_enabled: false,
            region: "global".to_string(),
            datacenter: "dc1".to_string(),
            node_name: "leasebox-test-node".to_string(),
            drivers,
            namespaces: vec!["default".to_string()],
            timings: Timings::fast(),
            tasks_ignore_sigint: false,
            unix_socket: false,
            disable_remote_exec: false,
            node_cpu: None,
            extra_nodes: Vec::new(),
        }
    }
}
