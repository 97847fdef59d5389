//! `cargo fuzz run recipe_decode`: see docs/fuzzing.md and `leasebox_fuzz::recipe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = leasebox_fuzz::recipe::check(data);
});
