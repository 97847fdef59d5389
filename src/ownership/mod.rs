//! Ownership: the claims store in the state dir, and the rules that say when a lease is ours,
//! held, or expired.
//!
//! - [`StateDir`] resolves and creates the state dir (`$LEASEBOX_STATE_DIR`, else
//!   `$XDG_STATE_HOME/leasebox`, else `~/.local/state/leasebox`).
//! - [`ClaimStore`] keeps one [`Claim`] per lease in `claims/<id>.json`: atomic writes under a
//!   per-claim lock ([`ClaimLock`]) with compare-and-swap on `revision`, listing that reports
//!   corrupt files instead of failing.
//! - [`HolderGuard`] is the lock a process keeps on a lease it uses; [`ClaimStore::is_held`]
//!   tells `cleanup` whether that process is still there.
//! - [`Claim::expiry`] says whether a lease is past its TTL or idle timeout.
//!
//! This module imports only `crate::error` and the leaf `crate::atomic_file` (DESIGN §3):
//! lease ids are taken as `&str` and checked here with the same pattern as `lease::LeaseId`.

mod claim;
mod claim_id;
mod claim_lock;
mod claim_store;
mod error;
mod holder;
mod holder_guard;
mod lock_file;
mod state_dir;

pub use claim::{Claim, ClaimState, DEFAULT_IDLE, DEFAULT_TTL, ExpiryReason};
pub use claim_id::{is_claim_id, validate_claim_id};
pub use claim_lock::ClaimLock;
pub use claim_store::{ClaimList, ClaimStore, CorruptClaim};
pub use error::OwnershipError;
pub use holder::{Holder, host_name};
pub use holder_guard::HolderGuard;
pub use state_dir::{STATE_DIR_VAR, StateDir};
