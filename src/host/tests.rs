//! Behaviour tests of the recipe host over the scratch-directory engine double: recipe files in
//! a temporary repository, run to the end, their reports checked.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::scratch::ScratchProvider;
use super::*;
use crate::error::{ErrorKind, HasKind};

struct Repo {
    dir: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("recipes")).unwrap();
        Repo {
            dir,
            out: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, path: &str, text: &str) -> &Repo {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    async fn run_with(
        &self,
        recipe: &str,
        provider: Arc<ScratchProvider>,
        args: &[&str],
    ) -> RecipeReport {
        self.run_config(recipe, provider, args, config(&[])).await
    }

    async fn run_config(
        &self,
        recipe: &str,
        provider: Arc<ScratchProvider>,
        args: &[&str],
        config: crate::config::Config,
    ) -> RecipeReport {
        let run = RecipeRun {
            path: self.dir.path().join(recipe),
            repo_root: self.dir.path().to_path_buf(),
            fetch_root: self.out.path().to_path_buf(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            sandbox: SandboxOptions::default(),
            keep: false,
            sync_clean: false,
            config,
            changed: None,
            command: None,
            on_busy_seen: None,
            events: crate::events::Events::default(),
            repl_on_failure: None,
        };
        run_recipe(&run, provider, &CancellationToken::new()).await
    }

    async fn run(&self, recipe: &str) -> RecipeReport {
        self.run_with(recipe, Arc::default(), &[]).await
    }
}

/// A config with nothing set but these flags (`(dotted key, value)`): no user config, no
/// environment, no repository file.
fn config(flags: &[(&str, &str)]) -> crate::config::Config {
    crate::config::Config::load(&crate::config::ConfigInputs {
        flags: flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..crate::config::ConfigInputs::default()
    })
    .unwrap()
}

fn message(report: &RecipeReport) -> String {
    report
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_declarative_recipe_runs_steps_and_fetches_artifacts() {
    let repo = Repo::new();
    repo.file("data.txt", "hello from the repo\n").file(
        "recipes/r.lua",
        r#"
        return require("leasebox").recipe {
          lease = { image = "alpine", cpu = 500 },
          steps = {
            { "read", "cat data.txt > out.txt" },
            { "argv", { "sh", "-c", "echo $GREETING >> out.txt" }, env = { GREETING = "hi" } },
            { parallel = { { "a", "echo a > a.txt" }, { "b", "echo b > b.txt" } } },
            { "check", function(box, ctx)
                local r = box:exec { "cat", "out.txt", capture = true }
                assert(r.stdout == "hello from the repo\nhi\n", r.stdout)
                assert(ctx.results.read.code == 0 and ctx.step == "check")
              end },
          },
          artifacts = { "out.txt", "a.txt" },
        }
        "#,
    );
    let provider = Arc::new(ScratchProvider::default());
    let report = repo
        .run_with("recipes/r.lua", Arc::clone(&provider), &[])
        .await;
    assert!(report.error.is_none(), "{}", message(&report));
    assert_eq!(report.steps.len(), 5);
    assert!(report.steps.iter().all(|s| s.status == StepStatus::Passed));
    assert_eq!(
        std::fs::read_to_string(repo.out.path().join("out.txt")).unwrap(),
        "hello from the repo\nhi\n"
    );
    assert!(repo.out.path().join("a.txt").is_file());
    assert_eq!(provider.released.load(Ordering::SeqCst), 1);
    assert_eq!(provider.requests.lock().unwrap()[0].image, "alpine");
    let phases: Vec<&str> = report.phases.iter().map(|(n, _)| n.as_str()).collect();
    for phase in ["lease", "sync", "step:read", "fetch", "release", "total"] {
        assert!(phases.contains(&phase), "{phases:?}");
    }
}

#[tokio::test]
async fn a_failing_step_stops_later_steps_and_passes_its_code() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        r#"
        return require("leasebox").recipe {
          steps = { { "one", "exit 3" }, { "two", "true" } },
          artifacts = { "missing.txt" },
        }
        "#,
    );
    let report = repo.run("recipes/r.lua").await;
    assert_eq!(report.exit_code(), 3, "{}", message(&report));
    assert_eq!(report.steps[1].status, StepStatus::Skipped);
}

#[tokio::test]
async fn continue_on_failure_runs_later_steps_and_still_fails() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        r#"
        return require("leasebox").recipe {
          steps = { { "one", "exit 4", continue_on_failure = true }, { "two", "exit 5" } },
        }
        "#,
    );
    let report = repo.run("recipes/r.lua").await;
    assert_eq!(report.exit_code(), 4);
    assert_eq!(report.steps[1].status, StepStatus::Failed { code: 5 });
}

#[tokio::test]
async fn in_a_parallel_group_siblings_finish_and_the_first_declared_failure_decides() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        r#"
        return require("leasebox").recipe {
          steps = {
            { parallel = {
              { "slow", "sleep 0.3; exit 6" },
              { "fast", "exit 7" },
              { "ok", "sleep 0.2; touch ok.txt" },
            } },
            { "after", "true" },
          },
          artifacts = { "ok.txt" },
        }
        "#,
    );
    let report = repo.run("recipes/r.lua").await;
    assert_eq!(report.exit_code(), 6, "{}", message(&report));
    assert_eq!(
        report.steps.iter().find(|s| s.name == "ok").unwrap().status,
        StepStatus::Passed
    );
    assert_eq!(report.steps.last().unwrap().status, StepStatus::Skipped);
    assert!(
        repo.out.path().join("ok.txt").is_file(),
        "artifacts are fetched after a failure"
    );
}

#[tokio::test]
async fn an_error_in_a_step_function_names_the_step_and_the_line() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        "return require('leasebox').recipe {\n  steps = {\n    { 'explode', function(box, ctx)\n      local x = nil\n      return x.field\n    end },\n  },\n}\n",
    );
    let report = repo.run("recipes/r.lua").await;
    assert_eq!(report.exit_code(), 65);
    let text = message(&report);
    assert!(text.contains("step `explode`"), "{text}");
    assert!(text.contains("recipes/r.lua:5:"), "{text}");
}

#[tokio::test]
async fn a_transport_failure_keeps_its_kind_through_lua() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        r#"
        local lb = require("leasebox")
        local box = lb.warmup {}
        local ok, err = pcall(function() return box:exec { "true" } end)
        assert(not ok)
        error(err)
        "#,
    );
    let provider = Arc::new(ScratchProvider {
        exec_error: Some(ErrorKind::TransportLost),
        ..ScratchProvider::default()
    });
    let report = repo
        .run_with("recipes/r.lua", Arc::clone(&provider), &[])
        .await;
    let err = report.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::TransportLost, "{err}");
    assert_eq!(report.exit_code(), 75);
    assert!(err.to_string().contains("recipes/r.lua:4:"), "{err}");
    assert_eq!(
        provider.released.load(Ordering::SeqCst),
        1,
        "released after the error"
    );
}

#[tokio::test]
async fn an_imperative_script_uses_the_primitives() {
    let repo = Repo::new();
    repo.file(
        "lib/util.lua",
        "return { twice = function(x) return x * 2 end }",
    )
    .file(
        "recipes/r.lua",
        r#"
            local lb = require("leasebox")
            local util = require("lib.util")
            assert(util == require("lib.util"), "modules are cached")
            assert(lb.args[1] == "first" and lb.args.mode == "fast")
            local box = lb.warmup { image = "alpine", timeout = "1m" }
            box:sync { "." }
            local a, b = lb.parallel {
              function() return box:exec("echo one").code end,
              function() return util.twice(21) end,
            }
            assert(a == 0 and b == 42)
            local r = box:exec { "sh", "-c", "echo out; exit 2", capture = true }
            assert(r.code == 2 and not r.ok and r.stdout == "out\n")
            box:exec("echo artifact > art.txt")
            box:fetch("art.txt", "got")
            lb.log("done", 1, true)
            "#,
    );
    let report = repo
        .run_with("recipes/r.lua", Arc::default(), &["first", "mode=fast"])
        .await;
    assert!(report.error.is_none(), "{}", message(&report));
    assert!(repo.out.path().join("got/art.txt").is_file());
}

#[tokio::test]
async fn parallel_reraises_the_first_error_after_all_finish() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        r#"
        local lb = require("leasebox")
        local box = lb.warmup {}
        lb.parallel {
          function() box:exec("sleep 0.2; touch done.txt") end,
          function() error("first") end,
          function() error("second") end,
        }
        "#,
    );
    let provider = Arc::new(ScratchProvider::default());
    let report = repo
        .run_with("recipes/r.lua", Arc::clone(&provider), &[])
        .await;
    let text = message(&report);
    assert!(text.contains("first") && !text.contains("second"), "{text}");
    let workdir = provider.dirs.lock().unwrap()[0].path().to_path_buf();
    assert!(workdir.join("done.txt").is_file(), "the sibling finished");
}

#[tokio::test]
async fn fail_sets_the_exit_code() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        "require('leasebox').fail('tests failed', 9)",
    )
    .file("recipes/d.lua", "require('leasebox').fail('no code')");
    let report = repo.run("recipes/r.lua").await;
    assert_eq!(report.exit_code(), 9);
    assert_eq!(message(&report), "tests failed");
    assert_eq!(repo.run("recipes/d.lua").await.exit_code(), 1);
}

#[tokio::test]
async fn recipe_descriptions_are_validated_at_the_recipe_line() {
    let repo = Repo::new();
    for (body, expected) in [
        ("{ steps = {}, stepz = 1 }", "unknown key `stepz`"),
        ("{ steps = { 42 } }", "steps[1] must be a table"),
        (
            "{ steps = {}, lease = { 'positional' } }",
            "lease: unexpected positional value",
        ),
        (
            "{ steps = {}, lease = { image = print } }",
            "`image` cannot be a function",
        ),
        (
            "{ steps = { { 'a', 'true', timeout = 'soon' } } }",
            "not a duration",
        ),
        (
            "{ steps = { { 'a', 'true' }, { 'a', 'false' } } }",
            "two steps are named `a`",
        ),
        (
            "{ steps = { { parallel = { { parallel = {} } } } } }",
            "do not nest",
        ),
    ] {
        repo.file(
            "recipes/bad.lua",
            &format!("local lb = require('leasebox')\n\nreturn lb.recipe {body}\n"),
        );
        let report = repo.run("recipes/bad.lua").await;
        let text = message(&report);
        assert_eq!(report.exit_code(), 65, "{body}: {text}");
        assert!(
            text.starts_with("recipes/bad.lua:3: recipe{}:"),
            "{body}: {text}"
        );
        assert!(text.contains(expected), "{body}: {text}");
    }
}

#[tokio::test]
async fn a_recipe_returning_something_else_says_what_to_return() {
    let repo = Repo::new();
    repo.file("recipes/r.lua", "return 42");
    let text = message(&repo.run("recipes/r.lua").await);
    assert!(
        text.contains("must return `require(\"leasebox\").recipe{…}`"),
        "{text}"
    );
    assert!(text.contains("the number 42"), "{text}");
}

#[tokio::test]
async fn require_refuses_paths_and_lists_where_it_looked() {
    let repo = Repo::new();
    repo.file("recipes/out.lua", "require('../../etc/passwd')")
        .file("recipes/missing.lua", "require('lib.nothing')");
    let text = message(&repo.run("recipes/out.lua").await);
    assert!(text.contains("nothing outside the repository"), "{text}");
    assert!(text.starts_with("recipes/out.lua:1:"), "{text}");
    let text = message(&repo.run("recipes/missing.lua").await);
    assert!(text.contains("`lib/nothing.lua`"), "{text}");
}

/// Run `body` as `recipes/r.lua` over the scratch engine with a config of these flags.
async fn run_lease(body: &str, flags: &[(&str, &str)]) -> (RecipeReport, Arc<ScratchProvider>) {
    let repo = Repo::new();
    repo.file("recipes/r.lua", body);
    let provider = Arc::new(ScratchProvider::default());
    let report = repo
        .run_config("recipes/r.lua", Arc::clone(&provider), &[], config(flags))
        .await;
    (report, provider)
}

#[tokio::test]
async fn lease_options_are_refused_by_the_config_at_the_recipe_line() {
    // (recipe, kind, start of the message, more it must say)
    let warmup = "local lb = require('leasebox')\n\nlb.warmup { image = 'alpine', ";
    let recipe =
        "local lb = require('leasebox')\n\nreturn lb.recipe {\n  steps = {},\n  lease = { ";
    for (body, kind, start, more) in [
        (
            format!("{warmup}driver = 'raw_exec' }}"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: warmup: `nomad.driver` in recipes/r.lua:3 is an execution boundary: \
             a recipe's `lease{}` can never set it",
            vec!["`.leasebox.toml`", "`leasebox trust`"],
        ),
        (
            format!("{recipe}namespace = 'prod' }},\n}}\n"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: recipe{}: lease: `nomad.namespace` in recipes/r.lua:3 is an \
             execution boundary",
            vec!["`.leasebox.toml`", "`leasebox trust`"],
        ),
        (
            format!("{warmup}address = 'http://evil:4646' }}"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: warmup: `nomad.address` in recipes/r.lua:3 is a user-only setting",
            vec!["remove it from the recipe", "LEASEBOX_NOMAD_ADDR"],
        ),
        (
            format!("{recipe}token_env = 'AWS_SECRET' }},\n}}\n"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: recipe{}: lease: `nomad.token_env` in recipes/r.lua:3 is a user-only \
             setting",
            vec!["LEASEBOX_NOMAD_TOKEN_ENV", "user config"],
        ),
        (
            format!("{warmup}ttl = '9h' }}"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: warmup: `lease.ttl` in recipes/r.lua:3 is an execution boundary",
            vec![],
        ),
        (
            format!("{warmup}cpu = 9000 }}"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: warmup: `nomad.cpu = 9000` from recipe recipes/r.lua:3 is above \
             your limit `max_cpu = 8000` (set by default)",
            vec![],
        ),
        (
            format!("{recipe}memory_mb = 4096 }},\n}}\n"),
            ErrorKind::TrustRefused,
            "recipes/r.lua:3: recipe{}: lease: `nomad.memory_mb = 4096` from recipe \
             recipes/r.lua:3 is above your limit `max_memory_mb = 2000` (set by flag \
             --max-memory-mb)",
            vec![],
        ),
        (
            format!("{warmup}imgae = 'x' }}"),
            ErrorKind::ConfigError,
            "recipes/r.lua:3: warmup: unknown `lease{}` option `imgae` in recipes/r.lua:3; did \
             you mean `image`?",
            vec![],
        ),
        (
            format!("{warmup}cpu = 4096 / 2 }}"),
            ErrorKind::ConfigError,
            "recipes/r.lua:3: warmup: invalid `lease{}` option `cpu` in recipes/r.lua:3: it is a \
             float",
            vec![],
        ),
    ] {
        let (report, provider) = run_lease(&body, &[("max_memory_mb", "2000")]).await;
        let text = message(&report);
        let err = report.error.as_ref().expect(&body);
        assert_eq!(err.kind(), kind, "{body}: {text}");
        assert_eq!(report.exit_code(), 78, "{body}: {text}");
        assert!(text.starts_with(start), "{body}:\n{text}\n{start}");
        for m in more {
            assert!(text.contains(m), "{body}: {text}: {m}");
        }
        assert_eq!(provider.acquired.load(Ordering::SeqCst), 0, "{body}");
    }
}

#[tokio::test]
async fn the_lease_is_the_config_resolved_with_the_recipe_and_flags_win() {
    let body = "local lb = require('leasebox')\n\
                local a = lb.warmup { image = 'rust:1.88', cpu = 2000, memory_mb = 4096, \
                exclude = { 'dist/' }, timeout = 90 }\n\
                local b = lb.warmup()\n\
                local c = lb.warmup { disk_mb = 4096, exec_timeout = '2m', keep = true }\n";
    let (report, provider) = run_lease(body, &[]).await;
    assert!(report.error.is_none(), "{}", message(&report));
    let requests = provider.requests.lock().unwrap().clone();
    let a = &requests[0];
    assert_eq!(
        (a.image.as_str(), a.cpu, a.memory_mb, a.disk_mb),
        ("rust:1.88", 2000, 4096, 1024)
    );
    assert_eq!(
        a.sync_exclude,
        ["dist/"],
        "a recipe's list replaces the config's"
    );
    assert_eq!(a.exec_timeout, Some(Duration::from_secs(90)));
    assert!(!a.exec_timeout_forced && !a.keep);
    // Each lease starts again from the config: the first one's options do not carry over.
    let b = &requests[1];
    assert_eq!((b.image.as_str(), b.cpu), ("ubuntu:24.04", 1000));
    assert!(
        b.sync_exclude.contains(&".git/".to_owned()),
        "{:?}",
        b.sync_exclude
    );
    assert_eq!(b.exec_timeout, None);
    let c = &requests[2];
    assert_eq!(c.disk_mb, 4096);
    assert_eq!(c.exec_timeout, Some(Duration::from_secs(120)));
    assert!(c.keep);
    assert_eq!(
        provider.released.load(Ordering::SeqCst),
        2,
        "the kept one stays"
    );

    // Flags beat the recipe, and a flag's `exec_timeout` bounds every exec.
    let (report, provider) = run_lease(
        body,
        &[
            ("nomad.cpu", "500"),
            ("nomad.image", "flag:1"),
            ("exec_timeout", "5m"),
        ],
    )
    .await;
    assert!(report.error.is_none(), "{}", message(&report));
    let a = provider.requests.lock().unwrap()[0].clone();
    assert_eq!(
        (a.image.as_str(), a.cpu, a.memory_mb),
        ("flag:1", 500, 4096)
    );
    assert_eq!(a.exec_timeout, Some(Duration::from_secs(300)));
    assert!(a.exec_timeout_forced);
    // A flag's cpu is not the recipe's to exceed: the limit holds the recipe only.
    let (report, _) = run_lease(
        "require('leasebox').warmup { cpu = 9000 }",
        &[("nomad.cpu", "500")],
    )
    .await;
    assert!(report.error.is_none(), "{}", message(&report));
}

#[tokio::test]
async fn a_flag_exec_timeout_bounds_an_exec_with_its_own_timeout() {
    let body = "local box = require('leasebox').warmup { timeout = '1m' }\n\
                box:exec { 'sleep', '5', timeout = '1m' }\n";
    let (report, _) = run_lease(body, &[("exec_timeout", "1s")]).await;
    let err = report.error.as_ref().expect("timed out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // Without the flag the lease's timeout is only a default: the exec's own wins.
    let body = "local box = require('leasebox').warmup { timeout = 1 }\n\
                box:exec { 'sleep', '2', timeout = '1m' }\n\
                local ok, e = pcall(function() box:exec { 'sleep', '5' } end)\n\
                assert(not ok)\n";
    let (report, _) = run_lease(body, &[]).await;
    assert!(report.error.is_none(), "{}", message(&report));
}

#[tokio::test]
async fn kept_leases_are_not_released() {
    let repo = Repo::new();
    repo.file("recipes/r.lua", "local b = require('leasebox').warmup { keep = true }\nlocal c = require('leasebox').warmup {}\nc:cleanup()\nc:cleanup()");
    let provider = Arc::new(ScratchProvider::default());
    let report = repo
        .run_with("recipes/r.lua", Arc::clone(&provider), &[])
        .await;
    assert!(report.error.is_none(), "{}", message(&report));
    assert_eq!(provider.acquired.load(Ordering::SeqCst), 2);
    assert_eq!(provider.released.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_syntax_error_points_at_the_line() {
    let repo = Repo::new();
    repo.file("recipes/r.lua", "local x = 1\nlocal = 2\n");
    let report = repo.run("recipes/r.lua").await;
    assert_eq!(report.exit_code(), 65);
    assert!(
        message(&report).starts_with("recipes/r.lua:2:"),
        "{}",
        message(&report)
    );
}

/// The real provider over the real engine: [`RecipeLeases`] over the lease lifecycle on the
/// local backend (what the CLI wires), with its cache and its claims in temporary directories.
mod real {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use crate::host::RecipeLeases;
    use crate::leases::{Leases, Timing};
    use crate::ownership::StateDir;

    /// The provider, and the state dir holding its claims (keep it alive for the run).
    pub(super) fn provider(cache: &Path, repo: &Path) -> (Arc<RecipeLeases>, tempfile::TempDir) {
        let mut env = BTreeMap::new();
        for name in ["PATH", "HOME"] {
            env.insert(name.to_owned(), std::env::var(name).unwrap_or_default());
        }
        env.insert("XDG_CACHE_HOME".to_owned(), cache.display().to_string());
        let config = super::config(&[("backend", "local")]);
        let backend = crate::leases::open(&config, &env).unwrap();
        let state = tempfile::tempdir().unwrap();
        let settings = config.settings();
        let leases = Leases::new(
            backend,
            &StateDir::at(state.path()),
            settings,
            repo.to_path_buf(),
            Arc::new(Timing::default()),
        )
        .unwrap();
        let provider = RecipeLeases::new(leases, settings, repo.to_path_buf(), None);
        (Arc::new(provider), state)
    }
}

#[tokio::test]
async fn a_recipe_runs_on_the_real_local_backend_and_session() {
    let repo = Repo::new();
    let cache = tempfile::tempdir().unwrap();
    repo.file("data.txt", "synced\n").file(
        "recipes/r.lua",
        r#"
        return require("leasebox").recipe {
          steps = {
            { "read", "cat data.txt > out.txt" },
            { parallel = { { "a", "echo a" }, { "b", { "sh", "-c", "echo b >&2" } } } },
            { "fn", function(box)
                local r = box:exec { "cat", "out.txt", capture = true }
                assert(r.stdout == "synced\n", r.stdout)
              end },
          },
          artifacts = { "out.txt" },
        }
        "#,
    );
    let (provider, _state) = real::provider(cache.path(), repo.dir.path());
    let run = RecipeRun {
        path: repo.dir.path().join("recipes/r.lua"),
        repo_root: repo.dir.path().to_path_buf(),
        fetch_root: repo.out.path().to_path_buf(),
        args: Vec::new(),
        sandbox: SandboxOptions::default(),
        keep: false,
        sync_clean: false,
        config: config(&[]),
        changed: None,
        command: None,
        on_busy_seen: None,
        events: crate::events::Events::default(),
        repl_on_failure: None,
    };
    let report = run_recipe(&run, provider, &CancellationToken::new()).await;
    assert!(report.error.is_none(), "{}", message(&report));
    assert_eq!(
        std::fs::read_to_string(repo.out.path().join("out.txt")).unwrap(),
        "synced\n"
    );
}

#[tokio::test]
#[ignore = "builds the example crate several times; the integration tests run every recipe through the binary"]
async fn every_example_recipe_runs_in_process() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for entry in list_recipes(root) {
        let (provider, _state) = real::provider(cache.path(), root);
        let run = RecipeRun {
            path: root.join(&entry.path),
            repo_root: root.to_path_buf(),
            fetch_root: out.path().to_path_buf(),
            args: Vec::new(),
            sandbox: SandboxOptions::default(),
            keep: false,
            sync_clean: false,
            config: config(&[]),
            changed: None,
            command: None,
            on_busy_seen: None,
            events: crate::events::Events::default(),
            repl_on_failure: None,
        };
        let report = run_recipe(&run, provider, &CancellationToken::new()).await;
        assert!(
            report.error.is_none(),
            "{}: {}",
            entry.name,
            message(&report)
        );
    }
}

#[tokio::test]
async fn cleanup_reports_what_the_provider_swept() {
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        "local lines = require('leasebox').cleanup { dry_run = true }\nassert(lines[1]:find('dry run: true'), lines[1])\nrequire('leasebox').cleanup { force = true }\n",
    );
    let text = message(&repo.run("recipes/r.lua").await);
    assert!(
        text.starts_with("recipes/r.lua:3: cleanup: unknown key `force`"),
        "{text}"
    );
}

#[tokio::test]
async fn circular_requires_are_named_and_bad_exec_options_are_recipe_errors() {
    let repo = Repo::new();
    repo.file("lib/a.lua", "return require('lib.b')")
        .file("lib/b.lua", "return require('lib.a')")
        .file("recipes/circle.lua", "require('lib.a')")
        .file(
            "recipes/env.lua",
            "local box = require('leasebox').warmup {}\nbox:exec { 'true', env = { ['BAD-NAME'] = 'x' } }",
        )
        .file(
            "recipes/opt.lua",
            "local box = require('leasebox').warmup {}\nbox:exec { 'true', timeot = '1m' }",
        );
    let text = message(&repo.run("recipes/circle.lua").await);
    assert!(
        text.contains("`lib.a` is still loading (a circular require)"),
        "{text}"
    );
    let report = repo.run("recipes/env.lua").await;
    assert_eq!(report.exit_code(), 65);
    assert!(
        message(&report).starts_with("recipes/env.lua:2: exec: `BAD-NAME`"),
        "{}",
        message(&report)
    );
    let text = message(&repo.run("recipes/opt.lua").await);
    assert!(text.contains("unknown option `timeot`"), "{text}");
}

#[tokio::test]
async fn parallel_functions_really_run_at_the_same_time() {
    // Each command waits for the other's file: they can only both finish if they overlap.
    let repo = Repo::new();
    repo.file(
        "recipes/r.lua",
        r#"
        local lb = require("leasebox")
        local box = lb.warmup { timeout = "20s" }
        local a, b = lb.parallel {
          function() return box:exec("touch a; while [ ! -f b ]; do sleep 0.01; done").code end,
          function() return box:exec("touch b; while [ ! -f a ]; do sleep 0.01; done").code end,
        }
        assert(a == 0 and b == 0)
        "#,
    );
    let report = repo.run("recipes/r.lua").await;
    assert!(report.error.is_none(), "{}", message(&report));
}

#[tokio::test]
async fn the_lease_method_list_of_the_repl_matches_the_userdata() {
    use super::bindings::{LEASE_FIELDS, LEASE_METHODS, LuaLease};
    let provider = ScratchProvider::default();
    let inner = provider
        .acquire(&LeaseOptions::default(), &CancellationToken::new())
        .await
        .unwrap();
    let lua = mlua::Lua::new();
    let ud = lua
        .create_userdata(LuaLease::new(inner, LeaseOptions::default()))
        .unwrap();
    lua.globals().set("box", ud).unwrap();
    for method in LEASE_METHODS {
        let kind: String = lua
            .load(format!("return type(box.{method})"))
            .eval()
            .unwrap();
        assert_eq!(kind, "function", "box:{method}");
    }
    for field in LEASE_FIELDS {
        let kind: String = lua
            .load(format!("return type(box.{field})"))
            .eval()
            .unwrap();
        // `node` is nil where the backend knows no node (this double).
        let expected = match *field {
            "index" => "number",
            "node" => "nil",
            _ => "string",
        };
        assert_eq!(kind, expected, "box.{field}");
    }
}
