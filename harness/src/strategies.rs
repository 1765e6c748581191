//! proptest strategies over a scenario: random fault plans and workloads,
//! so a test can write `proptest!` over a system and get proptest's own
//! shrinking (a failing plan shrinks toward fewer, shorter faults).
//!
//! Enabled by the harness's `proptest` feature.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::subsequence;

use crate::fault::{Action, PlannedFault};
use crate::plan::Plan;
use crate::registry::Loaded;
use crate::scenario::{Load, Scenario, PROBE_HOST};
use crate::units::{Dur, DurRange, Rate};

fn ms(value: u64) -> Dur {
    Dur(Duration::from_millis(value))
}

/// Two sides of a link fault: a non-empty proper subset of `hosts`, and the rest.
fn sides(hosts: Vec<String>) -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    let n = hosts.len();
    assert!(n >= 2, "a link fault needs two hosts");
    subsequence(hosts.clone(), 1..n).prop_map(move |a| {
        let b = hosts.iter().filter(|h| !a.contains(h)).cloned().collect();
        (a, b)
    })
}

/// One fault inside `scenario`'s fault phase (whole milliseconds). With
/// `targets`, every fault involves one of those hosts: link faults cut them
/// off from the rest, crashes and restarts hit only them.
pub fn fault(scenario: &Scenario, targets: Option<&[&str]>) -> impl Strategy<Value = PlannedFault> {
    let all: Vec<String> = scenario.hosts.iter().filter(|h| h.as_str() != PROBE_HOST).cloned().collect();
    let (hosts, system_hosts) = match targets {
        None => (all, scenario.system_hosts.clone()),
        Some(names) => {
            let chosen: Vec<String> =
                scenario.system_hosts.iter().filter(|h| names.contains(&h.as_str())).cloned().collect();
            assert!(!chosen.is_empty(), "targets name some of the system's hosts");
            (all, chosen)
        }
    };
    let isolate = targets.is_some();
    let phase_ms = u64::try_from(scenario.duration.0.as_millis()).expect("a phase under 2^64 ms").max(2);
    let timing = (0..phase_ms - 1).prop_flat_map(move |at| (Just(at), 1..=phase_ms - at));
    // With targets, a link fault cuts one target from every other host.
    let link = if isolate {
        let (targets, all) = (system_hosts.clone(), hosts.clone());
        proptest::sample::select(targets)
            .prop_map(move |target| (vec![target.clone()], all.iter().filter(|h| **h != target).cloned().collect()))
            .boxed()
    } else {
        sides(hosts).boxed()
    };
    let action = prop_oneof![
        (link.clone(), any::<bool>()).prop_map(|((a, b), oneway)| Action::Partition { a, b, oneway }),
        (link.clone(), 0u64..300, 0u64..300).prop_map(|((a, b), low, extra)| Action::Latency {
            a,
            b,
            latency: DurRange { min: ms(low), max: ms(low + extra) },
        }),
        (link.clone(), 0.0f64..=1.0).prop_map(|((a, b), rate)| Action::Loss { a, b, rate }),
        link.prop_map(|(a, b)| Action::Clog { a, b }),
        subsequence(system_hosts.clone(), 1..=system_hosts.len()).prop_map(|hosts| Action::Crash { hosts }),
        subsequence(system_hosts.clone(), 1..=system_hosts.len()).prop_map(|hosts| Action::Restart { hosts }),
    ];
    let phase = scenario.duration;
    (timing, action).prop_map(move |((at, length), action)| {
        let until = (!matches!(action, Action::Restart { .. })).then(|| ms(at + length).min(phase));
        PlannedFault { id: 0, origin: "proptest".into(), at: ms(at), until, action }
    })
}

/// A plan of up to `faults_max` random faults for `scenario`, with a random seed.
pub fn plans(scenario: &Scenario, faults_max: usize) -> impl Strategy<Value = Plan> {
    plans_on(scenario, None, faults_max)
}

/// Like [`plans`], with every fault involving one of `targets` (see [`fault`]).
///
/// Shrinking leaves the seed alone: a smaller seed is another run, not a
/// simpler one, and its 64 halvings would use up a shrinking budget before
/// the faults (what a minimal plan is about) were tried.
pub fn plans_on(scenario: &Scenario, targets: Option<&[&str]>, faults_max: usize) -> impl Strategy<Value = Plan> {
    let heal_at = scenario.duration;
    (any::<u64>().no_shrink(), proptest::collection::vec(fault(scenario, targets), 0..=faults_max)).prop_map(
        move |(seed, mut faults)| {
            faults.sort_by_key(|f| f.at);
            for (id, fault) in faults.iter_mut().enumerate() {
                fault.id = id as u32;
            }
            Plan { seed, generators: Vec::new(), faults, heal_at }
        },
    )
}

/// The same open-loop scenario with a random workload: 1 to `clients_max`
/// clients and a constant total rate between `rate_min` and `rate_max` per second.
pub fn workloads(
    loaded: Arc<Loaded>,
    clients_max: u32,
    rate_min: f64,
    rate_max: f64,
) -> impl Strategy<Value = Arc<Loaded>> {
    assert!(clients_max >= 1 && rate_min > 0.0 && rate_max >= rate_min, "a valid workload range");
    (1..=clients_max, rate_min..=rate_max).prop_map(move |(clients, rate)| {
        let mut changed = loaded.scenario.clone();
        changed.workload.clients = clients;
        if let Load::Open { rate: total, stages, .. } = &mut changed.workload.load {
            *total = Rate { per_second: rate };
            stages.clear();
        }
        changed.hosts = changed.system_hosts.clone();
        changed.hosts.extend((0..clients).map(crate::scenario::client_host));
        if loaded.scenario.hosts.iter().any(|h| h == PROBE_HOST) {
            changed.hosts.push(PROBE_HOST.to_string());
        }
        Arc::new(loaded.with_scenario(changed))
    })
}
