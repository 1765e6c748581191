//! The app: serves client requests by calling the downstream through the
//! circuit breaker, with a timeout per call and retries with backoff,
//! jitter and a budget; when the calls fail or the breaker is open, it
//! answers from the popular-items cache, else with static defaults.
//!
//! The breaker's state machine ([`Machine`]) is plain data driven with the
//! simulated time, and reports its transitions through a callback; its
//! opening rule is [`Tally`], the same code the `legal-transitions` checker
//! replays.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::nanos;
use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext, Nanos, Outcome};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::knobs::{Breaker, HalfOpenCalls, RetryPlacement, TimeoutCovers, TrialTimeouts};
use super::protocol::{
    AppReply, AppRequest, BreakerEvent, BreakerOp, BreakerState, CacheReply, CallResult, DownstreamReply,
    DownstreamRequest, Source, APP, APP_PORT, CACHE, CACHE_PORT, DOWNSTREAM, DOWNSTREAM_PORT, PROBE_USER,
};
use super::rule::{OpenReason, Tally};
use crate::kit::pool::Caller;
use crate::kit::request::CallError;
use crate::kit::retry::Budget;
use crate::kit::serve;
use crate::kit::wire::{describe, read_frame, write_frame};

/// The client's side: one request to the app. Answers from the downstream
/// (and client errors, answered as such) are fresh; fallbacks are degraded.
pub async fn request(caller: Rc<Caller>, op: BreakerOp) -> Outcome<Source> {
    match caller.ask::<_, AppReply>(APP, APP_PORT, &AppRequest { user: op.user }).await {
        Ok(AppReply::Items(source @ (Source::Downstream | Source::BadRequest))) => Outcome::Ok(source),
        Ok(AppReply::Items(source)) => Outcome::Degraded(source),
        Ok(AppReply::Unavailable) => Outcome::Failed("unavailable: the calls failed and there is no fallback".into()),
        Err(error) => Outcome::Failed(describe(&error)),
    }
}

/// Simulated time on this host, as the trace records it.
fn now() -> Nanos {
    turmoil::sim_elapsed().map_or(0, nanos)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Nanos },
    HalfOpen { admitted: u32, succeeded: u32 },
}

/// May a call go through?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Rejected,
}

/// The breaker's state machine. It lives in the app's memory: a crash or a
/// restart of the app leaves a fresh, closed one.
pub struct Machine {
    state: State,
    tally: Tally,
    /// Reopenings from half-open since the breaker last closed.
    reopenings: u32,
}

impl Machine {
    pub fn new(config: &Breaker) -> Machine {
        Machine { state: State::Closed, tally: Tally::new(config.rule), reopenings: 0 }
    }

    /// May a call go through at `now`? An open breaker whose time is up
    /// turns half-open; half-open admits `half_open_max_calls` trials.
    pub fn admit(&mut self, config: &Breaker, now: Nanos, emit: &mut impl FnMut(BreakerEvent)) -> Admission {
        if !config.enabled {
            return Admission::Admitted;
        }
        if let State::Open { until } = self.state {
            if now < until {
                return Admission::Rejected;
            }
            self.state = State::HalfOpen { admitted: 0, succeeded: 0 };
            emit(BreakerEvent::HalfOpen);
        }
        if let State::HalfOpen { admitted, succeeded } = self.state {
            if let HalfOpenCalls::AtMost(limit) = config.half_open_max_calls {
                if admitted >= limit {
                    return Admission::Rejected;
                }
            }
            self.state = State::HalfOpen { admitted: admitted.saturating_add(1), succeeded };
        }
        Admission::Admitted
    }

    /// Counts a call's result at `now`; may open or close the breaker.
    /// `probe` marks the health probe's calls (figures leave them out);
    /// `rng` draws the open duration's jitter.
    /// Is the breaker half-open (a call admitted now would be a trial)?
    pub fn half_open(&self) -> bool {
        matches!(self.state, State::HalfOpen { .. })
    }

    pub fn record(
        &mut self,
        config: &Breaker,
        now: Nanos,
        result: CallResult,
        probe: bool,
        rng: &mut ChaCha8Rng,
        emit: &mut impl FnMut(BreakerEvent),
    ) {
        let state = match self.state {
            _ if !config.enabled => BreakerState::Disabled,
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        emit(BreakerEvent::Record { result, state, probe });
        let failed = result.counts_as_failure();
        match self.state {
            _ if !config.enabled => {}
            // A late answer to a call sent before the breaker opened.
            State::Open { .. } => {}
            // The planted flaw leaves successes uncounted: failures add up.
            State::Closed if !failed && !config.closed_successes_counted => {}
            State::Closed => {
                self.tally.record(now, failed);
                if let Some(reason) = self.tally.holds(now) {
                    self.open(config, now, reason, rng, emit);
                }
            }
            State::HalfOpen { .. } if failed => {
                self.reopenings += 1;
                self.open(config, now, OpenReason::HalfOpenFailure, rng, emit);
            }
            State::HalfOpen { succeeded, .. } if succeeded + 1 >= config.half_open_bound() => {
                self.state = State::Closed;
                self.tally.clear();
                self.reopenings = 0;
                emit(BreakerEvent::Close { successes: succeeded + 1 });
            }
            State::HalfOpen { admitted, succeeded } => {
                self.state = State::HalfOpen { admitted, succeeded: succeeded + 1 };
            }
        }
    }

    /// Opens for the grown open duration, shortened by a random share up to
    /// `open_jitter`.
    fn open(
        &mut self,
        config: &Breaker,
        now: Nanos,
        rule: OpenReason,
        rng: &mut ChaCha8Rng,
        emit: &mut impl FnMut(BreakerEvent),
    ) {
        assert!(!matches!(self.state, State::Open { .. }), "only a closed or half-open breaker opens");
        let mut length = config.open_ceiling(self.reopenings);
        if config.open_jitter > 0.0 {
            length = length.mul_f64(1.0 - rng.random_range(0.0..=config.open_jitter));
        }
        self.state = State::Open { until: now + nanos(length) };
        emit(BreakerEvent::Open { rule, for_ns: nanos(length) });
    }
}

/// One attempt's result.
#[derive(Clone, Copy, Debug)]
struct Call {
    result: CallResult,
    /// Where the answer came from, when there was one to give the client.
    source: Option<Source>,
    /// The call got no answer within `call_timeout`.
    timed_out: bool,
}

/// `call_timeout_covers = "connect"`: the timeout bounds connecting only; a
/// call whose answer never comes waits for ever.
async fn ask_connect_within(deadline: Duration, request: &DownstreamRequest) -> Result<DownstreamReply, CallError> {
    let connect = crate::kit::request::connect(DOWNSTREAM, DOWNSTREAM_PORT);
    let mut stream = match tokio::time::timeout(deadline, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(CallError::Io(describe(&error))),
        Err(_) => return Err(CallError::Timeout(deadline)),
    };
    let exchange = async {
        write_frame(&mut stream, request).await?;
        read_frame(&mut stream).await?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    };
    exchange.await.map_err(|error| CallError::Io(describe(&error)))
}

struct App {
    config: Arc<Breaker>,
    events: EventSink<BreakerEvent>,
    rng: RefCell<ChaCha8Rng>,
    machine: RefCell<Machine>,
    budget: RefCell<Option<Budget>>,
    next_attempt: Cell<u64>,
    /// How the app calls the downstream and the cache (`connections`).
    caller: Caller,
}

pub async fn serve(config: Arc<Breaker>, mut context: HostContext<BreakerEvent>) -> HostResult {
    let caller = Caller::new(config.connections, &mut context.rng);
    let app = Rc::new(App {
        machine: RefCell::new(Machine::new(&config)),
        budget: RefCell::new(config.retry_budget.map(Budget::new)),
        config,
        events: context.events,
        rng: RefCell::new(context.rng),
        next_attempt: Cell::new(0),
        caller,
    });
    serve::serve(APP_PORT, move |request: AppRequest| {
        let app = Rc::clone(&app);
        async move { Some(app.answer(request.user).await) }
    })
    .await?;
    Ok(())
}

impl App {
    fn admit(&self) -> Admission {
        self.machine.borrow_mut().admit(&self.config, now(), &mut |event| self.events.emit(event))
    }

    /// Counts a call's result, unless it is a trial that timed out and the
    /// planted `trial_timeouts = "lost"` drops it unreported.
    fn record(&self, call: Call, user: u32) {
        let mut rng = self.rng.borrow_mut();
        let mut machine = self.machine.borrow_mut();
        if call.timed_out && self.config.trial_timeouts == TrialTimeouts::Lost && machine.half_open() {
            return;
        }
        let probe = user == PROBE_USER;
        machine.record(&self.config, now(), call.result, probe, &mut rng, &mut |event| self.events.emit(event));
    }

    /// A retry may be made: the budget (if any) has a token, spent here.
    fn retry_allowed(&self) -> bool {
        self.budget.borrow_mut().as_mut().is_none_or(Budget::try_spend)
    }

    /// The answer to a request: from the downstream, else the fallback
    /// (or, with `fallback = false`, none).
    async fn answer(&self, user: u32) -> AppReply {
        if let Some(budget) = self.budget.borrow_mut().as_mut() {
            budget.on_request();
        }
        let source = match self.config.retry_placement {
            RetryPlacement::Outside => self.retries_through_breaker(user).await,
            RetryPlacement::Inside => self.breaker_around_retries(user).await,
        };
        match source {
            Some(source) => AppReply::Items(source),
            None if self.config.fallback => AppReply::Items(self.fallback(user).await),
            None => AppReply::Unavailable,
        }
    }

    /// Up to `attempts_max` attempts, each through the breaker; rejections
    /// by the breaker are never retried.
    async fn retries_through_breaker(&self, user: u32) -> Option<Source> {
        let mut previous = self.config.backoff_base.0;
        for attempt in 1..=self.config.attempts_max {
            if self.admit() == Admission::Rejected {
                self.events.emit(BreakerEvent::Reject { user });
                return None;
            }
            let call = self.attempt(user).await;
            self.record(call, user);
            if call.source.is_some() || !self.pause_before_retry(attempt, &mut previous, user).await {
                return call.source;
            }
        }
        None
    }

    /// `retry_placement = "inside"`: the breaker admits the request once and
    /// counts only its last attempt's result; the attempts in between go
    /// through whatever state the breaker has reached meanwhile.
    async fn breaker_around_retries(&self, user: u32) -> Option<Source> {
        if self.admit() == Admission::Rejected {
            self.events.emit(BreakerEvent::Reject { user });
            return None;
        }
        let mut previous = self.config.backoff_base.0;
        let mut attempt = 1;
        loop {
            assert!(attempt <= self.config.attempts_max, "no attempt past attempts_max");
            let call = self.attempt(user).await;
            // The last attempt makes no retry, so the loop ends there at the latest.
            if call.source.is_some() || !self.pause_before_retry(attempt, &mut previous, user).await {
                self.record(call, user);
                return call.source;
            }
            attempt += 1;
        }
    }

    /// Before retrying after attempt `attempt`: false when there is no retry
    /// to make (that was the last attempt, or the budget is spent), else
    /// waits out the backoff.
    async fn pause_before_retry(&self, attempt: u32, previous: &mut Duration, user: u32) -> bool {
        if attempt == self.config.attempts_max {
            return false;
        }
        if !self.retry_allowed() {
            self.events.emit(BreakerEvent::RetrySkipped { user });
            return false;
        }
        let pause = self.config.backoff().delay(attempt, *previous, &mut self.rng.borrow_mut());
        *previous = pause;
        tokio::time::sleep(pause).await;
        true
    }

    /// One call to the downstream within `call_timeout`: its result as the
    /// breaker counts it, and the answer's source when it succeeded.
    async fn attempt(&self, user: u32) -> Call {
        let attempt = self.next_attempt.get();
        self.next_attempt.set(attempt + 1);
        let sent = now();
        let request = DownstreamRequest { user, attempt, sent };
        let timeout = self.config.call_timeout.0;
        let reply = match self.config.call_timeout_covers {
            TimeoutCovers::Call => self.caller.ask_within(timeout, DOWNSTREAM, DOWNSTREAM_PORT, &request).await,
            TimeoutCovers::Connect => ask_connect_within(timeout, &request).await,
        };
        let (result, source) = match &reply {
            Ok(DownstreamReply::Items) => {
                let took = Duration::from_nanos(now().saturating_sub(sent));
                let slow = self.config.slow_call_threshold.is_some_and(|threshold| took > threshold.0);
                (if slow { CallResult::Slow } else { CallResult::Ok }, Some(Source::Downstream))
            }
            // A client error: the downstream is fine, and a retry would fail alike.
            Ok(DownstreamReply::BadRequest) => (CallResult::ClientError, Some(Source::BadRequest)),
            Ok(DownstreamReply::Error) | Err(_) => (CallResult::Failed, None),
        };
        Call { result, source, timed_out: matches!(reply, Err(CallError::Timeout(_))) }
    }

    async fn fallback(&self, user: u32) -> Source {
        match self.caller.ask_within::<_, CacheReply>(self.config.cache_timeout.0, CACHE, CACHE_PORT, &()).await {
            Ok(true) => {
                self.events.emit(BreakerEvent::FallbackCache { user });
                Source::Cache
            }
            Ok(false) | Err(_) => {
                self.events.emit(BreakerEvent::FallbackStatic { user });
                Source::Static
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::checks::{check_half_open_admission, check_legal_transitions};
    use crate::breaker::knobs::Window;
    use crate::breaker::rule::Rule;
    use faultline_harness::history::{Happening, TraceEvent};
    use faultline_harness::units::Dur;
    use faultline_harness::{CheckContext, History};
    use rand::SeedableRng;

    const MS: Nanos = 1_000_000;

    /// Drives `machine` with calls that arrive every 0-4ms, take 1-150ms and
    /// fail in long bad spells, and returns its events as the app's trace.
    /// Calls overlap, so answers arrive late, in every state.
    fn drive(config: &Breaker, seed: u64) -> Vec<TraceEvent<BreakerEvent>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut machine = Machine::new(config);
        let mut trace = Vec::new();
        let mut in_flight: Vec<(Nanos, CallResult)> = Vec::new();
        let mut now = 0;
        for _ in 0..20_000 {
            now += rng.random_range(0..=4) * MS;
            let bad = (now / (3_000 * MS)) % 2 == 1;
            let mut emit =
                |event| trace.push(TraceEvent { at: now, source: APP.into(), event: Happening::System(event) });
            in_flight.sort_by_key(|(done, _)| *done);
            while in_flight.first().is_some_and(|(done, _)| *done <= now) {
                let (_, result) = in_flight.remove(0);
                machine.record(config, now, result, false, &mut rng, &mut emit);
            }
            if machine.admit(config, now, &mut emit) == Admission::Admitted {
                let call = BreakerEvent::DownstreamCall { attempt: 0, sent: now, probe: false };
                trace.push(TraceEvent { at: now, source: DOWNSTREAM.into(), event: Happening::System(call) });
                let result = match rng.random_range(0..20) {
                    _ if bad && rng.random_bool(0.8) => CallResult::Failed,
                    0 => CallResult::Failed,
                    1 => CallResult::Slow,
                    2 => CallResult::ClientError,
                    _ => CallResult::Ok,
                };
                in_flight.push((now + rng.random_range(1..=150) * MS, result));
            }
        }
        trace
    }

    #[test]
    fn the_state_machine_makes_only_transitions_its_checkers_call_legal() {
        let rules = [
            Rule::Consecutive(3),
            Rule::Rate { rate: 0.5, window: Window::Calls(8), minimum_calls: 6 },
            Rule::Rate { rate: 0.4, window: Window::Time(Dur::from_millis(300)), minimum_calls: 5 },
        ];
        for (seed, rule) in rules.into_iter().enumerate() {
            for (jitter, half_open) in [(0.0, HalfOpenCalls::AtMost(1)), (0.3, HalfOpenCalls::AtMost(3))] {
                let config = Breaker {
                    open_duration: Dur::from_millis(200),
                    open_backoff: 2.0,
                    open_duration_max: Dur::from_millis(900),
                    open_jitter: jitter,
                    half_open_max_calls: half_open,
                    ..Breaker::with_rule(rule)
                };
                let trace = drive(&config, seed as u64);
                let history = History::new(Vec::new());
                let context = CheckContext { history: &history, trace: &trace, faults: &[], heal_at: 0, end: 0 };
                let kinds: Vec<&str> = trace.iter().map(TraceEvent::kind).collect();
                for kind in ["breaker.open", "breaker.half_open", "breaker.close"] {
                    assert!(kinds.contains(&kind), "{rule:?}: no {kind}");
                }
                assert_eq!(check_legal_transitions(&config, &context), Vec::new(), "{rule:?}, jitter {jitter}");
                assert!(check_half_open_admission(&context, config.half_open_bound()).is_empty());
                // That many successful trials close it, no fewer.
                let mut closes = trace.iter().filter_map(|entry| match entry.system() {
                    Some(BreakerEvent::Close { successes }) => Some(*successes),
                    _ => None,
                });
                assert!(closes.all(|successes| successes == config.half_open_bound()));
            }
        }
    }

    #[test]
    fn the_chapters_unlimited_half_open_admits_every_call_and_one_success_closes_it() {
        let config =
            Breaker { half_open_max_calls: HalfOpenCalls::Unlimited, ..Breaker::with_rule(Rule::Consecutive(1)) };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut machine = Machine::new(&config);
        let mut events = Vec::new();
        let mut emit = |event| events.push(event);
        assert_eq!(machine.admit(&config, 0, &mut emit), Admission::Admitted);
        machine.record(&config, 0, CallResult::Failed, false, &mut rng, &mut emit);
        assert_eq!(machine.admit(&config, 999 * MS, &mut emit), Admission::Rejected);
        for _ in 0..5 {
            assert_eq!(machine.admit(&config, 1_000 * MS, &mut emit), Admission::Admitted);
        }
        machine.record(&config, 1_001 * MS, CallResult::Ok, false, &mut rng, &mut emit);
        let kinds: Vec<&str> = events.iter().map(|e| faultline_harness::SystemEvent::kind(e)).collect();
        assert_eq!(kinds, ["breaker.record", "breaker.open", "breaker.half_open", "breaker.record", "breaker.close"]);
        assert_eq!(events[1], BreakerEvent::Open { rule: OpenReason::Consecutive { failures: 1 }, for_ns: 1_000 * MS });
    }

    #[test]
    fn the_planted_flaw_counts_failures_over_the_breakers_life_and_its_checker_finds_it() {
        let flawed = Breaker { closed_successes_counted: false, ..Breaker::with_rule(Rule::Consecutive(3)) };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut trace = Vec::new();
        for config in [&Breaker::with_rule(Rule::Consecutive(3)), &flawed] {
            let mut machine = Machine::new(config);
            let mut events = Vec::new();
            for (at, result) in [CallResult::Failed, CallResult::Ok].into_iter().cycle().take(6).enumerate() {
                machine.record(config, at as u64 * MS, result, false, &mut rng, &mut |event| events.push(event));
            }
            let opened = events.iter().any(|event| matches!(event, BreakerEvent::Open { .. }));
            assert_eq!(opened, !config.closed_successes_counted, "three failures, never in a row");
            trace = events
                .into_iter()
                .enumerate()
                .map(|(at, event)| TraceEvent {
                    at: at as u64 * MS,
                    source: APP.into(),
                    event: Happening::System(event),
                })
                .collect();
        }
        let history = History::new(Vec::new());
        let context = CheckContext { history: &history, trace: &trace, faults: &[], heal_at: 0, end: 0 };
        let violations = check_legal_transitions(&flawed, &context);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("opened from closed (on 3 consecutive failures)"), "{violations:?}");
    }

    #[test]
    fn without_a_breaker_every_call_goes_through_and_is_recorded_as_such() {
        let config = Breaker { enabled: false, ..Breaker::with_rule(Rule::Consecutive(1)) };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut machine = Machine::new(&config);
        let mut events = Vec::new();
        let mut emit = |event| events.push(event);
        for at in 0..10 {
            assert_eq!(machine.admit(&config, at * MS, &mut emit), Admission::Admitted);
            machine.record(&config, at * MS, CallResult::Failed, false, &mut rng, &mut emit);
        }
        let expected = BreakerEvent::Record { result: CallResult::Failed, state: BreakerState::Disabled, probe: false };
        assert!(events.iter().all(|e| *e == expected), "{events:?}");
    }
}
