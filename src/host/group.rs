//! Shard groups as Lua sees them: the `group` userdata that `leasebox.warmup{ count = N }`
//! returns (`group[i]` is box i, `#group` is N, `group:sync{}` syncs once for all boxes,
//! `group:cleanup()` releases the whole group), and the host primitive the stdlib's
//! `leasebox.shard{}` is built on: `_shard_run(group, fn, opts)` calls `fn(box, shard)` for
//! every box at once, each box's output lines prefixed `[k/N]`, its commands given
//! `LEASEBOX_SHARD_INDEX`/`LEASEBOX_SHARD_COUNT`, and, with `fail_fast`, the other shards
//! cancelled (their commands stopped through verified exec's stop path) when one fails.
//!
//! Every shard is reported as a step of the run's events (`step_start`/`step_end` with its
//! `shard`) and as a `shard_end` (items, node, status, time), which the closing summary shows
//! as the shard table.

use std::time::Instant;

use futures::StreamExt;
use mlua::{AnyUserData, Function, Lua, MetaMethod, Table, UserData, UserDataFields, Value};
use tokio_util::sync::CancellationToken;

use super::bindings::{HostContext, LuaLease};
use super::decode;
use super::error::{HostError, raise};
use super::junit;
use super::sandbox::{DEFAULT_MEMORY_LIMIT, caller_location};
use super::split;
use crate::error::{ErrorKind, HasKind};
use crate::events::{Event, StepEnd};

/// A lease of N boxes as a Lua userdata.
#[derive(Clone)]
pub(crate) struct LuaGroup {
    /// The lease itself (tracked for release at the end of the run).
    pub lease: LuaLease,
    /// Its boxes, box 1 first.
    pub members: Vec<LuaLease>,
}

impl LuaGroup {
    pub(crate) fn new(lease: LuaLease) -> Self {
        let inner = lease.inner.members();
        let members = if inner.is_empty() {
            vec![lease.clone()]
        } else {
            let group_id = lease.inner.id();
            inner
                .into_iter()
                .zip(1u32..)
                .map(|(member, index)| LuaLease {
                    inner: member,
                    index,
                    member_of: Some(group_id.clone()),
                    ..lease.clone()
                })
                .collect()
        };
        LuaGroup { lease, members }
    }
}

impl UserData for LuaGroup {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.lease.inner.id()));
        fields.add_field_method_get("count", |_, this| Ok(this.members.len()));
    }

    fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!(
                "group {} of {} boxes",
                this.lease.inner.id(),
                this.members.len()
            ))
        });
        methods.add_meta_method(MetaMethod::Len, |_, this, ()| Ok(this.members.len()));
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: Value| {
            let Value::Integer(i) = key else {
                return Ok(Value::Nil);
            };
            match usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| this.members.get(i))
            {
                Some(member) => Ok(Value::UserData(lua.create_userdata(member.clone())?)),
                None => Ok(Value::Nil),
            }
        });
        methods.add_async_method("sync", |lua, this, spec: Option<Table>| {
            let location = caller_location(&lua);
            async move {
                let ctx = HostContext::from_lua(&lua)?;
                let mut options =
                    decode::sync_options(&ctx.repo_root, &this.lease.options, spec.as_ref())
                        .map_err(|m| {
                            raise(HostError::Sandbox {
                                message: format!("{location}sync: {m}"),
                            })
                        })?;
                options.clean |= ctx.sync_clean;
                if options.changed.is_none() {
                    options.changed = super::bindings::changed_hint(
                        ctx.changed.as_deref(),
                        &ctx.repo_root,
                        &options.root,
                    );
                }
                let summaries = this
                    .lease
                    .inner
                    .sync_all(&options, &ctx.cancel)
                    .await
                    .map_err(|source| {
                        raise(HostError::Engine {
                            context: format!("{location}sync"),
                            source,
                        })
                    })?;
                let first = summaries.first().cloned().unwrap_or_default();
                let table = lua.create_table()?;
                table.raw_set("files", first.files)?;
                table.raw_set("bytes", first.bytes)?;
                table.raw_set("deleted", first.deleted)?;
                table.raw_set(
                    "incremental",
                    !summaries.is_empty() && summaries.iter().all(|s| s.incremental),
                )?;
                table.raw_set("boxes", summaries.len())?;
                table.raw_set("ms", summaries.iter().map(|s| s.ms).max().unwrap_or(0))?;
                Ok(table)
            }
        });
        methods.add_async_method("cleanup", |_, this, ()| async move {
            this.lease.release_now().await.map_err(raise)
        });
    }
}

/// How one shard ended.
#[derive(Debug, Clone)]
struct ShardOutcome {
    status: &'static str,
    code: Option<i32>,
    error_kind: Option<ErrorKind>,
    message: Option<String>,
    ms: u64,
}

impl ShardOutcome {
    fn failed(&self) -> bool {
        matches!(self.status, "failed" | "errored")
    }
}

fn classify(result: mlua::Result<Value>, cancelled: bool, ms: u64) -> ShardOutcome {
    let done = |status, code, error_kind, message| ShardOutcome {
        status,
        code,
        error_kind,
        message,
        ms,
    };
    match result {
        Ok(Value::Table(t)) => {
            let ok = t.raw_get::<Option<bool>>("ok").ok().flatten();
            let code = t.raw_get::<Option<i64>>("code").ok().flatten();
            match (ok, code) {
                (_, Some(c)) if c != 0 => done(
                    "failed",
                    Some(i32::try_from(c.clamp(1, 255)).unwrap_or(1)),
                    Some(ErrorKind::CommandFailed),
                    None,
                ),
                (Some(false), _) => done("failed", Some(1), Some(ErrorKind::CommandFailed), None),
                _ => done("passed", Some(0), None, None),
            }
        }
        Ok(Value::Boolean(false)) => done("failed", Some(1), Some(ErrorKind::CommandFailed), None),
        Ok(_) => done("passed", Some(0), None, None),
        Err(err) => {
            let host = HostError::from_lua(&err, DEFAULT_MEMORY_LIMIT);
            let kind = host.kind();
            let message = Some(crate::error::render_chain(&host));
            if kind == ErrorKind::Cancelled || (cancelled && kind != ErrorKind::CommandFailed) {
                done("cancelled", None, Some(ErrorKind::Cancelled), message)
            } else if kind == ErrorKind::CommandFailed {
                done("failed", Some(host.exit_code()), Some(kind), message)
            } else {
                done("errored", Some(host.exit_code()), Some(kind), message)
            }
        }
    }
}

/// `_shard_run(group, fn, { name, fail_fast, items })`: run `fn(box, shard)` on every box at
/// once; returns one result table a shard, in shard order: `{ index, count, status, code,
/// error_kind, message, ms, node, items }`.
pub(crate) async fn shard_run(
    lua: Lua,
    (group, function, opts): (AnyUserData, Function, Option<Table>),
) -> mlua::Result<Table> {
    let ctx = HostContext::from_lua(&lua)?;
    let group = group.borrow::<LuaGroup>()?.clone();
    let name = opts
        .as_ref()
        .and_then(|o| o.raw_get::<Option<String>>("name").ok().flatten())
        .unwrap_or_else(|| "shards".to_owned());
    let fail_fast = opts
        .as_ref()
        .and_then(|o| o.raw_get::<Option<bool>>("fail_fast").ok().flatten())
        .unwrap_or(false);
    let items: Option<Table> = opts
        .as_ref()
        .and_then(|o| o.raw_get::<Option<Table>>("items").ok().flatten());
    let count = u32::try_from(group.members.len()).unwrap_or(u32::MAX);
    let tokens: Vec<CancellationToken> = group
        .members
        .iter()
        .map(|_| ctx.cancel.child_token())
        .collect();
    let mut nodes = Vec::new();
    let mut item_counts = Vec::new();
    let mut calls = futures::stream::FuturesUnordered::new();
    for (k, member) in group.members.iter().enumerate() {
        let index = u32::try_from(k + 1).unwrap_or(u32::MAX);
        let mut b = member.clone();
        b.prefix = Some(format!("{index}/{count}"));
        b.shard = Some((index, count));
        b.cancel = Some(tokens[k].clone());
        let node = b.inner.node();
        let shard = lua.create_table()?;
        shard.raw_set("index", index)?;
        shard.raw_set("count", count)?;
        shard.raw_set("node", node.clone())?;
        let mine: Option<Table> = match &items {
            Some(all) => all.raw_get::<Option<Table>>(index).ok().flatten(),
            None => None,
        };
        item_counts.push(mine.as_ref().map(|t| t.raw_len()));
        shard.raw_set("items", mine.unwrap_or(lua.create_table()?))?;
        nodes.push(node);
        ctx.events.emit(Event::StepStart {
            name: name.clone(),
            group: None,
            lane: index - 1,
            shard: Some(index),
        });
        let userdata = lua.create_userdata(b)?;
        let function = function.clone();
        calls.push(async move {
            let started = Instant::now();
            let result = function.call_async::<Value>((userdata, shard)).await;
            (k, result, started)
        });
    }
    let mut outcomes: Vec<Option<ShardOutcome>> = vec![None; group.members.len()];
    while let Some((k, result, started)) = calls.next().await {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = classify(result, tokens[k].is_cancelled(), ms);
        if fail_fast && outcome.failed() {
            for (j, token) in tokens.iter().enumerate() {
                if j != k {
                    token.cancel();
                }
            }
        }
        outcomes[k] = Some(outcome);
    }
    let out = lua.create_table()?;
    for (k, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap_or(ShardOutcome {
            status: "cancelled",
            code: None,
            error_kind: Some(ErrorKind::Cancelled),
            message: None,
            ms: 0,
        });
        let index = u32::try_from(k + 1).unwrap_or(u32::MAX);
        let step_status = match outcome.status {
            "cancelled" => "skipped",
            other => other,
        };
        ctx.events.emit(Event::StepEnd(StepEnd {
            name: name.clone(),
            status: step_status.to_owned(),
            code: outcome.code.filter(|_| outcome.status != "cancelled"),
            error_kind: (outcome.status == "errored")
                .then(|| outcome.error_kind.map(|k| k.as_str().to_owned()))
                .flatten(),
            ms: outcome.ms,
            group: None,
            lane: index - 1,
            shard: Some(index),
        }));
        ctx.events.emit(Event::ShardEnd {
            name: name.clone(),
            shard: index,
            count,
            items: item_counts[k].map(|n| n as u64),
            status: outcome.status.to_owned(),
            code: outcome.code,
            ms: outcome.ms,
            node: nodes[k].clone(),
        });
        let row = lua.create_table()?;
        row.raw_set("index", index)?;
        row.raw_set("count", count)?;
        row.raw_set("status", outcome.status)?;
        row.raw_set("ok", outcome.status == "passed")?;
        row.raw_set("code", outcome.code)?;
        row.raw_set("error_kind", outcome.error_kind.map(|k| k.as_str()))?;
        row.raw_set("message", outcome.message)?;
        row.raw_set("ms", outcome.ms)?;
        row.raw_set("node", nodes[k].clone())?;
        out.raw_set(index, row)?;
    }
    Ok(out)
}

/// `_split(items, count, name)`: the items each of `count` shards runs (a list of lists),
/// balanced by this recipe's recorded durations for step `name` (see `split.rs`).
pub(crate) fn split_items(
    lua: &Lua,
    (items, count, name): (Vec<String>, u32, String),
) -> mlua::Result<Table> {
    let ctx = HostContext::from_lua(lua)?;
    let history = ctx
        .provider
        .history_dir()
        .map(|dir| split::load(&split::history_path(&dir, &ctx.recipe, &name)))
        .unwrap_or_default();
    let shards = split::split(&items, count as usize, &history);
    let out = lua.create_table()?;
    for (k, shard) in shards.into_iter().enumerate() {
        out.raw_set(k + 1, lua.create_sequence_from(shard)?)?;
    }
    Ok(out)
}

/// `_record_durations(name, { { items = {…}, ms = N } | { timed = { { item, ms }, … } }, … })`:
/// fold a run's shard times (shared over a shard's items) and items' own measured times into
/// the recorded durations (best effort: a state dir that cannot be written is said once).
pub(crate) fn record_durations(lua: &Lua, (name, shards): (String, Table)) -> mlua::Result<()> {
    let ctx = HostContext::from_lua(lua)?;
    let Some(dir) = ctx.provider.history_dir() else {
        return Ok(());
    };
    let mut runs = Vec::new();
    let mut measured = Vec::new();
    for row in shards.sequence_values::<Table>() {
        let row = row?;
        if let Some(timed) = row.raw_get::<Option<Table>>("timed")? {
            for entry in timed.sequence_values::<Table>() {
                let entry = entry?;
                measured.push((
                    entry.raw_get::<String>("item")?,
                    entry.raw_get::<Option<u64>>("ms")?.unwrap_or(0),
                ));
            }
            continue;
        }
        let items: Vec<String> = row
            .raw_get::<Option<Vec<String>>>("items")?
            .unwrap_or_default();
        let ms: u64 = row.raw_get::<Option<u64>>("ms")?.unwrap_or(0);
        runs.push((items, ms));
    }
    let path = split::history_path(&dir, &ctx.recipe, &name);
    let mut history = split::load(&path);
    split::record(&mut history, &runs);
    split::record_measured(&mut history, &measured);
    if let Err(e) = split::save(&path, &history) {
        ctx.events.warn(&format!(
            "cannot record the shard durations in `{}`: {e}",
            path.display()
        ));
    }
    Ok(())
}

/// `_junit_merge({ { shard = K, path = "out/shard-K/…" }, … }, dest)`: merge the shards'
/// JUnit files (fetched under the fetch root) into `dest`; returns `{ path, tests, failures,
/// errors, skipped, files }`.
pub(crate) fn junit_merge(lua: &Lua, (reports, dest): (Table, String)) -> mlua::Result<Table> {
    let ctx = HostContext::from_lua(lua)?;
    let location = caller_location(lua);
    let mut documents = Vec::new();
    for row in reports.sequence_values::<Table>() {
        let path: String = row?.raw_get("path")?;
        let local = decode::local_dest(&ctx.fetch_root, &path).map_err(|m| {
            raise(HostError::Sandbox {
                message: format!("{location}junit: {m}"),
            })
        })?;
        // A fetched directory holds the reports; a file is one.
        let files: Vec<std::path::PathBuf> = if local.is_dir() {
            let mut found: Vec<_> = std::fs::read_dir(&local)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            found.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "xml"));
            found.sort();
            found
        } else {
            vec![local]
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => documents.push(text),
                Err(e) => ctx.events.warn(&format!(
                    "cannot read the JUnit file `{}`: {e}",
                    file.display()
                )),
            }
        }
    }
    let target = decode::local_dest(&ctx.fetch_root, &dest).map_err(|m| {
        raise(HostError::Sandbox {
            message: format!("{location}junit: {m}"),
        })
    })?;
    let (xml, totals) = junit::merge("leasebox shards", &documents);
    let written = target
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&target, xml));
    if let Err(e) = written {
        return Err(raise(HostError::Sandbox {
            message: format!("{location}junit: cannot write `{}`: {e}", target.display()),
        }));
    }
    let out = lua.create_table()?;
    out.raw_set("path", dest)?;
    out.raw_set("tests", totals.tests)?;
    out.raw_set("failures", totals.failures)?;
    out.raw_set("errors", totals.errors)?;
    out.raw_set("skipped", totals.skipped)?;
    out.raw_set("files", documents.len())?;
    Ok(out)
}
