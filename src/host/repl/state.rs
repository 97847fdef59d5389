//! [`Repl`]: the prompt's state, one sandboxed VM with the recipe API loaded, the host context
//! (its leases and its last failed step), the loaded recipe, and the verdict of the last run.
//! Every call at the prompt gets its own cancellation token (Ctrl-C stops that call only).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::interrupt::{CallGuard, Interrupts};
use super::{eval, pretty};
use crate::error::{ErrorKind, HasKind};
use crate::host::bindings::{self, HostContext, LuaLease};
use crate::host::error::HostError;
use crate::host::last::Retry;
use crate::host::lease;
use crate::host::loader;
use crate::host::plan::Plan;
use crate::host::runner::{RunState, Runner, describe_value, is_recipe};

/// What the prompt does after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Quit,
}

/// The recipe file the REPL was given.
pub(crate) struct RecipeSource {
    pub path: PathBuf,
    pub repo_root: PathBuf,
}

/// What the recipe file holds, once loaded.
pub(crate) enum Loaded {
    Nothing,
    /// A `recipe{}` description (also the global `recipe`), run by `:run`.
    Declarative(Box<Plan>),
    /// An imperative recipe, compiled, run by `:run` in the prompt's environment.
    Imperative(Function),
}

/// The prompt's state.
pub(crate) struct Repl<'a> {
    pub lua: Lua,
    pub base: Arc<HostContext>,
    pub state: &'a RunState,
    pub primitives: Table,
    pub results: Table,
    pub limit: usize,
    pub recipe: Option<RecipeSource>,
    pub loaded: Loaded,
    pub interrupts: Interrupts,
    /// The verdict of the last `:run` / `:retry` (or the failure the REPL opened on).
    pub verdict: Option<Result<(), HostError>>,
    /// `:run` fetches the recipe's artifacts (not under `run --repl-on-failure`, where the run
    /// fetches them once at its end).
    pub fetch_on_run: bool,
}

/// One call at the prompt: its token is Ctrl-C's, and the VM sees a context with it.
struct Call {
    _guard: CallGuard,
    ctx: Arc<HostContext>,
}

impl Repl<'_> {
    fn begin(&self) -> Call {
        let guard = self.interrupts.call();
        let ctx = Arc::new(self.base.with_cancel(guard.token.clone()));
        self.lua.set_app_data(Arc::clone(&ctx));
        Call { _guard: guard, ctx }
    }

    fn end(&self, call: Call) {
        drop(call);
        self.lua.set_app_data(Arc::clone(&self.base));
        self.refresh_last();
    }

    fn lua_error(&self, err: &mlua::Error) -> HostError {
        HostError::from_lua(err, self.limit)
    }

    /// An entry of the prompt: a `:command` or Lua.
    pub(crate) async fn entry(&mut self, entry: &str) -> Flow {
        if entry.trim_start().starts_with(':') {
            return self.command(entry).await;
        }
        let function = match eval::compile(&self.lua, entry, "@repl") {
            Ok(f) => f,
            Err(err) => {
                show_error(&self.lua_error(&err));
                return Flow::Continue;
            }
        };
        match self.call_function(&function).await {
            Ok(values) => print_values(&values),
            Err(err) => show_error(&err),
        }
        Flow::Continue
    }

    /// Call a Lua function as one call of the prompt.
    pub(crate) async fn call_function(&self, function: &Function) -> Result<MultiValue, HostError> {
        let call = self.begin();
        let result = function.call_async::<MultiValue>(()).await;
        self.end(call);
        result.map_err(|err| self.lua_error(&err))
    }

    /// `last` is the last failed step, when there is one.
    pub(crate) fn refresh_last(&self) {
        if let Some(failed) = self.base.last_failure()
            && let Ok(table) = failed.to_table(&self.lua)
        {
            let _ = self.lua.globals().raw_set("last", table);
        }
    }

    /// The lease in the global `box`, if it is one and still live.
    pub(crate) fn current_box(&self) -> Option<LuaLease> {
        let Ok(Value::UserData(ud)) = self.lua.globals().raw_get::<Value>("box") else {
            return None;
        };
        let lease = ud.borrow::<LuaLease>().ok()?.clone();
        (!lease.released.load(Ordering::SeqCst)).then_some(lease)
    }

    /// Attach `lease` as `box`, and every live lease as `boxes` when there are several.
    pub(crate) fn set_box(&self, lease: Option<LuaLease>) {
        let globals = self.lua.globals();
        match lease {
            Some(lease) => match self.lua.create_userdata(lease) {
                Ok(ud) => {
                    let _ = globals.raw_set("box", ud);
                }
                Err(err) => eprintln!("leasebox: {err}"),
            },
            None => {
                let _ = globals.raw_set("box", Value::Nil);
            }
        }
        let live = self.base.live_leases();
        if live.len() > 1 {
            let boxes = self.lua.create_table().and_then(|t| {
                for lease in live {
                    t.raw_push(self.lua.create_userdata(lease)?)?;
                }
                Ok(t)
            });
            if let Ok(boxes) = boxes {
                let _ = globals.raw_set("boxes", boxes);
            }
        } else {
            let _ = globals.raw_set("boxes", Value::Nil);
        }
    }

    /// Read the recipe file: a file that ends with `return …` is evaluated for its
    /// description (inert, the global `recipe`); any other file is an imperative recipe and is
    /// only compiled (it runs on `:run`).
    pub(crate) async fn load_recipe(&mut self) -> Result<(), HostError> {
        let Some(source) = &self.recipe else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&source.path).map_err(|err| HostError::Read {
            path: source.path.display().to_string(),
            source: Arc::new(err),
        })?;
        let chunk = loader::chunk_name(&source.repo_root, &source.path);
        let function = loader::compile(&self.lua, &chunk, &text).map_err(|e| self.lua_error(&e))?;
        if !ends_with_return(&self.lua, &text) {
            self.loaded = Loaded::Imperative(function);
            eprintln!("==> loaded {chunk}, an imperative recipe: `:run` runs it here");
            return Ok(());
        }
        let values = self.call_function(&function).await?;
        let value = values.into_iter().next().unwrap_or(Value::Nil);
        match value {
            Value::Table(table) if is_recipe(&self.lua, &table) => {
                let plan = Plan::from_table(&table).map_err(|err| HostError::Runtime {
                    message: format!("{chunk}: invalid recipe: {err}"),
                })?;
                let _ = self.lua.globals().raw_set("recipe", table);
                eprintln!(
                    "==> loaded {chunk}: a recipe{{}} of {} step(s) as `recipe`; `:run` runs it",
                    plan.steps.len()
                );
                self.loaded = Loaded::Declarative(Box::new(plan));
                Ok(())
            }
            Value::Nil => {
                self.loaded = Loaded::Imperative(function);
                eprintln!("==> loaded {chunk}, an imperative recipe: `:run` runs it here");
                Ok(())
            }
            other => Err(HostError::Runtime {
                message: format!(
                    "{chunk}: a recipe file must return `require(\"leasebox\").recipe{{…}}` or \
                     nothing; it returned {}",
                    describe_value(&other)
                ),
            }),
        }
    }

    pub(crate) async fn reload(&mut self) {
        if self.recipe.is_none() {
            eprintln!("leasebox: no recipe was given (`leasebox repl RECIPE`)");
            return;
        }
        if let Err(err) = self.load_recipe().await {
            show_error(&err);
        }
    }

    fn runner<'r>(&'r self, ctx: &'r Arc<HostContext>, plan: &'r Plan) -> Option<Runner<'r>> {
        Some(Runner {
            lua: &self.lua,
            ctx,
            state: self.state,
            plan,
            args: self.primitives.get("args").ok()?,
            results: self.results.clone(),
            limit: self.limit,
        })
    }

    /// `:run`.
    pub(crate) async fn run_loaded(&mut self) {
        let verdict = match &self.loaded {
            Loaded::Nothing => {
                eprintln!("leasebox: no recipe is loaded (`leasebox repl RECIPE`)");
                return;
            }
            Loaded::Imperative(function) => {
                let function = function.clone();
                let result = self.call_function(&function).await.map(|_| ());
                if self.current_box().is_none()
                    && let Some(first) = self.base.live_leases().into_iter().next()
                {
                    self.set_box(Some(first));
                }
                result
            }
            Loaded::Declarative(plan) => {
                let call = self.begin();
                let preset = self.current_box();
                let result = match self.runner(&call.ctx, plan) {
                    Some(runner) => match runner.prepare(preset).await {
                        Ok(lease) => {
                            let failure = runner.steps_from(&lease, 0).await;
                            let verdict = if self.fetch_on_run {
                                runner.artifacts(&lease, failure).await
                            } else {
                                failure.map_or(Ok(()), Err)
                            };
                            self.set_box(Some(lease));
                            verdict
                        }
                        Err(err) => Err(err),
                    },
                    None => Err(HostError::Runtime {
                        message: "the recipe host lost `leasebox.args`".to_owned(),
                    }),
                };
                self.end(call);
                result
            }
        };
        self.conclude(verdict);
    }

    /// `:retry`.
    pub(crate) async fn retry(&mut self) {
        let Some(failed) = self.base.last_failure() else {
            eprintln!("leasebox: nothing to retry: no step has failed yet");
            return;
        };
        let verdict = match failed.retry {
            Retry::Exec { lease, command } => {
                if lease.released.load(Ordering::SeqCst) {
                    eprintln!(
                        "leasebox: the lease of `{}` was released; nothing to retry on",
                        failed.step
                    );
                    return;
                }
                eprintln!("==> retry: {}", command.argv.join(" "));
                let call = self.begin();
                let result = lease
                    .exec(command.clone(), None, &call.ctx.cancel, "")
                    .await;
                let verdict = match result {
                    Ok(outcome) if outcome.code == 0 => {
                        self.base.clear_failure();
                        Ok(())
                    }
                    Ok(outcome) => {
                        call.ctx.record_failure(crate::host::last::FailedStep::exec(
                            &lease,
                            &command,
                            &outcome,
                            failed.at.as_deref().unwrap_or(""),
                        ));
                        Err(HostError::StepFailed {
                            step: failed.step.clone(),
                            code: outcome.code,
                        })
                    }
                    Err(err) => Err(err),
                };
                self.end(call);
                verdict
            }
            Retry::Steps(names) => {
                let Loaded::Declarative(plan) = &self.loaded else {
                    eprintln!("leasebox: the recipe is not loaded as a `recipe{{}}` any more");
                    return;
                };
                let Some(lease) = self.current_box() else {
                    eprintln!("leasebox: no lease attached as `box` to retry on (`:lease take`)");
                    return;
                };
                eprintln!("==> retry: {}", names.join(", "));
                let call = self.begin();
                let before = self.base.last_failure().map(|f| f.step);
                let result = match self.runner(&call.ctx, plan) {
                    Some(runner) => runner.retry(&lease, &names).await,
                    None => Err("the recipe host lost `leasebox.args`".to_owned()),
                };
                self.end(call);
                match result {
                    Err(message) => {
                        eprintln!("leasebox: {message}");
                        return;
                    }
                    Ok(None) => {
                        if self.base.last_failure().map(|f| f.step) == before {
                            self.base.clear_failure();
                        }
                        Ok(())
                    }
                    Ok(Some(err)) => Err(err),
                }
            }
        };
        self.conclude(verdict);
    }

    fn conclude(&mut self, verdict: Result<(), HostError>) {
        match &verdict {
            Ok(()) => eprintln!("==> passed"),
            Err(err) => eprintln!(
                "==> failed (exit code {}): {}{}",
                err.exit_code(),
                crate::error::render_chain(err),
                if self.base.last_failure().is_some() {
                    "; `last` has the failed step, `:retry` reruns it"
                } else {
                    ""
                }
            ),
        }
        self.refresh_last();
        self.verdict = Some(verdict);
    }

    pub(crate) fn show_leases(&self) {
        let live = self.base.live_leases();
        if live.is_empty() {
            println!("no lease; `:lease take` leases a box, `:lease take ID` attaches a kept one");
            return;
        }
        let current = self.current_box().map(|b| b.inner.id());
        for lease in live {
            let id = lease.inner.id();
            let kept = lease.keep || self.base.keep_all;
            println!(
                "{}{id}  {}{}",
                if current.as_deref() == Some(id.as_str()) {
                    "box = "
                } else {
                    "      "
                },
                lease.inner.workdir(),
                if kept { "  (kept after the REPL)" } else { "" }
            );
        }
    }

    pub(crate) async fn take_lease(&mut self, id: Option<&str>) {
        let call = self.begin();
        let result = match id {
            None => match lease::resolve(&call.ctx.config, None, None, ":lease take") {
                Ok(options) => bindings::warmup(&call.ctx, options, "").await,
                Err(err) => Err(err),
            },
            Some(id) => bindings::attach(&call.ctx, id).await,
        };
        self.end(call);
        match result {
            Ok(lease) => {
                println!(
                    "box = lease {} ({})",
                    lease.inner.id(),
                    lease.inner.workdir()
                );
                self.set_box(Some(lease));
            }
            Err(err) => show_error(&err),
        }
    }

    pub(crate) async fn release_box(&mut self) {
        let Some(lease) = self.current_box() else {
            eprintln!("leasebox: no lease attached as `box`");
            return;
        };
        match lease.release_now().await {
            Ok(()) => {
                println!("released lease {}", lease.inner.id());
                let next = self.base.live_leases().into_iter().next();
                self.set_box(next);
            }
            Err(err) => show_error(&err),
        }
    }

    pub(crate) async fn keep_box(&mut self) {
        let Some(lease) = self.current_box() else {
            eprintln!("leasebox: no lease attached as `box`");
            return;
        };
        match self.base.keep_lease(&lease).await {
            Ok(()) => {
                let id = lease.inner.id();
                println!("lease {id} is kept after the REPL: reuse it with `--lease {id}`");
            }
            Err(err) => show_error(&err),
        }
    }
}

/// Whether a chunk's last top-level statement is `return …`: appending a statement after it
/// is then a syntax error (a `return` ends its block), while after anything else it is not.
fn ends_with_return(lua: &Lua, text: &str) -> bool {
    lua.load(format!("{text}\n;do end"))
        .set_name("=probe")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .is_err()
}

/// Print the values an entry returned, as the stock Lua prompt does (tab-separated).
fn print_values(values: &MultiValue) {
    if values.is_empty() {
        return;
    }
    let text: Vec<String> = values.iter().map(pretty::result).collect();
    println!("{}", text.join("\t"));
}

/// Show an error at the prompt: its message with the recipe line; the session goes on.
pub(crate) fn show_error(err: &HostError) {
    let text = crate::error::render_chain(err);
    let text = trim_prompt_traceback(&text);
    match err {
        HostError::Failed { code, .. } => {
            eprintln!("failed (exit code {code}): {text}");
        }
        _ if err.kind() == ErrorKind::Cancelled => eprintln!("cancelled"),
        _ => eprintln!("error: {text}"),
    }
}

/// Drop a traceback that only shows the prompt's own entry (`repl:1: in main chunk`).
fn trim_prompt_traceback(text: &str) -> String {
    let Some((message, trace)) = text.split_once("\nstack traceback:") else {
        return text.to_owned();
    };
    let only_prompt = trace
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .all(|l| {
            l.starts_with("repl:")
                || l.starts_with("stdin:")
                || l.starts_with("[C]")
                || l == "(...tail calls...)"
        });
    if only_prompt {
        message.to_owned()
    } else {
        text.to_owned()
    }
}
