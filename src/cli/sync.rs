//! `leasebox sync`: sync the repository to a kept lease (only what changed; see
//! `session::incremental`), or with `--dry-run` only say what would be sent and deleted. On a
//! terminal the sync shows its progress bar, as in a run.

use std::sync::Arc;

use serde_json::json;

use super::Context;
use super::args::SyncArgs;
use crate::error::{ErrorKind, Failure};
use crate::lease::LeaseId;
use crate::leases::{Leases, SyncOptions, SyncReport, Timing};
use crate::ownership::ClaimState;

/// The kept lease of this repository `leasebox sync` means without `--lease`.
fn the_kept_lease(leases: &Leases, repo_root: &std::path::Path) -> Result<LeaseId, Failure> {
    let list = leases.list()?;
    let mine: Vec<_> = list
        .claims
        .iter()
        .filter(|c| {
            c.state == ClaimState::Active
                && c.keep
                && c.backend == leases.backend_name()
                && c.repo_root == repo_root
        })
        .collect();
    match mine.as_slice() {
        [one] => super::lease_id(&one.id),
        [] => Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "no kept lease of {} to sync: `leasebox warmup` makes one, `leasebox list` shows yours",
                repo_root.display()
            ),
        )),
        several => Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "{} kept leases of this repository ({}): say which with `--lease ID`",
                several.len(),
                several
                    .iter()
                    .map(|c| format!("`{}`", c.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn paths_lines(sign: char, paths: &[String], total: usize) {
    for p in paths {
        println!("  {sign} {p}");
    }
    if total > paths.len() {
        println!("  … and {} more", total - paths.len());
    }
}

fn print_report(name: &str, report: &SyncReport, dry_run: bool) {
    let kind = if report.incremental {
        "incremental"
    } else {
        "full"
    };
    if dry_run {
        println!(
            "lease {name}: would send {} of {} files ({} bytes) and delete {} ({kind})",
            report.files, report.total_files, report.bytes, report.deleted
        );
    } else {
        println!(
            "lease {name}: sent {} of {} files ({} bytes), deleted {} in {} ms ({kind})",
            report.files, report.total_files, report.bytes, report.deleted, report.ms
        );
    }
    paths_lines('+', &report.sent_paths, report.files);
    paths_lines('-', &report.deleted_paths, report.deleted);
}

pub(crate) async fn sync(args: &SyncArgs, cx: &Context) -> Result<(), Failure> {
    let config = cx.config(&[])?;
    let settings = config.settings();
    let repo_root = cx.repo_root();
    let leases = cx
        .leases(&config, repo_root.clone(), Arc::new(Timing::default()))?
        // On a terminal, the sync's bar (and, with `-v`, its lines); no stream, no summary: the
        // report below says what moved.
        .with_events(cx.events(None)?);
    let id = match &args.lease {
        Some(id) => super::lease_id(id)?,
        None => the_kept_lease(&leases, &repo_root)?,
    };
    let held = leases
        .attach(&id, settings.nomad.workdir.as_deref())
        .await?;
    let options = SyncOptions {
        root: repo_root,
        excludes: settings.sync_exclude.clone(),
        clean: args.clean,
        dry_run: args.dry_run,
        ..SyncOptions::default()
    };
    // Every box of a group, each by its own (incremental) sync.
    let reports = held
        .sync_all(&options, &cx.cancel)
        .await
        .map_err(|e| Failure::from_error(&e))?;
    let count = reports.len();
    for (report, index) in reports.iter().zip(1..) {
        let box_name = (count > 1).then(|| format!("box {index} of {count}: "));
        for notice in &report.notices {
            eprintln!("leasebox: {}{notice}", box_name.as_deref().unwrap_or(""));
        }
    }
    if args.json {
        let encode = |report: &SyncReport| {
            serde_json::to_value(report).map_err(|e| {
                Failure::new(
                    ErrorKind::Internal,
                    format!("cannot encode the report: {e}"),
                )
            })
        };
        // One box: its report; a group: the lease and one report a box.
        let mut value = if count == 1 {
            encode(&reports[0])?
        } else {
            json!({ "boxes": reports.iter().map(encode).collect::<Result<Vec<_>, _>>()? })
        };
        if let Some(map) = value.as_object_mut() {
            map.insert("lease".into(), json!(id.to_string()));
            map.insert("dry_run".into(), json!(args.dry_run));
        }
        println!("{value}");
    } else {
        for (report, index) in reports.iter().zip(1..) {
            let name = if count > 1 {
                format!("`{id}` box {index} of {count}")
            } else {
                format!("`{id}`")
            };
            print_report(&name, report, args.dry_run);
        }
    }
    Ok(())
}
