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
//! 5. the repository's `.leasebox.toml` — **not read yet**: an empty [`Layer::Repository`] slot
//!    and [`Source::Repository`] are reserved for the trust gate; if the file exists,
//!    [`Config::notices`] says it was found and ignored;
//! 6. a recipe's `lease{}` options — **not read yet** ([`Layer::Recipe`], [`Source::Recipe`]);
//! 7. flags (`--nomad-image`, `--lease-ttl`, …), passed in as `(dotted key, raw value)`.
//!
//! Every resolved value records its [`Source`]; [`Config::explain`] lists them for
//! `leasebox config --explain`.
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
mod resolve;
mod settings;
mod source;
mod value;

pub use error::ConfigError;
pub use explain::{ExplainRow, UNSET, render_explain};
pub use keys::{KEYS, KeyDef, SECTIONS, TrustClass, ValueType, suggest};
pub use resolve::{Config, ConfigInputs, DEFAULT_TOML, Layer, REPOSITORY_FILE, Resolved};
pub use settings::{
    BackendChoice, ConstraintSpec, NomadSettings, Settings, hostname, owner_default,
};
pub use source::Source;
pub use value::Value;
