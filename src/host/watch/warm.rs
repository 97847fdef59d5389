//! Leases kept warm across the runs of `leasebox watch`: [`WarmLeases`] wraps the run's lease
//! provider so that the first `warmup{}` of every rerun gets the box the first run leased, the
//! second the second, and so on (a lease whose options changed is released and leased anew).
//! The boxes it hands out ignore the run's release: the watch releases them when it ends
//! ([`WarmLeases::release_all`]), unless kept. While they are held their claims' holder locks
//! stay taken, so no `cleanup` releases a box in use, and [`WarmLeases::renew_all`] renews each
//! claim's last use and, where the backend can, the box's own expiry.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::super::engine::{EngineError, LeaseOptions, LeaseProvider, LeasedBox, TransferSummary};
use crate::events::Events;
use crate::session::{Command, ExecOutcome, ShellOutcome, ShellRequest, SyncOptions};

struct Slot {
    options: LeaseOptions,
    held: Arc<dyn LeasedBox>,
    /// Marked kept during the watch (the REPL's `:lease keep`).
    kept: Arc<AtomicBool>,
}

/// The lease provider of `leasebox watch`.
pub struct WarmLeases {
    inner: Arc<dyn LeaseProvider>,
    slots: Mutex<Vec<Slot>>,
    cursor: AtomicUsize,
    events: Events,
}

impl WarmLeases {
    /// Keep the leases of `inner` warm; `events` hears what it says.
    #[must_use]
    pub fn new(inner: Arc<dyn LeaseProvider>, events: Events) -> Self {
        WarmLeases {
            inner,
            slots: Mutex::default(),
            cursor: AtomicUsize::new(0),
            events,
        }
    }

    /// A run starts: its first `warmup{}` gets the first warm box again.
    pub fn begin_run(&self) {
        self.cursor.store(0, Ordering::SeqCst);
    }

    fn boxes(&self) -> Vec<(LeaseOptions, Arc<dyn LeasedBox>)> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|s| (s.options.clone(), Arc::clone(&s.held)))
            .collect()
    }

    fn slot(&self, index: usize) -> Option<(LeaseOptions, Arc<dyn LeasedBox>, Arc<AtomicBool>)> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(index)
            .map(|s| (s.options.clone(), Arc::clone(&s.held), Arc::clone(&s.kept)))
    }

    /// The ids of the warm leases.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        self.boxes().into_iter().map(|(_, b)| b.id()).collect()
    }

    /// Renew every warm lease (its claim's last use, and the box's expiry where the backend
    /// records one); the first failure is returned after all were tried.
    ///
    /// # Errors
    /// A claim or a box record could not be renewed.
    pub async fn renew_all(&self) -> Result<(), EngineError> {
        let mut first = None;
        for (_, held) in self.boxes() {
            if let Err(e) = held.renew().await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The watch ends: release every warm lease, unless `keep` (`--keep`), the lease's own
    /// `keep`, or it is a kept lease the watch reused. Returns one line per lease kept, and the
    /// errors of the releases that failed.
    pub async fn release_all(&self, keep: bool) -> (Vec<String>, Vec<(String, EngineError)>) {
        let slots: Vec<Slot> = std::mem::take(
            &mut *self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut kept = Vec::new();
        let mut failed = Vec::new();
        for slot in slots {
            let id = slot.held.id();
            if keep || slot.options.keep || slot.kept.load(Ordering::SeqCst) || slot.held.reused() {
                kept.push(id);
                continue;
            }
            if let Err(e) = slot.held.release(&CancellationToken::new()).await {
                failed.push((id, e));
            }
        }
        (kept, failed)
    }
}

fn same_box(a: &LeaseOptions, b: &LeaseOptions) -> bool {
    a.image == b.image && a.cpu == b.cpu && a.memory_mb == b.memory_mb && a.disk_mb == b.disk_mb
}

#[async_trait]
impl LeaseProvider for WarmLeases {
    async fn acquire(
        &self,
        options: &LeaseOptions,
        cancel: &CancellationToken,
    ) -> Result<Arc<dyn LeasedBox>, EngineError> {
        let index = self.cursor.fetch_add(1, Ordering::SeqCst);
        if let Some((had, held, kept)) = &self.slot(index) {
            if same_box(had, options) {
                return Ok(Arc::new(WarmBox(Arc::clone(held), Arc::clone(kept))));
            }
            // The recipe now asks for another box here: the old one goes.
            self.events.say(&format!(
                "==> the recipe's lease {} changed its image or resources: releasing it",
                held.id()
            ));
            if !held.reused() && !kept.load(Ordering::SeqCst) {
                held.release(&CancellationToken::new()).await?;
            }
        }
        let held = self.inner.acquire(options, cancel).await?;
        let kept = Arc::new(AtomicBool::new(false));
        {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = Slot {
                options: options.clone(),
                held: Arc::clone(&held),
                kept: Arc::clone(&kept),
            };
            if index < slots.len() {
                slots[index] = slot;
            } else {
                slots.push(slot);
            }
        }
        // The first run's lease line says "leased"; later runs say "warm".
        Ok(Arc::new(FirstUse(held, kept)))
    }

    async fn sweep(
        &self,
        dry_run: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, EngineError> {
        self.inner.sweep(dry_run, cancel).await
    }
}

/// A warm box handed to a rerun: everything goes to the held lease but the release, which the
/// watch does when it ends (or not, once marked kept: the flag its slot shares).
struct WarmBox(Arc<dyn LeasedBox>, Arc<AtomicBool>);

/// A box just leased for this watch: as [`WarmBox`], but it reports itself as new.
struct FirstUse(Arc<dyn LeasedBox>, Arc<AtomicBool>);

macro_rules! delegate {
    ($ty:ident, $warm:expr, $reused:expr) => {
        #[async_trait]
        impl LeasedBox for $ty {
            fn id(&self) -> String {
                self.0.id()
            }
            fn workdir(&self) -> String {
                self.0.workdir()
            }
            fn reused(&self) -> bool {
                let reused: fn(&$ty) -> bool = $reused;
                reused(self)
            }
            fn warm(&self) -> bool {
                $warm
            }
            fn held_by_watch(&self) -> bool {
                // The watch releases it (or keeps it) when it ends; the run does neither.
                true
            }
            async fn sync(
                &self,
                options: &SyncOptions,
                cancel: &CancellationToken,
            ) -> Result<TransferSummary, EngineError> {
                self.0.sync(options, cancel).await
            }
            async fn exec(
                &self,
                command: &Command,
                prefix: Option<&str>,
                cancel: &CancellationToken,
            ) -> Result<ExecOutcome, EngineError> {
                self.0.exec(command, prefix, cancel).await
            }
            async fn exec_teed(
                &self,
                command: &Command,
                prefix: Option<&str>,
                cancel: &CancellationToken,
            ) -> Result<ExecOutcome, EngineError> {
                self.0.exec_teed(command, prefix, cancel).await
            }
            async fn shell(
                &self,
                request: &ShellRequest,
                cancel: &CancellationToken,
            ) -> Result<ShellOutcome, EngineError> {
                self.0.shell(request, cancel).await
            }
            async fn mark_kept(&self) -> Result<(), EngineError> {
                self.0.mark_kept().await?;
                self.1.store(true, Ordering::SeqCst);
                Ok(())
            }
            async fn fetch(
                &self,
                paths: &[String],
                dest: &Path,
                cancel: &CancellationToken,
            ) -> Result<TransferSummary, EngineError> {
                self.0.fetch(paths, dest, cancel).await
            }
            async fn release(&self, _cancel: &CancellationToken) -> Result<(), EngineError> {
                Ok(())
            }
            async fn renew(&self) -> Result<(), EngineError> {
                self.0.renew().await
            }
            fn members(&self) -> Vec<Arc<dyn LeasedBox>> {
                self.0.members()
            }
            fn node(&self) -> Option<String> {
                self.0.node()
            }
            async fn sync_all(
                &self,
                options: &SyncOptions,
                cancel: &CancellationToken,
            ) -> Result<Vec<TransferSummary>, EngineError> {
                self.0.sync_all(options, cancel).await
            }
        }
    };
}

delegate!(WarmBox, true, |_: &WarmBox| false);
delegate!(FirstUse, false, |b: &FirstUse| b.0.reused());
