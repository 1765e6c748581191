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

use super::knobs::{Breaker, HalfOpenCalls};
use super::protocol::{
    AppReply, AppRequest, BreakerEvent, BreakerOp, BreakerState, CacheReply, CallResult, DownstreamReply,
    DownstreamRequest, Source, APP, APP_PORT, CACHE, CACHE_PORT, DOWNSTREAM, DOWNSTREAM_PORT, PROBE_USER,
};
use super::rule::{OpenReason, Tally};
use crate::kit::request::{ask, ask_within};
use crate::kit::retry::Budget;
use crate::kit::serve;
use crate::kit::wire::describe;

/// The client's side: one request to the app. Answers from the downstream
/// (and client errors, answered as such) are fresh; fallbacks are degraded.
pub async fn request(op: BreakerOp) -> Outcome<Source> {
    match ask::<_, AppReply>(APP, APP_PORT, &AppRequest { user: op.user }).await {
        Ok(AppReply::Items(source @ (Source::Downstream | Source::BadRequest))) => Outcome::Ok(source),
        Ok(AppReply::Items(source)) => Outcome::Degraded(source),
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

struct App {
    config: Arc<Breaker>,
    events: EventSink<BreakerEvent>,
    rng: RefCell<ChaCha8Rng>,
    machine: RefCell<Machine>,
    budget: RefCell<Option<Budget>>,
    next_attempt: Cell<u64>,
}

pub async fn serve(config: Arc<Breaker>, context: HostContext<BreakerEvent>) -> HostResult {
    let app = Rc::new(App {
        machine: RefCell::new(Machine::new(&config)),
        budget: RefCell::new(config.retry_budget.map(Budget::new)),
        config,
        events: context.events,
        rng: RefCell::new(context.rng),
        next_attempt: Cell::new(0),
    });
    serve::serve(APP_PORT, move |request: AppRequest| {
        let app = Rc::clone(&app);
        async move { Some(AppReply::Items(app.answer(request.user).await)) }
    })
    .await?;
    Ok(())
}

impl App {
    fn admit(&self) -> Admission {
        self.machine.borrow_mut().admit(&self.config, now(), &mut |event| self.events.emit(event))
    }

    fn record(&self, result: CallResult, user: u32) {
        let mut rng = self.rng.borrow_mut();
        let mut machine = self.machine.borrow_mut();
        let probe = user == PROBE_USER;
        machine.record(&self.config, now(), result, probe, &mut rng, &mut |event| self.events.emit(event));
    }

    /// A retry may be made: the budget (if any) has a token, spent here.
    fn retry_allowed(&self) -> bool {
        self.budget.borrow_mut().as_mut().is_none_or(Budget::try_spend)
    }

    /// Up to `attempts_max` attempts through the breaker, then the fallback.
    /// Rejections by the breaker are never retried.
    async fn answer(&self, user: u32) -> Source {
        if let Some(budget) = self.budget.borrow_mut().as_mut() {
            budget.on_request();
        }
        let backoff = self.config.backoff();
        let mut previous = self.config.backoff_base.0;
        for attempt in 1..=self.config.attempts_max {
            if self.admit() == Admission::Rejected {
                self.events.emit(BreakerEvent::Reject { user });
                break;
            }
            if let Some(source) = self.attempt(user).await {
                return source;
            }
            if attempt == self.config.attempts_max {
                break;
            }
            if !self.retry_allowed() {
                self.events.emit(BreakerEvent::RetrySkipped { user });
                break;
            }
            let pause = backoff.delay(attempt, previous, &mut self.rng.borrow_mut());
            previous = pause;
            tokio::time::sleep(pause).await;
        }
        self.fallback(user).await
    }

    /// One call to the downstream within `call_timeout`: the answer's
    /// source, or `None` when the call failed.
    async fn attempt(&self, user: u32) -> Option<Source> {
        let attempt = self.next_attempt.get();
        self.next_attempt.set(attempt + 1);
        let sent = now();
        let request = DownstreamRequest { user, attempt, sent };
        let reply = ask_within(self.config.call_timeout.0, DOWNSTREAM, DOWNSTREAM_PORT, &request).await;
        let (result, source) = match reply {
            Ok(DownstreamReply::Items) => {
                let took = Duration::from_nanos(now().saturating_sub(sent));
                let slow = self.config.slow_call_threshold.is_some_and(|threshold| took > threshold.0);
                (if slow { CallResult::Slow } else { CallResult::Ok }, Some(Source::Downstream))
            }
            // A client error: the downstream is fine, and a retry would fail alike.
            Ok(DownstreamReply::BadRequest) => (CallResult::ClientError, Some(Source::BadRequest)),
            Ok(DownstreamReply::Error) | Err(_) => (CallResult::Failed, None),
        };
        self.record(result, user);
        source
    }

    async fn fallback(&self, user: u32) -> Source {
        match ask_within::<_, CacheReply>(self.config.cache_timeout.0, CACHE, CACHE_PORT, &()).await {
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
