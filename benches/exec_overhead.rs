//! Exec overhead per command: `true` run N=100 times through `Session::exec` (the
//! verified-exec wrapper on the local backend) against spawning `true` directly from Rust
//! (`std::process::Command::status`), measured in interleaved rounds in the same run.
//!
//! More series split the overhead and set the new wrapper beside the old one (the wrapper that
//! ran the command as its own child, kept in `benches/common/old_wrapper.rs` as the baseline
//! only): `Backend::exec` of bare `true` (the local backend's spawn, process group and output
//! pumps, without a wrapper), `Backend::exec` of each wrapper fed its header (the same path
//! `Session::exec` takes, minus its bookkeeping), and each wrapper script alone (`sh -c
//! WRAPPER … true` fed its header, spawned directly, without tokio or the backend). At the
//! end, where `strace` is installed, the programs and processes each wrapper starts per
//! command are counted.
//!
//! Targets: `Session::exec` costs ≤ 5 ms more per command than the direct spawn; the new
//! wrapper's overhead is ≤ 1.0× the old one's.
//!
//! `LEASEBOX_BENCH_N` sets the number of commands per series (default 100).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leasebox::backends::local::LocalFaults;
use leasebox::lease::{ExecEvent, ExecRequest};
use leasebox::session::{Command, NullSink, Session, scripts};
use tokio_util::sync::CancellationToken;

use common::ms;

const ROUNDS: usize = 5;
const WARMUP: usize = 10;

/// Run ids for the wrapper-alone series, distinct within the lease.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Series {
    Direct,
    Session,
    Backend,
    BackendNew,
    BackendOld,
    AloneNew,
    AloneOld,
}

const SERIES: [Series; 7] = [
    Series::Direct,
    Series::Session,
    Series::Backend,
    Series::BackendNew,
    Series::BackendOld,
    Series::AloneNew,
    Series::AloneOld,
];

impl Series {
    fn label(self) -> &'static str {
        match self {
            Series::Direct => "direct spawn of `true` (std::process)",
            Series::Session => "Session::exec `true` (verified exec)",
            Series::Backend => "Backend::exec bare `true` (no wrapper)",
            Series::BackendNew => "Backend::exec new wrapper `true`",
            Series::BackendOld => "Backend::exec old wrapper `true` (baseline)",
            Series::AloneNew => "new wrapper alone (sh -c WRAPPER true)",
            Series::AloneOld => "old wrapper alone (baseline)",
        }
    }
}

fn main() {
    if !common::bench_mode("exec_overhead") {
        return;
    }
    let n: usize = std::env::var("LEASEBOX_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(ROUNDS);
    let scratch = support::Scratch::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let session = runtime.block_on(scratch.session(LocalFaults::default()));
    common::old_wrapper::old_prepare(&session.lease().state_dir());

    for series in SERIES {
        for _ in 0..WARMUP {
            run_one(&runtime, &session, series);
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); SERIES.len()];
    let per_round = n / ROUNDS;
    for round in 0..ROUNDS {
        // Interleave the series in rounds (rotating their order), so machine noise lands on
        // all of them alike.
        for k in 0..SERIES.len() {
            let idx = (k + round) % SERIES.len();
            for _ in 0..per_round {
                samples[idx].push(run_one(&runtime, &session, SERIES[idx]));
            }
        }
    }

    println!(
        "{} commands per series, in {ROUNDS} interleaved rounds, after {WARMUP} warm-up commands each",
        per_round * ROUNDS
    );
    let mut means = Vec::new();
    for (series, times) in SERIES.iter().zip(&samples) {
        let total: Duration = times.iter().sum();
        let mean = total / u32::try_from(times.len()).expect("fits");
        means.push(mean);
        println!(
            "{:<44} mean {:>7.3} ms  median {:>7.3} ms  total {:>6.0} ms",
            series.label(),
            ms(mean),
            ms(common::median(times)),
            ms(total)
        );
    }
    let direct = means[0];
    let verified = means[1];
    let extra = ms(verified) - ms(direct);
    println!(
        "split of the overhead: backend spawn and pumps {:+.3} ms, new wrapper script {:+.3} ms (each against the direct spawn)",
        ms(means[2]) - ms(direct),
        ms(means[5]) - ms(direct)
    );
    let over = |i: usize| ms(means[i]) - ms(direct);
    let backend_ratio = (ms(means[3]) - ms(means[2])) / (ms(means[4]) - ms(means[2]));
    let alone_ratio = over(5) / over(6);
    println!(
        "new vs old wrapper: through Backend::exec {:+.3} ms vs {:+.3} ms over the bare exec ({backend_ratio:.2}x); alone {:+.3} ms vs {:+.3} ms over the direct spawn ({alone_ratio:.2}x)",
        ms(means[3]) - ms(means[2]),
        ms(means[4]) - ms(means[2]),
        over(5),
        over(6)
    );
    for (name, script, header) in [
        (
            "new",
            scripts::WRAPPER,
            scripts::header("counted-new", &session.lease().workdir, &[]),
        ),
        (
            "old",
            common::old_wrapper::OLD_WRAPPER,
            common::old_wrapper::old_header("counted-old", &session.lease().workdir),
        ),
    ] {
        match count_programs(script, &session.lease().state_dir(), &header) {
            Some((execs, forks)) => println!(
                "{name} wrapper starts {execs} programs in {forks} processes per `true` (strace, `true` included)"
            ),
            None => println!("{name} wrapper: program count skipped (no `strace`)"),
        }
    }
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    common::verdict(
        "exec overhead per command (Session::exec minus direct spawn)",
        &format!(
            "{extra:+.3} ms ({:.3} ms vs {:.3} ms)",
            ms(verified),
            ms(direct)
        ),
        "<= +5 ms",
        extra <= 5.0,
    );
    common::verdict(
        "new wrapper overhead vs the old wrapper's (through Backend::exec)",
        &format!("{backend_ratio:.2}x"),
        "<= 1.0x",
        backend_ratio <= 1.0,
    );
    runtime
        .block_on(
            session
                .backend()
                .release(session.lease(), &CancellationToken::new()),
        )
        .expect("release");
}

/// The programs (successful `execve`s) and processes (forks) `script` starts to run `true`,
/// counted with `strace -f`; `None` without `strace`.
fn count_programs(script: &str, state_dir: &str, header: &str) -> Option<(usize, usize)> {
    let dir = tempfile::tempdir().ok()?;
    let log = dir.path().join("trace");
    let mut child = std::process::Command::new("strace")
        .arg("-f")
        .arg("-qq")
        .args(["-e", "trace=execve,fork,vfork,clone,clone3", "-o"])
        .arg(&log)
        .args(["sh", "-c", script, "leasebox-exec", state_dir, "true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(header.as_bytes()).ok()?;
    child.wait().ok()?.success().then_some(())?;
    let text = std::fs::read_to_string(&log).ok()?;
    let execs = text
        .lines()
        .filter(|l| l.contains("execve") && l.trim_end().ends_with("= 0"))
        .count();
    let forks = text
        .lines()
        .filter(|l| {
            (l.contains("clone") || l.contains("fork"))
                && l.rsplit("= ")
                    .next()
                    .and_then(|r| r.trim().parse::<i64>().ok())
                    .is_some_and(|pid| pid > 0)
        })
        .count();
    // The outer `sh` itself is not the wrapper's doing.
    Some((execs.saturating_sub(1), forks))
}

fn run_one(runtime: &tokio::runtime::Runtime, session: &Session, series: Series) -> Duration {
    match series {
        Series::Direct => {
            let start = Instant::now();
            let status = std::process::Command::new("true")
                .status()
                .expect("spawn true");
            let took = start.elapsed();
            assert!(status.success());
            took
        }
        Series::Session => runtime.block_on(async {
            let command = Command {
                argv: vec!["true".to_owned()],
                ..Command::default()
            };
            let cancel = CancellationToken::new();
            let start = Instant::now();
            let outcome = session
                .exec(&command, Arc::new(NullSink), &cancel)
                .await
                .expect("exec");
            let took = start.elapsed();
            assert_eq!(outcome.code, 0);
            took
        }),
        Series::Backend => runtime.block_on(async {
            let start = Instant::now();
            let mut stream = session
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
            let code = loop {
                match stream.events.recv().await {
                    Some(ExecEvent::Exited(code)) => break code,
                    Some(ExecEvent::Stdout(_) | ExecEvent::Stderr(_)) => {}
                    other => panic!("unexpected exec event {other:?}"),
                }
            };
            let took = start.elapsed();
            assert_eq!(code, 0);
            took
        }),
        Series::BackendNew | Series::BackendOld => runtime.block_on(async {
            let lease = session.lease();
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (script, header) = if series == Series::BackendNew {
                let h = scripts::header(&format!("backend{run:06}"), &lease.workdir, &[]);
                (scripts::WRAPPER, h)
            } else {
                let h =
                    common::old_wrapper::old_header(&format!("backend{run:06}"), &lease.workdir);
                (common::old_wrapper::OLD_WRAPPER, h)
            };
            let start = Instant::now();
            let mut stream = session
                .backend()
                .exec(
                    lease,
                    ExecRequest {
                        argv: scripts::argv("exec", script, [lease.state_dir(), "true".to_owned()]),
                        cwd: None,
                        stdin: true,
                        tty: None,
                    },
                )
                .await
                .expect("backend exec");
            let tx = stream.take_stdin().expect("stdin");
            tx.send(bytes::Bytes::from(header)).await.expect("header");
            drop(tx);
            let code = loop {
                match stream.events.recv().await {
                    Some(ExecEvent::Exited(code)) => break code,
                    Some(ExecEvent::Stdout(_) | ExecEvent::Stderr(_)) => {}
                    other => panic!("unexpected exec event {other:?}"),
                }
            };
            let took = start.elapsed();
            assert_eq!(code, 0);
            took
        }),
        Series::AloneNew | Series::AloneOld => {
            let lease = session.lease();
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (script, header) = if series == Series::AloneNew {
                let h = scripts::header(&format!("wrapper{run:06}"), &lease.workdir, &[]);
                (scripts::WRAPPER, h)
            } else {
                let h =
                    common::old_wrapper::old_header(&format!("wrapper{run:06}"), &lease.workdir);
                (common::old_wrapper::OLD_WRAPPER, h)
            };
            let start = Instant::now();
            let mut child = std::process::Command::new("sh")
                .args(["-c", script, "leasebox-exec"])
                .arg(lease.state_dir())
                .arg("true")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the wrapper");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(header.as_bytes())
                .expect("write the header");
            let status = child.wait().expect("wait for the wrapper");
            let took = start.elapsed();
            assert!(status.success());
            took
        }
    }
}
