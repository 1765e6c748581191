//! The workload clients and the health probe, as they run inside a
//! simulation: open-loop clients (Poisson or uniform arrivals, with k6-style
//! stages that ramp the rate), closed-loop sessions (the next operation when
//! the last one ended, after a think time) and the probe.
//!
//! Each client keeps its own state (`System::Client`) and its own seeded
//! stream for the whole run; each operation gets a sequence number that,
//! with the client's index, names it. Recording only: nothing here judges.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::history::{nanos, Nanos, Operation, Outcome, ProbeSample};
use crate::scenario::{Arrival, Load, Workload};
use crate::seed;
use crate::system::{ClientContext, ClientLocal, EventSink, System};
use crate::units::{Dur, DurRange};

/// The operations every client has completed, shared with the runner.
pub type Ops<S> = Rc<RefCell<Vec<Operation<<S as System>::Op, <S as System>::Res>>>>;
/// The probe's samples, shared with the runner.
pub type Probes = Rc<RefCell<Vec<ProbeSample>>>;

/// A closed-loop session never sends faster than this, so a system that
/// refuses at once cannot spin a client in zero simulated time.
pub const SESSION_GAP_MIN: Duration = Duration::from_millis(1);

/// One workload client.
pub struct ClientLoop<S: System> {
    /// The configured system, whose `call` performs each operation.
    pub system: Arc<S>,
    /// The client's number: `n` for `client-n`.
    pub index: u32,
    /// The client's host name, `client-n`.
    pub name: String,
    /// Reports the system's events with this client as their source.
    pub events: EventSink<S::Event>,
    /// The client's own stream (`Stream::Client(index)`): its arrivals, think
    /// times and operations.
    pub rng: ChaCha8Rng,
    /// The scenario's `[workload]`: mode, rate or think time, deadline.
    pub workload: Workload,
    /// When clients stop issuing operations (the end of the heal phase).
    pub end: Duration,
    /// Where each finished operation is recorded.
    pub ops: Ops<S>,
    /// The client host's state between calls ([`ClientLocal`]).
    pub local: ClientLocal,
}

impl<S: System> ClientLoop<S> {
    /// Runs the client until `end`, then waits for its calls in flight.
    pub async fn run(self) -> turmoil::Result {
        match self.workload.load.clone() {
            Load::Open { arrival, .. } => self.open(arrival).await,
            Load::Closed { think } => self.closed(think).await,
        }
    }

    fn context(&self, seq: u64) -> ClientContext<S::Event> {
        ClientContext {
            index: self.index,
            name: self.name.clone(),
            seq,
            events: self.events.clone(),
            local: self.local.clone(),
        }
    }

    /// This client's share of the total rate at `at`, per second.
    fn rate_at(&self, at: Duration) -> f64 {
        self.workload.rate_at(Dur(at)).unwrap_or(0.0) / f64::from(self.workload.clients)
    }

    /// The gap to this client's next arrival after `now`. Poisson arrivals
    /// under a changing rate are drawn by thinning: candidates at the peak
    /// rate, each kept with probability rate(t) / peak.
    fn next_arrival(&mut self, now: Duration, arrival: Arrival) -> Duration {
        let peak = self.workload.rate_max().unwrap_or(0.0) / f64::from(self.workload.clients);
        match arrival {
            Arrival::Poisson => {
                let mut at = now;
                while at < self.end {
                    at += Duration::from_secs_f64(seed::exponential(&mut self.rng, 1.0 / peak));
                    let rate = self.rate_at(at);
                    if rate >= peak || self.rng.random::<f64>() * peak < rate {
                        return at;
                    }
                }
                at
            }
            Arrival::Uniform => {
                // A rate of zero (a ramp down to nothing) waits a millisecond and looks again.
                let rate = self.rate_at(now);
                if rate <= 0.0 {
                    now + Duration::from_millis(1)
                } else {
                    now + Duration::from_secs_f64(1.0 / rate)
                }
            }
        }
    }

    async fn open(mut self, arrival: Arrival) -> turmoil::Result {
        let start = Instant::now();
        let state = Rc::new(RefCell::new(self.system.client(self.index)));
        // Uniform arrivals start at a random phase, so clients do not fire in lockstep.
        let mut next = match arrival {
            Arrival::Poisson => self.next_arrival(Duration::ZERO, arrival),
            Arrival::Uniform => {
                let rate = self.rate_at(Duration::ZERO).max(1e-3);
                Duration::from_secs_f64(self.rng.random_range(0.0..1.0 / rate))
            }
        };
        let mut in_flight = JoinSet::new();
        let mut seq = 0u64;
        while next < self.end {
            tokio::time::sleep_until(start + next).await;
            // Reap finished calls first: the set's length is then the number in flight.
            while let Some(joined) = in_flight.try_join_next() {
                joined.map_err(|error| format!("client {} call panicked: {error}", self.name))?;
            }
            let op = self.system.next_op(&mut state.borrow_mut(), &mut self.rng);
            let outstanding = u32::try_from(in_flight.len()).unwrap_or(u32::MAX);
            let call = Call {
                system: Arc::clone(&self.system),
                context: self.context(seq),
                state: Rc::clone(&state),
                intended: nanos(next),
                deadline_at: start + next + self.workload.deadline.0,
                outstanding,
                ops: Rc::clone(&self.ops),
            };
            in_flight.spawn_local(call.run(op));
            seq += 1;
            next = self.next_arrival(next, arrival);
        }
        while let Some(joined) = in_flight.join_next().await {
            joined.map_err(|error| format!("client {} call panicked: {error}", self.name))?;
        }
        Ok(())
    }

    async fn closed(mut self, think: DurRange) -> turmoil::Result {
        let start = Instant::now();
        let state = Rc::new(RefCell::new(self.system.client(self.index)));
        let mut seq = 0u64;
        loop {
            let pause = Duration::from_nanos(self.rng.random_range(think.min.as_nanos()..=think.max.as_nanos()));
            tokio::time::sleep(pause.max(SESSION_GAP_MIN)).await;
            let intended = start.elapsed();
            if intended >= self.end {
                return Ok(());
            }
            let op = self.system.next_op(&mut state.borrow_mut(), &mut self.rng);
            let call = Call {
                system: Arc::clone(&self.system),
                context: self.context(seq),
                state: Rc::clone(&state),
                intended: nanos(intended),
                deadline_at: start + intended + self.workload.deadline.0,
                outstanding: 0,
                ops: Rc::clone(&self.ops),
            };
            call.run(op).await;
            seq += 1;
        }
    }
}

/// One operation in flight: calls the system within the deadline, records
/// the operation and tells the client's state how it ended.
struct Call<S: System> {
    system: Arc<S>,
    context: ClientContext<S::Event>,
    state: Rc<RefCell<S::Client>>,
    intended: Nanos,
    deadline_at: Instant,
    outstanding: u32,
    ops: Ops<S>,
}

impl<S: System> Call<S> {
    async fn run(self, op: S::Op) {
        let invoked = turmoil::sim_elapsed().map_or(self.intended, nanos);
        let (client, seq) = (self.context.index, self.context.seq);
        let call = self.system.call(self.context, op.clone());
        let outcome = match tokio::time::timeout_at(self.deadline_at, call).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Timeout,
        };
        let completed = turmoil::sim_elapsed().map_or(invoked, nanos);
        self.system.observe(&mut self.state.borrow_mut(), &op, &outcome);
        self.ops.borrow_mut().push(Operation {
            id: 0,
            client,
            seq,
            op,
            intended: self.intended,
            invoked,
            completed,
            outstanding: self.outstanding,
            outcome,
        });
    }
}

/// The health probe: sends the system's probe operation every interval,
/// each with the workload's deadline, and records whether it was answered.
pub struct ProbeLoop<S: System> {
    /// The configured system, whose `call` performs each probe.
    pub system: Arc<S>,
    /// The probe's host name, `client-probe`.
    pub name: String,
    /// Reports the system's events with the probe as their source.
    pub events: EventSink<S::Event>,
    /// The operation sent each time ([`System::probe_op`]).
    pub op: S::Op,
    /// Count only fresh answers as up.
    pub fresh_only: bool,
    /// Time between probes (`[metrics] probe_interval`).
    pub interval: Duration,
    /// When the probe stops sending (the end of the heal phase).
    pub end: Duration,
    /// Each probe's deadline, counted from when it is due (the workload's `deadline`).
    pub deadline: Duration,
    /// Where each probe's sample is recorded.
    pub probes: Probes,
    /// The probe host's state between calls ([`ClientLocal`]).
    pub local: ClientLocal,
}

impl<S: System> ProbeLoop<S> {
    /// Sends a probe every `interval` until `end`, each in its own task,
    /// then waits for those in flight.
    pub async fn run(self) -> turmoil::Result {
        let start = Instant::now();
        let mut in_flight = JoinSet::new();
        let mut next = Duration::ZERO;
        let mut seq = 0u64;
        while next < self.end {
            tokio::time::sleep_until(start + next).await;
            let context = ClientContext {
                index: u32::MAX,
                name: self.name.clone(),
                seq,
                events: self.events.clone(),
                local: self.local.clone(),
            };
            let call = self.system.call(context, self.op.clone());
            let deadline_at = start + next + self.deadline;
            let (probes, fresh_only) = (Rc::clone(&self.probes), self.fresh_only);
            in_flight.spawn_local(async move {
                let sent = turmoil::sim_elapsed().map_or(0, nanos);
                let (up, served) = match tokio::time::timeout_at(deadline_at, call).await {
                    Ok(Outcome::Ok(_)) => (true, true),
                    Ok(outcome) => {
                        let served = outcome.class().served();
                        (!fresh_only && served, served)
                    }
                    Err(_) => (false, false),
                };
                let completed = turmoil::sim_elapsed().map_or(sent, nanos);
                probes.borrow_mut().push(ProbeSample { sent, completed, up, served });
            });
            next += self.interval;
            seq += 1;
            while let Some(joined) = in_flight.try_join_next() {
                joined.map_err(|error| format!("the probe's call panicked: {error}"))?;
            }
        }
        while let Some(joined) = in_flight.join_next().await {
            joined.map_err(|error| format!("the probe's call panicked: {error}"))?;
        }
        Ok(())
    }
}
