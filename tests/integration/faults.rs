//! Each fault kind, applied to the echo system, has the effect it claims on
//! the requests made while it lasts, and none after it ends.

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::metrics::OpSample;
use faultline_harness::OutcomeClass;

use crate::support::scenario;

/// Runs echo (2 clients, 200/s, 6s fault phase) with one fault from 2s to 4s.
fn run_with(fault: &str, deadline: &str) -> (Vec<OpSample>, Vec<String>) {
    let source = format!(
        "name = \"fault effect\"\nsystem = \"echo\"\nduration = \"6s\"\nheal = \"2s\"\n\
         [workload]\nclients = 2\nrate = \"200/s\"\ndeadline = \"{deadline}\"\n\
         [check]\ninvariants = [\"echo-matches\", \"liveness\"]\n\
         [[fault]]\nat = \"2s\"\n{fault}\n"
    );
    let report = run_seed(&scenario(&source), 4, RunOptions { keep_records: true, ..RunOptions::default() });
    assert!(report.passed, "{:?}", report.outcome);
    let kinds = report.timeline.iter().filter(|e| e.source == "harness").map(|e| e.kind.clone()).collect();
    (report.samples, kinds)
}

/// Requests intended in [from_ms, to_ms). Clients wake at tick boundaries, so
/// a request intended less than a tick before a fault changes is sent after
/// it: windows here stop a few ticks short of each change.
fn during(samples: &[OpSample], from_ms: u64, to_ms: u64) -> Vec<OpSample> {
    samples.iter().filter(|s| s.intended >= from_ms * 1_000_000 && s.intended < to_ms * 1_000_000).copied().collect()
}

fn served_share(samples: &[OpSample]) -> f64 {
    assert!(!samples.is_empty());
    samples.iter().filter(|s| s.class.served()).count() as f64 / samples.len() as f64
}

fn min_latency_ms(samples: &[OpSample]) -> f64 {
    samples
        .iter()
        .filter(|s| s.class.served())
        .map(|s| (s.completed - s.intended) as f64 / 1e6)
        .fold(f64::MAX, f64::min)
}

fn max_latency_ms(samples: &[OpSample]) -> f64 {
    samples.iter().filter(|s| s.class.served()).map(|s| (s.completed - s.intended) as f64 / 1e6).fold(0.0, f64::max)
}

#[test]
fn an_isolating_partition_stops_service_until_it_heals() {
    let (samples, kinds) = run_with("kind = \"partition\"\nhosts = [\"server\"]\nfor = \"2s\"", "300ms");
    assert_eq!(served_share(&during(&samples, 0, 1700)), 1.0);
    assert_eq!(served_share(&during(&samples, 2000, 3990)), 0.0);
    assert_eq!(served_share(&during(&samples, 4100, 8000)), 1.0);
    assert_eq!(kinds, ["fault.start", "fault.end", "phase.heal"]);
}

#[test]
fn a_one_way_partition_in_either_direction_stops_request_response() {
    for between in ["[[\"server\"], [\"client-*\"]]", "[[\"client-*\"], [\"server\"]]"] {
        let fault = format!("kind = \"partition\"\nbetween = {between}\noneway = true\nfor = \"2s\"");
        let (samples, _) = run_with(&fault, "300ms");
        assert_eq!(served_share(&during(&samples, 2000, 3990)), 0.0, "{between}");
        assert_eq!(served_share(&during(&samples, 4100, 8000)), 1.0, "{between}");
    }
}

#[test]
fn a_latency_fault_slows_requests_only_while_it_lasts() {
    let fault = "kind = \"latency\"\nbetween = [[\"server\"], [\"client-*\"]]\nlatency = \"100ms\"\nfor = \"2s\"";
    let (samples, _) = run_with(fault, "2s");
    assert!(max_latency_ms(&during(&samples, 0, 1500)) < 100.0);
    // A request crosses the link at least twice (request, answer).
    assert!(min_latency_ms(&during(&samples, 2000, 3500)) >= 200.0);
    assert!(max_latency_ms(&during(&samples, 4500, 8000)) < 100.0);
    assert_eq!(served_share(&samples), 1.0);
}

#[test]
fn total_loss_fails_requests_and_partial_loss_fails_some() {
    let (samples, _) = run_with("kind = \"loss\"\nhosts = [\"server\"]\nrate = 1.0\nfor = \"2s\"", "300ms");
    assert_eq!(served_share(&during(&samples, 2000, 3990)), 0.0);
    assert_eq!(served_share(&during(&samples, 4100, 8000)), 1.0);
    let (samples, _) = run_with("kind = \"loss\"\nhosts = [\"server\"]\nrate = 0.2\nfor = \"2s\"", "300ms");
    let share = served_share(&during(&samples, 2000, 3990));
    assert!(share > 0.1 && share < 0.9, "served share under 20% loss: {share}");
}

#[test]
fn a_clog_holds_messages_then_delivers_them() {
    let (samples, _) = run_with("kind = \"clog\"\nhosts = [\"server\"]\nfor = \"1s\"", "3s");
    let held = during(&samples, 2000, 2500);
    assert_eq!(served_share(&held), 1.0, "held requests are answered once released");
    assert!(min_latency_ms(&held) >= 500.0, "answered only after the release at 3s");
    assert!(max_latency_ms(&during(&samples, 3500, 8000)) < 100.0);
}

#[test]
fn a_crash_without_restart_lasts_until_the_heal_phase() {
    let (samples, kinds) = run_with("kind = \"crash\"\nhosts = [\"server\"]", "300ms");
    assert_eq!(served_share(&during(&samples, 2000, 5990)), 0.0);
    assert_eq!(served_share(&during(&samples, 6100, 8000)), 1.0);
    assert_eq!(kinds, ["fault.start", "host.crash", "fault.end", "host.restart", "phase.heal"]);
}

#[test]
fn a_restart_is_a_blip() {
    let (samples, kinds) = run_with("kind = \"restart\"\nhosts = [\"server\"]", "300ms");
    assert!(served_share(&samples) > 0.97);
    assert_eq!(kinds, ["fault.start", "host.restart", "phase.heal"]);
}

/// How the requests of `samples` ended: (failed, timed out, served), the
/// longest a failed one took and the shortest and longest a timed-out one
/// took, in ms from its intended start.
fn endings(samples: &[OpSample]) -> ((usize, usize, usize), f64, (f64, f64)) {
    let took = |s: &OpSample| (s.completed - s.intended) as f64 / 1e6;
    let failed: Vec<f64> = samples.iter().filter(|s| s.class == OutcomeClass::Failed).map(took).collect();
    let timed_out: Vec<f64> = samples.iter().filter(|s| s.class == OutcomeClass::Timeout).map(took).collect();
    let served = samples.iter().filter(|s| s.class.served()).count();
    (
        (failed.len(), timed_out.len(), served),
        failed.iter().copied().fold(0.0, f64::max),
        (timed_out.iter().copied().fold(f64::MAX, f64::min), timed_out.iter().copied().fold(0.0, f64::max)),
    )
}

#[test]
fn a_refusal_fails_connects_at_once() {
    let (samples, kinds) = run_with("kind = \"refuse\"\nhosts = [\"server\"]\nfor = \"2s\"", "300ms");
    let ((failed, timed_out, served), slowest_failure, _) = endings(&during(&samples, 2000, 3990));
    assert!(failed > 300 && timed_out == 0 && served == 0, "{failed} failed, {timed_out} timed out, {served} served");
    // Refused in the tick the request was sent: the client sees it within 1 ms.
    assert!(slowest_failure <= 1.0, "a refusal took {slowest_failure} ms");
    assert_eq!(served_share(&during(&samples, 4100, 8000)), 1.0);
    assert_eq!(kinds, ["fault.start", "fault.end", "phase.heal"]);
}

#[test]
fn a_blackhole_lets_requests_hang_until_their_deadline_and_delivers_nothing_late() {
    let (samples, kinds) = run_with("kind = \"blackhole\"\nhosts = [\"server\"]\nfor = \"2s\"", "300ms");
    // Requests whose deadline passes before the end (4s): each waits out its
    // whole deadline (300 ms), as behind a real partition.
    let ((failed, timed_out, served), _, (shortest, longest)) = endings(&during(&samples, 2000, 3690));
    assert!(failed == 0 && served == 0 && timed_out > 300, "{failed} failed, {timed_out} timed out, {served} served");
    assert!((300.0..=301.0).contains(&shortest) && longest <= 301.0, "timeouts took {shortest}..{longest} ms");
    // Requests still waiting at the end are not answered late: what the
    // blackhole held is discarded, not delivered (a clog delivers it). A
    // connect still waiting then is refused (turmoil drops the held SYN's
    // reply channel).
    assert_eq!(served_share(&during(&samples, 3750, 3990)), 0.0);
    assert_eq!(served_share(&during(&samples, 4100, 8000)), 1.0);
    assert_eq!(kinds, ["fault.start", "fault.end", "phase.heal"]);
}

/// Echo with a 100 ms service time, so that requests are in flight when
/// the server goes down at 2s (for 2s).
fn down_with(kind: &str) -> Vec<OpSample> {
    let source = format!(
        "name = \"down\"\nsystem = \"echo\"\nduration = \"6s\"\nheal = \"2s\"\n\
         [knobs]\nservice_time = \"100ms\"\n\
         [workload]\nclients = 2\nrate = \"200/s\"\ndeadline = \"300ms\"\n\
         [check]\ninvariants = [\"echo-matches\", \"liveness\"]\n\
         [[fault]]\nat = \"2s\"\nkind = \"{kind}\"\nhosts = [\"server\"]\nrestart_after = \"2s\"\n"
    );
    let report = run_seed(&scenario(&source), 4, RunOptions { keep_records: true, ..RunOptions::default() });
    assert!(report.passed, "{:?}", report.outcome);
    report.samples
}

#[test]
fn a_power_off_is_silent_where_a_crash_closes_connections() {
    // In flight at the crash (sent 1.91-1.99s, answers due 100 ms later):
    // a kill -9 closes the server's connections, and the clients see it at once.
    let crash = down_with("crash");
    let ((failed, timed_out, _), slowest_failure, _) = endings(&during(&crash, 1910, 1990));
    assert!(failed > 5 && timed_out == 0, "crash: {failed} failed, {timed_out} timed out");
    assert!(slowest_failure < 110.0, "crash: a close seen after {slowest_failure} ms");
    // A power-off sends nothing: the same requests wait out their deadline.
    let power_off = down_with("power-off");
    let ((failed, timed_out, served), _, (shortest, _)) = endings(&during(&power_off, 1910, 1990));
    assert!(failed == 0 && served == 0 && timed_out > 5, "power-off: {failed} failed, {timed_out} timed out");
    assert!(shortest >= 300.0, "power-off: a timeout after {shortest} ms");
    // While down, both leave new connects unanswered until their deadline
    // (turmoil delivers nothing to a host that is down), and both serve
    // again once the host is back.
    for (kind, samples) in [("crash", &crash), ("power-off", &power_off)] {
        let ((failed, timed_out, served), _, (shortest, _)) = endings(&during(samples, 2000, 3690));
        assert!(failed == 0 && served == 0 && timed_out > 300, "{kind}: {failed} failed, {timed_out} timed out");
        assert!(shortest >= 300.0, "{kind}: a timeout after {shortest} ms");
        assert_eq!(served_share(&during(samples, 4200, 8000)), 1.0, "{kind}");
    }
    let (_, kinds) = run_with("kind = \"power-off\"\nhosts = [\"server\"]\nrestart_after = \"2s\"", "300ms");
    assert_eq!(kinds, ["fault.start", "host.crash", "fault.end", "host.restart", "phase.heal"]);
}

/// Echo with a 100 ms service time and `note_requests`, so that the trace
/// shows which requests reached the server, under `fault` from 2s.
fn noted_with(fault: &str) -> faultline_harness::judge::RunReport {
    let source = format!(
        "name = \"noted\"\nsystem = \"echo\"\nduration = \"6s\"\nheal = \"2s\"\n\
         [knobs]\nservice_time = \"100ms\"\nnote_requests = true\n\
         [workload]\nclients = 2\nrate = \"200/s\"\ndeadline = \"300ms\"\n\
         [check]\ninvariants = [\"echo-matches\", \"liveness\"]\n\
         [[fault]]\nat = \"2s\"\nfor = \"2s\"\n{fault}\n"
    );
    let report = run_seed(&scenario(&source), 4, RunOptions { keep_records: true, ..RunOptions::default() });
    assert!(report.passed, "{:?}", report.outcome);
    report
}

/// The payload a timeline detail names: `#12 EchoOp { payload: 77 }` or
/// the event's `payload=77`.
fn payload_in(detail: &str) -> Option<u64> {
    let start = detail.find("payload")? + "payload".len();
    let digits: String =
        detail[start..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The requests invoked in [from_ms, to_ms): (payload, how it ended: the
/// completion line's kind), and the payloads the server read.
fn requests_and_reads(
    report: &faultline_harness::judge::RunReport,
    from_ms: u64,
    to_ms: u64,
) -> (Vec<(u64, String)>, std::collections::BTreeSet<u64>) {
    let id = |detail: &str| detail.split_whitespace().next().unwrap_or_default().to_string();
    let mut invoked = Vec::new();
    let mut ended = std::collections::BTreeMap::new();
    let mut read = std::collections::BTreeSet::new();
    for line in &report.timeline {
        match line.kind.as_str() {
            "op.invoke" if line.at >= from_ms * 1_000_000 && line.at < to_ms * 1_000_000 => {
                invoked.push((id(&line.detail), payload_in(&line.detail).expect("an echo op names its payload")));
            }
            "op.ok" | "op.failed" | "op.timeout" => {
                ended.insert(id(&line.detail), line.kind.clone());
            }
            "echo.received" => {
                read.insert(payload_in(&line.detail).expect("echo.received names its payload"));
            }
            _ => {}
        }
    }
    let requests = invoked.into_iter().map(|(id, payload)| (payload, ended[&id].clone())).collect();
    (requests, read)
}

#[test]
fn a_one_way_blackhole_silences_one_direction_and_lets_the_other_flow() {
    // Requests silenced (clients to server): the server reads nothing sent
    // during the fault, and each request hangs until its deadline.
    let requests_dropped = noted_with("kind = \"blackhole\"\nbetween = [[\"client-*\"], [\"server\"]]\noneway = true");
    let (sent_during, read) = requests_and_reads(&requests_dropped, 2000, 3690);
    assert!(sent_during.len() > 300 && sent_during.iter().all(|(_, end)| end == "op.timeout"), "{sent_during:?}");
    assert!(sent_during.iter().all(|(payload, _)| !read.contains(payload)), "the server read a silenced request");
    let ((failed, timed_out, served), _, (shortest, longest)) = endings(&during(&requests_dropped.samples, 2000, 3690));
    assert!(failed == 0 && served == 0 && timed_out > 300, "{failed} failed, {timed_out} timed out");
    assert!((300.0..=301.0).contains(&shortest) && longest <= 301.0, "timeouts took {shortest}..{longest} ms");
    // Requests the server read just before the fault: their answers cross
    // the flowing direction and arrive.
    let (before, read) = requests_and_reads(&requests_dropped, 1900, 1980);
    assert!(before.len() > 10, "{before:?}");
    assert!(before.iter().all(|(payload, end)| end == "op.ok" && read.contains(payload)), "{before:?}");

    // Answers silenced (server to clients): the requests read just before
    // the fault are answered into the silence, so they hang too, though the
    // trace shows the server read every one of them.
    let answers_dropped = noted_with("kind = \"blackhole\"\nbetween = [[\"server\"], [\"client-*\"]]\noneway = true");
    let (before, read) = requests_and_reads(&answers_dropped, 1900, 1980);
    assert!(before.len() > 10, "{before:?}");
    assert!(before.iter().all(|(payload, end)| end == "op.timeout" && read.contains(payload)), "{before:?}");
    // New connections do not open in either direction (the SYN-ACK would
    // cross the silenced one): requests sent during the fault hang
    // unread, as over a real one-way outage.
    let (sent_during, read) = requests_and_reads(&answers_dropped, 2000, 3690);
    assert!(sent_during.len() > 300 && sent_during.iter().all(|(p, end)| end == "op.timeout" && !read.contains(p)));
    let ((_, _, _), _, (shortest, longest)) = endings(&during(&answers_dropped.samples, 2000, 3690));
    assert!((300.0..=301.0).contains(&shortest) && longest <= 301.0, "timeouts took {shortest}..{longest} ms");
    for report in [&requests_dropped, &answers_dropped] {
        assert_eq!(served_share(&during(&report.samples, 4100, 8000)), 1.0);
        let faults: Vec<&str> =
            report.timeline.iter().filter(|l| l.kind == "fault.start").map(|l| &*l.detail).collect();
        assert!(faults.len() == 1 && faults[0].contains("->"), "{faults:?}");
    }
}
