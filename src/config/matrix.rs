//! The trust matrix (DESIGN §5): every key × every source → accepted with that source, or the
//! user-only refusal, or the trust refusal, each message naming the key, the file and line, and
//! the fix. Data-driven: [`EXPECTED`] is the table, [`every_key_from_every_source`] walks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::ConfigError;
use super::keys::{KEYS, KeyDef, TrustClass};
use super::resolve::{Config, ConfigInputs, REPOSITORY_FILE, RecipeOption};
use super::source::Source;
use super::trust::{TRUST_FILE, canonical_root};
use super::value::{Value, raw_example};
use crate::error::{ErrorKind, HasKind};

/// Where a value is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    UserConfig,
    Env,
    Flag,
    TrustedRepo,
    UntrustedRepo,
    /// A `.leasebox.toml` trusted once, then edited.
    ChangedRepo,
    Recipe,
}

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The value is used, with its source recorded.
    Accepted,
    /// Refused: a user-only key from a repository or recipe.
    UserOnly,
    /// Refused: a boundary from an untrusted (or changed) repository.
    NotTrusted,
    /// Refused: a boundary from a recipe.
    RecipeBoundary,
}

use Outcome::{Accepted, NotTrusted, RecipeBoundary, UserOnly};
use TrustClass::{Boundary, Own, UserOnly as UserOnlyClass};

/// The expected outcome of each class from each source.
const EXPECTED: &[(TrustClass, Via, Outcome)] = &[
    (UserOnlyClass, Via::UserConfig, Accepted),
    (UserOnlyClass, Via::Env, Accepted),
    (UserOnlyClass, Via::Flag, Accepted),
    (UserOnlyClass, Via::TrustedRepo, UserOnly),
    (UserOnlyClass, Via::UntrustedRepo, UserOnly),
    (UserOnlyClass, Via::ChangedRepo, UserOnly),
    (UserOnlyClass, Via::Recipe, UserOnly),
    (Boundary, Via::UserConfig, Accepted),
    (Boundary, Via::Env, Accepted),
    (Boundary, Via::Flag, Accepted),
    (Boundary, Via::TrustedRepo, Accepted),
    (Boundary, Via::UntrustedRepo, NotTrusted),
    (Boundary, Via::ChangedRepo, NotTrusted),
    (Boundary, Via::Recipe, RecipeBoundary),
    (Own, Via::UserConfig, Accepted),
    (Own, Via::Env, Accepted),
    (Own, Via::Flag, Accepted),
    (Own, Via::TrustedRepo, Accepted),
    (Own, Via::UntrustedRepo, Accepted),
    (Own, Via::ChangedRepo, Accepted),
    (Own, Via::Recipe, Accepted),
];

/// The line every file in the matrix puts its key on.
const LINE: usize = 4;

/// One key set one way, in a scratch home, state dir and repository.
struct Case {
    home: tempfile::TempDir,
    repo: tempfile::TempDir,
    state: tempfile::TempDir,
    inputs: ConfigInputs,
}

impl Case {
    fn new(token: bool) -> Case {
        let home = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert("HOME".to_owned(), path_text(home.path()));
        env.insert("USER".to_owned(), "alice".to_owned());
        if token {
            env.insert("NOMAD_TOKEN".to_owned(), "s3cr3t-token".to_owned());
        }
        let inputs = ConfigInputs {
            env,
            flags: Vec::new(),
            repo_root: Some(repo.path().to_owned()),
            trust_dir: Some(state.path().to_owned()),
        };
        Case {
            home,
            repo,
            state,
            inputs,
        }
    }

    fn user_config_path(&self) -> PathBuf {
        self.home.path().join(".config/leasebox/config.toml")
    }

    fn repo_file(&self) -> PathBuf {
        self.repo.path().join(REPOSITORY_FILE)
    }

    fn recipe_file(&self) -> PathBuf {
        self.repo.path().join("recipes/ci.lua")
    }

    /// Pin `bytes` as the trusted content of the repository's file, written by hand in the
    /// store's format (so a file holding a user-only key can be "trusted" too).
    /// A file a path key names is pinned too, as it is now.
    fn pin(&self, bytes: &[u8], key: &KeyDef) {
        let mut files = Vec::new();
        if key.reads_file() && key.class != TrustClass::UserOnly {
            let path = self.pinned_file(key).canonicalize().unwrap();
            let sha = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
            files.push(serde_json::json!({"key": key.name, "path": path, "sha256": sha}));
        }
        let doc = serde_json::json!({
            "version": 2,
            "repositories": [{
                "root": canonical_root(self.repo.path()),
                "sha256": hex::encode(Sha256::digest(bytes)),
                "trusted_at": 0,
                "files": files,
            }],
        });
        std::fs::write(self.state.path().join(TRUST_FILE), doc.to_string()).unwrap();
    }

    /// The file a path key's example value names inside the repository, created.
    fn pinned_file(&self, key: &KeyDef) -> std::path::PathBuf {
        let relative = key.example.trim_matches('"');
        let path = self.repo.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if !path.exists() {
            std::fs::write(&path, "job \"x\" {}\n").unwrap();
        }
        path
    }

    /// Set `key` to its example value `via` a source; returns the config or the error.
    fn set(&mut self, key: &'static KeyDef, via: Via) -> Result<Config, ConfigError> {
        let file_text = file_text(key);
        if key.reads_file() && key.class != TrustClass::UserOnly {
            self.pinned_file(key);
        }
        match via {
            Via::UserConfig => {
                let path = self.user_config_path();
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, &file_text).unwrap();
            }
            Via::Env => {
                self.inputs.env.insert(key.env.to_owned(), raw_example(key));
            }
            Via::Flag => self
                .inputs
                .flags
                .push((key.name.to_owned(), raw_example(key))),
            Via::TrustedRepo => {
                std::fs::write(self.repo_file(), &file_text).unwrap();
                self.pin(file_text.as_bytes(), key);
            }
            Via::UntrustedRepo => std::fs::write(self.repo_file(), &file_text).unwrap(),
            Via::ChangedRepo => {
                self.pin(b"# the file as it was trusted\n", key);
                std::fs::write(self.repo_file(), &file_text).unwrap();
            }
            Via::Recipe => {
                let base = Config::load(&self.inputs)?;
                let value: toml::Table = format!("v = {}", key.example).parse().unwrap();
                return base.with_recipe(&[RecipeOption {
                    key: key.name.to_owned(),
                    value: value["v"].clone(),
                    path: self.recipe_file(),
                    line: LINE,
                }]);
            }
        }
        Config::load(&self.inputs)
    }

    /// The source an accepted value must record.
    fn expected_source(&self, key: &KeyDef, via: Via) -> Source {
        match via {
            Via::UserConfig => Source::UserConfig {
                path: self.user_config_path(),
                line: LINE,
            },
            Via::Env => Source::Env {
                var: key.env.to_owned(),
            },
            Via::Flag => Source::Flag {
                flag: key.flag_arg(),
            },
            Via::TrustedRepo | Via::UntrustedRepo | Via::ChangedRepo => Source::Repository {
                path: self.repo_file(),
                line: LINE,
            },
            Via::Recipe => Source::Recipe {
                path: self.recipe_file(),
                line: LINE,
            },
        }
    }

    /// The file:line a refusal must name.
    fn expected_place(&self, via: Via) -> String {
        let file = if via == Via::Recipe {
            self.recipe_file()
        } else {
            self.repo_file()
        };
        format!("{}:{LINE}", file.display())
    }
}

fn path_text(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// A config file setting `key` to its example, on line [`LINE`].
fn file_text(key: &KeyDef) -> String {
    match key.section() {
        Some(section) => format!(
            "# set by the matrix\n\n[{section}]\n{} = {}\n",
            key.leaf(),
            key.example
        ),
        None => format!("# set by the matrix\n\n\n{} = {}\n", key.name, key.example),
    }
}

fn expected(class: TrustClass, via: Via) -> Outcome {
    EXPECTED
        .iter()
        .find(|(c, v, _)| *c == class && *v == via)
        .map(|(_, _, o)| *o)
        .unwrap_or_else(|| panic!("no expectation for {class} via {via:?}"))
}

fn check(key: &'static KeyDef, via: Via, token: bool) {
    let mut case = Case::new(token);
    let outcome = expected(key.class, via);
    let what = format!("`{}` ({}) via {via:?}, token {token}", key.name, key.class);
    let result = case.set(key, via);
    if outcome == Accepted {
        let config = result.unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        let resolved = config.get(key.name).unwrap();
        assert_eq!(resolved.source, case.expected_source(key, via), "{what}");
        let example: toml::Table = format!("v = {}", key.example).parse().unwrap();
        let shown = resolved.value.as_ref().map(Value::shown);
        assert_eq!(
            shown.as_deref(),
            Some(example["v"].to_string().as_str()),
            "{what}"
        );
        return;
    }
    let err = match result {
        Ok(_) => panic!("{what}: accepted, expected {outcome:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::TrustRefused, "{what}: {msg}");
    assert_eq!(err.kind().exit_code(), 78, "{what}");
    assert!(
        msg.contains(&format!("`{}`", key.name)),
        "{what}: names the key: {msg}"
    );
    assert!(
        msg.contains(&case.expected_place(via)),
        "{what}: names file and line: {msg}"
    );
    match outcome {
        UserOnly => {
            assert!(
                matches!(err, ConfigError::UserOnlyKey { .. }),
                "{what}: {msg}"
            );
            assert!(msg.contains("user-only"), "{what}: {msg}");
            for fix in [
                path_text(&case.user_config_path()),
                format!("`{}=", key.env),
                format!("`{} ", key.flag_arg()),
            ] {
                assert!(
                    msg.contains(&fix),
                    "{what}: says how to set it ({fix}): {msg}"
                );
            }
            assert!(
                !msg.contains("leasebox trust"),
                "{what}: trust would not help: {msg}"
            );
        }
        NotTrusted => {
            assert!(
                matches!(err, ConfigError::Untrusted { .. }),
                "{what}: {msg}"
            );
            assert!(msg.contains("leasebox trust"), "{what}: {msg}");
            let why = if via == Via::ChangedRepo {
                "changed since you trusted it"
            } else {
                "never been trusted"
            };
            assert!(msg.contains(why), "{what}: says why: {msg}");
        }
        RecipeBoundary => {
            assert!(
                matches!(err, ConfigError::BoundaryInRecipe { .. }),
                "{what}: {msg}"
            );
            assert!(msg.contains("`.leasebox.toml`"), "{what}: {msg}");
            assert!(msg.contains("leasebox trust"), "{what}: {msg}");
        }
        Accepted => unreachable!(),
    }
    assert!(!msg.contains("s3cr3t-token"), "{what}: never the token");
}

#[test]
fn every_key_from_every_source() {
    let vias = [
        Via::UserConfig,
        Via::Env,
        Via::Flag,
        Via::TrustedRepo,
        Via::UntrustedRepo,
        Via::ChangedRepo,
        Via::Recipe,
    ];
    let mut cells = 0;
    for key in KEYS {
        for via in vias {
            check(key, via, false);
            cells += 1;
        }
    }
    assert_eq!(cells, KEYS.len() * vias.len());
}

#[test]
fn repository_refusals_are_the_same_with_or_without_a_token() {
    for key in KEYS.iter().filter(|k| k.class != Own) {
        for via in [Via::TrustedRepo, Via::UntrustedRepo, Via::Recipe] {
            check(key, via, true);
            if expected(key.class, via) == Accepted {
                continue;
            }
            let with = Case::new(true).set(key, via).map(|_| ()).unwrap_err();
            let without = Case::new(false).set(key, via).map(|_| ()).unwrap_err();
            // The scratch paths differ; the message shape must not.
            assert_eq!(
                std::mem::discriminant(&with),
                std::mem::discriminant(&without),
                "{} via {via:?}",
                key.name
            );
        }
    }
}

#[test]
fn the_table_covers_every_class_and_source() {
    for class in [UserOnlyClass, Boundary, Own] {
        for via in [
            Via::UserConfig,
            Via::Env,
            Via::Flag,
            Via::TrustedRepo,
            Via::UntrustedRepo,
            Via::ChangedRepo,
            Via::Recipe,
        ] {
            let _ = expected(class, via);
        }
    }
}
