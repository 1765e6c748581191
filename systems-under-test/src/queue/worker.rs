//! A worker: holds one long-lived connection to the broker, asks it for a
//! job (a long poll), works on it for a drawn `work_time` while renewing its
//! lease every `lock_duration / 2`, applies the job's effect at the sink,
//! and reports the run's end with the lease's token, asking for its next
//! job in the same message.
//!
//! In turmoil a TCP connection that lost a segment never recovers, so any
//! timeout or error drops the connection, and the next request opens a new
//! one, after a backoff while the broker cannot be reached. A report whose
//! answer never came is sent again (the broker recognises it), so a
//! partition delays a run's report but never loses it. A worker whose lease
//! lapsed (its renewals lost or held) goes on working, as a BullMQ worker
//! does: it cannot know, and only fencing stops its report.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::system::HostResult;
use faultline_harness::units::Dur;
use faultline_harness::{EventSink, HostContext};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Mutex, Notify};
use turmoil::net::TcpStream;

use super::broker::FETCH_WAIT;
use super::knobs::{Queue, WorkTime};
use super::protocol::{
    Apply, BrokerReply, BrokerRequest, Delivery, QueueEvent, RunOutcome, SinkReply, BROKER, BROKER_PORT, SINK,
    SINK_PORT,
};
use crate::kit::draw;
use crate::kit::pool::Caller;
use crate::kit::request::CallError;
use crate::kit::retry::{Backoff, Jitter};
use crate::kit::wire::{describe, read_frame, write_frame};

/// The pause before the n-th request in a row after a failed one: the
/// broker may be down or cut off, and hammering it helps nobody.
const RECONNECT: Backoff = Backoff {
    base: Dur(Duration::from_millis(20)),
    factor: 2.0,
    cap: Dur(Duration::from_secs(1)),
    jitter: Jitter::Full,
};

/// The worker's one connection to the broker, shared by its job loop and
/// its lease renewals; requests take turns.
struct Link {
    worker: u32,
    stream: Mutex<Option<TcpStream>>,
    connected_before: Cell<bool>,
    events: EventSink<QueueEvent>,
}

impl Link {
    /// One request and its answer within `timeout`, connecting first if
    /// needed. Any failure drops the connection.
    async fn ask(&self, request: &BrokerRequest, timeout: Duration) -> Result<BrokerReply, CallError> {
        let mut stream = self.stream.lock().await;
        let deadline = tokio::time::Instant::now() + timeout;
        if stream.is_none() {
            match tokio::time::timeout_at(deadline, crate::kit::request::connect(BROKER, BROKER_PORT)).await {
                Ok(Ok(connected)) => {
                    let reconnect = self.connected_before.replace(true);
                    self.events.emit(QueueEvent::Connected { worker: self.worker, reconnect });
                    *stream = Some(connected);
                }
                Ok(Err(error)) => return Err(CallError::Io(describe(&error))),
                Err(_) => return Err(CallError::Timeout(timeout)),
            }
        }
        let connection = stream.as_mut().expect("connected above");
        let exchange = async {
            write_frame(connection, request).await?;
            read_frame::<_, BrokerReply>(connection).await?.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
        };
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(error)) => Err(CallError::Io(describe(&error))),
            Err(_) => Err(CallError::Timeout(timeout)),
        };
        *stream = None;
        result
    }
}

struct Worker {
    config: Arc<Queue>,
    index: u32,
    link: Rc<Link>,
    rng: RefCell<ChaCha8Rng>,
    /// Requests that failed in a row (for the pause before the next).
    failures: Cell<u32>,
    /// How the worker calls the sink (`connections`; its broker link is
    /// one long-lived connection either way).
    sink: Caller,
}

pub async fn serve(config: Arc<Queue>, mut context: HostContext<QueueEvent>) -> HostResult {
    let index: u32 = context
        .name
        .strip_prefix("worker-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{:?} is not a worker's name", context.name))?;
    let link = Rc::new(Link {
        worker: index,
        stream: Mutex::new(None),
        connected_before: Cell::new(false),
        events: context.events,
    });
    let sink = Caller::new(config.connections, &mut context.rng);
    let worker = Worker { config, index, link, rng: RefCell::new(context.rng), failures: Cell::new(0), sink };
    let mut next: Option<Delivery> = None;
    loop {
        let delivery = match next.take() {
            Some(delivery) => delivery,
            None => match worker.fetch().await {
                Some(delivery) => delivery,
                None => continue,
            },
        };
        let outcome = worker.run(&delivery).await;
        next = worker.report(&delivery, outcome).await;
    }
}

impl Worker {
    /// How long a request may take: a long poll waits up to [`FETCH_WAIT`] at the broker.
    fn request_timeout(&self) -> Duration {
        FETCH_WAIT + self.config.broker_timeout.0
    }

    /// Notes a request's result; after a failure, pauses before the next.
    async fn settle<T>(&self, result: &Result<T, CallError>) {
        if result.is_ok() {
            self.failures.set(0);
            return;
        }
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        let pause = RECONNECT.delay(failures, RECONNECT.base.0, &mut self.rng.borrow_mut());
        tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
    }

    /// Asks the broker for a job; `None` when it had none for a while or
    /// could not be reached.
    async fn fetch(&self) -> Option<Delivery> {
        let result = self.link.ask(&BrokerRequest::Fetch { worker: self.index }, self.request_timeout()).await;
        self.settle(&result).await;
        match result {
            Ok(BrokerReply::Job(delivery)) => delivery,
            Ok(_) | Err(_) => None,
        }
    }

    /// Reports a run's end until the broker answers, and takes the next job
    /// it hands out with the answer.
    async fn report(&self, delivery: &Delivery, outcome: RunOutcome) -> Option<Delivery> {
        loop {
            let request = BrokerRequest::Finish {
                job: delivery.job,
                token: delivery.token,
                outcome: outcome.clone(),
                worker: self.index,
                fetch: true,
            };
            let result = self.link.ask(&request, self.request_timeout()).await;
            self.settle(&result).await;
            if let Ok(BrokerReply::Finished { next, .. }) = result {
                return next;
            }
        }
    }

    /// Works on the job, renewing its lease meanwhile, and applies its effect.
    async fn run(&self, delivery: &Delivery) -> RunOutcome {
        let stop = Rc::new(Notify::new());
        let renewals = tokio::task::spawn_local(renew(
            Rc::clone(&self.link),
            delivery.job,
            delivery.token,
            self.config.renew_every(),
            self.config.broker_timeout.0.min(self.config.renew_every()),
            Rc::clone(&stop),
        ));
        let (work, draw) = {
            let mut rng = self.rng.borrow_mut();
            let work = match self.config.work_time {
                WorkTime::Uniform(range) => draw::duration(&mut rng, range),
                WorkTime::Exponential(mean) => draw::exponential(&mut rng, mean.0),
            };
            (work, rng.random::<f64>())
        };
        tokio::time::sleep(work).await;
        let outcome = if draw < self.config.permanent_failure_rate {
            RunOutcome::Failed { error: "the job's input is invalid".into(), permanent: true }
        } else if draw < self.config.permanent_failure_rate + self.config.transient_failure_rate {
            RunOutcome::Failed { error: "a dependency failed".into(), permanent: false }
        } else {
            self.apply(delivery).await
        };
        // Renewals stop between requests, never in the middle of one.
        stop.notify_one();
        let _ = renewals.await;
        outcome
    }

    /// The job's effect, at the sink.
    async fn apply(&self, delivery: &Delivery) -> RunOutcome {
        let apply = Apply { key: delivery.key, payload: delivery.payload, job: delivery.job, token: delivery.token };
        let transient = |error: String| RunOutcome::Failed { error, permanent: false };
        match self.sink.ask_within(self.config.sink_timeout.0, SINK, SINK_PORT, &apply).await {
            Ok(SinkReply::Applied { effect } | SinkReply::Stored { effect }) => RunOutcome::Done { effect },
            Ok(SinkReply::Conflict) => RunOutcome::Failed {
                error: "the sink refused: the key was applied with another payload".into(),
                permanent: true,
            },
            Ok(SinkReply::Overloaded) => transient("the sink is overloaded".into()),
            Err(CallError::Timeout(_)) => transient("the sink did not answer in time".into()),
            Err(CallError::Io(kind)) => transient(format!("the sink is unreachable ({kind})")),
        }
    }
}

/// Renews the lease every `every` until stopped; a renewal that fails is
/// left to the next one.
async fn renew(link: Rc<Link>, job: u64, token: u64, every: Duration, timeout: Duration, stop: Rc<Notify>) {
    loop {
        tokio::select! {
            biased;
            () = stop.notified() => return,
            () = tokio::time::sleep(every) => {}
        }
        let _ = link.ask(&BrokerRequest::Renew { job, token }, timeout).await;
    }
}
