//! `cargo fuzz run review`: see `hookguard_fuzz::review` (fuzz/src) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookguard_fuzz::review(data));
