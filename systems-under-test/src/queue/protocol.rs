//! What the job queue says: the client's operations and answers, the wire
//! messages between clients, the api, the broker, the workers and the sink,
//! and the typed events its hosts report. Every event a checker or figure
//! reads carries the job, the lease token or the key it is about as fields.

use faultline_harness::Nanos;
use serde::{Deserialize, Serialize};

pub const API: &str = "api";
pub const BROKER: &str = "broker";
pub const SINK: &str = "sink";

pub const API_PORT: u16 = 9100;
pub const BROKER_PORT: u16 = 9101;
pub const SINK_PORT: u16 = 9102;

/// A job's id, as the broker hands it out in its 202. The broker's
/// incarnation is in the high bits, so a broker that lost its log to a crash
/// never hands out an id it gave before.
pub type JobId = u64;

/// Bits of a job id or lease token below the broker's incarnation.
pub const ID_INCARNATION_SHIFT: u32 = 40;

/// The job the health probe asks about: no job has it, so the answer is
/// "unknown", fast, from the api and the broker both.
pub const PROBE_JOB: JobId = u64::MAX;

/// The name of a client's operation, for the api's events: client index and
/// sequence number.
pub fn request_id(client: u32, seq: u64) -> u64 {
    assert!(seq < 1 << 32, "a client sends fewer than 2^32 operations");
    (u64::from(client) << 32) | seq
}

/// The name of worker host `index` (from 1).
pub fn worker_host(index: u32) -> String {
    assert!(index >= 1, "workers are numbered from 1");
    format!("worker-{index}")
}

/// A client's operation: submit a job, or look up a job's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueOp {
    /// A new job: `key` names the job's effect (the sink's idempotency key),
    /// `payload` is its input.
    Submit {
        key: u64,
        payload: u64,
    },
    Status {
        job: JobId,
    },
}

/// Where a job is. Exactly one of these holds for every accepted job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Ready for a worker.
    Waiting,
    /// Waiting out a retry's backoff.
    Delayed,
    /// Leased to a worker.
    Active,
    Completed,
    /// Failed for good: the dead-letter set, with its last error.
    Dead,
}

impl JobState {
    pub fn terminal(self) -> bool {
        matches!(self, JobState::Completed | JobState::Dead)
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
        }
    }
}

/// A job's status, as the status endpoint shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// `None`: the broker does not know the job.
    pub state: Option<JobState>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Completed: the effect the sink reported.
    pub effect: Option<u64>,
    /// Dead: the last error.
    pub error: Option<String>,
    /// Completed or dead: the lease token of the run that finished it.
    pub token: Option<u64>,
    /// The broker's time when it answered (ordering for the checkers).
    pub at: Nanos,
}

/// What a successful operation returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueRes {
    /// 202: the job's id.
    Accepted {
        job: JobId,
    },
    Status(JobView),
}

/// A client's request to the api.
#[derive(Debug, Serialize, Deserialize)]
pub enum ApiRequest {
    /// `request` names the client's operation (client index and sequence
    /// number), so the api's events can be matched to it.
    Submit {
        key: u64,
        payload: u64,
        request: u64,
    },
    Status {
        job: JobId,
    },
}

/// The api's answer to a submit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitAnswer {
    /// 202 with the job's id.
    Accepted { job: JobId },
    /// 429: the queue is full.
    Full,
    /// 503: the broker did not answer in time.
    Unavailable,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ApiReply {
    Submit(SubmitAnswer),
    Status(JobView),
    /// 503 to a status look-up.
    Unavailable,
}

/// How a worker's run of a job ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    /// The sink applied the effect (or returned the one it stored).
    Done { effect: u64 },
    /// The run failed: `permanent` failures are never retried.
    Failed { error: String, permanent: bool },
}

/// A job leased to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub job: JobId,
    pub key: u64,
    pub payload: u64,
    /// The lease's token: unique per delivery.
    pub token: u64,
    /// This run's attempt number (failed attempts so far, plus one).
    pub attempt: u32,
}

/// A request to the broker, from the api or a worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum BrokerRequest {
    Submit {
        key: u64,
        payload: u64,
    },
    Status {
        job: JobId,
    },
    /// A worker asks for a job; the broker answers when it has one, or with
    /// none after a while (a long poll).
    Fetch {
        worker: u32,
    },
    /// A worker extends its lease.
    Renew {
        job: JobId,
        token: u64,
    },
    /// A worker reports a run's end (with the lease's token), and with
    /// `fetch` asks for its next job in the same breath.
    Finish {
        job: JobId,
        token: u64,
        outcome: RunOutcome,
        worker: u32,
        fetch: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum BrokerReply {
    Accepted {
        job: JobId,
    },
    Full,
    Status(JobView),
    Job(Option<Delivery>),
    Renewed {
        held: bool,
    },
    /// `recorded`: the broker took the report (false: fencing refused it).
    Finished {
        recorded: bool,
        next: Option<Delivery>,
    },
}

/// A worker's request to the sink: apply the job's effect.
#[derive(Debug, Serialize, Deserialize)]
pub struct Apply {
    pub key: u64,
    pub payload: u64,
    pub job: JobId,
    pub token: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum SinkReply {
    /// A new effect.
    Applied { effect: u64 },
    /// Idempotency: the key's stored result, applied before.
    Stored { effect: u64 },
    /// Idempotency: the key was applied before with another payload.
    Conflict,
    /// More effects in progress than the sink serves at once.
    Overloaded,
}

/// Why a job went to the dead-letter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// Its last allowed attempt failed.
    Attempts,
    /// A run failed permanently.
    Permanent,
    /// It stalled more than `max_stalled` times.
    Stalled,
}

/// One job as a recovering broker found it in its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredJob {
    pub job: JobId,
    pub state: JobState,
    pub attempts: u32,
    pub effect: Option<u64>,
}

faultline_harness::system_events! {
    /// What the job queue's hosts report.
    pub enum QueueEvent {
        /// The broker accepted job `job` (after the sync, with fsync always):
        /// the api's 202. `in_queue` counts the jobs not yet terminal, this one included.
        Accepted = "job.accepted" { job: JobId, key: u64, in_queue: u64 },
        /// The broker refused a job: the queue held `in_queue` jobs.
        Rejected = "job.rejected" { key: u64, in_queue: u64 },
        /// The broker leased `job` to worker `worker` for run `attempt`.
        Active = "job.active" { job: JobId, token: u64, worker: u32, attempt: u32 },
        /// A transient failure: retry number `retry` waits `delay_ns`
        /// (drawn with `previous_ns`, the last delay or the base).
        Delayed = "job.delayed" { job: JobId, token: u64, retry: u32, delay_ns: u64, previous_ns: u64, error: String },
        /// A delayed job's backoff is over.
        Ready = "job.ready" { job: JobId },
        /// The stalled-job check found `job`'s lease lapsed and re-queued it
        /// (its `stalls`-th stall).
        Stalled = "job.stalled" { job: JobId, token: u64, stalls: u32 },
        /// A run completed `job`. `holder`: the token was the job's current
        /// lease (false only without fencing: a stale owner's report taken anyway).
        Completed = "job.completed" { job: JobId, token: u64, effect: u64, holder: bool },
        /// `job` went to the dead-letter set after `attempts` failed attempts.
        Dead = "job.dead" { job: JobId, reason: DeadReason, error: String, attempts: u32 },
        /// Fencing: the broker refused a report from a worker without the lease.
        Refused = "job.refused" { job: JobId, token: u64 },
        /// The broker started and read its log: every job it found, and its state.
        Recovered = "broker.recovered" { jobs: Vec<RecoveredJob> },
        /// The api received a submit (`request` names the client's operation).
        ApiSubmit = "api.submit" { request: u64 },
        /// The api answered a submit.
        ApiAnswer = "api.answer" { request: u64, answer: SubmitAnswer },
        /// The sink applied a new effect for `key`.
        Applied = "sink.applied" { key: u64, job: JobId, token: u64, effect: u64 },
        /// The sink returned `key`'s stored result instead of applying it again.
        Stored = "sink.stored" { key: u64, job: JobId, token: u64, effect: u64 },
        /// The sink refused `key` with a payload other than the stored one.
        Conflict = "sink.conflict" { key: u64, job: JobId },
        /// The sink refused an effect: too many in progress.
        Overloaded = "sink.overloaded" { key: u64, job: JobId },
        /// A worker (re)connected to the broker; `reconnect`: it had lost a connection.
        Connected = "worker.connected" { worker: u32, reconnect: bool },
    }
}

impl QueueEvent {
    /// The job a broker event is about.
    pub fn job(&self) -> Option<JobId> {
        match self {
            QueueEvent::Accepted { job, .. }
            | QueueEvent::Active { job, .. }
            | QueueEvent::Delayed { job, .. }
            | QueueEvent::Ready { job }
            | QueueEvent::Stalled { job, .. }
            | QueueEvent::Completed { job, .. }
            | QueueEvent::Dead { job, .. }
            | QueueEvent::Refused { job, .. } => Some(*job),
            _ => None,
        }
    }

    /// The state a broker event leaves its job in.
    pub fn leaves(&self) -> Option<JobState> {
        match self {
            QueueEvent::Accepted { .. } | QueueEvent::Ready { .. } | QueueEvent::Stalled { .. } => {
                Some(JobState::Waiting)
            }
            QueueEvent::Active { .. } => Some(JobState::Active),
            QueueEvent::Delayed { .. } => Some(JobState::Delayed),
            QueueEvent::Completed { .. } => Some(JobState::Completed),
            QueueEvent::Dead { .. } => Some(JobState::Dead),
            _ => None,
        }
    }

    /// A call that reached the sink (applied, stored, refused or shed).
    pub fn sink_call(&self) -> bool {
        matches!(
            self,
            QueueEvent::Applied { .. }
                | QueueEvent::Stored { .. }
                | QueueEvent::Conflict { .. }
                | QueueEvent::Overloaded { .. }
        )
    }
}
