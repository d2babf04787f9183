//! `cargo fuzz run lint`: see `hookguard_fuzz::lint` (fuzz/src) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookguard_fuzz::lint(data));
