//! Faults a test can inject into one instance, and the request log it can read back.

use std::time::Duration;

/// A route selector: an optional method and a path pattern where `*` matches one segment and a
/// trailing `/**` matches the rest (`"GET /v1/job/*/allocations"`, `"/v1/jobs"`,
/// `"/v1/client/allocation/*/exec"`). The query string is not part of the match.
#[derive(Clone, Debug)]
pub struct Route {
    method: Option<String>,
    segments: Vec<String>,
}

impl Route {
    pub fn parse(spec: &str) -> Route {
        let (method, path) = match spec.split_once(' ') {
            Some((m, p)) => (Some(m.to_ascii_uppercase()), p),
            None => (None, spec),
        };
        Route {
            method,
            segments: path
                .trim_matches('/')
                .split('/')
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (i, want) in self.segments.iter().enumerate() {
            if want == "**" {
                return true;
            }
            match segs.get(i) {
                Some(got) if want == "*" || want == got => {}
                _ => return false,
            }
        }
        segs.len() == self.segments.len()
    }
}

#[derive(Clone, Debug)]
pub struct HttpFailure {
    pub route: Route,
    /// 1-based number of the first matching call that fails.
    pub nth: u64,
    /// How many consecutive calls fail from the `nth` on.
    pub times: u64,
    pub status: u16,
    pub body: String,
    pub seen: u64,
}

#[derive(Clone, Debug)]
pub struct Latency {
    pub route: Route,
    pub delay: Duration,
}

/// How an injected allocation failure behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocFailure {
    /// The task exits 1 at once; the job's own ReschedulePolicy decides what follows.
    Fail,
    /// The task exits 1 at once and the allocation is rescheduled once after the (scaled)
    /// reschedule delay, whatever the job's policy says: `FollowupEvalID` + `WaitUntil` on
    /// the failed one, `NextAllocation`/`PreviousAllocation` linking the two.
    FailAndReplace,
}

#[derive(Default, Debug)]
pub struct Faults {
    pub http: Vec<HttpFailure>,
    pub latency: Vec<Latency>,
    pub unresponsive: bool,
    /// Exec sessions to drop (TCP, no close frame, process left running) after this many
    /// data frames; one entry per session, consumed in order.
    pub exec_drops: Vec<usize>,
    /// The same for terminal (`tty=true`) sessions only, which other execs leave alone.
    pub tty_exec_drops: Vec<usize>,
    /// What a raw_exec agent does when a client goes away while output flows: the exec
    /// session fails writing the next output frame and, this long after, the agent kills the
    /// process it exec'd (that process alone; its children run on). `None`: the exec'd
    /// process keeps running (the docker driver's behaviour).
    pub exec_kill_on_broken_output: Option<std::time::Duration>,
    /// Failures applied to the next allocations placed, one entry per allocation.
    pub alloc_failures: Vec<AllocFailure>,
    /// Jobs (by ID, `*` for any) that cannot be placed, with the constraint reason reported
    /// in `FailedTGAllocs`.
    pub unplaceable: Vec<(String, String)>,
}
