//! The store as a single correct copy would behave, for the harness's
//! linearizability checker: every key a list that a write appends a value to
//! and a read returns whole. Values are unique, so a read names exactly the
//! writes it saw and the order the store applied them in.
//!
//! The harness's `KeyValue` register model would see only the last value a
//! read returns; the list model also catches a read that misses an earlier
//! write or sees two writes in an order no single copy could have.

use faultline_harness::linearizability::model::Model;
use serde::{Deserialize, Serialize};

use super::protocol::PROBE_VALUE_FLAG;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListInput {
    Append { key: u32, value: u64 },
    Read { key: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOutput {
    Appended,
    Read(Vec<u64>),
}

/// Keys to append-only lists of `u64`, every key initially empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lists;

/// A value as people read it: client.counter (c2.17), or the probe's p.N.
pub fn label(value: u64) -> String {
    if value & PROBE_VALUE_FLAG != 0 {
        return format!("p.{}", value & !PROBE_VALUE_FLAG);
    }
    match (value >> 32).checked_sub(1) {
        Some(client) => format!("c{client}.{}", value & 0xffff_ffff),
        None => format!("#{value}"),
    }
}

/// The last few values of a list, for timelines.
pub fn tail(values: &[u64]) -> String {
    const SHOWN: usize = 3;
    let shown: Vec<String> = values.iter().rev().take(SHOWN).rev().map(|v| label(*v)).collect();
    let more = if values.len() > SHOWN { format!("{} more, ", values.len() - SHOWN) } else { String::new() };
    format!("[{more}{}]", shown.join(" "))
}

impl Model for Lists {
    type Key = u32;
    type State = Vec<u64>;
    type Input = ListInput;
    type Output = ListOutput;

    fn name(&self) -> &'static str {
        "lists"
    }

    fn init(&self) -> Vec<u64> {
        Vec::new()
    }

    fn step(&self, state: &Vec<u64>, input: &ListInput, output: &ListOutput) -> Option<Vec<u64>> {
        match (input, output) {
            (ListInput::Append { value, .. }, ListOutput::Appended) => {
                let mut next = state.clone();
                next.push(*value);
                Some(next)
            }
            (ListInput::Read { .. }, ListOutput::Read(values)) => (values == state).then(|| state.clone()),
            _ => None,
        }
    }

    fn step_indeterminate(&self, state: &Vec<u64>, input: &ListInput) -> Vec<Vec<u64>> {
        match input {
            ListInput::Append { value, .. } => {
                let mut next = state.clone();
                next.push(*value);
                vec![next]
            }
            ListInput::Read { .. } => vec![state.clone()],
        }
    }

    fn is_read_only(&self, input: &ListInput) -> bool {
        matches!(input, ListInput::Read { .. })
    }

    fn partition(&self, input: &ListInput) -> u32 {
        match input {
            ListInput::Append { key, .. } | ListInput::Read { key } => *key,
        }
    }

    fn describe(&self, input: &ListInput, output: Option<&ListOutput>) -> String {
        match (input, output) {
            (ListInput::Append { value, .. }, _) => format!("w {}", label(*value)),
            (ListInput::Read { .. }, Some(ListOutput::Read(values))) => format!("r {}", tail(values)),
            (ListInput::Read { .. }, _) => "r ?".to_string(),
        }
    }

    fn describe_key(&self, key: &u32) -> String {
        format!("key {key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_then_reads_whole_lists() {
        let append = ListInput::Append { key: 1, value: 7 };
        let read = ListInput::Read { key: 1 };
        let state = Lists.step(&Vec::new(), &append, &ListOutput::Appended).unwrap();
        assert_eq!(state, vec![7]);
        assert_eq!(Lists.step(&state, &read, &ListOutput::Read(vec![7])), Some(vec![7]));
        assert_eq!(Lists.step(&state, &read, &ListOutput::Read(vec![])), None, "a read that misses a write");
        assert_eq!(Lists.step(&state, &append, &ListOutput::Read(vec![])), None, "kinds must agree");
        assert_eq!(Lists.step_indeterminate(&state, &append), vec![vec![7, 7]]);
        assert!(Lists.is_read_only(&read) && !Lists.is_read_only(&append));
        assert_eq!(Lists.partition(&append), 1);
    }

    #[test]
    fn labels_name_the_client_and_counter() {
        assert_eq!(label(super::super::protocol::workload_value(2, 17)), "c2.17");
        assert_eq!(label(PROBE_VALUE_FLAG | 4), "p.4");
        assert_eq!(tail(&[1 << 32, 2 << 32, 3 << 32, 4 << 32]), "[1 more, c1.0 c2.0 c3.0]");
    }
}
