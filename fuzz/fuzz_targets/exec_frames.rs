//! `cargo fuzz run exec_frames`: see docs/fuzzing.md and `leasebox_fuzz::exec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = leasebox_fuzz::exec::check(data);
});
