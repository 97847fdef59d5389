//! Checking a whole `src/` directory: reads the table from its `lib.rs`, checks every `.rs`
//! file under it, and checks that the table and the directory name the same layers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::check::{CheckContext, FilePlace, FileRole, ParseFailure, Rule, Violation, check_file};
use super::table::{LayerTable, TableError};

/// Why a tree could not be checked at all (as opposed to breaking a rule).
#[derive(Debug)]
pub enum TreeError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Table(TableError),
    Parse(ParseFailure),
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TreeError::Table(e) => e.fmt(f),
            TreeError::Parse(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TreeError {}

/// Checks every `.rs` file under `src_dir` against the table in `src_dir/lib.rs`; returns
/// every violation, ordered by file and line. `crate_name` is the library's name as code
/// writes it (`leasebox`).
pub fn check_tree(src_dir: &Path, crate_name: &str) -> Result<Vec<Violation>, TreeError> {
    let lib_rs = src_dir.join("lib.rs");
    let lib_source = read(&lib_rs)?;
    let table = LayerTable::from_crate_docs(&lib_source).map_err(TreeError::Table)?;

    let mut files = Vec::new();
    collect_rust_files(src_dir, src_dir, &mut files)?;
    files.sort();

    // Each top-level layer of the directory, with the first of its files (for the failure).
    let mut layers: BTreeMap<String, String> = BTreeMap::new();
    for rel in &files {
        if let FileRole::Layer(layer) = FilePlace::from_relative(rel).role {
            layers.entry(layer).or_insert_with(|| rel.clone());
        }
    }
    let known_modules: BTreeSet<String> = layers.keys().cloned().collect();

    let mut violations = Vec::new();
    for (name, line) in table.modules() {
        if !known_modules.contains(name) {
            violations.push(Violation {
                file: "src/lib.rs".to_owned(),
                line,
                column: 1,
                rule: Rule::ModuleMissing {
                    name: name.to_owned(),
                },
                path: String::new(),
            });
        }
    }
    for (layer, first_file) in &layers {
        if !table.contains(layer) {
            violations.push(Violation {
                file: format!("src/{first_file}"),
                line: 1,
                column: 1,
                rule: Rule::LayerNotInTable {
                    layer: layer.clone(),
                },
                path: String::new(),
            });
        }
    }

    let ctx = CheckContext {
        table: &table,
        crate_name,
        known_modules: &known_modules,
    };
    for rel in &files {
        let source = read(&src_dir.join(rel))?;
        let place = FilePlace::from_relative(rel);
        violations.extend(check_file(&ctx, &place, &source).map_err(TreeError::Parse)?);
    }
    violations.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Ok(violations)
}

fn read(path: &Path) -> Result<String, TreeError> {
    std::fs::read_to_string(path).map_err(|error| TreeError::Io {
        path: path.to_owned(),
        error,
    })
}

/// Every `.rs` file under `dir`, as a path relative to `root` with `/` separators.
fn collect_rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), TreeError> {
    let io = |error| TreeError::Io {
        path: dir.to_owned(),
        error,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_rust_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(rel.join("/"));
        }
    }
    Ok(())
}
