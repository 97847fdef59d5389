//! The entry point: parse the arguments, build the runtime and the [`Context`], wire Ctrl-C,
//! run the command, and funnel its outcome into one exit code.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::{Commands, args, completion};
use super::{info, leases, manual, repl, report, run, shell, sync, trust, watch};
use crate::error::{ErrorKind, Failure};
use crate::host::Interrupts;

/// Run leasebox with this process's arguments and environment; returns the exit code.
#[must_use]
pub fn main() -> i32 {
    // A shell's completion script calling back (`LEASEBOX_COMPLETE` set): answer and stop.
    if completion::answer_if_asked() {
        return 0;
    }
    let parsed = match args::parse(std::env::args_os()) {
        Ok(p) => p,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("leasebox: error: cannot read the current directory: {e}");
            return crate::error::EXIT_INTERNAL;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leasebox: error: cannot start the async runtime: {e}");
            return crate::error::EXIT_INTERNAL;
        }
    };
    let output = crate::events::Output::detect(parsed.cli.quiet, parsed.cli.verbose, &env);
    let json = parsed.cli.command.json();
    let context = Context {
        output,
        env,
        cwd,
        config_flags: parsed.config_flags,
        cancel: CancellationToken::new(),
        active: Arc::default(),
        interrupts: Interrupts::default(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            context.watch_ctrl_c();
            dispatch(parsed.cli.command, &context).await
        })
    }))
    .unwrap_or_else(|_| {
        Err(Failure::new(
            ErrorKind::Internal,
            "internal error: leasebox panicked (a bug; the message above says where); `leasebox list` shows any lease left behind",
        ))
    });
    // Do not wait for stray tasks (a dropped exec's readers, say).
    runtime.shutdown_background();
    exit_code(outcome, json)
}

/// The one exit funnel: print the failure (if any) and return its code. Under `--json` the
/// failure is also one JSON object on stdout (`error_kind`, `message`, `exit_code`, and what
/// the command had to say: [`Failure::to_json`]); the text goes to stderr either way.
fn exit_code(outcome: Result<(), Failure>, json: bool) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(failure) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&failure.to_json()).unwrap_or_default()
                );
            }
            if !failure.message.is_empty() {
                eprintln!("leasebox: error: {}", failure.message);
            }
            failure.code
        }
    }
}

async fn dispatch(command: Commands, cx: &Context) -> Result<(), Failure> {
    match command {
        Commands::Run(a) => run::run(a, cx).await,
        Commands::Watch(a) => watch::watch(a, cx).await,
        Commands::Shell(a) => shell::shell(a, cx).await,
        Commands::Repl(a) => repl::repl(a, cx).await,
        Commands::Warmup(a) => leases::warmup(&a, cx).await,
        Commands::Sync(a) => sync::sync(&a, cx).await,
        Commands::List(a) => leases::list(&a, cx).await,
        Commands::Status(a) => leases::status(&a, cx).await,
        Commands::Stop(a) => leases::stop(&a, cx).await,
        Commands::Cleanup(a) => leases::cleanup(&a, cx).await,
        Commands::Doctor(a) => info::doctor(&a, cx).await,
        Commands::Config(a) => info::config(&a, cx),
        Commands::Trust(a) => trust::trust(&a, cx),
        Commands::Backends(a) => {
            info::backends(&a);
            Ok(())
        }
        Commands::Report(a) => report::report(&a, cx),
        Commands::Completions(a) => {
            completion::write_script(a.shell, &mut std::io::stdout().lock())
        }
        Commands::Man(a) => manual::man(&a),
    }
}
