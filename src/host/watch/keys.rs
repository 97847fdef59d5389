//! The keys of `leasebox watch`: Enter reruns now, `q` (then Enter) quits. Lines are read
//! from stdin on a thread of their own, on a terminal or from a pipe alike (a script can
//! drive a watch the same way); an end of input only stops reading. While something else owns
//! the terminal (the REPL of `--repl-on-failure`), the thread leaves stdin alone: it polls
//! with a short timeout and reads only when not paused, and reads the descriptor itself (no
//! buffer of its own that could swallow what the REPL's line editor should get).

use std::time::Duration;

use tokio::sync::mpsc;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Rerun now (Enter).
    Rerun,
    /// Stop watching (`q`).
    Quit,
}

/// What a line of input means: `q`, `quit` or `exit` quits; anything else (Enter) reruns.
#[must_use]
pub fn key_of(line: &str) -> Key {
    match line.trim() {
        "q" | "Q" | "quit" | "exit" => Key::Quit,
        _ => Key::Rerun,
    }
}

/// How long the key thread waits on stdin before it looks again whether it is paused.
const POLL: Duration = Duration::from_millis(50);

/// Read keys from stdin until its end; while `paused()` says so, stdin is left to others.
#[must_use]
pub fn stdin_keys(paused: impl Fn() -> bool + Send + 'static) -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || read_keys(&tx, &paused));
    rx
}

fn read_keys(tx: &mpsc::Sender<Key>, paused: &dyn Fn() -> bool) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdin = rustix::stdio::stdin();
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(POLL.subsec_nanos()),
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if paused() {
            std::thread::sleep(POLL);
            continue;
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        // The REPL may have opened while we waited: its input is its own.
        if paused() {
            continue;
        }
        let n = match rustix::io::read(stdin, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(_) => return,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if tx
                .blocking_send(key_of(&String::from_utf8_lossy(&line)))
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_quits_and_enter_reruns() {
        assert_eq!(key_of("q\n"), Key::Quit);
        assert_eq!(key_of(" quit "), Key::Quit);
        assert_eq!(key_of("\n"), Key::Rerun);
        assert_eq!(key_of("r\n"), Key::Rerun);
    }
}
