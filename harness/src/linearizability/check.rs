//! Checking a whole history: split it by the model's partition key, search
//! each partition (in parallel when asked), and turn the outcomes into one
//! deterministic [`Verdict`]; on a violation, shrink the failing partition
//! to a small slice and find its longest linearizable prefix.
//!
//! Before the search, failed operations are removed (they did not happen) and
//! indeterminate read-only operations are dropped (they changed nothing).
//!
//! The verdict does not depend on thread timing: partitions are numbered in
//! key order, a violation in partition `i` abandons only partitions after
//! `i`, and the lowest-numbered violation is the one reported. The one
//! exception is the wall-clock budget, which is timing by nature: a check
//! that runs out of wall time reports `Unknown` (or a violation it had
//! already proven), never a pass.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::model::Model;
use super::operation::{Completion, Operation};
use super::search::{search, Budget, Exhausted, Outcome, SearchOp};
use super::shrink;

/// The bounds and parallelism of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Threads searching partitions at once; 1 searches on the calling
    /// thread. Default 1.
    pub threads: usize,
    /// Search steps (events visited) one partition's search may take before
    /// its verdict is `Unknown`. Each step adds at most one configuration to
    /// the memo. Per partition rather than in total, so that the verdict does
    /// not depend on which thread searched what. Default 5,000,000.
    pub steps_max: u64,
    /// Bytes one search's memo may hold (bitsets and states). Default 512 MiB.
    pub memo_bytes_max: usize,
    /// Wall-clock budget of the whole check, shrinking included. Default 60 s.
    pub wall_max: Duration,
    /// Searches the shrinker may run after a violation (for the longest
    /// prefix and the minimal slice together). Default 400.
    pub shrink_searches_max: usize,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            threads: 1,
            steps_max: 5_000_000,
            memo_bytes_max: 512 << 20,
            wall_max: Duration::from_secs(60),
            shrink_searches_max: 400,
        }
    }
}

/// The answer: linearizable, not (with a key and evidence), or unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<K, I, O> {
    /// Every partition has a linearization.
    Linearizable,
    /// A partition has none: the first in key order, with its evidence.
    NotLinearizable(Box<Violation<K, I, O>>),
    /// A budget ran out before a verdict; never a pass.
    Unknown {
        /// Which budget ran out, and in which partition.
        reason: String,
    },
}

/// [`Verdict`] for a model's types.
pub type ModelVerdict<M> = Verdict<<M as Model>::Key, <M as Model>::Input, <M as Model>::Output>;

impl<K, I, O> Verdict<K, I, O> {
    /// Is it [`Verdict::Linearizable`]? False for `Unknown` too.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    /// The evidence, for a history that is not linearizable.
    pub fn violation(&self) -> Option<&Violation<K, I, O>> {
        match self {
            Verdict::NotLinearizable(violation) => Some(violation),
            Verdict::Linearizable | Verdict::Unknown { .. } => None,
        }
    }
}

/// Evidence of a violation in one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation<K, I, O> {
    /// The partition (key) that is not linearizable: the first in key order.
    pub key: K,
    /// Operations of the partition the search saw (failed operations and
    /// indeterminate reads removed).
    pub partition_operations: usize,
    /// The smallest sub-history of the partition the shrinker found that is
    /// still not linearizable, in call order.
    pub slice: Vec<Operation<I, O>>,
    /// True when `slice` fails from every initial state the model offers
    /// (`Model::initial_states`), so it stands on its own; false when it
    /// fails only from the model's real initial state.
    pub slice_from_any_state: bool,
    /// The longest prefix of the partition, in call order, that the search
    /// proved linearizable, as it was checked: operations still running when
    /// the next one was called are shown as indeterminate.
    pub prefix: Vec<Operation<I, O>>,
    /// The operation called right after the prefix (the first in call order
    /// that the prefix leaves out), if any.
    pub next_operation: Option<Operation<I, O>>,
    /// Set when shrinking stopped at a budget: the slice and prefix are
    /// valid but may not be the smallest and longest.
    pub shrink_incomplete: Option<String>,
}

/// One partition of a history: its key and its operations (indices into the
/// history) in call order.
pub(crate) struct Partition<K> {
    pub key: K,
    pub ops: Vec<usize>,
}

/// Counts of what preparation removed, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Operations in the history as given.
    pub operations: usize,
    /// Failed operations removed (they did not take effect).
    pub failed_removed: usize,
    /// Indeterminate operations, kept or dropped.
    pub indeterminate: usize,
    /// Of those, the read-only ones dropped (they changed nothing).
    pub indeterminate_reads_dropped: usize,
    /// Partitions (keys) the remaining operations fall into.
    pub partitions: usize,
}

/// Splits `history` into partitions in key order, each in call order,
/// without failed operations and indeterminate read-only ones.
pub(crate) fn partitions<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> (Vec<Partition<M::Key>>, Prepared) {
    let mut by_key: std::collections::BTreeMap<M::Key, Vec<usize>> = std::collections::BTreeMap::new();
    let mut prepared = Prepared { operations: history.len(), ..Prepared::default() };
    for (index, op) in history.iter().enumerate() {
        match &op.completion {
            Completion::Failed => {
                prepared.failed_removed += 1;
                continue;
            }
            Completion::Indeterminate => {
                prepared.indeterminate += 1;
                if model.is_read_only(&op.input) {
                    prepared.indeterminate_reads_dropped += 1;
                    continue;
                }
            }
            Completion::Returned { ret, .. } => {
                assert!(*ret >= op.call, "operation {index} returns at {ret}, before its call at {}", op.call);
            }
        }
        by_key.entry(model.partition(&op.input)).or_default().push(index);
    }
    let partitions: Vec<Partition<M::Key>> = by_key
        .into_iter()
        .map(|(key, mut ops)| {
            ops.sort_by_key(|&index| (history[index].call, index));
            Partition { key, ops }
        })
        .collect();
    prepared.partitions = partitions.len();
    (partitions, prepared)
}

/// The search's view of the operations `indices` of `history`.
pub(crate) fn search_ops<'a, M: Model>(
    history: &'a [Operation<M::Input, M::Output>],
    indices: &[usize],
) -> Vec<SearchOp<'a, M>> {
    indices
        .iter()
        .map(|&index| {
            let op = &history[index];
            match &op.completion {
                Completion::Returned { ret, output } => {
                    SearchOp { call: op.call, ret: *ret, input: &op.input, output: Some(output) }
                }
                Completion::Indeterminate | Completion::Failed => {
                    SearchOp { call: op.call, ret: u64::MAX, input: &op.input, output: None }
                }
            }
        })
        .collect()
}

/// What a budget ran out of, as a sentence.
pub(crate) fn exhausted_reason(exhausted: Exhausted) -> String {
    match exhausted {
        Exhausted::Steps(steps) => format!("the search took {steps} steps (steps_max) without a verdict"),
        Exhausted::Memory(bytes) => format!("the search's memo reached {} MiB (memo_bytes_max)", bytes >> 20),
        Exhausted::WallClock => "the check ran out of its wall-clock budget (wall_max)".to_string(),
        Exhausted::Abandoned => "the search was abandoned".to_string(),
    }
}

/// When the check started and must end.
pub(crate) fn deadline(wall_max: Duration) -> Instant {
    // The checker's own wall-clock budget: it runs after a simulation, on
    // real time, and never inside one.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    now.checked_add(wall_max).unwrap_or(now + Duration::from_secs(365 * 24 * 3600))
}

/// Checks `history` against `model`.
///
/// Panics if an operation returns before its call (a bug in whoever recorded
/// the history; files are validated when read).
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> ModelVerdict<M> {
    let (partitions, _) = partitions(model, history);
    check_partitions(model, history, &partitions, options)
}

pub(crate) fn check_partitions<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partitions: &[Partition<M::Key>],
    options: &CheckOptions,
) -> ModelVerdict<M> {
    assert!(options.threads >= 1, "a check needs at least one thread");
    let deadline = deadline(options.wall_max);
    // The lowest partition found not linearizable so far; searches of later
    // partitions stop when it drops below their index.
    let lowest_violation = AtomicUsize::new(usize::MAX);
    let next_partition = AtomicUsize::new(0);
    let outcomes: Vec<Mutex<Option<Outcome>>> = partitions.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        let index = next_partition.fetch_add(1, Ordering::Relaxed);
        if index >= partitions.len() {
            break;
        }
        if lowest_violation.load(Ordering::Relaxed) < index {
            continue;
        }
        let ops = search_ops::<M>(history, &partitions[index].ops);
        let budget = Budget {
            steps_max: options.steps_max,
            memo_bytes_max: options.memo_bytes_max,
            deadline,
            abandon_below: Some((&lowest_violation, index)),
        };
        let outcome = search(model, &[model.init()], &ops, &budget);
        if outcome == Outcome::NotLinearizable {
            lowest_violation.fetch_min(index, Ordering::Relaxed);
        }
        *outcomes[index].lock().expect("no worker panics while holding it") = Some(outcome);
    };
    if options.threads == 1 || partitions.len() == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..options.threads.min(partitions.len()) {
                scope.spawn(work);
            }
        });
    }
    // Read the outcomes in partition order: the first violation wins; an
    // unknown before it does not hide it (a proven violation stands alone).
    let mut first_unknown: Option<(usize, Exhausted)> = None;
    for (index, slot) in outcomes.into_iter().enumerate() {
        let outcome = slot.into_inner().expect("no worker panics while holding it");
        match outcome {
            Some(Outcome::Linearizable) => {}
            Some(Outcome::NotLinearizable) => {
                let violation = shrink::explain(model, history, &partitions[index], options, deadline);
                return Verdict::NotLinearizable(Box::new(violation));
            }
            Some(Outcome::Unknown(exhausted)) => {
                first_unknown.get_or_insert((index, exhausted));
            }
            None => unreachable!("partition {index} was skipped without a lower violation"),
        }
    }
    match first_unknown {
        None => Verdict::Linearizable,
        Some((index, exhausted)) => Verdict::Unknown {
            reason: format!(
                "{} ({} operations): {}",
                model.describe_key(&partitions[index].key),
                partitions[index].ops.len(),
                exhausted_reason(exhausted)
            ),
        },
    }
}

impl<K: fmt::Debug, I, O> fmt::Display for Verdict<K, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable(violation) => write!(f, "not linearizable (partition {:?})", violation.key),
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}
