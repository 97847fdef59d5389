//! The sandboxed Lua 5.4 VM every recipe runs in.
//!
//! Only `string`, `table`, `math`, `utf8` and `coroutine` are loaded, plus a safe subset of `os`
//! (`time`, `clock`, `date`, and a `getenv` that answers only for the names in the user's
//! `lua_env_allow` and never for a token variable). `io`, `debug`, `package`, `dofile`,
//! `loadfile`, `string.dump` and the rest of `os` are gone; touching one raises "`io` is not
//! available in recipes" from the prelude (`prelude.lua`) rather than a nil-call error. `load`
//! accepts text chunks only.
//!
//! Two guards run the whole time: a memory limit (an allocation past it fails with a recipe
//! error naming the limit) and an instruction-count hook that checks the run's cancellation
//! token, so Ctrl-C stops a busy loop.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use tokio_util::sync::CancellationToken;

use super::bindings::HostContext;
use super::error::{HostError, raise};

/// The default memory limit of a recipe VM: 256 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 * 1024 * 1024;

/// How many VM instructions run between two looks at the cancellation token.
const HOOK_EVERY: u32 = 10_000;

/// Token variables no recipe may read, whatever `lua_env_allow` says (`nomad.token_env` is
/// added by the caller).
pub const ALWAYS_DENIED_ENV: &[&str] = &["NOMAD_TOKEN", "LEASEBOX_NOMAD_TOKEN"];

/// What the sandbox lets a recipe see.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The names `os.getenv` answers for (the user's `lua_env_allow`).
    pub env_allow: Vec<String>,
    /// Token variables (the configured `nomad.token_env`), never readable even if allow-listed.
    pub token_env: Vec<String>,
    /// The memory limit in bytes.
    pub memory_limit: usize,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            env_allow: Vec::new(),
            token_env: vec!["NOMAD_TOKEN".to_owned()],
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl SandboxOptions {
    fn is_token(&self, name: &str) -> bool {
        ALWAYS_DENIED_ENV.contains(&name) || self.token_env.iter().any(|t| t == name)
    }
}

/// Build a sandboxed VM: safe libraries, guarded globals, memory limit and cancellation hook.
///
/// # Errors
///
/// Only if the VM cannot be created (which would be a bug).
pub fn new_vm(options: &SandboxOptions, cancel: &CancellationToken) -> mlua::Result<Lua> {
    let libs = StdLib::STRING
        | StdLib::TABLE
        | StdLib::MATH
        | StdLib::UTF8
        | StdLib::COROUTINE
        | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::new())?;

    let globals = lua.globals();
    for name in ["dofile", "loadfile", "collectgarbage", "require", "package"] {
        globals.raw_set(name, Value::Nil)?;
    }
    let string: Table = globals.raw_get("string")?;
    string.raw_set("dump", Value::Nil)?;
    install_os(&lua, &globals, options)?;

    let rawload: Value = globals.raw_get("load")?;
    let setmetatable: Value = globals.raw_get("setmetatable")?;
    let error: Value = globals.raw_get("error")?;
    let select: Value = globals.raw_get("select")?;
    let rawget: Value = globals.raw_get("rawget")?;
    lua.load(include_str!("prelude.lua"))
        .set_name("=[leasebox sandbox]")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .call::<()>((rawload, setmetatable, error, select, rawget))?;

    lua.set_memory_limit(options.memory_limit)?;
    let token = cancel.clone();
    // The hook looks at the VM's token and at the token of the host context installed now:
    // the REPL installs one per call at the prompt, so Ctrl-C stops that call only.
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |lua, _| {
            let call_cancelled = lua
                .app_data_ref::<Arc<HostContext>>()
                .is_some_and(|ctx| ctx.cancel.is_cancelled());
            if token.is_cancelled() || call_cancelled {
                Err(raise(HostError::Cancelled))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    Ok(lua)
}

/// Replace `os` with its safe subset.
fn install_os(lua: &Lua, globals: &Table, options: &SandboxOptions) -> mlua::Result<()> {
    let full: Table = globals.raw_get("os")?;
    let os = lua.create_table()?;
    for name in ["time", "clock", "date"] {
        os.raw_set(name, full.raw_get::<Value>(name)?)?;
    }
    let options = options.clone();
    let noticed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let getenv = lua.create_function(move |lua, name: String| {
        if options.is_token(&name) {
            return Err(mlua::Error::RuntimeError(format!(
                "{}`os.getenv(\"{name}\")`: a token variable is never readable from recipes",
                caller_location(lua)
            )));
        }
        if !options.env_allow.iter().any(|allowed| allowed == &name) {
            let mut noticed = noticed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if noticed.insert(name.clone()) {
                eprintln!(
                    "leasebox: os.getenv(\"{name}\") is nil in recipes: `{name}` is not in \
                     `lua_env_allow` of your user config"
                );
            }
            return Ok(None);
        }
        Ok(std::env::var(&name).ok())
    })?;
    os.raw_set("getenv", getenv)?;
    globals.raw_set("os", os)
}

/// `recipes/x.lua:12: ` for the nearest Lua function of a file (a chunk named `@path`) on the
/// stack above the running Rust function, or an empty string when there is none. mlua's async
/// wrappers, C functions and the embedded stdlib are skipped, so a primitive the stdlib calls
/// for a recipe points at the recipe's line.
pub(crate) fn caller_location(lua: &Lua) -> String {
    caller_frame(lua).map_or_else(String::new, |(file, line)| format!("{file}:{line}: "))
}

/// The file (chunk name, repository-relative) and 1-based line of the nearest recipe frame on
/// the stack (see [`caller_location`]).
pub(crate) fn caller_frame(lua: &Lua) -> Option<(String, usize)> {
    for level in 1..16 {
        let found = lua.inspect_stack(level, |debug| {
            let source = debug.source();
            let file = source.source.as_deref()?.strip_prefix('@')?.to_owned();
            if super::loader::STDLIB
                .iter()
                .any(|(_, chunk, _)| *chunk == file)
            {
                return None;
            }
            Some((file, debug.current_line()?))
        });
        match found {
            None => break,
            Some(Some(frame)) => return Some(frame),
            Some(None) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    fn vm() -> Lua {
        new_vm(&SandboxOptions::default(), &CancellationToken::new()).unwrap()
    }

    fn run(lua: &Lua, code: &str) -> Result<(), HostError> {
        lua.load(code)
            .set_name("@recipes/t.lua")
            .exec()
            .map_err(|e| HostError::from_lua(&e, DEFAULT_MEMORY_LIMIT))
    }

    #[test]
    fn safe_libraries_work() {
        let lua = vm();
        run(
            &lua,
            r#"
            assert(string.format("%d", 3) == "3")
            assert(table.concat({1, 2}, ",") == "1,2")
            assert(math.max(1, 2) == 2)
            assert(utf8.char(72) == "H")
            assert(coroutine.wrap(function() coroutine.yield(1) end)() == 1)
            assert(type(os.time()) == "number" and type(os.clock()) == "number")
            assert(type(os.date("%Y")) == "string")
            assert(("x"):rep(3) == "xxx")
            assert(load("return 1 + 1")() == 2)
            assert(rawget(_G, "undefined_global") == nil and undefined_global == nil)
        "#,
        )
        .unwrap();
    }

    #[test]
    fn every_removed_name_says_it_is_not_available() {
        let lua = vm();
        for (code, name) in [
            ("io.open('x')", "`io`"),
            ("debug.getinfo(1)", "`debug`"),
            ("package.loadlib('x', 'y')", "`package`"),
            ("dofile('x')", "`dofile`"),
            ("loadfile('x')", "`loadfile`"),
            ("collectgarbage()", "`collectgarbage`"),
            ("os.execute('true')", "`os.execute`"),
            ("os.exit(0)", "`os.exit`"),
            ("os.remove('x')", "`os.remove`"),
            ("string.dump(print)", "`string.dump`"),
            ("(''):dump()", "`string.dump`"),
            ("load('return 1', 'x', 'b')", "loading bytecode"),
        ] {
            let err = run(&lua, code).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RecipeError, "{code}");
            let text = err.to_string();
            assert!(text.contains(name), "{code}: {text}");
            assert!(text.contains("not available in recipes"), "{code}: {text}");
            assert!(text.starts_with("recipes/t.lua:1:"), "{code}: {text}");
        }
    }

    #[test]
    fn the_guards_cannot_be_removed() {
        let lua = vm();
        let err = run(&lua, "setmetatable(_G, nil)").unwrap_err();
        assert!(err.to_string().contains("protected metatable"), "{err}");
        run(
            &lua,
            "assert(getmetatable(_G) == 'the global table is locked in recipes')",
        )
        .unwrap();
    }

    #[test]
    fn bytecode_never_loads() {
        let lua = vm();
        run(
            &lua,
            r#"
            local f, err = load("\27Lua fake", "x")
            assert(f == nil and err:find("binary"), err)
        "#,
        )
        .unwrap();
    }

    #[test]
    fn getenv_answers_only_allowed_names_and_never_tokens() {
        let options = SandboxOptions {
            env_allow: vec!["PATH".into(), "NOMAD_TOKEN".into(), "MY_TOKEN".into()],
            token_env: vec!["MY_TOKEN".into()],
            memory_limit: DEFAULT_MEMORY_LIMIT,
        };
        let lua = new_vm(&options, &CancellationToken::new()).unwrap();
        run(&lua, "assert(os.getenv('PATH') ~= nil)").unwrap();
        run(&lua, "assert(os.getenv('HOME') == nil)").unwrap();
        for name in ["NOMAD_TOKEN", "MY_TOKEN"] {
            let err = run(&lua, &format!("os.getenv('{name}')")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RecipeError);
            assert!(err.to_string().contains("never readable"), "{err}");
            assert!(err.to_string().starts_with("recipes/t.lua:1:"), "{err}");
        }
    }

    #[test]
    fn memory_limit_is_a_recipe_error() {
        let options = SandboxOptions {
            memory_limit: 16 * 1024 * 1024,
            ..SandboxOptions::default()
        };
        let lua = new_vm(&options, &CancellationToken::new()).unwrap();
        let err = lua
            .load("local t = {} while true do t[#t + 1] = ('x'):rep(1024) .. #t end")
            .set_name("@recipes/t.lua")
            .exec()
            .map_err(|e| HostError::from_lua(&e, options.memory_limit))
            .unwrap_err();
        assert!(matches!(err, HostError::Memory { .. }), "{err:?}");
        assert!(err.to_string().contains("memory limit of 16 MiB"), "{err}");
    }

    #[test]
    fn cancellation_stops_a_busy_loop() {
        let cancel = CancellationToken::new();
        let lua = new_vm(&SandboxOptions::default(), &cancel).unwrap();
        cancel.cancel();
        let err = run(&lua, "while true do end").unwrap_err();
        assert!(matches!(err, HostError::Cancelled), "{err:?}");
    }
}
