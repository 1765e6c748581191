//! The narrow waist between faultline and a system under test.
//!
//! A system is one Rust type implementing [`System`]: its configuration
//! (from a scenario's `[knobs]`), its hosts' software, its workload, its
//! typed events and its invariants as typed checker values. The harness
//! sees nothing else of it and never names a concrete system.
//!
//! What a system gets from the harness is here too: a [`HostContext`] per
//! host incarnation (a seeded RNG, an event sink, the pool control) and a
//! [`ClientContext`] per call. A system never touches `Sim`, fault
//! functions or an unseeded RNG. Checkers get a [`CheckContext`]: the
//! recorded history, the typed trace, the plan's faults and the phase times,
//! and nothing that runs.

use std::cell::RefCell;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::InputError;
use crate::fault::PlannedFault;
use crate::history::{nanos, Happening, History, Nanos, Outcome, SystemEvent, TraceEvent, Violation};
use crate::knobs::Knobs;

/// A future that runs on one simulated host (no `Send`: hosts are single-threaded).
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What a host's software returns; an `Err` fails the run.
pub type HostResult = Result<(), Box<dyn std::error::Error>>;

/// A system under test, configured from a scenario's `[knobs]`.
///
/// `Arc<Self>` receivers let host and client futures keep the configuration
/// without borrowing it: turmoil calls a host's constructor again on every
/// restart, long after the run started.
pub trait System: Sized + Send + Sync + Serialize + 'static {
    /// One client operation ("read key 3", "echo 0x2a"); recorded in the history.
    type Op: Clone + Debug + Serialize + DeserializeOwned + 'static;
    /// What a successful operation returns.
    type Res: Clone + Debug + Serialize + DeserializeOwned + 'static;
    /// The events the system's hosts report, as data checkers read.
    type Event: SystemEvent;
    /// A workload client's own state, kept for the whole run: a user's
    /// session, the lock a client holds, the last version it saw. `()` when
    /// operations are independent.
    type Client: 'static;

    /// The system's documentation: its name, hosts, knobs and events
    /// (`faultline list` shows it; scenario files are validated against it).
    fn doc() -> &'static SystemDoc;

    /// The invariants the system can check, as typed checker values. A
    /// scenario runs those its `[check] invariants` names, or by default the
    /// ones [`System::promises`] gives.
    fn invariants() -> Vec<Invariant<Self>>;

    /// Validates `[knobs]` and builds the configured system. Knobs that
    /// cannot work together are errors naming both.
    fn configure(knobs: &Knobs<'_>) -> Result<Self, InputError>;

    /// Host names, in a fixed order. They must not start with "client-" (the
    /// workload clients' names) and must not repeat.
    fn hosts(&self) -> Vec<String>;

    /// Hosts the system itself may start and stop during a run (through
    /// [`HostContext::pool`]): an autoscaler's instances. Registered from the
    /// start, as turmoil cannot add hosts on demand. None by default.
    fn pool(&self) -> Vec<String> {
        Vec::new()
    }

    /// Hosts of the pool kept down until the system starts them.
    fn down_at_start(&self) -> Vec<String> {
        Vec::new()
    }

    /// The software of host `context.name`. Called at start and again on each
    /// restart, with a fresh RNG stream per incarnation. Memory is lost on a
    /// crash, as on a real machine; what must survive goes to the simulated
    /// disk (turmoil's `fs` shim), and survives only once synced.
    fn host(self: &Arc<Self>, context: HostContext<Self::Event>) -> LocalFuture<HostResult>;

    /// The state of workload client `index` at the start of the run.
    fn client(&self, index: u32) -> Self::Client;

    /// The next operation of a client, drawn from that client's own stream
    /// (so one client's choices never shift another's) and its state.
    fn next_op(&self, client: &mut Self::Client, rng: &mut ChaCha8Rng) -> Self::Op;

    /// Tells a client how one of its operations ended, so that its state can
    /// follow (a lock acquired, a session's last version). Nothing by default.
    fn observe(&self, _client: &mut Self::Client, _op: &Self::Op, _outcome: &Outcome<Self::Res>) {}

    /// The operation's kind, for per-kind figures ("read", "write").
    fn op_kind(&self, op: &Self::Op) -> &'static str;

    /// A health probe: the operation the harness sends every
    /// `[metrics] probe_interval` from its own `client-probe` host to measure
    /// time availability, outages and MTTR precisely. `None` (the default)
    /// means no probe: the time view then comes from windows of the requests.
    fn probe_op(&self) -> Option<Self::Op> {
        None
    }

    /// Performs one operation from a workload client. The harness enforces
    /// the deadline by dropping this future; it must not block the thread.
    fn call(self: &Arc<Self>, client: ClientContext<Self::Event>, op: Self::Op) -> LocalFuture<Outcome<Self::Res>>;

    /// The invariants this configuration promises: what a scenario checks when
    /// it names none. All of them by default; a system whose variants promise
    /// different things (coalescing promises origin protection, the textbook
    /// pattern does not) narrows it.
    fn promises(&self) -> Vec<&'static str> {
        Self::invariants().iter().map(|i| i.name).collect()
    }

    /// Figures of the system's own ("stampede_factor", "hit_ratio"), from a
    /// finished run; shown with the run's metrics and summarized across seeds.
    /// Pure, like a checker. None by default.
    fn figures(&self, _context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// State lanes for the report's timeline (`faultline report`): what the
    /// system was doing over the run, read from its own typed events (a
    /// breaker's open/half-open/closed, which host is primary, a queue's
    /// depth). Pure, like a checker; drawn under the hosts' lanes, in the
    /// order given. None by default: the report then shows the hosts, the
    /// faults and the requests alone.
    fn lanes(&self, _context: &CheckContext<'_, Self>) -> Vec<Lane> {
        Vec::new()
    }
}

/// One state lane of a system in a report's timeline ([`System::lanes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// Its label: "breaker", "primary", "db queue".
    pub name: String,
    /// What the lane holds over time.
    pub kind: LaneKind,
}

/// What a [`Lane`] holds over time.
#[derive(Clone, Debug, PartialEq)]
pub enum LaneKind {
    /// Named states: each entry is a change, at a time, to a state that lasts
    /// until the next change (or the end of the run). The lane is blank
    /// before the first change.
    States(Vec<StateChange>),
    /// A number that steps at each point and holds until the next (a queue's
    /// depth, loads in flight); drawn as a step line.
    Level(Vec<(Nanos, f64)>),
}

/// A change of a state lane, at `at`, to `state`.
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    /// When the state began.
    pub at: Nanos,
    /// The state's name, as the lane shows it ("open", "app-2").
    pub state: String,
    /// How it reads at a glance: the report colours it by this.
    pub tone: Tone,
}

/// How a state reads at a glance; the report colours states by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    /// Healthy: a closed breaker, a caught-up replica.
    Good,
    /// In between: half-open, catching up, failing over.
    Warn,
    /// Unhealthy: an open breaker, no primary.
    Bad,
    /// Neither: which host leads, a mode.
    Neutral,
}

impl Lane {
    /// A lane of named states from its changes (sorted by time; a change to
    /// the state already in force is dropped, so a lane can be built from
    /// every event that implies a state).
    pub fn states(name: impl Into<String>, changes: impl IntoIterator<Item = StateChange>) -> Lane {
        let mut kept: Vec<StateChange> = Vec::new();
        let mut changes: Vec<StateChange> = changes.into_iter().collect();
        changes.sort_by_key(|change| change.at);
        for change in changes {
            if kept.last().is_some_and(|last| last.state == change.state) {
                continue;
            }
            kept.push(change);
        }
        Lane { name: name.into(), kind: LaneKind::States(kept) }
    }

    /// A lane of a number over time, from its steps (sorted by time).
    pub fn level(name: impl Into<String>, points: impl IntoIterator<Item = (Nanos, f64)>) -> Lane {
        let mut points: Vec<(Nanos, f64)> = points.into_iter().filter(|(_, value)| value.is_finite()).collect();
        points.sort_by_key(|(at, _)| *at);
        Lane { name: name.into(), kind: LaneKind::Level(points) }
    }
}

impl StateChange {
    /// A change to `state` at `at`, read as `tone`.
    pub fn new(at: Nanos, state: impl Into<String>, tone: Tone) -> StateChange {
        StateChange { at, state: state.into(), tone }
    }
}

/// A check that could not reach a verdict (too few requests to judge, a
/// search that ran out of its budget): never a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unjudged(pub String);

/// What a checker says: the violations it found (none is a pass), or that it
/// could not judge.
pub type CheckResult = Result<Vec<Violation>, Unjudged>;

/// One invariant of a system: a name, what it promises, and a pure function
/// of the configured system and a finished run.
pub struct Invariant<S: System> {
    /// The name scenario files use (`[check] invariants`, `expect =
    /// "violation:<name>"`) and reports print.
    pub name: &'static str,
    /// What it promises, in a sentence (`faultline list` shows it).
    pub about: &'static str,
    /// Pure: no I/O, no time, no randomness, no tokio or turmoil.
    pub check: fn(&S, &CheckContext<'_, S>) -> CheckResult,
}

impl<S: System> Clone for Invariant<S> {
    fn clone(&self) -> Self {
        Invariant { name: self.name, about: self.about, check: self.check }
    }
}

/// Everything a checker may read of a finished run.
pub struct CheckContext<'a, S: System> {
    /// Every client operation of the run (the probe's are not in it).
    pub history: &'a History<S::Op, S::Res>,
    /// Faults, host crashes and restarts, the heal phase and the system's
    /// events, in the order they happened.
    pub trace: &'a [TraceEvent<S::Event>],
    /// The plan's faults, each with its concrete hosts and times.
    pub faults: &'a [PlannedFault],
    /// When the heal phase began: every fault is off from here.
    pub heal_at: Nanos,
    /// When the workload stopped issuing requests.
    pub end: Nanos,
}

impl<'a, S: System> CheckContext<'a, S> {
    /// The system's own events with when and where they were reported.
    pub fn events(&self) -> impl Iterator<Item = (Nanos, &'a str, &'a S::Event)> + 'a {
        self.trace.iter().filter_map(|entry| entry.system().map(|event| (entry.at, entry.source.as_str(), event)))
    }

    /// When `host`'s memory was wiped or its software restarted (crashes,
    /// restarts, pool stops and starts), in order.
    pub fn resets_of(&self, host: &str) -> Vec<Nanos> {
        self.trace.iter().filter(|entry| entry.reset_host() == Some(host)).map(|entry| entry.at).collect()
    }

    /// The intervals during which `host` was down: crashed by a fault or
    /// stopped by the system's pool, until it was started again (or the end).
    pub fn down_intervals(&self, host: &str) -> Vec<(Nanos, Nanos)> {
        let mut intervals = Vec::new();
        let mut down_since = None;
        for entry in self.trace {
            match &entry.event {
                Happening::HostCrash { host: h } | Happening::PoolStop { host: h } if h == host => {
                    down_since.get_or_insert(entry.at);
                }
                Happening::HostRestart { host: h } | Happening::PoolStart { host: h } if h == host => {
                    if let Some(since) = down_since.take() {
                        intervals.push((since, entry.at));
                    }
                }
                _ => {}
            }
        }
        if let Some(since) = down_since {
            intervals.push((since, Nanos::MAX));
        }
        intervals
    }
}

/// What a host's software gets from the harness.
pub struct HostContext<E> {
    /// The host's name, one of [`System::hosts`].
    pub name: String,
    /// 0 at the first start, then +1 on each restart.
    pub incarnation: u32,
    /// This host's own stream, seeded from the run's seed, the host and the incarnation.
    pub rng: ChaCha8Rng,
    /// Reports the system's events into the trace.
    pub events: EventSink<E>,
    /// Starts and stops the hosts of the system's pool.
    pub pool: Pool,
}

/// What a workload client's call gets from the harness.
#[derive(Clone)]
pub struct ClientContext<E> {
    /// The client's number: `n` for `client-n` (`u32::MAX` for the health probe).
    pub index: u32,
    /// "client-3" (or "client-probe" for the health probe).
    pub name: String,
    /// The operation's sequence number within this client: with the client's
    /// index it names the operation uniquely (an idempotency key, a lock owner).
    pub seq: u64,
    /// Reports the system's events into the trace, with this client as their source.
    pub events: EventSink<E>,
    /// State the client's host keeps between calls (a pooled connection to
    /// the front host), shared by every call of this client.
    pub local: ClientLocal,
}

/// One slot of state per workload client host (and one for the probe),
/// living as long as that host's loop: what a call must keep between calls
/// and cannot put in [`System::Client`], because it belongs to the client's
/// simulated host (a TCP connection opened there). `call` gets it through
/// [`ClientContext::local`]; the first call fills it, later calls reuse it.
/// A system keeps one value in it (a struct of its own if it needs more).
#[derive(Clone, Default)]
pub struct ClientLocal(Rc<RefCell<Option<Rc<dyn std::any::Any>>>>);

impl ClientLocal {
    /// The value in the slot, made by `make` on the first call.
    ///
    /// # Panics
    /// If the slot already holds a value of another type (a system keeps one
    /// type there).
    pub fn get_or_insert_with<T: 'static>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        let mut slot = self.0.borrow_mut();
        let value = slot.get_or_insert_with(|| Rc::new(make()) as Rc<dyn std::any::Any>);
        Rc::clone(value).downcast::<T>().unwrap_or_else(|_| panic!("a client's local slot holds one type"))
    }
}

/// Where hosts and clients report events. One per run, shared by everything
/// in the simulation (which all runs on one thread).
pub struct Recorder<E> {
    entries: Rc<RefCell<Vec<TraceEvent<E>>>>,
}

impl<E> Clone for Recorder<E> {
    fn clone(&self) -> Self {
        Recorder { entries: Rc::clone(&self.entries) }
    }
}

impl<E> Default for Recorder<E> {
    fn default() -> Self {
        Recorder { entries: Rc::new(RefCell::new(Vec::new())) }
    }
}

impl<E> Recorder<E> {
    /// Appends `entry` to the trace (the runner adds the harness's own
    /// entries this way).
    pub fn push(&self, entry: TraceEvent<E>) {
        self.entries.borrow_mut().push(entry);
    }

    /// Every entry recorded since the last call, in the order recorded,
    /// leaving the recorder empty.
    pub fn take(&self) -> Vec<TraceEvent<E>> {
        std::mem::take(&mut *self.entries.borrow_mut())
    }

    /// A handle that reports events as coming from `source`.
    pub fn sink(&self, source: &str) -> EventSink<E> {
        EventSink { recorder: self.clone(), source: source.into() }
    }
}

/// How host and client code reports an event of the system into the trace.
pub struct EventSink<E> {
    recorder: Recorder<E>,
    source: Rc<str>,
}

impl<E> Clone for EventSink<E> {
    fn clone(&self) -> Self {
        EventSink { recorder: self.recorder.clone(), source: Rc::clone(&self.source) }
    }
}

impl<E> EventSink<E> {
    /// Records `event` at the current simulated time.
    pub fn emit(&self, event: E) {
        let at = turmoil::sim_elapsed().map_or(0, nanos);
        self.recorder.push(TraceEvent { at, source: self.source.to_string(), event: Happening::System(event) });
    }
}

/// A request of a system to start or stop a host of its pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolRequest {
    /// Start the named host (nothing if it is up).
    Start(String),
    /// Stop the named host; its memory is lost.
    Stop(String),
}

/// The system's handle on its pool of hosts. Requests are applied by the
/// harness between simulation steps (so within a tick) and recorded in the
/// trace; a request for a host outside the pool is refused.
#[derive(Clone, Default)]
pub struct Pool {
    members: Rc<[String]>,
    requests: Rc<RefCell<Vec<PoolRequest>>>,
}

impl Pool {
    /// A pool of `members` (the system's [`System::pool`]) with no requests yet.
    pub fn new(members: Vec<String>) -> Pool {
        Pool { members: members.into(), requests: Rc::default() }
    }

    /// The hosts the system may start and stop.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Asks the harness to start `host` (nothing if it is up).
    pub fn start(&self, host: &str) -> Result<(), String> {
        self.request(PoolRequest::Start(self.member(host)?))
    }

    /// Asks the harness to stop `host` (its memory is lost, as in a crash).
    pub fn stop(&self, host: &str) -> Result<(), String> {
        self.request(PoolRequest::Stop(self.member(host)?))
    }

    fn member(&self, host: &str) -> Result<String, String> {
        if self.members.iter().any(|m| m == host) {
            Ok(host.to_string())
        } else {
            Err(format!("{host:?} is not in the system's pool ({})", self.members.join(", ")))
        }
    }

    fn request(&self, request: PoolRequest) -> Result<(), String> {
        self.requests.borrow_mut().push(request);
        Ok(())
    }

    /// The requests made since the last call, in order (for the runner).
    pub fn drain(&self) -> Vec<PoolRequest> {
        std::mem::take(&mut *self.requests.borrow_mut())
    }
}

/// Documentation of a system, shown by `faultline list` and used to validate
/// scenario files (event names).
pub struct SystemDoc {
    /// The name scenario files give as `system = "..."`; unique in a registry.
    pub name: &'static str,
    /// What the system is and which flaws it has, in a few sentences.
    pub about: &'static str,
    /// Its hosts, for people: `"db, cache, app-1..app-N"` (the real list
    /// comes from [`System::hosts`] of a configured system).
    pub hosts: &'static str,
    /// Every key its `[knobs]` table accepts.
    pub knobs: &'static [KnobDoc],
    /// Event kinds the system reports (usable in `[check] reached`); every
    /// kind its events can have must be listed.
    pub events: &'static [EventDoc],
}

/// One key of a system's `[knobs]` table, as `faultline list` shows it.
pub struct KnobDoc {
    /// The key, as written in `[knobs]`.
    pub name: &'static str,
    /// "duration", "probability", "count", "string", ...
    pub unit: &'static str,
    /// The value used when the key is absent, as a scenario file would write it.
    pub default: &'static str,
    /// What it changes, in a sentence.
    pub about: &'static str,
}

/// An invariant's name and promise, without its checker: what scenario
/// validation and `faultline list` need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvariantDoc {
    /// The name scenario files use.
    pub name: &'static str,
    /// What it promises, in a sentence.
    pub about: &'static str,
}

/// One kind of event a system reports, as `faultline list` shows it.
pub struct EventDoc {
    /// The dotted kind name (`breaker.open`), as [`SystemEvent::kind`] gives
    /// it and `[check] reached` names it.
    pub name: &'static str,
    /// When the system reports it, in a sentence.
    pub about: &'static str,
    /// The system noticed a fault on its own (a breaker opening, a failover
    /// starting): MTTD is measured from a fault's start to the first such event.
    pub detects: bool,
}

/// The harness's own invariant, checked for every system.
pub const LIVENESS: InvariantDoc = InvariantDoc {
    name: "liveness",
    about: "after the heal phase starts (every fault off), every request invoked later than [check] recover_within is served",
};

/// What a scenario is validated against: a configured system's hosts,
/// events, invariants and probe, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// The system's name ([`SystemDoc::name`]).
    pub system: &'static str,
    /// The configured system's hosts ([`System::hosts`]), pool included.
    pub hosts: Vec<String>,
    /// Hosts the system starts and stops itself.
    pub pool: Vec<String>,
    /// The event kinds its doc lists (what `[check] reached` may name).
    pub events: Vec<&'static str>,
    /// The system's invariants (the harness's `liveness` is added to these).
    pub invariants: Vec<InvariantDoc>,
    /// The invariants checked when a scenario names none.
    pub promised: Vec<&'static str>,
    /// Does the system have a health probe ([`System::probe_op`])? Without
    /// one, `[metrics] probe_interval` is an error.
    pub has_probe: bool,
    /// Effective knob values, for the run header.
    pub knobs: Vec<(String, String)>,
}

impl Shape {
    /// The shape of a configured system.
    pub fn of<S: System>(system: &S) -> Shape {
        Shape {
            system: S::doc().name,
            hosts: system.hosts(),
            pool: system.pool(),
            events: S::doc().events.iter().map(|e| e.name).collect(),
            invariants: S::invariants().iter().map(|i| InvariantDoc { name: i.name, about: i.about }).collect(),
            promised: system.promises(),
            has_probe: system.probe_op().is_some(),
            knobs: knob_values(system),
        }
    }
}

/// A configured system's fields as `(name, value)` text, from its serde form.
fn knob_values<S: Serialize>(system: &S) -> Vec<(String, String)> {
    match serde_json::to_value(system) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect(),
        Ok(other) => vec![("value".into(), other.to_string())],
        Err(error) => vec![("knobs".into(), format!("(not serializable: {error})"))],
    }
}
