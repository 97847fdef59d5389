//! `leasebox run RECIPE`: recipes run through the real binary on the local backend — the
//! examples in `recipes/`, and every kind of bad input a recipe can bring (syntax and runtime
//! errors, failing steps, sandbox escapes, `require` outside the repository, runaway loops and
//! allocations, token reads).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, describe};

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Local lease directories that still exist.
fn lease_dirs(s: &Scratch) -> Vec<String> {
    match std::fs::read_dir(s.cache().join("leasebox/leases")) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A committed repository holding one recipe at `recipes/<name>.lua`.
fn repo_with(name: &str, recipe: &str) -> Scratch {
    let s = Scratch::new();
    s.write(&format!("recipes/{name}.lua"), recipe)
        .write("data.txt", "synced data\n");
    s.commit();
    s
}

/// Run `recipes/<name>.lua` of a fresh repository holding only that recipe.
fn run_recipe(recipe: &str) -> Output {
    let s = repo_with("r", recipe);
    let out = s.run(&["run", "r"]);
    assert!(
        lease_dirs(&s).is_empty(),
        "lease left: {:?}",
        lease_dirs(&s)
    );
    out
}

fn assert_recipe_error(out: &Output, needles: &[&str]) {
    assert_eq!(code(out), 65, "{}", describe(out));
    let err = stderr(out);
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let out = run_recipe("local lb = require('leasebox')\n\nlocal x = = 1\n");
    assert_recipe_error(&out, &["recipes/r.lua:3:"]);
}

#[test]
fn a_runtime_error_in_a_step_function_names_the_file_line_and_step() {
    let out = run_recipe(
        r#"local lb = require("leasebox")
return lb.recipe {
  steps = {
    { "first", "true" },
    { "explode", function(box, ctx)
        local config = nil
        return config.missing
      end },
    { "never", "touch never.txt" },
  },
}
"#,
    );
    assert_recipe_error(
        &out,
        &["step `explode`", "recipes/r.lua:7:", "stack traceback"],
    );
    assert!(
        stderr(&out).contains("never: skipped"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_failing_step_gives_its_exit_code_and_later_steps_are_skipped() {
    let out = run_recipe(
        r#"return require("leasebox").recipe {
  steps = {
    { "fails", "echo failing; exit 3" },
    { "later", "echo SHOULD-NOT-RUN" },
  },
}
"#,
    );
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        !stdout(&out).contains("SHOULD-NOT-RUN"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("step `fails` failed with exit code 3"),
        "{}",
        describe(&out)
    );
}

#[test]
fn continue_on_failure_lets_later_steps_run_and_the_run_still_fails() {
    let out = run_recipe(
        r#"return require("leasebox").recipe {
  steps = {
    { "lint", "exit 4", continue_on_failure = true },
    { "test", "echo TEST-RAN" },
  },
}
"#,
    );
    assert_eq!(code(&out), 4, "{}", describe(&out));
    assert!(stdout(&out).contains("TEST-RAN"), "{}", describe(&out));
}

#[test]
fn in_a_parallel_group_siblings_finish_and_the_first_declared_failure_decides() {
    let s = repo_with(
        "r",
        r#"return require("leasebox").recipe {
  steps = {
    { parallel = {
      { "slow-fail", "sleep 0.5; exit 5" },
      { "fast-fail", "exit 6" },
      { "sibling", "sleep 0.3; echo SIBLING-DONE; mkdir -p out && touch out/sibling.txt" },
    } },
    { "after", "echo SHOULD-NOT-RUN" },
  },
  artifacts = { "out/sibling.txt" },
}
"#,
    );
    let out = s.run(&["run", "r"]);
    assert_eq!(code(&out), 5, "{}", describe(&out));
    assert!(
        stdout(&out).contains("[sibling] SIBLING-DONE"),
        "{}",
        describe(&out)
    );
    assert!(
        !stdout(&out).contains("SHOULD-NOT-RUN"),
        "{}",
        describe(&out)
    );
    assert!(
        s.repo().join("out/sibling.txt").is_file(),
        "artifacts are fetched after a failure"
    );
    assert!(lease_dirs(&s).is_empty());
}

#[test]
fn every_sandbox_escape_says_it_is_not_available() {
    for (code_line, name) in [
        ("io.open('/etc/passwd')", "`io`"),
        ("io.popen('id')", "`io`"),
        ("debug.getregistry()", "`debug`"),
        ("package.loadlib('libc.so.6', 'system')", "`package`"),
        ("dofile('/etc/passwd')", "`dofile`"),
        ("loadfile('/etc/passwd')", "`loadfile`"),
        ("os.execute('id')", "`os.execute`"),
        ("os.exit(0)", "`os.exit`"),
        ("os.remove('data.txt')", "`os.remove`"),
        ("string.dump(function() end)", "`string.dump`"),
        ("load('return 1', 'x', 'bt')", "loading bytecode"),
        ("collectgarbage('stop')", "`collectgarbage`"),
    ] {
        let out = run_recipe(&format!("local x = 1\n{code_line}\n"));
        assert_recipe_error(
            &out,
            &["recipes/r.lua:2:", name, "not available in recipes"],
        );
    }
}

#[test]
fn a_recipe_cannot_read_the_nomad_token_even_when_allow_listed() {
    let s = repo_with(
        "r",
        "local lb = require('leasebox')\nlb.log('path set:', os.getenv('VISIBLE') ~= nil)\nlb.log('token:', os.getenv('NOMAD_TOKEN'))\n",
    );
    std::fs::create_dir_all(s.path().join("config/leasebox")).unwrap();
    std::fs::write(
        s.path().join("config/leasebox/config.toml"),
        "lua_env_allow = [\"VISIBLE\", \"NOMAD_TOKEN\"]\n",
    )
    .unwrap();
    let out = s
        .leasebox(&["run", "r"])
        .env("VISIBLE", "yes")
        .env("NOMAD_TOKEN", "s3cr3t-token")
        .output()
        .unwrap();
    assert_recipe_error(&out, &["recipes/r.lua:3:", "NOMAD_TOKEN", "never readable"]);
    assert!(
        stderr(&out).contains("path set: true"),
        "{}",
        describe(&out)
    );
    assert!(!describe(&out).contains("s3cr3t-token"));
}

#[test]
fn require_outside_the_repository_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("evil.lua"),
        "return 'loaded from outside'",
    )
    .unwrap();
    let s = Scratch::new();
    s.write("recipes/dotdot.lua", "require('../../evil')\n")
        .write(
            "recipes/abs.lua",
            &format!("require('{}')\n", outside.path().join("evil").display()),
        )
        .write("recipes/link.lua", "require('lib.evil')\n");
    std::fs::create_dir_all(s.repo().join("lib")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("evil.lua"),
        s.repo().join("lib/evil.lua"),
    )
    .unwrap();
    s.commit();
    for name in ["dotdot", "abs"] {
        let out = s.run(&["run", name]);
        assert_recipe_error(
            &out,
            &[
                &format!("recipes/{name}.lua:1:"),
                "nothing outside the repository",
            ],
        );
    }
    let out = s.run(&["run", "link"]);
    assert_recipe_error(
        &out,
        &["recipes/link.lua:1:", "resolves outside the repository"],
    );
}

#[test]
fn require_of_a_missing_module_says_where_it_looked() {
    let out = run_recipe("local helpers = require('lib.helpers')\n");
    assert_recipe_error(
        &out,
        &["recipes/r.lua:1:", "`lib/helpers.lua`", "`leasebox`"],
    );
}

#[test]
fn require_loads_modules_of_the_repository() {
    let s = repo_with(
        "r",
        "local util = require('lib.util')\nrequire('leasebox').log('twice:', util.twice(21))\n",
    );
    s.write(
        "lib/util.lua",
        "return { twice = function(x) return x * 2 end }\n",
    );
    s.commit();
    let out = s.run(&["run", "r"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains("twice: 42"), "{}", describe(&out));
}

#[test]
fn a_recipe_returning_something_else_says_what_a_recipe_returns() {
    let out = run_recipe("return { steps = { 'true' } }\n");
    assert_recipe_error(
        &out,
        &[
            "recipes/r.lua",
            "must return `require(\"leasebox\").recipe{…}`",
            "or nothing",
        ],
    );
}

#[test]
fn ctrl_c_stops_a_busy_loop_and_releases_the_lease() {
    let s = repo_with(
        "r",
        "local box = require('leasebox').warmup {}\nbox:exec('touch started')\nlocal n = 0\nwhile true do n = n + 1 end\n",
    );
    let child = s
        .leasebox(&["run", "r"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let leases = s.cache().join("leasebox/leases");
    let start = Instant::now();
    // The box's workdir gets `started` just before the loop begins.
    while !std::fs::read_dir(&leases)
        .is_ok_and(|rd| rd.flatten().any(|e| e.path().join("work/started").exists()))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the recipe never started its loop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    assert!(lease_dirs(&s).is_empty(), "{:?}", lease_dirs(&s));
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let out = run_recipe(
        "local t = {}\nlocal chunk = ('x'):rep(1024 * 1024)\nwhile true do t[#t + 1] = chunk .. #t end\n",
    );
    assert_recipe_error(&out, &["memory limit of 256 MiB"]);
}

#[test]
fn a_missing_recipe_name_lists_the_recipes_found() {
    let s = Scratch::new();
    s.write("recipes/build.lua", "")
        .write(".leasebox/recipes/deploy.lua", "");
    s.commit();
    let out = s.run(&["run", "biuld"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("no recipe `biuld`"), "{err}");
    assert!(
        err.contains("recipes/build.lua") && err.contains(".leasebox/recipes/deploy.lua"),
        "{err}"
    );
    let bare = s.run(&["run"]);
    assert_eq!(code(&bare), 2, "{}", describe(&bare));
    assert!(stderr(&bare).contains("build") && stderr(&bare).contains("deploy"));
}

#[test]
fn a_name_in_both_recipe_dirs_is_ambiguous() {
    let s = Scratch::new();
    s.write("recipes/ci.lua", "")
        .write(".leasebox/recipes/ci.lua", "");
    s.commit();
    let out = s.run(&["run", "ci"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains(".leasebox/recipes/ci.lua")
            && stderr(&out).contains("`recipes/ci.lua`")
    );
}

/// The config decides what `lease{}` / `warmup{}` may set (`tests/integration/trust.rs` has
/// the whole gate): a refusal is a config refusal (78), at the recipe's line, and no box is
/// leased.
#[test]
fn warmup_refuses_keys_a_recipe_may_not_set_and_says_where_they_belong() {
    for (recipe, needles) in [
        (
            "local lb = require('leasebox')\nlb.warmup { namespace = 'prod' }\n",
            &[
                "recipes/r.lua:2: warmup: `nomad.namespace` in recipes/r.lua:2",
                ".leasebox.toml",
                "leasebox trust",
            ][..],
        ),
        (
            "require('leasebox').warmup { token_env = 'MY_TOKEN' }\n",
            &[
                "`nomad.token_env`",
                "user config",
                "LEASEBOX_NOMAD_TOKEN_ENV",
            ][..],
        ),
        (
            "require('leasebox').warmup { imgae = 'alpine' }\n",
            &["unknown `lease{}` option `imgae` in recipes/r.lua:1; did you mean `image`?"][..],
        ),
    ] {
        let out = run_recipe(recipe);
        assert_eq!(code(&out), 78, "{}", describe(&out));
        let err = stderr(&out);
        for needle in needles {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        assert!(!err.contains("==> leased"), "{err}");
    }
}

/// A lease's options apply to its commands: `timeout` (the lease's `exec_timeout`) bounds a
/// step that sets none, and its `exclude` list replaces the config's `sync.exclude`.
#[test]
fn lease_options_apply_to_the_leases_commands_and_sync() {
    let recipe = |exclude: &str| {
        format!(
            r#"return require("leasebox").recipe {{
  lease = {{ timeout = 1, exclude = {{ "{exclude}" }} }},
  steps = {{
    {{ "listed", "test ! -e secret/key && test -e data.txt" }},
    {{ "slow", "sleep 10" }},
  }},
}}
"#
        )
    };
    // Without the exclude the file is synced (the control).
    let s = repo_with("r", &recipe("nothing/"));
    s.write("secret/key", "k\n");
    s.commit();
    let out = s.run(&["run", "r"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stderr(&out).contains("step `listed`"), "{}", describe(&out));

    s.write("recipes/r.lua", &recipe("secret/"));
    s.commit();
    let started = Instant::now();
    let out = s.run(&["run", "r"]);
    assert_eq!(code(&out), 124, "{}", describe(&out));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{}",
        describe(&out)
    );
    assert!(stderr(&out).contains("step `slow`"), "{}", describe(&out));
    assert!(lease_dirs(&s).is_empty());
}

#[test]
fn args_after_the_double_dash_reach_the_recipe_and_fail_sets_the_code() {
    let out = {
        let s = repo_with(
            "r",
            "local lb = require('leasebox')\nlb.fail(lb.args[1] .. ' ' .. lb.args.mode, tonumber(lb.args.code))\n",
        );
        s.run(&["run", "r", "--", "first", "mode=fast", "code=7"])
    };
    assert_eq!(code(&out), 7, "{}", describe(&out));
    assert!(stderr(&out).contains("first fast"), "{}", describe(&out));
}

/// Copy a directory tree (files only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == "target" || name == "out" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn every_recipe_in_recipes_runs() {
    let s = Scratch::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    copy_tree(&source, &s.repo().join("recipes"));
    s.write(".gitignore", "target/\n");
    s.commit();
    // The boxes of the local backend see the scratch HOME: let rustup find its toolchains there.
    if let Some(home) = std::env::var_os("RUSTUP_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".rustup")))
        .filter(|p| p.is_dir())
    {
        std::os::unix::fs::symlink(home, s.path().join("home/.rustup")).unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(&source)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".lua").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.contains(&"hello".to_owned()), "{names:?}");
    for name in &names {
        // It shards a Cargo workspace's tests: run on a small crate by its own test
        // (`shard::the_shard_tests_recipe_splits_…`), and by hand on this repository.
        if name == "shard-tests" {
            continue;
        }
        let out = s.run(&["run", name]);
        assert_eq!(code(&out), 0, "recipe {name}: {}", describe(&out));
    }
    let report = std::fs::read_to_string(s.repo().join("target/hello/report.txt")).unwrap();
    assert!(report.contains("recipes/hello.lua has"), "{report}");
    assert!(lease_dirs(&s).is_empty(), "{:?}", lease_dirs(&s));
}

#[test]
fn the_timing_file_has_a_phase_per_step() {
    let s = repo_with(
        "r",
        r#"return require("leasebox").recipe {
  steps = { { "build", "mkdir -p out && echo x > out/x.txt" }, { parallel = { { "a", "true" }, { "b", "exit 2" } } } },
  artifacts = { "out/x.txt" },
}
"#,
    );
    let timing = s.path().join("timing.json");
    let out = s.run(&["run", "r", "--timing-json", timing.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&timing).unwrap()).unwrap();
    let phases: Vec<&str> = json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    // In the order they ran: the steps before the fetch and the cleanup that follow them.
    assert_eq!(
        phases,
        [
            "warmup",
            "sync",
            "step:build",
            "step:a",
            "step:b",
            "fetch",
            "cleanup"
        ],
        "{json}"
    );
    let starts: Vec<u64> = json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start_ms"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["exit_code"], 2);
    assert_eq!(json["error_kind"], "command_failed");
}

#[test]
fn a_recipe_reuses_a_kept_lease_and_leaves_it_kept() {
    let s = repo_with(
        "r",
        r#"return require("leasebox").recipe {
  steps = { { "where", "pwd" } },
}
"#,
    );
    let warm = s.run(&["warmup"]);
    assert_eq!(code(&warm), 0, "{}", describe(&warm));
    let id = stdout(&warm).trim().to_owned();
    for _ in 0..2 {
        let out = s.run(&["run", "r", "--lease", &id]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        assert!(stdout(&out).contains(&id), "{}", describe(&out));
        assert!(
            stderr(&out).contains(&format!("reusing kept lease {id}")),
            "{}",
            describe(&out)
        );
    }
    assert_eq!(lease_dirs(&s), std::slice::from_ref(&id));
    let stop = s.run(&["stop", &id]);
    assert_eq!(code(&stop), 0, "{}", describe(&stop));
    assert!(lease_dirs(&s).is_empty());
}

#[test]
fn ctrl_c_while_the_recipe_leases_its_box_leaves_nothing() {
    let s = repo_with(
        "r",
        "local box = require('leasebox').warmup {}\nlocal n = 0\nwhile true do n = n + 1 end\n",
    );
    let child = s
        .leasebox(&["run", "r"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let leases = s.cache().join("leasebox/leases");
    let start = Instant::now();
    while !std::fs::read_dir(&leases).is_ok_and(|mut rd| rd.next().is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the lease never appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    assert!(lease_dirs(&s).is_empty(), "{:?}", lease_dirs(&s));
    let claims = std::fs::read_dir(s.state().join("claims"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(claims, 0, "{}", describe(&out));
}

#[test]
fn a_timeout_flag_bounds_every_step_whatever_the_recipe_says() {
    let s = repo_with(
        "r",
        r#"return require("leasebox").recipe {
  timeout = "1h",
  steps = { { "slow", "sleep 10", timeout = "2h" } },
}
"#,
    );
    let started = Instant::now();
    let out = s.run(&["run", "r", "--timeout", "1s"]);
    assert_eq!(code(&out), 124, "{}", describe(&out));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{}",
        describe(&out)
    );
    assert!(stderr(&out).contains("step `slow`"), "{}", describe(&out));
    assert!(lease_dirs(&s).is_empty());
}

#[test]
fn a_recipe_runs_on_nomad_and_leaves_no_job() {
    use crate::support::nomad::NomadServer;
    for nomad in [NomadServer::start_v1_1(), NomadServer::start_modern()] {
        let s = repo_with(
            "r",
            r#"return require("leasebox").recipe {
  lease = { image = "alpine:3", cpu = 500, memory_mb = 256 },
  steps = {
    { "read", "mkdir -p out && cat data.txt > out/copy.txt" },
    { parallel = { { "a", "echo from-a" }, { "b", "exit 4" } } },
  },
  artifacts = { "out/copy.txt" },
}
"#,
        );
        let out = s
            .leasebox(&["run", "r"])
            .env("NOMAD_ADDR", nomad.url())
            .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
            .output()
            .unwrap();
        assert_eq!(code(&out), 4, "{:?}: {}", nomad.profile(), describe(&out));
        assert!(stdout(&out).contains("[a] from-a"), "{}", describe(&out));
        assert_eq!(
            std::fs::read_to_string(s.repo().join("out/copy.txt")).unwrap(),
            "synced data\n"
        );
        assert!(nomad.jobs().is_empty(), "jobs left: {:?}", nomad.jobs());
    }
}
