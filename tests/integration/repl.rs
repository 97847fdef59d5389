//! `leasebox repl` and `run --repl-on-failure`: the interactive prompt through a real
//! pseudo-terminal (line editing, multi-line entries, completion, history across sessions,
//! Ctrl-C in a long exec, `:retry` after a failed step), and the piped mode (stdin not a
//! terminal) on the local backend and, with `--lease`, on the Nomad test server in both
//! profiles. The pseudo-terminal tests share one group (a lock): they are few and each drives
//! a whole session.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

use crate::support::nomad::NomadServer;
use crate::support::{Scratch, code, describe, stderr, stdout, wait_for};

/// The pseudo-terminal tests run one at a time.
static PTY_GROUP: Mutex<()> = Mutex::new(());

/// `leasebox` on a pseudo-terminal: what it printed (escape sequences removed), and its input.
struct Pty {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    output: Arc<Mutex<Vec<u8>>>,
    /// How much of the (cleaned) output earlier expectations consumed.
    seen: usize,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Pty {
    fn spawn(s: &Scratch, args: &[&str]) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 200,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_leasebox"));
        cmd.args(args);
        cmd.cwd(s.repo());
        cmd.env_clear();
        for (k, v) in s.env() {
            cmd.env(k, v);
        }
        cmd.env("TERM", "xterm");
        let child = pair.slave.spawn_command(cmd).expect("spawn on the pty");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = pair.master.take_writer().expect("pty writer");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            writer,
            output,
            seen: 0,
            _master: pair.master,
        }
    }

    fn text(&self) -> String {
        clean(&self.output.lock().unwrap())
    }

    /// Wait until `needle` appears after what earlier expectations consumed; consume it.
    fn expect(&mut self, needle: &str) {
        let start = std::time::Instant::now();
        loop {
            let text = self.text();
            if let Some(at) = text.get(self.seen..).and_then(|rest| rest.find(needle)) {
                self.seen += at + needle.len();
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "timed out waiting for {needle:?} on the terminal; it shows (after what was \
                 already matched):\n{}",
                text.get(self.seen..).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Wait for a value printed on a line of its own.
    fn value(&mut self, value: &str) {
        self.expect(&format!("\n{value}\n"));
    }

    fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Type an entry and press Enter, once the prompt is there.
    fn line(&mut self, entry: &str) {
        self.expect("lb> ");
        self.send(entry);
        self.send("\r");
    }

    fn wait(&mut self) -> i32 {
        let status = self.child.wait().expect("wait");
        i32::try_from(status.exit_code()).unwrap()
    }
}

/// Terminal output without escape sequences (CSI, OSC) and carriage returns.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    for c in chars.by_ref() {
                        if c == '\x07' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether a `sleep SECONDS` process runs on this machine.
fn sleeping(seconds: &str) -> bool {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten().any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes())
            })
        })
        .unwrap_or(false)
}

fn repo() -> Scratch {
    let s = Scratch::new();
    s.write("data.txt", "synced data\n");
    s.commit();
    s
}

#[test]
fn the_prompt_edits_continues_completes_remembers_and_survives_ctrl_c() {
    let _group = PTY_GROUP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = repo();
    let mut pty = Pty::spawn(&s, &["repl"]);
    pty.expect("REPL");

    // Values print; variables (also `local` ones) survive between entries.
    pty.line("x = 4");
    pty.line("x * 10");
    pty.value("40");
    pty.line("local y = 5");
    pty.line("=y + 1");
    pty.value("6");
    pty.line("{ 1, 'two', nested = { ok = true } }");
    pty.expect("{ 1, \"two\", nested = { ok = true } }");

    // Line editing: Ctrl-B moves back one character, the insertion lands there.
    pty.expect("lb> ");
    pty.send("=21\x020\r");
    pty.value("201");

    // An error names its line and the session goes on.
    pty.line("error('boom')");
    pty.expect("repl:1: boom");
    pty.line("x");
    pty.value("4");

    // Completion of a global, a table key, and (after taking a lease) a `box:` method.
    pty.line("config_value = 3; settings = { alpha = 11 }");
    pty.expect("lb> ");
    pty.send("=config_v\t + 1\r");
    pty.value("4");
    pty.expect("lb> ");
    pty.send("=settings.al\t\r");
    pty.value("11");
    pty.line(":lease take");
    pty.expect("box = lease lbx_");
    pty.expect("lb> ");
    pty.send("r = box:ex\t{ 'sh', '-c', 'echo completed-$((6 * 7))' }\r");
    pty.expect("completed-42");

    // (An uncommon duration: `sleeping` looks at every process of the machine.)
    // Ctrl-C stops a long exec and the prompt comes back.
    pty.line("box:exec{ 'sh', '-c', 'echo long-$((1 + 1))-started; exec sleep 317' }");
    pty.expect("long-2-started");
    // The line comes before the `exec`: wait for the `sleep` itself.
    wait_for("the long command to run", || sleeping("317"));
    pty.send("\x03");
    pty.expect("cancelled");
    wait_for("the interrupted command to stop", || !sleeping("317"));
    // Ctrl-C also stops a busy Lua loop.
    pty.line("print(('spin'):rep(2)); while true do end");
    pty.expect("spinspin");
    pty.send("\x03");
    pty.expect("cancelled");
    pty.line("1 + 1");
    pty.value("2");

    // A multi-line entry, last before leaving, for the history test below.
    pty.line("function sq(n)");
    pty.send("return n * n\r");
    pty.send("end\r");
    // The editor redraws the whole entry (prompt included) while it grows: wait for the
    // accepted entry's last line before looking for the next prompt.
    pty.expect("end\n");
    pty.line("sq(7)");
    pty.value("49");
    pty.line(":quit");
    assert_eq!(pty.wait(), 0, "{}", pty.text());
    assert!(s.lease_dirs().is_empty(), "the REPL's lease is released");
    let history = std::fs::read_to_string(s.state().join("repl_history")).unwrap();
    assert!(
        history.contains("function sq(n)\\nreturn n * n\\nend"),
        "the multi-line entry is one history entry: {history}"
    );

    // A new session recalls the multi-line entry whole: up past `:quit` and `sq(7)`.
    let mut pty = Pty::spawn(&s, &["repl"]);
    pty.expect("lb> ");
    pty.send("\x1b[A\x1b[A\x1b[A\r");
    pty.line("sq(9)");
    pty.value("81");
    pty.send("\x04");
    assert_eq!(pty.wait(), 0, "{}", pty.text());
}

#[test]
fn repl_on_failure_retries_a_recipe_step_and_continues() {
    let _group = PTY_GROUP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = Scratch::new();
    s.write(
        "recipes/ci.lua",
        r#"return require("leasebox").recipe {
  steps = {
    { "prep", "echo prep-ran" },
    { "flaky", "test -f fixed || { echo flaky-out; echo flaky-err >&2; exit 3; }" },
    { "after", "echo after-ran" },
  },
}
"#,
    );
    s.commit();
    let mut pty = Pty::spawn(&s, &["run", "ci", "--repl-on-failure"]);
    pty.expect("prep-ran");
    pty.expect("the REPL is open");
    pty.line("last.code");
    pty.value("3");
    pty.line("last.step .. ' ' .. last.stdout .. last.stderr");
    pty.expect("flaky flaky-out\nflaky-err");
    pty.line(":retry");
    pty.expect("failed (exit code 3)");
    pty.line("box:exec{ 'touch', 'fixed' }.code");
    pty.value("0");
    pty.line(":retry");
    pty.expect("after-ran");
    pty.expect("==> passed");
    pty.send("\x04");
    assert_eq!(pty.wait(), 0, "the last verdict decides: {}", pty.text());
    assert!(s.lease_dirs().is_empty());

    // Leaving without a retry keeps the failure's code.
    let mut pty = Pty::spawn(&s, &["run", "ci", "--repl-on-failure"]);
    pty.expect("the REPL is open");
    pty.line(":quit");
    assert_eq!(pty.wait(), 3, "{}", pty.text());
    assert!(s.lease_dirs().is_empty());
}

#[test]
fn repl_on_failure_retries_the_failed_exec_of_an_imperative_recipe() {
    let _group = PTY_GROUP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = Scratch::new();
    s.write(
        "recipes/imp.lua",
        r#"local lb = require("leasebox")
helper_global = "from the recipe"
local box = lb.warmup {}
local r = box:exec { "sh", "-c", "test -f fixed || { echo imp-fail; exit 4; }" }
if r.code ~= 0 then lb.fail("check failed", r.code) end
"#,
    );
    s.commit();
    let mut pty = Pty::spawn(&s, &["run", "imp", "--repl-on-failure"]);
    pty.expect("imp-fail");
    pty.expect("the REPL is open");
    pty.line("last.code .. ' ' .. last.at");
    pty.expect("4 recipes/imp.lua:4");
    pty.line("last.stdout");
    pty.expect("imp-fail");
    pty.line("helper_global");
    pty.expect("from the recipe");
    pty.line(":retry");
    pty.expect("failed (exit code 4)");
    pty.line("box:exec{ 'touch', 'fixed' }.ok");
    pty.expect("true");
    pty.line(":retry");
    pty.expect("==> passed");
    pty.line(":quit");
    assert_eq!(pty.wait(), 0, "{}", pty.text());
    assert!(s.lease_dirs().is_empty());
}

/// `leasebox repl ARGS` with `input` piped to stdin.
fn piped(
    s: &Scratch,
    args: &[&str],
    input: &str,
    extra_env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = s.leasebox(args);
    cmd.envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn leasebox");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn piped_input_is_one_chunk_with_the_recipe_exit_codes() {
    let s = repo();
    let out = piped(&s, &["repl"], "print(1+1)\n", &[]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, "2\n"),
        "{}",
        describe(&out)
    );

    let out = piped(
        &s,
        &["repl"],
        "local t = { 1, 2 }\nprint(#t)\nlb.fail('nope', 7)\n",
        &[],
    );
    assert_eq!(code(&out), 7, "{}", describe(&out));
    assert_eq!(stdout(&out), "2\n");
    assert!(stderr(&out).contains("nope"), "{}", describe(&out));

    let out = piped(&s, &["repl"], "local x = = 1\n", &[]);
    assert_eq!(code(&out), 65, "{}", describe(&out));
    assert!(stderr(&out).contains("stdin:1:"), "{}", describe(&out));

    // The same sandbox as recipes.
    let out = piped(&s, &["repl"], "\nio.open('/etc/passwd')\n", &[]);
    assert_eq!(code(&out), 65, "{}", describe(&out));
    assert!(
        stderr(&out).contains("stdin:2: `io` is not available in recipes"),
        "{}",
        describe(&out)
    );
    let out = piped(&s, &["repl"], "require('../x')", &[]);
    assert_eq!(code(&out), 65, "{}", describe(&out));
    assert!(
        stderr(&out).contains("nothing outside the repository"),
        "{}",
        describe(&out)
    );

    // A lease taken in the chunk is released at the end.
    let out = piped(
        &s,
        &["repl"],
        "local b = lb.warmup{}\nb:sync()\nreturn b:exec{ 'cat', 'data.txt', capture = true }.code",
        &[],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), "0\n");
    assert!(s.lease_dirs().is_empty());
}

#[test]
fn a_recipe_is_loaded_inert_and_repl_on_failure_needs_a_terminal() {
    let s = Scratch::new();
    s.write(
        "recipes/ci.lua",
        r#"return require("leasebox").recipe {
  steps = { { "write", "touch ran.txt" }, { "fails", "exit 5" } },
}
"#,
    )
    .write(
        "recipes/imp.lua",
        "imperative_ran = true\nprint('SHOULD-NOT-PRINT')\n",
    );
    s.commit();
    let out = piped(
        &s,
        &["repl", "ci"],
        "return recipe.steps[1].name, #recipe.steps",
        &[],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), "write\t2\n");
    assert!(s.lease_dirs().is_empty() && !s.repo().join("ran.txt").exists());

    let out = piped(&s, &["repl", "imp"], "return imperative_ran == nil", &[]);
    assert_eq!(stdout(&out), "true\n", "{}", describe(&out));

    let out = s.run(&["run", "ci", "--repl-on-failure"]);
    assert_eq!(code(&out), 5, "{}", describe(&out));
    let notices = stderr(&out)
        .lines()
        .filter(|l| l.contains("--repl-on-failure"))
        .count();
    assert_eq!(notices, 1, "{}", describe(&out));
}

#[test]
fn lease_attaches_a_kept_lease_on_local_and_on_nomad_in_both_profiles() {
    // Local.
    let s = repo();
    let out = s.run(&["warmup"]);
    let id = stdout(&out).trim().to_owned();
    let chunk =
        "print(box.id)\nbox:sync()\nreturn box:exec{ 'cat', 'data.txt', capture = true }.code";
    let out = piped(&s, &["repl", "--lease", &id], chunk, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), format!("{id}\n0\n"), "{}", describe(&out));
    assert_eq!(s.lease_dirs().len(), 1, "a kept lease stays kept");
    let out = piped(
        &s,
        &["repl", "--lease", "lbx_000000000000"],
        "print(1)",
        &[],
    );
    assert_eq!(code(&out), 78, "{}", describe(&out));
    assert_eq!(code(&s.run(&["stop", &id])), 0);

    for nomad in [NomadServer::start_v1_1(), NomadServer::start_modern()] {
        let s = repo();
        let env = [
            ("NOMAD_ADDR", nomad.url()),
            ("LEASEBOX_NOMAD_DRIVER", "raw_exec".to_owned()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut warm = s.leasebox(&["warmup"]);
        warm.envs(env.iter().copied());
        let out = warm.output().unwrap();
        assert_eq!(code(&out), 0, "{:?}: {}", nomad.profile(), describe(&out));
        let id = stdout(&out).trim().to_owned();
        let chunk = "box:sync()\nlocal r = box:exec{ 'cat', 'data.txt', capture = true }\n\
                     print(r.stdout)\nreturn r.code";
        let out = piped(&s, &["repl", "--lease", &id], chunk, &env);
        assert_eq!(code(&out), 0, "{:?}: {}", nomad.profile(), describe(&out));
        assert_eq!(stdout(&out), "synced data\n\n0\n", "{}", describe(&out));
        assert!(nomad.job("default", &id).is_some(), "the kept lease stays");
        let mut stop = s.leasebox(&["stop", &id]);
        stop.envs(env.iter().copied());
        assert_eq!(code(&stop.output().unwrap()), 0);
        assert!(nomad.jobs().is_empty());
    }
}
