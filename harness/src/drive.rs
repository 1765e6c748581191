//! Runs one seed of a loaded scenario the way every verb wants it: planned
//! from the seed (or an edited plan), on a thread of its own with a
//! wall-clock limit (a host that busy-loops is reported with its seed, its
//! thread abandoned), a harness panic caught, and, when asked, twice, to
//! name the first record where two runs of one seed differ.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::judge::{RunReport, SeedOutcome};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::recording::{first_divergence, Versions};
use crate::registry::{Keep, Loaded, Ran};
use crate::run::panic_message;

/// How to run one seed: what to keep beyond the report, the wall-clock
/// limit, and whether to run it twice. The default keeps nothing extra, sets
/// no limit and runs once.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Keep the digest's records and a merged timeline (for `--trace` and
    /// `--check-determinism`); costs memory, so sweeps leave it off.
    pub keep_records: bool,
    /// Keep the recording as JSON (for `replay --save`).
    pub save: bool,
    /// Wall-clock limit of one run; `None` runs on the calling thread without one.
    pub wall_limit: Option<Duration>,
    /// Run each seed twice and fail it, naming the first differing record,
    /// if the two runs differ.
    pub check_determinism: bool,
}

impl RunOptions {
    fn keep(&self) -> Keep {
        Keep { records: self.keep_records, recording: self.save }
    }
}

/// Runs one seed of `loaded` and judges it.
pub fn run_seed(loaded: &Arc<Loaded>, seed: u64, options: RunOptions) -> RunReport {
    run_seed_saved(loaded, seed, options).report
}

/// Runs one seed, keeping its recording when `options.save` asks.
pub fn run_seed_saved(loaded: &Arc<Loaded>, seed: u64, options: RunOptions) -> Ran {
    let plan = Plan::expand(&loaded.scenario, seed);
    if !options.check_determinism {
        return run_plan_saved(loaded, plan, options);
    }
    let twice = RunOptions { keep_records: true, check_determinism: false, ..options };
    let mut first = run_plan_saved(loaded, plan.clone(), twice);
    let second = run_plan(loaded, plan, RunOptions { save: false, ..twice });
    if let Some((index, left, right)) = first_divergence(&first.report.records, &second.records) {
        let reason = format!(
            "nondeterministic: two runs of seed {seed} differ at record {index}:\n      first:  {left}\n      second: {right}"
        );
        let report = &mut first.report;
        let reasons = match std::mem::replace(&mut report.outcome, SeedOutcome::Passed) {
            SeedOutcome::Failed { mut reasons } => {
                reasons.insert(0, reason);
                reasons
            }
            _ => vec![reason],
        };
        report.outcome = SeedOutcome::Failed { reasons };
        report.passed = false;
    }
    if !options.keep_records {
        first.report.records = Vec::new();
        first.report.timeline = Vec::new();
        first.report.samples = Vec::new();
    }
    first
}

/// Runs `plan` (usually `Plan::expand(scenario, seed)`; the shrinker passes edited ones).
pub fn run_plan(loaded: &Arc<Loaded>, plan: Plan, options: RunOptions) -> RunReport {
    run_plan_saved(loaded, plan, options).report
}

fn run_plan_saved(loaded: &Arc<Loaded>, plan: Plan, options: RunOptions) -> Ran {
    let Some(limit) = options.wall_limit else {
        return run_caught(loaded, &plan, options.keep());
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    let worker_loaded = Arc::clone(loaded);
    let worker_plan = plan.clone();
    let keep = options.keep();
    let spawned = std::thread::Builder::new().name(format!("faultline-seed-{}", plan.seed)).spawn(move || {
        let ran = run_caught(&worker_loaded, &worker_plan, keep);
        let _ = sender.send(ran);
    });
    if let Err(error) = spawned {
        return aborted(loaded, plan, format!("could not start a thread for the run: {error}"));
    }
    match receiver.recv_timeout(limit) {
        Ok(ran) => ran,
        Err(_) => aborted(
            loaded,
            plan,
            format!(
                "the run did not finish within the wall-clock limit of {}s: host or client code is probably \
                 busy-looping without awaiting (the thread was abandoned)",
                limit.as_secs()
            ),
        ),
    }
}

fn run_caught(loaded: &Loaded, plan: &Plan, keep: Keep) -> Ran {
    match catch_unwind(AssertUnwindSafe(|| loaded.system.run(&loaded.scenario, plan, keep))) {
        Ok(ran) => ran,
        Err(panic) => aborted(loaded, plan.clone(), format!("the harness panicked: {}", panic_message(&*panic))),
    }
}

/// The report of a run that produced no recording (abandoned, or the harness panicked).
fn aborted(loaded: &Loaded, plan: Plan, reason: String) -> Ran {
    let scenario = &loaded.scenario;
    let report = RunReport {
        scenario: scenario.file.clone(),
        name: scenario.name.clone(),
        seed: plan.seed,
        tick_ms: u64::try_from(scenario.tick.0.as_millis()).unwrap_or(u64::MAX),
        digest: "-".into(),
        aborted: Some(reason.clone()),
        expect: scenario.check.expect.to_string(),
        expected: scenario.check.expect.violations().to_vec(),
        outcome: SeedOutcome::Failed { reasons: vec![reason] },
        passed: false,
        violations: Vec::new(),
        violation_counts: Default::default(),
        unjudged: Vec::new(),
        metrics: Metrics::default(),
        slo: Vec::new(),
        reached: Default::default(),
        system_figures: Default::default(),
        plan,
        versions: Versions::current(),
        records: Vec::new(),
        timeline: Vec::new(),
        samples: Vec::new(),
    };
    Ran { report, recording: None }
}
