//! From a recorded run to a verdict: checks it, measures it, holds the
//! figures against the scenario's SLOs, and judges the seed against the
//! scenario's `expect`. Pure functions of a [`Recording`]: the same
//! recording, judged again later (`faultline analyze`), gives the same
//! report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checks::{self, Checked};
use crate::history::{Happening, Nanos, TraceLine, Violation};
use crate::metrics::{self, FaultSpan, MeasureInput, Metrics, OpSample};
use crate::plan::Plan;
use crate::recording::{FailureClass, Recording, Versions};
use crate::scenario::{Comparison, Expect, Scenario, Slo, SloUnit, SLO_METRICS};
use crate::system::{Lane, System};

/// Violations kept per invariant in a report (all of them count).
pub const VIOLATIONS_KEPT_MAX: usize = 20;

/// How one seed went against the scenario's expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SeedOutcome {
    /// Every check held (expect = "pass").
    Passed,
    /// An expected violation was found and nothing else failed.
    FoundExpected,
    /// No expected violation showed in this seed, and nothing else failed
    /// (other seeds may find them).
    NotFound,
    /// A check could not reach a verdict (too few requests, a search out of
    /// budget), and nothing failed: neither a pass nor a failure.
    Unjudged {
        /// One line per check that could not judge: its name and why.
        reasons: Vec<String>,
    },
    /// Something failed: violations, SLO breaches, or an aborted run.
    Failed {
        /// One line per failure: an abort, an unexpected invariant's
        /// violation count, a breached SLO, an undocumented event kind.
        reasons: Vec<String>,
    },
}

impl SeedOutcome {
    /// Did the seed fail (as opposed to passing, finding what was expected,
    /// not finding it, or not judging)?
    pub fn failed(&self) -> bool {
        matches!(self, SeedOutcome::Failed { .. })
    }
}

/// One `[slo]` threshold held against one run's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SloResult {
    /// The figure, as the `[slo]` key names it (`availability`, `p99_latency`, ...).
    pub metric: String,
    /// The comparison as written, e.g. `>= 99.5%`.
    pub threshold: String,
    /// `None` when the run never measured the figure (no detection, no recovery).
    pub measured: Option<f64>,
    /// Does the measured figure satisfy the threshold? False when nothing
    /// was measured.
    pub met: bool,
    /// "availability >= 99.5% (measured 97.12%)".
    pub message: String,
    /// For an availability floor: the share of the error budget (1 - target)
    /// that the run used; above 1 the budget is exhausted.
    pub error_budget_consumed: Option<f64>,
}

/// Everything one run produced, judged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// The scenario file's path, as given (replay commands name it).
    pub scenario: String,
    /// The scenario's `name`.
    pub name: String,
    /// The seed that ran.
    pub seed: u64,
    /// The scenario's `tick`, in milliseconds.
    pub tick_ms: u64,
    /// SHA-256 over the recording (hex, first 16 bytes).
    pub digest: String,
    /// Why the run stopped early (a panic, a host error, a hang), if it did.
    pub aborted: Option<String>,
    /// What kinds of failure the seed had, in the order of its reasons
    /// (empty unless it failed).
    pub classes: Vec<FailureClass>,
    /// The scenario's `[check] expect` as text: `pass`, or the expected
    /// violations (`violation:x, violation:y`).
    pub expect: String,
    /// The invariants the scenario expects to be violated (a known flaw).
    pub expected: Vec<String>,
    /// How the seed went against `expect`.
    pub outcome: SeedOutcome,
    /// Did the seed pass on its own: every check held, or an expected
    /// violation was found and nothing else failed? A seed that found no
    /// expected violation has not passed, though the scenario may pass on
    /// other seeds.
    pub passed: bool,
    /// At most [`VIOLATIONS_KEPT_MAX`] per invariant; `violation_counts` has them all.
    pub violations: Vec<Violation>,
    /// Every violation found, counted by invariant.
    pub violation_counts: BTreeMap<String, usize>,
    /// Checks that could not judge, with why.
    pub unjudged: Vec<(String, String)>,
    /// The run's figures (docs/metrics.md).
    pub metrics: Metrics,
    /// Each `[slo]` threshold, held against `metrics`, in file order.
    pub slo: Vec<SloResult>,
    /// System events reported, by kind.
    pub reached: BTreeMap<String, u64>,
    /// The system's own figures (`System::figures`).
    pub system_figures: BTreeMap<String, f64>,
    /// The faults this seed planned.
    pub plan: Plan,
    /// The faultline, turmoil and rustc versions of the build that ran;
    /// a replay with other versions may not reproduce the run.
    pub versions: Versions,
    /// The digest's input, one record a line (with `keep_records`).
    #[serde(skip)]
    pub records: Vec<String>,
    /// Trace and operations merged in time order (with `keep_records`).
    #[serde(skip)]
    pub timeline: Vec<TraceLine>,
    /// Every operation's timing and outcome, in history order (with `keep_records`).
    #[serde(skip)]
    pub samples: Vec<OpSample>,
    /// The hosts, when each was down and the system's state lanes, for a
    /// report's timeline (with `keep_records`).
    #[serde(skip)]
    pub picture: Picture,
}

/// What a report's timeline draws of a run besides its operations and
/// figures: the hosts, when each was down, and the system's state lanes
/// ([`System::lanes`]), all read from the typed trace.
#[derive(Clone, Debug, Default)]
pub struct Picture {
    /// The system's hosts, in its order (pool included).
    pub hosts: Vec<String>,
    /// Each interval a host was down (crashed, or stopped by the pool), in
    /// trace order; one still down at the end ends at [`Picture::end`].
    pub down: Vec<(String, Nanos, Nanos)>,
    /// Instantaneous restarts (a `restart` fault's bounce) of a host.
    pub restarts: Vec<(String, Nanos)>,
    /// The system's state lanes, as it describes them.
    pub lanes: Vec<Lane>,
    /// Why there are no lanes, when the system's `lanes` panicked.
    pub lanes_error: Option<String>,
    /// When the heal phase began.
    pub heal_at: Nanos,
    /// When the workload stopped issuing requests.
    pub end: Nanos,
}

impl RunReport {
    /// The command that reproduces this run.
    pub fn replay_command(&self) -> String {
        replay_command(&self.scenario, self.seed)
    }

    /// The invariants this run violated that the scenario did not expect:
    /// what made it fail, for a summary line (empty when it violated only
    /// expected ones).
    pub fn failing_invariants(&self) -> Vec<&str> {
        self.violation_counts
            .keys()
            .map(String::as_str)
            .filter(|name| !self.expected.iter().any(|e| e == name))
            .collect()
    }
}

/// The name replay commands give the program: the binary that is running
/// (a crate's own faultline binary is not called `faultline`).
static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the program in replay commands (the CLI sets it once, from its
/// `argv[0]`); "faultline" until then.
pub fn set_program(name: &str) {
    let _ = PROGRAM.set(name.to_string());
}

/// The program replay commands name.
pub fn program() -> &'static str {
    PROGRAM.get().map_or("faultline", String::as_str)
}

/// The command that replays `seed` of the scenario file `file`:
/// `<program> replay <file> --seed <seed>`, the file quoted for a shell when it
/// needs to be.
pub fn replay_command(file: &str, seed: u64) -> String {
    format!("{} replay {} --seed {seed}", program(), shell_quote(file))
}

fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Judges a recording: checks, figures, SLOs, digest and verdict.
pub fn report<S: System>(system: &S, scenario: &Scenario, recording: &Recording<S>, keep_records: bool) -> RunReport {
    let checked = checks::check(system, scenario, recording);
    let flagged = metrics::flagged_ops(&checked.violations);
    let samples = samples(system, recording, &flagged);
    let metrics = measure::<S>(scenario, recording, &samples);
    let slo: Vec<SloResult> = scenario.slo.iter().map(|slo| evaluate_slo(slo, &metrics)).collect();
    let mut checked = checked;
    let system_figures = if recording.aborted.is_none() {
        figures(system, scenario, recording, &mut checked.errors)
    } else {
        BTreeMap::new()
    };
    let mut reached = BTreeMap::new();
    for event in recording.trace.iter().filter_map(|e| e.system()) {
        *reached.entry(crate::history::SystemEvent::kind(event).to_string()).or_insert(0u64) += 1;
    }
    let (kept, violation_counts) = keep_some(checked.violations.clone());
    let aborted =
        recording.aborted.as_deref().map(|reason| (recording.aborted_class.unwrap_or(FailureClass::Panic), reason));
    let (outcome, classes) = judge(&scenario.check.expect, aborted, &checked, &violation_counts, &slo);
    RunReport {
        scenario: scenario.file.clone(),
        name: scenario.name.clone(),
        seed: recording.seed,
        tick_ms: u64::try_from(scenario.tick.0.as_millis()).unwrap_or(u64::MAX),
        digest: recording.digest(),
        aborted: recording.aborted.clone(),
        classes,
        expect: scenario.check.expect.to_string(),
        expected: scenario.check.expect.violations().to_vec(),
        passed: matches!(outcome, SeedOutcome::Passed | SeedOutcome::FoundExpected),
        outcome,
        violations: kept,
        violation_counts,
        unjudged: checked.unjudged,
        metrics,
        slo,
        reached,
        system_figures,
        plan: recording.plan.clone(),
        versions: recording.versions.clone(),
        records: if keep_records { recording.records() } else { Vec::new() },
        timeline: if keep_records { recording.timeline() } else { Vec::new() },
        samples: if keep_records { samples } else { Vec::new() },
        picture: if keep_records { picture(system, scenario, recording) } else { Picture::default() },
    }
}

/// The run's hosts, their down intervals and the system's lanes. A panic in
/// the system's `lanes` leaves the lanes out and says so in
/// [`Picture::lanes_error`] (the report is a picture: it never fails a seed).
fn picture<S: System>(system: &S, scenario: &Scenario, recording: &Recording<S>) -> Picture {
    let context = checks::context(scenario, recording);
    let hosts = system.hosts();
    let mut down = Vec::new();
    for host in &hosts {
        for (from, until) in context.down_intervals(host) {
            down.push((host.clone(), from, until.min(context.end)));
        }
    }
    down.sort_by_key(|(_, from, _)| *from);
    let restarts = recording
        .trace
        .iter()
        .filter_map(|entry| match &entry.event {
            Happening::HostRestart { host } if !down.iter().any(|(h, _, until)| h == host && *until == entry.at) => {
                Some((host.clone(), entry.at))
            }
            _ => None,
        })
        .collect();
    let (lanes, lanes_error) = match crate::run::quietly(|| system.lanes(&context)) {
        Ok(lanes) => (lanes, None),
        Err(panic) => (Vec::new(), Some(format!("the system's lanes panicked: {panic}"))),
    };
    Picture { hosts, down, restarts, lanes, lanes_error, heal_at: context.heal_at, end: context.end }
}

/// The system's own figures. A figure that is NaN or infinite is left out
/// (a summary across seeds would turn into NaN) and fails the seed, as does
/// a panic in `figures`: the harness reports the system's arithmetic, never
/// carries it on.
fn figures<S: System>(
    system: &S,
    scenario: &Scenario,
    recording: &Recording<S>,
    errors: &mut Vec<(FailureClass, String)>,
) -> BTreeMap<String, f64> {
    let context = checks::context(scenario, recording);
    let figures = match crate::run::quietly(|| system.figures(&context)) {
        Ok(figures) => figures,
        Err(panic) => {
            errors.push((FailureClass::Figure, format!("the system's figures panicked: {panic}")));
            return BTreeMap::new();
        }
    };
    let mut kept = BTreeMap::new();
    for (name, value) in figures {
        if value.is_finite() {
            kept.insert(name.to_string(), value);
        } else {
            let reason = format!("the system's figure {name} is {value}, not a finite number: left out of the figures");
            errors.push((FailureClass::Figure, reason));
        }
    }
    kept
}

/// What metrics need of each operation.
fn samples<S: System>(system: &S, recording: &Recording<S>, flagged: &BTreeSet<usize>) -> Vec<OpSample> {
    recording
        .history
        .ops
        .iter()
        .map(|op| OpSample {
            kind: system.op_kind(&op.op),
            client: op.client,
            outstanding: op.outstanding,
            intended: op.intended,
            completed: op.completed,
            class: op.outcome.class(),
            incorrect: flagged.contains(&op.id),
        })
        .collect()
}

fn measure<S: System>(scenario: &Scenario, recording: &Recording<S>, samples: &[OpSample]) -> Metrics {
    let fault_spans: Vec<FaultSpan> = recording
        .plan
        .faults
        .iter()
        .filter(|f| f.until.is_some())
        .map(|f| FaultSpan { start: f.start(), end: f.end() })
        .collect();
    let detecting: Vec<&str> = S::doc().events.iter().filter(|e| e.detects).map(|e| e.name).collect();
    let detections: Vec<Nanos> = recording
        .trace
        .iter()
        .filter(|e| e.system().is_some_and(|event| detecting.contains(&crate::history::SystemEvent::kind(event))))
        .map(|e| e.at)
        .collect();
    metrics::measure(&MeasureInput {
        samples,
        probes: scenario.metrics.probe_interval.map(|_| recording.probes.as_slice()),
        faults: &fault_spans,
        detections: &detections,
        end: scenario.end().as_nanos(),
        window: scenario.metrics.window.as_nanos(),
        up_ratio: scenario.metrics.up_ratio,
        probe_threshold: scenario.metrics.probe_threshold,
    })
}

/// Holds one SLO against the run's figures. A figure the run never measured
/// fails the SLO and says so: an SLO cannot pass on missing data.
pub fn evaluate_slo(slo: &Slo, metrics: &Metrics) -> SloResult {
    let measured = metrics.slo_value(&slo.metric);
    let threshold = format!("{} {}", slo.op, slo.text);
    let Some(value) = measured else {
        let why = match slo.metric.as_str() {
            "mttd" => "never detected: no fault was followed by a detection event of the system",
            "time_to_recover" => "never measured: no fault ended while the service was down",
            _ => "never measured",
        };
        return SloResult {
            metric: slo.metric.clone(),
            message: format!("{} {threshold} ({why})", slo.metric),
            threshold,
            measured: None,
            met: false,
            error_budget_consumed: None,
        };
    };
    let percent = SLO_METRICS.iter().any(|(m, unit, _)| *m == slo.metric && *unit == SloUnit::Percent);
    let shown = if percent {
        format!("{:.3}%", value * 100.0)
    } else {
        crate::units::format_duration(Duration::from_secs_f64(value.max(0.0)))
    };
    let floor =
        matches!(slo.op, Comparison::Ge | Comparison::Gt) && slo.metric.contains("availability") && slo.threshold < 1.0;
    SloResult {
        metric: slo.metric.clone(),
        message: format!("{} {threshold} (measured {shown})", slo.metric),
        threshold,
        measured: Some(value),
        met: slo.op.holds(value, slo.threshold),
        error_budget_consumed: floor.then(|| (1.0 - value) / (1.0 - slo.threshold)),
    }
}

/// Keeps at most [`VIOLATIONS_KEPT_MAX`] violations per invariant, and counts them all.
fn keep_some(violations: Vec<Violation>) -> (Vec<Violation>, BTreeMap<String, usize>) {
    let mut counts = BTreeMap::new();
    let mut kept = Vec::new();
    for violation in violations {
        let count = counts.entry(violation.invariant.clone()).or_insert(0usize);
        *count += 1;
        if *count <= VIOLATIONS_KEPT_MAX {
            kept.push(violation);
        }
    }
    (kept, counts)
}

/// How a seed went, and the classes of its failure: a pure function of
/// what the run found.
pub fn judge(
    expect: &Expect,
    aborted: Option<(FailureClass, &str)>,
    checked: &Checked,
    violation_counts: &BTreeMap<String, usize>,
    slo: &[SloResult],
) -> (SeedOutcome, Vec<FailureClass>) {
    let mut reasons = Vec::new();
    let mut classes = Vec::new();
    if let Some((class, reason)) = aborted {
        reasons.push(format!("aborted: {reason}"));
        classes.push(class);
    }
    for (class, reason) in &checked.errors {
        reasons.push(reason.clone());
        classes.push(*class);
    }
    for (invariant, count) in violation_counts {
        if !expect.expects(invariant) {
            let noun = if *count == 1 { "violation" } else { "violations" };
            reasons.push(format!("{count} {noun} of {invariant}"));
            classes.push(FailureClass::Violation);
        }
    }
    for result in slo.iter().filter(|r| !r.met) {
        reasons.push(format!("SLO breached: {}", result.message));
        classes.push(FailureClass::Slo);
    }
    if !reasons.is_empty() {
        let mut seen = Vec::new();
        classes.retain(|class| {
            if seen.contains(class) {
                false
            } else {
                seen.push(*class);
                true
            }
        });
        return (SeedOutcome::Failed { reasons }, classes);
    }
    (judged(expect, checked, violation_counts), Vec::new())
}

/// How a seed that failed nothing went.
fn judged(expect: &Expect, checked: &Checked, violation_counts: &BTreeMap<String, usize>) -> SeedOutcome {
    if !checked.unjudged.is_empty() {
        let reasons = checked.unjudged.iter().map(|(name, why)| format!("{name} could not judge: {why}")).collect();
        return SeedOutcome::Unjudged { reasons };
    }
    match expect {
        Expect::Pass => SeedOutcome::Passed,
        Expect::Violations(names) if names.iter().any(|n| violation_counts.contains_key(n)) => {
            SeedOutcome::FoundExpected
        }
        Expect::Violations(_) => SeedOutcome::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_slo;

    fn counts(names: &[&str]) -> BTreeMap<String, usize> {
        names.iter().map(|n| (n.to_string(), 1usize)).collect()
    }

    #[test]
    fn judge_separates_expected_and_unexpected_violations() {
        let none = Checked::default();
        let flaw = Expect::Violations(vec!["stale".into()]);
        assert_eq!(judge(&Expect::Pass, None, &none, &counts(&[]), &[]).0, SeedOutcome::Passed);
        assert!(judge(&Expect::Pass, None, &none, &counts(&["stale"]), &[]).0.failed());
        assert_eq!(judge(&flaw, None, &none, &counts(&["stale"]), &[]).0, SeedOutcome::FoundExpected);
        assert_eq!(judge(&flaw, None, &none, &counts(&[]), &[]).0, SeedOutcome::NotFound);
        assert!(judge(&flaw, None, &none, &counts(&["stale", "liveness"]), &[]).0.failed());
        assert!(judge(&Expect::Pass, Some((FailureClass::Panic, "panic")), &none, &counts(&[]), &[]).0.failed());
        let two = Expect::Violations(vec!["stale".into(), "lost".into()]);
        assert_eq!(judge(&two, None, &none, &counts(&["lost"]), &[]).0, SeedOutcome::FoundExpected);
    }

    #[test]
    fn a_check_that_cannot_judge_is_neither_a_pass_nor_hidden_by_a_failure() {
        let unjudged = Checked { unjudged: vec![("liveness".into(), "too few".into())], ..Checked::default() };
        assert!(matches!(judge(&Expect::Pass, None, &unjudged, &counts(&[]), &[]).0, SeedOutcome::Unjudged { .. }));
        assert!(judge(&Expect::Pass, None, &unjudged, &counts(&["stale"]), &[]).0.failed());
    }

    #[test]
    fn an_slo_on_a_figure_never_measured_fails_and_says_why() {
        let metrics = Metrics::default();
        let mttd = parse_slo("mttd", SloUnit::Duration, "<= 200ms").unwrap();
        let result = evaluate_slo(&mttd, &metrics);
        assert!(!result.met);
        assert!(result.message.contains("never detected"), "{}", result.message);
        let detected = Metrics { mttd_ms: Some(150.0), ..Metrics::default() };
        assert!(evaluate_slo(&mttd, &detected).met);
    }

    #[test]
    fn replay_commands_quote_odd_paths() {
        assert_eq!(replay_command("scenarios/echo/a.toml", 7), "faultline replay scenarios/echo/a.toml --seed 7");
        assert_eq!(replay_command("my dir/a.toml", 7), "faultline replay 'my dir/a.toml' --seed 7");
    }
}
