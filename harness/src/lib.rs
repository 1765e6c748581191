//! faultline's harness: deterministic simulation of a system under test in
//! turmoil, with seeded faults, recorded histories, pure checkers and metrics.
//!
//! The data flow, one module a stage: `scenario` (file -> [`Scenario`]),
//! `plan` (scenario + seed -> [`Plan`]), `run` (plan -> history + trace ->
//! [`RunReport`]), `metrics` and the system's checkers (history -> figures and
//! violations), `sweep` (many seeds -> verdicts). The harness never names a
//! concrete system: systems plug in through [`System`] and a [`Registry`].
#![forbid(unsafe_code)]

#[cfg(not(tokio_unstable))]
compile_error!(
    "build with --cfg tokio_unstable (set in .cargo/config.toml): without it turmoil cannot seed tokio's \
     runtime RNG and runs are not deterministic. A RUSTFLAGS environment variable replaces the config's flags; \
     add --cfg tokio_unstable to it."
);

pub mod error;
pub mod faults;
pub mod history;
pub mod linearizability;
pub mod metrics;
pub mod plan;
pub mod regressions;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod shrink;
pub mod stats;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod sweep;
pub mod system;
pub mod units;

pub use error::InputError;
pub use history::{EventSink, History, Nanos, Operation, Outcome, OutcomeClass, TraceEvent, Violation};
pub use plan::Plan;
pub use run::{RunOptions, RunReport, SeedOutcome};
pub use scenario::{Knobs, Scenario};
pub use system::{ClientContext, HostContext, Registry, System, SystemDoc, SystemEntry};
