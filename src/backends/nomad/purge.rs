//! Purging a lease's job and confirming it is gone: a GET that answers 404 (a delete reply
//! proves nothing on Nomad 1.1).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::NomadBackend;
use super::client::CallError;
use super::wire::Job;
use crate::lease::LeaseError;

impl NomadBackend {
    /// Purge a job and wait until a GET answers 404.
    pub(super) async fn purge(
        &self,
        job_id: &str,
        cancel: &CancellationToken,
    ) -> Result<(), LeaseError> {
        let path = format!("/v1/job/{job_id}");
        self.client
            .call(
                reqwest::Method::DELETE,
                &path,
                &[("purge", "true".to_owned())],
                None,
                None,
            )
            .await
            .map_err(|e| {
                self.client
                    .lease_error("purging the job", "`submit-job`", e)
            })?;
        let deadline = tokio::time::Instant::now() + self.timings.release_timeout;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.client.get::<Job>(&path, &[]).await {
                Err(CallError::Api(api)) if api.status == 404 => return Ok(()),
                Err(e) => {
                    return Err(self.client.lease_error(
                        "confirming the job is gone",
                        "`read-job`",
                        e,
                    ));
                }
                Ok(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LeaseError::Transport(format!(
                    "job `{job_id}` was purged but is still there after {}",
                    humantime::format_duration(self.timings.release_timeout)
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Err(LeaseError::Cancelled),
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}
