//! The result of one read-only check of `leasebox doctor`: what a backend (or the lifecycle
//! layer, for the state dir) found, how it came out, and how to fix a failure. Backends write
//! their own checks (`backends::nomad::doctor`, `backends::local::doctor`); the lifecycle layer
//! runs them in order (`leases::doctor`).

use serde::Serialize;

/// How one `doctor` check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Could not be told, or a risk worth knowing.
    Warn,
    /// Broken: runs will fail until fixed.
    Fail,
}

/// One `doctor` check: what was checked, how it came out, and how to fix a failure.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`address`, `auth`, …).
    pub check: String,
    /// The outcome.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix it, for warnings and failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check result.
    pub fn new(
        check: &str,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            check: check.to_owned(),
            status,
            detail: detail.into(),
            fix,
        }
    }
}
