//! Text output of the CLI: run headers, run summaries, traces, sweep tables
//! and `faultline list`. Formatting only; every figure comes from the harness.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use faultline_harness::judge::{RunReport, SeedOutcome};
use faultline_harness::plan::{self, Plan};
use faultline_harness::recording::Versions;
use faultline_harness::scenario::{Expect, Scenario, CHAOS_KINDS, FAULT_KINDS, SLO_METRICS};
use faultline_harness::shrink::ShrinkResult;
use faultline_harness::stats::Summary;
use faultline_harness::sweep::{seeds_noun, ScenarioResult, Verdict};
use faultline_harness::system::LIVENESS;
use faultline_harness::{InputError, Loaded, Registry};

/// Everything that decides the run, printed before it starts.
pub fn print_header(command: &str, scenario: &Scenario, plan: &Plan) {
    println!("faultline {command} {} --seed {}", scenario.file, plan.seed);
    println!("  scenario  {}", scenario.name);
    println!("  seed      {}", plan.seed);
    for (key, value) in scenario.knob_lines() {
        println!("  {key:<22} {value}");
    }
    if !plan.generators.is_empty() {
        println!("  chaos on this seed     {}", plan.generators.join(", "));
    }
    println!("  plan      {}", plan::summary(plan));
    for line in plan::describe(plan).iter().take(40) {
        println!("            {line}");
    }
    if plan.faults.len() > 40 {
        println!("            ... {} more (replay --trace shows them all)", plan.faults.len() - 40);
    }
    println!();
}

pub fn print_timeline(report: &RunReport) {
    println!("trace ({} events)", report.timeline.len());
    for event in &report.timeline {
        println!("  {event}");
    }
    println!();
}

fn percent(value: f64) -> String {
    format!("{:.3}%", value * 100.0)
}

pub fn print_result(scenario: &Scenario, report: &RunReport) {
    let m = &report.metrics;
    println!("result");
    println!(
        "  requests      {}   ok {}   degraded {}   failed {}   timeout {}   wrong {}",
        m.requests, m.ok, m.degraded, m.failed, m.timeout, m.incorrect
    );
    println!(
        "  availability  {}   fresh {}   error rate {}   time {}",
        percent(m.availability),
        percent(m.fresh_availability),
        percent(m.error_rate),
        percent(m.time_availability)
    );
    let l = &m.latency;
    println!(
        "  latency ms    p50 {:.2}   p95 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}   (good requests, from intended start)",
        l.p50_ms, l.p95_ms, l.p99_ms, l.p999_ms, l.max_ms
    );
    let legend = if m.time_source == "probe" {
        "1s each, from the health probe: # up, . down, + both"
    } else {
        "1s windows of requests: # up, + up with failures, . down"
    };
    println!("  timeline      |{}|  ({legend})", m.timeline);
    print_outages(report);
    println!(
        "  load          {:.1} req/s   time in system {:.2}ms   in flight {:.2}",
        m.throughput_per_s, m.time_in_system_mean_ms, m.in_flight_mean
    );
    if !report.system_figures.is_empty() {
        let figures: Vec<String> = report.system_figures.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
        println!("  system        {}", figures.join("   "));
    }
    if !report.reached.is_empty() {
        let events: Vec<String> = report.reached.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        println!("  events        {}", events.join("   "));
    }
    for slo in &report.slo {
        let budget =
            slo.error_budget_consumed.map_or(String::new(), |b| format!("   error budget used {:.0}%", b * 100.0));
        println!("  slo           {} {}{budget}", if slo.met { "met     " } else { "BREACHED" }, slo.message);
    }
    println!("  digest        {}", report.digest);
    println!();
    print_verdict(scenario, report);
}

fn print_outages(report: &RunReport) {
    let m = &report.metrics;
    let nines = m.nines.map_or("-".to_string(), |n| format!("{n:.2}"));
    if m.outages.is_empty() {
        println!(
            "  outages       none   (time availability {}, from the {})",
            percent(m.time_availability),
            m.time_source
        );
    } else {
        let spans: Vec<String> = m
            .outages
            .iter()
            .take(8)
            .map(|o| format!("{:.3}s..{:.3}s", o.start_ms / 1000.0, o.end_ms / 1000.0))
            .collect();
        let more = if m.outages.len() > 8 { format!(" (and {} more)", m.outages.len() - 8) } else { String::new() };
        let mtbf = m.mtbf_ms.map_or("-".to_string(), |v| format!("{:.3}s", v / 1000.0));
        println!(
            "  outages       {} {}{more}   MTTR {:.3}s   MTBF {mtbf}   nines {nines}",
            m.outages.len(),
            spans.join(", "),
            m.mttr_ms / 1000.0
        );
    }
    if m.faults > 0 {
        let mttd = m.mttd_ms.map_or("- (no detection event)".to_string(), |v| format!("{:.3}s", v / 1000.0));
        let ttr = m.time_to_recover_ms.map_or("-".to_string(), |v| format!("{:.3}s", v / 1000.0));
        println!(
            "  faults        {}   detected {}   MTTD {mttd}   ended while down {}   time to recover {ttr}{}",
            m.faults,
            m.faults_detected,
            m.recoveries,
            if m.unrecovered > 0 { format!("   NOT RECOVERED {}", m.unrecovered) } else { String::new() }
        );
    }
}

fn print_verdict(scenario: &Scenario, report: &RunReport) {
    match &report.outcome {
        SeedOutcome::Passed => println!("verdict: PASSED"),
        SeedOutcome::FoundExpected => {
            println!("verdict: PASSED (found the expected violation: {})", report.expect);
            print_violations(report);
            println!("reproduce: {}", report.replay_command());
        }
        SeedOutcome::NotFound => {
            println!(
                "verdict: FAILED (expected {} but seed {} did not show it; `faultline sweep {}` tries the file's {})",
                report.expect,
                report.seed,
                scenario.file,
                seeds_noun(scenario.seeds as usize)
            );
        }
        SeedOutcome::Unjudged { reasons } => {
            println!("verdict: COULD NOT JUDGE (nothing failed, but a check had too little to go on)");
            for reason in reasons {
                println!("  - {reason}");
            }
        }
        SeedOutcome::Failed { reasons } => {
            println!("verdict: FAILED");
            for reason in reasons {
                println!("  - {reason}");
            }
            print_violations(report);
            println!("reproduce: {}", report.replay_command());
            let v = &report.versions;
            println!(
                "versions: faultline {}, turmoil {}, {}; tick {}ms",
                v.faultline, v.turmoil, v.rustc, report.tick_ms
            );
        }
    }
}

fn print_violations(report: &RunReport) {
    for violation in report.violations.iter().take(10) {
        println!("    {violation}");
    }
    let total: usize = report.violation_counts.values().sum();
    let shown = report.violations.len().min(10);
    if total > shown {
        println!("    ... and {} more (replay --trace shows the whole run)", total - shown);
    }
}

fn with_ci(summary: Option<&Summary>, scale: f64, unit: &str, decimals: usize) -> String {
    match summary {
        None => "-".to_string(),
        Some(s) if s.n == 1 => format!("{:.decimals$}{unit}", s.mean * scale),
        Some(s) => format!(
            "{:.decimals$}{unit} [{:.decimals$}, {:.decimals$}]",
            s.mean * scale,
            s.ci_low * scale,
            s.ci_high * scale
        ),
    }
}

pub fn print_sweep(results: &[ScenarioResult], elapsed: Duration, jobs: usize, twice: bool) {
    print_sweep_table(results);
    print_system_figures(results);
    print_failures(results);
    print_found(results);
    let runs: usize = results.iter().map(ScenarioResult::seeds).sum();
    let passed = results.iter().filter(|r| r.passed).count();
    let unjudged = results.iter().filter(|r| r.verdict == Verdict::Unjudged).count();
    let unjudged = if unjudged > 0 { format!(", {unjudged} could not be judged") } else { String::new() };
    println!(
        "\n{passed} of {} scenarios passed{unjudged}; {runs} runs in {:.1}s on {jobs} threads",
        results.len(),
        elapsed.as_secs_f64()
    );
    if twice {
        let differing = results.iter().flat_map(|r| &r.reports).filter(|r| is_nondeterministic(r)).count();
        println!("determinism: every seed ran twice; {} of {runs} pairs matched record for record", runs - differing);
    }
}

fn is_nondeterministic(report: &RunReport) -> bool {
    matches!(&report.outcome, SeedOutcome::Failed { reasons } if reasons.iter().any(|r| r.starts_with("nondeterministic")))
}

fn print_sweep_table(results: &[ScenarioResult]) {
    let width = results.iter().map(|r| r.file.len()).max().unwrap_or(8).max(8);
    println!(
        "{:<width$}  {:>5}  {:>4}  {:<29}  {:<25}  {:>8}  {:>6}  result",
        "scenario", "seeds", "fail", "availability [95% CI]", "MTTR [95% CI]", "p99 ms", "SLOs"
    );
    for result in results {
        let found = result.found_seeds().count();
        let availability = with_ci(result.figures.get("availability"), 100.0, "%", 3);
        let mttr = with_ci(result.figures.get("mttr_ms"), 0.001, "s", 3);
        let p99 = result.figures.get("p99_latency_ms").map_or("-".to_string(), |s| format!("{:.2}", s.mean));
        let (met, total) = result.slo_met.values().fold((0, 0), |acc, &(m, t)| (acc.0 + m, acc.1 + t));
        let slos = if total == 0 { "-".to_string() } else { format!("{:.0}%", 100.0 * met as f64 / total as f64) };
        let verdict = match result.verdict {
            Verdict::Failed => "FAILED".to_string(),
            Verdict::Unjudged => "COULD NOT JUDGE".to_string(),
            Verdict::Passed if found > 0 => format!("ok, {} found in {}", result.expect, seeds_noun(found)),
            Verdict::Passed => "ok".to_string(),
        };
        println!(
            "{:<width$}  {:>5}  {:>4}  {:<29}  {:<25}  {:>8}  {:>6}  {verdict}",
            result.file,
            result.seeds(),
            result.failed_seeds().count(),
            availability,
            mttr,
            p99,
            slos,
        );
    }
}

fn print_system_figures(results: &[ScenarioResult]) {
    let system_rows: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.figures.iter().filter(|(name, _)| name.starts_with("system.")).map(move |(name, s)| {
                format!(
                    "  {}: {} mean {:.3} [{:.3}, {:.3}], min {:.3}, max {:.3}",
                    r.file,
                    &name["system.".len()..],
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    s.min,
                    s.max
                )
            })
        })
        .collect();
    if !system_rows.is_empty() {
        println!("\nsystem figures (95% CI across seeds):");
        for row in system_rows {
            println!("{row}");
        }
    }
    let slo_rows: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.slo_met.iter().map(move |(metric, (met, total))| {
                format!("  {}: {metric} met in {met} of {}", r.file, seeds_noun(*total))
            })
        })
        .collect();
    if !slo_rows.is_empty() {
        println!("\nSLOs:");
        for row in slo_rows {
            println!("{row}");
        }
    }
}

/// Failing and unjudged scenarios, each failing seed with what failed it
/// (the violations it was not expected to have) and its replay command.
fn print_failures(results: &[ScenarioResult]) {
    const SEEDS_SHOWN: usize = 10;
    let failing: Vec<&ScenarioResult> = results.iter().filter(|r| !r.passed).collect();
    if failing.is_empty() {
        return;
    }
    println!("\nfailures:");
    for result in failing {
        println!("  {} ({})", result.file, result.name);
        for reason in &result.reasons {
            println!("    - {reason}");
        }
        let troubled: Vec<&RunReport> = result.failed_seeds().chain(result.unjudged_seeds()).collect();
        for report in troubled.iter().take(SEEDS_SHOWN) {
            if let SeedOutcome::Failed { reasons } | SeedOutcome::Unjudged { reasons } = &report.outcome {
                println!("    seed {}: {}", report.seed, reasons.join("; "));
            }
            let failing = report.failing_invariants();
            for violation in report.violations.iter().filter(|v| failing.contains(&v.invariant.as_str())).take(2) {
                println!("      {violation}");
            }
            println!("      reproduce: {}", report.replay_command());
        }
        if troubled.len() > SEEDS_SHOWN {
            println!("    ... and {} more", seeds_noun(troubled.len() - SEEDS_SHOWN));
        }
    }
    let v = Versions::current();
    println!("  versions: faultline {}, turmoil {}, {}", v.faultline, v.turmoil, v.rustc);
}

fn print_found(results: &[ScenarioResult]) {
    const SEEDS_SHOWN: usize = 12;
    let found: Vec<&ScenarioResult> = results.iter().filter(|r| r.found_seeds().next().is_some()).collect();
    if found.is_empty() {
        return;
    }
    println!("\nexpected violations found (known flaws, as the scenarios claim):");
    for result in found {
        let expected = result.reports.first().map(|r| r.expected.clone()).unwrap_or_default();
        // Each expected violation with the seeds that found it (a seed that
        // failed on something else does not count), so a list of several
        // never claims one that no seed found.
        for name in &expected {
            let finders: Vec<&RunReport> = result
                .reports
                .iter()
                .filter(|r| !r.outcome.failed() && r.violation_counts.contains_key(name))
                .collect();
            let Some(first) = finders.first() else {
                println!("  {}: violation:{name} in no seed", result.file);
                continue;
            };
            let seeds: Vec<String> = finders.iter().map(|r| r.seed.to_string()).collect();
            let more = if seeds.len() > SEEDS_SHOWN {
                format!(" and {} more", seeds.len() - SEEDS_SHOWN)
            } else {
                String::new()
            };
            let shown = seeds[..seeds.len().min(SEEDS_SHOWN)].join(", ");
            println!("  {}: violation:{name} in seeds {shown}{more}", result.file);
            if let Some(violation) = first.violations.iter().find(|v| v.invariant == *name) {
                println!("    e.g. {violation}");
            }
            println!("    reproduce: {}", first.replay_command());
        }
    }
}

pub fn print_list(registry: &Registry) {
    println!("systems (system = \"...\"; knobs go in [knobs]):");
    for entry in registry.entries() {
        let doc = entry.doc;
        println!("\n  {}: {}", doc.name, doc.about);
        println!("    hosts: {}", doc.hosts);
        println!("    knobs:");
        for knob in doc.knobs {
            println!("      {:<22} {:<16} default {:<10} {}", knob.name, knob.unit, knob.default, knob.about);
        }
        println!("    invariants:");
        for invariant in &entry.invariants {
            println!("      {:<22} {}", invariant.name, invariant.about);
        }
        println!("    events (for [check] reached):");
        for event in doc.events {
            println!("      {:<22} {}", event.name, event.about);
        }
    }
    println!("\ninvariants of every system:");
    println!("  {:<24} {}", LIVENESS.name, LIVENESS.about);
    println!("\nfault kinds ([[fault]] kind = \"...\"):");
    for (kind, about) in FAULT_KINDS {
        println!("  {kind:<24} {about}");
    }
    println!("\nchaos generators ([chaos.<kind>]; swarm = true picks a random subset per seed):");
    for (kind, about) in CHAOS_KINDS {
        println!("  {kind:<24} {about}");
    }
    println!("\nSLO metrics ([slo] metric = \"<op> <threshold>\"):");
    for (metric, unit, about) in SLO_METRICS {
        let unit = match unit {
            faultline_harness::scenario::SloUnit::Percent => "percent",
            faultline_harness::scenario::SloUnit::Duration => "duration",
        };
        println!("  {metric:<24} {unit:<9} {about}");
    }
    println!("\nevery key of a scenario file, with units and defaults: docs/scenarios.md");
}

/// Writes a shrink's result as a scenario file (the folder exists: the CLI
/// checked) and returns its path.
pub fn write_shrunk(
    loaded: &Loaded,
    result: &ShrinkResult,
    path: &Path,
    seed: u64,
    out: &Path,
) -> Result<PathBuf, InputError> {
    let scenario = &loaded.scenario;
    let expect = if scenario.check.expect.expects(&result.invariant) {
        Expect::Violations(vec![result.invariant.clone()])
    } else {
        Expect::Pass
    };
    let header = vec![
        format!(
            "Shrunk by `faultline shrink {} --seed {seed}`: it reproduces a violation of {}.",
            path.display(),
            result.invariant
        ),
        format!("Original: {} seed {seed}, {}.", scenario.file, result.original),
        format!(
            "Shrunk:   {}, in {} runs and {:.1}s.",
            result.shrunk.size(),
            result.runs,
            result.elapsed.as_secs_f64()
        ),
        match &expect {
            Expect::Pass => {
                "It expects \"pass\": it fails until the flaw is fixed, then guards against its return.".to_string()
            }
            Expect::Violations(_) => {
                "A known flaw: it expects the violation, so it fails if the flaw stops showing.".to_string()
            }
        },
    ];
    let text = faultline_harness::shrink::to_toml(&result.shrunk, &expect, &header);
    std::fs::write(out, &text)
        .map_err(|e| InputError::new(out.display().to_string(), format!("cannot write the shrunk scenario: {e}")))?;
    Ok(out.to_path_buf())
}

/// Prints what a shrink found and whether the written file reproduces it.
pub fn print_shrunk(result: &ShrinkResult, scenario: &Scenario, seed: u64, out: &Path, check: &RunReport) -> ExitCode {
    println!("shrunk {} seed {seed}: a violation of {}", scenario.file, result.invariant);
    println!("  from  {}", result.original);
    println!("  to    {}", result.shrunk.size());
    println!(
        "  in    {} runs, {:.1}s{}",
        result.runs,
        result.elapsed.as_secs_f64(),
        result.stopped.as_ref().map_or(String::new(), |s| format!(" ({s})"))
    );
    for fault in &result.shrunk.plan.faults {
        println!("        {fault}");
    }
    println!("wrote {}", out.display());
    if check.violation_counts.contains_key(&result.invariant) {
        println!("checked: running it violates {} again (digest {})", result.invariant, check.digest);
        println!("replay: {} replay {} --trace", faultline_harness::judge::program(), out.display());
        ExitCode::SUCCESS
    } else {
        println!("error: running the written file did not violate {}; please report this", result.invariant);
        ExitCode::from(1)
    }
}
