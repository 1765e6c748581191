//! `faultline lincheck --format json`: the history's counts, the verdict
//! and, for a violation, its evidence.

use faultline_harness::linearizability::file::{Report, ReportVerdict};
use serde::Serialize;

/// The whole document.
#[derive(Serialize)]
pub struct Lincheck {
    /// The history file.
    pub history: String,
    /// "register" or "kv".
    pub model: &'static str,
    /// Operations in the history as given.
    pub operations: usize,
    /// Failed operations removed (they did not take effect).
    pub failed_removed: usize,
    /// Indeterminate operations (kept or dropped).
    pub indeterminate: usize,
    /// Of those, the read-only ones dropped.
    pub indeterminate_reads_dropped: usize,
    /// Partitions (keys) checked.
    pub partitions: usize,
    /// "linearizable" (exit 0), "not_linearizable" (exit 1) or "unknown" (exit 3).
    pub verdict: &'static str,
    /// Which budget ran out, for "unknown"; else `null`.
    pub reason: Option<String>,
    /// The evidence, for "not_linearizable"; else `null`.
    pub violation: Option<Violation>,
}

/// The first partition in key order without a linearization.
#[derive(Serialize)]
pub struct Violation {
    /// The partition's key, as the model labels it.
    pub partition: String,
    pub partition_operations: usize,
    /// Operations in the smallest failing slice found.
    pub slice_operations: usize,
    /// Does the slice fail from every initial state (else from the real one only)?
    pub slice_from_any_state: bool,
    /// The slice drawn as a timeline, one line per operation.
    pub slice_timeline: String,
    /// Operations in the longest prefix proved linearizable.
    pub prefix_operations: usize,
    /// The prefix's last operations (at most 24), drawn.
    pub prefix_tail_timeline: String,
    /// The operation right after the prefix, `null` when the prefix is the whole partition.
    pub next_operation: Option<String>,
    /// Set when shrinking stopped at a budget.
    pub shrink_incomplete: Option<String>,
}

/// The document of `report`.
pub fn document(report: &Report) -> Lincheck {
    let p = &report.prepared;
    let (verdict, reason, violation) = match &report.verdict {
        ReportVerdict::Linearizable => ("linearizable", None, None),
        ReportVerdict::Unknown { reason } => ("unknown", Some(reason.clone()), None),
        ReportVerdict::NotLinearizable {
            partition,
            partition_operations,
            slice_operations,
            slice_from_any_state,
            slice_timeline,
            prefix_operations,
            prefix_tail_timeline,
            next_operation,
            shrink_incomplete,
        } => {
            let violation = Violation {
                partition: partition.clone(),
                partition_operations: *partition_operations,
                slice_operations: *slice_operations,
                slice_from_any_state: *slice_from_any_state,
                slice_timeline: slice_timeline.clone(),
                prefix_operations: *prefix_operations,
                prefix_tail_timeline: prefix_tail_timeline.clone(),
                next_operation: next_operation.clone(),
                shrink_incomplete: shrink_incomplete.clone(),
            };
            ("not_linearizable", None, Some(violation))
        }
    };
    Lincheck {
        history: report.source.clone(),
        model: report.model,
        operations: p.operations,
        failed_removed: p.failed_removed,
        indeterminate: p.indeterminate,
        indeterminate_reads_dropped: p.indeterminate_reads_dropped,
        partitions: p.partitions,
        verdict,
        reason,
        violation,
    }
}
