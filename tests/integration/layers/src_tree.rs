//! The checker on the real `src/` tree of this crate.

use std::path::PathBuf;

use super::check::Violation;
use super::source_tree::check_tree;
use super::table::LayerTable;

fn src_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The library's name as code writes it (`leasebox`).
fn crate_name() -> String {
    env!("CARGO_PKG_NAME").replace('-', "_")
}

fn listing(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("  {v}\n"))
        .collect::<String>()
}

#[test]
fn crate_docs_hold_a_readable_layer_table() {
    let lib_rs = std::fs::read_to_string(src_dir().join("lib.rs")).expect("read src/lib.rs");
    let table = LayerTable::from_crate_docs(&lib_rs).unwrap_or_else(|e| panic!("{e}"));
    // The rules DESIGN §3 and issue 9 draw, as read back from the docs.
    assert!(table.may_import("cli", "host"));
    assert!(table.may_import("cli", "leases"));
    assert!(!table.may_import("cli", "backends"));
    assert!(!table.may_import("cli", "session"));
    assert!(!table.may_import("host", "backends"));
    assert!(table.may_import("leases", "backends"));
    assert!(table.may_import("session", "lease"));
    assert!(!table.may_import("session", "config"));
    assert!(!table.may_import("config", "ownership"));
    assert!(table.may_import("config", "error"));
    assert!(table.may_import("lease", "atomic_file"));
    let universal: Vec<&str> = table.universal_modules().collect();
    assert_eq!(universal, ["atomic_file", "error"]);
}

#[test]
fn every_file_of_src_can_be_checked() {
    if let Err(e) = check_tree(&src_dir(), &crate_name()) {
        panic!("{e}");
    }
}

#[test]
fn src_follows_the_layer_table() {
    let violations = check_tree(&src_dir(), &crate_name()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        violations.is_empty(),
        "{} layer rule(s) broken in src/:\n{}",
        violations.len(),
        listing(&violations)
    );
}
