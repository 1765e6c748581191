//! The cache-aside system's invariants and figures: pure functions of a
//! finished run's history and typed trace.

use std::collections::BTreeMap;

use faultline_harness::history::{format_nanos, Happening};
use faultline_harness::{CheckContext, History, Lane, Nanos, Operation, Violation};

use super::knobs::Cache;
use super::protocol::{Access, CacheEvent, CacheOp, CACHE, DB, PROBE_KEY};

const SECOND: Nanos = 1_000_000_000;

/// The report's lane: the apps' loads from the database in flight (a
/// stampede is a spike; coalescing flattens it), from their typed
/// `app.load.start` and `app.load.end` events. A crashed app's loads end
/// with it.
pub fn lanes(context: &CheckContext<'_, Cache>) -> Vec<Lane> {
    let mut open: BTreeMap<&str, i64> = BTreeMap::new();
    let mut points = vec![(0, 0.0)];
    for entry in context.trace {
        let changed = match (&entry.event, entry.reset_host()) {
            (_, Some(host)) => open.insert(host, 0).is_some_and(|before| before != 0),
            (Happening::System(CacheEvent::LoadStart { .. }), None) => {
                *open.entry(entry.source.as_str()).or_default() += 1;
                true
            }
            (Happening::System(CacheEvent::LoadEnd { .. }), None) => {
                let count = open.entry(entry.source.as_str()).or_default();
                *count = (*count - 1).max(0);
                true
            }
            _ => false,
        };
        if changed {
            points.push((entry.at, open.values().sum::<i64>() as f64));
        }
    }
    vec![Lane::level("database loads in flight", points)]
}

/// Commit times of each version of each key, from the database's events.
fn commits(context: &CheckContext<'_, Cache>) -> BTreeMap<u32, BTreeMap<u64, Nanos>> {
    let mut commits: BTreeMap<u32, BTreeMap<u64, Nanos>> = BTreeMap::new();
    for (at, source, event) in context.events() {
        if let (DB, CacheEvent::DbWrite { key, version }) = (source, event) {
            commits.entry(*key).or_default().insert(*version, at);
        }
    }
    commits
}

/// Reads that were answered, with the version each returned.
fn reads(history: &History<CacheOp, u64>) -> impl Iterator<Item = (&Operation<CacheOp, u64>, u64)> {
    history.ops.iter().filter(|op| op.op.access == Access::Read).filter_map(|op| op.outcome.value().map(|v| (op, *v)))
}

/// When each version of each key was first committed, from the database's
/// events.
fn first_commits(context: &CheckContext<'_, Cache>) -> BTreeMap<u32, BTreeMap<u64, Nanos>> {
    let mut commits: BTreeMap<u32, BTreeMap<u64, Nanos>> = BTreeMap::new();
    for (at, source, event) in context.events() {
        if let (DB, CacheEvent::DbWrite { key, version }) = (source, event) {
            commits.entry(*key).or_default().entry(*version).or_insert(at);
        }
    }
    commits
}

/// `reads-see-written-values`: every version a read returns was committed by
/// the database before the read completed (or is the initial 0).
pub fn check_reads_see_written_values(context: &CheckContext<'_, Cache>) -> Vec<Violation> {
    let commits = first_commits(context);
    let mut violations = Vec::new();
    for (op, version) in reads(context.history).filter(|(_, version)| *version != 0) {
        let committed = commits.get(&op.op.key).and_then(|c| c.get(&version)).copied();
        let why = match committed {
            None => "which no write produced".to_string(),
            Some(at) if at >= op.completed => {
                format!("which was committed only at {}, after the read completed", format_nanos(at))
            }
            Some(_) => continue,
        };
        violations.push(
            Violation::new(format!("read #{} of key {} returned version {version}, {why}", op.id, op.op.key))
                .at(op.completed)
                .ops([op.id]),
        );
    }
    violations
}

/// `bounded-staleness`: a read may return version v only if v was current
/// (committed, and not yet replaced) at some time no earlier than the read's
/// invocation minus `bound`. Staleness is the invocation time minus when v
/// was replaced (when version v + 1 was committed).
pub fn check_bounded_staleness(context: &CheckContext<'_, Cache>, bound: Nanos) -> Vec<Violation> {
    let commits = commits(context);
    let mut violations = Vec::new();
    for (op, version) in reads(context.history) {
        let Some(replaced) = commits.get(&op.op.key).and_then(|c| c.get(&(version + 1))) else { continue };
        let staleness = op.invoked.saturating_sub(*replaced);
        if staleness > bound {
            violations.push(
                Violation::new(format!(
                    "read #{} of key {} returned version {version}, replaced {:.3}s before the read began (bound {:.3}s)",
                    op.id,
                    op.op.key,
                    staleness as f64 / 1e9,
                    bound as f64 / 1e9
                ))
                .at(op.invoked)
                .ops([op.id]),
            );
        }
    }
    violations
}

/// A completed write's floor: from `completed` on, reads of its key must
/// return at least `version` (the highest completed so far), which write
/// `write` produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Floor {
    completed: Nanos,
    version: u64,
    write: usize,
}

/// Per key, the floors set by successful writes, by completion time, each
/// the running maximum of the versions written so far.
fn floors(history: &History<CacheOp, u64>) -> BTreeMap<u32, Vec<Floor>> {
    let mut floors: BTreeMap<u32, Vec<Floor>> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| op.op.access == Access::Write) {
        if let Some(version) = op.outcome.value() {
            floors.entry(op.op.key).or_default().push(Floor {
                completed: op.completed,
                version: *version,
                write: op.id,
            });
        }
    }
    for list in floors.values_mut() {
        list.sort();
        let mut highest: Option<Floor> = None;
        for floor in list.iter_mut() {
            let best = match highest {
                Some(earlier) if earlier.version > floor.version => earlier,
                _ => *floor,
            };
            highest = Some(best);
            (floor.version, floor.write) = (best.version, best.write);
        }
    }
    floors
}

/// `reads-see-completed-writes`: once any client's write of version w to a
/// key has completed, a read of that key by any client invoked later never
/// returns a version below w. (This is not the per-session guarantee called
/// read-your-writes: it holds across clients.)
pub fn check_reads_see_completed_writes(history: &History<CacheOp, u64>) -> Vec<Violation> {
    let floors = floors(history);
    let mut violations = Vec::new();
    for (op, version) in reads(history) {
        let Some(list) = floors.get(&op.op.key) else { continue };
        let before = list.partition_point(|floor| floor.completed < op.invoked);
        let Some(floor) = before.checked_sub(1).map(|last| list[last]) else { continue };
        if version < floor.version {
            violations.push(
                Violation::new(format!(
                    "read #{} of key {} began at {} and returned version {version}, but write #{} of version {} had completed at {}",
                    op.id,
                    op.op.key,
                    format_nanos(op.invoked),
                    floor.write,
                    floor.version,
                    format_nanos(floor.completed)
                ))
                .at(op.invoked)
                .ops([op.id, floor.write]),
            );
        }
    }
    violations
}

/// `origin-protection`: per app and key, database loads never overlap. A
/// crash or restart of an app ends the loads it had in flight.
pub fn check_origin_protection(context: &CheckContext<'_, Cache>) -> Vec<Violation> {
    let mut in_flight: BTreeMap<(&str, u32), u32> = BTreeMap::new();
    let mut violations = Vec::new();
    for entry in context.trace {
        if let Some(host) = entry.reset_host() {
            in_flight.retain(|(app, _), _| *app != host);
            continue;
        }
        match entry.system() {
            Some(CacheEvent::LoadStart { key, load }) => {
                let count = in_flight.entry((entry.source.as_str(), *key)).or_insert(0);
                *count += 1;
                if *count > 1 {
                    violations.push(
                        Violation::new(format!(
                            "{} had {count} database loads of key {key} in flight at once (load {load} began before the others ended)",
                            entry.source
                        ))
                        .at(entry.at),
                    );
                }
            }
            Some(CacheEvent::LoadEnd { key, .. }) => {
                if let Some(count) = in_flight.get_mut(&(entry.source.as_str(), *key)) {
                    *count = count.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
    violations
}

/// The share of the workload's reads that hit the cache: one minus its
/// misses (the probe's key left out) over its reads. None without reads.
pub fn hit_ratio(context: &CheckContext<'_, Cache>) -> Option<f64> {
    let reads = context.history.ops.iter().filter(|op| op.op.access == Access::Read).count();
    let misses =
        context.events().filter(|(_, _, event)| matches!(event, CacheEvent::Miss { key } if *key != PROBE_KEY)).count();
    (reads > 0).then(|| 1.0 - (misses as f64 / reads as f64).min(1.0))
}

/// Database reads per second at the peak after a cache crash, and the
/// steady miss and database-read rates before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stampede {
    pub peak_per_s: f64,
    pub steady_misses_per_s: f64,
    pub steady_db_per_s: f64,
}

impl Stampede {
    pub fn factor(&self) -> f64 {
        self.peak_per_s / self.steady_misses_per_s
    }
}

/// When the cache host first crashed, and when it was restarted after that.
fn cache_outage(context: &CheckContext<'_, Cache>) -> Option<(Nanos, Nanos)> {
    let is_cache = |host: &String| host == CACHE;
    let crash = context.trace.iter().find(|e| matches!(&e.event, Happening::HostCrash { host } if is_cache(host)))?.at;
    let restart = context
        .trace
        .iter()
        .find(|e| e.at >= crash && matches!(&e.event, Happening::HostRestart { host } if is_cache(host)))?
        .at;
    Some((crash, restart))
}

/// How hard losing the cache hits the origin. The peak is the busiest 100ms
/// bin of database reads, per second, from the cache's crash until 2s after
/// it restarts. The stampede factor divides it by the steady *miss* rate (cache
/// misses per second over the 2s before the crash): the load the workload's
/// misses put on the database when each one reads it, as without coalescing.
/// Dividing by the database's own steady rate instead would reward nothing:
/// coalescing lowers that rate too (it merges the misses after each
/// invalidation), so the ratio would rise while the peak falls. None when
/// the cache never crashed and restarted, or nothing missed before.
pub fn stampede(context: &CheckContext<'_, Cache>) -> Option<Stampede> {
    const BIN: Nanos = 100_000_000;
    let (crash, restart) = cache_outage(context)?;
    let steady = |wanted: fn(&CacheEvent) -> bool| {
        let before = context.events().filter(|(at, _, event)| at + 2 * SECOND >= crash && *at < crash && wanted(event));
        before.count() as f64 / 2.0
    };
    // (The probe's misses and loads count here too: one per TTL at most, noise.)
    let misses = steady(|event| matches!(event, CacheEvent::Miss { .. }));
    let db_reads = steady(|event| matches!(event, CacheEvent::DbRead { .. }));
    if misses == 0.0 {
        return None;
    }
    let end = restart + 2 * SECOND;
    let mut bins = vec![0u32; (end - crash).div_ceil(BIN) as usize];
    for (at, _, _) in context
        .events()
        .filter(|(at, _, event)| matches!(event, CacheEvent::DbRead { .. }) && *at >= crash && *at < end)
    {
        bins[((at - crash) / BIN) as usize] += 1;
    }
    let peak = f64::from(*bins.iter().max().expect("at least one bin")) * (SECOND / BIN) as f64;
    Some(Stampede { peak_per_s: peak, steady_misses_per_s: misses, steady_db_per_s: db_reads })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::history::{TraceEvent, HARNESS};
    use faultline_harness::Outcome;

    const MS: Nanos = 1_000_000;

    fn op(
        access: Access,
        key: u32,
        invoked_ms: u64,
        completed_ms: u64,
        outcome: Outcome<u64>,
    ) -> Operation<CacheOp, u64> {
        Operation {
            id: 0,
            client: 0,
            seq: 0,
            op: CacheOp { access, key, app: 1 },
            intended: invoked_ms * MS,
            invoked: invoked_ms * MS,
            completed: completed_ms * MS,
            outstanding: 0,
            outcome,
        }
    }

    fn event(at_ms: u64, source: &str, event: CacheEvent) -> TraceEvent<CacheEvent> {
        TraceEvent { at: at_ms * MS, source: source.into(), event: Happening::System(event) }
    }

    fn harness(at_ms: u64, event: Happening<CacheEvent>) -> TraceEvent<CacheEvent> {
        TraceEvent { at: at_ms * MS, source: HARNESS.into(), event }
    }

    fn write(at_ms: u64, key: u32, version: u64) -> TraceEvent<CacheEvent> {
        event(at_ms, DB, CacheEvent::DbWrite { key, version })
    }

    fn context<'a>(history: &'a History<CacheOp, u64>, trace: &'a [TraceEvent<CacheEvent>]) -> CheckContext<'a, Cache> {
        CheckContext { history, trace, faults: &[], heal_at: 10 * SECOND, end: 15 * SECOND }
    }

    fn message(violation: &Violation) -> &str {
        &violation.message
    }

    #[test]
    fn reads_must_return_committed_versions() {
        let history = History::new(vec![
            op(Access::Read, 1, 0, 5, Outcome::Ok(0)),   // the initial version: fine
            op(Access::Read, 1, 10, 15, Outcome::Ok(1)), // committed: fine
            op(Access::Read, 1, 20, 25, Outcome::Ok(2)), // never written
            op(Access::Read, 2, 20, 25, Outcome::Ok(1)), // version 1 of another key only
            op(Access::Read, 1, 30, 35, Outcome::Timeout),
        ]);
        // A db.write reported by another host is not the database's commit.
        let trace = [write(8, 1, 1), event(9, "app-1", CacheEvent::DbWrite { key: 2, version: 1 })];
        let violations = check_reads_see_written_values(&context(&history, &trace));
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(message(&violations[0]).contains("read #2 of key 1 returned version 2"), "{}", violations[0].message);
        assert_eq!((violations[0].ops.clone(), violations[0].at), (vec![2], Some(25 * MS)));
        assert!(message(&violations[1]).contains("read #3 of key 2"), "{}", violations[1].message);
    }

    #[test]
    fn a_read_may_not_return_a_version_committed_only_after_it_completed() {
        let history = History::new(vec![
            op(Access::Read, 1, 1, 5, Outcome::Ok(1)), // committed at 2ms, first of two commits: fine
            op(Access::Read, 1, 10, 15, Outcome::Ok(2)), // committed at 40ms: from the future
            op(Access::Read, 1, 30, 40, Outcome::Ok(2)), // completed as it was committed: still too early
            op(Access::Read, 1, 41, 45, Outcome::Ok(2)), // after the commit: fine
        ]);
        // Version 1 committed twice (a database that lost its rows): the first counts.
        let trace = [write(2, 1, 1), write(40, 1, 2), write(60, 1, 1)];
        let violations = check_reads_see_written_values(&context(&history, &trace));
        assert_eq!(violations.iter().map(|v| v.ops[0]).collect::<Vec<_>>(), vec![1, 2], "{violations:?}");
        assert_eq!(
            violations[0].message,
            "read #1 of key 1 returned version 2, which was committed only at 0.040000s, after the read completed"
        );
        assert_eq!(violations[0].at, Some(15 * MS));
    }

    #[test]
    fn reads_of_written_values_pass() {
        let history = History::new(vec![op(Access::Read, 1, 10, 15, Outcome::Ok(1))]);
        assert!(check_reads_see_written_values(&context(&history, &[write(8, 1, 1)])).is_empty());
    }

    #[test]
    fn staleness_is_measured_from_the_replacing_commit() {
        // Version 1 replaced by version 2 at 100ms; bound 50ms.
        let trace = [write(10, 1, 1), write(100, 1, 2)];
        let history = History::new(vec![
            op(Access::Read, 1, 140, 145, Outcome::Ok(1)), // 40ms stale: fine
            op(Access::Read, 1, 160, 165, Outcome::Ok(1)), // 60ms stale: too much
            op(Access::Read, 1, 500, 505, Outcome::Ok(2)), // current, never replaced
            op(Access::Read, 1, 900, 905, Outcome::Failed("database: connection refused".into())),
        ]);
        let violations = check_bounded_staleness(&context(&history, &trace), 50 * MS);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].ops, vec![1]);
        assert_eq!(violations[0].at, Some(160 * MS));
        assert!(message(&violations[0]).contains("replaced 0.060s before the read began (bound 0.050s)"));
        assert!(check_bounded_staleness(&context(&history, &trace), 60 * MS).is_empty(), "60ms is within 60ms");
    }

    #[test]
    fn only_the_databases_commits_replace_a_version() {
        // An app reporting db.write (a mistake) does not replace version 1.
        let trace = [write(10, 1, 1), event(100, "app-1", CacheEvent::DbWrite { key: 1, version: 2 })];
        let history = History::new(vec![op(Access::Read, 1, 500, 505, Outcome::Ok(1))]);
        assert!(check_bounded_staleness(&context(&history, &trace), 50 * MS).is_empty());
        // Another key's replacement does not make this key's version stale either.
        let other = [write(10, 1, 1), write(100, 2, 2)];
        assert!(check_bounded_staleness(&context(&history, &other), 50 * MS).is_empty());
    }

    #[test]
    fn a_read_begun_as_a_write_completes_need_not_see_it() {
        let history = History::new(vec![
            op(Access::Write, 1, 10, 50, Outcome::Ok(2)),
            op(Access::Read, 1, 50, 55, Outcome::Ok(1)), // began at the very instant: concurrent
            op(Access::Read, 1, 51, 56, Outcome::Ok(1)), // began after: stale
        ]);
        let violations = check_reads_see_completed_writes(&history);
        assert_eq!(violations.iter().map(|v| v.ops.clone()).collect::<Vec<_>>(), vec![vec![2, 0]]);
        assert_eq!(violations[0].at, Some(51 * MS));
    }

    #[test]
    fn the_stale_set_race_breaks_reads_see_completed_writes() {
        // A write of version 2 completes at 50ms; a read begun at 60ms sees 1.
        let history = History::new(vec![
            op(Access::Write, 1, 10, 50, Outcome::Ok(2)),
            op(Access::Read, 1, 60, 65, Outcome::Ok(1)),
            op(Access::Read, 1, 40, 70, Outcome::Ok(1)), // concurrent with the write: fine
            op(Access::Read, 2, 60, 65, Outcome::Ok(0)), // another key: fine
            op(Access::Read, 1, 80, 85, Outcome::Ok(2)),
        ]);
        let violations = check_reads_see_completed_writes(&history);
        assert_eq!(violations.len(), 1, "{violations:?}");
        let read = &history.ops[violations[0].ops[0]];
        assert_eq!((read.invoked, read.op.key), (60 * MS, 1));
        assert_eq!(history.ops[violations[0].ops[1]].op.access, Access::Write);
        assert_eq!(
            violations[0].message,
            "read #2 of key 1 began at 0.060000s and returned version 1, but write #0 of version 2 had completed at 0.050000s"
        );
    }

    #[test]
    fn a_failed_write_sets_no_floor() {
        let history = History::new(vec![
            op(Access::Write, 1, 10, 50, Outcome::Timeout),
            op(Access::Read, 1, 60, 65, Outcome::Ok(0)),
        ]);
        assert!(check_reads_see_completed_writes(&history).is_empty());
    }

    #[test]
    fn a_later_completing_older_write_does_not_lower_the_floor() {
        // Version 3 completes at 50ms, version 2 (committed earlier) only at 70ms.
        let history = History::new(vec![
            op(Access::Write, 1, 10, 50, Outcome::Ok(3)),
            op(Access::Write, 1, 5, 70, Outcome::Ok(2)),
            op(Access::Read, 1, 80, 85, Outcome::Ok(2)),
            op(Access::Read, 1, 90, 95, Outcome::Ok(3)),
        ]);
        let violations = check_reads_see_completed_writes(&history);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(message(&violations[0]).contains("but write #1 of version 3"), "{}", violations[0].message);
    }

    fn load(at_ms: u64, app: &str, key: u32, load: u64, start: bool) -> TraceEvent<CacheEvent> {
        let event_ = if start { CacheEvent::LoadStart { key, load } } else { CacheEvent::LoadEnd { key, load } };
        event(at_ms, app, event_)
    }

    #[test]
    fn overlapping_loads_of_one_key_in_one_app_break_origin_protection() {
        let trace = [
            load(1, "app-1", 3, 1, true),
            load(2, "app-2", 3, 1, true), // another app: fine
            load(3, "app-1", 4, 2, true), // another key: fine
            load(4, "app-1", 3, 1, false),
            load(5, "app-1", 3, 3, true), // after the first ended: fine
            load(6, "app-1", 3, 4, true), // overlaps: violation
        ];
        let history = History::new(Vec::new());
        let violations = check_origin_protection(&context(&history, &trace));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].at, Some(6 * MS));
        assert!(message(&violations[0]).contains("app-1 had 2 database loads of key 3"), "{}", violations[0].message);
    }

    #[test]
    fn an_app_crash_ends_its_loads() {
        let trace = [
            load(1, "app-1", 3, 1, true),
            load(2, "app-2", 3, 1, true),
            harness(7, Happening::HostCrash { host: "app-1".into() }),
            harness(8, Happening::HostRestart { host: "app-1".into() }),
            load(9, "app-1", 3, 1, true),  // the crash ended the other: fine
            load(10, "app-2", 3, 2, true), // app-2 did not crash: violation
        ];
        let history = History::new(Vec::new());
        let violations = check_origin_protection(&context(&history, &trace));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(message(&violations[0]).starts_with("app-2 had 2"), "{}", violations[0].message);
    }

    #[test]
    fn the_hit_ratio_leaves_the_probe_out() {
        let history = History::new((0..4).map(|i| op(Access::Read, 1, i, i + 1, Outcome::Ok(0))).collect());
        let trace =
            [event(1, "app-1", CacheEvent::Miss { key: 1 }), event(2, "app-1", CacheEvent::Miss { key: PROBE_KEY })];
        assert_eq!(hit_ratio(&context(&history, &trace)), Some(0.75));
        assert_eq!(hit_ratio(&context(&History::new(Vec::new()), &trace)), None);
    }

    fn db_read(at_ms: u64) -> TraceEvent<CacheEvent> {
        event(at_ms, DB, CacheEvent::DbRead { key: 1, version: 0 })
    }

    #[test]
    fn the_stampede_factor_compares_the_peak_with_the_steady_miss_rate() {
        let mut trace = Vec::new();
        // Steady, over the 2s before the crash at 5s: 10 misses and 5 database reads per second.
        for i in 0..20 {
            trace.push(event(3000 + i * 100, "app-1", CacheEvent::Miss { key: 1 }));
            if i % 2 == 0 {
                trace.push(db_read(3000 + i * 100));
            }
        }
        let steady_part = trace.len();
        trace.push(harness(5000, Happening::HostCrash { host: CACHE.into() }));
        trace.push(harness(6000, Happening::HostRestart { host: CACHE.into() }));
        // 8 reads in one 100ms bin while the cache is down = 80/s; 3 after the restart.
        trace.extend((0..8).map(|i| db_read(5300 + i)));
        trace.extend((0..3).map(|i| db_read(6010 + i)));
        let history = History::new(Vec::new());
        let found = stampede(&context(&history, &trace)).unwrap();
        assert_eq!(found, Stampede { peak_per_s: 80.0, steady_misses_per_s: 10.0, steady_db_per_s: 5.0 });
        assert_eq!(found.factor(), 8.0);
        assert_eq!(stampede(&context(&history, &trace[..steady_part])), None, "no crash, no stampede");
        assert_eq!(stampede(&context(&history, &trace[..steady_part + 1])), None, "no restart, no stampede");
    }

    #[test]
    fn a_stampede_needs_the_cache_itself_to_crash_and_misses_before() {
        let history = History::new(Vec::new());
        let other = [
            event(4000, "app-1", CacheEvent::Miss { key: 1 }),
            harness(5000, Happening::HostCrash { host: "app-1".into() }),
            harness(6000, Happening::HostRestart { host: "app-1".into() }),
        ];
        assert_eq!(stampede(&context(&history, &other)), None, "an app's crash is not the cache's");
        let quiet = [
            event(2000, "app-1", CacheEvent::Miss { key: 1 }), // more than 2s before the crash
            harness(5000, Happening::HostCrash { host: CACHE.into() }),
            harness(6000, Happening::HostRestart { host: CACHE.into() }),
            db_read(5100),
        ];
        assert_eq!(stampede(&context(&history, &quiet)), None, "no steady misses to compare with");
    }
}
