//! `leasebox config` and `leasebox backends`: read-only views of the resolved config and of
//! what each backend supports.

use super::Context;
use super::args::{ConfigArgs, JsonArgs};
use crate::error::Failure;

pub(crate) fn config(args: &ConfigArgs, cx: &Context) -> Result<(), Failure> {
    let config = cx.config(&[])?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&config.to_json()).unwrap_or_default()
        );
    } else if args.explain {
        print!("{}", config.explain_text());
        if let Some(repo) = config.repository() {
            let trust = match &repo.trust {
                None => "sets no execution boundary, so it needs no trust",
                Some(t) if t.is_trusted() => "trusted: its execution boundaries apply",
                Some(crate::config::TrustStatus::Changed(_)) => {
                    "changed since it was trusted: the trust has lapsed (`leasebox trust` renews it)"
                }
                Some(_) => "not trusted (`leasebox trust` lets it set execution boundaries)",
            };
            println!("\nrepository config {}: {trust}", repo.file.path.display());
        }
    } else {
        print!("{}", config.to_toml());
    }
    Ok(())
}

pub(crate) fn backends(args: &JsonArgs) {
    let all = crate::leases::all_features();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return;
    }
    for f in all {
        let mut can = Vec::new();
        if f.isolation {
            can.push("isolation");
        }
        if f.image {
            can.push("images");
        }
        if f.resources {
            can.push("resources");
        }
        let state = if f.available {
            ""
        } else {
            " (not available yet)"
        };
        println!("{:<6} {}{state}", f.name, f.description);
        if !can.is_empty() {
            println!("       supports: {}", can.join(", "));
        }
    }
}

pub(crate) async fn doctor(args: &JsonArgs, cx: &Context) -> Result<(), Failure> {
    use crate::leases::CheckStatus;
    let config = cx.config(&[])?;
    let state = cx.state_dir()?;
    let checks = crate::leases::doctor(&config, &cx.env, &state).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        );
    } else {
        for c in &checks {
            let mark = match c.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
            };
            println!("{mark}  {:<10} {}", c.check, c.detail);
            if let Some(fix) = &c.fix
                && c.status != CheckStatus::Ok
            {
                println!("      {:<10} fix: {fix}", "");
            }
        }
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.check.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let kind = if failed.contains(&"reachable") {
        crate::error::ErrorKind::TransportLost
    } else {
        crate::error::ErrorKind::ConfigError
    };
    Err(Failure::new(
        kind,
        format!("doctor: failed checks: {}", failed.join(", ")),
    ))
}
