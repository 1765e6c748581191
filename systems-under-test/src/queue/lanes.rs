//! The job queue's lanes for the report's timeline: pure functions of its
//! typed events, like the checkers (no runtime, no simulator).

use std::collections::BTreeMap;

use faultline_harness::{CheckContext, Lane, Nanos};

use super::knobs::Queue;
use super::protocol::{JobId, JobState, QueueEvent, BROKER};

/// The report's lanes, from the broker's typed events:
/// - `queue depth`: jobs accepted and not yet completed or dead-lettered
///   (waiting, delayed or leased: the count a bounded queue caps, the
///   broker's own `in_queue`);
/// - `jobs active`: jobs leased to a worker;
/// - `dead-lettered`: jobs in the dead-letter set, cumulative.
///
/// A broker restart's `broker.recovered` sets every count to what its log
/// gave back (with `fsync = never`, a crash shows as a drop in depth).
pub fn lanes(context: &CheckContext<'_, Queue>) -> Vec<Lane> {
    let mut jobs: BTreeMap<JobId, JobState> = BTreeMap::new();
    let mut depth = vec![(0, 0.0)];
    let mut active = vec![(0, 0.0)];
    let mut dead = vec![(0, 0.0)];
    for (at, source, event) in context.events() {
        if source != BROKER {
            continue;
        }
        match event {
            QueueEvent::Recovered { jobs: found } => {
                jobs = found.iter().map(|job| (job.job, job.state)).collect();
            }
            other => match (other.job(), other.leaves()) {
                (Some(job), Some(state)) => {
                    jobs.insert(job, state);
                }
                _ => continue,
            },
        }
        push(&mut depth, at, count(&jobs, |s| !matches!(s, JobState::Completed | JobState::Dead)));
        push(&mut active, at, count(&jobs, |s| s == JobState::Active));
        push(&mut dead, at, count(&jobs, |s| s == JobState::Dead));
    }
    vec![Lane::level("queue depth", depth), Lane::level("jobs active", active), Lane::level("dead-lettered", dead)]
}

fn count(jobs: &BTreeMap<JobId, JobState>, which: impl Fn(JobState) -> bool) -> f64 {
    jobs.values().filter(|state| which(**state)).count() as f64
}

/// Adds a step unless the value is unchanged (at the same time, the later
/// value replaces the earlier).
fn push(points: &mut Vec<(Nanos, f64)>, at: Nanos, value: f64) {
    match points.last_mut() {
        Some(last) if last.1 == value => {}
        Some(last) if last.0 == at => last.1 = value,
        _ => points.push((at, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::protocol::{DeadReason, RecoveredJob};
    use faultline_harness::history::{Happening, TraceEvent, HARNESS};
    use faultline_harness::{History, LaneKind};

    const MS: Nanos = 1_000_000;

    fn broker(at_ms: u64, event: QueueEvent) -> TraceEvent<QueueEvent> {
        TraceEvent { at: at_ms * MS, source: BROKER.into(), event: Happening::System(event) }
    }

    fn accepted(at_ms: u64, job: JobId) -> TraceEvent<QueueEvent> {
        broker(at_ms, QueueEvent::Accepted { job, key: job, in_queue: 0 })
    }

    fn active(at_ms: u64, job: JobId) -> TraceEvent<QueueEvent> {
        broker(at_ms, QueueEvent::Active { job, token: 1, worker: 1, attempt: 1 })
    }

    fn levels(trace: &[TraceEvent<QueueEvent>]) -> Vec<(String, Vec<(Nanos, f64)>)> {
        let history = History::new(Vec::new());
        let context = CheckContext { history: &history, trace, faults: &[], heal_at: 0, end: 10_000 * MS };
        lanes(&context)
            .into_iter()
            .map(|lane| match lane.kind {
                LaneKind::Level(points) => (lane.name, points),
                LaneKind::States(_) => panic!("{} is a level", lane.name),
            })
            .collect()
    }

    fn ms(points: &[(Nanos, f64)]) -> Vec<(u64, f64)> {
        points.iter().map(|(at, v)| (at / MS, *v)).collect()
    }

    #[test]
    fn an_empty_trace_is_three_flat_lanes_at_zero() {
        let lanes = levels(&[]);
        let names: Vec<&str> = lanes.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(names, ["queue depth", "jobs active", "dead-lettered"]);
        for (_, points) in &lanes {
            assert_eq!(points, &[(0, 0.0)]);
        }
    }

    #[test]
    fn depth_rises_with_accepts_and_falls_with_completions_and_dead_letters() {
        let trace = vec![
            accepted(10, 1),
            accepted(20, 2),
            active(30, 1),
            broker(35, QueueEvent::Refused { job: 2, token: 9 }),
            broker(40, QueueEvent::Completed { job: 1, token: 1, effect: 1, holder: true }),
            active(50, 2),
            broker(
                60,
                QueueEvent::Delayed { job: 2, token: 2, retry: 1, delay_ns: 5, previous_ns: 5, error: "boom".into() },
            ),
            broker(70, QueueEvent::Ready { job: 2 }),
            active(80, 2),
            broker(90, QueueEvent::Dead { job: 2, reason: DeadReason::Attempts, error: "boom".into(), attempts: 2 }),
            // Another host's event is not the broker's word.
            TraceEvent {
                at: 95 * MS,
                source: "worker-1".into(),
                event: Happening::System(QueueEvent::Ready { job: 7 }),
            },
        ];
        let lanes = levels(&trace);
        assert_eq!(ms(&lanes[0].1), [(0, 0.0), (10, 1.0), (20, 2.0), (40, 1.0), (90, 0.0)]);
        assert_eq!(ms(&lanes[1].1), [(0, 0.0), (30, 1.0), (40, 0.0), (50, 1.0), (60, 0.0), (80, 1.0), (90, 0.0)]);
        assert_eq!(ms(&lanes[2].1), [(0, 0.0), (90, 1.0)]);
    }

    #[test]
    fn a_broker_restart_takes_the_counts_from_its_recovered_log() {
        let recovered = |job, state| RecoveredJob { job, state, attempts: 1, effect: None };
        let trace = vec![
            accepted(10, 1),
            accepted(20, 2),
            accepted(30, 3),
            active(40, 1),
            TraceEvent { at: 50 * MS, source: HARNESS.into(), event: Happening::HostCrash { host: BROKER.into() } },
            TraceEvent { at: 80 * MS, source: HARNESS.into(), event: Happening::HostRestart { host: BROKER.into() } },
            // The log lost job 3 (not synced) and gave job 1 back waiting.
            broker(
                81,
                QueueEvent::Recovered { jobs: vec![recovered(1, JobState::Waiting), recovered(2, JobState::Dead)] },
            ),
        ];
        let lanes = levels(&trace);
        assert_eq!(ms(&lanes[0].1), [(0, 0.0), (10, 1.0), (20, 2.0), (30, 3.0), (81, 1.0)]);
        assert_eq!(ms(&lanes[1].1), [(0, 0.0), (40, 1.0), (81, 0.0)]);
        assert_eq!(ms(&lanes[2].1), [(0, 0.0), (81, 1.0)]);
    }
}
