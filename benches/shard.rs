//! Sharded runs against the Nomad API test server on loopback (modern profile, raw_exec driver:
//! every box's keepalive and every exec'd command is a real local process), through the real
//! binary: `leasebox run shards -- count=N`, a recipe whose `leasebox.shard{}` runs one short
//! step (`true`) on each of N boxes of one group, in a small committed repository (200 files,
//! 2 MB), with `max_leases` raised for the run (`LEASEBOX_MAX_LEASES`).
//!
//! The same-run baseline is the one-shard run (`count=1`) of the same recipe. Counts 1, 10 and
//! 50 alternate in each repetition (the order rotates), so machine noise lands on every count
//! alike. Per run, from `wait4` on the `leasebox` process: wall time, client CPU (user + system
//! of `leasebox` and the helpers it waited for: `git`; the boxes' processes are the test
//! server's children, in this process, and are not counted), and the peak resident set
//! (`VmHWM` of `leasebox` polled every few milliseconds, and `ru_maxrss`); and the phases of
//! `--timing-json` (lease, sync, the shards' step, release).
//!
//! A second baseline, in the same rounds, is the box side's floor on this machine: N
//! concurrent `tar -x` of the repository's archive into fresh directories, the least the N
//! boxes' sync receivers must do on the shared cores and disk (on a cluster each box does it on
//! its own node). `wall − floor` is what the client and the boxes' other work add.
//!
//! Targets (issue 14): 50 shards' wall ≤ 3× one shard's; peak client RSS ≤ 200 MB.
//!
//! `LEASEBOX_BENCH_REPS` sets the repetitions (default 3); `LEASEBOX_BENCH_COUNTS` the counts
//! (default `1,10,50`; the first one is the baseline); `LEASEBOX_BENCH_FILES` and
//! `LEASEBOX_BENCH_BYTES` the repository (default 200 files, 2 MB). Runs only under `cargo bench --bench
//! shard`; started any other way it prints that it was skipped.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TreeSpec, generate_repo, median, mib, ms, settle};
use support::Scratch;
use support::nomad::NomadServer;

/// The small repository every box receives.
const SMALL: TreeSpec = TreeSpec {
    files: 200,
    bytes: 2 * 1000 * 1000,
};

/// The recipe: N boxes, one short step each.
const RECIPE: &str = r#"local lb = require("leasebox")
return lb.shard {
  count = tonumber(lb.args.count),
  name = "bench",
  steps = { { "step", "true" } },
}
"#;

/// The peak RSS target, in KiB (200 MB).
const RSS_TARGET_KIB: u64 = 200 * 1000 * 1000 / 1024;

/// What one run cost.
#[derive(Debug, Clone, Default)]
struct Run {
    wall: Duration,
    cpu: Duration,
    /// CPU of this process over the run: the Nomad test server (standing in for the agents
    /// of N nodes) and the sampling loop.
    server_cpu: Duration,
    /// CPU of the boxes' processes (the test server's children: keepalives, sync receivers,
    /// verified-exec wrappers, the step), reaped during the run.
    box_cpu: Duration,
    /// Peak resident set of `leasebox` itself (polled `VmHWM`), KiB.
    rss_kib: u64,
    /// `ru_maxrss` from `wait4`: the largest of `leasebox` and its waited-for helpers, KiB.
    tree_kib: u64,
    /// Phases of `--timing-json`, in milliseconds.
    phases: BTreeMap<String, u64>,
}

fn main() {
    if !common::bench_mode("shard") {
        return;
    }
    let reps = env_number("LEASEBOX_BENCH_REPS", 3).max(1);
    let counts: Vec<usize> = std::env::var("LEASEBOX_BENCH_COUNTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 10, 50]);
    let largest = counts.iter().copied().max().unwrap_or(1);
    // Five nodes with room for every box of the largest group (1000 MHz a box).
    let per_node = u64::try_from(largest.div_ceil(5) * 1000).expect("fits") + 1000;
    let nomad = NomadServer::builder().nodes(5, per_node).start();
    println!(
        "Nomad API test server (modern profile, raw_exec, 5 nodes of {per_node} MHz) on {}",
        nomad.url()
    );
    let scratch = Scratch::new();
    let spec = TreeSpec {
        files: env_number("LEASEBOX_BENCH_FILES", SMALL.files),
        bytes: env_number("LEASEBOX_BENCH_BYTES", SMALL.bytes as usize) as u64,
    };
    let stats = generate_repo(&scratch.repo(), spec);
    std::fs::create_dir_all(scratch.repo().join("recipes")).expect("mkdir recipes");
    std::fs::write(scratch.repo().join("recipes/shards.lua"), RECIPE).expect("write the recipe");
    common::git(&scratch.repo(), &["add", "-A"]);
    common::git(&scratch.repo(), &["commit", "-q", "-m", "recipe"]);
    println!(
        "small repository: {} files, {:.1} MiB; recipe: `leasebox.shard{{ count = N, steps = {{ {{ \"step\", \"true\" }} }} }}`",
        stats.files,
        mib(stats.bytes)
    );
    let archive = scratch.path().join("repo.tar");
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(scratch.repo())
        .args(["archive", "--format=tar", "-o"])
        .arg(&archive)
        .arg("HEAD")
        .output()
        .expect("git archive");
    assert!(out.status.success(), "git archive failed");
    println!(
        "load average at the start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // One unmeasured run, so the first measured one does not pay for cold caches.
    measure(&scratch, &nomad, counts[0], largest);
    let mut runs: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
    let mut floors: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    for rep in 0..reps {
        let mut order = counts.clone();
        order.rotate_left(rep % counts.len());
        for &n in &order {
            settle();
            let floor = box_floor(&scratch, &archive, n);
            println!(
                "rep {}: {n:>3} boxes' floor: {n} concurrent `tar -x` of the archive in {:.0} ms",
                rep + 1,
                ms(floor)
            );
            floors.entry(n).or_default().push(floor);
            settle();
            let run = measure(&scratch, &nomad, n, largest);
            println!(
                "rep {}: {n:>3} shards: wall {:.0} ms, client CPU {:.0} ms, test server CPU {:.0} ms, boxes' CPU {:.0} ms, peak RSS {} KiB (ru_maxrss {} KiB); phases (ms): {}",
                rep + 1,
                ms(run.wall),
                ms(run.cpu),
                ms(run.server_cpu),
                ms(run.box_cpu),
                run.rss_kib,
                run.tree_kib,
                shown(&run.phases)
            );
            runs.entry(n).or_default().push(run);
        }
    }
    let jobs = nomad.jobs();
    assert!(jobs.is_empty(), "jobs left behind: {jobs:?}");

    let base = counts[0];
    let base_wall = median(&walls(&runs[&base]));
    println!();
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();
    println!(
        "| shards | wall (median) | wall / {base} shard | box-side floor: N × `tar -x` at once | wall − floor | client CPU (median) | CPU per shard | test server CPU | boxes' CPU | peak RSS (max) | phases (median ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let base_rest = base_wall.saturating_sub(median(&floors[&base]));
    for (&n, rs) in &runs {
        let wall = median(&walls(rs));
        let floor = median(&floors[&n]);
        let cpu = median(&rs.iter().map(|r| r.cpu).collect::<Vec<_>>());
        let server = median(&rs.iter().map(|r| r.server_cpu).collect::<Vec<_>>());
        let boxes = median(&rs.iter().map(|r| r.box_cpu).collect::<Vec<_>>());
        let rss = rs.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        let rest = wall.saturating_sub(floor);
        println!(
            "| {n} | {:.0} ms | {:.2}× | {:.0} ms | {:.0} ms ({:.2}×) | {:.0} ms | {:.1} ms | {:.0} ms | {:.0} ms | {:.1} MiB | {} |",
            ms(wall),
            wall.as_secs_f64() / base_wall.as_secs_f64(),
            ms(floor),
            ms(rest),
            rest.as_secs_f64() / base_rest.as_secs_f64().max(0.001),
            ms(cpu),
            ms(cpu) / n as f64,
            ms(server),
            ms(boxes),
            kib_mib(rss),
            median_phases(rs)
        );
    }
    println!();
    let top = runs[&largest].clone();
    let top_wall = median(&walls(&top));
    let ratio = top_wall.as_secs_f64() / base_wall.as_secs_f64();
    common::verdict(
        &format!("wall of {largest} shards against {base}"),
        &format!("{ratio:.2}×"),
        "<= 3×",
        ratio <= 3.0,
    );
    let rss = runs
        .values()
        .flatten()
        .map(|r| r.rss_kib)
        .max()
        .unwrap_or(0);
    common::verdict(
        "peak client RSS",
        &format!("{:.1} MiB ({:.1} MB)", kib_mib(rss), kib_mb(rss)),
        "<= 200 MB",
        rss <= RSS_TARGET_KIB,
    );
}

/// The box side's floor on this machine: `n` concurrent `tar -x` of the repository's archive
/// into fresh directories (what the boxes' sync receivers must at least do, on the same cores
/// and disk), removed afterwards.
fn box_floor(scratch: &Scratch, archive: &Path, n: usize) -> Duration {
    let root = scratch.path().join("floor");
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|k| {
            let dir = root.join(k.to_string());
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::process::Command::new("tar")
                .arg("-xf")
                .arg(archive)
                .arg("-C")
                .arg(&dir)
                .spawn()
                .expect("start tar")
        })
        .collect();
    for mut child in children {
        assert!(
            child.wait().expect("wait for tar").success(),
            "tar -x failed"
        );
    }
    let took = start.elapsed();
    std::fs::remove_dir_all(&root).expect("remove the floor's trees");
    took
}

/// One `leasebox run shards -- count=N`, followed until it ends; then the allocation
/// directories the test server keeps are removed.
fn measure(scratch: &Scratch, nomad: &NomadServer, n: usize, largest: usize) -> Run {
    let timing = scratch.path().join("timing.json");
    let log = scratch.path().join("leasebox.stderr");
    let count = format!("count={n}");
    let (self_before, children_before) = (rusage(libc::RUSAGE_SELF), rusage(libc::RUSAGE_CHILDREN));
    let start = Instant::now();
    let child = scratch
        .leasebox(&[
            "run",
            "shards",
            "--timing-json",
            &timing.display().to_string(),
            "--",
            &count,
        ])
        .env("NOMAD_ADDR", nomad.url())
        .env("LEASEBOX_NOMAD_DRIVER", "raw_exec")
        .env("LEASEBOX_MAX_LEASES", (largest + 5).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the stderr log"))
        .spawn()
        .expect("start leasebox");
    let pid = i32::try_from(child.id()).expect("pid fits");
    let mut rss = 0;
    let (status, usage) = loop {
        rss = rss.max(hwm(pid).unwrap_or(0));
        let mut status = 0;
        // SAFETY: wait4(2) on our own child, with a zeroed out-parameter it fills.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let reaped = unsafe { libc::wait4(pid, &raw mut status, libc::WNOHANG, &raw mut usage) };
        assert!(reaped >= 0, "wait4 failed");
        if reaped == pid {
            break (status, usage);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed();
    // `child` was reaped by wait4 above; dropping it neither waits nor kills.
    drop(child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "leasebox run shards -- {count} failed (wait status {status}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    remove_alloc_dirs(nomad);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    let server_cpu = rusage(libc::RUSAGE_SELF).saturating_sub(self_before);
    let box_cpu = rusage(libc::RUSAGE_CHILDREN)
        .saturating_sub(children_before)
        .saturating_sub(cpu);
    Run {
        wall,
        cpu,
        server_cpu,
        box_cpu,
        rss_kib: rss,
        tree_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        phases: phases(&timing),
    }
}

/// User + system CPU of `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`) so far.
fn rusage(who: i32) -> Duration {
    // SAFETY: getrusage(2) fills the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &raw mut usage) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The phases of a timing file, in milliseconds (the shards' step phases summed under `step`).
fn phases(file: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(file).expect("read the timing file");
    let value: serde_json::Value = serde_json::from_str(&text).expect("timing JSON");
    let mut out = BTreeMap::new();
    for phase in value["phases"].as_array().expect("phases") {
        let name = phase["name"].as_str().expect("a name");
        let name = name
            .split([' ', ':', '['])
            .next()
            .unwrap_or(name)
            .to_owned();
        let ms = phase["ms"].as_u64().expect("ms");
        let e = out.entry(name).or_insert(0);
        *e = (*e).max(ms);
    }
    out
}

fn shown(phases: &BTreeMap<String, u64>) -> String {
    phases
        .iter()
        .map(|(name, ms)| format!("{name} {ms}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median_phases(runs: &[Run]) -> String {
    let mut by: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in runs {
        for (name, ms) in &r.phases {
            by.entry(name).or_default().push(*ms);
        }
    }
    by.into_iter()
        .map(|(name, mut v)| {
            v.sort_unstable();
            format!("{name} {}", v[v.len() / 2])
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn walls(runs: &[Run]) -> Vec<Duration> {
    runs.iter().map(|r| r.wall).collect()
}

/// `VmHWM` (KiB) of a live process.
fn hwm(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Remove the directories of every terminal allocation (after the run released its group).
fn remove_alloc_dirs(nomad: &NomadServer) {
    let jobs = nomad.jobs();
    assert!(jobs.is_empty(), "jobs left behind: {jobs:?}");
    let root = nomad.alloc_dir("x");
    if let Some(parent) = root.parent()
        && let Ok(entries) = std::fs::read_dir(parent)
    {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[expect(clippy::cast_precision_loss, reason = "report figures")]
fn kib_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[expect(clippy::cast_precision_loss, reason = "report figures")]
fn kib_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}
