//! The plan: a scenario's faults for one seed, resolved to concrete hosts and
//! times. Explicit `[[fault]]`s are copied; `[chaos]` generators are expanded
//! from their own seeded streams.
//!
//! A plan is plain, serialisable data and the only thing the runner takes
//! faults from: no fault is drawn while the simulation runs. So a plan can be
//! printed, replayed, edited and shrunk. This module draws randomness but runs
//! nothing.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fault::{Action, PlannedFault};
use crate::scenario::{client_host, FaultSpecKind, Generator, Scenario, Target, CHAOS_KINDS, PROBE_HOST};
use crate::seed::{self, Stream};
use crate::units::{format_duration, Dur, DurRange};

/// At most this many faults per chaos generator and run: an `every` far
/// below the duration is a mistake, not a reason to allocate without bound.
pub const GENERATOR_FAULTS_MAX: usize = 10_000;

/// How many of `CHAOS_KINDS` draw their swarm coins from [`Stream::Swarm`]:
/// the kinds there were when swarm testing came. Kinds appended since draw
/// from [`Stream::SwarmLater`], so old seeds keep their swarm subsets.
const SWARM_FIRST_KINDS: usize = 6;

/// The faults of one seed of a scenario, at concrete times on concrete hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The seed it was expanded for.
    pub seed: u64,
    /// The chaos generators switched on for this seed (all, unless swarm).
    pub generators: Vec<String>,
    /// Sorted by start time, then id.
    pub faults: Vec<PlannedFault>,
    /// End of the fault phase: every fault still on ends here.
    pub heal_at: Dur,
}

/// A fault starting or ending, as the runner applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanEvent {
    /// When, since the start of the run.
    pub at: Dur,
    /// Whether the fault starts or ends.
    pub edge: Edge,
    /// Index into [`Plan::faults`].
    pub fault: usize,
}

/// A fault's start or end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    /// The fault ends. Ends sort first, so back-to-back faults hand over cleanly.
    End,
    /// The fault starts.
    Start,
}

impl Plan {
    /// Every start and end, in the order the runner applies them. At one
    /// instant, ends come before starts (back-to-back faults hand over),
    /// except a zero-length fault's end, which follows its own start: a
    /// zero-length crash is a bounce, a zero-length link fault does nothing.
    pub fn events(&self) -> Vec<PlanEvent> {
        let mut events = Vec::with_capacity(self.faults.len() * 2);
        for (index, fault) in self.faults.iter().enumerate() {
            events.push(PlanEvent { at: fault.at, edge: Edge::Start, fault: index });
            if let Some(until) = fault.until {
                events.push(PlanEvent { at: until.max(fault.at), edge: Edge::End, fault: index });
            }
        }
        let rank = |event: &PlanEvent| {
            let fault = &self.faults[event.fault];
            match event.edge {
                Edge::End if fault.until.is_some_and(|u| u <= fault.at) => 2,
                Edge::End => 0,
                Edge::Start => 1,
            }
        };
        events.sort_by_key(|e| (e.at, rank(e), self.faults[e.fault].id));
        events
    }

    /// Expands `scenario`'s faults for `seed`.
    pub fn expand(scenario: &Scenario, seed: u64) -> Plan {
        let heal_at = scenario.duration;
        let clip = |end: Dur| if end > heal_at { heal_at } else { end };
        let mut faults = Vec::new();
        for spec in &scenario.faults {
            let (action, until) = match &spec.kind {
                FaultSpecKind::Partition { target, oneway } => {
                    let (a, b) = resolve_target(scenario, target);
                    (Action::Partition { a, b, oneway: *oneway }, Some(spec.length))
                }
                FaultSpecKind::Latency { target, latency } => {
                    let (a, b) = resolve_target(scenario, target);
                    (Action::Latency { a, b, latency: *latency }, Some(spec.length))
                }
                FaultSpecKind::Loss { target, rate } => {
                    let (a, b) = resolve_target(scenario, target);
                    (Action::Loss { a, b, rate: *rate }, Some(spec.length))
                }
                FaultSpecKind::Clog { target } => {
                    let (a, b) = resolve_target(scenario, target);
                    (Action::Clog { a, b }, Some(spec.length))
                }
                FaultSpecKind::Crash { hosts } => {
                    (Action::Crash { hosts: scenario.resolve_system(hosts) }, Some(spec.length))
                }
                FaultSpecKind::Restart { hosts } => (Action::Restart { hosts: scenario.resolve_system(hosts) }, None),
                FaultSpecKind::Blackhole { target, oneway } => {
                    let (a, b) = resolve_target(scenario, target);
                    (Action::Blackhole { a, b, oneway: *oneway }, Some(spec.length))
                }
                FaultSpecKind::Refuse { target } => {
                    let (a, b) = resolve_target(scenario, target);
                    (Action::Refuse { a, b }, Some(spec.length))
                }
                FaultSpecKind::PowerOff { hosts } => {
                    let hosts = scenario.resolve_system(hosts);
                    let peers = scenario.hosts.iter().filter(|h| !hosts.contains(h)).cloned().collect();
                    (Action::PowerOff { hosts, peers }, Some(spec.length))
                }
            };
            let until = until.map(|length| clip(length.map_or(heal_at, |l| Dur(spec.at.0 + l.0))));
            faults.push(PlannedFault { id: 0, origin: format!("fault[{}]", spec.index), at: spec.at, until, action });
        }

        // Each generator draws from a stream named by its kind (each kind
        // appears at most once), and the swarm draws one coin per kind in a
        // fixed order: removing one generator leaves the others' faults as
        // they were.
        let generators = &scenario.chaos.generators;
        let mut enabled: Vec<bool> = vec![true; generators.len()];
        if scenario.chaos.swarm && !generators.is_empty() {
            let mut rng = seed::rng(seed, Stream::Swarm);
            // The first six kinds' coins, then the fallback pick below, come
            // from the swarm stream as they always have; later kinds draw
            // their coins from a stream of their own.
            let mut later = seed::rng(seed, Stream::SwarmLater);
            let coins: Vec<bool> = (0..CHAOS_KINDS.len())
                .map(|kind| if kind < SWARM_FIRST_KINDS { &mut rng } else { &mut later }.random_bool(0.5))
                .collect();
            for (on, generator) in enabled.iter_mut().zip(generators) {
                *on = coins[kind_index(generator)];
            }
            if !enabled.contains(&true) {
                let pick = rng.random_range(0..generators.len());
                enabled[pick] = true;
            }
        }
        for (index, generator) in generators.iter().enumerate() {
            if enabled[index] {
                let mut rng = seed::rng(seed, Stream::Chaos(kind_index(generator) as u32));
                expand_generator(scenario, generator, heal_at, &mut rng, &mut faults);
            }
        }

        // Stable: at one instant, explicit faults keep their file order and
        // come before generated ones (the order they were pushed in).
        faults.sort_by_key(|f| f.at);
        for (id, fault) in faults.iter_mut().enumerate() {
            fault.id = id as u32;
        }
        Plan {
            seed,
            generators: generators
                .iter()
                .zip(&enabled)
                .filter(|(_, on)| **on)
                .map(|(g, _)| g.kind().to_string())
                .collect(),
            faults,
            heal_at,
        }
    }
}

/// A generator kind's fixed place in `CHAOS_KINDS`, which names its stream.
fn kind_index(generator: &Generator) -> usize {
    CHAOS_KINDS.iter().position(|(kind, _)| *kind == generator.kind()).expect("every generator kind is listed")
}

fn resolve_target(scenario: &Scenario, target: &Target) -> (Vec<String>, Vec<String>) {
    match target {
        Target::Isolate(patterns) => {
            let a = scenario.resolve(patterns);
            let b = scenario.hosts.iter().filter(|h| !a.contains(h)).cloned().collect();
            (a, b)
        }
        Target::Between(first, second) => (scenario.resolve(first), scenario.resolve(second)),
    }
}

fn exponential(rng: &mut ChaCha8Rng, mean: Dur) -> Dur {
    let seconds = seed::exponential(rng, mean.0.as_secs_f64());
    Dur(std::time::Duration::try_from_secs_f64(seconds).unwrap_or(Dur::MAX.0))
}

fn uniform(rng: &mut ChaCha8Rng, range: DurRange) -> Dur {
    let (low, high) = (range.min.as_nanos(), range.max.as_nanos());
    Dur(std::time::Duration::from_nanos(rng.random_range(low..=high)))
}

/// Two distinct hosts of `candidates`, or none if there are fewer than two.
fn random_link(rng: &mut ChaCha8Rng, candidates: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    if candidates.len() < 2 {
        return None;
    }
    let picked: Vec<&String> = candidates.choose_multiple(rng, 2).collect();
    Some((vec![picked[0].clone()], vec![picked[1].clone()]))
}

/// One host's down times, as (start, end): it alternates up and down times
/// independently of other hosts, the classic two-state (alternating
/// renewal) model of one server. Exponential up times of mean `mtbf` and
/// down times of mean `mttr`, drawn in that order; none starts at or after
/// `heal_at`.
fn up_and_down(rng: &mut ChaCha8Rng, mtbf: Dur, mttr: Dur, heal_at: Dur) -> Vec<(Dur, Dur)> {
    let mut out = Vec::new();
    let mut now = Dur::ZERO;
    for _ in 0..GENERATOR_FAULTS_MAX {
        now = Dur(now.0 + exponential(rng, mtbf).0);
        if now >= heal_at {
            break;
        }
        let down = exponential(rng, mttr);
        out.push((now, Dur(now.0 + down.0)));
        now = Dur(now.0 + down.0);
    }
    out
}

fn expand_generator(
    scenario: &Scenario,
    generator: &Generator,
    heal_at: Dur,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<PlannedFault>,
) {
    let origin = format!("chaos.{}", generator.kind());
    let clip = |end: Dur| if end > heal_at { heal_at } else { end };
    let mut push = |at: Dur, until: Option<Dur>, action: Action| {
        out.push(PlannedFault { id: 0, origin: origin.clone(), at, until: until.map(clip), action });
    };
    match generator {
        Generator::Crash { hosts, mtbf, mttr } => {
            for host in scenario.resolve_system(hosts) {
                for (at, until) in up_and_down(rng, *mtbf, *mttr, heal_at) {
                    push(at, Some(until), Action::Crash { hosts: vec![host.clone()] });
                }
            }
        }
        Generator::PowerOff { hosts, mtbf, mttr } => {
            for host in scenario.resolve_system(hosts) {
                let peers: Vec<String> = scenario.hosts.iter().filter(|h| **h != host).cloned().collect();
                for (at, until) in up_and_down(rng, *mtbf, *mttr, heal_at) {
                    push(at, Some(until), Action::PowerOff { hosts: vec![host.clone()], peers: peers.clone() });
                }
            }
        }
        Generator::Restart { hosts, every } => {
            let candidates = scenario.resolve_system(hosts);
            let mut now = Dur::ZERO;
            for _ in 0..GENERATOR_FAULTS_MAX {
                now = Dur(now.0 + exponential(rng, *every).0);
                if now >= heal_at {
                    break;
                }
                let host = candidates.choose(rng).expect("validated: patterns match some host").clone();
                push(now, None, Action::Restart { hosts: vec![host] });
            }
        }
        Generator::Partition { hosts, every, length }
        | Generator::Latency { hosts, every, length, .. }
        | Generator::Loss { hosts, every, length, .. }
        | Generator::Clog { hosts, every, length }
        | Generator::Blackhole { hosts, every, length } => {
            let candidates: Vec<String> = match hosts {
                Some(patterns) => scenario.resolve(patterns),
                None => scenario.hosts.clone(),
            }
            .into_iter()
            .filter(|h| h.as_str() != PROBE_HOST)
            .collect();
            let has_probe = scenario.hosts.iter().any(|h| h == PROBE_HOST);
            let mut now = Dur::ZERO;
            for _ in 0..GENERATOR_FAULTS_MAX {
                now = Dur(now.0 + exponential(rng, *every).0);
                if now >= heal_at {
                    break;
                }
                let lasting = uniform(rng, *length);
                let until = Some(Dur(now.0 + lasting.0));
                let Some(action) = link_action(generator, &candidates, rng) else { break };
                push(now, until, if has_probe { with_probe(action) } else { action });
            }
        }
    }
}

/// A random link fault of `generator`'s kind among `candidates`: a random
/// split in two for a partition or blackhole, one random link otherwise. `None` with
/// fewer than two hosts.
fn link_action(generator: &Generator, candidates: &[String], rng: &mut ChaCha8Rng) -> Option<Action> {
    if candidates.len() < 2 {
        return None;
    }
    Some(match generator {
        Generator::Partition { .. } => {
            let (a, b) = random_split(rng, candidates);
            Action::Partition { a, b, oneway: false }
        }
        Generator::Blackhole { .. } => {
            let (a, b) = random_split(rng, candidates);
            Action::Blackhole { a, b, oneway: false }
        }
        Generator::Latency { latency, .. } => {
            let (a, b) = random_link(rng, candidates)?;
            Action::Latency { a, b, latency: *latency }
        }
        Generator::Loss { rate, .. } => {
            let (a, b) = random_link(rng, candidates)?;
            Action::Loss { a, b, rate: *rate }
        }
        _ => {
            let (a, b) = random_link(rng, candidates)?;
            Action::Clog { a, b }
        }
    })
}

/// `candidates` (at least two) shuffled and cut in two non-empty groups,
/// each sorted.
fn random_split(rng: &mut ChaCha8Rng, candidates: &[String]) -> (Vec<String>, Vec<String>) {
    let mut shuffled = candidates.to_vec();
    shuffled.shuffle(rng);
    let split = rng.random_range(1..shuffled.len());
    let b = shuffled.split_off(split);
    let (mut a, mut b) = (shuffled, b);
    a.sort();
    b.sort();
    (a, b)
}

/// Puts the probe on `client-0`'s side of a link fault, so that it sees what
/// a client sees.
fn with_probe(action: Action) -> Action {
    let anchor = client_host(0);
    let attach = |mut a: Vec<String>, mut b: Vec<String>| {
        if a.contains(&anchor) {
            a.push(PROBE_HOST.to_string());
        } else if b.contains(&anchor) {
            b.push(PROBE_HOST.to_string());
        }
        (a, b)
    };
    match action {
        Action::Partition { a, b, oneway } => {
            let (a, b) = attach(a, b);
            Action::Partition { a, b, oneway }
        }
        Action::Latency { a, b, latency } => {
            let (a, b) = attach(a, b);
            Action::Latency { a, b, latency }
        }
        Action::Loss { a, b, rate } => {
            let (a, b) = attach(a, b);
            Action::Loss { a, b, rate }
        }
        Action::Clog { a, b } => {
            let (a, b) = attach(a, b);
            Action::Clog { a, b }
        }
        Action::Blackhole { a, b, oneway } => {
            let (a, b) = attach(a, b);
            Action::Blackhole { a, b, oneway }
        }
        other => other,
    }
}

/// Formats a plan as the run header shows it.
pub fn describe(plan: &Plan) -> Vec<String> {
    if plan.faults.is_empty() {
        return vec!["(no faults)".into()];
    }
    plan.faults.iter().map(|f| f.to_string()).collect()
}

/// A short summary: "3 faults (2 crash, 1 partition), heal at 30s".
pub fn summary(plan: &Plan) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for fault in &plan.faults {
        *counts.entry(fault.action.kind()).or_insert(0) += 1;
    }
    let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let noun = if plan.faults.len() == 1 { "fault" } else { "faults" };
    if kinds.is_empty() {
        format!("0 faults, heal at {}", format_duration(plan.heal_at.0))
    } else {
        format!("{} {noun} ({}), heal at {}", plan.faults.len(), kinds.join(", "), format_duration(plan.heal_at.0))
    }
}
