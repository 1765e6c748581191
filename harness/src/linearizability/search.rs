//! The search for a linearization of one partition: Wing & Gong's
//! backtracking over the history's call and return events, with Lowe's
//! memo of configurations already explored.
//!
//! The events sit in a doubly linked list sorted by time (calls before
//! returns at equal times). In each configuration the candidates are the
//! calls before the first return: operations that may take effect next. The
//! search applies one to the model state; if the model accepts and the
//! resulting configuration (the operations linearized so far and the state)
//! is new, it *lifts* the operation's two events out of the list and goes
//! on. When no candidate is left it backtracks: pops the last choice, puts
//! its events back (*unlift*) and tries the next candidate. Indeterminate
//! operations return at +infinity, so they never block; the search succeeds
//! once every determinate operation is linearized (the indeterminate ones
//! left may never have taken effect).
//!
//! Two reductions on top, both sound and both held against a brute-force
//! reference in the tests: an applicable read is linearized at once and
//! alone (no alternatives), and a configuration that differs from one seen
//! only by having more indeterminate operations linearized is skipped.
//!
//! The memo is keyed by the determinate operations linearized (a Zobrist
//! hash kept up to date as bits flip, and a compact copy of the bitset) and
//! the state, with full equality checked on a hash hit.
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

/// A choice on the search stack: operation `op` was linearized from
/// `state`. A `forced` choice was an applicable read, taken without trying
/// alternatives, so backtracking past it exhausts the configuration it was
/// taken in; otherwise the search resumes that configuration's candidates
/// at `position`, with the effect after `choice`.
struct Frame<S> {
    op: usize,
    state: S,
    forced: bool,
    position: usize,
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

/// A configuration seen, less its indeterminate operations: which
/// determinate operations are linearized and the state. Hashes as its
/// precomputed `hash`.
struct Seen<S> {
    hash: u64,
    determinate: Box<[u64]>,
    state: S,
}

impl<S> Hash for Seen<S> {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        hasher.write_u64(self.hash);
    }
}

impl<S: Eq> PartialEq for Seen<S> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.determinate == other.determinate && self.state == other.state
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

/// Lowe's memo, with dominance for indeterminate operations: for each
/// (determinate operations linearized, state) seen, the sets of
/// indeterminate operations linearized with it. Only ever asked "is this
/// configuration new?" and never iterated, so std's HashMap cannot leak its
/// order into any result.
#[allow(clippy::disallowed_types)]
type Memo<S> = std::collections::HashMap<Seen<S>, Vec<Box<[u64]>>, BuildHasherDefault<Identity>>;

/// The operations linearized so far, determinate and indeterminate apart,
/// each numbered densely, with a Zobrist hash of the determinate ones.
struct Linearized {
    determinate: Vec<u64>,
    indeterminate: Vec<u64>,
    hash: u64,
    /// Each operation's number among its kind.
    number: Vec<usize>,
    is_determinate: Vec<bool>,
    /// The first word of `determinate` not all ones: the search works
    /// through a history roughly in time order, so the words below it are
    /// the same in every configuration near the current one.
    low_word: usize,
    /// No word of `determinate` above this one has a bit set.
    high_word: usize,
}

impl Linearized {
    fn flip(&mut self, op: usize) {
        let number = self.number[op];
        let (word, bit) = (number / 64, 1u64 << (number % 64));
        if self.is_determinate[op] {
            self.determinate[word] ^= bit;
            self.hash ^= zobrist(op);
            if self.determinate[word] & bit == 0 {
                self.low_word = self.low_word.min(word);
            } else {
                self.high_word = self.high_word.max(word);
                while self.low_word < self.determinate.len() && self.determinate[self.low_word] == u64::MAX {
                    self.low_word += 1;
                }
            }
        } else {
            self.indeterminate[word] ^= bit;
        }
    }

    /// The determinate set in a compact form that is equal exactly when the
    /// sets are: the count of leading all-ones words, then the words from
    /// there to the last nonzero one. Long histories keep memo entries small.
    fn determinate_key(&self) -> Box<[u64]> {
        let mut high = self.high_word.min(self.determinate.len().saturating_sub(1));
        while high > self.low_word && self.determinate[high] == 0 {
            high -= 1;
        }
        let words = self.determinate.get(self.low_word..=high).unwrap_or(&[]);
        std::iter::once(self.low_word as u64).chain(words.iter().copied()).collect()
    }
}

fn subset(small: &[u64], large: &[u64]) -> bool {
    small.iter().zip(large).all(|(a, b)| a & !b == 0)
}

/// Records the configuration (`linearized`, `state`); false when it was
/// seen before or is dominated: seen with the same determinate operations
/// and state but a subset of these indeterminate ones. A dominated
/// configuration can succeed only where the dominating one can (it merely
/// has fewer optional operations left), and that one has failed or is an
/// ancestor still exploring its alternatives.
fn remember<S: Hash + Eq + Clone>(memo: &mut Memo<S>, linearized: &Linearized, state: &S, bytes: &mut usize) -> bool {
    let hash = mix(linearized.hash ^ state_hash(state).rotate_left(32));
    let key = Seen { hash, determinate: linearized.determinate_key(), state: state.clone() };
    let key_bytes = key.determinate.len() * 8;
    let set_bytes = linearized.indeterminate.len() * 8 + std::mem::size_of::<Box<[u64]>>();
    match memo.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut seen) => {
            if seen.get().iter().any(|earlier| subset(earlier, &linearized.indeterminate)) {
                return false;
            }
            seen.get_mut().push(linearized.indeterminate.as_slice().into());
            *bytes += set_bytes;
        }
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(vec![linearized.indeterminate.as_slice().into()]);
            // The entry, its key's words, its one set, and the table's slack.
            *bytes += std::mem::size_of::<(Seen<S>, Vec<Box<[u64]>>)>() * 2 + key_bytes + set_bytes;
        }
    }
    true
}

/// Searches for a linearization of `ops` from any of `inits`.
///
/// At each configuration the candidates are the calls before the first
/// return in the event list. An applicable read goes first and alone:
/// moving an operation that never changes the state to the earliest point
/// it may take effect breaks no linearization, so no alternative needs
/// trying. Otherwise the other operations are tried in call order,
/// indeterminate ones among them. (Trying indeterminate operations last
/// was measured and lost: a read that needs a timed-out write's value then
/// explores every order of the determinate writes first.)
///
/// The initial states share one memo: a configuration fails or succeeds the
/// same way however it was reached, so after a first write the searches
/// from different initial states meet and the later ones end almost at once.
// Wing & Gong's loop (linearize, lift, backtrack) with its memo and budget
// checks is one state machine: cut into functions, its invariants would be
// spread over their arguments. Hence its length.
#[allow(clippy::too_many_lines)]
pub(crate) fn search<M: Model>(model: &M, inits: &[M::State], ops: &[SearchOp<'_, M>], budget: &Budget) -> Outcome {
    let mut events = Events::new(ops);
    let tail = events.next.len() - 1;
    let read_only: Vec<bool> = ops.iter().map(|op| model.is_read_only(op.input)).collect();
    let is_determinate: Vec<bool> = ops.iter().map(|op| op.output.is_some()).collect();
    let (mut determinate_count, mut indeterminate_count) = (0, 0);
    let number: Vec<usize> = is_determinate
        .iter()
        .map(|&determinate| {
            let counter = if determinate { &mut determinate_count } else { &mut indeterminate_count };
            *counter += 1;
            *counter - 1
        })
        .collect();
    let mut linearized = Linearized {
        determinate: vec![0; determinate_count.div_ceil(64)],
        indeterminate: vec![0; indeterminate_count.div_ceil(64)],
        hash: 0,
        number,
        is_determinate,
        low_word: 0,
        high_word: 0,
    };
    let mut memo: Memo<M::State> = Memo::default();
    let mut memo_bytes = 0usize;
    let mut steps = 0u64;
    let mut clock_check_at = CLOCK_EVERY;
    let mut candidates: Vec<usize> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    for init in inits {
        if !remember(&mut memo, &linearized, init, &mut memo_bytes) {
            // The same initial state twice.
            continue;
        }
        let mut stack: Vec<Frame<M::State>> = Vec::new();
        let mut state = init.clone();
        // Determinate operations not yet linearized: at zero, the rest are
        // indeterminate, which may all be left out.
        let mut left = determinate_count;
        // Where to resume the current configuration's candidates after a
        // backtrack; `None` for a configuration just entered.
        let mut resume: Option<(usize, usize)> = None;
        'configurations: loop {
            if left == 0 {
                return Outcome::Linearizable;
            }
            if steps > budget.steps_max {
                return Outcome::Unknown(Exhausted::Steps(budget.steps_max));
            }
            if steps >= clock_check_at {
                clock_check_at = steps + CLOCK_EVERY;
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
            if memo_bytes > budget.memo_bytes_max {
                return Outcome::Unknown(Exhausted::Memory(budget.memo_bytes_max));
            }
            steps += 1;
            candidates.clear();
            let mut node = events.next[HEAD];
            while node != tail && events.is_call[node] {
                candidates.push(events.op[node]);
                node = events.next[node];
            }
            let mut exhausted = false;
            if resume.is_none() {
                let applicable_read = candidates.iter().find_map(|&op| {
                    let output = ops[op].output.filter(|_| read_only[op])?;
                    model.step(&state, ops[op].input, output).map(|next_state| (op, next_state))
                });
                if let Some((op, next_state)) = applicable_read {
                    steps += 1;
                    linearized.flip(op);
                    if remember(&mut memo, &linearized, &next_state, &mut memo_bytes) {
                        let state = std::mem::replace(&mut state, next_state);
                        stack.push(Frame { op, state, forced: true, position: 0, choice: 0 });
                        events.lift(op);
                        left -= 1;
                        continue 'configurations;
                    }
                    linearized.flip(op);
                    // Its only successor was seen: this configuration fails.
                    exhausted = true;
                }
            }
            if !exhausted {
                order.clear();
                order.extend(candidates.iter().filter(|&&op| ops[op].output.is_none() || !read_only[op]));
                let (first_position, first_choice) = resume.take().unwrap_or((0, 0));
                for (position, &op) in order.iter().enumerate().skip(first_position) {
                    let skip = if position == first_position { first_choice } else { 0 };
                    let this = &ops[op];
                    let effects: Vec<M::State> = match this.output {
                        Some(output) => model.step(&state, this.input, output).into_iter().collect(),
                        None => model.step_indeterminate(&state, this.input),
                    };
                    linearized.flip(op);
                    for (choice, next_state) in effects.into_iter().enumerate().skip(skip) {
                        steps += 1;
                        if remember(&mut memo, &linearized, &next_state, &mut memo_bytes) {
                            let state = std::mem::replace(&mut state, next_state);
                            stack.push(Frame { op, state, forced: false, position, choice });
                            events.lift(op);
                            left -= usize::from(this.output.is_some());
                            continue 'configurations;
                        }
                    }
                    linearized.flip(op);
                }
            }
            // Every candidate is exhausted: undo choices until one has an
            // alternative left. An empty stack means this initial state fails.
            loop {
                let Some(frame) = stack.pop() else {
                    break 'configurations;
                };
                events.unlift(frame.op);
                linearized.flip(frame.op);
                left += usize::from(ops[frame.op].output.is_some());
                state = frame.state;
                if !frame.forced {
                    resume = Some((frame.position, frame.choice + 1));
                    continue 'configurations;
                }
            }
        }
        debug_assert!(linearized.determinate.iter().chain(&linearized.indeterminate).all(|&word| word == 0));
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
