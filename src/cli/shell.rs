//! `leasebox shell [--lease ID] [-- CMD…]`: an interactive terminal in a box. Refused at once,
//! with the usage code, when stdin is not a terminal. With `--lease`, in that kept lease; else
//! a fresh lease, released when the shell exits (unless `--keep`). The repository is synced
//! first (unless `--no-sync`), the shell starts where the user stands in the repository, and
//! its exit code is leasebox's.

use std::path::PathBuf;
use std::sync::Arc;

use super::Context;
use super::args::ShellArgs;
use crate::error::{ErrorKind, Failure};
use crate::leases::{LeaseRequest, ShellRequest, SyncOptions, Timing, stdin_is_terminal};

pub(crate) async fn shell(args: ShellArgs, cx: &Context) -> Result<(), Failure> {
    if !stdin_is_terminal() {
        return Err(Failure::new(
            ErrorKind::Usage,
            "`leasebox shell` needs a terminal, and stdin is not one; run a command without a \
             terminal with `leasebox run -- CMD…`",
        ));
    }
    let env = super::run::pass_env(&args.pass_env, cx)?;
    let reuse = args.lease.as_deref().map(super::lease_id).transpose()?;
    let config = cx.config(&[])?;
    let settings = config.settings();
    let repo_root = cx.repo_root();
    let leases = cx.leases(&config, repo_root.clone(), Arc::new(Timing::default()))?;
    let held = match &reuse {
        Some(id) => leases.attach(id, settings.nomad.workdir.as_deref()).await?,
        None => {
            let request = LeaseRequest::from_settings(settings, args.keep);
            leases.acquire(&request, &cx.cancel).await?
        }
    };
    cx.hold(&held);
    let session = held.session();
    let result = async {
        if !args.no_sync {
            let options = SyncOptions {
                root: repo_root.clone(),
                excludes: settings.sync_exclude.clone(),
                ..SyncOptions::default()
            };
            let report = session
                .sync(&options, &cx.cancel)
                .await
                .map_err(|e| Failure::from_error(&e))?;
            for notice in &report.notices {
                eprintln!("leasebox: {notice}");
            }
        }
        let request = ShellRequest {
            argv: args.command.clone(),
            env,
            cwd: cx
                .cwd
                .strip_prefix(&repo_root)
                .ok()
                .map(PathBuf::from)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.to_string_lossy().into_owned()),
        };
        let outcome = session
            .shell(&request, &cx.cancel)
            .await
            .map_err(|e| Failure::from_error(&e))?;
        match outcome.code {
            0 => Ok(()),
            // The shell's own code, mirrored; its output already said what happened.
            code => Err(Failure::command_failed(code, "")),
        }
    }
    .await;
    let keep = args.keep || held.reused();
    super::run::finish(cx, &held, keep, result, "the shell ended").await
}
