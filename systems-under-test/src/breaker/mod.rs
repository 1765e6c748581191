//! `breaker`: a circuit breaker with a call timeout, retries with backoff
//! and jitter, and graceful degradation, as the reliability chapter shows
//! them, as real services over turmoil's network (docs/breaker.md).
//!
//! Hosts: `app` serves client requests by calling `downstream` through the
//! breaker, with a timeout per call and a retry policy; when the calls fail,
//! or the breaker is open, it answers with popular items from `cache`, else
//! with static defaults. Every answer says where it came from: fresh answers
//! count as ok, fallbacks as degraded. `downstream` logs every call it
//! receives with the time the app sent it, so checkers can see what the
//! breaker let through without trusting the breaker's own word.
//!
//! The breaker: CLOSED until its rule holds (`failure_threshold` consecutive
//! failures, or a `failure_rate` over a window of calls or time with
//! `minimum_calls`; `rule.rs`, shared with the `legal-transitions` checker),
//! then OPEN for `open_duration` (growing by `open_backoff` on each reopening,
//! up to `open_duration_max`, shortened by up to `open_jitter`), then
//! HALF_OPEN, where `half_open_max_calls` trial calls go through
//! (`"unlimited"`: every call that arrives, as the chapter's version does); a
//! failed trial reopens it, enough successes close it. A success slower than
//! `slow_call_threshold` counts as a failure; a client error as a success.
//!
//! Files: `knobs.rs` (knobs and the bounds they give), `protocol.rs`
//! (operations, messages, events), `rule.rs` (the opening rule), `app.rs`,
//! `downstream.rs`, `cache_server.rs` (the hosts), `checks.rs` (pure
//! checkers and figures).

mod app;
mod cache_server;
mod checks;
mod downstream;
mod knobs;
mod protocol;
mod rule;

use std::sync::Arc;

use faultline_harness::history::nanos;
use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Lane, Outcome, System, SystemDoc,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use checks::{
    check_bounded_response_time, check_fail_fast, check_graceful_degradation, check_half_open_admission,
    check_legal_transitions, check_recovery, client_attempts, degraded_share, peak_after_recovery,
};
pub use knobs::{Breaker, HalfOpenCalls, RetryPlacement, TimeoutCovers, TrialTimeouts, Window};
pub use protocol::{BreakerEvent, BreakerOp, BreakerState, CallResult, Source};
pub use rule::{OpenReason, Rule};

use checks::RECOVERY_SLACK;
use protocol::{APP, CACHE, DOWNSTREAM, PROBE_USER};

static DOC: SystemDoc = SystemDoc {
    name: "breaker",
    about:
        "a circuit breaker with timeouts, retries with backoff and jitter, and fallbacks to cached and static answers",
    hosts: "app, downstream, cache",
    knobs: &[
        KnobDoc {
            name: "breaker",
            unit: "bool",
            default: "true",
            about: "false calls the downstream with no breaker at all (for retry-policy comparisons)",
        },
        KnobDoc {
            name: "failure_threshold",
            unit: "count",
            default: "5",
            about: "consecutive failures that open the breaker (unless failure_rate is set)",
        },
        KnobDoc {
            name: "failure_rate",
            unit: "probability",
            default: "none",
            about: "open when this share of the window's calls failed (with minimum_calls)",
        },
        KnobDoc {
            name: "window",
            unit: "count or duration",
            default: "20",
            about: "failure_rate's window: the last N calls, or the calls of the last \"10s\"",
        },
        KnobDoc {
            name: "minimum_calls",
            unit: "count",
            default: "10",
            about: "failure_rate needs at least this many calls in the window",
        },
        KnobDoc {
            name: "call_timeout",
            unit: "duration",
            default: "100ms",
            about: "how long one call to the downstream may take",
        },
        KnobDoc {
            name: "open_duration",
            unit: "duration",
            default: "1s",
            about: "how long the breaker stays open (the reset timeout)",
        },
        KnobDoc {
            name: "open_backoff",
            unit: "number",
            default: "1",
            about: "each reopening from half-open multiplies the open duration by this",
        },
        KnobDoc {
            name: "open_duration_max",
            unit: "duration",
            default: "open_duration",
            about: "the open duration grows to at most this",
        },
        KnobDoc {
            name: "open_jitter",
            unit: "probability",
            default: "0",
            about: "the open duration is shortened by a random share up to this",
        },
        KnobDoc {
            name: "half_open_max_calls",
            unit: "count or \"unlimited\"",
            default: "1",
            about: "trial calls let through in half-open; \"unlimited\" is the chapter's version (every arriving call)",
        },
        KnobDoc {
            name: "slow_call_threshold",
            unit: "duration",
            default: "none",
            about: "a successful call slower than this counts as a failure",
        },
        KnobDoc {
            name: "attempts_max",
            unit: "count",
            default: "3",
            about: "attempts per request (1: no retries); breaker rejections are never retried",
        },
        KnobDoc { name: "backoff_base", unit: "duration", default: "20ms", about: "the first retry's backoff" },
        KnobDoc {
            name: "backoff_factor",
            unit: "number",
            default: "2",
            about: "each retry multiplies the backoff by this",
        },
        KnobDoc { name: "backoff_cap", unit: "duration", default: "500ms", about: "the backoff grows to at most this" },
        KnobDoc { name: "jitter", unit: "string", default: "full", about: "none | full | equal | decorrelated" },
        KnobDoc {
            name: "retry_budget",
            unit: "probability",
            default: "none",
            about: "retries at most this share of requests (a token bucket)",
        },
        KnobDoc {
            name: "cache_timeout",
            unit: "duration",
            default: "50ms",
            about: "how long the fallback waits for the popular-items cache",
        },
        KnobDoc {
            name: "downstream_failure_rate",
            unit: "probability",
            default: "0",
            about: "share of calls the downstream answers with an error",
        },
        KnobDoc {
            name: "service_time",
            unit: "duration range",
            default: "1ms..5ms",
            about: "time the downstream spends on a call",
        },
        KnobDoc {
            name: "bad_request_ratio",
            unit: "probability",
            default: "0.01",
            about: "share of requests that are client errors (answered, never retried)",
        },
        KnobDoc {
            name: "fallback",
            unit: "bool",
            default: "true",
            about: "answer from the cache or static defaults when calls fail; false answers an error (no fallbacks)",
        },
        KnobDoc {
            name: "retry_placement",
            unit: "string",
            default: "outside",
            about: "outside: every attempt asks the breaker | inside: the breaker wraps the retries (a flaw)",
        },
        KnobDoc {
            name: "call_timeout_covers",
            unit: "string",
            default: "call",
            about: "call: the whole call | connect: only connecting (a flaw: no read timeout)",
        },
        KnobDoc {
            name: "connections",
            unit: "string",
            default: "per-request",
            about: "clients to the app, the app to the downstream and the cache: per-request | pooled (not with call_timeout_covers = connect)",
        },
        KnobDoc {
            name: "trial_timeouts",
            unit: "string",
            default: "counted",
            about:
                "counted: a timed-out trial reopens the breaker | lost (planted flaw): never reported, stuck half-open",
        },
        KnobDoc {
            name: "closed_successes",
            unit: "string",
            default: "counted",
            about: "counted | ignored (planted flaw: failures add up over the breaker's life, not in a row)",
        },
    ],
    events: &[
        EventDoc { name: "breaker.open", about: "the breaker opened (by which rule, for how long)", detects: true },
        EventDoc { name: "breaker.half_open", about: "the breaker let trial calls through", detects: false },
        EventDoc { name: "breaker.close", about: "the breaker closed", detects: false },
        EventDoc {
            name: "breaker.record",
            about: "a call's result, as the breaker counted it (and in which state)",
            detects: false,
        },
        EventDoc { name: "breaker.reject", about: "the breaker refused a call", detects: false },
        EventDoc { name: "retry.skipped", about: "a retry was not made: the budget was spent", detects: false },
        EventDoc {
            name: "downstream.call",
            about: "the downstream received a call (with the time the app sent it)",
            detects: false,
        },
        EventDoc { name: "fallback.cache", about: "the app answered with cached popular items", detects: false },
        EventDoc { name: "fallback.static", about: "the app answered with static defaults", detects: false },
    ],
};

impl System for Breaker {
    type Op = BreakerOp;
    type Res = Source;
    type Event = BreakerEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![
            Invariant {
                name: "legal-transitions",
                about: "CLOSED to OPEN only when the threshold rule holds; OPEN to HALF_OPEN only after the open \
                        duration; HALF_OPEN to CLOSED or OPEN",
                check: |breaker, context| Ok(check_legal_transitions(breaker, context)),
            },
            Invariant {
                name: "fail-fast",
                about: "no call the app sent while the breaker was open reached the downstream",
                check: |_, context| Ok(check_fail_fast(context)),
            },
            Invariant {
                name: "half-open-admission",
                about: "at most half_open_max_calls calls are sent in one half-open spell (1 for \"unlimited\": the \
                        trial the state exists for)",
                check: |breaker, context| Ok(check_half_open_admission(context, breaker.half_open_bound())),
            },
            Invariant {
                name: "bounded-response-time",
                about: "every request is answered within the bound the timeout, attempts, backoff and fallback give",
                check: |breaker, context| {
                    Ok(check_bounded_response_time(context.history, nanos(breaker.response_bound())))
                },
            },
            Invariant {
                name: "graceful-degradation",
                about: "every request gets an answer, fresh or a fallback, whatever befalls the downstream and the \
                        cache (not the app's own links)",
                check: |_, context| Ok(check_graceful_degradation(context.history)),
            },
            Invariant {
                name: "recovery",
                about: "after the heal phase starts, the breaker closes within open_duration_max plus 1s",
                check: |breaker, context| {
                    Ok(check_recovery(context, nanos(breaker.open_duration_max.0 + RECOVERY_SLACK)))
                },
            },
        ]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Breaker, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        vec![APP.into(), DOWNSTREAM.into(), CACHE.into()]
    }

    fn host(self: &Arc<Self>, context: HostContext<BreakerEvent>) -> LocalFuture<HostResult> {
        let config = Arc::clone(self);
        match context.name.as_str() {
            APP => Box::pin(app::serve(config, context)),
            DOWNSTREAM => Box::pin(downstream::serve(config, context)),
            CACHE => Box::pin(cache_server::serve()),
            other => unreachable!("the breaker has no host {other:?}"),
        }
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), rng: &mut ChaCha8Rng) -> BreakerOp {
        let user = if rng.random_bool(self.bad_request_ratio) { 0 } else { rng.random_range(1..=1000) };
        BreakerOp { user }
    }

    fn op_kind(&self, _op: &BreakerOp) -> &'static str {
        "request"
    }

    fn probe_op(&self) -> Option<BreakerOp> {
        Some(BreakerOp { user: PROBE_USER })
    }

    fn call(self: &Arc<Self>, client: ClientContext<BreakerEvent>, op: BreakerOp) -> LocalFuture<Outcome<Source>> {
        Box::pin(app::request(crate::kit::pool::client_caller(&client.local, self.connections), op))
    }

    /// `degraded_share`: requests answered with a fallback; `wasted_calls`:
    /// client attempts that failed; `retry_amplification`: client attempts
    /// per request; `peak_downstream_per_s_after_recovery`: the busiest 100ms
    /// of downstream calls, per second, in the 2s after it came back.
    fn figures(&self, context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        let requests = context.history.ops.len().max(1) as f64;
        let (attempts, failed) = client_attempts(context);
        vec![
            ("degraded_share", degraded_share(context.history)),
            ("wasted_calls", failed as f64),
            ("retry_amplification", attempts as f64 / requests),
            ("peak_downstream_per_s_after_recovery", peak_after_recovery(context)),
        ]
    }

    fn lanes(&self, context: &CheckContext<'_, Self>) -> Vec<Lane> {
        checks::lanes(self, context)
    }
}
