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
//!
//! The parts: `render` (a pure function from template text and placeholder values to the
//! rendered text), `check` (the job checker), `load` (reading a template file, the HCL parse over
//! the agent's HTTP API, and putting the parts together into the lease's job), `error`.

mod check;
mod error;
mod load;
mod render;

pub use check::{JobExpectations, check_job};
pub use error::{TemplateError, TemplateErrorKind};
pub use render::{PLACEHOLDERS, TemplateFormat, TemplateValues, hcl_escape, json_escape, render};
