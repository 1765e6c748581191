//! Many seeds of many scenarios, in parallel, with results in a fixed order.
//!
//! Each worker thread builds its own simulations (a `Sim` is not `Send`); a
//! seed that panics or hangs becomes a failed report for that seed and the
//! sweep goes on. A scenario passes when no seed failed, each of its expected
//! violations (if any) was found by some seed, and every `reached` event was
//! reported by some seed; it is unjudged when nothing failed but some seed
//! could not be judged.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::drive::{run_seed, RunOptions};
use crate::judge::{RunReport, SeedOutcome};
use crate::registry::Loaded;
use crate::scenario::Scenario;
use crate::stats::{summarize, Summary};

/// Which seeds to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seeds {
    /// The scenario's own `seeds = N`: seeds 1..=N (or its pinned `seed`).
    FromScenario,
    /// Seeds 1..=N.
    Count(u64),
    /// Seeds in a half-open range.
    Range(Range<u64>),
    /// Exactly these seeds.
    List(Vec<u64>),
}

impl Seeds {
    /// The seeds to run of `scenario`. A file that pins its seed (a shrunk
    /// reproducer) runs that seed alone whatever the count or range: it
    /// reproduces nothing with another, so other seeds would only "lose" its
    /// flaw. An explicit list is run as given.
    pub fn for_scenario(&self, scenario: &Scenario) -> Vec<u64> {
        match (self, scenario.seed) {
            (Seeds::List(seeds), _) => seeds.clone(),
            (_, Some(seed)) => vec![seed],
            (Seeds::FromScenario, None) => (1..=scenario.seeds).collect(),
            (Seeds::Count(count), None) => (1..=*count).collect(),
            (Seeds::Range(range), None) => range.clone().collect(),
        }
    }
}

/// A scenario's verdict over its seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No seed failed, every expected violation and every `reached` event
    /// was found by some seed, and every seed was judged.
    Passed,
    /// Some seed failed, or no seed found an expected violation or reached
    /// a `reached` event.
    Failed,
    /// Nothing failed, but some seed had a check that could not judge.
    Unjudged,
}

/// A scenario's verdict over its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// The scenario file's path, as given.
    pub file: String,
    /// The scenario's `name`.
    pub name: String,
    /// The scenario's `[check] expect` as text.
    pub expect: String,
    /// The verdict over the seeds.
    pub verdict: Verdict,
    /// Is the verdict [`Verdict::Passed`]?
    pub passed: bool,
    /// Why it failed, one line each.
    pub reasons: Vec<String>,
    /// Each figure's distribution across the seeds that ran to the end
    /// (MTTR, MTTD and time to recover only over seeds that had one).
    pub figures: BTreeMap<String, Summary>,
    /// Per SLO metric: (seeds that met it, seeds that ran to the end).
    pub slo_met: BTreeMap<String, (usize, usize)>,
    /// Each seed's report, in the order the seeds were given.
    pub reports: Vec<RunReport>,
}

impl ScenarioResult {
    /// How many seeds ran.
    pub fn seeds(&self) -> usize {
        self.reports.len()
    }

    /// The seeds that failed.
    pub fn failed_seeds(&self) -> impl Iterator<Item = &RunReport> {
        self.reports.iter().filter(|r| r.outcome.failed())
    }

    /// The seeds with a check that could not judge (and nothing failed).
    pub fn unjudged_seeds(&self) -> impl Iterator<Item = &RunReport> {
        self.reports.iter().filter(|r| matches!(r.outcome, SeedOutcome::Unjudged { .. }))
    }

    /// The seeds that found an expected violation and failed nothing else.
    pub fn found_seeds(&self) -> impl Iterator<Item = &RunReport> {
        self.reports.iter().filter(|r| r.outcome == SeedOutcome::FoundExpected)
    }
}

/// "1 seed", "2 seeds".
pub fn seeds_noun(count: usize) -> String {
    if count == 1 {
        "1 seed".into()
    } else {
        format!("{count} seeds")
    }
}

/// Judges a scenario from its seeds' reports. Pure.
pub fn judge_scenario(scenario: &Scenario, reports: Vec<RunReport>) -> ScenarioResult {
    let mut reasons = Vec::new();
    let failed = reports.iter().filter(|r| r.outcome.failed()).count();
    if failed > 0 {
        reasons.push(format!("{failed} of {} failed", seeds_noun(reports.len())));
    }
    for name in scenario.check.expect.violations() {
        if !reports.iter().any(|r| r.violation_counts.contains_key(name) && !r.outcome.failed()) {
            reasons.push(format!(
                "expected a violation of {name}, but none of {} found it (did the flaw get fixed, or the checker stop finding it?)",
                seeds_noun(reports.len())
            ));
        }
    }
    let reached: BTreeSet<&str> = reports.iter().flat_map(|r| r.reached.keys().map(String::as_str)).collect();
    for event in &scenario.check.reached {
        if !reached.contains(event.as_str()) {
            reasons.push(format!("no seed reached event {event:?}: the scenario may not exercise what it claims"));
        }
    }
    let (figures, slo_met) = figures(&reports);
    let unjudged = reports.iter().any(|r| matches!(r.outcome, SeedOutcome::Unjudged { .. }));
    let verdict = if !reasons.is_empty() {
        Verdict::Failed
    } else if unjudged {
        Verdict::Unjudged
    } else {
        Verdict::Passed
    };
    ScenarioResult {
        file: scenario.file.clone(),
        name: scenario.name.clone(),
        expect: scenario.check.expect.to_string(),
        verdict,
        passed: verdict == Verdict::Passed,
        reasons,
        figures,
        slo_met,
        reports,
    }
}

type Figures = (BTreeMap<String, Summary>, BTreeMap<String, (usize, usize)>);

fn figures(reports: &[RunReport]) -> Figures {
    let finished: Vec<&RunReport> = reports.iter().filter(|r| r.aborted.is_none()).collect();
    let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for report in &finished {
        let m = &report.metrics;
        let mut add = |name: &'static str, value: Option<f64>| {
            if let Some(value) = value {
                values.entry(name).or_default().push(value);
            }
        };
        add("availability", Some(m.availability));
        add("fresh_availability", Some(m.fresh_availability));
        add("time_availability", Some(m.time_availability));
        add("error_rate", Some(m.error_rate));
        add("p50_latency_ms", (m.latency.count > 0).then_some(m.latency.p50_ms));
        add("p99_latency_ms", (m.latency.count > 0).then_some(m.latency.p99_ms));
        add("mttr_ms", (!m.outages.is_empty()).then_some(m.mttr_ms));
        add("mtbf_ms", m.mtbf_ms);
        add("mttd_ms", m.mttd_ms);
        add("time_to_recover_ms", m.time_to_recover_ms);
    }
    // Shares lie in [0, 1] and times are never negative: so do their intervals.
    let bounds = |name: &str| if name.contains("availability") || name == "error_rate" { 1.0 } else { f64::INFINITY };
    let mut summaries: BTreeMap<String, Summary> = values
        .into_iter()
        .filter_map(|(name, values)| summarize(&values).map(|s| (name.to_string(), s.clamped(0.0, bounds(name)))))
        .collect();
    // The systems' own figures, as "system.<name>".
    let mut system: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for report in &finished {
        for (name, value) in &report.system_figures {
            system.entry(name.as_str()).or_default().push(*value);
        }
    }
    for (name, values) in system {
        // A figure that was never negative (a rate, a count, a ratio) gets no negative interval.
        let floor = if values.iter().all(|v| *v >= 0.0) { 0.0 } else { f64::NEG_INFINITY };
        if let Some(summary) = summarize(&values) {
            summaries.insert(format!("system.{name}"), summary.clamped(floor, f64::INFINITY));
        }
    }
    let mut slo_met: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for report in &finished {
        for slo in &report.slo {
            let entry = slo_met.entry(slo.metric.clone()).or_default();
            entry.0 += usize::from(slo.met);
            entry.1 += 1;
        }
    }
    (summaries, slo_met)
}

/// Runs every (scenario, seed) pair on `jobs` threads and judges each scenario.
/// `progress` is called once per finished run, from worker threads.
pub fn sweep(
    scenarios: &[Arc<Loaded>],
    seeds: &Seeds,
    jobs: usize,
    options: RunOptions,
    progress: &(dyn Fn(&RunReport) + Sync),
) -> Vec<ScenarioResult> {
    let work: Vec<(usize, u64)> = scenarios
        .iter()
        .enumerate()
        .flat_map(|(index, loaded)| seeds.for_scenario(&loaded.scenario).into_iter().map(move |seed| (index, seed)))
        .collect();
    let results: Vec<Mutex<Option<RunReport>>> = work.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(work.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(scenario, seed)) = work.get(index) else { break };
                let report = run_seed(&scenarios[scenario], seed, options);
                progress(&report);
                *results[index].lock().expect("no worker panics while holding a result") = Some(report);
            });
        }
    });
    let mut per_scenario: Vec<Vec<RunReport>> = scenarios.iter().map(|_| Vec::new()).collect();
    for ((scenario, _), slot) in work.iter().zip(results) {
        let report = slot.into_inner().expect("no poisoned result").expect("every job ran");
        per_scenario[*scenario].push(report);
    }
    scenarios.iter().zip(per_scenario).map(|(loaded, reports)| judge_scenario(&loaded.scenario, reports)).collect()
}
