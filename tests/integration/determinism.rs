//! Same scenario, same seed: the same run, bit for bit, in one process and
//! across processes; different seeds give different runs.

use faultline_harness::drive::{run_seed, RunOptions};

use crate::support::{faultline, load, stdout};

const CHAOS_SCENARIO: &str = "scenarios/echo/network-chaos.toml";

fn digest_in_process(path: &str, seed: u64) -> String {
    run_seed(&load(path), seed, RunOptions::default()).digest
}

fn digest_from_cli(path: &str, seed: u64) -> String {
    let output = faultline(&["run", path, "--seed", &seed.to_string(), "--format", "json"]);
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("run --format json prints one JSON object");
    for key in ["scenario", "seed", "digest", "passed", "violations", "metrics"] {
        assert!(json.get(key).is_some(), "JSON output lacks {key:?}");
    }
    json["digest"].as_str().expect("a digest string").to_string()
}

#[test]
fn a_seed_runs_identically_twice_in_one_process() {
    for seed in [1, 2, 3] {
        assert_eq!(digest_in_process(CHAOS_SCENARIO, seed), digest_in_process(CHAOS_SCENARIO, seed));
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let digests: std::collections::BTreeSet<String> =
        (1..=6).map(|seed| digest_in_process(CHAOS_SCENARIO, seed)).collect();
    assert_eq!(digests.len(), 6);
}

#[test]
fn a_seed_runs_identically_in_separate_processes_and_in_process() {
    for path in ["scenarios/echo/baseline.toml", CHAOS_SCENARIO] {
        let first = digest_from_cli(path, 7);
        let second = digest_from_cli(path, 7);
        assert_eq!(first, second, "{path}: two processes disagree");
        assert_eq!(first, digest_in_process(path, 7), "{path}: the CLI and the library disagree");
        assert_ne!(first, digest_from_cli(path, 8), "{path}: seeds 7 and 8 gave the same run");
    }
}

#[test]
fn every_system_runs_identically_in_separate_processes() {
    // The cache and breaker systems have the most concurrency (many hosts,
    // coalescing, leases, retries with jitter, timers) and random faults.
    for path in [
        "scenarios/cache/chaos.toml",
        "scenarios/breaker/flapping.toml",
        "scenarios/regressions/chapter-half-open-seed1.toml",
    ] {
        let first = digest_from_cli(path, 2);
        assert_eq!(first, digest_from_cli(path, 2), "{path}: two processes disagree");
        assert_eq!(first, digest_in_process(path, 2), "{path}: the CLI and the library disagree");
    }
}

#[test]
fn check_determinism_passes_on_a_deterministic_scenario() {
    let output = faultline(&["run", CHAOS_SCENARIO, "--seed", "3", "--check-determinism"]);
    assert!(output.status.success(), "{}", stdout(&output));
}
