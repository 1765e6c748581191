//! What a run will cost, told before it starts: a scenario whose workload
//! cannot finish in reasonable time or memory (64 clients at 100,000/s for
//! an hour) gets an estimate and a warning instead of a silent, endless run
//! that the wall-clock watchdog would end as `slow`.
//!
//! The model is turmoil's: a run costs per host per tick (every step runs
//! every host) plus per request (a connection, frames, a recorded
//! operation), and memory grows with the operations a run records. Its
//! constants are measured on the shipped scenarios in a release build
//! (docs/performance.md); a debug build is several times slower. It is an
//! order of magnitude, not a promise.

use std::time::Duration;

use faultline_harness::scenario::Load;
use faultline_harness::Scenario;

/// Wall time per host per tick, release build (turmoil's step, an idle host).
const HOST_TICK_SECONDS: f64 = 1.2e-6;
/// Wall time per request, release build (connect, a request and an answer,
/// the recorded operation): from the 1 ms probe's cost against a 100 ms one.
const REQUEST_SECONDS: f64 = 7.5e-6;
/// Memory per recorded operation (history, samples, the run's trace share):
/// an hour of echo at 100/s (397,000 operations with the probe) peaked at 166 MB.
const REQUEST_BYTES: f64 = 420.0;
/// Above this much estimated memory, a run is worth a warning.
const MEMORY_WARN_BYTES: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// A run estimated to take longer than this is worth a warning even under
/// the wall-clock limit.
const WALL_WARN: Duration = Duration::from_secs(600);

/// What one seed of a scenario is expected to cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Client operations (the probe's included).
    pub requests: f64,
    /// Host-ticks: hosts times simulation steps.
    pub host_ticks: f64,
    /// Wall time in a release build.
    pub wall: Duration,
    /// Peak memory of the recording.
    pub bytes: f64,
}

/// The estimate for one seed of `scenario`.
pub fn estimate(scenario: &Scenario) -> Estimate {
    let end = scenario.end();
    let seconds = end.0.as_secs_f64();
    let workload = match &scenario.workload.load {
        Load::Open { .. } => scenario.workload.expected_requests(faultline_harness::units::Dur::ZERO, end),
        Load::Closed { think, .. } => {
            // A session sends at most one operation per think time (at least a tick).
            let gap = think.min.0.max(scenario.tick.0).as_secs_f64();
            Some(f64::from(scenario.workload.clients) * seconds / gap)
        }
    };
    let probe = scenario.metrics.probe_interval.map_or(0.0, |every| seconds / every.0.as_secs_f64().max(1e-3));
    let requests = workload.unwrap_or(0.0) + probe;
    let host_ticks = scenario.hosts.len() as f64 * seconds / scenario.tick.0.as_secs_f64();
    let wall = host_ticks * HOST_TICK_SECONDS + requests * REQUEST_SECONDS;
    Estimate {
        requests,
        host_ticks,
        wall: Duration::try_from_secs_f64(wall).unwrap_or(Duration::MAX),
        bytes: requests * REQUEST_BYTES,
    }
}

/// A warning for a run too large to finish well, or `None`.
pub fn warning(scenario: &Scenario, wall_limit: Duration) -> Option<String> {
    let cost = estimate(scenario);
    let too_slow = cost.wall > wall_limit.min(WALL_WARN);
    let too_big = cost.bytes > MEMORY_WARN_BYTES;
    if !too_slow && !too_big {
        return None;
    }
    let mut message = format!(
        "{}: a large workload: about {:.3e} requests and {:.3e} host-ticks per seed, an estimated {} of wall \
         time per seed in a release build (a debug build is several times slower) and {:.1} GiB of memory",
        scenario.file,
        cost.requests,
        cost.host_ticks,
        faultline_harness::units::format_duration(Duration::from_secs(cost.wall.as_secs().max(1))),
        cost.bytes / (1024.0 * 1024.0 * 1024.0),
    );
    if cost.wall > wall_limit {
        message.push_str(&format!(
            "; the wall-clock limit of {}s would stop it as slow (--wall-limit)",
            wall_limit.as_secs()
        ));
    }
    message.push_str("; lower the rate, the clients or the duration, or raise the tick");
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::registry;

    fn scenario(workload: &str, duration: &str) -> Scenario {
        let source = format!(
            "name = \"x\"\nsystem = \"echo\"\nduration = \"{duration}\"\nheal = \"5s\"\n[workload]\n{workload}\n"
        );
        registry::parse("x.toml", &source, &faultline_systems::registry()).expect("parses").scenario
    }

    #[test]
    fn a_huge_workload_is_warned_about_and_a_shipped_size_is_not() {
        let huge = scenario("clients = 64\nrate = \"100000/s\"\ndeadline = \"1s\"", "3600s");
        let cost = estimate(&huge);
        assert!(cost.requests > 3.5e8 && cost.wall > Duration::from_secs(1800), "{cost:?}");
        let message = warning(&huge, Duration::from_secs(300)).expect("a warning");
        assert!(message.contains("wall-clock limit of 300s") && message.contains("GiB"), "{message}");
        let small = scenario("clients = 2\nrate = \"200/s\"", "10s");
        assert_eq!(warning(&small, Duration::from_secs(300)), None, "{:?}", estimate(&small));
        // An hour of echo at 100/s is long but fine: no warning.
        let soak = scenario("clients = 1\nrate = \"100/s\"", "3600s");
        assert_eq!(warning(&soak, Duration::from_secs(3600)), None, "{:?}", estimate(&soak));
    }
}
