//! faultline's harness: deterministic simulation of a system under test in
//! turmoil, with seeded faults, recorded runs, pure checkers and metrics.
//!
//! The modules form layers; each uses only those listed before it (a test,
//! `layers_import_only_lower_layers`, holds the code to this order):
//!
//! - value types and pure tools: `error`, `linearizability`, `units`, `seed`,
//!   `stats`, `history`, `fault`
//! - `knobs`: a system's `[knobs]` table and shared validators
//! - `system`: the [`System`] trait, contexts, typed events, docs, shapes
//! - `scenario`: scenario files as plain data, validated against a shape
//! - `plan`, `inject`: faults at concrete times; applying them between steps
//! - `recording`, `workload`, `run`: the simulation, recorded; judges nothing
//! - `checks`, `metrics`, `judge`: pure functions of a recording
//! - `registry`: typed systems erased; names to systems; loading files
//! - `schema`: the scenario file format as a JSON Schema, per registry
//! - `drive`, `sweep`, `results`, `shard`, `hunt`, `regressions`, `shrink`,
//!   `strategies`, `testing`: many seeds, results files, shards, random seeds
//!   until a failure, smaller failing runs, property tests, scenario files as tests
//!
//! The harness never names a concrete system: systems plug in through
//! [`System`] and a [`Registry`].
#![forbid(unsafe_code)]
// Every public item says what it is, its unit and when it is absent: the
// crate is read through its docs by people writing systems of their own.
#![warn(missing_docs)]

#[cfg(not(tokio_unstable))]
compile_error!(
    "build with --cfg tokio_unstable (set in .cargo/config.toml): without it turmoil cannot seed tokio's \
     runtime RNG and runs are not deterministic. A RUSTFLAGS environment variable replaces the config's flags; \
     add --cfg tokio_unstable to it."
);

pub mod checks;
pub mod drive;
pub mod error;
pub mod fault;
pub mod history;
pub mod hunt;
pub mod inject;
pub mod judge;
pub mod knobs;
pub mod linearizability;
pub mod metrics;
pub mod plan;
pub mod recording;
pub mod registry;
pub mod regressions;
pub mod results;
pub mod run;
pub mod scenario;
pub mod schema;
pub mod seed;
pub mod shard;
pub mod shrink;
pub mod stats;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod sweep;
pub mod system;
pub mod testing;
pub mod units;
pub mod workload;

pub use error::InputError;
pub use history::{History, Nanos, Operation, Outcome, OutcomeClass, SystemEvent, TraceEvent, Violation};
pub use judge::{RunReport, SeedOutcome};
pub use knobs::Knobs;
pub use plan::Plan;
pub use registry::{Loaded, Registry, SystemEntry};
pub use scenario::Scenario;
pub use system::{
    CheckContext, CheckResult, ClientContext, ClientLocal, EventSink, HostContext, Invariant, Lane, LaneKind,
    StateChange, System, SystemDoc, Tone,
};

/// The layers, lowest first: each module may use only modules listed before
/// it. ARCHITECTURE.md draws the same order.
pub const LAYERS: &[&str] = &[
    "error",
    "linearizability",
    "units",
    "seed",
    "stats",
    "history",
    "fault",
    "knobs",
    "system",
    "scenario",
    "plan",
    "inject",
    "recording",
    "workload",
    "run",
    "checks",
    "metrics",
    "judge",
    "registry",
    "schema",
    "drive",
    "sweep",
    "results",
    "shard",
    "hunt",
    "regressions",
    "shrink",
    "strategies",
    "testing",
];

#[cfg(test)]
mod layers {
    use super::LAYERS;

    /// The modules a source file names as `crate::<module>`.
    fn imports(source: &str) -> Vec<String> {
        let mut found: Vec<String> = source
            .match_indices("crate::")
            .map(|(at, _)| {
                source[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
            })
            .filter(|name| !name.is_empty())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    #[test]
    fn layers_import_only_lower_layers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("the harness's src folder") {
            let path = entry.expect("a directory entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            // A folder module is one layer: every file in it.
            let files: Vec<std::path::PathBuf> = if path.is_dir() {
                std::fs::read_dir(&path).expect("a module folder").map(|e| e.expect("an entry").path()).collect()
            } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" {
                vec![path.clone()]
            } else {
                continue;
            };
            let position = LAYERS.iter().position(|l| *l == stem);
            let position = position.unwrap_or_else(|| panic!("{stem} is not in LAYERS (harness/src/lib.rs)"));
            for file in files {
                let source = std::fs::read_to_string(&file).expect("a readable source file");
                for import in imports(&source) {
                    let used = LAYERS.iter().position(|l| *l == import);
                    let used = used.unwrap_or_else(|| panic!("{stem} uses crate::{import}, which is not in LAYERS"));
                    assert!(
                        used <= position,
                        "{} uses crate::{import}, a higher layer: data must flow one way (see LAYERS in lib.rs)",
                        file.display()
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} modules found");
    }

    #[test]
    fn the_import_scanner_finds_paths_and_uses() {
        let source = "use crate::history::{Nanos};\nfn f() { crate::run::record(); }\n";
        assert_eq!(imports(source), vec!["history".to_string(), "run".to_string()]);
    }
}
