//! The `--events FILE` stream: one JSON record a line (NDJSON), written and flushed as each
//! thing happens, so a reader following the file (or the pipe, with `-` for stdout) sees every
//! event when it happens. A write that fails is reported once on stderr; the run goes on.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::event::Record;
use super::sink::Observer;

enum Target {
    Stdout,
    File(File),
}

/// The NDJSON stream of `--events`.
pub struct EventStream {
    target: Mutex<Option<Target>>,
    name: String,
}

impl EventStream {
    /// Open the stream: `-` is stdout, anything else a file created (or truncated) now.
    ///
    /// # Errors
    /// The file cannot be created; the message names it.
    pub fn open(path: &Path) -> Result<EventStream, String> {
        if path == Path::new("-") {
            return Ok(EventStream {
                target: Mutex::new(Some(Target::Stdout)),
                name: "stdout".to_owned(),
            });
        }
        let file = File::create(path).map_err(|e| {
            format!(
                "cannot create the events file `{}`: {e}; give a writable path, or `-` for stdout",
                path.display()
            )
        })?;
        Ok(EventStream {
            target: Mutex::new(Some(Target::File(file))),
            name: PathBuf::from(path).display().to_string(),
        })
    }

    /// Whether the stream is this process's stdout (then commands' stdout must go elsewhere).
    #[must_use]
    pub fn is_stdout(&self) -> bool {
        matches!(
            *self
                .target
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Some(Target::Stdout)
        )
    }
}

impl Observer for EventStream {
    fn record(&self, record: &Record) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut target = self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let written = match target.as_mut() {
            None => return,
            Some(Target::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line).and_then(|()| out.flush())
            }
            Some(Target::File(file)) => file.write_all(&line).and_then(|()| file.flush()),
        };
        if let Err(e) = written {
            // A closed pipe or a full disk: say so once and stop writing.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!(
                    "leasebox: cannot write the events stream to {}: {e}; no further events are written",
                    self.name
                );
            }
            *target = None;
        }
    }
}
