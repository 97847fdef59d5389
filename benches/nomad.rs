//! The Nomad backend against the Nomad API test server on loopback (modern profile, raw_exec
//! driver: tasks and exec'd commands are real local processes), each figure next to its
//! baseline measured in the same run:
//!
//! 1. **Exec overhead per step**: `true` through `Session::exec` (verified exec) on a Nomad
//!    lease against the same on a local lease, in interleaved rounds. A third series,
//!    `Backend::exec` of bare `true` on Nomad (no wrapper), splits the Nomad figure into the
//!    exec websocket's round trip and the wrapper. Target: ≤ 10 ms more per step than local.
//! 2. **Full sync throughput** of a generated, committed 500 MB / 20,000-file repository
//!    (the same mix and seed as the local-backend benchmarks) into a fresh Nomad lease, against
//!    a `tar -c | tar -x` pipe of the same tree, and reported against a full sync into a fresh
//!    local lease; the three alternate in each repetition. Warmup, prepare and release are
//!    outside the timing. A fourth series sends the same number of bytes over the exec
//!    websocket's stdin into `cat >/dev/null` (the transport alone). Target: ≥ 0.5× the tar
//!    pipe.
//!    Then re-syncs of one kept lease (local and Nomad), with nothing changed and after
//!    changing one file, each against the full sync of its backend. Target: ≥ 50× faster.
//! 3. **A rerun on a kept lease against a cold one-shot run**, with the real release binary
//!    (`NOMAD_ADDR` at the test server, `LEASEBOX_NOMAD_DRIVER=raw_exec`, scratch `HOME`,
//!    `LEASEBOX_STATE_DIR`, `XDG_CACHE_HOME`): `leasebox run -- true` (warmup + sync + step +
//!    release) against `leasebox run --lease ID -- true` (incremental sync + step), on a small
//!    repository and on the 500 MB one, with the phases of `--timing-json`; the local backend's
//!    figures for the small repository alongside.
//! 4. **A second `cargo test --lib` on a kept lease against the same warm rerun done
//!    locally**: a generated Cargo project without dependencies (24 modules, 240 unit tests),
//!    built once locally and once in the kept lease's box (neither counted), then
//!    `leasebox run --lease ID -- cargo test --lib --offline` with nothing changed against
//!    `cargo test --lib --offline` in the repository itself, alternating, on the local backend
//!    and on the test server. Each rerun is checked to compile nothing (the box's `target/`
//!    survived the incremental sync). Target: ≤ 2×. With `LEASEBOX_BENCH_CARGO=self` the
//!    project is this repository itself (a clone of its `HEAD`, built three times cold: once
//!    here, once in each box; its dependencies come from the real `CARGO_HOME`, offline).
//!
//! Benchmarks are not timed tests: nothing fails on speed. They run only under
//! `cargo bench --bench nomad` (which passes `--bench`); started any other way they print that
//! they were skipped.
//!
//! `LEASEBOX_BENCH_N` sets the exec steps per series (default 50); `LEASEBOX_BENCH_REPS` the
//! repetitions of each sync and CLI measurement (at least 5 for the `cargo test` reruns);
//! `LEASEBOX_BENCH_ONLY=exec` stops after the exec series, `LEASEBOX_BENCH_ONLY=cargo` runs
//! only the `cargo test` reruns (default 3; the first kept-lease run, which
//! syncs the whole tree, is not counted); `LEASEBOX_BENCH_TREE_MB` scales the large tree, files
//! and bytes alike (default 500, for quick trial runs only).

mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use common::{
    TreeSpec, TreeStats, generate_cargo_project, generate_repo, list_ms, median, mib, ms, settle,
    time,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use leasebox::backends::local::LocalFaults;
use leasebox::backends::nomad::NomadBackend;
use leasebox::config::{Config, ConfigInputs};
use leasebox::lease::{Backend, ExecEvent, ExecRequest, ExecStream, LeaseId, LeaseSpec};
use leasebox::session::{Command, NullSink, Session, SyncOptions, Timing, scripts};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use support::Scratch;
use support::nomad::NomadServer;

/// The large tree: the same shape as the local-backend benchmarks'.
const BIG: TreeSpec = TreeSpec {
    files: 20_000,
    bytes: 500 * 1000 * 1000,
};

/// A small repository, for the per-run cost of the CLI.
const SMALL: TreeSpec = TreeSpec {
    files: 200,
    bytes: 2 * 1000 * 1000,
};

/// Interleaved rounds of the exec series.
const ROUNDS: usize = 5;
/// Unmeasured exec steps per series before the rounds.
const EXEC_WARMUP: usize = 5;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("nomad: skipped (benchmarks run under `cargo bench --bench nomad`)");
        return;
    }
    let n = env_number("LEASEBOX_BENCH_N", 50).max(ROUNDS);
    let reps = env_number("LEASEBOX_BENCH_REPS", 3).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let nomad = NomadServer::start_modern();
    println!(
        "Nomad API test server (modern profile, raw_exec) on {}",
        nomad.url()
    );
    let mut table = Table::default();
    let only = std::env::var("LEASEBOX_BENCH_ONLY").unwrap_or_default();
    if only == "cargo" {
        cargo_reruns(&nomad, reps, &mut table);
        println!();
        table.print();
        return;
    }

    // ----- 1. exec overhead -----
    let small = Scratch::new();
    let stats = generate_repo(&small.repo(), SMALL);
    println!(
        "small repository: {} files, {:.1} MiB",
        stats.files,
        mib(stats.bytes)
    );
    exec_overhead(&runtime, &nomad, &small, n, &mut table);
    if only == "exec" {
        println!();
        table.print();
        return;
    }

    // ----- 3a. cold run vs rerun, small repository -----
    cli_runs(&nomad, &small, reps, "small repo", true, &mut table);

    // ----- 2. full sync throughput -----
    let big = Scratch::new();
    let scale = env_number("LEASEBOX_BENCH_TREE_MB", 500);
    let spec = TreeSpec {
        files: BIG.files * scale / 500,
        bytes: BIG.bytes * scale as u64 / 500,
    };
    let (took, stats) = time(|| generate_repo(&big.repo(), spec));
    println!(
        "large repository: {} files, {:.1} MiB, generated and committed in {:.1} s",
        stats.files,
        mib(stats.bytes),
        took.as_secs_f64()
    );
    sync_throughput(&runtime, &nomad, &big, stats, reps, &mut table);

    // ----- 3b. cold run vs rerun, large repository -----
    cli_runs(&nomad, &big, reps, "large repo", false, &mut table);

    // ----- 4. a warm `cargo test --lib` on a kept lease vs locally -----
    cargo_reruns(&nomad, reps, &mut table);

    let jobs = nomad.jobs();
    assert!(jobs.is_empty(), "jobs left behind: {jobs:?}");
    println!();
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();
    table.print();
}

// ----- 1. exec overhead ---------------------------------------------------------------------

#[derive(Clone, Copy)]
enum ExecSeries {
    LocalSession,
    NomadSession,
    NomadBare,
    NomadNew,
    NomadOld,
}

const EXEC_SERIES: [ExecSeries; 5] = [
    ExecSeries::LocalSession,
    ExecSeries::NomadSession,
    ExecSeries::NomadBare,
    ExecSeries::NomadNew,
    ExecSeries::NomadOld,
];

impl ExecSeries {
    fn label(self) -> &'static str {
        match self {
            ExecSeries::LocalSession => "local: Session::exec `true`",
            ExecSeries::NomadSession => "nomad: Session::exec `true`",
            ExecSeries::NomadBare => "nomad: Backend::exec bare `true` (no wrapper)",
            ExecSeries::NomadNew => "nomad: Backend::exec new wrapper `true`",
            ExecSeries::NomadOld => "nomad: Backend::exec old wrapper `true` (baseline)",
        }
    }
}

/// Run ids for the wrapper series, distinct within the lease.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn exec_overhead(
    runtime: &Runtime,
    nomad: &NomadServer,
    scratch: &Scratch,
    n: usize,
    table: &mut Table,
) {
    println!();
    println!("== exec overhead per step ==");
    let local = runtime.block_on(scratch.session(LocalFaults::default()));
    let remote = runtime.block_on(nomad_session(nomad, scratch));
    runtime.block_on(old_prepare(&remote));
    let session_of = |series| match series {
        ExecSeries::LocalSession => &local,
        _ => &remote,
    };
    for series in EXEC_SERIES {
        for _ in 0..EXEC_WARMUP {
            exec_once(runtime, session_of(series), series);
        }
    }
    let per_round = n / ROUNDS;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); EXEC_SERIES.len()];
    for round in 0..ROUNDS {
        // Rotate the order each round, so machine noise lands on every series alike.
        for k in 0..EXEC_SERIES.len() {
            let i = (k + round) % EXEC_SERIES.len();
            for _ in 0..per_round {
                samples[i].push(exec_once(
                    runtime,
                    session_of(EXEC_SERIES[i]),
                    EXEC_SERIES[i],
                ));
            }
        }
    }
    let medians: Vec<Duration> = samples.iter().map(|s| median(s)).collect();
    for ((series, times), med) in EXEC_SERIES.iter().zip(&samples).zip(&medians) {
        println!(
            "{:<48} median {:>7.2} ms  mean {:>7.2} ms  ({} steps)",
            series.label(),
            ms(*med),
            ms(mean(times)),
            times.len()
        );
    }
    let extra = ms(medians[1]) - ms(medians[0]);
    table.row(
        "exec: `true` via `Session::exec`, per step",
        &format!("local: {:.1} ms", ms(medians[0])),
        &format!("nomad: {:.1} ms", ms(medians[1])),
        &format!("**{extra:+.1} ms** per step"),
        "≤ +10 ms",
        Some(extra <= 10.0),
    );
    table.row(
        "exec split: nomad `Backend::exec` of bare `true` (websocket round trip, no wrapper)",
        "—",
        &format!("{:.1} ms", ms(medians[2])),
        &format!(
            "wrapper adds {:+.1} ms on nomad",
            ms(medians[1]) - ms(medians[2])
        ),
        "—",
        None,
    );
    let ratio = (ms(medians[3]) - ms(medians[2])) / (ms(medians[4]) - ms(medians[2]));
    table.row(
        "exec: new wrapper vs the old one on nomad (`Backend::exec` fed the header, minus bare)",
        &format!("old: {:+.1} ms", ms(medians[4]) - ms(medians[2])),
        &format!("new: {:+.1} ms", ms(medians[3]) - ms(medians[2])),
        &format!("**{ratio:.2}×**"),
        "≤ 1.0×",
        Some(ratio <= 1.0),
    );
    let cancel = CancellationToken::new();
    runtime
        .block_on(local.backend().release(local.lease(), &cancel))
        .expect("release the local lease");
    runtime.block_on(release_nomad(nomad, &remote));
}

fn exec_once(runtime: &Runtime, session: &Session, series: ExecSeries) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        let code = match series {
            ExecSeries::LocalSession | ExecSeries::NomadSession => {
                let command = Command {
                    argv: vec!["true".to_owned()],
                    ..Command::default()
                };
                session
                    .exec(&command, Arc::new(NullSink), &CancellationToken::new())
                    .await
                    .expect("exec")
                    .code
            }
            ExecSeries::NomadNew | ExecSeries::NomadOld => {
                let lease = session.lease();
                let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (script, header) = if matches!(series, ExecSeries::NomadNew) {
                    let h = scripts::header(&format!("bench{run:06}"), &lease.workdir, &[]);
                    (scripts::WRAPPER, h)
                } else {
                    let h =
                        common::old_wrapper::old_header(&format!("bench{run:06}"), &lease.workdir);
                    (common::old_wrapper::OLD_WRAPPER, h)
                };
                let mut stream = session
                    .backend()
                    .exec(
                        lease,
                        ExecRequest {
                            argv: scripts::argv(
                                "exec",
                                script,
                                [lease.state_dir(), "true".to_owned()],
                            ),
                            cwd: None,
                            stdin: true,
                            tty: None,
                        },
                    )
                    .await
                    .expect("backend exec");
                let tx = stream.take_stdin().expect("stdin");
                tx.send(Bytes::from(header)).await.expect("header");
                drop(tx);
                exit_code(stream).await
            }
            ExecSeries::NomadBare => {
                let stream = session
                    .backend()
                    .exec(
                        session.lease(),
                        ExecRequest {
                            argv: vec!["true".to_owned()],
                            cwd: None,
                            stdin: false,
                            tty: None,
                        },
                    )
                    .await
                    .expect("backend exec");
                exit_code(stream).await
            }
        };
        let took = start.elapsed();
        assert_eq!(code, 0, "`true` exited {code}");
        took
    })
}

/// What the old `prepare` did for the old wrapper: the `tee-p` marker where `tee -p` works.
async fn old_prepare(session: &Session) {
    let script = r#"d=$1; case $d in '${NOMAD_ALLOC_DIR}'*) d=$NOMAD_ALLOC_DIR${d#'${NOMAD_ALLOC_DIR}'};; esac
tee -p "$d/tee-p" </dev/null >/dev/null 2>&1 || rm -f "$d/tee-p""#;
    let stream = session
        .backend()
        .exec(
            session.lease(),
            ExecRequest {
                argv: scripts::argv("old-prepare", script, [session.lease().state_dir()]),
                cwd: None,
                stdin: false,
                tty: None,
            },
        )
        .await
        .expect("old prepare");
    assert_eq!(exit_code(stream).await, 0, "old prepare");
}

async fn exit_code(mut stream: ExecStream) -> i32 {
    loop {
        match stream.events.recv().await {
            Some(ExecEvent::Exited(code)) => return code,
            Some(ExecEvent::Stdout(_) | ExecEvent::Stderr(_)) => {}
            other => panic!("unexpected exec event {other:?}"),
        }
    }
}

// ----- 2. sync throughput -------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SyncSeries {
    TarPipe,
    Local,
    Nomad,
    Websocket,
}

const SYNC_SERIES: [SyncSeries; 4] = [
    SyncSeries::TarPipe,
    SyncSeries::Local,
    SyncSeries::Nomad,
    SyncSeries::Websocket,
];

impl SyncSeries {
    fn label(self) -> &'static str {
        match self {
            SyncSeries::TarPipe => "tar -c | tar -x",
            SyncSeries::Local => "local: Session::sync",
            SyncSeries::Nomad => "nomad: Session::sync",
            SyncSeries::Websocket => "nomad: exec stdin to `cat >/dev/null`",
        }
    }
}

fn sync_throughput(
    runtime: &Runtime,
    nomad: &NomadServer,
    scratch: &Scratch,
    stats: TreeStats,
    reps: usize,
    table: &mut Table,
) {
    println!();
    println!("== full sync throughput ==");
    let excludes = load_config(&nomad_env(scratch, nomad), &scratch.repo())
        .settings()
        .sync_exclude
        .clone();
    let options = SyncOptions {
        root: scratch.repo(),
        excludes,
        ..SyncOptions::default()
    };
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); SYNC_SERIES.len()];
    let mut removals = Vec::new();
    for rep in 0..reps {
        for k in 0..SYNC_SERIES.len() {
            let i = (k + rep) % SYNC_SERIES.len();
            settle();
            let took = match SYNC_SERIES[i] {
                SyncSeries::TarPipe => {
                    let (took, removal) = tar_pipe(scratch, stats.files);
                    removals.push(removal);
                    took
                }
                SyncSeries::Local => {
                    let session = runtime.block_on(scratch.session(LocalFaults::default()));
                    let took = runtime.block_on(sync_once(&session, &options, stats.files));
                    runtime
                        .block_on(
                            session
                                .backend()
                                .release(session.lease(), &CancellationToken::new()),
                        )
                        .expect("release the local lease");
                    took
                }
                SyncSeries::Nomad => {
                    let session = runtime.block_on(nomad_session(nomad, scratch));
                    let took = runtime.block_on(sync_once(&session, &options, stats.files));
                    runtime.block_on(release_nomad(nomad, &session));
                    took
                }
                SyncSeries::Websocket => {
                    let session = runtime.block_on(nomad_session(nomad, scratch));
                    let took = runtime.block_on(websocket_stdin(&session, stats.bytes));
                    runtime.block_on(release_nomad(nomad, &session));
                    took
                }
            };
            samples[i].push(took);
        }
        println!(
            "rep {}: {}, removing the tar copy once written back {:.0} ms",
            rep + 1,
            SYNC_SERIES
                .iter()
                .zip(&samples)
                .map(|(s, t)| format!("{} {:.0} ms", s.label(), ms(t[rep])))
                .collect::<Vec<_>>()
                .join(", "),
            ms(removals[rep])
        );
    }
    let medians: Vec<Duration> = samples.iter().map(|s| median(s)).collect();
    let rate = |d: Duration| mib(stats.bytes) / d.as_secs_f64();
    for ((series, times), med) in SYNC_SERIES.iter().zip(&samples).zip(&medians) {
        println!(
            "{:<40} median {:>7.0} ms ({:>5.0} MiB/s)  samples [{}]",
            series.label(),
            ms(*med),
            rate(*med),
            list_ms(times)
        );
    }
    let [tar, local, remote, socket] = [medians[0], medians[1], medians[2], medians[3]];
    let vs_tar = tar.as_secs_f64() / remote.as_secs_f64();
    let vs_local = local.as_secs_f64() / remote.as_secs_f64();
    table.row(
        &format!(
            "full sync, {:.0} MB / {} files, fresh lease",
            stats.bytes as f64 / 1e6,
            stats.files
        ),
        &format!(
            "tar pipe: {:.1} s ({:.0} MiB/s)",
            tar.as_secs_f64(),
            rate(tar)
        ),
        &format!(
            "nomad: {:.1} s ({:.0} MiB/s)",
            remote.as_secs_f64(),
            rate(remote)
        ),
        &format!("**{vs_tar:.2}×** the tar pipe"),
        "≥ 0.5×",
        Some(vs_tar >= 0.5),
    );
    table.row(
        "full sync, same tree, against the local backend",
        &format!(
            "local: {:.1} s ({:.0} MiB/s)",
            local.as_secs_f64(),
            rate(local)
        ),
        &format!("nomad: {:.1} s", remote.as_secs_f64()),
        &format!("{vs_local:.2}× the local backend"),
        "reported",
        None,
    );
    table.row(
        "sync split: the same bytes over exec stdin into `cat >/dev/null` (transport alone)",
        "—",
        &format!("{:.1} s ({:.0} MiB/s)", socket.as_secs_f64(), rate(socket)),
        &format!(
            "{:.0}% of the nomad sync's time",
            100.0 * socket.as_secs_f64() / remote.as_secs_f64()
        ),
        "—",
        None,
    );
    // Re-syncs of a kept lease, against the full syncs of the same tree measured above.
    let (local_resync, nomad_resync) = runtime.block_on(async {
        let session = scratch.session(LocalFaults::default()).await;
        let l = common::resync_samples(&session, &options, reps).await;
        session
            .backend()
            .release(session.lease(), &CancellationToken::new())
            .await
            .expect("release the local lease");
        let session = nomad_session(nomad, scratch).await;
        let n = common::resync_samples(&session, &options, reps).await;
        release_nomad(nomad, &session).await;
        (l, n)
    });
    for (backend, full, (nothing, one)) in [
        ("local", local, &local_resync),
        ("nomad", remote, &nomad_resync),
    ] {
        for (what, samples) in [("nothing changed", nothing), ("one file changed", one)] {
            let m = median(samples);
            let ratio = full.as_secs_f64() / m.as_secs_f64();
            println!(
                "{backend}: re-sync, {what}: median {:.1} ms  samples [{}]",
                ms(m),
                list_ms(samples)
            );
            table.row(
                &format!("{backend}: re-sync of a kept lease, {what}, vs a full sync"),
                &format!("full: {:.1} s", full.as_secs_f64()),
                &format!("re-sync: {:.1} ms", ms(m)),
                &format!("**{ratio:.0}×** faster"),
                "≥ 50×",
                Some(ratio >= 50.0),
            );
        }
    }
    let removal = median(&removals);
    println!(
        "removing the tree once written back (`rm -rf`, what a clean re-sync does to the previous tree): median {:.0} ms  samples [{}]",
        ms(removal),
        list_ms(&removals)
    );
    table.row(
        "what a clean re-sync adds: removing the previous tree once written back (`rm -rf` of the tar copy)",
        "—",
        &format!("{:.1} s", removal.as_secs_f64()),
        &format!(
            "{:.0}% of a full nomad sync",
            100.0 * removal.as_secs_f64() / remote.as_secs_f64()
        ),
        "—",
        None,
    );
}

/// `tar -c | tar -x` of the tree (without `.git`, which sync leaves out too) into a fresh
/// directory; checks every file arrived, then removes it once written back. Returns how long
/// the copy and the removal took.
fn tar_pipe(scratch: &Scratch, files: usize) -> (Duration, Duration) {
    let dest = scratch.path().join("tar-dest");
    std::fs::create_dir_all(&dest).expect("mkdir the tar destination");
    let (took, status) = time(|| {
        std::process::Command::new("sh")
            .args([
                "-c",
                r#"tar -C "$1" --exclude=./.git -cf - . | tar -C "$2" -xof -"#,
                "sh",
            ])
            .arg(scratch.repo())
            .arg(&dest)
            .status()
            .expect("run the tar pipe")
    });
    assert!(status.success(), "tar pipe failed: {status}");
    assert_eq!(count_files(&dest), files, "the tar pipe copied every file");
    settle();
    let (removal, ()) =
        time(|| std::fs::remove_dir_all(&dest).expect("remove the tar destination"));
    (took, removal)
}

async fn sync_once(session: &Session, options: &SyncOptions, files: usize) -> Duration {
    let (took, report) = time_async(session.sync(options, &CancellationToken::new())).await;
    let report = report.expect("sync");
    assert_eq!(report.files, files, "sync sent every file");
    assert_eq!(
        count_files(Path::new(&session.lease().workdir)),
        files,
        "every file arrived in the workdir"
    );
    took
}

/// `bytes` of stdin over one exec into `cat >/dev/null`: the exec websocket's throughput.
async fn websocket_stdin(session: &Session, bytes: u64) -> Duration {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let start = Instant::now();
    let mut stream = session
        .backend()
        .exec(
            session.lease(),
            ExecRequest {
                argv: vec!["sh".into(), "-c".into(), "cat >/dev/null".into()],
                cwd: None,
                stdin: true,
                tty: None,
            },
        )
        .await
        .expect("backend exec");
    let tx = stream.take_stdin().expect("stdin");
    let sender = tokio::spawn(async move {
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(CHUNK as u64)).expect("fits");
            if tx.send(chunk.slice(..n)).await.is_err() {
                panic!("stdin closed early");
            }
            left -= n as u64;
        }
    });
    let code = exit_code(stream).await;
    sender.await.expect("the stdin sender");
    let took = start.elapsed();
    assert_eq!(code, 0, "`cat` exited {code}");
    took
}

// ----- 3. the real binary: cold run vs rerun on a kept lease ------------------------------

/// Phase medians of `--timing-json`, in milliseconds.
#[derive(Default)]
struct Phases {
    by_name: BTreeMap<String, Vec<u64>>,
}

impl Phases {
    fn add(&mut self, file: &Path) {
        let text = std::fs::read_to_string(file).expect("read the timing file");
        let value: serde_json::Value = serde_json::from_str(&text).expect("timing JSON");
        for phase in value["phases"].as_array().expect("phases") {
            let name = phase["name"].as_str().expect("a name");
            let name = if name.starts_with("step") {
                "step"
            } else {
                name
            };
            self.by_name
                .entry(name.to_owned())
                .or_default()
                .push(phase["ms"].as_u64().expect("ms"));
        }
    }

    fn shown(&self) -> String {
        self.by_name
            .iter()
            .map(|(name, values)| {
                let mut v = values.clone();
                v.sort_unstable();
                format!("{name} {}", v[v.len() / 2])
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn cli_runs(
    nomad: &NomadServer,
    scratch: &Scratch,
    reps: usize,
    what: &str,
    with_local: bool,
    table: &mut Table,
) {
    println!();
    println!("== the release binary, {what}: cold `run -- true` vs `run --lease ID -- true` ==");
    let mut backends = vec![("nomad", nomad_env(scratch, nomad))];
    if with_local {
        backends.push(("local", scratch.env()));
    }
    for (name, env) in backends {
        let timing = scratch.path().join("timing.json");
        let timing_arg = timing.display().to_string();
        let mut cold = Vec::new();
        let mut cold_phases = Phases::default();
        let mut rerun = Vec::new();
        let mut rerun_phases = Phases::default();

        let out = leasebox(scratch, &env, &["warmup"]);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // The first run on the kept lease syncs the whole tree: not counted.
        leasebox(scratch, &env, &["run", "--lease", &id, "--", "true"]);
        for rep in 0..reps {
            // Alternate which goes first.
            for cold_first in if rep % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            } {
                settle();
                if cold_first {
                    let (took, _) = time(|| {
                        leasebox(
                            scratch,
                            &env,
                            &["run", "--timing-json", &timing_arg, "--", "true"],
                        )
                    });
                    cold.push(took);
                    cold_phases.add(&timing);
                } else {
                    let (took, _) = time(|| {
                        leasebox(
                            scratch,
                            &env,
                            &[
                                "run",
                                "--lease",
                                &id,
                                "--timing-json",
                                &timing_arg,
                                "--",
                                "true",
                            ],
                        )
                    });
                    rerun.push(took);
                    rerun_phases.add(&timing);
                }
            }
        }
        leasebox(scratch, &env, &["stop", &id]);
        if name == "nomad" {
            remove_alloc_dirs(nomad);
        }
        let (c, r) = (median(&cold), median(&rerun));
        println!(
            "{name}: cold run median {:.0} ms  samples [{}]  phases (median ms): {}",
            ms(c),
            list_ms(&cold),
            cold_phases.shown()
        );
        println!(
            "{name}: rerun    median {:.0} ms  samples [{}]  phases (median ms): {}",
            ms(r),
            list_ms(&rerun),
            rerun_phases.shown()
        );
        table.row(
            &format!("{name}, {what}: `leasebox run --lease ID -- true` vs `leasebox run -- true`"),
            &format!("cold: {:.0} ms ({})", ms(c), cold_phases.shown()),
            &format!("rerun: {:.0} ms ({})", ms(r), rerun_phases.shown()),
            &format!(
                "rerun/cold **{:.2}×** ({:+.0} ms)",
                r.as_secs_f64() / c.as_secs_f64(),
                ms(r) - ms(c)
            ),
            "reported",
            None,
        );
    }
}

// ----- 4. a warm `cargo test --lib` on a kept lease vs the same rerun locally -----------------

/// What both sides run.
const CARGO_TEST: [&str; 4] = ["cargo", "test", "--lib", "--offline"];

/// The project the `cargo test` reruns build.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CargoProject {
    /// 24 generated modules, 240 tests, no dependencies.
    Generated,
    /// A clone of this repository's `HEAD` (`LEASEBOX_BENCH_CARGO=self`).
    ThisRepository,
}

impl CargoProject {
    fn from_env() -> Self {
        match std::env::var("LEASEBOX_BENCH_CARGO").as_deref() {
            Ok("self") => CargoProject::ThisRepository,
            _ => CargoProject::Generated,
        }
    }

    /// What the figures call the project.
    fn label(self) -> &'static str {
        match self {
            CargoProject::Generated => "generated 240-test project",
            CargoProject::ThisRepository => "leasebox repository",
        }
    }

    /// The crate whose `Compiling NAME` line says a run built something.
    fn crate_name(self) -> &'static str {
        match self {
            CargoProject::Generated => "leasebench",
            CargoProject::ThisRepository => "leasebox",
        }
    }

    /// Put the project into the scratch repository (not committed yet).
    fn create(self, scratch: &Scratch) -> String {
        let repo = scratch.repo();
        match self {
            CargoProject::Generated => {
                generate_cargo_project(&repo, 24, 10);
                "generated project: 24 modules, 240 tests".to_owned()
            }
            CargoProject::ThisRepository => {
                let here = env!("CARGO_MANIFEST_DIR");
                std::fs::remove_dir_all(&repo).expect("clear the scratch repository");
                let out = std::process::Command::new("git")
                    .args(["clone", "-q", "--no-hardlinks", here])
                    .arg(&repo)
                    .output()
                    .expect("git clone");
                assert!(
                    out.status.success(),
                    "git clone: {}",
                    support::describe(&out)
                );
                common::git(&repo, &["config", "user.email", "bench@example.invalid"]);
                common::git(&repo, &["config", "user.name", "bench"]);
                // The checkout wrote files and the index in the same second, so the index is
                // "racy" and the build script's `git status` would rewrite it, which makes the
                // next build run the build script (and rebuild) again: settle it first.
                std::thread::sleep(Duration::from_millis(1100));
                common::git(&repo, &["status", "--porcelain"]);
                format!("this repository ({here} at HEAD)")
            }
        }
    }
}

/// `env` plus what the toolchain needs under the scratch `HOME`: rustup's home (and the
/// toolchain `cargo bench` runs with), a `CARGO_HOME` (a scratch one for the generated project,
/// which has no dependencies, since a shared one makes every run wait for other builds'
/// package-cache lock; the real one for this repository, whose dependencies it holds), and
/// the names the box must be passed.
fn toolchain_env(
    scratch: &Scratch,
    project: CargoProject,
    mut env: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let home = std::env::var("HOME").unwrap_or_default();
    let rustup = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    let cargo = match project {
        CargoProject::Generated => scratch.path().join("cargo-home"),
        CargoProject::ThisRepository => std::env::var_os("CARGO_HOME")
            .map_or_else(|| Path::new(&home).join(".cargo"), Into::into),
    };
    std::fs::create_dir_all(&cargo).expect("create CARGO_HOME");
    env.insert("RUSTUP_HOME".into(), rustup);
    env.insert("CARGO_HOME".into(), cargo.display().to_string());
    let mut names = vec!["PATH".to_owned(), "RUSTUP_HOME".into(), "CARGO_HOME".into()];
    if project == CargoProject::ThisRepository {
        // The unit tests replay the recordings beside the checkout, which a box does not have.
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/nomad-1.1.2");
        let fixtures = fixtures
            .canonicalize()
            .expect("shared/fixtures beside the checkout");
        env.insert(
            "LEASEBOX_NOMAD_FIXTURES".into(),
            fixtures.display().to_string(),
        );
        names.push("LEASEBOX_NOMAD_FIXTURES".into());
    }
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        env.insert("RUSTUP_TOOLCHAIN".into(), toolchain);
        names.push("RUSTUP_TOOLCHAIN".into());
    }
    (env, names)
}

/// `cargo test --lib --offline` in `repo` itself with `env` only; panics unless it passes.
fn cargo_local(repo: &Path, env: &BTreeMap<String, String>) -> std::process::Output {
    let out = std::process::Command::new(CARGO_TEST[0])
        .args(&CARGO_TEST[1..])
        .current_dir(repo)
        .env_clear()
        .envs(env)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo test: {}",
        support::describe(&out)
    );
    out
}

fn compiled(out: &std::process::Output, project: CargoProject) -> bool {
    String::from_utf8_lossy(&out.stderr).contains(&format!("Compiling {} ", project.crate_name()))
}

fn cargo_reruns(nomad: &NomadServer, reps: usize, table: &mut Table) {
    let reps = reps.max(5);
    println!();
    println!("== a second `cargo test --lib` on a kept lease vs the same warm rerun locally ==");
    let scratch = Scratch::new();
    let repo = scratch.repo();
    let project = CargoProject::from_env();
    let what = project.create(&scratch);
    let (local_env, names) = toolchain_env(&scratch, project, scratch.env());
    let (took, out) = time(|| cargo_local(&repo, &local_env));
    assert!(compiled(&out, project), "{}", support::describe(&out));
    println!(
        "{what}; local cold build and test {:.1} s",
        took.as_secs_f64()
    );
    if project == CargoProject::Generated {
        scratch.commit();
    }
    let mut nomad_side = local_env.clone();
    nomad_side.insert("NOMAD_ADDR".into(), nomad.url());
    nomad_side.insert("LEASEBOX_NOMAD_DRIVER".into(), "raw_exec".into());
    for (name, env) in [("local", local_env.clone()), ("nomad", nomad_side)] {
        let out = leasebox(&scratch, &env, &["warmup"]);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut args: Vec<&str> = vec!["run", "--lease", &id];
        for n in &names {
            args.extend(["--pass-env", n.as_str()]);
        }
        args.push("--");
        args.extend(CARGO_TEST);
        // The first run syncs everything and builds in the box: not counted.
        let (cold, out) = time(|| leasebox(&scratch, &env, &args));
        assert!(compiled(&out, project), "{}", support::describe(&out));
        let (mut local, mut kept) = (Vec::new(), Vec::new());
        for rep in 0..=reps {
            for local_first in [rep % 2 == 0, rep % 2 != 0] {
                settle();
                if local_first {
                    let (took, out) = time(|| cargo_local(&repo, &local_env));
                    assert!(!compiled(&out, project), "{}", support::describe(&out));
                    if rep > 0 {
                        local.push(took);
                    }
                } else {
                    let (took, out) = time(|| leasebox(&scratch, &env, &args));
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        !compiled(&out, project),
                        "the box rebuilt: {}",
                        support::describe(&out)
                    );
                    assert!(
                        err.contains("incremental · 0 files sent (0 B), 0 deleted"),
                        "{err}"
                    );
                    if rep > 0 {
                        kept.push(took);
                    }
                }
            }
        }
        leasebox(&scratch, &env, &["stop", &id]);
        if name == "nomad" {
            remove_alloc_dirs(nomad);
        }
        let (l, k) = (median(&local), median(&kept));
        let ratio = k.as_secs_f64() / l.as_secs_f64();
        println!(
            "{name}: local warm rerun median {:.0} ms  samples [{}]",
            ms(l),
            list_ms(&local)
        );
        println!(
            "{name}: kept-lease rerun median {:.0} ms  samples [{}]  (first run in the box, cold: {:.1} s)",
            ms(k),
            list_ms(&kept),
            cold.as_secs_f64()
        );
        common::verdict(
            &format!(
                "{name}: second `cargo test --lib` of the {} on a kept lease vs local warm rerun",
                project.label()
            ),
            &format!("{ratio:.2}×"),
            "≤ 2×",
            ratio <= 2.0,
        );
        table.row(
            &format!(
                "{name}: second `cargo test --lib --offline` of the {} on a kept lease, nothing changed, vs the same warm rerun locally",
                project.label()
            ),
            &format!("local warm rerun: {:.0} ms", ms(l)),
            &format!(
                "kept lease: {:.0} ms (first run in the box, cold: {:.1} s)",
                ms(k),
                cold.as_secs_f64()
            ),
            &format!("**{ratio:.2}×** ({:+.0} ms)", ms(k) - ms(l)),
            "≤ 2×",
            Some(ratio <= 2.0),
        );
    }
}

/// Run the release binary in the repository with `env` only; panics unless it succeeds.
fn leasebox(
    scratch: &Scratch,
    env: &BTreeMap<String, String>,
    args: &[&str],
) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leasebox"))
        .args(args)
        .current_dir(scratch.repo())
        .env_clear()
        .envs(env)
        .output()
        .expect("run leasebox");
    assert!(
        out.status.success(),
        "leasebox {args:?}: {}",
        support::describe(&out)
    );
    out
}

// ----- Nomad sessions -------------------------------------------------------------------------

/// The scratch environment with the Nomad address and the raw_exec driver.
fn nomad_env(scratch: &Scratch, nomad: &NomadServer) -> BTreeMap<String, String> {
    let mut env = scratch.env();
    env.insert("NOMAD_ADDR".into(), nomad.url());
    env.insert("LEASEBOX_NOMAD_DRIVER".into(), "raw_exec".into());
    env
}

fn load_config(env: &BTreeMap<String, String>, repo: &Path) -> Config {
    Config::load(&ConfigInputs {
        env: env.clone(),
        repo_root: Some(repo.to_path_buf()),
        ..ConfigInputs::default()
    })
    .expect("config")
}

/// A fresh Nomad lease with a prepared box, as a session (what `Leases::acquire` does, without
/// the claim).
async fn nomad_session(nomad: &NomadServer, scratch: &Scratch) -> Session {
    let env = nomad_env(scratch, nomad);
    let config = load_config(&env, &scratch.repo());
    let backend: Arc<dyn Backend> =
        Arc::new(NomadBackend::new(config.settings(), "NOMAD_ADDR", &env).expect("nomad backend"));
    let spec = LeaseSpec {
        id: LeaseId::generate(),
        owner: config.settings().owner.clone(),
        repo_root: scratch.repo(),
        ttl: config.settings().lease_ttl,
        idle: config.settings().lease_idle,
        ..LeaseSpec::default()
    };
    let cancel = CancellationToken::new();
    let lease = backend.warmup(&spec, &cancel).await.expect("nomad warmup");
    let session = Session::new(backend, lease, Arc::new(Timing::default()));
    session.prepare(&cancel).await.expect("prepare");
    session
}

/// Release a Nomad lease, then remove its allocation directory (the test server keeps them).
async fn release_nomad(nomad: &NomadServer, session: &Session) {
    session
        .backend()
        .release(session.lease(), &CancellationToken::new())
        .await
        .expect("release the nomad lease");
    if let Some(alloc) = session.lease().handle.get("alloc_id") {
        let _ = std::fs::remove_dir_all(nomad.alloc_dir(alloc));
    }
}

/// Remove the directories of every terminal allocation (after the CLI released its leases).
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

// ----- the generated tree -------------------------------------------------------------------

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read a dir") {
            let entry = entry.expect("a dir entry");
            if entry.file_type().expect("a file type").is_dir() {
                stack.push(entry.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

// ----- figures ----------------------------------------------------------------------------

/// The final table, in Markdown.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    fn row(
        &mut self,
        what: &str,
        baseline: &str,
        measured: &str,
        result: &str,
        target: &str,
        met: Option<bool>,
    ) {
        let target = match met {
            Some(true) => format!("{target}: met"),
            Some(false) => format!("{target}: **missed**"),
            None => target.to_owned(),
        };
        self.rows.push([
            what.to_owned(),
            baseline.to_owned(),
            measured.to_owned(),
            result.to_owned(),
            target,
        ]);
    }

    fn print(&self) {
        println!("| benchmark | baseline | measured | result | target |");
        println!("|---|---|---|---|---|");
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn time_async<T>(f: impl std::future::Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let out = f.await;
    (start.elapsed(), out)
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / u32::try_from(samples.len()).expect("fits")
}
