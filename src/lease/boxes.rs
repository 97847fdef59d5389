//! A lease that exists ([`Lease`]) and the boxes it holds ([`BoxRef`]), with the box-side
//! state directory beside each workdir.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::LeaseId;

/// One box of a lease: its number in the group (1-based), its workdir and its backend
/// references (for Nomad `alloc_id`, `node_id`, `node_name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxRef {
    /// 1..=N.
    pub index: u32,
    /// The absolute workdir inside this box.
    pub workdir: String,
    /// This box's references, laid over the lease's own handle when it is addressed alone.
    #[serde(default)]
    pub handle: BTreeMap<String, String>,
}

impl BoxRef {
    /// The id of the node the box runs on, when the backend knows one.
    #[must_use]
    pub fn node_id(&self) -> Option<&str> {
        self.handle.get("node_id").map(String::as_str)
    }

    /// The name of the node the box runs on, when the backend knows one.
    #[must_use]
    pub fn node_name(&self) -> Option<&str> {
        self.handle.get("node_name").map(String::as_str)
    }
}

/// A lease that exists: enough to exec in it and release it, and to write its claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease id.
    pub id: LeaseId,
    /// The backend name (`local`, `nomad`).
    pub backend: String,
    /// The absolute workdir inside the box, resolved.
    pub workdir: String,
    /// Backend-specific references (for Nomad: `job_id`, `alloc_id`, `task`, `namespace`,
    /// `region`; for local: `root`). Stored in the claim as they are. For a group these are
    /// box 1's, so a one-box caller needs no other field.
    #[serde(default)]
    pub handle: BTreeMap<String, String>,
    /// The boxes, in order (box 1 first); empty for a lease recorded before groups existed,
    /// whose own fields are its one box.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<BoxRef>,
}

impl Lease {
    /// How many boxes the lease holds (at least 1).
    #[must_use]
    pub fn count(&self) -> usize {
        self.boxes.len().max(1)
    }

    /// Box `index` (1-based) addressed alone: the lease's handle with the box's laid over
    /// it, the box's workdir, and that one box in `boxes`. `None` past the last box.
    #[must_use]
    pub fn member(&self, index: usize) -> Option<Lease> {
        if self.boxes.is_empty() {
            return (index == 1).then(|| self.clone());
        }
        let b = self.boxes.get(index.checked_sub(1)?)?;
        let mut handle = self.handle.clone();
        handle.extend(b.handle.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some(Lease {
            id: self.id.clone(),
            backend: self.backend.clone(),
            workdir: b.workdir.clone(),
            handle,
            boxes: vec![b.clone()],
        })
    }

    /// Every box addressed alone, in order.
    #[must_use]
    pub fn members(&self) -> Vec<Lease> {
        (1..=self.count()).filter_map(|i| self.member(i)).collect()
    }

    /// The box-side state directory: a sibling of the workdir, never inside the synced tree.
    #[must_use]
    pub fn state_dir(&self) -> String {
        box_state_dir(&self.workdir)
    }
}

/// The box-side state directory for a workdir: `<workdir>.lbx`.
#[must_use]
pub fn box_state_dir(workdir: &str) -> String {
    format!("{}.lbx", workdir.trim_end_matches('/'))
}
