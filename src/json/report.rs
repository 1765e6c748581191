//! `faultline report --format json`: the verdict of the run (`--run FILE`)
//! or of the sweep (results files) and where its page was written.

use std::path::Path;

use faultline_harness::judge::{RunReport, SeedOutcome};
use faultline_harness::sweep::{ScenarioResult, Verdict};
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

/// The document of `report RESULTS...`: the sweep's verdict, its size, and
/// where its page went.
#[derive(Serialize)]
pub struct SweepWritten {
    /// "passed", "failed" or "unjudged", as `merge` judges the same files.
    pub verdict: &'static str,
    pub scenarios: usize,
    pub runs: usize,
    /// The scenarios whose verdict failed, by file.
    pub failed: Vec<String>,
    /// The page written.
    pub out: String,
}

/// The document of a sweep's `report`, whose page went to `out`.
pub fn sweep_document(results: &[ScenarioResult], verdict: Verdict, out: &Path) -> SweepWritten {
    SweepWritten {
        verdict: match verdict {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Unjudged => "unjudged",
        },
        scenarios: results.len(),
        runs: results.iter().map(ScenarioResult::seeds).sum(),
        failed: results.iter().filter(|r| r.verdict == Verdict::Failed).map(|r| r.file.clone()).collect(),
        out: out.display().to_string(),
    }
}
