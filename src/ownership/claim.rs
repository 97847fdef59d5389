//! [`Claim`]: the local record of one lease, stored as `claims/<id>.json`, and its expiry
//! rules.
//!
//! # Format
//!
//! Pretty-printed JSON, one object, unknown fields refused (a claim this version cannot fully
//! read is reported as corrupt rather than rewritten without the fields it does not know).
//! Times (`created`, `last_used`) are RFC 3339 UTC strings with whole seconds, e.g.
//! `"2026-11-27T08:50:15Z"`: readable when a user opens the file, and exact on round trip
//! because claims only ever hold whole seconds. Durations are whole seconds (`ttl_secs`,
//! `idle_secs`); `0` means no limit.
//!
//! ```json
//! {
//!   "id": "lbx_0123456789ab",
//!   "backend": "nomad",
//!   "scope": "5f2c…",
//!   "state": "active",
//!   "job_id": "leasebox-lbx_0123456789ab",
//!   "alloc_id": "8d1c…",
//!   "task": "leasebox",
//!   "workdir": "/workspace/leasebox",
//!   "repo_root": "/home/me/src/app",
//!   "owner": "3a9e…",
//!   "holder": { "pid": 4242, "host": "laptop" },
//!   "created": "2026-11-27T08:50:15Z",
//!   "last_used": "2026-11-27T09:02:40Z",
//!   "ttl_secs": 5400,
//!   "idle_secs": 1800,
//!   "keep": false,
//!   "sync_revision": null,
//!   "handle": {},
//!   "revision": 3
//! }
//! ```
//!
//! `revision` is owned by the store: 1 when created, bumped by every write, and the value
//! compare-and-swap checks against.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Holder, OwnershipError, validate_claim_id};

/// Default lease TTL (`[lease] ttl`): 90 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_mins(90);
/// Default idle timeout (`[lease] idle`): 30 minutes.
pub const DEFAULT_IDLE: Duration = Duration::from_mins(30);

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Written before the job is registered; a crash leaves this for `cleanup` to resolve.
    Registering,
    /// The box is up and the lease usable.
    Active,
    /// Release has started; the job may or may not be gone yet.
    Releasing,
}

impl ClaimState {
    /// The name used in the file and in listings.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Registering => "registering",
            ClaimState::Active => "active",
            ClaimState::Releasing => "releasing",
        }
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The local record of one lease. See the module docs for the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The lease id, `lbx_` + 12 hex digits; also the file name.
    pub id: String,
    /// The backend name (`nomad`, `local`).
    pub backend: String,
    /// Fingerprint of where the lease lives (for Nomad: address, namespace, region, task).
    pub scope: String,
    /// Where the lease is in its life.
    pub state: ClaimState,
    /// The backend's job id, once known.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The allocation id, once ready.
    #[serde(default)]
    pub alloc_id: Option<String>,
    /// The task name.
    #[serde(default)]
    pub task: Option<String>,
    /// The working directory on the box (absolute, resolved).
    pub workdir: String,
    /// The local repository root the lease was made for.
    pub repo_root: PathBuf,
    /// The owner (the user config's `owner`).
    pub owner: String,
    /// The process using the lease.
    pub holder: Holder,
    /// When the lease was created.
    #[serde(with = "rfc3339")]
    pub created: SystemTime,
    /// When the lease was last used.
    #[serde(with = "rfc3339")]
    pub last_used: SystemTime,
    /// Time to live from `created`, in seconds; 0 means none.
    pub ttl_secs: u64,
    /// Idle timeout from `last_used`, in seconds; 0 means none.
    pub idle_secs: u64,
    /// Kept leases survive the end of a run and the loss of their holder process (but not
    /// their TTL or idle timeout).
    #[serde(default)]
    pub keep: bool,
    /// The sync revision stamp last written to the box.
    #[serde(default)]
    pub sync_revision: Option<String>,
    /// Backend-specific references (e.g. Nomad's namespace, a local directory).
    #[serde(default)]
    pub handle: BTreeMap<String, String>,
    /// How many boxes the lease holds (a shard group holds N); what `max_leases` counts.
    #[serde(default = "one_box")]
    pub count: u32,
    /// Each box of a group: its `index`, `workdir` and backend references (`alloc_id`,
    /// `node_id`, `node_name`), in order. Empty for one box, whose fields are the claim's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<BTreeMap<String, String>>,
    /// The store's revision counter (compare-and-swap); set by the store, not by callers.
    pub revision: u64,
}

fn one_box() -> u32 {
    1
}

impl Claim {
    /// A new claim in state `registering`, held by this process, created and last used now,
    /// with the default TTL and idle timeout; `workdir` and `repo_root` start empty and
    /// `revision` at 0 (the store sets 1 on create). Set the other fields directly.
    ///
    /// # Errors
    ///
    /// [`OwnershipError::InvalidId`] when `id` is not a lease id.
    pub fn new(id: &str, backend: &str, scope: &str, owner: &str) -> Result<Claim, OwnershipError> {
        validate_claim_id(id)?;
        let now = now();
        Ok(Claim {
            id: id.to_owned(),
            backend: backend.to_owned(),
            scope: scope.to_owned(),
            state: ClaimState::Registering,
            job_id: None,
            alloc_id: None,
            task: None,
            workdir: String::new(),
            repo_root: PathBuf::new(),
            owner: owner.to_owned(),
            holder: Holder::current(),
            created: now,
            last_used: now,
            ttl_secs: DEFAULT_TTL.as_secs(),
            idle_secs: DEFAULT_IDLE.as_secs(),
            keep: false,
            sync_revision: None,
            handle: BTreeMap::new(),
            count: 1,
            boxes: Vec::new(),
            revision: 0,
        })
    }

    /// The TTL, `None` when unlimited.
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        (self.ttl_secs > 0).then(|| Duration::from_secs(self.ttl_secs))
    }

    /// The idle timeout, `None` when unlimited.
    #[must_use]
    pub fn idle(&self) -> Option<Duration> {
        (self.idle_secs > 0).then(|| Duration::from_secs(self.idle_secs))
    }

    /// When the TTL runs out, `None` when unlimited.
    #[must_use]
    pub fn ttl_deadline(&self) -> Option<SystemTime> {
        self.ttl().and_then(|ttl| self.created.checked_add(ttl))
    }

    /// When the idle timeout runs out if the lease is not used again, `None` when unlimited.
    #[must_use]
    pub fn idle_deadline(&self) -> Option<SystemTime> {
        self.idle()
            .and_then(|idle| self.last_used.checked_add(idle))
    }

    /// The earlier of the TTL and idle deadlines: when `cleanup` may release the lease if it
    /// is not used again. `None` when neither limit is set.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        match (self.ttl_deadline(), self.idle_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Why the lease has expired at `now`, or `None` if it has not. The TTL is checked first.
    /// `keep` does not exempt a lease from expiry.
    #[must_use]
    pub fn expiry(&self, now: SystemTime) -> Option<ExpiryReason> {
        if let (Some(ttl), Some(deadline)) = (self.ttl(), self.ttl_deadline())
            && now >= deadline
        {
            return Some(ExpiryReason::Ttl {
                ttl,
                age: elapsed(self.created, now),
            });
        }
        if let (Some(idle), Some(deadline)) = (self.idle(), self.idle_deadline())
            && now >= deadline
        {
            return Some(ExpiryReason::Idle {
                idle,
                idle_for: elapsed(self.last_used, now),
            });
        }
        None
    }
}

/// Why a lease expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryReason {
    /// Older than its TTL.
    Ttl {
        /// The TTL.
        ttl: Duration,
        /// Time since the lease was created (whole seconds).
        age: Duration,
    },
    /// Unused for longer than its idle timeout.
    Idle {
        /// The idle timeout.
        idle: Duration,
        /// Time since the lease was last used (whole seconds).
        idle_for: Duration,
    },
}

impl fmt::Display for ExpiryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use humantime::format_duration as d;
        match *self {
            ExpiryReason::Ttl { ttl, age } => {
                write!(f, "past its TTL of {} (created {} ago)", d(ttl), d(age))
            }
            ExpiryReason::Idle { idle, idle_for } => {
                write!(f, "idle for {} (idle timeout {})", d(idle_for), d(idle))
            }
        }
    }
}

/// Now, to the whole second (what a claim stores).
#[must_use]
pub(crate) fn now() -> SystemTime {
    whole_seconds(SystemTime::now())
}

/// `t` truncated to a whole second and clamped to what RFC 3339 can write (1970–9999).
#[must_use]
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    /// 9999-12-31T23:59:59Z.
    const MAX_SECS: u64 = 253_402_300_799;
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whole seconds from `from` to `to`, zero if `to` is earlier.
fn elapsed(from: SystemTime, to: SystemTime) -> Duration {
    Duration::from_secs(to.duration_since(from).map_or(0, |d| d.as_secs()))
}

/// Serde for `SystemTime` as an RFC 3339 UTC string with whole seconds.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::whole_seconds;

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(whole_seconds(*t)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text)
            .map_err(|e| de::Error::custom(format_args!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "lbx_0123456789ab";

    fn claim_at(created: u64, last_used: u64) -> Claim {
        let mut c = Claim::new(ID, "local", "scope", "owner").unwrap();
        c.created = UNIX_EPOCH + Duration::from_secs(created);
        c.last_used = UNIX_EPOCH + Duration::from_secs(last_used);
        c.ttl_secs = 5400;
        c.idle_secs = 1800;
        c
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn json_round_trip_and_format() {
        let mut c = claim_at(1_700_000_000, 1_700_000_100);
        c.job_id = Some("job".into());
        c.handle.insert("namespace".into(), "default".into());
        let text = serde_json::to_string_pretty(&c).unwrap();
        assert!(
            text.contains(r#""created": "2023-11-14T22:13:20Z""#),
            "{text}"
        );
        assert!(text.contains(r#""state": "registering""#), "{text}");
        assert!(text.contains(r#""alloc_id": null"#), "{text}");
        let back: Claim = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_fields_and_bad_times_are_refused() {
        let c = claim_at(1_700_000_000, 1_700_000_000);
        let mut value = serde_json::to_value(&c).unwrap();
        value["surprise"] = 1.into();
        assert!(serde_json::from_value::<Claim>(value.clone()).is_err());
        value.as_object_mut().unwrap().remove("surprise");
        value["created"] = "yesterday".into();
        let err = serde_json::from_value::<Claim>(value).unwrap_err();
        assert!(err.to_string().contains("not an RFC 3339 time"), "{err}");
    }

    #[test]
    fn new_refuses_bad_ids_and_uses_whole_seconds() {
        assert!(Claim::new("lbx_../../x", "local", "s", "o").is_err());
        let c = Claim::new(ID, "local", "s", "o").unwrap();
        assert_eq!(
            c.created.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(),
            0
        );
        assert_eq!(c.state, ClaimState::Registering);
        assert_eq!(c.ttl(), Some(DEFAULT_TTL));
    }

    #[test]
    fn expiry_by_ttl() {
        // Used a second ago, so only the TTL can fire.
        let c = claim_at(0, 5399);
        assert_eq!(c.expiry(at(5399)), None);
        let reason = c.expiry(at(5400)).unwrap();
        assert_eq!(
            reason,
            ExpiryReason::Ttl {
                ttl: Duration::from_secs(5400),
                age: Duration::from_secs(5400)
            }
        );
        assert_eq!(
            reason.to_string(),
            "past its TTL of 1h 30m (created 1h 30m ago)"
        );
    }

    #[test]
    fn expiry_by_idle() {
        let c = claim_at(0, 100);
        assert_eq!(c.expiry(at(1899)), None);
        let reason = c.expiry(at(1960)).unwrap();
        assert_eq!(
            reason,
            ExpiryReason::Idle {
                idle: Duration::from_secs(1800),
                idle_for: Duration::from_secs(1860)
            }
        );
        assert_eq!(reason.to_string(), "idle for 31m (idle timeout 30m)");
    }

    #[test]
    fn ttl_wins_when_both_fire_and_keep_does_not_exempt() {
        let mut c = claim_at(0, 0);
        c.keep = true;
        assert!(matches!(
            c.expiry(at(10_000)),
            Some(ExpiryReason::Ttl { .. })
        ));
    }

    #[test]
    fn expires_at_is_the_earlier_deadline() {
        let c = claim_at(0, 100);
        assert_eq!(c.expires_at(), Some(at(1900)));
        let c = claim_at(0, 5000);
        assert_eq!(c.expires_at(), Some(at(5400)));
    }

    #[test]
    fn zero_means_no_limit() {
        let mut c = claim_at(0, 0);
        c.idle_secs = 0;
        assert_eq!(c.expires_at(), Some(at(5400)));
        assert!(matches!(c.expiry(at(6000)), Some(ExpiryReason::Ttl { .. })));
        c.ttl_secs = 0;
        assert_eq!(c.expires_at(), None);
        assert_eq!(c.expiry(at(u64::from(u32::MAX))), None);
    }

    #[test]
    fn times_out_of_range_are_clamped_not_panicking() {
        let mut c = claim_at(0, 0);
        c.created = UNIX_EPOCH - Duration::from_secs(10);
        c.last_used = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 100);
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("1970-01-01T00:00:00Z"), "{text}");
        assert!(text.contains("9999-12-31T23:59:59Z"), "{text}");
    }
}
