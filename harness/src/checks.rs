//! Checks a recorded run: the scenario's invariants (the system's typed
//! checkers and the harness's `liveness`), and that the system reported only
//! the events its doc lists. Pure functions of a [`Recording`]: no tokio, no
//! turmoil, no time, no I/O.

use std::time::Duration;

use crate::history::{format_nanos, Nanos, SystemEvent, Violation};
use crate::linearizability::{self, check::CheckOptions, file::ReportVerdict, model::Model, operation::Operation};
use crate::recording::Recording;
use crate::scenario::Scenario;
use crate::system::{CheckContext, CheckResult, System, Unjudged, LIVENESS};
use crate::units::format_duration;

/// The `linearizable` invariant, for any system that declares one by
/// naming its model: checks `history` (the system's operations, as the
/// checker's [`Operation`]s) against `model` with the checker's default
/// budgets. A violation carries the smallest failing slice and the end of
/// the longest linearizable prefix, drawn as timelines; a search out of its
/// budget could not judge.
pub fn linearizable<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> CheckResult {
    let report = linearizability::file::report(model, "the run's history", history, &CheckOptions::default());
    match &report.verdict {
        ReportVerdict::Linearizable => Ok(Vec::new()),
        ReportVerdict::Unknown { reason } => Err(Unjudged(format!("the linearizability search gave up: {reason}"))),
        ReportVerdict::NotLinearizable { .. } => Ok(vec![Violation::new(report.render())]),
    }
}

/// Liveness needs at least this many requests (or probes) after
/// `recover_within` to judge recovery; with fewer it says it could not judge.
pub const LIVENESS_EVIDENCE_MIN: usize = 5;

/// What the checks of one run found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checked {
    /// Every violation found, each with its invariant's name set.
    pub violations: Vec<Violation>,
    /// Checks that could not reach a verdict: (invariant, why).
    pub unjudged: Vec<(String, String)>,
    /// Mistakes of the system's own that fail the run (an event its doc does
    /// not list).
    pub errors: Vec<String>,
}

/// The checker context of a recording.
pub fn context<'a, S: System>(scenario: &Scenario, recording: &'a Recording<S>) -> CheckContext<'a, S> {
    CheckContext {
        history: &recording.history,
        trace: &recording.trace,
        faults: &recording.plan.faults,
        heal_at: recording.plan.heal_at.as_nanos(),
        end: scenario.end().as_nanos(),
    }
}

/// Runs every invariant the scenario names over the recording. An aborted
/// run is not checked: its history stops early, and the abort fails it.
pub fn check<S: System>(system: &S, scenario: &Scenario, recording: &Recording<S>) -> Checked {
    let mut checked = Checked::default();
    if recording.aborted.is_some() {
        return checked;
    }
    checked.errors = undocumented_events(recording);
    let context = context(scenario, recording);
    let invariants = S::invariants();
    for name in &scenario.check.invariants {
        let result = if name == LIVENESS.name {
            let recover_within = scenario.check.recover_within.as_nanos();
            check_liveness(&liveness_evidence(recording), context.heal_at, recover_within, context.end)
        } else {
            let invariant = invariants
                .iter()
                .find(|i| i.name == name)
                .expect("scenario validation admits only the system's invariants");
            (invariant.check)(system, &context)
        };
        match result {
            Ok(violations) => checked.violations.extend(violations.into_iter().map(|mut v| {
                v.invariant = name.clone();
                v
            })),
            Err(Unjudged(reason)) => checked.unjudged.push((name.clone(), reason)),
        }
    }
    checked
}

/// Event kinds the system reported that its doc does not list: a checker or
/// `reached` that names the listed kind would never see them.
fn undocumented_events<S: System>(recording: &Recording<S>) -> Vec<String> {
    let listed: Vec<&str> = S::doc().events.iter().map(|e| e.name).collect();
    let mut unknown: Vec<&str> =
        recording.trace.iter().filter_map(|e| e.system()).map(|e| e.kind()).filter(|k| !listed.contains(k)).collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
        .into_iter()
        .map(|kind| format!("the system reported an event of kind {kind:?}, which its doc does not list"))
        .collect()
}

/// One request or probe that liveness weighs: when it was meant to start,
/// whether it was served, and the operation's id (probes have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// When the request was meant to start ([`Operation::intended`](crate::history::Operation::intended)),
    /// or when the probe was sent.
    pub intended: Nanos,
    /// Was it answered before its deadline, fresh or degraded?
    pub served: bool,
    /// The operation's id in the history; `None` for a probe.
    pub op: Option<usize>,
}

/// The workload's operations and the probe's samples, as liveness evidence.
pub fn liveness_evidence<S: System>(recording: &Recording<S>) -> Vec<Evidence> {
    let ops = recording.history.ops.iter().map(|op| Evidence {
        intended: op.intended,
        served: op.outcome.class().served(),
        op: Some(op.id),
    });
    let probes = recording.probes.iter().map(|p| Evidence { intended: p.sent, served: p.served, op: None });
    let mut evidence: Vec<Evidence> = ops.chain(probes).collect();
    evidence.sort_by_key(|e| e.intended);
    evidence
}

/// The harness's liveness invariant: once every fault is off, the system
/// must serve again. Every request (and probe) sent at or after `heal_at +
/// recover_within` and before `end` must be served; with fewer than
/// [`LIVENESS_EVIDENCE_MIN`] of them there is nothing to judge by.
pub fn check_liveness(
    evidence: &[Evidence],
    heal_at: Nanos,
    recover_within: Nanos,
    end: Nanos,
) -> Result<Vec<Violation>, Unjudged> {
    let from = heal_at + recover_within;
    let window: Vec<&Evidence> = evidence.iter().filter(|e| e.intended >= from && e.intended < end).collect();
    if window.len() < LIVENESS_EVIDENCE_MIN {
        return Err(Unjudged(format!(
            "only {} request(s) or probe(s) were sent between {} and {}: too few to judge recovery (at least {} are needed); \
             raise the rate, lengthen `heal`, or give the system a probe",
            window.len(),
            format_nanos(from),
            format_nanos(end),
            LIVENESS_EVIDENCE_MIN
        )));
    }
    let unserved: Vec<&&Evidence> = window.iter().filter(|e| !e.served).collect();
    let (Some(first), Some(last)) = (unserved.first(), unserved.last()) else { return Ok(Vec::new()) };
    let violation = Violation::new(format!(
        "{} of {} requests after {} (heal at {} + recover_within {}) were not served; first at {}, last at {}",
        unserved.len(),
        window.len(),
        format_nanos(from),
        format_nanos(heal_at),
        format_duration(Duration::from_nanos(recover_within)),
        format_nanos(first.intended),
        format_nanos(last.intended),
    ))
    .at(first.intended)
    .ops(first.op);
    Ok(vec![violation])
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    fn evidence(intended_ms: u64, served: bool) -> Evidence {
        Evidence { intended: intended_ms * 1_000_000, served, op: Some(intended_ms as usize) }
    }

    fn steady(from_ms: u64, count: u64, served: bool) -> Vec<Evidence> {
        (0..count).map(|i| evidence(from_ms + i * 100, served)).collect()
    }

    #[test]
    fn liveness_passes_when_service_returns_after_heal() {
        let mut all = steady(9_000, 10, false);
        all.extend(steady(12_000, 10, true));
        // Heal at 10s, recover within 1.5s: only requests from 11.5s count.
        assert_eq!(check_liveness(&all, 10 * S, 1_500_000_000, 15 * S), Ok(Vec::new()));
    }

    #[test]
    fn liveness_fails_when_requests_after_recovery_fail() {
        let mut all = steady(12_000, 6, true);
        all.push(evidence(13_000, false));
        all.push(evidence(14_000, false));
        let violations = check_liveness(&all, 10 * S, S, 15 * S).unwrap();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].ops, vec![13_000]);
        assert!(violations[0].message.starts_with("2 of 8 requests"), "{}", violations[0].message);
    }

    #[test]
    fn linearizability_as_an_invariant_finds_a_stale_read_and_passes_a_clean_history() {
        use crate::linearizability::model::{Register, RegisterInput, RegisterOutput};
        let write =
            |call, ret, value| Operation::returned(0, call, ret, RegisterInput::Write(value), RegisterOutput::Write);
        let read = |call, ret, seen| Operation::returned(1, call, ret, RegisterInput::Read, RegisterOutput::Read(seen));
        let model = Register { initial: None };
        assert_eq!(linearizable(&model, &[write(0, 10, 1), read(20, 30, Some(1))]), Ok(Vec::new()));
        let stale = linearizable(&model, &[write(0, 10, 1), write(20, 30, 2), read(40, 50, Some(1))]).unwrap();
        assert_eq!(stale.len(), 1);
        assert!(stale[0].message.contains("not linearizable"), "{}", stale[0].message);
    }

    #[test]
    fn liveness_without_enough_requests_cannot_judge_rather_than_pass_or_fail() {
        let all = steady(12_000, 4, true);
        let unjudged = check_liveness(&all, 10 * S, S, 15 * S).unwrap_err();
        assert!(unjudged.0.starts_with("only 4 request(s)"), "{}", unjudged.0);
        assert!(check_liveness(&[], 10 * S, S, 15 * S).is_err());
    }
}
