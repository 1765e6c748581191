//! Each fault kind, applied to the echo system, has the effect it claims on
//! the requests made while it lasts, and none after it ends.

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::metrics::OpSample;

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
