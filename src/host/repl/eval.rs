//! What a prompt entry means, as in the stock Lua prompt: `=expr` and a bare expression are
//! evaluated and printed (`return expr`), anything else runs as a statement. An entry whose Lua
//! ends too early (Lua's syntax error "near `<eof>`") is incomplete: the prompt reads more lines.
//! An entry that starts with `local` declares globals instead, so its variables survive to the
//! next entry (`local x = 1` then `x` prints 1).

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua};

/// Compile an entry (see the module docs). `name` is the chunk name (`@repl`, `@stdin`).
pub(crate) fn compile(lua: &Lua, entry: &str, name: &str) -> mlua::Result<Function> {
    if let Some(expr) = entry.strip_prefix('=') {
        return load(lua, &format!("return {expr}"), name);
    }
    if let Ok(function) = load(lua, &format!("return {entry}"), name) {
        return Ok(function);
    }
    load(lua, &globalise(entry), name)
}

/// Whether an entry is unfinished Lua (more lines would complete it).
pub(crate) fn is_incomplete(lua: &Lua, entry: &str) -> bool {
    if entry.trim_start().starts_with(':') {
        return false;
    }
    match compile(lua, entry, "=repl") {
        Err(mlua::Error::SyntaxError {
            incomplete_input, ..
        }) => incomplete_input,
        _ => false,
    }
}

fn load(lua: &Lua, text: &str, name: &str) -> mlua::Result<Function> {
    lua.load(text)
        .set_name(name)
        .set_mode(ChunkMode::Text)
        .into_function()
}

/// `local a, b = …` → `a, b = …`, `local x` → `x = nil`, `local function f` → `function f`,
/// for the first statement of an entry; anything else (attributes such as `<close>`, other
/// statements) as written.
pub(crate) fn globalise(entry: &str) -> String {
    let trimmed = entry.trim_start();
    let lead = &entry[..entry.len() - trimmed.len()];
    let Some(rest) = trimmed.strip_prefix("local") else {
        return entry.to_owned();
    };
    if !rest.starts_with(|c: char| c.is_whitespace()) {
        return entry.to_owned();
    }
    let rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix("function")
        && after.starts_with(|c: char| c.is_whitespace())
    {
        return format!("{lead}{rest}");
    }
    // A name list: identifiers and commas up to `=`, the end, or another statement.
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ',' || c.is_whitespace()))
        .unwrap_or(rest.len());
    let names = rest[..end].trim_end();
    let valid = !names.is_empty()
        && names.split(',').all(|n| {
            let n = n.trim();
            n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return entry.to_owned();
    }
    let after = &rest[end..];
    if after.starts_with('=') && !after.starts_with("==") {
        format!("{lead}{names} {after}")
    } else if after.trim().is_empty() || after.starts_with(';') {
        // Bare declarations: assign nil explicitly, one per name.
        let nils = vec!["nil"; names.split(',').count()].join(", ");
        format!("{lead}{names} = {nils}{after}")
    } else {
        entry.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locals_become_globals() {
        assert_eq!(globalise("local x = 1"), "x = 1");
        assert_eq!(globalise("  local a, b = 1, 2"), "  a, b = 1, 2");
        assert_eq!(globalise("local function f() end"), "function f() end");
        assert_eq!(globalise("local x"), "x = nil");
        assert_eq!(globalise("local x <close> = y"), "local x <close> = y");
        assert_eq!(globalise("localx = 1"), "localx = 1");
        assert_eq!(globalise("print(1)"), "print(1)");
    }

    #[test]
    fn expressions_statements_and_incomplete_entries() {
        let lua = Lua::new();
        assert_eq!(
            compile(&lua, "1 + 1", "=t")
                .unwrap()
                .call::<i64>(())
                .unwrap(),
            2
        );
        assert_eq!(
            compile(&lua, "=2 * 3", "=t")
                .unwrap()
                .call::<i64>(())
                .unwrap(),
            6
        );
        compile(&lua, "local y = 5", "=t")
            .unwrap()
            .call::<()>(())
            .unwrap();
        assert_eq!(lua.globals().get::<i64>("y").unwrap(), 5);
        assert!(is_incomplete(&lua, "function f()"));
        assert!(is_incomplete(&lua, "t = {"));
        assert!(is_incomplete(&lua, "if x then\n  print(1)"));
        assert!(!is_incomplete(&lua, "function f() end"));
        assert!(
            !is_incomplete(&lua, "x = = 1"),
            "a real syntax error is complete"
        );
        assert!(!is_incomplete(&lua, ":help"));
    }
}
