//! `leasebox warmup`, `list`, `status` and `stop`: the leases this user owns, from their claims
//! and their backend's live view. On a terminal, times read as relative (`5m ago`, `in 1h25m`,
//! `expired 3m ago`) and the box's live state is coloured; `--json` keeps its shapes.

use std::collections::BTreeMap;
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
    let leases = cx.leases(&config, cx.repo_root(), Arc::new(Timing::default()))?;
    Ok((leases, config))
}

/// The lifecycle for one existing lease: its claim is read first, and the backend is the one
/// the claim names (a local lease stops locally even with `NOMAD_ADDR` set).
fn leases_for(cx: &Context, id: &crate::lease::LeaseId) -> Result<Leases, Failure> {
    let config = cx.config(&[])?;
    let backend_name = cx
        .state_dir()?
        .claim_store()
        .load(id.as_str())
        .map(|c| c.backend)
        .unwrap_or_else(|_| config.settings().backend.as_str().to_owned());
    leases_on(cx, &config, &backend_name, id.as_str())
}

/// The lifecycle on the backend named `backend_name` (that lease `id`'s claim names).
fn leases_on(
    cx: &Context,
    config: &crate::config::Config,
    backend_name: &str,
    id: &str,
) -> Result<Leases, Failure> {
    let backend = crate::leases::open_for_claim(config, &cx.env, backend_name, id)?;
    Leases::new(
        backend,
        &cx.state_dir()?,
        config.settings(),
        cx.repo_root(),
        Arc::new(Timing::default()),
    )
}

pub(crate) async fn warmup(args: &WarmupArgs, cx: &Context) -> Result<(), Failure> {
    let (leases, config) = leases(cx)?;
    let request = LeaseRequest::from_settings(config.settings(), true);
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

/// A span as people read it in a table: `45s`, `5m`, `1h25m`, `2d3h`.
fn span(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h{m:02}m", s / 3600),
        },
        s => match (s % 86_400) / 3600 {
            0 => format!("{}d", s / 86_400),
            h => format!("{}d{h}h", s / 86_400),
        },
    }
}

/// `t` relative to `now`: `5m ago`, `in 1h25m`, `now`.
fn relative(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) if d.as_secs() == 0 => "now".to_owned(),
        Ok(d) => format!("{} ago", span(d.as_secs())),
        Err(e) => format!("in {}", span(e.duration().as_secs().max(1))),
    }
}

fn ago(t: SystemTime) -> String {
    relative(t, SystemTime::now())
}

/// When a claim expires, relative: `in 1h25m`, `expired 3m ago`, `never`.
fn expiry(claim: &Claim, now: SystemTime) -> String {
    match claim.expires_at() {
        None => "never".to_owned(),
        Some(at) if at <= now => format!("expired {}", relative(at, now)),
        Some(at) => relative(at, now),
    }
}

/// The ANSI style of a box's live state.
fn remote_style(remote: &str) -> &'static str {
    match remote {
        "ready" => "32",
        "pending" => "33",
        "gone" => "31",
        s if s.starts_with("unhealthy") => "31",
        _ => "2",
    }
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
        "renewed": claim.renewed.map(rfc3339),
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
    // A lease made by another backend than the config's (a local one with `NOMAD_ADDR` set)
    // is asked of its own backend, opened once.
    let mut others: BTreeMap<String, Option<Leases>> = BTreeMap::new();
    for claim in all.claims.iter().filter(|c| &c.owner == owner) {
        let (state, held) = leases.shown_state(claim);
        let on = if claim.backend == leases.backend_name() {
            Some(&leases)
        } else {
            others
                .entry(claim.backend.clone())
                .or_insert_with(|| leases_on(cx, &config, &claim.backend, claim.id.as_str()).ok())
                .as_ref()
        };
        let remote = match on {
            Some(on) => remote_of(on, claim).await,
            None => "unknown".to_owned(),
        };
        rows.push((claim, state, held, remote));
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
    let now = SystemTime::now();
    // Colour goes to stdout only when stdout is a terminal too (a piped table stays plain).
    let output = crate::events::Output {
        color: cx.output.color && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ..cx.output
    };
    println!(
        "{:<17} {:<7} {:<11} {:<9} {:<4} {:<9} {:<9} {:<16} REPOSITORY",
        "ID", "BACKEND", "STATE", "BOX", "KEEP", "CREATED", "USED", "EXPIRES"
    );
    for (c, state, _, remote) in rows {
        let shown_remote = output.paint(remote_style(&remote), &format!("{remote:<9}"));
        println!(
            "{:<17} {:<7} {:<11} {shown_remote} {:<4} {:<9} {:<9} {:<16} {}",
            c.id,
            c.backend,
            state,
            if c.keep { "yes" } else { "no" },
            relative(c.created, now),
            relative(c.last_used, now),
            expiry(c, now),
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
    let output = crate::events::Output {
        color: cx.output.color && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ..cx.output
    };
    let now = SystemTime::now();
    println!("id:         {}", claim.id);
    println!("backend:    {}", claim.backend);
    println!(
        "state:      {state} (box: {})",
        output.paint(remote_style(&remote), &remote)
    );
    if let Some(alloc) = claim.handle.get("alloc_id") {
        println!(
            "box:        job {}, allocation {alloc}",
            claim.handle.get("job_id").map_or("?", String::as_str)
        );
    }
    println!(
        "in use:     {}",
        if held {
            format!("yes, by pid {} on {}", claim.holder.pid, claim.holder.host)
        } else {
            "no".to_owned()
        }
    );
    println!("kept:       {}", if claim.keep { "yes" } else { "no" });
    let boxes = Leases::lease_of(&claim).map_or(1, |l| l.count());
    if boxes > 1 {
        println!("boxes:      {boxes} (a shard group; the workdir below is box 1's)");
    }
    println!("workdir:    {}", claim.workdir);
    println!("repository: {}", claim.repo_root.display());
    println!(
        "created:    {} ({})",
        rfc3339(claim.created),
        ago(claim.created)
    );
    println!(
        "last used:  {} ({})",
        rfc3339(claim.last_used),
        ago(claim.last_used)
    );
    if let Some(at) = claim.expires_at() {
        println!("expires:    {} ({})", rfc3339(at), expiry(&claim, now));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_read_relative() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs: i64| {
            if secs >= 0 {
                now + Duration::from_secs(secs.unsigned_abs())
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        };
        assert_eq!(relative(at(0), now), "now");
        assert_eq!(relative(at(-45), now), "45s ago");
        assert_eq!(relative(at(-300), now), "5m ago");
        assert_eq!(relative(at(5100), now), "in 1h25m");
        assert_eq!(relative(at(7200), now), "in 2h");
        assert_eq!(relative(at(-(2 * 86_400 + 3 * 3600)), now), "2d3h ago");
        assert_eq!(span(86_400), "1d");
    }
}
