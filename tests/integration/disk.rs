//! The simulated disk, as a host sees it: what was synced survives a crash,
//! what was not is lost, and a restart (a bounce) loses nothing. The
//! `journal` test system appends each client's write to a log, syncing
//! every fifth, and reports what it reads back when it starts.

use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::drive::{run_seed_saved, RunOptions};
use faultline_harness::history::Happening;
use faultline_harness::recording::Recording;
use faultline_harness::system::{EventDoc, HostResult, LocalFuture};
use faultline_harness::{
    ClientContext, HostContext, InputError, Invariant, Knobs, Outcome, System, SystemDoc, SystemEntry,
};
use faultline_systems::kit::disk::Log;
use faultline_systems::kit::request::ask;
use faultline_systems::kit::serve::serve;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

static DOC: SystemDoc = SystemDoc {
    name: "journal",
    about: "test-only: a host that journals writes to its simulated disk",
    hosts: "store",
    knobs: &[],
    events: &[
        EventDoc { name: "journal.recovered", about: "the values read back at start", detects: false },
        EventDoc { name: "journal.synced", about: "the log was synced up to this value", detects: false },
    ],
};

faultline_harness::system_events! {
    pub enum JournalEvent {
        Recovered = "journal.recovered" { values: Vec<u64> },
        Synced = "journal.synced" { value: u64 },
    }
}

#[derive(Serialize)]
pub struct Journal;

/// One client write: a value, and whether to sync after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Write {
    value: u64,
    sync: bool,
}

impl System for Journal {
    type Op = Write;
    type Res = u64;
    type Event = JournalEvent;
    /// The next value this client writes.
    type Client = u64;

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![Invariant { name: "nothing", about: "always holds", check: |_, _| Ok(Vec::new()) }]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Journal, InputError> {
        knobs.parse::<Option<()>>().map(|_| Journal)
    }

    fn hosts(&self) -> Vec<String> {
        vec!["store".into()]
    }

    fn host(self: &Arc<Self>, context: HostContext<JournalEvent>) -> LocalFuture<HostResult> {
        Box::pin(async move {
            let (log, values) = Log::open::<u64>("/data/journal").await?;
            context.events.emit(JournalEvent::Recovered { values });
            // A tokio mutex: an append and its sync await, and requests of
            // several connections must not interleave inside one.
            let log = Rc::new(tokio::sync::Mutex::new(log));
            let events = context.events;
            serve(7, move |write: Write| {
                let (log, events) = (Rc::clone(&log), events.clone());
                async move {
                    let mut log = log.lock().await;
                    log.append(&write.value).await.ok()?;
                    if write.sync {
                        log.sync().await.ok()?;
                        events.emit(JournalEvent::Synced { value: write.value });
                    }
                    Some(write.value)
                }
            })
            .await?;
            Ok(())
        })
    }

    fn client(&self, _index: u32) -> u64 {
        0
    }

    fn next_op(&self, next: &mut u64, _rng: &mut ChaCha8Rng) -> Write {
        let value = *next;
        *next += 1;
        Write { value, sync: value % 5 == 4 }
    }

    fn op_kind(&self, _op: &Write) -> &'static str {
        "write"
    }

    fn call(self: &Arc<Self>, _client: ClientContext<JournalEvent>, op: Write) -> LocalFuture<Outcome<u64>> {
        Box::pin(async move {
            match ask::<_, u64>("store", 7, &op).await {
                Ok(value) => Outcome::Ok(value),
                Err(error) => Outcome::Failed(faultline_systems::kit::wire::describe(&error)),
            }
        })
    }
}

fn run(fault: &str) -> Recording<Journal> {
    let registry = faultline_harness::Registry::new().with(SystemEntry::of::<Journal>());
    let source = format!(
        "name = \"journal\"\nsystem = \"journal\"\nduration = \"3s\"\nheal = \"1s\"\n\
         [workload]\nmode = \"closed\"\nthink = \"10ms\"\ndeadline = \"200ms\"\n\
         [check]\ninvariants = [\"nothing\"]\n[[fault]]\nhosts = [\"store\"]\nat = \"1500ms\"\n{fault}\n"
    );
    let loaded = Arc::new(faultline_harness::registry::parse("journal.toml", &source, &registry).unwrap());
    let ran = run_seed_saved(&loaded, 1, RunOptions { save: true, ..RunOptions::default() });
    assert!(ran.report.passed, "{:?}", ran.report.outcome);
    serde_json::from_str(&ran.recording.expect("a saved recording")).expect("the recording reads back")
}

/// The values each start of the store read back, and the values acknowledged
/// and synced before the fault.
fn starts(recording: &Recording<Journal>) -> (Vec<Vec<u64>>, Vec<u64>, Option<u64>) {
    let fault_at = recording.plan.faults[0].start();
    let mut recovered = Vec::new();
    let mut last_synced = None;
    for entry in &recording.trace {
        match &entry.event {
            Happening::System(JournalEvent::Recovered { values }) => recovered.push(values.clone()),
            Happening::System(JournalEvent::Synced { value }) if entry.at < fault_at => last_synced = Some(*value),
            _ => {}
        }
    }
    let acknowledged: Vec<u64> = recording
        .history
        .ops
        .iter()
        .filter(|op| op.completed < fault_at)
        .filter_map(|op| op.outcome.value().copied())
        .collect();
    (recovered, acknowledged, last_synced)
}

#[test]
fn a_crash_keeps_what_was_synced_and_loses_what_was_not() {
    let recording = run("kind = \"crash\"\nrestart_after = \"100ms\"");
    let (recovered, acknowledged, last_synced) = starts(&recording);
    assert_eq!(recovered.len(), 2, "a start and a restart");
    assert!(recovered[0].is_empty(), "a new disk is empty");
    let last_synced = last_synced.expect("some write was synced before the crash");
    let durable: Vec<u64> = (0..=last_synced).collect();
    assert_eq!(recovered[1], durable, "everything up to the last sync survives, nothing after it");
    let lost: Vec<&u64> = acknowledged.iter().filter(|v| **v > last_synced).collect();
    assert!(!lost.is_empty(), "some acknowledged writes were not synced and were lost: {acknowledged:?}");
}

#[test]
fn a_restart_loses_nothing_not_even_unsynced_writes() {
    let recording = run("kind = \"restart\"");
    let (recovered, acknowledged, last_synced) = starts(&recording);
    assert_eq!(recovered.len(), 2);
    assert!(acknowledged.iter().any(|v| Some(*v) > last_synced), "some writes were unsynced at the restart");
    assert!(acknowledged.iter().all(|v| recovered[1].contains(v)), "a bounce keeps pending writes");
}
