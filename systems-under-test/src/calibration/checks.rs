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
    fn every_request_overtaken_by_a_later_one_is_flagged() {
        // 3 finished before 1 and 2, which it was received after: two violations,
        // each against the highest number finished so far.
        let violations = check(&[served(1, 0), served(2, 3), served(3, 1), served(4, 2), served(5, 4)]);
        let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "the server finished request 1 after request 3, which it received later",
                "the server finished request 2 after request 3, which it received later"
            ]
        );
        assert_eq!(violations.iter().map(|v| v.at).collect::<Vec<_>>(), [Some(3), Some(4)]);
    }

    fn reset(at: u64, event: fn(String) -> Happening<CalibrationEvent>, host: &str) -> TraceEvent<CalibrationEvent> {
        TraceEvent { at, source: HARNESS.into(), event: event(host.into()) }
    }

    fn restart(host: String) -> Happening<CalibrationEvent> {
        Happening::HostRestart { host }
    }

    fn crash(host: String) -> Happening<CalibrationEvent> {
        Happening::HostCrash { host }
    }

    #[test]
    fn a_restart_starts_the_numbering_afresh() {
        assert!(check(&[served(1, 7), reset(5, restart, "server"), served(6, 0)]).is_empty());
        // A restart at the very time of the next served event counts first.
        assert!(check(&[served(1, 7), reset(5, restart, "server"), served(5, 0)]).is_empty());
        // A crash and its restart, both before the next event.
        let both = [served(1, 7), reset(3, crash, "server"), reset(4, restart, "server"), served(6, 2), served(7, 1)];
        assert_eq!(check(&both).len(), 1, "after the restart, 1 after 2 is still out of order");
        // Another host's restart changes nothing.
        assert_eq!(check(&[served(1, 7), reset(5, restart, "client-0"), served(6, 0)]).len(), 1);
    }
}
