//! `leasebox warmup`, `list`, `status` and `stop`: the leases this user owns, from their claims
//! and their backend's live view.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::Context;
use super::args::{CleanupArgs, IdArgs, JsonArgs, WarmupArgs};
use crate::error::Failure;
use crate::leases::{CleanupOptions, LeaseRequest, Leases, Timing};
use crate::ownership::Claim;

fn leases(cx: &Context) -> Result<(Leases, crate::config::Config), Failure> {
    let config = cx.config(&[])?;
    let backend = crate::leases::open(&config, &cx.env)?;
    let leases = Leases::new(
        backend,
        &cx.state_dir()?,
        config.settings(),
        cx.repo_root(),
        Arc::new(Timing::default()),
    )?;
    Ok((leases, config))
}

/// The lifecycle for one existing lease: its claim is read first, and the backend is the one
/// the claim names (a local lease stops locally even with `NOMAD_ADDR` set).
fn leases_for(cx: &Context, id: &crate::lease::LeaseId) -> Result<Leases, Failure> {
    let config = cx.config(&[])?;
    let state = cx.state_dir()?;
    let backend_name = state
        .claim_store()
        .load(id.as_str())
        .map(|c| c.backend)
        .unwrap_or_else(|_| config.settings().backend.as_str().to_owned());
    let backend = crate::leases::open_for_claim(&config, &cx.env, &backend_name, id.as_str())?;
    Leases::new(
        backend,
        &state,
        config.settings(),
        cx.repo_root(),
        Arc::new(Timing::default()),
    )
}

pub(crate) async fn warmup(args: &WarmupArgs, cx: &Context) -> Result<(), Failure> {
    let (leases, config) = leases(cx)?;
    let n = &config.settings().nomad;
    let request = LeaseRequest {
        image: Some(n.image.clone()),
        cpu: Some(n.cpu),
        memory_mb: Some(n.memory_mb),
        disk_mb: Some(n.disk_mb),
        workdir: n.workdir.clone(),
        keep: true,
    };
    // `acquire` honours the token itself and leaves nothing behind when cancelled.
    let held = leases.acquire(&request, &cx.cancel).await?;
    let lease = held.lease();
    if args.json {
        println!(
            "{}",
            json!({"id": lease.id, "backend": lease.backend, "workdir": lease.workdir})
        );
    } else {
        println!("{}", lease.id);
        eprintln!(
            "leasebox: lease `{}` is ready and kept: `leasebox run --lease {} -- CMD` uses it, `leasebox stop {}` releases it",
            lease.id, lease.id, lease.id
        );
    }
    Ok(())
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn claim_json(claim: &Claim, state: &str, remote: Option<&str>) -> serde_json::Value {
    json!({
        "id": claim.id,
        "backend": claim.backend,
        "state": state,
        "remote": remote,
        "keep": claim.keep,
        "workdir": claim.workdir,
        "repo_root": claim.repo_root,
        "owner": claim.owner,
        "holder": {"pid": claim.holder.pid, "host": claim.holder.host},
        "created": rfc3339(claim.created),
        "last_used": rfc3339(claim.last_used),
        "expires_at": claim.expires_at().map(rfc3339),
        "ttl_secs": claim.ttl_secs,
        "idle_secs": claim.idle_secs,
        "handle": claim.handle,
    })
}

async fn remote_of(leases: &Leases, claim: &Claim) -> String {
    match leases.remote_state(claim).await {
        Ok(s) => format!("{s:?}").to_lowercase(),
        Err(_) => "unknown".to_owned(),
    }
}

pub(crate) async fn list(args: &JsonArgs, cx: &Context) -> Result<(), Failure> {
    let (leases, config) = leases(cx)?;
    let owner = &config.settings().owner;
    let all = leases.list()?;
    for bad in &all.corrupt {
        eprintln!(
            "leasebox: skipping corrupt claim file `{}`: {}",
            bad.path.display(),
            bad.reason
        );
    }
    let mut rows = Vec::new();
    for claim in all.claims.iter().filter(|c| &c.owner == owner) {
        let (state, held) = leases.shown_state(claim);
        rows.push((claim, state, held, remote_of(&leases, claim).await));
    }
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|(c, state, held, r)| {
                let mut value = claim_json(c, state, Some(r.as_str()));
                value["in_use"] = json!(held);
                value
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("leasebox: no leases");
        return Ok(());
    }
    println!(
        "{:<17} {:<7} {:<12} {:<8} {:<5} {:<12} REPOSITORY",
        "ID", "BACKEND", "STATE", "BOX", "KEEP", "AGE"
    );
    for (c, state, _, remote) in rows {
        println!(
            "{:<17} {:<7} {:<12} {:<8} {:<5} {:<12} {}",
            c.id,
            c.backend,
            state,
            remote,
            if c.keep { "yes" } else { "no" },
            ago(c.created),
            c.repo_root.display()
        );
    }
    Ok(())
}

pub(crate) async fn status(args: &IdArgs, cx: &Context) -> Result<(), Failure> {
    let id = super::lease_id(&args.id)?;
    let leases = leases_for(cx, &id)?;
    let claim = leases.load_claim(&id)?;
    // The claim and the box's own record must agree before anything is said about the box.
    leases.check_claim(&claim)?;
    let present = leases.verify(&claim, &Leases::lease_of(&claim)?).await?;
    let remote = if present {
        remote_of(&leases, &claim).await
    } else {
        "gone".to_owned()
    };
    let (state, held) = leases.shown_state(&claim);
    if args.json {
        let mut value = claim_json(&claim, state, Some(&remote));
        value["in_use"] = json!(held);
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(());
    }
    println!("id:         {}", claim.id);
    println!("backend:    {}", claim.backend);
    println!("state:      {state} (box: {remote})");
    println!(
        "in use:     {}",
        if held {
            format!("yes, by pid {} on {}", claim.holder.pid, claim.holder.host)
        } else {
            "no".to_owned()
        }
    );
    println!("kept:       {}", if claim.keep { "yes" } else { "no" });
    println!("workdir:    {}", claim.workdir);
    println!("repository: {}", claim.repo_root.display());
    println!(
        "created:    {} ({} ago)",
        rfc3339(claim.created),
        ago(claim.created)
    );
    println!(
        "last used:  {} ({} ago)",
        rfc3339(claim.last_used),
        ago(claim.last_used)
    );
    if let Some(at) = claim.expires_at() {
        println!("expires:    {}", rfc3339(at));
    }
    Ok(())
}

pub(crate) async fn stop(args: &IdArgs, cx: &Context) -> Result<(), Failure> {
    let id = super::lease_id(&args.id)?;
    let leases = leases_for(cx, &id)?;
    leases.stop(&id, &cx.cancel).await?;
    if args.json {
        println!("{}", json!({"id": id, "released": true}));
    } else {
        eprintln!("leasebox: released `{id}`");
    }
    Ok(())
}

pub(crate) async fn cleanup(args: &CleanupArgs, cx: &Context) -> Result<(), Failure> {
    let (leases, _) = leases(cx)?;
    let options = CleanupOptions {
        dry_run: args.dry_run,
        orphans: args.orphans,
        repo: None,
    };
    let items = leases.cleanup(&options).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"dry_run": args.dry_run, "leases": items}))
                .unwrap_or_default()
        );
        return Ok(());
    }
    if items.is_empty() {
        eprintln!("leasebox: nothing to clean up");
    }
    let prefix = if args.dry_run { "would be " } else { "" };
    for item in &items {
        println!("{:<17} {prefix}{:<9} {}", item.id, item.action, item.reason);
    }
    Ok(())
}
