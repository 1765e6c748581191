//! The faultline command line: raw arguments -> validated inputs -> one
//! `match` on the command -> one place that prints errors and picks the
//! exit code. Everything else lives in the harness and the systems.
#![forbid(unsafe_code)]

#[cfg(not(tokio_unstable))]
compile_error!("build with --cfg tokio_unstable (set in .cargo/config.toml; a RUSTFLAGS variable replaces it)");

mod bench;
mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use faultline_harness::scenario::{self, Scenario};
use faultline_harness::sweep::{self, Seeds};
use faultline_harness::{InputError, Registry, RunOptions, RunReport, SeedOutcome};

const EXIT_CODES: &str = "\
Exit codes:
  0  every check passed and every `expect` was met
  1  a check failed: a violation, an SLO breach, an expected violation not found, a panic or hang
  2  bad input: a scenario file, a flag or a seed that is not valid";

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Deterministic chaos-engineering harness: runs services in a simulated network under seeded faults",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed of a scenario: settings, then a summary and a verdict.
    #[command(after_help = EXIT_CODES)]
    Run {
        scenario: PathBuf,
        /// The seed (any u64); the same seed gives the same run, bit for bit.
        /// Default: the file's `seed`, else 1.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Run the seed twice and fail, naming the first differing event, if the runs differ.
        #[arg(long)]
        check_determinism: bool,
        /// Wall-clock limit of the run in seconds (a busy loop in host code is reported, not waited for).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
    },
    /// Run a seed again, optionally with its event trace.
    #[command(after_help = EXIT_CODES)]
    Replay {
        scenario: PathBuf,
        /// The seed to replay (default: the file's `seed`; required otherwise).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the trace: faults, crashes, system events and every operation, in time order.
        #[arg(long)]
        trace: bool,
        /// Write the trace as JSON lines to this file.
        #[arg(long, value_name = "FILE")]
        trace_out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
    },
    /// Run scenarios (files or folders of *.toml) over many seeds.
    #[command(after_help = EXIT_CODES)]
    Sweep {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Run seeds 1..=N of every scenario (default: each file's `seeds`).
        #[arg(long, conflicts_with = "seed_range", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        seeds: Option<u64>,
        /// Run the seeds A..B (B excluded) of every scenario.
        #[arg(long, value_name = "A..B", value_parser = parse_seed_range)]
        seed_range: Option<std::ops::Range<u64>>,
        /// Worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
        /// Run every seed twice and fail seeds whose runs differ.
        #[arg(long)]
        check_determinism: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Wall-clock limit of each run in seconds.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
        /// Append every failing seed to a `.regressions` file beside its
        /// scenario; `cargo test` replays those seeds first.
        #[arg(long)]
        record_regressions: bool,
    },
    /// Validate scenario files (or folders of them) without running anything.
    #[command(after_help = EXIT_CODES)]
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Shrink a failing seed to a minimal fault schedule and workload, written
    /// as a standalone scenario file that reproduces the same violation.
    #[command(after_help = EXIT_CODES)]
    Shrink {
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        /// The invariant to keep violating (default: the first the seed violates).
        #[arg(long)]
        invariant: Option<String>,
        /// Runs the search may make at most.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        max_runs: u64,
        /// Wall-clock budget of the search, in seconds.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
        /// Where to write the result (default: scenarios/regressions/<name>-seed<N>.toml).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
    },
    /// Measure simulation speed side by side (per system, threads, tick,
    /// probe) and print the table docs/performance.md keeps.
    Bench {
        /// Seeds per case.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=1000))]
        seeds: u64,
        /// Threads for the parallel column (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
    },
    /// List systems, their knobs, invariants and events, fault kinds and SLO metrics.
    List,
    /// Hold the metrics against closed-form theory (availability, M/M/1,
    /// M/M/1/K, retries, replicas) and print the table docs/metrics.md shows.
    #[command(after_help = EXIT_CODES)]
    Calibrate {
        /// Many more seeds and five times the simulated time (minutes, not seconds).
        #[arg(long)]
        long: bool,
        /// Worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
    },
}

fn parse_seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (low, high) =
        text.split_once("..").ok_or_else(|| format!("expected a seed range A..B such as 1..101, found {text:?}"))?;
    let low: u64 =
        low.trim().parse().map_err(|_| format!("{low:?} is not a seed (a whole number from 0 to 2^64-1)"))?;
    let high: u64 =
        high.trim().parse().map_err(|_| format!("{high:?} is not a seed (a whole number from 0 to 2^64-1)"))?;
    if low >= high {
        return Err(format!("the range {text} is empty: B must be above A (B is excluded)"));
    }
    if high - low > faultline_harness::scenario::SEEDS_MAX {
        return Err(format!("the range {text} holds more than {} seeds", faultline_harness::scenario::SEEDS_MAX));
    }
    Ok(low..high)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let registry = faultline_systems::registry();
    match execute(cli.command, &registry) {
        Ok(code) => code,
        Err(Failure::Input(errors)) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            ExitCode::from(2)
        }
        Err(Failure::Other(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

enum Failure {
    Input(Vec<InputError>),
    Other(anyhow::Error),
}

impl From<InputError> for Failure {
    fn from(error: InputError) -> Failure {
        Failure::Input(vec![error])
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::Other(error)
    }
}

fn verdict_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn execute(command: Command, registry: &Registry) -> Result<ExitCode, Failure> {
    match command {
        Command::Run { scenario, seed, format, check_determinism, wall_limit } => {
            let scenario = Arc::new(scenario::load(&scenario, registry)?);
            let seed = seed.or(scenario.seed).unwrap_or(1);
            let options = RunOptions {
                keep_records: false,
                wall_limit: Some(Duration::from_secs(wall_limit)),
                check_determinism,
            };
            let plan = faultline_harness::Plan::expand(&scenario, seed);
            if format == Format::Text {
                report::print_header("run", &scenario, &plan);
            }
            let report = faultline_harness::run::run_seed(&scenario, seed, options);
            print_run(&scenario, &report, format);
            Ok(verdict_code(report.passed))
        }
        Command::Replay { scenario, seed, trace, trace_out, format, wall_limit } => {
            let scenario = Arc::new(scenario::load(&scenario, registry)?);
            let Some(seed) = seed.or(scenario.seed) else {
                return Err(Failure::Input(vec![InputError::new(
                    &scenario.file,
                    "replay needs a seed: the file pins none",
                )
                .with_help("pass --seed N (a failure's `reproduce:` line names it)")]));
            };
            let options = RunOptions {
                keep_records: trace || trace_out.is_some(),
                wall_limit: Some(Duration::from_secs(wall_limit)),
                check_determinism: false,
            };
            let plan = faultline_harness::Plan::expand(&scenario, seed);
            if format == Format::Text {
                report::print_header("replay", &scenario, &plan);
            }
            let report = faultline_harness::run::run_seed(&scenario, seed, options);
            if let Some(path) = &trace_out {
                write_trace(path, &report).map_err(Failure::Other)?;
            }
            if trace && format == Format::Text {
                report::print_timeline(&report);
            }
            print_run(&scenario, &report, format);
            if let Some(path) = &trace_out {
                eprintln!("trace: {} events written to {}", report.timeline.len(), path.display());
            }
            Ok(verdict_code(report.passed))
        }
        Command::Sweep {
            paths,
            seeds,
            seed_range,
            jobs,
            check_determinism,
            format,
            wall_limit,
            record_regressions,
        } => {
            let scenarios = load_all(&paths, registry)?;
            let seeds = match (seeds, seed_range) {
                (Some(count), _) => Seeds::Count(count),
                (None, Some(range)) => Seeds::Range(range),
                (None, None) => Seeds::FromScenario,
            };
            let jobs = jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize);
            let options = RunOptions {
                keep_records: false,
                wall_limit: Some(Duration::from_secs(wall_limit)),
                check_determinism,
            };
            let total: usize = scenarios.iter().map(|s| seeds.for_scenario(s).len()).sum();
            let bar =
                indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} runs  {elapsed} elapsed, ~{eta} left  {msg}",
                )
                .expect("a valid progress template"),
            );
            // The sweep's own wall time, for the summary line: outside any simulation.
            #[allow(clippy::disallowed_methods)]
            let started = Instant::now();
            let progress = |report: &RunReport| {
                if matches!(report.outcome, SeedOutcome::Failed { .. }) {
                    bar.set_message(format!("last failure: {} seed {}", report.scenario, report.seed));
                }
                bar.inc(1);
            };
            let results = sweep::sweep(&scenarios, &seeds, jobs, options, &progress);
            bar.finish_and_clear();
            let passed = results.iter().all(|r| r.passed);
            if record_regressions {
                record(&results)?;
            }
            match format {
                Format::Text => report::print_sweep(&results, started.elapsed(), jobs),
                Format::Json => {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer(&mut out, &serde_json::json!({ "passed": passed, "scenarios": results }))
                        .map_err(|e| Failure::Other(e.into()))?;
                    let _ = writeln!(out);
                }
            }
            Ok(verdict_code(passed))
        }
        Command::Check { paths } => {
            let scenarios = load_all(&paths, registry)?;
            for scenario in &scenarios {
                println!(
                    "ok  {}  ({}: {} seeds, {} explicit faults, {} chaos generators)",
                    scenario.file,
                    scenario.system_name,
                    scenario.seeds,
                    scenario.faults.len(),
                    scenario.chaos.generators.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shrink { scenario, seed, invariant, max_runs, timeout, out, wall_limit } => {
            shrink(&scenario, seed, invariant, max_runs, timeout, out, wall_limit, registry)
        }
        Command::Bench { seeds, jobs } => {
            let jobs = jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize);
            bench::run(registry, seeds, jobs)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            report::print_list(registry);
            Ok(ExitCode::SUCCESS)
        }
        Command::Calibrate { long, jobs } => {
            use faultline_systems::theory;
            let scale = if long { theory::LONG } else { theory::SHORT };
            let jobs = jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize);
            eprintln!(
                "running the theory checks at scale {:?} ({} seeds each) on {jobs} threads",
                scale.name, scale.seeds
            );
            let checks = theory::run_all(scale, jobs)?;
            print!("{}", theory::markdown(&checks, scale));
            Ok(verdict_code(checks.iter().all(|c| c.passed)))
        }
    }
}

fn print_run(scenario: &Scenario, report: &RunReport, format: Format) {
    match format {
        Format::Text => report::print_result(scenario, report),
        Format::Json => {
            let json = serde_json::to_string(report).expect("reports serialize");
            println!("{json}");
        }
    }
}

fn write_trace(path: &Path, report: &RunReport) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::File::create(path).with_context(|| format!("cannot write the trace to {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for event in &report.timeline {
        serde_json::to_writer(&mut out, event)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// Scenario files named by `paths` (folders are searched for *.toml), sorted
/// within each folder. Every bad file is reported, not just the first.
fn load_all(paths: &[PathBuf], registry: &Registry) -> Result<Vec<Arc<Scenario>>, Failure> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            collect_toml(path, &mut files).map_err(|e| Failure::Other(e.into()))?;
            if files.len() == before {
                errors.push(InputError::new(path.display().to_string(), "no scenario files (*.toml) in this folder"));
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut scenarios = Vec::new();
    for file in files {
        match scenario::load(&file, registry) {
            Ok(scenario) => scenarios.push(Arc::new(scenario)),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(Failure::Input(errors))
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_toml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn shrink(
    path: &Path,
    seed: u64,
    invariant: Option<String>,
    max_runs: u64,
    timeout: u64,
    out: Option<PathBuf>,
    wall_limit: u64,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    use faultline_harness::shrink::{self, ShrinkOptions};
    let scenario = Arc::new(scenario::load(path, registry)?);
    if let Some(name) = &invariant {
        if !scenario.check.invariants.contains(name) {
            return Err(Failure::Input(vec![InputError::new(
                &scenario.file,
                format!("--invariant {name:?} is not checked by this scenario"),
            )
            .with_help(format!("it checks: {}", scenario.check.invariants.join(", ")))]));
        }
    }
    let options = ShrinkOptions {
        max_runs: max_runs as usize,
        timeout: Duration::from_secs(timeout),
        invariant,
        wall_limit: Duration::from_secs(wall_limit),
    };
    eprintln!("shrinking {} seed {seed} (at most {max_runs} runs, {timeout}s)", scenario.file);
    let mut progress = |p: &shrink::Progress| {
        eprintln!("  run {:>4}  {:<14} {}   [{:.1}s]", p.runs, p.step, p.size, p.elapsed.as_secs_f64());
    };
    let result = match shrink::shrink(&scenario, seed, &options, &mut progress) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    let stem = path.file_stem().map_or("scenario".to_string(), |s| s.to_string_lossy().into_owned());
    let out = out.unwrap_or_else(|| PathBuf::from("scenarios/regressions").join(format!("{stem}-seed{seed}.toml")));
    let expect = match &scenario.check.expect {
        faultline_harness::scenario::Expect::Violation(name) if *name == result.invariant => {
            scenario.check.expect.clone()
        }
        _ => faultline_harness::scenario::Expect::Pass,
    };
    let header = vec![
        format!(
            "Shrunk by `faultline shrink {} --seed {seed}`: it reproduces a violation of {}.",
            scenario.file, result.invariant
        ),
        format!("Original: {} seed {seed}, {}.", scenario.file, result.original),
        format!(
            "Shrunk:   {}, in {} runs and {:.1}s.",
            result.shrunk.size(),
            result.runs,
            result.elapsed.as_secs_f64()
        ),
        match &expect {
            faultline_harness::scenario::Expect::Pass => {
                "It expects \"pass\": it fails until the flaw is fixed, then guards against its return.".to_string()
            }
            _ => "A known flaw: it expects the violation, so it fails if the flaw stops showing.".to_string(),
        },
    ];
    let text = faultline_harness::shrink::to_toml(&result.shrunk, &expect, &header);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Other(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(&out, &text).map_err(|e| Failure::Other(anyhow::anyhow!("cannot write {}: {e}", out.display())))?;
    // The file must reproduce what the search found: load it and run it.
    let written = Arc::new(scenario::load(&out, registry)?);
    let check = faultline_harness::run::run_seed(
        &written,
        seed,
        RunOptions { wall_limit: Some(Duration::from_secs(wall_limit)), ..RunOptions::default() },
    );
    let reproduced = check.violation_counts.contains_key(&result.invariant);
    println!("shrunk {} seed {seed}: a violation of {}", scenario.file, result.invariant);
    println!("  from  {}", result.original);
    println!("  to    {}", result.shrunk.size());
    println!(
        "  in    {} runs, {:.1}s{}",
        result.runs,
        result.elapsed.as_secs_f64(),
        result.stopped.map_or(String::new(), |s| format!(" ({s})"))
    );
    for fault in &result.shrunk.plan.faults {
        println!("        {fault}");
    }
    println!("wrote {}", out.display());
    if reproduced {
        println!("checked: running it violates {} again (digest {})", result.invariant, check.digest);
        println!("replay: faultline replay {} --trace", out.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("error: running the written file did not violate {}; please report this", result.invariant);
        Ok(ExitCode::from(1))
    }
}

/// Appends each scenario's failing seeds to its regressions file.
fn record(results: &[faultline_harness::sweep::ScenarioResult]) -> Result<(), Failure> {
    use faultline_harness::regressions::{self, Regression};
    for result in results {
        let records: Vec<Regression> = result
            .failed_seeds()
            .map(|report| Regression {
                seed: faultline_harness::units::Seed(report.seed),
                invariant: report
                    .violation_counts
                    .keys()
                    .find(|name| Some(name.as_str()) != report.expect.strip_prefix("violation:"))
                    .cloned()
                    .unwrap_or_else(|| if report.aborted.is_some() { "aborted".into() } else { "slo".into() }),
                digest: report.digest.clone(),
            })
            .collect();
        if records.is_empty() {
            continue;
        }
        let added =
            regressions::record(Path::new(&result.file), &records).map_err(|e| Failure::Other(anyhow::anyhow!(e)))?;
        eprintln!(
            "recorded {added} new failing seed(s) in {}",
            regressions::path_for(Path::new(&result.file)).display()
        );
    }
    Ok(())
}
