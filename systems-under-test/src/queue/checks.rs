//! The job queue's invariants and figures: pure functions of a finished
//! run. They read the broker's typed events (every change of a job's state,
//! and what a restarted broker found in its log), the broker's and the
//! api's crashes and restarts, the api's and the sink's own events, and the
//! clients' history of status look-ups. Nothing here takes the broker's
//! word for a job's state where a second witness exists: the sink reports
//! the effects it applied, the api the answers it gave, the clients what
//! the status endpoint showed them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use faultline_harness::fault::{Action, PlannedFault};
use faultline_harness::history::nanos;
use faultline_harness::system::Unjudged;
use faultline_harness::{CheckContext, CheckResult, Nanos, Outcome, Violation};

use super::knobs::Queue;
use super::protocol::{
    request_id, DeadReason, JobId, JobState, JobView, QueueEvent, QueueOp, QueueRes, RecoveredJob, SubmitAnswer, API,
    BROKER, SINK,
};

/// A scheduled wake-up lands on the first tick at or after its time, and a
/// scenario's tick is at most 100ms: a delayed job is ready within this of
/// its backoff's end.
pub const READY_SLACK: Nanos = 101_000_000;

/// The api answers within `api_timeout` plus this (its own hops).
pub const ANSWER_SLACK: Nanos = 50_000_000;

/// The window of the sink's load figures and SLO, and how long after a
/// recovery they look.
pub const LOAD_WINDOW: Nanos = 100_000_000;
pub const RECOVERY_SPAN: Nanos = 2_000_000_000;

fn seconds(at: Nanos) -> String {
    format!("{:.3}s", at as f64 / 1e9)
}

fn span(duration: Nanos) -> String {
    faultline_harness::units::format_duration(Duration::from_nanos(duration))
}

/// The last moment the run recorded: its last trace entry or operation's
/// end (at most the workload's end). The simulation stops when the clients
/// are done, which is up to one gap between arrivals before `context.end`;
/// what the run never reached (an answer, a job's end) is judged up to here.
fn horizon(context: &CheckContext<'_, Queue>) -> Nanos {
    let traced = context.trace.iter().map(|entry| entry.at).max().unwrap_or(0);
    let operated = context.history.ops.iter().map(|op| op.completed).max().unwrap_or(0);
    traced.max(operated).min(context.end)
}

/// What the checkers follow of the broker, in order: its resets (its memory
/// is gone; a restart reads the log back) and its events.
#[derive(Clone, Copy, Debug)]
enum Step<'a> {
    Reset,
    Event(&'a QueueEvent),
}

fn broker_steps<'a>(context: &CheckContext<'a, Queue>) -> impl Iterator<Item = (Nanos, Step<'a>)> + 'a {
    context.trace.iter().filter_map(|entry| {
        if entry.reset_host() == Some(BROKER) {
            return Some((entry.at, Step::Reset));
        }
        let event = entry.system()?;
        (entry.source == BROKER).then_some((entry.at, Step::Event(event)))
    })
}

/// One job as the replay of the broker's events has it.
#[derive(Clone, Debug)]
struct Tracked {
    accepted_at: Nanos,
    /// Every state it was in, from when.
    states: Vec<(Nanos, JobState)>,
    effect: Option<u64>,
}

impl Tracked {
    fn state(&self) -> JobState {
        self.states.last().expect("a tracked job has a state").1
    }

    /// Its state at `at`.
    fn state_at(&self, at: Nanos) -> JobState {
        let index = self.states.partition_point(|(since, _)| *since <= at);
        self.states[index.saturating_sub(1)].1
    }

    /// When it first became terminal after being accepted, if it did.
    fn finished_at(&self) -> Option<Nanos> {
        self.states.iter().find(|(_, state)| state.terminal()).map(|(at, _)| *at)
    }
}

/// Each job's state, and the effect it completed with, at one moment.
type States = BTreeMap<JobId, (JobState, Option<u64>)>;

/// The replay of the broker's events: every job's states, and what a
/// restarted broker lost.
#[derive(Default)]
struct Replay {
    jobs: BTreeMap<JobId, Tracked>,
    /// The jobs' states when the broker was last reset, until it recovers.
    snapshot: Option<(Nanos, States)>,
    violations: Vec<Violation>,
}

impl Replay {
    fn of(context: &CheckContext<'_, Queue>) -> Replay {
        let mut replay = Replay::default();
        for (at, step) in broker_steps(context) {
            match step {
                Step::Reset => {
                    if replay.snapshot.is_none() {
                        let states = replay.jobs.iter().map(|(job, t)| (*job, (t.state(), t.effect))).collect();
                        replay.snapshot = Some((at, states));
                    }
                }
                Step::Event(QueueEvent::Recovered { jobs }) => replay.recover(at, jobs),
                Step::Event(event) => replay.event(at, event),
            }
        }
        replay
    }

    fn event(&mut self, at: Nanos, event: &QueueEvent) {
        let (Some(job), Some(state)) = (event.job(), event.leaves()) else { return };
        if let QueueEvent::Accepted { .. } = event {
            if self.jobs.contains_key(&job) {
                self.violations.push(Violation::new(format!("job {job} was accepted twice")).at(at));
                return;
            }
            self.jobs.insert(job, Tracked { accepted_at: at, states: vec![(at, state)], effect: None });
            return;
        }
        let Some(tracked) = self.jobs.get_mut(&job) else {
            let message = format!("the broker reported {} for job {job}, which it never accepted", event_name(event));
            self.violations.push(Violation::new(message).at(at));
            return;
        };
        tracked.states.push((at, state));
        tracked.effect = match event {
            QueueEvent::Completed { effect, .. } => Some(*effect),
            _ => None,
        };
    }

    /// A restarted broker's table against the jobs' states at the reset:
    /// an accepted job it no longer has is lost; a final state it no longer
    /// has was taken back.
    fn recover(&mut self, at: Nanos, recovered: &[RecoveredJob]) {
        let found: BTreeMap<JobId, &RecoveredJob> = recovered.iter().map(|r| (r.job, r)).collect();
        if let Some((reset_at, before)) = self.snapshot.take() {
            for (job, (state, effect)) in before {
                let accepted_at = self.jobs[&job].accepted_at;
                match found.get(&job) {
                    None => {
                        let message = format!(
                            "job {job}, accepted at {}, was {} when the broker went down at {}; the broker that came \
                             back at {} has no trace of it: an accepted job was lost",
                            seconds(accepted_at),
                            state.name(),
                            seconds(reset_at),
                            seconds(at)
                        );
                        self.violations.push(Violation::new(message).at(at));
                        self.jobs.remove(&job);
                    }
                    Some(found) if state.terminal() && (found.state != state || found.effect != effect) => {
                        let message = format!(
                            "job {job} was {} when the broker went down at {}, and {} after it came back at {}: a \
                             final state was lost",
                            state.name(),
                            seconds(reset_at),
                            found.state.name(),
                            seconds(at)
                        );
                        self.violations.push(Violation::new(message).at(at));
                    }
                    Some(_) => {}
                }
            }
        }
        for found in recovered {
            let tracked = self.jobs.entry(found.job).or_insert_with(|| Tracked {
                // Logged but never answered (the broker went down first).
                accepted_at: at,
                states: Vec::new(),
                effect: None,
            });
            if tracked.states.last().map(|(_, state)| *state) != Some(found.state) {
                tracked.states.push((at, found.state));
            }
            tracked.effect = found.effect;
        }
    }
}

fn event_name(event: &QueueEvent) -> &'static str {
    faultline_harness::SystemEvent::kind(event)
}

/// `conservation`: the replay of the broker's events gives each job one
/// state at a time; the broker must not report a job it never accepted,
/// accept one twice, lose an accepted job or a final state across a
/// restart, and every accepted job must be terminal within `settle_within`
/// of the heal phase's start (or of its acceptance, if later).
pub fn check_conservation(queue: &Queue, context: &CheckContext<'_, Queue>) -> CheckResult {
    let mut replay = Replay::of(context);
    let settle = nanos(queue.settle_within.0);
    let mut unjudged = 0usize;
    // Jobs whose deadline lies past the workload's end cannot be judged. The
    // simulation may stop a little before that end (when the clients' next
    // arrivals fall past it), so a job's state there is its last one: the
    // planned end, not the last event, keeps a heal phase of exactly
    // settle_within judgeable.
    for (job, tracked) in &replay.jobs {
        let deadline = tracked.accepted_at.max(context.heal_at) + settle;
        if deadline > context.end {
            unjudged += usize::from(tracked.accepted_at < context.heal_at);
            continue;
        }
        let state = tracked.state_at(deadline);
        if !state.terminal() {
            let from = if tracked.accepted_at > context.heal_at { "its acceptance" } else { "the heal phase's start" };
            let message = format!(
                "job {job}, accepted at {}, was still {} at {}, settle_within ({}) after {from}",
                seconds(tracked.accepted_at),
                state.name(),
                seconds(deadline),
                queue.settle_within,
            );
            replay.violations.push(Violation::new(message).at(deadline));
        }
    }
    if replay.violations.is_empty() && unjudged > 0 {
        return Err(Unjudged(format!(
            "{unjudged} job(s) accepted before the heal phase could not be judged: the workload ended at {}, \
             before settle_within ({}) after the heal phase's start; lengthen `heal`",
            seconds(context.end),
            queue.settle_within
        )));
    }
    Ok(replay.violations)
}

/// `effectively-once`: at most one applied effect per key, by the sink's own account.
pub fn check_effectively_once(context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let mut applied: BTreeMap<u64, Vec<(Nanos, JobId, u64, u64)>> = BTreeMap::new();
    for (at, source, event) in context.events() {
        if let (SINK, QueueEvent::Applied { key, job, token, effect }) = (source, event) {
            applied.entry(*key).or_default().push((at, *job, *token, *effect));
        }
    }
    applied
        .into_iter()
        .filter(|(_, effects)| effects.len() > 1)
        .map(|(key, effects)| {
            let shown: Vec<String> = effects
                .iter()
                .map(|(at, job, token, effect)| {
                    format!("effect {effect} at {} (job {job}, lease {token})", seconds(*at))
                })
                .collect();
            let message = format!("key {key} was applied {} times at the sink: {}", effects.len(), shown.join(", "));
            Violation::new(message).at(effects[1].0)
        })
        .collect()
}

/// Per job: runs, stalls and failed runs, as the broker's events count them.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    runs: u32,
    stalls: u32,
    retries: u32,
}

/// `attempts-bounded`: a job runs at most `attempts` times plus its stalls,
/// is retried at most `attempts - 1` times, and a dead job records its last
/// error and the attempts it failed.
pub fn check_attempts_bounded(queue: &Queue, context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let mut counts: BTreeMap<JobId, Counts> = BTreeMap::new();
    let mut violations = Vec::new();
    for (at, step) in broker_steps(context) {
        let Step::Event(event) = step else { continue };
        let Some(job) = event.job() else { continue };
        let count = counts.entry(job).or_default();
        match event {
            QueueEvent::Active { attempt, .. } => {
                count.runs += 1;
                if count.runs > queue.attempts + count.stalls {
                    let message = format!(
                        "job {job} started its run {} (attempt {attempt}) with {} stall(s): attempts = {} allows {}",
                        count.runs,
                        count.stalls,
                        queue.attempts,
                        queue.attempts + count.stalls
                    );
                    violations.push(Violation::new(message).at(at));
                }
            }
            QueueEvent::Stalled { .. } => count.stalls += 1,
            QueueEvent::Delayed { .. } => {
                count.retries += 1;
                if count.retries >= queue.attempts {
                    let message = format!(
                        "job {job} was retried {} times: attempts = {} allows {}",
                        count.retries,
                        queue.attempts,
                        queue.attempts - 1
                    );
                    violations.push(Violation::new(message).at(at));
                }
            }
            QueueEvent::Dead { reason, error, attempts, .. } => {
                violations.extend(dead_record(queue, job, *count, *reason, error, *attempts).map(|v| v.at(at)));
            }
            _ => {}
        }
    }
    violations
}

/// What is wrong with a dead job's record, if anything.
fn dead_record(
    queue: &Queue,
    job: JobId,
    count: Counts,
    reason: DeadReason,
    error: &str,
    attempts: u32,
) -> Option<Violation> {
    let failed = count.retries + u32::from(reason != DeadReason::Stalled);
    let message = if error.trim().is_empty() {
        format!("job {job} went to the dead-letter set without its last error")
    } else if attempts != failed {
        format!("job {job} went to the dead-letter set recording {attempts} failed attempts; it failed {failed}")
    } else if reason == DeadReason::Attempts && attempts != queue.attempts {
        format!("job {job} went to the dead-letter set out of attempts after {attempts}; attempts = {}", queue.attempts)
    } else {
        return None;
    };
    Some(Violation::new(message))
}

/// A retry waiting out its backoff: when it began, and how long it waits.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    at: Nanos,
    delay: Nanos,
    /// Broker resets so far when it began.
    resets: u32,
}

/// `backoff-envelope`: every retry's drawn delay lies in its policy's
/// envelope (from its retry number and the previous delay), retries are
/// numbered in turn, and the job is ready again when its delay ends, not
/// before and not later than a tick after (unless the broker was down).
pub fn check_backoff_envelope(queue: &Queue, context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let backoff = queue.retry_backoff();
    let base = nanos(queue.backoff_base.0);
    let mut waiting: BTreeMap<JobId, Waiting> = BTreeMap::new();
    let mut last: BTreeMap<JobId, (u32, Nanos, u32)> = BTreeMap::new();
    let mut resets = 0u32;
    let mut violations = Vec::new();
    for (at, step) in broker_steps(context) {
        match step {
            Step::Reset => resets += 1,
            Step::Event(QueueEvent::Delayed { job, retry, delay_ns, previous_ns, .. }) => {
                let previous = Duration::from_nanos(*previous_ns);
                let (low, high) = backoff.envelope(*retry, previous);
                if *delay_ns < nanos(low) || *delay_ns > nanos(high) {
                    let message = format!(
                        "retry {retry} of job {job} waits {}, outside its envelope {}..{} ({:?} jitter, base {}, \
                         factor {}, cap {})",
                        span(*delay_ns),
                        span(nanos(low)),
                        span(nanos(high)),
                        queue.jitter,
                        queue.backoff_base,
                        queue.backoff_factor,
                        queue.backoff_cap
                    );
                    violations.push(Violation::new(message).at(at));
                }
                let (expected_retry, expected_previous) = match last.get(job) {
                    Some((retry, delay, when)) if *when == resets => (retry + 1, *delay),
                    Some(_) => (*retry, *previous_ns),
                    None => (1, base),
                };
                if (*retry, *previous_ns) != (expected_retry, expected_previous) {
                    let message = format!(
                        "job {job}'s retry was numbered {retry} with a previous delay of {}; it should be retry \
                         {expected_retry} after {}",
                        span(*previous_ns),
                        span(expected_previous)
                    );
                    violations.push(Violation::new(message).at(at));
                }
                last.insert(*job, (*retry, *delay_ns, resets));
                waiting.insert(*job, Waiting { at, delay: *delay_ns, resets });
            }
            Step::Event(QueueEvent::Ready { job }) => {
                let Some(wait) = waiting.remove(job) else { continue };
                let waited = at - wait.at;
                if wait.resets == resets && (waited < wait.delay || waited > wait.delay + READY_SLACK) {
                    let message = format!(
                        "job {job} was ready again {} after its failure; its backoff was {}",
                        span(waited),
                        span(wait.delay)
                    );
                    violations.push(Violation::new(message).at(at));
                }
            }
            Step::Event(_) => {}
        }
    }
    violations
}

/// `bounded-queue`: the jobs not yet terminal never outnumber `capacity`
/// (by the replay of the broker's events, and by its own count), and every
/// submit the api received got its answer: within `api_timeout`, and before
/// its client gave up (unless the api went down first; a request the
/// network lost before the api, or an answer it lost after, is outside).
pub fn check_bounded_queue(queue: &Queue, context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(capacity) = queue.capacity {
        violations.extend(over_capacity(capacity, context));
    }
    violations.extend(unanswered(queue, context));
    violations
}

fn over_capacity(capacity: u32, context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let capacity = capacity as usize;
    let mut live: BTreeSet<JobId> = BTreeSet::new();
    let mut violations = Vec::new();
    let mut over = false;
    for (at, step) in broker_steps(context) {
        let Step::Event(event) = step else { continue };
        match event {
            QueueEvent::Recovered { jobs } => {
                live = jobs.iter().filter(|j| !j.state.terminal()).map(|j| j.job).collect();
            }
            QueueEvent::Accepted { in_queue, .. } if *in_queue as usize > capacity => {
                let message = format!("the broker accepted a job with {in_queue} in the queue; capacity is {capacity}");
                violations.push(Violation::new(message).at(at));
            }
            _ => {}
        }
        if let (Some(job), Some(state)) = (event.job(), event.leaves()) {
            if state.terminal() {
                live.remove(&job);
            } else {
                live.insert(job);
            }
        }
        // One violation per spell above capacity.
        if live.len() > capacity && !over {
            let message = format!("the queue held {} jobs not yet terminal; capacity is {capacity}", live.len());
            violations.push(Violation::new(message).at(at));
        }
        over = live.len() > capacity;
    }
    violations
}

/// A submit as the api saw it: when it arrived, and when (and how) it was answered.
#[derive(Clone, Copy, Debug)]
struct Received {
    at: Nanos,
    answered: Option<(Nanos, SubmitAnswer)>,
}

/// The api's submits by request, from its events; a crash or restart of
/// the api forgets the ones in flight (outside the promise).
fn api_submits(context: &CheckContext<'_, Queue>) -> BTreeMap<u64, Received> {
    let mut submits: BTreeMap<u64, Received> = BTreeMap::new();
    for entry in context.trace {
        if entry.reset_host() == Some(API) {
            submits.retain(|_, received| received.answered.is_some());
            continue;
        }
        match (entry.source.as_str(), entry.system()) {
            (API, Some(QueueEvent::ApiSubmit { request })) => {
                submits.insert(*request, Received { at: entry.at, answered: None });
            }
            (API, Some(QueueEvent::ApiAnswer { request, answer })) => {
                if let Some(received) = submits.get_mut(request) {
                    received.answered.get_or_insert((entry.at, *answer));
                }
            }
            _ => {}
        }
    }
    submits
}

/// Submits the api received and did not answer in time, or at all.
fn unanswered(queue: &Queue, context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let submits = api_submits(context);
    let mut reported: BTreeSet<u64> = BTreeSet::new();
    let mut violations = Vec::new();
    if let Some(timeout) = queue.api_timeout {
        let bound = nanos(timeout.0) + ANSWER_SLACK;
        let horizon = horizon(context);
        for (request, received) in &submits {
            let message = match received.answered {
                Some((at, answer)) if at - received.at > bound => format!(
                    "the api answered submit {request:#x} with {answer:?} {} after receiving it; api_timeout is {timeout}",
                    span(at - received.at)
                ),
                None if received.at + bound < horizon => {
                    format!("the api received submit {request:#x} at {} and never answered it", seconds(received.at))
                }
                _ => continue,
            };
            reported.insert(*request);
            violations.push(Violation::new(message).at(received.at));
        }
    }
    for op in &context.history.ops {
        let request = request_id(op.client, op.seq);
        let (QueueOp::Submit { .. }, Outcome::Timeout) = (&op.op, &op.outcome) else { continue };
        let Some(received) = submits.get(&request) else { continue };
        let answered_in_time = received.answered.is_some_and(|(at, _)| at <= op.completed);
        if answered_in_time || reported.contains(&request) {
            continue;
        }
        let message = format!(
            "client {} gave up on submit {request:#x} at {}: the api had received it at {} and {}",
            op.client,
            seconds(op.completed),
            seconds(received.at),
            received
                .answered
                .map_or("never answered".to_string(), |(at, _)| format!("answered only at {}", seconds(at)))
        );
        violations.push(Violation::new(message).at(op.completed).ops([op.id]));
    }
    violations
}

/// One status a client saw: the broker's time, the operation, the view.
type Seen<'a> = (Nanos, usize, &'a JobView);

/// `legal-status`: what clients saw of each job through the status
/// endpoint, in the broker's order: a final status never changes (state,
/// effect, error, the run that finished it), failed attempts never go
/// down, and a job known once (or accepted with a 202) never becomes unknown.
pub fn check_legal_status(context: &CheckContext<'_, Queue>) -> Vec<Violation> {
    let mut accepted: BTreeSet<JobId> = BTreeSet::new();
    let mut seen: BTreeMap<JobId, Vec<Seen<'_>>> = BTreeMap::new();
    for op in &context.history.ops {
        match (&op.op, &op.outcome) {
            (QueueOp::Submit { .. }, Outcome::Ok(QueueRes::Accepted { job })) => {
                accepted.insert(*job);
            }
            (QueueOp::Status { job }, Outcome::Ok(QueueRes::Status(view))) => {
                seen.entry(*job).or_default().push((view.at, op.id, view));
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    for (job, mut views) in seen {
        views.sort_by_key(|(at, id, _)| (*at, *id));
        let mut previous: Option<Seen<'_>> = None;
        for current in views {
            if let Some(message) = illegal(job, accepted.contains(&job), previous, current) {
                let ops = previous.map(|(_, id, _)| id).into_iter().chain([current.1]);
                violations.push(Violation::new(message).at(current.0).ops(ops));
            }
            previous = Some(current);
        }
    }
    violations
}

fn describe(view: &JobView) -> String {
    match view.state {
        None => "unknown".into(),
        Some(JobState::Completed) => {
            format!(
                "completed (effect {:?}, by lease {:?}, {} failed attempts)",
                view.effect, view.token, view.attempts
            )
        }
        Some(JobState::Dead) => {
            format!("dead ({:?} after {} attempts)", view.error.as_deref().unwrap_or(""), view.attempts)
        }
        Some(state) => format!("{} ({} failed attempts)", state.name(), view.attempts),
    }
}

/// Why the move from `previous` to `current` is illegal, if it is.
fn illegal(job: JobId, accepted: bool, previous: Option<Seen<'_>>, current: Seen<'_>) -> Option<String> {
    let (at, _, view) = current;
    let Some((before_at, _, before)) = previous else {
        return (accepted && view.state.is_none())
            .then(|| format!("job {job} was accepted with a 202, then its status at {} was unknown", seconds(at)));
    };
    let moved = format!(
        "job {job} was {} at {}, then {} at {}",
        describe(before),
        seconds(before_at),
        describe(view),
        seconds(at)
    );
    match (before.state, view.state) {
        (Some(_), None) => Some(format!("{moved}: a known job became unknown")),
        (Some(state), _)
            if state.terminal()
                && (before.state, &before.effect, &before.error, before.token, before.attempts)
                    != (view.state, &view.effect, &view.error, view.token, view.attempts) =>
        {
            Some(format!("{moved}: a final status changed"))
        }
        _ if view.attempts < before.attempts => Some(format!("{moved}: failed attempts went down")),
        _ => None,
    }
}

/// Every accepted job's latency (accept to terminal), and for jobs never
/// finished, their age at the run's end.
fn latencies(context: &CheckContext<'_, Queue>) -> (Vec<Nanos>, Vec<Nanos>) {
    let replay = Replay::of(context);
    let mut finished = Vec::new();
    let mut unfinished = Vec::new();
    for tracked in replay.jobs.values() {
        match tracked.finished_at() {
            Some(at) => finished.push(at - tracked.accepted_at),
            None => unfinished.push(horizon(context).saturating_sub(tracked.accepted_at)),
        }
    }
    (finished, unfinished)
}

/// The `q` quantile (nearest rank) of `values`.
fn quantile(values: &mut [Nanos], q: f64) -> Option<Nanos> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// `latency-slo`: the p99 of job latency stays within `latency_slo`; a job
/// never finished counts at its age, if that is past the SLO already.
pub fn check_latency_slo(queue: &Queue, context: &CheckContext<'_, Queue>) -> CheckResult {
    let Some(slo) = queue.latency_slo else { return Ok(Vec::new()) };
    let slo_ns = nanos(slo.0);
    let (mut all, unfinished) = latencies(context);
    let late_unfinished = unfinished.iter().filter(|age| **age > slo_ns).count();
    all.extend(unfinished.into_iter().filter(|age| *age > slo_ns));
    let count = all.len();
    let Some(p99) = quantile(&mut all, 0.99) else { return Ok(Vec::new()) };
    if p99 <= slo_ns {
        return Ok(Vec::new());
    }
    let message = format!(
        "the p99 of job latency (accept to terminal) was {}, above latency_slo {slo} ({count} jobs; \
         {late_unfinished} never finished, counted at their age)",
        span(p99)
    );
    Ok(vec![Violation::new(message)])
}

/// When the sink came back from each outage: the end of each crash of it,
/// and of each partition that cut it off (in the simulated network a
/// connection across a partition is refused at once, as by a host whose
/// process is down).
fn sink_recoveries(context: &CheckContext<'_, Queue>) -> Vec<Nanos> {
    let crashes = context.down_intervals(SINK).into_iter().map(|(_, until)| until);
    let partitions = context
        .faults
        .iter()
        .filter(|fault| matches!(fault.action, Action::Partition { .. }) && fault.touches(SINK))
        .map(PlannedFault::end);
    let mut ends: Vec<Nanos> = crashes.chain(partitions).filter(|until| *until != Nanos::MAX).collect();
    ends.sort_unstable();
    ends.dedup();
    ends
}

/// The busiest [`LOAD_WINDOW`] of `calls` in the [`RECOVERY_SPAN`] after
/// `back`, per second (for the sink: every call that reached it, applied,
/// stored or refused).
fn peak_load_after(calls: &[Nanos], back: Nanos) -> f64 {
    let within: Vec<Nanos> = calls.iter().copied().filter(|at| *at >= back && *at < back + RECOVERY_SPAN).collect();
    let mut most = 0usize;
    let mut start = 0usize;
    for end in 0..within.len() {
        while within[end] - within[start] >= LOAD_WINDOW {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most as f64 * (1e9 / LOAD_WINDOW as f64)
}

fn sink_calls(context: &CheckContext<'_, Queue>) -> Vec<Nanos> {
    context.events().filter(|(_, source, event)| *source == SINK && event.sink_call()).map(|(at, _, _)| at).collect()
}

/// `sink-load-slo`: after every recovery of the sink, its busiest 100ms
/// stays within `sink_load_slo`.
pub fn check_sink_load_slo(queue: &Queue, context: &CheckContext<'_, Queue>) -> CheckResult {
    let Some(slo) = queue.sink_load_slo else { return Ok(Vec::new()) };
    let recoveries = sink_recoveries(context);
    if recoveries.is_empty() {
        return Err(Unjudged(
            "the sink never came back from an outage in this run: no load after recovery to hold \
                             sink_load_slo to"
                .into(),
        ));
    }
    let calls = sink_calls(context);
    let violations = recoveries
        .into_iter()
        .filter_map(|back| {
            let peak = peak_load_after(&calls, back);
            (peak > slo).then(|| {
                let message = format!(
                    "the sink's busiest 100ms in the 2s after it came back at {} ran at {peak:.0} calls/s; \
                     sink_load_slo is {slo}/s",
                    seconds(back)
                );
                Violation::new(message).at(back)
            })
        })
        .collect();
    Ok(violations)
}

/// When jobs became ready again (delayed to waiting) at the broker.
fn ready_times(context: &CheckContext<'_, Queue>) -> Vec<Nanos> {
    context
        .events()
        .filter(|(_, source, event)| *source == BROKER && matches!(event, QueueEvent::Ready { .. }))
        .map(|(at, _, _)| at)
        .collect()
}

/// The largest number of `times` at one instant (one tick), among those in `within`.
fn burst(times: &[Nanos], within: impl Fn(Nanos) -> bool) -> usize {
    let mut per_instant: BTreeMap<Nanos, usize> = BTreeMap::new();
    for at in times.iter().copied().filter(|at| within(*at)) {
        *per_instant.entry(at).or_default() += 1;
    }
    per_instant.values().copied().max().unwrap_or(0)
}

/// For each job a worker held when it crashed: the time from the crash to
/// the job's next delivery.
fn redelivery_delays(context: &CheckContext<'_, Queue>) -> Vec<Nanos> {
    let mut holder: BTreeMap<JobId, u32> = BTreeMap::new();
    let mut orphaned: BTreeMap<JobId, Nanos> = BTreeMap::new();
    let mut delays = Vec::new();
    for entry in context.trace {
        if let faultline_harness::history::Happening::HostCrash { host } = &entry.event {
            if let Some(worker) = host.strip_prefix("worker-").and_then(|n| n.parse::<u32>().ok()) {
                for (job, _) in holder.iter().filter(|(_, w)| **w == worker) {
                    orphaned.entry(*job).or_insert(entry.at);
                }
            }
            continue;
        }
        let (Some(event), true) = (entry.system(), entry.source == BROKER) else { continue };
        let Some(job) = event.job() else { continue };
        match event {
            QueueEvent::Active { worker, .. } => {
                if let Some(crashed) = orphaned.remove(&job) {
                    delays.push(entry.at - crashed);
                }
                holder.insert(job, *worker);
            }
            _ if event.leaves().is_some() => {
                holder.remove(&job);
                if event.leaves().is_some_and(JobState::terminal) {
                    orphaned.remove(&job);
                }
            }
            _ => {}
        }
    }
    delays
}

/// The job queue's own figures.
pub fn figures(queue: &Queue, context: &CheckContext<'_, Queue>) -> Vec<(&'static str, f64)> {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut effects: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, _, event) in context.events() {
        *counts.entry(event_name(event)).or_default() += 1;
        if let QueueEvent::Applied { key, .. } = event {
            *effects.entry(*key).or_default() += 1;
        }
    }
    let count = |kind: &str| counts.get(kind).copied().unwrap_or(0) as f64;
    let accepted = count("job.accepted");
    let per_job = |n: f64| if accepted > 0.0 { n / accepted } else { 0.0 };
    let mut figures = vec![
        ("jobs_accepted", accepted),
        ("jobs_completed_per_s", count("job.completed") / (context.end as f64 / 1e9).max(1e-9)),
        ("retries_per_job", per_job(count("job.delayed"))),
        ("dead_letter_rate", per_job(count("job.dead"))),
        ("rejection_rate", {
            let asked = accepted + count("job.rejected");
            if asked > 0.0 {
                count("job.rejected") / asked
            } else {
                0.0
            }
        }),
        ("duplicate_effects", effects.values().map(|n| n.saturating_sub(1)).sum::<usize>() as f64),
        ("stalls", count("job.stalled")),
        ("ready_burst_max", burst(&ready_times(context), |_| true) as f64),
    ];
    figures.extend(latency_figures(context));
    let delays = redelivery_delays(context);
    if let Some(max) = delays.iter().max() {
        figures.push(("redelivery_delay_max_s", *max as f64 / 1e9));
        figures.push(("redelivery_delay_mean_s", delays.iter().sum::<Nanos>() as f64 / delays.len() as f64 / 1e9));
        figures.push(("redelivery_bound_s", queue.redelivery_bound().as_secs_f64()));
    }
    figures.extend(recovery_figures(context));
    figures
}

/// The retry storm's figures, around the sink's recoveries: its busiest
/// 100ms, and the jobs that became ready at the broker in one tick and in
/// the busiest 100ms, in the 2s after each recovery (the largest).
fn recovery_figures(context: &CheckContext<'_, Queue>) -> Vec<(&'static str, f64)> {
    let recoveries = sink_recoveries(context);
    if recoveries.is_empty() {
        return Vec::new();
    }
    let (calls, ready) = (sink_calls(context), ready_times(context));
    let most = |f: &dyn Fn(Nanos) -> f64| recoveries.iter().map(|back| f(*back)).fold(0.0, f64::max);
    vec![
        ("sink_peak_after_recovery_per_s", most(&|back| peak_load_after(&calls, back))),
        ("ready_peak_after_recovery_per_s", most(&|back| peak_load_after(&ready, back))),
        (
            "ready_burst_after_recovery",
            most(&|back| burst(&ready, |at| at >= back && at < back + RECOVERY_SPAN) as f64),
        ),
    ]
}

/// Job latency quantiles (completed jobs, accept to completion) and the
/// mean wait (accept to first delivery: the M/M/c wait).
fn latency_figures(context: &CheckContext<'_, Queue>) -> Vec<(&'static str, f64)> {
    let replay = Replay::of(context);
    let mut completed: Vec<Nanos> = Vec::new();
    let mut waits: Vec<Nanos> = Vec::new();
    for tracked in replay.jobs.values() {
        if let Some((at, _)) = tracked.states.iter().find(|(_, state)| *state == JobState::Completed) {
            completed.push(at - tracked.accepted_at);
        }
        if let Some((at, _)) = tracked.states.iter().find(|(_, state)| *state == JobState::Active) {
            waits.push(at - tracked.accepted_at);
        }
    }
    let mut figures = Vec::new();
    for (name, q) in [("job_latency_p50_s", 0.5), ("job_latency_p95_s", 0.95), ("job_latency_p99_s", 0.99)] {
        if let Some(value) = quantile(&mut completed, q) {
            figures.push((name, value as f64 / 1e9));
        }
    }
    if !waits.is_empty() {
        figures.push(("wait_mean_s", waits.iter().sum::<Nanos>() as f64 / waits.len() as f64 / 1e9));
    }
    figures
}

#[cfg(test)]
mod tests;
