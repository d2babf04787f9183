//! The policy file parser (YAML → `Policy`, defaults, validation), as the file watcher calls
//! it on whatever bytes it finds on disk. A policy that parses must also serialise.
#![no_main]

use hookguard::policy::ActivePolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(active) = ActivePolicy::parse(data, "fuzz.yaml") {
        let _ = active.policy.effective().to_yaml();
    }
});
