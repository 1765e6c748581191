//! The circuit breaker's claims, end to end: detection and recovery times
//! that follow from its configuration, fallbacks that keep every request
//! answered, and jittered, budgeted retries that spare a recovering
//! downstream.

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::sweep::{sweep, Seeds};
use faultline_harness::RunReport;

use crate::support::load;

fn run(path: &str, seed: u64) -> RunReport {
    run_seed(&load(path), seed, RunOptions { keep_records: true, ..RunOptions::default() })
}

/// When the events of `kind` from the app happened, in seconds.
fn times(report: &RunReport, kind: &str) -> Vec<f64> {
    report.timeline.iter().filter(|e| e.kind == kind && e.source == "app").map(|e| e.at as f64 / 1e9).collect()
}

#[test]
fn detection_and_recovery_follow_from_the_configuration() {
    // crash-restart.toml: the downstream is down from 4s to 8s; 5 consecutive
    // failures open the breaker; each call times out after 100ms; it stays
    // open 1s; one trial call in half-open.
    let (crash, restart, timeout, open) = (4.0, 8.0, 0.1, 1.0);
    for seed in 1..=3 {
        let report = run("scenarios/breaker/crash-restart.toml", seed);
        assert!(report.passed, "{:?}", report.outcome);
        let m = &report.metrics;
        // Detection: calls in flight at the crash, or sent after it, time out
        // 100ms after they were sent; at 200 requests/s the fifth comes a few
        // milliseconds after the first. So MTTD is the call timeout, less up
        // to a round trip (calls sent just before the crash), plus a little.
        let mttd = m.mttd_ms.expect("the breaker opened") / 1000.0;
        assert!((timeout - 0.02..timeout + 0.03).contains(&mttd), "MTTD {mttd}");
        let opened = times(&report, "breaker.open")[0];
        assert!((opened - (crash + mttd)).abs() < 0.002, "opened at {opened}");
        // While down, each trial fails after the call timeout and reopens the
        // breaker: half-open at opened + 1s, + 2.1s, + 3.2s, ...; the first
        // half-open after the restart sends the trial that closes it.
        let mut half_open = opened + open;
        while half_open < restart {
            half_open += timeout + open;
        }
        let closed = times(&report, "breaker.close")[0];
        assert!((closed - half_open).abs() < 0.03, "closed at {closed}, predicted {half_open}");
        let recover = m.time_to_recover_ms.expect("the service recovered") / 1000.0;
        assert!((recover - (half_open - restart)).abs() < 0.03, "time to recover {recover}");
        // Served availability holds while fresh availability drops.
        assert_eq!(m.availability, 1.0);
        assert!(m.fresh_availability < 0.8, "fresh {}", m.fresh_availability);
    }
}

#[test]
fn jitter_and_a_budget_spare_the_recovering_downstream() {
    let scenarios =
        [load("scenarios/breaker/retry-storm-naive.toml"), load("scenarios/breaker/retry-storm-jitter-budget.toml")];
    let results = sweep(&scenarios, &Seeds::Count(4), 2, RunOptions::default(), &|_| {});
    assert!(results.iter().all(|r| r.passed));
    let figure = |index: usize, name: &str| results[index].figures[&format!("system.{name}")].clone();
    let (naive, budget) =
        (figure(0, "peak_downstream_per_s_after_recovery"), figure(1, "peak_downstream_per_s_after_recovery"));
    assert!(naive.ci_low > 2.0 * budget.ci_high, "peak after recovery: naive {naive:?}, budget {budget:?}");
    let (naive, budget) = (figure(0, "retry_amplification"), figure(1, "retry_amplification"));
    assert!(naive.mean > 1.5 && budget.mean < 1.1, "amplification: naive {}, budget {}", naive.mean, budget.mean);
}

#[test]
fn an_mttd_slo_without_a_breaker_fails_as_never_detected() {
    // crash-restart.toml with the breaker switched off: nothing detects the
    // crash, so its MTTD SLO cannot pass on missing data.
    let source = std::fs::read_to_string(crate::support::repo_file("scenarios/breaker/crash-restart.toml")).unwrap();
    let off = source.replace("[knobs]\n", "[knobs]\nbreaker = false\n");
    assert!(off.contains("mttd = \"<= 200ms\""), "the scenario keeps its MTTD SLO");
    let report = run_seed(&crate::support::scenario(&off), 1, RunOptions::default());
    assert!(report.outcome.failed(), "{:?}", report.outcome);
    let mttd = report.slo.iter().find(|slo| slo.metric == "mttd").expect("the MTTD SLO is judged");
    assert!(!mttd.met && mttd.measured.is_none(), "{mttd:?}");
    assert!(mttd.message.starts_with("mttd <= 200ms (never detected"), "{}", mttd.message);
}
