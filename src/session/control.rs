//! Driving a box-side operation's exec to its end ([`drive`]) and reading what a control
//! script said ([`ControlOutput`]).

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::SessionError;
use crate::lease::{ExecEvent, ExecStream};

/// Where [`drive`] puts an operation's stdout.
pub(crate) enum StdoutTo<'a> {
    /// Nowhere.
    Discard,
    /// Into a buffer.
    Collect(&'a mut Vec<u8>),
    /// Into a channel, until its receiver goes away.
    Channel(Option<tokio::sync::mpsc::Sender<Bytes>>),
}

/// Drive an exec of a box-side operation to its end: stdout chunks go to `on_stdout`, stderr
/// is collected, and the exit code returned. Cancellation kills the exec; a lost or refused
/// connection is an error naming the operation.
pub(crate) async fn drive(
    stream: &mut ExecStream,
    op: &str,
    cancel: &CancellationToken,
    mut stdout: StdoutTo<'_>,
) -> Result<(i32, Vec<u8>), SessionError> {
    let mut stderr = Vec::new();
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => {
                stream.kill();
                return Err(SessionError::Cancelled);
            }
            event = stream.events.recv() => event,
        };
        match event {
            Some(ExecEvent::Stdout(b)) => match &mut stdout {
                StdoutTo::Discard => {}
                StdoutTo::Collect(buf) => buf.extend_from_slice(&b),
                StdoutTo::Channel(tx) => {
                    // A receiver that stopped (a refused archive entry) reports its own error.
                    if let Some(sender) = tx
                        && sender.send(b).await.is_err()
                    {
                        *tx = None;
                    }
                }
            },
            Some(ExecEvent::Stderr(b)) => stderr.extend_from_slice(&b),
            Some(ExecEvent::Exited(code)) => return Ok((code, stderr)),
            Some(ExecEvent::Lost(reason)) => {
                return Err(SessionError::TransportLost(format!(
                    "connection to the box lost during {op}: {reason}"
                )));
            }
            Some(ExecEvent::Refused { message, kind }) => {
                return Err(SessionError::Refused { message, kind });
            }
            None => {
                return Err(SessionError::TransportLost(format!(
                    "connection to the box lost during {op}"
                )));
            }
        }
    }
}

/// What a control script printed and how it exited.
#[derive(Debug, Default)]
pub(crate) struct ControlOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ControlOutput {
    /// Succeed on exit 0, else turn the script's stderr into an error for `op`.
    pub fn check(&self, op: &'static str) -> Result<(), SessionError> {
        if self.code == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.stderr);
        let message = text
            .lines()
            .map(|l| l.trim_start_matches("leasebox: "))
            .collect::<Vec<_>>()
            .join("; ");
        let message = if message.is_empty() {
            format!("exit code {}", self.code)
        } else {
            message
        };
        if op == "sync" && self.code == 3 {
            return Err(SessionError::Conflict(message));
        }
        Err(SessionError::Remote { op, message })
    }
}
