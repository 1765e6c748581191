//! The runner: the only code that builds a `turmoil::Sim`. It starts the
//! system's hosts, the workload clients and the probe, applies the plan and
//! the system's pool requests between steps, and returns what happened as a
//! [`Recording`]. It judges nothing: checks, metrics and verdicts are pure
//! functions of the recording (`checks`, `metrics`, `judge`).
//!
//! A run is bounded in simulated time (clients that never finish abort it
//! with a reason). A panic in host or client code ends the run with the
//! panic's own message (tokio replaces it with a generic one, so a chained
//! panic hook keeps it); the harness carries on with the next seed.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use turmoil::Sim;

use crate::history::{format_nanos, nanos, Happening, History, Nanos, TraceEvent, HARNESS};
use crate::inject::FaultState;
use crate::plan::{Edge, Plan};
use crate::recording::{FailureClass, Recording, Versions, RECORDING_FORMAT};
use crate::scenario::{client_host, Scenario, PROBE_HOST};
use crate::seed::{self, Stream};
use crate::system::{ClientLocal, HostContext, Pool, PoolRequest, Recorder, System};
use crate::workload::{ClientLoop, Ops, ProbeLoop, Probes};

/// Where every simulation's wall clock (`SystemTime`) starts: a fixed instant,
/// so nothing in a run depends on when it ran (2023-11-14T22:13:20Z).
pub const EPOCH_SECS: u64 = 1_700_000_000;

/// Ports for clients' outgoing connections: all but the well-known ones.
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 1024..=65535;

/// Runs `plan` of `scenario` against a typed system and records it.
pub fn record<S: System>(system: &Arc<S>, scenario: &Scenario, plan: &Plan) -> Recording<S> {
    record_panics();
    PANICS.with(|panics| panics.borrow_mut().clear());
    let in_run = InRun::enter();
    let recorder = Recorder::<S::Event>::default();
    let ops: Ops<S> = Rc::new(RefCell::new(Vec::new()));
    let probes: Probes = Rc::new(RefCell::new(Vec::new()));
    let pool = Pool::new(system.pool());
    let mut sim = build(scenario, plan.seed);
    start_hosts(&mut sim, system, plan.seed, &recorder, &pool);
    start_clients(&mut sim, system, scenario, plan.seed, &recorder, &ops, &probes);
    let mut faults = FaultState::new(scenario.network.latency);
    for host in system.down_at_start() {
        for happening in faults.pool_stop::<S::Event>(&mut sim, &host) {
            recorder.push(TraceEvent { at: 0, source: HARNESS.into(), event: happening });
        }
    }
    let stopped = step_until_done::<S>(&mut sim, scenario, plan, &mut faults, &recorder, &pool, &ops);
    let (aborted_class, aborted) = stopped.map_or((None, None), |(class, reason)| (Some(class), Some(reason)));
    // A simulation torn by a panic may panic again while it is dropped.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(sim)));
    drop(in_run);
    let mut probes = std::mem::take(&mut *probes.borrow_mut());
    probes.sort_by_key(|p| p.sent);
    let ops = std::mem::take(&mut *ops.borrow_mut());
    Recording {
        format: RECORDING_FORMAT,
        file: scenario.file.clone(),
        source: scenario.source.clone(),
        seed: plan.seed,
        plan: plan.clone(),
        history: History::new(ops),
        trace: recorder.take(),
        probes,
        aborted,
        aborted_class,
        versions: Versions::current(),
    }
}

/// The latest simulated time a run may reach: clients stop issuing at the
/// end of the heal phase, and every call ends by its deadline.
pub fn time_bound(scenario: &Scenario) -> Duration {
    scenario.end().0 + scenario.workload.deadline.0 + Duration::from_secs(1)
}

fn build<'a>(scenario: &Scenario, seed: u64) -> Sim<'a> {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed::turmoil_seed(seed))
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .tick_duration(scenario.tick.0)
        .simulation_duration(time_bound(scenario) + Duration::from_secs(1))
        .tcp_capacity(scenario.network.tcp_capacity)
        // turmoil 0.7 keeps the port of a connection that timed out against a
        // crashed host: give clients every port there is.
        .ephemeral_ports(EPHEMERAL_PORTS)
        .min_message_latency(scenario.network.latency.min.0)
        .max_message_latency(scenario.network.latency.max.0);
    builder.build()
}

fn start_hosts<S: System>(sim: &mut Sim<'_>, system: &Arc<S>, seed: u64, recorder: &Recorder<S::Event>, pool: &Pool) {
    for (index, name) in system.hosts().into_iter().enumerate() {
        let (system, recorder, pool) = (Arc::clone(system), recorder.clone(), pool.clone());
        let incarnation = Cell::new(0u32);
        let host_name = name.clone();
        let host = u32::try_from(index).expect("a system has fewer than 2^32 hosts");
        sim.host(name.as_str(), move || {
            let this = incarnation.get();
            incarnation.set(this + 1);
            system.host(HostContext {
                name: host_name.clone(),
                incarnation: this,
                rng: seed::rng(seed, Stream::Host { host, incarnation: this }),
                events: recorder.sink(&host_name),
                pool: pool.clone(),
            })
        });
    }
}

fn start_clients<S: System>(
    sim: &mut Sim<'_>,
    system: &Arc<S>,
    scenario: &Scenario,
    seed: u64,
    recorder: &Recorder<S::Event>,
    ops: &Ops<S>,
    probes: &Probes,
) {
    let end = scenario.end().0;
    for index in 0..scenario.workload.clients {
        let name = client_host(index);
        let client = ClientLoop {
            system: Arc::clone(system),
            index,
            events: recorder.sink(&name),
            name: name.clone(),
            rng: seed::rng(seed, Stream::Client(index)),
            workload: scenario.workload.clone(),
            end,
            ops: Rc::clone(ops),
            local: ClientLocal::default(),
        };
        sim.client(name.as_str(), client.run());
    }
    if let (Some(interval), Some(op)) = (scenario.metrics.probe_interval, system.probe_op()) {
        let probe = ProbeLoop {
            system: Arc::clone(system),
            name: PROBE_HOST.into(),
            events: recorder.sink(PROBE_HOST),
            op,
            fresh_only: scenario.metrics.probe_up == crate::scenario::ProbeUp::Fresh,
            interval: interval.0,
            end,
            deadline: scenario.workload.deadline.0,
            probes: Rc::clone(probes),
            local: ClientLocal::default(),
        };
        sim.client(PROBE_HOST, probe.run());
    }
}

/// Steps the simulation to its end, applying the plan and the pool's
/// requests between steps, and publishing its simulated time to the
/// watchdog (see [`watch_progress`]). Returns why it stopped early, if it did.
fn step_until_done<S: System>(
    sim: &mut Sim<'_>,
    scenario: &Scenario,
    plan: &Plan,
    faults: &mut FaultState,
    recorder: &Recorder<S::Event>,
    pool: &Pool,
    ops: &Ops<S>,
) -> Option<(FailureClass, String)> {
    let bound = time_bound(scenario);
    let progress = PROGRESS.with(|p| p.borrow().clone());
    let events = plan.events();
    let mut next_event = 0;
    let mut heal_marked = false;
    let note = |at: Nanos, happening: Happening<S::Event>| {
        recorder.push(TraceEvent { at, source: HARNESS.into(), event: happening });
    };
    loop {
        let now = sim.elapsed();
        while next_event < events.len() && events[next_event].at.0 <= now {
            let event = events[next_event];
            let fault = &plan.faults[event.fault];
            let applied = match event.edge {
                Edge::Start => faults.start(sim, event.fault, fault),
                Edge::End => faults.end(sim, event.fault),
            };
            applied.into_iter().for_each(|happening| note(nanos(now), happening));
            next_event += 1;
        }
        if !heal_marked && now >= plan.heal_at.0 {
            heal_marked = true;
            assert!(faults.is_healed(), "every fault ends by the heal phase");
            note(nanos(now), Happening::Heal);
        }
        faults.pump(sim);
        match step(sim) {
            Ok(true) => return None,
            Ok(false) => {}
            Err(stopped) => return Some(stopped),
        }
        if let Some(progress) = &progress {
            progress.store(nanos(sim.elapsed()).saturating_add(1), Ordering::Relaxed);
        }
        for request in pool.drain() {
            let applied = match request {
                PoolRequest::Start(host) => faults.pool_start(sim, &host),
                PoolRequest::Stop(host) => faults.pool_stop(sim, &host),
            };
            applied.into_iter().for_each(|happening| note(nanos(sim.elapsed()), happening));
        }
        if sim.elapsed() > bound {
            return Some((
                FailureClass::Hang,
                format!(
                    "clients did not finish within {} of simulated time ({} operations completed): \
                 a call outlived its deadline",
                    crate::units::format_duration(bound),
                    ops.borrow().len()
                ),
            ));
        }
    }
}

/// One step: `Ok(true)` when every client has finished, `Err(why)` when
/// the simulation ended abnormally (a panic, a host that returned an error).
fn step(sim: &mut Sim<'_>) -> Result<bool, (FailureClass, String)> {
    match catch_unwind(AssertUnwindSafe(|| sim.step())) {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(error)) => {
            let at = format_nanos(nanos(sim.elapsed()));
            let panicked = PANICS.with(|panics| !panics.borrow().is_empty());
            Err(if panicked {
                let (class, message) = first_panic(error.to_string());
                (class, format!("panic at {at}: {message}"))
            } else {
                (FailureClass::HostError, format!("host software failed at {at}: {error}"))
            })
        }
        Err(panic) => {
            let (class, message) = first_panic(panic_message(&*panic));
            Err((class, format!("panic at {}: {message}", format_nanos(nanos(sim.elapsed())))))
        }
    }
}

thread_local! {
    /// Where this thread's run publishes its simulated time (plus one, so
    /// that zero means "not started"), for the wall-clock watchdog.
    static PROGRESS: RefCell<Option<Arc<AtomicU64>>> = const { RefCell::new(None) };
    /// Is this thread judging (checkers, figures) with panics caught quietly?
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Makes the runs on this thread publish their simulated time (in
/// nanoseconds, plus one) to `cell` after every step: the watchdog tells a
/// slow run (time advancing) from a stuck one (time standing still).
pub fn watch_progress(cell: Arc<AtomicU64>) {
    PROGRESS.with(|p| *p.borrow_mut() = Some(cell));
}

/// Runs judging code (a checker, a system's figures), catching a panic as
/// its message with its location, without the panic hook printing it.
pub fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    record_panics();
    PANICS.with(|panics| panics.borrow_mut().clear());
    QUIET.with(|quiet| quiet.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(false));
    result.map_err(|panic| {
        PANICS.with(|panics| panics.borrow().first().cloned()).unwrap_or_else(|| panic_message(&*panic))
    })
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
            let quiet = QUIET.with(Cell::get);
            if !IN_RUN.with(Cell::get) && !quiet {
                return previous(info);
            }
            let location =
                info.location().map(|l| format!(" ({}:{})", portable_path(l.file()), l.line())).unwrap_or_default();
            let message = format!("{}{location}", panic_message(info.payload()));
            let first = PANICS.with(|panics| {
                let mut panics = panics.borrow_mut();
                panics.push(message.clone());
                panics.len() == 1
            });
            if std::env::var_os("FAULTLINE_BACKTRACE").is_some() {
                previous(info);
            } else if first && !quiet {
                eprintln!("faultline: panic in simulated code: {message} (FAULTLINE_BACKTRACE=1 shows it in full)");
            }
        }));
    });
}

/// A panic's source path as the same on every machine: paths inside
/// cargo's registry or git checkouts from the crate's folder on (another
/// user's cargo home is elsewhere), other absolute paths from their last
/// three components. Panic messages go into a run's digest.
pub fn portable_path(path: &str) -> String {
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some(at) = path.find(marker) {
            let rest = &path[at + marker.len()..];
            // Skip the index or checkout folder: keep "tokio-1.54.1/src/...".
            return rest.split_once('/').map_or(rest, |(_, crate_path)| crate_path).to_string();
        }
    }
    if path.starts_with('/') {
        let parts: Vec<&str> = path.rsplitn(4, '/').collect();
        return parts[..parts.len().min(3)].iter().rev().copied().collect::<Vec<_>>().join("/");
    }
    path.to_string()
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
/// `fallback`, classified, with a hint when it is one of turmoil's own
/// limits or a request for the operating system's randomness.
fn first_panic(fallback: String) -> (FailureClass, String) {
    let message = PANICS.with(|panics| panics.borrow().first().cloned()).unwrap_or(fallback);
    classify_panic(message)
}

/// What a panic's message says about its cause.
pub fn classify_panic(message: String) -> (FailureClass, String) {
    if message.contains("socket buffer full") {
        (FailureClass::SimulatorLimit, format!("{message}: turmoil's TCP capacity was exceeded (a simulator limit, not the system's); raise [network] tcp_capacity"))
    } else if message.contains("ports exhausted") {
        (
            FailureClass::SimulatorLimit,
            format!(
            "{message}: a host used up turmoil's ephemeral ports (a simulator limit: turmoil 0.7.2 never frees the \
             socket of a connect that was refused or timed out); open fewer connections (a longer probe_interval, \
             a lower rate, pooled connections) or shorten the run"
        ),
        )
    } else if message.contains("is already connected") {
        (
            FailureClass::SimulatorLimit,
            format!(
            "{message}: a client reused an ephemeral port, one wrap of turmoil's 64,512 ports later, while the server \
             still held a socket for it (a simulator limit: turmoil 0.7.2 panics where a real stack would refuse); \
             give the server's connections an idle timeout shorter than a wrap (the kit's serve loop has one), or \
             open fewer connections"
        ),
        )
    } else if message.contains(GETRANDOM_REFUSED) {
        (
            FailureClass::OsRandomness,
            format!(
                "{message}: simulated code asked the operating system for randomness (rand::rng(), OsRng, an unseeded \
             RNG), which would make the run differ every time; faultline builds refuse it (.cargo/config.toml sets \
             getrandom_backend=\"unsupported\"): draw from the HostContext's rng or the client's stream"
            ),
        )
    } else {
        (FailureClass::Panic, message)
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    #[test]
    fn turmoils_own_limits_are_simulator_limits() {
        for message in [
            "Host: 'client-0' ports exhausted",
            "SocketPair { local: 192.168.0.1:7000, remote: 192.168.0.2:5000 } is already connected",
            "192.168.0.1:7000 server socket buffer full",
        ] {
            let (class, text) = classify_panic(message.to_string());
            assert_eq!(class, FailureClass::SimulatorLimit, "{message}");
            assert!(text.contains("a simulator limit"), "{text}");
        }
        assert_eq!(classify_panic("index out of bounds".into()).0, FailureClass::Panic);
    }
}

/// What `getrandom` answers in faultline's builds, where its backend is
/// "unsupported" (.cargo/config.toml): no code here may read OS entropy.
pub const GETRANDOM_REFUSED: &str = "getrandom: this target is not supported";

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::portable_path;

    #[test]
    fn panic_locations_do_not_depend_on_the_machine() {
        let registry =
            "/home/ann/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/task.rs";
        assert_eq!(portable_path(registry), "tokio-1.54.1/src/runtime/task.rs");
        assert_eq!(portable_path("systems-under-test/src/echo/server.rs"), "systems-under-test/src/echo/server.rs");
        assert_eq!(portable_path("/builds/x/project/src/lib.rs"), "project/src/lib.rs");
    }
}
