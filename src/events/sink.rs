//! [`Events`]: the emitter a run's layers share, and [`RunEvents`]: one run's handle.
//!
//! An [`Events`] lives as long as the command (for `watch`, across every rerun); each run
//! begins with [`Events::run_started`], which stamps a new run id on everything emitted until
//! the next run begins, and ends with [`RunEvents::finish`] (or, if the handle is dropped
//! unfinished, a `run_end` with the internal error's code, so a stream never lacks its end).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::event::{EVENTS_SCHEMA_VERSION, Event, Record, Tick};
use super::output::Output;
use super::stream::EventStream;
use super::summary::{Summary, SummaryCollector};
use super::terminal::Console;

/// Something that watches a run's records.
pub trait Observer: Send + Sync {
    /// A record was emitted.
    fn record(&self, record: &Record);
    /// Progress within a phase (terminal only).
    fn tick(&self, _tick: &Tick) {}
}

/// What an [`Events`] reports to.
#[derive(Default)]
pub struct EventsOptions {
    /// The `--events` stream, if asked for.
    pub stream: Option<EventStream>,
    /// How the human side looks.
    pub output: Output,
    /// More observers (tests).
    pub observers: Vec<Arc<dyn Observer>>,
}

/// What a run is, for its `run_start`.
#[derive(Debug, Clone, Default)]
pub struct RunStart {
    /// The recipe as given.
    pub recipe: Option<String>,
    /// The command of `run -- CMD`.
    pub command: Option<Vec<String>>,
}

struct Current {
    id: String,
    seq: u64,
    started: bool,
}

struct Inner {
    observers: Vec<Arc<dyn Observer>>,
    console: Arc<Console>,
    summary: Arc<SummaryCollector>,
    output: Output,
    current: Mutex<Current>,
}

/// The emitter of a command's events, shared by every layer that works for it. Cheap to clone.
/// The default emitter records nothing, shows no progress and prints human lines to stderr.
#[derive(Clone, Default)]
pub struct Events {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("recording", &self.inner.is_some())
            .finish()
    }
}

fn new_run_id() -> String {
    format!("run_{}", hex::encode(rand::random::<[u8; 6]>()))
}

impl Events {
    /// An emitter reporting to the stream, the terminal and the summary as `options` say.
    #[must_use]
    pub fn new(options: EventsOptions) -> Events {
        let console = Arc::new(Console::new(options.output));
        let summary = Arc::new(SummaryCollector::default());
        let mut observers: Vec<Arc<dyn Observer>> = Vec::new();
        if let Some(stream) = options.stream {
            observers.push(Arc::new(stream));
        }
        observers.push(Arc::clone(&console) as Arc<dyn Observer>);
        observers.push(Arc::clone(&summary) as Arc<dyn Observer>);
        observers.extend(options.observers);
        Events {
            inner: Some(Arc::new(Inner {
                observers,
                console,
                summary,
                output: options.output,
                current: Mutex::new(Current {
                    id: new_run_id(),
                    seq: 0,
                    started: false,
                }),
            })),
        }
    }

    /// How the human side looks (the default for the default emitter).
    #[must_use]
    pub fn output(&self) -> Output {
        self.inner.as_ref().map(|i| i.output).unwrap_or_default()
    }

    /// Begin a run: a new run id (the first run keeps the emitter's first id), and its
    /// `run_start`.
    #[must_use]
    pub fn run_started(&self, start: RunStart) -> RunEvents {
        if let Some(inner) = &self.inner {
            let mut current = inner
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.started {
                current.id = new_run_id();
            }
            current.started = true;
            current.seq = 0;
        }
        self.emit(Event::RunStart {
            recipe: start.recipe,
            command: start.command,
        });
        RunEvents {
            events: self.clone(),
            started: Instant::now(),
            ended: AtomicBool::new(false),
        }
    }

    /// The id of the current (or, between runs, the last) run.
    #[must_use]
    pub fn run_id(&self) -> Option<String> {
        self.inner.as_ref().map(|i| {
            i.current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .id
                .clone()
        })
    }

    /// Emit `event` in the current run.
    pub fn emit(&self, event: Event) {
        let Some(inner) = &self.inner else {
            return;
        };
        let record = {
            let mut current = inner
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let record = Record {
                schema: EVENTS_SCHEMA_VERSION,
                ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                run_id: current.id.clone(),
                seq: current.seq,
                event,
            };
            current.seq += 1;
            record
        };
        for observer in &inner.observers {
            observer.record(&record);
        }
    }

    /// Report progress within a phase (the terminal's bars).
    pub fn tick(&self, tick: Tick) {
        if let Some(inner) = &self.inner {
            for observer in &inner.observers {
                observer.tick(&tick);
            }
        }
    }

    /// Print a human line on stderr (a `==>` line), unless `--quiet`; above any progress bar.
    pub fn say(&self, line: &str) {
        match &self.inner {
            Some(inner) => inner.console.say(line),
            None => eprintln!("{line}"),
        }
    }

    /// A warning: printed as `leasebox: MESSAGE` (also under `--quiet`) and emitted as a
    /// `warning` event.
    pub fn warn(&self, message: &str) {
        match &self.inner {
            Some(inner) => inner.console.line(&format!("leasebox: {message}")),
            None => eprintln!("leasebox: {message}"),
        }
        self.emit(Event::Warning {
            message: message.to_owned(),
        });
    }

    fn summary(&self) -> Summary {
        self.inner
            .as_ref()
            .map(|i| i.summary.snapshot())
            .unwrap_or_default()
    }
}

/// One run's handle: ends the run with exactly one `run_end`.
#[derive(Debug)]
pub struct RunEvents {
    events: Events,
    started: Instant,
    ended: AtomicBool,
}

impl RunEvents {
    /// The emitter, to hand to the layers that work for the run.
    #[must_use]
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// End the run with its exit code and error kind; returns the run's summary.
    pub fn finish(self, exit_code: i32, error_kind: Option<&str>) -> Summary {
        self.end(exit_code, error_kind);
        self.events.summary()
    }

    fn end(&self, exit_code: i32, error_kind: Option<&str>) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.events.emit(Event::RunEnd {
            passed: exit_code == 0,
            exit_code,
            error_kind: error_kind.map(str::to_owned),
            ms,
        });
    }
}

impl Drop for RunEvents {
    fn drop(&mut self) {
        self.end(crate::error::EXIT_INTERNAL, Some("internal"));
    }
}
