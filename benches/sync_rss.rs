//! Peak memory of the real binary while it syncs a 1 GB tree: `leasebox run -- true` in a
//! generated, committed git repository of 40,000 files / 1 GB, with scratch
//! `LEASEBOX_STATE_DIR`, `XDG_CACHE_HOME`, `XDG_CONFIG_HOME` and `HOME`.
//!
//! While the run goes, `/proc/<pid>/status` is polled every few milliseconds for `VmHWM` (the
//! peak resident set) of `leasebox` itself and of every process below it: the box-side
//! `sh`/`tar -x` of the local backend, `git ls-files`, the verified-exec wrapper. After it
//! ends, `wait4` gives `ru_maxrss`, the largest peak of `leasebox` and any descendant it
//! waited for. The target is about `leasebox`'s own peak: on Nomad the box-side `tar -x` runs
//! in the allocation, not on the user's machine, so it is reported apart, not counted.
//!
//! The same-run baseline is `leasebox --version`: the binary's floor before any work.
//!
//! Target: `leasebox`'s own peak RSS ≤ 64 MB while syncing 1 GB.
//!
//! `LEASEBOX_BENCH_REPS` sets the number of runs (default 3); the largest peak is reported.
//! `LEASEBOX_BENCH_FILES` and `LEASEBOX_BENCH_BYTES` change the tree (to see how the peak
//! grows with the number of files).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TreeSpec;

const SPEC: TreeSpec = TreeSpec {
    files: 40_000,
    bytes: 1000 * 1000 * 1000,
};

/// Helpers that run on the user's side on every backend (the file set comes from git); the
/// other descendants are the box side, which runs in the allocation on Nomad.
const USER_SIDE: [&str; 1] = ["git"];

/// The target, in KiB (64 MB).
const TARGET_KIB: u64 = 64 * 1000 * 1000 / 1024;

/// Peaks seen during one run, in KiB.
#[derive(Debug, Default)]
struct Peaks {
    /// `leasebox` itself (polled `VmHWM`).
    own: u64,
    /// Each descendant, by command name (polled `VmHWM`, the largest per name).
    descendants: BTreeMap<String, u64>,
    /// `ru_maxrss` from `wait4`: the largest of `leasebox` and its waited-for descendants.
    tree: u64,
    /// How many times the process tree was sampled.
    samples: usize,
    /// Wall time of the run.
    wall: Duration,
}

fn main() {
    if !common::bench_mode("sync_rss") {
        return;
    }
    let reps: usize = std::env::var("LEASEBOX_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let spec = TreeSpec {
        files: env_or("LEASEBOX_BENCH_FILES", SPEC.files),
        bytes: env_or("LEASEBOX_BENCH_BYTES", SPEC.bytes),
    };
    let scratch = support::Scratch::new();
    let repo = scratch.repo();
    let (took, stats) = common::time(|| common::generate_repo(&repo, spec));
    println!(
        "generated {} files ({} small, {} medium, {} large), {:.1} MiB, committed, in {:.1} s",
        stats.files,
        stats.small,
        stats.medium,
        stats.large,
        common::mib(stats.bytes),
        took.as_secs_f64()
    );

    let floor = measure(&scratch, &["--version"]);
    println!(
        "baseline `leasebox --version`: peak RSS {} KiB",
        floor.own.max(floor.tree)
    );
    let mut runs = Vec::new();
    for rep in 1..=reps {
        common::settle();
        let peaks = measure(&scratch, &["run", "--", "true"]);
        println!(
            "run {rep}: leasebox {} KiB; descendants {}; wait4 ru_maxrss {} KiB; {} samples over {:.1} s",
            peaks.own,
            peaks
                .descendants
                .iter()
                .map(|(name, kib)| format!("{name} {kib} KiB"))
                .collect::<Vec<_>>()
                .join(", "),
            peaks.tree,
            peaks.samples,
            peaks.wall.as_secs_f64()
        );
        runs.push(peaks);
    }
    let own = runs.iter().map(|p| p.own).max().unwrap_or(0);
    let tree = runs.iter().map(|p| p.tree).max().unwrap_or(0);
    let mut box_side: BTreeMap<&str, u64> = BTreeMap::new();
    let mut user_side: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &runs {
        for (name, kib) in &p.descendants {
            let side = if USER_SIDE.contains(&name.as_str()) {
                &mut user_side
            } else {
                &mut box_side
            };
            let e = side.entry(name.as_str()).or_default();
            *e = (*e).max(*kib);
        }
    }
    let list = |m: &BTreeMap<&str, u64>| {
        m.iter()
            .map(|(name, kib)| format!("{name} {kib} KiB"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!(
        "tree: {} files, {:.1} MiB; {reps} runs of `leasebox run -- true` (peaks in KiB as the kernel counts them)",
        stats.files,
        common::mib(stats.bytes)
    );
    println!(
        "leasebox peak RSS: {own} KiB ({:.1} MiB); floor (`--version`) {} KiB",
        kib_to_mib(own),
        floor.own.max(floor.tree)
    );
    println!(
        "user-side helpers, separate processes, not counted: {}",
        list(&user_side)
    );
    println!(
        "box-side processes (in the allocation on Nomad), not counted: {}",
        list(&box_side)
    );
    println!("largest peak in the whole process tree (wait4 ru_maxrss): {tree} KiB");
    common::verdict(
        &format!(
            "peak RSS of leasebox syncing {:.0} MB",
            common::mib(stats.bytes) * 1.048_576
        ),
        &format!("{:.1} MiB ({:.1} MB)", kib_to_mib(own), kib_to_mb(own)),
        "<= 64 MB",
        own <= TARGET_KIB,
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[expect(clippy::cast_precision_loss, reason = "report figures")]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[expect(clippy::cast_precision_loss, reason = "report figures")]
fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}

/// Run `leasebox ARGS` in the scratch repository and follow its memory until it ends.
fn measure(scratch: &support::Scratch, args: &[&str]) -> Peaks {
    let log = scratch.path().join("leasebox.stderr");
    let start = Instant::now();
    let child = scratch
        .leasebox(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the stderr log"))
        .spawn()
        .expect("start leasebox");
    let pid = i32::try_from(child.id()).expect("pid fits");
    let mut peaks = Peaks::default();
    let (status, usage) = loop {
        sample(pid, &mut peaks);
        // SAFETY: wait4(2) on our own child, with zeroed out-parameters it fills.
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let reaped = unsafe { libc::wait4(pid, &raw mut status, libc::WNOHANG, &raw mut usage) };
        assert!(reaped >= 0, "wait4 failed");
        if reaped == pid {
            break (status, usage);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    peaks.wall = start.elapsed();
    peaks.tree = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "leasebox {args:?} failed (wait status {status}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // `child` was reaped by wait4 above; dropping it neither waits nor kills.
    drop(child);
    peaks
}

/// Read `VmHWM` of `pid` and of every process below it.
fn sample(pid: i32, peaks: &mut Peaks) {
    peaks.samples += 1;
    if let Some((_, kib)) = hwm(pid) {
        peaks.own = peaks.own.max(kib);
    }
    let mut stack = children(pid);
    while let Some(p) = stack.pop() {
        // A child caught between fork and exec still bears our name and our pages: skip it.
        if let Some((name, kib)) = hwm(p).filter(|(name, _)| name != "leasebox") {
            let e = peaks.descendants.entry(name).or_default();
            *e = (*e).max(kib);
        }
        stack.extend(children(p));
    }
}

/// The command name and `VmHWM` (KiB) of a live process.
fn hwm(pid: i32) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut name = None;
    let mut kib = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Name:") {
            name = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("VmHWM:") {
            kib = v.trim().trim_end_matches("kB").trim().parse().ok();
        }
    }
    Some((name?, kib?))
}

/// The children of every thread of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}
