//! `calibration`: small services whose behaviour has a closed-form answer,
//! so faultline's measurements can be held against theory
//! (`theory.rs` and docs/metrics.md).
//!
//! Models (knob `model`):
//! - `queue`: one server with exponential service times (`service_rate`)
//!   and room for `capacity` requests in the system (0: unbounded). With
//!   Poisson arrivals it is M/M/1 or M/M/1/K; a request that finds it full is
//!   rejected at once. `discipline = "lifo"` is a planted flaw (last in,
//!   first out) that the `fifo` invariant must find.
//! - `flaky`: a server that fails each attempt with `fail_probability`; the
//!   client tries up to `attempts_max` times. Every attempt the server sees is
//!   reported as a `calibration.attempt` event.
//! - `replicas`: `replicas` hosts that each answer reads; the client asks them
//!   all at once and takes the first answer (each ask bounded by
//!   `replica_timeout`).

mod checks;
mod knobs;
mod protocol;
mod server;

use std::sync::Arc;

use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Outcome, System, SystemDoc,
};
use rand_chacha::ChaCha8Rng;

pub use checks::{check_fifo, server_load};
pub use knobs::{Calibration, Discipline, Model};
pub use protocol::{Answer, CalibrationEvent, CalibrationOp, Reply, PORT};

static DOC: SystemDoc = SystemDoc {
    name: "calibration",
    about: "services with closed-form answers (M/M/1, M/M/1/K, retries, replicas) to check the metrics against",
    hosts: "server (queue, flaky), or replica-1..replica-N (replicas)",
    knobs: &[
        KnobDoc { name: "model", unit: "string", default: "queue", about: "queue | flaky | replicas" },
        KnobDoc { name: "service_rate", unit: "rate", default: "10/s", about: "queue: exponential service rate mu" },
        KnobDoc {
            name: "capacity",
            unit: "count",
            default: "0",
            about: "queue: requests in the system at most (K); 0 is unbounded",
        },
        KnobDoc {
            name: "discipline",
            unit: "string",
            default: "fifo",
            about: "queue: fifo, or lifo (a planted flaw: the newest request is served first)",
        },
        KnobDoc {
            name: "fail_probability",
            unit: "probability",
            default: "0.3",
            about: "flaky: chance each attempt fails",
        },
        KnobDoc { name: "attempts_max", unit: "count", default: "3", about: "flaky: attempts per request" },
        KnobDoc { name: "replicas", unit: "count", default: "3", about: "replicas: how many replica hosts" },
        KnobDoc {
            name: "replica_timeout",
            unit: "duration",
            default: "20ms",
            about: "replicas: how long one ask may take",
        },
    ],
    events: &[
        EventDoc { name: "calibration.attempt", about: "flaky: the server received an attempt", detects: false },
        EventDoc { name: "calibration.rejected", about: "queue: a request found the queue full", detects: false },
        EventDoc {
            name: "calibration.served",
            about: "queue: the server finished a request (with the number it was received as)",
            detects: false,
        },
        EventDoc {
            name: "calibration.load",
            about: "queue: every second, the time integral of the number in the system and the time it covers",
            detects: false,
        },
    ],
};

impl System for Calibration {
    type Op = CalibrationOp;
    type Res = Answer;
    type Event = CalibrationEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![Invariant {
            name: "fifo",
            about:
                "queue: the server finishes requests in the order it received them (its served events, in time order)",
            check: |_, context: &CheckContext<'_, Calibration>| Ok(check_fifo(context)),
        }]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Calibration, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        match self.model {
            Model::Queue | Model::Flaky => vec!["server".into()],
            Model::Replicas => (1..=self.replicas).map(|i| format!("replica-{i}")).collect(),
        }
    }

    fn host(self: &Arc<Self>, context: HostContext<CalibrationEvent>) -> LocalFuture<HostResult> {
        Box::pin(server::serve(Arc::clone(self), context))
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), _rng: &mut ChaCha8Rng) -> CalibrationOp {
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

    fn call(
        self: &Arc<Self>,
        _client: ClientContext<CalibrationEvent>,
        op: CalibrationOp,
    ) -> LocalFuture<Outcome<Answer>> {
        Box::pin(server::call(Arc::clone(self), op))
    }

    /// `fifo` promises something only of the queue model.
    fn promises(&self) -> Vec<&'static str> {
        match self.model {
            Model::Queue => vec!["fifo"],
            Model::Flaky | Model::Replicas => Vec::new(),
        }
    }

    fn figures(&self, context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        server_load(context).map(|load| vec![("server_load", load)]).unwrap_or_default()
    }
}
