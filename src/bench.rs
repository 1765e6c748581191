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
mod document;
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

/// Peak resident memory of this process in KiB, where the OS says (Linux).
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// One side-by-side case: simulated seconds per wall second.
pub struct CaseRow {
    pub name: &'static str,
    pub hosts: usize,
    pub one_thread: f64,
    pub parallel: f64,
}

/// The echo case against the same exchange in bare turmoil: simulated
/// seconds per wall second of each.
pub struct Floor {
    pub harness: f64,
    pub bare: f64,
}

/// Everything `faultline bench` measured.
pub struct Measured {
    pub seeds: u64,
    pub jobs: usize,
    pub cases: Vec<CaseRow>,
    pub floor: Floor,
    pub baselines: Vec<baselines::Row>,
    /// The cost-against-size series and the seeds each point took.
    pub fits: Vec<fits::Series>,
    pub fit_seeds: u64,
    pub peak_memory_kib: Option<u64>,
}

impl Measured {
    /// The ratios the text prints under the cases (1 thread): what, how
    /// many times, and "faster" or "slower".
    pub fn ratios(&self) -> Vec<(&'static str, f64, &'static str)> {
        let single: Vec<f64> = self.cases.iter().map(|c| c.one_thread).collect();
        vec![
            ("5ms tick against 1ms tick (echo)", single[1] / single[0], "faster"),
            ("probe every 1ms against every 100ms (echo)", single[0] / single[2], "slower"),
            ("no probe against a 100ms probe (echo)", single[3] / single[0], "faster"),
            ("cache (9 hosts) against echo (4 hosts)", single[0] / single[4], "slower"),
        ]
    }
}

/// Runs every measurement: the cases on 1 and `jobs` threads, the floor,
/// the baselines and the cost fits.
pub fn measure(registry: &Registry, seeds: u64, jobs: usize) -> Result<Measured, InputError> {
    let mut loaded = Vec::new();
    for case in cases() {
        loaded.push((case.name, Arc::new(registry::parse(&format!("bench: {}", case.name), &case.source, registry)?)));
    }
    let mut rows = Vec::new();
    for (name, scenario) in &loaded {
        let one_thread = speed(scenario, seeds, 1)?;
        let parallel = speed(scenario, seeds, jobs)?;
        rows.push(CaseRow { name, hosts: scenario.scenario.hosts.len(), one_thread, parallel });
    }
    let floor = floor(&loaded[0].1, seeds);
    let baselines = baselines::measure(registry, seeds)?;
    let fits = fits::measure(registry, seeds.min(3))?;
    Ok(Measured {
        seeds,
        jobs,
        cases: rows,
        floor,
        baselines,
        fits,
        fit_seeds: seeds.min(3),
        peak_memory_kib: peak_memory_kib(),
    })
}

/// Measures and prints, as text (Markdown tables) or one JSON document.
pub fn run(registry: &Registry, seeds: u64, jobs: usize, json: bool) -> Result<(), InputError> {
    let measured = measure(registry, seeds, jobs)?;
    if json {
        crate::json::print(&document::document(&measured));
    } else {
        print(&measured);
    }
    Ok(())
}

fn print(m: &Measured) {
    let (seeds, jobs) = (m.seeds, m.jobs);
    println!(
        "Simulated seconds per wall second, {seeds} seeds each (22s of simulated time per seed), release build.\n"
    );
    println!("| case | hosts | 1 thread | {jobs} threads | speedup |");
    println!("|---|---|---|---|---|");
    for c in &m.cases {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2}x |",
            c.name,
            c.hosts,
            c.one_thread,
            c.parallel,
            c.parallel / c.one_thread
        );
    }
    println!("\nRatios from the same run (1 thread):\n");
    println!("| comparison | ratio |");
    println!("|---|---|");
    for (what, ratio, way) in m.ratios() {
        println!("| {what} | {ratio:.2}x {way} |");
    }
    let (harness, floor) = (m.floor.harness, m.floor.bare);
    println!("\nfaultline against bare turmoil (the echo case's exchange, 1 thread, alternating seeds):\n");
    println!("| program | simulated s per wall s |");
    println!("|---|---|");
    println!("| faultline: echo, 4 hosts, 1ms tick, probe every 100ms | {harness:.0} |");
    println!("| bare turmoil: the same hosts, exchange and service code, nothing recorded | {floor:.0} |");
    println!("| harness overhead (bare / faultline) | {:.3}x |", floor / harness);
    baselines::print(&m.baselines, seeds);
    fits::print(&m.fits, m.fit_seeds);
    let memory = m.peak_memory_kib.map_or_else(|| "not reported on this system".to_string(), |kib| format!("{kib} kB"));
    println!("\nPeak resident memory of the whole benchmark process: {memory}.");
}

/// The echo case against the same exchange in bare turmoil (src/bench/bare.rs),
/// one thread, alternating seed by seed so that both see the same machine.
fn floor(echo: &Arc<Loaded>, seeds: u64) -> Floor {
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
    Floor { harness: simulated / harness.as_secs_f64(), bare: simulated / floor.as_secs_f64() }
}
