//! `breaker`: a circuit breaker with a call timeout, retries with backoff
//! and jitter, and graceful degradation, as the reliability chapter shows
//! them, as real services over turmoil's network.
//!
//! Hosts: `app` serves client requests by calling `downstream` through the
//! breaker, with a timeout per call and a retry policy; when the call fails,
//! or the breaker is open, it answers with popular items from `cache`, else
//! with static defaults. Every answer says where it came from. `downstream`
//! logs every call it receives with the time the app sent it, so checkers can
//! see what the breaker let through without trusting the breaker's own word.
//!
//! The breaker: CLOSED until a threshold rule holds (`failure_threshold`
//! consecutive failures, or a `failure_rate` over a window of calls or time
//! with `minimum_calls`), then OPEN for `open_duration` (growing by
//! `open_backoff` on each reopening, up to `open_duration_max`, with
//! `open_jitter`), then HALF_OPEN, where `half_open_max_calls` trial calls go
//! through (`"unlimited"`: every call that arrives, as the chapter's version
//! does); a failure reopens it, enough successes close it. A success slower
//! than `slow_call_threshold` counts as a failure.
//!
//! Event details that checkers read are `name=value` pairs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::{nanos, Nanos, TraceEvent};
use faultline_harness::system::{
    erase, Configured, EventDoc, HostResult, InvariantDoc, KnobDoc, LocalFuture, SystemEntry,
};
use faultline_harness::units::{Dur, DurRange, Probability};
use faultline_harness::{
    ClientContext, EventSink, History, HostContext, InputError, Knobs, Outcome, OutcomeClass, System, SystemDoc,
    Violation,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use turmoil::net::TcpListener;

use crate::wire::{ask, describe, read_frame, write_frame};

const APP_PORT: u16 = 9000;
const DOWNSTREAM_PORT: u16 = 9001;
const CACHE_PORT: u16 = 9002;
/// Most tokens a retry budget holds (so a quiet spell cannot bank a storm).
const BUDGET_TOKENS_MAX: f64 = 10.0;
/// Slack for the response-time bound: the client's own hops to the app and
/// the fallback's round trip beyond its timeout.
const RESPONSE_SLACK: Duration = Duration::from_millis(100);
/// Slack for the recovery bound: a trial call's round trip and the probe's gap.
const RECOVERY_SLACK: Duration = Duration::from_secs(1);
/// The user the health probe asks for; its calls are left out of retry
/// amplification.
const PROBE_USER: u32 = 1_000_000;

pub static DOC: SystemDoc = SystemDoc {
    name: "breaker",
    about: "a circuit breaker with timeouts, retries with backoff and jitter, and fallbacks to cached and static answers",
    hosts: "app, downstream, cache",
    knobs: &[
        KnobDoc { name: "breaker", unit: "bool", default: "true", about: "false calls the downstream with no breaker at all (for retry-policy comparisons)" },
        KnobDoc { name: "failure_threshold", unit: "count", default: "5", about: "consecutive failures that open the breaker (unless failure_rate is set)" },
        KnobDoc { name: "failure_rate", unit: "probability", default: "none", about: "open when this share of the window's calls failed (with minimum_calls)" },
        KnobDoc { name: "window", unit: "count or duration", default: "20", about: "failure_rate's window: the last N calls, or the calls of the last \"10s\"" },
        KnobDoc { name: "minimum_calls", unit: "count", default: "10", about: "failure_rate needs at least this many calls in the window" },
        KnobDoc { name: "call_timeout", unit: "duration", default: "100ms", about: "how long one call to the downstream may take" },
        KnobDoc { name: "open_duration", unit: "duration", default: "1s", about: "how long the breaker stays open (the reset timeout)" },
        KnobDoc { name: "open_backoff", unit: "number", default: "1", about: "each reopening from half-open multiplies the open duration by this" },
        KnobDoc { name: "open_duration_max", unit: "duration", default: "open_duration", about: "the open duration grows to at most this" },
        KnobDoc { name: "open_jitter", unit: "probability", default: "0", about: "the open duration is shortened by a random share up to this" },
        KnobDoc { name: "half_open_max_calls", unit: "count or \"unlimited\"", default: "1", about: "trial calls let through in half-open; \"unlimited\" is the chapter's version (every arriving call)" },
        KnobDoc { name: "slow_call_threshold", unit: "duration", default: "none", about: "a successful call slower than this counts as a failure" },
        KnobDoc { name: "attempts_max", unit: "count", default: "3", about: "attempts per request (1: no retries); breaker rejections are never retried" },
        KnobDoc { name: "backoff_base", unit: "duration", default: "20ms", about: "the first retry's backoff" },
        KnobDoc { name: "backoff_factor", unit: "number", default: "2", about: "each retry multiplies the backoff by this" },
        KnobDoc { name: "backoff_cap", unit: "duration", default: "500ms", about: "the backoff grows to at most this" },
        KnobDoc { name: "jitter", unit: "string", default: "full", about: "none | full | equal | decorrelated" },
        KnobDoc { name: "retry_budget", unit: "probability", default: "none", about: "retries at most this share of requests (a token bucket)" },
        KnobDoc { name: "cache_timeout", unit: "duration", default: "50ms", about: "how long the fallback waits for the popular-items cache" },
        KnobDoc { name: "downstream_failure_rate", unit: "probability", default: "0", about: "share of calls the downstream answers with an error" },
        KnobDoc { name: "service_time", unit: "duration range", default: "1ms..5ms", about: "time the downstream spends on a call" },
        KnobDoc { name: "bad_request_ratio", unit: "probability", default: "0.01", about: "share of requests that are client errors (answered, never retried)" },
    ],
    invariants: &[
        InvariantDoc { name: "legal-transitions", about: "CLOSED to OPEN only when the threshold rule holds; OPEN to HALF_OPEN only after the open duration; HALF_OPEN to CLOSED or OPEN" },
        InvariantDoc { name: "fail-fast", about: "no call the app sent while the breaker was open reached the downstream" },
        InvariantDoc { name: "half-open-admission", about: "at most half_open_max_calls calls are sent in one half-open spell (1 for \"unlimited\": the trial the state exists for)" },
        InvariantDoc { name: "bounded-response-time", about: "every request is answered within the bound the timeout, attempts, backoff and fallback give" },
        InvariantDoc {
            name: "graceful-degradation",
            about: "every request gets an answer, fresh or a fallback, whatever befalls the downstream and the cache (not the app's own links)",
        },
        InvariantDoc { name: "recovery", about: "after the heal phase starts, the breaker closes within open_duration_max plus 1s" },
    ],
    events: &[
        EventDoc { name: "breaker.open", about: "the breaker opened", detects: true },
        EventDoc { name: "breaker.half_open", about: "the breaker let trial calls through", detects: false },
        EventDoc { name: "breaker.close", about: "the breaker closed", detects: false },
        EventDoc { name: "breaker.record", about: "a call's result, as the breaker counted it", detects: false },
        EventDoc { name: "breaker.reject", about: "the breaker refused a call", detects: false },
        EventDoc { name: "retry.skipped", about: "a retry was not made: the budget was spent", detects: false },
        EventDoc { name: "downstream.call", about: "the downstream received a call", detects: false },
        EventDoc { name: "fallback.cache", about: "the app answered with cached popular items", detects: false },
        EventDoc { name: "fallback.static", about: "the app answered with static defaults", detects: false },
    ],
};

pub fn entry() -> SystemEntry {
    SystemEntry { doc: &DOC, configure }
}

/// The failure-rate window: the last N calls, or the calls of the last span.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Window {
    Calls(u32),
    Time(Dur),
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of calls (20) or a duration (\"10s\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Window, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&n| n >= 1)
                    .map(Window::Calls)
                    .ok_or_else(|| E::custom("window needs at least 1 call"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Window, E> {
                Dur::parse(v).map(Window::Time).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `half_open_max_calls`: a number, or "unlimited".
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum HalfOpenCalls {
    Unlimited,
    AtMost(u32),
}

impl<'de> Deserialize<'de> for HalfOpenCalls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HalfOpenCalls;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of calls (1) or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HalfOpenCalls, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&n| n >= 1)
                    .map(HalfOpenCalls::AtMost)
                    .ok_or_else(|| E::custom("half_open_max_calls must be at least 1, or \"unlimited\""))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HalfOpenCalls, E> {
                if v == "unlimited" {
                    Ok(HalfOpenCalls::Unlimited)
                } else {
                    Err(E::custom(format!("expected a number or \"unlimited\", found {v:?}")))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    None,
    Full,
    Equal,
    Decorrelated,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BreakerKnobs {
    breaker: Option<bool>,
    failure_threshold: Option<toml::Spanned<i64>>,
    failure_rate: Option<Probability>,
    window: Option<Window>,
    minimum_calls: Option<toml::Spanned<i64>>,
    call_timeout: Option<toml::Spanned<Dur>>,
    open_duration: Option<toml::Spanned<Dur>>,
    open_backoff: Option<toml::Spanned<f64>>,
    open_duration_max: Option<toml::Spanned<Dur>>,
    open_jitter: Option<Probability>,
    half_open_max_calls: Option<HalfOpenCalls>,
    slow_call_threshold: Option<Dur>,
    attempts_max: Option<toml::Spanned<i64>>,
    backoff_base: Option<Dur>,
    backoff_factor: Option<toml::Spanned<f64>>,
    backoff_cap: Option<Dur>,
    jitter: Option<Jitter>,
    retry_budget: Option<Probability>,
    cache_timeout: Option<toml::Spanned<Dur>>,
    downstream_failure_rate: Option<Probability>,
    service_time: Option<DurRange>,
    bad_request_ratio: Option<Probability>,
}

fn configure(knobs: &Knobs<'_>) -> Result<Arc<dyn Configured>, InputError> {
    let raw: BreakerKnobs = knobs.parse()?;
    let factor = |value: &Option<toml::Spanned<f64>>, default: f64, name: &str| match value {
        None => Ok(default),
        Some(f) if (1.0..=100.0).contains(f.get_ref()) => Ok(*f.get_ref()),
        Some(f) => Err(knobs.error(f.span(), format!("{name} must be between 1 and 100, found {}", f.get_ref()))),
    };
    if let (Some(threshold), Some(_)) = (&raw.failure_threshold, &raw.failure_rate) {
        return Err(
            knobs.error(threshold.span(), "set failure_threshold (consecutive failures) or failure_rate, not both")
        );
    }
    let open_duration = knobs.positive(&raw.open_duration, Dur::from_secs(1), "open_duration")?;
    let open_duration_max = match &raw.open_duration_max {
        None => open_duration,
        Some(d) if *d.get_ref() >= open_duration => *d.get_ref(),
        Some(d) => return Err(knobs.error(d.span(), "open_duration_max must be at least open_duration")),
    };
    let rule = match raw.failure_rate {
        Some(rate) => Rule::Rate {
            rate: rate.0,
            window: raw.window.unwrap_or(Window::Calls(20)),
            minimum_calls: knobs.count(&raw.minimum_calls, 10, 1..=1_000_000, "minimum_calls")?,
        },
        None => Rule::Consecutive(knobs.count(&raw.failure_threshold, 5, 1..=1_000_000, "failure_threshold")?),
    };
    let breaker = Breaker {
        enabled: raw.breaker.unwrap_or(true),
        rule,
        call_timeout: knobs.positive(&raw.call_timeout, Dur::from_millis(100), "call_timeout")?,
        open_duration,
        open_backoff: factor(&raw.open_backoff, 1.0, "open_backoff")?,
        open_duration_max,
        open_jitter: raw.open_jitter.map_or(0.0, |p| p.0),
        half_open_max_calls: raw.half_open_max_calls.unwrap_or(HalfOpenCalls::AtMost(1)),
        slow_call_threshold: raw.slow_call_threshold,
        attempts_max: knobs.count(&raw.attempts_max, 3, 1..=100, "attempts_max")?,
        backoff_base: raw.backoff_base.unwrap_or(Dur::from_millis(20)),
        backoff_factor: factor(&raw.backoff_factor, 2.0, "backoff_factor")?,
        backoff_cap: raw.backoff_cap.unwrap_or(Dur::from_millis(500)),
        jitter: raw.jitter.unwrap_or(Jitter::Full),
        retry_budget: raw.retry_budget.map(|p| p.0),
        cache_timeout: knobs.positive(&raw.cache_timeout, Dur::from_millis(50), "cache_timeout")?,
        downstream_failure_rate: raw.downstream_failure_rate.map_or(0.0, |p| p.0),
        service_time: raw.service_time.unwrap_or(DurRange { min: Dur::from_millis(1), max: Dur::from_millis(5) }),
        bad_request_ratio: raw.bad_request_ratio.map_or(0.01, |p| p.0),
    };
    Ok(erase(breaker, &DOC))
}

/// When the breaker opens from CLOSED.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Rule {
    Consecutive(u32),
    Rate { rate: f64, window: Window, minimum_calls: u32 },
}

/// The configured system.
#[derive(Debug, Serialize)]
pub struct Breaker {
    pub enabled: bool,
    pub rule: Rule,
    pub call_timeout: Dur,
    pub open_duration: Dur,
    pub open_backoff: f64,
    pub open_duration_max: Dur,
    pub open_jitter: f64,
    pub half_open_max_calls: HalfOpenCalls,
    pub slow_call_threshold: Option<Dur>,
    pub attempts_max: u32,
    pub backoff_base: Dur,
    pub backoff_factor: f64,
    pub backoff_cap: Dur,
    pub jitter: Jitter,
    pub retry_budget: Option<f64>,
    pub cache_timeout: Dur,
    pub downstream_failure_rate: f64,
    pub service_time: DurRange,
    pub bad_request_ratio: f64,
}

impl Breaker {
    /// The longest a request can take: every attempt times out, every
    /// backoff is as long as it can be, then the fallback waits for the cache.
    pub fn response_bound(&self) -> Duration {
        let mut total = self.call_timeout.0 * self.attempts_max;
        for retry in 1..self.attempts_max {
            total += self.backoff_max(retry);
        }
        total + self.cache_timeout.0 + RESPONSE_SLACK
    }

    /// The longest backoff before retry number `retry` (1 for the first).
    fn backoff_max(&self, retry: u32) -> Duration {
        // Clamp before converting: the growth overflows a Duration fast.
        let grown = self.backoff_base.0.as_secs_f64() * self.backoff_factor.powi(retry as i32 - 1);
        match self.jitter {
            Jitter::Decorrelated => self.backoff_cap.0,
            _ => Duration::from_secs_f64(grown.min(self.backoff_cap.0.as_secs_f64())),
        }
    }

    fn half_open_bound(&self) -> u32 {
        match self.half_open_max_calls {
            HalfOpenCalls::Unlimited => 1,
            HalfOpenCalls::AtMost(n) => n,
        }
    }
}

/// A client's request: the items for `user` (user 0 is a client error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerOp {
    pub user: u32,
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Downstream,
    Cache,
    Static,
    /// The request was a client error, and the answer says so.
    BadRequest,
}

#[derive(Debug, Serialize, Deserialize)]
struct AppRequest {
    user: u32,
}

#[derive(Debug, Serialize, Deserialize)]
enum AppReply {
    Items(Source),
}

#[derive(Debug, Serialize, Deserialize)]
struct DownstreamRequest {
    user: u32,
    /// The app's id for this attempt and when it sent it (ns of simulated time).
    attempt: u64,
    sent: Nanos,
}

#[derive(Debug, Serialize, Deserialize)]
enum DownstreamReply {
    Items,
    Error,
    BadRequest,
}

impl System for Breaker {
    type Op = BreakerOp;
    type Res = Source;

    fn hosts(&self) -> Vec<String> {
        vec!["app".into(), "downstream".into(), "cache".into()]
    }

    fn host(self: &Arc<Self>, context: HostContext) -> LocalFuture<HostResult> {
        let this = Arc::clone(self);
        match context.name.as_str() {
            "app" => Box::pin(serve_app(this, context)),
            "downstream" => Box::pin(serve_downstream(this, context)),
            _ => Box::pin(serve_cache()),
        }
    }

    fn next_op(&self, _client: u32, rng: &mut ChaCha8Rng) -> BreakerOp {
        let user = if rng.random_bool(self.bad_request_ratio) { 0 } else { rng.random_range(1..=1000) };
        BreakerOp { user }
    }

    fn op_kind(&self, _op: &BreakerOp) -> &'static str {
        "request"
    }

    fn probe_op(&self) -> Option<BreakerOp> {
        Some(BreakerOp { user: PROBE_USER })
    }

    fn call(self: &Arc<Self>, _client: ClientContext, op: BreakerOp) -> LocalFuture<Outcome<Source>> {
        Box::pin(async move {
            match ask::<_, AppReply>("app", APP_PORT, &AppRequest { user: op.user }).await {
                Ok(AppReply::Items(source @ (Source::Downstream | Source::BadRequest))) => Outcome::Ok(source),
                Ok(AppReply::Items(source)) => Outcome::Degraded(source),
                Err(error) => Outcome::Failed(describe(&error)),
            }
        })
    }

    fn check(&self, invariant: &str, history: &History<BreakerOp, Source>, trace: &[TraceEvent]) -> Vec<Violation> {
        match invariant {
            "legal-transitions" => check_legal_transitions(self, trace),
            "fail-fast" => check_fail_fast(trace),
            "half-open-admission" => check_half_open_admission(trace, self.half_open_bound()),
            "bounded-response-time" => check_bounded_response_time(history, nanos(self.response_bound())),
            "graceful-degradation" => check_graceful_degradation(history),
            "recovery" => check_recovery(trace, nanos(self.open_duration_max.0 + RECOVERY_SLACK)),
            other => unreachable!("scenario validation admits only documented invariants, not {other:?}"),
        }
    }

    fn figures(&self, history: &History<BreakerOp, Source>, trace: &[TraceEvent]) -> Vec<(&'static str, f64)> {
        let requests = history.ops.len().max(1) as f64;
        let degraded = history.ops.iter().filter(|op| op.outcome.class() == OutcomeClass::Degraded).count() as f64;
        // Every attempt the app sent for a client (not the probe) records a result.
        let attempts: Vec<&TraceEvent> =
            trace.iter().filter(|e| e.kind == "breaker.record" && !e.detail.contains("probe=true")).collect();
        let failed = attempts.iter().filter(|e| e.detail.contains("result=fail")).count() as f64;
        let mut figures = vec![
            ("degraded_share", degraded / requests),
            ("wasted_calls", failed),
            ("retry_amplification", attempts.len() as f64 / requests),
        ];
        if let Some(peak) = peak_after_recovery(trace) {
            figures.push(("peak_downstream_per_s_after_recovery", peak));
        }
        figures
    }
}

// ---------------------------------------------------------------------------
// The downstream and the cache.

async fn serve_downstream(breaker: Arc<Breaker>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), DOWNSTREAM_PORT)).await?;
    let rng = Rc::new(RefCell::new(context.rng));
    loop {
        let (mut stream, _) = listener.accept().await?;
        let (breaker, rng, events) = (Arc::clone(&breaker), Rc::clone(&rng), context.events.clone());
        tokio::task::spawn_local(async move {
            let Ok(Some(request)) = read_frame::<_, DownstreamRequest>(&mut stream).await else { return };
            let probe = if request.user == PROBE_USER { " probe=true" } else { "" };
            events.emit("downstream.call", format!("attempt={} sent={}{probe}", request.attempt, request.sent));
            let (pause, fail) = {
                let mut rng = rng.borrow_mut();
                let (low, high) = (breaker.service_time.min.as_nanos(), breaker.service_time.max.as_nanos());
                (Duration::from_nanos(rng.random_range(low..=high)), rng.random_bool(breaker.downstream_failure_rate))
            };
            tokio::time::sleep(pause).await;
            let reply = if request.user == 0 {
                DownstreamReply::BadRequest
            } else if fail {
                DownstreamReply::Error
            } else {
                DownstreamReply::Items
            };
            let _ = write_frame(&mut stream, &reply).await;
        });
    }
}

/// The popular-items cache: always has them, when it can be reached.
async fn serve_cache() -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), CACHE_PORT)).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::task::spawn_local(async move {
            if let Ok(Some(())) = read_frame::<_, ()>(&mut stream).await {
                let _ = write_frame(&mut stream, &true).await;
            }
        });
    }
}

// ---------------------------------------------------------------------------
// The breaker's state machine.

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Closed,
    Open { until: tokio::time::Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

struct BreakerState {
    state: State,
    consecutive_failures: u32,
    /// Results in the failure-rate window: (when, failed).
    window: VecDeque<(tokio::time::Instant, bool)>,
    /// Reopenings from half-open since the breaker last closed.
    reopenings: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    Admitted,
    Rejected,
}

struct App {
    breaker: Arc<Breaker>,
    events: EventSink,
    rng: RefCell<ChaCha8Rng>,
    state: RefCell<BreakerState>,
    budget: Cell<f64>,
    next_attempt: Cell<u64>,
}

impl App {
    fn admit(&self) -> Admission {
        if !self.breaker.enabled {
            return Admission::Admitted;
        }
        let now = tokio::time::Instant::now();
        let mut breaker = self.state.borrow_mut();
        if let State::Open { until } = breaker.state {
            if now < until {
                return Admission::Rejected;
            }
            breaker.state = State::HalfOpen { admitted: 0, succeeded: 0 };
            self.events.emit("breaker.half_open", "from=open");
        }
        if let State::HalfOpen { admitted, succeeded } = breaker.state {
            if let HalfOpenCalls::AtMost(limit) = self.breaker.half_open_max_calls {
                if admitted >= limit {
                    return Admission::Rejected;
                }
            }
            breaker.state = State::HalfOpen { admitted: admitted + 1, succeeded };
        }
        Admission::Admitted
    }

    /// Counts a call's result; may open or close the breaker. `probe` marks
    /// the health probe's calls in the event (figures leave them out).
    fn record(&self, failed: bool, slow: bool, probe: bool) {
        let result = if failed {
            "fail"
        } else if slow {
            "slow"
        } else {
            "ok"
        };
        let result = if probe { format!("{result} probe=true") } else { result.to_string() };
        if !self.breaker.enabled {
            self.events.emit("breaker.record", format!("result={result}"));
            return;
        }
        let failed = failed || slow;
        let now = tokio::time::Instant::now();
        let mut breaker = self.state.borrow_mut();
        match breaker.state {
            State::Open { .. } => {
                // A late answer to a call sent before the breaker opened.
                self.events.emit("breaker.record", format!("result={result} state=open"));
            }
            State::Closed => {
                self.events.emit("breaker.record", format!("result={result} state=closed"));
                breaker.consecutive_failures = if failed { breaker.consecutive_failures + 1 } else { 0 };
                breaker.window.push_back((now, failed));
                let reason = match self.breaker.rule {
                    Rule::Consecutive(threshold) => (breaker.consecutive_failures >= threshold)
                        .then(|| format!("rule=consecutive failures={}", breaker.consecutive_failures)),
                    Rule::Rate { rate, window, minimum_calls } => {
                        match window {
                            Window::Calls(n) => {
                                while breaker.window.len() > n as usize {
                                    breaker.window.pop_front();
                                }
                            }
                            Window::Time(span) => {
                                while breaker.window.front().is_some_and(|(at, _)| now - *at > span.0) {
                                    breaker.window.pop_front();
                                }
                            }
                        }
                        let calls = breaker.window.len();
                        let failures = breaker.window.iter().filter(|(_, f)| *f).count();
                        (calls >= minimum_calls as usize && failures as f64 >= rate * calls as f64)
                            .then(|| format!("rule=rate failures={failures} calls={calls}"))
                    }
                };
                if let Some(reason) = reason {
                    self.open(&mut breaker, now, &reason);
                }
            }
            State::HalfOpen { admitted, succeeded } => {
                self.events.emit("breaker.record", format!("result={result} state=half_open"));
                if failed {
                    breaker.reopenings += 1;
                    self.open(&mut breaker, now, "rule=half_open_failure");
                } else if succeeded + 1 >= self.breaker.half_open_bound() {
                    breaker.state = State::Closed;
                    breaker.consecutive_failures = 0;
                    breaker.window.clear();
                    breaker.reopenings = 0;
                    self.events.emit("breaker.close", format!("successes={}", succeeded + 1));
                } else {
                    breaker.state = State::HalfOpen { admitted, succeeded: succeeded + 1 };
                }
            }
        }
    }

    fn open(&self, breaker: &mut BreakerState, now: tokio::time::Instant, reason: &str) {
        let config = &self.breaker;
        let grown =
            config.open_duration.0.as_secs_f64() * config.open_backoff.powi(breaker.reopenings.min(1000) as i32);
        let mut length = Duration::from_secs_f64(grown.min(config.open_duration_max.0.as_secs_f64()));
        if config.open_jitter > 0.0 {
            let cut = self.rng.borrow_mut().random_range(0.0..=config.open_jitter);
            length = length.mul_f64(1.0 - cut);
        }
        breaker.state = State::Open { until: now + length };
        self.events.emit("breaker.open", format!("{reason} for_ns={}", nanos(length)));
    }

    /// The backoff before retry number `retry` (1 for the first).
    fn backoff(&self, retry: u32, previous: Duration) -> Duration {
        let config = &self.breaker;
        let ceiling = config.backoff_max(retry);
        let mut rng = self.rng.borrow_mut();
        match config.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(rng.random_range(0.0..=1.0)),
            Jitter::Equal => ceiling / 2 + (ceiling / 2).mul_f64(rng.random_range(0.0..=1.0)),
            Jitter::Decorrelated => {
                let low = config.backoff_base.0.as_secs_f64();
                let high = (previous.as_secs_f64() * 3.0).max(low);
                Duration::from_secs_f64(rng.random_range(low..=high)).min(config.backoff_cap.0)
            }
        }
    }

    async fn serve(&self, user: u32) -> Source {
        if let Some(ratio) = self.breaker.retry_budget {
            self.budget.set((self.budget.get() + ratio).min(BUDGET_TOKENS_MAX));
        }
        let mut previous = self.breaker.backoff_base.0;
        for attempt in 1..=self.breaker.attempts_max {
            if self.admit() == Admission::Rejected {
                self.events.emit("breaker.reject", format!("user={user}"));
                break;
            }
            let id = self.next_attempt.get();
            self.next_attempt.set(id + 1);
            let sent = turmoil::sim_elapsed().map_or(0, nanos);
            let started = tokio::time::Instant::now();
            let request = DownstreamRequest { user, attempt: id, sent };
            let reply =
                tokio::time::timeout(self.breaker.call_timeout.0, ask("downstream", DOWNSTREAM_PORT, &request)).await;
            match reply {
                Ok(Ok(DownstreamReply::Items)) => {
                    let slow = self.breaker.slow_call_threshold.is_some_and(|t| started.elapsed() > t.0);
                    self.record(false, slow, user == PROBE_USER);
                    return Source::Downstream;
                }
                Ok(Ok(DownstreamReply::BadRequest)) => {
                    // A client error: the downstream is fine, and a retry would fail alike.
                    self.record(false, false, user == PROBE_USER);
                    return Source::BadRequest;
                }
                _ => self.record(true, false, user == PROBE_USER),
            }
            if attempt == self.breaker.attempts_max {
                break;
            }
            if self.breaker.retry_budget.is_some() {
                if self.budget.get() < 1.0 {
                    self.events.emit("retry.skipped", format!("user={user}"));
                    break;
                }
                self.budget.set(self.budget.get() - 1.0);
            }
            let pause = self.backoff(attempt, previous);
            previous = pause;
            tokio::time::sleep(pause).await;
        }
        self.fallback().await
    }

    async fn fallback(&self) -> Source {
        match tokio::time::timeout(self.breaker.cache_timeout.0, ask::<_, bool>("cache", CACHE_PORT, &())).await {
            Ok(Ok(true)) => {
                self.events.emit("fallback.cache", "");
                Source::Cache
            }
            _ => {
                self.events.emit("fallback.static", "");
                Source::Static
            }
        }
    }
}

async fn serve_app(breaker: Arc<Breaker>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), APP_PORT)).await?;
    let app = Rc::new(App {
        breaker,
        events: context.events,
        rng: RefCell::new(context.rng),
        state: RefCell::new(BreakerState {
            state: State::Closed,
            consecutive_failures: 0,
            window: VecDeque::new(),
            reopenings: 0,
        }),
        budget: Cell::new(0.0),
        next_attempt: Cell::new(0),
    });
    loop {
        let (mut stream, _) = listener.accept().await?;
        let app = Rc::clone(&app);
        tokio::task::spawn_local(async move {
            let Ok(Some(request)) = read_frame::<_, AppRequest>(&mut stream).await else { return };
            let source = app.serve(request.user).await;
            let _ = write_frame(&mut stream, &AppReply::Items(source)).await;
        });
    }
}

// ---------------------------------------------------------------------------
// Checkers: pure functions of the history and the trace.

fn field(detail: &str, name: &str) -> Option<u64> {
    detail.split_whitespace().find_map(|p| p.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spell {
    Open,
    HalfOpen,
}

/// The breaker's open and half-open spells, from its transition events:
/// (kind, start, end); the last one may run to the end of the run.
/// The app's breaker lives in its memory: a crash or restart of the app
/// leaves it closed.
fn app_reset(event: &TraceEvent) -> bool {
    matches!(event.kind.as_str(), "host.crash" | "host.restart") && event.detail == "app"
}

fn spells(trace: &[TraceEvent]) -> Vec<(Spell, Nanos, Nanos)> {
    let mut spells = Vec::new();
    let mut current: Option<(Spell, Nanos)> = None;
    for event in trace.iter().filter(|e| e.source == "app" || app_reset(e)) {
        let next = match event.kind.as_str() {
            "breaker.open" => Some(Some(Spell::Open)),
            "breaker.half_open" => Some(Some(Spell::HalfOpen)),
            "breaker.close" => Some(None),
            _ if app_reset(event) => Some(None),
            _ => None,
        };
        if let Some(next) = next {
            if let Some((spell, start)) = current.take() {
                spells.push((spell, start, event.at));
            }
            current = next.map(|spell| (spell, event.at));
        }
    }
    if let Some((spell, start)) = current {
        spells.push((spell, start, Nanos::MAX));
    }
    spells
}

/// Downstream calls as (attempt, the app's send time).
fn downstream_calls(trace: &[TraceEvent]) -> Vec<(u64, Nanos)> {
    trace
        .iter()
        .filter(|e| e.kind == "downstream.call")
        .filter_map(|e| Some((field(&e.detail, "attempt")?, field(&e.detail, "sent")?)))
        .collect()
}

/// `legal-transitions`: replays the breaker's records against its rule.
pub fn check_legal_transitions(config: &Breaker, trace: &[TraceEvent]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut fail = |at: Nanos, message: String| {
        violations.push(Violation { invariant: "legal-transitions".into(), message, at: Some(at), ops: Vec::new() });
    };
    let min_open = config.open_duration.0.mul_f64(1.0 - config.open_jitter);
    let mut state = "closed";
    let mut opened_at: Nanos = 0;
    let mut consecutive = 0u32;
    let mut window: VecDeque<(Nanos, bool)> = VecDeque::new();
    let mut failed_in_half_open = false;
    let mut succeeded_in_half_open = 0u32;
    for event in trace.iter().filter(|e| e.source == "app" || app_reset(e)) {
        if app_reset(event) {
            state = "closed";
            consecutive = 0;
            window.clear();
            continue;
        }
        match event.kind.as_str() {
            "breaker.record" => {
                let failed = event.detail.contains("result=fail") || event.detail.contains("result=slow");
                match state {
                    "closed" => {
                        consecutive = if failed { consecutive + 1 } else { 0 };
                        window.push_back((event.at, failed));
                    }
                    "half_open" if failed => failed_in_half_open = true,
                    "half_open" => succeeded_in_half_open += 1,
                    _ => {}
                }
            }
            "breaker.open" => {
                let legal = match state {
                    "closed" => match config.rule {
                        Rule::Consecutive(threshold) => consecutive >= threshold,
                        Rule::Rate { rate, window: span, minimum_calls } => {
                            match span {
                                Window::Calls(n) => {
                                    while window.len() > n as usize {
                                        window.pop_front();
                                    }
                                }
                                Window::Time(span) => {
                                    while window.front().is_some_and(|(at, _)| event.at - at > span.as_nanos()) {
                                        window.pop_front();
                                    }
                                }
                            }
                            let failures = window.iter().filter(|(_, f)| *f).count();
                            window.len() >= minimum_calls as usize && failures as f64 >= rate * window.len() as f64
                        }
                    },
                    "half_open" => failed_in_half_open,
                    _ => false,
                };
                if !legal {
                    fail(
                        event.at,
                        format!("the breaker opened from {state} although its rule did not hold ({})", event.detail),
                    );
                }
                state = "open";
                opened_at = event.at;
            }
            "breaker.half_open" => {
                if state != "open" {
                    fail(event.at, format!("the breaker went half-open from {state}"));
                } else if event.at - opened_at < nanos(min_open) {
                    fail(
                        event.at,
                        format!(
                            "the breaker went half-open {:.3}s after opening; open_duration is {}",
                            (event.at - opened_at) as f64 / 1e9,
                            config.open_duration
                        ),
                    );
                }
                state = "half_open";
                failed_in_half_open = false;
                succeeded_in_half_open = 0;
            }
            "breaker.close" => {
                if state != "half_open" || succeeded_in_half_open == 0 {
                    fail(event.at, format!("the breaker closed from {state} without a successful trial call"));
                }
                state = "closed";
                consecutive = 0;
                window.clear();
            }
            _ => {}
        }
    }
    violations
}

/// `fail-fast`: no call the app sent while the breaker was open reached the downstream.
pub fn check_fail_fast(trace: &[TraceEvent]) -> Vec<Violation> {
    let open: Vec<(Nanos, Nanos)> =
        spells(trace).into_iter().filter(|(s, _, _)| *s == Spell::Open).map(|(_, a, b)| (a, b)).collect();
    downstream_calls(trace)
        .into_iter()
        .filter_map(|(attempt, sent)| {
            let (start, _) = open.iter().find(|(start, end)| sent > *start && sent < *end)?;
            Some(Violation {
                invariant: "fail-fast".into(),
                message: format!(
                    "attempt {attempt} was sent at {:.6}s, while the breaker was open (since {:.6}s)",
                    sent as f64 / 1e9,
                    *start as f64 / 1e9
                ),
                at: Some(sent),
                ops: Vec::new(),
            })
        })
        .collect()
}

/// `half-open-admission`: calls sent in one half-open spell, at most `bound`.
pub fn check_half_open_admission(trace: &[TraceEvent], bound: u32) -> Vec<Violation> {
    let calls = downstream_calls(trace);
    spells(trace)
        .into_iter()
        .filter(|(s, _, _)| *s == Spell::HalfOpen)
        .filter_map(|(_, start, end)| {
            let admitted = calls.iter().filter(|(_, sent)| *sent >= start && *sent < end).count();
            (admitted > bound as usize).then(|| Violation {
                invariant: "half-open-admission".into(),
                message: format!(
                    "{admitted} calls went through in the half-open spell from {:.6}s; at most {bound} may",
                    start as f64 / 1e9
                ),
                at: Some(start),
                ops: Vec::new(),
            })
        })
        .collect()
}

/// `bounded-response-time`: every request answered within `bound`.
pub fn check_bounded_response_time(history: &History<BreakerOp, Source>, bound: Nanos) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Timeout || op.completed - op.invoked > bound)
        .map(|op| Violation {
            invariant: "bounded-response-time".into(),
            message: format!(
                "request #{} took {:.3}s ({:?}); the bound is {:.3}s",
                op.id,
                (op.completed - op.invoked) as f64 / 1e9,
                op.outcome.class(),
                bound as f64 / 1e9
            ),
            at: Some(op.invoked),
            ops: vec![op.id],
        })
        .collect()
}

/// `graceful-degradation`: every request gets an answer.
pub fn check_graceful_degradation(history: &History<BreakerOp, Source>) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter(|op| !op.outcome.class().served())
        .map(|op| Violation {
            invariant: "graceful-degradation".into(),
            message: format!("request #{} got no answer: {:?}", op.id, op.outcome),
            at: Some(op.invoked),
            ops: vec![op.id],
        })
        .collect()
}

/// `recovery`: once the heal phase starts, the breaker is closed within `bound`.
pub fn check_recovery(trace: &[TraceEvent], bound: Nanos) -> Vec<Violation> {
    let Some(heal) = trace.iter().find(|e| e.kind == "phase.heal").map(|e| e.at) else { return Vec::new() };
    let deadline = heal + bound;
    // The breaker's state at the deadline: the last transition before it.
    let last = trace
        .iter()
        .filter(|e| (e.source == "app" || app_reset(e)) && e.at <= deadline)
        .rfind(|e| matches!(e.kind.as_str(), "breaker.open" | "breaker.half_open" | "breaker.close") || app_reset(e));
    match last {
        Some(event) if event.kind.starts_with("breaker.") && event.kind != "breaker.close" => vec![Violation {
            invariant: "recovery".into(),
            message: format!(
                "the breaker was still {} {:.3}s after the heal phase began (bound {:.3}s)",
                if event.kind == "breaker.open" { "open" } else { "half-open" },
                (deadline - heal) as f64 / 1e9,
                bound as f64 / 1e9
            ),
            at: Some(deadline),
            ops: Vec::new(),
        }],
        _ => Vec::new(),
    }
}

/// Peak downstream calls per second (busiest 100ms bin) in the 2s after the
/// downstream came back: its last restart, else the heal phase.
pub fn peak_after_recovery(trace: &[TraceEvent]) -> Option<f64> {
    const BIN: Nanos = 100_000_000;
    let back = trace
        .iter()
        .rev()
        .find(|e| e.kind == "host.restart" && e.detail == "downstream")
        .or_else(|| trace.iter().find(|e| e.kind == "phase.heal"))?
        .at;
    let mut bins: BTreeMap<Nanos, u32> = BTreeMap::new();
    for event in trace.iter().filter(|e| e.kind == "downstream.call" && e.at >= back && e.at < back + 20 * BIN) {
        *bins.entry((event.at - back) / BIN).or_default() += 1;
    }
    Some(f64::from(bins.values().copied().max().unwrap_or(0)) * 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::Operation;

    const MS: Nanos = 1_000_000;

    fn event(at_ms: u64, source: &str, kind: &str, detail: &str) -> TraceEvent {
        TraceEvent { at: at_ms * MS, source: source.into(), kind: kind.into(), detail: detail.into() }
    }

    fn config(threshold: u32) -> Breaker {
        Breaker {
            enabled: true,
            rule: Rule::Consecutive(threshold),
            call_timeout: Dur::from_millis(100),
            open_duration: Dur::from_secs(1),
            open_backoff: 1.0,
            open_duration_max: Dur::from_secs(1),
            open_jitter: 0.0,
            half_open_max_calls: HalfOpenCalls::AtMost(1),
            slow_call_threshold: None,
            attempts_max: 3,
            backoff_base: Dur::from_millis(20),
            backoff_factor: 2.0,
            backoff_cap: Dur::from_millis(500),
            jitter: Jitter::Full,
            retry_budget: None,
            cache_timeout: Dur::from_millis(50),
            downstream_failure_rate: 0.0,
            service_time: DurRange::fixed(Dur::from_millis(1)),
            bad_request_ratio: 0.0,
        }
    }

    fn record(at_ms: u64, result: &str) -> TraceEvent {
        event(at_ms, "app", "breaker.record", &format!("result={result}"))
    }

    #[test]
    fn a_legal_cycle_passes() {
        let trace = [
            record(1, "fail"),
            record(2, "fail"),
            event(2, "app", "breaker.open", "rule=consecutive failures=2"),
            event(1002, "app", "breaker.half_open", "from=open"),
            record(1010, "ok"),
            event(1010, "app", "breaker.close", "successes=1"),
        ];
        assert!(check_legal_transitions(&config(2), &trace).is_empty());
    }

    #[test]
    fn opening_early_half_opening_early_and_closing_from_open_are_illegal() {
        let trace = [
            record(1, "fail"),
            record(2, "ok"),
            record(3, "fail"),
            event(3, "app", "breaker.open", "rule=consecutive failures=1"), // only 1 in a row
            event(500, "app", "breaker.half_open", "from=open"),            // before 1s
            event(600, "app", "breaker.open", "rule=half_open_failure"),    // no failed trial
            event(700, "app", "breaker.close", "successes=1"),              // from open
        ];
        let violations = check_legal_transitions(&config(2), &trace);
        assert_eq!(violations.len(), 4, "{violations:#?}");
        assert!(violations[1].message.contains("0.497s after opening"), "{}", violations[1].message);
    }

    #[test]
    fn calls_sent_while_open_break_fail_fast_but_calls_sent_before_do_not() {
        let trace = [
            event(100, "app", "breaker.open", "rule=consecutive failures=5"),
            event(105, "downstream", "downstream.call", "attempt=1 sent=99000000"), // sent before: fine
            event(205, "downstream", "downstream.call", "attempt=2 sent=200000000"), // sent while open
            event(1100, "app", "breaker.half_open", "from=open"),
            event(1105, "downstream", "downstream.call", "attempt=3 sent=1100000000"), // the trial: fine
        ];
        let violations = check_fail_fast(&trace);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("attempt 2"), "{}", violations[0].message);
    }

    #[test]
    fn more_than_the_bound_in_one_half_open_spell_is_a_violation() {
        let trace = [
            event(0, "app", "breaker.open", "rule=consecutive failures=5"),
            event(1000, "app", "breaker.half_open", "from=open"),
            event(1002, "downstream", "downstream.call", "attempt=1 sent=1000000000"),
            event(1003, "downstream", "downstream.call", "attempt=2 sent=1001000000"),
            event(1010, "app", "breaker.close", "successes=1"),
            event(1020, "downstream", "downstream.call", "attempt=3 sent=1020000000"), // closed: fine
        ];
        assert_eq!(check_half_open_admission(&trace, 2).len(), 0);
        let violations = check_half_open_admission(&trace, 1);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.starts_with("2 calls went through"), "{}", violations[0].message);
    }

    fn op(id: usize, invoked_ms: u64, completed_ms: u64, outcome: Outcome<Source>) -> Operation<BreakerOp, Source> {
        Operation {
            id,
            client: 0,
            seq: id as u64,
            kind: "request",
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
            op(3, 30, 40, Outcome::Failed("refused".into())),
        ]);
        assert_eq!(check_bounded_response_time(&history, 500 * MS).len(), 2);
        let degradation = check_graceful_degradation(&history);
        assert_eq!(degradation.iter().map(|v| v.ops[0]).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn the_response_bound_adds_timeouts_backoffs_and_the_fallback() {
        // 3 x 100ms + 20ms + 40ms of backoff + 50ms fallback + 100ms slack.
        assert_eq!(config(5).response_bound(), Duration::from_millis(510));
    }

    #[test]
    fn an_app_restart_closes_the_breaker_in_every_checker() {
        let trace = [
            record(1, "fail"),
            record(2, "fail"),
            event(2, "app", "breaker.open", "rule=consecutive failures=2"),
            event(100, "harness", "host.crash", "app"),
            event(200, "harness", "host.restart", "app"),
            event(210, "downstream", "downstream.call", "attempt=1 sent=210000000"), // a fresh, closed breaker
            record(300, "fail"),
            record(301, "fail"),
            event(301, "app", "breaker.open", "rule=consecutive failures=2"),
            event(5000, "harness", "phase.heal", ""),
            event(5300, "harness", "host.restart", "app"),
        ];
        assert!(check_legal_transitions(&config(2), &trace).is_empty());
        assert!(check_fail_fast(&trace).is_empty());
        assert!(check_recovery(&trace, 1000 * MS).is_empty(), "the restart left the breaker closed");
    }

    #[test]
    fn the_breaker_must_be_closed_soon_after_the_heal() {
        let healed = [
            event(5000, "harness", "phase.heal", ""),
            event(5500, "app", "breaker.half_open", "from=open"),
            event(5510, "app", "breaker.close", "successes=1"),
        ];
        assert!(check_recovery(&healed, 2000 * MS).is_empty());
        let stuck = [event(4000, "app", "breaker.open", ""), event(5000, "harness", "phase.heal", "")];
        assert_eq!(check_recovery(&stuck, 2000 * MS).len(), 1);
    }
}
