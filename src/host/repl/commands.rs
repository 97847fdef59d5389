//! The REPL's own commands, the entries that start with `:`.

use super::state::{Flow, Repl};

/// The commands and what each does (`:help` prints them; completion offers them).
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    ("help", "this help"),
    (
        "lease",
        "show the leases (`box`); `:lease take [ID]` leases a box (or attaches the kept lease ID) \
         as `box`; `:lease release` releases `box`; `:lease keep` keeps `box` after the REPL",
    ),
    ("run", "run the loaded recipe (on `box` when there is one)"),
    (
        "reload",
        "re-read the recipe file (the lease stays); `:run` or `:retry` then use the new text",
    ),
    (
        "retry",
        "rerun the last failed step (`last`); in a `recipe{}`, then the steps after it",
    ),
    (
        "quit",
        "leave (also Ctrl-D); leases the REPL took are released unless kept",
    ),
];

impl Repl<'_> {
    /// Run a `:command`.
    pub(crate) async fn command(&mut self, entry: &str) -> Flow {
        let mut words = entry.trim().trim_start_matches(':').split_whitespace();
        let name = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        match (name, args.as_slice()) {
            ("help" | "h" | "?", []) => self.help(),
            ("lease", []) => self.show_leases(),
            ("lease", ["take"]) => self.take_lease(None).await,
            ("lease", ["take", id]) => self.take_lease(Some(id)).await,
            ("lease", ["release"]) => self.release_box().await,
            ("lease", ["keep"]) => self.keep_box().await,
            ("run", []) => self.run_loaded().await,
            ("reload", []) => self.reload().await,
            ("retry", []) => self.retry().await,
            ("quit" | "q" | "exit", []) => return Flow::Quit,
            _ => {
                let known = COMMANDS.iter().any(|(c, _)| *c == name);
                if known {
                    eprintln!(
                        "leasebox: `:{name}` does not take `{}`; `:help` shows the usage",
                        args.join(" ")
                    );
                } else {
                    eprintln!(
                        "leasebox: no command `:{name}`; the commands are {}",
                        COMMANDS
                            .iter()
                            .map(|(c, _)| format!("`:{c}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        Flow::Continue
    }

    fn help(&self) {
        println!(
            "Lua with the recipe API: `lb` is require(\"leasebox\"), `box` the attached lease."
        );
        println!("An expression prints its value (`=expr` too); `local` at the start of an entry");
        println!("keeps its variables; an unfinished entry continues on the next line.");
        println!();
        for (name, what) in COMMANDS {
            println!("  :{name:<8} {what}");
        }
        println!();
        println!(
            "  box:{}   box.{}",
            crate::host::bindings::LEASE_METHODS.join("() box:"),
            crate::host::bindings::LEASE_FIELDS.join(" box.")
        );
        println!("  last     the last failed step: code, stdout, stderr, step, ms");
        println!(
            "Tab completes; Ctrl-C stops the running call; Ctrl-D leaves. docs/repl.md has more."
        );
    }
}
