//! Every shipped baseline scenario against its floor (src/bench/floor.rs):
//! the same system code in bare turmoil. Runs alternate seed by seed on one
//! thread, so both see the same machine.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::{registry, InputError, Knobs, Loaded, Registry, System};
use faultline_systems::{breaker::Breaker, cache::Cache, echo::Echo};

use super::floor;

/// The shipped baselines: one per system that has one (calibration's
/// queues are theory checks, not services, and have none).
const BASELINES: &[&str] =
    &["scenarios/echo/baseline.toml", "scenarios/cache/baseline.toml", "scenarios/breaker/baseline.toml"];

/// One baseline's figures.
pub struct Row {
    pub file: &'static str,
    pub hosts: usize,
    /// Simulated seconds per wall second, faultline.
    pub harness: f64,
    /// Simulated seconds per wall second, the floor.
    pub floor: f64,
}

/// The floor of `loaded`, typed: the bench names the shipped systems (the
/// harness never does).
fn floor_run(loaded: &Loaded, seed: u64) -> Result<u64, InputError> {
    fn typed<S: System>(loaded: &Loaded, seed: u64) -> Result<u64, InputError> {
        let scenario = &loaded.scenario;
        let system = Arc::new(S::configure(&Knobs::new(&scenario.file, &scenario.source))?);
        Ok(floor::run(&system, scenario, seed))
    }
    match loaded.scenario.system_name.as_str() {
        "echo" => typed::<Echo>(loaded, seed),
        "cache" => typed::<Cache>(loaded, seed),
        "breaker" => typed::<Breaker>(loaded, seed),
        other => Err(InputError::new(&loaded.scenario.file, format!("no floor for system {other:?}"))),
    }
}

/// Measures each shipped baseline (those present under the current folder)
/// over `seeds` seeds.
pub fn measure(systems: &Registry, seeds: u64) -> Result<Vec<Row>, InputError> {
    let mut rows = Vec::new();
    for file in BASELINES {
        if !Path::new(file).is_file() {
            continue;
        }
        let loaded = Arc::new(registry::load(Path::new(file), systems)?);
        floor::supported(&loaded.scenario).map_err(|why| InputError::new(*file, why))?;
        let options = RunOptions::default();
        // One of each first, so neither pays for warming caches.
        let _ = run_seed(&loaded, 1, options);
        floor_run(&loaded, 1)?;
        let (mut harness, mut bare) = (Duration::ZERO, Duration::ZERO);
        for seed in 1..=seeds {
            let started = Instant::now();
            let report = run_seed(&loaded, seed, options);
            harness += started.elapsed();
            if let Some(why) = report.aborted {
                return Err(InputError::new(*file, format!("seed {seed} did not finish: {why}")));
            }
            let started = Instant::now();
            floor_run(&loaded, seed)?;
            bare += started.elapsed();
        }
        let simulated = loaded.scenario.end().0.as_secs_f64() * seeds as f64;
        rows.push(Row {
            file,
            hosts: loaded.scenario.hosts.len(),
            harness: simulated / harness.as_secs_f64(),
            floor: simulated / bare.as_secs_f64(),
        });
    }
    Ok(rows)
}

pub fn print(rows: &[Row], seeds: u64) {
    println!("\nEvery shipped baseline against its floor: the same system code, hosts, tick, workload and");
    println!("probe in bare turmoil, with nothing recorded or checked (1 thread, {seeds} seeds, alternating):\n");
    println!("| baseline | hosts | faultline sim s / wall s | floor sim s / wall s | harness overhead |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.3}x |",
            row.file,
            row.hosts,
            row.harness,
            row.floor,
            row.floor / row.harness
        );
    }
}
