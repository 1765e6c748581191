//! `faultline bench`: how fast simulations run, measured side by side in one
//! process so that ratios hold on a noisy, shared machine (absolute figures
//! vary from run to run; ratios much less). Prints a Markdown table that
//! docs/performance.md keeps.
//!
//! This is the one place outside tests that times things with the wall
//! clock; it never runs inside a simulation.
#![allow(clippy::disallowed_methods)]

mod bare;
mod baselines;
mod fits;
mod floor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_harness::drive::RunOptions;
use faultline_harness::registry;
use faultline_harness::sweep::{sweep, Seeds};
use faultline_harness::{InputError, Loaded, Registry};

struct Case {
    name: &'static str,
    source: String,
}

fn echo(tick: &str, probe: &str) -> String {
    format!(
        "name = \"bench echo\"\nsystem = \"echo\"\nduration = \"20s\"\nheal = \"2s\"\ntick = \"{tick}\"\n\
         [workload]\nclients = 2\nrate = \"200/s\"\ndeadline = \"500ms\"\n[metrics]\nprobe_interval = \"{probe}\"\n"
    )
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "echo, 4 hosts, 1ms tick", source: echo("1ms", "100ms") },
        Case { name: "echo, 4 hosts, 5ms tick", source: echo("5ms", "100ms") },
        Case { name: "echo, probe every 1ms", source: echo("1ms", "1ms") },
        Case { name: "echo, no probe", source: echo("1ms", "0s") },
        Case {
            name: "cache, 9 hosts, 300 req/s",
            source: "name = \"bench cache\"\nsystem = \"cache\"\nduration = \"20s\"\nheal = \"2s\"\n\
                     [knobs]\ninvalidation = \"lease\"\nkeys = 20\nzipf = 1.0\nread_ratio = 0.8\n\
                     [workload]\nclients = 4\nrate = \"300/s\"\ndeadline = \"1s\"\n"
                .into(),
        },
        Case {
            name: "breaker, 6 hosts, 200 req/s",
            source: "name = \"bench breaker\"\nsystem = \"breaker\"\nduration = \"20s\"\nheal = \"2s\"\n\
                     [workload]\nclients = 2\nrate = \"200/s\"\ndeadline = \"2s\"\n"
                .into(),
        },
    ]
}

/// Simulated seconds per wall second of `seeds` runs on `jobs` threads.
fn speed(loaded: &Arc<Loaded>, seeds: u64, jobs: usize) -> Result<f64, InputError> {
    let scenario = &loaded.scenario;
    let options = RunOptions { wall_limit: Some(Duration::from_secs(300)), ..RunOptions::default() };
    let started = Instant::now();
    let results = sweep(std::slice::from_ref(loaded), &Seeds::Count(seeds), jobs, options, &|_| {});
    let wall = started.elapsed();
    if let Some(report) = results[0].reports.iter().find(|r| r.aborted.is_some()) {
        return Err(InputError::new(
            &scenario.file,
            format!(
                "a benchmark run did not finish: seed {}: {}",
                report.seed,
                report.aborted.as_deref().unwrap_or("")
            ),
        ));
    }
    let simulated = scenario.end().0.as_secs_f64() * seeds as f64;
    Ok(simulated / wall.as_secs_f64())
}

/// Peak resident memory of this process, where the OS says (Linux).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "not reported on this system".into())
}

pub fn run(registry: &Registry, seeds: u64, jobs: usize) -> Result<(), InputError> {
    let mut loaded = Vec::new();
    for case in cases() {
        loaded.push((case.name, Arc::new(registry::parse(&format!("bench: {}", case.name), &case.source, registry)?)));
    }
    println!(
        "Simulated seconds per wall second, {seeds} seeds each (22s of simulated time per seed), release build.\n"
    );
    println!("| case | hosts | 1 thread | {jobs} threads | speedup |");
    println!("|---|---|---|---|---|");
    let mut single = Vec::new();
    for (name, scenario) in &loaded {
        let one = speed(scenario, seeds, 1)?;
        let many = speed(scenario, seeds, jobs)?;
        single.push(one);
        println!("| {name} | {} | {one:.0} | {many:.0} | {:.2}x |", scenario.scenario.hosts.len(), many / one);
    }
    println!("\nRatios from the same run (1 thread):\n");
    println!("| comparison | ratio |");
    println!("|---|---|");
    println!("| 5ms tick against 1ms tick (echo) | {:.2}x faster |", single[1] / single[0]);
    println!("| probe every 1ms against every 100ms (echo) | {:.2}x slower |", single[0] / single[2]);
    println!("| no probe against a 100ms probe (echo) | {:.2}x faster |", single[3] / single[0]);
    println!("| cache (9 hosts) against echo (4 hosts) | {:.2}x slower |", single[0] / single[4]);
    print_floor(&loaded[0].1, seeds);
    baselines::print(&baselines::measure(registry, seeds)?, seeds);
    fits::print(&fits::measure(registry, seeds.min(3))?, seeds.min(3));
    println!("\nPeak resident memory of the whole benchmark process: {}.", peak_memory());
    Ok(())
}

/// The echo case against the same exchange in bare turmoil (src/bench/bare.rs),
/// one thread, alternating seed by seed so that both see the same machine.
fn print_floor(echo: &Arc<Loaded>, seeds: u64) {
    let shape = bare::Shape {
        seconds: 22,
        tick: Duration::from_millis(1),
        clients: 2,
        rate_per_s: 200.0,
        deadline: Duration::from_millis(500),
        probe_every: Some(Duration::from_millis(100)),
    };
    let options = RunOptions::default();
    // One of each first, so neither pays for warming caches.
    let _ = faultline_harness::drive::run_seed(echo, 1, options);
    let _ = bare::run(shape, 1);
    let (mut harness, mut floor) = (Duration::ZERO, Duration::ZERO);
    for seed in 1..=seeds {
        let started = Instant::now();
        let report = faultline_harness::drive::run_seed(echo, seed, options);
        harness += started.elapsed();
        assert!(report.aborted.is_none(), "the echo case ran to its end");
        let started = Instant::now();
        let _answered = bare::run(shape, seed);
        floor += started.elapsed();
    }
    let simulated = (shape.seconds * seeds) as f64;
    let (harness, floor) = (simulated / harness.as_secs_f64(), simulated / floor.as_secs_f64());
    println!("\nfaultline against bare turmoil (the echo case's exchange, 1 thread, alternating seeds):\n");
    println!("| program | simulated s per wall s |");
    println!("|---|---|");
    println!("| faultline: echo, 4 hosts, 1ms tick, probe every 100ms | {harness:.0} |");
    println!("| bare turmoil: the same hosts, exchange and service code, nothing recorded | {floor:.0} |");
    println!("| harness overhead (bare / faultline) | {:.3}x |", floor / harness);
}
