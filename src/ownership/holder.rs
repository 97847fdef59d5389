//! [`Holder`]: the leasebox process using a lease (pid and host name), as recorded in its
//! claim. Whether that process is still alive is told by its holder lock, not by the pid
//! (pids are reused): see [`super::HolderGuard`].

use serde::{Deserialize, Serialize};

/// The process that holds (uses) a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// The host it runs on, from `gethostname(2)`.
    pub host: String,
}

impl Holder {
    /// This process on this host.
    #[must_use]
    pub fn current() -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
        }
    }
}

/// This machine's host name (`gethostname(2)`), or `unknown` if it cannot be read.
#[must_use]
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    // POSIX does not promise a terminating NUL on truncation; stop at the first or the end.
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    if name.is_empty() {
        "unknown".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_holder_is_this_process() {
        let holder = Holder::current();
        assert_eq!(holder.pid, std::process::id());
        assert!(!holder.host.is_empty());
        assert!(!holder.host.contains('\0'));
    }
}
