//! [`ConfigError`]: everything that can be wrong with the config, said so the user can fix it.
//!
//! Messages are lowercase, put names in backticks, point at `file:line` (or the variable, or
//! the flag) and say how to fix. They never echo a value that could be a secret.

use std::path::{Path, PathBuf};

use super::keys::KeyDef;
use super::source::Source;
use super::value::raw_example;
use crate::error::{ErrorKind, HasKind};

/// A config that cannot be loaded, or a refusal of the trust gate. Every variant exits 78: the
/// refusals are [`ErrorKind::TrustRefused`], the rest [`ErrorKind::ConfigError`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file is not valid TOML.
    #[error("failed to parse {}:{line}: {message}; fix the TOML syntax there", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// The parser's message.
        message: String,
    },

    /// A config file sets a key leasebox does not know.
    #[error("unknown key `{key}` in {}:{line}; {}", path.display(), unknown_hint(*suggestion))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The dotted key as written.
        key: String,
        /// The closest known key or section.
        suggestion: Option<&'static str>,
    },

    /// A config file gives a key a value of the wrong type.
    #[error(
        "`{}` in {}:{line} must be {}, e.g. `{}`, but is {found}",
        key.name,
        path.display(),
        key.ty.describe(),
        file_example(key)
    )]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The key.
        key: &'static KeyDef,
        /// What it is ("an integer").
        found: String,
    },

    /// A config file gives a section (`[nomad]`) a value that is not a table.
    #[error(
        "`{section}` in {}:{line} must be a table, e.g. `[{section}]`, but is {found}",
        path.display()
    )]
    NotATable {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The section.
        section: &'static str,
        /// What it is ("an integer").
        found: String,
    },

    /// A config file gives a key a value of the right type that is not acceptable (a bad
    /// duration, an unknown backend, an address without a scheme).
    #[error(
        "invalid `{}` in {}:{line}: {reason}; write it like `{}`",
        key.name,
        path.display(),
        file_example(key)
    )]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The key.
        key: &'static KeyDef,
        /// Why it is not acceptable.
        reason: String,
    },

    /// An environment variable (a `LEASEBOX_*` twin or a `NOMAD_*` fallback) holds a value its
    /// key cannot take.
    #[error(
        "invalid `{var}` (for `{}`): {reason}; expected {}, e.g. `{var}={}`, or unset `{var}`",
        key.name,
        key.ty.describe(),
        raw_example(key)
    )]
    EnvValue {
        /// The variable.
        var: &'static str,
        /// The key it sets.
        key: &'static KeyDef,
        /// Why it is not acceptable.
        reason: String,
    },

    /// A flag holds a value its key cannot take.
    #[error(
        "invalid value for `--{}`: {reason}; expected {}, e.g. `--{} {}`",
        key.flag,
        key.ty.describe(),
        key.flag,
        raw_example(key)
    )]
    FlagValue {
        /// The key whose flag it is (`key.flag_arg()` is the flag as typed).
        key: &'static KeyDef,
        /// Why it is not acceptable.
        reason: String,
    },

    /// The CLI passed a flag for a key that does not exist (a bug in the caller).
    #[error("unknown config key `{key}` given as a flag; {}", unknown_hint(*suggestion))]
    UnknownFlagKey {
        /// The dotted key.
        key: String,
        /// The closest known key.
        suggestion: Option<&'static str>,
    },

    /// `LEASEBOX_CONFIG` names a file inside the repository.
    #[error(
        "`LEASEBOX_CONFIG` names {}, which is inside the repository {}: a repository cannot \
         supply the user config; move the file out of the repository or unset `LEASEBOX_CONFIG`",
        path.display(),
        repo_root.display()
    )]
    ConfigInRepository {
        /// The file `LEASEBOX_CONFIG` names.
        path: PathBuf,
        /// The repository root.
        repo_root: PathBuf,
    },

    /// `LEASEBOX_CONFIG` names a file that does not exist.
    #[error(
        "`LEASEBOX_CONFIG` names {}, which does not exist; create it or unset `LEASEBOX_CONFIG`",
        path.display()
    )]
    MissingConfig {
        /// The file `LEASEBOX_CONFIG` names.
        path: PathBuf,
    },

    /// The user config exists but cannot be read.
    #[error("failed to read the user config {}; check its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A repository's `.leasebox.toml` or a recipe's `lease{}` sets a user-only key
    /// (DESIGN §5): refused whether or not a token is set, trusted or not.
    #[error(
        "`{}` in {}:{line} is a user-only setting: {} can never set it, trusted or not; {}",
        key.name,
        path.display(),
        origin.who(),
        user_only_fix(key, *origin, user_config.as_deref())
    )]
    UserOnlyKey {
        /// The repository file or the recipe.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The key.
        key: &'static KeyDef,
        /// Which untrusted source it came from.
        origin: UntrustedOrigin,
        /// The user config file, to say where to set the key instead.
        user_config: Option<PathBuf>,
    },

    /// A repository's `.leasebox.toml` sets an execution boundary and the repository is not
    /// trusted (never trusted, or the file changed since).
    #[error(
        "`{}` in {}:{line} is an execution boundary, which a repository may set only once you \
         trust it, and {why}; review the file and run `leasebox trust {}` to allow it, or remove \
         the key (set it yourself with `{}` or `{}`)",
        key.name,
        path.display(),
        repo_root.display(),
        key.env,
        key.flag_arg()
    )]
    Untrusted {
        /// The repository file.
        path: PathBuf,
        /// The 1-based line of the first boundary key.
        line: usize,
        /// The first boundary key the file sets.
        key: &'static KeyDef,
        /// The repository root (what `leasebox trust` takes).
        repo_root: PathBuf,
        /// Why it is not trusted, as a clause: "this repository has never been trusted".
        why: String,
    },

    /// A path key in `.leasebox.toml` names a file outside the repository root (symlinks
    /// resolved): trust pins files inside the repository only.
    #[error(
        "`{}` in {}:{line} names `{value}`, which resolves to {}, outside the repository root {};          a repository's config may only make leasebox read files inside the repository (move          the file into it, or set the key yourself with `{}` or `{}`)",
        key.name,
        path.display(),
        resolved.display(),
        repo_root.display(),
        key.env,
        key.flag_arg()
    )]
    FileOutsideRepository {
        /// The repository file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The key.
        key: &'static KeyDef,
        /// The value as written.
        value: String,
        /// Where it resolves to.
        resolved: PathBuf,
        /// The repository root.
        repo_root: PathBuf,
    },

    /// A path key in `.leasebox.toml` names a file that cannot be read.
    #[error(
        "`{}` in {}:{line} names {}, which cannot be read",
        key.name,
        path.display(),
        file.display()
    )]
    FileUnreadable {
        /// The repository file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The key.
        key: &'static KeyDef,
        /// The file it names.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A recipe's `lease{}` sets an execution boundary: only a trusted `.leasebox.toml` may.
    #[error(
        "`{}` in {}:{line} is an execution boundary: a recipe's `lease{{}}` can never set it; set \
         it in the repository's `.leasebox.toml` and run `leasebox trust`, or set it yourself \
         with `{}` or `{}`",
        key.name,
        path.display(),
        key.env,
        key.flag_arg()
    )]
    BoundaryInRecipe {
        /// The recipe file.
        path: PathBuf,
        /// The 1-based line of the option.
        line: usize,
        /// The key.
        key: &'static KeyDef,
    },

    /// A repository or recipe asks for more CPU, memory or disk than the user allows.
    #[error(
        "`{} = {value}` from {requested_by} is above your limit `{} = {limit}` (set by {limit_source}); \
         ask for at most {limit}, or raise `{}` in your user config, with `{}` or with `{}`",
        key.name,
        limit_key.name,
        limit_key.name,
        limit_key.env,
        limit_key.flag_arg()
    )]
    OverLimit {
        /// The resource key (`nomad.cpu`, …).
        key: &'static KeyDef,
        /// The value asked for.
        value: u64,
        /// Who asked (the repository file or the recipe, with the line).
        requested_by: Source,
        /// The limit key (`max_cpu`, …).
        limit_key: &'static KeyDef,
        /// The limit.
        limit: u64,
        /// Where the limit is set.
        limit_source: Source,
    },

    /// A recipe's `lease{}` has an option that is not a config key.
    #[error("unknown `lease{{}}` option `{key}` in {}:{line}; {}", path.display(), unknown_hint(*suggestion))]
    UnknownRecipeKey {
        /// The recipe file.
        path: PathBuf,
        /// The 1-based line of the option.
        line: usize,
        /// The option as written.
        key: String,
        /// The closest known option.
        suggestion: Option<&'static str>,
    },

    /// A recipe's `lease{}` option has a value its key cannot take.
    #[error(
        "invalid `lease{{}}` option `{}` in {}:{line}: {reason}; expected {}, e.g. `{}`",
        key.leaf(),
        path.display(),
        key.ty.describe(),
        file_example(key)
    )]
    RecipeValue {
        /// The recipe file.
        path: PathBuf,
        /// The 1-based line of the option.
        line: usize,
        /// The key.
        key: &'static KeyDef,
        /// Why it is not acceptable.
        reason: String,
    },

    /// The repository's `.leasebox.toml` exists but cannot be read.
    #[error("failed to read {}; check its permissions", path.display())]
    RepositoryRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// `leasebox trust` on a repository without a `.leasebox.toml`.
    #[error(
        "there is no `.leasebox.toml` in {}: nothing to trust (`leasebox trust` lets a \
         repository's `.leasebox.toml` set execution boundaries)",
        repo_root.display()
    )]
    NothingToTrust {
        /// The repository root.
        repo_root: PathBuf,
    },

    /// The trust store cannot be read or written.
    #[error(
        "failed to {action} the trust store {}; check that the state dir is writable, or set \
         `LEASEBOX_STATE_DIR`",
        path.display()
    )]
    TrustStoreIo {
        /// `read`, `write` or `lock`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The trust store is not what leasebox writes.
    #[error(
        "the trust store {} is damaged ({reason}); delete it and run `leasebox trust` again in \
         each repository you trust",
        path.display()
    )]
    TrustStoreCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Which untrusted source set a key: the repository's `.leasebox.toml` or a recipe's `lease{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntrustedOrigin {
    /// The repository's `.leasebox.toml`.
    Repository,
    /// A recipe's `lease{}` options.
    Recipe,
}

impl UntrustedOrigin {
    fn who(self) -> &'static str {
        match self {
            UntrustedOrigin::Repository => "a repository's `.leasebox.toml`",
            UntrustedOrigin::Recipe => "a recipe's `lease{}`",
        }
    }
}

/// How to set a user-only key instead: the user config (with the line to write), the
/// environment twin, the flag.
fn user_only_fix(key: &KeyDef, origin: UntrustedOrigin, user_config: Option<&Path>) -> String {
    let remove = match origin {
        UntrustedOrigin::Repository => "remove it from the file",
        UntrustedOrigin::Recipe => "remove it from the recipe",
    };
    let file = user_config.map_or_else(
        || "~/.config/leasebox/config.toml".to_owned(),
        |p| p.display().to_string(),
    );
    let line = match key.section() {
        Some(section) => format!("`{}` under `[{section}]`", file_example(key)),
        None => format!("`{}`", file_example(key)),
    };
    format!(
        "{remove} and set it yourself: {line} in your user config {file}, `{}={}` in your \
         environment, or the flag `{} {}`",
        key.env,
        raw_example(key),
        key.flag_arg(),
        raw_example(key)
    )
}

/// A key's example as a config file line: `ttl = "90m"`.
fn file_example(key: &KeyDef) -> String {
    format!("{} = {}", key.leaf(), key.example)
}

fn unknown_hint(suggestion: Option<&'static str>) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => "remove it (`leasebox config --explain` lists every key)".to_owned(),
    }
}

impl HasKind for ConfigError {
    /// A repository or recipe asking for what it may not have (a user-only key, an untrusted
    /// boundary, a boundary in a recipe, more than the user's limits) is
    /// [`ErrorKind::TrustRefused`]; everything else [`ErrorKind::ConfigError`]. Both exit 78.
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::UserOnlyKey { .. }
            | ConfigError::Untrusted { .. }
            | ConfigError::FileOutsideRepository { .. }
            | ConfigError::BoundaryInRecipe { .. }
            | ConfigError::OverLimit { .. } => ErrorKind::TrustRefused,
            _ => ErrorKind::ConfigError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_config_error_and_exits_78() {
        let err = ConfigError::MissingConfig {
            path: PathBuf::from("/x/config.toml"),
        };
        assert_eq!(err.kind(), ErrorKind::ConfigError);
        assert_eq!(err.kind().exit_code(), 78);
    }

    #[test]
    fn unknown_key_hints() {
        let with = ConfigError::UnknownKey {
            path: PathBuf::from("c.toml"),
            line: 4,
            key: "nomad.imgae".into(),
            suggestion: Some("nomad.image"),
        };
        assert_eq!(
            with.to_string(),
            "unknown key `nomad.imgae` in c.toml:4; did you mean `nomad.image`?"
        );
        let without = ConfigError::UnknownKey {
            path: PathBuf::from("c.toml"),
            line: 1,
            key: "zzz".into(),
            suggestion: None,
        };
        assert!(
            without
                .to_string()
                .ends_with("remove it (`leasebox config --explain` lists every key)")
        );
    }
}
