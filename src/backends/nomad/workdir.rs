//! The lease's workdir: the default per driver, the check that it is absolute and not a
//! system directory, and resolving `${NOMAD_ALLOC_DIR}` by asking the box.

use super::NomadBackend;
use super::exec;
use crate::error::ErrorKind;
use crate::lease::{ExecEvent, LeaseError};

/// The default workdir for a driver: inside the allocation dir for `raw_exec` (no isolation),
/// `/workspace/leasebox` for isolating drivers.
#[must_use]
pub fn default_workdir(driver: &str) -> &'static str {
    if driver == "raw_exec" {
        "${NOMAD_ALLOC_DIR}/leasebox"
    } else {
        "/workspace/leasebox"
    }
}

/// Workdirs must be absolute and not a system directory (after normalising).
///
/// # Errors
/// A relative workdir or a system directory.
pub fn check_workdir(workdir: &str) -> Result<(), LeaseError> {
    if !workdir.starts_with('/') {
        return Err(LeaseError::Config(format!(
            "the workdir `{workdir}` is not absolute; set `nomad.workdir` to an absolute path such as `/workspace/leasebox`"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in workdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let normal = format!("/{}", parts.join("/"));
    const SYSTEM: [&str; 19] = [
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/workspace",
    ];
    if SYSTEM.contains(&normal.as_str()) {
        return Err(LeaseError::Config(format!(
            "the workdir `{workdir}` is the system directory `{normal}`; leasebox replaces its workdir on every sync, so pick a directory of its own such as `/workspace/leasebox`"
        )));
    }
    Ok(())
}

impl NomadBackend {
    /// Resolve `${NOMAD_ALLOC_DIR}` in a workdir by asking the box.
    pub(super) async fn resolve_workdir(
        &self,
        alloc_id: &str,
        workdir: &str,
    ) -> Result<String, LeaseError> {
        if !workdir.contains("${NOMAD_ALLOC_DIR}") {
            return Ok(workdir.to_owned());
        }
        let argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "printf '%s' \"$NOMAD_ALLOC_DIR\"".to_owned(),
        ];
        let mut stream = exec::open(
            &self.client,
            alloc_id,
            &self.task,
            &self.driver,
            &argv,
            false,
            None,
            self.timings.exec,
        )
        .await?;
        let mut out = Vec::new();
        loop {
            match stream.events.recv().await {
                Some(ExecEvent::Stdout(b)) => out.extend_from_slice(&b),
                Some(ExecEvent::Exited(0)) => break,
                Some(ExecEvent::Stderr(_)) => {}
                Some(ExecEvent::Refused {
                    message,
                    kind: ErrorKind::PermissionDenied,
                }) => return Err(LeaseError::PermissionDenied(message)),
                Some(ExecEvent::Refused { message, .. } | ExecEvent::Lost(message)) => {
                    return Err(LeaseError::Transport(format!(
                        "cannot read the allocation dir: {message}"
                    )));
                }
                Some(ExecEvent::Exited(code)) => {
                    return Err(LeaseError::Transport(format!(
                        "cannot read the allocation dir: exit {code}"
                    )));
                }
                None => {
                    return Err(LeaseError::Transport(
                        "cannot read the allocation dir".into(),
                    ));
                }
            }
        }
        let dir = String::from_utf8_lossy(&out).trim().to_owned();
        if !dir.starts_with('/') {
            return Err(LeaseError::Transport(format!(
                "the allocation reported `NOMAD_ALLOC_DIR` as `{dir}`, not an absolute path"
            )));
        }
        Ok(workdir.replace("${NOMAD_ALLOC_DIR}", &dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_workdirs_are_refused() {
        for bad in [
            "/",
            "/tmp",
            "/tmp/",
            "/usr/../etc",
            "//workspace",
            "/workspace/.",
            "relative",
        ] {
            assert!(check_workdir(bad).is_err(), "{bad}");
        }
        for good in ["/workspace/leasebox", "/tmp/x", "/srv/app"] {
            assert!(check_workdir(good).is_ok(), "{good}");
        }
    }
}
