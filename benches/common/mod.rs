//! What every benchmark shares: the `cargo bench` guard, a generated repository tree, medians
//! and ratios, and the report lines.
//!
//! Benchmarks are not timed tests. Each one measures its subject and a baseline in the same run,
//! on the same machine, and reports the ratio; nothing fails on speed. They run only under
//! `cargo bench` (which passes `--bench`); built and started by `cargo test --benches` they
//! print that they were skipped.

#![allow(
    dead_code,
    reason = "each benchmark uses a different part of this module"
)]

pub mod old_wrapper;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether this process was started by `cargo bench`; if not, say so (the caller returns).
pub fn bench_mode(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("{name}: skipped (benchmarks run under `cargo bench --bench {name}`)");
    false
}

/// The `sync.exclude` list of the embedded default config, so in-process syncs exclude what
/// `leasebox run` excludes.
pub fn default_excludes() -> Vec<String> {
    let text = include_str!("../../src/config/default.toml");
    let value: toml::Table = text.parse().expect("default.toml parses");
    value["sync"]["exclude"]
        .as_array()
        .expect("sync.exclude is a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// A small, fast, deterministic generator (splitmix64), so every run builds the same tree.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The shape of a generated tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeSpec {
    /// Number of files.
    pub files: usize,
    /// Total bytes of file content.
    pub bytes: u64,
}

/// What was generated.
#[derive(Debug, Clone, Copy)]
pub struct TreeStats {
    pub files: usize,
    pub bytes: u64,
    pub small: usize,
    pub medium: usize,
    pub large: usize,
}

const WORDS: &[&str] = &[
    "fn", "let", "mut", "self", "impl", "struct", "pub", "use", "return", "match", "Some", "None",
    "Ok", "Err", "lease", "box", "sync", "exec", "recipe", "config", "value", "path", "error",
    "result", "async", "await", "{", "}", "(", ")", ";", "=", "->", "//", "\n", "\n", "    ", "0",
    "1", "42", "String", "Vec", "u64", "&str", "true", "false",
];

/// Write a realistic source-repository mix under `root`: ~94.5% small text files (the source),
/// 5% medium files, 0.5% large binary files (assets, fixtures, vendored archives), holding
/// 15%, 15% and 70% of the bytes, spread over nested directories. Deterministic.
pub fn generate_tree(root: &Path, spec: TreeSpec) -> TreeStats {
    let mut rng = Rng::new(0x1ea5_eb0c);
    let large = (spec.files / 200).max(1);
    let medium = (spec.files / 20).max(1);
    let small = spec.files - large - medium;
    let budgets = [
        (small, spec.bytes * 15 / 100),
        (medium, spec.bytes * 15 / 100),
        (large, spec.bytes - 2 * (spec.bytes * 15 / 100)),
    ];
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut index = 0usize;
    for (class, (count, budget)) in budgets.into_iter().enumerate() {
        let mean = budget / count as u64;
        let mut left = budget;
        for i in 0..count {
            // Sizes vary around the class mean; the last file of a class takes what is left,
            // so the total is exact.
            let size = if i + 1 == count {
                left
            } else {
                rng.range(mean / 4, mean * 7 / 4).min(left)
            };
            left -= size;
            let rel = match class {
                0 => format!(
                    "src/m{:02}/s{:02}/f{index:05}.rs",
                    index % 40,
                    (index / 40) % 25
                ),
                1 => format!("data/d{:02}/blob{index:05}.json", index % 20),
                _ => format!("assets/a{:02}/asset{index:05}.bin", index % 10),
            };
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            let mut file = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(&path).expect("create file"),
            );
            let mut remaining = size;
            while remaining > 0 {
                let n = usize::try_from(remaining.min(buf.len() as u64)).expect("fits");
                if class == 2 {
                    rng.fill(&mut buf[..n]);
                } else {
                    fill_text(&mut rng, &mut buf[..n]);
                }
                file.write_all(&buf[..n]).expect("write");
                remaining -= n as u64;
            }
            file.flush().expect("flush");
            total += size;
            index += 1;
        }
    }
    TreeStats {
        files: index,
        bytes: total,
        small,
        medium,
        large,
    }
}

fn fill_text(rng: &mut Rng, buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        let word = WORDS[usize::try_from(rng.next_u64() % WORDS.len() as u64).expect("fits")];
        for &b in word.as_bytes().iter().chain(b" ") {
            if at == buf.len() {
                break;
            }
            buf[at] = b;
            at += 1;
        }
    }
}

/// Run git in `repo` with a fixed identity, without compression (the benchmark is about
/// leasebox, not about zlib), panicking on failure.
pub fn git(repo: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(["-c", "core.compression=0", "-c", "core.looseCompression=0"])
        .args(["-c", "gc.auto=0", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository at `repo` holding a generated tree, committed.
pub fn generate_repo(repo: &Path, spec: TreeSpec) -> TreeStats {
    std::fs::create_dir_all(repo).expect("mkdir repo");
    if !repo.join(".git").exists() {
        git(repo, &["init", "-q", "-b", "main"]);
    }
    let stats = generate_tree(repo, spec);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "generated tree"]);
    stats
}

/// Flush dirty pages, so the writeback of one measurement does not land in the next.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Time `f`.
pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// CPU time (user + system) used so far by this process and its waited-for children.
pub fn cpu_used() -> Duration {
    let of = |who| {
        // SAFETY: getrusage(2) fills the zeroed struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
        unsafe { libc::getrusage(who, &raw mut usage) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// Time a future.
pub async fn time_async<T>(f: impl std::future::Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let out = f.await;
    (start.elapsed(), out)
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    }
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The samples as a compact list of milliseconds.
pub fn list_ms(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| format!("{:.0}", ms(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `MiB` of `bytes`.
#[expect(clippy::cast_precision_loss, reason = "report figures")]
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A line of the final verdict: the figure, the target, met or not.
pub fn verdict(what: &str, figure: &str, target: &str, met: bool) {
    println!(
        "{what}: {figure} (target {target}): {}",
        if met { "MET" } else { "MISSED" }
    );
}

/// Re-syncs of a kept lease, `reps` times each after one full sync: with nothing changed, and
/// after rewriting one file of the tree (a different one each time, same size, new bytes).
/// Checks each sync sent exactly that. Returns (nothing changed, one file changed) samples.
pub async fn resync_samples(
    session: &leasebox::session::Session,
    options: &leasebox::session::SyncOptions,
    reps: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let cancel = tokio_util::sync::CancellationToken::new();
    let first = session.sync(options, &cancel).await.expect("first sync");
    assert!(!first.incremental || first.files == 0, "{first:?}");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut stack = vec![options.root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the tree") {
            let entry = entry.expect("read the tree");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() && entry.file_name() != ".git" {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
        if files.len() > 64 {
            break;
        }
    }
    let (mut nothing, mut one) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        settle();
        let start = Instant::now();
        let report = session.sync(options, &cancel).await.expect("re-sync");
        let took = start.elapsed();
        assert_eq!((report.files, report.deleted), (0, 0), "{report:?}");
        assert!(report.incremental, "{report:?}");
        let path = &files[rep % files.len()];
        let mut bytes = std::fs::read(path).expect("read a file");
        if bytes.is_empty() {
            bytes.push(0);
        }
        bytes[0] = bytes[0].wrapping_add(1);
        std::fs::write(path, &bytes).expect("change a file");
        settle();
        let start = Instant::now();
        let changed = session.sync(options, &cancel).await.expect("re-sync");
        let took_one = start.elapsed();
        assert_eq!((changed.files, changed.deleted), (1, 0), "{changed:?}");
        if rep > 0 {
            nothing.push(took);
            one.push(took_one);
        }
    }
    (nothing, one)
}

/// Write a small Cargo project without dependencies (builds offline) at `repo`: `modules`
/// modules of a library, each with a few functions and `tests_per_module` unit tests, and a
/// `.gitignore` of `target/`. Deterministic: the same sources every run.
pub fn generate_cargo_project(repo: &Path, modules: usize, tests_per_module: usize) {
    std::fs::create_dir_all(repo.join("src")).expect("create the project");
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"leasebench\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
    )
    .expect("write Cargo.toml");
    std::fs::write(repo.join(".gitignore"), "target/\n").expect("write .gitignore");
    let mut lib = String::from("//! A generated library for the benchmarks.\n\n");
    for m in 0..modules {
        lib.push_str(&format!("pub mod m{m};\n"));
        let mut text = format!(
            "//! Module {m}.\n\n/// A value of module {m}.\npub fn value(x: u64) -> u64 {{\n    x.wrapping_mul({}).rotate_left({}) ^ {}\n}}\n\n/// A sum over a range.\npub fn sum(n: u64) -> u64 {{\n    (0..n).map(value).fold(0, u64::wrapping_add)\n}}\n\n#[cfg(test)]\nmod tests {{\n    use super::*;\n",
            m * 2 + 3,
            m % 63 + 1,
            m * 7919
        );
        for t in 0..tests_per_module {
            text.push_str(&format!(
                "\n    #[test]\n    fn case_{t}() {{\n        assert_eq!(sum({t}), (0..{t}).map(value).fold(0, u64::wrapping_add));\n        assert_eq!(value({t}), value({t}));\n    }}\n"
            ));
        }
        text.push_str("}\n");
        std::fs::write(repo.join(format!("src/m{m}.rs")), text).expect("write a module");
    }
    std::fs::write(repo.join("src/lib.rs"), lib).expect("write src/lib.rs");
}
