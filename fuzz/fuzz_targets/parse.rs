//! Fuzzes the scenario parser from raw bytes, the way `faultline check`
//! reads a file: bytes to text (binary and non-UTF-8 input refused), text to
//! a validated scenario against the shipped systems, and an accepted
//! scenario to a plan. It holds the promises tests/integration/mutate.rs
//! checks on 10,000 mutants, for as long as libFuzzer runs: no panic, every
//! rejection has a position and a help line, every accepted file plans.
#![no_main]

use std::sync::OnceLock;

use faultline_harness::error::text_from_bytes;
use faultline_harness::{registry, Plan, Registry};
use libfuzzer_sys::fuzz_target;

fn systems() -> &'static Registry {
    static SYSTEMS: OnceLock<Registry> = OnceLock::new();
    SYSTEMS.get_or_init(faultline_systems::registry)
}

fuzz_target!(|data: &[u8]| {
    // The size limit of scenario files applies before any of this.
    if data.len() as u64 > faultline_harness::scenario::FILE_BYTES_MAX {
        return;
    }
    let text = match text_from_bytes("fuzz.toml", data.to_vec(), "scenario file") {
        Ok(text) => text,
        Err(error) => {
            assert!(error.position.is_some() && error.help.is_some(), "{error}");
            return;
        }
    };
    match registry::parse("fuzz.toml", &text, systems()) {
        Err(error) => {
            assert!(error.position.is_some(), "a rejection without a position: {error}");
            assert!(error.help.as_deref().is_some_and(|h| !h.trim().is_empty()), "a rejection without help: {error}");
            let _ = error.to_string();
        }
        Ok(loaded) => {
            let plan = Plan::expand(&loaded.scenario, 1);
            let _ = faultline_harness::plan::describe(&plan);
            let _ = loaded.scenario.knob_lines();
        }
    }
});
