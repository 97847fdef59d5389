//! The [`Backend`] trait: the small set of operations every kind of box offers.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{
    ExecRequest, ExecStream, Features, Lease, LeaseError, LeaseSpec, OwnershipRecord, RemoteLease,
    RemoteState,
};

/// A kind of box. Implementations: `backends::local::LocalBackend`, and the Nomad backend.
///
/// All methods are cancellable: long waits take a [`CancellationToken`] and return
/// [`LeaseError::Cancelled`] promptly when it fires, having cleaned up what they created.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// What this backend can do.
    fn features(&self) -> Features;

    /// The scope fingerprint recorded in claims: which cluster, namespace, region and task a
    /// lease lives in (the backend name for backends without such a notion).
    fn scope(&self) -> String {
        self.features().name.to_owned()
    }

    /// Create a box for `spec` and wait until it accepts execs. On failure nothing is left
    /// behind, or the error is [`LeaseError::LeftBehind`].
    async fn warmup(
        &self,
        spec: &LeaseSpec,
        cancel: &CancellationToken,
    ) -> Result<Lease, LeaseError>;

    /// Start a command in the box.
    async fn exec(&self, lease: &Lease, request: ExecRequest) -> Result<ExecStream, LeaseError>;

    /// Destroy the box and confirm it is gone. Releasing a box that is already gone succeeds.
    async fn release(&self, lease: &Lease, cancel: &CancellationToken) -> Result<(), LeaseError>;

    /// The live state of one lease.
    async fn status(&self, lease: &Lease) -> Result<RemoteState, LeaseError>;

    /// The ownership record the box itself carries (Nomad: the job's `Meta`; local: the lease
    /// directory's marker), as [`OwnershipRecord`] fields; `None` when the box is gone.
    async fn record(&self, lease: &Lease) -> Result<Option<OwnershipRecord>, LeaseError>;

    /// The leases this backend can see that belong to `owner`.
    async fn list(&self, owner: &str) -> Result<Vec<RemoteLease>, LeaseError>;
}
