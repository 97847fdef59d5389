//! [`Config::load`]: read the layers in precedence order (each read by `layers`) and resolve
//! every key with its source; [`Config::with_recipe`] resolves again with a recipe's options;
//! the worked-out defaults and the user's resource limits are applied last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::file;
use super::keys::{KEYS, KeyDef};
use super::layers::{
    Layer, LayerValues, default_layer, env_layer, flag_layer, nomad_env_layer, recipe_value,
    repository_layer, user_config_layer,
};
use super::settings::{self, Settings};
use super::source::Source;
use super::trust::{RepositoryFile, TrustStatus};
use super::value::Value;

/// The built-in defaults (`default.toml`), declaring every key of [`KEYS`].
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The name of the repository config file at the repository root.
pub const REPOSITORY_FILE: &str = ".leasebox.toml";

/// What [`Config::load`] reads. Nothing is read from the process environment inside the
/// module: the CLI passes `std::env::vars()` and tests pass their own.
#[derive(Debug, Clone, Default)]
pub struct ConfigInputs {
    /// The environment (`LEASEBOX_*`, `NOMAD_*`, `HOME`, `XDG_CONFIG_HOME`, `USER`, …).
    pub env: BTreeMap<String, String>,
    /// Flags as `(dotted key, raw value as typed)`, in command-line order. A list key given
    /// several times accumulates; any other key given several times keeps the last.
    pub flags: Vec<(String, String)>,
    /// The repository root, if any: `LEASEBOX_CONFIG` may not point inside it, and its
    /// `.leasebox.toml` is the repository layer.
    pub repo_root: Option<PathBuf>,
    /// The directory of the trust store (the state dir; the store is `trust.json` in it).
    /// `None`: no repository is trusted, so a `.leasebox.toml` setting a boundary is refused.
    pub trust_dir: Option<PathBuf>,
}

/// One key's resolved value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The key.
    pub key: &'static KeyDef,
    /// The value; `None` when no layer sets it and it has no default.
    pub value: Option<Value>,
    /// The layer that set it ([`Source::Default`] for an unset key).
    pub source: Source,
}

/// The resolved config: every key with its value and source, the typed [`Settings`], and the
/// notices to show the user.
#[derive(Debug, Clone)]
pub struct Config {
    resolved: BTreeMap<&'static str, Resolved>,
    settings: Settings,
    notices: Vec<String>,
    user_config: Option<PathBuf>,
    /// Every layer's values, kept so [`Config::with_recipe`] can resolve again.
    layers: Vec<LayerValues>,
    /// `USER`, `LOGNAME` and `HOME` only (the computed `owner`, `~/` in paths): the rest of the
    /// environment is not kept.
    defaults_env: BTreeMap<String, String>,
    repository: Option<RepositoryConfig>,
}

/// The repository's `.leasebox.toml` as the config read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryConfig {
    /// The file, its hash and its entries.
    pub file: RepositoryFile,
    /// Its trust, looked up only when it sets an execution boundary (`None` otherwise).
    pub trust: Option<TrustStatus>,
}

/// One option of a recipe's `lease{}`, as the Lua host hands it to [`Config::with_recipe`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeOption {
    /// The option's name: a key's name inside its section (`image`, `cpu`, `memory_mb`,
    /// `exec_timeout`) or its dotted name (`nomad.image`).
    pub key: String,
    /// The value, converted from Lua: strings, integers, booleans, arrays of strings.
    pub value: toml::Value,
    /// The recipe file.
    pub path: PathBuf,
    /// The 1-based line of the option in the recipe.
    pub line: usize,
}

/// The resource keys a repository or recipe may ask for, and the user's limit on each.
const LIMITS: &[(&str, &str)] = &[
    ("nomad.cpu", "max_cpu"),
    ("nomad.memory_mb", "max_memory_mb"),
    ("nomad.disk_mb", "max_disk_mb"),
];

impl Config {
    /// Load the config from the given inputs, in precedence order (lowest first): built-in
    /// defaults, `NOMAD_*` fallbacks, the user config, `LEASEBOX_*` variables, the repository's
    /// `.leasebox.toml`, flags. Recipe options come later, through [`Config::with_recipe`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for an unreadable or invalid user config or repository file, a bad
    /// value in a variable or a flag, a `LEASEBOX_CONFIG` that is missing or inside the
    /// repository; and the trust gate's refusals (exit 78, `trust_refused`): a user-only key in
    /// `.leasebox.toml`, an execution boundary in an untrusted one, a resource above the user's
    /// limit.
    pub fn load(inputs: &ConfigInputs) -> Result<Config, ConfigError> {
        let mut notices = Vec::new();
        let user = file::locate_user_config(&inputs.env, inputs.repo_root.as_deref())?;
        // A bad `NOMAD_*` value (those variables belong to the `nomad` CLI too) is an error only
        // when no higher layer sets the key anyway.
        let mut nomad_env_errors = Vec::new();
        let mut layers = vec![
            default_layer(),
            nomad_env_layer(&inputs.env, &mut nomad_env_errors),
        ];
        let mut user_config = None;
        if let Some(user) = user {
            layers.push(user_config_layer(&user.path, user.explicit)?);
            user_config = Some(user.path);
        }
        layers.push(env_layer(&inputs.env, &mut notices)?);
        let (repository_values, repository) = repository_layer(
            inputs.repo_root.as_deref(),
            inputs.trust_dir.as_deref(),
            user_config.as_deref(),
        )?;
        layers.push(repository_values);
        layers.push(LayerValues {
            layer: Layer::Recipe,
            values: Vec::new(),
        });
        layers.push(flag_layer(&inputs.flags)?);
        debug_assert!(layers.windows(2).all(|w| w[0].layer < w[1].layer));

        let resolved = resolve_layers(&layers);
        for err in nomad_env_errors {
            if let ConfigError::EnvValue { key, .. } = &err
                && resolved
                    .get(key.name)
                    .is_some_and(|r| r.source == Source::Default)
            {
                return Err(err);
            }
        }
        let defaults_env = ["USER", "LOGNAME", "HOME"]
            .iter()
            .filter_map(|k| inputs.env.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        Config::finish(
            resolved,
            Parts {
                notices,
                user_config,
                layers,
                defaults_env,
                repository,
            },
        )
    }

    /// This config with a recipe's `lease{}` options as the recipe layer (above
    /// `.leasebox.toml`, below flags). Each call starts again from the config without recipe
    /// options: the options replace any given to an earlier call.
    ///
    /// Only the repository's own keys are accepted (image, cpu, memory, disk, `exec_timeout`,
    /// `sync.exclude`), each recorded as [`Source::Recipe`] with the recipe's file and line.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownRecipeKey`] (with a suggestion), [`ConfigError::RecipeValue`] for a
    /// value the key cannot take, [`ConfigError::UserOnlyKey`] for a user-only key,
    /// [`ConfigError::BoundaryInRecipe`] for an execution boundary, and
    /// [`ConfigError::OverLimit`] for a resource above the user's `max_*`. The last four are
    /// [`ErrorKind::TrustRefused`](crate::error::ErrorKind::TrustRefused).
    pub fn with_recipe(&self, options: &[RecipeOption]) -> Result<Config, ConfigError> {
        let mut values: Vec<(&'static KeyDef, Value, Source)> = Vec::new();
        for option in options {
            let (key, value) = recipe_value(option, self.user_config.as_deref())?;
            let source = Source::Recipe {
                path: option.path.clone(),
                line: option.line,
            };
            values.retain(|(k, _, _)| k.name != key.name);
            values.push((key, value, source));
        }
        let mut layers = self.layers.clone();
        for layer in &mut layers {
            if layer.layer == Layer::Recipe {
                layer.values = std::mem::take(&mut values);
            }
        }
        let resolved = resolve_layers(&layers);
        Config::finish(
            resolved,
            Parts {
                notices: self.notices.clone(),
                user_config: self.user_config.clone(),
                layers,
                defaults_env: self.defaults_env.clone(),
                repository: self.repository.clone(),
            },
        )
    }

    /// Fill the computed defaults, check the limits, type the settings.
    fn finish(
        mut resolved: BTreeMap<&'static str, Resolved>,
        parts: Parts,
    ) -> Result<Config, ConfigError> {
        compute_defaults(&mut resolved, &parts.defaults_env);
        check_limits(&resolved)?;
        let home = parts.defaults_env.get("HOME").map(String::as_str);
        let mut settings = Settings::from_resolved(&resolved, home);
        // A file the repository's config names is used as pinned by its trust, never read
        // again (the bytes hashed are the bytes used).
        if let (Some(repository), Some(template)) =
            (&parts.repository, settings.nomad.jobspec_template.as_mut())
            && let Some(r) = resolved.get("nomad.jobspec_template")
            && matches!(r.source, Source::Repository { .. })
            && let Some(pinned) = repository.file.pinned("nomad.jobspec_template")
        {
            template.path.clone_from(&pinned.path);
            template.pinned = Some(std::sync::Arc::clone(&pinned.bytes));
        }
        Ok(Config {
            resolved,
            settings,
            notices: parts.notices,
            user_config: parts.user_config,
            layers: parts.layers,
            defaults_env: parts.defaults_env,
            repository: parts.repository,
        })
    }

    /// The repository's `.leasebox.toml`, when there is one: its path, hash, entries and (when
    /// it sets a boundary) its trust.
    #[must_use]
    pub fn repository(&self) -> Option<&RepositoryConfig> {
        self.repository.as_ref()
    }

    /// The resolved config, typed.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One key (dotted name) with its value and source; `None` for an unknown key.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Resolved> {
        self.resolved.get(key)
    }

    /// Every key, in the key table's order.
    pub fn resolved(&self) -> impl Iterator<Item = &Resolved> {
        KEYS.iter().filter_map(|k| self.resolved.get(k.name))
    }

    /// One-line notices for the user (stderr), e.g. a misspelled `LEASEBOX_*` variable.
    #[must_use]
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Where the user config is for this environment (whether or not it exists): the file
    /// `LEASEBOX_CONFIG` names, else the XDG or home location; `None` without a home. For
    /// messages that say where to set a key, without loading the config.
    #[must_use]
    pub fn locate_user_config(env: &BTreeMap<String, String>) -> Option<PathBuf> {
        file::locate_user_config(env, None)
            .ok()
            .flatten()
            .map(|u| u.path)
    }

    /// The user config file looked at (whether or not it exists); `None` without a home.
    #[must_use]
    pub fn user_config_path(&self) -> Option<&Path> {
        self.user_config.as_deref()
    }
}

/// The built-in values of `default.toml`, key by key (a key whose default is worked out or
/// unset, see [`KeyDef::default_note`](super::KeyDef::default_note), is absent).
#[must_use]
pub fn builtin_defaults() -> Vec<(&'static KeyDef, Value)> {
    super::layers::default_layer()
        .values
        .into_iter()
        .map(|(key, value, _)| (key, value))
        .collect()
}

/// The parts of a [`Config`] besides its resolved values.
struct Parts {
    notices: Vec<String>,
    user_config: Option<PathBuf>,
    layers: Vec<LayerValues>,
    defaults_env: BTreeMap<String, String>,
    repository: Option<RepositoryConfig>,
}

/// Resolve every key: each layer, lowest first, replaces the value below.
fn resolve_layers(layers: &[LayerValues]) -> BTreeMap<&'static str, Resolved> {
    let mut resolved: BTreeMap<&'static str, Resolved> = KEYS
        .iter()
        .map(|k| {
            (
                k.name,
                Resolved {
                    key: k,
                    value: None,
                    source: Source::Default,
                },
            )
        })
        .collect();
    for layer in layers {
        for (key, value, source) in &layer.values {
            let slot = resolved.get_mut(key.name).expect("every key has a slot");
            slot.value = Some(value.clone());
            slot.source = source.clone();
        }
    }
    resolved
}

/// A resource asked for by the repository or a recipe must not exceed the user's limit.
fn check_limits(resolved: &BTreeMap<&'static str, Resolved>) -> Result<(), ConfigError> {
    for (name, limit_name) in LIMITS {
        let (Some(asked), Some(limit)) = (resolved.get(name), resolved.get(limit_name)) else {
            continue;
        };
        if !matches!(
            asked.source,
            Source::Repository { .. } | Source::Recipe { .. }
        ) {
            continue;
        }
        let (Some(Value::Integer(value)), Some(Value::Integer(max))) = (&asked.value, &limit.value)
        else {
            continue;
        };
        if value > max {
            return Err(ConfigError::OverLimit {
                key: asked.key,
                value: *value,
                requested_by: asked.source.clone(),
                limit_key: limit.key,
                limit: *max,
                limit_source: limit.source.clone(),
            });
        }
    }
    Ok(())
}

/// Fill the defaults that are worked out rather than written down: `backend` (DESIGN §9) and
/// `owner`.
fn compute_defaults(
    resolved: &mut BTreeMap<&'static str, Resolved>,
    env: &BTreeMap<String, String>,
) {
    let address_source = resolved
        .get("nomad.address")
        .filter(|r| r.value.is_some())
        .map(|r| r.source.clone());
    if let Some(backend) = resolved.get_mut("backend")
        && backend.value.is_none()
    {
        let (choice, from) = match address_source {
            Some(source) => ("nomad", format!("`nomad.address` is set by {source}")),
            None => ("local", "`nomad.address` is unset".to_owned()),
        };
        backend.value = Some(Value::String(choice.to_owned()));
        backend.source = Source::Computed { from };
    }
    if let Some(owner) = resolved.get_mut("owner")
        && owner.value.is_none()
    {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| env.get(*v).filter(|u| !u.is_empty()))
            .map_or("unknown", String::as_str);
        let host = settings::hostname();
        owner.value = Some(Value::String(settings::owner_default(user, &host)));
        owner.source = Source::Computed {
            from: format!("sha256 of `{user}@{host}`"),
        };
    }
}

#[cfg(test)]
mod tests;
