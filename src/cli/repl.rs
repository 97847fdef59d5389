//! `leasebox repl [--lease ID] [RECIPE] [-- ARGS]`: the REPL of the recipe host, over leases
//! from the lease lifecycle. With stdin a terminal it is the interactive prompt (history in the
//! state dir); otherwise the whole of stdin runs as one chunk and its verdict is the exit code.

use std::io::{IsTerminal as _, Read as _};
use std::sync::Arc;

use super::Context;
use super::args::ReplArgs;
use crate::error::{ErrorKind, Failure};
use crate::host::{
    ALWAYS_DENIED_ENV, DEFAULT_MEMORY_LIMIT, RecipeLeases, ReplInput, ReplOptions, SandboxOptions,
    find_recipe, run_repl,
};
use crate::leases::Timing;

/// The history file of the REPL, in the state dir.
pub(crate) const HISTORY_FILE: &str = "repl_history";

pub(crate) async fn repl(args: ReplArgs, cx: &Context) -> Result<(), Failure> {
    let repo_root = cx.repo_root();
    let recipe = args
        .recipe
        .as_deref()
        .map(|name| find_recipe(&repo_root, &cx.cwd, name))
        .transpose()
        .map_err(|e| e.failure())?;
    let reuse = args.lease.as_deref().map(super::lease_id).transpose()?;
    let config = cx.config(&[])?;
    let settings = config.settings();
    let state_dir = cx.state_dir()?;
    let input = if std::io::stdin().is_terminal() {
        ReplInput::Terminal {
            history: Some(state_dir.path().join(HISTORY_FILE)),
        }
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::new(
                ErrorKind::Usage,
                format!("cannot read the REPL's input from stdin: {e}"),
            )
        })?;
        ReplInput::Piped(text)
    };
    let leases = cx.leases(&config, repo_root.clone(), Arc::new(Timing::default()))?;
    let attach = reuse.is_some();
    let provider = RecipeLeases::new(leases, settings, repo_root.clone(), reuse);
    let options = ReplOptions {
        recipe,
        repo_root,
        fetch_root: cx.cwd.clone(),
        args: args.rest,
        sandbox: sandbox(settings),
        keep: args.keep,
        attach,
        config: config.clone(),
        input,
    };
    run_repl(&options, Arc::new(provider), &cx.interrupts, &cx.cancel)
        .await
        .map_err(|e| e.failure())
}

/// The sandbox of recipes and of the REPL: the user's `lua_env_allow`, never a token.
pub(crate) fn sandbox(settings: &crate::config::Settings) -> SandboxOptions {
    let mut token_env = vec![settings.nomad.token_env.clone()];
    token_env.extend(ALWAYS_DENIED_ENV.iter().map(|s| (*s).to_owned()));
    SandboxOptions {
        env_allow: settings.lua_env_allow.clone(),
        token_env,
        memory_limit: DEFAULT_MEMORY_LIMIT,
    }
}
