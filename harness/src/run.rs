//! The runner: the only code that builds a `turmoil::Sim`. It starts the
//! system's hosts and the workload clients, applies the plan between steps,
//! records the history and trace, then checks, measures and digests them.
//!
//! A run is bounded in simulated time (clients that never finish are a
//! liveness failure with a reason) and in wall-clock time (a busy loop in host
//! code is reported with its seed instead of hanging). A panic in host or
//! client code fails that seed; the harness carries on.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rand::Rng;
use rand_distr::{Distribution, Exp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::faults::FaultState;
use crate::history::{
    format_nanos, nanos, History, Nanos, Operation, Outcome, ProbeSample, Recorder, TraceEvent, Violation,
};
use crate::metrics::{self, FaultSpan, MeasureInput, Metrics, OpSample};
use crate::plan::{Edge, Plan};
use crate::scenario::{client_host, Arrival, Comparison, Expect, Scenario, PROBE_HOST};
use crate::seed::{self, Stream};
use crate::system::{ClientContext, HostContext, System, SystemDoc};

/// Where every simulation's wall clock (`SystemTime`) starts: a fixed instant,
/// so nothing in a run depends on when it ran (2023-11-14T22:13:20Z).
pub const EPOCH_SECS: u64 = 1_700_000_000;

/// Ports for clients' outgoing connections: all but the well-known ones.
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 1024..=65535;

/// Violations kept per invariant in a report (all of them count).
pub const VIOLATIONS_KEPT_MAX: usize = 20;

/// Versions a replay depends on; failure output records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Versions {
    pub faultline: &'static str,
    pub turmoil: &'static str,
    pub rustc: &'static str,
}

pub const VERSIONS: Versions = Versions {
    faultline: env!("CARGO_PKG_VERSION"),
    turmoil: env!("FAULTLINE_TURMOIL_VERSION"),
    rustc: env!("FAULTLINE_RUSTC_VERSION"),
};

#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Keep the digest's records and a merged timeline (for `--trace` and
    /// `--check-determinism`); costs memory, so sweeps leave it off.
    pub keep_records: bool,
    /// Wall-clock limit of one run; `None` runs on the calling thread without one.
    pub wall_limit: Option<Duration>,
    /// Run each seed twice and fail it, naming the first differing record,
    /// if the two runs differ.
    pub check_determinism: bool,
}

/// How one seed went against the scenario's expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SeedOutcome {
    /// Every check held (expect = "pass").
    Passed,
    /// The expected violation was found and nothing else failed.
    FoundExpected,
    /// The expected violation did not show in this seed, and nothing else
    /// failed (expect = "violation:..."; other seeds may find it).
    NotFound,
    /// Something failed: violations, SLO breaches, or an aborted run.
    Failed { reasons: Vec<String> },
}

#[derive(Clone, Debug, Serialize)]
pub struct SloResult {
    pub metric: String,
    pub threshold: String,
    pub measured: f64,
    pub met: bool,
    /// "availability >= 99.5% (measured 97.12%)".
    pub message: String,
    /// For an availability floor: the share of the error budget (1 - target)
    /// that the run used; above 1 the budget is exhausted.
    pub error_budget_consumed: Option<f64>,
}

/// Everything one run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub name: String,
    pub seed: u64,
    pub tick_ms: u64,
    /// SHA-256 over the ordered trace and history (hex, first 16 bytes).
    pub digest: String,
    /// Why the run stopped early (a panic, a host error, a hang), if it did.
    pub aborted: Option<String>,
    pub expect: String,
    pub outcome: SeedOutcome,
    pub passed: bool,
    /// At most [`VIOLATIONS_KEPT_MAX`] per invariant; `violation_counts` has them all.
    pub violations: Vec<Violation>,
    pub violation_counts: BTreeMap<String, usize>,
    pub metrics: Metrics,
    pub slo: Vec<SloResult>,
    /// System events reported, by kind.
    pub reached: BTreeMap<String, u64>,
    /// The system's own figures (`System::figures`).
    pub system_figures: BTreeMap<String, f64>,
    pub plan: Plan,
    pub versions: Versions,
    /// The digest's input, one record a line (with `keep_records`).
    #[serde(skip)]
    pub records: Vec<String>,
    /// Trace and operations merged in time order (with `keep_records`).
    #[serde(skip)]
    pub timeline: Vec<TraceEvent>,
    /// Every operation's timing and outcome, in history order (with `keep_records`).
    #[serde(skip)]
    pub samples: Vec<OpSample>,
}

impl RunReport {
    /// The command that reproduces this run.
    pub fn replay_command(&self) -> String {
        replay_command(&self.scenario, self.seed)
    }
}

pub fn replay_command(file: &str, seed: u64) -> String {
    format!("faultline replay {} --seed {seed}", shell_quote(file))
}

fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Runs one seed of `scenario`: plans it, then runs it on this thread or,
/// with a wall limit, on a fresh thread that may be abandoned if it hangs.
pub fn run_seed(scenario: &Arc<Scenario>, seed: u64, options: RunOptions) -> RunReport {
    let plan = Plan::expand(scenario, seed);
    if !options.check_determinism {
        return run_plan(scenario, plan, options);
    }
    let twice = RunOptions { keep_records: true, check_determinism: false, ..options };
    let mut first = run_plan(scenario, plan.clone(), twice);
    let second = run_plan(scenario, plan, twice);
    if let Some((index, left, right)) = first_divergence(&first.records, &second.records) {
        let reason = format!(
            "nondeterministic: two runs of seed {seed} differ at record {index}:\n      first:  {left}\n      second: {right}"
        );
        let reasons = match std::mem::replace(&mut first.outcome, SeedOutcome::Passed) {
            SeedOutcome::Failed { mut reasons } => {
                reasons.insert(0, reason);
                reasons
            }
            _ => vec![reason],
        };
        first.outcome = SeedOutcome::Failed { reasons };
        first.passed = false;
    }
    if !options.keep_records {
        first.records = Vec::new();
        first.timeline = Vec::new();
        first.samples = Vec::new();
    }
    first
}

/// Runs `plan` (usually `Plan::expand(scenario, seed)`; the shrinker passes edited ones).
pub fn run_plan(scenario: &Arc<Scenario>, plan: Plan, options: RunOptions) -> RunReport {
    let Some(limit) = options.wall_limit else {
        return run_caught(scenario, &plan, &options);
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    let worker_scenario = Arc::clone(scenario);
    let worker_plan = plan.clone();
    let spawned = std::thread::Builder::new().name(format!("faultline-seed-{}", plan.seed)).spawn(move || {
        let report = run_caught(&worker_scenario, &worker_plan, &options);
        let _ = sender.send(report);
    });
    if let Err(error) = spawned {
        return aborted_report(scenario, plan, format!("could not start a thread for the run: {error}"));
    }
    match receiver.recv_timeout(limit) {
        Ok(report) => report,
        Err(_) => aborted_report(
            scenario,
            plan,
            format!(
                "the run did not finish within the wall-clock limit of {}s: host or client code is probably \
                 busy-looping without awaiting (the thread was abandoned)",
                limit.as_secs()
            ),
        ),
    }
}

fn run_caught(scenario: &Arc<Scenario>, plan: &Plan, options: &RunOptions) -> RunReport {
    match catch_unwind(AssertUnwindSafe(|| scenario.system.run(scenario, plan, options))) {
        Ok(report) => report,
        Err(panic) => {
            aborted_report(scenario, plan.clone(), format!("the harness panicked: {}", panic_message(&*panic)))
        }
    }
}

thread_local! {
    /// Panics seen on this thread since the current run started, with their
    /// locations. tokio re-panics with a generic message when a task panics,
    /// so the first of these is the one worth reporting.
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Is this thread inside a simulation?
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
}

/// Chains a panic hook that records each panic's message and location on its
/// thread. Inside a run it prints one line (the seed's report carries the
/// message; a sweep may see many), or everything the previous hook prints
/// when FAULTLINE_BACKTRACE is set; outside a run it defers to the previous
/// hook. Installed once.
fn record_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_RUN.with(Cell::get) {
                return previous(info);
            }
            let location = info.location().map(|l| format!(" ({}:{})", l.file(), l.line())).unwrap_or_default();
            let message = format!("{}{location}", panic_message(info.payload()));
            let first = PANICS.with(|panics| {
                let mut panics = panics.borrow_mut();
                panics.push(message.clone());
                panics.len() == 1
            });
            if std::env::var_os("FAULTLINE_BACKTRACE").is_some() {
                previous(info);
            } else if first {
                eprintln!("faultline: panic in simulated code: {message} (FAULTLINE_BACKTRACE=1 shows it in full)");
            }
        }));
    });
}

/// Marks this thread as running a simulation until dropped.
struct InRun;

impl InRun {
    fn enter() -> InRun {
        IN_RUN.with(|flag| flag.set(true));
        InRun
    }
}

impl Drop for InRun {
    fn drop(&mut self) {
        IN_RUN.with(|flag| flag.set(false));
    }
}

/// The first panic recorded on this thread during the current run, else
/// `fallback`, with a hint when it is one of turmoil's own limits.
fn first_panic(fallback: String) -> String {
    let message = PANICS.with(|panics| panics.borrow().first().cloned()).unwrap_or(fallback);
    if message.contains("socket buffer full") {
        format!("{message}: turmoil's TCP capacity was exceeded (a simulator limit, not the system's); raise [network] tcp_capacity")
    } else if message.contains("ports exhausted") {
        format!(
            "{message}: a host used up turmoil's ephemeral ports (a simulator limit: turmoil 0.7 does not release \
             connections that timed out); open fewer connections (a longer probe_interval, a lower rate) or shorten the run"
        )
    } else {
        message
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

fn aborted_report(scenario: &Scenario, plan: Plan, reason: String) -> RunReport {
    RunReport {
        scenario: scenario.file.clone(),
        name: scenario.name.clone(),
        seed: plan.seed,
        tick_ms: scenario.tick.0.as_millis() as u64,
        digest: "-".into(),
        aborted: Some(reason.clone()),
        expect: scenario.check.expect.to_string(),
        outcome: SeedOutcome::Failed { reasons: vec![reason] },
        passed: false,
        violations: Vec::new(),
        violation_counts: BTreeMap::new(),
        metrics: Metrics::default(),
        slo: Vec::new(),
        reached: BTreeMap::new(),
        system_figures: BTreeMap::new(),
        plan,
        versions: VERSIONS,
        records: Vec::new(),
        timeline: Vec::new(),
        samples: Vec::new(),
    }
}

type Ops<S> = Rc<RefCell<Vec<Operation<<S as System>::Op, <S as System>::Res>>>>;
type Probes = Rc<RefCell<Vec<ProbeSample>>>;

/// Runs `plan` against a typed system. Called through `Configured::run`.
pub fn run_system<S: System>(
    system: &Arc<S>,
    doc: &SystemDoc,
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
) -> RunReport {
    let seed = plan.seed;
    record_panics();
    PANICS.with(|panics| panics.borrow_mut().clear());
    let in_run = InRun::enter();
    let recorder = Recorder::default();
    let ops: Ops<S> = Rc::new(RefCell::new(Vec::new()));
    let end = scenario.end();
    let deadline = scenario.workload.deadline;
    // Clients stop issuing at `end` and every call ends by its deadline.
    let bound = end.0 + deadline.0 + Duration::from_secs(1);

    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed::turmoil_seed(seed))
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .tick_duration(scenario.tick.0)
        .simulation_duration(bound + Duration::from_secs(1))
        .tcp_capacity(scenario.network.tcp_capacity)
        // turmoil 0.7 keeps the port of a connection that timed out against a
        // crashed host: give clients every port there is.
        .ephemeral_ports(EPHEMERAL_PORTS)
        .min_message_latency(scenario.network.latency.min.0)
        .max_message_latency(scenario.network.latency.max.0);
    let mut sim = builder.build();

    for (index, name) in system.hosts().into_iter().enumerate() {
        let system = Arc::clone(system);
        let recorder = recorder.clone();
        let incarnation = Cell::new(0u32);
        let host_name = name.clone();
        sim.host(name.as_str(), move || {
            let this = incarnation.get();
            incarnation.set(this + 1);
            system.host(HostContext {
                name: host_name.clone(),
                incarnation: this,
                rng: seed::rng(seed, Stream::Host { host: index as u32, incarnation: this }),
                events: recorder.sink(&host_name),
            })
        });
    }

    for index in 0..scenario.workload.clients {
        let name = client_host(index);
        let client = ClientLoop {
            system: Arc::clone(system),
            context: ClientContext { index, name: name.clone(), events: recorder.sink(&name) },
            rng: seed::rng(seed, Stream::Client(index)),
            rate_per_second: scenario.workload.rate.per_second / f64::from(scenario.workload.clients),
            arrival: scenario.workload.arrival,
            end: end.0,
            deadline: deadline.0,
            ops: Rc::clone(&ops),
        };
        sim.client(name.as_str(), client.run());
    }

    let probes: Probes = Rc::new(RefCell::new(Vec::new()));
    if let (Some(interval), Some(op)) = (scenario.metrics.probe_interval, system.probe_op()) {
        let probe = ProbeLoop {
            system: Arc::clone(system),
            context: ClientContext { index: u32::MAX, name: PROBE_HOST.into(), events: recorder.sink(PROBE_HOST) },
            op,
            fresh_only: scenario.metrics.probe_up == crate::scenario::ProbeUp::Fresh,
            interval: interval.0,
            end: end.0,
            deadline: deadline.0,
            probes: Rc::clone(&probes),
        };
        sim.client(PROBE_HOST, probe.run());
    }

    let events = plan.events();
    let mut next_event = 0;
    let mut faults = FaultState::new(scenario.network.latency);
    let mut heal_marked = false;
    let mut aborted = None;
    let harness =
        |at: Nanos, kind: &str, detail: String| TraceEvent { at, source: "harness".into(), kind: kind.into(), detail };
    loop {
        let now = sim.elapsed();
        while next_event < events.len() && events[next_event].at.0 <= now {
            let event = events[next_event];
            let fault = &plan.faults[event.fault];
            let applied = match event.edge {
                Edge::Start => faults.start(&mut sim, event.fault, fault),
                Edge::End => faults.end(&mut sim, event.fault),
            };
            for (kind, detail) in applied {
                recorder.push(harness(nanos(now), kind, detail));
            }
            next_event += 1;
        }
        if !heal_marked && now >= plan.heal_at.0 {
            heal_marked = true;
            assert!(faults.is_healed(), "every fault ends by the heal phase");
            recorder.push(harness(nanos(now), "phase.heal", "every fault is off; the system must recover".into()));
        }
        match catch_unwind(AssertUnwindSafe(|| sim.step())) {
            Ok(Ok(true)) => break,
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                let at = format_nanos(nanos(sim.elapsed()));
                let panicked = PANICS.with(|panics| !panics.borrow().is_empty());
                aborted = Some(if panicked {
                    format!("panic at {at}: {}", first_panic(error.to_string()))
                } else {
                    format!("host software failed at {at}: {error}")
                });
                break;
            }
            Err(panic) => {
                let message = first_panic(panic_message(&*panic));
                aborted = Some(format!("panic at {}: {message}", format_nanos(nanos(sim.elapsed()))));
                break;
            }
        }
        if sim.elapsed() > bound {
            let in_flight = ops.borrow().len();
            aborted = Some(format!(
                "clients did not finish within {} of simulated time ({} operations completed): \
                 a call outlived its deadline",
                crate::units::format_duration(bound),
                in_flight
            ));
            break;
        }
    }
    // A simulation torn by a panic may panic again while it is dropped.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(sim)));
    drop(in_run);

    let trace = recorder.take();
    let history = History::new(std::mem::take(&mut *ops.borrow_mut()));
    let mut probes = std::mem::take(&mut *probes.borrow_mut());
    probes.sort_by_key(|p| p.sent);
    let detection_kinds: Vec<&str> = doc.events.iter().filter(|e| e.detects).map(|e| e.name).collect();
    finish(system, scenario, plan, options, Recorded { trace, history, probes, aborted }, &detection_kinds)
}

/// What a run recorded.
struct Recorded<S: System> {
    trace: Vec<TraceEvent>,
    history: History<S::Op, S::Res>,
    probes: Vec<ProbeSample>,
    aborted: Option<String>,
}

/// The health probe: sends the system's probe operation every interval,
/// each with the workload's deadline, and records whether it was answered.
struct ProbeLoop<S: System> {
    system: Arc<S>,
    context: ClientContext,
    op: S::Op,
    /// Count only fresh answers as up.
    fresh_only: bool,
    interval: Duration,
    end: Duration,
    deadline: Duration,
    probes: Probes,
}

impl<S: System> ProbeLoop<S> {
    async fn run(self) -> turmoil::Result {
        let start = tokio::time::Instant::now();
        let mut in_flight = JoinSet::new();
        let mut next = Duration::ZERO;
        while next < self.end {
            tokio::time::sleep_until(start + next).await;
            let call = self.system.call(self.context.clone(), self.op.clone());
            let deadline_at = start + next + self.deadline;
            let (probes, fresh_only) = (Rc::clone(&self.probes), self.fresh_only);
            in_flight.spawn_local(async move {
                let sent = turmoil::sim_elapsed().map_or(0, nanos);
                let up = match tokio::time::timeout_at(deadline_at, call).await {
                    Ok(Outcome::Ok(_)) => true,
                    Ok(outcome) => !fresh_only && outcome.class().served(),
                    Err(_) => false,
                };
                let completed = turmoil::sim_elapsed().map_or(sent, nanos);
                probes.borrow_mut().push(ProbeSample { sent, completed, up });
            });
            next += self.interval;
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

/// One workload client: open-loop arrivals, each request with a deadline.
struct ClientLoop<S: System> {
    system: Arc<S>,
    context: ClientContext,
    rng: rand_chacha::ChaCha8Rng,
    rate_per_second: f64,
    arrival: Arrival,
    end: Duration,
    deadline: Duration,
    ops: Ops<S>,
}

impl<S: System> ClientLoop<S> {
    async fn run(mut self) -> turmoil::Result {
        let start = tokio::time::Instant::now();
        let gap_mean = 1.0 / self.rate_per_second;
        let exponential = Exp::new(self.rate_per_second).expect("a positive rate");
        // Uniform arrivals start at a random phase, so clients do not fire in lockstep.
        let mut next = match self.arrival {
            Arrival::Poisson => Duration::from_secs_f64(exponential.sample(&mut self.rng)),
            Arrival::Uniform => Duration::from_secs_f64(self.rng.random_range(0.0..gap_mean)),
        };
        let mut in_flight = JoinSet::new();
        let mut seq = 0u64;
        while next < self.end {
            tokio::time::sleep_until(start + next).await;
            // Reap finished calls first: the set's length is then the number in flight.
            while let Some(joined) = in_flight.try_join_next() {
                joined.map_err(|error| format!("client {} call panicked: {error}", self.context.name))?;
            }
            let op = self.system.next_op(self.context.index, &mut self.rng);
            let kind = self.system.op_kind(&op);
            let call = self.system.call(self.context.clone(), op.clone());
            let deadline_at = start + next + self.deadline;
            let ops = Rc::clone(&self.ops);
            let (client, intended) = (self.context.index, nanos(next));
            let outstanding = u32::try_from(in_flight.len()).unwrap_or(u32::MAX);
            in_flight.spawn_local(async move {
                let invoked = turmoil::sim_elapsed().map_or(intended, nanos);
                let outcome = match tokio::time::timeout_at(deadline_at, call).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::Timeout,
                };
                let completed = turmoil::sim_elapsed().map_or(invoked, nanos);
                ops.borrow_mut().push(Operation {
                    id: 0,
                    client,
                    seq,
                    kind,
                    op,
                    intended,
                    invoked,
                    completed,
                    outstanding,
                    outcome,
                });
            });
            seq += 1;
            next += match self.arrival {
                Arrival::Poisson => Duration::from_secs_f64(exponential.sample(&mut self.rng)),
                Arrival::Uniform => Duration::from_secs_f64(gap_mean),
            };
        }
        while let Some(joined) = in_flight.join_next().await {
            joined.map_err(|error| format!("client {} call panicked: {error}", self.context.name))?;
        }
        Ok(())
    }
}

/// Checks, measures and digests a finished run.
fn finish<S: System>(
    system: &Arc<S>,
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    recorded: Recorded<S>,
    detection_kinds: &[&str],
) -> RunReport {
    let Recorded { trace, history, probes, aborted } = recorded;
    let samples_of = |history: &History<S::Op, S::Res>, flagged: &std::collections::BTreeSet<usize>| -> Vec<OpSample> {
        history
            .ops
            .iter()
            .map(|op| OpSample {
                kind: op.kind,
                client: op.client,
                outstanding: op.outstanding,
                intended: op.intended,
                completed: op.completed,
                class: op.outcome.class(),
                incorrect: flagged.contains(&op.id),
            })
            .collect()
    };

    let mut violations = Vec::new();
    if aborted.is_none() {
        for invariant in &scenario.check.invariants {
            if invariant == "liveness" {
                let samples = samples_of(&history, &Default::default());
                let heal_at = nanos(plan.heal_at.0);
                violations.extend(check_liveness(
                    &samples,
                    heal_at,
                    nanos(scenario.check.recover_within.0),
                    nanos(scenario.end().0),
                ));
            } else {
                violations.extend(system.check(invariant, &history, &trace));
            }
        }
    }
    let flagged = metrics::flagged_ops(&violations);
    let samples = samples_of(&history, &flagged);
    let fault_spans: Vec<FaultSpan> = plan
        .faults
        .iter()
        .filter_map(|f| f.until.map(|until| FaultSpan { start: nanos(f.at.0), end: nanos(until.0) }))
        .collect();
    let detections: Vec<Nanos> =
        trace.iter().filter(|e| detection_kinds.contains(&e.kind.as_str())).map(|e| e.at).collect();
    let metrics = metrics::measure(&MeasureInput {
        samples: &samples,
        probes: scenario.metrics.probe_interval.map(|_| probes.as_slice()),
        faults: &fault_spans,
        detections: &detections,
        end: nanos(scenario.end().0),
        window: nanos(scenario.metrics.window.0),
        up_ratio: scenario.metrics.up_ratio,
        probe_threshold: scenario.metrics.probe_threshold,
    });

    let slo: Vec<SloResult> = scenario
        .slo
        .iter()
        .map(|slo| {
            let measured = metrics.slo_value(&slo.metric).expect("SLO metrics are validated");
            let met = slo.op.holds(measured, slo.threshold);
            let shown = if crate::scenario::SLO_METRICS
                .iter()
                .any(|(m, unit, _)| *m == slo.metric && *unit == crate::scenario::SloUnit::Percent)
            {
                format!("{:.3}%", measured * 100.0)
            } else {
                crate::units::format_duration(Duration::from_secs_f64(measured))
            };
            let floor = matches!(slo.op, Comparison::Ge | Comparison::Gt)
                && slo.metric.contains("availability")
                && slo.threshold < 1.0;
            SloResult {
                metric: slo.metric.clone(),
                threshold: format!("{} {}", slo.op, slo.text),
                measured,
                met,
                message: format!("{} {} {} (measured {shown})", slo.metric, slo.op, slo.text),
                error_budget_consumed: floor.then(|| (1.0 - measured) / (1.0 - slo.threshold)),
            }
        })
        .collect();

    let system_figures: BTreeMap<String, f64> = if aborted.is_none() {
        system.figures(&history, &trace).into_iter().map(|(name, value)| (name.to_string(), value)).collect()
    } else {
        BTreeMap::new()
    };
    let mut reached = BTreeMap::new();
    for event in trace.iter().filter(|e| e.source != "harness") {
        *reached.entry(event.kind.clone()).or_insert(0u64) += 1;
    }

    // The digest: every trace event, then every operation, one JSON record a line.
    let mut hasher = Sha256::new();
    let mut records = Vec::new();
    let mut add = |line: String| {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
        if options.keep_records {
            records.push(line);
        }
    };
    for event in &trace {
        add(serde_json::to_string(event).expect("trace events serialize"));
    }
    for op in &history.ops {
        add(serde_json::to_string(op).expect("operations serialize"));
    }
    for probe in &probes {
        add(serde_json::to_string(probe).expect("probe samples serialize"));
    }
    if let Some(reason) = &aborted {
        add(format!("aborted: {reason}"));
    }
    let digest: String = hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();

    let timeline = if options.keep_records { merge_timeline(&trace, &history) } else { Vec::new() };

    let mut violation_counts = BTreeMap::new();
    let mut kept = Vec::new();
    for violation in violations {
        let count = violation_counts.entry(violation.invariant.clone()).or_insert(0usize);
        *count += 1;
        if *count <= VIOLATIONS_KEPT_MAX {
            kept.push(violation);
        }
    }

    let outcome = judge(&scenario.check.expect, aborted.as_deref(), &violation_counts, &slo);
    RunReport {
        scenario: scenario.file.clone(),
        name: scenario.name.clone(),
        seed: plan.seed,
        tick_ms: scenario.tick.0.as_millis() as u64,
        digest,
        aborted,
        expect: scenario.check.expect.to_string(),
        passed: matches!(outcome, SeedOutcome::Passed | SeedOutcome::FoundExpected),
        outcome,
        violations: kept,
        violation_counts,
        metrics,
        slo,
        reached,
        system_figures,
        plan: plan.clone(),
        versions: VERSIONS,
        records,
        timeline,
        samples: if options.keep_records { samples } else { Vec::new() },
    }
}

/// How a seed went: pure function of what the run found.
pub fn judge(
    expect: &Expect,
    aborted: Option<&str>,
    violation_counts: &BTreeMap<String, usize>,
    slo: &[SloResult],
) -> SeedOutcome {
    let mut reasons = Vec::new();
    if let Some(reason) = aborted {
        reasons.push(format!("aborted: {reason}"));
    }
    let expected = match expect {
        Expect::Pass => None,
        Expect::Violation(name) => Some(name.as_str()),
    };
    for (invariant, count) in violation_counts {
        if Some(invariant.as_str()) != expected {
            reasons.push(format!("{count} violation(s) of {invariant}"));
        }
    }
    for result in slo.iter().filter(|r| !r.met) {
        reasons.push(format!("SLO breached: {}", result.message));
    }
    if !reasons.is_empty() {
        return SeedOutcome::Failed { reasons };
    }
    match expected {
        None => SeedOutcome::Passed,
        Some(name) if violation_counts.contains_key(name) => SeedOutcome::FoundExpected,
        Some(_) => SeedOutcome::NotFound,
    }
}

/// The harness's liveness invariant: once every fault is off, the system
/// must serve again. Every request invoked at or after `heal_at +
/// recover_within` (and before `end`) must be served.
pub fn check_liveness(samples: &[OpSample], heal_at: Nanos, recover_within: Nanos, end: Nanos) -> Vec<Violation> {
    let from = heal_at + recover_within;
    let window: Vec<(usize, &OpSample)> =
        samples.iter().enumerate().filter(|(_, s)| s.intended >= from && s.intended < end).collect();
    let unserved: Vec<(usize, &OpSample)> = window.iter().copied().filter(|(_, s)| !s.class.served()).collect();
    if window.is_empty() {
        return vec![Violation {
            invariant: "liveness".into(),
            message: format!("no request was made after {} to show recovery", format_nanos(from)),
            at: Some(from),
            ops: Vec::new(),
        }];
    }
    if unserved.is_empty() {
        return Vec::new();
    }
    let (first_id, first) = unserved[0];
    let last = unserved[unserved.len() - 1].1;
    vec![Violation {
        invariant: "liveness".into(),
        message: format!(
            "{} of {} requests after {} (heal at {} + recover_within {}) were not served; first at {} ({:?}), last at {}",
            unserved.len(),
            window.len(),
            format_nanos(from),
            format_nanos(heal_at),
            crate::units::format_duration(Duration::from_nanos(recover_within)),
            format_nanos(first.intended),
            first.class,
            format_nanos(last.intended),
        ),
        at: Some(first.intended),
        ops: std::iter::once(first_id).collect(),
    }]
}

/// The trace and the operations (invoke and completion) in time order.
fn merge_timeline<O: std::fmt::Debug, R: std::fmt::Debug>(
    trace: &[TraceEvent],
    history: &History<O, R>,
) -> Vec<TraceEvent> {
    let mut lines: Vec<TraceEvent> = trace.to_vec();
    for op in &history.ops {
        let source = client_host(op.client);
        lines.push(TraceEvent {
            at: op.invoked,
            source: source.clone(),
            kind: "op.invoke".into(),
            detail: format!("#{} {:?}", op.id, op.op),
        });
        let (kind, detail) = match &op.outcome {
            Outcome::Ok(value) => ("op.ok", format!("#{} -> {:?}", op.id, value)),
            Outcome::Degraded(value) => ("op.degraded", format!("#{} -> {:?}", op.id, value)),
            Outcome::Failed(reason) => ("op.failed", format!("#{} {reason}", op.id)),
            Outcome::Timeout => ("op.timeout", format!("#{}", op.id)),
        };
        let latency = crate::units::format_duration(Duration::from_nanos(op.latency()));
        lines.push(TraceEvent { at: op.completed, source, kind: kind.into(), detail: format!("{detail} ({latency})") });
    }
    // Stable: events at one instant keep their recorded order.
    lines.sort_by_key(|e| e.at);
    lines
}

/// Where two runs of one seed first differ: (record index, first, second).
pub fn first_divergence(a: &[String], b: &[String]) -> Option<(usize, String, String)> {
    let missing = || "(no record: the run ended here)".to_string();
    for index in 0..a.len().max(b.len()) {
        let left = a.get(index);
        let right = b.get(index);
        if left != right {
            return Some((index, left.cloned().unwrap_or_else(missing), right.cloned().unwrap_or_else(missing)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OutcomeClass;

    fn sample(intended_ms: u64, class: OutcomeClass) -> OpSample {
        OpSample {
            kind: "x",
            client: 0,
            outstanding: 0,
            intended: intended_ms * 1_000_000,
            completed: intended_ms * 1_000_000 + 1,
            class,
            incorrect: false,
        }
    }

    #[test]
    fn liveness_passes_when_service_returns_after_heal() {
        let samples = [
            sample(9_000, OutcomeClass::Timeout),
            sample(10_500, OutcomeClass::Timeout),
            sample(12_000, OutcomeClass::Ok),
            sample(13_000, OutcomeClass::Degraded),
        ];
        // Heal at 10s, recover within 1.5s: only requests from 11.5s count.
        assert!(check_liveness(&samples, 10_000_000_000, 1_500_000_000, 15_000_000_000).is_empty());
    }

    #[test]
    fn liveness_fails_when_requests_after_recovery_fail() {
        let samples = [
            sample(12_000, OutcomeClass::Ok),
            sample(13_000, OutcomeClass::Failed),
            sample(14_000, OutcomeClass::Timeout),
        ];
        let violations = check_liveness(&samples, 10_000_000_000, 1_000_000_000, 15_000_000_000);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].ops, vec![1]);
        assert!(violations[0].message.starts_with("2 of 3 requests"), "{}", violations[0].message);
    }

    #[test]
    fn liveness_without_requests_is_a_violation_not_a_pass() {
        let violations =
            check_liveness(&[sample(1_000, OutcomeClass::Ok)], 10_000_000_000, 1_000_000_000, 15_000_000_000);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("no request"));
    }

    #[test]
    fn judge_separates_expected_and_unexpected_violations() {
        let counts = |names: &[&str]| names.iter().map(|n| (n.to_string(), 1usize)).collect::<BTreeMap<_, _>>();
        let flaw = Expect::Violation("stale".into());
        assert_eq!(judge(&Expect::Pass, None, &counts(&[]), &[]), SeedOutcome::Passed);
        assert!(matches!(judge(&Expect::Pass, None, &counts(&["stale"]), &[]), SeedOutcome::Failed { .. }));
        assert_eq!(judge(&flaw, None, &counts(&["stale"]), &[]), SeedOutcome::FoundExpected);
        assert_eq!(judge(&flaw, None, &counts(&[]), &[]), SeedOutcome::NotFound);
        assert!(matches!(judge(&flaw, None, &counts(&["stale", "liveness"]), &[]), SeedOutcome::Failed { .. }));
        assert!(matches!(judge(&Expect::Pass, Some("panic"), &counts(&[]), &[]), SeedOutcome::Failed { .. }));
    }

    #[test]
    fn divergence_names_the_first_differing_record() {
        let a = vec!["x".to_string(), "y".to_string()];
        let b = vec!["x".to_string(), "z".to_string(), "w".to_string()];
        assert_eq!(first_divergence(&a, &b), Some((1, "y".into(), "z".into())));
        assert_eq!(first_divergence(&a, &a), None);
        assert_eq!(first_divergence(&a[..1], &a).unwrap().0, 1);
    }

    #[test]
    fn replay_commands_quote_odd_paths() {
        assert_eq!(replay_command("scenarios/echo/a.toml", 7), "faultline replay scenarios/echo/a.toml --seed 7");
        assert_eq!(replay_command("my dir/a.toml", 7), "faultline replay 'my dir/a.toml' --seed 7");
    }
}
