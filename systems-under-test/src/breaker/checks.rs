//! The breaker's invariants and figures: pure functions of a finished run.
//! They read the history, the app's breaker events (with the app's crashes
//! and restarts, which leave a fresh, closed breaker) and the downstream's
//! own call log, whose send times say what the breaker let through without
//! taking the breaker's word for it. `legal-transitions` replays the
//! recorded results through the breaker's own rule ([`Tally`]).

use std::collections::BTreeMap;
use std::time::Duration;

use faultline_harness::history::{format_nanos, nanos, Happening};
use faultline_harness::{CheckContext, History, Lane, Nanos, Outcome, OutcomeClass, StateChange, Tone, Violation};

use super::knobs::Breaker;
use super::protocol::{BreakerEvent, BreakerOp, CallResult, Source, APP, DOWNSTREAM};
use super::rule::{OpenReason, Tally};

/// Slack for the recovery bound: a trial call's round trip and the probe's gap.
pub const RECOVERY_SLACK: Duration = Duration::from_secs(1);

/// What the checkers follow of the app's breaker, in order.
#[derive(Clone, Copy, Debug)]
enum AppStep<'a> {
    /// The app crashed or restarted: its breaker lived in its memory, and
    /// starts afresh, closed.
    Reset,
    Event(&'a BreakerEvent),
}

/// The app's breaker events and resets, with their times.
fn app_steps<'a>(context: &CheckContext<'a, Breaker>) -> impl Iterator<Item = (Nanos, AppStep<'a>)> + 'a {
    let trace = context.trace;
    trace.iter().filter_map(|entry| match &entry.event {
        _ if entry.reset_host() == Some(APP) => Some((entry.at, AppStep::Reset)),
        Happening::System(event) if entry.source == APP => Some((entry.at, AppStep::Event(event))),
        _ => None,
    })
}

/// The downstream's log: (attempt, when the app sent it).
fn downstream_calls(context: &CheckContext<'_, Breaker>) -> Vec<(u64, Nanos)> {
    context
        .events()
        .filter_map(|(_, _, event)| match event {
            BreakerEvent::DownstreamCall { attempt, sent, .. } => Some((*attempt, *sent)),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spell {
    Open,
    HalfOpen,
}

/// The breaker's open and half-open spells from its transitions, as (kind,
/// start, end); the last may run to the end of the run.
fn spells(context: &CheckContext<'_, Breaker>) -> Vec<(Spell, Nanos, Nanos)> {
    let mut spells = Vec::new();
    let mut current: Option<(Spell, Nanos)> = None;
    for (at, step) in app_steps(context) {
        let next = match step {
            AppStep::Event(BreakerEvent::Open { .. }) => Some(Spell::Open),
            AppStep::Event(BreakerEvent::HalfOpen) => Some(Spell::HalfOpen),
            AppStep::Event(BreakerEvent::Close { .. }) | AppStep::Reset => None,
            AppStep::Event(_) => continue,
        };
        if let Some((spell, start)) = current.take() {
            spells.push((spell, start, at));
        }
        current = next.map(|spell| (spell, at));
    }
    if let Some((spell, start)) = current {
        spells.push((spell, start, Nanos::MAX));
    }
    spells
}

/// The breaker's state as the replay of its events has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Closed,
    Open,
    HalfOpen,
}

impl Seen {
    fn name(self) -> &'static str {
        match self {
            Seen::Closed => "closed",
            Seen::Open => "open",
            Seen::HalfOpen => "half-open",
        }
    }
}

/// `legal-transitions`, as a replay of the app's breaker events.
struct Replay<'c> {
    config: &'c Breaker,
    state: Seen,
    opened_at: Nanos,
    /// The rule's counts while closed: the breaker's own code.
    tally: Tally,
    trial_failed: bool,
    trials_succeeded: u32,
    violations: Vec<Violation>,
}

impl Replay<'_> {
    fn reset(&mut self) {
        self.state = Seen::Closed;
        self.tally.clear();
    }

    fn record(&mut self, at: Nanos, result: CallResult) {
        let failed = result.counts_as_failure();
        match self.state {
            Seen::Closed => self.tally.record(at, failed),
            Seen::HalfOpen if failed => self.trial_failed = true,
            Seen::HalfOpen => self.trials_succeeded += 1,
            // A late answer to a call sent before the breaker opened.
            Seen::Open => {}
        }
    }

    fn open(&mut self, at: Nanos, rule: OpenReason) {
        let legal = match self.state {
            Seen::Closed => self.tally.holds(at).is_some(),
            Seen::HalfOpen => self.trial_failed,
            Seen::Open => false,
        };
        if !legal {
            let message =
                format!("the breaker opened from {} (on {rule}) although its rule did not hold", self.state.name());
            self.violations.push(Violation::new(message).at(at));
        }
        self.state = Seen::Open;
        self.opened_at = at;
    }

    fn half_open(&mut self, at: Nanos) {
        let least = self.config.open_least();
        if self.state != Seen::Open {
            let message = format!("the breaker went half-open from {}", self.state.name());
            self.violations.push(Violation::new(message).at(at));
        } else if at.saturating_sub(self.opened_at) < nanos(least) {
            let message = format!(
                "the breaker went half-open {:.3}s after opening; open_duration is {} (at least {:.3}s with open_jitter)",
                Duration::from_nanos(at.saturating_sub(self.opened_at)).as_secs_f64(),
                self.config.open_duration,
                least.as_secs_f64(),
            );
            self.violations.push(Violation::new(message).at(at));
        }
        self.state = Seen::HalfOpen;
        self.trial_failed = false;
        self.trials_succeeded = 0;
    }

    fn close(&mut self, at: Nanos) {
        if self.state != Seen::HalfOpen || self.trials_succeeded == 0 {
            let message = format!("the breaker closed from {} without a successful trial call", self.state.name());
            self.violations.push(Violation::new(message).at(at));
        }
        self.state = Seen::Closed;
        self.tally.clear();
    }
}

/// `legal-transitions`: replays the app's recorded results through its
/// rule. CLOSED to OPEN only when the rule holds; OPEN to HALF_OPEN only
/// after the least open duration; HALF_OPEN to CLOSED after a successful
/// trial, to OPEN after a failed one.
pub fn check_legal_transitions(config: &Breaker, context: &CheckContext<'_, Breaker>) -> Vec<Violation> {
    let mut replay = Replay {
        config,
        state: Seen::Closed,
        opened_at: 0,
        tally: Tally::new(config.rule),
        trial_failed: false,
        trials_succeeded: 0,
        violations: Vec::new(),
    };
    for (at, step) in app_steps(context) {
        match step {
            AppStep::Reset => replay.reset(),
            AppStep::Event(BreakerEvent::Record { result, .. }) => replay.record(at, *result),
            AppStep::Event(BreakerEvent::Open { rule, .. }) => replay.open(at, *rule),
            AppStep::Event(BreakerEvent::HalfOpen) => replay.half_open(at),
            AppStep::Event(BreakerEvent::Close { .. }) => replay.close(at),
            AppStep::Event(_) => {}
        }
    }
    replay.violations
}

/// `fail-fast`: no call the app sent while the breaker was open reached the
/// downstream (calls sent before it opened may still arrive).
pub fn check_fail_fast(context: &CheckContext<'_, Breaker>) -> Vec<Violation> {
    let open: Vec<(Nanos, Nanos)> =
        spells(context).into_iter().filter(|(s, _, _)| *s == Spell::Open).map(|(_, a, b)| (a, b)).collect();
    downstream_calls(context)
        .into_iter()
        .filter_map(|(attempt, sent)| {
            let (start, _) = open.iter().find(|(start, end)| sent > *start && sent < *end)?;
            let message = format!(
                "attempt {attempt} was sent at {}, while the breaker was open (since {})",
                format_nanos(sent),
                format_nanos(*start)
            );
            Some(Violation::new(message).at(sent))
        })
        .collect()
}

/// `half-open-admission`: at most `bound` calls sent in one half-open spell.
pub fn check_half_open_admission(context: &CheckContext<'_, Breaker>, bound: u32) -> Vec<Violation> {
    let calls = downstream_calls(context);
    spells(context)
        .into_iter()
        .filter(|(s, _, _)| *s == Spell::HalfOpen)
        .filter_map(|(_, start, end)| {
            let admitted = calls.iter().filter(|(_, sent)| *sent >= start && *sent < end).count();
            let message = format!(
                "{admitted} calls went through in the half-open spell from {}; at most {bound} may",
                format_nanos(start)
            );
            (admitted > bound as usize).then(|| Violation::new(message).at(start))
        })
        .collect()
}

/// `bounded-response-time`: every request answered within `bound`.
pub fn check_bounded_response_time(history: &History<BreakerOp, Source>, bound: Nanos) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Timeout) || op.completed.saturating_sub(op.invoked) > bound)
        .map(|op| {
            Violation::new(format!(
                "request #{} took {:.3}s ({:?}); the bound is {:.3}s",
                op.id,
                Duration::from_nanos(op.completed.saturating_sub(op.invoked)).as_secs_f64(),
                op.outcome.class(),
                Duration::from_nanos(bound).as_secs_f64(),
            ))
            .at(op.invoked)
            .ops([op.id])
        })
        .collect()
}

/// `graceful-degradation`: every request gets an answer, fresh or a fallback.
pub fn check_graceful_degradation(history: &History<BreakerOp, Source>) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter(|op| !op.outcome.class().served())
        .map(|op| {
            Violation::new(format!("request #{} got no answer: {:?}", op.id, op.outcome)).at(op.invoked).ops([op.id])
        })
        .collect()
}

/// `recovery`: once the heal phase starts, the breaker is closed within
/// `bound`: its last transition by then (or a reset of the app) left it closed.
pub fn check_recovery(context: &CheckContext<'_, Breaker>, bound: Nanos) -> Vec<Violation> {
    let deadline = context.heal_at.saturating_add(bound);
    let last = app_steps(context)
        .filter(|(at, step)| {
            *at <= deadline
                && matches!(
                    step,
                    AppStep::Reset
                        | AppStep::Event(
                            BreakerEvent::Open { .. } | BreakerEvent::HalfOpen | BreakerEvent::Close { .. }
                        )
                )
        })
        .last();
    let still = match last {
        Some((_, AppStep::Event(BreakerEvent::Open { .. }))) => "open",
        Some((_, AppStep::Event(BreakerEvent::HalfOpen))) => "half-open",
        _ => return Vec::new(),
    };
    let message = format!(
        "the breaker was still {still} {:.3}s after the heal phase began (bound {:.3}s)",
        Duration::from_nanos(deadline - context.heal_at).as_secs_f64(),
        Duration::from_nanos(bound).as_secs_f64()
    );
    vec![Violation::new(message).at(deadline)]
}

/// The share of requests answered with a fallback.
pub fn degraded_share(history: &History<BreakerOp, Source>) -> f64 {
    let degraded = history.ops.iter().filter(|op| op.outcome.class() == OutcomeClass::Degraded).count();
    degraded as f64 / history.ops.len().max(1) as f64
}

/// The app's attempts at the downstream for clients (not the health
/// probe), and how many of them failed: every attempt records a result.
pub fn client_attempts(context: &CheckContext<'_, Breaker>) -> (u64, u64) {
    let mut attempts = 0;
    let mut failed = 0;
    for (_, _, event) in context.events() {
        if let BreakerEvent::Record { result, probe: false, .. } = event {
            attempts += 1;
            failed += u64::from(*result == CallResult::Failed);
        }
    }
    (attempts, failed)
}

/// Peak downstream calls per second (the busiest 100ms bin) in the 2s after
/// the downstream came back: its last restart, else the heal phase.
pub fn peak_after_recovery(context: &CheckContext<'_, Breaker>) -> f64 {
    const BIN: Nanos = 100_000_000;
    let last_restart = context.trace.iter().rev().find_map(|entry| match &entry.event {
        Happening::HostRestart { host } if host == DOWNSTREAM => Some(entry.at),
        _ => None,
    });
    let back = last_restart.unwrap_or(context.heal_at);
    let mut bins: BTreeMap<Nanos, u32> = BTreeMap::new();
    for (at, _, event) in context.events() {
        if matches!(event, BreakerEvent::DownstreamCall { .. }) && at >= back && at < back + 20 * BIN {
            *bins.entry((at - back) / BIN).or_default() += 1;
        }
    }
    f64::from(bins.values().copied().max().unwrap_or(0)) * 10.0
}

/// The report's lanes: the app's breaker state (closed, open, half-open, or
/// the app down, from its typed transitions and its crashes and restarts),
/// and the calls reaching the downstream per 100ms (a retry storm shows as
/// a spike).
pub fn lanes(config: &Breaker, context: &CheckContext<'_, Breaker>) -> Vec<Lane> {
    let mut lanes = Vec::new();
    if config.enabled {
        let mut changes = vec![StateChange::new(0, "closed", Tone::Good)];
        for (at, step) in app_steps(context) {
            let change = match step {
                AppStep::Reset if context.down_intervals(APP).iter().any(|(from, _)| *from == at) => {
                    StateChange::new(at, "app down", Tone::Neutral)
                }
                AppStep::Reset => StateChange::new(at, "closed", Tone::Good),
                AppStep::Event(BreakerEvent::Open { .. }) => StateChange::new(at, "open", Tone::Bad),
                AppStep::Event(BreakerEvent::HalfOpen) => StateChange::new(at, "half-open", Tone::Warn),
                AppStep::Event(BreakerEvent::Close { .. }) => StateChange::new(at, "closed", Tone::Good),
                AppStep::Event(_) => continue,
            };
            changes.push(change);
        }
        lanes.push(Lane::states("breaker", changes));
    }
    const BIN: Nanos = 100_000_000;
    let mut bins: BTreeMap<Nanos, u32> = BTreeMap::new();
    for (at, _, event) in context.events() {
        if matches!(event, BreakerEvent::DownstreamCall { .. }) {
            *bins.entry(at / BIN).or_default() += 1;
        }
    }
    let last = context.end / BIN;
    lanes.push(Lane::level(
        "downstream calls / 100ms",
        (0..=last).map(|bin| (bin * BIN, f64::from(bins.get(&bin).copied().unwrap_or(0)))),
    ));
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::knobs::Window;
    use crate::breaker::protocol::BreakerState;
    use crate::breaker::rule::Rule;
    use faultline_harness::history::{TraceEvent, HARNESS};
    use faultline_harness::units::Dur;
    use faultline_harness::Operation;

    const MS: Nanos = 1_000_000;

    type Trace = Vec<TraceEvent<BreakerEvent>>;

    fn app(at_ms: u64, event: BreakerEvent) -> TraceEvent<BreakerEvent> {
        TraceEvent { at: at_ms * MS, source: APP.into(), event: Happening::System(event) }
    }

    fn record(at_ms: u64, result: CallResult) -> TraceEvent<BreakerEvent> {
        // The state field is the app's word; the checkers keep their own.
        app(at_ms, BreakerEvent::Record { result, state: BreakerState::Closed, probe: false })
    }

    fn fail(at_ms: u64) -> TraceEvent<BreakerEvent> {
        record(at_ms, CallResult::Failed)
    }

    fn ok(at_ms: u64) -> TraceEvent<BreakerEvent> {
        record(at_ms, CallResult::Ok)
    }

    fn open(at_ms: u64, rule: OpenReason) -> TraceEvent<BreakerEvent> {
        app(at_ms, BreakerEvent::Open { rule, for_ns: 1_000 * MS })
    }

    fn opened(at_ms: u64) -> TraceEvent<BreakerEvent> {
        open(at_ms, OpenReason::Consecutive { failures: 5 })
    }

    fn half_open(at_ms: u64) -> TraceEvent<BreakerEvent> {
        app(at_ms, BreakerEvent::HalfOpen)
    }

    fn close(at_ms: u64) -> TraceEvent<BreakerEvent> {
        app(at_ms, BreakerEvent::Close { successes: 1 })
    }

    fn call(at_ms: u64, attempt: u64, sent_ms: u64) -> TraceEvent<BreakerEvent> {
        let event = BreakerEvent::DownstreamCall { attempt, sent: sent_ms * MS, probe: false };
        TraceEvent { at: at_ms * MS, source: DOWNSTREAM.into(), event: Happening::System(event) }
    }

    fn harness(at_ms: u64, event: Happening<BreakerEvent>) -> TraceEvent<BreakerEvent> {
        TraceEvent { at: at_ms * MS, source: HARNESS.into(), event }
    }

    fn crash(at_ms: u64, host: &str) -> TraceEvent<BreakerEvent> {
        harness(at_ms, Happening::HostCrash { host: host.into() })
    }

    fn restart(at_ms: u64, host: &str) -> TraceEvent<BreakerEvent> {
        harness(at_ms, Happening::HostRestart { host: host.into() })
    }

    /// Runs `check` over `trace` (and `history`) with the heal phase at `heal_ms`.
    fn with<T>(
        trace: &[TraceEvent<BreakerEvent>],
        history: &History<BreakerOp, Source>,
        heal_ms: u64,
        check: impl FnOnce(&CheckContext<'_, Breaker>) -> T,
    ) -> T {
        let context = CheckContext { history, trace, faults: &[], heal_at: heal_ms * MS, end: 60_000 * MS };
        check(&context)
    }

    fn legal(config: &Breaker, trace: &[TraceEvent<BreakerEvent>]) -> Vec<Violation> {
        with(trace, &History::new(Vec::new()), 0, |context| check_legal_transitions(config, context))
    }

    fn fail_fast(trace: &[TraceEvent<BreakerEvent>]) -> Vec<Violation> {
        with(trace, &History::new(Vec::new()), 0, check_fail_fast)
    }

    fn admission(trace: &[TraceEvent<BreakerEvent>], bound: u32) -> Vec<Violation> {
        with(trace, &History::new(Vec::new()), 0, |context| check_half_open_admission(context, bound))
    }

    fn recovery(trace: &[TraceEvent<BreakerEvent>], heal_ms: u64, bound_ms: u64) -> Vec<Violation> {
        with(trace, &History::new(Vec::new()), heal_ms, |context| check_recovery(context, bound_ms * MS))
    }

    fn consecutive(threshold: u32) -> Breaker {
        Breaker::with_rule(Rule::Consecutive(threshold))
    }

    fn messages(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|v| v.message.as_str()).collect()
    }

    // legal-transitions

    #[test]
    fn a_legal_cycle_passes() {
        let trace = vec![
            fail(1),
            fail(2),
            open(2, OpenReason::Consecutive { failures: 2 }),
            half_open(1002),
            ok(1010),
            close(1010),
        ];
        assert!(legal(&consecutive(2), &trace).is_empty());
    }

    #[test]
    fn opening_early_half_opening_early_and_closing_from_open_are_illegal() {
        let trace = vec![
            fail(1),
            ok(2),
            fail(3),
            open(3, OpenReason::Consecutive { failures: 1 }), // only 1 in a row
            half_open(500),                                   // before 1s
            open(600, OpenReason::HalfOpenFailure),           // no failed trial
            close(700),                                       // from open
        ];
        let violations = legal(&consecutive(2), &trace);
        assert_eq!(violations.len(), 4, "{violations:#?}");
        let found = messages(&violations);
        assert!(found[0].contains("opened from closed (on 1 consecutive failures)"), "{}", found[0]);
        assert!(found[1].contains("0.497s after opening"), "{}", found[1]);
        assert!(found[2].contains("opened from half-open (on a failed trial call)"), "{}", found[2]);
        assert!(found[3].contains("closed from open without a successful trial call"), "{}", found[3]);
        assert_eq!(violations[1].at, Some(500 * MS));
    }

    #[test]
    fn half_open_before_the_open_duration_is_illegal_and_the_jitter_shortens_it() {
        let early = vec![fail(0), fail(1), opened(1), half_open(1000)];
        let violations = legal(&consecutive(2), &early);
        assert_eq!(
            messages(&violations),
            ["the breaker went half-open 0.999s after opening; open_duration is 1s (at least 1.000s with open_jitter)"]
        );
        assert!(legal(&consecutive(2), &[fail(0), fail(1), opened(1), half_open(1001)]).is_empty());
        // open_jitter = 0.2 may cut the 1s by up to 200ms.
        let jittered = Breaker { open_jitter: 0.2, ..consecutive(2) };
        assert!(legal(&jittered, &[fail(0), fail(1), opened(1), half_open(801)]).is_empty());
        assert_eq!(legal(&jittered, &[fail(0), fail(1), opened(1), half_open(800)]).len(), 1);
    }

    #[test]
    fn closing_without_a_successful_trial_call_is_illegal() {
        let start = vec![fail(0), fail(1), opened(1), half_open(1001)];
        // No trial answered at all.
        let mut silent = start.clone();
        silent.push(close(1002));
        assert_eq!(
            messages(&legal(&consecutive(2), &silent)),
            ["the breaker closed from half-open without a successful trial call"]
        );
        // A slow trial is a failure, not a success.
        let mut slow = start.clone();
        slow.extend([record(1010, CallResult::Slow), close(1010)]);
        assert_eq!(legal(&consecutive(2), &slow).len(), 1);
        // A client error is an answer: the downstream is fine.
        let mut client_error = start.clone();
        client_error.extend([record(1010, CallResult::ClientError), close(1010)]);
        assert!(legal(&consecutive(2), &client_error).is_empty());
        // Closing from closed is illegal too.
        assert_eq!(legal(&consecutive(2), &[ok(0), close(1)]).len(), 1);
    }

    #[test]
    fn a_failed_trial_reopens_legally_and_half_open_needs_an_open_breaker() {
        let reopen = vec![
            fail(0),
            fail(1),
            opened(1),
            half_open(1001),
            record(1100, CallResult::Slow),
            open(1100, OpenReason::HalfOpenFailure),
        ];
        assert!(legal(&consecutive(2), &reopen).is_empty());
        let from_closed = legal(&consecutive(2), &[ok(0), half_open(5)]);
        assert_eq!(messages(&from_closed), ["the breaker went half-open from closed"]);
        let twice = legal(&consecutive(1), &[fail(0), opened(0), opened(10)]);
        assert_eq!(twice.len(), 1);
        assert!(twice[0].message.contains("opened from open"), "{}", twice[0].message);
        // Late answers while open are not counted: the breaker reopens only by its rule.
        let late = vec![
            fail(0),
            fail(1),
            opened(1),
            fail(5),
            fail(6),
            half_open(1001),
            ok(1002),
            close(1002),
            open(1003, OpenReason::Consecutive { failures: 2 }),
        ];
        assert_eq!(legal(&consecutive(2), &late).len(), 1);
    }

    #[test]
    fn the_failure_rate_over_a_count_window_opens_legally_only_when_it_holds() {
        let rule = Rule::Rate { rate: 0.5, window: Window::Calls(4), minimum_calls: 4 };
        let config = Breaker::with_rule(rule);
        let opens = |failures, calls| open(10, OpenReason::Rate { failures, calls });
        // 2 of the last 4 calls failed.
        assert!(legal(&config, &[ok(1), fail(2), ok(3), fail(4), opens(2, 4)]).is_empty());
        // 1 of the last 4: the failure at 1ms has left the window.
        let aged = legal(&config, &[fail(1), ok(2), ok(3), fail(4), ok(5), opens(2, 5)]);
        assert_eq!(aged.len(), 1, "{aged:#?}");
        // Every call failed, but fewer than minimum_calls.
        assert_eq!(legal(&config, &[fail(1), fail(2), fail(3), opens(3, 3)]).len(), 1);
    }

    #[test]
    fn the_failure_rate_over_a_time_window_opens_legally_only_when_it_holds() {
        let rule = Rule::Rate { rate: 0.5, window: Window::Time(Dur::from_secs(1)), minimum_calls: 3 };
        let config = Breaker::with_rule(rule);
        let opens = |at_ms| open(at_ms, OpenReason::Rate { failures: 2, calls: 3 });
        // 2 of 3 within the last second.
        assert!(legal(&config, &[fail(0), fail(100), ok(200), opens(200)]).is_empty());
        // At 1300ms the failures at 0 and 100 are over a second old: 1 of 3.
        let aged = legal(&config, &[fail(0), fail(100), ok(1200), ok(1250), fail(1300), opens(1300)]);
        assert_eq!(aged.len(), 1, "{aged:#?}");
        // The rule must hold when the breaker opens, not only at an earlier call.
        assert_eq!(legal(&config, &[fail(0), fail(100), fail(200), opens(1500)]).len(), 1);
    }

    #[test]
    fn an_app_restart_starts_the_replay_afresh() {
        // Failures before the restart do not count after it.
        let counted = vec![fail(1), crash(2, APP), restart(3, APP), fail(4), opened(4)];
        assert_eq!(legal(&consecutive(2), &counted).len(), 1);
        // A restart of another host changes nothing.
        let other = vec![fail(1), crash(2, DOWNSTREAM), restart(3, DOWNSTREAM), fail(4), opened(4)];
        assert!(legal(&consecutive(2), &other).is_empty());
    }

    // fail-fast and half-open-admission

    #[test]
    fn calls_sent_while_open_break_fail_fast_but_calls_sent_before_do_not() {
        let trace = vec![
            opened(100),
            call(105, 1, 99),  // sent before: fine
            call(106, 2, 100), // sent as it opened: fine
            call(205, 3, 200), // sent while open
            half_open(1100),
            call(1105, 4, 1100), // the trial: fine
        ];
        let violations = fail_fast(&trace);
        assert_eq!(
            messages(&violations),
            ["attempt 3 was sent at 0.200000s, while the breaker was open (since 0.100000s)"]
        );
        assert_eq!(violations[0].at, Some(200 * MS));
    }

    #[test]
    fn more_than_the_bound_in_one_half_open_spell_is_a_violation() {
        let trace = vec![
            opened(0),
            half_open(1000),
            call(1002, 1, 1000),
            call(1003, 2, 1001),
            close(1010),
            call(1020, 3, 1020), // closed: fine
        ];
        assert!(admission(&trace, 2).is_empty());
        let violations = admission(&trace, 1);
        assert_eq!(
            messages(&violations),
            ["2 calls went through in the half-open spell from 1.000000s; at most 1 may"]
        );
        // A reopening ends the spell too.
        let reopened =
            vec![opened(0), half_open(1000), call(1001, 1, 1000), opened(1100), half_open(2100), call(2101, 2, 2100)];
        assert!(admission(&reopened, 1).is_empty());
    }

    #[test]
    fn an_app_restart_closes_the_breaker_in_every_checker() {
        let trace = vec![
            fail(1),
            fail(2),
            open(2, OpenReason::Consecutive { failures: 2 }),
            crash(100, APP),
            restart(200, APP),
            call(210, 1, 210), // a fresh, closed breaker
            fail(300),
            fail(301),
            open(301, OpenReason::Consecutive { failures: 2 }),
            half_open(1301),
            crash(1302, APP),
            call(1303, 2, 1303),
            call(1304, 3, 1304),
            harness(5000, Happening::Heal),
            restart(5300, APP),
        ];
        assert!(legal(&consecutive(2), &trace).is_empty());
        assert!(fail_fast(&trace).is_empty());
        assert!(admission(&trace, 1).is_empty(), "the crash ended the half-open spell");
        assert!(recovery(&trace, 5000, 1000).is_empty(), "the restart left the breaker closed");
    }

    #[test]
    fn breaker_events_from_another_host_are_not_the_apps_breaker() {
        // Only the app's breaker is followed: the same events from another
        // host (a second app, or a mistake) change none of its checkers.
        let elsewhere = |entry: TraceEvent<BreakerEvent>| TraceEvent { source: "app-2".into(), ..entry };
        let trace = vec![elsewhere(fail(1)), elsewhere(opened(1)), call(5, 1, 5), elsewhere(half_open(10))];
        assert!(legal(&consecutive(5), &trace).is_empty(), "not the app's transitions");
        assert!(fail_fast(&trace).is_empty(), "the app's breaker never opened");
        assert!(admission(&trace, 1).is_empty());
        assert!(recovery(&[elsewhere(opened(4000))], 5000, 2000).is_empty());
    }

    // recovery

    #[test]
    fn the_breaker_must_be_closed_soon_after_the_heal() {
        let healed = vec![opened(4000), half_open(5500), close(5510)];
        assert!(recovery(&healed, 5000, 2000).is_empty());
        let stuck = recovery(&[opened(4000)], 5000, 2000);
        assert_eq!(messages(&stuck), ["the breaker was still open 2.000s after the heal phase began (bound 2.000s)"]);
        assert_eq!(stuck[0].at, Some(7000 * MS));
        let trying = recovery(&[opened(4000), half_open(6900)], 5000, 2000);
        assert!(trying[0].message.contains("still half-open"), "{}", trying[0].message);
        // Closing after the deadline is too late; what happens after it is not looked at.
        assert_eq!(recovery(&[opened(4000), half_open(6900), close(7001)], 5000, 2000).len(), 1);
        assert!(recovery(&[close(6000), opened(7001)], 5000, 2000).is_empty());
    }

    #[test]
    fn recovery_counts_an_app_restart_as_a_closed_breaker_only_if_nothing_opened_it_since() {
        assert!(recovery(&[opened(4000), crash(4500, APP), restart(4600, APP)], 5000, 2000).is_empty());
        assert!(recovery(&[opened(4000), crash(4500, APP)], 5000, 2000).is_empty());
        let reopened = recovery(&[opened(4000), restart(4600, APP), opened(6000)], 5000, 2000);
        assert_eq!(reopened.len(), 1);
        // Another host's restart does not close the app's breaker.
        assert_eq!(recovery(&[opened(4000), restart(4600, DOWNSTREAM)], 5000, 2000).len(), 1);
    }

    // bounded-response-time and graceful-degradation

    fn op(id: usize, invoked_ms: u64, completed_ms: u64, outcome: Outcome<Source>) -> Operation<BreakerOp, Source> {
        Operation {
            id,
            client: 0,
            seq: id as u64,
            op: BreakerOp { user: 1 },
            intended: invoked_ms * MS,
            invoked: invoked_ms * MS,
            completed: completed_ms * MS,
            outstanding: 0,
            outcome,
        }
    }

    #[test]
    fn slow_and_unanswered_requests_break_their_invariants() {
        let history = History::new(vec![
            op(0, 0, 50, Outcome::Ok(Source::Downstream)),
            op(1, 10, 700, Outcome::Degraded(Source::Static)),
            op(2, 20, 1020, Outcome::Timeout),
            op(3, 30, 40, Outcome::Failed("connection refused".into())),
            op(4, 40, 540, Outcome::Degraded(Source::Cache)), // exactly the bound: fine
        ]);
        let slow = check_bounded_response_time(&history, 500 * MS);
        assert_eq!(slow.iter().map(|v| v.ops[0]).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(slow[0].message, "request #1 took 0.690s (Degraded); the bound is 0.500s");
        let degradation = check_graceful_degradation(&history);
        assert_eq!(degradation.iter().map(|v| v.ops[0]).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(degradation[0].at, Some(20 * MS));
    }

    // figures

    #[test]
    fn figures_count_client_attempts_failures_and_fallbacks() {
        let history = History::new(vec![
            op(0, 0, 5, Outcome::Ok(Source::Downstream)),
            op(1, 1, 5, Outcome::Degraded(Source::Cache)),
            op(2, 2, 5, Outcome::Degraded(Source::Static)),
            op(3, 3, 5, Outcome::Ok(Source::BadRequest)),
        ]);
        assert_eq!(degraded_share(&history), 0.5);
        assert_eq!(degraded_share(&History::new(Vec::new())), 0.0);
        let probe =
            app(4, BreakerEvent::Record { result: CallResult::Failed, state: BreakerState::Closed, probe: true });
        let trace = vec![fail(1), record(2, CallResult::Slow), ok(3), probe, record(5, CallResult::ClientError)];
        // The probe's attempt is left out; a slow answer is counted but not wasted.
        assert_eq!(with(&trace, &history, 0, client_attempts), (4, 1));
    }

    #[test]
    fn the_peak_after_recovery_counts_from_the_downstreams_last_restart_or_the_heal() {
        let mut trace: Trace = vec![
            crash(1000, DOWNSTREAM),
            restart(2000, DOWNSTREAM),
            crash(3000, DOWNSTREAM),
            restart(4000, DOWNSTREAM),
        ];
        trace.extend((0..5).map(|i| call(2010 + i, i, 2000))); // after the first restart only
        trace.extend((0..3).map(|i| call(4010 + i, 10 + i, 4000))); // 3 in the first bin
        trace.extend((0..2).map(|i| call(4150 + i, 20 + i, 4100))); // 2 in the second
        trace.push(call(6000, 30, 6000)); // 2s later: outside
        let empty = History::new(Vec::new());
        assert_eq!(with(&trace, &empty, 9000, peak_after_recovery), 30.0);
        // No restart: from the heal phase.
        let healed: Trace = vec![call(8000, 3, 8000), call(9050, 1, 9050), call(9060, 2, 9060)];
        assert_eq!(with(&healed, &empty, 9000, peak_after_recovery), 20.0);
        assert_eq!(with(&[], &empty, 9000, peak_after_recovery), 0.0);
    }
}
