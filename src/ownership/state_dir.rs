//! [`StateDir`]: where leasebox keeps its own state (claims, trust, REPL history).
//!
//! Resolution order (DESIGN §9), first usable wins:
//!
//! 1. `$LEASEBOX_STATE_DIR` (must be absolute: a relative path would move with the current
//!    directory, so it is an error rather than a silent fallback);
//! 2. `$XDG_STATE_HOME/leasebox` (ignored when empty or relative, as the XDG spec says);
//! 3. `$HOME/.local/state/leasebox` (`HOME` must be set and absolute).
//!
//! Empty variables count as unset. [`StateDir::ensure`] creates the directory and its
//! `claims/` subdir (mode 0700) and checks that a file can be written there; failures name
//! the path and say to set `LEASEBOX_STATE_DIR`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ClaimStore, OwnershipError};
use crate::atomic_file::create_private_dir;

/// The variable that overrides the state dir.
pub const STATE_DIR_VAR: &str = "LEASEBOX_STATE_DIR";

/// Name of the claims subdirectory.
const CLAIMS_DIR: &str = "claims";

/// The resolved state dir (not necessarily created yet: see [`StateDir::ensure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
    origin: &'static str,
}

impl StateDir {
    /// Resolve the state dir from the given environment (pass `std::env::vars().collect()`).
    ///
    /// # Errors
    ///
    /// [`OwnershipError::RelativeStateDir`] when `LEASEBOX_STATE_DIR` is relative, and
    /// [`OwnershipError::NoStateDir`] when neither it, `XDG_STATE_HOME` nor `HOME` give an
    /// absolute path.
    pub fn resolve(env: &BTreeMap<String, String>) -> Result<StateDir, OwnershipError> {
        let get = |name: &str| env.get(name).map(String::as_str).filter(|v| !v.is_empty());

        if let Some(value) = get(STATE_DIR_VAR) {
            let path = PathBuf::from(value);
            if !path.is_absolute() {
                return Err(OwnershipError::RelativeStateDir {
                    var: STATE_DIR_VAR,
                    value: value.to_owned(),
                });
            }
            return Ok(StateDir {
                path,
                origin: "`$LEASEBOX_STATE_DIR`",
            });
        }
        if let Some(value) = get("XDG_STATE_HOME") {
            let base = Path::new(value);
            if base.is_absolute() {
                return Ok(StateDir {
                    path: base.join("leasebox"),
                    origin: "`$XDG_STATE_HOME`",
                });
            }
        }
        match get("HOME") {
            Some(home) if Path::new(home).is_absolute() => Ok(StateDir {
                path: Path::new(home).join(".local/state/leasebox"),
                origin: "`$HOME`",
            }),
            Some(home) => Err(OwnershipError::NoStateDir {
                reason: format!("`HOME` is `{home}`, not an absolute path"),
            }),
            None => Err(OwnershipError::NoStateDir {
                reason: "neither `LEASEBOX_STATE_DIR`, `XDG_STATE_HOME` nor `HOME` is set"
                    .to_owned(),
            }),
        }
    }

    /// A state dir at an explicit path (tests, and callers that resolved it elsewhere).
    #[must_use]
    pub fn at(path: impl Into<PathBuf>) -> StateDir {
        StateDir {
            path: path.into(),
            origin: "an explicit path",
        }
    }

    /// The state dir itself.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `claims/` subdir, one `<id>.json` per lease.
    #[must_use]
    pub fn claims(&self) -> PathBuf {
        self.path.join(CLAIMS_DIR)
    }

    /// Where the path came from, for messages: `` `$LEASEBOX_STATE_DIR` ``,
    /// `` `$XDG_STATE_HOME` ``, `` `$HOME` `` or `an explicit path`.
    #[must_use]
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    /// The claims store in this state dir (call [`StateDir::ensure`] first).
    #[must_use]
    pub fn claim_store(&self) -> ClaimStore {
        ClaimStore::new(self.claims())
    }

    /// Create the state dir and `claims/` (mode 0700, parents too) if missing, and check
    /// that a file can be written in `claims/`.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::StateDirUnusable`] naming the directory that could not be created
    /// or written.
    pub fn ensure(&self) -> Result<(), OwnershipError> {
        let unusable = |path: &Path, action, source| OwnershipError::StateDirUnusable {
            path: path.to_owned(),
            origin: self.origin.to_owned(),
            action,
            source,
        };
        let claims = self.claims();
        for dir in [self.path.as_path(), claims.as_path()] {
            create_private_dir(dir).map_err(|e| unusable(dir, "created", e))?;
        }
        // Root ignores permission bits, and a read-only mount or a full disk only shows on
        // write: probe with a real file, removed on drop.
        tempfile::Builder::new()
            .prefix(".probe-")
            .tempfile_in(&claims)
            .map_err(|e| unusable(&claims, "written", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn leasebox_variable_wins() {
        let dir = StateDir::resolve(&env(&[
            ("LEASEBOX_STATE_DIR", "/s/lb"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ]))
        .unwrap();
        assert_eq!(dir.path(), Path::new("/s/lb"));
        assert_eq!(dir.claims(), Path::new("/s/lb/claims"));
    }

    #[test]
    fn xdg_then_home() {
        let dir = StateDir::resolve(&env(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")])).unwrap();
        assert_eq!(dir.path(), Path::new("/x/leasebox"));
        let dir = StateDir::resolve(&env(&[("HOME", "/h")])).unwrap();
        assert_eq!(dir.path(), Path::new("/h/.local/state/leasebox"));
    }

    #[test]
    fn empty_and_relative_xdg_are_ignored() {
        for xdg in ["", "rel/state"] {
            let dir = StateDir::resolve(&env(&[
                ("LEASEBOX_STATE_DIR", ""),
                ("XDG_STATE_HOME", xdg),
                ("HOME", "/h"),
            ]))
            .unwrap();
            assert_eq!(dir.path(), Path::new("/h/.local/state/leasebox"));
        }
    }

    #[test]
    fn relative_override_is_an_error() {
        let err = StateDir::resolve(&env(&[("LEASEBOX_STATE_DIR", "state"), ("HOME", "/h")]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigError);
        assert!(err.to_string().contains("`LEASEBOX_STATE_DIR` is `state`"));
    }

    #[test]
    fn nothing_set_says_what_to_set() {
        let err = StateDir::resolve(&env(&[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigError);
        assert!(
            err.to_string().contains("set `LEASEBOX_STATE_DIR`"),
            "{err}"
        );
    }

    #[test]
    fn ensure_creates_private_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::at(tmp.path().join("a/b/leasebox"));
        dir.ensure().unwrap();
        dir.ensure().unwrap();
        for d in [dir.path().to_owned(), dir.claims()] {
            let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        assert_eq!(
            fs::read_dir(dir.claims()).unwrap().count(),
            0,
            "probe left behind"
        );
    }

    #[test]
    fn unusable_dir_names_path_and_variable() {
        // Tests run as root, where permission bits stop nothing: use a path under a file.
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let path = file.join("leasebox");
        let env = env(&[("LEASEBOX_STATE_DIR", path.to_str().unwrap())]);
        let err = StateDir::resolve(&env).unwrap().ensure().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigError);
        let text = crate::error::render_chain(&err);
        assert_eq!(
            text.replace(&path.display().to_string(), "PATH"),
            "state dir unusable: `PATH` (from `$LEASEBOX_STATE_DIR`) cannot be created; set \
             `LEASEBOX_STATE_DIR` to a writable directory: Not a directory (os error 20)"
        );
        assert!(text.contains("`$LEASEBOX_STATE_DIR`"), "{text}");
        assert!(text.contains("set `LEASEBOX_STATE_DIR`"), "{text}");
    }

    #[test]
    fn state_dir_that_is_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("leasebox");
        fs::write(&file, b"x").unwrap();
        let err = StateDir::at(&file).ensure().unwrap_err();
        let text = crate::error::render_chain(&err);
        assert!(text.contains("not a directory"), "{text}");
    }
}
