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

use faultline_systems::theory;

#[test]
fn measured_figures_agree_with_theory() {
    let scale = if std::env::var_os("FAULTLINE_LONG").is_some() { theory::LONG } else { theory::SHORT };
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let checks = theory::run_all(scale, jobs).expect("the theory scenarios are valid");
    let table = theory::markdown(&checks, scale);
    assert_eq!(checks.len(), 16, "{table}");
    for check in &checks {
        assert!(check.passed, "{} is off:\n{table}", check.name);
        assert!(check.measured.n as u64 == scale.seeds, "{table}");
    }
    // The confidence intervals are tight enough to mean something.
    let by_name = theory::by_name(&checks);
    assert!(by_name["M/M/1 mean time in system"].measured.half_width() < 0.05, "{table}");
    assert!(by_name["retries: mean attempts"].measured.half_width() < 0.05, "{table}");
}
