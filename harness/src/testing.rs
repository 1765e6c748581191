//! Scenario files as `cargo test` tests, for this repository and for any
//! crate that tests its own services with faultline.
//!
//! [`scenario_tests`] is the whole `main` of a `harness = false` test target:
//! one test per scenario file under a folder. [`assert_scenario`] checks one
//! file from a plain `#[test]`. Both judge a file the way `faultline sweep`
//! does: its seeds (or its pinned seed), its `expect` (each expected
//! violation found by some seed, nothing else failing), its `reached`
//! events; seeds recorded in a `.regressions` file beside it run first and
//! must not fail. A failure names each failing seed and the command that
//! replays it; a file whose checks could not judge fails too (a test must
//! not pass on nothing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::drive::RunOptions;
use crate::judge::SeedOutcome;
use crate::registry::{self, Loaded, Registry};
use crate::regressions;
use crate::sweep::{seeds_noun, sweep, ScenarioResult, Seeds, Verdict};

/// Wall-clock limit of one run in a test: for hung code, not for a slow,
/// shared CI machine.
pub const TEST_WALL_LIMIT: Duration = Duration::from_secs(600);

/// Runs every scenario file (`*.toml`) under `dir` as its own test, with
/// libtest's command line (filters, `--list`, `--test-threads`). Call it as
/// the `main` of a test target with `harness = false`; cargo runs tests from
/// the package's root, so `dir` is relative to it.
pub fn scenario_tests(dir: impl AsRef<Path>, registry: Registry) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let dir = dir.as_ref();
    let mut files = Vec::new();
    if let Err(error) = collect(dir, &mut files) {
        eprintln!("error: cannot read the scenario folder {}: {error}", dir.display());
        std::process::exit(2);
    }
    if files.is_empty() {
        eprintln!("error: no scenario files (*.toml) under {}", dir.display());
        std::process::exit(2);
    }
    let registry = Arc::new(registry);
    let trials = files
        .into_iter()
        .map(|path| {
            let registry = Arc::clone(&registry);
            libtest_mimic::Trial::test(path.display().to_string(), move || {
                check_scenario(&path, &registry).map_err(libtest_mimic::Failed::from)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// Checks one scenario file as `cargo test` would; panics with the reasons
/// and replay commands if it does not hold.
#[track_caller]
pub fn assert_scenario(path: impl AsRef<Path>, registry: &Registry) {
    if let Err(message) = check_scenario(path.as_ref(), registry) {
        panic!("{message}");
    }
}

/// Checks one scenario file: `Err` carries what failed, seed by seed.
pub fn check_scenario(path: &Path, registry: &Registry) -> Result<(), String> {
    let loaded = Arc::new(registry::load(path, registry).map_err(|e| e.to_string())?);
    let options = RunOptions { wall_limit: Some(TEST_WALL_LIMIT), ..RunOptions::default() };
    replay_regressions(path, &loaded, options)?;
    let results = sweep(std::slice::from_ref(&loaded), &Seeds::FromScenario, 1, options, &|_| {});
    let result = &results[0];
    match result.verdict {
        Verdict::Passed => Ok(()),
        Verdict::Failed | Verdict::Unjudged => Err(describe_failure(result)),
    }
}

/// Seeds that once failed the scenario (its `.regressions` file): each must
/// now pass, or show only the scenario's expected flaw.
fn replay_regressions(path: &Path, loaded: &Arc<Loaded>, options: RunOptions) -> Result<(), String> {
    let recorded = regressions::load(path).map_err(|e| e.to_string())?;
    if recorded.is_empty() {
        return Ok(());
    }
    let seeds = Seeds::List(recorded.iter().map(|r| r.seed.0).collect());
    let replayed = sweep(std::slice::from_ref(loaded), &seeds, 1, options, &|_| {});
    for (record, report) in recorded.iter().zip(&replayed[0].reports) {
        if report.outcome.failed() {
            return Err(format!(
                "{}: recorded regression seed {} ({}) still fails: {:?}\n  reproduce: {}",
                path.display(),
                record.seed.0,
                record.invariant,
                report.outcome,
                report.replay_command()
            ));
        }
        if report.digest != record.digest {
            eprintln!(
                "note: {} seed {} now runs differently (digest {} was {})",
                path.display(),
                record.seed.0,
                report.digest,
                record.digest
            );
        }
    }
    Ok(())
}

/// A failed scenario's reasons and its first failing seeds, each with what
/// failed it and its replay command.
fn describe_failure(result: &ScenarioResult) -> String {
    const SEEDS_SHOWN: usize = 5;
    let verdict = if result.verdict == Verdict::Unjudged { "could not be judged" } else { "failed" };
    let mut message = format!("{} ({}) {verdict}:\n", result.file, result.name);
    for reason in &result.reasons {
        message.push_str(&format!("  - {reason}\n"));
    }
    let troubled: Vec<_> = result.failed_seeds().chain(result.unjudged_seeds()).collect();
    for report in troubled.iter().take(SEEDS_SHOWN) {
        if let SeedOutcome::Failed { reasons } | SeedOutcome::Unjudged { reasons } = &report.outcome {
            message.push_str(&format!("  seed {}: {}\n", report.seed, reasons.join("; ")));
        }
        let failing = report.failing_invariants();
        for violation in report.violations.iter().filter(|v| failing.contains(&v.invariant.as_str())).take(3) {
            message.push_str(&format!("    {violation}\n"));
        }
        message.push_str(&format!("    reproduce: {}\n", report.replay_command()));
    }
    if troubled.len() > SEEDS_SHOWN {
        message.push_str(&format!("  ... and {} more\n", seeds_noun(troubled.len() - SEEDS_SHOWN)));
    }
    message
}

/// Every `*.toml` under `dir`, sorted within each folder.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}
