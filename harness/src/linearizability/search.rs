//! The search for a linearization of one partition: Wing & Gong's
//! backtracking over the history's call and return events, with Lowe's
//! memo of configurations already explored.
//!
//! The events sit in a doubly linked list sorted by time (calls before
//! returns at equal times). The search walks it from the head: at a call it
//! tries to apply that operation to the model state; if the model accepts
//! and the resulting configuration (the set of operations linearized so far
//! and the state) is new, it *lifts* the operation's two events out of the
//! list and starts again from the head. Reaching a return means that
//! operation should already have been linearized, so it backtracks: pops the
//! last choice, puts its events back (*unlift*) and tries the next call.
//! Indeterminate operations return at +infinity, so they never block the
//! walk; the search succeeds once every determinate operation is
//! linearized (the indeterminate ones left may never have taken effect).
//!
//! Configurations are remembered in a hash set keyed by the bitset of
//! linearized operations and the state, with an incrementally maintained
//! hash of the bitset and full equality checked on a hash hit.
//!
//! This module knows one partition at a time and nothing about files,
//! threads, keys or reports. It is bounded by steps, by memory, by a wall
//! clock deadline and by an abandon flag, and says which bound it hit.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::model::Model;

/// One operation as the search sees it: borrowed, with the completion folded
/// into `output` (`None` = indeterminate).
pub(crate) struct SearchOp<'a, M: Model> {
    pub call: u64,
    /// Ignored when `output` is `None`.
    pub ret: u64,
    pub input: &'a M::Input,
    pub output: Option<&'a M::Output>,
}

impl<M: Model> Clone for SearchOp<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: Model> Copy for SearchOp<'_, M> {}

/// The bounds of one search.
pub(crate) struct Budget<'a> {
    pub steps_max: u64,
    /// Bytes the memo may hold (bitsets and states, roughly).
    pub memo_bytes_max: usize,
    pub deadline: Instant,
    /// `(lowest, index)`: give up once `lowest` (another thread's lowest
    /// violating partition) drops below `index`, this search's partition,
    /// whose answer then no longer matters.
    pub abandon_below: Option<(&'a AtomicUsize, usize)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Linearizable,
    NotLinearizable,
    /// A bound was reached first; the reason says which.
    Unknown(Exhausted),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exhausted {
    Steps(u64),
    Memory(usize),
    WallClock,
    Abandoned,
}

const HEAD: usize = 0;
/// How often (in steps) the wall clock and the abandon flag are read: often
/// enough to stop within about a millisecond, rarely enough to cost nothing.
const CLOCK_EVERY: u64 = 1 << 12;

/// A choice on the search stack: operation `op` was linearized from `state`
/// by its `choice`-th possible effect.
struct Frame<S> {
    op: usize,
    state: S,
    choice: usize,
}

/// The event list: node 0 is the head, nodes 1..=2n the events in time
/// order, node 2n+1 the tail.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each event node.
    op: Vec<usize>,
    is_call: Vec<bool>,
    call_node: Vec<usize>,
    return_node: Vec<usize>,
}

impl Events {
    fn new<M: Model>(ops: &[SearchOp<'_, M>]) -> Events {
        // (time, rank, operation): calls (0) before returns (1) at equal
        // times, and indeterminate returns (2) after everything.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            events.push((op.call, 0, index));
            match op.output {
                Some(_) => {
                    assert!(
                        op.ret >= op.call,
                        "operation {index} returns at {} before its call at {}",
                        op.ret,
                        op.call
                    );
                    events.push((op.ret, 1, index));
                }
                None => events.push((u64::MAX, 2, index)),
            }
        }
        events.sort_unstable();
        let nodes = events.len() + 2;
        let mut list = Events {
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|node| node.wrapping_sub(1)).collect(),
            op: vec![usize::MAX; nodes],
            is_call: vec![false; nodes],
            call_node: vec![0; ops.len()],
            return_node: vec![0; ops.len()],
        };
        for (position, &(_, rank, index)) in events.iter().enumerate() {
            let node = position + 1;
            list.op[node] = index;
            list.is_call[node] = rank == 0;
            if rank == 0 {
                list.call_node[index] = node;
            } else {
                list.return_node[index] = node;
            }
        }
        list
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Undoes `unlink(node)`; valid only in the reverse order of the unlinks.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.return_node[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(self.return_node[op]);
        self.relink(self.call_node[op]);
    }
}

/// A multiply-rotate hasher (the FxHash recipe): the memo hashes small
/// states millions of times, where SipHash's resistance to chosen keys buys
/// nothing (the keys come from a history, not an attacker).
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_i64(&mut self, word: i64) {
        self.write_u64(word as u64);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// splitmix64's finalizer: spreads every input bit over the output, so that
/// XORs of these values (the bitset's hash) and the table's bucket bits are
/// well mixed.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The Zobrist value of operation `op`: the bitset's hash is the XOR of the
/// values of its members, updated in O(1) when a bit flips.
fn zobrist(op: usize) -> u64 {
    mix((op as u64).wrapping_add(0x9e37_79b9_7f4a_7c15))
}

fn state_hash<S: Hash>(state: &S) -> u64 {
    let mut hasher = FastHasher::default();
    state.hash(&mut hasher);
    hasher.finish()
}

/// A configuration seen: which operations are linearized and the state.
/// Hashes as its precomputed `hash`.
struct Seen<S> {
    hash: u64,
    bits: Box<[u64]>,
    state: S,
}

impl<S> Hash for Seen<S> {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        hasher.write_u64(self.hash);
    }
}

impl<S: Eq> PartialEq for Seen<S> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.bits == other.bits && self.state == other.state
    }
}

impl<S: Eq> Eq for Seen<S> {}

/// Passes the precomputed hash through.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("Seen hashes as one u64");
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Lowe's memo. Only ever asked "is this configuration new?" and never
/// iterated, so std's HashSet cannot leak its order into any result.
#[allow(clippy::disallowed_types)]
type MemoSet<S> = std::collections::HashSet<Seen<S>, BuildHasherDefault<Identity>>;

/// Adds the configuration (`bits`, `state`) to the memo; false if it was
/// already there.
fn remember<S: Hash + Eq + Clone>(memo: &mut MemoSet<S>, bits: &[u64], bits_hash: u64, state: &S) -> bool {
    let hash = mix(bits_hash ^ state_hash(state).rotate_left(32));
    memo.insert(Seen { hash, bits: bits.into(), state: state.clone() })
}

/// Searches for a linearization of `ops` from any of `inits`.
///
/// The initial states share one memo: a configuration (operations
/// linearized, state) fails or succeeds the same way however it was reached,
/// so after a first write the searches from different initial states meet
/// and the later ones end almost at once.
pub(crate) fn search<M: Model>(model: &M, inits: &[M::State], ops: &[SearchOp<'_, M>], budget: &Budget) -> Outcome {
    let mut events = Events::new(ops);
    let tail = events.next.len() - 1;
    let words = ops.len().div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut memo: MemoSet<M::State> = MemoSet::default();
    let entry_bytes = words * 8 + std::mem::size_of::<Seen<M::State>>() + 16;
    let mut steps = 0u64;
    let determinate = ops.iter().filter(|op| op.output.is_some()).count();
    for init in inits {
        if !remember(&mut memo, &bits, 0, init) {
            // The same initial state twice.
            continue;
        }
        let mut bits_hash = 0u64;
        let mut stack: Vec<Frame<M::State>> = Vec::new();
        let mut state = init.clone();
        let mut node = events.next[HEAD];
        let mut first_choice = 0usize;
        // Determinate operations not yet linearized: at zero, the rest are
        // indeterminate, which may all be left out.
        let mut left = determinate;
        loop {
            if left == 0 {
                return Outcome::Linearizable;
            }
            steps += 1;
            if steps > budget.steps_max {
                return Outcome::Unknown(Exhausted::Steps(budget.steps_max));
            }
            if steps.is_multiple_of(CLOCK_EVERY) {
                if budget.abandon_below.is_some_and(|(lowest, index)| lowest.load(Ordering::Relaxed) < index) {
                    return Outcome::Unknown(Exhausted::Abandoned);
                }
                // The checker's own wall-clock budget, outside any simulation.
                #[allow(clippy::disallowed_methods)]
                let now = Instant::now();
                if now >= budget.deadline {
                    return Outcome::Unknown(Exhausted::WallClock);
                }
            }
            debug_assert!(node != tail, "every call is followed by its return");
            let op = events.op[node];
            if events.is_call[node] {
                let this = &ops[op];
                let word = op / 64;
                let bit = 1u64 << (op % 64);
                let linearized_hash = bits_hash ^ zobrist(op);
                // Try the operation's possible next states from
                // `first_choice` on (nonzero when resuming after a backtrack).
                let mut chosen = None;
                bits[word] |= bit;
                match this.output {
                    Some(output) => {
                        if first_choice == 0 {
                            if let Some(next_state) = model.step(&state, this.input, output) {
                                if remember(&mut memo, &bits, linearized_hash, &next_state) {
                                    chosen = Some((0, next_state));
                                }
                            }
                        }
                    }
                    None => {
                        let effects = model.step_indeterminate(&state, this.input);
                        for (choice, next_state) in effects.into_iter().enumerate().skip(first_choice) {
                            if remember(&mut memo, &bits, linearized_hash, &next_state) {
                                chosen = Some((choice, next_state));
                                break;
                            }
                        }
                    }
                }
                first_choice = 0;
                match chosen {
                    Some((choice, next_state)) => {
                        if memo.len().saturating_mul(entry_bytes) > budget.memo_bytes_max {
                            let outcome = Outcome::Unknown(Exhausted::Memory(budget.memo_bytes_max));
                            return outcome;
                        }
                        bits_hash = linearized_hash;
                        left -= usize::from(this.output.is_some());
                        stack.push(Frame { op, state: std::mem::replace(&mut state, next_state), choice });
                        events.lift(op);
                        node = events.next[HEAD];
                    }
                    None => {
                        bits[word] &= !bit;
                        node = events.next[node];
                    }
                }
            } else {
                // The return of an operation not yet linearized: every
                // linearization of this prefix is exhausted; undo the last
                // choice. An empty stack means this initial state fails.
                let Some(frame) = stack.pop() else {
                    break;
                };
                events.unlift(frame.op);
                left += usize::from(ops[frame.op].output.is_some());
                bits[frame.op / 64] &= !(1u64 << (frame.op % 64));
                bits_hash ^= zobrist(frame.op);
                state = frame.state;
                node = events.call_node[frame.op];
                first_choice = frame.choice + 1;
            }
        }
        debug_assert!(bits.iter().all(|&word| word == 0), "a failed start leaves nothing linearized");
    }
    Outcome::NotLinearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::model::{Register, RegisterInput as In, RegisterOutput as Out};
    use std::time::Duration;

    fn budget(steps_max: u64) -> Budget<'static> {
        // Test code: a generous deadline on the real clock.
        #[allow(clippy::disallowed_methods)]
        let deadline = Instant::now() + Duration::from_secs(60);
        Budget { steps_max, memo_bytes_max: 1 << 30, deadline, abandon_below: None }
    }

    fn run(ops: &[(u64, u64, In, Option<Out>)]) -> Outcome {
        let search_ops: Vec<SearchOp<'_, Register>> = ops
            .iter()
            .map(|(call, ret, input, output)| SearchOp { call: *call, ret: *ret, input, output: output.as_ref() })
            .collect();
        search(&Register { initial: None }, &[None], &search_ops, &budget(1_000_000))
    }

    #[test]
    fn sequential_and_concurrent_orders() {
        // w1 then r1: fine.
        assert_eq!(
            run(&[(0, 1, In::Write(1), Some(Out::Write)), (2, 3, In::Read, Some(Out::Read(Some(1))))]),
            Outcome::Linearizable
        );
        // r1 entirely before w1: impossible.
        assert_eq!(
            run(&[(2, 3, In::Write(1), Some(Out::Write)), (0, 1, In::Read, Some(Out::Read(Some(1))))]),
            Outcome::NotLinearizable
        );
        // A read ending exactly when the write starts counts as concurrent.
        assert_eq!(
            run(&[(1, 3, In::Write(1), Some(Out::Write)), (0, 1, In::Read, Some(Out::Read(Some(1))))]),
            Outcome::Linearizable
        );
    }

    #[test]
    fn backtracking_tries_the_other_effect_of_an_indeterminate_op() {
        // An indeterminate write of 2 is needed after w1 for the read of 2.
        let ops = [
            (0, 0, In::Write(2), None),
            (1, 2, In::Write(1), Some(Out::Write)),
            (3, 4, In::Read, Some(Out::Read(Some(2)))),
        ];
        assert_eq!(run(&ops), Outcome::Linearizable);
        // ... and must not be needed when the read sees 1.
        let ops = [
            (0, 0, In::Write(2), None),
            (1, 2, In::Write(1), Some(Out::Write)),
            (3, 4, In::Read, Some(Out::Read(Some(1)))),
        ];
        assert_eq!(run(&ops), Outcome::Linearizable);
    }

    #[test]
    fn the_step_budget_is_a_bound() {
        let ops: Vec<(u64, u64, In, Option<Out>)> = (0..30)
            .map(|i| (i, 0, In::Write(i as i64), None))
            .chain([(100, 101, In::Read, Some(Out::Read(Some(-1))))])
            .collect();
        let search_ops: Vec<SearchOp<'_, Register>> = ops
            .iter()
            .map(|(call, ret, input, output)| SearchOp { call: *call, ret: *ret, input, output: output.as_ref() })
            .collect();
        let outcome = search(&Register { initial: None }, &[None], &search_ops, &budget(10_000));
        assert_eq!(outcome, Outcome::Unknown(Exhausted::Steps(10_000)));
    }
}
