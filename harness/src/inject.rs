//! Applies a plan's fault starts and ends, and the system's pool requests, to
//! a turmoil `Sim`, between steps.
//!
//! Faults may overlap (two partitions over one link, a crash inside a crash),
//! so this keeps the set of active faults and derives every link's and host's
//! state from it: a link is partitioned while any active partition covers it,
//! a host is down while any active crash covers it or the system has stopped
//! it. Only changes reach turmoil. It knows nothing about the system under
//! test: what it did comes back as [`Happening`]s for the trace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use turmoil::{Protocol, Segment, Sim};

use crate::fault::{Action, PlannedFault};
use crate::history::Happening;
use crate::units::DurRange;

/// A link between two hosts, by name, lower name first.
type Pair = (String, String);

#[derive(Clone, Debug, PartialEq)]
struct LinkState {
    /// Messages from `pair.0` to `pair.1` are dropped.
    cut_forward: bool,
    /// Messages from `pair.1` to `pair.0` are dropped.
    cut_backward: bool,
    held: bool,
    /// A blackhole or power-off silences messages from `pair.0` to `pair.1`:
    /// held, and discarded at its end.
    mute_forward: bool,
    /// A blackhole or power-off silences messages from `pair.1` to `pair.0`.
    mute_backward: bool,
    latency: DurRange,
    loss: f64,
}

impl LinkState {
    /// Is either direction silenced (the link held in turmoil)?
    fn muted(&self) -> bool {
        self.mute_forward || self.mute_backward
    }

    /// When exactly one direction is silenced and no clog holds the link,
    /// the other direction, which flows: `Some(true)` for `pair.0` to
    /// `pair.1`. turmoil holds a link both ways at once, so that
    /// direction's held messages must be handed back for delivery.
    fn open_forward(&self) -> Option<bool> {
        match (self.mute_forward, self.mute_backward, self.held) {
            (true, false, false) => Some(false),
            (false, true, false) => Some(true),
            _ => None,
        }
    }
}

/// The state of the simulated network and hosts as the plan has made it.
pub struct FaultState {
    base_latency: DurRange,
    /// Active faults by plan index (a `BTreeMap`, so derivation order is fixed).
    active: BTreeMap<usize, PlannedFault>,
    links: BTreeMap<Pair, LinkState>,
    /// Active crash faults per host.
    down: BTreeMap<String, u32>,
    /// Hosts of the system's pool that it has stopped (or never started).
    stopped: BTreeSet<String>,
    /// The links that a one-way blackhole silences in one direction only:
    /// the (from, to) addresses of the direction that flows, whose held
    /// messages [`FaultState::pump`] hands to turmoil before each step.
    pumped: BTreeMap<Pair, (IpAddr, IpAddr)>,
}

/// What a change did, for the trace.
pub type Applied<E> = Vec<Happening<E>>;

fn pair(a: &str, b: &str) -> Pair {
    if a < b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

fn pairs(a: &[String], b: &[String]) -> Vec<Pair> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if x != y {
                out.push(pair(x, y));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

impl FaultState {
    /// No fault active, every host running, every link at `base_latency`
    /// (the scenario's `[network] latency`).
    pub fn new(base_latency: DurRange) -> FaultState {
        FaultState {
            base_latency,
            active: BTreeMap::new(),
            links: BTreeMap::new(),
            down: BTreeMap::new(),
            stopped: BTreeSet::new(),
            pumped: BTreeMap::new(),
        }
    }

    fn healthy(&self) -> LinkState {
        LinkState {
            cut_forward: false,
            cut_backward: false,
            held: false,
            mute_forward: false,
            mute_backward: false,
            latency: self.base_latency,
            loss: 0.0,
        }
    }

    /// The state of `link` that the active faults call for.
    fn desired(&self, link: &Pair) -> LinkState {
        let mut state = self.healthy();
        for fault in self.active.values() {
            match &fault.action {
                Action::Refuse { a, b } if covers(a, b, link) => {
                    state.cut_forward = true;
                    state.cut_backward = true;
                }
                Action::Blackhole { a, b, oneway: false } | Action::PowerOff { hosts: a, peers: b }
                    if covers(a, b, link) =>
                {
                    state.mute_forward = true;
                    state.mute_backward = true;
                }
                Action::Blackhole { a, b, oneway: true } => {
                    state.mute_forward |= a.contains(&link.0) && b.contains(&link.1);
                    state.mute_backward |= a.contains(&link.1) && b.contains(&link.0);
                }
                Action::Partition { a, b, oneway } => {
                    let forward = a.contains(&link.0) && b.contains(&link.1);
                    let backward = a.contains(&link.1) && b.contains(&link.0);
                    if *oneway {
                        state.cut_forward |= forward;
                        state.cut_backward |= backward;
                    } else if forward || backward {
                        state.cut_forward = true;
                        state.cut_backward = true;
                    }
                }
                Action::Latency { a, b, latency } if covers(a, b, link) => {
                    // The latest-started active latency fault wins.
                    state.latency = *latency;
                }
                Action::Loss { a, b, rate } if covers(a, b, link) => state.loss = state.loss.max(*rate),
                Action::Clog { a, b } if covers(a, b, link) => state.held = true,
                _ => {}
            }
        }
        state
    }

    /// Is `host`'s software running (no crash covers it, the pool has not stopped it)?
    fn running(&self, host: &str) -> bool {
        self.down.get(host).copied().unwrap_or(0) == 0 && !self.stopped.contains(host)
    }

    /// Starts fault `index` of the plan.
    pub fn start<E>(&mut self, sim: &mut Sim<'_>, index: usize, fault: &PlannedFault) -> Applied<E> {
        let mut applied = vec![Happening::FaultStart { fault: fault.id, what: fault.to_string() }];
        match &fault.action {
            Action::Crash { hosts } => {
                self.active.insert(index, fault.clone());
                self.crash(sim, hosts, &mut applied);
            }
            Action::PowerOff { hosts, peers } => {
                // Silence the links first: the closes the crash sends are held,
                // then discarded at the end, so peers see nothing.
                self.active.insert(index, fault.clone());
                self.sync_links(sim, &pairs(hosts, peers));
                self.crash(sim, hosts, &mut applied);
            }
            Action::Restart { hosts } => {
                for host in hosts {
                    if self.running(host) {
                        sim.bounce(host.as_str());
                        applied.push(Happening::HostRestart { host: host.clone() });
                    } else {
                        applied.push(Happening::HostRestartSkipped { host: host.clone() });
                    }
                }
            }
            Action::Partition { a, b, .. }
            | Action::Latency { a, b, .. }
            | Action::Loss { a, b, .. }
            | Action::Clog { a, b }
            | Action::Blackhole { a, b, .. }
            | Action::Refuse { a, b } => {
                let links = pairs(a, b);
                self.active.insert(index, fault.clone());
                self.sync_links(sim, &links);
            }
        }
        applied
    }

    /// Takes `hosts` down (one more crash covering each), crashing those running.
    fn crash<E>(&mut self, sim: &mut Sim<'_>, hosts: &[String], applied: &mut Applied<E>) {
        for host in hosts {
            let was_running = self.running(host);
            *self.down.entry(host.clone()).or_insert(0) += 1;
            if was_running {
                sim.crash(host.as_str());
                applied.push(Happening::HostCrash { host: host.clone() });
            }
        }
    }

    /// Lifts one crash from each of `hosts`, restarting those no longer held down.
    fn uncrash<E>(&mut self, sim: &mut Sim<'_>, hosts: &[String], applied: &mut Applied<E>) {
        for host in hosts {
            let count = self.down.get_mut(host).expect("a crashed host has a down count");
            assert!(*count > 0, "down count underflow for {host}");
            *count -= 1;
            if self.running(host) {
                sim.bounce(host.as_str());
                applied.push(Happening::HostRestart { host: host.clone() });
            }
        }
    }

    /// Ends fault `index`.
    pub fn end<E>(&mut self, sim: &mut Sim<'_>, index: usize) -> Applied<E> {
        let Some(fault) = self.active.remove(&index) else {
            return Vec::new();
        };
        let mut applied = vec![Happening::FaultEnd { fault: fault.id, what: fault.to_string() }];
        match &fault.action {
            Action::Crash { hosts } => self.uncrash(sim, hosts, &mut applied),
            Action::PowerOff { hosts, peers } => {
                // Discard what the dead hosts' links held, then power them on.
                self.sync_links(sim, &pairs(hosts, peers));
                self.uncrash(sim, hosts, &mut applied);
            }
            Action::Restart { .. } => unreachable!("restarts are instantaneous and never active"),
            Action::Partition { a, b, .. }
            | Action::Latency { a, b, .. }
            | Action::Loss { a, b, .. }
            | Action::Clog { a, b }
            | Action::Blackhole { a, b, .. }
            | Action::Refuse { a, b } => {
                let links = pairs(a, b);
                self.sync_links(sim, &links);
            }
        }
        applied
    }

    /// Stops a host of the system's pool (a no-op if it is stopped already).
    /// A host a crash holds down is only marked: it stays down when the crash ends.
    pub fn pool_stop<E>(&mut self, sim: &mut Sim<'_>, host: &str) -> Applied<E> {
        let was_running = self.running(host);
        if !self.stopped.insert(host.to_string()) {
            return Vec::new();
        }
        if was_running {
            sim.crash(host);
        }
        vec![Happening::PoolStop { host: host.to_string() }]
    }

    /// Starts a host of the system's pool (a no-op if the pool has it up). A
    /// host a crash holds down starts when the crash ends.
    pub fn pool_start<E>(&mut self, sim: &mut Sim<'_>, host: &str) -> Applied<E> {
        if !self.stopped.remove(host) {
            return Vec::new();
        }
        if self.running(host) {
            sim.bounce(host);
        }
        vec![Happening::PoolStart { host: host.to_string() }]
    }

    /// True when no fault is active: every link healthy and every host a
    /// fault touched up again.
    pub fn is_healed(&self) -> bool {
        let healthy = self.healthy();
        self.active.is_empty() && self.down.values().all(|&c| c == 0) && self.links.values().all(|l| *l == healthy)
    }

    /// Brings each link's turmoil state to what the active faults call for.
    fn sync_links(&mut self, sim: &mut Sim<'_>, links: &[Pair]) {
        for link in links {
            let desired = self.desired(link);
            let current = self.links.get(link).cloned().unwrap_or_else(|| self.healthy());
            if desired == current {
                continue;
            }
            let (a, b) = (link.0.as_str(), link.1.as_str());
            if desired.muted() || current.muted() {
                set_silenced_link(sim, a, b, &current, &desired);
            } else {
                set_link(sim, a, b, &current, &desired);
            }
            match desired.open_forward() {
                Some(true) => self.pumped.insert(link.clone(), (sim.lookup(a), sim.lookup(b))),
                Some(false) => self.pumped.insert(link.clone(), (sim.lookup(b), sim.lookup(a))),
                None => self.pumped.remove(link),
            };
            if desired.latency != current.latency {
                sim.set_link_latency(a, b, desired.latency.min.0);
                sim.set_link_max_message_latency(a, b, desired.latency.max.0);
            }
            if desired.loss != current.loss {
                sim.set_link_fail_rate(a, b, desired.loss);
            }
            self.links.insert(link.clone(), desired);
        }
    }

    /// Call before every step. On each link a one-way blackhole silences in
    /// one direction only, turmoil holds both directions; this hands the
    /// flowing direction's held data, FINs and RSTs back to turmoil for
    /// delivery in the coming step (`SentRef::deliver`, which delivers at
    /// the next tick: the link's latency is not drawn for them). SYNs stay
    /// held in both directions: in a real network the SYN-ACK would cross
    /// the silenced direction, so no connection opens either way, and a
    /// connect hangs until its caller's timeout. Nothing is done, and
    /// nothing drawn, when no one-way blackhole is on.
    pub fn pump(&self, sim: &Sim<'_>) {
        if self.pumped.is_empty() {
            return;
        }
        sim.links(|links| {
            for link in links {
                let (x, y) = link.pair();
                let Some(&(from, to)) =
                    self.pumped.values().find(|(from, to)| (*from, *to) == (x, y) || (*from, *to) == (y, x))
                else {
                    continue;
                };
                for sent in link {
                    let (src, dst) = sent.pair();
                    let opening = matches!(sent.protocol(), Protocol::Tcp(Segment::Syn(_)));
                    if src.ip() == from && dst.ip() == to && !opening {
                        sent.deliver();
                    }
                }
            }
        });
    }
}

/// Brings a link with no blackhole, before or after, from `current` to
/// `desired` (partitions and clogs; the calls every kind but blackhole and
/// power-off has made since the first release, so their runs stay as they were).
fn set_link(sim: &mut Sim<'_>, a: &str, b: &str, current: &LinkState, desired: &LinkState) {
    // turmoil keeps one state per direction (healthy, held or cut), and
    // hold/release act on both directions at once: set the hold first,
    // then cut or mend each direction.
    if desired.held {
        if !current.held || current.cut_forward != desired.cut_forward || current.cut_backward != desired.cut_backward {
            sim.hold(a, b);
        }
    } else if current.held {
        sim.release(a, b);
    }
    let hold_reset = desired.held || current.held;
    for (cut_now, cut_wanted, from, to) in
        [(current.cut_forward, desired.cut_forward, a, b), (current.cut_backward, desired.cut_backward, b, a)]
    {
        if cut_wanted {
            sim.partition_oneway(from, to);
        } else if cut_now && !hold_reset {
            sim.repair_oneway(from, to);
        }
    }
}

/// Brings a link that a blackhole covers, now or before this change, from
/// `current` to `desired`. While silenced the link holds every message
/// (turmoil's `hold`; one way, [`FaultState::pump`] hands the flowing
/// direction's back); when the last blackhole over it ends, a `partition`
/// drops everything held or in flight both ways and the link is set afresh:
/// held again if a clog still covers it, else repaired (not released, which
/// would deliver). Cuts are applied last, as in [`set_link`].
fn set_silenced_link(sim: &mut Sim<'_>, a: &str, b: &str, current: &LinkState, desired: &LinkState) {
    assert!(current.muted() || desired.muted(), "only links a blackhole covers come here");
    if current.muted() && !desired.muted() {
        sim.partition(a, b);
    } else {
        // A direction no longer silenced while the other still is (a
        // one-way blackhole ended under another): discard what it held
        // (`partition_oneway` drops its sender's messages), then hold again.
        for (was, is, from, to) in
            [(current.mute_forward, desired.mute_forward, a, b), (current.mute_backward, desired.mute_backward, b, a)]
        {
            if was && !is {
                sim.partition_oneway(from, to);
            }
        }
    }
    if desired.muted() || desired.held {
        sim.hold(a, b);
    } else {
        sim.repair(a, b);
    }
    for (cut_wanted, from, to) in [(desired.cut_forward, a, b), (desired.cut_backward, b, a)] {
        if cut_wanted {
            sim.partition_oneway(from, to);
        }
    }
}

fn covers(a: &[String], b: &[String], link: &Pair) -> bool {
    (a.contains(&link.0) && b.contains(&link.1)) || (a.contains(&link.1) && b.contains(&link.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_link_silenced_one_way_and_not_clogged_has_a_flowing_direction() {
        let state = FaultState::new(DurRange { min: crate::units::Dur::ZERO, max: crate::units::Dur::ZERO });
        let link = |forward, backward, held| LinkState {
            mute_forward: forward,
            mute_backward: backward,
            held,
            ..state.healthy()
        };
        assert_eq!(link(true, false, false).open_forward(), Some(false));
        assert_eq!(link(false, true, false).open_forward(), Some(true));
        for (forward, backward, held) in
            [(true, true, false), (false, false, false), (true, false, true), (false, true, true)]
        {
            assert_eq!(link(forward, backward, held).open_forward(), None, "{forward} {backward} {held}");
        }
        assert!(link(true, false, false).muted() && !link(false, false, true).muted());
    }

    #[test]
    fn pairs_are_unordered_and_skip_self_links() {
        let a = vec!["b".to_string(), "a".to_string()];
        let b = vec!["a".to_string(), "c".to_string()];
        assert_eq!(pairs(&a, &b), vec![pair("a", "b"), pair("a", "c"), pair("b", "c")]);
    }
}
