//! Hour-long soak runs (issue 17), only with FAULTLINE_LONG=1: an hour of
//! simulated time with partitions must pass on echo and on the cache. They
//! take minutes of wall time in a debug build, so the default suite leaves
//! them out (docs/performance.md has the figures).

use std::time::Duration;

use faultline_harness::drive::{run_seed, RunOptions};

use crate::support::load;

#[test]
fn an_hour_with_partitions_passes_on_echo_and_the_cache() {
    if std::env::var_os("FAULTLINE_LONG").is_none() {
        return;
    }
    for file in ["tests/long/echo-hour.toml", "tests/long/cache-hour.toml"] {
        let loaded = load(file);
        assert!(loaded.scenario.duration.0 >= Duration::from_secs(3600), "{file} is an hour long");
        assert!(!loaded.scenario.chaos.generators.is_empty(), "{file} has partitions");
        let options = RunOptions { wall_limit: Some(Duration::from_secs(3 * 3600)), ..RunOptions::default() };
        let report = run_seed(&loaded, 1, options);
        assert!(report.aborted.is_none(), "{file}: {:?}", report.aborted);
        assert!(report.passed, "{file}: {:?}", report.outcome);
        assert!(report.metrics.requests > 300_000, "{file}: {} requests", report.metrics.requests);
    }
}
