//! Reading a timing file: the `format_version` is checked before anything else, so a file of
//! another version is named as such rather than reported as a missing field.

use std::path::Path;
use std::sync::Arc;

use super::error::ReportError;
use crate::session::{TIMING_FORMAT_VERSION, TimingReport};

/// Read and check the timing file at `path`.
///
/// # Errors
/// [`ReportError`], naming the file: unreadable, not JSON, no or an unknown
/// `format_version`, or fields that do not fit the format.
pub fn load(path: &Path) -> Result<TimingReport, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Read {
        path: path.to_owned(),
        source: Arc::new(e),
    })?;
    parse(path, &text)
}

/// Check and parse the text of a timing file (`path` is for messages).
///
/// # Errors
/// As [`load`], except reading.
pub fn parse(path: &Path, text: &str) -> Result<TimingReport, ReportError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ReportError::Malformed {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    let Some(version) = value.get("format_version") else {
        return Err(ReportError::NoVersion {
            path: path.to_owned(),
            current: TIMING_FORMAT_VERSION,
        });
    };
    if version.as_u64() != Some(u64::from(TIMING_FORMAT_VERSION)) {
        return Err(ReportError::UnknownVersion {
            path: path.to_owned(),
            found: version.to_string(),
            current: TIMING_FORMAT_VERSION,
            version: env!("CARGO_PKG_VERSION"),
        });
    }
    serde_json::from_value(value).map_err(|e| ReportError::Invalid {
        path: path.to_owned(),
        current: TIMING_FORMAT_VERSION,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("t.json"), text).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_are_named_with_what_to_do() {
        let missing = load(Path::new("/nonexistent/t.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("`/nonexistent/t.json`"), "{missing}");
        assert!(missing.contains("--timing-json"), "{missing}");
        let malformed = err("{\"phases\": [");
        assert!(
            malformed.contains("`t.json` is not JSON (line 1"),
            "{malformed}"
        );
        let old = err(r#"{"phases": [], "total_ms": 1, "exit_code": 0, "error_kind": null}"#);
        assert!(old.contains("has no `format_version`"), "{old}");
        assert!(old.contains("run again with `--timing-json`"), "{old}");
        let future = err(r#"{"format_version": 9, "phases": []}"#);
        assert!(future.contains("has `format_version` 9"), "{future}");
        assert!(future.contains("upgrade leasebox"), "{future}");
        let named = err(r#"{"format_version": "one"}"#);
        assert!(named.contains("`format_version` \"one\""), "{named}");
        let invalid = err(r#"{"format_version": 1, "phases": [{"name": "x"}]}"#);
        assert!(
            invalid.contains("not a valid timing file of format 1"),
            "{invalid}"
        );
        assert!(invalid.contains("missing field"), "{invalid}");
    }

    #[test]
    fn a_written_file_reads_back() {
        let text = r#"{"format_version": 1, "phases": [{"name": "warmup", "ms": 5,
            "start_ms": 1, "status": "passed", "lane": 0}], "total_ms": 9, "exit_code": 0,
            "error_kind": null}"#;
        let report = parse(Path::new("t.json"), text).unwrap();
        assert_eq!(report.phases[0].start_ms, 1);
    }
}
