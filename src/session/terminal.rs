//! The terminal leasebox itself runs on, as an interactive shell needs it: whether stdin is a
//! terminal, its window size, raw mode ([`RawMode`], a guard that puts the saved settings back
//! when dropped, so every way out of a shell restores them: its exit, an error, a dropped
//! connection, a panic unwinding), and typed input ([`Input`]: a thread that polls stdin and a
//! wake pipe, so it stops at once and leaves the terminal to whoever reads it next, such as
//! the REPL's line editor).
//!
//! Raw mode turns off the terminal's own line editing, echo and signal keys: Ctrl-C, Ctrl-Z and
//! Ctrl-\ travel to the box as bytes, where the box's terminal turns them into signals.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use bytes::Bytes;
use rustix::event::{PollFd, PollFlags};
use rustix::termios::{OptionalActions, Termios};
use tokio::sync::mpsc;

use crate::lease::TtySize;

/// Whether this process's stdin is a terminal.
#[must_use]
pub fn stdin_is_terminal() -> bool {
    rustix::termios::isatty(rustix::stdio::stdin())
}

/// The window size of this process's terminal (stdout's, else stdin's), 80×24 when neither
/// says.
#[must_use]
pub fn window_size() -> TtySize {
    let from = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| TtySize {
                rows: w.ws_row,
                cols: w.ws_col,
            })
    };
    from(rustix::stdio::stdout())
        .or_else(|| from(rustix::stdio::stdin()))
        .unwrap_or_default()
}

/// The terminal in raw mode; dropping it restores the settings it found.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Put stdin's terminal in raw mode.
    ///
    /// # Errors
    /// Stdin is not a terminal, or its settings cannot be read or changed.
    pub fn enter() -> io::Result<RawMode> {
        let stdin = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, OptionalActions::Drain, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ =
            rustix::termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Drain, &self.saved);
    }
}

/// Typed input, read from stdin on a thread and sent to `sink` as it comes; the thread ends
/// when stdin ends, when `sink` is closed, or when this is dropped.
pub struct Input {
    wake: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Input {
    /// Start reading stdin into `sink`.
    ///
    /// # Errors
    /// The wake pipe or the thread cannot be created.
    pub fn start(sink: mpsc::Sender<Bytes>) -> io::Result<Input> {
        let (wake_rx, wake_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let thread = std::thread::Builder::new()
            .name("leasebox-tty-input".into())
            .spawn(move || read_input(&wake_rx, &sink))?;
        Ok(Input {
            wake: Some(wake_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        // Closing the pipe's write end wakes the thread's poll.
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_input(wake: &OwnedFd, sink: &mpsc::Sender<Bytes>) {
    let stdin = rustix::stdio::stdin();
    let mut buf = vec![0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(&stdin, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        match rustix::io::read(stdin.as_fd(), &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if sink
                    .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                    .is_err()
                {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(_) => return,
        }
    }
}
