//! `faultline report --run FILE --format json`: the run's verdict and where
//! its page was written.

use std::path::Path;

use faultline_harness::judge::{RunReport, SeedOutcome};
use serde::Serialize;

/// The whole document.
#[derive(Serialize)]
pub struct Written<'a> {
    /// The scenario file, as given.
    pub scenario: &'a str,
    /// The scenario's `name`.
    pub name: &'a str,
    pub seed: u64,
    /// The seed's outcome, as `run --format json` gives it: `status` is
    /// "passed", "found_expected", "failed", "not_found" or "unjudged";
    /// "failed" and "unjudged" carry `reasons`.
    pub outcome: &'a SeedOutcome,
    pub digest: &'a str,
    /// The page written.
    pub out: String,
    /// The command that replays the seed.
    pub replay: String,
}

/// The document of the run `report`, whose page went to `out`.
pub fn document<'a>(report: &'a RunReport, out: &Path) -> Written<'a> {
    Written {
        scenario: &report.scenario,
        name: &report.name,
        seed: report.seed,
        outcome: &report.outcome,
        digest: &report.digest,
        out: out.display().to_string(),
        replay: report.replay_command(),
    }
}
