//! Where a resolved value came from.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The origin of one resolved value, shown by `leasebox config --explain`.
///
/// Listed from the lowest layer to the highest (see the precedence in the
/// [`config` module docs](crate::config)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The built-in `default.toml`.
    Default,
    /// A default worked out from other values or the machine (`backend` from `nomad.address`,
    /// `owner` from user and host); `from` says how, for `--explain`.
    Computed {
        /// How the value was worked out, e.g. "`nomad.address` is set".
        from: String,
    },
    /// A `NOMAD_*` fallback variable (ranks below the user config).
    NomadEnv {
        /// The variable, e.g. `NOMAD_ADDR`.
        var: String,
    },
    /// The user config file.
    UserConfig {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
    },
    /// A `LEASEBOX_*` environment twin.
    Env {
        /// The variable, e.g. `LEASEBOX_NOMAD_IMAGE`.
        var: String,
    },
    /// The repository's `.leasebox.toml` (untrusted: own keys, and boundaries once trusted).
    Repository {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
    },
    /// A recipe's `lease{}` options (untrusted: own keys only).
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// The 1-based line of the option.
        line: usize,
    },
    /// A command-line flag.
    Flag {
        /// The flag as typed, e.g. `--nomad-image`.
        flag: String,
    },
}

impl Source {
    /// The directory a relative path set by this source is relative to: the file's directory
    /// for file sources, `None` (the current directory) otherwise.
    #[must_use]
    pub fn base_dir(&self) -> Option<&std::path::Path> {
        match self {
            Source::UserConfig { path, .. }
            | Source::Repository { path, .. }
            | Source::Recipe { path, .. } => path.parent(),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Computed { from } => write!(f, "default ({from})"),
            Source::NomadEnv { var } | Source::Env { var } => write!(f, "env {var}"),
            Source::UserConfig { path, line } => write!(f, "user config {}:{line}", path.display()),
            Source::Repository { path, line } => {
                write!(f, "repository {}:{line}", path.display())
            }
            Source::Recipe { path, line } => write!(f, "recipe {}:{line}", path.display()),
            Source::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_forms() {
        let user = Source::UserConfig {
            path: PathBuf::from("/home/a/.config/leasebox/config.toml"),
            line: 3,
        };
        assert_eq!(
            user.to_string(),
            "user config /home/a/.config/leasebox/config.toml:3"
        );
        assert_eq!(
            Source::Env {
                var: "LEASEBOX_LEASE_TTL".into()
            }
            .to_string(),
            "env LEASEBOX_LEASE_TTL"
        );
        assert_eq!(
            Source::Flag {
                flag: "--nomad-image".into()
            }
            .to_string(),
            "flag --nomad-image"
        );
        assert_eq!(Source::Default.to_string(), "default");
        assert_eq!(
            user.base_dir(),
            Some(std::path::Path::new("/home/a/.config/leasebox"))
        );
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["kind"], "user_config");
        assert_eq!(json["line"], 3);
    }
}
