//! The job queue's claims, end to end: a crashed worker's job runs again
//! within lock_duration + stalled_interval, jitter spares a recovering sink,
//! a bounded queue keeps its latency where an unbounded one does not, and
//! knobs that cannot work are input errors that name the knob.

use faultline_harness::drive::RunOptions;
use faultline_harness::stats::Summary;
use faultline_harness::sweep::{sweep, ScenarioResult, Seeds};

use crate::support::{faultline, load, parse, stderr};

fn run(paths: &[&str], seeds: u64) -> Vec<ScenarioResult> {
    let scenarios: Vec<_> = paths.iter().map(|path| load(path)).collect();
    let results = sweep(&scenarios, &Seeds::Count(seeds), 2, RunOptions::default(), &|_| {});
    for result in &results {
        assert!(result.passed, "{} failed: {:?}", result.file, result.reasons);
    }
    results
}

fn figure(result: &ScenarioResult, name: &str) -> Summary {
    result
        .figures
        .get(&format!("system.{name}"))
        .unwrap_or_else(|| panic!("{} has no figure {name}", result.file))
        .clone()
}

#[test]
fn a_crashed_workers_job_runs_again_within_its_lease_and_the_stalled_check() {
    // worker-crashes.toml: lock_duration 500ms, stalled_interval 500ms; a
    // worker's lease renewed just before its crash lapses 500ms later, and
    // the check that finds it runs up to 500ms after that.
    let results = run(&["scenarios/queue/worker-crashes.toml"], 3);
    let (delay, bound) = (figure(&results[0], "redelivery_delay_max_s"), figure(&results[0], "redelivery_bound_s"));
    assert!(delay.max <= bound.max, "redelivery took up to {}s; the bound is {}s", delay.max, bound.max);
    // A lease cannot lapse before lock_duration / 2 after the crash (renewed every half).
    let mean = figure(&results[0], "redelivery_delay_mean_s");
    assert!(mean.min >= 0.25, "a job ran again {}s after its worker crashed", mean.min);
}

#[test]
fn full_jitter_spares_the_recovering_sink_the_retry_storm() {
    let results =
        run(&["scenarios/queue/retry-storm-no-jitter.toml", "scenarios/queue/retry-storm-full-jitter.toml"], 4);
    let (none, full) = (&results[0], &results[1]);
    let (none_peak, full_peak) =
        (figure(none, "sink_peak_after_recovery_per_s"), figure(full, "sink_peak_after_recovery_per_s"));
    assert!(none_peak.ci_low > 1.5 * full_peak.ci_high, "sink peak: none {none_peak:?}, full {full_peak:?}");
    let (none_ready, full_ready) =
        (figure(none, "ready_peak_after_recovery_per_s"), figure(full, "ready_peak_after_recovery_per_s"));
    assert!(none_ready.ci_low > 2.0 * full_ready.ci_high, "ready peak: none {none_ready:?}, full {full_ready:?}");
}

#[test]
fn a_bounded_queue_keeps_job_latency_where_an_unbounded_one_lets_it_grow() {
    let results = run(&["scenarios/queue/overload-unbounded.toml", "scenarios/queue/overload-bounded.toml"], 2);
    let (unbounded, bounded) = (figure(&results[0], "job_latency_p99_s"), figure(&results[1], "job_latency_p99_s"));
    assert!(unbounded.min > 3.0 && bounded.max < 1.0, "p99 job latency: unbounded {unbounded:?}, bounded {bounded:?}");
    let rejected = figure(&results[1], "rejection_rate");
    assert!(rejected.min > 0.3, "the bounded queue refused {rejected:?} of submits");
    assert_eq!(figure(&results[0], "rejection_rate").max, 0.0);
}

#[test]
fn knobs_that_cannot_work_are_input_errors_naming_the_knob() {
    let file = |knobs: &str| {
        format!("name = \"q\"\nsystem = \"queue\"\nduration = \"2s\"\n[workload]\nrate = \"10/s\"\n[knobs]\n{knobs}\n")
    };
    for (knobs, expected) in [
        ("attempts = 0", "test.toml:7:12: attempts must be between 1 and 100, found 0"),
        ("capacity = 0", "test.toml:7:12: capacity must be between 1 and 1000000, found 0"),
        (
            "backoff_base = \"1s\"\nbackoff_cap = \"100ms\"",
            "test.toml:8:15: backoff_cap cannot be used with backoff_base",
        ),
        ("stalled_interval = \"0s\"", "test.toml:7:20: stalled_interval must be longer than zero"),
    ] {
        let Err(error) = parse(&file(knobs)) else { panic!("{knobs:?} loaded") };
        assert!(error.to_string().starts_with(expected), "{knobs:?}: {error}");
    }
    // And from the command line: exit code 2, the knob named, no run.
    let path = std::env::temp_dir().join(format!("faultline-queue-bad-{}.toml", std::process::id()));
    std::fs::write(&path, file("attempts = 0")).expect("a temporary file");
    let output = faultline(&["run", path.to_str().expect("a UTF-8 path"), "--seed", "1"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("attempts must be between 1 and 100, found 0"), "{}", stderr(&output));
}
