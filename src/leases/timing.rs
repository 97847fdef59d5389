//! The timing file of `--timing-json FILE`: the phases the run's [`Timing`] recorded (warmup,
//! sync, each step, fetch, cleanup), the total, the exit code and the error kind. The
//! lifecycle layer owns the run's timing: [`Leases`](super::Leases) creates nothing without
//! recording it, and the sessions it hands out share its recorder.

use std::path::Path;

pub use crate::session::{
    Phase, PhaseStatus, TIMING_FORMAT_VERSION, Timing, TimingReport, elapsed_ms,
};

use crate::error::{ErrorKind, Failure};

// The file's type is the session layer's (`leasebox report` reads it back); writing it is the
// lifecycle's.
impl TimingReport {
    /// Write the report as pretty JSON to `path`, atomically (a temporary file beside it,
    /// then renamed).
    ///
    /// # Errors
    /// The file cannot be written (`config_error`, naming it).
    pub fn write(&self, path: &Path) -> Result<(), Failure> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| {
            Failure::new(ErrorKind::Internal, format!("cannot encode timings: {e}"))
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, &text)?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| {
            Failure::new(
                ErrorKind::ConfigError,
                format!("cannot write the timing file `{}`: {e}", path.display()),
            )
        })
    }
}
