//! The floor a scenario stands on: the same system's own code, in bare
//! turmoil, with no harness around it. The same hosts (the system's, each
//! workload client, the probe when the scenario has one), tick, link
//! latencies, TCP capacity and simulated length; the same host software
//! (`System::host`) and client calls (`System::call`, operations from
//! `System::next_op` on each client's own stream), Poisson arrivals at the
//! scenario's rate and deadlines. Left out is everything faultline adds: the
//! plan and its injector, the history, the trace (events go to a sink that
//! is emptied every step), watchdogs, checks, metrics and the digest.
//!
//! So `faultline bench` can say, per shipped baseline scenario, how much of
//! a run's wall time is the harness and how much is turmoil and the system.
//! Only open-loop scenarios at a fixed rate without faults have a floor
//! (the baselines are such); others are refused.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use faultline_harness::scenario::{Arrival, Load, Scenario, PROBE_HOST};
use faultline_harness::seed::{self, Stream};
use faultline_harness::system::{ClientContext, ClientLocal, HostContext, Pool, Recorder};
use faultline_harness::System;

/// Does `scenario` have a floor (open loop, fixed Poisson rate, no faults)?
pub fn supported(scenario: &Scenario) -> Result<f64, String> {
    match &scenario.workload.load {
        Load::Open { rate, arrival: Arrival::Poisson, stages } if stages.is_empty() => {
            if scenario.faults.is_empty() && scenario.chaos.generators.is_empty() {
                Ok(rate.per_second)
            } else {
                Err("a floor is measured without faults".into())
            }
        }
        _ => Err("a floor needs an open loop at a fixed Poisson rate".into()),
    }
}

/// Runs `system` as `scenario` describes, with `seed`, in bare turmoil;
/// returns how many client operations were answered within their deadline.
pub fn run<S: System>(system: &Arc<S>, scenario: &Scenario, seed: u64) -> u64 {
    let rate = supported(scenario).expect("the bench runs floors of supported scenarios only");
    let end = scenario.end().0;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(scenario.tick.0)
        .simulation_duration(end + scenario.workload.deadline.0 + Duration::from_secs(2))
        .tcp_capacity(scenario.network.tcp_capacity)
        .ephemeral_ports(1024..=65535)
        .min_message_latency(scenario.network.latency.min.0)
        .max_message_latency(scenario.network.latency.max.0)
        .build();
    let recorder: Recorder<S::Event> = Recorder::default();
    for (position, name) in system.hosts().into_iter().enumerate() {
        let (system, recorder) = (Arc::clone(system), recorder.clone());
        let incarnation = Rc::new(Cell::new(0u32));
        let host = name.clone();
        sim.host(host.as_str(), move || {
            let context = HostContext {
                name: name.clone(),
                incarnation: incarnation.get(),
                rng: seed::rng(seed, Stream::Host { host: position as u32, incarnation: incarnation.get() }),
                events: recorder.sink(&name),
                pool: Pool::new(system.pool()),
            };
            incarnation.set(incarnation.get() + 1);
            system.host(context)
        });
    }
    let answered = Rc::new(Cell::new(0u64));
    let clients = scenario.workload.clients;
    for index in 0..clients {
        let name = format!("client-{index}");
        let mean = f64::from(clients) / rate;
        let client = Client {
            system: Arc::clone(system),
            index,
            name: name.clone(),
            recorder: recorder.clone(),
            local: ClientLocal::default(),
        };
        let (answered, deadline) = (Rc::clone(&answered), scenario.workload.deadline.0);
        sim.client(name.as_str(), async move {
            client.open(seed, mean, end, deadline, answered).await;
            Ok(())
        });
    }
    if let (Some(every), Some(op)) = (scenario.metrics.probe_interval, system.probe_op()) {
        let client = Client {
            system: Arc::clone(system),
            index: u32::MAX,
            name: PROBE_HOST.into(),
            recorder: recorder.clone(),
            local: ClientLocal::default(),
        };
        let deadline = scenario.workload.deadline.0;
        sim.client(PROBE_HOST, async move {
            client.probe(op, every.0, end, deadline).await;
            Ok(())
        });
    }
    while !sim.step().expect("the floor's simulation runs") {
        drop(recorder.take());
    }
    answered.get()
}

/// One workload client (or the probe) of the floor.
struct Client<S: System> {
    system: Arc<S>,
    index: u32,
    name: String,
    recorder: Recorder<S::Event>,
    /// The client host's state between calls, as the harness gives it.
    local: ClientLocal,
}

impl<S: System> Client<S> {
    fn context(&self, seq: u64) -> ClientContext<S::Event> {
        ClientContext {
            index: self.index,
            name: self.name.clone(),
            seq,
            events: self.recorder.sink(&self.name),
            local: self.local.clone(),
        }
    }

    /// Poisson arrivals of mean gap `mean` seconds until `end`, each call
    /// bounded by `deadline` from its intended start.
    async fn open(self, seed: u64, mean: f64, end: Duration, deadline: Duration, answered: Rc<Cell<u64>>) {
        let mut rng = seed::rng(seed, Stream::Client(self.index));
        let mut state = self.system.client(self.index);
        let start = tokio::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        let mut next = Duration::from_secs_f64(seed::exponential(&mut rng, mean));
        let mut seq = 0;
        while next < end {
            tokio::time::sleep_until(start + next).await;
            let op = self.system.next_op(&mut state, &mut rng);
            let call = self.system.call(self.context(seq), op);
            let answered = Rc::clone(&answered);
            calls.spawn_local(async move {
                if tokio::time::timeout_at(start + next + deadline, call).await.is_ok() {
                    answered.set(answered.get() + 1);
                }
            });
            while calls.try_join_next().is_some() {}
            seq += 1;
            next += Duration::from_secs_f64(seed::exponential(&mut rng, mean));
        }
        while calls.join_next().await.is_some() {}
    }

    /// The probe's operation every `every` until `end`.
    async fn probe(self, op: S::Op, every: Duration, end: Duration, deadline: Duration) {
        let start = tokio::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        let (mut next, mut seq) = (Duration::ZERO, 0);
        while next < end {
            tokio::time::sleep_until(start + next).await;
            let call = self.system.call(self.context(seq), op.clone());
            calls.spawn_local(async move {
                let _ = tokio::time::timeout_at(start + next + deadline, call).await;
            });
            while calls.try_join_next().is_some() {}
            seq += 1;
            next += every;
        }
        while calls.join_next().await.is_some() {}
    }
}
