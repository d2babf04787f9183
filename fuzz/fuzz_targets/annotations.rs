//! `cargo fuzz run annotations`: see `hookguard_fuzz::annotations` (fuzz/src) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookguard_fuzz::annotations(data));
