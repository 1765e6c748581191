//! The command line: raw arguments -> validated inputs -> one `match` on the
//! command -> one place that prints errors and picks the exit code.
//! Everything else lives in the harness and the systems.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use faultline_harness::drive::{run_seed_saved, Isolation, RunOptions};
use faultline_harness::judge::{RunReport, SeedOutcome};
use faultline_harness::registry::{self, Keep, Loaded};
use faultline_harness::sweep::{self, Seeds, Verdict};
use faultline_harness::{InputError, Plan, Registry};

use crate::report;
use crate::EXIT_CODES;

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
pub(crate) enum Format {
    /// Text for people.
    Text,
    /// One JSON object on standard output.
    Json,
}

/// How `--trace-out` writes the trace.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TraceFormat {
    /// One JSON object a line: every trace entry and operation, in time order.
    Jsonl,
    /// Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
    /// chrome://tracing open: hosts and clients as tracks, faults and requests as slices.
    Chrome,
}

/// `--isolate` and its memory limit, for the verbs that run seeds.
#[derive(clap::Args, Clone, Copy)]
struct IsolateArgs {
    /// Run each seed in a child process of its own, with a memory limit: a
    /// run that allocates without bound, blocks or spins is ended with its
    /// process (docs/failures.md).
    #[arg(long)]
    isolate: bool,
    /// Address-space limit of each isolated seed's process, in MiB [default: 4096].
    #[arg(long, value_name = "MIB", requires = "isolate", value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    memory_limit: Option<u64>,
}

impl IsolateArgs {
    fn isolation(self) -> Option<Isolation> {
        self.isolate.then(|| Isolation {
            memory_limit_mib: self.memory_limit.unwrap_or(faultline_harness::drive::isolate::MEMORY_LIMIT_MIB_DEFAULT),
        })
    }
}

/// A seed as a flag takes it: a whole number from 0 to 2^64-1.
pub(crate) fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| {
        if text.trim_start().starts_with('-') {
            format!("{text:?} is not a seed: seeds are whole numbers from 0 to 18446744073709551615, never negative")
        } else {
            format!("{text:?} is not a seed: a whole number from 0 to 18446744073709551615")
        }
    })
}

/// A sequential model for `lincheck`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LinModel {
    /// One register: read, write and compare-and-set.
    Register,
    /// A register per key: read, write and compare-and-set of keys.
    Kv,
}

impl LinModel {
    fn name(self) -> &'static str {
        match self {
            LinModel::Register => "register",
            LinModel::Kv => "kv",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed of a scenario: settings, then a summary and a verdict.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed (any u64); the same seed gives the same run, bit for bit.
        /// Default: the file's `seed`, else 1.
        #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
        seed: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Run the seed twice and fail, naming the first differing event, if the runs differ.
        #[arg(long)]
        check_determinism: bool,
        /// Wall-clock limit of the run in seconds (a busy loop in host code is reported, not waited for).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
        #[command(flatten)]
        isolation: IsolateArgs,
    },
    /// Run a seed again, optionally with its event trace, or save its recording.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The scenario file (its `reproduce:` line names it).
        scenario: PathBuf,
        /// The seed to replay (default: the file's `seed`; required otherwise).
        #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
        seed: Option<u64>,
        /// Print the trace: faults, crashes, system events and every operation, in time order.
        #[arg(long)]
        trace: bool,
        /// Write the trace to this file (its folder must exist), as `--trace-format` says.
        #[arg(long, value_name = "FILE")]
        trace_out: Option<PathBuf>,
        /// The format of `--trace-out`.
        #[arg(long, value_enum, default_value_t = TraceFormat::Jsonl, requires = "trace_out")]
        trace_format: TraceFormat,
        /// Save the run's recording (history, trace, plan, scenario) as JSON,
        /// for `faultline analyze` to judge again without simulating.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Wall-clock limit of the run in seconds.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
        #[command(flatten)]
        isolation: IsolateArgs,
    },
    /// Judge a saved recording (`replay --save`) again: checkers, figures,
    /// SLOs and verdict, without simulating.
    #[command(after_help = EXIT_CODES)]
    Analyze {
        /// The recording, as `replay --save` wrote it.
        recording: PathBuf,
        /// Print the trace as well.
        #[arg(long)]
        trace: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run scenarios (files or folders of *.toml) over many seeds.
    #[command(after_help = EXIT_CODES)]
    Sweep {
        /// Scenario files, or folders searched for *.toml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Run seeds 1..=N of every scenario (default: each file's `seeds`;
        /// a file that pins its `seed` runs that seed alone).
        #[arg(long, conflicts_with = "seed_range", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        seeds: Option<u64>,
        /// Run the seeds A..B (B excluded) of every scenario (a file that pins
        /// its `seed` runs that seed alone).
        #[arg(long, value_name = "A..B", value_parser = parse_seed_range)]
        seed_range: Option<std::ops::Range<u64>>,
        /// Worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
        /// Run every seed twice and fail seeds whose runs differ.
        #[arg(long)]
        check_determinism: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Wall-clock limit of each run in seconds.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
        #[command(flatten)]
        isolation: IsolateArgs,
        /// Append every failing seed to a `.regressions` file beside its
        /// scenario; `cargo test` replays those seeds first.
        #[arg(long)]
        record_regressions: bool,
        /// Also write an HTML page of the sweep to this file: availability
        /// and MTTR across seeds, failing seeds with their replay commands.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        #[command(flatten)]
        scale: crate::scale::ScaleArgs,
    },
    /// Merge results files of `sweep --out` (the shards of one sweep) and
    /// print the table, figures, SLO shares and known flaws of the whole,
    /// exiting as that sweep would.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// Results files, as `sweep --out` wrote them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write the sweep's page (as `faultline report RESULTS` does) to this file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Write one self-contained HTML page: of one run (`--run FILE --seed N`:
    /// the run's timeline with hosts, faults, the system's state, requests,
    /// latency, outages, violations), or of a sweep from its results files
    /// (`report results.jsonl`: availability and MTTR across seeds, failing
    /// seeds with their replay commands; nothing is run again).
    /// docs/report.md says how to read both.
    #[command(after_help = EXIT_CODES, override_usage = "faultline report RESULTS... [--out FILE]\n       faultline report --run FILE [--seed N] [--out FILE]")]
    Report {
        /// Results files of a sweep (`sweep --out`, one per shard), for the sweep's page.
        #[arg(conflicts_with_all = ["run", "seed", "wall_limit"])]
        results: Vec<PathBuf>,
        /// The scenario file to run, for one run's page.
        #[arg(long, value_name = "FILE")]
        run: Option<PathBuf>,
        /// The seed (default: the file's `seed`, else 1).
        #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
        seed: Option<u64>,
        /// Where to write the page (its folder must exist).
        #[arg(long, value_name = "FILE", default_value = "report.html")]
        out: PathBuf,
        /// Wall-clock limit of the run in seconds (default 300).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the scenario file format as a JSON Schema, with every system's
    /// knobs (for taplo / Even Better TOML; docs/scenarios.md says how).
    /// The repository keeps it: `faultline schema > schema/scenario.schema.json`.
    Schema,
    /// Validate scenario files (or folders of them) without running anything.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// Scenario files, or folders searched for *.toml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Shrink a failing seed to a minimal fault schedule and workload, written
    /// as a standalone scenario file that reproduces the same violation.
    #[command(after_help = EXIT_CODES)]
    Shrink {
        /// The scenario file.
        scenario: PathBuf,
        /// The failing seed.
        #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
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
        /// Where to write the result (default: scenarios/regressions/<name>-seed<N>.toml; its folder must exist).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
        /// Wall-clock limit of each run in seconds.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check a stored history (JSON lines of invoke/ok/fail/info records, as
    /// Jepsen logs them) for linearizability; docs/linearizability.md has the format.
    #[command(after_help = EXIT_CODES)]
    Lincheck {
        /// The history file.
        history: PathBuf,
        /// The sequential model the history is checked against.
        #[arg(long, value_enum)]
        model: LinModel,
        /// Threads checking partitions (keys) at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
        threads: u64,
        /// Search steps one partition may take before the verdict is "unknown".
        #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        steps: u64,
        /// Wall-clock budget of the whole check, in seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        wall_limit: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List systems, their knobs, invariants and events, fault kinds and SLO metrics.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Hold the metrics against closed-form theory (availability, M/M/1,
    /// M/M/1/K, retries, replicas, resharding, a balancer, M/M/c, M/M/c/K)
    /// and print the table
    /// docs/metrics.md shows.
    #[command(after_help = EXIT_CODES)]
    Calibrate {
        /// Many more seeds and five times the simulated time (minutes, not seconds).
        #[arg(long)]
        long: bool,
        /// Worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
        /// Only these models (repeat or separate with commas): availability,
        /// mm1, mm1k, retries, replicas, resharding, balancer, mmc, mmck.
        #[arg(long, value_name = "MODEL", value_delimiter = ',', value_parser = parse_model)]
        model: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn parse_model(text: &str) -> Result<String, String> {
    let names: Vec<&str> = faultline_systems::theory::MODELS.iter().map(|model| model.name).collect();
    if names.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a model; the models are {}", names.join(", ")))
    }
}

fn parse_seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (low, high) =
        text.split_once("..").ok_or_else(|| format!("expected a seed range A..B such as 1..101, found {text:?}"))?;
    let (low, high) = (parse_seed(low)?, parse_seed(high)?);
    if low >= high {
        return Err(format!("the range {text} is empty: B must be above A (B is excluded)"));
    }
    if high - low > faultline_harness::scenario::SEEDS_MAX {
        return Err(format!("the range {text} holds more than {} seeds", faultline_harness::scenario::SEEDS_MAX));
    }
    Ok(low..high)
}

/// Parses `args` and runs the command over `registry`.
pub fn main<I, T>(args: I, registry: &Registry) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // A child process serving one isolated seed (`--isolate`) does only that.
    faultline_harness::drive::isolate::serve(registry);
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if let Some(name) = args.first().and_then(|a| Path::new(a).file_stem()).and_then(|s| s.to_str()) {
        // A crate's own binary (faultline-kv) replays with its own name.
        faultline_harness::judge::set_program(name);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(2),
            };
        }
    };
    match execute(cli.command, registry) {
        Ok(code) => code,
        Err(Failure::Input(errors)) => {
            print_errors(&errors);
            ExitCode::from(2)
        }
        Err(Failure::Other(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Most errors printed at once: a folder of thousands of files that are not
/// scenarios gets the first few and a count, not a flood.
const ERRORS_SHOWN: usize = 20;

fn print_errors(errors: &[InputError]) {
    for error in errors.iter().take(ERRORS_SHOWN) {
        eprintln!("error: {error}");
    }
    if errors.len() > ERRORS_SHOWN {
        let files: std::collections::BTreeSet<&str> = errors.iter().map(|e| e.file.as_str()).collect();
        eprintln!(
            "error: ... and {} ({} in {} in all); is this the right folder?",
            noun(errors.len() - ERRORS_SHOWN, "more error", "more errors"),
            noun(errors.len(), "error", "errors"),
            noun(files.len(), "file", "files")
        );
    }
}

/// "1 file", "3 files".
pub(crate) fn noun(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

pub(crate) enum Failure {
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

/// A flag's value that is not valid, as an input error naming the flag.
pub(crate) fn flag_error(flag: &str, message: impl Into<String>) -> Failure {
    Failure::Input(vec![InputError::new(flag, message)])
}

/// The exit code of one seed's outcome.
fn seed_code(outcome: &SeedOutcome) -> ExitCode {
    match outcome {
        SeedOutcome::Passed | SeedOutcome::FoundExpected => ExitCode::SUCCESS,
        SeedOutcome::Unjudged { .. } => ExitCode::from(3),
        SeedOutcome::Failed { .. } | SeedOutcome::NotFound => ExitCode::from(1),
    }
}

fn jobs_or_cores(jobs: Option<u64>) -> usize {
    jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize)
}

fn execute(command: Command, registry: &Registry) -> Result<ExitCode, Failure> {
    match command {
        Command::Run { scenario, seed, format, check_determinism, wall_limit, isolation } => {
            let loaded = load_one(&scenario, registry)?;
            warn_if_large(&loaded, Duration::from_secs(wall_limit));
            let seed = seed.or(loaded.scenario.seed).unwrap_or(1);
            let options = RunOptions {
                wall_limit: Some(Duration::from_secs(wall_limit)),
                check_determinism,
                isolate: isolation.isolation(),
                ..RunOptions::default()
            };
            if format == Format::Text {
                report::print_header("run", &loaded.scenario, &Plan::expand(&loaded.scenario, seed));
            }
            let ran = run_seed_saved(&loaded, seed, options);
            print_run(&loaded, &ran.report, format);
            Ok(seed_code(&ran.report.outcome))
        }
        Command::Replay { scenario, seed, trace, trace_out, trace_format, save, format, wall_limit, isolation } => {
            let limits = Limits { wall_limit, isolation: isolation.isolation() };
            replay(&scenario, seed, Outputs { trace, trace_out, trace_format, save }, format, limits, registry)
        }
        Command::Report { results, run, seed, out, wall_limit, format } => {
            report_command(&results, run.as_deref(), seed, &out, wall_limit, format, registry)
        }
        Command::Analyze { recording, trace, format } => analyze(&recording, trace, format, registry),
        Command::Sweep {
            paths,
            seeds,
            seed_range,
            jobs,
            check_determinism,
            format,
            wall_limit,
            isolation,
            record_regressions,
            scale,
            report,
        } => {
            let seeds = seeds.map(Seeds::Count).or(seed_range.map(Seeds::Range)).unwrap_or(Seeds::FromScenario);
            let isolate = isolation.isolation();
            let wall_limit = Some(Duration::from_secs(wall_limit));
            let options = RunOptions { wall_limit, check_determinism, isolate, ..RunOptions::default() };
            let jobs = jobs_or_cores(jobs);
            if scale.until_failure {
                return crate::scale::until_failure(&paths, &scale, jobs, options, format, registry);
            }
            if let Some(out) = &report {
                check_output("--report", out)?;
            }
            let request =
                crate::scale::SweepRequest { seeds, jobs, options, format, record_regressions, scale, report };
            sweep_files(&paths, request, registry)
        }
        Command::Merge { files, format, junit, report } => {
            let outputs = crate::scale::MergeOutputs { junit: junit.as_deref(), report: report.as_deref() };
            crate::scale::merge(&files, format, outputs, registry)
        }
        Command::Check { paths, format } => check_files(&paths, format, registry),
        Command::Schema => {
            print!("{}", faultline_harness::schema::scenario_schema_text(registry));
            Ok(ExitCode::SUCCESS)
        }
        Command::Shrink { scenario, seed, invariant, max_runs, timeout, out, force, wall_limit, format } => {
            let request = ShrinkRequest { seed, invariant, max_runs, timeout, out, force, wall_limit, format };
            shrink(&scenario, request, registry)
        }
        Command::Lincheck { history, model, threads, steps, wall_limit, format } => {
            lincheck(&history, model, threads, steps, wall_limit, format)
        }
        Command::Bench { seeds, jobs, format } => {
            crate::bench::run(&faultline_systems::registry(), seeds, jobs_or_cores(jobs), format == Format::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { format } => list(format, registry),
        Command::Calibrate { long, jobs, model, format } => calibrate(long, jobs_or_cores(jobs), &model, format),
    }
}

/// `faultline list`: systems, knobs, invariants, faults, SLO metrics.
fn list(format: Format, registry: &Registry) -> Result<ExitCode, Failure> {
    match format {
        Format::Text => report::print_list(registry),
        Format::Json => crate::json::print(&crate::json::list::document(registry)),
    }
    Ok(ExitCode::SUCCESS)
}

fn lincheck(
    history: &Path,
    model: LinModel,
    threads: u64,
    steps: u64,
    wall_limit: u64,
    format: Format,
) -> Result<ExitCode, Failure> {
    use faultline_harness::linearizability::{check::CheckOptions, file};
    let options = CheckOptions {
        threads: threads as usize,
        steps_max: steps,
        wall_max: Duration::from_secs(wall_limit),
        ..CheckOptions::default()
    };
    let report = file::check_file(history, model.name(), &options)?;
    match format {
        Format::Text => print!("{}", report.render()),
        Format::Json => crate::json::print(&crate::json::lincheck::document(&report)),
    }
    Ok(match report.verdict {
        file::ReportVerdict::Linearizable => ExitCode::SUCCESS,
        file::ReportVerdict::NotLinearizable { .. } => ExitCode::from(1),
        file::ReportVerdict::Unknown { .. } => ExitCode::from(3),
    })
}

fn check_files(paths: &[PathBuf], format: Format, registry: &Registry) -> Result<ExitCode, Failure> {
    let loaded = load_all(paths, registry)?;
    if format == Format::Json {
        let files: Vec<serde_json::Value> = loaded
            .iter()
            .map(|item| {
                let s = &item.scenario;
                serde_json::json!({
                    "file": s.file, "name": s.name, "system": s.system_name,
                    "seeds": s.seed.map_or(s.seeds, |_| 1), "pinned_seed": s.seed,
                    "explicit_faults": s.faults.len(), "chaos_generators": s.chaos.generators.len(),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "valid": true, "files": files }));
        return Ok(ExitCode::SUCCESS);
    }
    for item in &loaded {
        let s = &item.scenario;
        println!(
            "ok  {}  ({}: {}, {}, {})",
            s.file,
            s.system_name,
            sweep::seeds_noun(s.seed.map_or(s.seeds as usize, |_| 1)),
            noun(s.faults.len(), "explicit fault", "explicit faults"),
            noun(s.chaos.generators.len(), "chaos generator", "chaos generators")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn calibrate(long: bool, jobs: usize, models: &[String], format: Format) -> Result<ExitCode, Failure> {
    use faultline_systems::theory;
    let scale = if long { theory::LONG } else { theory::SHORT };
    eprintln!("running the theory checks at scale {:?} ({} seeds each) on {jobs} threads", scale.name, scale.seeds);
    let checks = if models.is_empty() {
        theory::run_all(scale, jobs)?
    } else {
        let models: Vec<&str> = models.iter().map(String::as_str).collect();
        theory::run_models(&models, scale, jobs)?
    };
    match format {
        Format::Text => print!("{}", theory::markdown(&checks, scale)),
        Format::Json => crate::json::print(&crate::json::calibrate::document(&checks, scale, jobs)),
    }
    Ok(if checks.iter().all(|c| c.passed) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Warns, before it starts, about a run too large to finish well (src/estimate.rs).
fn warn_if_large(loaded: &Loaded, wall_limit: Duration) {
    if let Some(warning) = crate::estimate::warning(&loaded.scenario, wall_limit) {
        eprintln!("warning: {warning}");
    }
}

/// Loads one scenario file and prints its warnings.
fn load_one(path: &Path, registry: &Registry) -> Result<Arc<Loaded>, Failure> {
    let loaded = registry::load(path, registry)?;
    for warning in &loaded.scenario.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(Arc::new(loaded))
}

fn print_run(loaded: &Loaded, report: &RunReport, format: Format) {
    match format {
        Format::Text => report::print_result(&loaded.scenario, report),
        Format::Json => println!("{}", serde_json::to_string(report).expect("reports serialize")),
    }
}

/// How long a replayed run may take, and whether it runs in a child process.
struct Limits {
    wall_limit: u64,
    isolation: Option<Isolation>,
}

/// Where `replay` writes besides standard output.
struct Outputs {
    trace: bool,
    trace_out: Option<PathBuf>,
    trace_format: TraceFormat,
    save: Option<PathBuf>,
}

/// An output file's folder must exist: a typo in a path should not quietly
/// create folders.
pub(crate) fn check_output(flag: &str, path: &Path) -> Result<(), Failure> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) if !folder.is_dir() => Err(flag_error(
            flag,
            format!("the folder {} of {} does not exist; create it first", folder.display(), path.display()),
        )),
        _ => Ok(()),
    }
}

fn replay(
    path: &Path,
    seed: Option<u64>,
    outputs: Outputs,
    format: Format,
    limits: Limits,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    let loaded = load_one(path, registry)?;
    let Some(seed) = seed.or(loaded.scenario.seed) else {
        return Err(InputError::new(&loaded.scenario.file, "replay needs a seed: the file pins none")
            .with_help("pass --seed N (a failure's `reproduce:` line names it)")
            .into());
    };
    if let Some(out) = &outputs.trace_out {
        check_output("--trace-out", out)?;
    }
    if let Some(out) = &outputs.save {
        check_output("--save", out)?;
    }
    let options = RunOptions {
        keep_records: outputs.trace || outputs.trace_out.is_some(),
        save: outputs.save.is_some(),
        wall_limit: Some(Duration::from_secs(limits.wall_limit)),
        check_determinism: false,
        isolate: limits.isolation,
    };
    if format == Format::Text {
        report::print_header("replay", &loaded.scenario, &Plan::expand(&loaded.scenario, seed));
    }
    let ran = run_seed_saved(&loaded, seed, options);
    if let Some(out) = &outputs.trace_out {
        match outputs.trace_format {
            TraceFormat::Jsonl => {
                write_trace(out, &ran.report).map_err(Failure::Other)?;
                eprintln!("trace: {} lines written to {}", ran.report.timeline.len(), out.display());
            }
            TraceFormat::Chrome => {
                let json = crate::chrome::trace(&ran.report);
                write_file("--trace-out", out, &json)?;
                eprintln!("trace: Chrome trace-event JSON written to {} (open it in Perfetto)", out.display());
            }
        }
    }
    if let (Some(out), Some(recording)) = (&outputs.save, &ran.recording) {
        std::fs::write(out, recording)
            .map_err(|e| flag_error("--save", format!("cannot write {}: {e}", out.display())))?;
        let program = faultline_harness::judge::program();
        eprintln!("recording: saved to {} (judge it again with `{program} analyze {}`)", out.display(), out.display());
    }
    if outputs.trace && format == Format::Text {
        report::print_timeline(&ran.report);
    }
    print_run(&loaded, &ran.report, format);
    Ok(seed_code(&ran.report.outcome))
}

fn analyze(path: &Path, trace: bool, format: Format, registry: &Registry) -> Result<ExitCode, Failure> {
    let (loaded, text) = registry::load_recording(path, registry)?;
    let keep = Keep { records: trace, recording: false };
    let report = loaded
        .system
        .analyze(&loaded.scenario, &text, keep)
        .map_err(|message| Failure::Input(vec![InputError::new(path.display().to_string(), message)]))?;
    if format == Format::Text {
        println!(
            "faultline analyze {} (seed {}, recorded by faultline {}, turmoil {})",
            path.display(),
            report.seed,
            report.versions.faultline,
            report.versions.turmoil
        );
        println!("  scenario  {} ({})", loaded.scenario.name, loaded.scenario.file);
        println!();
        if trace {
            report::print_timeline(&report);
        }
    }
    print_run(&loaded, &report, format);
    Ok(seed_code(&report.outcome))
}

pub(crate) fn write_file(flag: &str, path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| flag_error(flag, format!("cannot write {}: {e}", path.display())))
}

/// `faultline report --run FILE`: runs the seed with its records kept and
/// writes the page; exits as `run` would for that seed.
/// `faultline report`: a run's page (`--run`) or a sweep's (results files).
fn report_command(
    results: &[PathBuf],
    run: Option<&Path>,
    seed: Option<u64>,
    out: &Path,
    wall_limit: Option<u64>,
    format: Format,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    match run {
        Some(run) => run_report(run, seed, out, wall_limit.unwrap_or(300), format, registry),
        None if results.is_empty() => Err(flag_error("report", "nothing to report on").with_help_all(
            "give a sweep's results files (`faultline report results.jsonl`, written by `sweep --out`) \
             or a run (`faultline report --run FILE --seed N`)"
                .into(),
        )),
        None => crate::scale::report_results(results, out, format, registry),
    }
}

fn run_report(
    path: &Path,
    seed: Option<u64>,
    out: &Path,
    wall_limit: u64,
    format: Format,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    let loaded = load_one(path, registry)?;
    let seed = seed.or(loaded.scenario.seed).unwrap_or(1);
    check_output("--out", out)?;
    let options =
        RunOptions { keep_records: true, wall_limit: Some(Duration::from_secs(wall_limit)), ..RunOptions::default() };
    let report = run_seed_saved(&loaded, seed, options).report;
    write_file("--out", out, &crate::page::run_page(&report, &loaded.scenario))?;
    if format == Format::Json {
        crate::json::print(&crate::json::report::document(&report, out));
        return Ok(seed_code(&report.outcome));
    }
    let verdict = match &report.outcome {
        SeedOutcome::Failed { reasons } => format!("failed: {}", reasons.join("; ")),
        SeedOutcome::Passed => "passed".into(),
        SeedOutcome::FoundExpected => "found the expected violation".into(),
        SeedOutcome::NotFound => "the expected violation was not found in this seed".into(),
        SeedOutcome::Unjudged { reasons } => format!("could not judge: {}", reasons.join("; ")),
    };
    println!("{} seed {}: {verdict}", report.scenario, report.seed);
    println!("report: written to {} (one self-contained page: open it in a browser)", out.display());
    Ok(seed_code(&report.outcome))
}

fn write_trace(path: &Path, report: &RunReport) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::File::create(path).with_context(|| format!("cannot write the trace to {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for line in &report.timeline {
        serde_json::to_writer(&mut out, line)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// Loads the files, warns of any run too large to finish, and sweeps them.
fn sweep_files(
    paths: &[PathBuf],
    request: crate::scale::SweepRequest,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    let scenarios = load_all(paths, registry)?;
    for loaded in &scenarios {
        warn_if_large(loaded, request.options.wall_limit.unwrap_or(Duration::MAX));
    }
    crate::scale::sweep(&scenarios, request)
}

/// A sweep fails if any scenario failed, else is unjudged if any was.
pub(crate) fn sweep_verdict(results: &[sweep::ScenarioResult]) -> Verdict {
    if results.iter().any(|r| r.verdict == Verdict::Failed) {
        Verdict::Failed
    } else if results.iter().any(|r| r.verdict == Verdict::Unjudged) {
        Verdict::Unjudged
    } else {
        Verdict::Passed
    }
}

/// Scenario files named by `paths` (folders are searched for *.toml), sorted
/// within each folder. Every bad file is reported, not just the first.
pub(crate) fn load_all(paths: &[PathBuf], registry: &Registry) -> Result<Vec<Arc<Loaded>>, Failure> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            let mut walk = Walk { files: &mut files, entries: 0, folders: Vec::new() };
            if let Err(error) = walk.folder(path) {
                errors.push(error);
            } else if files.len() == before {
                errors.push(InputError::new(path.display().to_string(), "no scenario files (*.toml) in this folder"));
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut scenarios = Vec::new();
    for file in files {
        match registry::load(&file, registry) {
            Ok(loaded) => {
                for warning in &loaded.scenario.warnings {
                    eprintln!("warning: {warning}");
                }
                scenarios.push(Arc::new(loaded));
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(Failure::Input(errors))
    }
}

/// Most files and folders a folder argument may hold (all levels): a folder
/// of scenarios holds dozens; a mistaken path (a home folder, `target/`)
/// holds far more, and is refused before it is read.
const WALK_ENTRIES_MAX: usize = 100_000;

/// Deepest folder nesting searched for scenario files.
const WALK_DEPTH_MAX: usize = 32;

/// A search of folders for `*.toml` files: bounded in entries and depth,
/// and refusing a symbolic link that leads back into a folder being searched.
struct Walk<'a> {
    files: &'a mut Vec<PathBuf>,
    entries: usize,
    /// The folders being searched, outermost first, as canonical paths.
    folders: Vec<PathBuf>,
}

impl Walk<'_> {
    fn folder(&mut self, dir: &Path) -> Result<(), InputError> {
        let name = dir.display().to_string();
        let canonical = std::fs::canonicalize(dir).map_err(|e| {
            InputError::new(&name, format!("cannot read this folder: {e}"))
                .with_help("a symbolic link in the path may loop or lead nowhere")
        })?;
        if let Some(outer) = self.folders.iter().find(|f| **f == canonical) {
            return Err(InputError::new(
                &name,
                format!("leads back to {} (a loop of symbolic links)", outer.display()),
            )
            .with_help("remove the link, or name the folders to search one by one"));
        }
        if self.folders.len() >= WALK_DEPTH_MAX {
            return Err(InputError::new(&name, format!("is nested more than {WALK_DEPTH_MAX} folders deep"))
                .with_help("name a folder nearer the scenario files"));
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .and_then(|listing| listing.map(|e| e.map(|e| e.path())).collect())
            .map_err(|e| InputError::new(&name, format!("cannot read this folder: {e}")))?;
        self.entries += entries.len();
        if self.entries > WALK_ENTRIES_MAX {
            return Err(InputError::new(
                &name,
                format!("holds more than {WALK_ENTRIES_MAX} files and folders: this is not a folder of scenarios"),
            )
            .with_help("name the folder of scenario files (such as scenarios/) or the files themselves"));
        }
        entries.sort();
        self.folders.push(canonical);
        for path in entries {
            if path.is_dir() {
                self.folder(&path)?;
            } else if path.extension().is_some_and(|e| e == "toml") {
                self.files.push(path);
            }
        }
        self.folders.pop();
        Ok(())
    }
}

/// What `faultline shrink` was asked to do.
struct ShrinkRequest {
    seed: u64,
    invariant: Option<String>,
    max_runs: u64,
    timeout: u64,
    out: Option<PathBuf>,
    force: bool,
    wall_limit: u64,
    format: Format,
}

fn shrink(path: &Path, request: ShrinkRequest, registry: &Registry) -> Result<ExitCode, Failure> {
    use faultline_harness::shrink::{self, ShrinkOptions};
    let loaded = load_one(path, registry)?;
    let scenario = &loaded.scenario;
    if let Some(name) = &request.invariant {
        if !scenario.check.invariants.contains(name) {
            return Err(flag_error("--invariant", format!("{name:?} is not checked by {}", scenario.file))
                .with_help_all(format!("it checks: {}", scenario.check.invariants.join(", "))));
        }
    }
    let seed = request.seed;
    let stem = path.file_stem().map_or("scenario".to_string(), |s| s.to_string_lossy().into_owned());
    let out = request
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("scenarios/regressions").join(format!("{stem}-seed{seed}.toml")));
    check_output("--out", &out)?;
    if out.exists() && !request.force {
        return Err(flag_error(
            "--out",
            format!("{} exists; pass --force to overwrite it, or --out another file", out.display()),
        ));
    }
    let options = ShrinkOptions {
        max_runs: request.max_runs as usize,
        timeout: Duration::from_secs(request.timeout),
        invariant: request.invariant.clone(),
        wall_limit: Duration::from_secs(request.wall_limit),
    };
    eprintln!("shrinking {} seed {seed} (at most {} runs, {}s)", scenario.file, request.max_runs, request.timeout);
    let mut progress = |p: &shrink::Progress| {
        eprintln!("  run {:>4}  {:<14} {}   [{:.1}s]", p.runs, p.step, p.size, p.elapsed.as_secs_f64());
    };
    let result = match shrink::shrink(&loaded, seed, &options, &mut progress) {
        Ok(result) => result,
        // Nothing to shrink is a mistake in what was asked, not a failed check.
        Err(error) => return Err(flag_error("--seed", error.to_string())),
    };
    let written = crate::report::write_shrunk(&loaded, &result, path, seed, &out)?;
    let check = faultline_harness::drive::run_seed(
        &Arc::new(registry::load(&written, registry)?),
        seed,
        RunOptions { wall_limit: Some(Duration::from_secs(request.wall_limit)), ..RunOptions::default() },
    );
    if request.format == Format::Json {
        let document = crate::json::shrink::document(&result, scenario, seed, &out, &check);
        crate::json::print(&document);
        return Ok(if document.verdict == "reproduced" { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    Ok(report::print_shrunk(&result, scenario, seed, &out, &check))
}

impl Failure {
    pub(crate) fn with_help_all(self, help: String) -> Failure {
        match self {
            Failure::Input(errors) => Failure::Input(errors.into_iter().map(|e| e.with_help(help.clone())).collect()),
            other => other,
        }
    }
}

/// Appends each scenario's failing seeds to its regressions file.
pub(crate) fn record(results: &[sweep::ScenarioResult]) -> Result<(), Failure> {
    use faultline_harness::regressions::{self, Regression};
    for result in results {
        let records: Vec<Regression> = result
            .failed_seeds()
            .map(|report| Regression {
                seed: faultline_harness::units::Seed(report.seed),
                invariant: report.failing_invariants().first().map(|s| s.to_string()).unwrap_or_else(|| {
                    if report.aborted.is_some() {
                        "aborted".into()
                    } else {
                        "slo".into()
                    }
                }),
                digest: report.digest.clone(),
            })
            .collect();
        if records.is_empty() {
            continue;
        }
        let added =
            regressions::record(Path::new(&result.file), &records).map_err(|e| Failure::Other(anyhow::anyhow!(e)))?;
        eprintln!(
            "recorded {} in {}",
            noun(added, "new failing seed", "new failing seeds"),
            regressions::path_for(Path::new(&result.file)).display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and every argument `--help` shows has a description
    /// (clap's own --help and --version excepted, which clap describes).
    #[test]
    fn every_help_argument_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>, seen: &mut usize) {
            if command.get_about().is_none() && path != "faultline" {
                missing.push(format!("{path}: the command has no description"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                *seen += 1;
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}: no description"));
                }
                // A flag's true/false are not values a person types.
                let values = if arg.get_action().takes_values() { arg.get_possible_values() } else { Vec::new() };
                for value in values {
                    if value.get_help().is_none() && !value.is_hide_set() {
                        missing.push(format!("{path} {id} {}: the value has no description", value.get_name()));
                    }
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing, seen);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let (mut missing, mut seen) = (Vec::new(), 0);
        walk(&command, "faultline", &mut missing, &mut seen);
        assert!(seen >= 30, "only {seen} arguments found");
        assert!(missing.is_empty(), "arguments without a description in --help:\n{}", missing.join("\n"));
    }

    #[test]
    fn seeds_are_whole_numbers_never_negative() {
        assert_eq!(super::parse_seed("7"), Ok(7));
        assert_eq!(super::parse_seed("18446744073709551615"), Ok(u64::MAX));
        assert!(super::parse_seed("-1").unwrap_err().contains("never negative"));
        assert!(super::parse_seed("seven").unwrap_err().contains("a whole number"));
        assert_eq!(super::parse_seed_range("3..5"), Ok(3..5));
        assert!(super::parse_seed_range("5..5").unwrap_err().contains("empty"));
    }
}
