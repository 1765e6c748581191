//! Runs one seed of a loaded scenario the way every verb wants it: planned
//! from the seed (or an edited plan), on a thread of its own under two
//! watchdogs, a harness panic caught, and, when asked, twice, to name the
//! first record where two runs of one seed differ; or in a child process
//! of its own (`--isolate`, [`isolate`]), with a memory limit.
//!
//! The watchdogs: simulated time is bounded by the run itself (a run past
//! `duration + heal + deadline` aborts as a hang, in `run.rs`); wall time
//! is bounded here. The run's thread publishes its simulated time after
//! every step, so a run that reaches the wall-clock limit is told apart:
//! *slow* (simulated time still advancing), a *busy loop* (simulated time
//! stopped while the thread keeps the CPU busy) or *blocked* (simulated time
//! stopped while the thread sleeps in a blocking call). The watchdog also
//! looks for operating-system threads the run's code starts.
//!
//! A thread cannot be stopped from outside: a run abandoned at the limit
//! keeps its thread (spinning or asleep) until the process ends. A sweep
//! goes on to the next seed; `--isolate` runs each seed in a child process,
//! which is ended with its thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::judge::{RunReport, SeedOutcome};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::recording::{first_divergence, FailureClass, Versions};
use crate::registry::{Keep, Loaded, Ran};
use crate::run::panic_message;
use crate::units::format_duration;

pub mod isolate;

pub use isolate::{set_launcher, Isolation, Launcher};

/// How to run one seed: what to keep beyond the report, the wall-clock
/// limit, and whether to run it twice. The default keeps nothing extra, sets
/// no limit and runs once.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Keep the digest's records and a merged timeline (for `--trace` and
    /// `--check-determinism`); costs memory, so sweeps leave it off.
    pub keep_records: bool,
    /// Keep the recording as JSON (for `replay --save`).
    pub save: bool,
    /// Wall-clock limit of one run; `None` runs on the calling thread without one.
    pub wall_limit: Option<Duration>,
    /// Run each seed twice and fail it, naming the first differing record,
    /// if the two runs differ (in two child processes with `isolate`).
    pub check_determinism: bool,
    /// Run each seed in a child process of its own, with a memory limit.
    pub isolate: Option<Isolation>,
}

impl RunOptions {
    fn keep(&self) -> Keep {
        Keep { records: self.keep_records, recording: self.save }
    }
}

/// Runs one seed of `loaded` and judges it.
pub fn run_seed(loaded: &Arc<Loaded>, seed: u64, options: RunOptions) -> RunReport {
    run_seed_saved(loaded, seed, options).report
}

/// Runs one seed, keeping its recording when `options.save` asks.
pub fn run_seed_saved(loaded: &Arc<Loaded>, seed: u64, options: RunOptions) -> Ran {
    if !options.check_determinism {
        return match options.isolate {
            Some(isolation) => isolate::run(loaded, seed, isolation, options),
            None => run_plan_saved(loaded, Plan::expand(&loaded.scenario, seed), options),
        };
    }
    let twice = RunOptions { keep_records: true, check_determinism: false, ..options };
    let (mut first, second) = match options.isolate {
        Some(isolation) => {
            let first = isolate::run(loaded, seed, isolation, twice);
            (first, isolate::run(loaded, seed, isolation, RunOptions { save: false, ..twice }).report)
        }
        None => {
            let plan = Plan::expand(&loaded.scenario, seed);
            let first = run_plan_saved(loaded, plan.clone(), twice);
            (first, run_plan(loaded, plan, RunOptions { save: false, ..twice }))
        }
    };
    if let Some((index, left, right)) = first_divergence(&first.report.records, &second.records) {
        let place = if options.isolate.is_some() { " in two processes" } else { "" };
        let reason = format!(
            "nondeterministic: two runs of seed {seed}{place} differ at record {index}:\n      first:  {left}\n      second: {right}"
        );
        fail(&mut first.report, FailureClass::Nondeterministic, reason);
    }
    if !options.keep_records {
        first.report.records = Vec::new();
        first.report.timeline = Vec::new();
        first.report.samples = Vec::new();
        first.report.picture = Default::default();
    }
    first
}

/// Runs `plan` (usually `Plan::expand(scenario, seed)`; the shrinker passes
/// edited ones). Edited plans always run in this process.
pub fn run_plan(loaded: &Arc<Loaded>, plan: Plan, options: RunOptions) -> RunReport {
    run_plan_saved(loaded, plan, options).report
}

fn run_plan_saved(loaded: &Arc<Loaded>, plan: Plan, options: RunOptions) -> Ran {
    let (mut ran, failures) = watched(loaded, plan, options);
    for (class, reason) in failures {
        fail(&mut ran.report, class, reason);
    }
    ran
}

/// Adds a failure found outside the recording (by the watchdog, or by
/// comparing two runs) to a seed's report: it fails the seed, first.
pub fn fail(report: &mut RunReport, class: FailureClass, reason: String) {
    let reasons = match std::mem::replace(&mut report.outcome, SeedOutcome::Passed) {
        SeedOutcome::Failed { mut reasons } => {
            reasons.insert(0, reason);
            reasons
        }
        _ => vec![reason],
    };
    report.outcome = SeedOutcome::Failed { reasons };
    report.passed = false;
    report.classes.retain(|c| *c != class);
    report.classes.insert(0, class);
}

/// How often the watchdog looks at a run.
const POLL: Duration = Duration::from_millis(20);

/// How long simulated time may stand still before the watchdog gives up on
/// a run, even within its wall-clock limit: no step of a simulation takes
/// this long unless code blocks or loops.
pub const STALL_MAX: Duration = Duration::from_secs(60);

/// Runs `plan` on a thread of its own under the watchdogs (or on this
/// thread, without a wall-clock limit). Returns the run and the failures
/// the watchdog saw that the recording cannot show (threads started).
pub(crate) fn watched(loaded: &Arc<Loaded>, plan: Plan, options: RunOptions) -> (Ran, Vec<(FailureClass, String)>) {
    let Some(limit) = options.wall_limit else {
        return (run_caught(loaded, &plan, options.keep()), Vec::new());
    };
    static RUNS: AtomicU64 = AtomicU64::new(0);
    // Linux names a thread by its first 15 bytes: this name is unique in
    // them, and a thread the run's code starts without a name inherits it.
    let name = format!("run-{}-seed-{}", RUNS.fetch_add(1, Ordering::Relaxed), plan.seed);
    let progress = Arc::new(AtomicU64::new(0));
    let (sender, receiver) = std::sync::mpsc::channel();
    let (worker_loaded, worker_plan, worker_progress) = (Arc::clone(loaded), plan.clone(), Arc::clone(&progress));
    let keep = options.keep();
    let spawned = std::thread::Builder::new().name(name.clone()).spawn(move || {
        let _ = sender.send(Worker::Started(watch::current_thread()));
        crate::run::watch_progress(worker_progress);
        let ran = run_caught(&worker_loaded, &worker_plan, keep);
        let _ = sender.send(Worker::Finished(Box::new(ran)));
    });
    if let Err(error) = spawned {
        let reason = format!("could not start a thread for the run: {error}");
        return (aborted(loaded, plan, FailureClass::HarnessPanic, reason), Vec::new());
    }
    let bound = crate::run::time_bound(&loaded.scenario);
    let mut watch = watch::Watch::new(&name, progress, limit, bound);
    loop {
        match receiver.recv_timeout(POLL) {
            Ok(Worker::Started(thread)) => watch.thread = thread,
            Ok(Worker::Finished(ran)) => {
                watch.look();
                return (*ran, watch.threads_started(true));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                watch.look();
                if let Some((class, reason)) = watch.verdict() {
                    let failures = watch.threads_started(false);
                    return (aborted(loaded, plan, class, reason), failures);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let reason = "the run's thread ended without a report".to_string();
                return (aborted(loaded, plan, FailureClass::HarnessPanic, reason), Vec::new());
            }
        }
    }
}

/// What a run's thread tells its watchdog.
enum Worker {
    /// The thread's id (where the OS tells it), first.
    Started(Option<u32>),
    /// The run, last.
    Finished(Box<Ran>),
}

fn run_caught(loaded: &Loaded, plan: &Plan, keep: Keep) -> Ran {
    match catch_unwind(AssertUnwindSafe(|| loaded.system.run(&loaded.scenario, plan, keep))) {
        Ok(ran) => ran,
        Err(panic) => {
            let reason =
                format!("the harness panicked: {} (a faultline bug: please report it)", panic_message(&*panic));
            aborted(loaded, plan.clone(), FailureClass::HarnessPanic, reason)
        }
    }
}

/// The report of a run that produced no recording (abandoned, killed, or
/// the harness panicked).
pub fn aborted(loaded: &Loaded, plan: Plan, class: FailureClass, reason: String) -> Ran {
    let scenario = &loaded.scenario;
    let report = RunReport {
        scenario: scenario.file.clone(),
        name: scenario.name.clone(),
        seed: plan.seed,
        tick_ms: u64::try_from(scenario.tick.0.as_millis()).unwrap_or(u64::MAX),
        digest: "-".into(),
        aborted: Some(reason.clone()),
        classes: vec![class],
        expect: scenario.check.expect.to_string(),
        expected: scenario.check.expect.violations().to_vec(),
        outcome: SeedOutcome::Failed { reasons: vec![format!("aborted: {reason}")] },
        passed: false,
        violations: Vec::new(),
        violation_counts: Default::default(),
        unjudged: Vec::new(),
        metrics: Metrics::default(),
        slo: Vec::new(),
        reached: Default::default(),
        system_figures: Default::default(),
        plan,
        versions: Versions::current(),
        records: Vec::new(),
        timeline: Vec::new(),
        samples: Vec::new(),
        picture: Default::default(),
    };
    Ran { report, recording: None }
}

/// The wall-clock watchdog: what a run's thread is doing, from outside.
mod watch {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{format_duration, FailureClass, STALL_MAX};

    /// The operating system's id of the calling thread, where it tells
    /// (Linux: /proc/thread-self is a link to /proc/PID/task/TID).
    pub fn current_thread() -> Option<u32> {
        let link = std::fs::read_link("/proc/thread-self").ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// A thread's scheduling state letter (R running, S sleeping, D in
    /// uninterruptible wait, ...) and name, from /proc.
    fn thread_state(thread: u32) -> Option<(char, String)> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{thread}/stat")).ok()?;
        // "tid (name) S ...": the name may hold spaces and parentheses.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let state = stat[close + 1..].trim_start().chars().next()?;
        Some((state, stat[open + 1..close].to_string()))
    }

    /// The process's threads (Linux), or none where /proc does not tell.
    fn threads() -> Vec<u32> {
        let Ok(listing) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
        listing.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
    }

    pub struct Watch {
        /// The run's thread's name as the OS keeps it (its first 15 bytes).
        comm: String,
        pub thread: Option<u32>,
        progress: Arc<AtomicU64>,
        limit: Duration,
        bound: Duration,
        started: Instant,
        /// The last simulated time seen, and when it changed.
        simulated: u64,
        changed: Instant,
        /// Threads of the run's name other than the run's own: started by its code.
        foreign: Vec<u32>,
        /// Running (R) states seen while simulated time stood still.
        running: u32,
        /// Looks while simulated time stood still.
        still: u32,
    }

    impl Watch {
        // The watchdog measures wall time outside every simulation.
        #[allow(clippy::disallowed_methods)]
        pub fn new(name: &str, progress: Arc<AtomicU64>, limit: Duration, bound: Duration) -> Watch {
            let comm: String = name.bytes().take(15).map(char::from).collect();
            let now = Instant::now();
            Watch {
                comm,
                thread: None,
                progress,
                limit,
                bound,
                started: now,
                simulated: 0,
                changed: now,
                foreign: Vec::new(),
                running: 0,
                still: 0,
            }
        }

        /// Looks at the run: its simulated time, its thread's state, and
        /// threads that carry its name.
        #[allow(clippy::disallowed_methods)]
        pub fn look(&mut self) {
            let now = Instant::now();
            let simulated = self.progress.load(Ordering::Relaxed);
            if simulated != self.simulated {
                self.simulated = simulated;
                self.changed = now;
                self.running = 0;
                self.still = 0;
            } else if now - self.changed >= Duration::from_millis(100) {
                self.still += 1;
                let state = self.thread.and_then(thread_state).map(|(state, _)| state);
                if state == Some('R') {
                    self.running += 1;
                }
            }
            // Until the run's thread has said which it is, it is the one
            // thread of its name, not a foreign one: a loaded machine can
            // start it after the first look.
            let Some(own) = self.thread else { return };
            for thread in threads() {
                if thread == own || self.foreign.contains(&thread) {
                    continue;
                }
                if thread_state(thread).is_some_and(|(_, name)| name == self.comm) {
                    self.foreign.push(thread);
                }
            }
        }

        /// Why the run must be given up, if it must: the wall-clock limit
        /// passed, or simulated time stood still for [`STALL_MAX`].
        #[allow(clippy::disallowed_methods)]
        pub fn verdict(&self) -> Option<(FailureClass, String)> {
            let now = Instant::now();
            let still_for = now - self.changed;
            let over = now - self.started >= self.limit;
            if !over && still_for < STALL_MAX {
                return None;
            }
            let at = if self.simulated == 0 {
                "before the first step".to_string()
            } else {
                format!("at {}", format_duration(Duration::from_nanos(self.simulated - 1)))
            };
            let stuck = still_for >= Duration::from_millis(500).min(self.limit / 2);
            if !stuck {
                let reached = Duration::from_nanos(self.simulated.saturating_sub(1));
                let share = 100.0 * reached.as_secs_f64() / self.bound.as_secs_f64().max(1e-9);
                return Some((
                    FailureClass::Slow,
                    format!(
                        "slow but progressing: the wall-clock limit of {} passed with simulated time still advancing, \
                         at {} of the run's {} ({share:.0}%): the run is slow, not stuck; raise --wall-limit, or shorten \
                         the run or lower its rate (the thread was abandoned)",
                        format_duration(self.limit),
                        format_duration(reached),
                        format_duration(self.bound)
                    ),
                ));
            }
            let still = format_duration(Duration::from_millis(still_for.as_millis() as u64 / 100 * 100));
            let abandoned = if super::isolate::serving() {
                "(the seed's process was ended, and the thread with it)"
            } else {
                "(the thread was abandoned; --isolate runs each seed in a process of its own)"
            };
            Some(if self.thread.is_none() || self.still == 0 {
                (
                    FailureClass::BusyLoop,
                    format!(
                        "stuck: simulated time stopped {at} and did not advance for {still}: host or client code is \
                         busy-looping or blocking without awaiting {abandoned}"
                    ),
                )
            } else if self.running * 2 > self.still {
                (
                    FailureClass::BusyLoop,
                    format!(
                        "busy loop: simulated time stopped {at} and did not advance for {still} while the run's thread \
                         kept the CPU busy: host or client code is looping without awaiting {abandoned}"
                    ),
                )
            } else {
                (
                    FailureClass::Blocked,
                    format!(
                        "blocked: simulated time stopped {at} and did not advance for {still} while the run's thread \
                         slept in a blocking call (std::thread::sleep, a blocking read, a lock, a channel's recv): host \
                         or client code must await instead {abandoned}"
                    ),
                )
            })
        }

        /// The threads the run's code started, as a failure (`ended`: the
        /// run finished, so a thread still there outlived it).
        pub fn threads_started(&self, ended: bool) -> Vec<(FailureClass, String)> {
            if self.foreign.is_empty() {
                return Vec::new();
            }
            let alive = self.foreign.iter().filter(|t| thread_state(**t).is_some()).count();
            let count = self.foreign.len();
            let started = if count == 1 {
                "an operating-system thread".to_string()
            } else {
                format!("{count} operating-system threads")
            };
            let still = match (alive > 0 && ended, super::isolate::serving()) {
                (false, _) => "",
                (true, true) => " Still running when the run ended, it ended with the seed's process.",
                (true, false) => {
                    " Still running when the run ended, it was abandoned (--isolate runs each seed in a process of its own)."
                }
            };
            vec![(
                FailureClass::Thread,
                format!(
                    "thread: host or client code started {started} during the run (std::thread::spawn): its work runs \
                     outside the simulation, on wall-clock time, so the run cannot be replayed; use \
                     tokio::task::spawn_local instead.{still}"
                ),
            )]
        }
    }
}
