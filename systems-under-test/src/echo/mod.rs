//! `echo`: the smallest system that proves the harness end to end.
//!
//! One `server` host answers each request with its payload; workload clients
//! send random payloads over a fresh TCP connection each (or, with
//! `connections = "pooled"`, over connections they keep and reuse). Its invariant,
//! `echo-matches`, says every answer equals its request. The knob
//! `corrupt_rate` turns it into a deliberately broken server that flips bits
//! in some answers, so scenarios can prove the checker finds real flaws.

mod checks;
mod knobs;
mod protocol;
mod server;

use std::sync::Arc;

use faultline_harness::system::{CheckResult, EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Lane, Outcome, System, SystemDoc,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use checks::check_echo_matches;
pub use knobs::Echo;
pub use protocol::{EchoEvent, EchoOp, PORT, SERVER};

static DOC: SystemDoc = SystemDoc {
    name: "echo",
    about: "one server that echoes each request's payload back; the harness's own proof system",
    hosts: "server",
    knobs: &[
        KnobDoc {
            name: "corrupt_rate",
            unit: "probability",
            default: "0",
            about: "share of answers the server corrupts (a deliberately broken variant; 0 is the correct server)",
        },
        KnobDoc {
            name: "service_time",
            unit: "duration range",
            default: "0ms",
            about: "time the server spends on each request, uniform over the range",
        },
        KnobDoc {
            name: "note_requests",
            unit: "bool",
            default: "false",
            about: "report each request the server reads (echo.received), to show in a trace what reached it (off by default: an event per request)",
        },
        KnobDoc { name: "connections", unit: "string", default: "per-request", about: crate::kit::pool::KNOB_ABOUT },
    ],
    events: &[
        EventDoc { name: "server.start", about: "the server is listening (each start and restart)", detects: false },
        EventDoc { name: "echo.corrupted", about: "the server sent a corrupted answer", detects: false },
        EventDoc {
            name: "echo.received",
            about: "the server read a request (only with note_requests = true)",
            detects: false,
        },
    ],
};

impl System for Echo {
    type Op = EchoOp;
    type Res = u64;
    type Event = EchoEvent;
    type Client = ();

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![Invariant {
            name: "echo-matches",
            about: "every answer equals the payload of its request",
            check: |_, context: &CheckContext<'_, Echo>| -> CheckResult { Ok(check_echo_matches(context.history)) },
        }]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Echo, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        vec![SERVER.to_string()]
    }

    fn host(self: &Arc<Self>, context: HostContext<EchoEvent>) -> LocalFuture<HostResult> {
        Box::pin(server::serve(Arc::clone(self), context))
    }

    fn client(&self, _index: u32) {}

    fn next_op(&self, _client: &mut (), rng: &mut ChaCha8Rng) -> EchoOp {
        EchoOp { payload: rng.random() }
    }

    fn op_kind(&self, _op: &EchoOp) -> &'static str {
        "echo"
    }

    fn probe_op(&self) -> Option<EchoOp> {
        Some(EchoOp { payload: 0 })
    }

    fn call(self: &Arc<Self>, client: ClientContext<EchoEvent>, op: EchoOp) -> LocalFuture<Outcome<u64>> {
        let caller = crate::kit::pool::client_caller(&client.local, self.connections);
        Box::pin(async move {
            match caller.ask::<_, u64>(SERVER, PORT, &op.payload).await {
                Ok(answer) => Outcome::Ok(answer),
                Err(error) => Outcome::Failed(crate::kit::wire::describe(&error)),
            }
        })
    }

    fn lanes(&self, context: &CheckContext<'_, Self>) -> Vec<Lane> {
        checks::lanes(context)
    }
}
