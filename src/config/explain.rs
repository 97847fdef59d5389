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

/// Render explain rows as aligned columns under a header.
#[must_use]
pub fn render_explain(rows: &[ExplainRow]) -> String {
    let header = ExplainRow {
        key: "KEY",
        value: "VALUE".to_owned(),
        source: "SOURCE".to_owned(),
        class: TrustClass::Own,
    };
    let all = || std::iter::once(&header).chain(rows);
    let key_w = all().map(|r| r.key.chars().count()).max().unwrap_or(0);
    let value_w = all()
        .map(|r| r.value.chars().count())
        .filter(|w| *w <= MAX_VALUE_WIDTH)
        .max()
        .unwrap_or(0);
    let source_w = all().map(|r| r.source.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:key_w$}  {:value_w$}  {:source_w$}  CLASS",
        "KEY", "VALUE", "SOURCE"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:key_w$}  {:value_w$}  {:source_w$}  {}",
            r.key, r.value, r.source, r.class
        );
    }
    out
}
