//! Showing the resolved config: `leasebox config` (TOML) and `leasebox config --explain`
//! (each value with its source and trust class, as text or JSON).
//!
//! No key holds a secret: the Nomad token is only ever named (`nomad.token_env`), never read
//! here, so nothing rendered can leak it.

use std::fmt::Write as _;

use serde::Serialize;

use super::keys::{KEYS, SECTIONS, TrustClass};
use super::resolve::Config;

/// What `(unset)` values are shown as.
pub const UNSET: &str = "(unset)";

/// The widest value column in the text rendering; a longer value pushes its row's source and
/// class to the right rather than widening every row.
const MAX_VALUE_WIDTH: usize = 40;

/// One row of `leasebox config --explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainRow {
    /// The dotted key.
    pub key: &'static str,
    /// The value in TOML form, or `(unset)`.
    pub value: String,
    /// Where it came from, as shown (`default`, `env LEASEBOX_NOMAD_IMAGE`, `user config
    /// /path:3`, `flag --nomad-image`, …).
    pub source: String,
    /// Who may set it.
    pub class: TrustClass,
}

impl Config {
    /// One row per key, in the key table's order.
    #[must_use]
    pub fn explain(&self) -> Vec<ExplainRow> {
        self.resolved()
            .map(|r| ExplainRow {
                key: r.key.name,
                value: r
                    .value
                    .as_ref()
                    .map_or_else(|| UNSET.to_owned(), |v| v.shown()),
                source: r.source.to_string(),
                class: r.key.class,
            })
            .collect()
    }

    /// `leasebox config --explain` as aligned text.
    #[must_use]
    pub fn explain_text(&self) -> String {
        render_explain(&self.explain())
    }

    /// `leasebox config --explain --json`: an object keyed by dotted name, each with `value`
    /// (JSON, `null` when unset), `source` (an object tagged by `kind`, e.g.
    /// `{"kind": "user_config", "path": …, "line": 3}`), `source_text` (as shown in the text
    /// form) and `class` (`user_only`, `boundary`, `own`).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for r in self.resolved() {
            out.insert(
                r.key.name.to_owned(),
                serde_json::json!({
                    "value": r.value.as_ref().map_or(serde_json::Value::Null, |v| v.to_json()),
                    "source": r.source,
                    "source_text": r.source.to_string(),
                    "class": r.key.class,
                }),
            );
        }
        serde_json::Value::Object(out)
    }

    /// `leasebox config`: the resolved values as a TOML document (unset keys as comments). It
    /// parses back as a user config giving the same settings.
    #[must_use]
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# the resolved leasebox config; `leasebox config --explain` shows where each value \
             comes from\n",
        );
        let sections = std::iter::once(None).chain(SECTIONS.iter().copied().map(Some));
        for section in sections {
            if let Some(name) = section {
                let _ = write!(out, "\n[{name}]\n");
            }
            for key in KEYS.iter().filter(|k| k.section() == section) {
                match self.get(key.name).and_then(|r| r.value.as_ref()) {
                    Some(v) => {
                        let _ = writeln!(out, "{} = {}", key.leaf(), v.shown());
                    }
                    None => {
                        let _ = writeln!(out, "# {} {UNSET}", key.leaf());
                    }
                }
            }
        }
        out
    }
}

/// Render explain rows as aligned columns under a header. A value wider than the value column
/// (a long list) wraps after its commas onto continuation lines under the value column.
#[must_use]
pub fn render_explain(rows: &[ExplainRow]) -> String {
    let wrapped: Vec<Vec<String>> = rows.iter().map(|r| wrap_value(&r.value)).collect();
    let key_w = rows
        .iter()
        .map(|r| r.key.chars().count())
        .chain([3])
        .max()
        .unwrap_or(0);
    let value_w = wrapped
        .iter()
        .flatten()
        .map(|c| c.chars().count())
        .chain([5])
        .max()
        .unwrap_or(0);
    let source_w = rows
        .iter()
        .map(|r| r.source.chars().count())
        .chain([6])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:key_w$}  {:value_w$}  {:source_w$}  CLASS",
        "KEY", "VALUE", "SOURCE"
    );
    for (r, chunks) in rows.iter().zip(&wrapped) {
        let first = chunks.first().map_or("", String::as_str);
        let _ = writeln!(
            out,
            "{:key_w$}  {first:value_w$}  {:source_w$}  {}",
            r.key, r.source, r.class
        );
        for more in &chunks[1..] {
            let _ = writeln!(out, "{:key_w$}  {more}", "");
        }
    }
    out
}

/// Split a shown value into pieces of at most [`MAX_VALUE_WIDTH`] characters, breaking only
/// after a `, ` (so a list wraps between its items); a single item longer than that stays whole.
fn wrap_value(value: &str) -> Vec<String> {
    if value.chars().count() <= MAX_VALUE_WIDTH {
        return vec![value.to_owned()];
    }
    let mut chunks = Vec::new();
    let mut current = String::new();
    for (i, piece) in value.split(", ").enumerate() {
        let piece = if i == 0 {
            piece.to_owned()
        } else {
            format!(" {piece}")
        };
        let joined = current.chars().count() + 1 + piece.chars().count();
        if !current.is_empty() && joined > MAX_VALUE_WIDTH {
            current.push(',');
            chunks.push(std::mem::take(&mut current));
            current.push_str(&piece);
        } else {
            if !current.is_empty() {
                current.push(',');
            }
            current.push_str(&piece);
        }
    }
    chunks.push(current);
    chunks
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::resolve::ConfigInputs;

    fn inputs(dir: &std::path::Path, env: &[(&str, &str)]) -> ConfigInputs {
        let mut map: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.insert("XDG_CONFIG_HOME".into(), dir.to_str().unwrap().into());
        map.insert("USER".into(), "alice".into());
        ConfigInputs {
            env: map,
            ..ConfigInputs::default()
        }
    }

    fn write_user_config(dir: &std::path::Path, text: &str) {
        std::fs::create_dir_all(dir.join("leasebox")).unwrap();
        std::fs::write(dir.join("leasebox/config.toml"), text).unwrap();
    }

    #[test]
    fn rows_follow_the_key_table() {
        let dir = tempfile::tempdir().unwrap();
        write_user_config(dir.path(), "[nomad]\n\nimage = \"rust:1.88\"\n");
        let mut inputs = inputs(dir.path(), &[("LEASEBOX_LEASE_TTL", "2h")]);
        inputs.flags.push(("nomad.cpu".into(), "3000".into()));
        let config = Config::load(&inputs).unwrap();
        let rows = config.explain();
        assert_eq!(rows.len(), KEYS.len());
        assert!(rows.iter().zip(KEYS).all(|(r, k)| r.key == k.name));
        let row = |key: &str| rows.iter().find(|r| r.key == key).unwrap().clone();
        let path = dir.path().join("leasebox/config.toml");
        assert_eq!(
            row("nomad.image"),
            ExplainRow {
                key: "nomad.image",
                value: "\"rust:1.88\"".into(),
                source: format!("user config {}:3", path.display()),
                class: TrustClass::Own,
            }
        );
        assert_eq!(row("lease.ttl").source, "env LEASEBOX_LEASE_TTL");
        assert_eq!(row("lease.ttl").value, "\"2h\"");
        assert_eq!(row("nomad.cpu").source, "flag --nomad-cpu");
        assert_eq!(row("nomad.address").value, UNSET);
        assert_eq!(row("nomad.address").class, TrustClass::UserOnly);
        assert_eq!(row("backend").source, "default (`nomad.address` is unset)");
        assert_eq!(row("nomad.token_env").value, "\"NOMAD_TOKEN\"");
    }

    #[test]
    fn text_columns_are_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&inputs(dir.path(), &[])).unwrap();
        let text = config.explain_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("KEY "), "{text}");
        let source_col = lines[0].find("SOURCE").unwrap();
        let class_col = lines[0].find("CLASS").unwrap();
        let mut rows = config.explain().into_iter();
        for line in &lines[1..] {
            assert_eq!(line.trim_end(), *line, "no trailing spaces");
            if line.starts_with(' ') {
                continue; // the continuation of a wrapped value
            }
            let row = rows.next().unwrap();
            assert!(line.starts_with(row.key), "{line}");
            assert!(line[source_col..].starts_with(&row.source), "{line}");
            assert_eq!(&line[class_col..], row.class.as_str(), "{line}");
        }
        assert!(rows.next().is_none());
        // The long default exclude list wraps after commas and reads back whole.
        let start = lines
            .iter()
            .position(|l| l.starts_with("sync.exclude"))
            .unwrap();
        let value_col = lines[0].find("VALUE").unwrap();
        let mut joined = lines[start][value_col..source_col].trim_end().to_owned();
        for line in lines[start + 1..].iter().take_while(|l| l.starts_with(' ')) {
            joined.push(' ');
            joined.push_str(line.trim());
        }
        assert_eq!(
            joined,
            config
                .get("sync.exclude")
                .unwrap()
                .value
                .as_ref()
                .unwrap()
                .shown()
        );
        println!("{text}");
        assert!(text.contains("(unset)"));
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap_value("\"short\""), ["\"short\""]);
        let long = format!("[{}]", ["\"abcdefghij\""; 6].join(", "));
        let chunks = wrap_value(&long);
        assert!(
            chunks.iter().all(|c| c.chars().count() <= MAX_VALUE_WIDTH),
            "{chunks:?}"
        );
        assert_eq!(chunks.concat(), long);
        let one = "x".repeat(MAX_VALUE_WIDTH + 5);
        assert_eq!(wrap_value(&one), [one]);
    }

    #[test]
    fn the_token_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        write_user_config(dir.path(), "[nomad]\ntoken_env = \"MY_NOMAD_TOKEN\"\n");
        let secret = "d3adb33f-0000-4000-8000-5ecre7700000";
        let config = Config::load(&inputs(
            dir.path(),
            &[
                ("NOMAD_TOKEN", secret),
                ("MY_NOMAD_TOKEN", secret),
                ("NOMAD_ADDR", "https://nomad.example.com"),
            ],
        ))
        .unwrap();
        let text = config.explain_text();
        let json = config.to_json().to_string();
        let toml = config.to_toml();
        for out in [&text, &json, &toml] {
            assert!(!out.contains(secret), "the token leaked:\n{out}");
            assert!(out.contains("MY_NOMAD_TOKEN"), "token_env is shown:\n{out}");
        }
        assert!(config.notices().iter().all(|n| !n.contains(secret)));
        assert!(!format!("{config:?}").contains(secret));

        // A token pasted into `token_env` by mistake is refused without echoing it.
        write_user_config(dir.path(), &format!("[nomad]\ntoken_env = \"{secret}\"\n"));
        let err = Config::load(&inputs(dir.path(), &[]))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        assert!(err.contains("never the token itself"), "{err}");
    }

    #[test]
    fn json_has_value_source_and_class() {
        let dir = tempfile::tempdir().unwrap();
        write_user_config(dir.path(), "max_cpu = 4000\n");
        let config = Config::load(&inputs(dir.path(), &[("NOMAD_REGION", "eu")])).unwrap();
        let json = config.to_json();
        assert_eq!(json["max_cpu"]["value"], 4000);
        assert_eq!(json["max_cpu"]["source"]["kind"], "user_config");
        assert_eq!(json["max_cpu"]["source"]["line"], 1);
        assert_eq!(json["max_cpu"]["class"], "user_only");
        assert_eq!(json["nomad.region"]["value"], "eu");
        assert_eq!(json["nomad.region"]["source"]["kind"], "nomad_env");
        assert_eq!(json["nomad.region"]["source"]["var"], "NOMAD_REGION");
        assert_eq!(json["nomad.region"]["source_text"], "env NOMAD_REGION");
        assert_eq!(json["nomad.region"]["class"], "boundary");
        assert!(json["nomad.address"]["value"].is_null());
        assert_eq!(json["lease.ttl"]["value"], "90m");
        assert!(json["sync.exclude"]["value"].is_array());
        assert_eq!(json.as_object().unwrap().len(), KEYS.len());
    }

    #[test]
    fn plain_config_is_toml_that_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        write_user_config(
            dir.path(),
            "exec_timeout = \"15m\"\n[nomad]\naddress = \"http://127.0.0.1:4646\"\n\
             constraints = [{ attribute = \"${attr.kernel.name}\", value = \"linux\" }]\n",
        );
        let env = [
            ("NOMAD_SKIP_VERIFY", "true"),
            ("LEASEBOX_SYNC_EXCLUDE", "a/,b/"),
        ];
        let first = Config::load(&inputs(dir.path(), &env)).unwrap();
        let rendered = first.to_toml();
        assert!(rendered.contains("\n[nomad]\n"), "{rendered}");
        assert!(rendered.contains("# ca_cert (unset)"), "{rendered}");
        assert!(rendered.contains("exec_timeout = \"15m\""), "{rendered}");
        write_user_config(dir.path(), &rendered);
        let second = Config::load(&inputs(dir.path(), &[])).unwrap();
        assert_eq!(first.settings(), second.settings());
    }
}
