//! Sharded runs (`leasebox.shard{}`, `warmup{ count = N }`, `run --shards N`) through the real
//! binary: on the local backend (N directories) and on the Nomad test server with several
//! nodes (one job whose group has count N, spread or `distinct_hosts`, a node too small to
//! take a box), both profiles. What is asserted is what a user sees: each shard's index and
//! count in its box, `[k/N]` lines, per-shard artifacts, the merged JUnit file, the verdict,
//! the shard table, the nodes the boxes ran on, and nothing left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use crate::support::nomad::{NomadServer, Profile};
use crate::support::{Scratch, code, describe, stderr, stdout};

/// A committed repository with `recipes/<name>.lua` and a few files.
fn repo(name: &str, recipe: &str) -> Scratch {
    let s = Scratch::new();
    s.write(&format!("recipes/{name}.lua"), recipe)
        .write("data.txt", "synced data\n")
        .write("src/a.txt", "a\n")
        .write("src/b.txt", "b\n");
    s.commit();
    s
}

fn events(s: &Scratch) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.repo().join("events.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect()
}

fn shard_ends(s: &Scratch) -> Vec<serde_json::Value> {
    let mut rows: Vec<_> = events(s)
        .into_iter()
        .filter(|e| e["event"] == "shard_end")
        .collect();
    rows.sort_by_key(|e| e["shard"].as_u64());
    rows
}

/// The id of the group a run kept, from its `--> kept ID` line.
fn kept_group_id(out: &std::process::Output) -> String {
    let err = stderr(out);
    err.lines()
        .find_map(|l| l.trim().strip_prefix("--> kept "))
        .unwrap_or_else(|| panic!("no group id in: {err}"))
        .to_owned()
}

fn nothing_left(s: &Scratch) {
    assert!(
        s.lease_dirs().is_empty(),
        "lease left: {:?}",
        s.lease_dirs()
    );
    assert!(s.claims().is_empty(), "claims left: {:?}", s.claims());
}

const FOUR_SHARDS: &str = r#"local lb = require("leasebox")
return lb.shard {
  count = 4,
  run = function(box, shard)
    assert(shard.count == 4)
    return box:exec { "sh", "-c", 'mkdir -p out && echo "$LEASEBOX_SHARD_INDEX/$LEASEBOX_SHARD_COUNT ' .. shard.index .. '" > out/me.txt && cat data.txt' }
  end,
  artifacts = { "out/me.txt" },
}
"#;

#[test]
fn four_local_shards_know_their_index_prefix_their_lines_and_leave_nothing() {
    let s = repo("four", FOUR_SHARDS);
    let out = s.run(&["run", "four", "--events", "events.ndjson"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    for k in 1..=4 {
        let me = std::fs::read_to_string(s.repo().join(format!("out/shard-{k}/out/me.txt")))
            .unwrap_or_else(|e| panic!("shard {k}'s artifact: {e}\n{}", describe(&out)));
        assert_eq!(me, format!("{k}/4 {k}\n"));
        assert!(
            stdout(&out).contains(&format!("[{k}/4] synced data\n")),
            "{}",
            describe(&out)
        );
    }
    let schema = crate::events::schema();
    for record in events(&s) {
        assert!(
            schema.is_valid(&record),
            "not valid against the schema: {record}"
        );
    }
    let rows = shard_ends(&s);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["status"] == "passed" && r["node"] == "local")
    );
    // One lease for the group, one sync for all its boxes.
    let all = events(&s);
    let count = |kind: &str| all.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(count("lease_requested"), 1);
    assert_eq!(count("sync_end"), 1);
    let err = stderr(&out);
    assert!(err.contains("4/4 shards passed"), "{err}");
    assert!(err.contains("[3/4]") && err.contains("on local"), "{err}");
    nothing_left(&s);
}

#[test]
fn the_first_failing_shard_gives_the_exit_code_and_every_shard_finishes() {
    let s = repo(
        "fails",
        r#"local lb = require("leasebox")
return lb.shard {
  count = 4,
  steps = {
    { "test", 'echo done > finished.txt; case "$LEASEBOX_SHARD_INDEX" in 2) exit 3;; 4) exit 5;; esac' },
  },
  artifacts = { "finished.txt" },
}
"#,
    );
    let out = s.run(&["run", "fails", "--events", "events.ndjson"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let statuses: Vec<String> = shard_ends(&s)
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "passed", "failed"]);
    for k in 1..=4 {
        assert!(
            s.repo()
                .join(format!("out/shard-{k}/finished.txt"))
                .exists(),
            "shard {k} finished and its artifact came back"
        );
    }
    let err = stderr(&out);
    assert!(err.contains("shard 2/4 failed (exit code 3)"), "{err}");
    assert!(err.contains("2/4 shards passed"), "{err}");
    nothing_left(&s);
}

#[test]
fn fail_fast_stops_the_other_shards_and_their_processes() {
    let s = repo(
        "ff",
        r#"local lb = require("leasebox")
return lb.shard {
  count = 3,
  fail_fast = true,
  run = function(box, shard)
    if shard.index == 1 then
      return box:exec { "sh", "-c", "sleep 1; exit 7" }
    end
    return box:exec { "sh", "-c", "echo $$ > \"$LEASEBOX_PIDS/$LEASEBOX_SHARD_INDEX\"; sleep 60" , env = { LEASEBOX_PIDS = lb.args.pids } }
  end,
}
"#,
    );
    let pids = s.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let arg = format!("pids={}", pids.display());
    let out = s.run(&["run", "ff", "--events", "events.ndjson", "--", &arg]);
    assert_eq!(code(&out), 7, "{}", describe(&out));
    let statuses: Vec<String> = shard_ends(&s)
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["failed", "cancelled", "cancelled"],
        "{}",
        describe(&out)
    );
    for k in 2..=3 {
        let pid: i32 = std::fs::read_to_string(pids.join(k.to_string()))
            .expect("the shard started")
            .trim()
            .parse()
            .unwrap();
        crate::support::wait_for("the cancelled shard's command to be gone", || {
            !crate::support::alive(pid)
        });
    }
    nothing_left(&s);
}

const ITEMS: &str = r#"local lb = require("leasebox")
return lb.shard {
  count = 3,
  name = "unit",
  items_from = "printf 't1\nt2\nt3\nt4\nt5\nt6\nt7\n'",
  run = function(box, shard)
    return box:exec { "sh", "-c", 'mkdir -p out; printf "%s\n" "$@" > out/items.txt', "sh", table.unpack(shard.items) }
  end,
  artifacts = { "out/items.txt" },
}
"#;

fn items_of(s: &Scratch) -> Vec<Vec<String>> {
    (1..=3)
        .map(|k| {
            std::fs::read_to_string(s.repo().join(format!("out/shard-{k}/out/items.txt")))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn items_are_split_by_stable_hash_then_balanced_by_the_recorded_durations() {
    let s = repo("items", ITEMS);
    let out = s.run(&["run", "items", "--events", "events.ndjson"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let first = items_of(&s);
    let mut all: Vec<String> = first.concat();
    all.sort();
    assert_eq!(all, ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]);
    let mut sizes: Vec<usize> = first.iter().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [2, 2, 3], "round robin without history: {first:?}");
    let items: Vec<u64> = shard_ends(&s)
        .iter()
        .map(|r| r["items"].as_u64().unwrap())
        .collect();
    assert_eq!(items.iter().sum::<u64>(), 7);
    // The durations were recorded per recipe and item in the state dir.
    let dir = s.state().join("history/shards");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("history")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files[0].path()).unwrap()).unwrap();
    let recorded: BTreeSet<&str> = history["items"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(recorded.len(), 7, "{history}");
    // A history that says t1 is slow: t1 gets a shard of its own.
    let mut forged = history.clone();
    for (item, ms) in forged["items"].as_object_mut().unwrap() {
        *ms = serde_json::json!(if item == "t1" { 60_000 } else { 100 });
    }
    std::fs::write(files[0].path(), forged.to_string()).unwrap();
    std::fs::remove_dir_all(s.repo().join("out")).unwrap();
    let again = s.run(&["run", "items"]);
    assert_eq!(code(&again), 0, "{}", describe(&again));
    let second = items_of(&s);
    let alone = second
        .iter()
        .find(|shard| shard.contains(&"t1".to_owned()))
        .unwrap();
    assert_eq!(alone, &["t1"], "{second:?}");
    let mut rest: Vec<usize> = second.iter().map(Vec::len).filter(|n| *n != 1).collect();
    rest.sort_unstable();
    assert_eq!(rest, [3, 3], "{second:?}");
    nothing_left(&s);
}

#[test]
fn max_leases_refuses_a_group_before_anything_is_leased() {
    let s = repo("big", FOUR_SHARDS);
    let out = s
        .leasebox(&["run", "big"])
        .env("LEASEBOX_MAX_LEASES", "3")
        .output()
        .unwrap();
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("a group of 4 boxes would make 4 boxes, more than `max_leases` = 3"),
        "{err}"
    );
    nothing_left(&s);
}

#[test]
fn junit_files_of_every_shard_are_merged_into_one() {
    let s = repo(
        "junit",
        r#"local lb = require("leasebox")
return lb.shard {
  count = 2,
  run = function(box, shard)
    local failures = shard.index == 2 and 1 or 0
    return box:exec { "sh", "-c", 'mkdir -p target && printf \'<?xml version="1.0"?>\n<testsuites><testsuite name="s%s" tests="3" failures="%s" time="0.5"><testcase name="x"/></testsuite></testsuites>\n\' "$LEASEBOX_SHARD_INDEX" "$1" > target/junit.xml', "sh", tostring(failures) }
  end,
  junit = { "target/junit.xml" },
}
"#,
    );
    let out = s.run(&["run", "junit"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let merged = std::fs::read_to_string(s.repo().join("out/junit.xml")).unwrap();
    assert!(
        merged.contains(r#"tests="6" failures="1" errors="0" skipped="0" time="1.000""#),
        "{merged}"
    );
    assert!(
        merged.contains(r#"<testsuite name="s1""#) && merged.contains(r#"<testsuite name="s2""#)
    );
    nothing_left(&s);
}

#[test]
fn run_shards_runs_one_command_on_every_box_with_one_verdict() {
    let s = repo("unused", "return nil\n");
    let out = s.run(&[
        "run",
        "--shards",
        "3",
        "--events",
        "events.ndjson",
        "--",
        "sh",
        "-c",
        "cat src/a.txt; exit $((LEASEBOX_SHARD_INDEX == 2 ? 4 : 0))",
    ]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    for k in 1..=3 {
        assert!(
            stdout(&out).contains(&format!("[{k}/3] a\n")),
            "{}",
            describe(&out)
        );
    }
    let statuses: Vec<String> = shard_ends(&s)
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "passed"]);
    nothing_left(&s);
}

#[test]
fn a_sync_reads_each_file_once_for_every_box() {
    use std::os::unix::ffi::OsStrExt;
    let s = repo("once", FOUR_SHARDS);
    // Count opens of every file with inotify while the 4-box run syncs.
    let dirs = [s.repo(), s.repo().join("src")];
    // SAFETY: plain inotify system calls on descriptors this test owns.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK) };
    assert!(fd >= 0);
    let mut watches = BTreeMap::new();
    for dir in &dirs {
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: `path` is a valid C string.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_OPEN) };
        assert!(wd >= 0);
        watches.insert(wd, dir.clone());
    }
    let out = s.run(&["run", "once"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let mut opens: BTreeMap<String, u32> = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: reading into a buffer this test owns.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // SAFETY: the kernel wrote whole `inotify_event` records.
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
            let name_at = at + std::mem::size_of::<libc::inotify_event>();
            let name = &buf[name_at..name_at + event.len as usize];
            let name = String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_owned();
            if !name.is_empty() && event.mask & libc::IN_ISDIR == 0 {
                let dir = &watches[&event.wd];
                let rel = dir.strip_prefix(s.repo()).unwrap().join(&name);
                *opens.entry(rel.to_string_lossy().into_owned()).or_default() += 1;
            }
            at = name_at + event.len as usize;
        }
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    // Each synced file was opened once (read and hashed in the one archive pass), though four
    // boxes received it; git's own opens of the work tree do not open file contents.
    for file in ["data.txt", "src/a.txt", "src/b.txt"] {
        assert_eq!(opens.get(file), Some(&1), "opens: {opens:?}");
    }
    nothing_left(&s);
}

#[test]
fn parallel_steps_run_in_every_shard_and_the_first_failing_child_gives_the_code() {
    let s = repo(
        "par",
        r#"local lb = require("leasebox")
return lb.shard {
  count = 3,
  steps = {
    { "prepare", "mkdir -p out" },
    { parallel = {
      { "a", 'sleep 0.2; echo "a $LEASEBOX_SHARD_INDEX" > out/a.txt' },
      { "b", 'echo "b $LEASEBOX_SHARD_INDEX" > out/b.txt; [ "$LEASEBOX_SHARD_INDEX" != 2 ] || exit 6' },
      function(box, shard) return box:exec { "sh", "-c", "echo fn " .. shard.index .. " > out/c.txt" } end,
    } },
    { "after", "echo after > out/after.txt" },
  },
  artifacts = { "out/" },
}
"#,
    );
    let out = s.run(&["run", "par", "--events", "events.ndjson"]);
    assert_eq!(code(&out), 6, "{}", describe(&out));
    for k in 1..=3 {
        let read = |name: &str| {
            std::fs::read_to_string(s.repo().join(format!("out/shard-{k}/out/{name}")))
                .unwrap_or_else(|e| panic!("shard {k}'s {name}: {e}\n{}", describe(&out)))
        };
        // Every child of the parallel group ran in every box, the failing one's siblings too.
        assert_eq!(read("a.txt"), format!("a {k}\n"));
        assert_eq!(read("b.txt"), format!("b {k}\n"));
        assert_eq!(read("c.txt"), format!("fn {k}\n"));
        // The step after the group ran only where the group passed.
        let after = s
            .repo()
            .join(format!("out/shard-{k}/out/after.txt"))
            .exists();
        assert_eq!(after, k != 2, "shard {k}: {}", describe(&out));
    }
    let statuses: Vec<String> = shard_ends(&s)
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "passed"]);
    assert!(
        stderr(&out).contains("shard 2/3 failed (exit code 6)"),
        "{}",
        describe(&out)
    );
    nothing_left(&s);
}

#[test]
fn a_kept_group_is_reused_with_lease_and_a_different_count_is_refused() {
    let s = repo(
        "keep",
        r#"local lb = require("leasebox")
local group = lb.warmup { count = 4, keep = true }
assert(#group == 4 and group[4].index == 4)
lb.log("kept " .. group.id)
"#,
    );
    s.write("recipes/four.lua", FOUR_SHARDS).write(
        "recipes/three.lua",
        &FOUR_SHARDS
            .replace("count = 4", "count = 3")
            .replace("shard.count == 4", "shard.count == 3"),
    );
    s.commit();
    let out = s.run(&["run", "keep"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let id = kept_group_id(&out);
    assert_eq!(s.claims().len(), 1, "one claim for the kept group");

    let out = s.run(&["run", "four", "--lease", &id, "--events", "events.ndjson"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("reusing kept lease {id}")),
        "{}",
        describe(&out)
    );
    for k in 1..=4 {
        let me = std::fs::read_to_string(s.repo().join(format!("out/shard-{k}/out/me.txt")))
            .unwrap_or_else(|e| panic!("shard {k}'s artifact: {e}\n{}", describe(&out)));
        assert_eq!(me, format!("{k}/4 {k}\n"));
    }
    let requested = events(&s)
        .iter()
        .filter(|e| e["event"] == "lease_requested")
        .count();
    assert_eq!(
        requested, 0,
        "the kept group was reused, nothing new leased"
    );
    // The reusing run leaves the kept group as it was.
    assert_eq!(s.claims().len(), 1, "{}", describe(&out));
    assert_eq!(s.claims()[0]["id"].as_str(), Some(id.as_str()));

    let out = s.run(&["run", "three", "--lease", &id]);
    assert_eq!(code(&out), 78, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the kept lease {id} holds 4 boxes, but the recipe asks for 3 (`count`)"
        )),
        "{err}"
    );
    assert_eq!(s.claims().len(), 1, "a refused reuse keeps the group");

    let out = s.run(&["stop", &id]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    nothing_left(&s);
}

#[test]
fn items_run_one_by_one_are_timed_on_their_own_and_recorded_as_measured() {
    let s = repo(
        "each",
        r#"local lb = require("leasebox")
return lb.shard {
  count = 1,
  name = "each",
  items = { "slow", "quick", "broken" },
  run = function(box, shard)
    return shard.each(function(item)
      local script = ({ slow = "sleep 1", quick = "true", broken = "exit 4" })[item]
      return box:exec { "sh", "-c", script }
    end)
  end,
}
"#,
    );
    let out = s.run(&["run", "each"]);
    // Every item ran; the failing item's code is the shard's.
    assert_eq!(code(&out), 4, "{}", describe(&out));
    let dir = s.state().join("history/shards");
    let file = std::fs::read_dir(&dir)
        .expect("history")
        .flatten()
        .next()
        .expect("a history file")
        .path();
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let ms = |item: &str| history["items"][item].as_u64();
    // Measured, not shared out: the sleeping item took its second, the quick one less, and
    // the failed item is not recorded.
    let slow = ms("slow").unwrap_or_else(|| panic!("{history}"));
    let quick = ms("quick").unwrap_or_else(|| panic!("{history}"));
    assert!(slow >= 1000, "{history}");
    assert!(quick < slow, "{history}");
    assert_eq!(ms("broken"), None, "{history}");
    nothing_left(&s);
}

/// A scratch repository holding `recipes/shard-tests.lua` (the real one) and a small crate
/// whose unit tests sit in three modules; `gamma`'s test fails when `fail` is set.
fn crate_repo(fail: bool) -> Scratch {
    let s = Scratch::new();
    let recipe = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/shard-tests.lua"),
    )
    .unwrap();
    let test = |name: &str, body: &str| format!("#[test]\nfn {name}() {{\n    {body}\n}}\n");
    s.write("recipes/shard-tests.lua", &recipe)
        .write(".gitignore", "target/\n")
        .write(
            "Cargo.toml",
            "[package]\nname = \"small\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
        )
        .write(
            "Cargo.lock",
            "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 4\n\n[[package]]\nname = \"small\"\nversion = \"0.1.0\"\n",
        )
        .write("src/lib.rs", "#[cfg(test)]\nmod alpha;\n#[cfg(test)]\nmod beta;\n#[cfg(test)]\nmod gamma;\n")
        .write(
            "src/alpha.rs",
            &(test("one", "assert_eq!(1 + 1, 2);") + &test("two", "assert!(true);")),
        )
        .write("src/beta.rs", &test("three", "assert_eq!(3, 3);"))
        .write(
            "src/gamma.rs",
            &test(
                "four",
                if fail {
                    "assert_eq!(4, 5, \"gamma fails\");"
                } else {
                    "assert_eq!(4, 4);"
                },
            ),
        );
    s.commit();
    // The boxes of the local backend see the scratch HOME: let rustup find its toolchains there.
    if let Some(home) = std::env::var_os("RUSTUP_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".rustup")))
        .filter(|p| p.is_dir())
    {
        std::os::unix::fs::symlink(home, s.path().join("home/.rustup")).unwrap();
    }
    s
}

#[test]
fn the_shard_tests_recipe_splits_a_crates_tests_over_its_boxes_with_one_verdict() {
    let s = crate_repo(false);
    let out = s.run(&[
        "run",
        "shard-tests",
        "--events",
        "events.ndjson",
        "--",
        "lib=only",
        "count=2",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    // Each test ran exactly once, in one of the two boxes: one `cargo test` an item.
    let text = stdout(&out);
    let results = text
        .lines()
        .filter(|l| l.contains("test result: ok."))
        .count();
    assert_eq!(results, 3, "{text}");
    let passed: usize = text
        .lines()
        .filter_map(|l| {
            let rest = l.split("test result: ok. ").nth(1)?;
            rest.split(' ').next()?.parse::<usize>().ok()
        })
        .sum();
    assert_eq!(passed, 4, "every test once: {text}");
    let rows = shard_ends(&s);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter()
            .map(|r| r["items"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
    assert!(
        stderr(&out).contains("2/2 shards passed"),
        "{}",
        describe(&out)
    );
    // The items were timed one by one and recorded.
    let dir = s.state().join("history/shards");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let recorded: BTreeSet<&str> = history["items"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        recorded,
        BTreeSet::from(["lib:alpha", "lib:beta", "lib:gamma"]),
        "{history}"
    );
    nothing_left(&s);

    // A failing test fails its shard, with cargo's exit code as the verdict.
    let s = crate_repo(true);
    let out = s.run(&["run", "shard-tests", "--", "lib=only", "count=2"]);
    assert_eq!(code(&out), 101, "{}", describe(&out));
    assert!(stdout(&out).contains("gamma fails"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("1/2 shards passed"),
        "{}",
        describe(&out)
    );
    nothing_left(&s);
}

// ---------------------------------------------------------------- Nomad test server ----

fn cluster(profile: Profile) -> NomadServer {
    // Three nodes that take 6 boxes of 1000 MHz each, and one that takes none.
    NomadServer::builder()
        .profile(profile)
        .nodes(3, 6000)
        .node("leasebox-test-node-small", 500)
        .start()
}

fn run_on(s: &Scratch, nomad: &NomadServer, args: &[&str]) -> Output {
    s.leasebox(args)
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .output()
        .expect("run leasebox")
}

fn no_jobs_left(nomad: &NomadServer) {
    let jobs = nomad.jobs();
    assert!(jobs.is_empty(), "jobs left behind: {jobs:?}");
}

fn spread_recipe(count: u32, distinct: bool) -> String {
    format!(
        r#"local lb = require("leasebox")
return lb.shard {{
  count = {count},
  distinct_hosts = {distinct},
  run = function(box, shard)
    return box:exec {{ "sh", "-c", 'cat data.txt >/dev/null && echo "box $LEASEBOX_SHARD_INDEX of $LEASEBOX_SHARD_COUNT"' }}
  end,
}}
"#
    )
}

/// The nodes the shards ran on, in shard order.
fn nodes_of(s: &Scratch) -> Vec<String> {
    shard_ends(s)
        .iter()
        .map(|r| r["node"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn shard_groups_spread_over_the_nodes_of_a_cluster() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let nomad = cluster(profile);
        for count in [1u32, 4, 16] {
            let s = repo("spread", &spread_recipe(count, false));
            let out = run_on(&s, &nomad, &["run", "spread", "--events", "events.ndjson"]);
            assert_eq!(code(&out), 0, "{profile:?} {count}: {}", describe(&out));
            for k in 1..=count {
                assert!(stdout(&out).contains(&format!("[{k}/{count}] box {k} of {count}\n")));
            }
            let nodes = nodes_of(&s);
            assert_eq!(nodes.len(), count as usize);
            let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
            for n in &nodes {
                *per_node.entry(n.as_str()).or_default() += 1;
            }
            assert!(
                !per_node.contains_key("leasebox-test-node-small"),
                "{per_node:?}"
            );
            // Spread: as even as the nodes allow (16 over 3 nodes: 6, 5, 5).
            let expected = count.min(3) as usize;
            assert_eq!(
                per_node.len(),
                expected,
                "{profile:?} {count}: {per_node:?}"
            );
            let (lo, hi) = (
                per_node.values().min().copied().unwrap_or(0),
                per_node.values().max().copied().unwrap_or(0),
            );
            assert!(hi - lo <= 1, "{per_node:?}");
            // One job, its group of count N.
            let requested: Vec<_> = events(&s)
                .into_iter()
                .filter(|e| e["event"] == "lease_requested")
                .collect();
            assert_eq!(requested.len(), 1);
            let job = requested[0]["lease_id"].as_str().unwrap().to_owned();
            let allocs = nomad.allocations(&job);
            assert_eq!(allocs.len(), count as usize);
            no_jobs_left(&nomad);
            nothing_left(&s);
        }
    }
}

#[test]
fn distinct_hosts_puts_one_box_a_node_and_a_group_too_big_is_refused_and_purged() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let nomad = cluster(profile);
        let s = repo("distinct", &spread_recipe(3, true));
        let out = run_on(
            &s,
            &nomad,
            &["run", "distinct", "--events", "events.ndjson"],
        );
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let nodes: BTreeSet<String> = nodes_of(&s).into_iter().collect();
        assert_eq!(nodes.len(), 3, "{nodes:?}");
        nothing_left(&s);

        // Four boxes, one a node, and only three nodes can take one.
        let s = repo("toobig", &spread_recipe(4, true));
        let out = run_on(&s, &nomad, &["run", "toobig"]);
        assert_eq!(code(&out), 75, "{}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("3 of the group's 4 boxes placed"), "{err}");
        assert!(err.contains("distinct_hosts"), "{err}");
        assert!(err.contains("cpu"), "the small node is out of CPU: {err}");
        no_jobs_left(&nomad);
        nothing_left(&s);
    }
}

#[test]
fn run_shards_on_nomad_gives_the_first_failing_shards_code() {
    let nomad = cluster(Profile::Modern);
    let s = repo("unused", "return nil\n");
    let out = run_on(
        &s,
        &nomad,
        &[
            "run",
            "--shards",
            "4",
            "--",
            "sh",
            "-c",
            "cat src/b.txt; exit $((LEASEBOX_SHARD_INDEX == 3 ? 9 : 0))",
        ],
    );
    assert_eq!(code(&out), 9, "{}", describe(&out));
    for k in 1..=4 {
        assert!(
            stdout(&out).contains(&format!("[{k}/4] b\n")),
            "{}",
            describe(&out)
        );
    }
    no_jobs_left(&nomad);
    nothing_left(&s);
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
}

#[test]
fn ctrl_c_during_the_warmup_of_a_group_leaves_no_job_claim_or_process() {
    let nomad = cluster(Profile::Modern);
    nomad.pause_starts(true);
    let s = repo("slow", &spread_recipe(4, false));
    let child = s
        .leasebox(&["run", "slow"])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_for("the group's job to be registered", || {
        !nomad.jobs().is_empty()
    });
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    no_jobs_left(&nomad);
    nothing_left(&s);
    nomad.pause_starts(false);
    crate::support::wait_for("every task process to be gone", || {
        nomad.alive_processes().is_empty()
    });
}

#[test]
fn ctrl_c_during_the_steps_stops_every_shard_and_releases_the_group() {
    let nomad = cluster(Profile::V1_1);
    let s = repo(
        "long",
        r#"local lb = require("leasebox")
return lb.shard {
  count = 4,
  run = function(box, shard)
    return box:exec { "sh", "-c", 'echo $$ > "$PIDS/$LEASEBOX_SHARD_INDEX"; sleep 60', env = { PIDS = lb.args.pids } }
  end,
}
"#,
    );
    let pids = s.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let arg = format!("pids={}", pids.display());
    let child = s
        .leasebox(&["run", "long", "--", &arg])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_for("every shard to start its command", || {
        (1..=4).all(|k| {
            std::fs::read_to_string(pids.join(k.to_string())).is_ok_and(|t| t.ends_with('\n'))
        })
    });
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", describe(&out));
    for k in 1..=4 {
        let pid: i32 = std::fs::read_to_string(pids.join(k.to_string()))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        crate::support::wait_for("the shard's command to be gone", || {
            !crate::support::alive(pid)
        });
    }
    no_jobs_left(&nomad);
    nothing_left(&s);
}

const RESYNC_GROUP: &str = r#"local lb = require("leasebox")
local group = lb.warmup { count = 3 }
local first = group:sync {}
assert(first.boxes == 3 and first.files >= 1 and not first.incremental, "first sync")
for i = 1, #group do
  group[i]:exec { "sh", "-c", "echo built > built.txt" }
end
local again = group:sync {}
print(("again files=%d deleted=%d incremental=%s"):format(again.files, again.deleted, tostring(again.incremental)))
for i = 1, #group do
  local r = group[i]:exec { "cat", "built.txt", capture = true }
  print(("box %d keeps %s"):format(i, r.stdout:gsub("%s+$", "")))
end
group:cleanup()
"#;

#[test]
fn a_group_resync_is_incremental_in_every_box_and_keeps_what_the_boxes_built() {
    let s = repo("resync", RESYNC_GROUP);
    let out = s.run(&["run", "resync"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("again files=0 deleted=0 incremental=true"),
        "{}",
        describe(&out)
    );
    for k in 1..=3 {
        assert!(
            text.contains(&format!("box {k} keeps built")),
            "{}",
            describe(&out)
        );
    }
    nothing_left(&s);
}

#[test]
fn a_kept_group_reused_by_a_later_run_syncs_only_what_changed_and_keeps_what_its_boxes_built() {
    let s = repo(
        "build",
        r#"local lb = require("leasebox")
local group = lb.warmup { count = 3, keep = true }
group:sync {}
for i = 1, #group do
  group[i]:exec { "sh", "-c", "echo built > built.txt" }
end
lb.log("kept " .. group.id)
"#,
    );
    s.write(
        "recipes/again.lua",
        r#"local lb = require("leasebox")
local group = lb.warmup { count = 3 }
local again = group:sync {}
print(("again files=%d deleted=%d incremental=%s"):format(again.files, again.deleted, tostring(again.incremental)))
for i = 1, #group do
  local r = group[i]:exec { "cat", "built.txt", "data.txt", capture = true }
  print(("box %d has %s"):format(i, r.stdout:gsub("%s+", " ")))
end
"#,
    );
    s.commit();
    let out = s.run(&["run", "build"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let id = kept_group_id(&out);

    // Reuse the group in a new process: `files` were sent to each box, and every box still has
    // what it built beside the new data.
    let again = |files: usize| {
        let out = s.run(&["run", "again", "--lease", &id]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("again files={files} deleted=0 incremental=true")),
            "{}",
            describe(&out)
        );
        for k in 1..=3 {
            assert!(
                text.contains(&format!("box {k} has built changed data")),
                "{}",
                describe(&out)
            );
        }
        out
    };

    // One file changed: each box gets that file alone, compared against its own index.
    s.write("data.txt", "changed data\n");
    let out = again(1);
    assert!(
        !stderr(&out).contains("not the"),
        "no fence mismatch: each box's revision came from its own index: {}",
        describe(&out)
    );

    // With the local indexes lost, the boxes are compared with their own manifests, one by one:
    // still nothing is sent again, and nothing the boxes built is replaced.
    for entry in std::fs::read_dir(s.state().join("sync")).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    again(0);

    // `leasebox sync` of a kept group syncs every box, each by its own incremental sync.
    s.write("data.txt", "synced by hand\n");
    let out = s.run(&["sync", "--lease", &id, "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["lease"], id.as_str(), "{report}");
    let boxes = report["boxes"].as_array().expect("one report a box");
    assert_eq!(boxes.len(), 3, "{report}");
    for b in boxes {
        assert_eq!(b["files"], 1, "{report}");
        assert_eq!(b["incremental"], true, "{report}");
    }
    let out = s.run(&["sync", "--lease", &id, "--dry-run"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    for k in 1..=3 {
        assert!(
            stdout(&out).contains(&format!("lease `{id}` box {k} of 3: would send 0 of ")),
            "{}",
            describe(&out)
        );
    }

    // `leasebox run --lease GROUP -- CMD` runs the command on every box of the kept group,
    // synced box by box, with one verdict, and keeps the group.
    let out = s.run(&[
        "run",
        "--lease",
        &id,
        "--",
        "sh",
        "-c",
        "echo shard=$LEASEBOX_SHARD_INDEX/$LEASEBOX_SHARD_COUNT $(cat built.txt); exit $((LEASEBOX_SHARD_INDEX - 1))",
    ]);
    assert_eq!(
        code(&out),
        1,
        "the first failing shard's code: {}",
        describe(&out)
    );
    for k in 1..=3 {
        assert!(
            stdout(&out).contains(&format!("[{k}/3] shard={k}/3 built")),
            "{}",
            describe(&out)
        );
    }
    assert_eq!(s.claims().len(), 1, "the group is kept: {}", describe(&out));

    let out = s.run(&["stop", &id]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    nothing_left(&s);
    let sync_dir = s.state().join("sync");
    let left: Vec<_> = std::fs::read_dir(&sync_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "local indexes left: {left:?}");
}
