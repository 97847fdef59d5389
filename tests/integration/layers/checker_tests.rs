//! The checker on small synthetic sources: each kind of upward import is caught (grouped,
//! inline, re-exported, `super::super` escaping, inside a macro), text that only names a
//! module (comments, doc comments, strings) is not, and a malformed table is an error.

use std::collections::BTreeSet;

use super::check::{CheckContext, FilePlace, FileRole, Rule, Violation, check_file};
use super::table::LayerTable;

/// A table of the same shape as the crate's.
const TABLE: &str = "\
cli        clap; parses, calls the host.  The only clap.
           -> host, leases, config, ownership, lease
host       the Lua VM.  The only Lua.
           -> leases, session, lease, config, ownership
leases     the lease lifecycle
           -> backends, session, ownership, config, lease
session    operations over exec
           -> lease
backends   nomad and local
           -> lease, config, ownership
lease      the Backend trait and its types
config     layered config
ownership  claims store
error      error kinds and exit codes; every layer may import it
atomic_file  atomic writes; every layer may import it
";

fn table() -> LayerTable {
    LayerTable::parse(TABLE).unwrap_or_else(|e| panic!("{e}"))
}

/// Checks `source` as the file `src/<rel>`.
fn check(rel: &str, source: &str) -> Vec<Violation> {
    let table = table();
    let known: BTreeSet<String> = table.modules().map(|(m, _)| m.to_owned()).collect();
    let ctx = CheckContext {
        table: &table,
        crate_name: "leasebox",
        known_modules: &known,
    };
    check_file(&ctx, &FilePlace::from_relative(rel), source).unwrap_or_else(|e| panic!("{e}"))
}

/// The (line, forbidden module) pairs of the layer-import violations.
fn upward(violations: &[Violation]) -> Vec<(usize, String)> {
    violations
        .iter()
        .filter_map(|v| match &v.rule {
            Rule::LayerImport { to, .. } => Some((v.line, to.clone())),
            _ => None,
        })
        .collect()
}

fn lines_of(violations: &[Violation], rule: &Rule) -> Vec<usize> {
    violations
        .iter()
        .filter(|v| &v.rule == rule)
        .map(|v| v.line)
        .collect()
}

#[test]
fn a_grouped_upward_import_is_caught_at_its_line() {
    let v = check(
        "cli/run.rs",
        "use crate::{\n    config::Settings,\n    backends::{local::Local, open},\n    lease::Lease,\n};\n",
    );
    assert_eq!(
        upward(&v),
        [(3, "backends".to_owned()), (3, "backends".to_owned())]
    );
    assert_eq!(v[0].file, "src/cli/run.rs");
    assert_eq!(v[0].path, "crate::backends::local::Local");
    assert_eq!(v[1].path, "crate::backends::open");
    let message = v[0].to_string();
    assert!(
        message.starts_with("src/cli/run.rs:3:5: `cli` may not import `backends`"),
        "{message}"
    );
    assert!(message.contains("host, lease, leases"), "{message}");
}

#[test]
fn an_inline_path_in_an_expression_type_or_attribute_is_caught() {
    let v = check(
        "host/runner.rs",
        "\
fn run() {
    let b = crate::backends::open();
}
fn take(_: &crate::backends::Local) {}
#[cfg_attr(test, derive(crate::backends::Fake))]
struct S;
fn fine(_: crate::session::Session, _: crate::error::Error) {}
",
    );
    assert_eq!(
        upward(&v),
        [
            (2, "backends".to_owned()),
            (4, "backends".to_owned()),
            (5, "backends".to_owned())
        ]
    );
}

#[test]
fn a_path_inside_a_macro_call_is_caught() {
    let v = check(
        "session/sync.rs",
        "fn f() { println!(\"{}\", crate::config::name()); assert!(matches!(x, ::leasebox::ownership::Claim)); }\n",
    );
    assert_eq!(
        upward(&v),
        [(1, "config".to_owned()), (1, "ownership".to_owned())]
    );
}

#[test]
fn a_re_exported_upward_import_is_caught() {
    let v = check(
        "session/mod.rs",
        "pub use crate::host::Engine;\npub(crate) use crate::lease::Lease;\npub use self::sync::Sync;\n",
    );
    assert_eq!(upward(&v), [(1, "host".to_owned())]);
}

#[test]
fn super_super_that_climbs_out_of_the_layer_is_caught_and_inside_it_is_not() {
    let v = check(
        "backends/nomad/exec.rs",
        "\
use super::super::local::Local;
use super::super::super::cli::Args;
fn f() { super::super::super::session::exec(); }
mod tests { use super::super::super::super::host::Engine; use super::super::Backend; }
",
    );
    assert_eq!(
        upward(&v),
        [
            (2, "cli".to_owned()),
            (3, "session".to_owned()),
            (4, "host".to_owned())
        ]
    );
    let above = check("cli/run.rs", "use super::super::super::x;\n");
    assert_eq!(lines_of(&above, &Rule::AboveCrateRoot), [1]);
}

#[test]
fn self_relative_paths_and_bare_names_stay_in_the_layer() {
    // A child module of `cli` named like a layer, reached through `self::`, a bare name and
    // an inline module: none of them is the top-level `backends`.
    let v = check(
        "cli/mod.rs",
        "\
mod backends;
use self::backends::Choice;
use backends::other;
fn f() { backends::pick(); self::backends::pick(); }
mod session { pub fn g() { super::backends::pick(); } }
",
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn comments_doc_comments_and_strings_naming_clap_or_a_layer_are_not_caught() {
    let v = check(
        "session/sync.rs",
        r###"//! Unlike `clap`, this uses crate::backends::open and mlua::Lua (in docs only).
#![doc = "clap crate::backends"]

// use clap::Parser;
// use crate::backends::open;
/* crate::backends::nomad::wire::Job, mlua::Lua */
/// See [`crate::backends::open`] and `clap::Parser`; the wire::Job type.
#[doc = "crate::host::Engine"]
fn f() -> &'static str {
    let _ = format!("crate::backends::open {}", "clap::Parser");
    r#"use mlua::Lua; crate::cli::main()"#
}
"###,
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn mlua_outside_host_is_caught() {
    let v = check(
        "session/exec.rs",
        "use mlua::Lua;\nfn f(_: ::mlua::Value) {}\nextern crate mlua;\nfn g() { let _ = mlua::Lua::new(); }\n",
    );
    assert_eq!(lines_of(&v, &Rule::Mlua), [1, 2, 3, 4]);
    let reexported = check("cli/run.rs", "use crate::host::mlua::Value;\n");
    assert_eq!(lines_of(&reexported, &Rule::Mlua), [1]);
    assert!(check("host/engine.rs", "use mlua::{Lua, Value};\n").is_empty());
}

#[test]
fn clap_outside_cli_is_caught() {
    let v = check(
        "config/settings.rs",
        "#[derive(Debug, clap::Parser)]\nstruct A;\nuse clap::ValueEnum;\n",
    );
    assert_eq!(lines_of(&v, &Rule::Clap), [1, 3]);
    assert_eq!(
        lines_of(&check("main.rs", "use clap::Parser;\n"), &Rule::Clap),
        [1]
    );
    assert!(check("cli/args.rs", "use clap::{Parser, Subcommand};\n").is_empty());
}

#[test]
fn nomad_wire_types_outside_the_nomad_backend_are_caught() {
    let v = check(
        "cli/info.rs",
        "use crate::backends::nomad::wire::Job;\nuse crate::backends::nomad::{client, wire};\n",
    );
    assert_eq!(lines_of(&v, &Rule::NomadWire), [1, 2]);
    // Elsewhere in `backends` the layer is fine but the wire types are not.
    let v = check(
        "backends/mod.rs",
        "pub use nomad::wire::Allocation;\nfn f(_: self::nomad::wire::Job) {}\n",
    );
    assert_eq!(lines_of(&v, &Rule::NomadWire), [1, 2]);
    assert!(upward(&v).is_empty());
    let v = check("backends/local.rs", "fn f(_: super::nomad::wire::Job) {}\n");
    assert_eq!(lines_of(&v, &Rule::NomadWire), [1]);
    assert!(
        check(
            "backends/nomad/client.rs",
            "use super::wire::{Job, Allocation};\nfn f(_: wire::Job) {}\n"
        )
        .is_empty()
    );
}

#[test]
fn every_violation_of_a_file_is_reported_not_just_the_first() {
    let v = check(
        "lease/mod.rs",
        "\
use crate::config::Settings;
use crate::ownership::Claim;
use crate::error::Error;
use crate::atomic_file::write;
use clap::Parser;
fn f() { crate::session::run(); }
",
    );
    let lines: Vec<usize> = v.iter().map(|v| v.line).collect();
    assert_eq!(lines, [1, 2, 5, 6]);
    assert_eq!(
        v[0].rule,
        Rule::LayerImport {
            from: FileRole::Layer("lease".to_owned()),
            to: "config".to_owned(),
            allowed: vec!["atomic_file".to_owned(), "error".to_owned()],
        }
    );
}

#[test]
fn the_binary_may_use_cli_only_and_the_root_the_universal_modules_only() {
    let v = check(
        "main.rs",
        "fn main() { std::process::exit(leasebox::cli::main()); leasebox::backends::open(); }\n",
    );
    assert_eq!(upward(&v), [(1, "backends".to_owned())]);
    let v = check(
        "lib.rs",
        "pub mod cli;\npub mod error;\npub use error::Error;\npub use backends::Backend;\n",
    );
    assert_eq!(upward(&v), [(4, "backends".to_owned())]);
}

#[test]
fn an_unknown_module_or_a_glob_of_the_crate_root_is_caught() {
    let v = check("cli/run.rs", "use crate::backend::open;\nuse crate::*;\n");
    assert_eq!(
        v.iter().map(|v| v.rule.clone()).collect::<Vec<_>>(),
        [
            Rule::UnknownModule {
                name: "backend".to_owned()
            },
            Rule::CrateRootGlob
        ]
    );
}

#[test]
fn a_table_naming_an_unknown_module_after_an_arrow_is_an_error() {
    let text = TABLE.replace("-> host, leases,", "-> host, lease_s,");
    let error = LayerTable::parse(&text).expect_err("the unknown module is an error");
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(error.problems[0].0, 2);
    assert!(
        error.problems[0]
            .1
            .starts_with("`cli` may import `lease_s`, which is not a module of the table"),
        "{error}"
    );
}

#[test]
fn other_malformed_tables_are_errors() {
    let cases = [
        ("   -> lease\ncli  x\n", "before any module line"),
        ("cli  x\n  -> lease\nlease  y\ncli  z\n", "listed twice"),
        (
            "cli  x\n  -> lease\n  -> lease\nlease  y\n",
            "second `->` line",
        ),
        ("cli  x\n  -> cli\n", "lists itself"),
        ("a  x\n  -> b\nb  y\n  -> a\n", "cycle: a -> b -> a"),
        (
            "error  every layer may import it\n  -> cli\ncli  x\n",
            "may not import `cli`",
        ),
        ("cli  x\n  description goes on\n", "neither a module line"),
        ("", "lists no module"),
    ];
    for (text, expected) in cases {
        let error = LayerTable::parse(text).expect_err(text);
        assert!(error.to_string().contains(expected), "{text:?}: {error}");
    }
}

#[test]
fn the_table_is_read_from_the_crate_docs_with_lines_of_lib_rs() {
    let lib_rs = "\
//! The crate.
//!
//! # Layers
//!
//! ```text
//! cli   the top
//!       -> lease
//! lease the bottom
//! ```

pub mod cli;
";
    let table = LayerTable::from_crate_docs(lib_rs).unwrap_or_else(|e| panic!("{e}"));
    assert!(table.may_import("cli", "lease"));
    assert!(!table.may_import("lease", "cli"));
    assert_eq!(
        table.modules().collect::<Vec<_>>(),
        [("cli", 6), ("lease", 8)]
    );

    let bad = lib_rs.replace("-> lease", "-> leases");
    let error = LayerTable::from_crate_docs(&bad).expect_err("unknown module");
    assert!(
        error
            .to_string()
            .contains("src/lib.rs:7: `cli` may import `leases`"),
        "{error}"
    );

    let no_table = "//! The crate.\n\npub mod cli;\n";
    let error = LayerTable::from_crate_docs(no_table).expect_err("no table");
    assert!(
        error.to_string().contains("no `# Layers` heading"),
        "{error}"
    );
}
