//! The echo system's invariant, a pure function of the history, and its
//! report lane, a pure function of its typed events.

use faultline_harness::{CheckContext, History, Lane, StateChange, Tone, Violation};

use super::knobs::Echo;
use super::protocol::{EchoEvent, EchoOp, SERVER};

/// The report's lane: which incarnation of the server is listening (from its
/// `server.start` events), and when it is down.
pub fn lanes(context: &CheckContext<'_, Echo>) -> Vec<Lane> {
    let mut changes: Vec<StateChange> = context
        .events()
        .filter_map(|(at, source, event)| match event {
            EchoEvent::ServerStart { incarnation } if source == SERVER => {
                Some(StateChange::new(at, format!("listening #{incarnation}"), Tone::Good))
            }
            _ => None,
        })
        .collect();
    changes
        .extend(context.down_intervals(SERVER).into_iter().map(|(from, _)| StateChange::new(from, "down", Tone::Bad)));
    vec![Lane::states("server", changes)]
}

/// `echo-matches`: every answer (fresh or degraded) equals its request's payload.
pub fn check_echo_matches(history: &History<EchoOp, u64>) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter_map(|op| {
            let answer = op.outcome.value()?;
            (*answer != op.op.payload).then(|| {
                Violation::new(format!(
                    "client-{} sent {:#x} and got {:#x} back (op #{})",
                    op.client, op.op.payload, answer, op.id
                ))
                .at(op.completed)
                .ops([op.id])
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::{Operation, Outcome};

    fn op(payload: u64, outcome: Outcome<u64>) -> Operation<EchoOp, u64> {
        Operation {
            id: 0,
            client: 0,
            seq: 0,
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
