//! The replicated store's lanes for the report's timeline: pure functions
//! of its typed events, like the checkers (no runtime, no simulator).

use std::collections::BTreeMap;

use faultline_harness::history::Happening;
use faultline_harness::{CheckContext, Lane, Nanos, StateChange, Tone};

use super::knobs::Store;
use super::protocol::StoreEvent;

/// One data node as its own events and the harness's crashes tell it.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// From a crash (or a pool stop) until it has read its log back.
    down: bool,
    /// The term it leads, while it believes itself primary.
    leads: Option<u64>,
    /// Entries in its log.
    length: u64,
}

/// One shard group's nodes and the lanes drawn so far.
struct Group {
    nodes: BTreeMap<String, Node>,
    primary: Vec<StateChange>,
    lag: Vec<(Nanos, f64)>,
}

impl Group {
    /// The nodes that believe they lead, newest term first.
    fn leaders(&self) -> Vec<(&str, u64)> {
        let mut leaders: Vec<(&str, u64)> = self
            .nodes
            .iter()
            .filter(|(_, node)| !node.down)
            .filter_map(|(name, node)| node.leads.map(|term| (name.as_str(), term)))
            .collect();
        leaders.sort_by_key(|(name, term)| (std::cmp::Reverse(*term), *name));
        leaders
    }

    /// Which node is primary: one (with its term), none, or several at once
    /// (a deposed primary that has not heard of its successor: split brain).
    fn primary_state(&self, at: Nanos) -> StateChange {
        let leaders = self.leaders();
        match leaders.as_slice() {
            [] => StateChange::new(at, "no primary", Tone::Bad),
            [(name, term)] => StateChange::new(at, format!("{name}, term {term}"), Tone::Neutral),
            several => {
                let names: Vec<String> = several.iter().map(|(name, term)| format!("{name} t{term}")).collect();
                StateChange::new(at, format!("split: {}", names.join(" + ")), Tone::Bad)
            }
        }
    }

    /// Entries the furthest-behind running replica lacks of the newest
    /// primary's log; none while no node leads.
    fn lag(&self) -> Option<u64> {
        let (primary, _) = *self.leaders().first()?;
        let length = self.nodes[primary].length;
        let behind = self
            .nodes
            .values()
            .filter(|node| !node.down && node.leads.is_none())
            .map(|node| length.saturating_sub(node.length))
            .max();
        Some(behind.unwrap_or(0))
    }

    fn record(&mut self, at: Nanos) {
        let state = self.primary_state(at);
        match self.primary.last_mut() {
            Some(last) if last.at == at => *last = state,
            _ => self.primary.push(state),
        }
        if let Some(lag) = self.lag() {
            let lag = lag as f64;
            match self.lag.last_mut() {
                Some(last) if last.1 == lag => {}
                Some(last) if last.0 == at => last.1 = lag,
                _ => self.lag.push((at, lag)),
            }
        }
    }
}

/// What one trace entry does to a data node; false if nothing it draws.
fn apply(node: &mut Node, event: &Happening<StoreEvent>) -> bool {
    match event {
        Happening::HostCrash { .. } | Happening::PoolStop { .. } => {
            node.down = true;
            node.leads = None;
        }
        // A restarted node counts again once it has read its log back.
        Happening::System(StoreEvent::Recovered { ids, .. }) => {
            node.down = false;
            node.length = ids.len() as u64;
        }
        Happening::System(StoreEvent::BecamePrimary { term }) => node.leads = Some(*term),
        Happening::System(StoreEvent::BecameReplica { .. }) => node.leads = None,
        Happening::System(StoreEvent::Append { index, .. }) => node.length = *index,
        Happening::System(StoreEvent::Truncate { to, .. }) => node.length = *to,
        _ => return false,
    }
    true
}

/// The report's lanes, two per shard group (prefixed `s<g>` with more than
/// one group):
/// - `primary`: which data node believes it is the group's primary, with
///   its term (the fencing epoch), from its `role.primary` and
///   `role.replica` events and its crashes: "no primary" while none does
///   (a crashed primary, a failover under way), "split: a t1 + b t2" while
///   two do (a deposed primary that has not heard of its successor);
/// - `replica lag`: entries the furthest-behind running replica lacks of
///   the newest primary's log, from the nodes' `log.append`,
///   `log.truncate` and `log.recovered` events (held while no node leads).
pub fn lanes(config: &Store, context: &CheckContext<'_, Store>) -> Vec<Lane> {
    let mut groups: Vec<Group> = (1..=config.groups())
        .map(|g| Group {
            nodes: config.nodes_of(g).into_iter().map(|name| (name, Node::default())).collect(),
            primary: Vec::new(),
            lag: vec![(0, 0.0)],
        })
        .collect();
    let group_of: BTreeMap<String, usize> =
        groups.iter().enumerate().flat_map(|(g, group)| group.nodes.keys().map(move |n| (n.clone(), g))).collect();
    for entry in context.trace {
        let host = entry.reset_host().unwrap_or(entry.source.as_str());
        let Some(group) = group_of.get(host).map(|g| &mut groups[*g]) else {
            continue;
        };
        let node = group.nodes.get_mut(host).expect("a node of its group");
        if apply(node, &entry.event) {
            group.record(entry.at);
        }
    }
    let prefix = |g: usize| if config.groups() > 1 { format!("s{} ", g + 1) } else { String::new() };
    groups
        .into_iter()
        .enumerate()
        .flat_map(|(g, group)| {
            [
                Lane::states(format!("{}primary", prefix(g)), group.primary),
                Lane::level(format!("{}replica lag", prefix(g)), group.lag),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::history::{TraceEvent, HARNESS};
    use faultline_harness::{History, LaneKind};

    const MS: Nanos = 1_000_000;

    fn node(host: &str, at_ms: u64, event: StoreEvent) -> TraceEvent<StoreEvent> {
        TraceEvent { at: at_ms * MS, source: host.into(), event: Happening::System(event) }
    }

    fn harness(at_ms: u64, event: Happening<StoreEvent>) -> TraceEvent<StoreEvent> {
        TraceEvent { at: at_ms * MS, source: HARNESS.into(), event }
    }

    fn primary(host: &str, at_ms: u64, term: u64) -> TraceEvent<StoreEvent> {
        node(host, at_ms, StoreEvent::BecamePrimary { term })
    }

    fn replica(host: &str, at_ms: u64, term: u64, following: &str) -> TraceEvent<StoreEvent> {
        node(host, at_ms, StoreEvent::BecameReplica { term, following: Some(following.into()) })
    }

    fn append(host: &str, at_ms: u64, index: u64, from: Option<&str>) -> TraceEvent<StoreEvent> {
        node(host, at_ms, StoreEvent::Append { term: 1, index, id: index, from: from.map(String::from) })
    }

    /// The start of a run: each node recovers an empty log and takes its role.
    fn start() -> Vec<TraceEvent<StoreEvent>> {
        let recovered = |host: &str| node(host, 0, StoreEvent::Recovered { term: 1, ids: Vec::new() });
        vec![
            recovered("primary"),
            primary("primary", 0, 1),
            recovered("replica-1"),
            replica("replica-1", 0, 1, "primary"),
            recovered("replica-2"),
            replica("replica-2", 0, 1, "primary"),
        ]
    }

    fn lanes_of(knobs: &str, trace: &[TraceEvent<StoreEvent>]) -> Vec<Lane> {
        let source = format!("name = \"t\"\nsystem = \"store\"\n[knobs]\n{knobs}\n");
        let config = super::super::knobs::configure(&faultline_harness::Knobs::new("t.toml", &source))
            .unwrap_or_else(|e| panic!("{e}"));
        let history = History::new(Vec::new());
        let context = CheckContext { history: &history, trace, faults: &[], heal_at: 0, end: 10_000 * MS };
        lanes(&config, &context)
    }

    fn states(lane: &Lane) -> Vec<(u64, String, Tone)> {
        match &lane.kind {
            LaneKind::States(changes) => changes.iter().map(|c| (c.at / MS, c.state.clone(), c.tone)).collect(),
            LaneKind::Level(_) => panic!("{} is a states lane", lane.name),
        }
    }

    fn level(lane: &Lane) -> Vec<(u64, f64)> {
        match &lane.kind {
            LaneKind::Level(points) => points.iter().map(|(at, v)| (at / MS, *v)).collect(),
            LaneKind::States(_) => panic!("{} is a level", lane.name),
        }
    }

    fn owned(states: &[(u64, &str, Tone)]) -> Vec<(u64, String, Tone)> {
        states.iter().map(|(at, s, t)| (*at, (*s).to_string(), *t)).collect()
    }

    #[test]
    fn an_empty_trace_has_the_lanes_and_nothing_in_them() {
        let lanes = lanes_of("", &[]);
        let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["primary", "replica lag"]);
        assert!(states(&lanes[0]).is_empty());
        assert_eq!(level(&lanes[1]), [(0, 0.0)]);
    }

    #[test]
    fn a_crash_and_failover_move_the_primary_at_their_times() {
        let mut trace = start();
        trace.extend([
            harness(4_000, Happening::HostCrash { host: "primary".into() }),
            node("supervisor", 5_000, StoreEvent::FailoverStart { group: 1, term: 2, suspect: "primary".into() }),
            primary("replica-2", 5_100, 2),
            replica("replica-1", 5_150, 2, "replica-2"),
            harness(7_000, Happening::HostRestart { host: "primary".into() }),
            // It reads its log and old role back from disk, then hears of term 2.
            node("primary", 7_001, StoreEvent::Recovered { term: 1, ids: vec![1, 2] }),
            primary("primary", 7_001, 1),
            replica("primary", 7_050, 2, "replica-2"),
        ]);
        let lanes = lanes_of("failover = true", &trace);
        let want = [
            (0, "primary, term 1", Tone::Neutral),
            (4_000, "no primary", Tone::Bad),
            (5_100, "replica-2, term 2", Tone::Neutral),
            (7_001, "split: replica-2 t2 + primary t1", Tone::Bad),
            (7_050, "replica-2, term 2", Tone::Neutral),
        ];
        assert_eq!(states(&lanes[0]), owned(&want));
    }

    #[test]
    fn replica_lag_is_the_furthest_behind_running_replica() {
        let mut trace = start();
        trace.extend([
            append("primary", 10, 1, None),
            append("primary", 11, 2, None),
            append("replica-1", 12, 1, Some("primary")),
            append("replica-1", 13, 2, Some("primary")),
            append("replica-2", 14, 1, Some("primary")),
            append("replica-2", 15, 2, Some("primary")),
            // replica-2 crashes: a stopped replica lags no more, nor one
            // restarting until it has read back its log (which lost an entry).
            harness(20, Happening::HostCrash { host: "replica-2".into() }),
            append("primary", 30, 3, None),
            append("replica-1", 31, 3, Some("primary")),
            harness(40, Happening::HostRestart { host: "replica-2".into() }),
            node("replica-2", 41, StoreEvent::Recovered { term: 1, ids: vec![1] }),
            node("replica-1", 50, StoreEvent::Truncate { to: 1, dropped: vec![2, 3] }),
        ]);
        let lanes = lanes_of("", &trace);
        assert_eq!(
            level(&lanes[1]),
            [(0, 0.0), (10, 1.0), (11, 2.0), (14, 1.0), (15, 0.0), (30, 1.0), (31, 0.0), (41, 2.0)]
        );
    }

    #[test]
    fn shard_groups_each_have_their_lanes_with_their_prefix() {
        let trace = vec![primary("s1-primary", 0, 1), primary("s2-primary", 3, 1), primary("elsewhere", 4, 9)];
        let lanes = lanes_of("shards = 2", &trace);
        let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["s1 primary", "s1 replica lag", "s2 primary", "s2 replica lag"]);
        assert_eq!(states(&lanes[0]), owned(&[(0, "s1-primary, term 1", Tone::Neutral)]));
        assert_eq!(states(&lanes[2]), owned(&[(3, "s2-primary, term 1", Tone::Neutral)]));
    }
}
