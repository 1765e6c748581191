//! Systems that faultline runs under faults. Each is real tokio service code
//! over turmoil's simulated network, plugged into the harness through its
//! `System` trait; `registry()` lists them for the CLI and the tests.
//!
//! Every system is a folder of one shape: `mod.rs` (the doc and the `System`
//! impl), `knobs.rs`, `protocol.rs` (operations, messages, typed events), a
//! file per host role, and `checks.rs` (pure: no tokio, no turmoil; a test
//! holds them to it), with the report's lanes in it or in a `lanes.rs` beside
//! it (as pure). Service code that systems share lives once in `kit/`.
//!
//! Systems never touch `Sim`, fault functions, wall clocks or unseeded
//! randomness: time comes from `tokio::time`, randomness from the RNG the
//! harness hands each host.
#![forbid(unsafe_code)]

#[cfg(not(tokio_unstable))]
compile_error!("build with --cfg tokio_unstable (set in .cargo/config.toml; a RUSTFLAGS variable replaces it)");

pub mod apptier;
pub mod breaker;
pub mod cache;
pub mod calibration;
pub mod echo;
pub mod kit;
pub mod queue;
pub mod store;
pub mod theory;

use faultline_harness::{Registry, SystemEntry};

/// Every system this crate provides, by name.
pub fn registry() -> Registry {
    Registry::new()
        .with(SystemEntry::of::<apptier::AppTier>())
        .with(SystemEntry::of::<breaker::Breaker>())
        .with(SystemEntry::of::<cache::Cache>())
        .with(SystemEntry::of::<calibration::Calibration>())
        .with(SystemEntry::of::<echo::Echo>())
        .with(SystemEntry::of::<queue::Queue>())
        .with(SystemEntry::of::<store::Store>())
}

#[cfg(test)]
mod shape {
    /// Every system's checkers are pure: `checks.rs` (and `lanes.rs`) names neither tokio nor turmoil.
    #[test]
    fn checkers_import_neither_tokio_nor_turmoil() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for entry in std::fs::read_dir(&src).expect("the systems' src folder") {
            let folder = entry.expect("an entry").path();
            let checks = folder.join("checks.rs");
            if !folder.is_dir() || folder.ends_with("kit") {
                continue;
            }
            let text = std::fs::read_to_string(&checks)
                .unwrap_or_else(|_| panic!("{} has no checks.rs: every system folder has one", folder.display()));
            for forbidden in ["tokio", "turmoil"] {
                assert!(!text.contains(forbidden), "{} names {forbidden}: checkers must be pure", checks.display());
            }
            // The report's lanes, where a system keeps them beside its checks, are pure too.
            let lanes = folder.join("lanes.rs");
            if let Ok(text) = std::fs::read_to_string(&lanes) {
                for forbidden in ["tokio", "turmoil"] {
                    assert!(!text.contains(forbidden), "{} names {forbidden}: lanes must be pure", lanes.display());
                }
            }
            for part in ["mod.rs", "knobs.rs", "protocol.rs"] {
                assert!(folder.join(part).exists(), "{} has no {part}", folder.display());
            }
            checked += 1;
        }
        assert!(checked >= 2, "only {checked} system folders found");
    }
}
