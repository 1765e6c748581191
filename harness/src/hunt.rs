//! Random seeds until the time is spent or a seed fails (`sweep
//! --until-failure --time 10m`): the night-long mode of FoundationDB's and
//! TigerBeetle's simulation fleets.
//!
//! The seeds come from a seed source, a `u64`: draw `i` (from 0) runs
//! scenario `i mod S` of the `S` scenarios with the `i`-th output of the
//! SplitMix64 generator seeded with the source. Each draw is a pure function
//! of the source and its number, so the same source and files give the same
//! pairs in the same order on any machine, whatever the thread count (only
//! how far a night run gets depends on the machine). The CLI prints the
//! source; `--seed-source N` draws the same seeds again.
//!
//! This module prints nothing; it runs seeds through [`crate::drive`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::drive::{run_seed, RunOptions};
use crate::judge::RunReport;
use crate::registry::Loaded;

/// The `i`-th output (from 0) of SplitMix64 seeded with `source`.
pub fn draw(source: u64, i: u64) -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut z = source.wrapping_add(GAMMA.wrapping_mul(i.wrapping_add(1)));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The (scenario index, seed) of draw `i` over `scenarios` scenarios.
pub fn pair(source: u64, scenarios: usize, i: u64) -> (usize, u64) {
    assert!(scenarios > 0, "at least one scenario to draw from");
    ((i % scenarios as u64) as usize, draw(source, i))
}

/// How a hunt ended.
#[derive(Debug)]
pub struct Hunted {
    /// Draws that ran to a report, in draw order (those in flight when the
    /// hunt stopped finish and count).
    pub runs: Vec<(u64, RunReport)>,
    /// The wall time spent.
    pub elapsed: Duration,
}

impl Hunted {
    /// The failed runs, in draw order.
    pub fn failures(&self) -> impl Iterator<Item = &RunReport> {
        self.runs.iter().map(|(_, r)| r).filter(|r| r.outcome.failed())
    }
}

/// Runs draws on `jobs` threads until `time` is spent or a seed fails; each
/// finished run is passed to `progress` (from worker threads) with its wall
/// time. Draws already started when the hunt stops run to their end.
pub fn hunt(
    scenarios: &[Arc<Loaded>],
    source: u64,
    time: Duration,
    jobs: usize,
    options: RunOptions,
    progress: &(dyn Fn(&RunReport, Duration) + Sync),
) -> Hunted {
    // The hunt's own wall clock: outside any simulation.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let runs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) && started.elapsed() < time {
                    let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                    let (scenario, seed) = pair(source, scenarios.len(), i);
                    #[allow(clippy::disallowed_methods)]
                    let run_started = std::time::Instant::now();
                    let report = run_seed(&scenarios[scenario], seed, options);
                    progress(&report, run_started.elapsed());
                    if report.outcome.failed() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    runs.lock().expect("no worker panics while holding the runs").push((i, report));
                }
            });
        }
    });
    let mut runs = runs.into_inner().expect("no poisoned runs");
    runs.sort_by_key(|(i, _)| *i);
    Hunted { runs, elapsed: started.elapsed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_splitmix64() {
        // SplitMix64 seeded with 0: its first outputs.
        assert_eq!(draw(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(draw(0, 1), 0x6E78_9E6A_A1B9_65F4);
        assert_ne!(draw(1, 0), draw(0, 0));
    }

    #[test]
    fn draws_cycle_through_the_scenarios() {
        let scenarios: Vec<usize> = (0..6).map(|i| pair(7, 3, i).0).collect();
        assert_eq!(scenarios, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(pair(7, 3, 4).1, draw(7, 4));
    }
}
