//! The keys of `leasebox watch`: Enter reruns now, `q` (then Enter) quits. Lines are read
//! from stdin on a thread of their own, on a terminal or from a pipe alike (a script can
//! drive a watch the same way); an end of input only stops reading.

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

/// Read keys from stdin until its end.
#[must_use]
pub fn stdin_keys() -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.blocking_send(key_of(&line)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
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
