//! The checkers on hand-written typed traces and histories: every violation
//! branch, and the cases that must pass.

use faultline_harness::fault::{Action, PlannedFault};
use faultline_harness::history::{Happening, Operation, TraceEvent, HARNESS};
use faultline_harness::units::Dur;
use faultline_harness::{History, Nanos, Outcome};

use super::*;
use crate::apptier::protocol::{Ejection, Session, DB};

const MS: Nanos = 1_000_000;

fn event(at: Nanos, source: &str, event: TierEvent) -> TraceEvent<TierEvent> {
    TraceEvent { at, source: source.into(), event: Happening::System(event) }
}

fn harness(at: Nanos, happening: Happening<TierEvent>) -> TraceEvent<TierEvent> {
    TraceEvent { at, source: HARNESS.into(), event: happening }
}

fn crash(at: Nanos, host: &str) -> TraceEvent<TierEvent> {
    harness(at, Happening::HostCrash { host: host.into() })
}

fn restart(at: Nanos, host: &str) -> TraceEvent<TierEvent> {
    harness(at, Happening::HostRestart { host: host.into() })
}

fn route(at: Nanos, instance: u32, client: u32, seq: u64, panic: bool) -> TraceEvent<TierEvent> {
    event(at, LB, TierEvent::Route { instance, client, seq, attempt: 0, panic })
}

fn partition(a: &str, b: &str, from: Nanos, to: Nanos) -> PlannedFault {
    PlannedFault {
        id: 0,
        origin: "fault[0]".into(),
        at: Dur(Duration::from_nanos(from)),
        until: Some(Dur(Duration::from_nanos(to))),
        action: Action::Partition { a: vec![a.into()], b: vec![b.into()], oneway: false },
    }
}

fn op(
    client: u32,
    seq: u64,
    what: TierOp,
    invoked: Nanos,
    completed: Nanos,
    outcome: Outcome<Answer>,
) -> Operation<TierOp, Answer> {
    Operation { id: 0, client, seq, op: what, intended: invoked, invoked, completed, outstanding: 0, outcome }
}

fn judge<T>(
    tier: &AppTier,
    ops: Vec<Operation<TierOp, Answer>>,
    trace: &[TraceEvent<TierEvent>],
    faults: &[PlannedFault],
    check: impl Fn(&AppTier, &CheckContext<'_, AppTier>) -> T,
) -> T {
    let history = History::new(ops);
    let context = CheckContext { history: &history, trace, faults, heal_at: 20_000 * MS, end: 25_000 * MS };
    check(tier, &context)
}

fn misrouted(tier: &AppTier, trace: &[TraceEvent<TierEvent>], faults: &[PlannedFault]) -> Vec<Violation> {
    judge(tier, Vec::new(), trace, faults, |t, c| misroutes(t, c).violations)
}

// Defaults: checks every 200ms, 2 failures, 100ms timeout: a 520ms bound.

#[test]
fn routes_to_a_crashed_instance_past_the_bound_are_violations_and_within_it_are_not() {
    let tier = AppTier::from_knobs("");
    let within = [crash(1_000 * MS, "app-2"), route(1_500 * MS, 2, 0, 1, false)];
    assert!(misrouted(&tier, &within, &[]).is_empty());
    let past = [crash(1_000 * MS, "app-2"), route(1_500 * MS, 2, 0, 1, false), route(1_600 * MS, 2, 1, 4, false)];
    let found = misrouted(&tier, &past, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("1 requests to app-2 while it was down since 1.000000s"), "{}", found[0].message);
    // Once it is back, routes to it are fine.
    let back = [crash(1_000 * MS, "app-2"), restart(1_200 * MS, "app-2"), route(1_900 * MS, 2, 0, 1, false)];
    assert!(misrouted(&tier, &back, &[]).is_empty());
}

#[test]
fn an_instance_cut_off_from_the_database_is_failed_and_the_bound_restarts_with_the_lb() {
    let tier = AppTier::from_knobs("");
    let faults = [partition("app-1", "db", 1_000 * MS, 5_000 * MS)];
    let found = misrouted(&tier, &[route(2_000 * MS, 1, 0, 1, false)], &faults);
    assert!(found[0].message.contains("cut off from the database"), "{found:?}");
    // The lb restarted at 1.8s: its new incarnation has its own 520ms.
    let reset = [restart(1_800 * MS, LB), route(2_000 * MS, 1, 0, 1, false)];
    assert!(misrouted(&tier, &reset, &faults).is_empty());
    // A partition between other hosts is no failure of app-1.
    let elsewhere = [partition("app-2", "sessions", 1_000 * MS, 5_000 * MS)];
    assert!(misrouted(&tier, &[route(2_000 * MS, 1, 0, 1, false)], &elsewhere).is_empty());
}

#[test]
fn routes_in_panic_are_excused_only_while_too_few_members_are_sound() {
    let tier = AppTier::from_knobs("panic_threshold = 0.5");
    // The database is down: no member is ready, panic is right.
    let db_down = [crash(1_000 * MS, DB), route(3_000 * MS, 1, 0, 1, true)];
    assert!(misrouted(&tier, &db_down, &[]).is_empty());
    // One of three failed: panic is not called for, the route is not excused.
    let one = [crash(1_000 * MS, "app-1"), route(3_000 * MS, 1, 0, 1, true)];
    assert_eq!(misrouted(&tier, &one, &[]).len(), 1);
    // ... unless slow links to the lb may fail the others' checks.
    let slow = |host: &str| PlannedFault {
        action: Action::Latency {
            a: vec![LB.into()],
            b: vec![host.into()],
            latency: faultline_harness::units::DurRange::fixed(Dur::from_millis(80)),
        },
        ..partition(LB, host, 2_500 * MS, 4_000 * MS)
    };
    assert!(misrouted(&tier, &one, &[slow("app-2")]).is_empty());
    // Without a panic threshold nothing excuses it.
    let off = AppTier::from_knobs("panic_threshold = 0");
    assert_eq!(misrouted(&off, &db_down, &[]).len(), 1);
}

fn page(client: u32, seq: u64, id: u64, invoked: Nanos, completed: Nanos, answer: Answer) -> Operation<TierOp, Answer> {
    op(client, seq, TierOp::Page { session: Session { id, instance: 2 } }, invoked, completed, Outcome::Ok(answer))
}

fn login(client: u32, seq: u64, id: u64, invoked: Nanos, completed: Nanos) -> Operation<TierOp, Answer> {
    let session = Session { id, instance: 2 };
    op(client, seq, TierOp::Login, invoked, completed, Outcome::Ok(Answer::LoggedIn(session)))
}

fn continuity(tier: &AppTier, ops: Vec<Operation<TierOp, Answer>>) -> Vec<Violation> {
    judge(tier, ops, &[], &[], check_session_continuity)
}

#[test]
fn a_logout_inside_the_ttl_of_the_last_use_is_a_violation() {
    let tier = AppTier::from_knobs("session_ttl = \"10s\"");
    let ops = vec![
        login(0, 0, 7, 0, 50 * MS),
        page(0, 1, 7, 1_000 * MS, 1_050 * MS, Answer::Page { instance: 2 }),
        page(0, 2, 7, 3_000 * MS, 3_050 * MS, Answer::LoggedOut),
    ];
    let found = continuity(&tier, ops);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("was last used at 1.000000s and lives until 11.000000s"), "{}", found[0].message);
    // A login alone counts as a use.
    let ops = vec![login(0, 0, 7, 0, 50 * MS), page(0, 1, 7, 3_000 * MS, 3_050 * MS, Answer::LoggedOut)];
    assert_eq!(continuity(&tier, ops).len(), 1);
}

#[test]
fn expired_sessions_concurrent_uses_and_failed_requests_are_no_violation() {
    let tier = AppTier::from_knobs("session_ttl = \"10s\"");
    // Expired: 12s after the last use.
    let expired = vec![login(0, 0, 7, 0, 50 * MS), page(0, 1, 7, 12_000 * MS, 12_050 * MS, Answer::LoggedOut)];
    assert!(continuity(&tier, expired).is_empty());
    // The only use overlaps the logout: it may have happened after the lookup.
    let overlapping = vec![login(0, 0, 7, 0, 3_020 * MS), page(0, 1, 7, 3_000 * MS, 3_050 * MS, Answer::LoggedOut)];
    assert!(continuity(&tier, overlapping).is_empty());
    // A failed request is no "logged out".
    let failed = vec![
        login(0, 0, 7, 0, 50 * MS),
        op(
            0,
            1,
            TierOp::Page { session: Session { id: 7, instance: 2 } },
            1_000 * MS,
            1_050 * MS,
            Outcome::Failed("502".into()),
        ),
    ];
    assert!(continuity(&tier, failed).is_empty());
}

#[test]
fn a_token_bucket_is_held_to_its_envelope_both_ways() {
    // 10/s, burst 2: at t=0 two fit, the third does not; 100ms later one more fits.
    let rate = 10.0 / 1e9;
    let ok = [(0, true), (0, true), (0, false), (100 * MS, true), (100 * MS, false)];
    let found = bucket_breaches(&ok, rate, 2.0);
    assert!(found.over.is_empty() && found.refused_within.is_empty(), "{found:?}");
    assert!((found.peak - 2.0).abs() < 1e-9, "{found:?}");
    let over = [(0, true), (0, true), (50 * MS, true)];
    assert_eq!(bucket_breaches(&over, rate, 2.0).over, vec![2]);
    let refused = [(0, true), (200 * MS, false)];
    assert_eq!(bucket_breaches(&refused, rate, 2.0).refused_within, vec![1]);
}

#[test]
fn a_window_is_held_to_its_limit_in_every_window_both_ways() {
    let second = 1_000 * MS;
    // 2 per second: 2 at 0.9s and 2 at 1.1s is 4 in the window ending at 1.1s.
    let edge = [(900 * MS, true), (950 * MS, true), (1_100 * MS, true), (1_150 * MS, true)];
    let found = window_breaches(&edge, second, 2);
    assert_eq!(found.over, vec![2, 3]);
    assert!((found.peak - 4.0).abs() < 1e-9);
    let refused = [(0, true), (500 * MS, false)];
    assert_eq!(window_breaches(&refused, second, 2).refused_within, vec![1]);
    let fine = [(0, true), (10 * MS, true), (20 * MS, false), (1_000 * MS, true)];
    assert_eq!(window_breaches(&fine, second, 2), Breaches { over: vec![], refused_within: vec![], peak: 2.0 });
}

#[test]
fn the_rate_limit_checker_names_the_client_and_starts_afresh_with_the_lb() {
    let tier = AppTier::from_knobs("limiter = \"sliding-window\"\nlimit = \"2/s\"\nwindow = \"1s\"");
    let admit = |at: Nanos, seq: u64| event(at, LB, TierEvent::Admit { client: 3, seq });
    let ops =
        (0..3).map(|seq| op(3, seq, TierOp::Browse, seq * MS, seq * MS + 1, Outcome::Ok(Answer::Page { instance: 1 })));
    let trace = [admit(0, 0), admit(MS, 1), admit(2 * MS, 2)];
    let found = judge(&tier, ops.clone().collect(), &trace, &[], check_rate_limit);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]
        .message
        .starts_with("client 3 got 1 of its 3 admitted requests through beyond its limit of 2 per 1s"));
    assert_eq!(found[0].ops, vec![2]);
    // The lb restarted before the third: a fresh limiter, no breach.
    let reset = [admit(0, 0), admit(MS, 1), restart(2 * MS, LB), admit(2 * MS, 2)];
    assert!(judge(&tier, ops.clone().collect(), &reset, &[], check_rate_limit).is_empty());
    let refused = [event(0, LB, TierEvent::Throttle { client: 3, seq: 0 })];
    let found = judge(&tier, ops.collect(), &refused, &[], check_rate_limit);
    assert!(found[0].message.contains("refused 1 of client 3's requests with a 429"), "{found:?}");
    // Without a limiter there is no contract.
    assert!(judge(&AppTier::from_knobs(""), Vec::new(), &trace, &[], check_rate_limit).is_empty());
}

fn pool(at: Nanos, host: &str, start: bool) -> TraceEvent<TierEvent> {
    let host = host.to_string();
    harness(at, if start { Happening::PoolStart { host } } else { Happening::PoolStop { host } })
}

#[test]
fn scaling_is_held_to_its_bounds_and_its_stabilization_window() {
    let tier =
        AppTier::from_knobs("autoscale = true\ninstances = 2\ninstances_max = 4\nstabilization_window = \"10s\"");
    let start = [pool(0, "app-3", false), pool(0, "app-4", false)];
    let scaled = |more: &[TraceEvent<TierEvent>]| {
        let trace: Vec<_> = start.iter().chain(more).cloned().collect();
        judge(&tier, Vec::new(), &trace, &[], check_scaling_bounds)
    };
    // Up at 1s, down 11s later: fine.
    assert!(scaled(&[pool(1_000 * MS, "app-3", true), pool(12_000 * MS, "app-3", false)]).is_empty());
    // Down 3s after up: a flap.
    let found = scaled(&[pool(1_000 * MS, "app-3", true), pool(4_000 * MS, "app-3", false)]);
    assert!(found[0].message.contains("3s after app-3 was started"), "{found:?}");
    // Below the minimum (2).
    let found = scaled(&[pool(1_000 * MS, "app-2", false)]);
    assert!(found[0].message.contains("1 instances ran at 1.000000s, outside 2..=4"), "{found:?}");
    // Without autoscaling there is nothing to hold.
    assert!(judge(&AppTier::from_knobs(""), Vec::new(), &start, &[], check_scaling_bounds).is_empty());
}

fn refuse(at: Nanos) -> TraceEvent<TierEvent> {
    event(at, LB, TierEvent::NoUpstream { client: 0, seq: 1 })
}

#[test]
fn a_503_while_an_instance_is_alive_is_needless_and_while_none_is_it_is_not() {
    let tier = AppTier::from_knobs("instances = 2");
    let open = |trace: &[TraceEvent<TierEvent>]| judge(&tier, Vec::new(), trace, &[], check_fail_open);
    // The database is down, both instances alive: needless.
    let found = open(&[crash(1_000 * MS, DB), refuse(2_000 * MS)]);
    assert!(found[0].message.contains("while app-1, app-2 were alive and reachable"), "{found:?}");
    // Both instances down: nothing to route to.
    assert!(open(&[crash(1_000 * MS, "app-1"), crash(1_000 * MS, "app-2"), refuse(2_000 * MS)]).is_empty());
    // app-2 came back 100ms ago: within the restoration bound.
    let back =
        [crash(1_000 * MS, "app-1"), crash(1_000 * MS, "app-2"), restart(1_900 * MS, "app-2"), refuse(2_000 * MS)];
    assert!(open(&back).is_empty());
    // app-2 has been back and listening for 1s: needless.
    let listening = event(1_000 * MS, "app-2", TierEvent::AppStart { instance: 2, incarnation: 1 });
    let long = [crash(1_000 * MS, "app-1"), crash(1_000 * MS, "app-2"), restart(1_000 * MS, "app-2")];
    let booted: Vec<_> = long.iter().cloned().chain([listening, refuse(2_000 * MS)]).collect();
    assert!(open(&booted)[0].message.contains("while app-2 was alive"));
    // ... but without its app.start it is still booting: it could not answer.
    let booting: Vec<_> = long.iter().cloned().chain([refuse(2_000 * MS)]).collect();
    assert!(open(&booting).is_empty());
}

#[test]
fn eject_times_run_from_the_failure_or_the_lbs_restart_and_skip_scale_ins() {
    let tier = AppTier::from_knobs("");
    let eject = |at: Nanos, instance: u32| event(at, LB, TierEvent::Eject { instance, by: Ejection::Checks });
    let trace = [
        crash(1_000 * MS, "app-1"),
        eject(1_300 * MS, 1),
        crash(5_000 * MS, "app-2"),
        restart(5_100 * MS, LB),
        eject(5_500 * MS, 2),
    ];
    assert_eq!(judge(&tier, Vec::new(), &trace, &[], eject_times), vec![300 * MS, 400 * MS]);
    let liveness = AppTier::from_knobs("health_check = \"liveness\"");
    let faults = [partition("app-1", DB, 1_000 * MS, 2_000 * MS)];
    assert!(
        judge(&liveness, Vec::new(), &[eject(1_300 * MS, 1)], &faults, eject_times).is_empty(),
        "liveness cannot see it"
    );
}
