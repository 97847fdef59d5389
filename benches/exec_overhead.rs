//! Exec overhead per command: `true` run N=100 times through `Session::exec` (the
//! verified-exec wrapper on the local backend) against spawning `true` directly from Rust
//! (`std::process::Command::status`), measured in interleaved rounds in the same run.
//!
//! Two more series split the overhead: `Backend::exec` of bare `true` (the local backend's
//! spawn, process group and output pumps, without the wrapper), and the wrapper script alone
//! (`sh -c WRAPPER … true` fed its header, spawned directly, without tokio or the backend).
//!
//! Target: `Session::exec` costs ≤ 5 ms more per command than the direct spawn.
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
    Wrapper,
}

const SERIES: [Series; 4] = [
    Series::Direct,
    Series::Session,
    Series::Backend,
    Series::Wrapper,
];

impl Series {
    fn label(self) -> &'static str {
        match self {
            Series::Direct => "direct spawn of `true` (std::process)",
            Series::Session => "Session::exec `true` (verified exec)",
            Series::Backend => "Backend::exec bare `true` (no wrapper)",
            Series::Wrapper => "wrapper script alone (sh -c WRAPPER true)",
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
        "split of the overhead: backend spawn and pumps {:+.3} ms, wrapper script {:+.3} ms (each against the direct spawn)",
        ms(means[2]) - ms(direct),
        ms(means[3]) - ms(direct)
    );
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
    runtime
        .block_on(
            session
                .backend()
                .release(session.lease(), &CancellationToken::new()),
        )
        .expect("release");
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
        Series::Wrapper => {
            let lease = session.lease();
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let header = scripts::header(&format!("wrapper{run:06}"), &lease.workdir, &[]);
            let start = Instant::now();
            let mut child = std::process::Command::new("sh")
                .args(["-c", scripts::WRAPPER, "leasebox-exec"])
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
