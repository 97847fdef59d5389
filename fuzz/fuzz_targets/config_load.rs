//! `cargo fuzz run config_load`: see docs/fuzzing.md and `leasebox_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = leasebox_fuzz::config::check(data);
});
