//! The store's checkers on hand-written histories and traces: each
//! violation branch, and a case that must pass.

use faultline_harness::history::{Happening, TraceEvent, HARNESS};
use faultline_harness::{History, Knobs, System};

use super::*;
use crate::store::protocol::{workload_value, Position};

const MS: Nanos = 1_000_000;

fn configured(knobs: &str) -> Store {
    let source = format!("name = \"t\"\nsystem = \"store\"\n[knobs]\n{knobs}");
    <Store as System>::configure(&Knobs::new("t.toml", &source)).expect("valid knobs")
}

fn at(index: u64) -> Position {
    Position { group: 1, term: 1, index, id: index }
}

fn op(client: u32, op: StoreOp, invoked_ms: u64, completed_ms: u64, outcome: Outcome<StoreRes>) -> Op {
    Operation {
        id: 0,
        client,
        seq: invoked_ms,
        op,
        intended: invoked_ms * MS,
        invoked: invoked_ms * MS,
        completed: completed_ms * MS,
        outstanding: 0,
        outcome,
    }
}

fn write(client: u32, key: u32, counter: u32, invoked_ms: u64, completed_ms: u64) -> Op {
    let value = workload_value(client, counter);
    op(client, StoreOp::Write { key, value }, invoked_ms, completed_ms, Outcome::Ok(StoreRes::Written { at: at(1) }))
}

fn failed_write(client: u32, key: u32, counter: u32, invoked_ms: u64) -> Op {
    let value = workload_value(client, counter);
    op(client, StoreOp::Write { key, value }, invoked_ms, invoked_ms + 5, Outcome::Timeout)
}

fn values(host: &str, values: &[(u32, u32)]) -> Outcome<StoreRes> {
    let values = values.iter().map(|(client, counter)| workload_value(*client, *counter)).collect();
    Outcome::Ok(StoreRes::Values { values, at: at(1), host: host.into() })
}

fn read(client: u32, key: u32, invoked_ms: u64, completed_ms: u64, seen: &[(u32, u32)]) -> Op {
    op(client, StoreOp::Read { key, session: Vec::new() }, invoked_ms, completed_ms, values("replica-1", seen))
}

fn audit(client: u32, key: u32, invoked_ms: u64, seen: &[(u32, u32)]) -> Op {
    op(client, StoreOp::Audit { key }, invoked_ms, invoked_ms + 5, values("primary", seen))
}

fn event(at_ms: u64, source: &str, event: StoreEvent) -> TraceEvent<StoreEvent> {
    TraceEvent { at: at_ms * MS, source: source.into(), event: Happening::System(event) }
}

fn append(at_ms: u64, source: &str, index: u64, id: u64, from: Option<&str>) -> TraceEvent<StoreEvent> {
    event(at_ms, source, StoreEvent::Append { term: 1, index, id, from: from.map(str::to_string) })
}

fn context<'a>(
    history: &'a History<StoreOp, StoreRes>,
    trace: &'a [TraceEvent<StoreEvent>],
) -> CheckContext<'a, Store> {
    CheckContext { history, trace, faults: &[], heal_at: 1_000 * MS, end: 5_000 * MS }
}

#[test]
fn a_write_missing_from_its_last_read_back_is_lost_and_counted_in_the_rpo() {
    let history = History::new(vec![
        write(0, 1, 1, 10, 20),   // survives
        write(0, 1, 2, 100, 110), // lost
        write(1, 1, 1, 200, 210), // lost
        failed_write(1, 1, 2, 300),
        audit(0, 1, 1500, &[(0, 1)]), // an earlier read-back: not the last
        audit(1, 1, 2000, &[(0, 1)]),
        write(0, 1, 3, 2100, 2110), // after the last read-back began: not judged
        audit(0, 1, 500, &[(0, 1), (0, 2), (1, 1)]), // before the heal: ignored
    ]);
    let losses = losses(&history, 1_000 * MS).expect("every written key was read back");
    assert_eq!(losses.lost.len(), 2, "{losses:?}");
    // From the last survivor (20ms) to the last lost write (210ms).
    assert!((losses.rpo_seconds - 0.19).abs() < 1e-9, "{}", losses.rpo_seconds);
    let violations = check_no_lost_writes(&history, 1_000 * MS).expect("judged");
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].message.contains("2 acknowledged writes lost (RPO 2 writes, 0.190s of data)"));
    assert!(violations[1].message.contains("key 1: 2 acknowledged writes missing"), "{}", violations[1].message);
    assert!(violations[1].message.contains("c0.2") && violations[1].message.contains("c1.1"));
    assert_eq!(violations[1].ops.len(), 3, "the lost writes and the read-back");
}

#[test]
fn every_write_in_its_read_back_passes_and_an_unread_key_cannot_be_judged() {
    let kept = History::new(vec![write(0, 1, 1, 10, 20), audit(0, 1, 1500, &[(0, 1)])]);
    assert_eq!(check_no_lost_writes(&kept, 1_000 * MS), Ok(Vec::new()));
    let unread = History::new(vec![write(0, 1, 1, 10, 20), audit(0, 2, 1500, &[])]);
    let Err(unjudged) = check_no_lost_writes(&unread, 1_000 * MS) else { panic!("judged without a read-back") };
    assert!(unjudged.0.contains("key 1 was written and never read back after the heal"), "{}", unjudged.0);
}

#[test]
fn two_writers_in_one_term_and_a_fenced_writer_break_single_writer() {
    let store = configured("failover = true");
    let history = History::new(Vec::new());
    let trace = [
        append(10, "primary", 1, 11, None),
        append(20, "replica-1", 2, 12, None), // a second writer in term 1
        event(30, "primary", StoreEvent::TermSeen { term: 1, seen: 2, from: "status".into() }),
        append(40, "primary", 3, 13, None),              // after hearing of term 2
        append(50, "primary", 4, 14, None),              // reported once per host and term
        append(60, "replica-2", 3, 13, Some("primary")), // a replica's append is no write
    ];
    let violations = check_single_writer(&store, &context(&history, &trace));
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].message.contains("replica-1 accepted write"), "{}", violations[0].message);
    assert!(violations[0].message.contains("while primary was that term's writer"));
    assert!(violations[1].message.contains("after it heard of term 2 at 0.030s"), "{}", violations[1].message);
}

#[test]
fn one_writer_per_term_and_no_write_after_a_newer_term_pass() {
    let store = configured("failover = true");
    let history = History::new(Vec::new());
    let trace = [
        append(10, "primary", 1, 11, None),
        event(30, "primary", StoreEvent::TermSeen { term: 1, seen: 2, from: "status".into() }),
        event(31, "replica-1", StoreEvent::BecamePrimary { term: 2 }),
        event(40, "replica-1", StoreEvent::Append { term: 2, index: 2, id: 12, from: None }),
    ];
    assert!(check_single_writer(&store, &context(&history, &trace)).is_empty());
}

#[test]
fn a_replica_that_keeps_a_diverged_tail_breaks_log_prefix() {
    let store = configured("");
    let history = History::new(Vec::new());
    let trace = [
        event(0, "primary", StoreEvent::BecamePrimary { term: 1 }),
        event(0, "replica-1", StoreEvent::BecameReplica { term: 1, following: Some("primary".into()) }),
        append(10, "primary", 1, 11, None),
        append(11, "replica-1", 1, 11, Some("primary")),
        event(12, "replica-1", StoreEvent::Recovered { term: 1, ids: vec![11, 99] }), // a tail the primary never had
        append(20, "primary", 2, 12, None),
        append(21, "primary", 3, 13, None),
        append(22, "replica-1", 3, 13, Some("primary")), // resumed by position: 11 99 13
    ];
    let violations = check_log_prefix(&store, &context(&history, &trace));
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(
        violations[0].message.contains("at entry 2 replica-1 has #99, primary has #12"),
        "{}",
        violations[0].message
    );
    assert!(violations[1].message.starts_with("at the end,"), "{}", violations[1].message);
}

#[test]
fn a_replica_that_rewinds_keeps_log_prefix() {
    let store = configured("");
    let history = History::new(Vec::new());
    let trace = [
        event(0, "primary", StoreEvent::BecamePrimary { term: 1 }),
        event(0, "replica-1", StoreEvent::BecameReplica { term: 1, following: Some("primary".into()) }),
        event(1, "replica-1", StoreEvent::Recovered { term: 1, ids: vec![11, 99] }),
        append(10, "primary", 1, 11, None),
        append(11, "primary", 2, 12, None),
        event(12, "replica-1", StoreEvent::Truncate { to: 1, dropped: vec![99] }),
        append(13, "replica-1", 2, 12, Some("primary")),
    ];
    assert!(check_log_prefix(&store, &context(&history, &trace)).is_empty());
}

#[test]
fn a_replica_behind_its_primary_after_converge_within_breaks_convergence() {
    let store = configured("converge_within = \"2s\"");
    let history = History::new(Vec::new());
    let mut trace = vec![
        event(0, "primary", StoreEvent::BecamePrimary { term: 1 }),
        event(0, "replica-1", StoreEvent::BecameReplica { term: 1, following: Some("primary".into()) }),
        event(0, "replica-2", StoreEvent::BecameReplica { term: 1, following: Some("primary".into()) }),
        append(100, "primary", 1, 11, None),
        append(900, "primary", 2, 12, None),
        append(101, "replica-1", 1, 11, Some("primary")),
        append(2500, "replica-1", 2, 12, Some("primary")), // caught up within 2s of the heal at 1s
        append(102, "replica-2", 1, 11, Some("primary")),  // never gets entry 2
    ];
    trace.sort_by_key(|e| e.at);
    let violations = check_convergence(&store, &context(&history, &trace)).expect("judged");
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].message.contains("replica-2 did not converge by 3.000s: it had 1 entries"),
        "{}",
        violations[0].message
    );
    assert!(violations[0].message.contains("primary had 2 at 1.000s"));
}

#[test]
fn convergence_needs_a_primary_and_a_long_enough_heal() {
    let store = configured("converge_within = \"2s\"");
    let history = History::new(Vec::new());
    let replicas_only = [event(0, "replica-1", StoreEvent::BecameReplica { term: 1, following: None })];
    let violations = check_convergence(&store, &context(&history, &replicas_only)).expect("judged");
    assert!(violations[0].message.contains("group 1 had no primary at 3.000s"), "{violations:?}");
    let long = configured("converge_within = \"10s\"");
    assert!(check_convergence(&long, &context(&history, &replicas_only)).is_err(), "the heal ends before 10s");
    let caught_up = [
        event(0, "primary", StoreEvent::BecamePrimary { term: 1 }),
        append(100, "primary", 1, 11, None),
        append(101, "replica-1", 1, 11, Some("primary")),
        append(102, "replica-2", 1, 11, Some("primary")),
    ];
    assert_eq!(check_convergence(&store, &context(&history, &caught_up)), Ok(Vec::new()));
    // A replica down at the deadline is not held to it.
    let down =
        [TraceEvent { at: 500 * MS, source: HARNESS.into(), event: Happening::HostCrash { host: "replica-2".into() } }];
    let trace: Vec<_> = caught_up[..3].iter().cloned().chain(down).collect();
    assert_eq!(check_convergence(&store, &context(&history, &trace)), Ok(Vec::new()));
}

#[test]
fn a_read_without_the_clients_own_acknowledged_write_breaks_read_your_writes() {
    let history = History::new(vec![
        write(0, 1, 1, 10, 20),
        read(0, 1, 30, 40, &[]),       // misses its own write
        read(1, 1, 30, 40, &[]),       // another client's read: no obligation
        read(0, 1, 15, 25, &[]),       // invoked before the write completed
        read(0, 1, 50, 60, &[(0, 1)]), // sees it
        failed_write(0, 1, 2, 70),
        read(0, 1, 80, 90, &[(0, 1)]), // an unacknowledged write obliges nothing
    ]);
    let violations = check_read_your_writes(&history);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].message.contains("client 0's read #"), "{}", violations[0].message);
    assert!(violations[0].message.contains("without its own write c0.1"));
    assert!(violations[0].message.contains("served by replica-1"));
}

#[test]
fn a_read_that_goes_back_in_time_breaks_monotonic_reads() {
    let history = History::new(vec![
        read(0, 1, 10, 20, &[(1, 1), (1, 2)]),
        read(0, 1, 30, 40, &[(1, 1)]),         // shorter
        read(0, 1, 50, 60, &[(1, 1), (2, 9)]), // different: not an extension of the longest
        read(0, 2, 50, 60, &[]),               // another key
        read(1, 1, 50, 60, &[]),               // another client
    ]);
    let violations = check_monotonic_reads(&history);
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].message.contains("after its read #0 had returned [c1.1 c1.2]"), "{}", violations[0].message);
    let growing = History::new(vec![
        read(0, 1, 10, 20, &[(1, 1)]),
        read(0, 1, 15, 50, &[]), // overlaps the first: no order between them
        read(0, 1, 60, 70, &[(1, 1), (1, 2)]),
    ]);
    assert!(check_monotonic_reads(&growing).is_empty());
}

#[test]
fn a_read_of_a_write_that_later_vanishes_is_not_linearizable() {
    let history = History::new(vec![
        failed_write(0, 1, 1, 10),     // indeterminate
        read(1, 1, 30, 40, &[(0, 1)]), // saw it
        read(1, 1, 50, 60, &[]),       // and then it was gone
    ]);
    let violations = check_linearizable(&history).expect("judged");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("not linearizable"), "{}", violations[0].message);
    let fine = History::new(vec![
        failed_write(0, 1, 1, 10),
        read(1, 1, 30, 40, &[]),
        read(1, 1, 50, 60, &[(0, 1)]), // it took effect late: allowed
    ]);
    assert_eq!(check_linearizable(&fine), Ok(Vec::new()));
}

#[test]
fn figures_measure_lag_read_shares_and_write_outages() {
    let history = History::new(vec![
        write(0, 1, 1, 0, 10),
        failed_write(0, 1, 2, 100),
        failed_write(0, 1, 3, 200),
        write(0, 1, 4, 300, 350),
        read(0, 1, 400, 410, &[]),
        audit(0, 1, 420, &[]),
    ]);
    let (availability, outages) = write_outages(&history);
    assert!((availability - 0.5).abs() < 1e-9);
    assert_eq!(outages, vec![0.25], "from the first failed write's start to the next success's answer");
    assert_eq!(read_shares(&history).get("replica-1"), Some(&1.0), "audits are not the read load");
    let trace = [append(10, "primary", 1, 11, None), append(14, "replica-1", 1, 11, Some("primary"))];
    let lags = replication_lags(&context(&history, &trace));
    assert_eq!(lags.get("replica-1"), Some(&vec![4.0]));
    assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
    assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
}
