//! Opening the REPL: from `leasebox repl` ([`run_repl`]: a fresh VM, the `--lease` attached, the
//! recipe loaded) or from a failed run ([`after_failure`]: the run's own VM, leases and failed
//! step).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mlua::{Function, Lua, MultiValue, Table, Value};
use tokio_util::sync::CancellationToken;

use super::interrupt::Interrupts;
use super::prompt;
use super::state::{Loaded, RecipeSource, Repl, show_error};
use crate::config::Config;
use crate::host::bindings::{self, HostContext, LuaLease};
use crate::host::engine::LeaseProvider;
use crate::host::error::HostError;
use crate::host::lease;
use crate::host::runner::{RunState, prepare_vm};
use crate::host::sandbox::SandboxOptions;

/// Where the REPL reads from.
#[derive(Debug, Clone)]
pub enum ReplInput {
    /// A terminal: the interactive prompt, with its history file.
    Terminal {
        /// The history file (in the state dir).
        history: Option<PathBuf>,
    },
    /// Stdin is not a terminal: its whole text, run as one chunk.
    Piped(String),
}

/// `leasebox repl`.
#[derive(Debug, Clone)]
pub struct ReplOptions {
    /// The recipe to load (`leasebox repl RECIPE`).
    pub recipe: Option<PathBuf>,
    /// The repository root: what `require` and `sync` may reach.
    pub repo_root: PathBuf,
    /// Where fetched files land (the current directory).
    pub fetch_root: PathBuf,
    /// The arguments after `--` (`lb.args`).
    pub args: Vec<String>,
    /// What the sandbox lets the prompt see.
    pub sandbox: SandboxOptions,
    /// Keep every lease when the REPL ends (`--keep`).
    pub keep: bool,
    /// Attach the provider's `--lease` lease as `box` at the start.
    pub attach: bool,
    /// The config every lease is resolved against.
    pub config: Config,
    /// Terminal or piped.
    pub input: ReplInput,
}

/// What `run --repl-on-failure` needs to open the prompt after a failed step.
#[derive(Debug, Clone, Default)]
pub struct ReplOnFailure {
    /// Ctrl-C's route to the prompt.
    pub interrupts: Interrupts,
    /// The history file.
    pub history: Option<PathBuf>,
}

/// Run the REPL to its end; every lease it took is released (unless kept) before this
/// returns. The result is the piped chunk's (exit 0, `lb.fail`'s code, 65 on a Lua error) or,
/// interactive, `Ok` unless a release failed.
///
/// # Errors
/// The piped chunk's error, a failure to attach `--lease`, or a release that failed.
pub async fn run_repl(
    options: &ReplOptions,
    provider: Arc<dyn LeaseProvider>,
    interrupts: &Interrupts,
    cancel: &CancellationToken,
) -> Result<(), HostError> {
    let ctx = Arc::new(HostContext {
        provider,
        cancel: cancel.clone(),
        repo_root: options.repo_root.clone(),
        fetch_root: options.fetch_root.clone(),
        keep_all: options.keep,
        sync_clean: false,
        config: options.config.clone(),
        leases: Arc::default(),
        record: true,
        last_failed: Arc::new(Mutex::new(None)),
        events: crate::events::Events::default(),
        changed: None,
        synced_excludes: Arc::default(),
        recipe: "repl".to_owned(),
    });
    let state = RunState::default();
    let result = session(options, &ctx, &state, interrupts).await;
    let released = ctx.release_all().await;
    match (result, released) {
        (Err(err), _) | (Ok(()), Err(err)) => Err(err),
        (Ok(()), Ok(())) => Ok(()),
    }
}

async fn session(
    options: &ReplOptions,
    ctx: &Arc<HostContext>,
    state: &RunState,
    interrupts: &Interrupts,
) -> Result<(), HostError> {
    let limit = options.sandbox.memory_limit;
    let (lua, primitives) = prepare_vm(&options.sandbox, ctx, &options.args, &options.repo_root)?;
    install_prompt_globals(&lua)
        .await
        .map_err(|e| HostError::from_lua(&e, limit))?;
    let mut repl = Repl {
        results: lua
            .create_table()
            .map_err(|e| HostError::from_lua(&e, limit))?,
        lua,
        base: Arc::clone(ctx),
        state,
        primitives,
        limit,
        recipe: options.recipe.as_ref().map(|path| RecipeSource {
            path: path.clone(),
            repo_root: options.repo_root.clone(),
        }),
        loaded: Loaded::Nothing,
        interrupts: interrupts.clone(),
        verdict: None,
        fetch_on_run: true,
    };
    if options.attach {
        let lease_options = lease::resolve(&ctx.config, None, None, "--lease")?;
        let lease = bindings::warmup(ctx, lease_options, "").await?;
        repl.set_box(Some(lease));
    }
    match &options.input {
        ReplInput::Piped(text) => {
            repl.load_recipe().await?;
            prompt::piped(&mut repl, text).await
        }
        ReplInput::Terminal { history } => {
            eprintln!(
                "leasebox {} REPL: Lua 5.4 with the recipe API as `lb`{}. `:help` lists the \
                 commands; Ctrl-D leaves.",
                env!("CARGO_PKG_VERSION"),
                repl.current_box()
                    .map(|b| format!(", lease {} as `box`", b.inner.id()))
                    .unwrap_or_default()
            );
            if let Err(err) = repl.load_recipe().await {
                show_error(&err);
            }
            prompt::interactive(&mut repl, history.clone()).await
        }
    }
}

/// `lb` (the recipe API), and a `print` that writes through this process's stdout (so it
/// keeps its place between the output of the box's commands).
async fn install_prompt_globals(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    let require: Function = globals.raw_get("require")?;
    let lb: Value = require.call_async("leasebox").await?;
    globals.raw_set("lb", lb)?;
    let tostring: Function = globals.raw_get("tostring")?;
    let print = lua.create_function(move |_, values: MultiValue| {
        let parts = values
            .into_iter()
            .map(|v| {
                tostring
                    .call::<mlua::LuaString>(v)
                    .map(|s| s.to_string_lossy())
            })
            .collect::<mlua::Result<Vec<String>>>()?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", parts.join("\t"));
        let _ = out.flush();
        Ok(())
    })?;
    globals.raw_set("print", print)
}

/// A failed run, handed to the prompt.
pub(crate) struct FailureRepl<'a> {
    pub lua: &'a Lua,
    pub ctx: &'a Arc<HostContext>,
    pub state: &'a RunState,
    pub primitives: Table,
    pub results: Table,
    pub recipe: RecipeSource,
    pub loaded: Loaded,
    /// The lease the failed step ran on (else the run's first).
    pub lease: Option<LuaLease>,
    pub failure: HostError,
    pub hooks: &'a ReplOnFailure,
    pub limit: usize,
}

/// Open the prompt on a failed run; the run's verdict is the last one when the prompt ends.
pub(crate) async fn after_failure(failed: FailureRepl<'_>) -> Result<(), HostError> {
    if let Err(err) = install_prompt_globals(failed.lua).await {
        eprintln!("leasebox: {err}");
    }
    let mut repl = Repl {
        lua: failed.lua.clone(),
        base: Arc::clone(failed.ctx),
        state: failed.state,
        primitives: failed.primitives,
        results: failed.results,
        limit: failed.limit,
        recipe: Some(failed.recipe),
        loaded: failed.loaded,
        interrupts: failed.hooks.interrupts.clone(),
        verdict: None,
        fetch_on_run: false,
    };
    let lease = failed
        .lease
        .or_else(|| failed.ctx.live_leases().into_iter().next());
    repl.set_box(lease);
    repl.refresh_last();
    let last = failed.ctx.last_failure();
    eprintln!(
        "==> {}; the REPL is open with {}{} (`:retry` reruns it, `:reload` re-reads the recipe, \
         `:help` for more; Ctrl-D ends the run with the last verdict)",
        crate::error::render_chain(&failed.failure),
        if repl.current_box().is_some() {
            "the lease as `box`"
        } else {
            "no lease"
        },
        match &last {
            Some(step) => format!(" and the failed step `{}` as `last`", step.step),
            None => String::new(),
        },
    );
    repl.verdict = Some(Err(failed.failure));
    let prompt = prompt::interactive(&mut repl, failed.hooks.history.clone()).await;
    // Back to the run: its own context and token.
    failed.lua.set_app_data(Arc::clone(failed.ctx));
    prompt?;
    repl.verdict.unwrap_or(Ok(()))
}
