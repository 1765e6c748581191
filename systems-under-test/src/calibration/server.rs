//! The calibration servers and the client side of each model.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext, Outcome};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{oneshot, Notify};

use super::knobs::{Calibration, Discipline, Model};
use super::protocol::{Answer, CalibrationEvent, CalibrationOp, Reply, PORT};
use crate::kit::request::ask;
use crate::kit::wire::describe;
use crate::kit::{draw, serve};

/// A client's call, by model.
pub async fn call(calibration: Arc<Calibration>, op: CalibrationOp) -> Outcome<Answer> {
    match calibration.model {
        Model::Queue => match ask("server", PORT, &op).await {
            Ok(Reply::Served) => Outcome::Ok(Answer { attempts: 1 }),
            Ok(Reply::Rejected) => Outcome::Failed("rejected: the queue is full".into()),
            Ok(Reply::Failed) => Outcome::Failed("failed".into()),
            Err(error) => Outcome::Failed(describe(&error)),
        },
        Model::Flaky => {
            for attempt in 1..=calibration.attempts_max {
                if let Ok(Reply::Served) = ask("server", PORT, &op).await {
                    return Outcome::Ok(Answer { attempts: attempt });
                }
            }
            Outcome::Failed(format!("all {} attempts failed", calibration.attempts_max))
        }
        Model::Replicas => {
            let mut asks = tokio::task::JoinSet::new();
            for host in (1..=calibration.replicas).map(|i| format!("replica-{i}")) {
                let (op, timeout) = (op.clone(), calibration.replica_timeout.0);
                asks.spawn_local(async move { tokio::time::timeout(timeout, ask(&host, PORT, &op)).await });
            }
            while let Some(joined) = asks.join_next().await {
                if let Ok(Ok(Ok(Reply::Served))) = joined {
                    return Outcome::Ok(Answer { attempts: 1 });
                }
            }
            Outcome::Failed("no replica answered".into())
        }
    }
}

/// A request waiting in the queue: its receive number and where to answer.
struct Job {
    received: u64,
    reply: oneshot::Sender<Reply>,
}

struct Server {
    calibration: Arc<Calibration>,
    rng: RefCell<ChaCha8Rng>,
    events: EventSink<CalibrationEvent>,
    /// Requests in the system (waiting or in service).
    in_system: Cell<u32>,
    /// Time integral of `in_system` (request-seconds) since the host started,
    /// up to `changed`.
    area: Cell<f64>,
    changed: Cell<tokio::time::Instant>,
    started: tokio::time::Instant,
    received: Cell<u64>,
    waiting: RefCell<VecDeque<Job>>,
    arrived: Notify,
}

pub async fn serve(calibration: Arc<Calibration>, context: HostContext<CalibrationEvent>) -> HostResult {
    let now = tokio::time::Instant::now();
    let server = Rc::new(Server {
        calibration,
        rng: RefCell::new(context.rng),
        events: context.events,
        in_system: Cell::new(0),
        area: Cell::new(0.0),
        changed: Cell::new(now),
        started: now,
        received: Cell::new(0),
        waiting: RefCell::new(VecDeque::new()),
        arrived: Notify::new(),
    });
    tokio::task::spawn_local(work(Rc::clone(&server)));
    if server.calibration.model == Model::Queue {
        tokio::task::spawn_local(report_load(Rc::clone(&server)));
    }
    serve::serve(PORT, move |op: CalibrationOp| {
        let server = Rc::clone(&server);
        async move { server.handle(op).await }
    })
    .await?;
    Ok(())
}

impl Server {
    /// Changes the number in the system by `delta`, integrating the old value.
    fn add_in_system(&self, delta: i64) {
        let now = tokio::time::Instant::now();
        let held = now - self.changed.get();
        self.area.set(self.area.get() + f64::from(self.in_system.get()) * held.as_secs_f64());
        self.changed.set(now);
        let next = i64::from(self.in_system.get()) + delta;
        assert!(next >= 0, "the number in the system cannot go below zero");
        self.in_system.set(u32::try_from(next).expect("fits"));
    }

    async fn handle(&self, op: CalibrationOp) -> Option<Reply> {
        Some(match (op, self.calibration.model) {
            (CalibrationOp::Ping, _) | (CalibrationOp::Request, Model::Replicas) => Reply::Served,
            (CalibrationOp::Request, Model::Queue) => {
                let capacity = self.calibration.capacity;
                if capacity > 0 && self.in_system.get() >= capacity {
                    self.events.emit(CalibrationEvent::Rejected { in_system: self.in_system.get() });
                    return Some(Reply::Rejected);
                }
                let received = self.received.get();
                self.received.set(received + 1);
                self.add_in_system(1);
                let (reply, answer) = oneshot::channel();
                self.waiting.borrow_mut().push_back(Job { received, reply });
                self.arrived.notify_one();
                answer.await.ok()?
            }
            (CalibrationOp::Request, Model::Flaky) => {
                let failed = self.rng.borrow_mut().random_bool(self.calibration.fail_probability);
                self.events.emit(CalibrationEvent::Attempt { failed });
                if failed {
                    Reply::Failed
                } else {
                    Reply::Served
                }
            }
        })
    }

    /// The next waiting job, by the queue's discipline.
    fn next_job(&self) -> Option<Job> {
        let mut waiting = self.waiting.borrow_mut();
        match self.calibration.discipline {
            Discipline::Fifo => waiting.pop_front(),
            Discipline::Lifo => waiting.pop_back(),
        }
    }
}

/// The single server: takes waiting jobs by its discipline and serves each
/// for an exponential time.
async fn work(server: Rc<Server>) {
    let mean = Duration::from_secs_f64(1.0 / server.calibration.service_rate);
    loop {
        let Some(job) = server.next_job() else {
            server.arrived.notified().await;
            continue;
        };
        let pause = draw::exponential(&mut server.rng.borrow_mut(), mean);
        tokio::time::sleep(pause).await;
        assert!(server.in_system.get() > 0, "a job in service is in the system");
        server.add_in_system(-1);
        server.events.emit(CalibrationEvent::Served { received: job.received });
        let _ = job.reply.send(Reply::Served);
    }
}

/// Reports, every second, the integral of the number in the system and the
/// time it covers: their ratio is the time-average number in the system (L).
async fn report_load(server: Rc<Server>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.add_in_system(0);
        let covered = (server.changed.get() - server.started).as_secs_f64();
        server.events.emit(CalibrationEvent::Load { area: server.area.get(), covered });
    }
}
