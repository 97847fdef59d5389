//! `leasebox trust [PATH]`, `--list`, `--revoke`: the user's side of the trust gate. Trusting
//! pins the sha256 of the repository's `.leasebox.toml` in the trust store (in the state dir)
//! and shows the execution boundaries the file sets, so the user sees what they approve.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::args::TrustArgs;
use super::{Context, repo_root_of};
use crate::config::{Config, ConfigError, FileEntry, RepositoryFile, TrustEntry, TrustStore};
use crate::error::Failure;

pub(crate) fn trust(args: &TrustArgs, cx: &Context) -> Result<(), Failure> {
    let state = cx.state_dir()?;
    let store = TrustStore::new(state.path());
    if args.list {
        return list(&store, args.json);
    }
    let root = match &args.path {
        Some(path) => repo_root_of(&cx.cwd.join(path)),
        None => cx.repo_root(),
    };
    if args.revoke {
        return revoke(&store, &root, args.json);
    }
    let user_config = Config::locate_user_config(&cx.env);
    let file = RepositoryFile::read(&root, user_config.as_deref())
        .map_err(|e| failure(&e))?
        .ok_or_else(|| {
            failure(&ConfigError::NothingToTrust {
                repo_root: root.clone(),
            })
        })?;
    let entry = store.trust(&file).map_err(|e| failure(&e))?;
    if args.json {
        let show = |e: &FileEntry| {
            serde_json::json!({
                "key": e.key.name,
                "value": e.value.to_json(),
                "line": e.line,
                "class": e.key.class,
            })
        };
        let json = serde_json::json!({
            "root": entry.root,
            "file": file.path,
            "sha256": entry.sha256,
            "trusted_at": entry.trusted_at,
            "keys": file.entries.iter().map(show).collect::<Vec<_>>(),
            "files": entry.files.clone().unwrap_or_default(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "trusted {} (`.leasebox.toml` sha256 {})",
        entry.root.display(),
        entry.sha256
    );
    let boundaries: Vec<&FileEntry> = file.boundaries().collect();
    if boundaries.is_empty() {
        println!("it sets no execution boundaries; its own keys need no trust");
    } else {
        println!("execution boundaries it sets, now allowed:");
        print_entries(&file.path, &boundaries);
    }
    let own: Vec<&FileEntry> = file
        .entries
        .iter()
        .filter(|e| !boundaries.contains(e))
        .collect();
    if !own.is_empty() {
        println!("its own keys (allowed without trust, within your limits):");
        print_entries(&file.path, &own);
    }
    if !file.files.is_empty() {
        println!("files it makes leasebox read, pinned with it:");
        for f in &file.files {
            println!(
                "  {}  ({} at {}:{}, sha256 {})",
                f.path.display(),
                f.key.name,
                file.path.display(),
                f.line,
                f.sha256.get(..12).unwrap_or(&f.sha256)
            );
        }
        println!(
            "any change to {} or to these files lapses this trust; `leasebox trust --revoke` withdraws it",
            file.path.display()
        );
    } else {
        println!(
            "any change to {} lapses this trust; `leasebox trust --revoke` withdraws it",
            file.path.display()
        );
    }
    Ok(())
}

fn print_entries(path: &Path, entries: &[&FileEntry]) {
    let width = entries
        .iter()
        .map(|e| e.key.name.len() + 3 + e.value.shown().len())
        .max()
        .unwrap_or(0);
    for e in entries {
        let set = format!("{} = {}", e.key.name, e.value.shown());
        println!("  {set:width$}  ({}:{})", path.display(), e.line);
    }
}

fn list(store: &TrustStore, json: bool) -> Result<(), Failure> {
    let entries = store.list().map_err(|e| failure(&e))?;
    if json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "root": e.root,
                    "sha256": e.sha256,
                    "trusted_at": e.trusted_at,
                    "state": e.state_now(),
                    "files": e.files,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(());
    }
    if entries.is_empty() {
        println!("no repository is trusted");
        return Ok(());
    }
    let width = entries
        .iter()
        .map(|e| e.root.display().to_string().len())
        .chain([4])
        .max()
        .unwrap_or(0);
    println!(
        "{:width$}  {:12}  {:20}  SHA256",
        "ROOT", "STATE", "TRUSTED"
    );
    for e in &entries {
        println!(
            "{:width$}  {:12}  {:20}  {}",
            e.root.display().to_string(),
            e.state_now(),
            when(e),
            e.sha256.get(..12).unwrap_or(&e.sha256)
        );
        for f in e.files.iter().flatten() {
            println!(
                "  pins {}  ({}, sha256 {})",
                f.path.display(),
                f.key,
                f.sha256.get(..12).unwrap_or(&f.sha256)
            );
        }
    }
    Ok(())
}

fn revoke(store: &TrustStore, root: &Path, json: bool) -> Result<(), Failure> {
    let removed = store.revoke(root).map_err(|e| failure(&e))?;
    if json {
        let json = serde_json::json!({
            "root": removed.as_ref().map_or_else(|| root.to_owned(), |e| e.root.clone()),
            "revoked": removed.is_some(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(());
    }
    match removed {
        Some(e) => println!(
            "revoked the trust of {}: its `.leasebox.toml` may no longer set execution boundaries",
            e.root.display()
        ),
        None => println!("{} was not trusted; nothing to revoke", root.display()),
    }
    Ok(())
}

fn when(entry: &TrustEntry) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(entry.trusted_at);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn failure(err: &ConfigError) -> Failure {
    Failure::from_error(err)
}
