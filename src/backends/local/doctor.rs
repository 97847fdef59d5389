//! `leasebox doctor` on the local backend: a writable cache dir and the tools the box-side
//! scripts need on `PATH`. Read-only apart from a probe file in the cache dir.

use std::collections::BTreeMap;

use super::cache_dir;
use crate::lease::{Check, CheckStatus};

/// The tools the box-side scripts run on this machine (`find` for the incremental sync's
/// probe). `setsid` is checked on its own: a `sh` with job control can stand in for it.
const TOOLS: [&str; 14] = [
    "sh", "tar", "tee", "cat", "tail", "mv", "rm", "rmdir", "mkdir", "ls", "wc", "sleep", "find",
    "git",
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

fn on_path(env: &BTreeMap<String, String>, tool: &str) -> bool {
    env.get("PATH")
        .is_some_and(|p| std::env::split_paths(p).any(|d| d.join(tool).is_file()))
}

/// Whether this machine's `sh` has job control without a terminal (`set -m`), which detaches
/// verified exec's supervisor where there is no `setsid`.
fn sh_has_job_control(env: &BTreeMap<String, String>) -> bool {
    std::process::Command::new("sh")
        .args([
            "-c",
            "set -m 2>/dev/null; case $- in *m*) exit 0;; esac; exit 1",
        ])
        .env_clear()
        .envs(env.get("PATH").map(|p| ("PATH", p)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One failed check per missing tool, or one passed check naming them all; then `setsid` (or
/// a `sh` with job control in its place).
fn tool_checks(env: &BTreeMap<String, String>) -> Vec<Check> {
    let mut checks = tools_found(env);
    checks.push(if on_path(env, "setsid") {
        Check::new("detach", CheckStatus::Ok, "setsid found", None)
    } else if sh_has_job_control(env) {
        Check::new(
            "detach",
            CheckStatus::Ok,
            "no `setsid`; `sh` has job control (`set -m`), which stands in for it",
            None,
        )
    } else {
        Check::new(
            "detach",
            CheckStatus::Fail,
            "no `setsid`, and `sh` has no job control without a terminal: verified exec cannot detach the command from the session that runs it",
            Some("install `setsid` (util-linux, or BusyBox's applet)".into()),
        )
    });
    checks
}

fn tools_found(env: &BTreeMap<String, String>) -> Vec<Check> {
    let missing: Vec<Check> = TOOLS
        .iter()
        .filter(|tool| !on_path(env, tool))
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
        let (last, rest) = TOOLS.split_last().unwrap_or((&"", &[]));
        return vec![Check::new(
            "tools",
            CheckStatus::Ok,
            format!("{} and {last} found", rest.join(", ")),
            None,
        )];
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PATH of one directory holding links to this machine's `tools`, `sh` being dash.
    fn path_of(dir: &std::path::Path, tools: &[&str]) -> BTreeMap<String, String> {
        for tool in tools {
            let real = if *tool == "sh" { "dash" } else { tool };
            let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(real))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("`{real}` is needed for this test"));
            std::os::unix::fs::symlink(found, dir.join(tool)).unwrap();
        }
        BTreeMap::from([("PATH".to_owned(), dir.display().to_string())])
    }

    fn status_of<'a>(checks: &'a [Check], name: &str) -> Vec<&'a Check> {
        checks.iter().filter(|c| c.check == name).collect()
    }

    #[test]
    fn tools_and_a_way_to_detach_are_checked() {
        let all = tempfile::tempdir().unwrap();
        let env = path_of(all.path(), &TOOLS);
        let checks = tool_checks(&env);
        let tools = status_of(&checks, "tools");
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].status, CheckStatus::Ok, "{checks:?}");
        assert!(tools[0].detail.contains("find and git found"), "{checks:?}");
        // dash has no job control without a terminal: without `setsid` nothing detaches.
        let detach = status_of(&checks, "detach");
        assert_eq!(detach[0].status, CheckStatus::Fail, "{checks:?}");

        let with_setsid = tempfile::tempdir().unwrap();
        let mut tools: Vec<&str> = TOOLS.iter().copied().filter(|t| *t != "find").collect();
        tools.push("setsid");
        let env = path_of(with_setsid.path(), &tools);
        let checks = tool_checks(&env);
        assert_eq!(status_of(&checks, "detach")[0].status, CheckStatus::Ok);
        let missing = status_of(&checks, "tools");
        assert_eq!(missing.len(), 1, "{checks:?}");
        assert_eq!(missing[0].status, CheckStatus::Fail);
        assert!(missing[0].detail.contains("`find`"), "{checks:?}");
    }
}
