//! `echo`: the smallest system that proves the harness end to end.
//!
//! One `server` host answers each request with its payload; workload clients
//! send random payloads over a fresh TCP connection each. Its invariant,
//! `echo-matches`, says every answer equals its request. The knob
//! `corrupt_rate` turns it into a deliberately broken server that flips bits
//! in some answers, so scenarios can prove the checker finds real flaws.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::history::TraceEvent;
use faultline_harness::system::{erase, EventDoc, HostResult, InvariantDoc, KnobDoc, LocalFuture, SystemEntry};
use faultline_harness::units::{DurRange, Probability};
use faultline_harness::{
    ClientContext, History, HostContext, InputError, Knobs, Outcome, System, SystemDoc, Violation,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use turmoil::net::{TcpListener, TcpStream};

use crate::wire::{ask, read_frame, write_frame};

pub const PORT: u16 = 7000;
const SERVER: &str = "server";

pub static DOC: SystemDoc = SystemDoc {
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
    ],
    invariants: &[InvariantDoc { name: "echo-matches", about: "every answer equals the payload of its request" }],
    events: &[
        EventDoc { name: "server.start", about: "the server is listening (each start and restart)", detects: false },
        EventDoc { name: "echo.corrupted", about: "the server sent a corrupted answer", detects: false },
    ],
};

pub fn entry() -> SystemEntry {
    SystemEntry { doc: &DOC, configure }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EchoKnobs {
    corrupt_rate: Option<Probability>,
    service_time: Option<DurRange>,
}

fn configure(knobs: &Knobs<'_>) -> Result<Arc<dyn faultline_harness::system::Configured>, InputError> {
    let raw: EchoKnobs = knobs.parse()?;
    let echo = Echo {
        corrupt_rate: raw.corrupt_rate.map_or(0.0, |p| p.0),
        service_time: raw.service_time.unwrap_or(DurRange::fixed(faultline_harness::units::Dur::ZERO)),
    };
    Ok(erase(echo, &DOC))
}

/// The configured echo system (its knobs are its whole state).
#[derive(Debug, Serialize)]
pub struct Echo {
    pub corrupt_rate: f64,
    pub service_time: DurRange,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EchoOp {
    pub payload: u64,
}

impl System for Echo {
    type Op = EchoOp;
    type Res = u64;

    fn hosts(&self) -> Vec<String> {
        vec![SERVER.to_string()]
    }

    fn host(self: &Arc<Self>, context: HostContext) -> LocalFuture<HostResult> {
        Box::pin(serve(Arc::clone(self), context))
    }

    fn next_op(&self, _client: u32, rng: &mut ChaCha8Rng) -> EchoOp {
        EchoOp { payload: rng.random() }
    }

    fn op_kind(&self, _op: &EchoOp) -> &'static str {
        "echo"
    }

    fn probe_op(&self) -> Option<EchoOp> {
        Some(EchoOp { payload: 0 })
    }

    fn call(self: &Arc<Self>, _client: ClientContext, op: EchoOp) -> LocalFuture<Outcome<u64>> {
        Box::pin(async move {
            match ask::<_, u64>(SERVER, PORT, &op.payload).await {
                Ok(answer) => Outcome::Ok(answer),
                Err(error) => Outcome::Failed(crate::wire::describe(&error)),
            }
        })
    }

    fn check(&self, invariant: &str, history: &History<EchoOp, u64>, _trace: &[TraceEvent]) -> Vec<Violation> {
        match invariant {
            "echo-matches" => check_echo_matches(history),
            other => unreachable!("scenario validation admits only documented invariants, not {other:?}"),
        }
    }
}

async fn serve(echo: Arc<Echo>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    context.events.emit("server.start", format!("incarnation {}", context.incarnation));
    let rng = Rc::new(RefCell::new(context.rng));
    loop {
        let (stream, _) = listener.accept().await?;
        let (echo, rng, events) = (Arc::clone(&echo), Rc::clone(&rng), context.events.clone());
        tokio::task::spawn_local(async move {
            // A broken connection ends this handler only; the server goes on.
            let _ = handle(stream, &echo, &rng, &events).await;
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    echo: &Echo,
    rng: &RefCell<ChaCha8Rng>,
    events: &faultline_harness::EventSink,
) -> std::io::Result<()> {
    while let Some(payload) = read_frame::<_, u64>(&mut stream).await? {
        let (pause, corrupt) = {
            let mut rng = rng.borrow_mut();
            let low = echo.service_time.min.as_nanos();
            let high = echo.service_time.max.as_nanos();
            let pause = std::time::Duration::from_nanos(rng.random_range(low..=high));
            (pause, echo.corrupt_rate > 0.0 && rng.random_bool(echo.corrupt_rate))
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let answer = if corrupt {
            let flipped = payload ^ (1 << (payload % 64));
            events.emit("echo.corrupted", format!("sent {flipped:#x} for {payload:#x}"));
            flipped
        } else {
            payload
        };
        write_frame(&mut stream, &answer).await?;
    }
    Ok(())
}

/// `echo-matches`: every answer (fresh or degraded) equals its request's payload.
pub fn check_echo_matches(history: &History<EchoOp, u64>) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter_map(|op| {
            let answer = op.outcome.value()?;
            (*answer != op.op.payload).then(|| Violation {
                invariant: "echo-matches".into(),
                message: format!(
                    "client-{} sent {:#x} and got {:#x} back (op #{})",
                    op.client, op.op.payload, answer, op.id
                ),
                at: Some(op.completed),
                ops: vec![op.id],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::Operation;

    fn op(payload: u64, outcome: Outcome<u64>) -> Operation<EchoOp, u64> {
        Operation {
            id: 0,
            client: 0,
            seq: 0,
            kind: "echo",
            op: EchoOp { payload },
            intended: 0,
            invoked: 0,
            completed: 5,
            outstanding: 0,
            outcome,
        }
    }

    #[test]
    fn matching_answers_and_failures_are_fine() {
        let history = History::new(vec![
            op(1, Outcome::Ok(1)),
            op(2, Outcome::Timeout),
            op(3, Outcome::Failed("refused".into())),
        ]);
        assert!(check_echo_matches(&history).is_empty());
    }

    #[test]
    fn a_wrong_answer_is_a_violation_naming_the_operation() {
        let history = History::new(vec![op(1, Outcome::Ok(1)), op(2, Outcome::Ok(3)), op(4, Outcome::Degraded(5))]);
        let violations = check_echo_matches(&history);
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[0].ops, vec![1]);
        assert!(violations[0].message.contains("sent 0x2 and got 0x3"), "{}", violations[0].message);
    }
}
