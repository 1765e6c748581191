//! What was true during a run, from the harness's own record rather than the
//! system's word: when each instance was down (a crash, or stopped by the
//! pool), when it could not reach the database (a link fault between it and
//! `db`, or `db` down), when the lb could not reach it or any fault was on
//! its links (its checks may fail then), which instances were
//! members (started by the pool) and when the lb restarted.
//!
//! Pure: intervals of simulated time, from the typed trace and the plan's
//! faults. Intervals are half-open `[start, end)` and merged.

use std::collections::BTreeMap;

use faultline_harness::fault::{Action, PlannedFault};
use faultline_harness::history::Happening;
use faultline_harness::system::CheckContext;
use faultline_harness::Nanos;

use super::knobs::AppTier;
use super::protocol::{app_host, TierEvent, DB, LB};

/// Sorted, disjoint half-open intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(Nanos, Nanos)>);

impl Intervals {
    /// The union of `spans` (empty ones dropped).
    pub fn union(spans: impl IntoIterator<Item = (Nanos, Nanos)>) -> Intervals {
        let mut spans: Vec<(Nanos, Nanos)> = spans.into_iter().filter(|(s, e)| s < e).collect();
        spans.sort_unstable();
        let mut merged: Vec<(Nanos, Nanos)> = Vec::new();
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Intervals(merged)
    }

    pub fn spans(&self) -> &[(Nanos, Nanos)] {
        &self.0
    }

    /// The interval holding `at`, if any.
    pub fn containing(&self, at: Nanos) -> Option<(Nanos, Nanos)> {
        let index = self.0.partition_point(|(start, _)| *start <= at);
        let (start, end) = *self.0.get(index.checked_sub(1)?)?;
        (at < end).then_some((start, end))
    }

    pub fn contains(&self, at: Nanos) -> bool {
        self.containing(at).is_some()
    }

    /// Does some interval cover all of `[from, to]`?
    pub fn covers(&self, from: Nanos, to: Nanos) -> bool {
        self.containing(from).is_some_and(|(_, end)| to < end)
    }

    /// Does some interval meet `[from, to]`?
    pub fn meets(&self, from: Nanos, to: Nanos) -> bool {
        self.0.iter().any(|(start, end)| *start <= to && from < *end)
    }

    /// Every interval edge within `[from, to]`.
    pub fn edges_within(&self, from: Nanos, to: Nanos) -> impl Iterator<Item = Nanos> + '_ {
        self.0.iter().flat_map(|(s, e)| [*s, *e]).filter(move |at| (from..=to).contains(at))
    }
}

/// The ground truth of a run for the app tier's checkers.
#[derive(Clone, Debug, Default)]
pub struct Ground {
    /// Instances numbered from 1.
    pub instances: u32,
    /// Down: crashed by a fault or stopped by the pool.
    pub down: BTreeMap<u32, Intervals>,
    /// Not ready: its link to the database cut, or the database down.
    pub no_db: BTreeMap<u32, Intervals>,
    /// The lb cannot reach it: a link fault between them.
    pub lb_cut: BTreeMap<u32, Intervals>,
    /// Some fault (a cut, a clog, latency or loss) is on its link to the lb
    /// or to the database: its health checks may fail, whatever it can serve.
    pub shaky: BTreeMap<u32, Intervals>,
    /// Stopped by the pool (not a member).
    pub stopped: BTreeMap<u32, Intervals>,
    /// Started (by a restart or the pool) but not yet listening: from the
    /// start to the instance's own `app.start` report.
    pub booting: BTreeMap<u32, Intervals>,
    /// When the lb's memory started afresh.
    pub lb_resets: Vec<Nanos>,
}

/// Does a link fault cut messages between `x` and `y`, in either direction?
/// Partitions and clogs do; latency and loss slow or break some messages,
/// which health checks may or may not see, so they do not count here.
fn cuts(fault: &PlannedFault, x: &str, y: &str) -> bool {
    let has = |side: &[String], host: &str| side.iter().any(|h| h == host);
    match &fault.action {
        Action::Partition { a, b, .. } | Action::Clog { a, b } => (has(a, x) && has(b, y)) || (has(a, y) && has(b, x)),
        _ => false,
    }
}

fn cut_between(faults: &[PlannedFault], x: &str, y: &str) -> Vec<(Nanos, Nanos)> {
    faults.iter().filter(|f| cuts(f, x, y)).map(|f| (f.start(), f.end())).collect()
}

/// Any link fault between `x` and `y`, in either direction.
fn touched_between(faults: &[PlannedFault], x: &str, y: &str) -> Vec<(Nanos, Nanos)> {
    let has = |side: &[String], host: &str| side.iter().any(|h| h == host);
    faults
        .iter()
        .filter(|f| f.action.sides().is_some_and(|(a, b)| (has(a, x) && has(b, y)) || (has(a, y) && has(b, x))))
        .map(|f| (f.start(), f.end()))
        .collect()
}

/// The intervals from each start of `host` (a restart or a pool start) to
/// its next `app.start` report (or the end of the run).
fn booting(context: &CheckContext<'_, AppTier>, host: &str) -> Intervals {
    let starts = context.trace.iter().filter_map(|entry| match &entry.event {
        Happening::HostRestart { host: h } | Happening::PoolStart { host: h } if h == host => Some(entry.at),
        _ => None,
    });
    let listening: Vec<Nanos> = context
        .events()
        .filter(|(_, source, event)| *source == host && matches!(event, TierEvent::AppStart { .. }))
        .map(|(at, _, _)| at)
        .collect();
    Intervals::union(starts.map(|start| {
        let until = listening.iter().copied().find(|at| *at >= start).unwrap_or(Nanos::MAX);
        (start, until)
    }))
}

/// The intervals `host` was stopped by the pool (crashes aside).
fn pool_stopped<E>(trace: &[faultline_harness::TraceEvent<E>], host: &str) -> Intervals {
    let mut spans = Vec::new();
    let mut since = None;
    for entry in trace {
        match &entry.event {
            Happening::PoolStop { host: h } if h == host => {
                since.get_or_insert(entry.at);
            }
            Happening::PoolStart { host: h } if h == host => {
                if let Some(start) = since.take() {
                    spans.push((start, entry.at));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        spans.push((start, Nanos::MAX));
    }
    Intervals::union(spans)
}

impl Ground {
    pub fn of(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Ground {
        let db_down = context.down_intervals(DB);
        let mut ground = Ground { instances: config.pool_size(), ..Ground::default() };
        for instance in 1..=config.pool_size() {
            let host = app_host(instance);
            ground.down.insert(instance, Intervals::union(context.down_intervals(&host)));
            let mut no_db = cut_between(context.faults, &host, DB);
            no_db.extend(db_down.iter().copied());
            ground.no_db.insert(instance, Intervals::union(no_db));
            ground.lb_cut.insert(instance, Intervals::union(cut_between(context.faults, &host, LB)));
            let mut shaky = touched_between(context.faults, &host, LB);
            shaky.extend(touched_between(context.faults, &host, DB));
            ground.shaky.insert(instance, Intervals::union(shaky));
            ground.stopped.insert(instance, pool_stopped(context.trace, &host));
            ground.booting.insert(instance, booting(context, &host));
        }
        ground.lb_resets = context.resets_of(LB);
        ground
    }

    /// Down or not ready: the instance cannot serve a fresh answer.
    pub fn failed(&self, instance: u32) -> Intervals {
        let spans = self.down[&instance].spans().iter().chain(self.no_db[&instance].spans()).copied();
        Intervals::union(spans.collect::<Vec<_>>())
    }

    /// Is `instance` a member at `at` (not stopped by the pool)?
    pub fn member(&self, instance: u32, at: Nanos) -> bool {
        !self.stopped[&instance].contains(at)
    }

    /// The lb's last restart at or before `at` (0: it never restarted).
    pub fn lb_reset_before(&self, at: Nanos) -> Nanos {
        self.lb_resets.iter().copied().filter(|r| *r <= at).max().unwrap_or(0)
    }

    /// The share of members at `at` whose health checks must pass: up, able
    /// to reach the database, and with no fault at all on their links to the
    /// lb or the database (`None` without members). Below the panic
    /// threshold, the lb may rightly be in panic.
    pub fn sound_share(&self, at: Nanos) -> Option<f64> {
        let members: Vec<u32> = (1..=self.instances).filter(|i| self.member(*i, at)).collect();
        if members.is_empty() {
            return None;
        }
        let sound = members
            .iter()
            .filter(|i| !self.down[i].contains(at) && !self.no_db[i].contains(at) && !self.shaky[i].contains(at))
            .count();
        Some(sound as f64 / members.len() as f64)
    }

    /// Times at which the ready share may change within `[from, to]`, with both ends.
    pub fn share_edges(&self, from: Nanos, to: Nanos) -> Vec<Nanos> {
        let mut edges = vec![from, to];
        for instance in 1..=self.instances {
            for intervals in
                [&self.down[&instance], &self.no_db[&instance], &self.lb_cut[&instance], &self.stopped[&instance]]
            {
                edges.extend(intervals.edges_within(from, to));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_answer_containment() {
        let set = Intervals::union([(5, 10), (0, 2), (8, 12), (20, 20), (15, 18)]);
        assert_eq!(set.spans(), &[(0, 2), (5, 12), (15, 18)]);
        assert_eq!(set.containing(5), Some((5, 12)));
        assert_eq!(set.containing(12), None, "half-open");
        assert_eq!(set.containing(3), None);
        assert!(set.covers(6, 11) && !set.covers(6, 13));
        assert!(set.meets(11, 14) && !set.meets(12, 14));
        assert_eq!(set.edges_within(1, 15).collect::<Vec<_>>(), vec![2, 5, 12, 15]);
    }
}
