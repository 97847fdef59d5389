//! The fuzz targets' oracles (`fuzz/src/`, docs/fuzzing.md) as bounded, seeded property tests:
//! each oracle runs on its target's seeds (`fuzz/corpus/<target>/`) and on a fixed-seed stream
//! of generated inputs, so `cargo test` checks every oracle on every run, without a fuzzer.
//! Each test also asserts that a share of the inputs reached the deep end of its oracle (a
//! config that loads, a template compared as a document, …), so the oracle is not vacuous.

#[path = "../../../fuzz/src/config.rs"]
mod config;
#[path = "../../../fuzz/src/exec.rs"]
mod exec;
#[path = "../../../fuzz/src/fetch.rs"]
mod fetch;
#[path = "../../../fuzz/src/input.rs"]
mod input;
#[path = "../../../fuzz/src/recipe.rs"]
mod recipe;
#[path = "../../../fuzz/src/template.rs"]
mod template;
mod tests;
