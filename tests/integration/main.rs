//! faultline's integration tests, in one binary (cargo links it once).
//! Scenario files are tested by tests/scenarios.rs, one test per file.

mod breaker; // the breaker: detection and recovery arithmetic, retry storms
mod cache; // cache-aside: the race in the trace, coalescing against the stampede
mod cli; // the built binary: exit codes, error output, replay commands, traces
mod coverage; // every invariant of every system is expected to fire in some shipped scenario
mod determinism; // same seed, same digest: in one process and across processes
mod disk; // the simulated disk: synced writes survive a crash, unsynced ones do not
mod faults; // each fault kind has its effect on echo while it lasts
mod golden; // pinned digests of fixed (scenario, seed) runs: what a seed means changes only on purpose
mod hostile; // systems that block, spin, crawl, hog memory, start threads, leak the wall clock
mod json; // `--format json` of shrink, lincheck, list and report: one typed document on stdout
mod long; // an hour of simulated time with partitions on echo and the cache (FAULTLINE_LONG=1)
mod mutate; // hostile input: shipped scenario files mutated 10,000 ways
mod parse; // bad scenario files and the exact positions reported
mod plan; // the planner: sorted, seeded, independent streams, heal clipping
mod proptests; // random fault plans: hardened variants hold, textbook flaws are found
mod queue; // the job queue: redelivery bounds, jitter against the retry storm, bounded latency, bad knobs
mod readme; // every command of the README runs and exits as it says
mod report; // the report page in headless Chromium (FAULTLINE_BROWSER=1): lanes and bands where the trace puts them
mod robustness; // panicking, failing, hanging and nondeterministic systems
mod scale; // shards merged equal one sweep, resume after a kill, until-failure, JUnit against the XSD, deploy/
mod schema; // the scenario format's JSON Schema: kept fresh, passed by every shipped file, knobs per system
mod shrink; // shrinking failing seeds, written files, recorded regression seeds
mod support; // shared helpers
mod theory; // the metrics against closed-form theory (four models --ignored; FAULTLINE_LONG=1 for the long run)
