//! Entry points for the fuzz targets (`fuzz/`) and their seeded property tests: not part of the
//! API. The recipe-table decoders (`decode`) take Lua values, which only this layer may make, so
//! [`decode_lua`] takes Lua source text, evaluates it in the recipe sandbox (bounded in
//! instructions and memory) and hands the value to every decoder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mlua::{HookTriggers, Value, VmState};
use tokio_util::sync::CancellationToken;

use super::decode;
use super::engine::LeaseOptions;
use super::sandbox::{SandboxOptions, new_vm};
use crate::session::{Command, SyncOptions};

/// How many VM instructions an input may take (checked every 1000).
const INSTRUCTION_LIMIT: u64 = 1_000_000;

/// What each decoder made of one Lua value.
#[derive(Debug)]
pub struct Decoded {
    /// As the argument of `exec`.
    pub command: Result<Command, String>,
    /// As an `env` table.
    pub env: Result<Vec<(String, String)>, String>,
    /// As a timeout.
    pub timeout: Result<Duration, String>,
    /// As the paths of `fetch`.
    pub fetch_paths: Result<Vec<String>, String>,
    /// As the destination of `fetch` (a string value only), under the `fetch_root` given.
    pub fetch_dest: Option<Result<PathBuf, String>>,
    /// As the table of `sync{…}` (a table or `nil` only), for the `repo_root` given.
    pub sync: Option<Result<SyncOptions, String>>,
}

/// Evaluate `source` (a chunk that returns one value, e.g. `return { "sh", env = { A = 1 } }`)
/// in the recipe sandbox and decode the value it returns with each of the recipe API's
/// decoders.
///
/// # Errors
/// The chunk does not compile, raises an error, or runs out of instructions or memory.
pub fn decode_lua(source: &str, repo_root: &Path, fetch_root: &Path) -> Result<Decoded, String> {
    let options = SandboxOptions {
        memory_limit: 32 << 20,
        ..SandboxOptions::default()
    };
    let lua = new_vm(&options, &CancellationToken::new()).map_err(|e| e.to_string())?;
    let count = Arc::new(AtomicU64::new(0));
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(1000),
        move |_, _| {
            if count.fetch_add(1000, Ordering::Relaxed) >= INSTRUCTION_LIMIT {
                Err(mlua::Error::runtime("instruction limit reached"))
            } else {
                Ok(VmState::Continue)
            }
        },
    )
    .map_err(|e| e.to_string())?;
    let value: Value = lua
        .load(source)
        .set_name("=fuzz")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .eval()
        .map_err(|e| e.to_string())?;
    let fetch_dest = match &value {
        Value::String(_) => Some(
            decode::string_value("dest", &value)
                .and_then(|dest| decode::local_dest(fetch_root, &dest)),
        ),
        _ => None,
    };
    let sync = match &value {
        Value::Table(t) => Some(decode::sync_options(
            repo_root,
            &LeaseOptions::default(),
            Some(t),
        )),
        Value::Nil => Some(decode::sync_options(
            repo_root,
            &LeaseOptions::default(),
            None,
        )),
        _ => None,
    };
    Ok(Decoded {
        command: decode::command(&value),
        env: decode::env_pairs(&value),
        timeout: decode::duration(&value),
        fetch_paths: decode::box_paths(&value),
        fetch_dest,
        sync,
    })
}
