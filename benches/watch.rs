//! `leasebox watch`, measured on the real binary and on the watcher itself:
//!
//! 1. **File-write-to-step-start, minus the debounce**: a watch whose step appends the time
//!    it started (`date +%s%N`) to a file outside the repository; the bench writes a file of
//!    the repository, notes the time, and waits for the step's line. The figure is the median
//!    of the differences less the debounce, on a 100-file repository (local backend and the
//!    Nomad API test server, raw_exec) and on the 20,000-file / 500 MB tree (local). It
//!    includes the sync of the rerun (today a full one; incremental sync shortens it).
//!    Targets: ≤ 50 ms local, ≤ 100 ms on the test server (100 files).
//! 2. **Watcher start-up** (`WatchFilter::new` and `FileWatcher::start`, in process) on a
//!    1,000-file repository with an ignored 200,000-file `node_modules/`, against the same
//!    repository without it, medians of several starts. Target ≤ 1.2×.
//! 3. **Peak RSS** of `leasebox watch -- true` on the 20,000-file tree (`VmHWM` of the
//!    process, polled, through its first run and one rerun). Target ≤ 64 MB. The same-run
//!    baseline is `leasebox --version`.
//!
//! `LEASEBOX_BENCH_REPS` sets the reruns per latency figure (default 7).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::{TreeSpec, median, ms};
use leasebox::host::watch::{FileWatcher, WatchFilter, WatchMode};
use support::Scratch;
use support::nomad::NomadServer;

const DEBOUNCE_MS: u64 = 100;

fn main() {
    if !common::bench_mode("watch") {
        return;
    }
    let reps: usize = std::env::var("LEASEBOX_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);

    // 1. Latency on 100 files, local and the test server.
    let small = Scratch::new();
    common::generate_repo(
        &small.repo(),
        TreeSpec {
            files: 100,
            bytes: 400 * 1000,
        },
    );
    let local = latency(&small, &[], reps);
    let nomad = NomadServer::start_modern();
    let nomad_env = vec![
        ("NOMAD_ADDR".to_owned(), nomad.url()),
        ("LEASEBOX_NOMAD_DRIVER".to_owned(), "raw_exec".to_owned()),
    ];
    let on_nomad = latency(&small, &nomad_env, reps);

    // 2. Start-up with and without an ignored 200,000-file directory.
    let (with, without) = startup();

    // 3. The 20,000-file tree: latency, and peak RSS.
    let big = Scratch::new();
    let (took, stats) = common::time(|| {
        common::generate_repo(
            &big.repo(),
            TreeSpec {
                files: 20_000,
                bytes: 500 * 1000 * 1000,
            },
        )
    });
    println!(
        "generated {} files, {:.1} MiB, in {:.1} s",
        stats.files,
        common::mib(stats.bytes),
        took.as_secs_f64()
    );
    let big_latency = latency(&big, &[], reps.min(3));
    let floor = peak_of(&big, &["--version"], false);
    let peak = peak_of(&big, &["watch", "--", "true"], true);

    println!();
    common::verdict(
        "file write to step start minus debounce, 100 files, local",
        &format!("{:.1} ms", ms(local)),
        "<= 50 ms",
        local <= Duration::from_millis(50),
    );
    common::verdict(
        "file write to step start minus debounce, 100 files, Nomad test server",
        &format!("{:.1} ms", ms(on_nomad)),
        "<= 100 ms",
        on_nomad <= Duration::from_millis(100),
    );
    println!(
        "file write to step start minus debounce, 20,000 files / 500 MB, local: {:.1} ms (no target)",
        ms(big_latency)
    );
    let ratio = with.as_secs_f64() / without.as_secs_f64();
    common::verdict(
        "watcher start-up with an ignored 200,000-file dir vs without",
        &format!("{ratio:.2}× ({:.1} ms vs {:.1} ms)", ms(with), ms(without)),
        "<= 1.2×",
        ratio <= 1.2,
    );
    common::verdict(
        "peak RSS of `leasebox watch` on 20,000 files",
        &format!(
            "{:.1} MB (floor `--version` {:.1} MB)",
            kib_mb(peak),
            kib_mb(floor)
        ),
        "<= 64 MB",
        kib_mb(peak) <= 64.0,
    );
}

#[expect(clippy::cast_precision_loss, reason = "report figures")]
fn kib_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}

/// A started `leasebox watch` and its stderr lines.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(s: &Scratch, args: &[&str], env: &[(String, String)]) -> Running {
        let mut cmd = s.leasebox(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start leasebox watch");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running { child, lines }
    }

    fn wait(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out waiting for `{needle}`"));
            if line.contains(needle) {
                return;
            }
        }
    }

    fn quit(mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "q");
        }
        let _ = self.child.wait();
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The median time from a file write to the step's start, less the debounce.
fn latency(s: &Scratch, env: &[(String, String)], reps: usize) -> Duration {
    let marks = s.path().join("starts");
    let _ = std::fs::remove_file(&marks);
    let recipe = s.path().join("bench-recipe.lua");
    std::fs::write(
        &recipe,
        format!(
            "return require(\"leasebox\").recipe {{ steps = {{ {{ \"mark\", \"date +%s%N >> {}\" }} }} }}\n",
            marks.display()
        ),
    )
    .unwrap();
    // The recipe sits outside the repository (it is not part of the sync set).
    let recipe_arg = recipe.display().to_string();
    let debounce = format!("{DEBOUNCE_MS}ms");
    let w = Running::start(s, &["watch", &recipe_arg, "--debounce", &debounce], env);
    w.wait("==> run 1 passed");
    let target = s.repo().join("bench-edit.txt");
    let mut samples = Vec::new();
    for rep in 0..reps {
        std::thread::sleep(Duration::from_millis(300));
        let before = std::fs::read_to_string(&marks)
            .unwrap_or_default()
            .lines()
            .count();
        let wrote = now_ns();
        std::fs::write(&target, format!("edit {rep}\n")).unwrap();
        w.wait(&format!("==> run {} passed", rep + 2));
        let text = std::fs::read_to_string(&marks).unwrap();
        let started: u128 = text
            .lines()
            .nth(before)
            .expect("the step marked its start")
            .trim()
            .parse()
            .expect("date +%s%N");
        let took = Duration::from_nanos(u64::try_from(started.saturating_sub(wrote)).unwrap());
        samples.push(took.saturating_sub(Duration::from_millis(DEBOUNCE_MS)));
    }
    w.quit();
    let _ = std::fs::remove_file(&target);
    println!(
        "latency{}: {} (median {:.1} ms)",
        if env.is_empty() { " local" } else { " Nomad" },
        common::list_ms(&samples),
        ms(median(&samples))
    );
    median(&samples)
}

/// Median start-up of the watcher with and without an ignored 200,000-file directory.
fn startup() -> (Duration, Duration) {
    let s = Scratch::new();
    let repo = s.repo();
    common::generate_repo(
        &repo,
        TreeSpec {
            files: 1000,
            bytes: 4 * 1000 * 1000,
        },
    );
    std::fs::write(repo.join(".gitignore"), "node_modules/\n").unwrap();
    common::git(&repo, &["add", ".gitignore"]);
    common::git(&repo, &["commit", "-q", "-m", "ignore"]);
    let parked = s.path().join("parked-node_modules");
    let ignored = repo.join("node_modules");
    let (took, ()) = common::time(|| {
        for d in 0..2000 {
            let dir = parked.join(format!("pkg{d:04}/lib"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..100 {
                std::fs::File::create(dir.join(format!("f{f:03}.js"))).unwrap();
            }
        }
    });
    println!(
        "generated 200,000 ignored files in {:.1} s",
        took.as_secs_f64()
    );
    let measure = |repo: &Path| {
        let mut samples = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            let (_filter, dirs) = WatchFilter::new(repo, &common::default_excludes()).unwrap();
            let watcher = FileWatcher::start(WatchMode::Events, &dirs).unwrap();
            samples.push(start.elapsed());
            drop(watcher);
        }
        median(&samples)
    };
    let without = measure(&repo);
    std::fs::rename(&parked, &ignored).unwrap();
    let with = measure(&repo);
    println!(
        "start-up without: {:.1} ms, with the ignored directory: {:.1} ms",
        ms(without),
        ms(with)
    );
    (with, without)
}

/// Peak RSS (KiB) of `leasebox ARGS`; for a watch, through its first run and one rerun.
fn peak_of(s: &Scratch, args: &[&str], watch: bool) -> u64 {
    let sample = |pid: u32, peak: &mut u64| {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line.split_whitespace().nth(1).and_then(|v| v.parse().ok())
        {
            *peak = (*peak).max(kib);
        }
    };
    if !watch {
        #[expect(
            clippy::zombie_processes,
            reason = "reaped by wait4 below, for its rusage"
        )]
        let child = s.leasebox(args).stdout(Stdio::null()).spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let mut status = 0;
        // SAFETY: wait4(2) on our own child, with a zeroed rusage it fills.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        return u64::try_from(usage.ru_maxrss).unwrap_or(0);
    }
    let w = Running::start(s, args, &[]);
    let pid = w.child.id();
    let (tx, rx) = mpsc::channel::<()>();
    let poller = std::thread::spawn(move || {
        let mut peak = 0;
        while rx.try_recv().is_err() {
            sample(pid, &mut peak);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    w.wait("==> run 1 passed");
    std::fs::write(s.repo().join("rss-edit.txt"), "x\n").unwrap();
    w.wait("==> run 2 passed");
    let _ = tx.send(());
    let peak = poller.join().unwrap();
    w.quit();
    peak
}
