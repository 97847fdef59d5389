//! The config loader (`config::Config::load`) over a user config and a repository
//! `.leasebox.toml` written from every key of the key table with values of every type (right,
//! wrong, out of range), in sections or as dotted keys, or as written in the input (the user
//! config, a line `---`, the repository file). Oracle: loading
//! never panics, nor does anything shown from a loaded config (`--explain` as text, JSON and
//! TOML); an error names the file at fault; a repository file that parses and sets a user-only
//! key never loads (and when that is its one key, it is refused as `trust_refused`, whatever
//! the value), nor does one that sets an execution boundary (none is trusted here); a loaded
//! config takes each key the repository set from the repository, and each key only the user
//! config set from the user config.

use std::collections::BTreeMap;
use std::path::Path;

use leasebox::config::{Config, ConfigInputs, KEYS, KeyDef, Source, TrustClass, ValueType};
use leasebox::error::{ErrorKind, HasKind};

use super::input::Input;

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A value for `key`: mostly of its type, sometimes not.
fn value(input: &mut Input<'_>, key: &KeyDef) -> String {
    if input.one_in(4) {
        return (input.pick(&[
            "1",
            "-1",
            "18446744073709551616",
            "true",
            "1.5",
            "\"\"",
            "[]",
            "[1, \"a\"]",
            "{}",
            "{ a = 1 }",
            "1979-05-27T07:32:00Z",
            "nan",
            "\"\\u0000\"",
        ]))
        .to_owned();
    }
    match key.ty {
        ValueType::String | ValueType::Path => match input.below(4) {
            0 => toml_string(input.pick(&[
                "~/x",
                "relative/p",
                "/abs",
                "",
                "http://127.0.0.1:4646",
                "unix:///tmp/s",
                "https://[::1]:4646",
                "ftp://x",
            ])),
            1 => key.example.to_owned(),
            _ => toml_string(&input.text(10)),
        },
        ValueType::Integer => {
            (input.pick(&["0", "1", "500", "9223372036854775807", "-5"])).to_owned()
        }
        ValueType::Bool => (input.pick(&["true", "false", "\"yes\""])).to_owned(),
        ValueType::Duration => toml_string(input.pick(&[
            "90m",
            "1h 30m",
            "0s",
            "",
            "-1s",
            "10",
            "5 years",
            "1ms",
            "999999999999h",
        ])),
        ValueType::StringList => {
            let items: Vec<String> = (0..input.below(3))
                .map(|_| toml_string(&input.text(6)))
                .collect();
            format!("[{}]", items.join(", "))
        }
        ValueType::TableList => (input.pick(&[
            "[]",
            "[{ attribute = \"${attr.kernel.name}\", value = \"linux\" }]",
            "[{ attribute = \"a\", operator = \"regexp\", value = \"x\" }]",
            "[{ bogus = \"a\" }]",
            "[{ attribute = 1 }]",
            "[\"a\"]",
        ]))
        .to_owned(),
        ValueType::Choice(choices) => {
            if input.one_in(3) {
                toml_string(&input.text(5))
            } else {
                toml_string(input.pick(choices))
            }
        }
    }
}

/// A config file from the input: its text, and the keys it sets (when it is well formed).
fn file(input: &mut Input<'_>) -> (String, Vec<&'static KeyDef>) {
    if input.one_in(6) {
        return (input.text(40), Vec::new());
    }
    let mut top = String::new();
    let mut sections: BTreeMap<&str, String> = BTreeMap::new();
    let mut set: Vec<&'static KeyDef> = Vec::new();
    let use_sections = input.one_in(2);
    for _ in 0..input.below(6) {
        let key = if input.one_in(10) {
            None
        } else {
            Some(&KEYS[input.below(KEYS.len())])
        };
        let Some(key) = key else {
            top.push_str(input.pick(&[
                "nomad.bogus = 1\n",
                "imgae = \"x\"\n",
                "nomad = 3\n",
                "[lease]\n",
            ]));
            continue;
        };
        if set.iter().any(|k| k.name == key.name) {
            continue;
        }
        let v = value(input, key);
        match key.section() {
            Some(section) if use_sections => {
                let body = sections.entry(section).or_default();
                body.push_str(&format!("{} = {v}\n", key.leaf()));
            }
            _ => top.push_str(&format!("{} = {v}\n", key.name)),
        }
        set.push(key);
    }
    let mut text = top;
    for (section, body) in sections {
        text.push_str(&format!("[{section}]\n{body}"));
    }
    (text, set)
}

/// Run the oracle on one input; true when the config loaded.
///
/// # Panics
/// When loading panics or breaks the oracle.
pub fn check(data: &[u8]) -> bool {
    let mut input = Input::new(data);
    if input.byte().is_multiple_of(3) {
        // As written: the user config, a line `---`, the repository file.
        let text = input.rest_text();
        let (user, repo) = text.split_once("\n---\n").unwrap_or((&text, ""));
        return check_files(user, repo);
    }
    let (user, _) = file(&mut input);
    let (repo, _) = file(&mut input);
    check_files(&user, &repo)
}

/// How many values a well-formed config file sets, known keys or not (`None` if it is not
/// TOML): a section's values count one each, a top-level value one.
fn leaf_count(text: &str) -> Option<usize> {
    let table: toml::Table = text.parse().ok()?;
    Some(
        table
            .iter()
            .map(|(name, v)| match v {
                // A section's entries are its keys; any other value, an inline table under a
                // key such as `owner = {}` included, is one key set (as `keys_set` reads it).
                toml::Value::Table(inner) if is_section(name) => inner.len(),
                _ => 1,
            })
            .sum(),
    )
}

/// Whether `name` is a section of the key table (`nomad`, …).
fn is_section(name: &str) -> bool {
    KEYS.iter().any(|k| k.section() == Some(name))
}

/// The keys a well-formed config file sets, by their dotted names (`None` if it is not TOML).
fn keys_set(text: &str) -> Option<Vec<&'static KeyDef>> {
    let table: toml::Table = text.parse().ok()?;
    let mut out = Vec::new();
    for (name, value) in &table {
        match value {
            toml::Value::Table(inner) if is_section(name) => {
                for leaf in inner.keys() {
                    if let Some(k) = KeyDef::find(&format!("{name}.{leaf}")) {
                        out.push(k);
                    }
                }
            }
            _ => {
                if let Some(k) = KeyDef::find(name) {
                    out.push(k);
                }
            }
        }
    }
    Some(out)
}

fn load(
    base: &Path,
    user: &Path,
    repo_root: Option<&Path>,
) -> Result<Config, leasebox::config::ConfigError> {
    let env = [
        ("LEASEBOX_CONFIG", user.to_string_lossy().into_owned()),
        ("HOME", base.join("home").to_string_lossy().into_owned()),
        ("USER", "fuzz".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Config::load(&ConfigInputs {
        env,
        flags: Vec::new(),
        repo_root: repo_root.map(Path::to_path_buf),
        trust_dir: None,
    })
}

/// The oracle for one user config and one repository file; true when the config loaded.
///
/// # Panics
/// When loading panics or breaks the oracle.
pub fn check_files(user_text: &str, repo_text: &str) -> bool {
    let guard = tempfile::tempdir().expect("a temporary directory");
    let base = guard.path();
    let user = base.join("home/config.toml");
    let repo_root = base.join("repo");
    let repo = repo_root.join(".leasebox.toml");
    std::fs::create_dir_all(base.join("home")).expect("home");
    std::fs::create_dir_all(&repo_root).expect("repo");
    std::fs::write(&user, user_text).expect("user config");
    std::fs::write(&repo, repo_text).expect("repository config");
    let ctx = || format!("user {user_text:?}\nrepository {repo_text:?}");

    let user_alone = load(base, &user, None);
    let result = load(base, &user, Some(&repo_root));
    let config = match result {
        Err(e) => {
            let text = e.to_string();
            let names = |p: &Path| text.contains(&p.display().to_string());
            assert!(
                names(&user) || names(&repo),
                "the error names neither file: {text}\n{}",
                ctx()
            );
            if user_alone.is_ok() && names(&user) && !names(&repo) {
                panic!(
                    "a user config that loads alone is blamed: {text}\n{}",
                    ctx()
                );
            }
            if let (Ok(_), Some(set)) = (&user_alone, keys_set(repo_text))
                && set.len() == 1
                && leaf_count(repo_text) == Some(1)
                && set[0].class == TrustClass::UserOnly
            {
                // A user-only key alone is refused as such, whatever its value (an error on
                // an earlier line may come first when there is more).
                assert_eq!(e.kind(), ErrorKind::TrustRefused, "{text}\n{}", ctx());
            }
            return false;
        }
        Ok(config) => config,
    };
    let _ = config.explain_text();
    let _ = config.to_json().to_string();
    let _ = config.to_toml();
    let _ = config.settings();
    let user_set = keys_set(user_text)
        .unwrap_or_else(|| panic!("a user config that is not TOML loaded\n{}", ctx()));
    let repo_set = keys_set(repo_text)
        .unwrap_or_else(|| panic!("a repository file that is not TOML loaded\n{}", ctx()));
    for key in &repo_set {
        assert_ne!(
            key.class,
            TrustClass::UserOnly,
            "the repository set `{}`\n{}",
            key.name,
            ctx()
        );
        assert_ne!(
            key.class,
            TrustClass::Boundary,
            "the untrusted repository set `{}`\n{}",
            key.name,
            ctx()
        );
        let source = &config.get(key.name).expect("a known key").source;
        assert!(
            matches!(source, Source::Repository { path, .. } if *path == repo),
            "`{}` set by the repository comes from {source:?}\n{}",
            key.name,
            ctx()
        );
    }
    for key in user_set
        .iter()
        .filter(|k| !repo_set.iter().any(|r| r.name == k.name))
    {
        let source = &config.get(key.name).expect("a known key").source;
        assert!(
            matches!(source, Source::UserConfig { path, .. } if *path == user),
            "`{}` set by the user config comes from {source:?}\n{}",
            key.name,
            ctx()
        );
    }
    true
}
