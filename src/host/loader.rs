//! The module loader: `require` as DESIGN §9 decides, and the loading of recipe files.
//!
//! `require("a.b")` loads `<repository root>/a/b.lua`, once (later calls return the cached
//! value). The names `leasebox` and `leasebox.*` are the embedded stdlib (`stdlib/`, compiled
//! into the binary) and cannot be shadowed by a file. Nothing outside the repository root
//! loads: a name with `/`, `\`, `..` or an absolute path is refused, and a file whose real path
//! (symlinks resolved) lies outside the root is refused too. A missing module says where it was
//! looked for.
//!
//! Every chunk is text (never bytecode) and is named `@<path relative to the repository root>`,
//! so errors and tracebacks read `recipes/x.lua:12:`.

use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, Table, Value};

use super::error::{HostError, raise};
use super::sandbox::caller_location;

/// The embedded stdlib: module name, chunk name, source.
pub(crate) const STDLIB: &[(&str, &str, &str)] = &[
    (
        "leasebox",
        "stdlib/leasebox.lua",
        include_str!("../../stdlib/leasebox.lua"),
    ),
    (
        "leasebox.recipe",
        "stdlib/leasebox/recipe.lua",
        include_str!("../../stdlib/leasebox/recipe.lua"),
    ),
    (
        "leasebox.shard",
        "stdlib/leasebox/shard.lua",
        include_str!("../../stdlib/leasebox/shard.lua"),
    ),
];

const LOADED: &str = "leasebox.loaded";
const LOADING: &str = "leasebox.loading";
const PRIMITIVES: &str = "leasebox.primitives";

/// Install `require` in a sandboxed VM. `primitives` is the host's table of primitives, handed
/// to the stdlib modules as their first argument.
pub(crate) fn install(lua: &Lua, root: &Path, primitives: Table) -> mlua::Result<()> {
    lua.set_named_registry_value(LOADED, lua.create_table()?)?;
    lua.set_named_registry_value(LOADING, lua.create_table()?)?;
    lua.set_named_registry_value(PRIMITIVES, primitives)?;
    let root = root.to_path_buf();
    let require = lua.create_async_function(move |lua, name: mlua::LuaString| {
        let location = caller_location(&lua);
        let root = root.clone();
        async move {
            let name = name.to_str()?.to_owned();
            require(&lua, &root, &name, &location).await
        }
    })?;
    lua.globals().raw_set("require", require)
}

async fn require(lua: &Lua, root: &Path, name: &str, location: &str) -> mlua::Result<Value> {
    let loaded: Table = lua.named_registry_value(LOADED)?;
    let loading: Table = lua.named_registry_value(LOADING)?;
    let cached: Value = loaded.raw_get(name)?;
    if !cached.is_nil() {
        if cached == Value::Table(loading) {
            return Err(sandbox(format!(
                "{location}`require(\"{name}\")`: module `{name}` is still loading (a circular \
                 require)"
            )));
        }
        return Ok(cached);
    }
    let (chunk, source, args) = if let Some((_, chunk, source)) =
        STDLIB.iter().find(|(module, _, _)| *module == name)
    {
        let primitives: Value = lua.named_registry_value(PRIMITIVES)?;
        ((*chunk).to_owned(), (*source).to_owned(), primitives)
    } else {
        let (relative, path) = resolve(root, name)
            .map_err(|message| sandbox(format!("{location}`require(\"{name}\")`: {message}")))?;
        let source = std::fs::read_to_string(&path).map_err(|err| {
            sandbox(format!(
                "{location}`require(\"{name}\")`: cannot read `{relative}`: {err}"
            ))
        })?;
        (relative, source, Value::String(lua.create_string(name)?))
    };
    loaded.raw_set(name, loading)?;
    let result = async {
        let function = compile(lua, &chunk, &source)?;
        function.call_async::<Value>(args).await
    }
    .await;
    match result {
        Ok(value) => {
            let value = if value.is_nil() {
                Value::Boolean(true)
            } else {
                value
            };
            loaded.raw_set(name, value.clone())?;
            Ok(value)
        }
        Err(err) => {
            loaded.raw_set(name, Value::Nil)?;
            Err(err)
        }
    }
}

fn sandbox(message: String) -> mlua::Error {
    raise(HostError::Sandbox { message })
}

/// Compile a text chunk named `@chunk`. A leading `#!` line is blanked (line numbers stay).
pub(crate) fn compile(lua: &Lua, chunk: &str, source: &str) -> mlua::Result<Function> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let source = if source.starts_with('#') {
        let rest = source.find('\n').map_or("", |i| &source[i..]);
        std::borrow::Cow::Owned(rest.to_owned())
    } else {
        std::borrow::Cow::Borrowed(source)
    };
    lua.load(source.as_ref())
        .set_name(format!("@{chunk}"))
        .set_mode(ChunkMode::Text)
        .into_function()
}

/// The chunk name of a recipe file: its path relative to the repository root when inside it,
/// else the path as given.
pub(crate) fn chunk_name(root: &Path, path: &Path) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    match canonical.strip_prefix(&root) {
        Ok(relative) => slash_path(relative),
        Err(_) => slash_path(path),
    }
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The names of the embedded stdlib modules.
pub(crate) fn stdlib_names() -> Vec<&'static str> {
    STDLIB.iter().map(|(name, _, _)| *name).collect()
}

/// Resolve a module name to `(relative path, absolute path)` inside `root`, or say why not.
pub(crate) fn resolve(root: &Path, name: &str) -> Result<(String, PathBuf), String> {
    if name == "leasebox" || name.starts_with("leasebox.") {
        return Err(format!(
            "no stdlib module `{name}`; names under `leasebox` are reserved for the stdlib \
             (it has {})",
            stdlib_names()
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let valid_segment = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !name.split('.').all(valid_segment) {
        return Err(
            "only dotted module names inside the repository load (`a.b` loads `a/b.lua` under \
             the repository root); paths, `..` and absolute names are refused, and nothing \
             outside the repository root loads"
                .to_owned(),
        );
    }
    let relative = format!("{}.lua", name.replace('.', "/"));
    let path = root.join(&relative);
    let root_real = std::fs::canonicalize(root).map_err(|err| {
        format!(
            "cannot resolve the repository root `{}`: {err}",
            root.display()
        )
    })?;
    match std::fs::canonicalize(&path) {
        Ok(real) if !real.starts_with(&root_real) => Err(format!(
            "`{relative}` resolves outside the repository (a symlink); nothing outside the \
             repository root loads"
        )),
        Ok(real) if !real.is_file() => Err(format!("`{relative}` is not a file")),
        Ok(real) => Ok((relative, real)),
        Err(_) => Err(format!(
            "module `{name}` not found; looked for `{relative}` under the repository root and \
             in the stdlib ({})",
            stdlib_names()
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_files_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b.lua"), "return 1").unwrap();
        let (relative, path) = resolve(dir.path(), "a.b").unwrap();
        assert_eq!(relative, "a/b.lua");
        assert!(path.ends_with("a/b.lua"));
    }

    #[test]
    fn paths_and_dotdot_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../x", "/etc/passwd", "a..b", ".x", "a/b", "a\\b", ""] {
            let err = resolve(dir.path(), name).unwrap_err();
            assert!(
                err.contains("nothing outside the repository"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("evil.lua"), "return 1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.lua"), dir.path().join("evil.lua"))
            .unwrap();
        let err = resolve(dir.path(), "evil").unwrap_err();
        assert!(err.contains("resolves outside the repository"), "{err}");
    }

    #[test]
    fn a_missing_module_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(dir.path(), "lib.missing").unwrap_err();
        assert!(err.contains("`lib/missing.lua`"), "{err}");
        assert!(err.contains("`leasebox`"), "{err}");
    }

    #[test]
    fn stdlib_names_cannot_be_shadowed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("leasebox")).unwrap();
        std::fs::write(dir.path().join("leasebox/evil.lua"), "return 1").unwrap();
        let err = resolve(dir.path(), "leasebox.evil").unwrap_err();
        assert!(err.contains("reserved for the stdlib"), "{err}");
    }

    #[test]
    fn shebang_lines_keep_line_numbers() {
        let lua = Lua::new();
        let err = compile(
            &lua,
            "recipes/x.lua",
            "#!/usr/bin/env leasebox\n\nerror('x')",
        )
        .unwrap()
        .call::<()>(())
        .unwrap_err();
        assert!(err.to_string().contains("recipes/x.lua:3:"), "{err}");
    }
}
