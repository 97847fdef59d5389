//! Why a jobspec template cannot be used: the error naming the file and line, and its kinds.

use std::path::PathBuf;

use super::render::PLACEHOLDERS;

/// A template that cannot be used: the file, the line when one is to blame, and why.
#[derive(Debug, thiserror::Error)]
#[error("jobspec template {}{}: {kind}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct TemplateError {
    /// The template file.
    pub file: PathBuf,
    /// The 1-based line, when one line is to blame.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// What is wrong with a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateErrorKind {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// Neither `.json` nor `.hcl`.
    #[error("the file name must end in `.json` or `.hcl` (`nomad.jobspec_template`)")]
    Extension,
    /// A placeholder outside a quoted string literal.
    #[error(
        "the placeholder `{placeholder}` is outside a string literal; put it inside quotes, as `\"{placeholder}\"`"
    )]
    OutsideString {
        /// The placeholder as written.
        placeholder: String,
    },
    /// A placeholder inside an HCL heredoc.
    #[error(
        "the placeholder `{placeholder}` is inside a heredoc; placeholders go in quoted strings only"
    )]
    InHeredoc {
        /// The placeholder as written.
        placeholder: String,
    },
    /// A placeholder name leasebox does not know.
    #[error(
        "unknown placeholder `{placeholder}`{hint}; the placeholders are {}",
        known()
    )]
    Unknown {
        /// The placeholder as written.
        placeholder: String,
        /// `; did you mean …` or empty.
        hint: String,
    },
    /// The rendered `.json` template is not JSON.
    #[error("not valid JSON after substituting the placeholders: {0}")]
    Json(String),
    /// The rendered template is not a job object.
    #[error("the template must be a job object, or `{{\"Job\": …}}`")]
    NotAnObject,
    /// The agent's `/v1/jobs/parse` refused the rendered `.hcl` template.
    #[error("Nomad could not parse it (line numbers are the template's): {0}")]
    Hcl(String),
    /// The job's ID is not the lease id.
    #[error("the job ID is {found}, but it must be the lease id `{expected}`: write `{written}`")]
    WrongId {
        /// What the template gave, shown.
        found: String,
        /// The lease id.
        expected: String,
        /// What to write instead, in the template's format.
        written: &'static str,
    },
    /// Not exactly one task group.
    #[error(
        "the job has {0} task groups; a lease is one allocation, so the template needs exactly one group"
    )]
    Groups(usize),
    /// The group's count is not 1.
    #[error(
        "the task group's count is {0}; leasebox sets the count itself (1, or N for a shard group of N boxes), so leave it out or write 1"
    )]
    Count(String),
    /// No task named `nomad.task`.
    #[error(
        "the group has no task named `{task}` (`nomad.task`; the template's tasks: {found}); name the task `\"{{{{task}}}}\"`"
    )]
    MissingTask {
        /// The configured task name.
        task: String,
        /// The template's task names, shown.
        found: String,
    },
    /// The task's driver is not the resolved `nomad.driver`.
    #[error(
        "the task `{task}` uses the driver {found}, but `nomad.driver` is `{expected}`; leasebox \
         chooses the workdir and the exec capability it needs from `nomad.driver`, so the two \
         must agree: set `nomad.driver` to the template's driver, or write `driver = \"{expected}\"` \
         in the template"
    )]
    DriverMismatch {
        /// The task.
        task: String,
        /// The template's driver, shown.
        found: String,
        /// `nomad.driver`.
        expected: String,
    },
    /// `Meta` is not a map of strings.
    #[error("the job's `Meta` must be a map of strings")]
    MetaNotStrings,
    /// A `leasebox.*` Meta key with another value than leasebox's.
    #[error(
        "the job's Meta `{key}` is `{found}`, but leasebox sets it to `{expected}`; leave it out (leasebox adds the `leasebox.*` keys) or write `\"{written}\"`"
    )]
    WrongMeta {
        /// The Meta key.
        key: String,
        /// The template's value.
        found: String,
        /// leasebox's value.
        expected: String,
        /// What to write instead: the matching placeholder, or the value itself.
        written: String,
    },
    /// A `leasebox.*` Meta key leasebox does not set.
    #[error("the job's Meta `{0}` is not a key leasebox sets; the `leasebox.` prefix is reserved")]
    ReservedMeta(String),
}

fn known() -> String {
    PLACEHOLDERS
        .iter()
        .map(|p| format!("`{{{{{p}}}}}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::backends::nomad::template::TemplateFormat;

    #[test]
    fn errors_name_the_file_and_line() {
        let e = TemplateError {
            file: PathBuf::from("ci/lease.hcl"),
            line: Some(4),
            kind: TemplateErrorKind::Extension,
        };
        assert!(
            e.to_string()
                .starts_with("jobspec template ci/lease.hcl:4: ")
        );
        assert_eq!(
            TemplateFormat::of(Path::new("a/b.nomad.hcl")),
            Some(TemplateFormat::Hcl)
        );
        assert_eq!(
            TemplateFormat::of(Path::new("b.JSON")),
            Some(TemplateFormat::Json)
        );
        assert_eq!(TemplateFormat::of(Path::new("b.nomad")), None);
    }
}
