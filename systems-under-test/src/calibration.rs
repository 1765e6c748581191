//! `calibration`: small services whose behaviour has a closed-form answer,
//! so faultline's measurements can be held against theory
//! (`theory.rs` and docs/metrics.md).
//!
//! Models (knob `model`):
//! - `queue`: one FIFO server with exponential service times (`service_rate`)
//!   and room for `capacity` requests in the system (0: unbounded). With
//!   Poisson arrivals it is M/M/1 or M/M/1/K; a request that finds it full is
//!   rejected at once.
//! - `flaky`: a server that fails each attempt with `fail_probability`; the
//!   client tries up to `attempts_max` times. Every attempt the server sees is
//!   reported as a `calibration.attempt` event.
//! - `replicas`: `replicas` hosts that each answer reads; the client asks them
//!   all at once and takes the first answer (each ask bounded by
//!   `replica_timeout`).

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::TraceEvent;
use faultline_harness::system::{
    erase, Configured, EventDoc, HostResult, InvariantDoc, KnobDoc, LocalFuture, SystemEntry,
};
use faultline_harness::units::{Dur, Probability, Rate};
use faultline_harness::{
    ClientContext, History, HostContext, InputError, Knobs, Outcome, System, SystemDoc, Violation,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use turmoil::net::{TcpListener, TcpStream};

use crate::wire::{ask, describe, read_frame, write_frame};

const PORT: u16 = 7100;

pub static DOC: SystemDoc = SystemDoc {
    name: "calibration",
    about: "services with closed-form answers (M/M/1, M/M/1/K, retries, replicas) to check the metrics against",
    hosts: "server (queue, flaky), or replica-1..replica-N (replicas)",
    knobs: &[
        KnobDoc { name: "model", unit: "string", default: "queue", about: "queue | flaky | replicas" },
        KnobDoc { name: "service_rate", unit: "rate", default: "10/s", about: "queue: exponential service rate mu" },
        KnobDoc { name: "capacity", unit: "count", default: "0", about: "queue: requests in the system at most (K); 0 is unbounded" },
        KnobDoc { name: "fail_probability", unit: "probability", default: "0.3", about: "flaky: chance each attempt fails" },
        KnobDoc { name: "attempts_max", unit: "count", default: "3", about: "flaky: attempts per request" },
        KnobDoc { name: "replicas", unit: "count", default: "3", about: "replicas: how many replica hosts" },
        KnobDoc { name: "replica_timeout", unit: "duration", default: "20ms", about: "replicas: how long one ask may take" },
    ],
    invariants: &[InvariantDoc {
        name: "fifo",
        about: "queue: requests are served in the order the server received them (checked by the server's sequence numbers)",
    }],
    events: &[
        EventDoc { name: "calibration.attempt", about: "flaky: the server received an attempt", detects: false },
        EventDoc { name: "calibration.rejected", about: "queue: a request found the queue full", detects: false },
        EventDoc {
            name: "calibration.load",
            about: "queue: every second, the time integral of the number in the system and the time it covers",
            detects: false,
        },
    ],
};

pub fn entry() -> SystemEntry {
    SystemEntry { doc: &DOC, configure }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Queue,
    Flaky,
    Replicas,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CalibrationKnobs {
    model: Option<Model>,
    service_rate: Option<toml::Spanned<Rate>>,
    capacity: Option<toml::Spanned<i64>>,
    fail_probability: Option<Probability>,
    attempts_max: Option<toml::Spanned<i64>>,
    replicas: Option<toml::Spanned<i64>>,
    replica_timeout: Option<Dur>,
}

fn configure(knobs: &Knobs<'_>) -> Result<Arc<dyn Configured>, InputError> {
    let raw: CalibrationKnobs = knobs.parse()?;
    let service_rate = match &raw.service_rate {
        None => 10.0,
        Some(r) if r.get_ref().per_second > 0.0 => r.get_ref().per_second,
        Some(r) => return Err(knobs.error(r.span(), "service_rate must be above zero")),
    };
    let calibration = Calibration {
        model: raw.model.unwrap_or(Model::Queue),
        service_rate,
        capacity: knobs.count(&raw.capacity, 0, 0..=1_000_000, "capacity")?,
        fail_probability: raw.fail_probability.map_or(0.3, |p| p.0),
        attempts_max: knobs.count(&raw.attempts_max, 3, 1..=100, "attempts_max")?,
        replicas: knobs.count(&raw.replicas, 3, 1..=16, "replicas")?,
        replica_timeout: raw.replica_timeout.unwrap_or(Dur::from_millis(20)),
    };
    Ok(erase(calibration, &DOC))
}

#[derive(Debug, Serialize)]
pub struct Calibration {
    pub model: Model,
    pub service_rate: f64,
    pub capacity: u32,
    pub fail_probability: f64,
    pub attempts_max: u32,
    pub replicas: u32,
    pub replica_timeout: Dur,
}

/// What the server says to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Served; `order` is the server's count of requests served before it.
    Served {
        order: u64,
        received: u64,
    },
    Rejected,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalibrationOp {
    Request,
    /// The health probe: answered at once, bypassing the queue.
    Ping,
}

/// What a successful request returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub attempts: u32,
    /// queue: (the server's receive number, its serve number) for `fifo`.
    pub order: Option<(u64, u64)>,
}

impl System for Calibration {
    type Op = CalibrationOp;
    type Res = Answer;

    fn hosts(&self) -> Vec<String> {
        match self.model {
            Model::Queue | Model::Flaky => vec!["server".into()],
            Model::Replicas => (1..=self.replicas).map(|i| format!("replica-{i}")).collect(),
        }
    }

    fn host(self: &Arc<Self>, context: HostContext) -> LocalFuture<HostResult> {
        Box::pin(serve(Arc::clone(self), context))
    }

    fn next_op(&self, _client: u32, _rng: &mut ChaCha8Rng) -> CalibrationOp {
        CalibrationOp::Request
    }

    fn op_kind(&self, op: &CalibrationOp) -> &'static str {
        match op {
            CalibrationOp::Request => "request",
            CalibrationOp::Ping => "ping",
        }
    }

    fn probe_op(&self) -> Option<CalibrationOp> {
        Some(CalibrationOp::Ping)
    }

    fn call(self: &Arc<Self>, _client: ClientContext, op: CalibrationOp) -> LocalFuture<Outcome<Answer>> {
        let this = Arc::clone(self);
        Box::pin(async move {
            match this.model {
                Model::Queue => match ask("server", PORT, &op).await {
                    Ok(Reply::Served { order, received }) => {
                        Outcome::Ok(Answer { attempts: 1, order: Some((received, order)) })
                    }
                    Ok(Reply::Rejected) => Outcome::Failed("rejected: the queue is full".into()),
                    Ok(Reply::Failed) => Outcome::Failed("failed".into()),
                    Err(error) => Outcome::Failed(describe(&error)),
                },
                Model::Flaky => {
                    for attempt in 1..=this.attempts_max {
                        if let Ok(Reply::Served { .. }) = ask("server", PORT, &op).await {
                            return Outcome::Ok(Answer { attempts: attempt, order: None });
                        }
                    }
                    Outcome::Failed(format!("all {} attempts failed", this.attempts_max))
                }
                Model::Replicas => {
                    let mut asks = tokio::task::JoinSet::new();
                    for host in this.hosts() {
                        let (op, timeout) = (op.clone(), this.replica_timeout.0);
                        asks.spawn_local(async move { tokio::time::timeout(timeout, ask(&host, PORT, &op)).await });
                    }
                    while let Some(joined) = asks.join_next().await {
                        if let Ok(Ok(Ok(Reply::Served { .. }))) = joined {
                            return Outcome::Ok(Answer { attempts: 1, order: None });
                        }
                    }
                    Outcome::Failed("no replica answered".into())
                }
            }
        })
    }

    fn check(
        &self,
        invariant: &str,
        history: &History<CalibrationOp, Answer>,
        _trace: &[TraceEvent],
    ) -> Vec<Violation> {
        match invariant {
            "fifo" => check_fifo(history),
            other => unreachable!("scenario validation admits only documented invariants, not {other:?}"),
        }
    }
}

/// A request waiting in the queue: when it arrived and where to answer.
struct Job {
    received: u64,
    reply: oneshot::Sender<Reply>,
}

struct ServerState {
    calibration: Arc<Calibration>,
    rng: RefCell<ChaCha8Rng>,
    events: faultline_harness::EventSink,
    /// Requests in the system (waiting or in service).
    in_system: Cell<u32>,
    /// Time integral of `in_system` (request-seconds) since the host started,
    /// up to `changed`.
    area: Cell<f64>,
    changed: Cell<tokio::time::Instant>,
    started: tokio::time::Instant,
    received: Cell<u64>,
    queue: mpsc::UnboundedSender<Job>,
}

async fn serve(calibration: Arc<Calibration>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    let (queue, jobs) = mpsc::unbounded_channel();
    let state = Rc::new(ServerState {
        calibration,
        rng: RefCell::new(context.rng),
        events: context.events,
        in_system: Cell::new(0),
        area: Cell::new(0.0),
        changed: Cell::new(tokio::time::Instant::now()),
        started: tokio::time::Instant::now(),
        received: Cell::new(0),
        queue,
    });
    tokio::task::spawn_local(work(Rc::clone(&state), jobs));
    if state.calibration.model == Model::Queue {
        tokio::task::spawn_local(report_load(Rc::clone(&state)));
    }
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::task::spawn_local(handle(Rc::clone(&state), stream));
    }
}

/// The single server: takes jobs in arrival order and serves each for an
/// exponential time.
impl ServerState {
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
}

/// Reports, every second, the integral of the number in the system and the
/// time it covers: their ratio is the time-average number in the system (L).
async fn report_load(state: Rc<ServerState>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        state.add_in_system(0);
        let covered = state.changed.get() - state.started;
        state.events.emit("calibration.load", format!("{:.9} {:.9}", state.area.get(), covered.as_secs_f64()));
    }
}

async fn work(state: Rc<ServerState>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let service = Exp::new(state.calibration.service_rate).expect("a positive service rate");
    let mut served = 0u64;
    while let Some(job) = jobs.recv().await {
        let pause = Duration::from_secs_f64(service.sample(&mut *state.rng.borrow_mut()));
        tokio::time::sleep(pause).await;
        assert!(state.in_system.get() > 0, "a job in service is in the system");
        state.add_in_system(-1);
        let _ = job.reply.send(Reply::Served { order: served, received: job.received });
        served += 1;
    }
}

async fn handle(state: Rc<ServerState>, mut stream: TcpStream) {
    let Ok(Some(op)) = read_frame::<_, CalibrationOp>(&mut stream).await else { return };
    let reply = match (op, state.calibration.model) {
        (CalibrationOp::Ping, _) => Reply::Served { order: 0, received: 0 },
        (CalibrationOp::Request, Model::Queue) => {
            let capacity = state.calibration.capacity;
            if capacity > 0 && state.in_system.get() >= capacity {
                state.events.emit("calibration.rejected", format!("{} in the system", state.in_system.get()));
                Reply::Rejected
            } else {
                let received = state.received.get();
                state.received.set(received + 1);
                state.add_in_system(1);
                let (reply, answer) = oneshot::channel();
                state.queue.send(Job { received, reply }).expect("the worker lives as long as the host");
                match answer.await {
                    Ok(reply) => reply,
                    Err(_) => return,
                }
            }
        }
        (CalibrationOp::Request, Model::Flaky) => {
            let failed = state.rng.borrow_mut().random_bool(state.calibration.fail_probability);
            state.events.emit("calibration.attempt", if failed { "failed" } else { "served" });
            if failed {
                Reply::Failed
            } else {
                Reply::Served { order: 0, received: 0 }
            }
        }
        (CalibrationOp::Request, Model::Replicas) => Reply::Served { order: 0, received: 0 },
    };
    let _ = write_frame(&mut stream, &reply).await;
}

/// `fifo`: the server serves requests in the order it received them. Each
/// served request carries (receive number, serve number); in a FIFO queue
/// they are equal.
pub fn check_fifo(history: &History<CalibrationOp, Answer>) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter_map(|op| {
            let (received, served) = op.outcome.value()?.order?;
            (received != served).then(|| Violation {
                invariant: "fifo".into(),
                message: format!("request #{} was received {received}th but served {served}th", op.id),
                at: Some(op.completed),
                ops: vec![op.id],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::Operation;

    fn op(order: Option<(u64, u64)>) -> Operation<CalibrationOp, Answer> {
        Operation {
            id: 0,
            client: 0,
            seq: 0,
            kind: "request",
            op: CalibrationOp::Request,
            intended: 0,
            invoked: 0,
            completed: 1,
            outstanding: 0,
            outcome: Outcome::Ok(Answer { attempts: 1, order }),
        }
    }

    #[test]
    fn fifo_holds_when_receive_and_serve_numbers_agree() {
        let history = History::new(vec![op(Some((0, 0))), op(Some((1, 1))), op(None)]);
        assert!(check_fifo(&history).is_empty());
    }

    #[test]
    fn fifo_flags_an_overtaken_request() {
        let history = History::new(vec![op(Some((0, 1))), op(Some((1, 0)))]);
        let violations = check_fifo(&history);
        assert_eq!(violations.len(), 2);
        assert!(violations[0].message.contains("received 0th but served 1th"), "{}", violations[0].message);
    }
}
