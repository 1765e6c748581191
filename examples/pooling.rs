//! Per-request against pooled connections, per system, side by side in one
//! process (docs/performance.md, "Pooled connections"): each system's
//! baseline scenario run with `connections = "per-request"` and then
//! `"pooled"` over the same seeds, alternately, on one thread.
//!
//! `cargo run --release --example pooling [SEEDS]` prints the table;
//! `cargo run --release --example pooling -- --hour` runs the echo hour
//! (tests/long/echo-hour.toml) both ways and prints its leaked sockets (the
//! connects that failed or were cancelled, each of which keeps its client
//! port in turmoil 0.7.2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::Loaded;
use faultline_systems::kit::request::connects_attempted;

const BASELINES: &[&str] = &[
    "scenarios/echo/baseline.toml",
    "scenarios/cache/baseline.toml",
    "scenarios/breaker/baseline.toml",
    "scenarios/store/baseline.toml",
    "scenarios/queue/baseline.toml",
    "scenarios/app-tier/baseline.toml",
];

/// The scenario at `path` with `connections` set in its `[knobs]`.
fn load(path: &str, connections: &str) -> Arc<Loaded> {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let line = format!("connections = \"{connections}\"\n");
    let source = match source.find("[knobs]\n") {
        Some(at) => format!("{}{line}{}", &source[..at + 8], &source[at + 8..]),
        None => format!("{source}\n[knobs]\n{line}"),
    };
    let loaded = faultline_harness::registry::parse(path, &source, &faultline_systems::registry());
    Arc::new(loaded.unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Totals over seeds.
#[derive(Default)]
struct Row {
    wall: Duration,
    simulated: Duration,
    requests: u64,
    served: u64,
    p50: f64,
    p99: f64,
    availability: f64,
    connects: u64,
    failed_connects: u64,
    passed: u32,
}

// The wall time of a whole run, measured outside the simulation.
#[allow(clippy::disallowed_methods)]
fn run(loaded: &Arc<Loaded>, seed: u64, row: &mut Row, seeds: u64) {
    let (connects, failed) = connects_attempted();
    let started = Instant::now();
    let options = RunOptions { wall_limit: Some(Duration::from_secs(3 * 3600)), ..RunOptions::default() };
    let report = run_seed(loaded, seed, options);
    row.wall += started.elapsed();
    row.simulated += loaded.scenario.duration.0 + loaded.scenario.heal.0;
    let metrics = &report.metrics;
    row.requests += metrics.requests;
    row.served += metrics.ok + metrics.degraded;
    row.p50 += metrics.latency.p50_ms / seeds as f64;
    row.p99 += metrics.latency.p99_ms / seeds as f64;
    row.availability += metrics.availability / seeds as f64;
    let (after, failed_after) = connects_attempted();
    row.connects += after - connects;
    row.failed_connects += failed_after - failed;
    row.passed += u32::from(report.passed && report.aborted.is_none());
}

fn print(name: &str, mode: &str, row: &Row, seeds: u64) {
    println!(
        "| {name} | {mode} | {:.2} | {:.0} | {} of {} | {:.2} | {:.2} | {:.3}% | {} ({} failed) | {} of {seeds} |",
        row.wall.as_secs_f64(),
        row.simulated.as_secs_f64() / row.wall.as_secs_f64(),
        row.served,
        row.requests,
        row.p50,
        row.p99,
        row.availability * 100.0,
        row.connects,
        row.failed_connects,
        row.passed,
    );
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.iter().any(|a| a == "--hour") {
        let path = "tests/long/echo-hour.toml";
        println!("| run | connections | wall s | sim s / wall s | served | p50 ms | p99 ms | availability | connects (failed: leaked sockets) | passed |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for mode in ["per-request", "pooled"] {
            let mut row = Row::default();
            run(&load(path, mode), 1, &mut row, 1);
            print(path, mode, &row, 1);
        }
        return;
    }
    let seeds: u64 = arguments.first().map_or(4, |s| s.parse().expect("SEEDS is a number"));
    println!("| baseline | connections | wall s | sim s / wall s | served | p50 ms | p99 ms | availability | connects (failed) | passed |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for path in BASELINES {
        let loaded = [load(path, "per-request"), load(path, "pooled")];
        let mut rows = [Row::default(), Row::default()];
        // Alternately, seed by seed, so the machine's load falls on both alike.
        for seed in 1..=seeds {
            for (loaded, row) in loaded.iter().zip(rows.iter_mut()) {
                run(loaded, seed, row, seeds);
            }
        }
        print(path, "per-request", &rows[0], seeds);
        print(path, "pooled", &rows[1], seeds);
    }
}
