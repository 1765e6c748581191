//! The breaker's opening rule, written once: when a CLOSED breaker opens.
//! The app's state machine counts its calls' results with a [`Tally`], and
//! the `legal-transitions` checker replays the recorded results through the
//! same type, so the breaker and its checker cannot drift apart.
//!
//! Pure: times are simulated nanoseconds the caller hands in; nothing here
//! reads a clock or does I/O.

use std::collections::VecDeque;
use std::fmt;

use faultline_harness::Nanos;
use serde::{Deserialize, Serialize};

use super::knobs::Window;

/// When a CLOSED breaker opens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Rule {
    /// This many consecutive failures (the chapter's rule).
    Consecutive(u32),
    /// At least `rate` of the calls in `window` failed, once the window
    /// holds at least `minimum_calls` calls.
    Rate { rate: f64, window: Window, minimum_calls: u32 },
}

/// Why the breaker opened, with the counts that made the rule hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// `failures` consecutive failures.
    Consecutive { failures: u32 },
    /// `failures` of the `calls` in the window failed.
    Rate { failures: u32, calls: u32 },
    /// A trial call failed in half-open.
    HalfOpenFailure,
}

impl fmt::Display for OpenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenReason::Consecutive { failures } => write!(f, "{failures} consecutive failures"),
            OpenReason::Rate { failures, calls } => write!(f, "{failures} of {calls} calls failed"),
            OpenReason::HalfOpenFailure => f.write_str("a failed trial call"),
        }
    }
}

/// What a CLOSED breaker has counted since it closed (or started): its
/// consecutive failures, and for the failure-rate rule the calls in the
/// window as (when, failed), oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    rule: Rule,
    consecutive: u32,
    recent: VecDeque<(Nanos, bool)>,
}

impl Tally {
    pub fn new(rule: Rule) -> Tally {
        if let Rule::Rate { rate, minimum_calls, .. } = rule {
            assert!((0.0..=1.0).contains(&rate), "a failure rate is a share of calls");
            assert!(minimum_calls >= 1, "the rate rule needs at least one call");
        }
        Tally { rule, consecutive: 0, recent: VecDeque::new() }
    }

    /// Counts a call's result at `at`. Results come in time order.
    pub fn record(&mut self, at: Nanos, failed: bool) {
        self.consecutive = if failed { self.consecutive.saturating_add(1) } else { 0 };
        if let Rule::Rate { window, .. } = self.rule {
            assert!(self.recent.back().is_none_or(|(last, _)| *last <= at), "results are counted in time order");
            self.recent.push_back((at, failed));
            self.trim(window, at);
        }
    }

    /// Whether the rule holds at `now`, and by which counts: the reason to
    /// open, or `None` to stay closed. A time window first forgets the calls
    /// older than its span.
    pub fn holds(&mut self, now: Nanos) -> Option<OpenReason> {
        match self.rule {
            Rule::Consecutive(threshold) => {
                (self.consecutive >= threshold).then_some(OpenReason::Consecutive { failures: self.consecutive })
            }
            Rule::Rate { rate, window, minimum_calls } => {
                self.trim(window, now);
                let calls = u32::try_from(self.recent.len()).expect("a window holds fewer than 2^32 calls");
                let failures = u32::try_from(self.recent.iter().filter(|(_, failed)| *failed).count())
                    .expect("failures are calls");
                let holds = calls >= minimum_calls && f64::from(failures) >= rate * f64::from(calls);
                holds.then_some(OpenReason::Rate { failures, calls })
            }
        }
    }

    /// Forgets everything: the breaker closed.
    pub fn clear(&mut self) {
        self.consecutive = 0;
        self.recent.clear();
    }

    /// Keeps the last N calls, or the calls of the last span before `now`
    /// (a call exactly one span old stays).
    fn trim(&mut self, window: Window, now: Nanos) {
        match window {
            Window::Calls(n) => {
                while self.recent.len() > n as usize {
                    self.recent.pop_front();
                }
            }
            Window::Time(span) => {
                while self.recent.front().is_some_and(|(at, _)| now.saturating_sub(*at) > span.as_nanos()) {
                    self.recent.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::units::Dur;

    const MS: Nanos = 1_000_000;

    fn tally(rule: Rule, results: &[(u64, bool)]) -> Tally {
        let mut tally = Tally::new(rule);
        for (at_ms, failed) in results {
            tally.record(at_ms * MS, *failed);
        }
        tally
    }

    #[test]
    fn consecutive_failures_open_and_a_success_starts_the_count_again() {
        let rule = Rule::Consecutive(3);
        assert_eq!(tally(rule, &[(1, true), (2, true)]).holds(2 * MS), None);
        assert_eq!(
            tally(rule, &[(1, true), (2, true), (3, true)]).holds(3 * MS),
            Some(OpenReason::Consecutive { failures: 3 })
        );
        assert_eq!(tally(rule, &[(1, true), (2, true), (3, false), (4, true)]).holds(4 * MS), None);
    }

    #[test]
    fn a_count_window_keeps_the_last_calls_and_needs_minimum_calls() {
        let rule = Rule::Rate { rate: 0.5, window: Window::Calls(4), minimum_calls: 3 };
        // Two failures, but only two calls: under minimum_calls.
        assert_eq!(tally(rule, &[(1, true), (2, true)]).holds(2 * MS), None);
        // 2 of the last 4 failed (the first failure has left the window).
        let mut four = tally(rule, &[(1, true), (2, false), (3, true), (4, false), (5, true)]);
        assert_eq!(four.holds(5 * MS), Some(OpenReason::Rate { failures: 2, calls: 4 }));
        // 1 of the last 4.
        assert_eq!(
            tally(rule, &[(1, true), (2, true), (3, false), (4, false), (5, true), (6, false)]).holds(6 * MS),
            None
        );
    }

    #[test]
    fn a_time_window_forgets_calls_older_than_its_span() {
        let rule = Rule::Rate { rate: 0.5, window: Window::Time(Dur::from_millis(100)), minimum_calls: 2 };
        let results = [(0, true), (50, true), (100, false)];
        // At 100ms every call is in the window (the first exactly one span old): 2 of 3 failed.
        assert_eq!(tally(rule, &results).holds(100 * MS), Some(OpenReason::Rate { failures: 2, calls: 3 }));
        // At 151ms the first two are gone: 0 of 1, and under minimum_calls.
        assert_eq!(tally(rule, &results).holds(151 * MS), None);
    }

    #[test]
    fn clearing_forgets_every_result() {
        let mut tally = tally(Rule::Consecutive(1), &[(1, true)]);
        assert!(tally.holds(MS).is_some());
        tally.clear();
        assert_eq!(tally.holds(MS), None);
    }
}
