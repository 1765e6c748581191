//! The history a system hands the checker: one [`Operation`] per client
//! request, with its call time, how it ended and, when it returned, its
//! output. Plain data; serde (de)serializable so that a system can dump a
//! history as JSON and the checker read it back.
//!
//! This module does not read Jepsen-style event logs (that is `file`) and
//! says nothing about time units: any monotonic `u64` clock will do, as long
//! as every operation of one history uses the same one.

use serde::{Deserialize, Serialize};

/// One client operation: invoked at `call`, ended as `completion` says.
///
/// Two operations are ordered in real time when one returned strictly before
/// the other was called; an operation that returned at the very time another
/// was called is concurrent with it (a coarse clock must not create an order
/// that did not exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation<I, O> {
    /// The client (Jepsen's process) that issued it; only reports use it.
    pub client: u64,
    /// When the request was sent.
    pub call: u64,
    /// What the client asked the object to do.
    pub input: I,
    /// How it ended, with its return time and output if it returned.
    pub completion: Completion<O>,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion<O> {
    /// It answered `output` at time `ret` (Jepsen's `:ok`). `ret >= call`.
    Returned {
        /// When the answer came back, on the clock of `call`.
        ret: u64,
        /// The answer.
        output: O,
    },
    /// Nobody knows whether it took effect (Jepsen's `:info`: a timeout, a
    /// connection lost mid-request). It may take effect at any time after its
    /// call, or never.
    Indeterminate,
    /// It definitely did not take effect (Jepsen's `:fail`). The checker
    /// leaves it out.
    Failed,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret`.
    pub fn returned(client: u64, call: u64, ret: u64, input: I, output: O) -> Operation<I, O> {
        Operation { client, call, input, completion: Completion::Returned { ret, output } }
    }

    /// An operation whose outcome is unknown.
    pub fn indeterminate(client: u64, call: u64, input: I) -> Operation<I, O> {
        Operation { client, call, input, completion: Completion::Indeterminate }
    }

    /// Its return time, `None` unless it returned.
    pub fn ret(&self) -> Option<u64> {
        match self.completion {
            Completion::Returned { ret, .. } => Some(ret),
            Completion::Indeterminate | Completion::Failed => None,
        }
    }

    /// Its output, `None` unless it returned.
    pub fn output(&self) -> Option<&O> {
        match &self.completion {
            Completion::Returned { output, .. } => Some(output),
            Completion::Indeterminate | Completion::Failed => None,
        }
    }
}
