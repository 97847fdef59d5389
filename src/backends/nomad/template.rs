//! Jobspec templates (`nomad.jobspec_template`): a `.json` or `.hcl` job that replaces the
//! built-in one.
//!
//! A template names the lease's values with placeholders — `{{lease_id}}`, `{{job_id}}`,
//! `{{task}}`, `{{workdir}}`, `{{namespace}}`, `{{region}}`, `{{scope}}`, `{{owner}}`,
//! `{{expires_at}}` — written exactly so, without spaces inside the braces (anything else between
//! `{{` and `}}`, such as consul-template's `{{ env "X" }}`, is left alone). A placeholder must sit
//! inside a quoted string literal: its value is substituted as escaped string contents (JSON
//! escapes in a `.json` template; in a `.hcl` template `"` and `\` are backslash-escaped and `${`,
//! `%{` become `$${`, `%%{`), so no value can end the string or start an expression. A
//! placeholder outside a string, inside an HCL `${…}` expression or heredoc, or an unknown name
//! is an error naming the file, line and placeholder. Comments in HCL are not looked at.
//!
//! A rendered `.json` template is the job itself or `{"Job": …}`; a rendered `.hcl` template goes
//! through the agent's `PUT /v1/jobs/parse` (`Canonicalize: true`), which answers with the job.
//!
//! The job is then checked before anything is registered: its ID must be the lease id, it must
//! have exactly one group, with count 1, holding a task named `nomad.task`, and any `leasebox.*`
//! `Meta` key it sets must have the value leasebox would set. leasebox then adds the ownership
//! `Meta` keys the template left out, sets the job's namespace and region to the configured ones
//! (the agent would anyway: the request's `?namespace=`/`?region=` win), and sends the datacenters
//! of the ready nodes when the template names none. Registration, readiness and the purge on
//! failure are the same as for the built-in job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::client::CallError;
use super::{NomadBackend, meta};
use crate::lease::{LeaseError, LeaseSpec};

/// Every placeholder name a template may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "lease_id",
    "job_id",
    "task",
    "workdir",
    "namespace",
    "region",
    "scope",
    "owner",
    "expires_at",
];

/// How a template is written, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFormat {
    /// `.json`: the API job, bare or as `{"Job": …}`.
    Json,
    /// `.hcl`: a jobspec, parsed by the agent.
    Hcl,
}

impl TemplateFormat {
    /// The format a file name says, if any.
    #[must_use]
    pub fn of(path: &Path) -> Option<TemplateFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(TemplateFormat::Json),
            "hcl" => Some(TemplateFormat::Hcl),
            _ => None,
        }
    }
}

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
    #[error("the task group's count is {0}; a lease is one allocation, so it must be 1")]
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

/// The values placeholders stand for.
#[derive(Debug, Clone, Default)]
pub struct TemplateValues(BTreeMap<&'static str, String>);

impl TemplateValues {
    /// Set one placeholder's value.
    ///
    /// # Panics
    /// When `name` is not one of [`PLACEHOLDERS`] (a bug).
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        assert!(PLACEHOLDERS.contains(&name), "unknown placeholder {name}");
        self.0.insert(name, value.into());
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A placeholder at the start of `rest`: its name and length, when `rest` starts with
/// `{{name}}` (a name is a letter or `_`, then letters, digits and `_`).
fn placeholder_at(rest: &str) -> Option<(&str, usize)> {
    let inner = rest.strip_prefix("{{")?;
    let end = inner
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(inner.len(), |(i, _)| i);
    if end == 0 || !inner[end..].starts_with("}}") {
        return None;
    }
    Some((&inner[..end], end + 4))
}

/// A value as JSON string contents (without the quotes).
#[must_use]
pub fn json_escape(value: &str) -> String {
    let quoted = Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// A value as HCL quoted-string contents: backslash escapes for `"`, `\` and control
/// characters, and `${`, `%{` doubled to `$${`, `%%{` so no template sequence starts.
#[must_use]
pub fn hcl_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Where the scanner is.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// Outside strings (JSON, or HCL structure and expressions).
    Code,
    /// Inside a quoted string literal.
    Str,
    /// Inside an HCL `${…}` or `%{…}` sequence, with its open-brace depth.
    Sequence(usize),
}

struct Renderer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    out: String,
    /// The last substituted HCL value ended in this `$` or `%`: doubled if a `{` follows, so
    /// the two do not start a template sequence.
    pending: Option<char>,
    format: TemplateFormat,
    values: &'a TemplateValues,
}

/// Substitute the placeholders of a template's text. On error, the line and what is wrong.
///
/// # Errors
/// A placeholder outside a string literal, in a heredoc, or with an unknown name.
pub fn render(
    text: &str,
    format: TemplateFormat,
    values: &TemplateValues,
) -> Result<String, (usize, TemplateErrorKind)> {
    let mut r = Renderer {
        src: text,
        pos: 0,
        line: 1,
        out: String::with_capacity(text.len()),
        pending: None,
        format,
        values,
    };
    r.run()?;
    Ok(r.out)
}

impl Renderer<'_> {
    fn emit(&mut self, s: &str) {
        if let Some(c) = self.pending.take()
            && s.starts_with('{')
        {
            self.out.push(c);
        }
        self.out.push_str(s);
    }

    /// Copy `len` bytes of the source.
    fn copy(&mut self, len: usize) {
        let chunk = &self.src[self.pos..self.pos + len];
        self.line += chunk.matches('\n').count();
        self.pos += len;
        self.emit(chunk);
    }

    /// Copy the next character.
    fn copy_char(&mut self) {
        let len = self.src[self.pos..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        self.copy(len);
    }

    fn error(&self, kind: TemplateErrorKind) -> (usize, TemplateErrorKind) {
        (self.line, kind)
    }

    /// The placeholder at the cursor, checked to be known; `None` when there is none.
    fn placeholder(&self) -> Result<Option<(&'static str, usize)>, (usize, TemplateErrorKind)> {
        let Some((name, len)) = placeholder_at(&self.src[self.pos..]) else {
            return Ok(None);
        };
        match PLACEHOLDERS.iter().find(|p| **p == name) {
            Some(known) => Ok(Some((known, len))),
            None => {
                let hint = PLACEHOLDERS
                    .iter()
                    .map(|p| (p, strsim::normalized_damerau_levenshtein(name, p)))
                    .filter(|(_, score)| *score >= 0.6)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(p, _)| format!("; did you mean `{{{{{p}}}}}`?"))
                    .unwrap_or_default();
                Err(self.error(TemplateErrorKind::Unknown {
                    placeholder: format!("{{{{{name}}}}}"),
                    hint,
                }))
            }
        }
    }

    fn run(&mut self) -> Result<(), (usize, TemplateErrorKind)> {
        let hcl = self.format == TemplateFormat::Hcl;
        let mut stack = vec![Frame::Code];
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            let top = *stack.last().unwrap_or(&Frame::Code);
            match top {
                Frame::Code | Frame::Sequence(_) => {
                    if let Some((name, _)) = self.placeholder()? {
                        return Err(self.error(TemplateErrorKind::OutsideString {
                            placeholder: format!("{{{{{name}}}}}"),
                        }));
                    }
                    if hcl && (rest.starts_with('#') || rest.starts_with("//")) {
                        self.copy(rest.find('\n').unwrap_or(rest.len()));
                    } else if hcl && rest.starts_with("/*") {
                        self.copy(rest.find("*/").map_or(rest.len(), |i| i + 2));
                    } else if hcl && rest.starts_with("<<") {
                        self.heredoc()?;
                    } else if rest.starts_with('"') {
                        stack.push(Frame::Str);
                        self.copy(1);
                    } else if let Frame::Sequence(depth) = top
                        && (rest.starts_with('{') || rest.starts_with('}'))
                    {
                        stack.pop();
                        if rest.starts_with('{') {
                            stack.push(Frame::Sequence(depth + 1));
                        } else if depth > 0 {
                            stack.push(Frame::Sequence(depth - 1));
                        }
                        self.copy(1);
                    } else {
                        self.copy_char();
                    }
                }
                Frame::Str => {
                    if let Some((name, len)) = self.placeholder()? {
                        let value = self.values.get(name).unwrap_or_default();
                        self.pos += len;
                        if hcl {
                            let escaped = hcl_escape(value);
                            self.emit(&escaped);
                            self.pending =
                                escaped.chars().last().filter(|c| matches!(c, '$' | '%'));
                        } else {
                            self.emit(&json_escape(value));
                        }
                    } else if let Some(escaped) = rest.strip_prefix('\\') {
                        let next = escaped.chars().next().map_or(0, char::len_utf8);
                        self.copy(1 + next);
                    } else if rest.starts_with('"') {
                        stack.pop();
                        self.copy(1);
                    } else if hcl && (rest.starts_with("$${") || rest.starts_with("%%{")) {
                        self.copy(3);
                    } else if hcl && (rest.starts_with("${") || rest.starts_with("%{")) {
                        stack.push(Frame::Sequence(0));
                        self.copy(2);
                    } else {
                        self.copy_char();
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy an HCL heredoc (`<<EOF` or `<<-EOF` up to the line that is just `EOF`), refusing
    /// placeholders in it: its contents take no backslash escapes, so a value could not be
    /// escaped there.
    fn heredoc(&mut self) -> Result<(), (usize, TemplateErrorKind)> {
        let rest = &self.src[self.pos..];
        let after = rest[2..].strip_prefix('-').unwrap_or(&rest[2..]);
        let marker_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let marker = &after[..marker_len];
        if marker.is_empty() || !after[marker_len..].starts_with(['\n', '\r']) {
            // Not a heredoc: `<<` in some other expression.
            self.copy(2);
            return Ok(());
        }
        let marker = marker.to_owned();
        let header = rest.len() - after.len() + marker_len;
        self.copy(header);
        loop {
            let rest = &self.src[self.pos..];
            if rest.is_empty() {
                return Ok(());
            }
            let line_len = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let line = &rest[..line_len];
            if let Some((i, name)) = line
                .match_indices("{{")
                .find_map(|(i, _)| placeholder_at(&line[i..]).map(|(name, _)| (i, name)))
            {
                let placeholder = format!("{{{{{name}}}}}");
                self.pos += i;
                // An unknown name is reported as such.
                self.placeholder()?;
                return Err(self.error(TemplateErrorKind::InHeredoc { placeholder }));
            }
            let done = line.trim() == marker;
            self.copy(line_len);
            if done {
                return Ok(());
            }
        }
    }
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Set a field under its canonical name, dropping any other spelling of it (the agent's
/// decoder matches field names case-insensitively).
fn set_field(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.retain(|k, _| !k.eq_ignore_ascii_case(key));
    obj.insert(key.to_owned(), value);
}

/// The job object of a rendered template: the value itself, or its `Job`.
fn job_object(value: Value) -> Result<Map<String, Value>, TemplateErrorKind> {
    let Value::Object(obj) = value else {
        return Err(TemplateErrorKind::NotAnObject);
    };
    match field(&obj, "Job") {
        Some(Value::Object(job)) => Ok(job.clone()),
        Some(_) => Err(TemplateErrorKind::NotAnObject),
        None => Ok(obj),
    }
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "missing".to_owned(),
        Some(Value::String(s)) => format!("`{s}`"),
        Some(v) => format!("`{v}`"),
    }
}

/// What the rendered job must carry.
#[derive(Debug, Clone)]
pub struct JobExpectations<'a> {
    /// The lease id (the job's ID).
    pub id: &'a str,
    /// `nomad.task`.
    pub task: &'a str,
    /// The ownership Meta leasebox sets.
    pub meta: &'a BTreeMap<String, String>,
    /// The configured namespace.
    pub namespace: &'a str,
    /// The configured region.
    pub region: &'a str,
    /// How the template is written (for hints).
    pub format: TemplateFormat,
}

/// Check a rendered job and complete it: ownership Meta added, namespace and region set. Returns
/// whether the job names datacenters.
///
/// # Errors
/// A wrong ID, not exactly one group of count 1, no task named `nomad.task`, a Meta that is not
/// strings, or a `leasebox.*` Meta key with another value than leasebox's.
pub fn check_job(
    job: &mut Map<String, Value>,
    want: &JobExpectations<'_>,
) -> Result<bool, TemplateErrorKind> {
    let id = field(job, "ID");
    if id.and_then(Value::as_str) != Some(want.id) {
        return Err(TemplateErrorKind::WrongId {
            found: shown(id),
            expected: want.id.to_owned(),
            written: match want.format {
                TemplateFormat::Json => "\"ID\": \"{{lease_id}}\"",
                TemplateFormat::Hcl => "job \"{{lease_id}}\" {",
            },
        });
    }
    let groups = field(job, "TaskGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let [group] = groups.as_slice() else {
        return Err(TemplateErrorKind::Groups(groups.len()));
    };
    match field(group.as_object().unwrap_or(&Map::new()), "Count") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(other) => return Err(TemplateErrorKind::Count(other.to_string())),
    }
    let tasks: Vec<String> = group
        .as_object()
        .and_then(|g| field(g, "Tasks"))
        .and_then(Value::as_array)
        .map(|tasks| {
            tasks
                .iter()
                .filter_map(|t| t.as_object().and_then(|t| field(t, "Name")))
                .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !tasks.iter().any(|t| t == want.task) {
        let found = if tasks.is_empty() {
            "none".to_owned()
        } else {
            tasks
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(TemplateErrorKind::MissingTask {
            task: want.task.to_owned(),
            found,
        });
    }
    let mut job_meta: BTreeMap<String, String> = match field(job, "Meta") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or(TemplateErrorKind::MetaNotStrings)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(TemplateErrorKind::MetaNotStrings),
    };
    for (key, found) in &job_meta {
        match want.meta.get(key) {
            Some(expected) if expected != found => {
                let placeholder = key
                    .strip_prefix("leasebox.")
                    .filter(|p| PLACEHOLDERS.contains(p));
                return Err(TemplateErrorKind::WrongMeta {
                    key: key.clone(),
                    found: found.clone(),
                    expected: expected.clone(),
                    written: placeholder
                        .map_or_else(|| expected.clone(), |p| format!("{{{{{p}}}}}")),
                });
            }
            None if key.starts_with("leasebox.") => {
                return Err(TemplateErrorKind::ReservedMeta(key.clone()));
            }
            _ => {}
        }
    }
    job_meta.extend(want.meta.iter().map(|(k, v)| (k.clone(), v.clone())));
    set_field(job, "Meta", json!(job_meta));
    set_field(job, "Namespace", json!(want.namespace));
    set_field(job, "Region", json!(want.region));
    Ok(field(job, "Datacenters")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty()))
}

impl NomadBackend {
    /// The lease's job from the jobspec template at `path`, checked and completed (see the
    /// module docs). Nothing is registered here.
    pub(super) async fn templated_job(
        &self,
        path: &Path,
        spec: &LeaseSpec,
        workdir: &str,
    ) -> Result<Value, LeaseError> {
        let fail = |line: Option<usize>, kind: TemplateErrorKind| {
            LeaseError::Config(
                TemplateError {
                    file: path.to_owned(),
                    line,
                    kind,
                }
                .to_string(),
            )
        };
        let format =
            TemplateFormat::of(path).ok_or_else(|| fail(None, TemplateErrorKind::Extension))?;
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| fail(None, TemplateErrorKind::Read(e)))?;
        // The ownership Meta the built-in job would carry: the template's must agree with it.
        let ownership: BTreeMap<String, String> =
            serde_json::from_value(self.job_spec(spec, Vec::new(), workdir)["Meta"].take())
                .map_err(|e| LeaseError::Internal(format!("the built-in job's Meta: {e}")))?;
        let expires_at = ownership.get(meta::EXPIRES_AT).cloned().unwrap_or_default();
        let values = TemplateValues::default()
            .with("lease_id", spec.id.as_str())
            .with("job_id", spec.id.as_str())
            .with("task", self.task.as_str())
            .with("workdir", workdir)
            .with("namespace", self.client.namespace())
            .with("region", self.client.region())
            .with("scope", self.scope.as_str())
            .with("owner", spec.owner.as_str())
            .with("expires_at", expires_at);
        let rendered =
            render(&text, format, &values).map_err(|(line, kind)| fail(Some(line), kind))?;
        let parsed = match format {
            TemplateFormat::Json => serde_json::from_str::<Value>(&rendered).map_err(|e| {
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m)
                    .to_owned();
                fail(Some(e.line()), TemplateErrorKind::Json(message))
            })?,
            TemplateFormat::Hcl => self.parse_hcl(rendered, &fail).await?,
        };
        let mut job = job_object(parsed).map_err(|kind| fail(None, kind))?;
        let want = JobExpectations {
            id: spec.id.as_str(),
            task: &self.task,
            meta: &ownership,
            namespace: self.client.namespace(),
            region: self.client.region(),
            format,
        };
        let has_datacenters = check_job(&mut job, &want).map_err(|kind| fail(None, kind))?;
        if !has_datacenters {
            set_field(&mut job, "Datacenters", json!(self.datacenters().await?));
        }
        Ok(Value::Object(job))
    }

    /// `PUT /v1/jobs/parse` with the rendered HCL; the agent answers with the bare job.
    async fn parse_hcl(
        &self,
        hcl: String,
        fail: &impl Fn(Option<usize>, TemplateErrorKind) -> LeaseError,
    ) -> Result<Value, LeaseError> {
        let body = json!({"JobHCL": hcl, "Canonicalize": true});
        match self
            .client
            .call(
                reqwest::Method::PUT,
                "/v1/jobs/parse",
                &[],
                Some(&body),
                None,
            )
            .await
        {
            Ok((_, bytes)) => serde_json::from_slice(&bytes).map_err(|e| {
                LeaseError::Transport(format!(
                    "Nomad at {} sent an answer to `PUT /v1/jobs/parse` leasebox cannot read: {e}",
                    self.client.address().shown()
                ))
            }),
            Err(CallError::Api(api)) if api.status == 400 => {
                Err(fail(None, TemplateErrorKind::Hcl(api.body)))
            }
            Err(e) => Err(self.client.lease_error(
                "parsing the jobspec template",
                "`parse-job` or `submit-job`",
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues {
        TemplateValues::default()
            .with("lease_id", "lbx_0123456789ab")
            .with("task", "leasebox")
            .with("owner", "a\"b\\c${d}%{e}")
            .with("workdir", "${NOMAD_ALLOC_DIR}/leasebox")
    }

    #[test]
    fn placeholders_are_recognised_exactly() {
        assert_eq!(placeholder_at("{{owner}} x"), Some(("owner", 9)));
        assert_eq!(placeholder_at("{{job_id2}}"), Some(("job_id2", 11)));
        for not in [
            "{{ owner }}",
            "{{owner}",
            "{{}}",
            "{{2x}}",
            "{{.Name}}",
            "{x}",
        ] {
            assert_eq!(placeholder_at(not), None, "{not}");
        }
    }

    #[test]
    fn json_values_are_escaped_inside_strings() {
        let out = render(
            r#"{"ID": "{{lease_id}}", "Meta": {"o": "{{owner}} {{ env \"X\" }}"}}"#,
            TemplateFormat::Json,
            &values(),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ID"], "lbx_0123456789ab");
        assert_eq!(v["Meta"]["o"], "a\"b\\c${d}%{e} {{ env \"X\" }}");
    }

    #[test]
    fn hcl_values_are_escaped_inside_strings() {
        assert_eq!(hcl_escape("a\"b\\c${d}%{e}\n"), "a\\\"b\\\\c$${d}%%{e}\\n");
        let out = render(
            "job \"{{lease_id}}\" {\n  meta { o = \"{{owner}}\" w = \"{{workdir}}\" }\n}\n",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap();
        assert_eq!(
            out,
            "job \"lbx_0123456789ab\" {\n  meta { o = \"a\\\"b\\\\c$${d}%%{e}\" w = \"$${NOMAD_ALLOC_DIR}/leasebox\" }\n}\n"
        );
    }

    #[test]
    fn a_trailing_dollar_before_a_brace_cannot_open_a_sequence() {
        let v = TemplateValues::default()
            .with("owner", "x$")
            .with("task", "{y}");
        let out = render("a = \"{{owner}}{z}\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"x$${z}\"");
        let out = render("a = \"{{owner}}{{task}}\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"x$${y}\"");
        let out = render("a = \"{{owner}}-\"", TemplateFormat::Hcl, &v).unwrap();
        assert_eq!(out, "a = \"x$-\"");
    }

    #[test]
    fn hcl_sequences_comments_and_escapes_are_followed() {
        let text = "# {{nope}} in a comment\njob \"x\" {\n  a = \"${NOMAD_ALLOC_DIR} $${x} \\\" {{task}}\"\n  /* {{lease_id}} */\n}\n";
        let out = render(text, TemplateFormat::Hcl, &values()).unwrap();
        assert!(out.contains("\\\" leasebox\""), "{out}");
        assert!(out.contains("# {{nope}}"));
        // Inside `${…}` a placeholder is code, not string contents.
        let (line, kind) = render(
            "job \"x\" {\n  a = \"${upper({{task}})}\"\n}",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap_err();
        assert_eq!(line, 2);
        assert!(matches!(kind, TemplateErrorKind::OutsideString { .. }));
        // A string nested in a sequence is a string again.
        let out = render(
            "a = \"${lower(\"{{task}}\")}\"",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap();
        assert_eq!(out, "a = \"${lower(\"leasebox\")}\"");
    }

    #[test]
    fn placeholders_outside_strings_and_unknown_names_are_errors() {
        let (line, kind) = render(
            "{\n  \"ID\": {{lease_id}}\n}",
            TemplateFormat::Json,
            &values(),
        )
        .unwrap_err();
        assert_eq!(line, 2);
        assert_eq!(
            kind.to_string(),
            "the placeholder `{{lease_id}}` is outside a string literal; put it inside quotes, as `\"{{lease_id}}\"`"
        );
        let (line, kind) = render("\n\n\"{{ownr}}\"", TemplateFormat::Json, &values()).unwrap_err();
        assert_eq!(line, 3);
        let text = kind.to_string();
        assert!(
            text.contains("`{{ownr}}`") && text.contains("did you mean `{{owner}}`"),
            "{text}"
        );
        let (line, kind) = render(
            "job \"x\" {\n  a = <<EOF\n{{ env \"X\" }} {{task}}\nEOF\n}",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap_err();
        assert_eq!(line, 3);
        assert!(matches!(kind, TemplateErrorKind::InHeredoc { .. }));
        // A quote in a heredoc does not open a string.
        let out = render(
            "a = <<EOF\nsay \"hi\nEOF\nb = \"{{task}}\"\n",
            TemplateFormat::Hcl,
            &values(),
        )
        .unwrap();
        assert!(out.ends_with("b = \"leasebox\"\n"), "{out}");
    }

    fn ownership() -> BTreeMap<String, String> {
        [
            ("leasebox.managed", "true"),
            ("leasebox.lease_id", "lbx_0123456789ab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn check(job: Value) -> Result<(bool, Map<String, Value>), TemplateErrorKind> {
        let meta = ownership();
        let want = JobExpectations {
            id: "lbx_0123456789ab",
            task: "leasebox",
            meta: &meta,
            namespace: "default",
            region: "global",
            format: TemplateFormat::Json,
        };
        let mut job = job_object(job)?;
        check_job(&mut job, &want).map(|dcs| (dcs, job))
    }

    #[test]
    fn the_job_is_checked_and_completed() {
        let (dcs, job) = check(json!({"Job": {
            "id": "lbx_0123456789ab", "Namespace": "other", "meta": {"mine": "x"},
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "leasebox"}]}],
        }}))
        .unwrap();
        assert!(!dcs);
        assert_eq!(job["Meta"]["mine"], "x");
        assert_eq!(job["Meta"]["leasebox.managed"], "true");
        assert!(!job.contains_key("meta"));
        assert_eq!(job["Namespace"], "default");
        let group = json!([{"Tasks": [{"Name": "leasebox"}]}]);
        for (job, want) in [
            (
                json!({"ID": "other", "TaskGroups": group}),
                "the job ID is `other`",
            ),
            (json!({"TaskGroups": group}), "the job ID is missing"),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": []}),
                "0 task groups",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": [{"Count": 2, "Tasks": [{"Name": "leasebox"}]}]}),
                "count is 2",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": [{"Tasks": [{"Name": "main"}]}]}),
                "no task named `leasebox` (`nomad.task`; the template's tasks: `main`)",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"leasebox.managed": "false"}}),
                "Meta `leasebox.managed` is `false`, but leasebox sets it to `true`; leave it out (leasebox adds the `leasebox.*` keys) or write `\"true\"`",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"leasebox.lease_id": "x"}}),
                "or write `\"{{lease_id}}\"`",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"leasebox.extra": "1"}}),
                "`leasebox.extra` is not a key leasebox sets",
            ),
            (
                json!({"ID": "lbx_0123456789ab", "TaskGroups": group, "Meta": {"n": 1}}),
                "map of strings",
            ),
            (json!([1]), "must be a job object"),
        ] {
            let text = check(job).unwrap_err().to_string();
            assert!(text.contains(want), "{text}");
        }
        let (dcs, _) = check(
            json!({"ID": "lbx_0123456789ab", "Datacenters": ["dc9"], "TaskGroups": group,
            "Meta": {"leasebox.managed": "true"}}),
        )
        .unwrap();
        assert!(dcs);
    }

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
