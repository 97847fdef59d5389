//! The key table: the schema of every config key.
//!
//! [`KEYS`] is the one list of keys leasebox understands. Each [`KeyDef`] gives the dotted name,
//! the value type, the trust class (DESIGN §5), the environment twin, the flag, the `NOMAD_*`
//! fallback variable where there is one, a one-line help and an example. The built-in values
//! live in `default.toml` (embedded); a test keeps the two in step, key for key.
//!
//! The CLI builds its `--<section>-<key>` arguments from this table ([`KeyDef::flag`],
//! [`KeyDef::value_name`], [`KeyDef::help`]) and hands the raw values back to
//! [`Config::load`](super::Config::load) as `(dotted key, raw value)` pairs.

use serde::Serialize;

/// Who may set a key (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustClass {
    /// Credential destinations, the backend, the owner, the user's own limits: only from the
    /// user (defaults, user config, environment, flags), never from a repository or recipe.
    UserOnly,
    /// Execution boundaries: from a repository's `.leasebox.toml` only once it is trusted.
    Boundary,
    /// The repository's own choice (image, resources, excludes, timeouts).
    Own,
}

impl TrustClass {
    /// The name shown in `--explain` and the docs: `user-only`, `boundary`, `own`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TrustClass::UserOnly => "user-only",
            TrustClass::Boundary => "boundary",
            TrustClass::Own => "own",
        }
    }
}

impl std::fmt::Display for TrustClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a key's value, in TOML and as raw text (environment, flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A string.
    String,
    /// A filesystem path (a string). In a config file a relative path is relative to the file's
    /// directory and `~/` is the home directory.
    Path,
    /// A non-negative integer.
    Integer,
    /// `true` or `false` (raw text also takes `1`/`0`, `yes`/`no`, `t`/`f`).
    Bool,
    /// A humantime duration written as a string: `"90m"`, `"1h 30m"`, `"45s"`.
    Duration,
    /// A list of strings. Raw text: comma-separated, or a TOML array.
    StringList,
    /// A list of tables of strings (Nomad constraints). Raw text: a TOML array of inline tables.
    TableList,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

impl ValueType {
    /// What a value of this type is, as a phrase: "an integer", "a duration".
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            ValueType::String => "a string".to_owned(),
            ValueType::Path => "a path (a string)".to_owned(),
            ValueType::Integer => "a non-negative integer".to_owned(),
            ValueType::Bool => "`true` or `false`".to_owned(),
            ValueType::Duration => "a duration string".to_owned(),
            ValueType::StringList => "a list of strings".to_owned(),
            ValueType::TableList => "a list of tables".to_owned(),
            ValueType::Choice(choices) => {
                let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
                format!("one of {}", quoted.join(", "))
            }
        }
    }

    /// The short type name used in the docs: `string`, `integer`, `duration`, …
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String | ValueType::Choice(_) => "string",
            ValueType::Path => "path",
            ValueType::Integer => "integer",
            ValueType::Bool => "bool",
            ValueType::Duration => "duration",
            ValueType::StringList => "string list",
            ValueType::TableList => "table list",
        }
    }
}

/// One config key.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyDef {
    /// Dotted name: `backend`, `lease.ttl`, `nomad.image`.
    pub name: &'static str,
    /// The value's type.
    pub ty: ValueType,
    /// Who may set it.
    pub class: TrustClass,
    /// The environment twin: `LEASEBOX_NOMAD_IMAGE` (the address's is `LEASEBOX_NOMAD_ADDR`).
    pub env: &'static str,
    /// The flag's long name without the dashes: `nomad-image`.
    pub flag: &'static str,
    /// The `NOMAD_*` variable read as a fallback below the user config, if any.
    pub nomad_env: Option<&'static str>,
    /// One-line help, for `--help` and the docs.
    pub help: &'static str,
    /// What the default is when it is not a plain value (or is unset), for the docs.
    pub default_note: Option<&'static str>,
    /// An example value as written in TOML, for error messages and the docs.
    pub example: &'static str,
}

impl KeyDef {
    /// The flag as typed: `--nomad-image`.
    #[must_use]
    pub fn flag_arg(&self) -> String {
        format!("--{}", self.flag)
    }

    /// The section (`nomad`, `lease`, `sync`) or `None` for a top-level key.
    #[must_use]
    pub fn section(&self) -> Option<&'static str> {
        self.name.split_once('.').map(|(s, _)| s)
    }

    /// The key's name inside its section: `image` for `nomad.image`.
    #[must_use]
    pub fn leaf(&self) -> &'static str {
        self.name.split_once('.').map_or(self.name, |(_, k)| k)
    }

    /// The value name for `--help`: `DURATION`, `N`, `BOOL`, …
    #[must_use]
    pub fn value_name(&self) -> &'static str {
        match self.ty {
            ValueType::String => "STRING",
            ValueType::Path => "PATH",
            ValueType::Integer => "N",
            ValueType::Bool => "BOOL",
            ValueType::Duration => "DURATION",
            ValueType::StringList => "LIST",
            ValueType::TableList => "TOML",
            ValueType::Choice(_) => "NAME",
        }
    }

    /// Look up a key by its dotted name.
    #[must_use]
    pub fn find(name: &str) -> Option<&'static KeyDef> {
        KEYS.iter().find(|k| k.name == name)
    }

    /// Look up a key by its environment twin.
    #[must_use]
    pub fn find_by_env(var: &str) -> Option<&'static KeyDef> {
        KEYS.iter().find(|k| k.env == var)
    }
}

/// The sections (tables) of the config file.
pub const SECTIONS: &[&str] = &["lease", "sync", "nomad"];

const BACKENDS: &[&str] = &["local", "nomad"];

macro_rules! key {
    ($name:literal, $ty:expr, $class:ident, $env:literal, $flag:literal, $nomad:expr,
     $example:literal, $note:expr, $help:literal) => {
        KeyDef {
            name: $name,
            ty: $ty,
            class: TrustClass::$class,
            env: $env,
            flag: $flag,
            nomad_env: $nomad,
            help: $help,
            default_note: $note,
            example: $example,
        }
    };
}

/// Every config key, in the order of the docs and of `leasebox config`.
pub static KEYS: &[KeyDef] = &[
    // Top level.
    key!(
        "backend",
        ValueType::Choice(BACKENDS),
        UserOnly,
        "LEASEBOX_BACKEND",
        "backend",
        None,
        "\"nomad\"",
        Some("`nomad` when `nomad.address` is set, else `local`"),
        "which backend leases boxes: `local` or `nomad`"
    ),
    key!(
        "owner",
        ValueType::String,
        UserOnly,
        "LEASEBOX_OWNER",
        "owner",
        None,
        "\"alice\"",
        Some("first 16 hex digits of sha256 of `user@host`"),
        "the owner recorded on leases; set the same owner on several machines to share them"
    ),
    key!(
        "max_cpu",
        ValueType::Integer,
        UserOnly,
        "LEASEBOX_MAX_CPU",
        "max-cpu",
        None,
        "8000",
        None,
        "the most CPU (MHz) a repository or recipe may ask for"
    ),
    key!(
        "max_memory_mb",
        ValueType::Integer,
        UserOnly,
        "LEASEBOX_MAX_MEMORY_MB",
        "max-memory-mb",
        None,
        "16384",
        None,
        "the most memory (MB) a repository or recipe may ask for"
    ),
    key!(
        "max_disk_mb",
        ValueType::Integer,
        UserOnly,
        "LEASEBOX_MAX_DISK_MB",
        "max-disk-mb",
        None,
        "20480",
        None,
        "the most disk (MB) a repository or recipe may ask for"
    ),
    key!(
        "max_leases",
        ValueType::Integer,
        UserOnly,
        "LEASEBOX_MAX_LEASES",
        "max-leases",
        None,
        "20",
        None,
        "the most leases this user may hold at once"
    ),
    key!(
        "lua_env_allow",
        ValueType::StringList,
        UserOnly,
        "LEASEBOX_LUA_ENV_ALLOW",
        "lua-env-allow",
        None,
        "[\"CI\", \"GITHUB_SHA\"]",
        None,
        "environment variables recipes may read with `os.getenv`"
    ),
    key!(
        "exec_timeout",
        ValueType::Duration,
        Own,
        "LEASEBOX_EXEC_TIMEOUT",
        "exec-timeout",
        None,
        "\"20m\"",
        Some("none"),
        "default timeout of each command run on a box"
    ),
    // [lease]
    key!(
        "lease.ttl",
        ValueType::Duration,
        Boundary,
        "LEASEBOX_LEASE_TTL",
        "lease-ttl",
        None,
        "\"90m\"",
        None,
        "how long a lease lives before cleanup releases it"
    ),
    key!(
        "lease.idle",
        ValueType::Duration,
        Boundary,
        "LEASEBOX_LEASE_IDLE",
        "lease-idle",
        None,
        "\"30m\"",
        None,
        "how long an unused lease lives before cleanup releases it"
    ),
    // [sync]
    key!(
        "sync.exclude",
        ValueType::StringList,
        Own,
        "LEASEBOX_SYNC_EXCLUDE",
        "sync-exclude",
        None,
        "[\"target/\", \"node_modules/\"]",
        Some("dependency and build directories (see below)"),
        "paths never synced to the box (gitignore syntax)"
    ),
    // [nomad]
    key!(
        "nomad.address",
        ValueType::String,
        UserOnly,
        "LEASEBOX_NOMAD_ADDR",
        "nomad-address",
        Some("NOMAD_ADDR"),
        "\"https://nomad.example.com:4646\"",
        Some("unset"),
        "the Nomad HTTP API: `http://`, `https://` or `unix:///absolute/path`"
    ),
    key!(
        "nomad.token_env",
        ValueType::String,
        UserOnly,
        "LEASEBOX_NOMAD_TOKEN_ENV",
        "nomad-token-env",
        None,
        "\"NOMAD_TOKEN\"",
        None,
        "the name of the environment variable holding the Nomad ACL token (never the token)"
    ),
    key!(
        "nomad.ca_cert",
        ValueType::Path,
        UserOnly,
        "LEASEBOX_NOMAD_CA_CERT",
        "nomad-ca-cert",
        Some("NOMAD_CACERT"),
        "\"~/.nomad/ca.pem\"",
        Some("unset"),
        "CA certificate file to verify the Nomad server"
    ),
    key!(
        "nomad.ca_path",
        ValueType::Path,
        UserOnly,
        "LEASEBOX_NOMAD_CA_PATH",
        "nomad-ca-path",
        Some("NOMAD_CAPATH"),
        "\"~/.nomad/ca.d\"",
        Some("unset"),
        "directory of CA certificates to verify the Nomad server"
    ),
    key!(
        "nomad.client_cert",
        ValueType::Path,
        UserOnly,
        "LEASEBOX_NOMAD_CLIENT_CERT",
        "nomad-client-cert",
        Some("NOMAD_CLIENT_CERT"),
        "\"~/.nomad/cli.pem\"",
        Some("unset"),
        "client certificate for mutual TLS"
    ),
    key!(
        "nomad.client_key",
        ValueType::Path,
        UserOnly,
        "LEASEBOX_NOMAD_CLIENT_KEY",
        "nomad-client-key",
        Some("NOMAD_CLIENT_KEY"),
        "\"~/.nomad/cli-key.pem\"",
        Some("unset"),
        "client key for mutual TLS"
    ),
    key!(
        "nomad.tls_server_name",
        ValueType::String,
        UserOnly,
        "LEASEBOX_NOMAD_TLS_SERVER_NAME",
        "nomad-tls-server-name",
        Some("NOMAD_TLS_SERVER_NAME"),
        "\"server.global.nomad\"",
        Some("unset"),
        "server name to verify the Nomad certificate against"
    ),
    key!(
        "nomad.skip_verify",
        ValueType::Bool,
        UserOnly,
        "LEASEBOX_NOMAD_SKIP_VERIFY",
        "nomad-skip-verify",
        Some("NOMAD_SKIP_VERIFY"),
        "false",
        None,
        "do not verify the Nomad server's certificate (unsafe)"
    ),
    key!(
        "nomad.region",
        ValueType::String,
        Boundary,
        "LEASEBOX_NOMAD_REGION",
        "nomad-region",
        Some("NOMAD_REGION"),
        "\"global\"",
        None,
        "the Nomad region"
    ),
    key!(
        "nomad.namespace",
        ValueType::String,
        Boundary,
        "LEASEBOX_NOMAD_NAMESPACE",
        "nomad-namespace",
        Some("NOMAD_NAMESPACE"),
        "\"default\"",
        None,
        "the Nomad namespace"
    ),
    key!(
        "nomad.datacenters",
        ValueType::StringList,
        Boundary,
        "LEASEBOX_NOMAD_DATACENTERS",
        "nomad-datacenters",
        None,
        "[\"dc1\"]",
        Some("`[]`: the datacenters of the ready nodes"),
        "datacenters the job may run in"
    ),
    key!(
        "nomad.node_pool",
        ValueType::String,
        Boundary,
        "LEASEBOX_NOMAD_NODE_POOL",
        "nomad-node-pool",
        None,
        "\"ci\"",
        Some("unset (Nomad's default pool)"),
        "the node pool the job runs in"
    ),
    key!(
        "nomad.driver",
        ValueType::String,
        Boundary,
        "LEASEBOX_NOMAD_DRIVER",
        "nomad-driver",
        None,
        "\"docker\"",
        None,
        "the task driver: `docker`, `podman`, `exec`, `raw_exec`, …"
    ),
    key!(
        "nomad.task",
        ValueType::String,
        Boundary,
        "LEASEBOX_NOMAD_TASK",
        "nomad-task",
        None,
        "\"leasebox\"",
        None,
        "the name of the task commands run in"
    ),
    key!(
        "nomad.workdir",
        ValueType::String,
        Boundary,
        "LEASEBOX_NOMAD_WORKDIR",
        "nomad-workdir",
        None,
        "\"/workspace/leasebox\"",
        Some("per driver: `/workspace/leasebox`, or `${NOMAD_ALLOC_DIR}/leasebox` for `raw_exec`"),
        "the directory the repository is synced to inside the task"
    ),
    key!(
        "nomad.constraints",
        ValueType::TableList,
        Boundary,
        "LEASEBOX_NOMAD_CONSTRAINTS",
        "nomad-constraints",
        None,
        "[{ attribute = \"${attr.kernel.name}\", operator = \"=\", value = \"linux\" }]",
        Some("`[]`: none"),
        "placement constraints: tables of `attribute`, `operator`, `value`"
    ),
    key!(
        "nomad.jobspec_template",
        ValueType::Path,
        Boundary,
        "LEASEBOX_NOMAD_JOBSPEC_TEMPLATE",
        "nomad-jobspec-template",
        None,
        "\"ci/lease.nomad.hcl\"",
        Some("unset (the built-in job)"),
        "a `.json` or `.hcl` job template replacing the built-in job"
    ),
    key!(
        "nomad.alloc_ready_timeout",
        ValueType::Duration,
        Boundary,
        "LEASEBOX_NOMAD_ALLOC_READY_TIMEOUT",
        "nomad-alloc-ready-timeout",
        None,
        "\"5m\"",
        None,
        "how long warmup waits for the allocation to run"
    ),
    key!(
        "nomad.image",
        ValueType::String,
        Own,
        "LEASEBOX_NOMAD_IMAGE",
        "nomad-image",
        None,
        "\"rust:1.88\"",
        None,
        "the container image (image drivers only)"
    ),
    key!(
        "nomad.cpu",
        ValueType::Integer,
        Own,
        "LEASEBOX_NOMAD_CPU",
        "nomad-cpu",
        None,
        "2000",
        None,
        "CPU (MHz) reserved for the box"
    ),
    key!(
        "nomad.memory_mb",
        ValueType::Integer,
        Own,
        "LEASEBOX_NOMAD_MEMORY_MB",
        "nomad-memory-mb",
        None,
        "4096",
        None,
        "memory (MB) reserved for the box"
    ),
    key!(
        "nomad.disk_mb",
        ValueType::Integer,
        Own,
        "LEASEBOX_NOMAD_DISK_MB",
        "nomad-disk-mb",
        None,
        "2048",
        None,
        "ephemeral disk (MB) reserved for the box"
    ),
];

/// The closest known key to a misspelled one, for "did you mean" hints: a key whose leaf is
/// exactly `name`'s leaf (a key put in the wrong section), else the most similar name when it is
/// close enough. Sections count as candidates too.
#[must_use]
pub fn suggest(name: &str) -> Option<&'static str> {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    if let Some(k) = KEYS.iter().find(|k| k.leaf() == leaf && k.name != name) {
        return Some(k.name);
    }
    let candidates = KEYS.iter().map(|k| k.name).chain(SECTIONS.iter().copied());
    candidates
        .map(|c| (c, strsim::normalized_damerau_levenshtein(name, c)))
        .filter(|(_, score)| *score >= 0.6)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// The closest environment twin to a misspelled `LEASEBOX_*` variable.
#[must_use]
pub fn suggest_env(var: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (k.env, strsim::normalized_damerau_levenshtein(var, k.env)))
        .filter(|(_, score)| *score >= 0.85)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_in_known_sections() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KEYS {
            assert!(seen.insert(k.name), "duplicate key {}", k.name);
            if let Some(section) = k.section() {
                assert!(
                    SECTIONS.contains(&section),
                    "{} is in an unknown section",
                    k.name
                );
            }
        }
    }

    #[test]
    fn twins_and_flags_follow_the_naming_rule() {
        for k in KEYS {
            let env = if k.name == "nomad.address" {
                "LEASEBOX_NOMAD_ADDR".to_owned()
            } else {
                format!("LEASEBOX_{}", k.name.replace('.', "_").to_uppercase())
            };
            assert_eq!(k.env, env, "environment twin of {}", k.name);
            assert_eq!(
                k.flag,
                k.name.replace(['.', '_'], "-"),
                "flag of {}",
                k.name
            );
        }
        assert_eq!(
            KeyDef::find("nomad.image").unwrap().flag_arg(),
            "--nomad-image"
        );
        assert_eq!(KeyDef::find("lease.ttl").unwrap().env, "LEASEBOX_LEASE_TTL");
        assert_eq!(
            KeyDef::find("exec_timeout").unwrap().flag_arg(),
            "--exec-timeout"
        );
    }

    #[test]
    fn nomad_fallbacks_are_the_nomad_cli_variables() {
        let with: Vec<_> = KEYS
            .iter()
            .filter_map(|k| k.nomad_env.map(|v| (k.name, v)))
            .collect();
        assert_eq!(
            with,
            [
                ("nomad.address", "NOMAD_ADDR"),
                ("nomad.ca_cert", "NOMAD_CACERT"),
                ("nomad.ca_path", "NOMAD_CAPATH"),
                ("nomad.client_cert", "NOMAD_CLIENT_CERT"),
                ("nomad.client_key", "NOMAD_CLIENT_KEY"),
                ("nomad.tls_server_name", "NOMAD_TLS_SERVER_NAME"),
                ("nomad.skip_verify", "NOMAD_SKIP_VERIFY"),
                ("nomad.region", "NOMAD_REGION"),
                ("nomad.namespace", "NOMAD_NAMESPACE"),
            ]
        );
    }

    #[test]
    fn classes_follow_the_design_table() {
        let class = |n| KeyDef::find(n).unwrap().class;
        for n in [
            "backend",
            "owner",
            "max_cpu",
            "lua_env_allow",
            "nomad.address",
        ] {
            assert_eq!(class(n), TrustClass::UserOnly, "{n}");
        }
        for n in ["nomad.token_env", "nomad.ca_cert", "nomad.skip_verify"] {
            assert_eq!(class(n), TrustClass::UserOnly, "{n}");
        }
        for n in [
            "nomad.region",
            "nomad.constraints",
            "lease.ttl",
            "nomad.alloc_ready_timeout",
        ] {
            assert_eq!(class(n), TrustClass::Boundary, "{n}");
        }
        for n in [
            "nomad.image",
            "nomad.disk_mb",
            "exec_timeout",
            "sync.exclude",
        ] {
            assert_eq!(class(n), TrustClass::Own, "{n}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("nomad.imgae"), Some("nomad.image"));
        assert_eq!(suggest("image"), Some("nomad.image"));
        assert_eq!(suggest("nomda"), Some("nomad"));
        assert_eq!(suggest("lease.tll"), Some("lease.ttl"));
        assert_eq!(suggest("completely_different"), None);
        assert_eq!(
            suggest_env("LEASEBOX_NOMAD_IMAGES"),
            Some("LEASEBOX_NOMAD_IMAGE")
        );
        assert_eq!(suggest_env("LEASEBOX_STATE_DIR"), None);
    }
}
