//! Verified exec: every command runs under the `sh` wrapper of [`super::scripts::WRAPPER`],
//! which starts it under a supervisor detached from the exec session (`setsid`, else a job in
//! its own process group) that records its pid, process group, output and exit code in the box.
//! The exec'd process only relays and waits, so killing it (as a Nomad agent does when a client
//! goes away while output flows) leaves a complete record. When the connection is lost before
//! the exit code arrives, the session reconnects with a new exec, shows the output that was
//! missed, and reads the recorded result, following the command while it still runs; a run with
//! no claim in the box is claimed by the reader, so a command that never started never starts
//! late, and is reported as never run. Stopping (timeout, cancellation) signals the recorded
//! process group, TERM then KILL. It never reports a success it did not see: with no record to
//! read, the result is a transport error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::scripts;
use super::{OutputSink, Session, SessionError, elapsed_ms};
use crate::lease::ExecEvent;

/// A command to run in the box.
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// The program and its arguments, run as given (no shell).
    pub argv: Vec<String>,
    /// Environment variables set for the command (on top of the box's own).
    pub env: Vec<(String, String)>,
    /// Working directory: relative paths are inside the workdir; `None` is the workdir.
    pub cwd: Option<String>,
    /// Stop the command after this long.
    pub timeout: Option<Duration>,
    /// Collect stdout and stderr into the outcome instead of streaming them.
    pub capture: bool,
    /// Bytes to give the command on stdin (then EOF). `None`: EOF at once.
    pub stdin: Option<Bytes>,
}

/// How a command ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The exit code (signals as 128+n).
    pub code: i32,
    /// Captured stdout, when asked.
    pub stdout: Option<Vec<u8>>,
    /// Captured stderr, when asked.
    pub stderr: Option<Vec<u8>>,
    /// Wall time in milliseconds.
    pub ms: u64,
    /// Whether the connection was lost and the result was read back from the box's record.
    pub recovered: bool,
}

/// Output seen so far: offsets into the box's record, and the capture buffers.
struct Seen {
    out: u64,
    err: u64,
    stdout: Option<Vec<u8>>,
    stderr: Option<Vec<u8>>,
    sink: Arc<dyn OutputSink>,
}

impl Seen {
    fn stdout(&mut self, data: &[u8]) {
        self.out += data.len() as u64;
        match &mut self.stdout {
            Some(buf) => buf.extend_from_slice(data),
            None => self.sink.stdout(data),
        }
    }

    fn stderr(&mut self, data: &[u8]) {
        self.err += data.len() as u64;
        match &mut self.stderr {
            Some(buf) => buf.extend_from_slice(data),
            None => self.sink.stderr(data),
        }
    }
}

enum Stop {
    Exited(i32),
    Lost(String),
    Refused(String, crate::error::ErrorKind),
    Cancelled,
    TimedOut,
}

impl Session {
    /// Run `command` under the verified-exec wrapper, streaming its output to `sink` (or
    /// capturing it), and return its exit code.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] after stopping a command that ran too long,
    /// [`SessionError::Cancelled`] after stopping it on cancellation,
    /// [`SessionError::TransportLost`] when the connection was lost and no result could be
    /// read back, or a backend error.
    pub async fn exec(
        &self,
        command: &Command,
        sink: Arc<dyn OutputSink>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, SessionError> {
        let start = Instant::now();
        if command.argv.is_empty() {
            return Err(SessionError::Invalid(
                "empty command: nothing to run".into(),
            ));
        }
        for (name, _) in &command.env {
            if !scripts::valid_env_name(name) {
                return Err(SessionError::Invalid(format!(
                    "`{name}` is not a valid environment variable name (letters, digits and `_`, not starting with a digit)"
                )));
            }
        }
        let lease = self.lease();
        let cwd = match &command.cwd {
            Some(c) if c.starts_with('/') => c.clone(),
            Some(c) if !c.is_empty() && c != "." => {
                format!("{}/{}", lease.workdir.trim_end_matches('/'), c)
            }
            _ => lease.workdir.clone(),
        };
        let run_id = format!("r{}", hex::encode(rand::random::<[u8; 8]>()));
        let args = std::iter::once(lease.state_dir()).chain(command.argv.iter().cloned());
        let mut stream = self
            .open_script("exec", scripts::WRAPPER, args, true)
            .await?;

        let header = Bytes::from(scripts::header(&run_id, &cwd, &command.env));
        let payload = command.stdin.clone();
        if let Some(tx) = stream.take_stdin() {
            tokio::spawn(async move {
                if tx.send(header).await.is_err() {
                    return;
                }
                if let Some(data) = payload {
                    let mut rest = data;
                    while !rest.is_empty() {
                        let chunk = rest.split_to(rest.len().min(64 * 1024));
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                }
                // Dropping the sender closes stdin.
            });
        }

        let deadline = command.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut seen = Seen {
            out: 0,
            err: 0,
            stdout: command.capture.then(Vec::new),
            stderr: command.capture.then(Vec::new),
            sink,
        };
        let probe_every = self.hang_probe();
        let stop = loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => break Stop::Cancelled,
                () = sleep_until(deadline) => break Stop::TimedOut,
                event = stream.events.recv() => event,
                () = tokio::time::sleep(probe_every) => {
                    // Silence: a session can hang after its command ended (its exit frame
                    // never comes). The box's record tells; if it says the command ended,
                    // read the rest from the record.
                    if self.recorded_exit(&run_id, cancel).await {
                        break Stop::Lost("the exec session hung after the command ended".into());
                    }
                    continue;
                }
            };
            match event {
                Some(ExecEvent::Stdout(b)) => seen.stdout(&b),
                Some(ExecEvent::Stderr(b)) => seen.stderr(&b),
                Some(ExecEvent::Exited(code)) => break Stop::Exited(code),
                Some(ExecEvent::Lost(reason)) => break Stop::Lost(reason),
                Some(ExecEvent::Refused { message, kind }) => break Stop::Refused(message, kind),
                None => break Stop::Lost("the exec stream ended without an exit code".into()),
            }
        };
        let result = match stop {
            Stop::Exited(code) => Ok((code, false)),
            Stop::Refused(message, kind) => Err(SessionError::Refused { message, kind }),
            Stop::Cancelled => {
                self.stop_run(&stream, &run_id).await;
                Err(SessionError::Cancelled)
            }
            Stop::TimedOut => {
                self.stop_run(&stream, &run_id).await;
                Err(SessionError::Timeout {
                    what: format!("command `{}`", command.argv.join(" ")),
                    after: command.timeout.unwrap_or_default(),
                })
            }
            Stop::Lost(reason) => {
                drop(stream);
                self.recover(&run_id, &reason, &mut seen, cancel, deadline, command)
                    .await
                    .map(|code| (code, true))
            }
        };
        seen.sink.finish();
        let (code, recovered) = result?;
        Ok(ExecOutcome {
            code,
            stdout: seen.stdout,
            stderr: seen.stderr,
            ms: elapsed_ms(start),
            recovered,
        })
    }

    /// Stop a run: the exec'd wrapper through the backend, and the command's whole process
    /// group (its supervisor's session, which no backend's kill of the exec reaches) through
    /// its record, with a second exec: TERM, then KILL after the grace period.
    async fn stop_run(&self, stream: &crate::lease::ExecStream, run_id: &str) {
        stream.kill();
        self.kill_recorded(run_id).await;
    }

    /// Reconnect after a lost connection: show what was missed and read the recorded result,
    /// following the command while it still runs.
    async fn recover(
        &self,
        run_id: &str,
        reason: &str,
        seen: &mut Seen,
        cancel: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
        command: &Command,
    ) -> Result<i32, SessionError> {
        const MAX_FAILURES: u32 = 5;
        let mut failures = 0;
        let mut delay = Duration::from_millis(50);
        let mut told = false;
        let mut vanished = 0;
        let mut starting = 0;
        loop {
            // 1-based resume positions, as decimal strings: the box does no arithmetic on them.
            let args = [
                self.lease().state_dir(),
                run_id.to_owned(),
                (u128::from(seen.out) + 1).to_string(),
                (u128::from(seen.err) + 1).to_string(),
                "claim".to_owned(),
            ];
            let attempt = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                () = sleep_until(deadline) => Some(Err(SessionError::Timeout {
                    what: format!("command `{}`", command.argv.join(" ")),
                    after: command.timeout.unwrap_or_default(),
                })),
                r = self.control("catchup", scripts::CATCHUP, &args, None, cancel) => Some(r),
            };
            let out = match attempt {
                None | Some(Err(SessionError::Cancelled)) => {
                    self.kill_recorded(run_id).await;
                    return Err(SessionError::Cancelled);
                }
                Some(Err(e @ SessionError::Timeout { .. })) => {
                    self.kill_recorded(run_id).await;
                    return Err(e);
                }
                Some(Err(e)) => {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        return Err(SessionError::TransportLost(format!(
                            "connection to the box lost before the exit code arrived ({reason}), and the box could not be reached again to read the recorded result ({e}); the command may still be running"
                        )));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                }
                Some(Ok(out)) if out.code != 0 => {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        return Err(SessionError::TransportLost(format!(
                            "connection to the box lost before the exit code arrived ({reason}), and reading the recorded result failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        )));
                    }
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Some(Ok(out)) => out,
            };
            failures = 0;
            let nl = out
                .stdout
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(out.stdout.len());
            let status = String::from_utf8_lossy(&out.stdout[..nl]).into_owned();
            let missed_out = out.stdout.get(nl + 1..).unwrap_or_default();
            if !missed_out.is_empty() {
                seen.stdout(missed_out);
            }
            if !out.stderr.is_empty() {
                seen.stderr(&out.stderr);
            }
            let mut words = status.split_whitespace();
            match (words.next(), words.next()) {
                (Some("exited"), Some(code)) => {
                    let code = code.parse().unwrap_or(1);
                    if told {
                        eprintln!("leasebox: the command ended with exit code {code}");
                    }
                    return Ok(code);
                }
                (Some("running"), Some(pid)) => {
                    starting = 0;
                    if !told {
                        eprintln!(
                            "leasebox: connection to the box lost ({reason}); the command is still running (pid {pid}), following its output"
                        );
                        told = true;
                    }
                }
                (Some("starting"), _) => {
                    // Claimed by its supervisor, pid not recorded yet: it is about to start.
                    starting += 1;
                    if starting >= 30 {
                        return Err(SessionError::TransportLost(format!(
                            "connection to the box lost ({reason}); the command's supervisor claimed the run but never recorded a pid, so whether the command ran is unknown"
                        )));
                    }
                }
                (Some("vanished"), _) => {
                    // Re-read: the group may have ended between the box's two checks.
                    vanished += 1;
                    if vanished >= 3 {
                        return Err(SessionError::TransportLost(format!(
                            "connection to the box lost ({reason}), and the command's process group ended without recording an exit code (killed from outside leasebox: the OOM killer, a reboot, another user)"
                        )));
                    }
                }
                (Some("never"), _) => {
                    return Err(SessionError::TransportLost(format!(
                        "connection to the box lost ({reason}) before the command was recorded as started: it never ran, and it will not start now"
                    )));
                }
                _ => {
                    return Err(SessionError::TransportLost(format!(
                        "connection to the box lost ({reason}), and the box answered the status read with `{status}`, which this leasebox does not understand"
                    )));
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// Whether the box's record says the run has ended (a cheap status-only read).
    async fn recorded_exit(&self, run_id: &str, cancel: &CancellationToken) -> bool {
        let args = [
            self.lease().state_dir(),
            run_id.to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        ];
        match self
            .control("probe", scripts::CATCHUP, &args, None, cancel)
            .await
        {
            Ok(out) if out.code == 0 => out.stdout.starts_with(b"exited "),
            _ => false,
        }
    }

    async fn kill_recorded(&self, run_id: &str) {
        let never = CancellationToken::new();
        let grace = self.kill_grace().as_secs().max(1).to_string();
        let args = [self.lease().state_dir(), run_id.to_owned(), grace];
        let _ = tokio::time::timeout(
            self.kill_grace() + Duration::from_secs(10),
            self.control("kill", scripts::KILL, &args, None, &never),
        )
        .await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
