//! `leasebox report TIMING.json [-o FILE] [--format html|svg]`: read a run's timing file and
//! write its timeline picture (the [`report`](crate::report) layer draws it). The output is
//! written whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Context;
use super::args::{ReportArgs, ReportFormat};
use crate::error::{ErrorKind, Failure};
use crate::report::{Timeline, html, load, svg};

pub(crate) fn report(args: &ReportArgs, cx: &Context) -> Result<(), Failure> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.timing.with_extension("html"));
    let to_stdout = output.as_os_str() == "-";
    let format = match (args.format, to_stdout) {
        (Some(f), _) => f,
        (None, true) => ReportFormat::Html,
        (None, false) => format_of(&output)?,
    };
    let timing = load(&args.timing).map_err(|e| Failure::from_error(&e))?;
    let timeline = Timeline::new(&timing);
    let source = args.timing.display().to_string();
    let text = match format {
        ReportFormat::Html => html(&timeline, &source),
        ReportFormat::Svg => svg(&timeline, &source),
    };
    if to_stdout {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Failure::new(ErrorKind::Internal, format!("cannot write: {e}")));
    }
    let path = if output.is_absolute() {
        output
    } else {
        cx.cwd.join(output)
    };
    write_whole(&path, text.as_bytes())?;
    eprintln!("leasebox: wrote the timeline to {}", path.display());
    Ok(())
}

fn format_of(output: &Path) -> Result<ReportFormat, Failure> {
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => Ok(ReportFormat::Html),
        Some("svg") => Ok(ReportFormat::Svg),
        _ => Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "cannot tell the picture's format from `{}`: name the file `….html` or `….svg`, \
                 or say `--format html|svg`",
                output.display()
            ),
        )),
    }
}

fn write_whole(path: &PathBuf, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // A temp file is private (0600); what we write is for reading (0644, as a shell would).
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        tmp.write_all(bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| {
        Failure::new(
            ErrorKind::ConfigError,
            format!(
                "cannot write the picture to `{}`: {e}; give `-o` a path you can write",
                path.display()
            ),
        )
    })
}
