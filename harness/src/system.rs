//! The narrow waist between faultline and a system under test.
//!
//! A system plugs in with the [`System`] trait (its hosts, its workload, its
//! invariants) and a [`SystemEntry`] in the [`Registry`] that the CLI and the
//! tests build. The harness never names a concrete system: it only sees these
//! traits. A system never touches `Sim`, fault functions or an unseeded RNG:
//! its hosts get a seeded RNG and an event sink in a [`HostContext`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::InputError;
use crate::history::{EventSink, History, Outcome, TraceEvent, Violation};
use crate::plan::Plan;
use crate::run::{RunOptions, RunReport};
use crate::scenario::{Knobs, Scenario};

/// A future that runs on one simulated host (no `Send`: hosts are single-threaded).
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What a host's software returns; an `Err` fails the run.
pub type HostResult = Result<(), Box<dyn std::error::Error>>;

/// A system under test, configured from a scenario's `[knobs]`.
///
/// `Arc<Self>` receivers let host and client futures keep the configuration
/// without borrowing it: turmoil calls a host's constructor again on every
/// restart, long after `start` returned.
pub trait System: Send + Sync + Serialize + 'static {
    /// One client operation ("read key 3", "echo 0x2a").
    type Op: Clone + Debug + Serialize + 'static;
    /// What a successful operation returns.
    type Res: Clone + Debug + Serialize + 'static;

    /// Host names, in a fixed order. They must not start with "client-"
    /// (the workload clients' names).
    fn hosts(&self) -> Vec<String>;

    /// The software of host `context.name`. Called at start and again on each
    /// restart, with a fresh RNG stream per incarnation. State that must
    /// survive a crash does not exist: memory is lost, as on a real crash.
    fn host(self: &Arc<Self>, context: HostContext) -> LocalFuture<HostResult>;

    /// The next operation of client `client`, drawn from that client's own
    /// stream (so one client's choices never shift another's).
    fn next_op(&self, client: u32, rng: &mut ChaCha8Rng) -> Self::Op;

    /// The operation's kind, for per-kind figures ("read", "write").
    fn op_kind(&self, op: &Self::Op) -> &'static str;

    /// A health probe: the operation the harness sends every
    /// `[metrics] probe_interval` from its own `probe` host to measure time
    /// availability, outages and MTTR precisely. `None` (the default) means
    /// no probe: the time view then comes from windows of the request stream.
    fn probe_op(&self) -> Option<Self::Op> {
        None
    }

    /// Performs one operation from a workload client. The harness enforces the
    /// deadline by dropping this future; it must not block the thread.
    fn call(self: &Arc<Self>, client: ClientContext, op: Self::Op) -> LocalFuture<Outcome<Self::Res>>;

    /// Checks one of the system's invariants over a finished run. Must be a
    /// pure function of its arguments (no I/O, no time, no randomness).
    fn check(&self, invariant: &str, history: &History<Self::Op, Self::Res>, trace: &[TraceEvent]) -> Vec<Violation>;

    /// Figures of the system's own ("stampede_factor", "hit_ratio"), from a
    /// finished run; shown with the run's metrics and summarized across seeds.
    /// Pure, like `check`. None by default.
    fn figures(&self, _history: &History<Self::Op, Self::Res>, _trace: &[TraceEvent]) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// What a host's software gets from the harness.
pub struct HostContext {
    pub name: String,
    /// 0 at the first start, then +1 on each restart.
    pub incarnation: u32,
    /// This host's own stream, seeded from the run's seed, the host and the incarnation.
    pub rng: ChaCha8Rng,
    /// Reports system events ("breaker.open") into the trace.
    pub events: EventSink,
}

/// What a workload client's call gets from the harness.
#[derive(Clone)]
pub struct ClientContext {
    pub index: u32,
    pub name: String,
    pub events: EventSink,
}

/// Documentation of a system, shown by `faultline list` and used to validate
/// scenario files (invariant and event names).
pub struct SystemDoc {
    pub name: &'static str,
    pub about: &'static str,
    pub hosts: &'static str,
    pub knobs: &'static [KnobDoc],
    pub invariants: &'static [InvariantDoc],
    /// Event kinds the system reports (usable in `[check] reached`).
    pub events: &'static [EventDoc],
}

pub struct KnobDoc {
    pub name: &'static str,
    /// "duration", "probability", "count", "string", ...
    pub unit: &'static str,
    pub default: &'static str,
    pub about: &'static str,
}

pub struct InvariantDoc {
    pub name: &'static str,
    pub about: &'static str,
}

pub struct EventDoc {
    pub name: &'static str,
    pub about: &'static str,
    /// The system noticed a fault on its own (a breaker opening, a failover
    /// starting): MTTD is measured from a fault's start to the first such event.
    pub detects: bool,
}

/// Invariants that the harness checks for every system.
pub const HARNESS_INVARIANTS: &[InvariantDoc] = &[InvariantDoc {
    name: "liveness",
    about: "after the heal phase starts (every fault off), every request invoked later than [check] recover_within is served",
}];

/// A configured system with its types erased, as a scenario holds it.
pub trait Configured: Send + Sync {
    fn hosts(&self) -> Vec<String>;
    /// Effective knob values, for the run header.
    fn knobs(&self) -> Vec<(String, String)>;
    /// Event kinds the system reports.
    fn events(&self) -> Vec<&'static str>;
    /// Does the system declare a health probe?
    fn has_probe(&self) -> bool;
    /// Runs one seed of `scenario` with `plan` (see `run.rs`).
    fn run(&self, scenario: &Scenario, plan: &Plan, options: &RunOptions) -> RunReport;
}

/// Adapts a typed [`System`] to [`Configured`].
pub struct Erased<S: System> {
    pub system: Arc<S>,
    pub doc: &'static SystemDoc,
}

impl<S: System> Configured for Erased<S> {
    fn hosts(&self) -> Vec<String> {
        self.system.hosts()
    }

    fn knobs(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(&*self.system).expect("a system's knobs serialize to JSON");
        match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(key, value)| {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, text)
                })
                .collect(),
            other => vec![("value".into(), other.to_string())],
        }
    }

    fn events(&self) -> Vec<&'static str> {
        self.doc.events.iter().map(|e| e.name).collect()
    }

    fn has_probe(&self) -> bool {
        self.system.probe_op().is_some()
    }

    fn run(&self, scenario: &Scenario, plan: &Plan, options: &RunOptions) -> RunReport {
        crate::run::run_system(&self.system, self.doc, scenario, plan, options)
    }
}

/// A system as the registry knows it: its doc and how to configure it.
pub struct SystemEntry {
    pub doc: &'static SystemDoc,
    /// Validates `[knobs]` and builds the configured system.
    pub configure: fn(&Knobs<'_>) -> Result<Arc<dyn Configured>, InputError>,
}

/// Wraps a configured typed system for a [`SystemEntry::configure`].
pub fn erase<S: System>(system: S, doc: &'static SystemDoc) -> Arc<dyn Configured> {
    Arc::new(Erased { system: Arc::new(system), doc })
}

/// The systems a binary knows, by name.
#[derive(Default)]
pub struct Registry {
    systems: BTreeMap<&'static str, SystemEntry>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn register(&mut self, entry: SystemEntry) {
        let name = entry.doc.name;
        assert!(!name.is_empty(), "a system needs a name");
        let previous = self.systems.insert(name, entry);
        assert!(previous.is_none(), "system {name:?} registered twice");
    }

    pub fn get(&self, name: &str) -> Option<&SystemEntry> {
        self.systems.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.systems.keys().copied()
    }

    pub fn entries(&self) -> impl Iterator<Item = &SystemEntry> {
        self.systems.values()
    }
}
