//! `queue`: the chapter's job queue (a Bull queue) under faults, as real
//! services over turmoil's network and disk (docs/queue.md).
//!
//! Hosts: `api` answers a submit with 202 and the job's id, 429 when the
//! queue is full, 503 when the broker does not answer, and serves status
//! look-ups; `broker` keeps a bounded queue in a log on its disk (`fsync`
//! always, batch or never), leases jobs to workers (`lock_duration`,
//! renewed every half), re-queues jobs whose lease lapsed every
//! `stalled_interval` (up to `max_stalled` times), retries failed runs after
//! a backoff (fixed or exponential, with jitter) up to `attempts`, and keeps
//! jobs that failed for good in a dead-letter set with their last error;
//! `worker-1..N` work on jobs and apply each job's effect at `sink`, which
//! records every effect it applies (with `idempotency`, once per key).
//! With `fencing`, the broker hears a run's report only from the lease's
//! holder.
//!
//! Clients submit jobs and poll their status until it is final (and now
//! and then read a finished job again, as a dashboard does).
//!
//! Files: `knobs.rs`, `protocol.rs` (operations, messages, events),
//! `ledger.rs` (the broker's job table and log records, pure), `api.rs`,
//! `broker.rs`, `worker.rs`, `sink.rs` (the hosts), `checks.rs` (pure
//! checkers and figures).

mod api;
mod broker;
mod checks;
mod knobs;
mod lanes;
mod ledger;
mod protocol;
mod sink;
mod worker;

use std::collections::VecDeque;
use std::sync::Arc;

use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Lane, Outcome, System, SystemDoc,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use checks::{
    check_attempts_bounded, check_backoff_envelope, check_bounded_queue, check_conservation, check_effectively_once,
    check_latency_slo, check_legal_status, check_sink_load_slo, figures,
};
pub use knobs::{BackoffKind, Queue, WorkTime};
pub use ledger::{Ledger, Record};
pub use protocol::{
    DeadReason, Delivery, JobId, JobState, JobView, QueueEvent, QueueOp, QueueRes, RecoveredJob, RunOutcome,
    SubmitAnswer, API, BROKER, SINK,
};

const CONSERVATION: &str = "conservation";
const EFFECTIVELY_ONCE: &str = "effectively-once";
const ATTEMPTS_BOUNDED: &str = "attempts-bounded";
const BACKOFF_ENVELOPE: &str = "backoff-envelope";
const BOUNDED_QUEUE: &str = "bounded-queue";
const LEGAL_STATUS: &str = "legal-status";
const LATENCY_SLO: &str = "latency-slo";
const SINK_LOAD_SLO: &str = "sink-load-slo";

static DOC: SystemDoc = SystemDoc {
    name: "queue",
    about: "a job queue: an api with 202s and status look-ups, a bounded broker with a log on disk, leases and \
            stalled-job checks, retries with backoff and jitter, dead letters, workers and an (idempotent) sink",
    hosts: "api, broker, sink, worker-1..worker-N",
    knobs: &[
        KnobDoc { name: "workers", unit: "count", default: "3", about: "worker hosts (1 to 16)" },
        KnobDoc {
            name: "connections",
            unit: "string",
            default: "per-request",
            about: "clients to the api, the api to the broker, workers to the sink: per-request | pooled (a worker's broker link is long-lived either way)",
        },
        KnobDoc {
            name: "capacity",
            unit: "count or \"unbounded\"",
            default: "100",
            about: "jobs not yet terminal (waiting, delayed, active) the queue holds; more are refused with a 429",
        },
        KnobDoc {
            name: "fsync",
            unit: "string",
            default: "always",
            about: "always (sync before answering) | batch (every fsync_interval) | never",
        },
        KnobDoc {
            name: "fsync_interval",
            unit: "duration",
            default: "20ms",
            about: "fsync = batch: time between syncs",
        },
        KnobDoc {
            name: "lock_duration",
            unit: "duration",
            default: "1s",
            about: "a lease's length; the worker renews it every half",
        },
        KnobDoc {
            name: "stalled_interval",
            unit: "duration",
            default: "1s",
            about: "how often the broker re-queues jobs whose lease lapsed",
        },
        KnobDoc {
            name: "max_stalled",
            unit: "count",
            default: "1",
            about: "stalls a job may have; one more and it is dead (\"job stalled more than allowable limit\")",
        },
        KnobDoc { name: "attempts", unit: "count", default: "3", about: "runs a job may fail before it is dead" },
        KnobDoc { name: "backoff", unit: "string", default: "exponential", about: "fixed | exponential" },
        KnobDoc { name: "backoff_base", unit: "duration", default: "100ms", about: "the first retry's delay ceiling" },
        KnobDoc {
            name: "backoff_factor",
            unit: "number",
            default: "2",
            about: "exponential: each retry multiplies the ceiling by this",
        },
        KnobDoc { name: "backoff_cap", unit: "duration", default: "2s", about: "the ceiling grows to at most this" },
        KnobDoc { name: "jitter", unit: "string", default: "full", about: "none | full | equal | decorrelated" },
        KnobDoc {
            name: "fencing",
            unit: "bool",
            default: "false",
            about: "the broker hears a run's report only with the job's current lease token",
        },
        KnobDoc {
            name: "idempotency",
            unit: "bool",
            default: "false",
            about: "the sink keeps results by key (on its disk): once per key; another payload is refused",
        },
        KnobDoc {
            name: "work_time",
            unit: "duration range",
            default: "10ms..30ms",
            about: "a run's work before its effect, uniform",
        },
        KnobDoc {
            name: "work_time_mean",
            unit: "duration",
            default: "none",
            about: "instead of work_time: exponential work times with this mean",
        },
        KnobDoc {
            name: "transient_failure_rate",
            unit: "probability",
            default: "0",
            about: "share of runs that fail and may be retried",
        },
        KnobDoc {
            name: "permanent_failure_rate",
            unit: "probability",
            default: "0",
            about: "share of runs that fail for good",
        },
        KnobDoc {
            name: "sink_capacity",
            unit: "count or \"unlimited\"",
            default: "unlimited",
            about: "effects the sink applies at once; more are refused (a transient failure)",
        },
        KnobDoc {
            name: "sink_time",
            unit: "duration range",
            default: "1ms..2ms",
            about: "time the sink takes per effect",
        },
        KnobDoc {
            name: "sink_timeout",
            unit: "duration",
            default: "500ms",
            about: "how long a worker waits for the sink",
        },
        KnobDoc {
            name: "broker_timeout",
            unit: "duration",
            default: "500ms",
            about: "how long a worker's requests wait for the broker (a long poll waits 500ms more)",
        },
        KnobDoc {
            name: "api_timeout",
            unit: "duration or \"none\"",
            default: "500ms",
            about: "how long the api waits for the broker before it answers 503; \"none\" waits as long as it takes \
                    (a planted flaw: clients time out unanswered)",
        },
        KnobDoc {
            name: "decorrelated_cap",
            unit: "bool",
            default: "true",
            about: "false leaves backoff_cap out of decorrelated jitter (a planted flaw backoff-envelope finds)",
        },
        KnobDoc {
            name: "settle_within",
            unit: "duration",
            default: "5s",
            about: "conservation: every accepted job is terminal this long after the heal phase starts (or after \
                    its acceptance, if later)",
        },
        KnobDoc {
            name: "poll_ratio",
            unit: "probability",
            default: "0.5",
            about: "share of a client's operations that look up a job's status (else it submits)",
        },
        KnobDoc {
            name: "rereads",
            unit: "count",
            default: "2",
            about:
                "times a client reads a finished job's status again, after 4, 16, 64, ... of its operations (0 to 5)",
        },
        KnobDoc {
            name: "duplicate_ratio",
            unit: "probability",
            default: "0",
            about: "share of submits that send the client's last job again (same key, same payload)",
        },
        KnobDoc {
            name: "conflict_ratio",
            unit: "probability",
            default: "0",
            about: "share of submits that reuse the client's last key with another payload",
        },
        KnobDoc {
            name: "latency_slo",
            unit: "duration",
            default: "none",
            about: "latency-slo: the p99 of job latency (accept to terminal) stays within this",
        },
        KnobDoc {
            name: "sink_load_slo",
            unit: "rate",
            default: "none",
            about: "sink-load-slo: the sink's busiest 100ms after it recovers stays within this rate",
        },
    ],
    events: &[
        EventDoc { name: "job.accepted", about: "the broker accepted a job (the api's 202)", detects: false },
        EventDoc { name: "job.rejected", about: "the broker refused a job: the queue was full", detects: false },
        EventDoc { name: "job.active", about: "the broker leased a job to a worker", detects: false },
        EventDoc { name: "job.delayed", about: "a run failed; the job waits out its backoff", detects: false },
        EventDoc { name: "job.ready", about: "a delayed job's backoff is over", detects: false },
        EventDoc {
            name: "job.stalled",
            about: "the stalled-job check re-queued a job whose lease lapsed",
            detects: true,
        },
        EventDoc {
            name: "job.completed",
            about: "a run completed a job (by the lease's holder or not)",
            detects: false,
        },
        EventDoc { name: "job.dead", about: "a job went to the dead-letter set, with its last error", detects: false },
        EventDoc {
            name: "job.refused",
            about: "fencing: the broker refused a report without the lease",
            detects: false,
        },
        EventDoc { name: "broker.recovered", about: "the broker started and read its log", detects: false },
        EventDoc { name: "api.submit", about: "the api received a submit", detects: false },
        EventDoc { name: "api.answer", about: "the api answered a submit (202, 429 or 503)", detects: false },
        EventDoc { name: "sink.applied", about: "the sink applied an effect", detects: false },
        EventDoc { name: "sink.stored", about: "idempotency: the sink returned a key's stored result", detects: false },
        EventDoc {
            name: "sink.conflict",
            about: "idempotency: the sink refused a key with another payload",
            detects: false,
        },
        EventDoc { name: "sink.overloaded", about: "the sink refused an effect: at capacity", detects: false },
        EventDoc {
            name: "worker.connected",
            about: "a worker (re)connected to the broker after losing its connection",
            detects: false,
        },
    ],
};

/// A client reads a finished job again after this many of its own
/// operations, then after four times as many, and so on.
const REREAD_FIRST_GAP: u64 = 4;

/// A finished job a client will read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reread {
    pub job: JobId,
    /// At the client's operation number `due`, or the first after it.
    pub due: u64,
    pub gap: u64,
    pub left: u32,
}

/// A workload client: the jobs it submitted that it has not seen finish,
/// polled in turn, and the finished ones it will read again (as a
/// dashboard does), so a final status that changes later is seen.
#[derive(Debug, Default)]
pub struct Client {
    pub index: u32,
    /// Operations so far.
    pub ops: u64,
    /// Submits so far (a key's low bits).
    pub submitted: u64,
    /// The last submit's key and payload (for duplicates and conflicts).
    pub last: Option<(u64, u64)>,
    pub pending: VecDeque<JobId>,
    pub rereads: VecDeque<Reread>,
}

impl Client {
    /// A finished job due to be read again, if any; it is scheduled again
    /// at four times the gap while it has reads left.
    fn reread(&mut self) -> Option<JobId> {
        let at = self.rereads.iter().position(|r| r.due <= self.ops)?;
        let due = self.rereads.remove(at).expect("found");
        if due.left > 1 {
            let gap = due.gap * 4;
            self.rereads.push_back(Reread { job: due.job, due: self.ops + gap, gap, left: due.left - 1 });
        }
        Some(due.job)
    }

    /// A new job: a fresh key, or (by the ratios) the last job again or the
    /// last key with another payload.
    fn submit(&mut self, queue: &Queue, rng: &mut ChaCha8Rng) -> QueueOp {
        let draw: f64 = rng.random();
        let payload: u64 = rng.random_range(1..1_000_000);
        let (key, payload) = match self.last {
            Some(last) if draw < queue.duplicate_ratio => last,
            Some((key, previous)) if draw < queue.duplicate_ratio + queue.conflict_ratio => {
                (key, if payload == previous { payload + 1 } else { payload })
            }
            _ => {
                self.submitted += 1;
                ((u64::from(self.index) << 32) | self.submitted, payload)
            }
        };
        self.last = Some((key, payload));
        QueueOp::Submit { key, payload }
    }
}

impl System for Queue {
    type Op = QueueOp;
    type Res = QueueRes;
    type Event = QueueEvent;
    type Client = Client;

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![
            Invariant {
                name: CONSERVATION,
                about: "every accepted job is in exactly one state and none is lost, across crashes of the broker \
                        (with fsync always) and workers, partitions and clogs; every accepted job is terminal within \
                        settle_within of the heal phase's start (or of its acceptance, if later)",
                check: check_conservation,
            },
            Invariant {
                name: EFFECTIVELY_ONCE,
                about: "at most one applied effect per job key at the sink",
                check: |_, context| Ok(check_effectively_once(context)),
            },
            Invariant {
                name: ATTEMPTS_BOUNDED,
                about: "no job runs more than attempts times plus its stalls, and every dead job records its last \
                        error and its attempt count",
                check: |queue, context| Ok(check_attempts_bounded(queue, context)),
            },
            Invariant {
                name: BACKOFF_ENVELOPE,
                about: "every retry's delay lies inside its policy's envelope, and the job is ready again when it ends",
                check: |queue, context| Ok(check_backoff_envelope(queue, context)),
            },
            Invariant {
                name: BOUNDED_QUEUE,
                about: "the queue never holds more than capacity; every submit the api received was answered \
                        (202, 429 or 503) within api_timeout, and before its client gave up, never dropped",
                check: |queue, context| Ok(check_bounded_queue(queue, context)),
            },
            Invariant {
                name: LEGAL_STATUS,
                about: "as clients see it through the status endpoint, a job never leaves a final status nor \
                        changes it, never loses failed attempts, and never becomes unknown",
                check: |_, context| Ok(check_legal_status(context)),
            },
            Invariant {
                name: LATENCY_SLO,
                about: "with latency_slo: the p99 of job latency, accept to terminal, stays within it (jobs never \
                        finished count at their age)",
                check: check_latency_slo,
            },
            Invariant {
                name: SINK_LOAD_SLO,
                about: "with sink_load_slo: the sink's busiest 100ms in the 2s after each recovery stays within it",
                check: check_sink_load_slo,
            },
        ]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Queue, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![API.to_string(), BROKER.to_string(), SINK.to_string()];
        hosts.extend((1..=self.workers).map(protocol::worker_host));
        hosts
    }

    fn host(self: &Arc<Self>, context: HostContext<QueueEvent>) -> LocalFuture<HostResult> {
        let config = Arc::clone(self);
        match context.name.as_str() {
            API => Box::pin(api::serve(config, context)),
            BROKER => Box::pin(broker::serve(config, context)),
            SINK => Box::pin(sink::serve(config, context)),
            name if name.starts_with("worker-") => Box::pin(worker::serve(config, context)),
            name => {
                let error = format!("the queue system has no host {name:?}");
                Box::pin(async move { Err(error.into()) })
            }
        }
    }

    fn client(&self, index: u32) -> Client {
        Client { index, ..Client::default() }
    }

    /// A finished job's status again when one is due; else a look-up (by
    /// `poll_ratio`) of the next unfinished job in turn; else a new job.
    fn next_op(&self, client: &mut Client, rng: &mut ChaCha8Rng) -> QueueOp {
        client.ops += 1;
        let poll = rng.random_bool(self.poll_ratio);
        if let Some(job) = client.reread() {
            return QueueOp::Status { job };
        }
        if poll {
            if let Some(job) = client.pending.pop_front() {
                client.pending.push_back(job);
                return QueueOp::Status { job };
            }
        }
        client.submit(self, rng)
    }

    fn observe(&self, client: &mut Client, op: &QueueOp, outcome: &Outcome<QueueRes>) {
        match (op, outcome) {
            (QueueOp::Submit { .. }, Outcome::Ok(QueueRes::Accepted { job })) => client.pending.push_back(*job),
            // A final status (or an unknown job) ends the polling of a job.
            (QueueOp::Status { job }, Outcome::Ok(QueueRes::Status(view)))
                if view.state.is_none_or(JobState::terminal) =>
            {
                if let Some(at) = client.pending.iter().position(|pending| pending == job) {
                    client.pending.remove(at);
                    if self.rereads > 0 {
                        let (due, gap) = (client.ops + REREAD_FIRST_GAP, REREAD_FIRST_GAP);
                        client.rereads.push_back(Reread { job: *job, due, gap, left: self.rereads });
                    }
                }
            }
            _ => {}
        }
    }

    fn op_kind(&self, op: &QueueOp) -> &'static str {
        match op {
            QueueOp::Submit { .. } => "submit",
            QueueOp::Status { .. } => "status",
        }
    }

    fn probe_op(&self) -> Option<QueueOp> {
        Some(QueueOp::Status { job: protocol::PROBE_JOB })
    }

    fn call(self: &Arc<Self>, client: ClientContext<QueueEvent>, op: QueueOp) -> LocalFuture<Outcome<QueueRes>> {
        let config = Arc::clone(self);
        Box::pin(async move { api::call(&config, client, op).await })
    }

    /// Effectively-once only with idempotency (without it the queue is
    /// at-least-once, as Bull documents); the SLOs only when set.
    fn promises(&self) -> Vec<&'static str> {
        let mut promised = vec![CONSERVATION, ATTEMPTS_BOUNDED, BACKOFF_ENVELOPE, BOUNDED_QUEUE, LEGAL_STATUS];
        if self.idempotency {
            promised.push(EFFECTIVELY_ONCE);
        }
        if self.latency_slo.is_some() {
            promised.push(LATENCY_SLO);
        }
        if self.sink_load_slo.is_some() {
            promised.push(SINK_LOAD_SLO);
        }
        promised
    }

    fn figures(&self, context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        figures(self, context)
    }

    fn lanes(&self, context: &CheckContext<'_, Self>) -> Vec<Lane> {
        lanes::lanes(context)
    }
}
