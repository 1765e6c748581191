//! A fault resolved to concrete hosts and times: plain data shared by the
//! planner (which makes them), the injector (which applies them to turmoil),
//! recordings (which keep them) and checkers (which read them).
//!
//! Nothing here draws randomness, runs a simulation or knows a system.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::Nanos;
use crate::units::{Dur, DurRange};

/// One fault of a plan, at a concrete time, on concrete hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// Its number in the plan, from 0 in start order: trace entries
    /// (`FaultStart`, `FaultEnd`) and printed plans name the fault by it.
    pub id: u32,
    /// Where it came from: `fault[2]` (the third `[[fault]]`) or `chaos.crash`.
    pub origin: String,
    /// When it starts, counted from the start of the run (the `[[fault]]` key
    /// `at`, or a generator's draw).
    pub at: Dur,
    /// When it ends (at the latest the heal phase); `None` for an instantaneous restart.
    pub until: Option<Dur>,
    /// What it does and to which hosts.
    pub action: Action,
}

impl PlannedFault {
    /// Its start, in nanoseconds since the run started.
    pub fn start(&self) -> Nanos {
        self.at.as_nanos()
    }

    /// Its end in nanoseconds (the start for an instantaneous restart).
    pub fn end(&self) -> Nanos {
        self.until.map_or(self.start(), Dur::as_nanos)
    }

    /// Does it act on `host` (a crash or restart of it, or a link fault with
    /// it on either side)?
    pub fn touches(&self, host: &str) -> bool {
        match &self.action {
            Action::Crash { hosts } | Action::Restart { hosts } | Action::PowerOff { hosts, .. } => {
                hosts.iter().any(|h| h == host)
            }
            Action::Partition { a, b, .. }
            | Action::Latency { a, b, .. }
            | Action::Loss { a, b, .. }
            | Action::Clog { a, b }
            | Action::Blackhole { a, b, .. }
            | Action::Refuse { a, b } => a.iter().chain(b).any(|h| h == host),
        }
    }
}

/// A fault resolved to hosts. Link faults act on every link between a host
/// of `a` and a host of `b` (from `a` to `b` only, for a one-way partition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Messages on the links are dropped, in flight ones too (turmoil's
    /// `partition`, or `partition_oneway`).
    Partition {
        /// One side: host names.
        a: Vec<String>,
        /// The other side: host names.
        b: Vec<String>,
        /// Cut only messages from `a` to `b` (the `[[fault]]` key `oneway`).
        oneway: bool,
    },
    /// The links' latency range becomes `latency` while the fault lasts; of
    /// two latency faults on one link, the later-started wins.
    Latency {
        /// One side: host names.
        a: Vec<String>,
        /// The other side: host names.
        b: Vec<String>,
        /// The one-way latency of each message on the links, drawn from this range.
        latency: DurRange,
    },
    /// Each message on the links fails with probability `rate` (turmoil's
    /// per-link `fail_rate`); of two loss faults on one link, the higher rate wins.
    Loss {
        /// One side: host names.
        a: Vec<String>,
        /// The other side: host names.
        b: Vec<String>,
        /// The chance that a message fails, from 0 to 1.
        rate: f64,
    },
    /// Messages on the links are held, then all delivered when the fault ends
    /// (turmoil's `hold` and `release`).
    Clog {
        /// One side: host names.
        a: Vec<String>,
        /// The other side: host names.
        b: Vec<String>,
    },
    /// The hosts' software stops and loses its memory and unsynced disk
    /// writes; it starts again when the fault ends.
    Crash {
        /// The hosts that go down.
        hosts: Vec<String>,
    },
    /// The hosts' software is stopped and started at once (turmoil's
    /// `bounce`); a host that is down is skipped.
    Restart {
        /// The hosts restarted.
        hosts: Vec<String>,
    },
    /// Messages on the links vanish without a word: connects and requests
    /// hang until their callers' own timeouts, as behind a real partition.
    /// turmoil's `hold` while it lasts; at its end a `partition` then a
    /// `repair` discard what was held, undelivered. One way, only messages
    /// from `a` to `b` vanish: the injector hands the other direction's
    /// held data to turmoil for delivery before every step
    /// (`Sim::links`), and keeps connection openings (SYNs) held both ways,
    /// since a handshake needs both directions.
    Blackhole {
        /// One side: host names.
        a: Vec<String>,
        /// The other side: host names.
        b: Vec<String>,
        /// Silence only messages from `a` to `b` (the `[[fault]]` key `oneway`).
        #[serde(default, skip_serializing_if = "is_false")]
        oneway: bool,
    },
    /// Connects are refused at once and messages in flight are dropped: a
    /// closed port, a process that is down on a host that still answers.
    /// The same turmoil calls as a two-way `partition` (whose meaning is
    /// kept), under its own name.
    Refuse {
        /// One side: host names.
        a: Vec<String>,
        /// The other side: host names.
        b: Vec<String>,
    },
    /// The hosts lose power: a blackhole on every link between them and
    /// `peers`, then a crash, so that peers see nothing (no close, no
    /// refusal), where a `crash` is a kill -9 whose closes peers see at
    /// once. At its end the held messages are discarded and the hosts start.
    #[serde(rename = "power-off")]
    PowerOff {
        /// The hosts that lose power.
        hosts: Vec<String>,
        /// Every other host: the far ends of the blackholed links.
        peers: Vec<String>,
    },
}

impl Action {
    /// Its kind as scenario files name it (`partition`, `crash`, ...), as in
    /// the `[[fault]]` key `kind` and serialised plans.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Partition { .. } => "partition",
            Action::Latency { .. } => "latency",
            Action::Loss { .. } => "loss",
            Action::Clog { .. } => "clog",
            Action::Crash { .. } => "crash",
            Action::Restart { .. } => "restart",
            Action::Blackhole { .. } => "blackhole",
            Action::Refuse { .. } => "refuse",
            Action::PowerOff { .. } => "power-off",
        }
    }

    /// The two sides of a link fault; `None` for crashes, restarts and
    /// power-offs (which act on hosts, their links as a consequence).
    pub fn sides(&self) -> Option<(&[String], &[String])> {
        match self {
            Action::Partition { a, b, .. }
            | Action::Latency { a, b, .. }
            | Action::Loss { a, b, .. }
            | Action::Clog { a, b }
            | Action::Blackhole { a, b, .. }
            | Action::Refuse { a, b } => Some((a, b)),
            Action::Crash { .. } | Action::Restart { .. } | Action::PowerOff { .. } => None,
        }
    }

    /// The links whose messages it silences (held, then discarded): a
    /// blackhole's, or every link of a powered-off host.
    pub fn silenced(&self) -> Option<(&[String], &[String])> {
        match self {
            Action::Blackhole { a, b, .. } => Some((a, b)),
            Action::PowerOff { hosts, peers } => Some((hosts, peers)),
            _ => None,
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |hosts: &[String]| format!("[{}]", hosts.join(", "));
        match self {
            Action::Partition { a, b, oneway: false } => write!(f, "partition {} | {}", group(a), group(b)),
            Action::Partition { a, b, oneway: true } => write!(f, "partition {} -> {}", group(a), group(b)),
            Action::Latency { a, b, latency } => write!(f, "latency {latency} {} | {}", group(a), group(b)),
            Action::Loss { a, b, rate } => write!(f, "loss {rate} {} | {}", group(a), group(b)),
            Action::Clog { a, b } => write!(f, "clog {} | {}", group(a), group(b)),
            Action::Crash { hosts } => write!(f, "crash {}", group(hosts)),
            Action::Restart { hosts } => write!(f, "restart {}", group(hosts)),
            Action::Blackhole { a, b, oneway: false } => write!(f, "blackhole {} | {}", group(a), group(b)),
            Action::Blackhole { a, b, oneway: true } => write!(f, "blackhole {} -> {}", group(a), group(b)),
            Action::Refuse { a, b } => write!(f, "refuse {} | {}", group(a), group(b)),
            Action::PowerOff { hosts, .. } => write!(f, "power-off {}", group(hosts)),
        }
    }
}

impl fmt::Display for PlannedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = match self.until {
            Some(until) => format!("{}..{}", self.at, until),
            None => format!("{}", self.at),
        };
        write!(f, "#{:<3} {:<16} {} ({})", self.id, when, self.action, self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_touches_the_hosts_it_names_on_either_side() {
        let fault = PlannedFault {
            id: 0,
            origin: "fault[0]".into(),
            at: Dur::from_secs(1),
            until: Some(Dur::from_secs(3)),
            action: Action::Partition { a: vec!["db".into()], b: vec!["app-1".into()], oneway: true },
        };
        assert!(fault.touches("db") && fault.touches("app-1") && !fault.touches("cache"));
        assert_eq!((fault.start(), fault.end()), (1_000_000_000, 3_000_000_000));
        let restart = PlannedFault { action: Action::Restart { hosts: vec!["db".into()] }, until: None, ..fault };
        assert_eq!(restart.end(), restart.start());
        assert!(restart.action.sides().is_none());
    }
}
