//! The service as a faultline system: its settings as `[knobs]`, its one
//! host, its workload (increments and reads of a few keys), its events and
//! its invariant. This file is all a team writes to test its service under
//! faultline; the service itself (src/lib.rs) is unchanged.

use std::sync::Arc;
use std::time::Duration;

use faultline::harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline::harness::units::Dur;
use faultline::harness::{
    CheckContext, ClientContext, History, HostContext, InputError, Invariant, Knobs, Outcome, Registry, System,
    SystemDoc, SystemEntry, Violation,
};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{net, request, serve, Config, Incr};

/// The port the service listens on.
pub const PORT: u16 = 7379;
const HOST: &str = "kv";

/// The systems this crate's faultline binary and tests know.
pub fn registry() -> Registry {
    Registry::new().with(SystemEntry::of::<KvSystem>())
}

static DOC: SystemDoc = SystemDoc {
    name: "kv",
    about: "the own-service key-value store: GET, SET and INCR over TCP",
    hosts: "kv",
    knobs: &[
        KnobDoc { name: "incr", unit: "string", default: "locked", about: "racy (read, audit, write) | locked" },
        KnobDoc { name: "audit_delay", unit: "duration", default: "2ms", about: "how long an audit entry takes" },
        KnobDoc { name: "keys", unit: "count", default: "3", about: "how many keys the clients use" },
    ],
    events: &[EventDoc { name: "kv.start", about: "the server is listening", detects: false }],
};

faultline::harness::system_events! {
    /// What the service's host reports.
    pub enum KvEvent {
        Start = "kv.start" { incarnation: u32 },
    }
}

/// The service as faultline configures it.
#[derive(Debug, Serialize)]
pub struct KvSystem {
    pub incr: Incr,
    pub audit_delay: Dur,
    pub keys: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KvKnobs {
    incr: Option<Incr>,
    audit_delay: Option<toml::Spanned<Dur>>,
    keys: Option<toml::Spanned<i64>>,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Incr { key: u32 },
    Get { key: u32 },
}

impl System for KvSystem {
    type Op = KvOp;
    type Res = i64;
    type Event = KvEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![Invariant {
            name: "increments-unique",
            about: "no two acknowledged INCRs of one key (in one run of the server) return the same value",
            check: |_, context| Ok(check_increments_unique(context)),
        }]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<KvSystem, InputError> {
        let raw: KvKnobs = knobs.parse()?;
        Ok(KvSystem {
            incr: raw.incr.unwrap_or(Incr::Locked),
            audit_delay: knobs.positive(&raw.audit_delay, Dur::from_millis(2), "audit_delay")?,
            keys: knobs.count(&raw.keys, 3, 1..=1000, "keys")?,
        })
    }

    fn hosts(&self) -> Vec<String> {
        vec![HOST.to_string()]
    }

    fn host(self: &Arc<Self>, context: HostContext<KvEvent>) -> LocalFuture<HostResult> {
        let config = Config { incr: self.incr, audit_delay: self.audit_delay.0 };
        Box::pin(async move {
            let listener = net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            context.events.emit(KvEvent::Start { incarnation: context.incarnation });
            serve(listener, config).await?;
            Ok(())
        })
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), rng: &mut ChaCha8Rng) -> KvOp {
        let key = rng.next_u32() % self.keys;
        if rng.next_u32().is_multiple_of(4) {
            KvOp::Get { key }
        } else {
            KvOp::Incr { key }
        }
    }

    fn op_kind(&self, op: &KvOp) -> &'static str {
        match op {
            KvOp::Incr { .. } => "incr",
            KvOp::Get { .. } => "get",
        }
    }

    fn probe_op(&self) -> Option<KvOp> {
        Some(KvOp::Get { key: u32::MAX })
    }

    fn call(self: &Arc<Self>, _client: ClientContext<KvEvent>, op: KvOp) -> LocalFuture<Outcome<i64>> {
        let command = match &op {
            KvOp::Incr { key } => format!("INCR k{key}"),
            KvOp::Get { key } => format!("GET k{key}"),
        };
        Box::pin(async move {
            match request(HOST, PORT, &command).await {
                Ok(answer) => match answer.strip_prefix("VALUE ").and_then(|v| v.parse().ok()) {
                    Some(value) => Outcome::Ok(value),
                    None => Outcome::Failed(answer),
                },
                Err(error) => Outcome::Failed(error.kind().to_string()),
            }
        })
    }
}

/// `increments-unique`: per key, the values acknowledged INCRs returned are
/// distinct among the INCRs one run of the server answered. A crash or
/// restart empties the store (it keeps memory only), so increments are
/// compared within one run; one whose request spans a restart is left out.
pub fn check_increments_unique(context: &CheckContext<'_, KvSystem>) -> Vec<Violation> {
    let resets = context.resets_of(HOST);
    let run_of = |at: u64| resets.partition_point(|reset| *reset <= at);
    let history: &History<KvOp, i64> = context.history;
    let mut seen: std::collections::BTreeMap<(usize, u32, i64), usize> = std::collections::BTreeMap::new();
    let mut violations = Vec::new();
    for op in &history.ops {
        let (KvOp::Incr { key }, Outcome::Ok(value)) = (&op.op, &op.outcome) else { continue };
        let run = run_of(op.invoked);
        if run != run_of(op.completed) {
            continue;
        }
        if let Some(first) = seen.insert((run, *key, *value), op.id) {
            violations.push(
                Violation::new(format!(
                    "INCR #{} and INCR #{first} of key k{key} both returned {value}: an increment was lost",
                    op.id
                ))
                .at(op.completed)
                .ops([first, op.id]),
            );
        }
    }
    violations
}

/// How long the audit step takes by default, for the docs.
pub const AUDIT_DELAY_DEFAULT: Duration = Duration::from_millis(2);
