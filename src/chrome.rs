//! `--trace-format chrome`: a run as Chrome trace-event JSON (the "JSON
//! object format" of the Trace Event Format), which Perfetto and
//! chrome://tracing open.
//!
//! Each host is a process (a track group) with a track for the times it was
//! down, tracks for the faults that touched it (overlapping faults get
//! tracks of their own, so slices always nest), and a track of the system's
//! events it reported, as instants. Each workload client is a process whose
//! tracks hold its requests as slices, from intended start to answer,
//! named by kind and outcome. The heal phase is a global instant. Times are
//! simulated microseconds since the run started.
//!
//! Built from a judged report with its records kept; writes no files.

use faultline_harness::history::HARNESS;
use faultline_harness::judge::RunReport;
use faultline_harness::{Nanos, OutcomeClass};
use serde_json::{json, Value};

/// The first process id of the clients (hosts count from 1).
const CLIENT_PID: u64 = 10_000;
/// The thread of a host's down spells; faults come after, events first.
const EVENTS_TID: u64 = 1;
const DOWN_TID: u64 = 2;
const FAULT_TID: u64 = 3;

fn micros(at: Nanos) -> f64 {
    at as f64 / 1000.0
}

/// Places intervals on as few tracks as keeps each track's intervals apart:
/// the track of each, in input order.
fn tracks(intervals: &[(Nanos, Nanos)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| intervals[i]);
    let mut ends: Vec<Nanos> = Vec::new();
    let mut track = vec![0; intervals.len()];
    for index in order {
        let (from, until) = intervals[index];
        let slot = ends.iter().position(|end| *end <= from).unwrap_or_else(|| {
            ends.push(0);
            ends.len() - 1
        });
        ends[slot] = until.max(from + 1);
        track[index] = slot;
    }
    track
}

fn name_track(events: &mut Vec<Value>, pid: u64, tid: u64, name: &str) {
    events.push(json!({ "ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": { "name": name } }));
    events
        .push(json!({ "ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": { "sort_index": tid } }));
}

fn name_process(events: &mut Vec<Value>, pid: u64, name: &str) {
    events.push(json!({ "ph": "M", "name": "process_name", "pid": pid, "args": { "name": name } }));
    events.push(json!({ "ph": "M", "name": "process_sort_index", "pid": pid, "args": { "sort_index": pid } }));
}

/// The run as a Chrome trace-event JSON document.
pub fn trace(report: &RunReport) -> String {
    let mut events = Vec::new();
    let hosts = &report.picture.hosts;
    for (index, host) in hosts.iter().enumerate() {
        host_events(&mut events, report, host, index as u64 + 1);
    }
    client_events(&mut events, report);
    events.push(json!({
        "ph": "i", "s": "g", "name": "heal: every fault off", "cat": "phase",
        "ts": micros(report.picture.heal_at), "pid": 1, "tid": EVENTS_TID,
    }));
    let document = json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "scenario": report.scenario,
            "name": report.name,
            "seed": report.seed,
            "digest": report.digest,
            "clock": "simulated time since the run started",
        },
    });
    serde_json::to_string(&document).expect("a trace serializes")
}

fn host_events(events: &mut Vec<Value>, report: &RunReport, host: &str, pid: u64) {
    name_process(events, pid, host);
    name_track(events, pid, EVENTS_TID, "events");
    name_track(events, pid, DOWN_TID, "down");
    for (_, from, until) in report.picture.down.iter().filter(|(h, _, _)| h == host) {
        events.push(json!({
            "ph": "X", "name": "down", "cat": "host", "pid": pid, "tid": DOWN_TID,
            "ts": micros(*from), "dur": micros(until - from),
        }));
    }
    let faults: Vec<_> = report.plan.faults.iter().filter(|f| f.touches(host)).collect();
    let spans: Vec<(Nanos, Nanos)> = faults.iter().map(|f| (f.start(), f.end())).collect();
    let placed = tracks(&spans);
    for track in 0..placed.iter().copied().max().map_or(0, |m| m + 1) {
        name_track(events, pid, FAULT_TID + track as u64, &format!("faults {}", track + 1));
    }
    for (fault, track) in faults.iter().zip(placed) {
        events.push(json!({
            "ph": "X", "name": fault.action.kind(), "cat": "fault", "pid": pid, "tid": FAULT_TID + track as u64,
            "ts": micros(fault.start()), "dur": micros(fault.end() - fault.start()),
            "args": { "fault": fault.id, "what": fault.action.to_string(), "origin": fault.origin },
        }));
    }
    for line in report.timeline.iter().filter(|l| l.source == host && !l.kind.starts_with("op.")) {
        events.push(json!({
            "ph": "i", "s": "t", "name": line.kind, "cat": "event", "pid": pid, "tid": EVENTS_TID,
            "ts": micros(line.at), "args": { "detail": line.detail },
        }));
    }
    for line in report.timeline.iter().filter(|l| l.source == HARNESS && l.detail == host) {
        events.push(json!({
            "ph": "i", "s": "t", "name": line.kind, "cat": "harness", "pid": pid, "tid": EVENTS_TID,
            "ts": micros(line.at),
        }));
    }
}

fn outcome(class: OutcomeClass) -> &'static str {
    match class {
        OutcomeClass::Ok => "ok",
        OutcomeClass::Degraded => "degraded",
        OutcomeClass::Failed => "failed",
        OutcomeClass::Timeout => "timeout",
    }
}

fn client_events(events: &mut Vec<Value>, report: &RunReport) {
    let mut clients: Vec<u32> = report.samples.iter().map(|s| s.client).collect();
    clients.sort_unstable();
    clients.dedup();
    for client in clients {
        let pid = CLIENT_PID + u64::from(client);
        name_process(events, pid, &format!("client-{client}"));
        let ops: Vec<(usize, _)> = report.samples.iter().enumerate().filter(|(_, s)| s.client == client).collect();
        let spans: Vec<(Nanos, Nanos)> = ops.iter().map(|(_, s)| (s.intended, s.completed.max(s.intended))).collect();
        let placed = tracks(&spans);
        for track in 0..placed.iter().copied().max().map_or(0, |m| m + 1) {
            name_track(events, pid, track as u64 + 1, &format!("requests {}", track + 1));
        }
        for ((id, sample), track) in ops.iter().zip(placed) {
            let result = if sample.incorrect && sample.class.served() { "incorrect" } else { outcome(sample.class) };
            events.push(json!({
                "ph": "X", "name": format!("{} {result}", sample.kind), "cat": "request",
                "pid": pid, "tid": track as u64 + 1,
                "ts": micros(sample.intended), "dur": micros(sample.completed.saturating_sub(sample.intended)),
                "args": { "op": id, "outcome": result },
            }));
        }
    }
    for line in report.timeline.iter().filter(|l| l.source.starts_with("client-") && !l.kind.starts_with("op.")) {
        let Some(client) = line.source.strip_prefix("client-").and_then(|n| n.parse::<u64>().ok()) else { continue };
        events.push(json!({
            "ph": "i", "s": "t", "name": line.kind, "cat": "event", "pid": CLIENT_PID + client, "tid": 1,
            "ts": micros(line.at), "args": { "detail": line.detail },
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::{tracks, CLIENT_PID, DOWN_TID};
    use faultline_harness::drive::{run_seed, RunOptions};
    use serde_json::Value;

    /// The breaker crash run, as Chrome trace JSON, parsed back.
    #[test]
    fn a_run_parses_back_with_hosts_as_tracks_and_faults_and_requests_as_slices() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report-breaker-crash.toml");
        let loaded = std::sync::Arc::new(
            faultline_harness::registry::load(&path, &faultline_systems::registry()).expect("the fixture loads"),
        );
        let report = run_seed(&loaded, 1, RunOptions { keep_records: true, ..RunOptions::default() });
        let json: Value = serde_json::from_str(&super::trace(&report)).expect("the trace is JSON");
        let events = json["traceEvents"].as_array().expect("a traceEvents array");
        let process = |name: &str| {
            events
                .iter()
                .find(|e| e["ph"] == "M" && e["name"] == "process_name" && e["args"]["name"] == name)
                .and_then(|e| e["pid"].as_u64())
                .unwrap_or_else(|| panic!("no process {name}"))
        };
        let downstream = process("downstream");
        for host in ["app", "cache"] {
            assert_ne!(process(host), downstream);
        }
        let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        for slice in &slices {
            assert!(slice["ts"].as_f64().is_some() && slice["dur"].as_f64().is_some_and(|d| d >= 0.0), "{slice}");
        }
        let crash: Vec<&&Value> = slices.iter().filter(|e| e["cat"] == "fault").collect();
        assert_eq!(crash.len(), 1);
        assert_eq!((crash[0]["name"].as_str(), crash[0]["pid"].as_u64()), (Some("crash"), Some(downstream)));
        assert_eq!((crash[0]["ts"].as_f64(), crash[0]["dur"].as_f64()), (Some(1e6), Some(1.5e6)), "1s..2.5s in µs");
        let down: Vec<&&Value> = slices.iter().filter(|e| e["name"] == "down").collect();
        assert_eq!(down.len(), 1);
        assert_eq!((down[0]["pid"].as_u64(), down[0]["tid"].as_u64()), (Some(downstream), Some(DOWN_TID)));
        let requests: Vec<&&Value> = slices.iter().filter(|e| e["cat"] == "request").collect();
        assert_eq!(requests.len(), report.samples.len(), "a slice per request");
        assert!(requests.iter().all(|r| r["pid"].as_u64().is_some_and(|pid| pid >= CLIENT_PID)));
        assert!(requests.iter().any(|r| r["name"] == "request failed"), "the refused requests failed");
        let opens = events.iter().filter(|e| e["ph"] == "i" && e["name"] == "breaker.open").count();
        assert!(opens >= 1, "the breaker's events are instants on the app's track");
    }

    #[test]
    fn overlapping_intervals_get_tracks_of_their_own_and_apart_ones_share() {
        assert_eq!(tracks(&[(0, 10), (5, 15), (10, 20), (16, 18)]), vec![0, 1, 0, 1]);
        assert_eq!(tracks(&[]), Vec::<usize>::new());
    }
}
