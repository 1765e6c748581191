//! Property tests over random fault plans (the harness's proptest
//! strategies): each hardened variant keeps its invariants whatever the plan,
//! and each textbook variant's flaw is found, with proptest shrinking the
//! plan that shows it. The runner's RNG is fixed, so the plans are the same
//! in every run, like every other test here.

use std::sync::Arc;

use faultline_harness::drive::{run_plan, RunOptions};
use faultline_harness::plan::Plan;
use faultline_harness::strategies;
use faultline_harness::Loaded;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

use crate::support::scenario;

fn runner(cases: u32, max_shrink_iters: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, max_shrink_iters, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Every random plan (with faults on `targets`, if given) passes every check of `scenario`.
#[track_caller]
fn holds(scenario: Arc<Loaded>, targets: Option<&[&str]>, cases: u32, faults_max: usize) {
    let result = runner(cases, 64).run(&strategies::plans_on(&scenario.scenario, targets, faults_max), |plan| {
        let report = run_plan(&scenario, plan, RunOptions::default());
        prop_assert!(report.passed, "{:?}", report.outcome);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{}: a plan broke it: {error}", scenario.scenario.name);
    }
}

/// Some random plan violates `invariant`; returns the plan proptest shrank
/// it to. Every shrinking step is a run: `shrink_steps` bounds them.
#[track_caller]
fn finds(scenario: Arc<Loaded>, invariant: &str, cases: u32, faults_max: usize, shrink_steps: u32) -> Plan {
    let result = runner(cases, shrink_steps).run(&strategies::plans(&scenario.scenario, faults_max), |plan| {
        let report = run_plan(&scenario, plan, RunOptions::default());
        prop_assert!(!report.violation_counts.contains_key(invariant));
        Ok(())
    });
    match result {
        Err(TestError::Fail(_, plan)) => plan,
        other => panic!("{}: no plan violated {invariant}: {other:?}", scenario.scenario.name),
    }
}

const SHRINK: u32 = 8;

const CACHE: &str = "name = \"proptest cache\"\nsystem = \"cache\"\nduration = \"4s\"\nheal = \"3s\"\n\
    [workload]\nclients = 2\nrate = \"200/s\"\ndeadline = \"1s\"\n";

#[test]
fn echo_answers_correctly_whatever_the_faults() {
    let scenario = scenario(
        "name = \"proptest echo\"\nsystem = \"echo\"\nduration = \"3s\"\nheal = \"2s\"\n\
         [workload]\nclients = 2\nrate = \"100/s\"\ndeadline = \"300ms\"\n",
    );
    holds(scenario, None, 8, 4);
}

#[test]
fn leases_keep_reads_written_and_staleness_bounded_whatever_the_faults() {
    let source = format!(
        "{CACHE}[knobs]\ninvalidation = \"lease\"\nttl = \"2s\"\nkeys = 10\nzipf = 1.0\nread_ratio = 0.8\n\
         [check]\ninvariants = [\"reads-see-written-values\", \"bounded-staleness\", \"liveness\"]\n"
    );
    holds(scenario(&source), None, 5, 3);
}

#[test]
fn the_textbook_cache_race_is_found_and_needs_no_fault() {
    // Long and busy enough that every seed shows the race.
    let source = "name = \"proptest textbook cache\"\nsystem = \"cache\"\nduration = \"8s\"\nheal = \"2s\"\n\
        [knobs]\ninvalidation = \"delete\"\nkeys = 10\nzipf = 1.0\nread_ratio = 0.8\n\
        [workload]\nclients = 3\nrate = \"300/s\"\ndeadline = \"1s\"\n[check]\ninvariants = [\"reads-see-completed-writes\"]\n";
    let scenario = scenario(source);
    let minimal = finds(Arc::clone(&scenario), "reads-see-completed-writes", 5, 3, SHRINK);
    assert!(minimal.faults.len() <= 1, "proptest shrank it to a small plan: {minimal:?}");
    // The race needs no fault: the same seed without any still shows it.
    let faultless = Plan { faults: Vec::new(), ..minimal };
    let report = run_plan(&scenario, faultless, RunOptions::default());
    assert!(report.violation_counts.contains_key("reads-see-completed-writes"), "{:?}", report.violation_counts);
}

const BREAKER: &str = "name = \"proptest breaker\"\nsystem = \"breaker\"\nduration = \"6s\"\nheal = \"3s\"\n\
    [workload]\nclients = 3\nrate = \"300/s\"\ndeadline = \"2s\"\n";

#[test]
fn one_trial_call_keeps_the_breaker_legal_whatever_the_downstream_does() {
    let source = format!(
        "{BREAKER}[knobs]\nhalf_open_max_calls = 1\nopen_duration = \"500ms\"\n\
         [check]\ninvariants = [\"legal-transitions\", \"fail-fast\", \"half-open-admission\", \"graceful-degradation\"]\n"
    );
    // Graceful degradation is a promise about the downstream (and the
    // fallback cache) failing; a client cut off from the app itself gets no
    // answer from any fallback.
    holds(scenario(&source), Some(&["downstream", "cache"]), 5, 3);
}

#[test]
fn the_chapters_half_open_flaw_is_found_under_random_faults() {
    let source = format!(
        "{BREAKER}[knobs]\nhalf_open_max_calls = \"unlimited\"\nopen_duration = \"500ms\"\nattempts_max = 1\n\
         [check]\ninvariants = [\"half-open-admission\"]\n"
    );
    let minimal = finds(scenario(&source), "half-open-admission", 16, 3, SHRINK);
    assert!(minimal.faults.len() <= 2, "proptest shrank it to a small plan: {minimal:#?}");
}
