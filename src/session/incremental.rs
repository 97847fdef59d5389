//! The incremental sync: mirror the file set, leave the rest (DESIGN §7).
//!
//! 1. Probe the box ([`SYNC_PROBE`]) while the local file set is walked: its revision stamp,
//!    whether the workdir is empty, the paths it changed since the last sync (`find -newer`
//!    against the marker the last apply left), and its manifest when the stamp is not the one
//!    this client last wrote or the local index is missing.
//! 2. Decide ([`plan`]): against the local index when the box's stamp is ours, else against the
//!    box's manifest (one line says so; `on_mismatch = "fail"` stops instead).
//! 3. Apply ([`SYNC_APPLY`]), unless nothing differs: one exec whose stdin is a header naming
//!    the deletions and a tar of the new and changed files, the manifest last. The box removes
//!    its stamp before the tree changes and writes the new one last.
//! 4. Keep the new index in memory and in the state dir.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::fileset;
use super::index::{IndexEntry, IndexHeader, LocalIndex, resolve_manifest};
use super::plan::{self, Base, PlanInput, Put, SyncPlan};
use super::scripts::escape_value;
use super::sync::{
    ChannelWriter, ManifestHeader, OnMismatch, Spool, SyncOptions, SyncReport, append_path, gone,
    now_ns,
};
use super::sync_scripts::{SYNC_APPLY, SYNC_PROBE};
use super::{Session, SessionError};

/// Above this many top-level names the probe walks the whole workdir instead of pruning.
const MAX_PRUNE_NAMES: usize = 256;

/// Rewrite the box's manifest whole once its journal holds more lines than this (or than the
/// file set has files).
const MAX_JOURNAL: usize = 1000;

/// Escape a name for `find -name`.
fn find_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The top-level names the sync owns, as `find -name` patterns (`*`: all).
fn owned_names(index: Option<&LocalIndex>) -> Vec<String> {
    let Some(index) = index else {
        return vec!["*".to_owned()];
    };
    let names: BTreeSet<&str> = index
        .entries
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect();
    if names.len() > MAX_PRUNE_NAMES {
        return vec!["*".to_owned()];
    }
    names.into_iter().map(find_pattern).collect()
}

fn sample(paths: impl Iterator<Item = String>) -> Vec<String> {
    paths.take(SyncReport::SAMPLE).collect()
}

fn list_line(paths: &[String]) -> String {
    let shown: Vec<&str> = paths.iter().take(3).map(String::as_str).collect();
    let more = paths.len().saturating_sub(shown.len());
    let mut line = shown.join(", ");
    if more > 0 {
        line.push_str(&format!(" and {more} more"));
    }
    line
}

fn rev_name(rev: Option<&str>) -> &str {
    rev.unwrap_or("none")
}

impl Session {
    /// The local index of this lease: in memory, else from the state dir.
    fn index(&self) -> Option<Arc<LocalIndex>> {
        let lease = self.lease().id.to_string();
        if let Some(index) = self
            .inner
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(index);
        }
        let path = self.index_path()?;
        LocalIndex::load(&path, &lease).map(Arc::new)
    }

    /// Keep `index` as this lease's local index (in memory, and in the state dir when the
    /// session has a path for it; a failed write only costs a comparison next time).
    pub(crate) fn store_index(&self, index: LocalIndex) {
        if let Some(path) = self.index_path() {
            let _ = index.save(&path);
        }
        *self.inner.index.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(index));
    }

    pub(crate) async fn sync_incremental(
        &self,
        options: &SyncOptions,
        cancel: &CancellationToken,
    ) -> Result<SyncReport, SessionError> {
        let started_ns = now_ns();
        let lease = self.lease().clone();
        let lease_id = lease.id.to_string();
        let expected = self.sync_revision();
        let index = self.index();
        let index_ours = index
            .as_ref()
            .is_some_and(|i| Some(&i.header.revision) == expected.as_ref());
        let want = if index_ours { "auto" } else { "1" };
        let mut args = vec![
            lease.workdir.clone(),
            lease.state_dir(),
            want.to_owned(),
            expected.clone().unwrap_or_else(|| "-".to_owned()),
        ];
        args.extend(owned_names(index.as_deref().filter(|_| index_ours)));

        let root = options.root.clone();
        let excludes = options.excludes.clone();
        let walk = tokio::task::spawn_blocking(move || fileset::collect(&root, &excludes));
        let probed = self.control("sync-probe", SYNC_PROBE, &args, None, cancel);
        let (walked, probed) = tokio::join!(walk, probed);
        let probed = probed?;
        probed.check("sync")?;
        let set =
            walked.map_err(|e| SessionError::Invalid(format!("file set walk failed: {e}")))??;
        let probe = plan::parse_probe(&probed.stdout).map_err(|message| SessionError::Remote {
            op: "sync",
            message,
        })?;

        let mut report = SyncReport {
            notices: set.notices.clone(),
            total_files: set.entries.len(),
            ..SyncReport::default()
        };
        let probe_revision = probe.revision.clone();
        let mismatch = probe_revision != expected;
        if mismatch {
            if options.on_mismatch == OnMismatch::Fail {
                return Err(SessionError::Conflict(format!(
                    "lease `{lease_id}`: the box's sync revision is {}, not the {} this client last wrote (another client synced, the box was changed by hand, or a sync broke midway); stopping as `sync {{ on_mismatch = \"fail\" }}` asks: drop it to compare with the box's manifest and send what differs, or sync with `clean = true`",
                    rev_name(probe.revision.as_deref()),
                    rev_name(expected.as_deref()),
                )));
            }
            report.reconciled = true;
            report.notices.push(format!(
                "lease `{lease_id}`: the box's sync revision is {}, not the {} this client last wrote: compared with the box's own manifest, sending what differs",
                rev_name(probe.revision.as_deref()),
                rev_name(expected.as_deref()),
            ));
        }
        let box_manifest = match &probe.manifest {
            Some(text) => Some(
                resolve_manifest(text)
                    .map_err(|e| SessionError::Remote {
                        op: "sync",
                        message: format!("the box's manifest cannot be read ({e}); `sync {{ clean = true }}` replaces it"),
                    })?
                    .1,
            ),
            None => None,
        };
        let use_index = box_manifest.is_none();
        if use_index && (mismatch || !index_ours) {
            // The probe prints the manifest whenever the index is not ours or the stamp differs.
            return Err(SessionError::Remote {
                op: "sync",
                message: "the box did not send its manifest".to_owned(),
            });
        }
        let hint: BTreeSet<String> = options.changed.iter().flatten().cloned().collect();
        let plan_index = index.clone();
        let (planned, set, base_empty) = tokio::task::spawn_blocking(move || {
            let base = match (&box_manifest, &plan_index) {
                (Some(m), _) => Base::Manifest(m),
                (None, Some(i)) => Base::Index(&i.entries),
                (None, None) => unreachable!("checked above"),
            };
            let drift = plan::drifted(base, &probe);
            let fresh = probe.workdir_empty && base.is_empty();
            let planned = plan::plan(&PlanInput {
                set: &set,
                index: plan_index.as_deref(),
                base,
                drift: &drift,
                hint: &hint,
                fresh,
            });
            let base_empty = base.is_empty();
            (planned, set, base_empty)
        })
        .await
        .map_err(|e| SessionError::Invalid(format!("sync planning failed: {e}")))?;
        let planned = planned?;
        report.incremental = !base_empty;
        report.files = planned.put.len();
        report.bytes = planned
            .put
            .iter()
            .filter(|p| matches!(p.kind, fileset::EntryKind::File))
            .map(|p| p.stat.size)
            .sum();
        report.deleted = planned.delete.len();
        report.sent_paths = sample(planned.put.iter().map(|p| p.path.clone()));
        report.deleted_paths = sample(planned.delete.iter().cloned());
        report.drift.clone_from(&planned.drift);
        if !planned.drift.is_empty() && !options.dry_run {
            report.notices.push(format!(
                "lease `{lease_id}`: restoring {} file{} the box changed since the last sync: {}",
                planned.drift.len(),
                if planned.drift.len() == 1 { "" } else { "s" },
                list_line(&planned.drift)
            ));
        }
        if options.dry_run {
            report.revision = probe_revision.clone().unwrap_or_default();
            return Ok(report);
        }
        self.sync_started(planned.put.len(), report.bytes);
        let previous_journal = index.as_ref().map_or(0, |i| i.header.journal);
        let full =
            !use_index || base_empty || previous_journal > MAX_JOURNAL.max(set.entries.len());
        if planned.is_empty() && !mismatch {
            // Nothing to change in the box; keep refreshed stats so they need no hashing.
            if planned.index_dirty
                && let Some(old) = &index
            {
                self.store_index(LocalIndex {
                    header: IndexHeader {
                        synced_at_ns: started_ns,
                        ..old.header.clone()
                    },
                    entries: planned
                        .keep
                        .into_iter()
                        .map(|e| (e.entry.path.clone(), e))
                        .collect(),
                });
            }
            report.revision = expected.unwrap_or_default();
            return Ok(report);
        }
        let revision = hex::encode(rand::random::<[u8; 8]>());
        let seen = probe_revision.clone().unwrap_or_else(|| "-".to_owned());
        let header = apply_header(&revision, &planned);
        let mut stream = self
            .open_script(
                "sync",
                SYNC_APPLY,
                [lease.workdir.clone(), lease.state_dir(), seen],
                true,
            )
            .await?;
        let stdin = stream
            .take_stdin()
            .ok_or_else(|| SessionError::Invalid("backend gave no stdin for sync".into()))?;
        let SyncPlan {
            put, keep, delete, ..
        } = planned;
        let root = set.root.clone();
        drop(set);
        let producer_revision = revision.clone();
        let events = self.events();
        let producer = tokio::task::spawn_blocking(move || {
            let mut writer = super::observe::Counted::new(ChannelWriter::new(stdin), events);
            writer.write_all(header.as_bytes()).map_err(gone)?;
            write_changes(
                &root,
                &put,
                &keep,
                &delete,
                &producer_revision,
                full,
                writer,
            )
            .map(|(bytes, sent)| (bytes, sent, keep, delete.len() + put.len()))
        });
        let (code, stderr) = super::drive(&mut stream, "sync", cancel, super::StdoutTo::Discard)
            .await
            .inspect_err(|_| producer.abort())?;
        let produced = producer
            .await
            .map_err(|e| SessionError::Invalid(format!("sync stream writer failed: {e}")))?;
        let out = super::ControlOutput {
            code,
            stdout: Vec::new(),
            stderr,
        };
        let (bytes, sent, keep, journal_lines) = produced?;
        out.check("sync")?;
        let mut entries: std::collections::BTreeMap<String, IndexEntry> = keep
            .into_iter()
            .map(|e| (e.entry.path.clone(), e))
            .collect();
        report.files = sent.len();
        for e in sent {
            entries.insert(e.entry.path.clone(), e);
        }
        self.store_index(LocalIndex {
            header: IndexHeader {
                version: 1,
                lease: lease_id,
                revision: revision.clone(),
                synced_at_ns: started_ns,
                journal: if full {
                    0
                } else {
                    previous_journal + journal_lines + 1
                },
            },
            entries,
        });
        self.synced(&revision);
        report.bytes = bytes;
        report.revision = revision;
        Ok(report)
    }
}

/// The apply's header: deletions, empty directories to drop, what must not be in the way.
fn apply_header(revision: &str, plan: &SyncPlan) -> String {
    let mut out = format!("leasebox-sync 1\nrev={revision}\n");
    let mut line = |key: &str, value: &str| {
        out.push_str(key);
        out.push('=');
        out.push_str(&escape_value(value));
        out.push('\n');
    };
    for p in &plan.delete {
        line("d", p);
    }
    for p in &plan.rmdirs {
        line("r", p);
    }
    for p in &plan.guard_dirs {
        line("a", p);
    }
    for p in &plan.guard {
        line("p", p);
    }
    out.push('\n');
    out
}

/// The tar of an apply: the files to write, then `.leasebox-sync-REV/manifest.jsonl` (whole,
/// or the lines to append). Returns the bytes of file content and what was sent.
fn write_changes<W: Write>(
    root: &std::path::Path,
    put: &[Put],
    keep: &[IndexEntry],
    delete: &[String],
    revision: &str,
    full: bool,
    writer: W,
) -> Result<(u64, Vec<IndexEntry>), SessionError> {
    let mut builder = tar::Builder::new(writer);
    builder.mode(tar::HeaderMode::Complete);
    let mut sent = Vec::with_capacity(put.len());
    let mut bytes = 0;
    for p in put {
        if let Some((mut entry, n)) = append_path(&mut builder, root, &p.path, &p.kind, &p.path)? {
            // The stat from before the read: a write during it shows as a change next time.
            entry.stat = p.stat;
            bytes += n;
            sent.push(entry);
        }
    }
    let mut manifest = Spool::new()?;
    manifest.line(&ManifestHeader {
        version: 1,
        revision: revision.to_owned(),
        full,
    })?;
    if full {
        // Both lists are sorted: merge them into one sorted manifest.
        let (mut a, mut b) = (0, 0);
        while a < keep.len() || b < sent.len() {
            let take_keep =
                b == sent.len() || (a < keep.len() && keep[a].entry.path <= sent[b].entry.path);
            if take_keep {
                manifest.line(&keep[a].entry)?;
                a += 1;
            } else {
                manifest.line(&sent[b].entry)?;
                b += 1;
            }
        }
    } else {
        for e in &sent {
            manifest.line(&e.entry)?;
        }
        for path in delete {
            manifest.line(&Gone { path, gone: true })?;
        }
    }
    manifest.append_to(
        &mut builder,
        &format!(".leasebox-sync-{revision}/manifest.jsonl"),
    )?;
    let mut writer = builder.into_inner().map_err(gone)?;
    writer.flush().map_err(gone)?;
    Ok((bytes, sent))
}

/// A deletion line of the box's manifest journal.
#[derive(serde::Serialize)]
struct Gone<'a> {
    path: &'a str,
    gone: bool,
}
