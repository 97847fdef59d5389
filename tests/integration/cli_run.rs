//! `leasebox run -- CMD` and the lease commands, run as a user would: the real binary, a real
//! git repository, real processes, real signals.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::{Scratch, alive, code, describe, stderr, stdout, wait_for};

fn sigint(child: &Child) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
}

fn repo_with_file() -> Scratch {
    let s = Scratch::new();
    s.write("hello.txt", "hello from the repo\n");
    s.commit();
    s
}

#[test]
fn a_command_runs_in_the_synced_repository_and_its_lease_is_released() {
    let s = repo_with_file();
    let out = s.run(&["run", "--", "cat", "hello.txt"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from the repo\n");
    assert!(
        s.lease_dirs().is_empty(),
        "lease left: {:?}",
        s.lease_dirs()
    );
    assert!(s.claims().is_empty(), "claim left: {:?}", s.claims());
}

#[test]
fn a_failing_command_passes_its_exit_code_through() {
    let s = repo_with_file();
    let out = s.run(&["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"));
    assert!(s.lease_dirs().is_empty());
    assert!(s.claims().is_empty());
}

#[test]
fn a_missing_command_is_127() {
    let s = repo_with_file();
    let out = s.run(&["run", "--", "no-such-command-leasebox-test"]);
    assert_eq!(code(&out), 127, "{}", describe(&out));
    assert!(stderr(&out).contains("not found"), "{}", describe(&out));
}

#[test]
fn a_timeout_is_124_and_leaves_nothing() {
    let s = repo_with_file();
    let pidfile = s.path().join("pid");
    let script = format!("echo $$ > {}; sleep 30", pidfile.display());
    let out = s.run(&["run", "--timeout", "500ms", "--", "sh", "-c", &script]);
    assert_eq!(code(&out), 124, "{}", describe(&out));
    assert!(
        stderr(&out).contains("timed out after 500ms"),
        "{}",
        describe(&out)
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the command to die", || !alive(pid));
    assert!(s.lease_dirs().is_empty());
    assert!(s.claims().is_empty());
}

#[test]
fn ctrl_c_during_a_command_kills_its_group_releases_and_exits_130() {
    let s = repo_with_file();
    let pidfile = s.path().join("pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let child = s
        .leasebox(&["run", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the background sleep to die", || !alive(pid));
    assert!(s.lease_dirs().is_empty(), "{:?}", s.lease_dirs());
    assert!(s.claims().is_empty());
}

#[test]
fn ctrl_c_during_sync_releases_and_exits_130() {
    let s = Scratch::new();
    // A large file makes the sync take a while (it is read and hashed).
    let big = std::fs::File::create(s.repo().join("big.bin")).unwrap();
    big.set_len(1536 * 1024 * 1024).unwrap();
    s.commit();
    let child = s
        .leasebox(&["run", "--", "true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let leases = s.cache().join("leasebox/leases");
    wait_for("the sync to start", || {
        std::fs::read_dir(&leases)
            .is_ok_and(|rd| rd.flatten().any(|e| e.path().join("work/big.bin").exists()))
    });
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    assert!(s.lease_dirs().is_empty(), "{:?}", s.lease_dirs());
    assert!(s.claims().is_empty());
}

#[test]
fn a_second_ctrl_c_exits_at_once_naming_what_was_left() {
    let s = repo_with_file();
    let pidfile = s.path().join("pid");
    // A slow release (a cluster that takes its time) leaves room for the second Ctrl-C.
    let script = format!("echo $$ > {}; sleep 60", pidfile.display());
    let child = s
        .leasebox(&["run", "--", "sh", "-c", &script])
        .env("LEASEBOX_LOCAL_FAULTS", "release_delay_ms=20000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    sigint(&child);
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("leasebox stop lbx_"), "{}", describe(&out));
    // Clean up what the forced exit left.
    let id = err
        .split("leasebox stop ")
        .nth(1)
        .unwrap()
        .chars()
        .take(16)
        .collect::<String>();
    let stop = s.run(&["stop", &id]);
    assert_eq!(code(&stop), 0, "{}", describe(&stop));
    assert!(s.lease_dirs().is_empty());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the command to be stopped", || !alive(pid));
}

#[test]
fn fetch_brings_artifacts_back_even_after_a_failure() {
    let s = repo_with_file();
    let out = s.run(&[
        "run",
        "--fetch",
        "out",
        "--",
        "sh",
        "-c",
        "mkdir -p out/sub && echo report > out/sub/r.txt && exit 4",
    ]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    assert_eq!(
        std::fs::read_to_string(s.repo().join("out/sub/r.txt")).unwrap(),
        "report\n"
    );
}

#[test]
fn fetch_lands_relative_to_the_current_directory() {
    let s = Scratch::new();
    s.write("sub/dir/keep", "");
    s.commit();
    let out = s
        .leasebox(&[
            "run",
            "--fetch",
            "made.txt",
            "--",
            "sh",
            "-c",
            "pwd > made.txt",
        ])
        .current_dir(s.repo().join("sub/dir"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let made = std::fs::read_to_string(s.repo().join("sub/dir/made.txt")).unwrap();
    // The lease workdir (`…/leases/lbx_…/work`) plus the same subdirectory.
    assert!(
        made.trim_end().ends_with("sub/dir") && made.contains("lbx_"),
        "{made}"
    );
    // `..` is fine while the path stays inside the repository; it lands at the same path
    // relative to the current directory.
    let out = s
        .leasebox(&[
            "run",
            "--fetch",
            "../up.txt",
            "--",
            "sh",
            "-c",
            "echo up > ../up.txt",
        ])
        .current_dir(s.repo().join("sub/dir"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        std::fs::read_to_string(s.repo().join("sub/up.txt")).unwrap(),
        "up\n"
    );
    // Out of the repository root: a usage error before anything runs.
    let out = s
        .leasebox(&["run", "--fetch", "../../../x", "--", "touch", "ran"])
        .current_dir(s.repo().join("sub/dir"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("leaves the repository root"),
        "{}",
        describe(&out)
    );
    assert!(!s.repo().join("sub/dir/ran").exists());
}

#[test]
fn a_recipe_whose_artifacts_leave_the_workdir_is_a_recipe_error() {
    let s = Scratch::new();
    s.write(
        "recipes/r.lua",
        "return require(\"leasebox\").recipe { steps = { { \"s\", \"touch ran\" } }, artifacts = { \"../outside\" } }\n",
    );
    s.commit();
    let out = s.run(&["run", "r"]);
    assert_eq!(code(&out), 65, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("artifacts") && err.contains("../outside"),
        "{err}"
    );
    assert!(
        !s.repo().join("ran").exists(),
        "refused before anything ran"
    );
    // An imperative recipe's `box:fetch` of such a path is a recipe error too.
    s.write(
        "recipes/i.lua",
        "local lb = require(\"leasebox\")\nlocal box = lb.warmup {}\nbox:fetch(\"../outside\", \"out/\")\n",
    );
    s.commit();
    let out = s.run(&["run", "i"]);
    assert_eq!(code(&out), 65, "{}", describe(&out));
    assert!(s.lease_dirs().is_empty(), "{:?}", s.lease_dirs());
}

#[test]
fn a_hostile_fetch_writes_nothing_outside() {
    let s = repo_with_file();
    let outside = s.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let script = format!("mkdir -p out && ln -s {} out/escape", outside.display());
    let out = s.run(&["run", "--fetch", "out", "--", "sh", "-c", &script]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("refused archive entry `out/escape`"),
        "{}",
        describe(&out)
    );
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    assert!(!s.repo().join("out/escape").exists());
}

#[test]
fn timing_json_has_every_phase() {
    let s = repo_with_file();
    let timing = s.path().join("timing.json");
    let out = s.run(&[
        "run",
        "--timing-json",
        timing.to_str().unwrap(),
        "--fetch",
        "hello.txt",
        "--",
        "sh",
        "-c",
        "exit 2",
    ]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&timing).unwrap()).unwrap();
    let names: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["warmup", "sync", "step:command", "fetch", "cleanup"]
    );
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["error_kind"], "command_failed");
    assert!(report["total_ms"].as_u64().is_some());
}

#[test]
fn only_passed_variables_reach_the_box() {
    let s = repo_with_file();
    let out = s
        .leasebox(&[
            "run",
            "--pass-env",
            "PASSED",
            "--",
            "sh",
            "-c",
            "echo \"passed=$PASSED token=${NOMAD_TOKEN:-none} other=${OTHER:-none}\"",
        ])
        .env("PASSED", "yes")
        .env("NOMAD_TOKEN", "s3cr3t")
        .env("OTHER", "leak")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), "passed=yes token=none other=none\n");
    assert!(!stderr(&out).contains("s3cr3t"));

    let named = s
        .leasebox(&[
            "run",
            "--pass-env",
            "NOMAD_TOKEN",
            "--",
            "sh",
            "-c",
            "echo ${#NOMAD_TOKEN}",
        ])
        .env("NOMAD_TOKEN", "s3cr3t")
        .output()
        .unwrap();
    assert_eq!(stdout(&named), "6\n", "{}", describe(&named));

    let missing = s.run(&["run", "--pass-env", "NOT_SET_ANYWHERE", "--", "true"]);
    assert_eq!(code(&missing), 2, "{}", describe(&missing));
    assert!(stderr(&missing).contains("`NOT_SET_ANYWHERE` is not set"));
}

#[test]
fn a_kept_lease_is_listed_reused_and_stopped() {
    let s = repo_with_file();
    let out = s.run(&["warmup"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let id = stdout(&out).trim().to_owned();
    assert!(id.starts_with("lbx_"), "{id}");

    let run = s.run(&[
        "run",
        "--lease",
        &id,
        "--",
        "sh",
        "-c",
        "echo state > mark; cat hello.txt",
    ]);
    assert_eq!(code(&run), 0, "{}", describe(&run));
    let again = s.run(&["run", "--lease", &id, "--no-sync", "--", "cat", "mark"]);
    assert_eq!(stdout(&again), "state\n", "{}", describe(&again));

    let list = s.run(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1, "{}", describe(&list));
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["remote"], "ready");
    assert_eq!(items[0]["keep"], true);

    let status = s.run(&["status", &id]);
    assert_eq!(code(&status), 0, "{}", describe(&status));
    assert!(stdout(&status).contains("kept:       yes"));

    let stop = s.run(&["stop", &id]);
    assert_eq!(code(&stop), 0, "{}", describe(&stop));
    assert!(s.lease_dirs().is_empty());
    assert!(s.claims().is_empty());
    let gone = s.run(&["status", &id]);
    assert_eq!(code(&gone), 78, "{}", describe(&gone));
    let bad = s.run(&["status", "not-an-id"]);
    assert_eq!(code(&bad), 2, "{}", describe(&bad));
}

#[test]
fn two_runs_at_once_get_distinct_leases() {
    let s = repo_with_file();
    let children: Vec<Child> = (0..2)
        .map(|_| {
            s.leasebox(&["run", "--keep", "--", "sh", "-c", "sleep 0.5; pwd"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outs {
        assert_eq!(code(out), 0, "{}", describe(out));
    }
    assert_ne!(stdout(&outs[0]), stdout(&outs[1]));
    let list = s.run(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2, "{}", describe(&list));
    assert!(stderr(&list).is_empty(), "{}", describe(&list));
}

#[test]
fn a_corrupt_claim_is_named_and_skipped() {
    let s = repo_with_file();
    let out = s.run(&["warmup"]);
    let id = stdout(&out).trim().to_owned();
    std::fs::write(s.state().join("claims/lbx_000000000000.json"), "{not json").unwrap();
    let list = s.run(&["list"]);
    assert_eq!(code(&list), 0, "{}", describe(&list));
    assert!(
        stderr(&list).contains("lbx_000000000000.json"),
        "{}",
        describe(&list)
    );
    assert!(stdout(&list).contains(&id));
    assert_eq!(code(&s.run(&["stop", &id])), 0);
}

#[test]
fn an_unwritable_state_or_cache_dir_is_named() {
    let s = repo_with_file();
    let file = s.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under = file.join("state");
    let out = s
        .leasebox(&["run", "--", "true"])
        .env("LEASEBOX_STATE_DIR", &under)
        .output()
        .unwrap();
    assert_eq!(code(&out), 78, "{}", describe(&out));
    assert!(
        stderr(&out).contains(under.to_str().unwrap()),
        "{}",
        describe(&out)
    );

    let out = s
        .leasebox(&["run", "--", "true"])
        .env("XDG_CACHE_HOME", file.join("cache"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 78, "{}", describe(&out));
    assert!(stderr(&out).contains("a-file/cache"), "{}", describe(&out));
    assert!(s.claims().is_empty(), "a claim was left: {:?}", s.claims());
}

#[test]
fn an_unknown_config_key_names_file_line_and_suggestion() {
    let s = repo_with_file();
    let dir = s.path().join("config/leasebox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[lease]\nttl = \"2h\"\nidel = \"5m\"\n",
    )
    .unwrap();
    let out = s.run(&["run", "--", "true"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("config.toml:3"), "{err}");
    assert!(err.contains("idel"), "{err}");
    assert!(err.contains("idle"), "{err}");

    std::fs::write(dir.join("config.toml"), "[lease]\nttl = 5\n").unwrap();
    let out = s.run(&["run", "--", "true"]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    assert!(stderr(&out).contains("config.toml:2"), "{}", describe(&out));
}

#[test]
fn an_unreadable_file_is_named() {
    // Root reads everything, so run leasebox as `nobody` against a file only root may read.
    if Path::new("/usr/bin/setpriv").exists() {
        let s = repo_with_file();
        s.write("secret.txt", "x");
        s.commit();
        use std::os::unix::fs::PermissionsExt;
        for dir in [s.path().to_path_buf(), s.repo()] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for dir in [s.state(), s.cache(), s.path().join("home")] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::set_permissions(
            s.repo().join("secret.txt"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let out = std::process::Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_leasebox"))
            .args(["run", "--", "true"])
            .current_dir(s.repo())
            .env_clear()
            .envs(s.env())
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "safe.directory")
            .env("GIT_CONFIG_VALUE_0", "*")
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("Operation not permitted") {
            eprintln!("setpriv is not permitted here; skipping");
            return;
        }
        assert_eq!(code(&out), 78, "{}", describe(&out));
        assert!(stderr(&out).contains("secret.txt"), "{}", describe(&out));
        assert!(s.lease_dirs().is_empty());
    } else {
        eprintln!("setpriv not installed; skipping");
    }
}

#[test]
fn bad_fetch_paths_and_timeouts_are_refused_before_anything_runs() {
    let s = repo_with_file();
    for args in [
        &["run", "--fetch", "../outside", "--", "touch", "ran"][..],
        &["run", "--fetch", "/etc", "--", "touch", "ran"][..],
        &["run", "--timeout", "soon", "--", "touch", "ran"][..],
    ] {
        let out = s.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", describe(&out));
        // Nothing was leased: the local backend never even made its leases directory.
        assert!(!s.cache().join("leasebox/leases").exists(), "{args:?}");
        assert!(s.claims().is_empty());
    }
    let out = s.run(&["run", "--timeout", "soon", "--", "true"]);
    assert!(
        stderr(&out).contains("invalid `--timeout soon`"),
        "{}",
        describe(&out)
    );
}

#[test]
fn stop_status_and_list_use_the_backend_the_claim_names() {
    let s = repo_with_file();
    let out = s.run(&["warmup"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let id = stdout(&out).trim().to_owned();
    // A Nomad address now makes `nomad` the configured backend; the lease is still local.
    let with_nomad = |args: &[&str]| {
        s.leasebox(args)
            .env("NOMAD_ADDR", "http://127.0.0.1:1")
            .output()
            .unwrap()
    };
    let out = with_nomad(&["status", &id, "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["backend"], "local", "{status}");
    assert_eq!(status["remote"], "ready", "{status}");
    let out = with_nomad(&["list", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(
        list[0]["remote"], "ready",
        "asked of the local backend: {list}"
    );
    let out = with_nomad(&["stop", &id]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(s.claims().is_empty(), "the claim is gone");
    assert!(s.lease_dirs().is_empty(), "the box is gone");
}
