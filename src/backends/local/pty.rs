//! The local backend's terminal execs: a real pseudo-terminal (`openpt`, `grantpt`, `unlockpt`,
//! the slave opened by name), the command started as the leader of a new session with the slave
//! as its controlling terminal (so Ctrl-C typed as a byte reaches it as SIGINT and a window
//! change as SIGWINCH), output read from the master without blocking, and the window size set
//! on the master at the start and on every resize.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::lease::TtySize;

/// After the command exited, how long to keep reading output that is still in flight when the
/// terminal does not report its end (a background process still holds it).
const DRAIN_QUIET: Duration = Duration::from_millis(200);

fn winsize(size: TtySize) -> Winsize {
    Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A fresh pseudo-terminal of `size`: its master and its slave.
pub(super) fn open(size: TtySize) -> io::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::termios::tcsetwinsize(&master, winsize(size))?;
    Ok((master, slave))
}

/// Make the child the leader of a new session whose controlling terminal is its stdin (the
/// slave). Runs between fork and exec.
///
/// # Safety
/// Only async-signal-safe system calls (rustix calls the kernel directly).
pub(super) unsafe fn become_session_leader() -> io::Result<()> {
    rustix::process::setsid()?;
    // SAFETY: fd 0 is the slave, set up by the spawner before this runs.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    rustix::process::ioctl_tiocsctty(stdin)?;
    Ok(())
}

/// The master side of a pseudo-terminal, registered with the runtime.
pub(super) struct Master {
    fd: AsyncFd<OwnedFd>,
}

/// What one read of the master gave.
pub(super) enum Read {
    /// Output.
    Data(Bytes),
    /// The terminal's last user closed it.
    End,
}

impl Master {
    /// Take the master of a pseudo-terminal, non-blocking from now on.
    pub(super) fn new(fd: OwnedFd) -> io::Result<Master> {
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it (open, the same file
        // description, the same number) until it is dropped.
        let fd = unsafe {
            AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(Master { fd })
    }

    /// Set the window size (the kernel tells the command with SIGWINCH).
    pub(super) fn resize(&self, size: TtySize) {
        let _ = rustix::termios::tcsetwinsize(self.fd.get_ref(), winsize(size));
    }

    /// Read what the command wrote.
    pub(super) async fn read(&self) -> Read {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return Read::End;
            };
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref().as_fd(), &mut buf).map_err(io::Error::from)
            }) {
                Ok(Ok(0)) => return Read::End,
                Ok(Ok(n)) => return Read::Data(Bytes::copy_from_slice(&buf[..n])),
                // EIO: the slave's last holder closed it.
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => return Read::End,
                Err(_would_block) => {}
            }
        }
    }

    /// Read what is still in flight after the command exited: until the terminal reports its
    /// end, or nothing came for a short while (a background process still holds it).
    pub(super) async fn drain(&self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Ok(Read::Data(chunk)) = tokio::time::timeout(DRAIN_QUIET, self.read()).await {
            out.push(chunk);
        }
        out
    }

    /// Write all of `data` (typed input).
    pub(super) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard
                .try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}
