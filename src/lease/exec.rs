//! One exec in a box: the request ([`ExecRequest`], with its [`TtySize`] on a terminal), the
//! running stream ([`ExecStream`]) and the events it yields ([`ExecEvent`]).

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::ErrorKind;

/// One command to start in a box. The argv runs as given, without a shell.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The directory to start in; `None` means the backend's default (`/` on Nomad, the lease
    /// root on the local backend).
    pub cwd: Option<String>,
    /// Whether the caller will send stdin. When false the backend closes stdin at once (a
    /// Nomad session whose stdin is never closed never ends).
    pub stdin: bool,
    /// Run the command on a terminal of this size. `None` (the default): no terminal, stdout
    /// and stderr separate, and never a window size sent (it breaks TTY-off Nomad sessions).
    pub tty: Option<TtySize>,
}

/// The size of a terminal in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for TtySize {
    fn default() -> Self {
        TtySize { rows: 24, cols: 80 }
    }
}

/// An event from a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes the command wrote to stdout.
    Stdout(Bytes),
    /// Bytes the command wrote to stderr.
    Stderr(Bytes),
    /// The command exited with this code (signals as 128+n). Terminal.
    Exited(i32),
    /// The connection was lost before an exit code arrived. Terminal. The command may still be
    /// running in the box.
    Lost(String),
    /// The box refused to run the command (permission denied, the task is not running, an
    /// unknown allocation). Terminal; nothing ran, so there is nothing to recover.
    Refused {
        /// What the box said.
        message: String,
        /// How to classify it.
        kind: ErrorKind,
    },
}

/// A running exec: a stdin sink, an event source, and a way to stop the command.
///
/// The event channel ends after [`ExecEvent::Exited`] or [`ExecEvent::Lost`]; an event channel
/// that ends without either is a lost connection too. Dropping the stdin sender closes the
/// command's stdin. Dropping the whole stream leaves the command running.
#[derive(Debug)]
pub struct ExecStream {
    /// Send stdin bytes here; drop it to close stdin. `None` when the request had no stdin.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// Output and exit events, in order.
    pub events: mpsc::Receiver<ExecEvent>,
    /// Cancelling this asks the backend to stop the command (where it can) and end the stream.
    pub kill: CancellationToken,
    /// Send a new window size here; only a terminal exec ([`ExecRequest::tty`]) has one.
    pub resize: Option<mpsc::Sender<TtySize>>,
}

impl ExecStream {
    /// Ask the backend to stop the command and end the stream.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Take the stdin sender, leaving `None`.
    pub fn take_stdin(&mut self) -> Option<mpsc::Sender<Bytes>> {
        self.stdin.take()
    }
}
