//! `leasebox config` and `leasebox backends`: read-only views of the resolved config, of the
//! key table (`config --keys`), and of what each backend supports.

use super::Context;
use super::args::{ConfigArgs, JsonArgs};
use crate::error::Failure;

pub(crate) fn config(args: &ConfigArgs, cx: &Context) -> Result<(), Failure> {
    if args.keys {
        print!("{}", keys_listing(args.json));
        return Ok(());
    }
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
                Some(crate::config::TrustStatus::FileChanged { .. }) => {
                    "a file it makes leasebox read changed since it was trusted: the trust has lapsed (`leasebox trust` renews it)"
                }
                Some(crate::config::TrustStatus::Unpinned(_)) => {
                    "trusted by an earlier leasebox that pinned no files: run `leasebox trust` again"
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
    if !args.json {
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
    let mut fields = serde_json::Map::new();
    fields.insert(
        "checks".into(),
        serde_json::to_value(&checks).unwrap_or_default(),
    );
    if failed.is_empty() {
        if args.json {
            // The same object as on failure, without the error.
            fields.insert("error_kind".into(), serde_json::Value::Null);
            fields.insert("exit_code".into(), 0.into());
            println!(
                "{}",
                serde_json::to_string_pretty(&fields).unwrap_or_default()
            );
        }
        return Ok(());
    }
    let kind = if failed.contains(&"reachable") {
        crate::error::ErrorKind::TransportLost
    } else if failed.contains(&"exec") || failed.contains(&"auth") {
        crate::error::ErrorKind::PermissionDenied
    } else {
        crate::error::ErrorKind::ConfigError
    };
    Err(Failure::new(
        kind,
        format!("doctor: failed checks: {}", failed.join(", ")),
    )
    .with_json(fields))
}

/// `leasebox config --keys`: every key of the table with its default, environment variable,
/// flag and trust class; as JSON, an array of objects with those and the type and help.
fn keys_listing(json: bool) -> String {
    use crate::config::{KEYS, builtin_defaults};
    let defaults = builtin_defaults();
    let default_of = |name: &str| {
        defaults
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    };
    if json {
        let rows: Vec<serde_json::Value> = KEYS
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key": k.name,
                    "type": k.ty.name(),
                    "default": default_of(k.name).map(crate::config::Value::to_json),
                    "default_note": k.default_note,
                    "env": k.env,
                    "flag": k.flag_arg(),
                    "nomad_env": k.nomad_env,
                    "class": k.class.as_str(),
                    "help": k.help,
                })
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    }
    let rows: Vec<[String; 5]> = KEYS
        .iter()
        .map(|k| {
            let default = match (k.default_note, default_of(k.name)) {
                (Some(note), _) => note.replace('`', "").replace(" (see below)", ""),
                (None, Some(v)) => v.shown(),
                (None, None) => "unset".to_owned(),
            };
            let env = match k.nomad_env {
                Some(fallback) => format!("{}, {fallback}", k.env),
                None => k.env.to_owned(),
            };
            [
                k.name.to_owned(),
                k.class.as_str().to_owned(),
                k.flag_arg(),
                env,
                default,
            ]
        })
        .collect();
    // The free-text default goes last, so the fixed columns stay narrow and aligned.
    let header = ["KEY", "CLASS", "FLAG", "ENVIRONMENT", "DEFAULT"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(
        "\nENVIRONMENT: the LEASEBOX_* twin, then the NOMAD_* variable read below the user config.\n\
         CLASS: user-only (never from a repository or recipe), boundary (from a trusted \
         .leasebox.toml only), own (the repository's choice). docs/config.md says more.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_key_is_listed_once_with_its_twin_and_flag() {
        let text = super::keys_listing(false);
        for key in crate::config::KEYS {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(key.name))
                .unwrap_or_else(|| panic!("{} missing:\n{text}", key.name));
            assert!(line.contains(key.env), "{line}");
            assert!(line.contains(&key.flag_arg()), "{line}");
            assert_eq!(
                line.split_whitespace().nth(1),
                Some(key.class.as_str()),
                "{line}"
            );
        }
        let json: serde_json::Value = serde_json::from_str(&super::keys_listing(true)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), crate::config::KEYS.len());
        let ttl = rows.iter().find(|r| r["key"] == "lease.ttl").unwrap();
        assert_eq!(ttl["default"], "90m");
        assert_eq!(ttl["env"], "LEASEBOX_LEASE_TTL");
        assert_eq!(ttl["flag"], "--lease-ttl");
        assert_eq!(ttl["class"], "boundary");
        let addr = rows.iter().find(|r| r["key"] == "nomad.address").unwrap();
        assert_eq!(addr["default"], serde_json::Value::Null);
        assert_eq!(addr["nomad_env"], "NOMAD_ADDR");
    }
}
