//! `cargo fuzz run template_render`: see docs/fuzzing.md and `leasebox_fuzz::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = leasebox_fuzz::template::check(data);
});
