//! Warmup progress: what a backend reports while it waits for a box (an evaluation's status, a
//! placement failure with the reason the cluster gave, an allocation going from `pending` to
//! `running`), sent down a channel the lease lifecycle hands it in [`LeaseSpec`](super::LeaseSpec)
//! and forwards to whoever watches the run (the terminal's progress, the `--events` stream).
//!
//! Reports are facts the backend saw, never guesses: a backend that has nothing to report (the
//! local backend is ready at once) sends nothing.

use tokio::sync::mpsc;

/// One thing a backend saw while warming up a box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmupProgress {
    /// The box was asked for: for Nomad, the job was registered and its evaluation created.
    Registered {
        /// The backend's name of what was created (the Nomad job id).
        job: String,
        /// The evaluation that places it (empty when the agent gave none).
        evaluation: String,
    },
    /// The evaluation's status changed (`pending`, `complete`, `blocked`, …).
    Evaluation {
        /// The evaluation id.
        id: String,
        /// Its status, as the cluster reports it.
        status: String,
    },
    /// The cluster reported that it cannot place the box, with its reason as given.
    PlacementFailed {
        /// The reason (per task group: constraint filtered, resources exhausted, …).
        reason: String,
    },
    /// The box's allocation was seen, or its state changed.
    Allocation {
        /// The allocation id.
        id: String,
        /// The node it was placed on (empty before placement).
        node: String,
        /// The allocation's client status (`pending`, `running`, `failed`, …).
        client_status: String,
        /// The task's state (`pending`, `running`, `dead`), when the allocation reports one.
        task_state: Option<String>,
    },
}

/// Where a backend sends its [`WarmupProgress`]: a channel to the lease lifecycle, or nowhere
/// (the default). Sending never blocks and never fails: a report nobody reads is dropped.
#[derive(Clone, Default)]
pub struct ProgressSender {
    tx: Option<mpsc::UnboundedSender<WarmupProgress>>,
}

impl ProgressSender {
    /// A sender feeding a new channel, and its receiving end.
    #[must_use]
    pub fn channel() -> (ProgressSender, mpsc::UnboundedReceiver<WarmupProgress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ProgressSender { tx: Some(tx) }, rx)
    }

    /// Report `progress`.
    pub fn send(&self, progress: WarmupProgress) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(progress);
        }
    }
}

impl std::fmt::Debug for ProgressSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.tx.is_some() {
            "ProgressSender(channel)"
        } else {
            "ProgressSender(none)"
        })
    }
}
