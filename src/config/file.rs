//! Config files: where the user config lives, and parsing a file into checked entries that
//! remember their line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::error::ConfigError;
use super::keys::{self, KeyDef, SECTIONS};
use super::value::{Value, ValueProblem, describe_found};

/// One key set by a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The key.
    pub key: &'static KeyDef,
    /// Its checked value.
    pub value: Value,
    /// The 1-based line the key is on.
    pub line: usize,
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parse a config file's text into entries, checking every key and value against the key
/// table. When several things are wrong, the error on the earliest line is returned.
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Vec<FileEntry>, ConfigError> {
    parse_file_with(path, text, &|_, _| Ok(()))
}

/// [`parse_file`], with `admit` asked about each known key (and its line) before its value is
/// checked: the repository file refuses user-only keys there, so a repository learns nothing
/// from how their values would parse.
pub(crate) fn parse_file_with(
    path: &Path,
    text: &str,
    admit: &dyn Fn(&'static KeyDef, usize) -> Result<(), ConfigError>,
) -> Result<Vec<FileEntry>, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().trim().trim_end_matches('.').to_owned(),
    })?;
    let mut entries = Vec::new();
    let mut errors: Vec<(usize, ConfigError)> = Vec::new();
    for (key, value) in doc.get_ref() {
        let name = key.get_ref().as_ref();
        let line = line_of(text, key.span().start);
        if SECTIONS.contains(&name) {
            let DeValue::Table(section) = value.get_ref() else {
                errors.push((
                    line,
                    ConfigError::NotATable {
                        path: path.to_owned(),
                        line,
                        section: SECTIONS
                            .iter()
                            .find(|s| **s == name)
                            .copied()
                            .unwrap_or("?"),
                        found: describe_found(value.get_ref()),
                    },
                ));
                continue;
            };
            for (leaf, value) in section {
                let dotted = format!("{name}.{}", leaf.get_ref());
                let line = line_of(text, leaf.span().start);
                match entry(path, &dotted, false, value.get_ref(), line, admit) {
                    Ok(e) => entries.push(e),
                    Err(e) => errors.push((line, e)),
                }
            }
        } else {
            match entry(path, name, true, value.get_ref(), line, admit) {
                Ok(e) => entries.push(e),
                Err(e) => errors.push((line, e)),
            }
        }
    }
    if let Some((_, err)) = errors.into_iter().min_by_key(|(line, _)| *line) {
        return Err(err);
    }
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

/// Check one key. `dotted` is `section.leaf` for a key inside a section, or a top-level name,
/// which never matches a sectioned key even when written quoted (`"nomad.image" = …`).
fn entry(
    path: &Path,
    dotted: &str,
    top_level: bool,
    value: &DeValue<'_>,
    line: usize,
    admit: &dyn Fn(&'static KeyDef, usize) -> Result<(), ConfigError>,
) -> Result<FileEntry, ConfigError> {
    let found = KeyDef::find(dotted).filter(|d| !top_level || d.section().is_none());
    let Some(def) = found else {
        return Err(ConfigError::UnknownKey {
            path: path.to_owned(),
            line,
            key: dotted.to_owned(),
            suggestion: keys::suggest(dotted),
        });
    };
    admit(def, line)?;
    match Value::from_toml(def, value) {
        Ok(value) => Ok(FileEntry {
            key: def,
            value,
            line,
        }),
        Err(ValueProblem::WrongType { found }) => Err(ConfigError::WrongType {
            path: path.to_owned(),
            line,
            key: def,
            found,
        }),
        Err(ValueProblem::Invalid(reason)) => Err(ConfigError::InvalidValue {
            path: path.to_owned(),
            line,
            key: def,
            reason,
        }),
    }
}

/// Where the user config is, and whether it was named explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserConfigPath {
    /// The file.
    pub path: PathBuf,
    /// Named by `LEASEBOX_CONFIG` (then it must exist).
    pub explicit: bool,
}

/// Find the user config: `$LEASEBOX_CONFIG` (refused when inside `repo_root`), else
/// `$XDG_CONFIG_HOME/leasebox/config.toml` (an absolute `XDG_CONFIG_HOME` only, as the XDG spec
/// says), else `$HOME/.config/leasebox/config.toml`. `None` when there is no home either.
pub(crate) fn locate_user_config(
    env: &BTreeMap<String, String>,
    repo_root: Option<&Path>,
) -> Result<Option<UserConfigPath>, ConfigError> {
    let non_empty = |name: &str| env.get(name).filter(|v| !v.is_empty());
    if let Some(named) = non_empty("LEASEBOX_CONFIG") {
        let path = PathBuf::from(named);
        if let Some(root) = repo_root
            && is_inside(&path, root)
        {
            return Err(ConfigError::ConfigInRepository {
                path,
                repo_root: root.to_owned(),
            });
        }
        return Ok(Some(UserConfigPath {
            path,
            explicit: true,
        }));
    }
    let base = non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty("HOME").map(|home| Path::new(home).join(".config")));
    Ok(base.map(|base| UserConfigPath {
        path: base.join("leasebox").join("config.toml"),
        explicit: false,
    }))
}

/// Whether `path` lies inside `root`, comparing canonical paths (symlinks resolved) where they
/// exist, so `repo/../repo/x` and a link into the repository count as inside.
fn is_inside(path: &Path, root: &Path) -> bool {
    let root = root.canonicalize().unwrap_or_else(|_| absolute(root));
    let path = canonical_or_lexical(path);
    path.starts_with(&root)
}

fn canonical_or_lexical(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    // A missing file: canonicalize the nearest existing ancestor and append the rest.
    let abs = absolute(path);
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    while let Some(parent) = cur.parent() {
        if let Some(name) = cur.file_name() {
            rest.push(name.to_owned());
        }
        if let Ok(base) = parent.canonicalize() {
            let mut out = base;
            for name in rest.iter().rev() {
                out.push(name);
            }
            return out;
        }
        cur = parent;
    }
    abs
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn lines_of_keys() {
        let text =
            "# comment\nmax_cpu = 4000\n\n[nomad]\nimage = \"rust\"\n[lease]\nttl = \"1h\"\n";
        let entries = parse_file(Path::new("c.toml"), text).unwrap();
        let lines: Vec<_> = entries.iter().map(|e| (e.key.name, e.line)).collect();
        assert_eq!(
            lines,
            [("max_cpu", 2), ("nomad.image", 5), ("lease.ttl", 7)]
        );
    }

    #[test]
    fn dotted_keys_and_inline_tables() {
        let text = "nomad.cpu = 3000\nlease = { idle = \"5m\" }\n";
        let entries = parse_file(Path::new("c.toml"), text).unwrap();
        let lines: Vec<_> = entries.iter().map(|e| (e.key.name, e.line)).collect();
        assert_eq!(lines, [("nomad.cpu", 1), ("lease.idle", 2)]);
    }

    #[test]
    fn array_of_tables_constraints() {
        let text =
            "[[nomad.constraints]]\nattribute = \"${attr.kernel.name}\"\nvalue = \"linux\"\n";
        let entries = parse_file(Path::new("c.toml"), text).unwrap();
        assert_eq!(entries[0].key.name, "nomad.constraints");
        assert_eq!(
            entries[0].value.shown(),
            "[{ attribute = \"${attr.kernel.name}\", value = \"linux\" }]"
        );
    }

    #[test]
    fn the_earliest_error_wins() {
        let text = "[nomad]\nimgae = \"x\"\n[lease]\nttl = 5\n";
        let err = parse_file(Path::new("c.toml"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key `nomad.imgae` in c.toml:2; did you mean `nomad.image`?"
        );
    }

    #[test]
    fn section_errors() {
        let err = parse_file(Path::new("c.toml"), "\n\nnomad = 1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`nomad` in c.toml:3 must be a table, e.g. `[nomad]`, but is an integer"
        );
        let err = parse_file(Path::new("c.toml"), "[nomd]\nimage = \"x\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key `nomd` in c.toml:1; did you mean `nomad`?"
        );
        let err = parse_file(Path::new("c.toml"), "\"nomad.image\" = \"x\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown key `nomad.image` in c.toml:1"),
            "{err}"
        );
        let err = parse_file(Path::new("c.toml"), "[backend]\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("`backend` in c.toml:1 must be one of `local`, `nomad`"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = parse_file(Path::new("c.toml"), "max_cpu = 1\n\n[nomad\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("failed to parse c.toml:3: "), "{msg}");
        assert!(msg.ends_with("; fix the TOML syntax there"), "{msg}");
    }

    #[test]
    fn user_config_location() {
        let found = |pairs: &[(&str, &str)]| {
            locate_user_config(&env(pairs), None)
                .unwrap()
                .map(|u| (u.path, u.explicit))
        };
        assert_eq!(
            found(&[("HOME", "/h")]),
            Some((PathBuf::from("/h/.config/leasebox/config.toml"), false))
        );
        assert_eq!(
            found(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]),
            Some((PathBuf::from("/x/leasebox/config.toml"), false))
        );
        assert_eq!(
            found(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "relative")]),
            Some((PathBuf::from("/h/.config/leasebox/config.toml"), false))
        );
        assert_eq!(
            found(&[
                ("HOME", "/h"),
                ("XDG_CONFIG_HOME", "/x"),
                ("LEASEBOX_CONFIG", "/c.toml")
            ]),
            Some((PathBuf::from("/c.toml"), true))
        );
        assert_eq!(found(&[]), None);
    }

    #[test]
    fn leasebox_config_inside_the_repository_is_refused() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("sub")).unwrap();
        let inside = repo.path().join("sub/../sub/missing.toml");
        let err = locate_user_config(
            &env(&[("LEASEBOX_CONFIG", inside.to_str().unwrap())]),
            Some(repo.path()),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::ConfigInRepository { .. }));
        assert!(
            err.to_string()
                .contains("a repository cannot supply the user config"),
            "{err}"
        );

        let outside = tempfile::tempdir().unwrap();
        let ok = locate_user_config(
            &env(&[(
                "LEASEBOX_CONFIG",
                outside.path().join("c.toml").to_str().unwrap(),
            )]),
            Some(repo.path()),
        );
        assert!(ok.unwrap().unwrap().explicit);
    }
}
