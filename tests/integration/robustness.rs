//! A misbehaving system under test is a failed seed with its reason, never a
//! crash or a hung harness. The `misbehave` test system below does each
//! kind of wrong thing on purpose, chosen by its `mode` knob.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::SystemEntry;
use faultline_harness::{
    ClientContext, HostContext, InputError, Invariant, Knobs, Outcome, SeedOutcome, System, SystemDoc,
};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use turmoil::net::TcpListener;

use crate::support::scenario;

/// Lets a busy-looping host thread finish once its test has seen the report.
static RELEASE_BUSY_LOOP: AtomicBool = AtomicBool::new(false);

static DOC: SystemDoc = SystemDoc {
    name: "misbehave",
    about: "test-only: a server that misbehaves as its mode says",
    hosts: "server",
    knobs: &[KnobDoc { name: "mode", unit: "string", default: "ok", about: "what goes wrong" }],
    events: &[
        EventDoc { name: "noise", about: "an event whose value may vary between runs", detects: false },
        EventDoc { name: "unlisted", about: "(its doc is removed in a test)", detects: false },
    ],
};

faultline_harness::system_events! {
    /// What the misbehaving server reports.
    pub enum MisbehaveEvent {
        Noise = "noise" { value: u64 },
        Unlisted = "unlisted",
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MisbehaveKnobs {
    mode: Option<String>,
}

#[derive(Serialize)]
pub struct Misbehave {
    mode: String,
}

const PORT: u16 = 9;

impl System for Misbehave {
    type Op = u8;
    type Res = u8;
    type Event = MisbehaveEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![Invariant { name: "nothing", about: "always holds", check: |_, _| Ok(Vec::new()) }]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Misbehave, InputError> {
        let raw: MisbehaveKnobs = knobs.parse()?;
        Ok(Misbehave { mode: raw.mode.unwrap_or_else(|| "ok".into()) })
    }

    fn hosts(&self) -> Vec<String> {
        vec!["server".into()]
    }

    fn host(self: &Arc<Self>, context: HostContext<MisbehaveEvent>) -> LocalFuture<HostResult> {
        let mode = self.mode.clone();
        Box::pin(async move {
            let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
            let events = context.events.clone();
            let background_mode = mode.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match background_mode.as_str() {
                    "panic-host" => panic!("the server fell over"),
                    "busy-loop" => {
                        // Never yields to the runtime: the simulation step cannot return.
                        while !RELEASE_BUSY_LOOP.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    }
                    "nondeterministic" => {
                        let value = RandomState::new().hash_one(42u8);
                        events.emit(MisbehaveEvent::Noise { value });
                    }
                    "unlisted" => events.emit(MisbehaveEvent::Unlisted),
                    _ => {}
                }
            });
            if mode == "exit" {
                // Stops serving for good after one second: liveness must notice.
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(());
            }
            let fail_at = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                let (stream, _) = tokio::select! {
                    biased;
                    _ = tokio::time::sleep_until(fail_at), if mode == "host-error" => {
                        return Err("the server's storage is gone".into());
                    }
                    accepted = listener.accept() => accepted?,
                };
                tokio::task::spawn_local(crate::support::answer_one_byte(stream));
            }
        })
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), _rng: &mut ChaCha8Rng) -> u8 {
        7
    }

    fn op_kind(&self, _op: &u8) -> &'static str {
        "ping"
    }

    fn call(self: &Arc<Self>, _client: ClientContext<MisbehaveEvent>, op: u8) -> LocalFuture<Outcome<u8>> {
        let mode = self.mode.clone();
        Box::pin(async move {
            if mode == "panic-client" && turmoil::sim_elapsed().unwrap_or_default() > Duration::from_secs(1) {
                panic!("the client library fell over");
            }
            crate::support::ask_one_byte(("server", PORT), op).await
        })
    }
}

fn misbehaving(mode: &str) -> Arc<faultline_harness::Loaded> {
    scenario(&format!(
        "name = \"misbehave {mode}\"\nsystem = \"misbehave\"\nduration = \"3s\"\nheal = \"2s\"\n\
         [knobs]\nmode = \"{mode}\"\n[workload]\nrate = \"50/s\"\ndeadline = \"200ms\"\n"
    ))
}

fn failed_reasons(outcome: &SeedOutcome) -> String {
    match outcome {
        SeedOutcome::Failed { reasons } => reasons.join("; "),
        other => panic!("expected a failed seed, got {other:?}"),
    }
}

#[test]
fn a_well_behaved_misbehave_server_passes() {
    let report = run_seed(&misbehaving("ok"), 3, RunOptions::default());
    assert_eq!(report.outcome, SeedOutcome::Passed, "{:?}", report.outcome);
    assert!(report.metrics.ok > 100);
}

#[test]
fn a_panicking_host_fails_its_seed_with_the_panic_message() {
    let report = run_seed(&misbehaving("panic-host"), 5, RunOptions::default());
    let reasons = failed_reasons(&report.outcome);
    assert!(reasons.contains("the server fell over"), "{reasons}");
    assert_eq!(report.seed, 5);
    assert!(report.replay_command().ends_with("--seed 5"));
}

#[test]
fn a_panicking_client_call_fails_its_seed() {
    let report = run_seed(&misbehaving("panic-client"), 6, RunOptions::default());
    let reasons = failed_reasons(&report.outcome);
    assert!(reasons.contains("the client library fell over") || reasons.contains("panicked"), "{reasons}");
}

#[test]
fn a_host_returning_an_error_fails_its_seed() {
    let report = run_seed(&misbehaving("host-error"), 7, RunOptions::default());
    let reasons = failed_reasons(&report.outcome);
    assert!(reasons.contains("the server's storage is gone"), "{reasons}");
}

#[test]
fn a_host_that_stops_serving_fails_liveness() {
    let report = run_seed(&misbehaving("exit"), 8, RunOptions::default());
    let reasons = failed_reasons(&report.outcome);
    assert!(reasons.contains("1 violation of liveness"), "{reasons}");
    let liveness = report.violations.iter().find(|v| v.invariant == "liveness").expect("a liveness violation");
    assert!(liveness.message.contains("were not served"), "{}", liveness.message);
}

#[test]
fn a_busy_looping_host_hits_the_wall_clock_limit_instead_of_hanging() {
    let options = RunOptions { wall_limit: Some(Duration::from_secs(2)), ..RunOptions::default() };
    let report = run_seed(&misbehaving("busy-loop"), 9, options);
    RELEASE_BUSY_LOOP.store(true, Ordering::Relaxed);
    let reasons = failed_reasons(&report.outcome);
    assert!(reasons.contains("busy loop: simulated time stopped at 1"), "{reasons}");
    assert_eq!(report.classes, vec![faultline_harness::recording::FailureClass::BusyLoop]);
}

#[test]
fn check_determinism_names_the_first_divergent_record() {
    let options = RunOptions { check_determinism: true, ..RunOptions::default() };
    let report = run_seed(&misbehaving("nondeterministic"), 10, options);
    let reasons = failed_reasons(&report.outcome);
    assert!(reasons.contains("nondeterministic: two runs of seed 10 differ at record"), "{reasons}");
    assert!(reasons.contains("\"kind\":\"noise\""), "{reasons}");
}

#[test]
fn an_event_kind_the_doc_does_not_list_is_refused_at_registration() {
    let mut entry = SystemEntry::of::<Misbehave>();
    static SHORT: SystemDoc = SystemDoc {
        name: "misbehave-short",
        about: "",
        hosts: "server",
        knobs: &[],
        events: &[EventDoc { name: "noise", about: "", detects: false }],
    };
    entry.doc = &SHORT;
    let error = faultline_harness::Registry::new().register(entry).unwrap_err();
    assert!(error.contains("\"unlisted\", which its doc does not list"), "{error}");
}

#[test]
fn two_systems_of_one_name_are_refused_naming_it() {
    let mut registry = faultline_harness::Registry::new();
    registry.register(SystemEntry::of::<Misbehave>()).unwrap();
    let error = registry.register(SystemEntry::of::<Misbehave>()).unwrap_err();
    assert!(error.contains("two systems are named \"misbehave\""), "{error}");
}
