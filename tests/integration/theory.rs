//! faultline's figures agree with closed-form theory: one-server
//! availability MTBF / (MTBF + MTTR), M/M/1 time in system 1 / (mu - lambda)
//! with Little's law in every run, the M/M/1/K blocking probability, success
//! and attempts under retries, any-of-n replica availability, the share of
//! keys a reshard moves with modulo and consistent hashing, the app tier's
//! ejection time and availability behind a balancer, and the job queue's
//! M/M/c mean wait (Erlang C) and M/M/c/K rejected share (Erlang B).
//!
//! The short scale runs here; FAULTLINE_LONG=1 runs the long one (many more
//! seeds and five times the simulated time). `faultline calibrate [--long]`
//! prints the same table.
//!
//! Plain `cargo test` runs the five cheapest models (about 30 s of CPU in a
//! debug build). The other four cost about twice as much again, so they are
//! an ignored test that `.ci/run` runs on every change
//! (`cargo test --test integration theory:: -- --ignored`).

use faultline_systems::theory::{self, Check, Scale};

fn scale() -> Scale {
    if std::env::var_os("FAULTLINE_LONG").is_some() {
        theory::LONG
    } else {
        theory::SHORT
    }
}

/// Runs `models` and fails on any check that is off; returns the checks
/// and their table.
fn judged(models: &[&str], expected_checks: usize) -> (Vec<Check>, String) {
    let scale = scale();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let checks = theory::run_models(models, scale, jobs).expect("the theory scenarios are valid");
    let table = theory::markdown(&checks, scale);
    assert_eq!(checks.len(), expected_checks, "{table}");
    for check in &checks {
        assert!(check.passed, "{} is off:\n{table}", check.name);
        assert!(check.measured.n as u64 == scale.seeds, "{table}");
    }
    (checks, table)
}

const CHEAP: &[&str] = &["availability", "mm1", "mm1k", "retries", "resharding"];
const COSTLY: &[&str] = &["replicas", "balancer", "mmc", "mmck"];

#[test]
fn every_model_is_judged_by_one_of_the_two_tests() {
    let mut named: Vec<&str> = CHEAP.iter().chain(COSTLY).copied().collect();
    named.sort_unstable();
    let mut models: Vec<&str> = theory::MODELS.iter().map(|model| model.name).collect();
    models.sort_unstable();
    assert_eq!(named, models);
}

#[test]
fn measured_figures_agree_with_theory() {
    let (checks, table) = judged(CHEAP, 10);
    // The confidence intervals are tight enough to mean something.
    let by_name = theory::by_name(&checks);
    assert!(by_name["M/M/1 mean time in system"].measured.half_width() < 0.05, "{table}");
    assert!(by_name["retries: mean attempts"].measured.half_width() < 0.05, "{table}");
}

#[test]
#[ignore = "about 60 s of CPU in a debug build: .ci/run runs it with --ignored"]
fn replicas_the_balancer_and_the_job_queue_agree_with_theory() {
    judged(COSTLY, 6);
}
