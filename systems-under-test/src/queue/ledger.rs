//! The broker's job table: every job, its state, its lease, its attempts,
//! and the records that change them. Pure data driven with times passed in:
//! the broker host decides, writes each record to its log on the simulated
//! disk, and applies the same record here; a recovering broker applies its
//! log's records in order and gets the same table back. One code path
//! changes a job's state, live or in replay.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use faultline_harness::Nanos;
use serde::{Deserialize, Serialize};

use super::protocol::{DeadReason, Delivery, JobId, JobState, JobView, RecoveredJob, ID_INCARNATION_SHIFT};

/// One change to the table, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Accepted {
        job: JobId,
        key: u64,
        payload: u64,
        at: Nanos,
    },
    /// Leased to `worker` with `token` until `until`.
    Delivered {
        job: JobId,
        token: u64,
        worker: u32,
        until: Nanos,
    },
    /// A failed run under `token`: `attempts` failed so far; ready again at `ready_at`.
    Delayed {
        job: JobId,
        token: u64,
        attempts: u32,
        delay: Nanos,
        ready_at: Nanos,
    },
    Ready {
        job: JobId,
    },
    /// The lease lapsed: back to waiting, stalled `stalls` times.
    Stalled {
        job: JobId,
        stalls: u32,
    },
    Completed {
        job: JobId,
        token: u64,
        effect: u64,
    },
    Dead {
        job: JobId,
        token: Option<u64>,
        reason: DeadReason,
        error: String,
        attempts: u32,
    },
}

impl Record {
    pub fn job(&self) -> JobId {
        match self {
            Record::Accepted { job, .. }
            | Record::Delivered { job, .. }
            | Record::Delayed { job, .. }
            | Record::Ready { job }
            | Record::Stalled { job, .. }
            | Record::Completed { job, .. }
            | Record::Dead { job, .. } => *job,
        }
    }
}

/// A job's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: u64,
    pub worker: u32,
    pub until: Nanos,
}

/// One job, as the broker holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub key: u64,
    pub payload: u64,
    pub state: JobState,
    /// Failed attempts so far.
    pub attempts: u32,
    pub stalls: u32,
    pub lease: Option<Lease>,
    /// The last retry's delay (for decorrelated jitter); 0 before the first.
    pub previous_delay: Nanos,
    pub effect: Option<u64>,
    pub error: Option<String>,
    /// The token of the run that finished it.
    pub finished_token: Option<u64>,
    /// The token of the last worker report taken (a completion or a failed
    /// run): the same report sent again is recognised.
    pub reported_token: Option<u64>,
}

/// The job table.
#[derive(Debug, Default)]
pub struct Ledger {
    jobs: BTreeMap<JobId, Job>,
    /// Waiting jobs, the next to deliver first.
    waiting: VecDeque<JobId>,
    /// Delayed jobs by the time their backoff ends.
    delayed: BTreeSet<(Nanos, JobId)>,
    active: BTreeSet<JobId>,
    /// The next id and token this incarnation hands out.
    next_job: JobId,
    next_token: u64,
}

impl Ledger {
    /// An empty table for broker incarnation `incarnation`: its ids and
    /// tokens carry the incarnation, so none repeats one an earlier
    /// incarnation gave (and maybe lost).
    pub fn new(incarnation: u32) -> Ledger {
        let base = u64::from(incarnation) << ID_INCARNATION_SHIFT;
        Ledger { next_job: base, next_token: base, ..Ledger::default() }
    }

    pub fn job(&self, job: JobId) -> Option<&Job> {
        self.jobs.get(&job)
    }

    /// Jobs not yet terminal: what `capacity` bounds.
    pub fn in_queue(&self) -> usize {
        self.waiting.len() + self.delayed.len() + self.active.len()
    }

    pub fn new_job_id(&mut self) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        id
    }

    pub fn new_token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// The next waiting job, if any.
    pub fn first_waiting(&self) -> Option<JobId> {
        self.waiting.front().copied()
    }

    /// When the earliest delayed job becomes ready.
    pub fn next_ready_at(&self) -> Option<Nanos> {
        self.delayed.first().map(|(at, _)| *at)
    }

    /// Delayed jobs whose backoff is over at `now`, in order.
    pub fn due(&self, now: Nanos) -> Vec<JobId> {
        self.delayed.iter().take_while(|(at, _)| *at <= now).map(|(_, job)| *job).collect()
    }

    /// Active jobs whose lease lapsed before `now`, with their tokens.
    pub fn lapsed(&self, now: Nanos) -> Vec<(JobId, u64)> {
        self.active
            .iter()
            .filter_map(|job| {
                let lease = self.jobs[job].lease.expect("an active job has a lease");
                (lease.until < now).then_some((*job, lease.token))
            })
            .collect()
    }

    /// Is `token` the current lease of `job` (active)?
    pub fn holds(&self, job: JobId, token: u64) -> bool {
        self.jobs
            .get(&job)
            .is_some_and(|j| j.state == JobState::Active && j.lease.is_some_and(|lease| lease.token == token))
    }

    /// Extends the lease `token` of `job` to `until`; false if it is not the current lease.
    pub fn renew(&mut self, job: JobId, token: u64, until: Nanos) -> bool {
        if !self.holds(job, token) {
            return false;
        }
        let lease = self.jobs.get_mut(&job).and_then(|j| j.lease.as_mut()).expect("held");
        lease.until = lease.until.max(until);
        true
    }

    /// A delivery of `job` under `token`, as the worker gets it.
    pub fn delivery(&self, job: JobId, token: u64) -> Delivery {
        let j = &self.jobs[&job];
        Delivery { job, key: j.key, payload: j.payload, token, attempt: j.attempts + 1 }
    }

    /// The status endpoint's view of `job` at `at`.
    pub fn view(&self, job: JobId, at: Nanos) -> JobView {
        match self.jobs.get(&job) {
            None => JobView { state: None, attempts: 0, effect: None, error: None, token: None, at },
            Some(j) => JobView {
                state: Some(j.state),
                attempts: j.attempts,
                effect: j.effect,
                error: j.error.clone(),
                token: j.finished_token,
                at,
            },
        }
    }

    /// Every job and its state, as a recovering broker reports them.
    pub fn recovered(&self) -> Vec<RecoveredJob> {
        self.jobs
            .iter()
            .map(|(job, j)| RecoveredJob { job: *job, state: j.state, attempts: j.attempts, effect: j.effect })
            .collect()
    }

    /// After a restart: every recovered lease runs `grace` from `now`, so a
    /// worker still alive can renew it before the stalled check takes it.
    pub fn grant_grace(&mut self, now: Nanos, grace: Nanos) {
        for job in &self.active {
            let lease = self.jobs.get_mut(job).and_then(|j| j.lease.as_mut()).expect("an active job has a lease");
            lease.until = lease.until.max(now + grace);
        }
    }

    /// Takes `job` out of the waiting, delayed or active set it is in.
    fn leave(&mut self, job: JobId) {
        let j = self.jobs.get_mut(&job).expect("a known job");
        match j.state {
            JobState::Waiting => self.waiting.retain(|w| *w != job),
            JobState::Delayed => {
                self.delayed.retain(|(_, d)| *d != job);
            }
            JobState::Active => {
                self.active.remove(&job);
                j.lease = None;
            }
            JobState::Completed | JobState::Dead => {}
        }
    }

    /// Applies one record: the live broker's change, or a line of its log in
    /// replay. Records about jobs the table does not know (their acceptance
    /// was lost with unsynced writes) change nothing.
    pub fn apply(&mut self, record: &Record) {
        if let Record::Accepted { job, key, payload, .. } = *record {
            assert!(!self.jobs.contains_key(&job), "job {job} accepted twice");
            let fresh = Job {
                key,
                payload,
                state: JobState::Waiting,
                attempts: 0,
                stalls: 0,
                lease: None,
                previous_delay: 0,
                effect: None,
                error: None,
                finished_token: None,
                reported_token: None,
            };
            self.jobs.insert(job, fresh);
            self.waiting.push_back(job);
            self.next_job = self.next_job.max(job + 1);
            return;
        }
        let job = record.job();
        if !self.jobs.contains_key(&job) {
            return;
        }
        self.leave(job);
        let j = self.jobs.get_mut(&job).expect("a known job");
        match record {
            Record::Accepted { .. } => unreachable!("handled above"),
            Record::Delivered { token, worker, until, .. } => {
                j.state = JobState::Active;
                j.lease = Some(Lease { token: *token, worker: *worker, until: *until });
                self.active.insert(job);
                self.next_token = self.next_token.max(token + 1);
            }
            Record::Delayed { token, attempts, delay, ready_at, .. } => {
                j.state = JobState::Delayed;
                j.reported_token = Some(*token);
                j.attempts = *attempts;
                j.previous_delay = *delay;
                j.effect = None;
                j.finished_token = None;
                self.delayed.insert((*ready_at, job));
            }
            Record::Ready { .. } | Record::Stalled { .. } => {
                if let Record::Stalled { stalls, .. } = record {
                    j.stalls = *stalls;
                    // A stalled job has waited out its lease already: it goes first.
                    self.waiting.push_front(job);
                } else {
                    self.waiting.push_back(job);
                }
                j.state = JobState::Waiting;
            }
            Record::Completed { token, effect, .. } => {
                j.state = JobState::Completed;
                j.effect = Some(*effect);
                j.error = None;
                j.finished_token = Some(*token);
                j.reported_token = Some(*token);
            }
            Record::Dead { token, reason, error, attempts, .. } => {
                if *reason != DeadReason::Stalled {
                    j.reported_token = *token;
                }
                j.state = JobState::Dead;
                j.attempts = *attempts;
                j.error = Some(error.clone());
                j.effect = None;
                j.finished_token = *token;
            }
        }
        self.check();
    }

    /// The sets agree with the states.
    fn check(&self) {
        debug_assert_eq!(self.active.len(), self.jobs.values().filter(|j| j.state == JobState::Active).count());
        debug_assert_eq!(self.waiting.len(), self.jobs.values().filter(|j| j.state == JobState::Waiting).count());
        debug_assert_eq!(self.delayed.len(), self.jobs.values().filter(|j| j.state == JobState::Delayed).count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(job: JobId) -> Record {
        Record::Accepted { job, key: job * 10, payload: 7, at: 0 }
    }

    #[test]
    fn a_job_moves_through_delivery_failure_backoff_and_completion() {
        let mut ledger = Ledger::new(0);
        let job = ledger.new_job_id();
        ledger.apply(&accepted(job));
        assert_eq!((ledger.in_queue(), ledger.first_waiting()), (1, Some(job)));
        let token = ledger.new_token();
        ledger.apply(&Record::Delivered { job, token, worker: 1, until: 100 });
        assert!(ledger.holds(job, token) && !ledger.holds(job, token + 1));
        assert!(ledger.renew(job, token, 150));
        assert_eq!(ledger.lapsed(150), Vec::new());
        assert_eq!(ledger.lapsed(151), vec![(job, token)]);
        ledger.apply(&Record::Delayed { job, token, attempts: 1, delay: 40, ready_at: 190 });
        assert_eq!((ledger.next_ready_at(), ledger.due(189), ledger.due(190)), (Some(190), vec![], vec![job]));
        assert!(!ledger.renew(job, token, 300), "a delayed job has no lease to renew");
        ledger.apply(&Record::Ready { job });
        let second = ledger.new_token();
        ledger.apply(&Record::Delivered { job, token: second, worker: 2, until: 400 });
        assert_eq!(ledger.delivery(job, second).attempt, 2);
        ledger.apply(&Record::Completed { job, token: second, effect: 99 });
        let view = ledger.view(job, 500);
        assert_eq!(
            (view.state, view.effect, view.token, view.attempts),
            (Some(JobState::Completed), Some(99), Some(second), 1)
        );
        assert_eq!(ledger.in_queue(), 0);
    }

    #[test]
    fn replaying_the_records_gives_the_same_table_and_fresh_ids() {
        let mut live = Ledger::new(0);
        let mut log = Vec::new();
        for _ in 0..3 {
            let job = live.new_job_id();
            log.push(accepted(job));
        }
        log.push(Record::Delivered { job: 0, token: 0, worker: 1, until: 50 });
        log.push(Record::Stalled { job: 0, stalls: 1 });
        log.push(Record::Delivered { job: 1, token: 1, worker: 2, until: 60 });
        log.push(Record::Dead { job: 2, token: None, reason: DeadReason::Permanent, error: "bad".into(), attempts: 1 });
        for record in &log {
            live.apply(record);
        }
        let mut replayed = Ledger::new(1);
        for record in &log {
            replayed.apply(record);
        }
        assert_eq!(live.recovered(), replayed.recovered());
        assert_eq!(replayed.first_waiting(), Some(0), "a stalled job goes to the front");
        assert!(replayed.new_job_id() >= 1 << ID_INCARNATION_SHIFT, "a new incarnation's ids are its own");
        replayed.grant_grace(1_000, 500);
        assert_eq!(replayed.lapsed(1_500), Vec::new());
        assert_eq!(replayed.lapsed(1_501), vec![(1, 1)]);
        // A record about a job whose acceptance was lost changes nothing.
        replayed.apply(&Record::Completed { job: 77, token: 3, effect: 1 });
        assert!(replayed.job(77).is_none());
    }

    #[test]
    fn a_report_taken_without_the_lease_moves_a_job_wherever_it_is() {
        // The flaw fencing fixes: a stale owner's failure moves a completed job back.
        let mut ledger = Ledger::new(0);
        ledger.apply(&accepted(0));
        ledger.apply(&Record::Delivered { job: 0, token: 0, worker: 1, until: 10 });
        ledger.apply(&Record::Completed { job: 0, token: 0, effect: 5 });
        ledger.apply(&Record::Delayed { job: 0, token: 9, attempts: 1, delay: 10, ready_at: 30 });
        assert_eq!(ledger.view(0, 20).state, Some(JobState::Delayed));
        assert_eq!(ledger.in_queue(), 1);
    }
}
