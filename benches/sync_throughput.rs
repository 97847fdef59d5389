//! Full sync throughput on the local backend against a `tar -c | tar -x` pipe of the same tree,
//! measured alternately in the same run.
//!
//! The tree is a committed git repository of 20,000 files / 500 MB (see
//! [`common::generate_tree`]), so the real file-set code path (`git ls-files`) runs. Each
//! sync goes to a fresh lease (warmup, prepare and release are outside the timing): it is
//! `Session::sync` as `leasebox run` calls it — file set, tar stream with per-file sha256 and
//! manifest, box-side `tar -x` into staging, swap. The baseline is
//! `tar -C repo --exclude=./.git -cf - . | tar -C dest -xof -` into a fresh directory.
//!
//! Both are dominated by the same extractor (`tar -x` creating 20,000 files), so the run also
//! reports CPU time and the sending side alone: `fileset::collect` + `sync::write_archive`
//! against `tar -c`, each into a pipe to `cat >/dev/null`.
//!
//! Target: sync throughput ≥ 0.7× the tar pipe's (ratio of medians).
//!
//! Then re-syncs of one kept lease (`common::resync_samples`): with nothing changed, and after
//! changing one file, each against the full sync's median above. Target: ≥ 50× faster.
//!
//! `LEASEBOX_BENCH_REPS` sets the number of measured repetitions (default 5, after one
//! unmeasured warm-up of each).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use leasebox::backends::local::LocalFaults;
use leasebox::session::{SyncOptions, fileset, sync};
use tokio_util::sync::CancellationToken;

use common::{TreeSpec, ms};

const SPEC: TreeSpec = TreeSpec {
    files: 20_000,
    bytes: 500 * 1000 * 1000,
};

fn main() {
    if !common::bench_mode("sync_throughput") {
        return;
    }
    let reps: usize = std::env::var("LEASEBOX_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let scratch = support::Scratch::new();
    let repo = scratch.repo();
    let (took, stats) = common::time(|| common::generate_repo(&repo, SPEC));
    println!(
        "generated {} files ({} small, {} medium, {} large), {:.1} MiB, committed, in {:.1} s",
        stats.files,
        stats.small,
        stats.medium,
        stats.large,
        common::mib(stats.bytes),
        took.as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let excludes = common::default_excludes();
    let dest = scratch.path().join("tar-dest");

    let mut tar_times = Vec::new();
    let mut sync_times = Vec::new();
    let mut tar_cpu = Vec::new();
    let mut sync_cpu = Vec::new();
    for rep in 0..=reps {
        // Alternate which goes first, so neither always inherits the other's cache state.
        let order = if rep % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for tar_first in order {
            common::settle();
            if tar_first {
                let (t, cpu) = tar_pipe(&repo, &dest, stats.files);
                if rep > 0 {
                    tar_times.push(t);
                    tar_cpu.push(cpu);
                }
                std::fs::remove_dir_all(&dest).expect("remove the tar destination");
            } else {
                let (t, cpu) = runtime.block_on(sync_once(&scratch, &excludes, stats.files));
                if rep > 0 {
                    sync_times.push(t);
                    sync_cpu.push(cpu);
                }
            }
        }
        if rep == 0 {
            println!("warm-up done");
        } else {
            println!(
                "rep {rep}: tar pipe {:.0} ms (cpu {:.0} ms), sync {:.0} ms (cpu {:.0} ms)",
                ms(tar_times[rep - 1]),
                ms(tar_cpu[rep - 1]),
                ms(sync_times[rep - 1]),
                ms(sync_cpu[rep - 1])
            );
        }
    }

    // The sending side alone, with the same extractor taken out: both streams go through a
    // pipe into `cat >/dev/null` (GNU tar skips reading files when its archive is /dev/null).
    let mut tar_send = Vec::new();
    let mut sync_send = Vec::new();
    for rep in 0..=reps {
        let (t, s) = (
            tar_send_only(&repo),
            sync_send_only(&repo, &excludes, stats.files),
        );
        if rep > 0 {
            tar_send.push(t);
            sync_send.push(s);
        }
    }

    let tar = common::median(&tar_times);
    let sync = common::median(&sync_times);
    let rate = |d: Duration| common::mib(stats.bytes) / d.as_secs_f64();
    let ratio = tar.as_secs_f64() / sync.as_secs_f64();
    println!();
    println!(
        "tree: {} files, {:.1} MiB; {reps} repetitions each",
        stats.files,
        common::mib(stats.bytes)
    );
    println!(
        "tar pipe: median {:.0} ms ({:.0} MiB/s)  samples [{}]",
        ms(tar),
        rate(tar),
        common::list_ms(&tar_times)
    );
    println!(
        "sync:     median {:.0} ms ({:.0} MiB/s)  samples [{}]",
        ms(sync),
        rate(sync),
        common::list_ms(&sync_times)
    );
    let (ts, ss) = (common::median(&tar_send), common::median(&sync_send));
    println!(
        "sending side only (into a pipe to `cat >/dev/null`): tar -c median {:.0} ms ({:.0} MiB/s), leasebox file set + archive median {:.0} ms ({:.0} MiB/s): {:.2}x",
        ms(ts),
        rate(ts),
        ms(ss),
        rate(ss),
        ts.as_secs_f64() / ss.as_secs_f64()
    );
    let (tar_c, sync_c) = (common::median(&tar_cpu), common::median(&sync_cpu));
    println!(
        "cpu time (user+sys, all processes): tar pipe median {:.0} ms, sync median {:.0} ms ({:.2}x the tar pipe's)",
        ms(tar_c),
        ms(sync_c),
        sync_c.as_secs_f64() / tar_c.as_secs_f64()
    );
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    common::verdict(
        "sync throughput vs tar pipe",
        &format!("{ratio:.2}x"),
        ">= 0.70x",
        ratio >= 0.7,
    );

    // Re-syncs of a kept lease against the full sync of the same tree measured above.
    let options = SyncOptions {
        root: repo.clone(),
        excludes: excludes.clone(),
        ..SyncOptions::default()
    };
    let (nothing, one) = runtime.block_on(async {
        let session = scratch.session(LocalFaults::default()).await;
        let samples = common::resync_samples(&session, &options, reps).await;
        session
            .backend()
            .release(session.lease(), &CancellationToken::new())
            .await
            .expect("release");
        samples
    });
    println!();
    for (what, samples) in [("nothing changed", &nothing), ("one file changed", &one)] {
        let m = common::median(samples);
        let ratio = sync.as_secs_f64() / m.as_secs_f64();
        println!(
            "re-sync, {what}: median {:.1} ms  samples [{}]: {ratio:.0}x faster than the full sync",
            ms(m),
            common::list_ms(samples)
        );
        common::verdict(
            &format!("re-sync ({what}) vs full sync"),
            &format!("{ratio:.0}x"),
            ">= 50x",
            ratio >= 50.0,
        );
    }
}

/// One `tar -c | tar -x` of the tree (without `.git`, which sync leaves out too) into a fresh
/// `dest`; checks that every file arrived.
fn tar_pipe(repo: &Path, dest: &Path, files: usize) -> (Duration, Duration) {
    std::fs::create_dir_all(dest).expect("mkdir tar destination");
    let cpu = common::cpu_used();
    let (took, status) = common::time(|| {
        std::process::Command::new("sh")
            .args([
                "-c",
                r#"tar -C "$1" --exclude=./.git -cf - . | tar -C "$2" -xof -"#,
                "sh",
            ])
            .arg(repo)
            .arg(dest)
            .status()
            .expect("run the tar pipe")
    });
    let cpu = common::cpu_used() - cpu;
    assert!(status.success(), "tar pipe failed: {status}");
    assert_eq!(count_files(dest), files, "tar pipe copied every file");
    (took, cpu)
}

/// `tar -c` of the tree into a pipe that discards it.
fn tar_send_only(repo: &Path) -> Duration {
    let (took, status) = common::time(|| {
        std::process::Command::new("sh")
            .args([
                "-c",
                r#"tar -C "$1" --exclude=./.git -cf - . | cat >/dev/null"#,
                "sh",
            ])
            .arg(repo)
            .status()
            .expect("run tar -c")
    });
    assert!(status.success(), "tar -c failed: {status}");
    took
}

/// What `Session::sync` does on the sending side — decide the file set, write the archive with
/// hashes and manifest — into a pipe that discards it.
fn sync_send_only(repo: &Path, excludes: &[String], files: usize) -> Duration {
    let (took, ()) = common::time(|| {
        let mut cat = std::process::Command::new("sh")
            .args(["-c", "cat >/dev/null"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("start cat");
        let pipe = std::io::BufWriter::with_capacity(64 * 1024, cat.stdin.take().expect("stdin"));
        let set = fileset::collect(repo, excludes).expect("file set");
        assert_eq!(set.entries.len(), files, "the file set holds every file");
        sync::write_archive(&set, "bench", pipe).expect("write the archive");
        assert!(cat.wait().expect("wait for cat").success());
    });
    took
}

/// One full sync into a fresh local lease; checks the report and the workdir.
async fn sync_once(
    scratch: &support::Scratch,
    excludes: &[String],
    files: usize,
) -> (Duration, Duration) {
    let session = scratch.session(LocalFaults::default()).await;
    let cancel = CancellationToken::new();
    let options = SyncOptions {
        root: scratch.repo(),
        excludes: excludes.to_vec(),
        ..SyncOptions::default()
    };
    let cpu = common::cpu_used();
    let (took, report) = common::time_async(session.sync(&options, &cancel)).await;
    let cpu = common::cpu_used() - cpu;
    let report = report.expect("sync");
    assert_eq!(report.files, files, "sync sent every file");
    assert_eq!(
        count_files(Path::new(&session.lease().workdir)),
        files,
        "every file arrived in the workdir"
    );
    session
        .backend()
        .release(session.lease(), &cancel)
        .await
        .expect("release");
    (took, cpu)
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let entry = entry.expect("dir entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                n += 1;
            }
        }
    }
    n
}
