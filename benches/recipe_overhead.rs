//! The recipe host's costs, through the real binary on the local backend, each against a
//! baseline measured in the same run:
//!
//! - **Start-up**: `leasebox run recipes/noop.lua` (Lua VM, sandbox, the embedded stdlib and a
//!   recipe that loads `leasebox` and returns nothing, so no box is leased) against
//!   `leasebox --version` (process start-up, argument parsing), N=30 each, interleaved.
//!   Target: ≤ 20 ms more.
//! - **Per step**: a `recipe{}` of 100 sequential `{ "sNNN", { "true" } }` steps (argv, no
//!   shell) against the same recipe with 1 step (same lease, sync and release), and against
//!   100 direct spawns of `true` from Rust. Overhead per step = (T100 − T1) / 99 minus one
//!   direct spawn. The `--timing-json` file's `step:*` phases give the same figure from inside,
//!   and 100 in-process `Session::exec` calls of `true` (same run) split it into the host's
//!   share and the session layer's (the verified-exec wrapper).
//!
//! `LEASEBOX_BENCH_REPS` sets the repetitions of the step series (default 5).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leasebox::backends::local::LocalFaults;
use leasebox::session::{Command, NullSink};
use tokio_util::sync::CancellationToken;

use common::ms;

const STARTUP_N: usize = 30;

const NOOP: &str = r#"-- A trivial recipe: load the stdlib, lease nothing, return nothing.
local lb = require("leasebox")
assert(type(lb.recipe) == "function")
"#;

fn steps_recipe(count: usize) -> String {
    format!(
        r#"-- {count} sequential steps running `true` (argv, no shell).
local lb = require("leasebox")
local steps = {{}}
for i = 1, {count} do
  steps[i] = {{ ("s%03d"):format(i), {{ "true" }} }}
end
return lb.recipe {{ steps = steps }}
"#
    )
}

fn main() {
    if !common::bench_mode("recipe_overhead") {
        return;
    }
    let reps: usize = std::env::var("LEASEBOX_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let scratch = support::Scratch::new();
    scratch
        .write(
            "README.md",
            "a scratch repository for the recipe benchmark\n",
        )
        .write("recipes/noop.lua", NOOP)
        .write("recipes/steps100.lua", &steps_recipe(100))
        .write("recipes/steps1.lua", &steps_recipe(1));
    scratch.commit();

    let probe = scratch.run(&["run", "recipes/noop.lua"]);
    if !probe.status.success() {
        println!(
            "recipe_overhead: skipped: this build cannot run recipes yet ({})",
            support::describe(&probe).replace('\n', " | ")
        );
        return;
    }

    // Start-up.
    let mut version = Vec::new();
    let mut noop = Vec::new();
    for i in 0..=STARTUP_N {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let took = if which == 0 {
                run_timed(&scratch, &["--version"])
            } else {
                run_timed(&scratch, &["run", "recipes/noop.lua"])
            };
            // The first pair warms the page cache.
            if i > 0 {
                if which == 0 { &mut version } else { &mut noop }.push(took);
            }
        }
    }

    // Steps.
    let timing_file = scratch.path().join("timing.json");
    let timing_arg = timing_file.display().to_string();
    let mut t100 = Vec::new();
    let mut t1 = Vec::new();
    let mut direct = Vec::new();
    let mut inside = Vec::new();
    let mut verified = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let session = runtime.block_on(scratch.session(LocalFaults::default()));
    for rep in 0..=reps {
        let a = run_timed(
            &scratch,
            &["run", "--timing-json", &timing_arg, "recipes/steps100.lua"],
        );
        let steps_ms = step_ms(&timing_file);
        let b = run_timed(&scratch, &["run", "recipes/steps1.lua"]);
        let start = Instant::now();
        for _ in 0..100 {
            let status = std::process::Command::new("true")
                .status()
                .expect("spawn true");
            assert!(status.success());
        }
        let c = start.elapsed() / 100;
        let d = runtime.block_on(async {
            let command = Command {
                argv: vec!["true".to_owned()],
                ..Command::default()
            };
            let cancel = CancellationToken::new();
            let start = Instant::now();
            for _ in 0..100 {
                let outcome = session
                    .exec(&command, Arc::new(NullSink), &cancel)
                    .await
                    .expect("exec");
                assert_eq!(outcome.code, 0);
            }
            start.elapsed() / 100
        });
        if rep > 0 {
            verified.push(d);
            t100.push(a);
            t1.push(b);
            direct.push(c);
            inside.push(steps_ms);
        }
    }

    runtime
        .block_on(
            session
                .backend()
                .release(session.lease(), &CancellationToken::new()),
        )
        .expect("release");

    let (v, n) = (common::median(&version), common::median(&noop));
    let startup_extra = ms(n) - ms(v);
    println!();
    println!(
        "start-up, {STARTUP_N} runs each: `leasebox --version` median {:.1} ms, `leasebox run recipes/noop.lua` median {:.1} ms",
        ms(v),
        ms(n)
    );
    let (a, b, c) = (
        common::median(&t100),
        common::median(&t1),
        common::median(&direct),
    );
    let per_step = (ms(a) - ms(b)) / 99.0;
    let overhead = per_step - ms(c);
    let inside_per_step = median_f64(&inside) / 100.0;
    let session_exec = common::median(&verified);
    println!(
        "steps, {reps} runs each: 100-step recipe median {:.0} ms [{}], 1-step recipe median {:.0} ms [{}]",
        ms(a),
        common::list_ms(&t100),
        ms(b),
        common::list_ms(&t1)
    );
    println!(
        "per step: {per_step:.2} ms ((T100 - T1) / 99); timing file: {inside_per_step:.2} ms (step phases / 100, whole ms each); direct spawn of `true`: {:.2} ms",
        ms(c)
    );
    println!(
        "in-process Session::exec of `true` (verified exec, no host): {:.2} ms; so the host adds {:+.2} ms per step and the session layer {:+.2} ms",
        ms(session_exec),
        per_step - ms(session_exec),
        ms(session_exec) - ms(c)
    );
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    common::verdict(
        "recipe start-up (run noop.lua minus --version)",
        &format!("{startup_extra:+.1} ms"),
        "<= +20 ms",
        startup_extra <= 20.0,
    );
    println!(
        "overhead per recipe step (minus a direct spawn): {overhead:+.2} ms (no target; the verified-exec wrapper's cost, see exec_overhead)"
    );
}

/// Run `leasebox ARGS` in the scratch repository; it must succeed.
fn run_timed(scratch: &support::Scratch, args: &[&str]) -> Duration {
    let mut cmd = scratch.leasebox(args);
    cmd.stdin(Stdio::null());
    let start = Instant::now();
    let out = cmd.output().expect("run leasebox");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "leasebox {args:?}: {}",
        support::describe(&out)
    );
    took
}

/// The sum of the `step:*` phases of a timing file, in milliseconds.
fn step_ms(path: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(path).expect("read the timing file");
    let report: serde_json::Value = serde_json::from_str(&text).expect("timing JSON");
    let phases = report["phases"].as_array().expect("phases");
    let steps: Vec<f64> = phases
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("step:")))
        .filter_map(|p| p["ms"].as_f64())
        .collect();
    assert_eq!(steps.len(), 100, "one phase per step: {text}");
    steps.iter().sum()
}

fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    }
}
