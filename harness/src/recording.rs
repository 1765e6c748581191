//! A recorded run: the scenario it ran (its file and text), the seed, the
//! plan, the history, the probe's samples and the typed trace, with the
//! versions that made it. It serializes, so a run can be saved (`replay
//! --save`) and judged again later, by a newer checker, without simulating
//! (`faultline analyze`). The run's digest is computed over it.
//!
//! Plain data and pure functions; nothing here runs or judges.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::history::{History, ProbeSample, SystemEvent, TraceEvent, TraceLine};
use crate::plan::Plan;
use crate::system::System;

/// The version of the recording format. A recording of another version is
/// refused with a message that says which versions are involved.
pub const RECORDING_FORMAT: u32 = 1;

/// The turmoil version this build runs on. Cargo.toml pins turmoil exactly to
/// it (`=0.7.2`), and a test holds the two together: a replay of a seed needs
/// the same turmoil, and a dependent's build cannot read our lock file.
pub const TURMOIL_VERSION: &str = "0.7.2";

/// Versions a replay depends on; failure output and recordings carry them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// The version of the faultline-harness crate that ran, e.g. `0.1.0`.
    pub faultline: String,
    /// The turmoil version ([`TURMOIL_VERSION`]).
    pub turmoil: String,
    /// What `rustc -V` printed for the compiler that built the harness
    /// (`unknown` when the build script could not run it).
    pub rustc: String,
}

impl Versions {
    /// The versions of this build.
    pub fn current() -> Versions {
        Versions {
            faultline: env!("CARGO_PKG_VERSION").to_string(),
            turmoil: TURMOIL_VERSION.to_string(),
            rustc: env!("FAULTLINE_RUSTC_VERSION").to_string(),
        }
    }
}

/// Everything one run recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Recording<S: System> {
    /// [`RECORDING_FORMAT`] when it was written.
    pub format: u32,
    /// The scenario file as the user named it.
    pub file: String,
    /// The scenario file's text: `analyze` loads the scenario from it.
    pub source: String,
    /// The seed that ran.
    pub seed: u64,
    /// The faults the seed planned, as the runner applied them.
    pub plan: Plan,
    /// Every client operation.
    pub history: History<S::Op, S::Res>,
    /// The harness's entries (faults, crashes, restarts, the pool, the heal
    /// phase) and the system's events, in the order they happened.
    pub trace: Vec<TraceEvent<S::Event>>,
    /// The health probe's samples, in send order (empty without a probe).
    pub probes: Vec<ProbeSample>,
    /// Why the run stopped early (a panic, a host error, a hang), if it did.
    pub aborted: Option<String>,
    /// The versions of the build that ran it.
    pub versions: Versions,
}

/// The head of a saved recording: its format version and its scenario, read
/// before the rest, whose types depend on the system the scenario names.
#[derive(Deserialize)]
pub struct FormatOnly {
    /// [`RECORDING_FORMAT`] when it was written.
    pub format: u32,
    /// The scenario file as the user named it.
    pub file: String,
    /// The scenario file's text.
    pub source: String,
}

impl<S: System> Recording<S> {
    /// The digest's input: every trace entry, then every operation, then every
    /// probe sample, one JSON record a line, then why the run aborted.
    pub fn records(&self) -> Vec<String> {
        let mut records = Vec::with_capacity(self.trace.len() + self.history.ops.len() + self.probes.len() + 1);
        records.extend(self.trace.iter().map(|e| serde_json::to_string(e).expect("trace entries serialize")));
        records.extend(self.history.ops.iter().map(|o| serde_json::to_string(o).expect("operations serialize")));
        records.extend(self.probes.iter().map(|p| serde_json::to_string(p).expect("probe samples serialize")));
        if let Some(reason) = &self.aborted {
            records.push(format!("aborted: {reason}"));
        }
        records
    }

    /// SHA-256 over [`Recording::records`] (newline-terminated), hex, first 16 bytes.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for record in self.records() {
            hasher.update(record.as_bytes());
            hasher.update(b"\n");
        }
        hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The trace and the operations (invocation and completion) in time
    /// order, as lines people read.
    pub fn timeline(&self) -> Vec<TraceLine> {
        timeline(&self.trace, &self.history)
    }
}

/// The trace and the operations (invocation and completion) in time order.
pub fn timeline<E: SystemEvent, O: std::fmt::Debug, R: std::fmt::Debug>(
    trace: &[TraceEvent<E>],
    history: &History<O, R>,
) -> Vec<TraceLine> {
    use crate::history::Outcome;
    let mut lines: Vec<TraceLine> = trace.iter().map(TraceEvent::line).collect();
    for op in &history.ops {
        let source = crate::scenario::client_host(op.client);
        lines.push(TraceLine {
            at: op.invoked,
            source: source.clone(),
            kind: "op.invoke".into(),
            detail: format!("#{} {:?}", op.id, op.op),
        });
        let (kind, detail) = match &op.outcome {
            Outcome::Ok(value) => ("op.ok", format!("#{} -> {:?}", op.id, value)),
            Outcome::Degraded(value) => ("op.degraded", format!("#{} -> {:?}", op.id, value)),
            Outcome::Failed(reason) => ("op.failed", format!("#{} {reason}", op.id)),
            Outcome::Timeout => ("op.timeout", format!("#{}", op.id)),
        };
        let latency = crate::units::format_duration(std::time::Duration::from_nanos(op.latency()));
        lines.push(TraceLine { at: op.completed, source, kind: kind.into(), detail: format!("{detail} ({latency})") });
    }
    // Stable: entries at one instant keep their recorded order.
    lines.sort_by_key(|line| line.at);
    lines
}

/// Where two runs of one seed first differ: (record index, first, second).
pub fn first_divergence(a: &[String], b: &[String]) -> Option<(usize, String, String)> {
    let missing = || "(no record: the run ended here)".to_string();
    for index in 0..a.len().max(b.len()) {
        let left = a.get(index);
        let right = b.get(index);
        if left != right {
            return Some((index, left.cloned().unwrap_or_else(missing), right.cloned().unwrap_or_else(missing)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_names_the_first_differing_record() {
        let a = vec!["x".to_string(), "y".to_string()];
        let b = vec!["x".to_string(), "z".to_string(), "w".to_string()];
        assert_eq!(first_divergence(&a, &b), Some((1, "y".into(), "z".into())));
        assert_eq!(first_divergence(&a, &a), None);
        assert_eq!(first_divergence(&a[..1], &a).unwrap().0, 1);
    }

    /// The manifest pins turmoil to exactly the version replay lines name. In
    /// the repository the pin is in the workspace's `[workspace.dependencies]`;
    /// in a packaged crate cargo has written it into the crate's own manifest,
    /// and the workspace's is not there to read.
    #[test]
    fn turmoil_is_pinned_to_the_version_replays_name() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |path: &std::path::Path| -> toml::Table {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let own = read(&dir.join("Cargo.toml"));
        let dependency = &own["dependencies"]["turmoil"];
        let inherited = dependency.get("workspace").and_then(toml::Value::as_bool) == Some(true);
        let pinned = if inherited {
            let workspace = read(&dir.join("../Cargo.toml"));
            workspace["workspace"]["dependencies"]["turmoil"]["version"].as_str().map(str::to_string)
        } else {
            dependency["version"].as_str().map(str::to_string)
        };
        let expected = format!("={TURMOIL_VERSION}");
        assert_eq!(
            pinned.as_deref(),
            Some(expected.as_str()),
            "turmoil must be pinned to {expected} (TURMOIL_VERSION)"
        );
    }
}
