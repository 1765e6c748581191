//! What a run records: the client operations ([`History`]), the probe's
//! samples and the ordered, typed trace ([`TraceEvent`]): faults applied,
//! hosts crashed and restarted, phases, and the events the system reports in
//! its own event type.
//!
//! These are plain data. Checkers and metrics read them and nothing else; they
//! never see tokio or turmoil. Times are nanoseconds of simulated time since
//! the run started (never `Instant`s, whose Debug shows a real clock).

use std::fmt;

use serde::de::DeserializeOwned;
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
    /// Which of the four ways it ended, without the answer.
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

/// How an operation ended, without its answer: the variants of [`Outcome`],
/// which metrics count and reports name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// A fresh answer ([`Outcome::Ok`]).
    Ok,
    /// A fallback answer ([`Outcome::Degraded`]).
    Degraded,
    /// An error from the system or the transport ([`Outcome::Failed`]).
    Failed,
    /// No answer by the deadline ([`Outcome::Timeout`]).
    Timeout,
}

impl OutcomeClass {
    /// Did the client get an answer (fresh or degraded)?
    pub fn served(self) -> bool {
        matches!(self, OutcomeClass::Ok | OutcomeClass::Degraded)
    }
}

/// One client operation, from its intended start to its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation<O, R> {
    /// Index in [`History::ops`]; violations name operations by it.
    pub id: usize,
    /// The workload client that sent it: `n` for host `client-n`.
    pub client: u32,
    /// The client's own sequence number: (client, seq) names the operation
    /// for the system too (an idempotency key, a lock owner).
    pub seq: u64,
    /// What the client asked for, in the system's own operation type.
    pub op: O,
    /// When the client meant to start it: the open-loop schedule's time, or
    /// for a closed-loop session, when its think time ended.
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
    /// How it ended, with the answer if there was one.
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History<O, R> {
    /// The operations, in that order; each one's `id` is its index here.
    pub ops: Vec<Operation<O, R>>,
}

impl<O, R> History<O, R> {
    /// A history of `ops` in any order: sorts them by (intended start,
    /// client, seq) and numbers them from 0 in that order.
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
    /// When the probe was sent.
    pub sent: Nanos,
    /// When its answer came back, or its deadline (the workload's
    /// `deadline`) passed.
    pub completed: Nanos,
    /// Up as `[metrics] probe_up` counts it: answered before the deadline
    /// (with `"fresh"`, only by a fresh answer).
    pub up: bool,
    /// Answered before the deadline, fresh or degraded (what liveness asks).
    pub served: bool,
}

/// An event of a system's own, as its hosts report it: plain serde data with
/// a dotted kind name ("breaker.open") that the system's doc lists. Checkers
/// read the fields, never text.
///
/// The `system_events!` macro declares such a type with each
/// kind's name written once.
pub trait SystemEvent: Clone + fmt::Debug + Serialize + DeserializeOwned + 'static {
    /// Every kind the type can have (the registry holds the system's doc to it).
    const KINDS: &'static [&'static str];
    /// The kind's name, as `[check] reached` and the doc's events name it.
    fn kind(&self) -> &'static str;
}

/// Declares a system's event type: an enum whose variants each carry a
/// dotted kind name, serialized with the kind as a `"kind"` tag, with
/// [`SystemEvent`] implemented. The crate using it needs `serde` (with its
/// `derive` feature) among its dependencies.
///
/// ```ignore
/// faultline_harness::system_events! {
///     /// What the echo server reports.
///     pub enum EchoEvent {
///         /// The server is listening.
///         ServerStart = "server.start" { incarnation: u32 },
///         Corrupted = "echo.corrupted" { sent: u64, payload: u64 },
///     }
/// }
/// ```
#[macro_export]
macro_rules! system_events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $kind:literal $({
                    $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)?
                })?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(tag = "kind")]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $kind)]
                $variant $({ $( $(#[$field_meta])* $field: $ty ),* })?
            ),*
        }

        impl $crate::history::SystemEvent for $name {
            const KINDS: &'static [&'static str] = &[$($kind),*];

            fn kind(&self) -> &'static str {
                match self {
                    $( Self::$variant { .. } => $kind ),*
                }
            }
        }
    };
}

/// The host name that the harness's own trace entries carry as their source.
pub const HARNESS: &str = "harness";

/// What happened, in one entry of the trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Happening<E> {
    /// A planned fault started (its id in the plan, and what it does).
    FaultStart {
        /// The fault's id in the plan (`PlannedFault::id`).
        fault: u32,
        /// The fault's action as text, e.g. `partition [db] | [app-1]`.
        what: String,
    },
    /// A planned fault ended (its end time, or the heal phase).
    FaultEnd {
        /// The fault's id in the plan.
        fault: u32,
        /// The fault's action as text.
        what: String,
    },
    /// A host's software was stopped by a fault; its memory is lost.
    HostCrash {
        /// The host crashed.
        host: String,
    },
    /// A host's software was started again (a fault's end, or a restart).
    HostRestart {
        /// The host started.
        host: String,
    },
    /// A restart fault found the host down and did nothing.
    HostRestartSkipped {
        /// The host that was down.
        host: String,
    },
    /// The system started a host of its pool (it was down).
    PoolStart {
        /// The host started.
        host: String,
    },
    /// The system stopped a host of its pool (its memory is lost).
    PoolStop {
        /// The host stopped.
        host: String,
    },
    /// Every fault is off from here: the heal phase.
    Heal,
    /// An event of the system's own.
    System(E),
}

/// One entry of the trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent<E> {
    /// When it happened.
    pub at: Nanos,
    /// The host that reported it, or [`HARNESS`] for faults and phases.
    pub source: String,
    /// What happened.
    pub event: Happening<E>,
}

impl<E: SystemEvent> TraceEvent<E> {
    /// The dotted kind name: "fault.start", "host.crash", "breaker.open", ...
    pub fn kind(&self) -> &'static str {
        match &self.event {
            Happening::FaultStart { .. } => "fault.start",
            Happening::FaultEnd { .. } => "fault.end",
            Happening::HostCrash { .. } => "host.crash",
            Happening::HostRestart { .. } => "host.restart",
            Happening::HostRestartSkipped { .. } => "host.restart.skipped",
            Happening::PoolStart { .. } => "pool.start",
            Happening::PoolStop { .. } => "pool.stop",
            Happening::Heal => "phase.heal",
            Happening::System(event) => event.kind(),
        }
    }

    /// A one-line description of the entry's data, for traces people read:
    /// a system event's fields as `name=value` pairs.
    pub fn detail(&self) -> String {
        match &self.event {
            Happening::FaultStart { what, .. } | Happening::FaultEnd { what, .. } => what.clone(),
            Happening::HostCrash { host }
            | Happening::HostRestart { host }
            | Happening::PoolStart { host }
            | Happening::PoolStop { host } => host.clone(),
            Happening::HostRestartSkipped { host } => format!("{host} is down"),
            Happening::Heal => "every fault is off; the system must recover".into(),
            Happening::System(event) => fields(event),
        }
    }

    /// The system event, if this entry is one.
    pub fn system(&self) -> Option<&E> {
        match &self.event {
            Happening::System(event) => Some(event),
            _ => None,
        }
    }

    /// The host whose memory this entry wiped or restarted (a crash, a
    /// restart, a pool stop or start): state that lives in a host's memory
    /// starts afresh here.
    pub fn reset_host(&self) -> Option<&str> {
        match &self.event {
            Happening::HostCrash { host }
            | Happening::HostRestart { host }
            | Happening::PoolStart { host }
            | Happening::PoolStop { host } => Some(host),
            _ => None,
        }
    }

    /// The entry as a plain line (kind and detail as text), for timelines.
    pub fn line(&self) -> TraceLine {
        TraceLine { at: self.at, source: self.source.clone(), kind: self.kind().to_string(), detail: self.detail() }
    }
}

/// A system event's serde fields, except its kind tag, as `name=value` pairs.
fn fields<E: Serialize + fmt::Debug>(event: &E) -> String {
    match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .filter(|(name, _)| name.as_str() != "kind")
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => format!("{name}={text}"),
                other => format!("{name}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => format!("{event:?}"),
    }
}

/// One line of a timeline people read: a trace entry or an operation's
/// invocation or completion, with its kind and detail as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLine {
    /// When it happened.
    pub at: Nanos,
    /// The host it came from: the reporting host, the operation's client
    /// (`client-n`), or [`HARNESS`].
    pub source: String,
    /// Its dotted kind name (`fault.start`, `breaker.open`, `op.invoke`, `op.ok`, ...).
    pub kind: String,
    /// Its data as one line of text.
    pub detail: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>12} {:<12} {:<18} {}", format_nanos(self.at), self.source, self.kind, self.detail)
    }
}

/// "12.345678s": simulated time with microseconds, for traces.
pub fn format_nanos(at: Nanos) -> String {
    format!("{}.{:06}s", at / 1_000_000_000, (at % 1_000_000_000) / 1_000)
}

/// A broken invariant, found by a checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The invariant's name; the harness sets it from the checker that found it.
    pub invariant: String,
    /// What went wrong, with the values that show it.
    pub message: String,
    /// When it happened, where that is meaningful.
    pub at: Option<Nanos>,
    /// The operations involved (their ids in the history); metrics count
    /// them as bad answers.
    pub ops: Vec<usize>,
}

impl Violation {
    /// A violation with its message; [`Violation::at`] and [`Violation::ops`]
    /// add the time and the operations involved.
    pub fn new(message: impl Into<String>) -> Violation {
        Violation { invariant: String::new(), message: message.into(), at: None, ops: Vec::new() }
    }

    /// The violation, saying when it happened.
    pub fn at(mut self, at: Nanos) -> Violation {
        self.at = Some(at);
        self
    }

    /// The violation, naming the operations involved by their ids in the history.
    pub fn ops(mut self, ops: impl IntoIterator<Item = usize>) -> Violation {
        self.ops = ops.into_iter().collect();
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{} at {}: {}", self.invariant, format_nanos(at), self.message),
            None => write!(f, "{}: {}", self.invariant, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind")]
    enum Event {
        #[serde(rename = "db.write")]
        Write { key: u32, version: u64 },
    }

    impl SystemEvent for Event {
        const KINDS: &'static [&'static str] = &["db.write"];

        fn kind(&self) -> &'static str {
            "db.write"
        }
    }

    #[test]
    fn system_events_show_their_fields_and_round_trip() {
        let entry = TraceEvent {
            at: 1_500,
            source: "db".into(),
            event: Happening::System(Event::Write { key: 3, version: 7 }),
        };
        assert_eq!(entry.kind(), "db.write");
        assert_eq!(entry.detail(), "key=3 version=7");
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(serde_json::from_str::<TraceEvent<Event>>(&json).unwrap(), entry);
        let heal = TraceEvent::<Event> { at: 0, source: HARNESS.into(), event: Happening::Heal };
        assert_eq!(heal.kind(), "phase.heal");
        assert_eq!(heal.reset_host(), None);
    }
}
