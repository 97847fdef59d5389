//! `leasebox shell` through a real pseudo-terminal: the test opens a pty pair, runs the real
//! binary on the slave side as the leader of its own session (the pty its controlling
//! terminal, as a login shell has it), types into the master and reads the screen from it.
//! On the local backend and against the Nomad test server in both profiles: the terminal in
//! raw mode during the shell and restored afterwards, the window size and its changes reaching
//! the box (`stty size`), Ctrl-C passed through as a byte, `--pass-env` reaching the shell and
//! its env file gone, the exit code mirrored, the lease released; and the refusals (stdin not
//! a terminal: the usage code) and a dropped connection (exit 75, terminal restored).

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{LocalModes, Termios, Winsize};

use crate::support::nomad::{NomadServer, Profile};
use crate::support::{Scratch, code, describe};

/// How long any one expected piece of output may take before the test fails (a hang).
const DEADLINE: Duration = Duration::from_secs(60);

/// The real `leasebox` on a pseudo-terminal.
struct Terminal {
    master: std::fs::File,
    slave: Option<OwnedFd>,
    child: std::process::Child,
    screen: Arc<(Mutex<Vec<u8>>, Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
    seen: usize,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Terminal {
    fn start(mut cmd: Command, rows: u16, cols: u16) -> Terminal {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .unwrap();
        rustix::pty::grantpt(&master).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        rustix::termios::tcsetwinsize(&master, winsize(rows, cols)).unwrap();
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start leasebox");
        drop(cmd);
        let master = std::fs::File::from(master);
        let screen: Arc<(Mutex<Vec<u8>>, Condvar)> = Arc::default();
        let reader = {
            let mut master = master.try_clone().unwrap();
            let screen = Arc::clone(&screen);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Ends with EIO once the last slave is closed.
                while let Ok(n) = master.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    screen.0.lock().unwrap().extend_from_slice(&buf[..n]);
                    screen.1.notify_all();
                }
            })
        };
        Terminal {
            master,
            slave: Some(slave),
            child,
            screen,
            reader: Some(reader),
            seen: 0,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().unwrap()).into_owned()
    }

    /// Wait until `needle` shows after what earlier expectations consumed; return what came
    /// before it.
    fn expect(&mut self, needle: &str) -> String {
        let start = Instant::now();
        let mut screen = self.screen.0.lock().unwrap();
        loop {
            let text = String::from_utf8_lossy(&screen[self.seen..]).into_owned();
            if let Some(at) = text.find(needle) {
                self.seen += text[..at + needle.len()].len();
                return text[..at].to_owned();
            }
            let left = DEADLINE.saturating_sub(start.elapsed());
            assert!(
                !left.is_zero(),
                "`{needle}` never showed; the screen:\n{}",
                String::from_utf8_lossy(&screen)
            );
            screen = self.screen.1.wait_timeout(screen, left).unwrap().0;
        }
    }

    fn send(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Resize the terminal: the kernel sends SIGWINCH to its foreground process group.
    fn resize(&self, rows: u16, cols: u16) {
        rustix::termios::tcsetwinsize(&self.master, winsize(rows, cols)).unwrap();
    }

    fn termios(&self) -> Termios {
        rustix::termios::tcgetattr(self.slave.as_ref().unwrap()).unwrap()
    }

    /// Wait for leasebox to exit; its exit code.
    fn wait(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < DEADLINE,
                "leasebox did not exit; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.slave.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The terminal settings a shell must find again afterwards.
fn modes(t: &Termios) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        t.input_modes, t.output_modes, t.control_modes, t.local_modes
    )
}

/// One whole interactive session: prompt, raw mode, size, resize, env, sync, Ctrl-C, exit 7.
fn interactive(s: &Scratch, args: &[&str], env: &[(&str, String)]) {
    s.write("hello.txt", "hello from the repo\n");
    s.commit();
    let mut cmd = s.leasebox(&["shell", "--pass-env", "LBX_SECRET", "--pass-env", "PS1"]);
    cmd.args(args)
        .env("LBX_SECRET", "it's a 'secret' $HOME")
        .env("PS1", "lbx> ")
        .env("TERM", "xterm")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut t = Terminal::start(cmd, 24, 80);
    let before = modes(&t.termios());
    assert!(t.termios().local_modes.contains(LocalModes::ICANON));

    // The prompt comes from the env file the shell sourced.
    t.expect("lbx> ");
    let during = t.termios();
    assert!(
        !during.local_modes.contains(LocalModes::ICANON)
            && !during.local_modes.contains(LocalModes::ECHO)
            && !during.local_modes.contains(LocalModes::ISIG),
        "the terminal is not in raw mode during the shell: {during:?}"
    );

    t.send("stty size\r");
    t.expect("24 80\r\n");
    t.expect("lbx> ");

    t.resize(40, 100);
    // The new size travels beside the typed bytes, not in order with them: ask until it shows.
    let mut resized = false;
    for _ in 0..100 {
        t.send("stty size\r");
        let answer = t.expect("lbx> ");
        if answer.contains("40 100") {
            resized = true;
            break;
        }
        assert!(answer.contains("24 80"), "{answer}");
    }
    assert!(resized, "the resize never reached the box:\n{}", t.screen());

    t.send("echo \"secret=$LBX_SECRET\"; echo files=$(( $(ls -A \"$PWD.lbx/shell\" | wc -l) )); cat hello.txt\r");
    t.expect("secret=it's a 'secret' $HOME\r\n");
    t.expect("files=0\r\n");
    t.expect("hello from the repo\r\n");
    t.expect("lbx> ");

    // Ctrl-C is a byte for the box: it stops the command there, not leasebox.
    // The child prints the marker, so the shell is already waiting for it when Ctrl-C comes.
    t.send("sh -c 'echo sleeping; exec sleep 30' && echo not-interrupted\r");
    t.expect("sleeping\r\n");
    t.send("\x03");
    t.expect("lbx> ");
    t.send("echo after-$((6*7))\r");
    t.expect("after-42\r\n");
    t.expect("lbx> ");

    t.send("exit 7\r");
    assert_eq!(t.wait(), 7, "{}", t.screen());
    assert!(!t.screen().contains("\nnot-interrupted"), "{}", t.screen());
    assert_eq!(modes(&t.termios()), before, "the terminal was not restored");
    assert!(s.claims().is_empty(), "{:?}", s.claims());
}

#[test]
fn shell_on_the_local_backend() {
    let s = Scratch::new();
    interactive(&s, &[], &[]);
    assert!(s.lease_dirs().is_empty(), "{:?}", s.lease_dirs());
}

#[test]
fn shell_against_the_nomad_test_server_in_both_profiles() {
    for profile in [Profile::V1_1, Profile::Modern] {
        let nomad = NomadServer::builder().profile(profile).start();
        let s = Scratch::new();
        let env = [
            ("NOMAD_ADDR", nomad.url()),
            ("LEASEBOX_NOMAD_DRIVER", "raw_exec".to_owned()),
        ];
        interactive(&s, &["--", "/bin/sh"], &env);
        assert!(
            nomad.jobs().is_empty(),
            "{profile:?}: the job is still there: {:?}",
            nomad.jobs().iter().map(|j| &j.id).collect::<Vec<_>>()
        );
        // The terminal exec asked for a terminal: `tty=true` on the exec URL.
        assert!(
            nomad
                .requests()
                .iter()
                .any(|r| r.path.ends_with("/exec") && r.query.contains("tty=true")),
            "{profile:?}: no terminal exec"
        );
    }
}

#[test]
fn shell_refuses_a_stdin_that_is_not_a_terminal() {
    let s = Scratch::new();
    let out = s
        .leasebox(&["shell"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a terminal"),
        "{}",
        describe(&out)
    );
    assert!(s.claims().is_empty());
    assert!(s.lease_dirs().is_empty());
}

#[test]
fn box_shell_from_a_recipe_runs_on_the_terminal_and_returns_its_code() {
    let s = Scratch::new();
    s.write(
        "recipes/poke.lua",
        r#"local lb = require("leasebox")
local box = lb.warmup {}
local r = box:shell { "sh", "-c", 'stty size; echo "greeting=$GREETING"; exit 5', env = { GREETING = "hello there" } }
lb.log("shell-ended", r.code, r.ok)
if r.code ~= 5 then lb.fail("unexpected code " .. r.code, 9) end
"#,
    );
    s.commit();
    let mut cmd = s.leasebox(&["run", "poke"]);
    cmd.env("TERM", "xterm");
    let mut t = Terminal::start(cmd, 30, 90);
    let before = modes(&t.termios());
    t.expect("30 90\r\n");
    t.expect("greeting=hello there\r\n");
    t.expect("shell-ended 5 false");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    assert_eq!(modes(&t.termios()), before, "the terminal was not restored");
    assert!(s.lease_dirs().is_empty(), "{:?}", s.lease_dirs());
}

#[test]
fn a_dropped_connection_ends_the_shell_with_exit_75_and_the_terminal_restored() {
    let nomad = NomadServer::start_modern();
    nomad.drop_next_tty_exec(1);
    let s = Scratch::new();
    s.write("a.txt", "a\n");
    s.commit();
    let mut cmd = s.leasebox(&[
        "shell",
        "--",
        "sh",
        "-c",
        "echo ready-$((1+1)); exec sleep 60",
    ]);
    cmd.env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .env("TERM", "xterm");
    let mut t = Terminal::start(cmd, 24, 80);
    let before = modes(&t.termios());
    t.expect("ready-2");
    assert_eq!(t.wait(), 75, "{}", t.screen());
    t.expect("the connection to the box was lost");
    assert_eq!(modes(&t.termios()), before, "the terminal was not restored");
    // The lease is released all the same.
    assert!(nomad.jobs().is_empty(), "the job is still there");
    assert!(s.claims().is_empty(), "{:?}", s.claims());
}

#[test]
fn a_command_that_cannot_start_exits_127_and_leaves_no_env_file() {
    let s = Scratch::new();
    s.write("a.txt", "a\n");
    s.commit();
    let mut cmd = s.leasebox(&[
        "shell",
        "--keep",
        "--pass-env",
        "LBX_SECRET",
        "--",
        "no-such-program-here",
    ]);
    cmd.env("LBX_SECRET", "x");
    let mut t = Terminal::start(cmd, 24, 80);
    assert_eq!(t.wait(), 127, "{}", t.screen());
    let dirs = s.lease_dirs();
    assert_eq!(dirs.len(), 1, "the kept lease: {dirs:?}");
    let shell_dir = s
        .cache()
        .join("leasebox/leases")
        .join(&dirs[0])
        .join("work.lbx/shell");
    let left: Vec<_> = std::fs::read_dir(&shell_dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "env files left in the box: {left:?}");
    let stop = s.run(&["stop", &dirs[0]]);
    assert_eq!(code(&stop), 0, "{}", describe(&stop));
}
