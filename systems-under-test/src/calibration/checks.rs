//! The calibration system's invariant and figure: pure functions of a run.

use faultline_harness::{CheckContext, Violation};

use super::protocol::CalibrationEvent;
use super::Calibration;

/// `fifo`: the queue server finishes requests in the order it received
/// them. Its `served` events, in the order they happened, must carry
/// increasing receive numbers; a restart starts the numbering afresh.
pub fn check_fifo(context: &CheckContext<'_, Calibration>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut last: Option<u64> = None;
    let resets = context.resets_of("server");
    let mut next_reset = 0;
    for (at, _, event) in context.events() {
        while next_reset < resets.len() && resets[next_reset] <= at {
            last = None;
            next_reset += 1;
        }
        let CalibrationEvent::Served { received } = event else { continue };
        if let Some(previous) = last.filter(|previous| received < previous) {
            violations.push(
                Violation::new(format!(
                    "the server finished request {received} after request {previous}, which it received later"
                ))
                .at(at),
            );
        }
        last = Some(last.map_or(*received, |previous| previous.max(*received)));
    }
    violations
}

/// The queue server's own time-average number in the system (L), from its
/// last load report.
pub fn server_load(context: &CheckContext<'_, Calibration>) -> Option<f64> {
    context
        .events()
        .filter_map(|(_, _, event)| match event {
            CalibrationEvent::Load { area, covered } if *covered > 0.0 => Some(area / covered),
            _ => None,
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::history::{Happening, TraceEvent, HARNESS};
    use faultline_harness::History;

    fn served(at: u64, received: u64) -> TraceEvent<CalibrationEvent> {
        TraceEvent { at, source: "server".into(), event: Happening::System(CalibrationEvent::Served { received }) }
    }

    fn check(trace: &[TraceEvent<CalibrationEvent>]) -> Vec<Violation> {
        let history = History::new(Vec::new());
        let context = CheckContext { history: &history, trace, faults: &[], heal_at: 0, end: 100 };
        check_fifo(&context)
    }

    #[test]
    fn fifo_holds_when_requests_finish_in_receive_order() {
        assert!(check(&[served(1, 0), served(2, 1), served(3, 2)]).is_empty());
    }

    #[test]
    fn fifo_flags_an_overtaken_request() {
        let violations = check(&[served(1, 0), served(2, 2), served(3, 1)]);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("finished request 1 after request 2"), "{}", violations[0].message);
    }

    #[test]
    fn a_restart_starts_the_numbering_afresh() {
        let restart =
            TraceEvent { at: 5, source: HARNESS.into(), event: Happening::HostRestart { host: "server".into() } };
        assert!(check(&[served(1, 7), restart, served(6, 0)]).is_empty());
    }
}
