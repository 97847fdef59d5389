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

    /// Whether the key names a file leasebox reads (every path key does). Set in a repository's
    /// `.leasebox.toml`, such a file must lie inside the repository and is pinned by its trust
    /// together with the file (`config::trust`): a later path key joins by being a path.
    #[must_use]
    pub fn reads_file(&self) -> bool {
        self.ty == ValueType::Path
    }

    /// Look up a key by its dotted name.
    #[must_use]
    pub fn find(name: &str) -> Option<&'static KeyDef> {
        KEYS.iter().find(|k| k.name == name)
    }

    /// Look up a key by its flag's long name, without the dashes (`nomad-image`).
    #[must_use]
    pub fn find_by_flag(long: &str) -> Option<&'static KeyDef> {
        KEYS.iter().find(|k| k.flag == long)
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

/// Every config key, in the order of the docs and of `leasebox config`.
pub static KEYS: &[KeyDef] = &[
    // Top level.
    KeyDef {
        name: "backend",
        ty: ValueType::Choice(BACKENDS),
        class: TrustClass::UserOnly,
        env: "LEASEBOX_BACKEND",
        flag: "backend",
        nomad_env: None,
        help: "which backend leases boxes: `local` or `nomad`",
        default_note: Some("`nomad` when `nomad.address` is set, else `local`"),
        example: "\"nomad\"",
    },
    KeyDef {
        name: "owner",
        ty: ValueType::String,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_OWNER",
        flag: "owner",
        nomad_env: None,
        help: "the owner recorded on leases; set the same owner on several machines to share them",
        default_note: Some("first 16 hex digits of sha256 of `user@host`"),
        example: "\"alice\"",
    },
    KeyDef {
        name: "max_cpu",
        ty: ValueType::Integer,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_MAX_CPU",
        flag: "max-cpu",
        nomad_env: None,
        help: "the most CPU (MHz) a repository or recipe may ask for",
        default_note: None,
        example: "8000",
    },
    KeyDef {
        name: "max_memory_mb",
        ty: ValueType::Integer,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_MAX_MEMORY_MB",
        flag: "max-memory-mb",
        nomad_env: None,
        help: "the most memory (MB) a repository or recipe may ask for",
        default_note: None,
        example: "16384",
    },
    KeyDef {
        name: "max_disk_mb",
        ty: ValueType::Integer,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_MAX_DISK_MB",
        flag: "max-disk-mb",
        nomad_env: None,
        help: "the most disk (MB) a repository or recipe may ask for",
        default_note: None,
        example: "20480",
    },
    KeyDef {
        name: "max_leases",
        ty: ValueType::Integer,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_MAX_LEASES",
        flag: "max-leases",
        nomad_env: None,
        help: "the most leases this user may hold at once",
        default_note: None,
        example: "20",
    },
    KeyDef {
        name: "lua_env_allow",
        ty: ValueType::StringList,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_LUA_ENV_ALLOW",
        flag: "lua-env-allow",
        nomad_env: None,
        help: "environment variables recipes may read with `os.getenv`",
        default_note: None,
        example: "[\"CI\", \"GITHUB_SHA\"]",
    },
    KeyDef {
        name: "exec_timeout",
        ty: ValueType::Duration,
        class: TrustClass::Own,
        env: "LEASEBOX_EXEC_TIMEOUT",
        flag: "exec-timeout",
        nomad_env: None,
        help: "default timeout of each command run on a box",
        default_note: Some("none"),
        example: "\"20m\"",
    },
    // [lease]
    KeyDef {
        name: "lease.ttl",
        ty: ValueType::Duration,
        class: TrustClass::Boundary,
        env: "LEASEBOX_LEASE_TTL",
        flag: "lease-ttl",
        nomad_env: None,
        help: "how long a lease lives before cleanup releases it",
        default_note: None,
        example: "\"90m\"",
    },
    KeyDef {
        name: "lease.idle",
        ty: ValueType::Duration,
        class: TrustClass::Boundary,
        env: "LEASEBOX_LEASE_IDLE",
        flag: "lease-idle",
        nomad_env: None,
        help: "how long an unused lease lives before cleanup releases it",
        default_note: None,
        example: "\"30m\"",
    },
    // [sync]
    KeyDef {
        name: "sync.exclude",
        ty: ValueType::StringList,
        class: TrustClass::Own,
        env: "LEASEBOX_SYNC_EXCLUDE",
        flag: "sync-exclude",
        nomad_env: None,
        help: "paths never synced to the box (gitignore syntax)",
        default_note: Some("dependency and build directories (see below)"),
        example: "[\"target/\", \"node_modules/\"]",
    },
    // [nomad]
    KeyDef {
        name: "nomad.address",
        ty: ValueType::String,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_ADDR",
        flag: "nomad-address",
        nomad_env: Some("NOMAD_ADDR"),
        help: "the Nomad HTTP API: `http://`, `https://` or `unix:///absolute/path`",
        default_note: Some("unset"),
        example: "\"https://nomad.example.com:4646\"",
    },
    KeyDef {
        name: "nomad.token_env",
        ty: ValueType::String,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_TOKEN_ENV",
        flag: "nomad-token-env",
        nomad_env: None,
        help: "the name of the environment variable holding the Nomad ACL token (never the token)",
        default_note: None,
        example: "\"NOMAD_TOKEN\"",
    },
    KeyDef {
        name: "nomad.ca_cert",
        ty: ValueType::Path,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_CA_CERT",
        flag: "nomad-ca-cert",
        nomad_env: Some("NOMAD_CACERT"),
        help: "CA certificate file to verify the Nomad server",
        default_note: Some("unset"),
        example: "\"~/.nomad/ca.pem\"",
    },
    KeyDef {
        name: "nomad.ca_path",
        ty: ValueType::Path,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_CA_PATH",
        flag: "nomad-ca-path",
        nomad_env: Some("NOMAD_CAPATH"),
        help: "directory of CA certificates to verify the Nomad server",
        default_note: Some("unset"),
        example: "\"~/.nomad/ca.d\"",
    },
    KeyDef {
        name: "nomad.client_cert",
        ty: ValueType::Path,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_CLIENT_CERT",
        flag: "nomad-client-cert",
        nomad_env: Some("NOMAD_CLIENT_CERT"),
        help: "client certificate for mutual TLS",
        default_note: Some("unset"),
        example: "\"~/.nomad/cli.pem\"",
    },
    KeyDef {
        name: "nomad.client_key",
        ty: ValueType::Path,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_CLIENT_KEY",
        flag: "nomad-client-key",
        nomad_env: Some("NOMAD_CLIENT_KEY"),
        help: "client key for mutual TLS",
        default_note: Some("unset"),
        example: "\"~/.nomad/cli-key.pem\"",
    },
    KeyDef {
        name: "nomad.tls_server_name",
        ty: ValueType::String,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_TLS_SERVER_NAME",
        flag: "nomad-tls-server-name",
        nomad_env: Some("NOMAD_TLS_SERVER_NAME"),
        help: "server name to verify the Nomad certificate against",
        default_note: Some("unset"),
        example: "\"server.global.nomad\"",
    },
    KeyDef {
        name: "nomad.skip_verify",
        ty: ValueType::Bool,
        class: TrustClass::UserOnly,
        env: "LEASEBOX_NOMAD_SKIP_VERIFY",
        flag: "nomad-skip-verify",
        nomad_env: Some("NOMAD_SKIP_VERIFY"),
        help: "do not verify the Nomad server's certificate (unsafe)",
        default_note: None,
        example: "false",
    },
    KeyDef {
        name: "nomad.region",
        ty: ValueType::String,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_REGION",
        flag: "nomad-region",
        nomad_env: Some("NOMAD_REGION"),
        help: "the Nomad region",
        default_note: None,
        example: "\"global\"",
    },
    KeyDef {
        name: "nomad.namespace",
        ty: ValueType::String,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_NAMESPACE",
        flag: "nomad-namespace",
        nomad_env: Some("NOMAD_NAMESPACE"),
        help: "the Nomad namespace",
        default_note: None,
        example: "\"default\"",
    },
    KeyDef {
        name: "nomad.datacenters",
        ty: ValueType::StringList,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_DATACENTERS",
        flag: "nomad-datacenters",
        nomad_env: None,
        help: "datacenters the job may run in",
        default_note: Some("`[]`: the datacenters of the ready nodes"),
        example: "[\"dc1\"]",
    },
    KeyDef {
        name: "nomad.node_pool",
        ty: ValueType::String,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_NODE_POOL",
        flag: "nomad-node-pool",
        nomad_env: None,
        help: "the node pool the job runs in",
        default_note: Some("unset (Nomad's default pool)"),
        example: "\"ci\"",
    },
    KeyDef {
        name: "nomad.driver",
        ty: ValueType::String,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_DRIVER",
        flag: "nomad-driver",
        nomad_env: None,
        help: "the task driver: `docker`, `podman`, `exec`, `raw_exec`, …",
        default_note: None,
        example: "\"docker\"",
    },
    KeyDef {
        name: "nomad.task",
        ty: ValueType::String,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_TASK",
        flag: "nomad-task",
        nomad_env: None,
        help: "the name of the task commands run in",
        default_note: None,
        example: "\"leasebox\"",
    },
    KeyDef {
        name: "nomad.workdir",
        ty: ValueType::String,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_WORKDIR",
        flag: "nomad-workdir",
        nomad_env: None,
        help: "the directory the repository is synced to inside the task",
        default_note: Some(
            "per driver: `/workspace/leasebox`, or `${NOMAD_ALLOC_DIR}/leasebox` for `raw_exec`",
        ),
        example: "\"/workspace/leasebox\"",
    },
    KeyDef {
        name: "nomad.constraints",
        ty: ValueType::TableList,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_CONSTRAINTS",
        flag: "nomad-constraints",
        nomad_env: None,
        help: "placement constraints: tables of `attribute`, `operator`, `value`",
        default_note: Some("`[]`: none"),
        example: "[{ attribute = \"${attr.kernel.name}\", operator = \"=\", value = \"linux\" }]",
    },
    KeyDef {
        name: "nomad.jobspec_template",
        ty: ValueType::Path,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_JOBSPEC_TEMPLATE",
        flag: "nomad-jobspec-template",
        nomad_env: None,
        help: "a `.json` or `.hcl` job template replacing the built-in job",
        default_note: Some("unset (the built-in job)"),
        example: "\"ci/lease.nomad.hcl\"",
    },
    KeyDef {
        name: "nomad.alloc_ready_timeout",
        ty: ValueType::Duration,
        class: TrustClass::Boundary,
        env: "LEASEBOX_NOMAD_ALLOC_READY_TIMEOUT",
        flag: "nomad-alloc-ready-timeout",
        nomad_env: None,
        help: "how long warmup waits for the allocation to run",
        default_note: None,
        example: "\"5m\"",
    },
    KeyDef {
        name: "nomad.image",
        ty: ValueType::String,
        class: TrustClass::Own,
        env: "LEASEBOX_NOMAD_IMAGE",
        flag: "nomad-image",
        nomad_env: None,
        help: "the container image (image drivers only)",
        default_note: None,
        example: "\"rust:1.88\"",
    },
    KeyDef {
        name: "nomad.cpu",
        ty: ValueType::Integer,
        class: TrustClass::Own,
        env: "LEASEBOX_NOMAD_CPU",
        flag: "nomad-cpu",
        nomad_env: None,
        help: "CPU (MHz) reserved for the box",
        default_note: None,
        example: "2000",
    },
    KeyDef {
        name: "nomad.memory_mb",
        ty: ValueType::Integer,
        class: TrustClass::Own,
        env: "LEASEBOX_NOMAD_MEMORY_MB",
        flag: "nomad-memory-mb",
        nomad_env: None,
        help: "memory (MB) reserved for the box",
        default_note: None,
        example: "4096",
    },
    KeyDef {
        name: "nomad.disk_mb",
        ty: ValueType::Integer,
        class: TrustClass::Own,
        env: "LEASEBOX_NOMAD_DISK_MB",
        flag: "nomad-disk-mb",
        nomad_env: None,
        help: "ephemeral disk (MB) reserved for the box",
        default_note: None,
        example: "2048",
    },
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
        .filter(|c| *c != name)
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
mod tests;
