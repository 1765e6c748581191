//! The app tier's lanes for the report's timeline: pure functions of its
//! typed events, like the checkers (no runtime, no simulator).

use faultline_harness::history::Happening;
use faultline_harness::{CheckContext, Lane, Nanos, StateChange, Tone};

use super::knobs::AppTier;
use super::protocol::{TierEvent, AUTOSCALER, LB};

/// What the lb holds of its instances, rebuilt from its events.
struct Rotation {
    /// Instance `i + 1` at index `i`: a member, and in rotation (healthy and
    /// not ejected), as the lb's `lb.eject`, `lb.restore` and `lb.members` say.
    member: Vec<bool>,
    in_rotation: Vec<bool>,
    panic: bool,
    up: bool,
}

impl Rotation {
    /// The lb as it starts (and restarts): the configured instances are its
    /// members, trusted until their checks say otherwise.
    fn fresh(config: &AppTier) -> Rotation {
        let member: Vec<bool> = (1..=config.pool_size()).map(|i| i <= config.instances).collect();
        Rotation { in_rotation: member.clone(), member, panic: false, up: true }
    }

    fn set(flags: &mut [bool], instance: u32, value: bool) {
        if let Some(flag) = instance.checked_sub(1).and_then(|i| flags.get_mut(i as usize)) {
            *flag = value;
        }
    }

    /// Applies one lb event; false if it says nothing about the rotation.
    fn apply(&mut self, event: &TierEvent) -> bool {
        match event {
            TierEvent::Eject { instance, .. } => Rotation::set(&mut self.in_rotation, *instance, false),
            TierEvent::Restore { instance } => Rotation::set(&mut self.in_rotation, *instance, true),
            TierEvent::Members { members } => {
                self.member.iter_mut().for_each(|m| *m = false);
                for instance in members {
                    Rotation::set(&mut self.member, *instance, true);
                }
            }
            TierEvent::PanicStart { .. } => self.panic = true,
            TierEvent::PanicEnd { .. } => self.panic = false,
            _ => return false,
        }
        true
    }

    /// The lane's state: members in rotation of members ("2/3"), the
    /// lb's panic mode, or the lb down.
    fn change(&self, at: Nanos) -> StateChange {
        if !self.up {
            return StateChange::new(at, "lb down", Tone::Neutral);
        }
        let members = self.member.iter().filter(|m| **m).count();
        let serving = self.member.iter().zip(&self.in_rotation).filter(|(m, r)| **m && **r).count();
        let label = format!("{serving}/{members}");
        match (self.panic, serving) {
            (true, _) => StateChange::new(at, format!("{label} panic"), Tone::Bad),
            (false, 0) => StateChange::new(at, label, Tone::Bad),
            (false, n) if n < members => StateChange::new(at, label, Tone::Warn),
            (false, _) => StateChange::new(at, label, Tone::Good),
        }
    }
}

/// The report's lanes:
/// - `in rotation`: the lb's members in rotation out of its members
///   ("2/3": green when all are, amber when some are, red when none is or
///   the lb is in panic mode, routing to every member), from its
///   `lb.eject`, `lb.restore`, `lb.members` and `lb.panic.*` events; an lb
///   crash shows as "lb down", and its restart starts afresh, as the lb does;
/// - `instances` (with `autoscale`): the autoscaler's instance count, from
///   its `autoscaler.scale` events.
pub fn lanes(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<Lane> {
    let mut rotation = Rotation::fresh(config);
    let mut changes = vec![rotation.change(0)];
    let mut instances = vec![(0, f64::from(config.instances))];
    for entry in context.trace {
        match &entry.event {
            Happening::HostCrash { host } if host == LB => rotation.up = false,
            Happening::HostRestart { host } if host == LB => rotation = Rotation::fresh(config),
            Happening::System(TierEvent::Scale { to, .. }) if entry.source == AUTOSCALER => {
                instances.push((entry.at, f64::from(*to)));
                continue;
            }
            Happening::System(event) if entry.source == LB && rotation.up => {
                if !rotation.apply(event) {
                    continue;
                }
            }
            _ => continue,
        }
        changes.push(rotation.change(entry.at));
    }
    let mut lanes = vec![Lane::states("in rotation", changes)];
    if config.autoscale {
        lanes.push(Lane::level("instances", instances));
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apptier::protocol::Ejection;
    use faultline_harness::history::{TraceEvent, HARNESS};
    use faultline_harness::{History, LaneKind};

    const MS: Nanos = 1_000_000;

    fn from(source: &str, at_ms: u64, event: TierEvent) -> TraceEvent<TierEvent> {
        TraceEvent { at: at_ms * MS, source: source.into(), event: Happening::System(event) }
    }

    fn lb(at_ms: u64, event: TierEvent) -> TraceEvent<TierEvent> {
        from(LB, at_ms, event)
    }

    fn harness(at_ms: u64, event: Happening<TierEvent>) -> TraceEvent<TierEvent> {
        TraceEvent { at: at_ms * MS, source: HARNESS.into(), event }
    }

    fn lanes_of(config: &AppTier, trace: &[TraceEvent<TierEvent>]) -> Vec<Lane> {
        let history = History::new(Vec::new());
        let context = CheckContext { history: &history, trace, faults: &[], heal_at: 0, end: 10_000 * MS };
        lanes(config, &context)
    }

    /// The states lane as (ms, state, tone).
    fn states(lane: &Lane) -> Vec<(u64, String, Tone)> {
        match &lane.kind {
            LaneKind::States(changes) => changes.iter().map(|c| (c.at / MS, c.state.clone(), c.tone)).collect(),
            LaneKind::Level(_) => panic!("{} is a states lane", lane.name),
        }
    }

    fn owned(states: &[(u64, &str, Tone)]) -> Vec<(u64, String, Tone)> {
        states.iter().map(|(at, s, t)| (*at, (*s).to_string(), *t)).collect()
    }

    #[test]
    fn an_empty_trace_is_every_configured_instance_in_rotation() {
        let lanes = lanes_of(&AppTier::from_knobs("instances = 3"), &[]);
        assert_eq!(lanes.len(), 1, "no instances lane without autoscale");
        assert_eq!(lanes[0].name, "in rotation");
        assert_eq!(states(&lanes[0]), owned(&[(0, "3/3", Tone::Good)]));
    }

    #[test]
    fn ejections_restores_and_panic_change_the_rotation_at_their_times() {
        let trace = vec![
            lb(100, TierEvent::Eject { instance: 2, by: Ejection::Checks }),
            // The sessions store's events say nothing of the rotation.
            from("sessions", 150, TierEvent::SessionsRecover { sessions: 1 }),
            lb(200, TierEvent::Eject { instance: 1, by: Ejection::Passive }),
            lb(250, TierEvent::PanicStart { in_rotation: 1, members: 3 }),
            lb(300, TierEvent::Eject { instance: 3, by: Ejection::Checks }),
            lb(400, TierEvent::PanicEnd { in_rotation: 0, members: 3 }),
            lb(500, TierEvent::Restore { instance: 1 }),
            lb(600, TierEvent::Restore { instance: 2 }),
            lb(700, TierEvent::Restore { instance: 3 }),
        ];
        let lanes = lanes_of(&AppTier::from_knobs("instances = 3"), &trace);
        let want = [
            (0, "3/3", Tone::Good),
            (100, "2/3", Tone::Warn),
            (200, "1/3", Tone::Warn),
            (250, "1/3 panic", Tone::Bad),
            (300, "0/3 panic", Tone::Bad),
            (400, "0/3", Tone::Bad),
            (500, "1/3", Tone::Warn),
            (600, "2/3", Tone::Warn),
            (700, "3/3", Tone::Good),
        ];
        assert_eq!(states(&lanes[0]), owned(&want));
    }

    #[test]
    fn an_lb_crash_is_lb_down_and_its_restart_trusts_the_configured_members_again() {
        let trace = vec![
            lb(100, TierEvent::Eject { instance: 1, by: Ejection::Checks }),
            harness(200, Happening::HostCrash { host: LB.into() }),
            // Nothing the lb could say while down; a stray event is ignored.
            lb(250, TierEvent::Restore { instance: 1 }),
            harness(300, Happening::HostRestart { host: LB.into() }),
            // Another host's crash is not the lb's.
            harness(350, Happening::HostCrash { host: "app-2".into() }),
        ];
        let lanes = lanes_of(&AppTier::from_knobs("instances = 2"), &trace);
        let want = [
            (0, "2/2", Tone::Good),
            (100, "1/2", Tone::Warn),
            (200, "lb down", Tone::Neutral),
            (300, "2/2", Tone::Good),
        ];
        assert_eq!(states(&lanes[0]), owned(&want));
    }

    #[test]
    fn membership_and_the_autoscalers_count_follow_its_events() {
        let config = AppTier::from_knobs("autoscale = true\ninstances = 2\ninstances_max = 4");
        let trace = vec![
            from(AUTOSCALER, 1_000, TierEvent::Scale { from: 2, to: 4 }),
            lb(1_010, TierEvent::Members { members: vec![1, 2, 3, 4] }),
            // The new members were never seen healthy: out of rotation until their first passed check.
            lb(1_500, TierEvent::Restore { instance: 3 }),
            lb(1_600, TierEvent::Restore { instance: 4 }),
            from(AUTOSCALER, 5_000, TierEvent::Scale { from: 4, to: 3 }),
            lb(5_010, TierEvent::Members { members: vec![1, 2, 3] }),
        ];
        let lanes = lanes_of(&config, &trace);
        let want = [
            (0, "2/2", Tone::Good),
            (1_010, "2/4", Tone::Warn),
            (1_500, "3/4", Tone::Warn),
            (1_600, "4/4", Tone::Good),
            (5_010, "3/3", Tone::Good),
        ];
        assert_eq!(states(&lanes[0]), owned(&want));
        assert_eq!(lanes[1].name, "instances");
        let LaneKind::Level(points) = &lanes[1].kind else { panic!("instances is a level") };
        assert_eq!(points, &[(0, 2.0), (1_000 * MS, 4.0), (5_000 * MS, 3.0)]);
    }
}
