//! `leasebox run --shards N -- CMD`: the same command on the N boxes of one shard group at
//! once. The repository is synced once for all boxes (one file set, one archive streamed to
//! every box), each box's command gets `LEASEBOX_SHARD_INDEX` (1..N) and
//! `LEASEBOX_SHARD_COUNT` (N) so the runner splits the suite itself (`cargo nextest run
//! --partition count:$LEASEBOX_SHARD_INDEX/$LEASEBOX_SHARD_COUNT`, `jest --shard=i/n`), every
//! output line is prefixed `[k/N]`, and the verdict is the first failing shard's exit code in
//! shard order. All shards finish unless `--fail-fast`, which stops the others (their process
//! groups, through verified exec's stop path) as soon as one fails. `--fetch PATH` lands per
//! shard under `out/shard-K/PATH`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::args::RunArgs;
use crate::error::{ErrorKind, Failure};
use crate::events::{Event, StepEnd};
use crate::leases::{Command, HeldLease, PrefixSink, SyncOptions, TerminalSink, sync_group};

/// How one shard's command ended.
struct ShardResult {
    code: Option<i32>,
    failure: Option<Failure>,
    cancelled: bool,
    ms: u64,
}

/// Run `args.rest` on every box of `held`.
#[expect(
    clippy::too_many_arguments,
    reason = "the one-box `work` of run.rs and its cwd, passed through"
)]
pub(super) async fn work(
    args: &RunArgs,
    cx: &Context,
    held: &HeldLease,
    repo_root: &Path,
    settings: &crate::config::Settings,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    fetch: &[String],
) -> Result<(), Failure> {
    let cancel = &cx.cancel;
    let sessions = held.sessions();
    let count = u32::try_from(sessions.len()).unwrap_or(u32::MAX);
    let events = held.session().events();
    if !args.no_sync {
        let options = SyncOptions {
            root: repo_root.to_path_buf(),
            excludes: settings.sync_exclude.clone(),
            clean: args.sync_clean,
            ..SyncOptions::default()
        };
        let reports = sync_group(sessions, &options, cancel)
            .await
            .map_err(|e| Failure::from_error(&e))?;
        for notice in reports
            .first()
            .map(|r| r.notices.clone())
            .unwrap_or_default()
        {
            events.warn(&notice);
        }
    }
    let tokens: Vec<CancellationToken> = sessions.iter().map(|_| cancel.child_token()).collect();
    let mut running = futures::stream::FuturesUnordered::new();
    for (k, session) in sessions.iter().enumerate() {
        let index = u32::try_from(k + 1).unwrap_or(u32::MAX);
        let mut env = env.clone();
        env.push(("LEASEBOX_SHARD_INDEX".to_owned(), index.to_string()));
        env.push(("LEASEBOX_SHARD_COUNT".to_owned(), count.to_string()));
        let command = Command {
            argv: args.rest.clone(),
            env,
            cwd: cwd.clone(),
            timeout: settings.exec_timeout,
            capture: false,
            stdin: None,
        };
        events.emit(Event::StepStart {
            name: "command".to_owned(),
            group: None,
            lane: index - 1,
            shard: Some(index),
        });
        let token = tokens[k].clone();
        let sink = Arc::new(PrefixSink::new(&format!("{index}/{count}"), TerminalSink));
        running.push(async move {
            let started = Instant::now();
            let outcome = session.exec(&command, sink, &token).await;
            (k, outcome, started)
        });
    }
    let mut results: Vec<Option<ShardResult>> = (0..sessions.len()).map(|_| None).collect();
    while let Some((k, outcome, started)) = running.next().await {
        let ms = crate::leases::elapsed_ms(started);
        let result = match outcome {
            Ok(o) => ShardResult {
                code: Some(o.code),
                failure: None,
                cancelled: false,
                ms,
            },
            Err(e) => {
                let failure = Failure::from_error(&e);
                ShardResult {
                    code: None,
                    cancelled: failure.kind == ErrorKind::Cancelled,
                    failure: Some(failure),
                    ms,
                }
            }
        };
        let failed =
            result.code.is_some_and(|c| c != 0) || (result.failure.is_some() && !result.cancelled);
        if failed && args.fail_fast {
            for (j, token) in tokens.iter().enumerate() {
                if j != k {
                    token.cancel();
                }
            }
        }
        results[k] = Some(result);
    }
    let mut verdict: Result<(), Failure> = Ok(());
    for (k, result) in results.into_iter().enumerate() {
        let Some(result) = result else { continue };
        let index = u32::try_from(k + 1).unwrap_or(u32::MAX);
        let status = match (&result.code, &result.failure) {
            (Some(0), _) => "passed",
            (Some(_), _) => "failed",
            (None, _) if result.cancelled => "cancelled",
            (None, _) => "errored",
        };
        let node = sessions[k]
            .lease()
            .boxes
            .first()
            .and_then(|b| b.node_name().or(b.node_id()))
            .map(str::to_owned);
        events.emit(Event::StepEnd(StepEnd {
            name: "command".to_owned(),
            status: if status == "cancelled" {
                "skipped"
            } else {
                status
            }
            .to_owned(),
            code: result.code,
            error_kind: result
                .failure
                .as_ref()
                .filter(|_| status == "errored")
                .map(|f| f.kind.as_str().to_owned()),
            ms: result.ms,
            group: None,
            lane: index - 1,
            shard: Some(index),
        }));
        events.emit(Event::ShardEnd {
            name: "command".to_owned(),
            shard: index,
            count,
            items: None,
            status: status.to_owned(),
            code: result.code,
            ms: result.ms,
            node,
        });
        if verdict.is_ok() {
            verdict = match (status, result.code, result.failure) {
                ("failed", Some(code), _) => Err(Failure::command_failed(
                    code,
                    format!(
                        "shard {index}/{count}: `{}` exited with code {code}",
                        args.rest.join(" ")
                    ),
                )),
                ("errored", _, Some(f)) => Err(Failure {
                    message: format!("shard {index}/{count}: {}", f.message),
                    ..f
                }),
                _ => Ok(()),
            };
        }
    }
    if cancel.is_cancelled() {
        return Err(Failure::new(ErrorKind::Cancelled, "cancelled"));
    }
    if !fetch.is_empty() {
        for (k, session) in sessions.iter().enumerate() {
            let dest = cx.cwd.join("out").join(format!("shard-{}", k + 1));
            std::fs::create_dir_all(&dest).map_err(|e| {
                Failure::new(
                    ErrorKind::ConfigError,
                    format!("cannot create `{}`: {e}", dest.display()),
                )
            })?;
            if let Err(e) = session.fetch(fetch, &dest, cancel).await {
                let failure = Failure::from_error(&e);
                events.warn(&format!(
                    "shard {}/{count}: fetching failed: {}",
                    k + 1,
                    failure.message
                ));
                if verdict.is_ok() {
                    verdict = Err(failure);
                }
            }
        }
    }
    verdict
}
