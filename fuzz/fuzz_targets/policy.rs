//! `cargo fuzz run policy`: see `hookguard_fuzz::policy` (fuzz/src) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookguard_fuzz::policy(data));
