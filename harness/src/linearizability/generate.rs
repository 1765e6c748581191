//! Realistic random histories for tests and the speed table: clients issue
//! reads, writes and compare-and-sets on keys chosen uniformly or by a Zipf
//! law; each operation takes effect at a random instant inside its interval
//! on a real sequential map, so the history is linearizable by construction;
//! a share of operations time out (indeterminate, and half of those never
//! took effect); optionally one read is corrupted into a definite violation.
//!
//! Every value written is unique, which makes a planted stale read a
//! violation in every possible order, not just the generated one. Seeded:
//! the same shape gives the same history. Nothing here checks anything.

use std::fmt::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

use super::model::{KvInput, RegisterInput, RegisterOutput};
use super::operation::{Completion, Operation};

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Skew {
    /// Every key equally likely.
    Uniform,
    /// Zipf with this exponent (1.0: the hottest of 100 keys gets ~19% of
    /// the operations).
    Zipf(f64),
}

/// The shape of a generated history.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Distinct keys, at least 1.
    pub keys: usize,
    /// How operations pick their key.
    pub skew: Skew,
    /// Clients issuing operations concurrently, at least 1. A client whose
    /// operation times out continues as a new process (as Jepsen does).
    pub clients: usize,
    /// Operations generated in all, indeterminate ones included.
    pub ops: usize,
    /// Share (0 to 1) of operations that time out.
    pub indeterminate_share: f64,
    /// Plant one violation: a read in the second half returns a value that
    /// was definitely overwritten before the read began (or, failing such a
    /// pair of writes, a value never written).
    pub violation: bool,
    /// Seeds the generator: one shape and seed give one history.
    pub seed: u64,
}

/// A generated key-value history.
#[derive(Clone, Debug)]
pub struct Generated {
    /// In call order.
    pub ops: Vec<Operation<KvInput, RegisterOutput>>,
    /// The index in `ops` of the corrupted read, when one was planted.
    pub planted: Option<usize>,
}

/// Time units between a client's operations: 0 to this.
const GAP_MAX: u64 = 20;
/// An operation's duration: 1 to this.
const DURATION_MAX: u64 = 60;

struct Draft {
    client: u64,
    call: u64,
    ret: u64,
    /// When it takes effect (if it does).
    at: u64,
    key: usize,
    /// 0 read, 1 write, 2 cas.
    kind: u8,
    indeterminate: bool,
    takes_effect: bool,
}

/// Generates a key-value history of `shape`.
// One simulated sequential execution, step by step: its clock, its clients'
// states and the planted violation share every line, so it stays one piece.
#[allow(clippy::too_many_lines)]
pub fn kv_history(shape: &Shape) -> Generated {
    assert!(shape.keys >= 1 && shape.clients >= 1, "a history needs a key and a client");
    assert!((0.0..=1.0).contains(&shape.indeterminate_share), "a share is between 0 and 1");
    let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
    let zipf = match shape.skew {
        Skew::Zipf(exponent) => Some(Zipf::new(shape.keys as f64, exponent).expect("a valid Zipf exponent")),
        Skew::Uniform => None,
    };
    // Real-time structure first: each client's operations back to back.
    let mut free_at: Vec<u64> = vec![0; shape.clients];
    let mut process: Vec<u64> = (0..shape.clients as u64).collect();
    let mut drafts = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        let client = (0..shape.clients).min_by_key(|&c| (free_at[c], c)).expect("at least one client");
        let call = free_at[client] + rng.random_range(0..=GAP_MAX);
        let ret = call + rng.random_range(1..=DURATION_MAX);
        let key = match &zipf {
            Some(zipf) => (zipf.sample(&mut rng) as usize).clamp(1, shape.keys) - 1,
            None => rng.random_range(0..shape.keys),
        };
        let roll: f64 = rng.random();
        let kind = if roll < 0.5 {
            0
        } else if roll < 0.85 {
            1
        } else {
            2
        };
        let indeterminate = rng.random_bool(shape.indeterminate_share);
        // A timed-out request may still take effect after the client gave
        // up, or never.
        let (at, takes_effect) = if indeterminate {
            (rng.random_range(call..=ret + (ret - call)), rng.random_bool(0.5))
        } else {
            (rng.random_range(call..=ret), true)
        };
        drafts.push(Draft { client: process[client], call, ret, at, key, kind, indeterminate, takes_effect });
        free_at[client] = ret;
        if indeterminate {
            process[client] += shape.clients as u64;
        }
    }

    // Then the effects, in the order of their instants, on a real map.
    let mut order: Vec<usize> = (0..drafts.len()).collect();
    order.sort_by_key(|&index| (drafts[index].at, index));
    let mut values: Vec<Option<i64>> = vec![None; shape.keys];
    let mut written: Vec<Vec<i64>> = vec![Vec::new(); shape.keys];
    let mut next_value = 1i64;
    let mut ops: Vec<Option<Operation<KvInput, RegisterOutput>>> = (0..drafts.len()).map(|_| None).collect();
    for index in order {
        let draft = &drafts[index];
        let current = values[draft.key];
        let (input, output) = match draft.kind {
            0 => (RegisterInput::Read, RegisterOutput::Read(current)),
            1 => {
                let value = next_value;
                next_value += 1;
                if draft.takes_effect {
                    values[draft.key] = Some(value);
                    written[draft.key].push(value);
                }
                (RegisterInput::Write(value), RegisterOutput::Write)
            }
            _ => {
                let new = next_value;
                next_value += 1;
                let old = match current {
                    Some(value) if rng.random_bool(0.6) => value,
                    _ if !written[draft.key].is_empty() => {
                        written[draft.key][rng.random_range(0..written[draft.key].len())]
                    }
                    _ => 0,
                };
                let matched = current == Some(old);
                if matched && draft.takes_effect {
                    values[draft.key] = Some(new);
                    written[draft.key].push(new);
                }
                (RegisterInput::Cas { old, new }, RegisterOutput::Cas(matched))
            }
        };
        let input = KvInput { key: format!("k{}", draft.key), op: input };
        let completion = if draft.indeterminate {
            Completion::Indeterminate
        } else {
            Completion::Returned { ret: draft.ret, output }
        };
        ops[index] = Some(Operation { client: draft.client, call: draft.call, input, completion });
    }
    let mut ops: Vec<Operation<KvInput, RegisterOutput>> =
        ops.into_iter().map(|op| op.expect("every draft applied")).collect();
    ops.sort_by_key(|op| op.call);
    let planted = if shape.violation { plant(&mut ops, &mut rng) } else { None };
    Generated { ops, planted }
}

/// Is `op` a determinate operation that wrote a value? Which one?
fn wrote(op: &Operation<KvInput, RegisterOutput>) -> Option<i64> {
    match (&op.input.op, &op.completion) {
        (RegisterInput::Write(value), Completion::Returned { .. }) => Some(*value),
        (RegisterInput::Cas { new, .. }, Completion::Returned { output: RegisterOutput::Cas(true), .. }) => Some(*new),
        _ => None,
    }
}

/// Corrupts one completed read in the second half (by call order) into a
/// definite violation; returns its index.
fn plant(ops: &mut [Operation<KvInput, RegisterOutput>], rng: &mut ChaCha8Rng) -> Option<usize> {
    let reads: Vec<usize> = (ops.len() / 2..ops.len())
        .filter(|&index| ops[index].input.op == RegisterInput::Read && ops[index].ret().is_some())
        .collect();
    if reads.is_empty() {
        return None;
    }
    let start = rng.random_range(0..reads.len());
    for &read in reads[start..].iter().chain(&reads[..start]) {
        let (key, call) = (&ops[read].input.key, ops[read].call);
        // The latest definite write that finished before the read began, and
        // the latest definite write that finished before that one began:
        // both precede the read in every order, the first overwrites the
        // second, and values are unique, so reading the second's value is
        // impossible.
        let before = |limit: u64, ops: &[Operation<KvInput, RegisterOutput>]| {
            (0..ops.len())
                .filter(|&i| {
                    &ops[i].input.key == key && wrote(&ops[i]).is_some() && ops[i].ret().is_some_and(|r| r < limit)
                })
                .max_by_key(|&i| (ops[i].ret(), i))
        };
        let Some(newer) = before(call, ops) else { continue };
        let Some(older) = before(ops[newer].call, ops) else { continue };
        let stale = wrote(&ops[older]).expect("a definite write");
        ops[read].completion = Completion::Returned {
            ret: ops[read].ret().expect("completed"),
            output: RegisterOutput::Read(Some(stale)),
        };
        return Some(read);
    }
    let read = reads[start];
    // No such pair of writes: a value nobody wrote (values written are positive).
    ops[read].completion =
        Completion::Returned { ret: ops[read].ret().expect("completed"), output: RegisterOutput::Read(Some(-1)) };
    Some(read)
}

/// The history as Jepsen-style JSON lines (the format `file` reads): each
/// operation's invoke at its call and its completion at its return;
/// a definite compare-and-set mismatch becomes `fail` (it changed nothing),
/// and an indeterminate operation gets its `info` right at its call.
pub fn to_jsonl(ops: &[Operation<KvInput, RegisterOutput>]) -> String {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&index| (ops[index].call, index));
    // (time, line); a stable sort by time keeps each invoke before its
    // completion and a completion before the same process's next invoke.
    let mut events: Vec<(u64, String)> = Vec::with_capacity(ops.len() * 2);
    for index in order {
        let op = &ops[index];
        let (f, invoke_value) = match op.input.op {
            RegisterInput::Read => ("read", "null".to_string()),
            RegisterInput::Write(value) => ("write", value.to_string()),
            RegisterInput::Cas { old, new } => ("cas", format!("[{old},{new}]")),
        };
        let key = serde_json::to_string(&op.input.key).expect("a string serializes");
        let record = |kind: &str, value: &str, time: u64| {
            format!(
                r#"{{"process":{},"type":"{kind}","f":"{f}","key":{key},"value":{value},"time":{time}}}"#,
                op.client
            )
        };
        events.push((op.call, record("invoke", &invoke_value, op.call)));
        match &op.completion {
            Completion::Returned { ret, output } => {
                let (kind, value) = match output {
                    RegisterOutput::Read(value) => ("ok", value.map_or_else(|| "null".to_string(), |v| v.to_string())),
                    RegisterOutput::Write => ("ok", invoke_value.clone()),
                    RegisterOutput::Cas(true) => ("ok", invoke_value.clone()),
                    RegisterOutput::Cas(false) => ("fail", invoke_value.clone()),
                };
                events.push((*ret, record(kind, &value, *ret)));
            }
            Completion::Indeterminate => events.push((op.call, record("info", &invoke_value, op.call))),
            Completion::Failed => events.push((op.call, record("fail", &invoke_value, op.call))),
        }
    }
    events.sort_by_key(|(time, _)| *time);
    let mut out = String::new();
    for (_, line) in events {
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seed: u64) -> Shape {
        Shape { keys: 5, skew: Skew::Zipf(1.0), clients: 4, ops: 200, indeterminate_share: 0.1, violation: true, seed }
    }

    #[test]
    fn the_same_shape_gives_the_same_history() {
        assert_eq!(kv_history(&shape(3)).ops, kv_history(&shape(3)).ops);
        assert_ne!(kv_history(&shape(3)).ops, kv_history(&shape(4)).ops);
    }

    #[test]
    fn a_history_has_the_shape_asked_for() {
        let generated = kv_history(&shape(1));
        assert_eq!(generated.ops.len(), 200);
        let planted = generated.planted.expect("a violation was asked for");
        assert!(planted >= 100 && generated.ops[planted].input.op == RegisterInput::Read);
        let timeouts = generated.ops.iter().filter(|op| op.completion == Completion::Indeterminate).count();
        assert!((5..=40).contains(&timeouts), "about 10% of 200: {timeouts}");
        assert!(generated.ops.windows(2).all(|pair| pair[0].call <= pair[1].call), "call order");
    }
}
