//! Shell completions: `leasebox completions bash|zsh|fish` prints a small registration script;
//! the shell then calls `leasebox` itself (with `LEASEBOX_COMPLETE` set) for each completion,
//! so recipe names (from the repository of the current directory) and lease ids (from the
//! claims in the state dir) complete live, and the script never goes stale against the binary.
//! The engine is clap_complete's dynamic completion.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;

use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use super::args::Shell;
use crate::error::{ErrorKind, Failure};

/// The variable that turns a `leasebox` call into a completion request (set by the scripts).
pub const COMPLETE_VAR: &str = "LEASEBOX_COMPLETE";

/// How to install the scripts (the long help of `leasebox completions`).
pub const HOW_TO_INSTALL: &str = "\
Install (the script calls `leasebox` on your PATH for every completion, so it stays current):
  bash:  echo 'source <(leasebox completions bash)' >> ~/.bashrc
  zsh:   echo 'source <(leasebox completions zsh)' >> ~/.zshrc
  fish:  leasebox completions fish > ~/.config/fish/completions/leasebox.fish";

/// Answer a completion request if this process is one (the shell's script sets
/// [`COMPLETE_VAR`]); returns whether it was. Must run before anything is printed.
pub(crate) fn answer_if_asked() -> bool {
    let current_dir = std::env::current_dir().ok();
    match clap_complete::CompleteEnv::with_factory(super::args::command)
        .var(COMPLETE_VAR)
        .try_complete(std::env::args_os(), current_dir.as_deref())
    {
        Ok(answered) => answered,
        Err(e) => {
            // A broken request (an unknown shell name): say so on stderr, where the shell shows it.
            let _ = e.print();
            true
        }
    }
}

/// Write `shell`'s registration script to `out`.
pub(crate) fn write_script(shell: Shell, out: &mut dyn Write) -> Result<(), Failure> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    completer
        .write_registration(COMPLETE_VAR, "leasebox", "leasebox", &self_path(), out)
        .and_then(|()| out.flush())
        .map_err(|e| {
            Failure::new(
                ErrorKind::Internal,
                format!("cannot write the completion script: {e}"),
            )
        })
}

/// How the script calls this binary: as it was invoked when that was a bare name (found on
/// PATH), else by its absolute path (`./target/release/leasebox completions bash`).
fn self_path() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let path = std::path::PathBuf::from(&argv0);
    if path.components().count() > 1
        && let Ok(abs) = std::path::absolute(&path)
    {
        return abs.to_string_lossy().into_owned();
    }
    if argv0.is_empty() {
        "leasebox".to_owned()
    } else {
        argv0.to_string_lossy().into_owned()
    }
}

/// Candidates for a recipe argument: the recipe names of the current repository that start
/// with what was typed, then matching paths (directories and `.lua` files).
pub(crate) fn recipes(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let mut out = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        let root = super::repo_root_of(&cwd);
        let mut seen = std::collections::BTreeSet::new();
        for entry in crate::host::list_recipes(&root) {
            if entry.name.starts_with(typed.as_ref()) && seen.insert(entry.name.clone()) {
                out.push(
                    CompletionCandidate::new(entry.name)
                        .help(Some(entry.path.display().to_string().into())),
                );
            }
        }
    }
    let paths = PathCompleter::any()
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "lua"))
        .complete(current);
    // Paths only once a path is being typed, so `leasebox run <TAB>` offers the names first.
    if out.is_empty() || typed.contains('/') || typed.starts_with('.') {
        out.extend(paths);
    }
    out
}

/// Candidates for a lease id: the claims in this user's state dir, each with its state and
/// repository as help.
pub(crate) fn lease_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let Ok(state) = crate::ownership::StateDir::resolve(&env) else {
        return Vec::new();
    };
    let Ok(list) = state.claim_store().list() else {
        return Vec::new();
    };
    list.claims
        .into_iter()
        .filter(|c| c.id.starts_with(typed.as_ref()))
        .map(|c| {
            let help = format!(
                "{} lease of {}{}",
                c.backend,
                c.repo_root.display(),
                if c.keep { ", kept" } else { "" }
            );
            CompletionCandidate::new(c.id).help(Some(help.into()))
        })
        .collect()
}
