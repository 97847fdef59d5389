//! `leasebox doctor` on the local backend: a writable cache dir and the tools the box-side
//! scripts need on `PATH`. Read-only apart from a probe file in the cache dir.

use std::collections::BTreeMap;

use super::cache_dir;
use crate::lease::{Check, CheckStatus};

/// The tools the box-side scripts run on this machine.
// `setsid` is not required: without it the wrapper falls back to a `sh` with job control.
const TOOLS: [&str; 13] = [
    "sh", "tar", "tee", "cat", "tail", "mv", "rm", "rmdir", "mkdir", "ls", "wc", "sleep", "git",
];

/// Run every check in order: the cache dir, then the tools.
#[must_use]
pub fn run(env: &BTreeMap<String, String>) -> Vec<Check> {
    let mut checks = vec![cache_check(env)];
    checks.extend(tool_checks(env));
    checks
}

fn cache_check(env: &BTreeMap<String, String>) -> Check {
    match cache_dir(env) {
        Ok(dir) => {
            let probe =
                std::fs::create_dir_all(&dir).and_then(|()| tempfile::tempfile_in(&dir).map(drop));
            match probe {
                Ok(()) => Check::new(
                    "cache dir",
                    CheckStatus::Ok,
                    dir.display().to_string(),
                    None,
                ),
                Err(e) => Check::new(
                    "cache dir",
                    CheckStatus::Fail,
                    format!("{}: {e}", dir.display()),
                    Some("set `XDG_CACHE_HOME` to a writable directory".into()),
                ),
            }
        }
        Err(e) => Check::new(
            "cache dir",
            CheckStatus::Fail,
            e.to_string(),
            Some("set `XDG_CACHE_HOME` or `HOME`".into()),
        ),
    }
}

/// One failed check per missing tool, or one passed check naming them all.
fn tool_checks(env: &BTreeMap<String, String>) -> Vec<Check> {
    let missing: Vec<Check> = TOOLS
        .iter()
        .filter(|tool| {
            !env.get("PATH")
                .is_some_and(|p| std::env::split_paths(p).any(|d| d.join(tool).is_file()))
        })
        .map(|tool| {
            Check::new(
                "tools",
                CheckStatus::Fail,
                format!("`{tool}` is not on PATH"),
                Some(format!("install `{tool}`")),
            )
        })
        .collect();
    if missing.is_empty() {
        return vec![Check::new(
            "tools",
            CheckStatus::Ok,
            "sh, tar, tee, cat, tail, mv, rm, rmdir, mkdir, ls, wc, sleep and git found",
            None,
        )];
    }
    missing
}
