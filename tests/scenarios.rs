//! Every scenario file under scenarios/ is a test: its seeds (the file's
//! `seeds`) must pass, its `expect = "violation:..."` must be found by some
//! seed, and every `reached` event must be reported. A checker that stops
//! finding a known flaw fails the build here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::regressions;
use faultline_harness::run::RunOptions;
use faultline_harness::scenario;
use faultline_harness::sweep::{sweep, Seeds};
use libtest_mimic::{Arguments, Failed, Trial};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

fn run_scenario(path: &Path) -> Result<(), Failed> {
    let registry = faultline_systems::registry();
    let scenario = Arc::new(scenario::load(path, &registry).map_err(|e| e.to_string())?);
    // Generous: the limit is for hung code, not for a slow, shared CI machine.
    let options = RunOptions { wall_limit: Some(Duration::from_secs(600)), ..RunOptions::default() };
    // Seeds that once failed come first (a `.regressions` file beside the
    // scenario): each must now pass, or show the scenario's expected flaw.
    let recorded = regressions::load(path).map_err(|e| e.to_string())?;
    if !recorded.is_empty() {
        let seeds = Seeds::List(recorded.iter().map(|r| r.seed.0).collect());
        let replayed = sweep(std::slice::from_ref(&scenario), &seeds, 1, options, &|_| {});
        for (record, report) in recorded.iter().zip(&replayed[0].reports) {
            if matches!(report.outcome, faultline_harness::SeedOutcome::Failed { .. }) {
                return Err(format!(
                    "{}: recorded regression seed {} ({}) still fails: {:?}\n  reproduce: {}",
                    path.display(),
                    record.seed.0,
                    record.invariant,
                    report.outcome,
                    report.replay_command()
                )
                .into());
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
    }
    let results = sweep(&[scenario], &Seeds::FromScenario, 1, options, &|_| {});
    let result = &results[0];
    if result.passed {
        return Ok(());
    }
    let mut message = format!("{} ({}) failed:\n", result.file, result.name);
    for reason in &result.reasons {
        message.push_str(&format!("  - {reason}\n"));
    }
    for report in result.failed_seeds().take(5) {
        if let faultline_harness::SeedOutcome::Failed { reasons } = &report.outcome {
            message.push_str(&format!("  seed {}: {}\n", report.seed, reasons.join("; ")));
        }
        for violation in report.violations.iter().take(3) {
            message.push_str(&format!("    {violation}\n"));
        }
        message.push_str(&format!("    reproduce: {}\n", report.replay_command()));
    }
    Err(message.into())
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("scenarios"), &mut files);
    assert!(!files.is_empty(), "no scenario files under scenarios/");
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            let relative = PathBuf::from(&name);
            Trial::test(name, move || {
                std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).map_err(|e| e.to_string())?;
                run_scenario(&relative)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
