//! Loading a template into the lease's job: read the file, render it, parse it (a `.json`
//! locally, a `.hcl` through the agent's `PUT /v1/jobs/parse`), check and complete the job.
//! Nothing is registered here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::check::{JobExpectations, check_job, job_object, set_field};
use super::error::{TemplateError, TemplateErrorKind};
use super::render::{TemplateFormat, TemplateValues, render};
use crate::backends::nomad::NomadBackend;
use crate::backends::nomad::client::CallError;
use crate::backends::nomad::meta;
use crate::config::FileSetting;
use crate::lease::{LeaseError, LeaseSpec};

impl NomadBackend {
    /// The lease's job from the jobspec template at `path`, checked and completed (see the
    /// module docs). Nothing is registered here.
    pub(in crate::backends::nomad) async fn templated_job(
        &self,
        template: &FileSetting,
        spec: &LeaseSpec,
        workdir: &str,
    ) -> Result<Value, LeaseError> {
        let path = template.path.as_path();
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
        // Pinned bytes (a trusted repository's template) are used as hashed, never read again.
        let bytes = match &template.pinned {
            Some(bytes) => std::sync::Arc::clone(bytes),
            None => tokio::fs::read(path)
                .await
                .map_err(|e| fail(None, TemplateErrorKind::Read(e)))?
                .into(),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            fail(
                None,
                TemplateErrorKind::Read(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the file is not UTF-8",
                )),
            )
        })?;
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
            render(text, format, &values).map_err(|(line, kind)| fail(Some(line), kind))?;
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
            driver: &self.driver,
            format,
            count: spec.boxes(),
        };
        let has_datacenters = check_job(&mut job, &want).map_err(|kind| fail(None, kind))?;
        // The group gets the lease's count and placement from leasebox.
        if let Some(group) = job
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("TaskGroups"))
            .and_then(|(_, v)| v.as_array_mut())
            .and_then(|groups| groups.first_mut())
        {
            let count_key = group
                .as_object()
                .and_then(|g| g.keys().find(|k| k.eq_ignore_ascii_case("Count")).cloned());
            if let (Some(key), Some(obj)) = (count_key, group.as_object_mut())
                && key != "Count"
            {
                obj.remove(&key);
            }
            crate::backends::nomad::job::group_placement(group, spec);
        }
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
