//! The config's layers and reading each one into values with their sources: the built-in
//! defaults, the `NOMAD_*` fallbacks, the user config, the `LEASEBOX_*` twins, the repository's
//! `.leasebox.toml` (behind the trust gate), a recipe's `lease{}` options and the flags.
//! [`Config`](super::Config) resolves them.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{ConfigError, UntrustedOrigin};
use super::file::{self, FileEntry};
use super::keys::{self, KEYS, KeyDef, TrustClass};
use super::resolve::{DEFAULT_TOML, RecipeOption, RepositoryConfig};
use super::source::Source;
use super::trust::{RepositoryFile, TrustStatus, TrustStore};
use super::value::{Value, ValueProblem};

/// `LEASEBOX_*` variables that are not config keys (so no "did you mean" notice for them).
pub(super) const NON_KEY_VARS: &[&str] = &[
    "LEASEBOX_CONFIG",
    "LEASEBOX_STATE_DIR",
    "LEASEBOX_LIVE_NOMAD",
    "LEASEBOX_LOG",
];

/// The layers, lowest first. A value from a higher layer replaces the one below whole (lists
/// too: they are not merged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// The built-in `default.toml`.
    Default,
    /// `NOMAD_ADDR`, `NOMAD_REGION`, … (they rank below the user config, DESIGN §4).
    NomadEnv,
    /// The user config file.
    UserConfig,
    /// `LEASEBOX_*` environment twins.
    Env,
    /// The repository's `.leasebox.toml`: its own keys always, boundaries once trusted.
    Repository,
    /// A recipe's `lease{}` options (own keys only), added by
    /// [`Config::with_recipe`](super::Config::with_recipe).
    Recipe,
    /// Command-line flags.
    Flags,
}

/// Values set by one layer.
#[derive(Debug, Clone)]
pub(super) struct LayerValues {
    pub(super) layer: Layer,
    pub(super) values: Vec<(&'static KeyDef, Value, Source)>,
}

pub(super) fn default_layer() -> LayerValues {
    let entries = file::parse_file(Path::new("default.toml"), DEFAULT_TOML)
        .expect("the built-in default.toml is valid (tested)");
    LayerValues {
        layer: Layer::Default,
        values: entries
            .into_iter()
            .map(|e| (e.key, e.value, Source::Default))
            .collect(),
    }
}

/// The `NOMAD_*` fallbacks. A value its key cannot take goes to `errors` instead, for
/// [`Config::load`](super::Config::load) to report only if no higher layer sets the key.
pub(super) fn nomad_env_layer(
    env: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> LayerValues {
    let mut values = Vec::new();
    for key in KEYS {
        let Some(var) = key.nomad_env else { continue };
        // Nomad treats an empty variable as unset (`NOMAD_REGION=` means `global`).
        let Some(raw) = env.get(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let value = match env_value(key, var, raw) {
            Ok(value) => value,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        values.push((
            key,
            value,
            Source::NomadEnv {
                var: var.to_owned(),
            },
        ));
    }
    LayerValues {
        layer: Layer::NomadEnv,
        values,
    }
}

pub(super) fn user_config_layer(path: &Path, explicit: bool) -> Result<LayerValues, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(LayerValues {
                layer: Layer::UserConfig,
                values: Vec::new(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::MissingConfig {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let entries = file::parse_file(path, &text)?;
    Ok(LayerValues {
        layer: Layer::UserConfig,
        values: entries
            .into_iter()
            .map(|FileEntry { key, value, line }| {
                (
                    key,
                    value,
                    Source::UserConfig {
                        path: path.to_owned(),
                        line,
                    },
                )
            })
            .collect(),
    })
}

pub(super) fn env_layer(
    env: &BTreeMap<String, String>,
    notices: &mut Vec<String>,
) -> Result<LayerValues, ConfigError> {
    let mut values = Vec::new();
    for key in KEYS {
        // An empty variable is the same as an unset one.
        let Some(raw) = env.get(key.env).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = env_value(key, key.env, raw)?;
        values.push((
            key,
            value,
            Source::Env {
                var: key.env.to_owned(),
            },
        ));
    }
    for var in env.keys() {
        if var.starts_with("LEASEBOX_")
            && KeyDef::find_by_env(var).is_none()
            && !NON_KEY_VARS.contains(&var.as_str())
            && let Some(twin) = keys::suggest_env(var)
        {
            notices.push(format!(
                "`{var}` is not a leasebox variable and is ignored; did you mean `{twin}`?"
            ));
        }
    }
    Ok(LayerValues {
        layer: Layer::Env,
        values,
    })
}

/// The repository layer: `<repo root>/.leasebox.toml`, untrusted. User-only keys are refused
/// (by [`RepositoryFile::read`]); execution boundaries only when the trust store has the file's
/// current hash for this root; the repository's own keys always.
pub(super) fn repository_layer(
    repo_root: Option<&Path>,
    trust_dir: Option<&Path>,
    user_config: Option<&Path>,
) -> Result<(LayerValues, Option<RepositoryConfig>), ConfigError> {
    let empty = LayerValues {
        layer: Layer::Repository,
        values: Vec::new(),
    };
    let Some(root) = repo_root else {
        return Ok((empty, None));
    };
    let Some(file) = RepositoryFile::read(root, user_config)? else {
        return Ok((empty, None));
    };
    let mut trust = None;
    if let Some(first) = file.boundaries().next() {
        let status = match trust_dir {
            Some(dir) => TrustStore::new(dir).status(&file)?,
            None => TrustStatus::NoStore,
        };
        if !status.is_trusted() {
            return Err(ConfigError::Untrusted {
                path: file.path.clone(),
                line: first.line,
                key: first.key,
                repo_root: file.root.clone(),
                why: status.why_not(&file.sha256),
            });
        }
        trust = Some(status);
    }
    let values = file
        .entries
        .iter()
        .map(|e| (e.key, e.value.clone(), file.source(e)))
        .collect();
    Ok((
        LayerValues {
            layer: Layer::Repository,
            values,
        },
        Some(RepositoryConfig { file, trust }),
    ))
}

/// Check one recipe option: a known key (by leaf or dotted name), of the repository's own
/// class, with a value its type takes.
pub(super) fn recipe_value(
    option: &RecipeOption,
    user_config: Option<&Path>,
) -> Result<(&'static KeyDef, Value), ConfigError> {
    let Some(key) = recipe_key(&option.key) else {
        return Err(ConfigError::UnknownRecipeKey {
            path: option.path.clone(),
            line: option.line,
            key: option.key.clone(),
            suggestion: suggest_recipe_key(&option.key),
        });
    };
    match key.class {
        TrustClass::UserOnly => {
            return Err(ConfigError::UserOnlyKey {
                path: option.path.clone(),
                line: option.line,
                key,
                origin: UntrustedOrigin::Recipe,
                user_config: user_config.map(Path::to_owned),
            });
        }
        TrustClass::Boundary => {
            return Err(ConfigError::BoundaryInRecipe {
                path: option.path.clone(),
                line: option.line,
                key,
            });
        }
        TrustClass::Own => {}
    }
    let bad = |reason: String| ConfigError::RecipeValue {
        path: option.path.clone(),
        line: option.line,
        key,
        reason,
    };
    let text = option.value.to_string();
    let parsed = toml::de::DeValue::parse(&text)
        .map_err(|_| bad("it is not a value a config key takes".to_owned()))?;
    let value = Value::from_toml(key, parsed.get_ref()).map_err(|p| bad(problem_text(p)))?;
    Ok((key, value))
}

/// A recipe option's key: a dotted name, or a name inside a section when only one key has it.
pub(super) fn recipe_key(name: &str) -> Option<&'static KeyDef> {
    if let Some(key) = KeyDef::find(name) {
        return Some(key);
    }
    let mut by_leaf = KEYS.iter().filter(|k| k.leaf() == name);
    match (by_leaf.next(), by_leaf.next()) {
        (Some(key), None) => Some(key),
        _ => None,
    }
}

/// The closest option name (as a recipe writes it: the leaf) to a misspelled one.
pub(super) fn suggest_recipe_key(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .flat_map(|k| [k.leaf(), k.name])
        .map(|c| (c, strsim::normalized_damerau_levenshtein(name, c)))
        .filter(|(_, score)| *score >= 0.6)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

pub(super) fn flag_layer(flags: &[(String, String)]) -> Result<LayerValues, ConfigError> {
    let mut values: Vec<(&'static KeyDef, Value, Source)> = Vec::new();
    for (name, raw) in flags {
        let Some(key) = KeyDef::find(name) else {
            return Err(ConfigError::UnknownFlagKey {
                key: name.clone(),
                suggestion: keys::suggest(name),
            });
        };
        let flag = key.flag_arg();
        let value = Value::from_raw(key, raw).map_err(|p| ConfigError::FlagValue {
            key,
            reason: problem_text(p),
        })?;
        let earlier = values.iter().position(|(k, _, _)| k.name == key.name);
        match (earlier, value) {
            (Some(i), Value::StringList(more)) => {
                if let Value::StringList(list) = &mut values[i].1 {
                    list.extend(more);
                }
            }
            (Some(i), value) => values[i].1 = value,
            (None, value) => values.push((key, value, Source::Flag { flag })),
        }
    }
    Ok(LayerValues {
        layer: Layer::Flags,
        values,
    })
}

pub(super) fn env_value(
    key: &'static KeyDef,
    var: &'static str,
    raw: &str,
) -> Result<Value, ConfigError> {
    Value::from_raw(key, raw).map_err(|p| ConfigError::EnvValue {
        var,
        key,
        reason: problem_text(p),
    })
}

pub(super) fn problem_text(p: ValueProblem) -> String {
    match p {
        ValueProblem::WrongType { found } => format!("it is {found}"),
        ValueProblem::Invalid(reason) => reason,
    }
}
