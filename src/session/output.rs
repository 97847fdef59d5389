//! Where a command's output goes: the terminal, a line-prefixing writer for parallel steps,
//! or nowhere; capture into the result is done by the exec loop itself.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether [`TerminalSink`] writes stdout to stderr (stdout carries the `--events` stream).
static STDOUT_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Receives a command's output as it arrives.
pub trait OutputSink: Send + Sync {
    /// Bytes written to stdout.
    fn stdout(&self, data: &[u8]);
    /// Bytes written to stderr.
    fn stderr(&self, data: &[u8]);
    /// The command ended: flush any partial line.
    fn finish(&self) {}
}

/// Writes output straight to this process's stdout and stderr. A closed stdout (a broken pipe
/// such as `leasebox run … | head`) is ignored, never fatal. When stdout carries the `--events`
/// stream, stdout goes to stderr too ([`TerminalSink::stdout_to_stderr`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct TerminalSink;

impl TerminalSink {
    /// Send the commands' stdout to this process's stderr from now on (`on`), or to stdout.
    pub fn stdout_to_stderr(on: bool) {
        STDOUT_TO_STDERR.store(on, Ordering::SeqCst);
    }
}

impl OutputSink for TerminalSink {
    fn stdout(&self, data: &[u8]) {
        if STDOUT_TO_STDERR.load(Ordering::SeqCst) {
            return self.stderr(data);
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(data);
        let _ = out.flush();
    }

    fn stderr(&self, data: &[u8]) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(data);
        let _ = err.flush();
    }
}

/// Drops all output (the caller captures it, or does not want it).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl OutputSink for NullSink {
    fn stdout(&self, _: &[u8]) {}
    fn stderr(&self, _: &[u8]) {}
}

/// Prefixes every line with `[name] ` and writes whole lines to an inner sink, so the output of
/// steps running side by side stays readable. A partial line is held until its newline or
/// [`OutputSink::finish`].
pub struct PrefixSink<S> {
    prefix: Vec<u8>,
    inner: S,
    partial: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl<S: OutputSink> PrefixSink<S> {
    /// A sink prefixing lines with `[name] `.
    pub fn new(name: &str, inner: S) -> Self {
        PrefixSink {
            prefix: format!("[{name}] ").into_bytes(),
            inner,
            partial: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    fn emit(&self, buf: &mut Vec<u8>, data: &[u8], write: impl Fn(&S, &[u8])) {
        buf.extend_from_slice(data);
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = buf.split_off(last_nl + 1);
        let mut out = Vec::with_capacity(buf.len() + self.prefix.len() * 4);
        for line in buf.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(line);
        }
        write(&self.inner, &out);
        *buf = rest;
    }
}

impl<S: OutputSink> OutputSink for PrefixSink<S> {
    fn stdout(&self, data: &[u8]) {
        let mut guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        self.emit(&mut guard.0, data, |s, d| s.stdout(d));
    }

    fn stderr(&self, data: &[u8]) {
        let mut guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        self.emit(&mut guard.1, data, |s, d| s.stderr(d));
    }

    fn finish(&self) {
        let mut guard = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        if !guard.0.is_empty() {
            let line = std::mem::take(&mut guard.0);
            self.emit(&mut guard.0, &[line.as_slice(), b"\n"].concat(), |s, d| {
                s.stdout(d)
            });
        }
        if !guard.1.is_empty() {
            let line = std::mem::take(&mut guard.1);
            self.emit(&mut guard.1, &[line.as_slice(), b"\n"].concat(), |s, d| {
                s.stderr(d)
            });
        }
        self.inner.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Default, Clone)]
    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl OutputSink for Collect {
        fn stdout(&self, data: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(data);
        }
        fn stderr(&self, data: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(data);
        }
    }

    #[test]
    fn prefixes_whole_lines_only() {
        let collect = Collect::default();
        let sink = PrefixSink::new("lint", collect.clone());
        sink.stdout(b"one\ntw");
        assert_eq!(&*collect.0.lock().unwrap(), b"[lint] one\n");
        sink.stdout(b"o\nthree");
        sink.finish();
        assert_eq!(
            String::from_utf8(collect.0.lock().unwrap().clone()).unwrap(),
            "[lint] one\n[lint] two\n[lint] three\n"
        );
    }
}
