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
    } else {
        print!("{}", config.to_toml());
    }
    Ok(())
}

pub(crate) fn backends(args: &JsonArgs) {
    let all = crate::backends::all_features();
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
