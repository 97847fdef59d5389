//! The layer rules as a test: the table of what each module of `src/` may import lives in the
//! crate-root docs of `src/lib.rs`; this checker reads it, parses every file of `src/` with
//! `syn`, and fails naming file, line and rule for every upward import, every `mlua` outside
//! `host`, `clap` outside `cli`, and Nomad wire type outside `src/backends/nomad/`.

mod check;
mod checker_tests;
mod source_tree;
mod src_tree;
mod table;
