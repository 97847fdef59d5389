//! `cargo fuzz run fetch_extract`: see docs/fuzzing.md and `leasebox_fuzz::fetch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = leasebox_fuzz::fetch::check(data);
});
