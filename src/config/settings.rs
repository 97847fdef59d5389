//! [`Settings`]: the resolved config as typed fields, for the rest of the crate.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::resolve::Resolved;
use super::value::Value;

/// Which backend leases boxes (DESIGN §9 "Backend choice").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// A scratch directory on this machine.
    Local,
    /// A Nomad allocation.
    Nomad,
}

impl BackendChoice {
    /// `local` or `nomad`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Local => "local",
            BackendChoice::Nomad => "nomad",
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Nomad placement constraint (`LTarget`, `Operand`, `RTarget` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstraintSpec {
    /// The left side, e.g. `${attr.kernel.name}` (empty when the operator needs none).
    pub attribute: String,
    /// The operator, `=` when not given.
    pub operator: String,
    /// The right side (empty when the operator needs none).
    pub value: String,
}

/// A path key's file: where it is and, when a trusted `.leasebox.toml` named it, the bytes the
/// trust pinned (use those, never a second read: they are what the user trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    /// The file (as resolved from the config; canonical when pinned).
    pub path: PathBuf,
    /// The pinned bytes, when the repository's config named the file.
    pub pinned: Option<std::sync::Arc<[u8]>>,
}

impl FileSetting {
    /// The file's bytes: the pinned ones, else read now.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn read(&self) -> std::io::Result<std::sync::Arc<[u8]>> {
        match &self.pinned {
            Some(bytes) => Ok(std::sync::Arc::clone(bytes)),
            None => std::fs::read(&self.path).map(Into::into),
        }
    }
}

/// The resolved config, typed. Built by [`Config::load`](super::Config::load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `backend`: explicit, else `nomad` when `nomad.address` is set, else `local`.
    pub backend: BackendChoice,
    /// `owner`: explicit, else the first 16 hex digits of sha256 of `user@host`.
    pub owner: String,
    /// `max_cpu` (MHz).
    pub max_cpu: u64,
    /// `max_memory_mb`.
    pub max_memory_mb: u64,
    /// `max_disk_mb`.
    pub max_disk_mb: u64,
    /// `max_leases`.
    pub max_leases: u64,
    /// `lua_env_allow`: names recipes may `os.getenv`.
    pub lua_env_allow: Vec<String>,
    /// `exec_timeout`: `None` means no timeout.
    pub exec_timeout: Option<Duration>,
    /// `lease.ttl`.
    pub lease_ttl: Duration,
    /// `lease.idle`.
    pub lease_idle: Duration,
    /// `sync.exclude` (gitignore syntax).
    pub sync_exclude: Vec<String>,
    /// The `[nomad]` keys.
    pub nomad: NomadSettings,
}

/// The `[nomad]` keys, typed. Paths set in a config file are already made absolute against the
/// file's directory (`~/` against `HOME`); paths from the environment or a flag are as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NomadSettings {
    /// `nomad.address`, checked to be `http://`, `https://` or `unix:///absolute/path`.
    pub address: Option<String>,
    /// `nomad.token_env`: the name of the variable holding the token (never the token).
    pub token_env: String,
    /// `nomad.ca_cert`.
    pub ca_cert: Option<PathBuf>,
    /// `nomad.ca_path`.
    pub ca_path: Option<PathBuf>,
    /// `nomad.client_cert`.
    pub client_cert: Option<PathBuf>,
    /// `nomad.client_key`.
    pub client_key: Option<PathBuf>,
    /// `nomad.tls_server_name`.
    pub tls_server_name: Option<String>,
    /// `nomad.skip_verify`.
    pub skip_verify: bool,
    /// `nomad.region` (`global` unless set).
    pub region: String,
    /// `nomad.namespace` (`default` unless set).
    pub namespace: String,
    /// `nomad.datacenters`; empty means the datacenters of the ready nodes.
    pub datacenters: Vec<String>,
    /// `nomad.node_pool`.
    pub node_pool: Option<String>,
    /// `nomad.driver`.
    pub driver: String,
    /// `nomad.task`.
    pub task: String,
    /// `nomad.workdir`; `None` means the per-driver default (the backend decides).
    pub workdir: Option<String>,
    /// `nomad.constraints`.
    pub constraints: Vec<ConstraintSpec>,
    /// `nomad.jobspec_template`.
    pub jobspec_template: Option<FileSetting>,
    /// `nomad.alloc_ready_timeout`.
    pub alloc_ready_timeout: Duration,
    /// `nomad.image`.
    pub image: String,
    /// `nomad.cpu` (MHz).
    pub cpu: u64,
    /// `nomad.memory_mb`.
    pub memory_mb: u64,
    /// `nomad.disk_mb`.
    pub disk_mb: u64,
}

/// Typed reads of the resolved values. Keys with a built-in value are always present (a test
/// checks `default.toml` against the key table), so the `expect`s below cannot fire.
struct Reader<'a> {
    resolved: &'a BTreeMap<&'static str, Resolved>,
    home: Option<&'a str>,
}

impl Reader<'_> {
    fn value(&self, key: &str) -> Option<&Value> {
        self.resolved.get(key).and_then(|r| r.value.as_ref())
    }

    fn opt_string(&self, key: &str) -> Option<String> {
        match self.value(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn string(&self, key: &str) -> String {
        self.opt_string(key)
            .unwrap_or_else(|| panic!("default.toml declares a string `{key}`"))
    }

    fn integer(&self, key: &str) -> u64 {
        match self.value(key) {
            Some(Value::Integer(i)) => *i,
            _ => panic!("default.toml declares an integer `{key}`"),
        }
    }

    fn bool(&self, key: &str) -> bool {
        match self.value(key) {
            Some(Value::Bool(b)) => *b,
            _ => panic!("default.toml declares a bool `{key}`"),
        }
    }

    fn opt_duration(&self, key: &str) -> Option<Duration> {
        match self.value(key) {
            Some(Value::Duration { value, .. }) => Some(*value),
            _ => None,
        }
    }

    fn duration(&self, key: &str) -> Duration {
        self.opt_duration(key)
            .unwrap_or_else(|| panic!("default.toml declares a duration `{key}`"))
    }

    fn list(&self, key: &str) -> Vec<String> {
        match self.value(key) {
            Some(Value::StringList(l)) => l.clone(),
            _ => panic!("default.toml declares a list `{key}`"),
        }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        let resolved = self.resolved.get(key)?;
        let Some(Value::String(raw)) = &resolved.value else {
            return None;
        };
        Some(resolve_path(raw, resolved.source.base_dir(), self.home))
    }

    fn constraints(&self, key: &str) -> Vec<ConstraintSpec> {
        let Some(Value::TableList(tables)) = self.value(key) else {
            return Vec::new();
        };
        tables
            .iter()
            .map(|t| ConstraintSpec {
                attribute: t.get("attribute").cloned().unwrap_or_default(),
                operator: t.get("operator").cloned().unwrap_or_else(|| "=".to_owned()),
                value: t.get("value").cloned().unwrap_or_default(),
            })
            .collect()
    }
}

/// A path from config: `~/x` against `home`, a relative path against `base` (the directory of
/// the file that set it), anything else as given.
pub(crate) fn resolve_path(raw: &str, base: Option<&Path>, home: Option<&str>) -> PathBuf {
    if let (Some(rest), Some(home)) = (raw.strip_prefix("~/"), home) {
        return Path::new(home).join(rest);
    }
    let path = PathBuf::from(raw);
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

impl Settings {
    /// Build the typed settings from the resolved values (computed defaults already filled).
    pub(crate) fn from_resolved(
        resolved: &BTreeMap<&'static str, Resolved>,
        home: Option<&str>,
    ) -> Settings {
        let r = Reader { resolved, home };
        let backend = match r.opt_string("backend").as_deref() {
            Some("nomad") => BackendChoice::Nomad,
            _ => BackendChoice::Local,
        };
        Settings {
            backend,
            owner: r.string("owner"),
            max_cpu: r.integer("max_cpu"),
            max_memory_mb: r.integer("max_memory_mb"),
            max_disk_mb: r.integer("max_disk_mb"),
            max_leases: r.integer("max_leases"),
            lua_env_allow: r.list("lua_env_allow"),
            exec_timeout: r.opt_duration("exec_timeout"),
            lease_ttl: r.duration("lease.ttl"),
            lease_idle: r.duration("lease.idle"),
            sync_exclude: r.list("sync.exclude"),
            nomad: NomadSettings {
                address: r.opt_string("nomad.address"),
                token_env: r.string("nomad.token_env"),
                ca_cert: r.path("nomad.ca_cert"),
                ca_path: r.path("nomad.ca_path"),
                client_cert: r.path("nomad.client_cert"),
                client_key: r.path("nomad.client_key"),
                tls_server_name: r.opt_string("nomad.tls_server_name"),
                skip_verify: r.bool("nomad.skip_verify"),
                region: r.string("nomad.region"),
                namespace: r.string("nomad.namespace"),
                datacenters: r.list("nomad.datacenters"),
                node_pool: r.opt_string("nomad.node_pool"),
                driver: r.string("nomad.driver"),
                task: r.string("nomad.task"),
                workdir: r.opt_string("nomad.workdir"),
                constraints: r.constraints("nomad.constraints"),
                jobspec_template: r
                    .path("nomad.jobspec_template")
                    .map(|path| FileSetting { path, pinned: None }),
                alloc_ready_timeout: r.duration("nomad.alloc_ready_timeout"),
                image: r.string("nomad.image"),
                cpu: r.integer("nomad.cpu"),
                memory_mb: r.integer("nomad.memory_mb"),
                disk_mb: r.integer("nomad.disk_mb"),
            },
        }
    }
}

/// The default owner: the first 16 hex digits of sha256 of `user@host`.
#[must_use]
pub fn owner_default(user: &str, host: &str) -> String {
    let digest = Sha256::digest(format!("{user}@{host}").as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(16);
    hex
}

/// This machine's host name (`gethostname(2)`), or `localhost` when it cannot be read.
#[must_use]
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call; gethostname
    // writes at most `len` bytes into it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_default_is_deterministic() {
        assert_eq!(owner_default("alice", "box"), owner_default("alice", "box"));
        assert_ne!(owner_default("alice", "box"), owner_default("bob", "box"));
        let o = owner_default("alice", "box");
        assert_eq!(o.len(), 16);
        assert!(o.chars().all(|c| c.is_ascii_hexdigit()));
        // sha256("alice@box"), first 16 hex digits.
        let full = hex::encode(Sha256::digest(b"alice@box"));
        assert_eq!(o, full[..16]);
    }

    #[test]
    fn hostname_is_not_empty() {
        assert!(!hostname().is_empty());
    }

    #[test]
    fn paths_resolve_against_the_file() {
        let base = Path::new("/home/a/.config/leasebox");
        assert_eq!(
            resolve_path("ca.pem", Some(base), None),
            base.join("ca.pem")
        );
        assert_eq!(
            resolve_path("/etc/ca.pem", Some(base), None),
            PathBuf::from("/etc/ca.pem")
        );
        assert_eq!(
            resolve_path("~/ca.pem", Some(base), Some("/home/a")),
            PathBuf::from("/home/a/ca.pem")
        );
        assert_eq!(resolve_path("ca.pem", None, None), PathBuf::from("ca.pem"));
    }
}
