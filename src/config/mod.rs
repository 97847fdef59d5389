//! Layered config with provenance.
//!
//! Every key leasebox understands is in one table, [`KEYS`]: its type, its trust class
//! (DESIGN §5), its environment twin, its flag and, for some `[nomad]` keys, the `NOMAD_*`
//! variable it falls back to. The built-in values are in `default.toml`, embedded with
//! `include_str!`, which declares every key (a key without a built-in value is written there as
//! a comment); a test keeps the table and the file in step.
//!
//! # Precedence
//!
//! [`Config::load`] reads these layers, lowest first; a higher layer replaces a lower one's
//! value whole (a list is replaced, not merged):
//!
//! 1. built-in defaults (`default.toml`), plus the worked-out defaults of `backend` (`nomad`
//!    when `nomad.address` is set by any layer, else `local`) and `owner` (a hash of
//!    `user@host`);
//! 2. `NOMAD_*` fallbacks (`NOMAD_ADDR`, `NOMAD_REGION`, `NOMAD_NAMESPACE`, the TLS family;
//!    empty means unset; a bad value is an error only when no higher layer sets the key) —
//!    below the user config, DESIGN §4;
//! 3. the user config: `$LEASEBOX_CONFIG` (which must exist, and must not lie inside the
//!    repository), else `$XDG_CONFIG_HOME/leasebox/config.toml`, else
//!    `$HOME/.config/leasebox/config.toml` (a missing file is fine);
//! 4. `LEASEBOX_*` environment twins (`LEASEBOX_NOMAD_IMAGE`, `LEASEBOX_LEASE_TTL`, …; the
//!    address's is `LEASEBOX_NOMAD_ADDR`; empty means unset);
//! 5. the repository's `.leasebox.toml` at the repository root ([`Source::Repository`]), untrusted:
//!    its own keys always, execution boundaries only when the trust store pins the file's current
//!    hash for this root, user-only keys never (see *Trust* below);
//! 6. a recipe's `lease{}` options ([`Source::Recipe`]), own keys only, added by
//!    [`Config::with_recipe`] once the host has run the recipe;
//! 7. flags (`--nomad-image`, `--lease-ttl`, …), passed in as `(dotted key, raw value)`.
//!
//! Every resolved value records its [`Source`]; [`Config::explain`] lists them for
//! `leasebox config --explain`.
//!
//! # Trust
//!
//! Each key has a [`TrustClass`] (DESIGN §5). A repository's `.leasebox.toml` and a recipe's
//! `lease{}` are written by whoever committed them, so:
//!
//! - a **user-only** key there (`nomad.address`, `nomad.token_env`, TLS, `backend`, `owner`,
//!   `max_*`, `lua_env_allow`) is an error naming the key, the file and line, and where to set it
//!   instead — whatever else is set, so a repository cannot probe for a token;
//! - an **execution boundary** there is accepted only from a `.leasebox.toml` whose sha256 the
//!   user pinned with `leasebox trust` ([`TrustStore`], `<state dir>/trust.json`); untrusted
//!   (never trusted, or changed since) it is an error naming `leasebox trust`; from a recipe it
//!   is always an error;
//! - the repository's **own** keys are accepted, and `nomad.cpu`/`memory_mb`/`disk_mb` asked for
//!   by either must not exceed the user's `max_cpu`/`max_memory_mb`/`max_disk_mb`.
//!
//! These refusals are [`ErrorKind::TrustRefused`](crate::error::ErrorKind::TrustRefused).
//!
//! # Use
//!
//! ```no_run
//! use leasebox::config::{Config, ConfigInputs};
//!
//! let inputs = ConfigInputs {
//!     env: std::env::vars().collect(),
//!     flags: vec![("nomad.image".into(), "rust:1.88".into())],
//!     repo_root: None,
//!     trust_dir: None,
//! };
//! let config = Config::load(&inputs)?;
//! for notice in config.notices() {
//!     eprintln!("leasebox: {notice}");
//! }
//! let settings = config.settings();
//! println!("{} on {}", settings.nomad.image, settings.backend);
//! # Ok::<(), leasebox::config::ConfigError>(())
//! ```
//!
//! Nothing in this module reads the process environment: the caller passes it in.

mod error;
mod explain;
mod file;
mod keys;
mod layers;
#[cfg(test)]
mod matrix;
mod resolve;
mod settings;
mod source;
mod trust;
mod value;

pub use error::{ConfigError, UntrustedOrigin};
pub use explain::{ExplainRow, UNSET, render_explain};
pub use file::FileEntry;
pub use keys::{KEYS, KeyDef, SECTIONS, TrustClass, ValueType, suggest};
pub use layers::Layer;
pub use resolve::{
    Config, ConfigInputs, DEFAULT_TOML, REPOSITORY_FILE, RecipeOption, RepositoryConfig, Resolved,
    builtin_defaults,
};
pub use settings::{
    BackendChoice, ConstraintSpec, FileSetting, NomadSettings, Settings, hostname, owner_default,
};
pub use source::Source;
pub use trust::{
    PinnedFile, RepositoryFile, TRUST_FILE, TrustEntry, TrustStatus, TrustStore, TrustedFile,
    canonical_root,
};
pub use value::Value;
