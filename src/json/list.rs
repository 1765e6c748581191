//! `faultline list --format json`: the registry's systems with their knobs,
//! invariants and events, and the fault kinds, chaos generators and SLO
//! metrics every scenario file can use.

use faultline_harness::scenario::{SloUnit, CHAOS_KINDS, FAULT_KINDS, SLO_METRICS};
use faultline_harness::system::LIVENESS;
use faultline_harness::Registry;
use serde::Serialize;

/// The whole document.
#[derive(Serialize)]
pub struct List {
    /// Every system of the registry, in name order.
    pub systems: Vec<System>,
    /// Invariants the harness checks for every system (`liveness`).
    pub common_invariants: Vec<Named>,
    /// `[[fault]] kind` values.
    pub fault_kinds: Vec<Named>,
    /// `[chaos.<kind>]` generators.
    pub chaos_generators: Vec<Named>,
    /// `[slo]` metrics.
    pub slo_metrics: Vec<SloMetric>,
}

/// One system.
#[derive(Serialize)]
pub struct System {
    /// `system = "..."` in a scenario file.
    pub name: &'static str,
    pub about: &'static str,
    /// Its hosts, for people (`"db, cache, app-1..app-N"`).
    pub hosts: &'static str,
    pub knobs: Vec<Knob>,
    /// Its own invariants (without `liveness`, in `common_invariants`).
    pub invariants: Vec<Named>,
    /// Event kinds it reports (usable in `[check] reached`).
    pub events: Vec<Event>,
}

/// A `[knobs]` key.
#[derive(Serialize)]
pub struct Knob {
    pub name: &'static str,
    /// "duration", "probability", "count", ...
    pub unit: &'static str,
    /// The default, as a scenario file would write it.
    pub default: &'static str,
    pub about: &'static str,
}

/// A name and what it means.
#[derive(Serialize)]
pub struct Named {
    pub name: &'static str,
    pub about: &'static str,
}

/// An event kind.
#[derive(Serialize)]
pub struct Event {
    pub name: &'static str,
    pub about: &'static str,
    /// The system noticed a fault on its own (MTTD is measured to the first such event).
    pub detects: bool,
}

/// An SLO metric.
#[derive(Serialize)]
pub struct SloMetric {
    pub name: &'static str,
    /// "percent" or "duration": how its threshold is written.
    pub unit: &'static str,
    pub about: &'static str,
}

fn named(pairs: &[(&'static str, &'static str)]) -> Vec<Named> {
    pairs.iter().map(|&(name, about)| Named { name, about }).collect()
}

/// The document of `registry`.
pub fn document(registry: &Registry) -> List {
    let systems = registry
        .entries()
        .map(|entry| {
            let doc = entry.doc;
            System {
                name: doc.name,
                about: doc.about,
                hosts: doc.hosts,
                knobs: doc
                    .knobs
                    .iter()
                    .map(|k| Knob { name: k.name, unit: k.unit, default: k.default, about: k.about })
                    .collect(),
                invariants: entry.invariants.iter().map(|i| Named { name: i.name, about: i.about }).collect(),
                events: doc.events.iter().map(|e| Event { name: e.name, about: e.about, detects: e.detects }).collect(),
            }
        })
        .collect();
    let slo_metrics = SLO_METRICS
        .iter()
        .map(|&(name, unit, about)| SloMetric {
            name,
            unit: match unit {
                SloUnit::Percent => "percent",
                SloUnit::Duration => "duration",
            },
            about,
        })
        .collect();
    List {
        systems,
        common_invariants: vec![Named { name: LIVENESS.name, about: LIVENESS.about }],
        fault_kinds: named(FAULT_KINDS),
        chaos_generators: named(CHAOS_KINDS),
        slo_metrics,
    }
}
