//! What a run records: the client operations ([`History`]) and the ordered
//! event trace ([`TraceEvent`]): faults applied, hosts crashed and restarted,
//! and events the system chooses to report ("breaker.open", "cache.miss").
//!
//! These are plain data. Checkers and metrics read them and nothing else; they
//! never see tokio or turmoil. Times are nanoseconds of simulated time since
//! the run started (never `Instant`s, whose Debug shows a real clock).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

/// Nanoseconds of simulated time since the start of the run.
pub type Nanos = u64;

/// Converts a duration since the start of the run to [`Nanos`].
pub fn nanos(duration: std::time::Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// How one client operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome<R> {
    /// The system answered as it should.
    Ok(R),
    /// The system answered with a fallback (a cached or default value, not
    /// the real thing): served, but counted apart from fresh answers.
    Degraded(R),
    /// The system answered with an error, or the client saw a transport error.
    Failed(String),
    /// No answer within the request's deadline.
    Timeout,
}

impl<R> Outcome<R> {
    pub fn class(&self) -> OutcomeClass {
        match self {
            Outcome::Ok(_) => OutcomeClass::Ok,
            Outcome::Degraded(_) => OutcomeClass::Degraded,
            Outcome::Failed(_) => OutcomeClass::Failed,
            Outcome::Timeout => OutcomeClass::Timeout,
        }
    }

    /// The answer, fresh or degraded.
    pub fn value(&self) -> Option<&R> {
        match self {
            Outcome::Ok(value) | Outcome::Degraded(value) => Some(value),
            Outcome::Failed(_) | Outcome::Timeout => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    Ok,
    Degraded,
    Failed,
    Timeout,
}

impl OutcomeClass {
    /// Did the client get an answer (fresh or degraded)?
    pub fn served(self) -> bool {
        matches!(self, OutcomeClass::Ok | OutcomeClass::Degraded)
    }
}

/// One client operation, from its intended start to its end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operation<O, R> {
    /// Index in [`History::ops`]; violations name operations by it.
    pub id: usize,
    pub client: u32,
    /// The client's own sequence number.
    pub seq: u64,
    /// What the operation is, by kind ("echo", "read", "write"), for
    /// per-kind latency figures.
    pub kind: &'static str,
    pub op: O,
    /// When the open-loop schedule meant to start it.
    pub intended: Nanos,
    /// When the client actually sent it (after `intended` only if the client
    /// itself was slow).
    pub invoked: Nanos,
    /// When the answer came back, or the deadline passed.
    pub completed: Nanos,
    /// How many of this client's earlier requests were still in flight when
    /// it was sent. With Poisson arrivals their mean is the time-average
    /// number in flight (PASTA), which the Little's-law check uses.
    pub outstanding: u32,
    pub outcome: Outcome<R>,
}

impl<O, R> Operation<O, R> {
    /// Latency as the user sees it: from the intended start, so that a slow
    /// system cannot hide queueing delay (no coordinated omission).
    pub fn latency(&self) -> Nanos {
        self.completed.saturating_sub(self.intended)
    }
}

/// Every client operation of a run, ordered by (intended start, client, seq).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct History<O, R> {
    pub ops: Vec<Operation<O, R>>,
}

impl<O, R> History<O, R> {
    pub fn new(mut ops: Vec<Operation<O, R>>) -> History<O, R> {
        ops.sort_by_key(|op| (op.intended, op.client, op.seq));
        for (index, op) in ops.iter_mut().enumerate() {
            op.id = index;
        }
        History { ops }
    }
}

/// One health probe: a synthetic request the harness sends every
/// `[metrics] probe_interval` to see whether the service is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSample {
    pub sent: Nanos,
    pub completed: Nanos,
    /// Answered (fresh or degraded) before the deadline.
    pub up: bool,
}

/// One entry of the event trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub at: Nanos,
    /// The host that reported it, or "harness" for faults and phases.
    pub source: String,
    /// A dotted name: "fault.start", "host.crash", "breaker.open", ...
    pub kind: String,
    pub detail: String,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>12} {:<10} {:<16} {}", format_nanos(self.at), self.source, self.kind, self.detail)
    }
}

/// "12.345678s": simulated time with microseconds, for traces.
pub fn format_nanos(at: Nanos) -> String {
    format!("{}.{:06}s", at / 1_000_000_000, (at % 1_000_000_000) / 1_000)
}

/// Where hosts and clients report events. One per run, shared by everything
/// in the simulation (which all runs on one thread).
#[derive(Clone, Default)]
pub struct Recorder {
    events: Rc<RefCell<Vec<TraceEvent>>>,
}

impl Recorder {
    pub fn push(&self, event: TraceEvent) {
        self.events.borrow_mut().push(event);
    }

    pub fn take(&self) -> Vec<TraceEvent> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// A handle that reports events as coming from `source`.
    pub fn sink(&self, source: &str) -> EventSink {
        EventSink { recorder: self.clone(), source: source.into() }
    }
}

/// How host and client code reports an event of the system into the trace.
#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
    source: Rc<str>,
}

impl EventSink {
    /// Records `kind` (a name the system lists in its doc's events) with a
    /// human-readable detail, at the current simulated time.
    pub fn emit(&self, kind: &str, detail: impl Into<String>) {
        let at = turmoil::sim_elapsed().map_or(0, nanos);
        self.recorder.push(TraceEvent {
            at,
            source: self.source.to_string(),
            kind: kind.to_string(),
            detail: detail.into(),
        });
    }
}

/// A broken invariant, found by a checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    /// What went wrong, with the values that show it.
    pub message: String,
    /// When it happened, where that is meaningful.
    pub at: Option<Nanos>,
    /// The operations involved (their ids in the history); metrics count
    /// them as bad answers.
    pub ops: Vec<usize>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{} at {}: {}", self.invariant, format_nanos(at), self.message),
            None => write!(f, "{}: {}", self.invariant, self.message),
        }
    }
}
