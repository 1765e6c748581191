//! Hostile systems: a system under test that blocks its thread, spins,
//! crawls, allocates without bound, starts OS threads, panics in a checker,
//! reports NaN figures, reads the wall clock or asks the OS for randomness.
//! Each is a failed seed with its class, its seed and its replay command,
//! and a sweep goes on to the next seed; the harness neither hangs nor
//! crashes. The `hostile` system below does one wrong thing, chosen by its
//! `mode` knob, one simulated second into the run.
//!
//! Where a thread cannot be stopped (a busy loop, a thread the system
//! started that never ends, unbounded allocation) the seed runs isolated,
//! in a child process that ends with it: a child of this test binary,
//! started at [`isolated_child_entry`]. Blocked threads (asleep) cost
//! nothing and are left to end with the test process.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::drive::{run_seed, set_launcher, Isolation, Launcher, RunOptions};
use faultline_harness::recording::FailureClass;
use faultline_harness::sweep::{self, Seeds};
use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    ClientContext, HostContext, InputError, Invariant, Knobs, Outcome, RunReport, SeedOutcome, System, SystemDoc,
};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use turmoil::net::TcpListener;

use crate::support::{registry, scenario};

static DOC: SystemDoc = SystemDoc {
    name: "hostile",
    about: "test-only: a server that does one hostile thing, as its mode says",
    hosts: "server",
    knobs: &[KnobDoc { name: "mode", unit: "string", default: "ok", about: "what it does one second in" }],
    events: &[EventDoc { name: "clock", about: "a value read from outside the simulation", detects: false }],
};

faultline_harness::system_events! {
    /// What the hostile server reports.
    pub enum HostileEvent {
        Clock = "clock" { value: u64 },
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostileKnobs {
    mode: Option<String>,
}

#[derive(Serialize)]
pub struct Hostile {
    mode: String,
}

const PORT: u16 = 9;

/// Takes ever more memory, and touches it (so it is really used).
async fn hog() {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(vec![1u8; 32 << 20]);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The hostile thing, one simulated second into the run.
// On purpose: the wall clock and OS randomness are the leaks the
// determinism checks must catch.
#[allow(clippy::disallowed_methods)]
async fn misbehave(mode: &str, context: &HostContext<HostileEvent>) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    match mode {
        // Blocks the simulation's thread: nothing else in the run can go on.
        "sleep" => std::thread::sleep(Duration::from_secs(3600)),
        "blocking-read" => {
            use std::io::Read;
            let (mut reader, _writer) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
            let mut byte = [0u8; 1];
            let _ = reader.read(&mut byte);
        }
        // Never yields to the runtime.
        "spin" => loop {
            std::hint::spin_loop();
        },
        // Simulated time goes on, but each of its milliseconds costs two of the wall clock's.
        "crawl" => loop {
            std::thread::sleep(Duration::from_millis(2));
            tokio::time::sleep(Duration::from_millis(1)).await;
        },
        "hog" => hog().await,
        // A thread that outlives the run (isolated), or ends soon after it starts.
        "thread-forever" => {
            std::thread::spawn(|| loop {
                std::thread::sleep(Duration::from_millis(50));
            });
        }
        "thread" => {
            std::thread::spawn(|| std::thread::sleep(Duration::from_millis(400)));
        }
        "wall-clock" => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            context.events.emit(HostileEvent::Clock { value: now.as_nanos() as u64 });
        }
        "os-random" => {
            use rand::Rng;
            let value: u64 = rand::rng().random();
            context.events.emit(HostileEvent::Clock { value });
        }
        _ => {}
    }
}

impl System for Hostile {
    type Op = u8;
    type Res = u8;
    type Event = HostileEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![
            Invariant {
                name: "answers-echo",
                about: "every answer is the byte sent",
                check: |_, context| {
                    let wrong =
                        context.history.ops.iter().filter(|op| matches!(op.outcome, Outcome::Ok(b) if b != op.op));
                    Ok(wrong
                        .map(|op| faultline_harness::Violation::new(format!("op #{} was answered wrongly", op.id)))
                        .collect())
                },
            },
            Invariant {
                name: "fragile",
                about: "a checker that panics in mode checker-panic",
                check: |system, _| {
                    assert!(system.mode != "checker-panic", "the fragile checker fell over");
                    Ok(Vec::new())
                },
            },
        ]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Hostile, InputError> {
        let raw: HostileKnobs = knobs.parse()?;
        Ok(Hostile { mode: raw.mode.unwrap_or_else(|| "ok".into()) })
    }

    fn hosts(&self) -> Vec<String> {
        vec!["server".into()]
    }

    fn figures(&self, _context: &faultline_harness::CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        match self.mode.as_str() {
            "nan-figures" => vec![("ratio", f64::NAN), ("rate", f64::INFINITY), ("fine", 1.0)],
            _ => vec![("fine", 1.0)],
        }
    }

    fn host(self: &Arc<Self>, context: HostContext<HostileEvent>) -> LocalFuture<HostResult> {
        let mode = self.mode.clone();
        Box::pin(async move {
            let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
            tokio::task::spawn_local(async move { misbehave(&mode, &context).await });
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::task::spawn_local(crate::support::answer_one_byte(stream));
            }
        })
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), _rng: &mut ChaCha8Rng) -> u8 {
        7
    }

    fn op_kind(&self, _op: &u8) -> &'static str {
        "echo"
    }

    fn call(self: &Arc<Self>, _client: ClientContext<HostileEvent>, op: u8) -> LocalFuture<Outcome<u8>> {
        Box::pin(async move { crate::support::ask_one_byte(("server", PORT), op).await })
    }
}

/// A scenario of the hostile system in `mode`: 3s of faults, 2s of heal.
fn hostile(mode: &str, extra: &str) -> Arc<faultline_harness::Loaded> {
    scenario(&format!(
        "name = \"hostile {mode}\"\nsystem = \"hostile\"\nduration = \"3s\"\nheal = \"2s\"\n\
         [knobs]\nmode = \"{mode}\"\n[workload]\nrate = \"50/s\"\ndeadline = \"200ms\"\n{extra}"
    ))
}

/// Runs in-process with a wall-clock limit of `seconds`.
fn limited(seconds: u64) -> RunOptions {
    RunOptions { wall_limit: Some(Duration::from_secs(seconds)), ..RunOptions::default() }
}

/// Runs each seed in a child process of this test binary.
fn isolated(seconds: u64, memory_limit_mib: u64) -> RunOptions {
    let program = std::env::current_exe().expect("the test binary");
    let args = ["hostile::isolated_child_entry", "--exact", "--nocapture", "--test-threads", "1"];
    set_launcher(Launcher { program, args: args.iter().map(|a| a.to_string()).collect() });
    RunOptions { isolate: Some(Isolation { memory_limit_mib }), ..limited(seconds) }
}

/// Where a child started by [`isolated`] serves its seed. In the test run
/// itself (no job in the environment) it returns at once: it is an entry
/// point, not a test.
#[test]
fn isolated_child_entry() {
    faultline_harness::drive::isolate::serve(&registry());
}

/// The seed failed with `class` first among its classes, and its reasons
/// contain `needle`; returns the reasons.
#[track_caller]
fn failed_as(report: &RunReport, class: FailureClass, needle: &str) -> String {
    let SeedOutcome::Failed { reasons } = &report.outcome else {
        panic!("expected a failed seed, got {:?}", report.outcome);
    };
    let reasons = reasons.join("; ");
    assert_eq!(report.classes.first(), Some(&class), "{reasons}");
    assert!(reasons.contains(needle), "{needle:?} not in: {reasons}");
    assert!(report.replay_command().ends_with(&format!("--seed {}", report.seed)), "{}", report.replay_command());
    reasons
}

#[test]
fn a_host_that_sleeps_blocks_and_is_reported_blocked() {
    let report = run_seed(&hostile("sleep", ""), 11, limited(2));
    let reasons = failed_as(&report, FailureClass::Blocked, "blocked: simulated time stopped at 1");
    assert!(reasons.contains("slept in a blocking call (std::thread::sleep"), "{reasons}");
    assert_eq!(report.seed, 11);
}

#[test]
fn a_host_in_a_blocking_read_is_reported_blocked_from_its_own_process() {
    let report = run_seed(&hostile("blocking-read", ""), 12, isolated(2, 4096));
    failed_as(&report, FailureClass::Blocked, "blocked: simulated time stopped at 1");
}

#[test]
fn a_spinning_host_is_a_busy_loop_and_its_process_ends_with_it() {
    let report = run_seed(&hostile("spin", ""), 13, isolated(2, 4096));
    failed_as(&report, FailureClass::BusyLoop, "busy loop: simulated time stopped at 1");
}

#[test]
fn a_slow_run_is_told_from_a_stuck_one() {
    let report = run_seed(&hostile("crawl", ""), 14, limited(2));
    let reasons = failed_as(&report, FailureClass::Slow, "slow but progressing");
    assert!(reasons.contains("simulated time still advancing, at 1"), "{reasons}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_host_that_allocates_without_bound_hits_the_memory_limit_of_its_process() {
    let report = run_seed(&hostile("hog", ""), 15, isolated(60, 1024));
    failed_as(&report, FailureClass::Memory, "memory limit: the run needed more than the 1024 MiB");
}

#[cfg(target_os = "linux")]
#[test]
fn a_host_that_starts_a_thread_is_reported_and_the_run_goes_on() {
    let report = run_seed(&hostile("thread", ""), 16, limited(30));
    let reasons = failed_as(&report, FailureClass::Thread, "host or client code started an operating-system thread");
    assert!(report.aborted.is_none(), "the run itself ran to its end: {reasons}");
    // One that never ends runs isolated, and ends with its process.
    let report = run_seed(&hostile("thread-forever", ""), 17, isolated(30, 4096));
    let reasons = failed_as(&report, FailureClass::Thread, "std::thread::spawn");
    assert!(reasons.contains("it ended with the seed's process"), "{reasons}");
}

#[test]
fn a_panicking_checker_is_named_and_the_other_checkers_still_run() {
    let report =
        run_seed(&hostile("checker-panic", "[check]\ninvariants = [\"fragile\", \"answers-echo\"]\n"), 18, limited(30));
    let reasons =
        failed_as(&report, FailureClass::CheckerPanic, "checker fragile panicked: the fragile checker fell over");
    assert!(!reasons.contains("the harness panicked"), "{reasons}");
    assert!(report.metrics.ok > 100, "the run and its figures are kept");
}

#[test]
fn figures_that_are_not_finite_are_reported_and_left_out_of_summaries() {
    let loaded = hostile("nan-figures", "");
    let report = run_seed(&loaded, 19, limited(30));
    let reasons = failed_as(&report, FailureClass::Figure, "the system's figure ratio is NaN, not a finite number");
    assert!(reasons.contains("figure rate is inf"), "{reasons}");
    assert_eq!(report.system_figures.keys().collect::<Vec<_>>(), vec!["fine"]);
    let result = sweep::judge_scenario(&loaded.scenario, vec![report.clone(), report]);
    assert!(result.figures.values().all(|s| s.mean.is_finite() && s.ci_low.is_finite() && s.ci_high.is_finite()));
    assert!(result.figures.contains_key("system.fine") && !result.figures.contains_key("system.ratio"));
}

#[test]
fn reading_the_wall_clock_is_caught_by_running_the_seed_twice_in_two_processes() {
    let loaded = hostile("wall-clock", "");
    let once = run_seed(&loaded, 20, limited(30));
    assert!(once.passed, "one run alone cannot tell: {:?}", once.outcome);
    let twice = RunOptions { check_determinism: true, ..isolated(30, 4096) };
    let report = run_seed(&loaded, 20, twice);
    let reasons =
        failed_as(&report, FailureClass::Nondeterministic, "two runs of seed 20 in two processes differ at record");
    assert!(reasons.contains("\"kind\":\"clock\""), "the first differing record is the clock event: {reasons}");
}

#[test]
fn asking_the_os_for_randomness_fails_loudly_in_faultlines_builds() {
    let report = run_seed(&hostile("os-random", ""), 21, limited(30));
    let reasons = failed_as(&report, FailureClass::OsRandomness, "getrandom: this target is not supported");
    assert!(reasons.contains("simulated code asked the operating system for randomness"), "{reasons}");
}

#[test]
fn a_sweep_goes_on_past_hostile_seeds_to_the_next() {
    let spin = hostile("spin", "");
    let well = hostile("ok", "");
    let options = isolated(2, 4096);
    let results = sweep::sweep(&[spin, well], &Seeds::List(vec![1, 2]), 2, options, &|_| {});
    let spun: Vec<(u64, Vec<FailureClass>)> = results[0].reports.iter().map(|r| (r.seed, r.classes.clone())).collect();
    assert_eq!(spun, vec![(1, vec![FailureClass::BusyLoop]), (2, vec![FailureClass::BusyLoop])]);
    assert!(results[1].passed, "the well-behaved scenario after it passes: {:?}", results[1].reasons);
    assert_eq!(results[1].reports.len(), 2);
}

/// clippy's disallowed lists (clippy.toml) are the first catch: code that
/// reads the wall clock or iterates a std HashMap does not pass the lint
/// that CI runs. This holds the lists to it on a file of such code.
#[test]
fn clippy_refuses_the_wall_clock_and_hash_maps_in_simulated_code() {
    let dir = std::env::temp_dir().join(format!("faultline-clippy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let leaky = dir.join("leaky.rs");
    std::fs::write(
        &leaky,
        "pub fn leaky() -> u128 {\n\
         \x20   let started = std::time::Instant::now();\n\
         \x20   let now = std::time::SystemTime::now();\n\
         \x20   let mut seen = std::collections::HashMap::new();\n\
         \x20   seen.insert(1u8, 2u8);\n\
         \x20   started.elapsed().as_nanos() + now.elapsed().map_or(0, |d| d.as_nanos()) + seen.len() as u128\n\
         }\n",
    )
    .unwrap();
    let output = std::process::Command::new("clippy-driver")
        .args(["--edition=2021", "--crate-type=lib", "--emit=metadata", "--out-dir"])
        .arg(&dir)
        .arg(&leaky)
        .env("CLIPPY_CONF_DIR", crate::support::root())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = output.expect("clippy-driver runs (rustup component add clippy; CI installs it)");
    let err = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "use of a disallowed method `std::time::Instant::now`",
        "use of a disallowed method `std::time::SystemTime::now`",
        "use of a disallowed type `std::collections::HashMap`",
    ] {
        assert!(err.contains(needle), "{needle:?} not in clippy's output:\n{err}");
    }
}
