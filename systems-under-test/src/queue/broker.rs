//! The broker: a bounded queue of jobs whose table (`ledger.rs`) is kept in
//! a log on the simulated disk, synced per `fsync`. It accepts jobs from the
//! api (or refuses them when `capacity` are not yet terminal), leases them
//! to workers over their long-lived connections (a long poll), renews
//! leases, takes the workers' reports (with `fencing`, only from the
//! lease's holder), delays failed jobs by the retry policy, re-queues jobs
//! whose lease lapsed every `stalled_interval` (up to `max_stalled`
//! times), and sends jobs out of attempts to the dead-letter set.
//!
//! Every change is decided and logged under the log's lock, then applied
//! to the table: with fsync `always` the record is synced before anyone
//! can see it (the 202, a status, a delivery), so a crash loses nothing
//! that was answered; with `batch` (a sync every `fsync_interval`) or
//! `never` it is visible at once and a crash can take it back.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::nanos;
use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext, Nanos};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Mutex, MutexGuard, Notify};

use super::knobs::Queue;
use super::ledger::{Ledger, Record};
use super::protocol::{BrokerReply, BrokerRequest, DeadReason, Delivery, JobId, QueueEvent, RunOutcome, BROKER_PORT};
use crate::kit::disk::{Fsync, Log};
use crate::kit::retry::Jitter;
use crate::kit::serve;

/// Where the broker keeps its log.
pub const LOG_PATH: &str = "/data/broker.log";

/// How long a worker's fetch waits for a job before the broker answers "none".
pub const FETCH_WAIT: Duration = Duration::from_millis(500);

/// The error a job that stalled too often dies with (BullMQ's words).
pub const STALLED_TOO_OFTEN: &str = "job stalled more than allowable limit";

/// Simulated time on this host, as the trace records it.
pub fn now() -> Nanos {
    turmoil::sim_elapsed().map_or(0, nanos)
}

/// A tokio instant for simulated time `at` (now if it has passed).
fn instant_at(at: Nanos) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_nanos(at.saturating_sub(now()))
}

struct Broker {
    config: Arc<Queue>,
    events: EventSink<QueueEvent>,
    rng: RefCell<ChaCha8Rng>,
    ledger: RefCell<Ledger>,
    /// Every change is decided and written under this lock, in order.
    log: Mutex<Log>,
    /// A job became waiting: wakes the workers' fetches.
    work: Notify,
    /// The delayed set changed: wakes the scheduler.
    delays: Notify,
}

pub async fn serve(config: Arc<Queue>, context: HostContext<QueueEvent>) -> HostResult {
    let (log, records) = Log::open::<Record>(LOG_PATH).await?;
    let mut ledger = Ledger::new(context.incarnation);
    for record in &records {
        ledger.apply(record);
    }
    ledger.grant_grace(now(), nanos(config.lock_duration.0));
    context.events.emit(QueueEvent::Recovered { jobs: ledger.recovered() });
    let broker = Rc::new(Broker {
        config,
        events: context.events,
        rng: RefCell::new(context.rng),
        ledger: RefCell::new(ledger),
        log: Mutex::new(log),
        work: Notify::new(),
        delays: Notify::new(),
    });
    tokio::task::spawn_local(stalled_checks(Rc::clone(&broker)));
    tokio::task::spawn_local(schedule(Rc::clone(&broker)));
    if broker.config.fsync == Fsync::Batch {
        tokio::task::spawn_local(batch_syncs(Rc::clone(&broker)));
    }
    serve::serve(BROKER_PORT, move |request: BrokerRequest| {
        let broker = Rc::clone(&broker);
        async move { Some(broker.handle(request).await) }
    })
    .await?;
    Ok(())
}

impl Broker {
    async fn handle(&self, request: BrokerRequest) -> BrokerReply {
        match request {
            BrokerRequest::Submit { key, payload } => self.submit(key, payload).await,
            BrokerRequest::Status { job } => BrokerReply::Status(self.ledger.borrow().view(job, now())),
            BrokerRequest::Fetch { worker } => BrokerReply::Job(self.fetch(worker).await),
            BrokerRequest::Renew { job, token } => {
                let until = now() + nanos(self.config.lock_duration.0);
                BrokerReply::Renewed { held: self.ledger.borrow_mut().renew(job, token, until) }
            }
            BrokerRequest::Finish { job, token, outcome, worker, fetch } => {
                let recorded = self.finish(job, token, outcome).await;
                let next = if fetch { self.fetch(worker).await } else { None };
                BrokerReply::Finished { recorded, next }
            }
        }
    }

    /// Writes `record` (synced first with fsync always), then applies it.
    async fn commit(&self, log: &mut MutexGuard<'_, Log>, record: Record) {
        log.append(&record).await.expect("the simulated disk does not fail (no I/O faults are configured)");
        if self.config.fsync == Fsync::Always {
            log.sync().await.expect("the simulated disk does not fail");
        }
        self.ledger.borrow_mut().apply(&record);
    }

    async fn submit(&self, key: u64, payload: u64) -> BrokerReply {
        let mut log = self.log.lock().await;
        let in_queue = self.ledger.borrow().in_queue() as u64;
        if self.config.capacity.is_some_and(|capacity| in_queue >= u64::from(capacity)) {
            self.events.emit(QueueEvent::Rejected { key, in_queue });
            return BrokerReply::Full;
        }
        let job = self.ledger.borrow_mut().new_job_id();
        self.commit(&mut log, Record::Accepted { job, key, payload, at: now() }).await;
        assert_eq!(self.ledger.borrow().in_queue() as u64, in_queue + 1, "an accepted job is in the queue");
        self.events.emit(QueueEvent::Accepted { job, key, in_queue: in_queue + 1 });
        drop(log);
        self.work.notify_waiters();
        BrokerReply::Accepted { job }
    }

    /// A waiting job for `worker`, leased to it; none after [`FETCH_WAIT`].
    async fn fetch(&self, worker: u32) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + FETCH_WAIT;
        loop {
            // Registered before looking, so a job that arrives in between wakes it.
            let arrived = self.work.notified();
            {
                let mut log = self.log.lock().await;
                let first = self.ledger.borrow().first_waiting();
                if let Some(job) = first {
                    return Some(self.deliver(&mut log, job, worker).await);
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    async fn deliver(&self, log: &mut MutexGuard<'_, Log>, job: JobId, worker: u32) -> Delivery {
        let token = self.ledger.borrow_mut().new_token();
        let until = now() + nanos(self.config.lock_duration.0);
        self.commit(log, Record::Delivered { job, token, worker, until }).await;
        let delivery = self.ledger.borrow().delivery(job, token);
        assert!(self.ledger.borrow().holds(job, token), "a delivered job is leased");
        self.events.emit(QueueEvent::Active { job, token, worker, attempt: delivery.attempt });
        delivery
    }

    /// Takes a worker's report of a run. With fencing, only the lease's
    /// holder is heard; without it, any report moves the job (the flaw).
    /// A report sent again (its answer was lost) changes nothing.
    async fn finish(&self, job: JobId, token: u64, outcome: RunOutcome) -> bool {
        let mut log = self.log.lock().await;
        let (holder, resent, known) = {
            let ledger = self.ledger.borrow();
            let resent = ledger.job(job).is_some_and(|j| j.reported_token == Some(token));
            (ledger.holds(job, token), resent, ledger.job(job).is_some())
        };
        if resent {
            return true;
        }
        if !known || (self.config.fencing && !holder) {
            self.events.emit(QueueEvent::Refused { job, token });
            return false;
        }
        let (record, event) = match outcome {
            RunOutcome::Done { effect } => {
                (Record::Completed { job, token, effect }, QueueEvent::Completed { job, token, effect, holder })
            }
            RunOutcome::Failed { error, permanent } => self.failed(job, token, error, permanent),
        };
        let delayed = matches!(record, Record::Delayed { .. });
        self.commit(&mut log, record).await;
        self.events.emit(event);
        drop(log);
        if delayed {
            self.delays.notify_one();
        }
        true
    }

    /// The record (and event) of a failed run: dead if permanent or out of
    /// attempts, else delayed by the retry policy.
    fn failed(&self, job: JobId, token: u64, error: String, permanent: bool) -> (Record, QueueEvent) {
        let (attempts, previous) = {
            let ledger = self.ledger.borrow();
            let j = ledger.job(job).expect("a known job");
            (j.attempts + 1, j.previous_delay)
        };
        if permanent || attempts >= self.config.attempts {
            let reason = if permanent { DeadReason::Permanent } else { DeadReason::Attempts };
            let event = QueueEvent::Dead { job, reason, error: error.clone(), attempts };
            return (Record::Dead { job, token: Some(token), reason, error, attempts }, event);
        }
        let backoff = self.config.retry_backoff();
        let previous = if previous == 0 { self.config.backoff_base.0 } else { Duration::from_nanos(previous) };
        let delay = if self.config.jitter == Jitter::Decorrelated && !self.config.decorrelated_cap {
            // The planted flaw: AWS's decorrelated jitter without its min(cap, ·).
            let low = self.config.backoff_base.0.as_secs_f64();
            let high = (previous.as_secs_f64() * 3.0).max(low);
            Duration::from_secs_f64(self.rng.borrow_mut().random_range(low..=high))
        } else {
            backoff.delay(attempts, previous, &mut self.rng.borrow_mut())
        };
        let (delay_ns, previous_ns) = (nanos(delay), nanos(previous));
        let record = Record::Delayed { job, token, attempts, delay: delay_ns, ready_at: now() + delay_ns };
        (record, QueueEvent::Delayed { job, token, retry: attempts, delay_ns, previous_ns, error })
    }
}

/// Every `stalled_interval`: jobs whose lease lapsed go back to waiting,
/// or to the dead-letter set after `max_stalled` stalls.
async fn stalled_checks(broker: Rc<Broker>) {
    loop {
        tokio::time::sleep(broker.config.stalled_interval.0).await;
        let mut log = broker.log.lock().await;
        let lapsed = broker.ledger.borrow().lapsed(now());
        for (job, token) in lapsed {
            let (stalls, attempts) = {
                let ledger = broker.ledger.borrow();
                let j = ledger.job(job).expect("a lapsed job is known");
                (j.stalls + 1, j.attempts)
            };
            let (record, event) = if stalls > broker.config.max_stalled {
                let (reason, error) = (DeadReason::Stalled, STALLED_TOO_OFTEN.to_string());
                let event = QueueEvent::Dead { job, reason, error: error.clone(), attempts };
                (Record::Dead { job, token: Some(token), reason, error, attempts }, event)
            } else {
                (Record::Stalled { job, stalls }, QueueEvent::Stalled { job, token, stalls })
            };
            broker.commit(&mut log, record).await;
            broker.events.emit(event);
        }
        drop(log);
        broker.work.notify_waiters();
    }
}

/// Moves delayed jobs to waiting when their backoff is over: all the jobs
/// due at one instant in one pass (a retry storm's burst shows here).
async fn schedule(broker: Rc<Broker>) {
    loop {
        let changed = broker.delays.notified();
        let next = broker.ledger.borrow().next_ready_at();
        match next {
            None => changed.await,
            Some(at) if at > now() => {
                tokio::select! {
                    biased;
                    () = changed => {}
                    () = tokio::time::sleep_until(instant_at(at)) => {}
                }
            }
            Some(_) => {
                let mut log = broker.log.lock().await;
                let due = broker.ledger.borrow().due(now());
                for job in due {
                    broker.commit(&mut log, Record::Ready { job }).await;
                    broker.events.emit(QueueEvent::Ready { job });
                }
                drop(log);
                broker.work.notify_waiters();
            }
        }
    }
}

/// fsync `batch`: the log is synced every `fsync_interval`.
async fn batch_syncs(broker: Rc<Broker>) {
    loop {
        tokio::time::sleep(broker.config.fsync_interval.0).await;
        broker.log.lock().await.sync().await.expect("the simulated disk does not fail");
    }
}
