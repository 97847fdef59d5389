//! The prompt's rustyline helper: completion of globals, table keys, `box:` methods and the
//! REPL's `:` commands, and the validator that keeps reading lines while an entry is
//! incomplete Lua.

use std::borrow::Cow;

use mlua::{Lua, Table, Value};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::commands::COMMANDS;
use super::eval;
use crate::host::bindings::{LEASE_FIELDS, LEASE_METHODS, LuaLease};

const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

/// The helper, over the prompt's VM (read only: raw lookups, compiling without running).
pub(crate) struct ReplHelper {
    lua: Lua,
}

impl ReplHelper {
    pub(crate) fn new(lua: Lua) -> Self {
        ReplHelper { lua }
    }
}

impl Helper for ReplHelper {}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        if eval::is_incomplete(&self.lua, ctx.input()) {
            Ok(ValidationResult::Incomplete)
        } else {
            Ok(ValidationResult::Valid(None))
        }
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete(&self.lua, line, pos))
    }
}

/// Completions of the word before `pos`: where it starts and the candidates.
pub(crate) fn complete(lua: &Lua, line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let before = &line[..pos];
    if let Some(command) = before.strip_prefix(':')
        && !command.contains(char::is_whitespace)
    {
        let names = COMMANDS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| name.starts_with(command));
        return (1, pairs(names.map(str::to_owned)));
    }
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'))
        .last()
        .map_or(pos, |(i, _)| i);
    let word = &before[start..];
    let (path, separator, partial) = match word.rfind(['.', ':']) {
        Some(i) => (&word[..i], Some(&word[i..=i]), &word[i + 1..]),
        None => ("", None, word),
    };
    let names = match separator {
        None => {
            let mut names = keys(&lua.globals(), false);
            names.extend(KEYWORDS.iter().map(|k| (*k).to_owned()));
            names
        }
        Some(sep) => match resolve(lua, path) {
            Some(value) => members(lua, &value, sep == ":"),
            None => Vec::new(),
        },
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(partial))
        .collect();
    names.sort();
    names.dedup();
    (pos - partial.len(), pairs(names.into_iter()))
}

fn pairs(names: impl Iterator<Item = String>) -> Vec<Pair> {
    names
        .map(|name| Pair {
            display: name.clone(),
            replacement: name,
        })
        .collect()
}

/// The value of a dotted path of globals (`lb`, `last`, `a.b`), by raw lookups only.
fn resolve(lua: &Lua, path: &str) -> Option<Value> {
    let mut value = Value::Table(lua.globals());
    for part in path.split(['.', ':']) {
        let Value::Table(table) = &value else {
            return None;
        };
        value = table.raw_get::<Value>(part).ok()?;
        if value.is_nil() {
            return None;
        }
    }
    Some(value)
}

/// What may follow `value.` (fields) or `value:` (methods).
fn members(lua: &Lua, value: &Value, methods: bool) -> Vec<String> {
    match value {
        Value::UserData(ud) if ud.is::<LuaLease>() => {
            let list = if methods { LEASE_METHODS } else { LEASE_FIELDS };
            list.iter().map(|m| (*m).to_owned()).collect()
        }
        Value::String(_) if methods => lua
            .globals()
            .raw_get::<Table>("string")
            .map(|t| keys(&t, true))
            .unwrap_or_default(),
        Value::Table(table) => {
            let mut names = keys(table, methods);
            // Keys reached through a metatable's `__index` table (class-like tables).
            if let Some(mt) = table.metatable()
                && let Ok(Value::Table(index)) = mt.raw_get::<Value>("__index")
            {
                names.extend(keys(&index, methods));
            }
            names
        }
        _ => Vec::new(),
    }
}

/// The identifier keys of a table (only those holding functions when `functions`).
fn keys(table: &Table, functions: bool) -> Vec<String> {
    table
        .pairs::<Value, Value>()
        .flatten()
        .filter(|(_, v)| !functions || matches!(v, Value::Function(_)))
        .filter_map(|(k, _)| match k {
            Value::String(s) => {
                let s = s.to_str().ok()?.to_owned();
                let ident = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                ident.then_some(s)
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(lua: &Lua, line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = complete(lua, line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn globals_keys_methods_and_commands() {
        let lua = Lua::new();
        lua.load(
            "word = 'w'; config = { name = 'x', nested = { deep = 1 }, run = function() end }",
        )
        .exec()
        .unwrap();
        let (start, found) = names(&lua, "print(conf");
        assert_eq!(start, 6);
        assert_eq!(found, ["config"]);
        assert_eq!(names(&lua, "config.n").1, ["name", "nested"]);
        assert_eq!(names(&lua, "config.nested.d").1, ["deep"]);
        assert_eq!(names(&lua, "config:").1, ["run"]);
        assert_eq!(names(&lua, "s = word:up").1, ["upper"]);
        assert!(names(&lua, "wh").1.contains(&"while".to_owned()));
        assert_eq!(names(&lua, ":re").1, ["reload", "retry"]);
        assert!(names(&lua, "nothing.here.").1.is_empty());
    }
}
