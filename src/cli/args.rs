//! The command line, as clap sees it. Every config key also gets its flag here
//! (`--nomad-image`, `--lease-ttl`, …), built from the config key table, so the flags and the
//! table never drift apart. Those flags are global and long-help only: `-h` shows a command's
//! own options, `--help` adds the config flags under their own heading.

use clap::{ArgAction, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use super::completion;
use crate::config::KEYS;

/// `leasebox --version`: the version and the git revision the binary was built from
/// (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("LEASEBOX_GIT_REVISION"),
    ")"
);

/// The heading the config flags appear under in `--help`.
pub const CONFIG_HEADING: &str = "Config flags (each also a config key and a LEASEBOX_* variable)";

const SHORT_HELP_FOOTER: &str = "`--help` also shows the config flags (`--nomad-image`, `--lease-ttl`, …); \
     `leasebox config --keys` lists every key.";
pub(crate) const LONG_HELP_FOOTER: &str =
    "`leasebox config --keys` lists every config key with its default, variable and trust class.";

/// Run recipes on a leased box: a HashiCorp Nomad allocation, or a scratch directory here.
#[derive(Debug, Parser)]
#[command(name = "leasebox", version = VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Commands,
    /// Say less: no progress, no `==>` lines, no summary (errors, warnings and the commands'
    /// own output only).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: a line for each thing the lease, sync and fetch report, terminal or not.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a recipe, or one command with `-- CMD…`: lease, sync, run, fetch, release.
    Run(RunArgs),
    /// Run a recipe (or `-- CMD…`), then rerun it on every change of the sync set, on a warm box.
    ///
    /// Enter reruns now, `q` quits, Ctrl-C stops and releases the leases (unless `--keep`).
    Watch(WatchArgs),
    /// An interactive terminal in a box: a kept lease (`--lease ID`), or a fresh one, synced and
    /// released when the shell exits (unless `--keep`).
    Shell(ShellArgs),
    /// A Lua prompt with the recipe API loaded, a lease attached and a recipe loaded; with stdin
    /// not a terminal, runs the whole input as one chunk.
    Repl(ReplArgs),
    /// Lease a box and keep it; prints its id for `run --lease ID`.
    Warmup(WarmupArgs),
    /// Sync the repository to a kept lease: only what changed; what the box created stays.
    Sync(SyncArgs),
    /// The leases you own.
    List(JsonArgs),
    /// One lease: its claim and its live state.
    Status(IdArgs),
    /// Release a lease and drop its claim.
    Stop(IdArgs),
    /// Release expired, abandoned and orphaned leases you own.
    Cleanup(CleanupArgs),
    /// Read-only checks of the backend: address, auth, region, namespace, driver, exec.
    Doctor(JsonArgs),
    /// The resolved config.
    Config(ConfigArgs),
    /// Let a repository's `.leasebox.toml` set execution boundaries (namespace, driver, …),
    /// pinned to the file's hash: any change lapses the trust.
    Trust(TrustArgs),
    /// The backends and what each supports.
    Backends(JsonArgs),
    /// A timeline picture of a run from its `--timing-json` file (HTML or SVG).
    Report(ReportArgs),
    /// Print a shell's completion script (recipe names and lease ids complete too).
    Completions(CompletionsArgs),
    /// Write the man pages: `leasebox.1` to stdout, or every command's page to a directory.
    Man(ManArgs),
}

impl Commands {
    /// Whether the command was asked for `--json` (then a failure is one JSON object on
    /// stdout too).
    #[must_use]
    pub fn json(&self) -> bool {
        match self {
            Commands::Warmup(a) => a.json,
            Commands::Sync(a) => a.json,
            Commands::List(a) | Commands::Doctor(a) | Commands::Backends(a) => a.json,
            Commands::Status(a) | Commands::Stop(a) => a.json,
            Commands::Cleanup(a) => a.json,
            Commands::Config(a) => a.json,
            Commands::Trust(a) => a.json,
            Commands::Run(_)
            | Commands::Watch(_)
            | Commands::Shell(_)
            | Commands::Repl(_)
            | Commands::Report(_)
            | Commands::Completions(_)
            | Commands::Man(_) => false,
        }
    }
}

/// `leasebox run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A recipe: a path, or a name under `.leasebox/recipes/` or `recipes/`.
    #[arg(add = ArgValueCompleter::new(completion::recipes))]
    pub recipe: Option<String>,
    /// The command to run (after `--`), or the recipe's arguments.
    #[arg(last = true, value_name = "ARGS")]
    pub rest: Vec<String>,
    /// Keep the lease after the run (reuse it with `--lease ID`).
    #[arg(long)]
    pub keep: bool,
    /// Keep the lease only when the run fails, to look around in it.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Reuse a kept lease instead of creating one.
    #[arg(long, value_name = "ID", add = ArgValueCompleter::new(completion::lease_ids))]
    pub lease: Option<String>,
    /// Do not sync the repository before running.
    #[arg(long)]
    pub no_sync: bool,
    /// Replace the whole workdir on every sync (what the box created goes too), instead of
    /// sending only what changed and leaving the rest.
    #[arg(long, conflicts_with = "no_sync")]
    pub sync_clean: bool,
    /// Run the command on N boxes at once (one shard group), each told its index in
    /// `LEASEBOX_SHARD_INDEX`/`LEASEBOX_SHARD_COUNT`; the first failing shard's code is the
    /// verdict.
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// With `--shards`: stop the other shards as soon as one fails.
    #[arg(long)]
    pub fail_fast: bool,
    /// With `--shards`: at most one box a node (else the boxes are spread over the nodes).
    #[arg(long)]
    pub distinct_hosts: bool,
    /// Fetch this path of the workdir back under the current directory afterwards (also after
    /// a failure; with `--shards`, under `out/shard-K/`). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub fetch: Vec<String>,
    /// Stop the command after this long (`90s`, `20m`); the same as `--exec-timeout`.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Pass this variable of your environment to the box. Repeatable. Nothing else of your
    /// environment reaches the box.
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Write per-phase timings, the exit code and the error kind as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub timing_json: Option<std::path::PathBuf>,
    /// Write the run's events to this file as they happen, one JSON object a line (`-`: stdout,
    /// and the command's own stdout then goes to stderr). See `docs/events.md`.
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,
    /// After a failed step, open the REPL with the lease (`box`) and the failed step (`last`)
    /// loaded; `:retry` reruns it. The exit code is the last verdict. Ignored (with a notice)
    /// when stdin is not a terminal.
    #[arg(long)]
    pub repl_on_failure: bool,
}

/// `leasebox repl`.
#[derive(Debug, Args)]
pub struct ReplArgs {
    /// A recipe to load: a path, or a name under `.leasebox/recipes/` or `recipes/`. A
    /// `recipe{}` is loaded as `recipe`; nothing runs until `:run`.
    pub recipe: Option<String>,
    /// The recipe's arguments (`lb.args`).
    #[arg(last = true, value_name = "ARGS")]
    pub rest: Vec<String>,
    /// Attach this kept lease as `box` (ownership checked as for `run --lease`).
    #[arg(long, value_name = "ID")]
    pub lease: Option<String>,
    /// Keep the leases the REPL takes when it ends.
    #[arg(long)]
    pub keep: bool,
}

/// `leasebox shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The command to run on the terminal (after `--`); default: the box's `$SHELL`, else
    /// `/bin/sh`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// Open the shell in this kept lease instead of leasing a box.
    #[arg(long, value_name = "ID")]
    pub lease: Option<String>,
    /// Keep the lease after the shell exits (reuse it with `--lease ID`).
    #[arg(long)]
    pub keep: bool,
    /// Do not sync the repository first.
    #[arg(long)]
    pub no_sync: bool,
    /// Pass this variable of your environment to the shell. Repeatable. Nothing else of your
    /// environment reaches the box but `TERM`.
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<String>,
}

/// What `watch` does with a change that comes while a run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnBusyArg {
    /// Let the run finish, then rerun once.
    Queue,
    /// Stop the run (its command's whole process group) and start again.
    Restart,
}

/// `leasebox watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A recipe: a path, or a name under `.leasebox/recipes/` or `recipes/`.
    #[arg(add = ArgValueCompleter::new(completion::recipes))]
    pub recipe: Option<String>,
    /// The command to run (after `--`), or the recipe's arguments.
    #[arg(last = true, value_name = "ARGS")]
    pub rest: Vec<String>,
    /// Quiet time after the last change before a rerun (`100ms`, `1s`).
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    pub debounce: String,
    /// Notice changes by scanning at this interval instead of the system's file events (for
    /// network mounts and file systems without events).
    #[arg(long, value_name = "DURATION")]
    pub poll: Option<String>,
    /// What a change during a run does: queue one rerun (default) or restart the run. Wins
    /// over the recipe's `watch = { on_busy = … }`.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub on_busy: Option<OnBusyArg>,
    /// Keep the leases when the watch ends (reuse them with `--lease ID`).
    #[arg(long)]
    pub keep: bool,
    /// Reuse a kept lease instead of creating one.
    #[arg(long, value_name = "ID", add = ArgValueCompleter::new(completion::lease_ids))]
    pub lease: Option<String>,
    /// Stop a command after this long (`90s`, `20m`); the same as `--exec-timeout`.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Pass this variable of your environment to the box (with `-- CMD`). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Write each run's timings as JSON: to FILE (rewritten by every rerun), or into DIR/
    /// (a trailing slash, or an existing directory: one file per run).
    #[arg(long, value_name = "FILE|DIR/")]
    pub timing_json: Option<std::path::PathBuf>,
    /// Write every run's events to this file as they happen, one JSON object a line (`-`:
    /// stdout, and the commands' own stdout then goes to stderr); each rerun is a run of its
    /// own, and `watch_end` closes the stream. See `docs/events.md`.
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,
    /// When a run fails, open the REPL on the warm box with the failed step (`last`) loaded;
    /// `:retry` reruns it, and leaving the REPL (Ctrl-D) goes back to watching. Changes made
    /// meanwhile queue one rerun. Ignored (with a notice) when stdin is not a terminal.
    #[arg(long)]
    pub repl_on_failure: bool,
}

/// `leasebox sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The kept lease (default: the one kept lease of this repository).
    #[arg(long, value_name = "ID", add = ArgValueCompleter::new(completion::lease_ids))]
    pub lease: Option<String>,
    /// Only say what would be sent and deleted (counts, bytes, the first paths).
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the whole workdir (what the box created goes too).
    #[arg(long, conflicts_with = "dry_run")]
    pub clean: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leasebox warmup`.
#[derive(Debug, Args)]
pub struct WarmupArgs {
    /// Print the lease as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A command whose only option is `--json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A command about one lease.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The lease id (`lbx_…`, as `leasebox list` shows).
    #[arg(add = ArgValueCompleter::new(completion::lease_ids))]
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leasebox cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Say what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also release orphans (boxes with your owner record but no claim here) that have not
    /// expired yet.
    #[arg(long)]
    pub orphans: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leasebox config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Show where each value came from.
    #[arg(long)]
    pub explain: bool,
    /// List every key leasebox knows: default, environment variable, flag and trust class
    /// (nothing is resolved, so this works whatever the config holds).
    #[arg(long, conflicts_with = "explain")]
    pub keys: bool,
    /// Print JSON (every key with its value, source and trust class; with `--keys`, every key's
    /// definition).
    #[arg(long)]
    pub json: bool,
}

/// `leasebox report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The timing file a run wrote with `--timing-json FILE`.
    #[arg(value_name = "TIMING.json")]
    pub timing: std::path::PathBuf,
    /// Where to write the picture: a `.html` file (one self-contained page) or a `.svg` file;
    /// `-` for stdout. Default: the timing file's name with `.html`.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// The picture's format, when the output's extension does not say (or to override it).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
}

/// What `leasebox report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML page (the picture is inline SVG; no script).
    Html,
    /// A standalone SVG image.
    Svg,
}

/// The shells `leasebox completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU Bash (4.4 or later for every feature).
    Bash,
    /// Z shell.
    Zsh,
    /// The friendly interactive shell.
    Fish,
}

/// `leasebox completions`.
#[derive(Debug, Args)]
#[command(after_long_help = completion::HOW_TO_INSTALL)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: Shell,
}

/// `leasebox man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `leasebox.1` and one page per command (`leasebox-run.1`, …) into this directory
    /// (created if missing) instead of `leasebox.1` to stdout.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

/// `leasebox trust`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The repository (default: the repository of the current directory).
    #[arg(value_name = "PATH")]
    pub path: Option<std::path::PathBuf>,
    /// List the trusted repositories and whether each file still has the trusted hash.
    #[arg(long, conflicts_with_all = ["revoke", "path"])]
    pub list: bool,
    /// Withdraw the trust of the repository.
    #[arg(long)]
    pub revoke: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The parsed command line: the subcommand, and the config flags as `(dotted key, value)`.
#[derive(Debug)]
pub struct Parsed {
    /// The subcommand and its arguments.
    pub cli: Cli,
    /// Config flags in command-line order.
    pub config_flags: Vec<(String, String)>,
}

/// The whole command line: the derived commands plus one global, long-help-only flag per
/// config key. Also what completions and the man pages are generated from.
#[must_use]
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for key in KEYS {
        cmd = cmd.arg(
            clap::Arg::new(key.name)
                .long(key.flag)
                .value_name(key.value_name())
                .help(key.help)
                .global(true)
                .hide_short_help(true)
                .action(ArgAction::Append)
                .help_heading(CONFIG_HEADING),
        );
    }
    // `-h` hides the config flags; say so where they would have been.
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sub| {
            let long = sub.get_after_long_help().is_none();
            let sub = sub.after_help(SHORT_HELP_FOOTER);
            if long {
                sub.after_long_help(LONG_HELP_FOOTER)
            } else {
                sub
            }
        });
    }
    cmd.after_help(SHORT_HELP_FOOTER)
        .after_long_help(LONG_HELP_FOOTER)
}

/// Parse `args` (the first being the program name).
///
/// # Errors
/// clap's error for a bad command line (also `--help` and `--version`, which clap prints).
pub fn parse<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let mut config_flags = Vec::new();
    let sub = matches.subcommand().map(|(_, m)| m);
    for key in KEYS {
        for m in [Some(&matches), sub].into_iter().flatten() {
            if let Ok(Some(values)) = m.try_get_many::<String>(key.name) {
                for v in values {
                    config_flags.push((key.name.to_owned(), v.clone()));
                }
                break;
            }
        }
    }
    Ok(Parsed { cli, config_flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn config_flags_are_collected_after_the_subcommand() {
        let parsed = parse([
            "leasebox",
            "run",
            "--backend",
            "local",
            "--lease-ttl",
            "2h",
            "--",
            "echo",
            "hi",
        ])
        .unwrap();
        assert!(
            parsed
                .config_flags
                .contains(&("backend".into(), "local".into()))
        );
        assert!(
            parsed
                .config_flags
                .contains(&("lease.ttl".into(), "2h".into()))
        );
        let Commands::Run(run) = parsed.cli.command else {
            panic!("not run")
        };
        assert_eq!(run.rest, ["echo", "hi"]);
    }
}
