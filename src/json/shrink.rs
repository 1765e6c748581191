//! `faultline shrink --format json`: what the search found, the file it
//! wrote and whether that file reproduces the violation.

use std::path::Path;

use faultline_harness::fault::{Action, PlannedFault};
use faultline_harness::judge::RunReport;
use faultline_harness::shrink::{ShrinkResult, Size};
use faultline_harness::Scenario;
use serde::Serialize;

/// The whole document.
#[derive(Serialize)]
pub struct Shrunk {
    /// The scenario file shrunk.
    pub scenario: String,
    pub seed: u64,
    /// The invariant every kept run violated.
    pub invariant: String,
    /// The seed's own configuration.
    pub original: SizeJson,
    /// The smallest configuration found that still violates it.
    pub shrunk: SizeJson,
    /// The shrunk plan's faults, in start order.
    pub faults: Vec<Fault>,
    /// Runs the search made, the first included.
    pub runs: usize,
    /// Wall-clock time of the search, in milliseconds.
    pub wall_ms: f64,
    /// Why the search stopped early (a budget), if it did.
    pub stopped: Option<String>,
    /// The scenario file written.
    pub out: String,
    /// "reproduced" when running the written file violates the invariant
    /// again (exit 0), else "not_reproduced" (exit 1).
    pub verdict: &'static str,
    /// The digest of the written file's run.
    pub digest: String,
    /// The command that replays the written file with its trace.
    pub replay: String,
}

/// A configuration's size.
#[derive(Serialize)]
pub struct SizeJson {
    pub faults: usize,
    pub clients: u32,
    /// The total open-loop rate at the start of the run; 0 for a closed loop.
    pub rate_per_second: f64,
    /// The fault phase (`duration`), in simulated nanoseconds.
    pub duration_ns: u64,
}

impl From<&Size> for SizeJson {
    fn from(size: &Size) -> SizeJson {
        SizeJson {
            faults: size.faults,
            clients: size.clients,
            rate_per_second: size.rate_per_second,
            duration_ns: size.duration.as_nanos(),
        }
    }
}

/// One planned fault. Fields that a kind does not have are left out:
/// `hosts` (crash, restart, power-off), `a` and `b` (link faults), `oneway`
/// (partition), `latency_min_ns`/`latency_max_ns` (latency), `loss_rate`
/// (loss), `peers` (power-off).
#[derive(Serialize)]
pub struct Fault {
    pub id: u32,
    /// `fault[2]` or `chaos.crash`.
    pub origin: String,
    /// As `[[fault]] kind` names it: `partition`, `crash`, `power-off`, ...
    pub kind: &'static str,
    /// Start, simulated nanoseconds from the start of the run.
    pub at_ns: u64,
    /// End; `null` for an instantaneous restart.
    pub until_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oneway: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_min_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_max_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    /// The fault as the text output prints it.
    pub text: String,
}

impl From<&PlannedFault> for Fault {
    fn from(fault: &PlannedFault) -> Fault {
        let mut out = Fault {
            id: fault.id,
            origin: fault.origin.clone(),
            kind: fault.action.kind(),
            at_ns: fault.at.as_nanos(),
            until_ns: fault.until.map(|u| u.as_nanos()),
            hosts: None,
            a: None,
            b: None,
            oneway: None,
            latency_min_ns: None,
            latency_max_ns: None,
            loss_rate: None,
            peers: None,
            text: fault.to_string(),
        };
        match &fault.action {
            Action::Partition { a, b, oneway } | Action::Blackhole { a, b, oneway } => {
                (out.a, out.b, out.oneway) = (Some(a.clone()), Some(b.clone()), Some(*oneway));
            }
            Action::Latency { a, b, latency } => {
                (out.a, out.b) = (Some(a.clone()), Some(b.clone()));
                (out.latency_min_ns, out.latency_max_ns) = (Some(latency.min.as_nanos()), Some(latency.max.as_nanos()));
            }
            Action::Loss { a, b, rate } => {
                (out.a, out.b, out.loss_rate) = (Some(a.clone()), Some(b.clone()), Some(*rate))
            }
            Action::Clog { a, b } | Action::Refuse { a, b } => {
                (out.a, out.b) = (Some(a.clone()), Some(b.clone()));
            }
            Action::Crash { hosts } | Action::Restart { hosts } => out.hosts = Some(hosts.clone()),
            Action::PowerOff { hosts, peers } => (out.hosts, out.peers) = (Some(hosts.clone()), Some(peers.clone())),
        }
        out
    }
}

/// The document for a shrink of `scenario`'s `seed` written to `out`, whose
/// run is `check`. Reproduced when `check` violates the invariant again.
pub fn document(result: &ShrinkResult, scenario: &Scenario, seed: u64, out: &Path, check: &RunReport) -> Shrunk {
    let reproduced = check.violation_counts.contains_key(&result.invariant);
    Shrunk {
        scenario: scenario.file.clone(),
        seed,
        invariant: result.invariant.clone(),
        original: (&result.original).into(),
        shrunk: (&result.shrunk.size()).into(),
        faults: result.shrunk.plan.faults.iter().map(Fault::from).collect(),
        runs: result.runs,
        wall_ms: result.elapsed.as_secs_f64() * 1000.0,
        stopped: result.stopped.clone(),
        out: out.display().to_string(),
        verdict: if reproduced { "reproduced" } else { "not_reproduced" },
        digest: check.digest.clone(),
        replay: format!("{} replay {} --trace", faultline_harness::judge::program(), out.display()),
    }
}
