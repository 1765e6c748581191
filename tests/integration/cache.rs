//! The cache-aside system's claims, end to end: the textbook pattern's race
//! shows in the trace step by step, and coalescing lowers the stampede when
//! the cache crashes.

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::sweep::{sweep, Seeds};

use crate::support::{faultline, load, stdout};

#[test]
fn the_textbook_race_shows_its_steps_in_order_in_the_trace() {
    let output = faultline(&["replay", "scenarios/cache/textbook-stale-set.toml", "--seed", "2", "--trace"]);
    assert_eq!(output.status.code(), Some(0), "the scenario expects the violation");
    let out = stdout(&output);
    // The first violation names the stale read and the write it missed.
    let line = out
        .lines()
        .find(|l| l.contains("reads-see-completed-writes at"))
        .expect("a reads-see-completed-writes violation");
    let number = |after: &str| -> u64 {
        let rest = &line[line.find(after).expect("the violation names it") + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let (key, stale, fresh) = (number(" of key "), number("returned version "), number(" of version "));
    // The first trace line at or after `from` with this event kind and detail.
    let find = |from: usize, kind: &str, detail: &str| -> usize {
        out.lines()
            .enumerate()
            .skip(from)
            .find(|(_, l)| l.split_whitespace().nth(2) == Some(kind) && l.trim_end().ends_with(detail))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {kind} {detail} in the trace after line {from}"))
    };
    // The write, and the old row read last before it.
    let write = find(0, "db.write", &format!("key={key} version={fresh}"));
    let old_read = out
        .lines()
        .enumerate()
        .take(write)
        .filter(|(_, l)| {
            l.split_whitespace().nth(2) == Some("db.read") && l.ends_with(&format!("key={key} version={stale}"))
        })
        .map(|(i, _)| i)
        .last()
        .expect("the old row was read before the write");
    let miss = out
        .lines()
        .enumerate()
        .take(old_read)
        .filter(|(_, l)| l.split_whitespace().nth(2) == Some("cache.miss") && l.ends_with(&format!("key={key}")))
        .map(|(i, _)| i)
        .last()
        .expect("a miss before the old row was read");
    let delete = find(write, "cache.delete", &format!("key={key}"));
    let stale_set = find(delete, "cache.set", &format!("key={key} version={stale}"));
    assert!(miss < old_read && old_read < write && write < delete && delete < stale_set, "steps out of order");
}

fn mean_factor(path: &str) -> (f64, f64, f64) {
    let results = sweep(&[load(path)], &Seeds::Count(6), 2, RunOptions::default(), &|_| {});
    let result = &results[0];
    assert!(result.passed, "{path}: {:?}", result.reasons);
    let factor = &result.figures["system.stampede_factor"];
    (factor.mean, factor.ci_low, factor.ci_high)
}

#[test]
fn coalescing_lowers_the_stampede_after_a_cache_crash() {
    let (without, without_low, _) = mean_factor("scenarios/cache/cache-crash-stampede.toml");
    let (with, _, with_high) = mean_factor("scenarios/cache/cache-crash-coalescing.toml");
    assert!(
        with_high < without_low,
        "coalescing {with:.2} [.., {with_high:.2}] vs none {without:.2} [{without_low:.2}, ..]"
    );
}

#[test]
fn reads_keep_succeeding_from_the_database_while_the_cache_is_unreachable() {
    let report = run_seed(&load("scenarios/cache/cache-partition.toml"), 1, RunOptions::default());
    assert!(report.passed, "{:?}", report.outcome);
    assert!(report.reached["cache.unavailable"] > 100, "apps fell back to the database");
    assert!(report.metrics.availability > 0.995 && report.metrics.outages.is_empty(), "{:?}", report.metrics);
}
