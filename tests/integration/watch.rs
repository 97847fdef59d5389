//! `leasebox watch`, driven as a user drives it: the real binary watching a real git
//! repository, real file writes (editors' rename-over saves, `sed -i`, truncate-and-write, a
//! `git checkout` of another branch), keys on stdin, Ctrl-C as a real SIGINT; on the local
//! backend and on the Nomad API test server. One group: the tests take [`GROUP`] in turn, so
//! no two watchers share the machine's inotify budget at once.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::nomad::NomadServer;
use crate::support::{Scratch, alive, wait_for};

static GROUP: Mutex<()> = Mutex::new(());

pub(crate) fn group() -> MutexGuard<'static, ()> {
    GROUP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const WAIT: Duration = Duration::from_secs(40);

/// A running `leasebox watch`: its stderr lines as they come, its stdin for keys.
struct Watch {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Watch {
    fn start(s: &Scratch, args: &[&str]) -> Watch {
        Watch::start_with(s, args, &[])
    }

    fn start_with(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Watch {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut cmd = s.leasebox(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start leasebox watch");
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    let (list, cv) = &*lines;
                    list.lock().unwrap().push(line);
                    cv.notify_all();
                }
            });
        }
        let stdin = child.stdin.take();
        Watch {
            child,
            stdin,
            lines,
        }
    }

    fn text(&self) -> String {
        self.lines.0.lock().unwrap().join("\n")
    }

    /// Wait (up to [`WAIT`]) until `found` finds what it looks for in the lines so far.
    fn wait_for<T>(&self, what: &str, found: impl Fn(&[String]) -> Option<T>) -> T {
        let (list, cv) = &*self.lines;
        let deadline = Instant::now() + WAIT;
        let mut guard = list.lock().unwrap();
        loop {
            if let Some(hit) = found(&guard) {
                return hit;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; output so far:\n{}",
                guard.join("\n")
            );
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Wait for the `n`-th (1-based) line holding `needle`; returns its index.
    fn wait_nth(&self, needle: &str, n: usize) -> usize {
        self.wait_for(&format!("{n}× `{needle}`"), |lines| {
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains(needle))
                .map(|(i, _)| i)
                .nth(n - 1)
        })
    }

    fn wait(&self, needle: &str) -> usize {
        self.wait_nth(needle, 1)
    }

    /// Wait until `n` lines are exactly `line` (a command's own output, which arrives on stdout
    /// and may trail the run's verdict on stderr).
    fn wait_exact(&self, line: &str, n: usize) {
        self.wait_for(&format!("{n}× the line `{line}`"), |lines| {
            (lines.iter().filter(|l| *l == line).count() >= n).then_some(())
        });
    }

    /// How many lines are exactly `line` (a command's own output, not its banner).
    fn count_exact(&self, line: &str) -> usize {
        self.lines
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == line)
            .count()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The line at `index`.
    fn line(&self, index: usize) -> String {
        self.lines.0.lock().unwrap()[index].clone()
    }

    /// Wait until run `n` ended (its verdict line) and the watch waits again.
    fn run_ended(&self, n: u32) -> String {
        let i = self.wait(&format!("==> run {n} "));
        let _ = i;
        let verdict = self.wait_verdict(n);
        self.line(verdict)
    }

    fn wait_verdict(&self, n: u32) -> usize {
        let (list, cv) = &*self.lines;
        let deadline = Instant::now() + WAIT;
        let mut guard = list.lock().unwrap();
        let prefix = format!("==> run {n} ");
        loop {
            if let Some(i) = guard.iter().position(|l| {
                l.starts_with(&prefix)
                    && (l.contains(" passed")
                        || l.contains(" failed")
                        || l.contains("stopped for a restart")
                        || l.contains(" cancelled"))
            }) {
                return i;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for the verdict of run {n}; output so far:\n{}",
                guard.join("\n")
            );
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// The change line of run `n`.
    fn change_line(&self, n: u32) -> String {
        let i = self.wait(&format!("==> run {n} ("));
        self.line(i)
    }

    fn key(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn sigint(&self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(i32::try_from(self.child.id()).unwrap(), libc::SIGINT);
        }
    }

    /// Wait for the process to exit; its code.
    fn exit(mut self) -> (i32, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers drain.
                std::thread::sleep(Duration::from_millis(50));
                return (status.code().unwrap_or(-1), self.text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("leasebox watch did not exit; output:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn quit(mut self) -> (i32, String) {
        self.key("q");
        self.exit()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A repository with a `.gitignore`d `node_modules/`, sources, and a recipe whose steps say
/// what they see.
fn repo() -> Scratch {
    let s = Scratch::new();
    s.write(".gitignore", "node_modules/\n*.log\n");
    s.write("src/main.rs", "fn main() {}\n");
    s.write("notes.txt", "one\n");
    s.write("node_modules/pkg/index.js", "x\n");
    s.write(
        "recipes/show.lua",
        r#"return require("leasebox").recipe {
  steps = {
    { "show", "echo notes=$(cat notes.txt) main=$(cat src/main.rs)" },
  },
}
"#,
    );
    s.commit();
    s
}

fn write_atomically(s: &Scratch, rel: &str, content: &str) {
    // What many editors do: write a temporary file beside it, rename it over.
    let path = s.repo().join(rel);
    let tmp = path.with_file_name(format!(
        ".{}.tmp~",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn no_leases_left(s: &Scratch) {
    assert!(
        s.lease_dirs().is_empty(),
        "lease left: {:?}",
        s.lease_dirs()
    );
    assert!(s.claims().is_empty(), "claim left: {:?}", s.claims());
}

#[test]
fn editors_saves_sed_and_truncation_each_rerun_naming_only_the_file() {
    let _g = group();
    let s = repo();
    let w = Watch::start(&s, &["show"]);
    assert!(w.run_ended(1).contains("passed"), "{}", w.text());
    w.wait("notes=one main=fn main() {}");

    // A rename-over save, with a vim-style probe file that comes and goes.
    std::fs::write(s.repo().join("src/4913"), "").unwrap();
    std::fs::remove_file(s.repo().join("src/4913")).unwrap();
    write_atomically(&s, "notes.txt", "two\n");
    assert!(
        w.change_line(2).ends_with("changed notes.txt (1 file)"),
        "{}",
        w.text()
    );
    w.run_ended(2);
    w.wait("notes=two");

    // `sed -i` writes a temporary file and renames it over.
    let ok = std::process::Command::new("sed")
        .args(["-i", "s/main/start/", "src/main.rs"])
        .current_dir(s.repo())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(
        w.change_line(3).ends_with("changed src/main.rs (1 file)"),
        "{}",
        w.text()
    );
    w.run_ended(3);
    w.wait("main=fn start() {}");

    // Truncate, then write (in two steps, as `>` in a shell does).
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(s.repo().join("notes.txt"))
            .unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        f.write_all(b"three\n").unwrap();
    }
    assert!(
        w.change_line(4).ends_with("changed notes.txt (1 file)"),
        "{}",
        w.text()
    );
    w.run_ended(4);
    w.wait("notes=three");

    // Ignored paths raise nothing: node_modules is not even watched, *.log is filtered.
    std::fs::write(s.repo().join("node_modules/pkg/index.js"), "y\n").unwrap();
    std::fs::write(s.repo().join("debug.log"), "log\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(w.count("==> run 5"), 0, "{}", w.text());

    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("==> watching 3 directories"), "{text}");
    no_leases_left(&s);
}

#[test]
fn a_branch_switch_is_summarised_and_rerun_once() {
    let _g = group();
    let s = repo();
    s.git(&["checkout", "-q", "-b", "other"]);
    for i in 0..150 {
        s.write(&format!("gen/file{i:03}.txt"), &format!("{i}\n"));
    }
    s.commit();
    s.git(&["checkout", "-q", "main"]);
    let w = Watch::start(&s, &["show"]);
    w.run_ended(1);
    s.git(&["checkout", "-q", "other"]);
    w.wait("files changed at once (a branch switch?)");
    let change = w.change_line(2);
    assert!(change.contains("(150 files)"), "{change}");
    w.run_ended(2);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(w.count("==> run 3"), 0, "one rerun: {}", w.text());
    assert_eq!(w.count("files changed at once"), 1, "{}", w.text());
    // Back again: the files are gone, and that is a change too.
    s.git(&["checkout", "-q", "main"]);
    assert!(w.change_line(3).contains("(150 files)"), "{}", w.text());
    w.run_ended(3);
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    no_leases_left(&s);
}

#[test]
fn a_burst_is_debounced_and_changes_during_a_run_queue_one_rerun() {
    let _g = group();
    let s = repo();
    s.write(
        "recipes/slow.lua",
        r#"return require("leasebox").recipe {
  steps = { { "slow", "echo slow-started; sleep 1.5; echo slow-done" } },
}
"#,
    );
    s.commit();
    let w = Watch::start(&s, &["slow", "--debounce", "200ms"]);
    w.run_ended(1);
    // Five writes in quick succession: one run naming all five.
    for i in 0..5 {
        s.write(&format!("src/m{i}.rs"), "x\n");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(w.change_line(2).contains("(5 files)"), "{}", w.text());
    w.wait_nth("slow-started", 2);
    // While run 2 runs: three changes, spaced past the debounce; one rerun after it ends.
    for name in ["a", "b", "c"] {
        s.write(&format!("src/{name}.rs"), "y\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    let verdict2 = w.wait_verdict(2);
    let change3 = w.change_line(3);
    assert!(
        change3.contains("src/a.rs, src/b.rs, src/c.rs (3 files)"),
        "{change3}"
    );
    assert!(
        w.wait("==> run 3 (") > verdict2,
        "never two runs at once: {}",
        w.text()
    );
    // Run 2 ran to its end.
    w.wait_exact("slow-done", 2);
    w.run_ended(3);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(w.count("==> run 4"), 0, "{}", w.text());
    // Enter reruns now.
    let mut w = w;
    w.key("");
    assert!(
        w.change_line(4).contains("rerunning everything"),
        "{}",
        w.text()
    );
    w.run_ended(4);
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    no_leases_left(&s);
}

fn restart_repo() -> Scratch {
    let s = repo();
    s.write(
        "recipes/long.lua",
        r#"return require("leasebox").recipe {
  watch = { on_busy = "restart" },
  steps = { { "long", "echo $$ > \"$PIDS\"/pid-$(cat notes.txt); echo long-started; sleep 30" } },
  env = { PIDS = os.getenv("LEASEBOX_TEST_PIDS") or "/nonexistent" },
}
"#,
    );
    s.commit();
    s
}

fn pid_in(dir: &std::path::Path, name: &str) -> i32 {
    let path = dir.join(name);
    // The shell creates the file before it writes the pid into it.
    let read = || std::fs::read_to_string(&path).ok()?.trim().parse().ok();
    wait_for(&format!("a pid in {}", path.display()), || read().is_some());
    read().unwrap()
}

fn user_config(s: &Scratch, text: &str) {
    let dir = s.path().join("config/leasebox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

#[test]
fn restart_stops_the_run_and_starts_again_and_the_flag_wins_over_the_recipe() {
    let _g = group();
    let s = restart_repo();
    let pids = tempfile::tempdir().unwrap();
    user_config(&s, "lua_env_allow = [\"LEASEBOX_TEST_PIDS\"]\n");
    let env = [("LEASEBOX_TEST_PIDS", pids.path().to_str().unwrap())];
    let events = s.path().join("restart.ndjson");
    let w = Watch::start_with(&s, &["long", "--events", events.to_str().unwrap()], &env);
    w.wait("long-started");
    let first = pid_in(pids.path(), "pid-one");
    write_atomically(&s, "notes.txt", "two\n");
    w.wait("files changed during run 1: restarting it");
    assert!(
        w.run_ended(1).contains("stopped for a restart"),
        "{}",
        w.text()
    );
    wait_for("the first run's command to stop", || !alive(first));
    assert!(
        w.change_line(2).contains("changed notes.txt"),
        "{}",
        w.text()
    );
    w.wait_nth("long-started", 2);
    let second = pid_in(pids.path(), "pid-two");
    w.sigint();
    let (code, text) = w.exit();
    assert_eq!(code, 130, "{text}");
    wait_for("the second run's command to stop", || !alive(second));
    // The events: run 1 ended `restarted`, run 2 by Ctrl-C, the watch `cancelled`.
    let records = crate::events::validated(&std::fs::read_to_string(&events).unwrap());
    let ends: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["event"] == "run_end").collect();
    assert_eq!(ends.len(), 2, "{records:#?}");
    assert_eq!(
        ends[0]["watch"],
        serde_json::json!({"number": 1, "restarted": true})
    );
    assert_eq!(ends[0]["error_kind"], "cancelled");
    assert_eq!(
        ends[1]["watch"],
        serde_json::json!({"number": 2, "restarted": false})
    );
    assert_eq!(ends[1]["exit_code"], 130);
    let last = records.last().unwrap();
    assert_eq!(last["event"], "watch_end");
    assert_eq!(last["restarted"], 1);
    assert_eq!(last["exit_code"], 130);
    assert_eq!(last["error_kind"], "cancelled");
    no_leases_left(&s);

    // `--on-busy queue` wins over the recipe's `restart`.
    let w = Watch::start_with(&s, &["long", "--on-busy", "queue", "--timeout", "2s"], &env);
    w.wait("long-started");
    write_atomically(&s, "notes.txt", "three\n");
    w.run_ended(1);
    assert_eq!(w.count("restarting"), 0, "{}", w.text());
    assert!(
        w.change_line(2).contains("changed notes.txt"),
        "{}",
        w.text()
    );
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    no_leases_left(&s);
}

#[test]
fn when_globs_ctx_changed_and_lb_changed_see_what_changed() {
    let _g = group();
    let s = repo();
    s.write("README.md", "# r\n");
    s.write(
        "recipes/when.lua",
        r#"return require("leasebox").recipe {
  steps = {
    { "always", "echo always-ran" },
    { "rust", "echo rust-ran", when = { "src/**", "Cargo.toml" } },
    { "docs", "echo docs-ran", when = "*.md" },
    { "seen", function(box, ctx)
        if ctx.changed == nil then
          require("leasebox").log("changed=nil")
        else
          require("leasebox").log("changed=" .. table.concat(ctx.changed, ","))
        end
      end },
  },
}
"#,
    );
    s.write(
        "recipes/imperative.lua",
        r#"local lb = require("leasebox")
local changed = lb.changed()
lb.log("lb.changed=" .. (changed and table.concat(changed, ",") or "nil"))
local box = lb.warmup {}
box:sync {}
box:exec { "true" }
"#,
    );
    s.commit();
    let w = Watch::start(&s, &["when"]);
    w.run_ended(1);
    // The first run runs everything.
    for line in ["always-ran", "rust-ran", "docs-ran", "--> changed=nil"] {
        w.wait_exact(line, 1);
    }
    s.write("src/lib.rs", "pub fn f() {}\n");
    w.run_ended(2);
    w.wait_exact("rust-ran", 2);
    w.wait("docs: skipped (no changed path matches its `when` { *.md })");
    w.wait("changed=src/lib.rs");
    s.write("docs/guide.md", "g\n");
    w.run_ended(3);
    // Run 3's last output line is in, so all of runs 2 and 3 is: `docs` ran in runs 1 and 3
    // only, `rust` in runs 1 and 2 only.
    w.wait_exact("always-ran", 3);
    w.wait_exact("docs-ran", 2);
    assert_eq!(w.count_exact("rust-ran"), 2, "{}", w.text());
    assert_eq!(w.count_exact("docs-ran"), 2, "{}", w.text());
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");

    let w = Watch::start(&s, &["imperative"]);
    w.run_ended(1);
    w.wait("lb.changed=nil");
    write_atomically(&s, "notes.txt", "x\n");
    w.run_ended(2);
    w.wait("lb.changed=notes.txt");
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    no_leases_left(&s);
}

fn lease_record(s: &Scratch, id: &str) -> serde_json::Value {
    let path = s
        .cache()
        .join("leasebox/leases")
        .join(id)
        .join("lease.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_leases_are_renewed_kept_from_cleanup_and_kept_with_keep() {
    let _g = group();
    let s = repo();
    let mut timing = s.path().join("timings").display().to_string();
    timing.push('/');
    let w = Watch::start(&s, &["show", "--keep", "--timing-json", &timing]);
    w.run_ended(1);
    let claims = s.claims();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let id = claims[0]["id"].as_str().unwrap().to_owned();
    let used1 = claims[0]["last_used"].as_str().unwrap().to_owned();
    let expires1 = lease_record(&s, &id)["expires_at"].as_u64().unwrap();
    // Claims and records keep whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    // A cleanup meanwhile leaves the box in use alone.
    let out = s.run(&["cleanup"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("in use"),
        "{}",
        crate::support::describe(&out)
    );
    assert_eq!(s.lease_dirs(), std::slice::from_ref(&id));
    write_atomically(&s, "notes.txt", "two\n");
    w.run_ended(2);
    w.wait("reusing warm lease");
    let claims = s.claims();
    let used2 = claims[0]["last_used"].as_str().unwrap().to_owned();
    assert!(used2 > used1, "last_used renewed: {used1} → {used2}");
    assert_eq!(claims[0]["renewed"].as_str(), Some(used2.as_str()));
    let expires2 = lease_record(&s, &id)["expires_at"].as_u64().unwrap();
    assert!(
        expires2 > expires1,
        "the box's expiry renewed: {expires1} → {expires2}"
    );
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("kept lease {id}")), "{text}");
    assert_eq!(s.lease_dirs(), std::slice::from_ref(&id));

    // One timing file per run, each with its own run id and what changed.
    let mut files: Vec<_> = std::fs::read_dir(s.path().join("timings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let runs: Vec<serde_json::Value> = files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    assert_ne!(runs[0]["run_id"], runs[1]["run_id"]);
    assert!(runs[0].get("changed").is_none());
    assert_eq!(runs[1]["changed"], serde_json::json!(["notes.txt"]));
    assert!(
        runs[1]["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "step:show")
    );

    // The kept lease is reused by the next watch, and released with `stop`.
    let w = Watch::start(&s, &["show", "--lease", &id, "--timing-json", "t.json"]);
    w.run_ended(1);
    w.wait("reusing kept lease");
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    assert_eq!(s.lease_dirs(), std::slice::from_ref(&id));
    assert!(s.repo().join("t.json").is_file());
    let out = s.run(&["stop", &id]);
    assert!(out.status.success(), "{}", crate::support::describe(&out));
    no_leases_left(&s);
}

#[test]
fn ctrl_c_stops_the_run_releases_and_exits_130_and_a_command_watch_works() {
    let _g = group();
    let s = repo();
    let pids = tempfile::tempdir().unwrap();
    let pidfile = pids.path().join("pid");
    let script = format!(
        "echo $$ > {}; echo cmd-started; sleep 30",
        pidfile.display()
    );
    let w = Watch::start(&s, &["--", "sh", "-c", &script]);
    w.wait("cmd-started");
    let pid = pid_in(pids.path(), "pid");
    w.sigint();
    let (code, text) = w.exit();
    assert_eq!(code, 130, "{text}");
    wait_for("the command to stop", || !alive(pid));
    no_leases_left(&s);

    // Bad flags are refused before anything is leased.
    let out = s.run(&["watch", "--debounce", "soon", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        crate::support::describe(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid `--debounce soon`"));
    no_leases_left(&s);
}

#[test]
fn polling_notices_changes_too() {
    let _g = group();
    let s = repo();
    let w = Watch::start(&s, &["show", "--poll", "100ms"]);
    w.run_ended(1);
    std::thread::sleep(Duration::from_millis(1100));
    s.write("notes.txt", "polled\n");
    assert!(
        w.change_line(2).contains("changed notes.txt"),
        "{}",
        w.text()
    );
    w.run_ended(2);
    w.wait("notes=polled");
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    no_leases_left(&s);
}

#[test]
fn on_the_nomad_test_server_the_same_recipes_rerun_restart_and_leave_nothing() {
    let _g = group();
    for nomad in [NomadServer::start_v1_1(), NomadServer::start_modern()] {
        let s = restart_repo();
        let nomad_env = [
            ("NOMAD_ADDR", nomad.url()),
            ("LEASEBOX_NOMAD_DRIVER", "raw_exec".to_owned()),
        ];
        let env: Vec<(&str, &str)> = nomad_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let w = Watch::start_with(&s, &["show"], &env);
        w.run_ended(1);
        w.wait("notes=one");
        let job = nomad.jobs()[0].clone();
        let meta =
            |nomad: &NomadServer| nomad.job(&job.namespace, &job.id).unwrap()["Meta"].clone();
        let meta1 = meta(&nomad);
        let created = s.claims()[0]["created"].as_str().unwrap().to_owned();
        // Claims keep whole seconds.
        std::thread::sleep(Duration::from_millis(1100));
        write_atomically(&s, "notes.txt", "two\n");
        assert!(
            w.change_line(2).ends_with("changed notes.txt (1 file)"),
            "{}",
            w.text()
        );
        w.run_ended(2);
        w.wait("notes=two");
        w.wait("reusing warm lease");
        assert_eq!(nomad.jobs().len(), 1, "one box for every run");
        // The claim is renewed (its TTL counts from the renewal); the job is left as it was:
        // the same version and Meta, the same one allocation (a new version would replace it).
        let renewed2 = s.claims()[0]["renewed"].as_str().unwrap().to_owned();
        assert!(renewed2 > created, "claim renewed: {created} → {renewed2}");
        assert_eq!(nomad.jobs()[0].version, job.version);
        assert_eq!(meta(&nomad), meta1);
        assert_eq!(nomad.allocations(&job.id).len(), 1);
        let (code, text) = w.quit();
        assert_eq!(code, 0, "{:?}: {text}", nomad.profile());
        assert!(nomad.jobs().is_empty(), "jobs left: {:?}", nomad.jobs());
        assert!(s.claims().is_empty(), "claims left: {:?}", s.claims());

        // Restart on Nomad: the box-side command is stopped; Ctrl-C leaves nothing.
        let pids = tempfile::tempdir().unwrap();
        user_config(&s, "lua_env_allow = [\"LEASEBOX_TEST_PIDS\"]\n");
        let mut env = env.clone();
        env.push(("LEASEBOX_TEST_PIDS", pids.path().to_str().unwrap()));
        let w = Watch::start_with(&s, &["long"], &env);
        w.wait("long-started");
        let first = pid_in(pids.path(), "pid-two");
        write_atomically(&s, "notes.txt", "three\n");
        assert!(
            w.run_ended(1).contains("stopped for a restart"),
            "{}",
            w.text()
        );
        wait_for("the first command to stop", || !alive(first));
        w.wait_nth("long-started", 2);
        let second = pid_in(pids.path(), "pid-three");
        w.sigint();
        let (code, text) = w.exit();
        assert_eq!(code, 130, "{:?}: {text}", nomad.profile());
        wait_for("the second command to stop", || !alive(second));
        assert!(nomad.jobs().is_empty(), "jobs left: {:?}", nomad.jobs());
        assert!(s.claims().is_empty(), "claims left: {:?}", s.claims());
    }
}

#[test]
fn every_rerun_is_a_run_of_its_own_in_the_events_and_the_watch_ends_with_its_summary() {
    let _g = group();
    let s = repo();
    s.write(
        "recipes/check.lua",
        r#"return require("leasebox").recipe {
  steps = {
    { "show", "echo notes=$(cat notes.txt)" },
    { "check", "test \"$(cat notes.txt)\" != bad" },
  },
}
"#,
    );
    s.commit();
    let events = s.path().join("events.ndjson");
    let w = Watch::start(&s, &["check", "--events", events.to_str().unwrap()]);
    assert!(w.run_ended(1).contains("passed in"), "{}", w.text());
    write_atomically(&s, "notes.txt", "bad\n");
    let verdict = w.run_ended(2);
    assert!(
        verdict.starts_with("==> run 2 failed in ")
            && verdict.ends_with(": step `check` exited with code 1 · steps 1 passed, 1 failed"),
        "{}",
        w.text()
    );
    write_atomically(&s, "notes.txt", "good\n");
    assert!(
        w.run_ended(3).ends_with(" · steps 2 passed"),
        "{}",
        w.text()
    );
    // No run prints the closing summary: each has its one line.
    assert_eq!(w.count("==> summary"), 0, "{}", w.text());
    let (code, text) = w.quit();
    assert_eq!(code, 0, "{text}");
    // On exit: the last run's steps, the totals and the lease's fate.
    let tail: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("==> summary"))
        .collect();
    assert_eq!(tail.first(), Some(&"==> summary of run 3"), "{text}");
    let last = tail.last().unwrap();
    assert!(
        last.starts_with("==> watched 3 runs in ")
            && last.contains(": 2 passed, 1 failed · lease lbx_")
            && last.ends_with(" released"),
        "{text}"
    );
    no_leases_left(&s);

    // The stream: every record valid; each run its own id, from `run_start` (seq 0, its
    // number, what started it) to `run_end`; the lease's release after the last run's end,
    // and `watch_end` last.
    let records = crate::events::validated(&std::fs::read_to_string(&events).unwrap());
    let mut runs: Vec<(String, Vec<&serde_json::Value>)> = Vec::new();
    for record in &records {
        let id = record["run_id"].as_str().unwrap().to_owned();
        match runs.last_mut() {
            Some((last, list)) if *last == id => list.push(record),
            _ => {
                assert!(
                    runs.iter().all(|(seen, _)| *seen != id),
                    "run ids interleave"
                );
                runs.push((id, vec![record]));
            }
        }
    }
    assert_eq!(runs.len(), 3, "{records:#?}");
    for (n, (_, list)) in runs.iter().enumerate() {
        let number = n + 1;
        let kinds = crate::events::kinds(&list.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        assert_eq!(kinds[0], "run_start");
        assert_eq!(list[0]["seq"], 0);
        assert_eq!(list[0]["recipe"], "check");
        assert_eq!(list[0]["watch"]["number"], number);
        let end = kinds.iter().position(|k| k == "run_end").unwrap();
        assert_eq!(list[end]["watch"]["number"], number);
        assert_eq!(list[end]["watch"]["restarted"], false);
        assert_eq!(
            kinds.iter().filter(|k| *k == "step_end").count(),
            2,
            "run {number}: {kinds:?}"
        );
        assert!(
            kinds.contains(&"sync_end".to_owned()),
            "run {number}: {kinds:?}"
        );
        assert_eq!(
            kinds.contains(&"lease_requested".to_owned()),
            number == 1,
            "only the first run leases: {kinds:?}"
        );
        if number < 3 {
            assert_eq!(
                end,
                kinds.len() - 1,
                "run {number} ends with run_end: {kinds:?}"
            );
        } else {
            assert_eq!(
                &kinds[end + 1..],
                ["lease_released", "watch_end"],
                "{kinds:?}"
            );
        }
    }
    let start = |n: usize| &runs[n].1[0]["watch"];
    assert_eq!(start(0)["trigger"], "start");
    assert_eq!(start(0)["changed"], serde_json::Value::Null);
    assert_eq!(start(1)["trigger"], "change");
    assert_eq!(start(1)["changed"], serde_json::json!(["notes.txt"]));
    assert_eq!(start(1)["changed_count"], 1);
    let end_of = |n: usize| {
        runs[n]
            .1
            .iter()
            .find(|r| r["event"] == "run_end")
            .copied()
            .unwrap()
    };
    assert_eq!(end_of(1)["exit_code"], 1);
    assert_eq!(end_of(1)["error_kind"], "command_failed");
    assert_eq!(end_of(2)["passed"], true);
    let watch_end = records.last().unwrap();
    assert_eq!(watch_end["runs"], 3);
    assert_eq!(watch_end["passed"], 2);
    assert_eq!(watch_end["failed"], 1);
    assert_eq!(watch_end["restarted"], 0);
    assert_eq!(watch_end["exit_code"], 0);
    assert_eq!(watch_end["error_kind"], serde_json::Value::Null);
}

#[test]
fn a_rerun_sends_only_the_changed_file_and_what_the_box_built_stays_on_both_backends() {
    let _g = group();
    let nomad = NomadServer::start_modern();
    let nomad_env = [
        ("NOMAD_ADDR", nomad.url()),
        ("LEASEBOX_NOMAD_DRIVER", "raw_exec".to_owned()),
    ];
    let nomad_env: Vec<(&str, &str)> = nomad_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for env in [&[][..], &nomad_env[..]] {
        let s = repo();
        s.write(
            "recipes/build.lua",
            r#"return require("leasebox").recipe {
  steps = {
    { "build", "if test -f target/built; then echo cache=warm; else mkdir -p target && echo x > target/built && echo cache=cold; fi; echo notes=$(cat notes.txt)" },
  },
}
"#,
        );
        s.commit();
        let w = Watch::start_with(&s, &["build"], env);
        w.run_ended(1);
        w.wait("cache=cold");
        write_atomically(&s, "notes.txt", "two\n");
        w.run_ended(2);
        w.wait("notes=two");
        // The box's build output survived the rerun's sync, which sent the one changed file.
        w.wait("cache=warm");
        let sync = w.wait_nth("==> synced ", 2);
        assert!(
            w.line(sync)
                .starts_with("==> synced 1 file (4 bytes), incremental in "),
            "{}",
            w.text()
        );
        let (code, text) = w.quit();
        assert_eq!(code, 0, "{text}");
        no_leases_left(&s);
    }
    assert!(nomad.jobs().is_empty(), "{:?}", nomad.jobs());
}
