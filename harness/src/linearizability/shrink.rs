//! Explaining a violation: the longest linearizable prefix of the failing
//! partition and the smallest slice of it that still fails.
//!
//! The prefix of `k` operations (in call order) is the history cut just
//! before the `k+1`-th call: operations that had returned by then keep their
//! outputs, the others become indeterminate. Cut that way, a linearizable
//! history has only linearizable prefixes, so a binary search finds the
//! longest one.
//!
//! The slice starts as the first failing prefix with its real outputs (it
//! fails whenever the cut fails: real outputs only add constraints), is
//! trimmed from the front by binary search, then shrunk by delta debugging
//! (removing chunks, then single operations). A slice is kept only if it
//! fails from every initial state the model offers, so that removing the
//! write that explains a read does not count as a smaller violation; when the
//! first failing prefix fails only from the real initial state (a read of a
//! value nobody wrote), that is the bar instead.
//!
//! Every search here has the check's step budget; the number of slice checks
//! and the check's wall-clock deadline bound the whole. Hitting either leaves
//! a valid slice and prefix, marked incomplete. Nothing here decides the
//! verdict: the partition is already known not to be linearizable.

use std::time::Instant;

use super::check::{exhausted_reason, search_ops, CheckOptions, Partition, Violation};
use super::model::Model;
use super::operation::{Completion, Operation};
use super::search::{search, Budget, Outcome, SearchOp};

struct Shrinker<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    options: &'a CheckOptions,
    deadline: Instant,
    checks: usize,
    /// Why shrinking stopped early, the first time it did.
    incomplete: Option<String>,
}

impl<M: Model> Shrinker<'_, M> {
    /// Searches `ops` from `inits`; `None` when a budget ran out.
    fn linearizable(&mut self, ops: &[SearchOp<'_, M>], inits: &[M::State]) -> Option<bool> {
        if self.checks >= self.options.shrink_searches_max {
            self.incomplete.get_or_insert_with(|| {
                format!("shrinking stopped after {} checks (shrink_searches_max)", self.options.shrink_searches_max)
            });
            return None;
        }
        self.checks += 1;
        let budget = Budget {
            steps_max: self.options.steps_max,
            memo_bytes_max: self.options.memo_bytes_max,
            deadline: self.deadline,
            abandon_below: None,
        };
        match search(self.model, inits, ops, &budget) {
            Outcome::Linearizable => Some(true),
            Outcome::NotLinearizable => Some(false),
            Outcome::Unknown(exhausted) => {
                self.incomplete.get_or_insert_with(|| format!("shrinking stopped: {}", exhausted_reason(exhausted)));
                None
            }
        }
    }

    /// Does the sub-history `indices` fail, from every initial state the
    /// model offers (`any_state`) or from its real one? Unknown counts as no.
    fn fails(&mut self, indices: &[usize], any_state: bool) -> bool {
        let ops = search_ops::<M>(self.history, indices);
        let inits = if any_state {
            let pairs: Vec<(&M::Input, Option<&M::Output>)> = ops.iter().map(|op| (op.input, op.output)).collect();
            self.model.initial_states(&pairs)
        } else {
            vec![self.model.init()]
        };
        self.linearizable(&ops, &inits) == Some(false)
    }

    /// The first `count` operations of `partition` (call order), cut just
    /// before the next call: later returns become indeterminate, and
    /// indeterminate reads are dropped.
    fn cut(&self, partition: &[usize], count: usize) -> Vec<Operation<M::Input, M::Output>> {
        let cut = partition.get(count).map_or(u64::MAX, |&index| self.history[index].call);
        partition[..count]
            .iter()
            .filter_map(|&index| {
                let op = &self.history[index];
                match &op.completion {
                    Completion::Returned { ret, .. } if *ret < cut => Some(op.clone()),
                    _ if self.model.is_read_only(&op.input) => None,
                    _ => Some(Operation::indeterminate(op.client, op.call, op.input.clone())),
                }
            })
            .collect()
    }

    fn cut_linearizable(&mut self, partition: &[usize], count: usize) -> Option<bool> {
        let cut = self.cut(partition, count);
        let indices: Vec<usize> = (0..cut.len()).collect();
        let ops = search_ops::<M>(&cut, &indices);
        self.linearizable(&ops, &[self.model.init()])
    }
}

/// Delta debugging: removes chunks of `items` (halves, then quarters, down
/// to single items) while `fails` holds; the result is 1-minimal unless
/// `fails` gave up.
fn ddmin(mut items: Vec<usize>, fails: &mut dyn FnMut(&[usize]) -> bool) -> Vec<usize> {
    let mut chunks = 2usize;
    while items.len() >= 2 {
        let chunk = items.len().div_ceil(chunks);
        let mut reduced = false;
        for start in (0..items.len()).step_by(chunk) {
            let end = (start + chunk).min(items.len());
            let rest: Vec<usize> = items[..start].iter().chain(&items[end..]).copied().collect();
            if fails(&rest) {
                items = rest;
                chunks = (chunks - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if chunks >= items.len() {
                break;
            }
            chunks = (chunks * 2).min(items.len());
        }
    }
    items
}

/// The violation report for `partition`, already known not to be
/// linearizable from the model's initial state.
pub(crate) fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partition: &Partition<M::Key>,
    options: &CheckOptions,
    deadline: Instant,
) -> Violation<M::Key, M::Input, M::Output> {
    let ops = &partition.ops;
    let mut shrinker = Shrinker { model, history, options, deadline, checks: 0, incomplete: None };

    // The longest linearizable prefix: `linearizable_count` is proven (or
    // empty), `failing_count` failed or could not be proven.
    let (mut linearizable_count, mut failing_count) = (0, ops.len());
    let mut failing_proven = true;
    while failing_count - linearizable_count > 1 {
        let middle = linearizable_count + (failing_count - linearizable_count) / 2;
        match shrinker.cut_linearizable(ops, middle) {
            Some(true) => linearizable_count = middle,
            Some(false) => (failing_count, failing_proven) = (middle, true),
            None => (failing_count, failing_proven) = (middle, false),
        }
    }

    // The slice to shrink, and the bar it must keep failing.
    let mut slice: Vec<usize> = ops[..failing_count].to_vec();
    if !failing_proven && !shrinker.fails(&slice, false) {
        slice = ops.clone();
    }
    let any_state = shrinker.fails(&slice, true);
    // Trim from the front: keep the shortest tail that still fails.
    let (mut keep_from, mut drop_from) = (0, slice.len());
    while drop_from - keep_from > 1 {
        let middle = keep_from + (drop_from - keep_from) / 2;
        if shrinker.fails(&slice[middle..], any_state) {
            keep_from = middle;
        } else {
            drop_from = middle;
        }
    }
    let slice = ddmin(slice[keep_from..].to_vec(), &mut |candidate| shrinker.fails(candidate, any_state));

    let next_operation = ops.get(linearizable_count).map(|&index| history[index].clone());
    Violation {
        key: partition.key.clone(),
        partition_operations: ops.len(),
        slice: slice.iter().map(|&index| history[index].clone()).collect(),
        slice_from_any_state: any_state,
        prefix: shrinker.cut(ops, linearizable_count),
        next_operation,
        shrink_incomplete: shrinker.incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_a_one_minimal_subset() {
        // Fails while both 3 and 7 are present.
        let mut fails = |items: &[usize]| items.contains(&3) && items.contains(&7);
        assert_eq!(ddmin((0..20).collect(), &mut fails), vec![3, 7]);
        let mut always = |_: &[usize]| true;
        assert_eq!(ddmin((0..5).collect(), &mut always).len(), 1);
    }
}
