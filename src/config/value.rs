//! Typed config values, and their parsing from TOML and from raw text (environment, flags).

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeValue;

use super::keys::{KeyDef, ValueType};

/// A config value, checked against its key's [`ValueType`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string, a path or a choice.
    String(String),
    /// A non-negative integer.
    Integer(u64),
    /// A boolean.
    Bool(bool),
    /// A duration, with the text it was written as (shown back as written).
    Duration {
        /// As written, e.g. `90m`.
        text: String,
        /// Parsed.
        value: Duration,
    },
    /// A list of strings.
    StringList(Vec<String>),
    /// A list of tables of strings (constraints).
    TableList(Vec<BTreeMap<String, String>>),
}

/// The keys a constraint table may hold.
pub const CONSTRAINT_FIELDS: &[&str] = &["attribute", "operator", "value"];

/// Why a value does not fit its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueProblem {
    /// The TOML value has the wrong type; `found` is what it is ("an integer", …).
    WrongType { found: String },
    /// The value has the right type but is not acceptable; says why.
    Invalid(String),
}

impl Value {
    /// The value as a TOML value (durations as their text).
    #[must_use]
    pub fn to_toml(&self) -> toml::Value {
        match self {
            Value::String(s) => toml::Value::String(s.clone()),
            Value::Integer(i) => toml::Value::Integer(i64::try_from(*i).unwrap_or(i64::MAX)),
            Value::Bool(b) => toml::Value::Boolean(*b),
            Value::Duration { text, .. } => toml::Value::String(text.clone()),
            Value::StringList(list) => {
                toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect())
            }
            Value::TableList(list) => toml::Value::Array(
                list.iter()
                    .map(|t| {
                        toml::Value::Table(
                            t.iter()
                                .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// The value as JSON (durations as their text).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) | Value::Duration { text: s, .. } => {
                serde_json::Value::from(s.clone())
            }
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Bool(b) => serde_json::Value::from(*b),
            Value::StringList(list) => serde_json::Value::from(list.clone()),
            Value::TableList(list) => serde_json::Value::Array(
                list.iter()
                    .map(|t| {
                        serde_json::Value::Object(
                            t.iter()
                                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// The value as shown by `--explain` and `leasebox config`: its TOML form.
    #[must_use]
    pub fn shown(&self) -> String {
        self.to_toml().to_string()
    }

    /// Parse a value of `def`'s type from a TOML value (a config file).
    pub(crate) fn from_toml(def: &KeyDef, value: &DeValue<'_>) -> Result<Value, ValueProblem> {
        let parsed = match def.ty {
            ValueType::String | ValueType::Path | ValueType::Choice(_) => match value {
                DeValue::String(s) => Value::String(s.to_string()),
                other => return Err(wrong_type(other)),
            },
            ValueType::Integer => match value {
                DeValue::Integer(i) => {
                    let n = i64::from_str_radix(i.as_str(), i.radix())
                        .map_err(|_| ValueProblem::Invalid("the integer is too large".into()))?;
                    let n = u64::try_from(n)
                        .map_err(|_| ValueProblem::Invalid("it must not be negative".into()))?;
                    Value::Integer(n)
                }
                other => return Err(wrong_type(other)),
            },
            ValueType::Bool => match value {
                DeValue::Boolean(b) => Value::Bool(*b),
                other => return Err(wrong_type(other)),
            },
            ValueType::Duration => match value {
                DeValue::String(s) => parse_duration(s)?,
                other => return Err(wrong_type(other)),
            },
            ValueType::StringList => match value {
                DeValue::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        match item.get_ref() {
                            DeValue::String(s) => out.push(s.to_string()),
                            other => {
                                return Err(ValueProblem::WrongType {
                                    found: format!("a list holding {}", article(other.type_str())),
                                });
                            }
                        }
                    }
                    Value::StringList(out)
                }
                other => return Err(wrong_type(other)),
            },
            ValueType::TableList => match value {
                DeValue::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        match item.get_ref() {
                            DeValue::Table(t) => {
                                let mut table = BTreeMap::new();
                                for (k, v) in t {
                                    let k = k.get_ref().to_string();
                                    if !CONSTRAINT_FIELDS.contains(&k.as_str()) {
                                        return Err(ValueProblem::Invalid(format!(
                                            "a constraint holds only `attribute`, `operator` and \
                                             `value`, not `{k}`"
                                        )));
                                    }
                                    match v.get_ref() {
                                        DeValue::String(s) => {
                                            table.insert(k, s.to_string());
                                        }
                                        other => {
                                            return Err(ValueProblem::Invalid(format!(
                                                "constraint field `{k}` must be a string, not {}",
                                                article(other.type_str())
                                            )));
                                        }
                                    }
                                }
                                out.push(table);
                            }
                            other => {
                                return Err(ValueProblem::WrongType {
                                    found: format!("a list holding {}", article(other.type_str())),
                                });
                            }
                        }
                    }
                    Value::TableList(out)
                }
                other => return Err(wrong_type(other)),
            },
        };
        validate(def, &parsed)?;
        Ok(parsed)
    }

    /// Parse a value of `def`'s type from raw text (an environment variable or a flag).
    ///
    /// Lists are comma-separated (`target/,dist/`) or a TOML array (`["a", "b"]`); constraints
    /// are a TOML array of inline tables (or one inline table); booleans take `true`/`false`,
    /// `1`/`0`, `yes`/`no`, `t`/`f` in any case.
    pub(crate) fn from_raw(def: &KeyDef, raw: &str) -> Result<Value, ValueProblem> {
        let parsed = match def.ty {
            ValueType::String | ValueType::Path | ValueType::Choice(_) => {
                Value::String(raw.to_owned())
            }
            ValueType::Integer => raw.trim().parse::<u64>().map(Value::Integer).map_err(|_| {
                ValueProblem::Invalid(format!("`{raw}` is not a non-negative integer"))
            })?,
            ValueType::Bool => Value::Bool(parse_bool(raw).ok_or_else(|| {
                ValueProblem::Invalid(format!("`{raw}` is not `true` or `false`"))
            })?),
            ValueType::Duration => parse_duration(raw.trim())?,
            ValueType::StringList if raw.trim_start().starts_with('[') => from_toml_text(def, raw)?,
            ValueType::StringList => Value::StringList(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            ValueType::TableList => {
                let trimmed = raw.trim();
                if trimmed.starts_with('{') {
                    from_toml_text(def, &format!("[{trimmed}]"))?
                } else {
                    from_toml_text(def, trimmed)?
                }
            }
        };
        validate(def, &parsed)?;
        Ok(parsed)
    }
}

/// A key's example as raw text for a variable or flag: strings unquoted, lists comma-separated,
/// tables as TOML.
pub(crate) fn raw_example(key: &KeyDef) -> String {
    let Ok(parsed) = DeValue::parse(key.example) else {
        return key.example.to_owned();
    };
    match (key.ty, parsed.get_ref()) {
        (_, DeValue::String(s)) => s.to_string(),
        (ValueType::StringList, DeValue::Array(items)) => items
            .iter()
            .filter_map(|i| i.get_ref().as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        _ => key.example.to_owned(),
    }
}

/// Parse raw text as a TOML value and check it against `def`.
fn from_toml_text(def: &KeyDef, raw: &str) -> Result<Value, ValueProblem> {
    let parsed = DeValue::parse(raw).map_err(|e| {
        ValueProblem::Invalid(format!(
            "it is not a valid TOML array ({})",
            e.message().trim()
        ))
    })?;
    Value::from_toml(def, parsed.get_ref()).map_err(|p| match p {
        ValueProblem::WrongType { found } => ValueProblem::Invalid(format!("it is {found}")),
        invalid @ ValueProblem::Invalid(_) => invalid,
    })
}

fn parse_duration(text: &str) -> Result<Value, ValueProblem> {
    humantime::parse_duration(text)
        .map(|value| Value::Duration {
            text: text.to_owned(),
            value,
        })
        .map_err(|e| ValueProblem::Invalid(format!("`{text}` is not a duration ({e})")))
}

/// Parse a boolean as Go's `strconv.ParseBool` does (Nomad reads `NOMAD_SKIP_VERIFY` so), plus
/// `yes`/`no`.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" => Some(true),
        "0" | "f" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn wrong_type(value: &DeValue<'_>) -> ValueProblem {
    ValueProblem::WrongType {
        found: describe_found(value),
    }
}

/// What a TOML value is, as a phrase: "a string", "an integer", "a list", "a table".
pub(crate) fn describe_found(value: &DeValue<'_>) -> String {
    match value {
        DeValue::Array(_) => "a list".to_owned(),
        other => article(other.type_str()),
    }
}

fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// Checks beyond the type, for the keys that have them. Never echoes the value of a key that
/// might hold a secret by mistake.
fn validate(def: &KeyDef, value: &Value) -> Result<(), ValueProblem> {
    let Value::String(s) = value else {
        return Ok(());
    };
    if let ValueType::Choice(choices) = def.ty
        && !choices.contains(&s.as_str())
    {
        return Err(ValueProblem::Invalid(format!(
            "`{s}` is not {}",
            def.ty.describe()
        )));
    }
    match def.name {
        "nomad.address" => check_address(s).map_err(ValueProblem::Invalid),
        "nomad.token_env" => {
            let mut chars = s.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok(())
            } else {
                Err(ValueProblem::Invalid(
                    "it must be the name of an environment variable such as `NOMAD_TOKEN`, \
                     never the token itself"
                        .into(),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// A Nomad address is `http://host[:port]`, `https://host[:port]` or `unix:///absolute/path`.
fn check_address(addr: &str) -> Result<(), String> {
    if let Some(rest) = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
    {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(
                "the address has no host; write it like `https://nomad.example.com:4646`".into(),
            );
        }
        return Ok(());
    }
    if let Some(rest) = addr.strip_prefix("unix://") {
        if rest.starts_with('/') && rest.len() > 1 {
            return Ok(());
        }
        return Err(
            "a unix socket address takes an absolute path and no host: `unix:///path/to/nomad.sock`"
                .into(),
        );
    }
    Err("the address must start with `http://`, `https://` or `unix:///`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> &'static KeyDef {
        KeyDef::find(name).unwrap()
    }

    fn toml(def: &str, text: &str) -> Result<Value, ValueProblem> {
        let parsed = DeValue::parse(text).unwrap();
        Value::from_toml(key(def), parsed.get_ref())
    }

    #[test]
    fn toml_values_of_each_type() {
        assert_eq!(
            toml("nomad.image", "\"rust\""),
            Ok(Value::String("rust".into()))
        );
        assert_eq!(toml("nomad.cpu", "0x10"), Ok(Value::Integer(16)));
        assert_eq!(toml("nomad.skip_verify", "true"), Ok(Value::Bool(true)));
        assert_eq!(
            toml("lease.ttl", "\"1h 30m\""),
            Ok(Value::Duration {
                text: "1h 30m".into(),
                value: Duration::from_secs(5400)
            })
        );
        assert_eq!(
            toml("sync.exclude", "[\"a/\", \"b\"]"),
            Ok(Value::StringList(vec!["a/".into(), "b".into()]))
        );
        let c = toml(
            "nomad.constraints",
            "[{ attribute = \"x\", value = \"y\" }]",
        )
        .unwrap();
        assert_eq!(c.shown(), "[{ attribute = \"x\", value = \"y\" }]");
    }

    #[test]
    fn toml_type_errors_say_what_was_found() {
        assert_eq!(
            toml("nomad.cpu", "\"2000\""),
            Err(ValueProblem::WrongType {
                found: "a string".into()
            })
        );
        assert_eq!(
            toml("lease.ttl", "90"),
            Err(ValueProblem::WrongType {
                found: "an integer".into()
            })
        );
        assert_eq!(
            toml("sync.exclude", "[1]"),
            Err(ValueProblem::WrongType {
                found: "a list holding an integer".into()
            })
        );
        assert!(matches!(
            toml("nomad.cpu", "-1"),
            Err(ValueProblem::Invalid(_))
        ));
        assert!(
            matches!(toml("lease.ttl", "\"soon\""), Err(ValueProblem::Invalid(m)) if m.contains("`soon` is not a duration"))
        );
        assert!(
            matches!(toml("nomad.constraints", "[{ attr = \"x\" }]"), Err(ValueProblem::Invalid(m)) if m.contains("`attr`"))
        );
        assert!(
            matches!(toml("backend", "\"k8s\""), Err(ValueProblem::Invalid(m)) if m.contains("one of `local`, `nomad`"))
        );
    }

    #[test]
    fn raw_values() {
        let raw = |d, r| Value::from_raw(key(d), r);
        assert_eq!(raw("nomad.cpu", " 2000 "), Ok(Value::Integer(2000)));
        assert_eq!(raw("nomad.skip_verify", "1"), Ok(Value::Bool(true)));
        assert_eq!(raw("nomad.skip_verify", "FALSE"), Ok(Value::Bool(false)));
        assert_eq!(
            raw("sync.exclude", "target/, dist/,"),
            Ok(Value::StringList(vec!["target/".into(), "dist/".into()]))
        );
        assert_eq!(
            raw("sync.exclude", "[\"a,b\"]"),
            Ok(Value::StringList(vec!["a,b".into()]))
        );
        assert_eq!(raw("sync.exclude", ""), Ok(Value::StringList(vec![])));
        let one = raw(
            "nomad.constraints",
            "{ attribute = \"a\", operator = \"=\", value = \"b\" }",
        )
        .unwrap();
        let many = raw(
            "nomad.constraints",
            "[{ attribute = \"a\", operator = \"=\", value = \"b\" }]",
        )
        .unwrap();
        assert_eq!(one, many);
        assert!(raw("nomad.cpu", "lots").is_err());
        assert!(raw("nomad.skip_verify", "maybe").is_err());
        assert!(raw("lease.ttl", "90").is_err());
        assert!(raw("nomad.constraints", "[1]").is_err());
    }

    #[test]
    fn addresses_and_token_env() {
        let raw = |d, r| Value::from_raw(key(d), r);
        assert!(raw("nomad.address", "http://127.0.0.1:4646").is_ok());
        assert!(raw("nomad.address", "https://nomad.example.com").is_ok());
        assert!(raw("nomad.address", "unix:///run/nomad.sock").is_ok());
        assert!(raw("nomad.address", "unix://host/run/nomad.sock").is_err());
        assert!(raw("nomad.address", "unix://run/nomad.sock").is_err());
        assert!(raw("nomad.address", "nomad.example.com:4646").is_err());
        assert!(raw("nomad.token_env", "MY_TOKEN").is_ok());
        let err = raw("nomad.token_env", "3f2a-9c1b-secret").unwrap_err();
        assert!(
            !format!("{err:?}").contains("secret"),
            "token_env errors never echo the value"
        );
    }
}
