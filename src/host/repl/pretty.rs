//! Values as the prompt prints them: a string as its text, numbers as Lua writes them, tables
//! pretty-printed (the sequence first, then the other keys sorted; short tables on one line),
//! with a depth limit, an item limit and cycles marked, so printing `_G` or a self-referencing
//! table always ends.

use std::collections::HashSet;
use std::fmt::Write as _;

use mlua::{Table, Value};

/// Nested tables deeper than this print as `{…}`.
const MAX_DEPTH: usize = 4;
/// Entries of one table shown before `… N more`.
const MAX_ITEMS: usize = 100;
/// A table whose one-line form fits in this many characters prints on one line.
const LINE_WIDTH: usize = 72;

/// The prompt's text of a result: strings as they are, everything else [`show`]n.
pub(crate) fn result(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string_lossy(),
        other => show(other),
    }
}

/// A value as Lua-like text (strings quoted).
pub(crate) fn show(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0, &mut HashSet::new());
    out
}

fn write_value(out: &mut String, value: &Value, indent: usize, path: &mut HashSet<usize>) {
    match value {
        Value::Nil => out.push_str("nil"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Number(n) => out.push_str(&number(*n)),
        Value::String(s) => out.push_str(&quote(&s.as_bytes())),
        Value::Table(t) => write_table(out, t, indent, path),
        other => out.push_str(
            &other
                .to_string()
                .unwrap_or_else(|_| other.type_name().to_owned()),
        ),
    }
}

fn number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if n.fract() == 0.0 && n.abs() < 1e16 {
        format!("{n:.1}")
    } else {
        format!("{n}")
    }
}

/// A string as a Lua literal: `"…"` with `\n`, `\t`, `\\`, `\"` and `\ddd` escapes.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_identifier(key: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
        "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
    ];
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&key)
}

/// The sort order of keys: numbers, then strings, then the rest by their text.
fn key_order(value: &Value) -> (u8, String, f64) {
    match value {
        Value::Integer(i) => (0, String::new(), *i as f64),
        Value::Number(n) => (0, String::new(), *n),
        Value::String(s) => (1, s.to_string_lossy(), 0.0),
        other => (2, show_key_fallback(other), 0.0),
    }
}

fn show_key_fallback(value: &Value) -> String {
    value
        .to_string()
        .unwrap_or_else(|_| value.type_name().to_owned())
}

fn write_table(out: &mut String, table: &Table, indent: usize, path: &mut HashSet<usize>) {
    let id = table.to_pointer() as usize;
    let name = table
        .metatable()
        .and_then(|mt| mt.raw_get::<Option<String>>("__name").ok().flatten())
        .map(|n| format!("{n} "))
        .unwrap_or_default();
    if path.contains(&id) {
        out.push_str("<cycle>");
        return;
    }
    if indent / 2 >= MAX_DEPTH {
        out.push_str(&name);
        out.push_str("{…}");
        return;
    }
    let len = table.raw_len();
    let mut pairs: Vec<(Value, Value)> = table.pairs::<Value, Value>().flatten().collect();
    if pairs.is_empty() {
        out.push_str(&name);
        out.push_str("{}");
        return;
    }
    let in_sequence =
        |key: &Value| matches!(key, Value::Integer(i) if *i >= 1 && (*i as usize) <= len);
    pairs.sort_by(|(a, _), (b, _)| {
        let (ka, kb) = (key_order(a), key_order(b));
        let group = |key: &Value, order: &(u8, String, f64)| {
            if in_sequence(key) { 0 } else { order.0 + 1 }
        };
        group(a, &ka)
            .cmp(&group(b, &kb))
            .then_with(|| ka.2.partial_cmp(&kb.2).unwrap_or(std::cmp::Ordering::Equal))
            .then_with(|| ka.1.cmp(&kb.1))
    });
    path.insert(id);
    let mut items = Vec::new();
    for (key, value) in pairs.iter().take(MAX_ITEMS) {
        let mut item = String::new();
        if !in_sequence(key) {
            match key {
                Value::String(s) if is_identifier(&s.to_string_lossy()) => {
                    item.push_str(&s.to_string_lossy());
                }
                other => {
                    item.push('[');
                    write_value(&mut item, other, indent + 2, path);
                    item.push(']');
                }
            }
            item.push_str(" = ");
        }
        write_value(&mut item, value, indent + 2, path);
        items.push(item);
    }
    path.remove(&id);
    if pairs.len() > MAX_ITEMS {
        items.push(format!("… {} more", pairs.len() - MAX_ITEMS));
    }
    let one_line = format!("{name}{{ {} }}", items.join(", "));
    if one_line.len() + indent <= LINE_WIDTH && !one_line.contains('\n') {
        out.push_str(&one_line);
        return;
    }
    let pad = " ".repeat(indent + 2);
    out.push_str(&name);
    out.push_str("{\n");
    for item in items {
        let _ = writeln!(out, "{pad}{item},");
    }
    out.push_str(&" ".repeat(indent));
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(lua: &mlua::Lua, code: &str) -> Value {
        lua.load(code).eval::<Value>().unwrap()
    }

    #[test]
    fn scalars_and_strings() {
        let lua = mlua::Lua::new();
        assert_eq!(show(&eval(&lua, "3")), "3");
        assert_eq!(show(&eval(&lua, "1.5")), "1.5");
        assert_eq!(show(&eval(&lua, "2.0")), "2.0");
        assert_eq!(show(&eval(&lua, "'a\"b\\n'")), "\"a\\\"b\\n\"");
        assert_eq!(show(&eval(&lua, "'line\\n'")), "\"line\\n\"");
        assert_eq!(result(&eval(&lua, "'raw text'")), "raw text");
        assert_eq!(show(&eval(&lua, "nil")), "nil");
    }

    #[test]
    fn tables_sequence_first_then_sorted_keys() {
        let lua = mlua::Lua::new();
        assert_eq!(
            show(&eval(
                &lua,
                "{ 10, 20, b = 2, a = 'x', [5] = true, ['not id'] = 1 }"
            )),
            "{ 10, 20, [5] = true, a = \"x\", b = 2, [\"not id\"] = 1 }"
        );
        assert_eq!(show(&eval(&lua, "{}")), "{}");
    }

    #[test]
    fn long_tables_break_into_lines_and_nest() {
        let lua = mlua::Lua::new();
        let text = show(&eval(
            &lua,
            "{ name = 'a fairly long name here', other = 'another long value', nested = { 1, 2 } }",
        ));
        assert_eq!(
            text,
            "{\n  name = \"a fairly long name here\",\n  nested = { 1, 2 },\n  other = \"another long value\",\n}"
        );
    }

    #[test]
    fn cycles_depth_and_item_limits_end() {
        let lua = mlua::Lua::new();
        assert_eq!(
            show(&eval(&lua, "local t = {} t.self = t return t")),
            "{ self = <cycle> }"
        );
        assert_eq!(
            show(&eval(
                &lua,
                "return { a = { b = { c = { d = { e = 1 } } } } }"
            )),
            "{ a = { b = { c = { d = {…} } } } }"
        );
        let many = show(&eval(
            &lua,
            "local t = {} for i = 1, 150 do t[i] = i end return t",
        ));
        assert!(many.contains("… 50 more"), "{many}");
        // The global table, with its cycles (`_G._G`), prints and ends.
        let g = show(&Value::Table(lua.globals()));
        assert!(g.contains("_G = <cycle>"), "{g}");
    }
}
