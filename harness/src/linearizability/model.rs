//! Sequential models: what a single correct copy of an object would answer,
//! step by step. The checker asks a model whether an operation with a given
//! input could have returned a given output from a given state, and which
//! states an operation could lead to when its output is unknown.
//!
//! Two models ship: [`Register`] (read, write, compare-and-set on one `i64`
//! register that starts empty or at a chosen value) and [`KeyValue`] (a map
//! of such registers, partitioned by key). A model knows nothing about
//! histories, time or the search; it is a pure function of its state.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A sequential specification the checker holds a history against.
///
/// Each method exists for one reason:
/// - [`init`](Model::init) and [`step`](Model::step) are the specification
///   itself: Wing & Gong's search replays operations through them.
/// - [`step_indeterminate`](Model::step_indeterminate) gives the effect of an
///   operation whose outcome nobody saw (a timeout, a lost connection):
///   without an output, only the model can say what it may have done.
/// - [`is_read_only`](Model::is_read_only) lets the checker drop indeterminate
///   operations that cannot have changed anything, before the search.
/// - [`partition`](Model::partition) names the independent part of the
///   object an operation touches (a key), so that each part is checked alone
///   (P-compositionality: a history is linearizable if and only if each
///   key's sub-history is).
/// - [`initial_states`](Model::initial_states) lets the shrinker ask for a
///   slice that fails from *any* starting state, which keeps slices
///   meaningful after earlier operations are cut away.
/// - [`describe`](Model::describe) and [`describe_key`](Model::describe_key)
///   label operations and partitions in reports.
///
/// States are compared and hashed by the search's memo (Lowe's cache of
/// configurations already explored), so `Hash` must agree with `Eq`, and
/// cheap states make the search fast.
pub trait Model: Sync {
    /// What [`partition`](Model::partition) returns; `()` for a model that
    /// checks its whole history as one part.
    type Key: Ord + Clone + fmt::Debug + Send + Sync;
    /// The object's state between operations (of one partition); the
    /// search's memo hashes and compares it.
    type State: Clone + Eq + Hash + fmt::Debug;
    /// An operation as the client invoked it ("write 3").
    type Input: Clone + fmt::Debug + Send + Sync + Serialize + DeserializeOwned;
    /// What an operation answered ("ok", "read 3").
    type Output: Clone + fmt::Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned;

    /// The model's name as files and the CLI spell it ("register", "kv").
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` answered `output` in `state`, or `None` if a
    /// correct object could not have answered that.
    fn step(&self, state: &Self::State, input: &Self::Input, output: &Self::Output) -> Option<Self::State>;

    /// The states `input` may have led to from `state` if it took effect,
    /// its output unknown. Not taking effect at all needs no entry: the
    /// checker may leave an indeterminate operation out of a linearization.
    /// An empty list means it cannot have taken effect from `state` (a
    /// compare-and-set whose expected value does not match).
    fn step_indeterminate(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State>;

    /// True when `input` never changes the state (a read). An indeterminate
    /// read-only operation is dropped before the search.
    fn is_read_only(&self, input: &Self::Input) -> bool;

    /// The independent part of the object `input` touches.
    fn partition(&self, input: &Self::Input) -> Self::Key;

    /// Starting states that could explain any slice of `operations` (each an
    /// input with its output, `None` when indeterminate), always including
    /// [`init`](Model::init). The shrinker keeps a slice only if it fails from
    /// every one of them; the default, just `init`, makes it keep slices
    /// that fail from the true initial state.
    fn initial_states(&self, operations: &[(&Self::Input, Option<&Self::Output>)]) -> Vec<Self::State> {
        let _ = operations;
        vec![self.init()]
    }

    /// A short label for an operation in a timeline ("w 3", "cas 1->2 ok");
    /// `output` is `None` for an indeterminate operation.
    fn describe(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// A label for a partition in reports.
    fn describe_key(&self, key: &Self::Key) -> String {
        format!("{key:?}")
    }
}

/// An operation on a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterInput {
    /// Reads the value.
    Read,
    /// Writes the value given.
    Write(i64),
    /// Sets `new` if the register holds `old`.
    Cas {
        /// The value the register must hold for the write to happen.
        old: i64,
        /// The value written when it does.
        new: i64,
    },
}

/// What a register answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutput {
    /// The value read; `None` for a register never written.
    Read(Option<i64>),
    /// The write was acknowledged.
    Write,
    /// Whether the compare-and-set matched and wrote. A definite `false`
    /// (the system said "no match") constrains the history; an operation
    /// that definitely did not happen for another reason is left out of the
    /// history instead.
    Cas(bool),
}

/// A single register of `i64`, read, written and compared-and-set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Register {
    /// The value before any write; `None` reads as nil.
    pub initial: Option<i64>,
}

/// The register's transition function, shared by [`Register`] and [`KeyValue`].
fn register_step(state: Option<i64>, input: RegisterInput, output: RegisterOutput) -> Option<Option<i64>> {
    match (input, output) {
        (RegisterInput::Read, RegisterOutput::Read(value)) => (value == state).then_some(state),
        (RegisterInput::Write(value), RegisterOutput::Write) => Some(Some(value)),
        (RegisterInput::Cas { old, new }, RegisterOutput::Cas(true)) => (state == Some(old)).then_some(Some(new)),
        (RegisterInput::Cas { old, .. }, RegisterOutput::Cas(false)) => (state != Some(old)).then_some(state),
        // An output of another kind than its input: no correct register answers that.
        _ => None,
    }
}

fn register_step_indeterminate(state: Option<i64>, input: RegisterInput) -> Vec<Option<i64>> {
    match input {
        RegisterInput::Read => vec![state],
        RegisterInput::Write(value) => vec![Some(value)],
        RegisterInput::Cas { old, new } if state == Some(old) => vec![Some(new)],
        // A mismatched compare-and-set changes nothing: the same as not
        // taking effect, which the checker already allows.
        RegisterInput::Cas { .. } => Vec::new(),
    }
}

/// nil, every value the operations mention, and one they do not: any other
/// starting value behaves like that one (no read can return it, no
/// compare-and-set can match it).
fn register_initial_states<'a>(
    init: Option<i64>,
    operations: impl Iterator<Item = (RegisterInput, Option<RegisterOutput>)> + 'a,
) -> Vec<Option<i64>> {
    let mut values = BTreeSet::new();
    for (input, output) in operations {
        match input {
            RegisterInput::Read => {}
            RegisterInput::Write(value) => {
                values.insert(value);
            }
            RegisterInput::Cas { old, new } => {
                values.insert(old);
                values.insert(new);
            }
        }
        if let Some(RegisterOutput::Read(Some(value))) = output {
            values.insert(value);
        }
    }
    let unmentioned = values.last().map_or(0, |max| max.wrapping_add(1));
    let mut states = vec![init];
    for candidate in std::iter::once(None).chain(values.into_iter().map(Some)).chain([Some(unmentioned)]) {
        if !states.contains(&candidate) {
            states.push(candidate);
        }
    }
    states
}

fn value_label(value: Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

fn register_label(input: RegisterInput, output: Option<RegisterOutput>) -> String {
    match (input, output) {
        (RegisterInput::Read, Some(RegisterOutput::Read(value))) => format!("r {}", value_label(value)),
        (RegisterInput::Read, _) => "r ?".to_string(),
        (RegisterInput::Write(value), _) => format!("w {value}"),
        (RegisterInput::Cas { old, new }, output) => {
            let result = match output {
                Some(RegisterOutput::Cas(true)) => "ok",
                Some(RegisterOutput::Cas(false)) => "no",
                _ => "?",
            };
            format!("cas {old}->{new} {result}")
        }
    }
}

impl Model for Register {
    type Key = ();
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn name(&self) -> &'static str {
        "register"
    }

    fn init(&self) -> Option<i64> {
        self.initial
    }

    fn step(&self, state: &Option<i64>, input: &RegisterInput, output: &RegisterOutput) -> Option<Option<i64>> {
        register_step(*state, *input, *output)
    }

    fn step_indeterminate(&self, state: &Option<i64>, input: &RegisterInput) -> Vec<Option<i64>> {
        register_step_indeterminate(*state, *input)
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read)
    }

    fn partition(&self, _input: &RegisterInput) {}

    fn initial_states(&self, operations: &[(&RegisterInput, Option<&RegisterOutput>)]) -> Vec<Option<i64>> {
        register_initial_states(self.initial, operations.iter().map(|(input, output)| (**input, output.copied())))
    }

    fn describe(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        register_label(*input, output.copied())
    }

    fn describe_key(&self, _key: &()) -> String {
        "the register".to_string()
    }
}

/// An operation on one key of a [`KeyValue`] map: a register operation
/// (read = get, write = put, compare-and-set) on the key's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvInput {
    /// The key whose register the operation acts on.
    pub key: String,
    /// The operation on that key's register.
    pub op: RegisterInput,
}

/// A map from string keys to `i64` registers, every key initially nil. Keys
/// are independent, so the model partitions by key and its state is the one
/// key's value: the checker always splits a history by key before the search
/// (a state covering the whole map would hash and clone far more for nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyValue;

impl Model for KeyValue {
    type Key = String;
    type State = Option<i64>;
    type Input = KvInput;
    type Output = RegisterOutput;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, state: &Option<i64>, input: &KvInput, output: &RegisterOutput) -> Option<Option<i64>> {
        register_step(*state, input.op, *output)
    }

    fn step_indeterminate(&self, state: &Option<i64>, input: &KvInput) -> Vec<Option<i64>> {
        register_step_indeterminate(*state, input.op)
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        matches!(input.op, RegisterInput::Read)
    }

    fn partition(&self, input: &KvInput) -> String {
        input.key.clone()
    }

    fn initial_states(&self, operations: &[(&KvInput, Option<&RegisterOutput>)]) -> Vec<Option<i64>> {
        register_initial_states(None, operations.iter().map(|(input, output)| (input.op, output.copied())))
    }

    fn describe(&self, input: &KvInput, output: Option<&RegisterOutput>) -> String {
        format!("{} {}", input.key, register_label(input.op, output.copied()))
    }

    fn describe_key(&self, key: &String) -> String {
        format!("key {key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Register = Register { initial: None };

    #[test]
    fn register_steps() {
        assert_eq!(R.step(&None, &RegisterInput::Read, &RegisterOutput::Read(None)), Some(None));
        assert_eq!(R.step(&Some(1), &RegisterInput::Read, &RegisterOutput::Read(Some(2))), None);
        assert_eq!(R.step(&None, &RegisterInput::Write(3), &RegisterOutput::Write), Some(Some(3)));
        let cas = RegisterInput::Cas { old: 1, new: 2 };
        assert_eq!(R.step(&Some(1), &cas, &RegisterOutput::Cas(true)), Some(Some(2)));
        assert_eq!(R.step(&Some(5), &cas, &RegisterOutput::Cas(true)), None);
        assert_eq!(R.step(&Some(5), &cas, &RegisterOutput::Cas(false)), Some(Some(5)));
        assert_eq!(R.step(&Some(1), &cas, &RegisterOutput::Cas(false)), None);
        assert_eq!(R.step(&None, &RegisterInput::Write(3), &RegisterOutput::Read(None)), None, "kinds must agree");
    }

    #[test]
    fn indeterminate_effects() {
        let cas = RegisterInput::Cas { old: 1, new: 2 };
        assert_eq!(R.step_indeterminate(&Some(1), &cas), vec![Some(2)]);
        assert!(R.step_indeterminate(&Some(7), &cas).is_empty());
        assert_eq!(R.step_indeterminate(&Some(7), &RegisterInput::Write(4)), vec![Some(4)]);
        assert!(R.is_read_only(&RegisterInput::Read) && !R.is_read_only(&RegisterInput::Write(1)));
    }

    #[test]
    fn initial_states_cover_every_mentioned_value_and_one_more() {
        let write = RegisterInput::Write(4);
        let read = RegisterInput::Read;
        let output = RegisterOutput::Read(Some(9));
        let states = R.initial_states(&[(&write, None), (&read, Some(&output))]);
        assert_eq!(states, vec![None, Some(4), Some(9), Some(10)]);
        let seeded = Register { initial: Some(9) }.initial_states(&[(&read, Some(&output))]);
        assert_eq!(seeded, vec![Some(9), None, Some(10)], "init comes first, without duplicates");
    }

    #[test]
    fn labels() {
        assert_eq!(R.describe(&RegisterInput::Read, Some(&RegisterOutput::Read(None))), "r nil");
        assert_eq!(R.describe(&RegisterInput::Cas { old: 1, new: 2 }, None), "cas 1->2 ?");
        let input = KvInput { key: "x".into(), op: RegisterInput::Write(3) };
        assert_eq!(KeyValue.describe(&input, Some(&RegisterOutput::Write)), "x w 3");
        assert_eq!(KeyValue.partition(&input), "x");
    }
}
