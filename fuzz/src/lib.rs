//! The oracles of leasebox's fuzz targets, one module per target, each a `check(data)` that
//! panics when the code under test crashes or breaks its oracle. The fuzz targets
//! (`fuzz_targets/`) call them with libFuzzer's inputs; the main crate's `cargo test` calls the
//! same files (`tests/integration/fuzz_oracles/`) with the seeds of `corpus/` and a fixed-seed
//! stream of generated inputs, so CI checks every oracle without running a fuzzer.
//!
//! Every module reaches its siblings through `super::`, never `crate::`, so the files compile
//! as modules of either crate.

pub mod config;
pub mod exec;
pub mod fetch;
pub mod input;
pub mod recipe;
pub mod template;
