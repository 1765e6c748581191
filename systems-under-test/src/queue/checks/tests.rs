//! The checkers on hand-written traces and histories: each violation
//! branch, and a run that must pass.

use faultline_harness::history::{Happening, TraceEvent, HARNESS};
use faultline_harness::units::Dur;
use faultline_harness::{History, Operation};

use super::*;
use crate::kit::retry::Jitter;
use crate::queue::protocol::request_id;

const MS: Nanos = 1_000_000;
const S: Nanos = 1_000_000_000;

type Trace = Vec<TraceEvent<QueueEvent>>;

fn at(ms: u64, source: &str, event: QueueEvent) -> TraceEvent<QueueEvent> {
    TraceEvent { at: ms * MS, source: source.into(), event: Happening::System(event) }
}

fn broker(ms: u64, event: QueueEvent) -> TraceEvent<QueueEvent> {
    at(ms, BROKER, event)
}

fn harness(ms: u64, event: Happening<QueueEvent>) -> TraceEvent<QueueEvent> {
    TraceEvent { at: ms * MS, source: HARNESS.into(), event }
}

fn crash(ms: u64, host: &str) -> TraceEvent<QueueEvent> {
    harness(ms, Happening::HostCrash { host: host.into() })
}

fn restart(ms: u64, host: &str) -> TraceEvent<QueueEvent> {
    harness(ms, Happening::HostRestart { host: host.into() })
}

fn accepted(ms: u64, job: JobId) -> TraceEvent<QueueEvent> {
    broker(ms, QueueEvent::Accepted { job, key: job + 100, in_queue: 1 })
}

fn active(ms: u64, job: JobId, token: u64, worker: u32) -> TraceEvent<QueueEvent> {
    broker(ms, QueueEvent::Active { job, token, worker, attempt: 1 })
}

fn completed(ms: u64, job: JobId, token: u64) -> TraceEvent<QueueEvent> {
    broker(ms, QueueEvent::Completed { job, token, effect: job * 10, holder: true })
}

fn recovered(ms: u64, jobs: &[(JobId, JobState)]) -> TraceEvent<QueueEvent> {
    let jobs = jobs
        .iter()
        .map(|(job, state)| RecoveredJob {
            job: *job,
            state: *state,
            attempts: 0,
            effect: (*state == JobState::Completed).then_some(job * 10),
        })
        .collect();
    broker(ms, QueueEvent::Recovered { jobs })
}

/// An event of the sink's at `ms`: the run lasted at least until then.
fn lasted(ms: u64) -> TraceEvent<QueueEvent> {
    at(ms, SINK, QueueEvent::Overloaded { key: 0, job: 0 })
}

fn queue() -> Queue {
    Queue::defaults()
}

/// Runs `check` on `trace` with an empty history, heal at `heal_ms`, end at `end_ms`.
fn on<T>(trace: &Trace, heal_ms: u64, end_ms: u64, check: impl Fn(&CheckContext<'_, Queue>) -> T) -> T {
    let history = History::new(Vec::new());
    let context = CheckContext { history: &history, trace, faults: &[], heal_at: heal_ms * MS, end: end_ms * MS };
    check(&context)
}

fn messages(violations: &[Violation]) -> Vec<String> {
    violations.iter().map(|v| v.message.clone()).collect()
}

fn conservation(trace: &Trace, heal_ms: u64, end_ms: u64) -> CheckResult {
    on(trace, heal_ms, end_ms, |context| check_conservation(&queue(), context))
}

#[test]
fn conservation_holds_when_every_job_finishes_and_a_restart_loses_nothing() {
    let trace = vec![
        recovered(0, &[]),
        accepted(10, 1),
        accepted(11, 2),
        active(12, 1, 7, 1),
        completed(40, 1, 7),
        restart(50, BROKER),
        recovered(50, &[(1, JobState::Completed), (2, JobState::Waiting)]),
        active(60, 2, 8, 2),
        completed(90, 2, 8),
    ];
    // The record stops long before the workload's end (6s), exactly
    // settle_within after the heal: the jobs are judged by their last state.
    assert_eq!(conservation(&trace, 1_000, 6_000), Ok(Vec::new()));
}

#[test]
fn conservation_finds_a_job_accepted_twice_and_one_never_accepted() {
    let trace = vec![accepted(10, 1), accepted(11, 1), completed(20, 1, 3), completed(30, 9, 4)];
    let found = messages(&conservation(&trace, 1_000, 6_000).unwrap());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("job 1 was accepted twice"), "{found:?}");
    assert!(found[1].contains("job.completed for job 9, which it never accepted"), "{found:?}");
}

#[test]
fn conservation_finds_a_job_a_crash_lost_and_a_final_state_taken_back() {
    let trace = vec![
        accepted(10, 1),
        accepted(11, 2),
        active(12, 2, 5, 1),
        completed(20, 2, 5),
        crash(30, BROKER),
        restart(80, BROKER),
        recovered(80, &[(2, JobState::Active)]),
        completed(100, 2, 5),
    ];
    let found = messages(&conservation(&trace, 1_000, 6_000).unwrap());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("job 1, accepted at 0.010s, was waiting when the broker went down at 0.030s"));
    assert!(found[0].contains("an accepted job was lost"), "{found:?}");
    assert!(found[1].contains("job 2 was completed when the broker went down at 0.030s, and active after it"));
}

#[test]
fn conservation_wants_every_job_terminal_within_settle_within() {
    // Heal at 1s, settle_within 5s: job 1 (accepted before the heal) must be
    // terminal at 6s, job 2 (accepted at 2s) at 7s; job 3's deadline is past the end.
    let trace =
        vec![accepted(10, 1), active(20, 1, 1, 1), accepted(2_000, 2), completed(6_500, 2, 9), accepted(4_000, 3)];
    let found = messages(&conservation(&trace, 1_000, 8_000).unwrap());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("job 1, accepted at 0.010s, was still active at 6.000s, settle_within (5s) after the heal")
    );
    // With a heal phase shorter than settle_within, nothing before it can be judged.
    let short = conservation(&vec![accepted(10, 1), accepted(2_900, 2)], 1_000, 3_000);
    assert!(matches!(short, Err(Unjudged(ref why)) if why.contains("lengthen `heal`")), "{short:?}");
}

#[test]
fn effectively_once_counts_the_sinks_applied_effects_per_key() {
    let applied = |ms, job, token, effect| at(ms, SINK, QueueEvent::Applied { key: 42, job, token, effect });
    let once =
        vec![applied(10, 1, 1, 100), at(20, SINK, QueueEvent::Stored { key: 42, job: 1, token: 2, effect: 100 })];
    assert!(on(&once, 1_000, 2_000, check_effectively_once).is_empty());
    let twice = vec![applied(10, 1, 1, 100), applied(30, 1, 2, 101)];
    let found = messages(&on(&twice, 1_000, 2_000, check_effectively_once));
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("key 42 was applied 2 times at the sink: effect 100 at 0.010s (job 1, lease 1)"));
}

fn delayed(ms: u64, job: JobId, retry: u32, delay_ms: u64, previous_ms: u64) -> TraceEvent<QueueEvent> {
    broker(
        ms,
        QueueEvent::Delayed {
            job,
            token: 0,
            retry,
            delay_ns: delay_ms * MS,
            previous_ns: previous_ms * MS,
            error: "boom".into(),
        },
    )
}

fn dead(ms: u64, job: JobId, reason: DeadReason, error: &str, attempts: u32) -> TraceEvent<QueueEvent> {
    broker(ms, QueueEvent::Dead { job, reason, error: error.into(), attempts })
}

fn attempts(trace: &Trace) -> Vec<String> {
    messages(&on(trace, 1_000, 9_000, |context| check_attempts_bounded(&queue(), context)))
}

#[test]
fn attempts_bounded_allows_attempts_plus_stalls_and_well_recorded_dead_letters() {
    // attempts = 3: two retries, a stall, then out of attempts.
    let trace = vec![
        accepted(0, 1),
        active(1, 1, 1, 1),
        delayed(2, 1, 1, 50, 100),
        active(60, 1, 2, 1),
        broker(70, QueueEvent::Stalled { job: 1, token: 2, stalls: 1 }),
        active(80, 1, 3, 2),
        delayed(90, 1, 2, 80, 50),
        active(200, 1, 4, 3),
        dead(210, 1, DeadReason::Attempts, "a dependency failed", 3),
    ];
    assert_eq!(attempts(&trace), Vec::<String>::new());
}

#[test]
fn attempts_bounded_finds_extra_runs_retries_and_bad_dead_letters() {
    let runs = vec![accepted(0, 1), active(1, 1, 1, 1), active(2, 1, 2, 1), active(3, 1, 3, 1), active(4, 1, 4, 1)];
    let found = attempts(&runs);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("job 1 started its run 4 (attempt 1) with 0 stall(s): attempts = 3 allows 3"));
    let retries = vec![accepted(0, 2), delayed(1, 2, 1, 1, 1), delayed(2, 2, 2, 1, 1), delayed(3, 2, 3, 1, 1)];
    assert!(attempts(&retries)[0].contains("job 2 was retried 3 times: attempts = 3 allows 2"));
    let no_error = vec![accepted(0, 3), dead(1, 3, DeadReason::Permanent, " ", 1)];
    assert!(attempts(&no_error)[0].contains("without its last error"));
    let miscounted = vec![accepted(0, 4), delayed(1, 4, 1, 1, 1), dead(2, 4, DeadReason::Permanent, "bad", 1)];
    assert!(attempts(&miscounted)[0].contains("recording 1 failed attempts; it failed 2"));
    let early = vec![accepted(0, 5), dead(1, 5, DeadReason::Attempts, "x", 1)];
    assert!(attempts(&early)[0].contains("out of attempts after 1; attempts = 3"));
    let stalled = vec![accepted(0, 6), dead(1, 6, DeadReason::Stalled, "job stalled more than allowable limit", 0)];
    assert!(attempts(&stalled).is_empty());
}

fn backoff_queue(jitter: Jitter) -> Queue {
    Queue { jitter, backoff_base: Dur::from_millis(100), backoff_cap: Dur::from_secs(1), ..queue() }
}

fn envelope(queue: &Queue, trace: &Trace) -> Vec<String> {
    messages(&on(trace, 1_000, 9_000, |context| check_backoff_envelope(queue, context)))
}

#[test]
fn backoff_envelope_holds_for_delays_inside_it_and_jobs_ready_on_time() {
    let none = backoff_queue(Jitter::None);
    let trace = vec![
        delayed(0, 1, 1, 100, 100),
        broker(100, QueueEvent::Ready { job: 1 }),
        delayed(200, 1, 2, 200, 100),
        broker(401, QueueEvent::Ready { job: 1 }),
    ];
    assert_eq!(envelope(&none, &trace), Vec::<String>::new());
    let full = backoff_queue(Jitter::Full);
    assert!(envelope(&full, &vec![delayed(0, 1, 1, 3, 100), broker(3, QueueEvent::Ready { job: 1 })]).is_empty());
}

#[test]
fn backoff_envelope_finds_delays_outside_it_misnumbered_retries_and_late_or_early_jobs() {
    let none = backoff_queue(Jitter::None);
    let outside = envelope(&none, &vec![delayed(0, 1, 1, 50, 100)]);
    assert!(outside[0].contains("retry 1 of job 1 waits 50ms, outside its envelope 100ms..100ms (None jitter"));
    let numbering = envelope(&none, &vec![delayed(0, 1, 2, 200, 100)]);
    assert!(numbering[0].contains("numbered 2 with a previous delay of 100ms; it should be retry 1 after 100ms"));
    let early = envelope(&none, &vec![delayed(0, 1, 1, 100, 100), broker(99, QueueEvent::Ready { job: 1 })]);
    assert!(early[0].contains("job 1 was ready again 99ms after its failure; its backoff was 100ms"));
    let late = envelope(&none, &vec![delayed(0, 1, 1, 100, 100), broker(300, QueueEvent::Ready { job: 1 })]);
    assert!(late[0].contains("ready again 300ms after"), "{late:?}");
    // Across a broker reset the job is ready when the broker is back: not judged.
    let reset = vec![
        delayed(0, 1, 1, 100, 100),
        crash(50, BROKER),
        restart(400, BROKER),
        broker(400, QueueEvent::Ready { job: 1 }),
    ];
    assert!(envelope(&none, &reset).is_empty());
}

fn bounded(queue: &Queue, trace: &Trace) -> Vec<String> {
    messages(&on(trace, 1_000, 9_000, |context| check_bounded_queue(queue, context)))
}

#[test]
fn bounded_queue_finds_a_queue_over_capacity_by_replay_and_by_the_brokers_count() {
    let small = Queue { capacity: Some(2), ..queue() };
    let mut trace = vec![accepted(0, 1), accepted(1, 2), completed(2, 1, 1), accepted(3, 3)];
    assert!(bounded(&small, &trace).is_empty());
    trace.push(accepted(4, 4));
    let found = bounded(&small, &trace);
    assert_eq!(found, vec!["the queue held 3 jobs not yet terminal; capacity is 2".to_string()]);
    let counted = vec![broker(0, QueueEvent::Accepted { job: 1, key: 1, in_queue: 3 })];
    assert!(bounded(&small, &counted)[0].contains("accepted a job with 3 in the queue; capacity is 2"));
    // Unbounded: no count to hold.
    assert!(bounded(&queue_unbounded(), &trace).is_empty());
}

fn queue_unbounded() -> Queue {
    Queue { capacity: None, ..queue() }
}

#[test]
fn bounded_queue_wants_every_submit_the_api_received_answered_in_time() {
    let api = |ms, event| at(ms, API, event);
    let answered = |ms, request| api(ms, QueueEvent::ApiAnswer { request, answer: SubmitAnswer::Full });
    let trace = vec![
        api(0, QueueEvent::ApiSubmit { request: 1 }),
        answered(10, 1),
        api(20, QueueEvent::ApiSubmit { request: 2 }),
        answered(700, 2),
        api(800, QueueEvent::ApiSubmit { request: 3 }),
        api(900, QueueEvent::ApiSubmit { request: 4 }),
        crash(950, API),
        restart(2_000, API),
        api(2_100, QueueEvent::ApiSubmit { request: 5 }),
        // A submit received less than api_timeout before the run's end is not judged.
        api(4_800, QueueEvent::ApiSubmit { request: 6 }),
        answered(5_000, 99),
    ];
    let found = bounded(&queue_unbounded(), &trace);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("answered submit 0x2 with Full 680ms after receiving it; api_timeout is 500ms"));
    assert!(found[1].contains("received submit 0x5 at 2.100s and never answered it"), "{found:?}");
}

#[test]
fn bounded_queue_wants_an_answer_before_the_client_gives_up_even_without_api_timeout() {
    let waits = Queue { api_timeout: None, ..queue_unbounded() };
    let submit = |seq: u64, completed_ms: u64, outcome| Operation {
        id: seq as usize,
        client: 1,
        seq,
        op: QueueOp::Submit { key: seq, payload: 1 },
        intended: 0,
        invoked: 0,
        completed: completed_ms * MS,
        outstanding: 0,
        outcome,
    };
    let api = |ms, event| at(ms, API, event);
    let answer = |request| QueueEvent::ApiAnswer { request, answer: SubmitAnswer::Unavailable };
    // Submit 3 never reached the api (the network lost it): outside the promise.
    let (hung, late, lost_answer) = (request_id(1, 0), request_id(1, 1), request_id(1, 2));
    let trace = vec![
        api(10, QueueEvent::ApiSubmit { request: hung }),
        api(20, QueueEvent::ApiSubmit { request: late }),
        api(30, QueueEvent::ApiSubmit { request: lost_answer }),
        api(40, answer(lost_answer)),
        api(3_000, answer(late)),
    ];
    let history = History::new(vec![
        submit(0, 1_010, Outcome::Timeout),
        submit(1, 1_020, Outcome::Timeout),
        submit(2, 1_030, Outcome::Timeout),
        submit(3, 1_040, Outcome::Timeout),
    ]);
    let context = CheckContext { history: &history, trace: &trace, faults: &[], heal_at: 5 * S, end: 9 * S };
    let found = messages(&check_bounded_queue(&waits, &context));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains(
        "client 1 gave up on submit 0x100000000 at 1.010s: the api had received it at 0.010s and never answered"
    ));
    assert!(found[1].contains("answered only at 3.000s"), "{found:?}");
}

fn view(state: Option<JobState>, attempts: u32, effect: Option<u64>, at_ms: u64) -> JobView {
    JobView { state, attempts, effect, error: None, token: effect.map(|e| e + 1), at: at_ms * MS }
}

fn status_op(id: usize, job: JobId, view: JobView) -> Operation<QueueOp, QueueRes> {
    Operation {
        id,
        client: 0,
        seq: id as u64,
        op: QueueOp::Status { job },
        intended: view.at,
        invoked: view.at,
        completed: view.at,
        outstanding: 0,
        outcome: Outcome::Ok(QueueRes::Status(view)),
    }
}

fn submit_op(id: usize, job: JobId) -> Operation<QueueOp, QueueRes> {
    Operation {
        id,
        client: 0,
        seq: id as u64,
        op: QueueOp::Submit { key: 1, payload: 1 },
        intended: 0,
        invoked: 0,
        completed: 0,
        outstanding: 0,
        outcome: Outcome::Ok(QueueRes::Accepted { job }),
    }
}

fn legal(ops: Vec<Operation<QueueOp, QueueRes>>) -> Vec<String> {
    let history = History::new(ops);
    let context = CheckContext { history: &history, trace: &[], faults: &[], heal_at: 5 * S, end: 9 * S };
    messages(&check_legal_status(&context))
}

#[test]
fn legal_status_accepts_any_path_to_one_final_status() {
    use JobState::*;
    let ops = vec![
        submit_op(0, 1),
        status_op(1, 1, view(Some(Waiting), 0, None, 10)),
        status_op(2, 1, view(Some(Delayed), 1, None, 20)),
        status_op(3, 1, view(Some(Active), 1, None, 30)),
        status_op(4, 1, view(Some(Completed), 1, Some(5), 40)),
        status_op(5, 1, view(Some(Completed), 1, Some(5), 50)),
    ];
    assert_eq!(legal(ops), Vec::<String>::new());
}

#[test]
fn legal_status_finds_a_final_status_that_changed_a_job_lost_and_attempts_going_down() {
    use JobState::*;
    let changed = legal(vec![
        status_op(0, 1, view(Some(Completed), 1, Some(5), 40)),
        status_op(1, 1, view(Some(Completed), 1, Some(6), 30)),
    ]);
    // Ordered by the broker's time, not the operations' order.
    assert_eq!(changed.len(), 1);
    assert!(changed[0].contains(
        "was completed (effect Some(6), by lease Some(7), 1 failed attempts) at 0.030s, then completed (effect Some(5)"
    ));
    assert!(changed[0].ends_with("a final status changed"));
    let reopened =
        legal(vec![status_op(0, 1, view(Some(Dead), 3, None, 10)), status_op(1, 1, view(Some(Delayed), 3, None, 20))]);
    assert!(reopened[0].ends_with("a final status changed"), "{reopened:?}");
    let lost = legal(vec![status_op(0, 2, view(Some(Active), 0, None, 10)), status_op(1, 2, view(None, 0, None, 20))]);
    assert!(lost[0].ends_with("a known job became unknown"), "{lost:?}");
    let unknown = legal(vec![submit_op(0, 3), status_op(1, 3, view(None, 0, None, 20))]);
    assert!(unknown[0].contains("job 3 was accepted with a 202, then its status at 0.020s was unknown"));
    let fewer = legal(vec![
        status_op(0, 4, view(Some(Delayed), 2, None, 10)),
        status_op(1, 4, view(Some(Waiting), 1, None, 20)),
    ]);
    assert!(fewer[0].ends_with("failed attempts went down"), "{fewer:?}");
}

#[test]
fn latency_slo_holds_the_p99_and_counts_jobs_never_finished() {
    let slo = Queue { latency_slo: Some(Dur::from_secs(1)), ..queue() };
    let fast: Trace = (0..100).flat_map(|job| [accepted(job * 10, job), completed(job * 10 + 200, job, job)]).collect();
    assert_eq!(on(&fast, 5_000, 9_000, |c| check_latency_slo(&slo, c)), Ok(Vec::new()));
    assert_eq!(on(&fast, 5_000, 9_000, |c| check_latency_slo(&queue(), c)), Ok(Vec::new()), "no SLO, no check");
    let mut stuck = fast.clone();
    stuck.extend((100..102).map(|job| accepted(100, job)));
    stuck.push(lasted(9_000));
    let found = messages(&on(&stuck, 5_000, 9_000, |c| check_latency_slo(&slo, c)).unwrap());
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("was 8.9s, above latency_slo 1s (102 jobs; 2 never finished"), "{found:?}");
}

fn sink_call(ms: u64) -> TraceEvent<QueueEvent> {
    at(ms, SINK, QueueEvent::Applied { key: ms, job: ms, token: 0, effect: ms })
}

#[test]
fn sink_load_slo_holds_the_busiest_100ms_after_each_recovery() {
    let slo = Queue { sink_load_slo: Some(100.0), ..queue() };
    let mut trace = vec![crash(1_000, SINK), restart(2_000, SINK)];
    // Ten calls within 100ms right after the recovery: 100 calls/s, within the SLO.
    trace.extend((0..10).map(|i| sink_call(2_000 + i * 10)));
    let check = |trace: &Trace| on(trace, 5_000, 9_000, |c| check_sink_load_slo(&slo, c));
    assert_eq!(check(&trace), Ok(Vec::new()));
    trace.push(sink_call(2_095));
    let found = messages(&check(&trace).unwrap());
    assert!(found[0].contains("busiest 100ms in the 2s after it came back at 2.000s ran at 110 calls/s"), "{found:?}");
    // A burst before the crash or 2s after the recovery is not the SLO's.
    let elsewhere: Trace = [crash(1_000, SINK), restart(2_000, SINK)]
        .into_iter()
        .chain((0..20).map(|i| sink_call(500 + i)))
        .chain((0..20).map(|i| sink_call(4_100 + i)))
        .collect();
    assert_eq!(check(&elsewhere), Ok(Vec::new()));
    let never = check(&vec![sink_call(10)]);
    assert!(matches!(never, Err(Unjudged(ref why)) if why.contains("never came back")), "{never:?}");
}

#[test]
fn figures_count_bursts_redeliveries_and_duplicate_effects() {
    let trace = vec![
        accepted(0, 1),
        accepted(0, 2),
        active(10, 1, 1, 1),
        active(10, 2, 2, 2),
        crash(100, "worker-1"),
        broker(1_500, QueueEvent::Stalled { job: 1, token: 1, stalls: 1 }),
        active(1_600, 1, 3, 2),
        delayed(1_700, 1, 1, 100, 100),
        delayed(1_700, 2, 1, 100, 100),
        broker(1_800, QueueEvent::Ready { job: 1 }),
        broker(1_800, QueueEvent::Ready { job: 2 }),
        at(1_900, SINK, QueueEvent::Applied { key: 7, job: 1, token: 3, effect: 1 }),
        at(1_950, SINK, QueueEvent::Applied { key: 7, job: 1, token: 4, effect: 2 }),
    ];
    let figures: BTreeMap<&str, f64> = on(&trace, 5_000, 9_000, |c| figures(&queue(), c)).into_iter().collect();
    assert_eq!(figures["ready_burst_max"], 2.0);
    assert_eq!(figures["redelivery_delay_max_s"], 1.5);
    assert_eq!(figures["redelivery_bound_s"], 2.1);
    assert_eq!(figures["duplicate_effects"], 1.0);
    assert_eq!(figures["retries_per_job"], 1.0);
    assert_eq!(figures["wait_mean_s"], 0.01);
}
