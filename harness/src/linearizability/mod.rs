//! A linearizability checker: is a concurrent history of operations on an
//! object explainable by some order of those operations that a single copy
//! of the object could have executed, with each operation taking effect at
//! one instant between its call and its return?
//!
//! - `model`: the sequential specification ([`model::Model`]) and two models,
//!   a register and a key-value map.
//! - `operation`: the history a system hands in ([`operation::Operation`]).
//! - `search` (private): Wing & Gong's search with Lowe's memo, one partition.
//! - `check`: partitions by key, parallel searches, budgets, the
//!   deterministic [`check::Verdict`].
//! - `shrink` (private): the minimal failing slice and the longest
//!   linearizable prefix of a violation.
//! - `render`: text timelines.
//! - `file`: Jepsen-style JSON-lines histories, [`file::check_file`] and its
//!   [`file::Report`].
//! - `generate` and `speed`: realistic random histories and the speed table.
//!
//! Operations whose outcome is unknown (timeouts) are indeterminate: they may
//! take effect at any time after their call, or never. Budgets (search steps,
//! memo size, wall clock) end a search with `Unknown`, never a pass.
//!
//! This module depends on no other harness module except
//! `crate::error::InputError`: systems feed it histories; it runs nothing,
//! and knows no system, no simulation and no scenario. docs/linearizability.md
//! explains the model trait, the file format and the speed figures.

pub mod check;
pub mod file;
pub mod generate;
pub mod model;
pub mod operation;
pub mod render;
mod search;
mod shrink;
pub mod speed;

#[cfg(test)]
mod tests;
