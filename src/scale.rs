//! Sweeps past one process and one machine: results files (`--out`,
//! `--resume`), shards (`--shard K/N`), `faultline merge`, random seeds
//! until a failure (`--until-failure`), and JUnit output (`--junit`).
//! The harness does the work (`results`, `shard`, `hunt`, `sweep`); this
//! module wires it to flags and prints. docs/scale.md explains the whole.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_harness::drive::RunOptions;
use faultline_harness::judge::RunReport;
use faultline_harness::results::{self, ResultLine, Shard, Writer, RESULTS_FORMAT};
use faultline_harness::sweep::{self, ScenarioResult, Seeds, Verdict};
use faultline_harness::{hunt, shard, InputError, Loaded, Registry};

use crate::cli::{check_output, flag_error, load_all, noun, sweep_verdict, Failure, Format};
use crate::junit::{self, WallTimes};
use crate::report;

/// The flags of `sweep` that take it past one process.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct ScaleArgs {
    /// Write one JSON line per (scenario, seed) to this file as each run
    /// finishes (docs/scale.md); an existing file is refused unless --resume.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Go on with the --out file: skip the (scenario, seed) pairs it holds
    /// (a torn last line of a killed sweep is dropped and its seed runs again).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Run slice K of N (from 0) of the (scenario, seed) pairs, balanced by
    /// expected cost; needs --out, and exits 0 once its results are written:
    /// the verdict is `faultline merge`'s.
    #[arg(long, value_name = "K/N", requires = "out", value_parser = clap::value_parser!(Shard))]
    pub shard: Option<Shard>,
    /// Also write the results as JUnit XML to this file (one test case per
    /// scenario and seed, and one per scenario for its verdict).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["shard", "until_failure"])]
    pub junit: Option<PathBuf>,
    /// Run random seeds, drawn from a seed source, until --time is spent or
    /// a seed fails, printing seeds per second.
    #[arg(long, conflicts_with_all = ["seeds", "seed_range", "shard", "resume", "record_regressions"])]
    pub until_failure: bool,
    /// How long --until-failure runs, e.g. 10m or 8h [default: 10m].
    #[arg(long, value_name = "DURATION", requires = "until_failure", value_parser = parse_time)]
    pub time: Option<Duration>,
    /// The seed source of --until-failure (default: from the clock; it is
    /// printed, and this flag draws the same seeds again).
    #[arg(long, value_name = "N", requires = "until_failure", value_parser = crate::cli::parse_seed)]
    pub seed_source: Option<u64>,
}

fn parse_time(text: &str) -> Result<Duration, String> {
    let time = faultline_harness::units::Dur::parse(text)?.0;
    if time.is_zero() {
        return Err("the time must be above zero".into());
    }
    Ok(time)
}

/// What `sweep` was asked to do.
pub(crate) struct SweepRequest {
    pub seeds: Seeds,
    pub jobs: usize,
    pub options: RunOptions,
    pub format: Format,
    pub record_regressions: bool,
    pub scale: ScaleArgs,
    /// `--report FILE`: the sweep's HTML page.
    pub report: Option<PathBuf>,
}

/// A report already in the results file, with its wall time in ms.
type Kept = BTreeMap<usize, (RunReport, f64)>;

/// `faultline sweep`: every pair (or a shard's slice), results streamed to
/// `--out`, pairs already there skipped with `--resume`.
pub(crate) fn sweep(scenarios: &[Arc<Loaded>], request: SweepRequest) -> Result<ExitCode, Failure> {
    let scale = &request.scale;
    let hashes = hash_all(scenarios)?;
    let all = sweep::pairs(scenarios, &request.seeds);
    let sweep_runs = all.len();
    let work = match scale.shard {
        Some(shard) => shard::slice(scenarios, &all, shard),
        None => all,
    };
    let (writer, kept) = open_out(scale, scenarios, &hashes, &work)?;
    let to_run: Vec<usize> = (0..work.len()).filter(|i| !kept.contains_key(i)).collect();
    let pairs: Vec<(usize, u64)> = to_run.iter().map(|&i| work[i]).collect();
    let bar = progress_bar(pairs.len());
    // The sweep's own wall time, for the summary line: outside any simulation.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let times: Mutex<WallTimes> = Mutex::new(WallTimes::new());
    let write_error: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let progress = |index: usize, report: &RunReport, wall: Duration| {
        let (scenario, seed) = pairs[index];
        if let Some(writer) = &writer {
            let line = ResultLine {
                format: RESULTS_FORMAT,
                scenario: report.scenario.clone(),
                scenario_sha256: hashes[scenario].clone(),
                position: scenario,
                seed,
                wall_ms: wall.as_secs_f64() * 1000.0,
                shard: scale.shard,
                sweep_runs: Some(sweep_runs),
                report: report.clone(),
            };
            if let Err(error) = writer.append(&line) {
                write_error.lock().expect("no panic while holding the error").get_or_insert(error);
            }
        }
        times
            .lock()
            .expect("no panic while holding the times")
            .insert((report.scenario.clone(), seed), wall.as_secs_f64());
        if report.outcome.failed() {
            bar.set_message(format!("last failure: {} seed {}", report.scenario, report.seed));
        }
        bar.inc(1);
    };
    let reports = sweep::run_pairs(scenarios, &pairs, request.jobs, request.options, &progress);
    bar.finish_and_clear();
    if let (Some(error), Some(out)) = (write_error.into_inner().expect("no poisoned error"), &scale.out) {
        return Err(Failure::Other(anyhow::anyhow!("cannot write the results to {}: {error}", out.display())));
    }
    let mut times = times.into_inner().expect("no poisoned times");
    let mut all_reports: BTreeMap<usize, RunReport> = to_run.into_iter().zip(reports).collect();
    let resumed = kept.len();
    for (index, (report, wall_ms)) in kept {
        times.insert((report.scenario.clone(), report.seed), wall_ms / 1000.0);
        all_reports.insert(index, report);
    }
    let results = judge(scenarios, &work, all_reports);
    if let Some(shard) = scale.shard {
        return print_shard(shard, &results, resumed, scale, started.elapsed(), request.format);
    }
    if request.record_regressions {
        crate::cli::record(&results)?;
    }
    write_junit(scale.junit.as_deref(), &results, &times)?;
    write_page(request.report.as_deref(), &results)?;
    match request.format {
        Format::Text => {
            report::print_sweep(&results, started.elapsed(), request.jobs, request.options.check_determinism)
        }
        Format::Json => print_json(&results)?,
    }
    Ok(verdict_code(sweep_verdict(&results)))
}

/// `--report FILE`: the sweep's page (availability and MTTR across seeds,
/// failing seeds with their replay commands), if asked for.
pub(crate) fn write_page(out: Option<&Path>, results: &[ScenarioResult]) -> Result<(), Failure> {
    if let Some(out) = out {
        crate::cli::write_file("--report", out, &crate::page::sweep_page(results))?;
        eprintln!("report: written to {}", out.display());
    }
    Ok(())
}

/// Groups the reports by scenario, in the order of `work`, and judges each
/// scenario that has any.
fn judge(scenarios: &[Arc<Loaded>], work: &[(usize, u64)], reports: BTreeMap<usize, RunReport>) -> Vec<ScenarioResult> {
    let mut per_scenario: Vec<Vec<RunReport>> = scenarios.iter().map(|_| Vec::new()).collect();
    for (index, report) in reports {
        per_scenario[work[index].0].push(report);
    }
    scenarios
        .iter()
        .zip(per_scenario)
        .filter(|(_, reports)| !reports.is_empty())
        .map(|(loaded, reports)| sweep::judge_scenario(&loaded.scenario, reports))
        .collect()
}

/// Each scenario file's SHA-256, in the order of `scenarios`.
fn hash_all(scenarios: &[Arc<Loaded>]) -> Result<Vec<String>, Failure> {
    let hashes: Result<Vec<String>, InputError> =
        scenarios.iter().map(|l| results::scenario_sha256(Path::new(&l.scenario.file))).collect();
    Ok(hashes?)
}

/// Opens `--out` (new, or resumed) and returns the reports it already
/// holds for pairs of `work`, by index in `work`.
fn open_out(
    scale: &ScaleArgs,
    scenarios: &[Arc<Loaded>],
    hashes: &[String],
    work: &[(usize, u64)],
) -> Result<(Option<Writer>, Kept), Failure> {
    let Some(path) = &scale.out else { return Ok((None, Kept::new())) };
    check_output("--out", path)?;
    if !scale.resume || !path.exists() {
        return Ok((Some(Writer::create(path)?), Kept::new()));
    }
    let current: BTreeMap<String, String> =
        scenarios.iter().zip(hashes).map(|(l, h)| (l.scenario.file.clone(), h.clone())).collect();
    let read = results::read(path)?;
    let (_, changed) = results::done_pairs(&read.lines, &current);
    if let Some(line) = changed.first() {
        let count = changed.iter().filter(|l| l.scenario == line.scenario).count();
        return Err(InputError::new(
            &line.scenario,
            format!(
                "changed since {} was written ({} of its earlier version there)",
                path.display(),
                noun(count, "result", "results")
            ),
        )
        .with_help("a changed file is never resumed as if unchanged: --out a new results file, or restore the file")
        .into());
    }
    let (writer, read) = Writer::resume(path)?;
    if read.torn_bytes > 0 {
        eprintln!(
            "resume: dropped the torn last line of {} ({} bytes, a sweep killed while writing it); its seed runs again",
            path.display(),
            read.torn_bytes
        );
    }
    let index: BTreeMap<(&str, u64), usize> =
        work.iter().enumerate().map(|(i, &(s, seed))| ((scenarios[s].scenario.file.as_str(), seed), i)).collect();
    let mut kept = Kept::new();
    let mut outside = 0;
    for line in read.lines {
        match index.get(&(line.scenario.as_str(), line.seed)) {
            Some(&i) => {
                kept.insert(i, (line.report, line.wall_ms));
            }
            None => outside += 1,
        }
    }
    if outside > 0 {
        eprintln!(
            "resume: {} in {} not part of this sweep (other files, seeds or shard): kept in the file, left out here",
            noun(outside, "result", "results"),
            path.display()
        );
    }
    eprintln!("resume: {} of {} already in {}", kept.len(), noun(work.len(), "run", "runs"), path.display());
    Ok((Some(writer), kept))
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {elapsed} elapsed, ~{eta} left  {msg}")
            .expect("a valid progress template"),
    );
    bar
}

/// A shard's closing lines: what it ran and where the results are; it exits
/// 0 (a violation is a result, and the verdict over all seeds is `merge`'s).
fn print_shard(
    shard: Shard,
    results: &[ScenarioResult],
    resumed: usize,
    scale: &ScaleArgs,
    elapsed: Duration,
    format: Format,
) -> Result<ExitCode, Failure> {
    let runs: usize = results.iter().map(ScenarioResult::seeds).sum();
    let failed: usize = results.iter().map(|r| r.failed_seeds().count()).sum();
    let out = scale.out.as_ref().map_or(String::new(), |p| p.display().to_string());
    match format {
        Format::Text => {
            println!(
                "shard {shard}: {} of {} ({resumed} from the file, {} run now) in {:.1}s; {} failed",
                noun(runs, "run", "runs"),
                noun(results.len(), "scenario", "scenarios"),
                runs - resumed,
                elapsed.as_secs_f64(),
                noun(failed, "seed", "seeds")
            );
            println!("results: {out}; the verdict over every shard is `faultline merge`'s (docs/scale.md)");
        }
        Format::Json => {
            let json = serde_json::json!({
                "shard": shard.to_string(), "runs": runs, "resumed": resumed, "failed_seeds": failed, "out": out,
            });
            println!("{json}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(results: &[ScenarioResult]) -> Result<(), Failure> {
    let verdict = sweep_verdict(results);
    let mut out = std::io::stdout().lock();
    let json = serde_json::json!({ "passed": verdict == Verdict::Passed, "verdict": verdict, "scenarios": results });
    serde_json::to_writer(&mut out, &json).map_err(|e| Failure::Other(e.into()))?;
    let _ = writeln!(out);
    Ok(())
}

fn verdict_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Passed => ExitCode::SUCCESS,
        Verdict::Failed => ExitCode::from(1),
        Verdict::Unjudged => ExitCode::from(3),
    }
}

fn write_junit(path: Option<&Path>, results: &[ScenarioResult], times: &WallTimes) -> Result<(), Failure> {
    let Some(path) = path else { return Ok(()) };
    check_output("--junit", path)?;
    std::fs::write(path, junit::document(results, times))
        .map_err(|e| flag_error("--junit", format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "junit: {} test cases written to {}",
        results.iter().map(|r| r.seeds() + 1).sum::<usize>(),
        path.display()
    );
    Ok(())
}

/// The results of one sweep, rebuilt from the files its shards wrote:
/// what `merge` prints and `report RESULTS` draws.
pub(crate) struct Merged {
    /// Per scenario, judged as one sweep over the same seeds would judge it.
    pub results: Vec<ScenarioResult>,
    /// Each run's wall time in seconds.
    pub times: WallTimes,
    /// The shards the lines came from (empty for an unsharded sweep).
    pub shards: BTreeSet<Shard>,
}

/// Reads results files (`sweep --out`) and rebuilds the sweep they hold.
/// `verb` names the command in its notes and errors.
pub(crate) fn load_results(verb: &str, files: &[PathBuf], registry: &Registry) -> Result<Merged, Failure> {
    let mut lines = Vec::new();
    let mut times = WallTimes::new();
    let mut shards: BTreeSet<Shard> = BTreeSet::new();
    let mut errors = Vec::new();
    for file in files {
        let read = match results::read(file) {
            Ok(read) => read,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        if read.torn_bytes > 0 {
            eprintln!(
                "{verb}: {}: dropped a torn last line (its sweep was killed: `sweep ... --out {} --resume` finishes it)",
                file.display(),
                file.display()
            );
        }
        for line in read.lines {
            times.insert((line.scenario.clone(), line.seed), line.wall_ms / 1000.0);
            shards.extend(line.shard);
            lines.push(line);
        }
    }
    if !errors.is_empty() {
        return Err(Failure::Input(errors));
    }
    if lines.is_empty() {
        return Err(flag_error(verb, "the files hold no results").with_help_all(
            "results files are written by `faultline sweep ... --out FILE`, one line per finished run".into(),
        ));
    }
    let rebuilt = results::rebuild(lines, registry).map_err(Failure::Input)?;
    for note in &rebuilt.notes {
        eprintln!("{verb}: {note}");
    }
    Ok(Merged { results: rebuilt.results, times, shards })
}

/// Where `merge` writes besides its table: `--junit`, `--report`.
pub(crate) struct MergeOutputs<'a> {
    /// JUnit XML.
    pub junit: Option<&'a Path>,
    /// The sweep's HTML page.
    pub report: Option<&'a Path>,
}

/// `faultline merge`: the results of one sweep from the files of its shards.
pub(crate) fn merge(
    files: &[PathBuf],
    format: Format,
    outputs: MergeOutputs<'_>,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    if let Some(path) = outputs.junit {
        check_output("--junit", path)?;
    }
    if let Some(path) = outputs.report {
        check_output("--report", path)?;
    }
    let Merged { results, times, shards } = load_results("merge", files, registry)?;
    write_junit(outputs.junit, &results, &times)?;
    write_page(outputs.report, &results)?;
    match format {
        Format::Text => {
            report::print_sweep_body(&results);
            let wall: f64 = times.values().sum();
            println!(
                "{}; {} merged from {} ({:.1}s of run time{})",
                report::sweep_tally(&results),
                noun(results.iter().map(ScenarioResult::seeds).sum(), "run", "runs"),
                noun(files.len(), "file", "files"),
                wall,
                shard_note(&shards)
            );
        }
        Format::Json => print_json(&results)?,
    }
    Ok(verdict_code(sweep_verdict(&results)))
}

/// `faultline report RESULTS...`: the sweep's page from its results files,
/// with no run repeated. Exits as `merge` of the same files would.
pub(crate) fn report_results(
    files: &[PathBuf],
    out: &Path,
    format: Format,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    check_output("--out", out)?;
    let Merged { results, .. } = load_results("report", files, registry)?;
    crate::cli::write_file("--out", out, &crate::page::sweep_page(&results))?;
    let verdict = sweep_verdict(&results);
    match format {
        Format::Text => {
            println!("{}", report::sweep_tally(&results));
            println!("report: written to {} (one self-contained page: open it in a browser)", out.display());
        }
        Format::Json => crate::json::print(&crate::json::report::sweep_document(&results, verdict, out)),
    }
    Ok(verdict_code(verdict))
}

/// ", shards 0-3 of 4" when the lines came from shards.
fn shard_note(shards: &BTreeSet<Shard>) -> String {
    let Some(first) = shards.first() else { return String::new() };
    let indices: Vec<String> = shards.iter().map(|s| s.index.to_string()).collect();
    format!(", shards {} of {}", indices.join(","), first.count)
}

/// `faultline sweep --until-failure`: random seeds until the time is spent
/// or a seed fails.
pub(crate) fn until_failure(
    paths: &[PathBuf],
    scale: &ScaleArgs,
    jobs: usize,
    options: RunOptions,
    format: Format,
    registry: &Registry,
) -> Result<ExitCode, Failure> {
    let loaded = load_all(paths, registry)?;
    let (pinned, scenarios): (Vec<Arc<Loaded>>, Vec<Arc<Loaded>>) =
        loaded.into_iter().partition(|l| l.scenario.seed.is_some());
    if !pinned.is_empty() {
        eprintln!(
            "until-failure: leaving out {} that pin their seed (a reproducer runs its own seed alone)",
            noun(pinned.len(), "file", "files")
        );
    }
    if scenarios.is_empty() {
        return Err(flag_error(
            "--until-failure",
            "every scenario file given pins its seed: nothing to draw seeds for",
        ));
    }
    let hashes = hash_all(&scenarios)?;
    let source = scale.seed_source.unwrap_or_else(clock_source);
    let time = scale.time.unwrap_or(Duration::from_secs(600));
    let writer = match &scale.out {
        Some(path) => {
            check_output("--out", path)?;
            Some(Writer::create(path)?)
        }
        None => None,
    };
    let source_line = format!(
        "seed source {source}: draw i runs scenario i mod {} with the i-th SplitMix64 output (`--seed-source {source}` draws the same seeds)",
        scenarios.len()
    );
    eprintln!(
        "until-failure: up to {} on {}; {source_line}",
        faultline_harness::units::format_duration(time),
        noun(jobs, "thread", "threads")
    );
    let ticker = Ticker::new();
    let write_error: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let index: BTreeMap<&str, usize> =
        scenarios.iter().enumerate().map(|(i, l)| (l.scenario.file.as_str(), i)).collect();
    let progress = |report: &RunReport, wall: Duration| {
        if let Some(writer) = &writer {
            let position = index[report.scenario.as_str()];
            let line = ResultLine {
                format: RESULTS_FORMAT,
                scenario: report.scenario.clone(),
                scenario_sha256: hashes[position].clone(),
                position,
                seed: report.seed,
                wall_ms: wall.as_secs_f64() * 1000.0,
                shard: None,
                sweep_runs: None,
                report: report.clone(),
            };
            if let Err(error) = writer.append(&line) {
                write_error.lock().expect("no panic while holding the error").get_or_insert(error);
            }
        }
        ticker.tick();
    };
    let hunted = hunt::hunt(&scenarios, source, time, jobs, options, &progress);
    if let (Some(error), Some(out)) = (write_error.into_inner().expect("no poisoned error"), &scale.out) {
        return Err(Failure::Other(anyhow::anyhow!("cannot write the results to {}: {error}", out.display())));
    }
    print_hunt(&hunted, &source_line, jobs, format)
}

fn print_hunt(hunted: &hunt::Hunted, source_line: &str, jobs: usize, format: Format) -> Result<ExitCode, Failure> {
    let runs = hunted.runs.len();
    let rate = runs as f64 / hunted.elapsed.as_secs_f64().max(1e-9);
    let failures: Vec<&RunReport> = hunted.failures().collect();
    match format {
        Format::Text => {
            println!(
                "until-failure: {} in {:.1}s, {rate:.2} seeds/s on {}",
                noun(runs, "seed", "seeds"),
                hunted.elapsed.as_secs_f64(),
                noun(jobs, "thread", "threads")
            );
            println!("{source_line}");
            if failures.is_empty() {
                println!("no seed failed");
            }
            for report in &failures {
                println!("FAILED: {} seed {}: {}", report.scenario, report.seed, outcome_reasons(report));
                println!("  reproduce: {}", report.replay_command());
            }
        }
        Format::Json => {
            let json = serde_json::json!({
                "runs": runs, "elapsed_s": hunted.elapsed.as_secs_f64(), "seeds_per_s": rate,
                "seed_source": source_line, "passed": failures.is_empty(), "failures": failures,
            });
            println!("{json}");
        }
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn outcome_reasons(report: &RunReport) -> String {
    match &report.outcome {
        faultline_harness::SeedOutcome::Failed { reasons } => reasons.join("; "),
        other => format!("{other:?}"),
    }
}

/// A seed source from the clock and the process id: different for every
/// night run, and printed, so the run can be drawn again.
fn clock_source() -> u64 {
    // Outside any simulation: only picks which seeds to draw.
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hunt::draw(nanos as u64 ^ (u64::from(std::process::id()) << 32), 0)
}

/// Prints seeds per second to standard error every ten seconds.
struct Ticker {
    started: std::time::Instant,
    state: Mutex<(usize, Duration)>,
}

impl Ticker {
    fn new() -> Ticker {
        // Outside any simulation: progress output.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        Ticker { started, state: Mutex::new((0, Duration::ZERO)) }
    }

    fn tick(&self) {
        let mut state = self.state.lock().expect("no panic while ticking");
        state.0 += 1;
        let elapsed = self.started.elapsed();
        if elapsed - state.1 >= Duration::from_secs(10) {
            state.1 = elapsed;
            eprintln!(
                "until-failure: {} in {:.0}s, {:.2} seeds/s",
                noun(state.0, "seed", "seeds"),
                elapsed.as_secs_f64(),
                state.0 as f64 / elapsed.as_secs_f64()
            );
        }
    }
}
