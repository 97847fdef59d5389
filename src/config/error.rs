//! [`ConfigError`]: everything that can be wrong with the config, said so the user can fix it.
//!
//! Messages are lowercase, put names in backticks, point at `file:line` (or the variable, or
//! the flag) and say how to fix. They never echo a value that could be a secret.

use std::path::PathBuf;

use super::keys::KeyDef;
use super::value::raw_example;
use crate::error::{ErrorKind, HasKind};

/// A config that cannot be loaded. Every variant is a [`ErrorKind::ConfigError`] (exit 78).
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
    fn kind(&self) -> ErrorKind {
        ErrorKind::ConfigError
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
